"""Showing an Analysis: JSON report, terminal summary, Graphviz erasure map."""

from bwsk.report.json import JSON_SCHEMA, SCHEMA_NAME, check_witness, to_dict, write_json
from bwsk.report.render import DotOutput, to_dot, write_dot
from bwsk.report.table import print_summary, render_summary

__all__ = ["JSON_SCHEMA", "SCHEMA_NAME", "DotOutput", "check_witness", "print_summary",
           "render_summary", "to_dict", "to_dot", "write_dot", "write_json"]

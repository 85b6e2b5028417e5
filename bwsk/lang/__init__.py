"""The term language: parse text into terms and print terms back (grammar/bwsk.lark)."""

from bwsk.lang.parser import parse, parse_file, parse_records
from bwsk.lang.printer import print_term

__all__ = ["parse", "parse_file", "parse_records", "print_term"]

"""The machine-readable report: a stable JSON contract (``bwsk.report/1``).

Fields may be added; existing ones never change meaning. Witness inputs are written as exact
nested lists keyed by the graph's variable inputs, so a reader can replay the collision.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from bwsk.analysis.result import Analysis, BlockVerdict, NodeVerdict, Witness
from bwsk.ir import Graph
from bwsk.report.files import atomic_write_text

SCHEMA_NAME = "bwsk.report/1"
MIN_WITNESS_GAP = 1e-3  # DESIGN.md §2: a witness's inputs differ by at least this (max-abs)

_VERDICT = {"enum": ["S", "K", "GRAY"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_TENSORS = {"type": "object", "additionalProperties": {"type": ["array", "number", "boolean"]}}
_RATIO = {"type": "number", "minimum": 0, "maximum": 1}
_COUNT = {"type": "integer", "minimum": 0}

JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_NAME,
    "type": "object",
    "required": ["schema", "model", "verdict", "witness", "inverse_available", "conditions",
                 "summary", "nodes", "blocks", "term"],
    "properties": {
        "schema": {"const": SCHEMA_NAME},
        "model": {"type": "string"},
        "verdict": _VERDICT,
        "reason": {"type": "string"},
        "witness": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["a", "b"],
            "properties": {"a": _TENSORS, "b": _TENSORS, "max_abs_diff": {"type": "number"}}}]},
        "inverse_available": {"type": "boolean"},
        "conditions": _STRINGS,
        "summary": {
            "type": "object",
            "required": ["ops", "S", "K", "GRAY", "s_ratio", "k_ratio", "gray_ratio"],
            "properties": {"ops": _COUNT, "S": _COUNT, "K": _COUNT, "GRAY": _COUNT,
                           "s_ratio": _RATIO, "k_ratio": _RATIO, "gray_ratio": _RATIO}},
        "nodes": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "op", "verdict", "reason", "erased_dims", "conditions"],
            "properties": {"name": {"type": "string"}, "op": {"type": "string"},
                           "verdict": _VERDICT, "reason": {"type": "string"},
                           "erased_dims": {"type": ["integer", "null"], "minimum": 0},
                           "conditions": _STRINGS}}},
        "blocks": {"type": "array", "items": {
            "type": "object", "required": ["name", "kind", "verdict", "reason", "nodes"],
            "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                           "verdict": _VERDICT, "reason": {"type": "string"},
                           "nodes": _STRINGS, "conditions": _STRINGS,
                           "repeat_of": {"type": ["string", "null"]}}}},
        "term": {"type": "string"},
    },
}


def variable_inputs(graph: Graph) -> list[str]:
    """The model's arguments: graph inputs that are not initializers."""
    return [name for name in graph.inputs if not graph.is_const(name)]


def check_witness(graph: Graph, witness: Witness) -> float:
    """Enforce the witness contract and return the max-abs gap between ``a`` and ``b``.

    A witness that breaks the contract is a bug in whoever built it, hence ``ValueError``.
    """
    expected = variable_inputs(graph)
    for side, arrays in (("a", witness.a), ("b", witness.b)):
        if sorted(arrays) != sorted(expected):
            raise ValueError(f"witness.{side} keys {sorted(arrays)} != graph inputs {expected}")
        for name, array in arrays.items():
            _check_shape(graph, name, np.asarray(array).shape)
    gap = max((_gap(witness.a[n], witness.b[n]) for n in expected), default=0.0)
    if not gap >= MIN_WITNESS_GAP:
        raise ValueError(f"witness inputs differ by {gap:g} < {MIN_WITNESS_GAP:g}")
    return gap


def _check_shape(graph: Graph, name: str, shape: tuple[int, ...]) -> None:
    declared = graph.values[name].shape if name in graph.values else None
    if declared is None:
        return
    fits = len(declared) == len(shape) and all(
        isinstance(d, str) or d == s for d, s in zip(declared, shape, strict=False))
    if not fits:
        raise ValueError(f"witness input {name!r} has shape {shape}, graph says {declared}")


def _gap(a: Any, b: Any) -> float:
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(diff.max()) if diff.size else 0.0


def _witness_dict(analysis: Analysis) -> dict[str, Any] | None:
    if analysis.witness is None:
        return None
    gap = check_witness(analysis.graph, analysis.witness)
    return {"a": {k: np.asarray(v).tolist() for k, v in analysis.witness.a.items()},
            "b": {k: np.asarray(v).tolist() for k, v in analysis.witness.b.items()},
            "max_abs_diff": gap}


def summary(analysis: Analysis) -> dict[str, Any]:
    """Per-op counts and ratios, comparable with the model cards' S/K/gray percentages."""
    counts = analysis.counts()
    ops = len(analysis.nodes)
    out: dict[str, Any] = {"ops": ops, **counts}
    for key, label in (("S", "s_ratio"), ("K", "k_ratio"), ("GRAY", "gray_ratio")):
        out[label] = counts[key] / ops if ops else 0.0
    out["blocks"] = len(analysis.blocks)
    out["distinct_blocks"] = sum(1 for b in analysis.blocks if b.repeat_of is None)
    return out


def _node_dict(verdict: NodeVerdict, graph_nodes: dict[str, Any]) -> dict[str, Any]:
    node = graph_nodes.get(verdict.name)
    return {"name": verdict.name, "op": verdict.op, "verdict": verdict.verdict,
            "reason": verdict.reason, "erased_dims": verdict.erased_dims,
            "conditions": list(verdict.conditions), "bijective": verdict.bijective,
            "well_conditioned": verdict.well_conditioned,
            "scope": node.scope if node else "", "source_op": node.source_op if node else ""}


def _block_dict(block: BlockVerdict) -> dict[str, Any]:
    return {"name": block.name, "kind": block.kind, "verdict": block.verdict,
            "reason": block.reason, "conditions": list(block.conditions),
            "repeat_of": block.repeat_of, "nodes": list(block.nodes)}


def _value_dict(graph: Graph, name: str) -> dict[str, Any]:
    value = graph.values.get(name)
    shape = None if value is None or value.shape is None else list(value.shape)
    return {"name": name, "shape": shape, "dtype": value.dtype if value else None}


def to_dict(analysis: Analysis) -> dict[str, Any]:
    """The report as plain JSON-compatible data (see ``JSON_SCHEMA``)."""
    from bwsk import __version__

    graph = analysis.graph
    graph_nodes = {n.name: n for n in graph.nodes}
    return {
        "schema": SCHEMA_NAME,
        "bwsk_version": __version__,
        "model": analysis.model,
        "verdict": analysis.verdict,
        "reason": analysis.reason,
        "witness": _witness_dict(analysis),
        "inverse_available": analysis.verdict == "S" and analysis.inverse is not None,
        "conditions": list(analysis.conditions),
        "summary": summary(analysis),
        "inputs": [_value_dict(graph, n) for n in variable_inputs(graph)],
        "outputs": [_value_dict(graph, n) for n in graph.outputs],
        "nodes": [_node_dict(v, graph_nodes) for v in analysis.nodes],
        "blocks": [_block_dict(b) for b in analysis.blocks],
        "term": "" if analysis.term is None else str(analysis.term),
        "extra": _jsonable(analysis.extra),
    }


def _jsonable(obj: Any) -> Any:
    """Best-effort plain data for free-form ``extra``; non-finite floats become strings."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


def dumps(analysis: Analysis) -> str:
    return json.dumps(to_dict(analysis), indent=1, allow_nan=False) + "\n"


def write_json(analysis: Analysis, path: str | os.PathLike[str]) -> Path:
    """Write the report atomically; returns the path written."""
    return atomic_write_text(path, dumps(analysis))

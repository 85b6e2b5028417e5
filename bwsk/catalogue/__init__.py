"""The op catalogue: one entry per atom (arity, shape rule, injectivity rule with inverse or
collision, erased dims, rationale). ``judge`` applies an entry to one node of a graph."""

from __future__ import annotations

import numpy as np

from bwsk.catalogue import binary, layout, linear, misc, reduce, unary  # noqa: F401  (registration)
from bwsk.catalogue.base import (
    ALONE,
    CATALOGUE,
    GIVEN_OTHERS,
    NO,
    Ctx,
    Entry,
    Judgement,
    flags,
    gray,
    injective,
)
from bwsk.catalogue.misc import GRAY_BY_DESIGN
from bwsk.catalogue.run import run_node
from bwsk.errors import BwskError
from bwsk.ir import Graph, Node

__all__ = [
    "ALONE",
    "CATALOGUE",
    "GIVEN_OTHERS",
    "GRAY_BY_DESIGN",
    "NO",
    "Entry",
    "Judgement",
    "judge",
    "judge_all",
    "lookup",
    "run_node",
]


def lookup(atom: str) -> Entry | None:
    return CATALOGUE.get(atom)


def judge(graph: Graph, node: Node, weights: bool = True) -> Judgement:
    """The node's verdict on its variable inputs jointly; never raises for an unknown op."""
    with np.errstate(all="ignore"):
        return _judge(graph, node, weights)


def judge_all(graph: Graph, weights: bool = True) -> list[Judgement]:
    """Every node's judgement, under one errstate (entering it costs as much as a cheap rule)."""
    with np.errstate(all="ignore"):
        return [_judge(graph, node, weights) for node in graph.nodes]


def _judge(graph: Graph, node: Node, weights: bool) -> Judgement:
    ctx = Ctx(graph, node, weights)
    entry = CATALOGUE.get(node.op)
    if entry is None:
        if node.op in GRAY_BY_DESIGN:
            return gray(ctx, f"{node.op}: {GRAY_BY_DESIGN[node.op]}", "not analysed by design")
        domain, _, op_type = (node.source_op or f"::{node.op}").rpartition("::")
        return gray(ctx, f"unknown op {domain or 'ai.onnx'}::{op_type}", "an entry for this op")
    if not ctx.var_slots:
        return injective(ctx, "no variable input", None)
    try:
        return entry.rule(ctx)
    except (BwskError, ValueError, TypeError, IndexError, KeyError, ArithmeticError) as exc:
        return gray(
            ctx,
            f"{node.op}: catalogue rule failed ({type(exc).__name__}: {exc})",
            "attributes/shapes the rule understands",
            recover=flags(ctx, NO),
        )

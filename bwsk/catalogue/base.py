"""The vocabulary every catalogue entry speaks: the node context it reads and the judgement
it returns. Entries decide from attrs, shapes and constant inputs, never from the name alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from bwsk.ir import Graph, Node

NO, GIVEN_OTHERS, ALONE = 0, 1, 2  # how a node input is recovered (bwsk._core.prove_recoverable)

Arrays = list  # list[np.ndarray | None], one per node input or output slot
# invert(slot, inputs, outputs) -> the recovered input at `slot`; unknown inputs are None
Invert = Callable[[int, Arrays, Arrays], np.ndarray]
# collide(inputs, rng) -> (inputs_a, inputs_b): only variable slots change, the outputs agree
Collide = Callable[[Arrays, np.random.Generator], tuple[Arrays, Arrays]]


@dataclass
class Ctx:
    """What a rule may look at: the node, its graph, and whether to read weights."""

    graph: Graph
    node: Node
    weights: bool = True

    def attr(self, key: str, default: Any = None) -> Any:
        return self.node.attrs.get(key, default)

    def shape(self, slot: int, output: bool = False) -> tuple | None:
        names = self.node.outputs if output else self.node.inputs
        if slot >= len(names) or not names[slot]:
            return None
        value = self.graph.values.get(names[slot])
        return None if value is None else value.shape

    def const(self, slot: int) -> np.ndarray | None:
        if slot >= len(self.node.inputs) or not self.node.inputs[slot]:
            return None
        value = self.graph.values.get(self.node.inputs[slot])
        return None if value is None else value.const

    def present(self, slot: int) -> bool:
        return slot < len(self.node.inputs) and bool(self.node.inputs[slot])

    @cached_property
    def var_slots(self) -> list[int]:
        """The variable input slots (rules ask several times per node)."""
        return self.graph.variable_inputs(self.node)

    def numel(self, slot: int, output: bool = False) -> int | None:
        shape = self.shape(slot, output)
        if shape is None or not all(isinstance(d, int) for d in shape):
            return None
        return int(np.prod(shape, dtype=np.int64))


@dataclass
class Judgement:
    """A node's verdict on its variable inputs jointly, plus what the engine needs."""

    verdict: str  # "S" | "K" | "GRAY"
    reason: str
    recover: list[int] = field(default_factory=list)  # per input slot: NO/GIVEN_OTHERS/ALONE
    needs: list[int] | None = None  # output slots the inverse needs (None: output 0)
    erased_dims: int | None = None
    conditions: list[str] = field(default_factory=list)
    bijective: bool = False
    well_conditioned: bool = True
    invert: Invert | None = None
    collide: Collide | None = None
    # (slot, why, collide): collisions that change only that variable slot and set the others
    # alike in both inputs, for when the other inputs are visible elsewhere in the graph
    pinned: list[tuple[int, str, Collide]] = field(default_factory=list)


@dataclass
class Entry:
    """One atom: arity, the rule that judges a node, and why the rule is right."""

    atom: str
    arity: str  # e.g. "1", "2", "1..3", "variadic"
    rule: Callable[[Ctx], Judgement]
    rationale: str
    shape: str = "onnx"  # "same": output shape = input shape; "onnx": from shape inference


CATALOGUE: dict[str, Entry] = {}


def entry(atoms: str, arity: str, rationale: str, shape: str = "onnx"):
    """Registers ``rule`` for every atom in the space-separated ``atoms``."""

    def register(rule: Callable[[Ctx], Judgement]) -> Callable[[Ctx], Judgement]:
        for atom in atoms.split():
            CATALOGUE[atom] = Entry(atom, arity, rule, rationale, shape)
        return rule

    return register


def flags(ctx: Ctx, how: int, slots: list[int] | None = None) -> list[int]:
    """``how`` for the given slots (default: every variable input), NO elsewhere."""
    chosen = set(ctx.var_slots if slots is None else slots)
    return [how if i in chosen else NO for i in range(len(ctx.node.inputs))]


def injective(
    ctx: Ctx,
    reason: str,
    invert: Invert | None,
    *,
    how: int = ALONE,
    bijective: bool = False,
    well_conditioned: bool = True,
    needs: list[int] | None = None,
    conditions: list[str] | None = None,
) -> Judgement:
    return Judgement(
        "S",
        reason,
        flags(ctx, how),
        needs,
        0,
        conditions or [],
        bijective,
        well_conditioned,
        invert,
    )


def collision(
    ctx: Ctx,
    reason: str,
    collide: Collide | None,
    erased: int | None = None,
    recover: list[int] | None = None,
) -> Judgement:
    return Judgement("K", reason, recover or flags(ctx, NO), erased_dims=erased, collide=collide)


def gray(ctx: Ctx, reason: str, *conditions: str, recover: list[int] | None = None) -> Judgement:
    return Judgement("GRAY", reason, recover or flags(ctx, NO), conditions=list(conditions))


def replace(inputs: Arrays, slot: int, value: np.ndarray) -> Arrays:
    out = list(inputs)
    out[slot] = value
    return out


def set_first(inputs: Arrays, slot: int, va: float, vb: float) -> tuple[Arrays, Arrays]:
    """Two copies of ``inputs`` whose ``slot`` differs only at flat index 0 (va vs vb)."""
    pair = []
    for v in (va, vb):
        x = np.array(inputs[slot], copy=True)
        x.reshape(-1)[0] = v
        pair.append(replace(inputs, slot, x))
    return pair[0], pair[1]


def unbroadcast(y: np.ndarray, shape: tuple) -> np.ndarray:
    """The entries of broadcast ``y`` that came from a tensor of ``shape`` (first copy of each)."""
    y = np.asarray(y)
    lead = y.ndim - len(shape)
    y = y[(0,) * lead] if lead > 0 else y
    index = tuple(slice(0, 1) if d == 1 else slice(None) for d in shape)
    return np.ascontiguousarray(y[index]).reshape(shape)

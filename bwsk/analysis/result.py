"""What an analysis returns: verdicts with their certificates, per node, block and model.

This is the contract between the proof engine and everything that shows results
(JSON report, terminal table, Graphviz picture, reversible conversion, parallel planner).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bwsk.ir import Graph

VerdictName = Literal["S", "K", "GRAY"]


@dataclass
class Witness:
    """Two different inputs with equal outputs: keys are the graph's variable inputs."""

    a: dict[str, np.ndarray]
    b: dict[str, np.ndarray]


@dataclass
class NodeVerdict:
    name: str
    op: str
    verdict: VerdictName
    reason: str
    erased_dims: int | None = None
    conditions: list[str] = field(default_factory=list)
    bijective: bool = False
    well_conditioned: bool = True


@dataclass
class BlockVerdict:
    """A residual block, attention, MLP, coupling or layer, judged on its own inputs."""

    name: str
    kind: str  # "layer" | "residual" | "attention" | "mlp" | "coupling" | ...
    nodes: list[str]
    verdict: VerdictName
    reason: str
    conditions: list[str] = field(default_factory=list)
    repeat_of: str | None = None  # name of the first structurally identical block
    witness: Witness | None = None  # for K: inputs of the block itself, checked on the block


@dataclass
class Analysis:
    model: str
    graph: Graph
    verdict: VerdictName
    reason: str
    nodes: list[NodeVerdict]
    blocks: list[BlockVerdict] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    witness: Witness | None = None
    inverse: Any = None  # a callable inverse program when verdict == "S"
    term: Any = None  # the normalized bwsk.Term of the model (see ``lower_later``)
    extra: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {"S": 0, "K": 0, "GRAY": 0}
        for n in self.nodes:
            out[n.verdict] += 1
        return out

    def lower_later(self, lower: Callable[[Analysis], Any]) -> None:
        """Lower the term on first read of ``term``: verdicts do not need it, and lowering
        costs as much as proving a small model; setting ``term`` drops the pending lowering."""
        self.__dict__["_lower"] = lower


def _get_term(self: Analysis) -> Any:
    lower = self.__dict__.pop("_lower", None)
    if lower is not None:
        self.__dict__["_term"] = lower(self)
    return self.__dict__.get("_term")


def _set_term(self: Analysis, value: Any) -> None:
    self.__dict__.pop("_lower", None)
    self.__dict__["_term"] = value


# after @dataclass, so its __init__ (term=None by default) goes through the setter
Analysis.term = property(_get_term, _set_term)  # type: ignore[assignment]

"""What an analysis returns: verdicts with their certificates, per node, block and model.

This is the contract between the proof engine and everything that shows results
(JSON report, terminal table, Graphviz picture, reversible conversion, parallel planner).
"""

from __future__ import annotations

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
    term: Any = None  # the normalized bwsk.Term of the model
    extra: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {"S": 0, "K": 0, "GRAY": 0}
        for n in self.nodes:
            out[n.verdict] += 1
        return out

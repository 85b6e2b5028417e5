"""The graph IR every frontend produces and every analysis consumes.

A model is a function from its variable graph inputs to its outputs; initializers and
constant nodes are ``Value.const`` arrays, not inputs. Nodes are in topological order.
Ops are *atoms* of bwsk's vocabulary (see ``atom_of_onnx``); frontends map ONNX and ATen
operators onto them so the catalogue has one entry per concept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

Dim = int | str  # a static size, or a symbolic dimension name


@dataclass
class Value:
    """A tensor edge: its static shape (None when unknown), dtype, and data if constant."""

    name: str
    shape: tuple[Dim, ...] | None = None
    dtype: str = "float32"
    const: np.ndarray | None = None

    @property
    def is_const(self) -> bool:
        return self.const is not None


@dataclass
class Node:
    """One operator application. ``inputs`` may hold '' for an omitted optional input."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    source_op: str = ""  # e.g. "ai.onnx::MatMul", "aten::addmm"
    scope: str = ""  # module path such as "h.0.attn" when the frontend knows it


@dataclass
class Graph:
    name: str
    inputs: list[str]
    outputs: list[str]
    values: dict[str, Value]
    nodes: list[Node]
    # the model it came from (an onnx.ModelProto, an nn.Module), to execute witnesses on
    source: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def producer(self) -> dict[str, Node]:
        return {out: n for n in self.nodes for out in n.outputs if out}

    @cached_property
    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    users.setdefault(i, []).append(n)
        return users

    def is_const(self, name: str) -> bool:
        value = self.values.get(name)
        return value is not None and value.const is not None

    def static_shape(self, name: str) -> tuple[int, ...]:
        """The concrete shape of ``name``, or a message saying how to make it concrete."""
        from bwsk.errors import UnsupportedModelError

        value = self.values.get(name)
        if value is None or value.shape is None:
            raise UnsupportedModelError(f"shape of {name!r} is unknown; pass input_shapes "
                                        "to fix the input sizes")
        symbolic = [d for d in value.shape if not isinstance(d, int)]
        if symbolic:
            raise UnsupportedModelError(
                f"shape of {name!r} has symbolic dim {symbolic[0]!r}; pass input_shapes, e.g. "
                f"{{{self.inputs[0] if self.inputs else 'input'!r}: (1, 8)}}")
        return tuple(value.shape)

    def variable_inputs(self, node: Node) -> list[int]:
        """Positions of ``node``'s inputs that are not constants (its argument, jointly)."""
        values = self.values  # the analyses ask this per node and block: kept call-free
        return [
            i for i, x in enumerate(node.inputs)
            if x and (x not in values or values[x].const is None)
        ]


# Short, conventional names where the mechanical rule would be clumsy.
_ATOM_OVERRIDES = {
    "MatMul": "matmul",
    "LayerNormalization": "layernorm",
    "RMSNormalization": "rmsnorm",
    "BatchNormalization": "batchnorm",
    "InstanceNormalization": "instancenorm",
    "GroupNormalization": "groupnorm",
    "LogSoftmax": "log_softmax",
}


def atom_of_onnx(op_type: str, domain: str = "") -> str:
    """The atom for an ONNX operator: snake_case of its type, prefixed by a custom domain."""
    atom = _ATOM_OVERRIDES.get(op_type)
    if atom is None:
        atom = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", op_type).lower()
    if domain and domain not in ("ai.onnx", ""):
        atom = f"{domain.replace('.', '_')}::{atom}"
    return atom

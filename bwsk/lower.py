"""Lowering: a graph becomes the combinator term ``\\x1 ... xn. <y1, ..., ym>``.

Ops are primitives ``atom[attrs]``, weights are ``%name`` references, small integer or
scalar constants are written inline as ``const[...]``. A module repeated along a numbered
scope (``h.0``, ``h.1``, ...) is lowered once as a closed function of its activation inputs
whose weights are references relative to the block (``%attn.c_attn.weight``), and applied to
each instance through the opaque primitive ``scope[prefix="h.0"]``. Primitives do not reduce,
so the block body stays one shared subterm of the normal form too: the twelve blocks of a
transformer cost one body plus a few nodes per layer. The whole term is handed to the native
store in one ``build`` call and normalized there (bracket abstraction removes the lambdas).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from bwsk.errors import UnsupportedModelError
from bwsk.ir import Graph, Node

_INLINE_LIMIT = 16  # elements of a constant written inline instead of referenced
_BAD_REF = re.compile(r"[^A-Za-z0-9_.:/-]")
_NUMBERED = re.compile(r"^\d+$")


def lower(graph: Graph, *, normalize: bool = True):
    """The term of ``graph`` (normalized unless ``normalize=False``)."""
    from bwsk import term

    records = Lowering(graph).records()
    built = term.build(records)
    return built.normalize() if normalize else built


# --- attribute and constant text ------------------------------------------------------
def canonical_value(value: Any) -> str:
    """Canonical attribute text of a Python/numpy value (docs/term-language.md)."""
    if isinstance(value, np.ndarray):
        if value.size > _INLINE_LIMIT or value.dtype == object:
            digest = hashlib.sha1(value.tobytes() if value.dtype != object else
                                  repr(value.tolist()).encode()).hexdigest()[:12]
            return json.dumps(f"tensor{list(value.shape)}:{value.dtype}:{digest}")
        return canonical_value(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(repr(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canonical_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def canonical_attrs(attrs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={canonical_value(attrs[k])}" for k in sorted(attrs))


def ref_name(name: str) -> str:
    """A value name as a legal ``%REF`` (exporter names may hold spaces or a leading '/')."""
    cleaned = _BAD_REF.sub("_", name) or "_"
    return cleaned if re.match(r"[A-Za-z0-9_]", cleaned[0]) else "_" + cleaned


def _inline(array: np.ndarray) -> bool:
    """Shape arithmetic and scalars are structure, written inline; tensors are weights."""
    if array.size > _INLINE_LIMIT or array.dtype == object:
        return False
    return array.ndim == 0 or array.dtype.kind in "iub"


# --- repeated blocks --------------------------------------------------------------------
@dataclass
class Block:
    """One instance of a repeated module: a contiguous run of nodes under one scope."""

    scope: str
    nodes: list[Node]


def find_blocks(graph: Graph) -> list[Block]:
    """Instances of module stacks (``h.0`` ... ``h.11``), each a contiguous run of nodes."""
    key_of = [_block_key(n.scope) for n in graph.nodes]
    members: dict[str, set[str]] = {}
    for key in key_of:
        if key:
            members.setdefault(key.rpartition(".")[0], set()).add(key)
    runs: list[Block] = []
    for index, node in enumerate(graph.nodes):
        key = key_of[index]
        if key and len(members[key.rpartition(".")[0]]) < 2:
            key = ""
        if key and runs and runs[-1].scope == key and key_of[index - 1] == key:
            runs[-1].nodes.append(node)
        elif key:
            runs.append(Block(key, [node]))
    count = Counter(run.scope for run in runs)  # a scope split in two runs is inlined
    return [run for run in runs if count[run.scope] == 1]


def _block_key(scope: str) -> str:
    """The shortest prefix of ``scope`` that ends in a number: 'h.0.attn' -> 'h.0'."""
    parts = scope.split(".") if scope else []
    for i, part in enumerate(parts):
        if _NUMBERED.match(part):
            return ".".join(parts[: i + 1])
    return ""


# --- the lowering itself ----------------------------------------------------------------
class Lowering:
    """Builds postfix records (children first) for ``term.build``."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.out: list[tuple] = []
        self.memo: dict[tuple, int] = {}
        self.inline: dict[tuple, int] = {}  # small constants by content: every layer has its own

    def emit(self, record: tuple) -> int:
        index = self.memo.get(record)
        if index is None:
            index = self.memo[record] = len(self.out)
            self.out.append(record)
        return index

    def apply(self, fun: int, *args: int) -> int:
        for arg in args:
            fun = self.emit(("app", fun, arg))
        return fun

    def records(self) -> list[tuple]:
        g = self.graph
        env: dict[str, int] = {}
        variables = [f"x{i}" for i in range(len(g.inputs))]
        for name, var in zip(g.inputs, variables, strict=True):
            env[name] = self.emit(("prim", var, ""))
        block_of = {id(n): b for b in find_blocks(g) for n in b.nodes}
        done: set[int] = set()
        for node in g.nodes:
            block = block_of.get(id(node))
            if block is None:
                self.lower_node(node, env)
            elif id(block) not in done:
                done.add(id(block))
                self.lower_block(block, env)
        body = self.tuple_of([self.value(name, env) for name in g.outputs])
        for var in reversed(variables):
            body = self.emit(("lam", var, body))
        return self.out

    def tuple_of(self, items: list[int]) -> int:
        if len(items) == 1:
            return items[0]
        return self.apply(self.emit(("tuple", len(items))), *items)

    def value(self, name: str, env: dict[str, int]) -> int:
        """The record of a value: computed, an inline constant, or a weight reference."""
        if not name:
            return self.emit(("tuple", 0))
        if name in env:
            return env[name]
        value = self.graph.values.get(name)
        if value is not None and value.is_const:
            if _inline(value.const):
                return self.inline_const(value.const)
            return self.emit(("ref", ref_name(name)))
        raise UnsupportedModelError(f"cannot lower {self.graph.name!r}: value {name!r} is "
                                    "used but never defined")

    def inline_const(self, array: np.ndarray) -> int:
        """``const[...]`` of a small array; equal bytes, dtype and shape give equal text."""
        key = (array.dtype.str, array.shape, array.tobytes())
        index = self.inline.get(key)
        if index is None:
            attrs = canonical_attrs({"dtype": array.dtype.name, "shape": list(array.shape),
                                     "value": array.reshape(-1)})
            index = self.inline[key] = self.emit(("prim", "const", attrs))
        return index

    def lower_node(self, node: Node, env: dict[str, int]) -> None:
        head = self.emit(("prim", node.op, canonical_attrs(node.attrs)))
        result = self.apply(head, *(self.value(x, env) for x in node.inputs))
        self.bind_outputs(node.outputs, result, env)

    def bind_outputs(self, outputs: list[str], result: int, env: dict[str, int]) -> None:
        if len(outputs) == 1:
            env[outputs[0]] = result
            return
        for i, name in enumerate(outputs):
            if name:
                env[name] = self.apply(self.emit(("proj", i, len(outputs))), result)

    def lower_block(self, block: Block, env: dict[str, int]) -> None:
        """``scope[prefix=p] (\\a1 .. ak. <outs>) x1 .. xk``: the body has only relative weight
        references and activation parameters, so it is the same record for equal blocks."""
        params, relative, outputs = self.interface(block)
        inner: dict[str, int] = {name: self.emit(("ref", rel)) for name, rel in relative}
        for name, var in params:
            inner[name] = self.emit(("prim", var, ""))
        for node in block.nodes:
            self.lower_node(node, inner)
        fun = self.tuple_of([inner[name] for name in outputs])
        for _, var in reversed(params):
            fun = self.emit(("lam", var, fun))
        scoped = self.emit(("prim", "scope", canonical_attrs({"prefix": block.scope})))
        call = self.apply(scoped, fun, *(self.value(name, env) for name, _ in params))
        self.bind_outputs(outputs, call, env)

    def interface(self, block: Block) -> tuple[list[tuple[str, str]], list[tuple[str, str]],
                                               list[str]]:
        """(activation params as (value, variable), block weights as (value, relative ref),
        outputs). Variables are named by position so that equal blocks get equal bodies."""
        produced = {o for n in block.nodes for o in n.outputs if o}
        params: list[tuple[str, str]] = []
        relative: list[tuple[str, str]] = []
        seen: set[str] = set()
        for node in block.nodes:
            for name in node.inputs:
                if not name or name in produced or name in seen:
                    continue
                seen.add(name)
                value = self.graph.values.get(name)
                if value is not None and value.is_const and _inline(value.const):
                    continue
                rel = _relative_ref(name, block.scope)
                if value is not None and value.is_const and rel:
                    relative.append((name, rel))
                else:
                    params.append((name, f"p{len(params)}"))
        users = self.graph.consumers
        inside = {id(n) for n in block.nodes}
        wanted = set(self.graph.outputs)
        outputs = [o for n in block.nodes for o in n.outputs if o and (
            o in wanted or any(id(u) not in inside for u in users.get(o, [])))]
        return params, relative, outputs


def _relative_ref(name: str, scope: str) -> str:
    """``name`` relative to ``scope`` when ``%scope.rel`` is exactly its reference, else ''."""
    rel = name.removeprefix(scope + ".")
    if rel == name or ref_name(name) != name or ref_name(rel) != rel:
        return ""
    return rel

"""Fusing spelled-out activations into one atom, by structure and constants, never by name.

GPT-2's ``NewGELUActivation`` writes the tanh approximation of GELU out as
``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))``: eight primitives (mul, pow,
add, tanh, ...) that the catalogue could only judge one by one, the variable-by-variable
product staying gray. As one ``gelu[approximate="tanh"]`` atom the catalogue proves it K
(it dips below zero on the negatives) with a witness. The match requires exactly that
formula: the constants within float32 rounding, every intermediate used only inside it.
"""

from __future__ import annotations

import math

from bwsk.ir import Node, Value

_HALF, _CUBIC, _SQRT_2_PI = 0.5, 0.044715, math.sqrt(2 / math.pi)


class _Match:
    """A matcher over the nodes emitted so far: producers, use counts and constants."""

    def __init__(self, nodes: list[Node], values: dict[str, Value], outputs: list[str]):
        self.values = values
        self.producer = {o: n for n in nodes for o in n.outputs if o}
        self.uses: dict[str, int] = {o: 1 for o in outputs}
        for n in nodes:
            for i in n.inputs:
                self.uses[i] = self.uses.get(i, 0) + 1

    def const(self, name: str, target: float) -> bool:
        value = self.values.get(name)
        c = None if value is None else value.const
        return (c is not None and c.size == 1 and c.dtype.kind in "fiu"
                and math.isclose(float(c.ravel()[0]), target, rel_tol=1e-6))

    def inner(self, name: str, op: str, found: list[Node]) -> Node | None:
        """The producer of ``name`` when it is an ``op`` whose result has no other user."""
        node = self.producer.get(name)
        if node is None or node.op != op or self.uses.get(name) != 1 or len(node.inputs) != 2:
            return None
        found.append(node)
        return node

    def with_const(self, name: str, op: str, target: float, found: list[Node]) -> str | None:
        """For ``name = op(v, c)`` or ``op(c, v)`` with c = target: v."""
        node = self.inner(name, op, found)
        if node is not None:
            a, b = node.inputs
            if self.const(b, target):
                return a
            if self.const(a, target):
                return b
        return None


def _tanh_arg(m: _Match, name: str, found: list[Node]) -> str | None:
    """For ``name = 1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))``: x."""
    t = m.with_const(name, "add", 1.0, found)
    tanh = m.producer.get(t) if t else None
    if tanh is None or tanh.op != "tanh" or m.uses.get(t) != 1:
        return None
    found.append(tanh)
    s = m.with_const(tanh.inputs[0], "mul", _SQRT_2_PI, found)
    poly = m.inner(s, "add", found) if s else None
    if poly is None:
        return None
    for x, cubic in (poly.inputs, poly.inputs[::-1]):
        p = m.with_const(cubic, "mul", _CUBIC, found)
        power = m.inner(p, "pow", found) if p else None
        if power is not None and power.inputs[0] == x and m.const(power.inputs[1], 3.0):
            return x
    return None


def _gelu_input(m: _Match, out: Node) -> tuple[str, list[Node]] | None:
    """x when ``out`` computes 0.5*x*(1+tanh(...x...)) in one of its spellings, with the
    nodes the match covers; None otherwise."""
    for a, b in (out.inputs, out.inputs[::-1]):
        found: list[Node] = []
        half_x = m.with_const(a, "mul", _HALF, found)  # (x*0.5) * (1+tanh)
        if half_x is not None and _tanh_arg(m, b, found) == half_x:
            return half_x, found
        found = []
        if m.const(a, _HALF):  # 0.5 * (x * (1+tanh))
            prod = m.inner(b, "mul", found)
            for x, rest in (prod.inputs, prod.inputs[::-1]) if prod else ():
                if _tanh_arg(m, rest, sub := list(found)) == x:
                    return x, sub
    return None


def fuse_tanh_gelu(nodes: list[Node], values: dict[str, Value],
                   outputs: list[str]) -> list[Node]:
    """``nodes`` with each spelled-out tanh-GELU replaced by one ``gelu`` node; the values
    only the replaced nodes used are dropped from ``values``."""
    m = _Match(nodes, values, outputs)
    gone: set[int] = set()
    fused: dict[int, Node] = {}
    for n in nodes:
        if n.op != "mul" or len(n.inputs) != 2 or id(n) in gone:
            continue
        hit = _gelu_input(m, n)
        if hit is None or any(id(f) in gone for f in hit[1]):
            continue
        x, covered = hit
        gone.update(id(f) for f in covered)
        source = "aten::" + "+".join(dict.fromkeys(f.source_op.removeprefix("aten::")
                                                  for f in [*covered, n]))
        fused[id(n)] = Node(n.name, "gelu", [x], list(n.outputs), {"approximate": "tanh"},
                            source_op=source, scope=n.scope)
    if not fused:
        return nodes
    kept = [fused.get(id(n), n) for n in nodes if id(n) not in gone]
    used = {i for n in kept for i in n.inputs} | set(outputs)
    for n in nodes:
        if id(n) in gone or id(n) in fused:
            for v in [*n.outputs, *n.inputs]:
                if v and v not in used:
                    values.pop(v, None)
    return kept

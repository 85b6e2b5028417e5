"""How each atom treats a sharded dimension: the data the C++ plan search consumes.

A rule reads a node's attrs and shapes and says, per output dim, which input dims it comes
from; which input dims are one logical dim (a contraction, a broadcast add); which dims the
op mixes (softmax, LayerNorm, max: never sharded without a gather); which it reduces with
a statistics all-reduce (BatchNorm); and how it treats partial sums (linear or not). An input
dim present in no output and not mixed is a linear contraction: sharding it leaves partial
sums. The table is keyed by atom like bwsk/catalogue, so each entry could later move into
that atom's catalogue entry as a ``sharding`` field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bwsk.ir import Graph, Node

NONE, UNARY, MULTILINEAR, ADDITIVE = 0, 1, 2, 3  # calm.hpp Linear

Src = tuple[int, int, int, int]  # (input slot, dim, part, parts): part/parts for split dims


@dataclass
class Spec:
    outs: list[list[list[Src]]]  # per output, per dim: where it comes from ([] = new dim)
    same: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    mix: list[tuple[int, int]] = field(default_factory=list)
    stat: list[tuple[int, int]] = field(default_factory=list)
    stat_bytes: int = 0
    linear: int = NONE


Rule = Callable[[Graph, Node], Spec]
RULES: dict[str, Rule] = {}


def rule(*atoms: str):
    def register(fn: Rule) -> Rule:
        for atom in atoms:
            RULES[atom] = fn
        return fn
    return register


def shape(g: Graph, name: str) -> tuple[int, ...]:
    value = g.values.get(name) if name else None
    if value is None or value.shape is None:
        return ()
    return tuple(int(d) if isinstance(d, (int, np.integer)) else 0 for d in value.shape)


def _in_shapes(g: Graph, n: Node) -> list[tuple[int, ...]]:
    return [shape(g, x) for x in n.inputs]


def _whole(slot: int, dim: int) -> Src:
    return (slot, dim, 0, 1)


def _broadcast(g: Graph, n: Node, linear: int) -> Spec:
    """Elementwise with numpy broadcasting: equal non-1 dims aligned from the right are one."""
    shapes = _in_shapes(g, n)
    out_rank = len(shape(g, n.outputs[0]))
    dims, same = [], []
    for k in range(out_rank):
        srcs = [(i, len(s) - out_rank + k) for i, s in enumerate(shapes)
                if n.inputs[i] and len(s) - out_rank + k >= 0 and s[len(s) - out_rank + k] != 1]
        same += [(srcs[0], s) for s in srcs[1:]]
        dims.append([_whole(*srcs[0])] if srcs else [])
    return Spec([dims], same=same, linear=linear)


@rule("add", "sub")
def _additive(g, n):
    return _broadcast(g, n, ADDITIVE)


@rule("mul")
def _mul(g, n):
    return _broadcast(g, n, MULTILINEAR)


@rule("div")
def _div(g, n):
    return _broadcast(g, n, UNARY if g.is_const(n.inputs[1]) else NONE)


@rule("neg", "cast", "identity")
def _linear_unary(g, n):
    return _broadcast(g, n, UNARY)


NONLINEAR_ELEMENTWISE = ("exp", "log", "tanh", "sigmoid", "relu", "gelu", "erf", "sqrt",
                         "reciprocal", "pow", "abs", "silu", "elu", "softplus", "leaky_relu",
                         "clip", "where", "max", "min", "equal", "less", "greater", "not", "and",
                         "or", "sin", "cos", "sign", "floor", "ceil", "less_or_equal",
                         "greater_or_equal", "dropout")
rule(*NONLINEAR_ELEMENTWISE)(lambda g, n: _broadcast(g, n, NONE))


@rule("matmul")
def _matmul(g, n):
    a, b = _in_shapes(g, n)[:2]
    if len(a) < 2 or len(b) < 2:
        return _opaque(g, n)
    rank = len(shape(g, n.outputs[0]))
    dims, same = [], [((0, len(a) - 1), (1, len(b) - 2))]
    for k in range(rank - 2):
        srcs = [(i, len(s) - rank + k) for i, s in ((0, a), (1, b))
                if len(s) - rank + k >= 0 and s[len(s) - rank + k] != 1]
        same += [(srcs[0], s) for s in srcs[1:]]
        dims.append([_whole(*srcs[0])] if srcs else [])
    dims += [[_whole(0, len(a) - 2)], [_whole(1, len(b) - 1)]]
    return Spec([dims], same=same, linear=MULTILINEAR)


@rule("gemm")
def _gemm(g, n):
    ka, kb = (0 if n.attrs.get("transA") else 1), (1 if n.attrs.get("transB") else 0)
    dims = [[_whole(0, 1 - ka)], [_whole(1, 1 - kb)]]
    same = [((0, ka), (1, kb))]
    if len(n.inputs) > 2 and n.inputs[2] and shape(g, n.inputs[2]):
        c = shape(g, n.inputs[2])
        if c[-1] != 1:
            same.append(((1, 1 - kb), (2, len(c) - 1)))
    return Spec([dims], same=same, linear=MULTILINEAR)


@rule("gather")
def _gather(g, n):
    """An embedding lookup: a sharded table row dim leaves partial sums (vocab-parallel)."""
    data, idx = _in_shapes(g, n)[:2]
    axis = n.attrs.get("axis", 0) % max(len(data), 1)
    dims = ([[_whole(0, d)] for d in range(axis)] + [[_whole(1, d)] for d in range(len(idx))]
            + [[_whole(0, d)] for d in range(axis + 1, len(data))])
    return Spec([dims], linear=MULTILINEAR)


def _same_shape(g, n, mixed_axes, linear=NONE) -> Spec:
    x = shape(g, n.inputs[0])
    return Spec([[[_whole(0, d)] for d in range(len(x))]],
                mix=[(0, d % len(x)) for d in mixed_axes if x], linear=linear)


@rule("softmax", "log_softmax", "cum_sum", "lp_normalization", "hardmax")
def _softmax(g, n):
    return _same_shape(g, n, [n.attrs.get("axis", -1)])


@rule("layernorm", "rmsnorm")
def _layernorm(g, n):
    x = shape(g, n.inputs[0])
    axis = n.attrs.get("axis", -1) % len(x)
    spec = _same_shape(g, n, range(axis, len(x)))
    for slot in (1, 2):
        w = shape(g, n.inputs[slot]) if slot < len(n.inputs) else ()
        for k in range(1, len(w) + 1):
            spec.same.append(((0, len(x) - k), (slot, len(w) - k)))
    return spec


@rule("batchnorm", "instancenorm", "groupnorm")
def _batchnorm(g, n):
    """Statistics over every dim but channels, all-reduced when that dim is sharded: a plan
    is for a training step, where BatchNorm uses batch statistics whatever ``training_mode``
    the graph was traced in. Running-statistics outputs follow their inputs per channel."""
    x = shape(g, n.inputs[0])
    channels = x[1] if len(x) > 1 else 1
    itemsize = np.dtype(g.values[n.inputs[0]].dtype).itemsize
    spec = _same_shape(g, n, [])
    spec.outs += [[[_whole(slot, 0)]] for slot in (3, 4)[: len(n.outputs) - 1]]
    spec.stat = [(0, d) for d in range(len(x)) if d != 1]
    spec.stat_bytes = 2 * channels * itemsize  # per-channel sum and sum of squares
    for slot in range(1, len(n.inputs)):
        if n.inputs[slot] and shape(g, n.inputs[slot]):
            spec.same.append(((0, 1), (slot, 0)))
    return spec


@rule("transpose")
def _transpose(g, n):
    perm = n.attrs.get("perm") or list(reversed(range(len(shape(g, n.inputs[0])))))
    return Spec([[[_whole(0, p)] for p in perm]], linear=UNARY)


@rule("reshape", "squeeze", "unsqueeze", "flatten")
def _reshape(g, n):
    """Match dims by running products; a split dim passes its sharding to its major part."""
    src, dst = shape(g, n.inputs[0]), shape(g, n.outputs[0])
    dims: list[list[Src]] = [[] for _ in dst]
    i = j = 0
    while i < len(src) or j < len(dst):
        gi, gj = [i] if i < len(src) else [], [j] if j < len(dst) else []
        pi = src[i] if gi else 1
        pj = dst[j] if gj else 1
        i, j = i + bool(gi), j + bool(gj)
        while pi != pj:
            if pi < pj and i < len(src):
                pi *= src[i]
                gi.append(i)
                i += 1
            elif j < len(dst):
                pj *= dst[j]
                gj.append(j)
                j += 1
            else:
                return _opaque(g, n)
        ins = [d for d in gi if src[d] != 1]
        outs = [d for d in gj if dst[d] != 1]
        if len(outs) == 1:
            dims[outs[0]] = [_whole(0, d) for d in ins]
        elif len(ins) == 1 and outs:
            for k, d in enumerate(outs):
                dims[d] = [(0, ins[0], k, len(outs))]
    return Spec([dims], linear=UNARY)


@rule("expand")
def _expand(g, n):
    src, dst = shape(g, n.inputs[0]), shape(g, n.outputs[0])
    off = len(dst) - len(src)
    dims = [[_whole(0, d - off)] if d >= off and src[d - off] == dst[d] and dst[d] != 1 else []
            for d in range(len(dst))]
    return Spec([dims], linear=UNARY)


@rule("split")
def _split(g, n):
    """Each piece keeps the split dim's sharding: valid when the layout holds whole pieces
    per shard (apply() permutes fused QKV weights to make it so)."""
    x = shape(g, n.inputs[0])
    return Spec([[[_whole(0, d)] for d in range(len(x))] for _ in n.outputs], linear=UNARY)


@rule("concat")
def _concat(g, n):
    x = shape(g, n.inputs[0])
    axis = n.attrs.get("axis", 0) % len(x)
    same = [((0, d), (i, d)) for i in range(1, len(n.inputs)) for d in range(len(x)) if d != axis]
    return Spec([[[_whole(0, d)] for d in range(len(x))]], same=same,
                mix=[(i, axis) for i in range(len(n.inputs))], linear=ADDITIVE)


@rule("slice", "pad")
def _slice(g, n):
    """Dims whose size changes are cut or padded: not local to a contiguous shard."""
    x, y = shape(g, n.inputs[0]), shape(g, n.outputs[0])
    mix = [d for d in range(len(x)) if len(y) == len(x) and x[d] != y[d]]
    return _same_shape(g, n, mix, UNARY) if len(x) == len(y) else _opaque(g, n)


def _reduce(g, n, linear: int) -> Spec:
    x = shape(g, n.inputs[0])
    axes = {a % len(x) for a in (n.attrs.get("axes") or range(len(x)))} if x else set()
    keep = bool(n.attrs.get("keepdims", 1))
    dims = [[] if d in axes else [_whole(0, d)] for d in range(len(x)) if keep or d not in axes]
    mix = [] if linear else [(0, d) for d in axes]
    return Spec([dims], mix=mix, linear=linear)


rule("reduce_sum", "reduce_mean")(lambda g, n: _reduce(g, n, UNARY))
rule("reduce_max", "reduce_min", "reduce_prod", "reduce_l2", "reduce_log_sum_exp",
     "arg_max", "arg_min")(lambda g, n: _reduce(g, n, NONE))


def _opaque(g, n) -> Spec:
    """Unknown to the planner: every input dim mixed, every output dim new (always safe)."""
    mix = [(i, d) for i, x in enumerate(n.inputs) for d in range(len(shape(g, x)))]
    return Spec([[[] for _ in shape(g, o)] for o in n.outputs], mix=mix)


def spec_of(g: Graph, n: Node) -> Spec:
    return RULES.get(n.op, _opaque)(g, n)

"""Residual connections y = x + F(x): injective when F is a contraction (Banach), which the
weights can prove through a product of Lipschitz bounds (spectral norms for matmuls). The
inverse is the fixed-point iteration x <- y - F(x)."""

from __future__ import annotations

import numpy as np

from bwsk.catalogue import ALONE, Judgement, run_node
from bwsk.catalogue.spectral import norm_bound, norm_floor
from bwsk.ir import Graph, Node

# Global Lipschitz constants of 1-Lipschitz-or-better elementwise and routing ops.
_UNIT = {
    "tanh": 1.0,
    "sigmoid": 0.25,
    "relu": 1.0,
    "identity": 1.0,
    "neg": 1.0,
    "abs": 1.0,
    "sin": 1.0,
    "cos": 1.0,
    "atan": 1.0,
    "softsign": 1.0,
    "softplus": 1.0,
    "dropout": 1.0,
    "reshape": 1.0,
    "transpose": 1.0,
    "flatten": 1.0,
    "squeeze": 1.0,
    "unsqueeze": 1.0,
    "erf": 2 / np.sqrt(np.pi),
    "gelu": 1.13,  # max slope 1.12890 (erf) and 1.12899 (tanh approximation)
    "swish": 1.1,
    "slice": 1.0,
    "split": 1.0,
    "mish": 1.09,
    "leaky_relu": 1.0,  # times max(|alpha|, 1)
    "clip": 1.0,  # with constant bounds (variable bounds are further variable inputs)
    "softmax": 1.0,  # its Jacobian diag(p) - p p^T has spectral norm <= 1/2
}
MAX_ITER, TOL = 500, 1e-7


def branch(
    graph: Graph, x: str, r: str, index: dict[int, int], variable: set[str]
) -> list[int] | None:
    """Node indices computing ``r`` from ``x`` and constants only, in order; else None.
    ``index`` maps id(node) to its position and ``variable`` holds the values that depend on
    a graph input (both built once per graph): a variable value computed before x cannot
    depend on x, so the walk stops there instead of crossing the whole model."""
    start = index[id(graph.producer[x])] if x in graph.producer else -1
    members, stack = set(), [r]
    while stack:
        v = stack.pop()
        if v == x or graph.is_const(v):
            continue
        node = graph.producer.get(v)
        if node is None:
            return None
        k = index[id(node)]
        if k < start and v in variable:
            return None
        if k not in members:
            members.add(k)
            stack.extend(i for i in node.inputs if i)
    return sorted(members)


def _coverage(attrs: dict) -> int:
    """How many max-pool windows can hold one element: |max a - max b| <= max |a - b| per
    window, so the l2 slope is at most the square root of this."""
    kernel = list(attrs["kernel_shape"])
    strides = list(attrs.get("strides") or [1] * len(kernel))
    dilations = list(attrs.get("dilations") or [1] * len(kernel))
    count = 1
    for k, s, d in zip(kernel, strides, dilations, strict=True):
        count *= min(int(k), -(-((int(k) - 1) * int(d) + 1) // int(s)))
    return count


def _node_bound(graph: Graph, node: Node, lips: dict, norm) -> float | None:
    """Lip(node) times its inputs' bounds, or None when the op has none; ``norm`` bounds a
    weight's spectral norm (any stand-in when only asking whether a bound exists)."""
    var = [node.inputs[i] for i in graph.variable_inputs(node)]
    ins = [lips.get(v, np.inf) for v in var]
    if node.op in _UNIT and len(var) == 1:
        alpha = abs(float(node.attrs.get("alpha", 1.0))) if node.op == "leaky_relu" else 1.0
        return _UNIT[node.op] * max(alpha, 1.0) * ins[0]
    if node.op == "hard_sigmoid" and len(var) == 1:
        return abs(float(node.attrs.get("alpha", 0.2))) * ins[0]
    if node.op == "max_pool" and len(var) == 1 and node.attrs.get("kernel_shape"):
        return np.sqrt(_coverage(node.attrs)) * ins[0]
    if node.op in ("add", "sub", "mul", "div", "sum") and _broadcasts(graph, node, var):
        return None  # a variable copied k times along a new axis has slope sqrt(k)
    if node.op in ("add", "sub", "concat", "sum"):
        return float(sum(ins))
    consts = [graph.values[i].const for i in node.inputs if i and graph.is_const(i)]
    scaled = (node.op == "mul" and len(var) == 1) or (node.op == "div" and var == node.inputs[:1])
    if scaled and consts:  # x * c or x / c; c / x is no contraction
        c = np.abs(np.asarray(consts[0], np.float64))
        return float((c.max() if node.op == "mul" else 1 / c.min()) * ins[0])
    factor = len(var) == 1 and (node.op == "matmul" or (node.op == "gemm"
                                                        and var[0] in node.inputs[:2]))
    if factor and consts and consts[0].ndim == 2:  # a variable gemm C is scaled by beta only
        alpha = abs(float(node.attrs.get("alpha", 1.0)))
        return alpha * norm(consts[0]) * ins[0]
    return None


def _broadcasts(graph: Graph, node: Node, var: list[str]) -> bool:
    """Whether the output has more elements than a variable input (or a shape is unknown)."""
    def numel(name: str) -> int | None:
        shape = graph.values[name].shape if name in graph.values else None
        ok = shape is not None and all(isinstance(d, int) for d in shape)
        return int(np.prod(shape, dtype=np.int64)) if ok else None

    out = numel(node.outputs[0])
    return out is None or any(numel(v) is None or numel(v) < out for v in var)


_NORMS = ("layernorm", "rmsnorm", "groupnorm", "instancenorm", "lp_normalization")


def _unbounded(graph: Graph, node: Node) -> str:
    """Why ``node`` has no Lipschitz bound here: what a user would have to change."""
    if node.op in _NORMS:
        return (f"{node.op} {node.name} divides by its input's spread, so its slope grows "
                "like 1/sqrt(eps) near constant vectors")
    if len(graph.variable_inputs(node)) > 1 and node.op not in ("add", "sub", "concat", "sum"):
        return (f"{node.op} {node.name} multiplies two variables (as attention does), which "
                "is not globally Lipschitz")
    var = [node.inputs[i] for i in graph.variable_inputs(node)]
    if node.op in ("add", "sub", "mul", "div", "sum") and _broadcasts(graph, node, var):
        return f"{node.op} {node.name} broadcasts its input to more elements (or shapes unknown)"
    return f"no Lipschitz bound known for {node.op} {node.name}"


def lipschitz(graph: Graph, x: str, members: list[int]) -> tuple[float | None, str]:
    """An upper bound on Lip(F) for the branch, or None and why: every kind of op that has
    no bound (a branch can hold a norm and attention both). Whether an op has a bound does
    not depend on its weights, so spectral norms are read only when every op has one (a
    transformer's branches hold a layer norm: no weight needs reading). Lower bounds on the
    norms come first: a product already >= 1 is returned as is, with why = "at least"; only
    a contraction in sight pays for certified norms."""
    _, why = _propagate(graph, x, members, lambda w: 1.0)
    if why:
        return None, "; ".join(why.values())
    inexact = []

    def floor(w):
        value, exact = norm_floor(w)
        inexact.append(not exact)
        return value

    out, _ = _propagate(graph, x, members, floor)
    if not (np.isfinite(out) and out >= 1):
        out, _ = _propagate(graph, x, members, norm_bound)
    elif any(inexact):
        return out, "at least"
    return (out, "") if np.isfinite(out) else (None, "")


def _propagate(graph: Graph, x: str, members: list[int], norm) -> tuple[float, dict]:
    """The bound at the branch's output (inf when unbounded) and, per op, why it has none."""
    lips, why = {x: 1.0}, {}
    for k in members:
        node = graph.nodes[k]
        bound = _node_bound(graph, node, lips, norm)
        if bound is None or not np.isfinite(bound):
            if bound is None:
                why.setdefault(node.op, _unbounded(graph, node))
            bound = np.inf
        for o in node.outputs:
            if o:
                lips[o] = bound
    out = lips.get(graph.nodes[members[-1]].outputs[0], np.inf) if members else np.inf
    return float(out), why


def upgrade(graph: Graph, judgements: list[Judgement], weights: bool) -> dict[int, list[int]]:
    """Marks residual adds whose branch is a proved contraction as invertible in x; returns,
    per residual add, its branch's nodes (the residual block x -> x + f(x) is judged whole)."""
    found: dict[int, list[int]] = {}
    index = {id(n): k for k, n in enumerate(graph.nodes)}
    variable = set(graph.inputs)
    for node in graph.nodes:
        if any(x in variable for x in node.inputs):
            variable.update(o for o in node.outputs if o)
    for k, node in enumerate(graph.nodes):
        if node.op != "add" or len(graph.variable_inputs(node)) != 2:
            continue
        for slot in (0, 1):
            x, r = node.inputs[slot], node.inputs[1 - slot]
            members = branch(graph, x, r, index, variable)
            if not members:
                continue
            found[k] = members
            bound, why = lipschitz(graph, x, members) if weights else (None, "")
            j = judgements[k]
            if bound is None or bound >= 1:
                j.conditions.append(
                    f"Lip(f) < 1 for the residual branch {r} ({_why_not(weights, bound, why)})"
                )
                continue
            j.recover[slot] = ALONE
            j.conditions.append(f"residual branch is a contraction: Lip(f) <= {bound:.3g} < 1")
            j.invert = _fixed_point(graph, x, r, members, j.invert)
            break
    return found


def _why_not(weights: bool, bound: float | None, why: str) -> str:
    if not weights:
        return "weights not read"
    if bound is None:
        return f"no bound: {why}"
    return f"bound {why + ' ' if why else ''}{bound:.3g}, not < 1"


def _fixed_point(graph: Graph, x: str, r: str, members: list[int], plain):
    def invert(slot, ins, outs):
        if ins[1 - slot] is not None:  # the branch value is known: plain subtraction
            return plain(slot, ins, outs)
        y = np.asarray(outs[0], np.float64)
        guess = y.copy()
        for _ in range(MAX_ITER):
            env = {x: guess.astype(outs[0].dtype)}
            for k in members:
                node = graph.nodes[k]
                args = [
                    env.get(i, graph.values[i].const if graph.is_const(i) else None) if i else None
                    for i in node.inputs
                ]
                env.update(zip(node.outputs, run_node(graph, node, args), strict=False))
            nxt = y - np.asarray(env[r], np.float64)
            if np.max(np.abs(nxt - guess), initial=0.0) < TOL:
                guess = nxt
                break
            guess = nxt
        return guess.astype(outs[0].dtype)

    return invert

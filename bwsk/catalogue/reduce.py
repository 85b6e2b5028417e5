"""Ops that summarise many values: reductions, softmax, normalizations, pooling, arg-ops.
Their collisions are exact symmetries (swap summands, shift before softmax/LayerNorm,
rescale before Lp-normalization, lower a non-maximal element)."""

from __future__ import annotations

import numpy as np

from bwsk.catalogue.base import Ctx, Judgement, collision, entry, gray, injective, replace
from bwsk.catalogue.run import run_node


def _axes(ctx: Ctx, rank: int) -> list[int] | None:
    axes = ctx.attr("axes")
    if axes is None and ctx.present(1):
        c = ctx.const(1)
        if c is None:
            return None
        axes = c.tolist()
    if axes is None or len(axes) == 0:
        return [] if int(ctx.attr("noop_with_empty_axes", 0)) else list(range(rank))
    return sorted(int(a) % rank for a in np.ravel(axes))


def _swap(slot: int, axis: int):
    def collide(ins, rng):
        b = np.array(ins[slot], copy=True)
        first = (0,) * b.ndim
        second = tuple(1 if d == axis else 0 for d in range(b.ndim))
        b[first], b[second] = b[second], b[first]
        return ins, replace(ins, slot, b)

    return collide


@entry(
    "reduce_sum reduce_mean reduce_max reduce_min reduce_prod reduce_l1 reduce_l2 "
    "reduce_log_sum reduce_log_sum_exp reduce_sum_square",
    "1..2",
    "a symmetric function of each group: swapping two summands keeps it (sum over n: n-1)",
)
def _reduce(ctx: Ctx) -> Judgement:
    shape = ctx.shape(0)
    if shape is None or ctx.var_slots != [0]:
        return gray(
            ctx, f"{ctx.node.op}: unknown rank or variable axes", "constant axes, known rank"
        )
    axes = _axes(ctx, len(shape))
    if axes is None:
        return gray(ctx, f"{ctx.node.op} with variable axes", "constant axes")
    wide = [a for a in axes if shape[a] != 1]
    if not wide:
        return injective(
            ctx,
            "reduction over axes of size 1 is a reshape",
            lambda s, ins, outs: np.reshape(
                outs[0],
                ins[0].shape
                if ins[0] is not None
                else tuple(d if isinstance(d, int) else -1 for d in shape),
            ),
            bijective=True,
        )
    n_in, n_out = ctx.numel(0), ctx.numel(0, output=True)
    erased = (
        n_in - n_out if n_in and n_out and ctx.node.op in ("reduce_sum", "reduce_mean") else None
    )
    return collision(
        ctx, f"{ctx.node.op} over axes {wide} is symmetric in each group", _swap(0, wide[0]), erased
    )


def _shift_all(slot: int, by: float = 1.0, scale: float = 1.0):
    def collide(ins, rng):
        x = np.asarray(ins[slot])
        return ins, replace(ins, slot, (x * scale + by).astype(x.dtype))

    return collide


def _groups(ctx: Ctx, axis: int) -> int | None:
    shape = ctx.shape(0)
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return int(np.prod(shape[: axis % len(shape)], dtype=np.int64)) if shape else 1


@entry(
    "softmax log_softmax",
    "1",
    "invariant to adding a constant along the axis (erases 1 per vector)",
)
def _softmax(ctx: Ctx) -> Judgement:
    shape, axis = ctx.shape(0), int(ctx.attr("axis", -1))
    if shape is not None and shape and shape[axis] == 1 and ctx.node.op == "softmax":
        return collision(ctx, "softmax over one element is constant 1", _shift_all(0))
    groups = None if shape is None else ctx.numel(0) and ctx.numel(0) // int(shape[axis])
    return collision(
        ctx, f"{ctx.node.op} is shift-invariant along axis {axis}", _shift_all(0), groups
    )


@entry(
    "layernorm group_normalization groupnorm instancenorm mean_variance_normalization",
    "1..3",
    "shift-invariant: x and x + c normalize alike (erases 1 per normalized vector)",
)
def _norm(ctx: Ctx) -> Judgement:
    if ctx.var_slots != [0]:
        return gray(ctx, f"{ctx.node.op} with variable scale/bias", "constant scale and bias")
    erased = None
    if ctx.node.op == "layernorm":
        erased = _groups(ctx, int(ctx.attr("axis", -1)))
    return collision(
        ctx, f"{ctx.node.op} subtracts the mean: x and x + 1 collide", _shift_all(0), erased
    )


@entry("lp_normalization", "1", "scale-invariant: x and 2x normalize alike")
def _lpnorm(ctx: Ctx) -> Judgement:
    return collision(
        ctx,
        "Lp-normalization divides by the norm: x and 2x collide",
        _shift_all(0, by=0.0, scale=2.0),
        _groups(ctx, int(ctx.attr("axis", -1))),
    )


@entry(
    "rmsnorm",
    "2",
    "x / sqrt(mean(x^2) + eps) is radially increasing for eps > 0 (S); "
    "eps = 0 makes it scale-invariant (K)",
)
def _rmsnorm(ctx: Ctx) -> Judgement:
    eps, axis = float(ctx.attr("epsilon", 1e-5)), int(ctx.attr("axis", -1))
    scale = ctx.const(1)
    if ctx.var_slots != [0] or scale is None:
        return gray(ctx, "rmsnorm with a variable scale", "constant scale without zeros")
    if eps <= 0:
        return collision(ctx, "rmsnorm without eps is scale-invariant", _shift_all(0, 0.0, 2.0))
    if not ctx.weights:
        return gray(ctx, "rmsnorm scale not read (weights=False)", "scale has no zeros")
    if np.any(scale == 0):
        return gray(ctx, "rmsnorm scale has zeros", "scale has no zeros")

    def inv(s, ins, outs):
        u = np.asarray(outs[0], np.float64) / scale
        red = tuple(range(axis % u.ndim, u.ndim))
        mu = np.mean(u * u, axis=red, keepdims=True)
        ms = eps * mu / (1 - mu)
        return (u * np.sqrt(ms + eps)).astype(outs[0].dtype)

    return injective(
        ctx,
        f"rmsnorm with eps={eps:g} > 0 is injective (radially increasing)",
        inv,
        well_conditioned=False,
    )


@entry(
    "batchnorm", "5", "inference batchnorm is a per-channel affine map: S iff scale has no zeros"
)
def _batchnorm(ctx: Ctx) -> Judgement:
    if int(ctx.attr("training_mode", 0)):
        return collision(ctx, "batchnorm in training mode subtracts the batch mean", _shift_all(0))
    if ctx.var_slots != [0]:
        return gray(ctx, "batchnorm with variable statistics", "BatchNorm in eval mode")
    scale, bias, mean, var = (np.asarray(ctx.const(i), np.float64) for i in range(1, 5))
    eps = float(ctx.attr("epsilon", 1e-5))
    if np.any(scale == 0):
        return gray(ctx, "batchnorm scale has zeros", "scale has no zeros")

    def inv(s, ins, outs):
        y = np.asarray(outs[0], np.float64)
        shp = (1, -1) + (1,) * (y.ndim - 2)
        k = (scale / np.sqrt(var + eps)).reshape(shp)
        return ((y - bias.reshape(shp)) / k + mean.reshape(shp)).astype(outs[0].dtype)

    return injective(
        ctx, "eval-mode batchnorm is affine with nonzero scale", inv, bijective=True, needs=[0]
    )


def search_pair(ctx: Ctx, ins, slot: int, positions, delta: float):
    """Lower one element (first candidate that leaves every output unchanged)."""
    base = run_node(ctx.graph, ctx.node, ins)
    x = np.asarray(ins[slot])
    for pos in positions:
        b = x.copy()
        b.reshape(-1)[pos] -= delta
        out = run_node(ctx.graph, ctx.node, replace(ins, slot, b))
        if all(np.array_equal(p, q) for p, q in zip(base, out, strict=False)):
            return ins, replace(ins, slot, b)
    return ins, ins


def _lower_nonmax(ctx: Ctx, slot: int = 0):
    def collide(ins, rng):
        x = np.asarray(ins[slot])
        order = np.argsort(x.reshape(-1), kind="stable")[: min(16, x.size)]
        return search_pair(ctx, ins, slot, order.tolist(), 1.0)

    return collide


@entry(
    "max_pool global_max_pool max_roi_pool",
    "1..2",
    "only the maximum of each window survives (2x2: 3 per window)",
)
def _maxpool(ctx: Ctx) -> Judgement:
    kernel = ctx.attr("kernel_shape")
    n_in, n_out = ctx.numel(0), ctx.numel(0, output=True)
    if (
        ctx.node.op == "max_pool"
        and kernel is not None
        and all(k == 1 for k in kernel)
        and all(s == 1 for s in ctx.attr("strides", [1] * len(kernel)))
        and n_in == n_out
    ):
        return injective(
            ctx, "1x1 max pool is the identity", lambda s, ins, outs: outs[0], bijective=True
        )
    strides = ctx.attr("strides")
    disjoint = (
        kernel is not None and list(strides or []) == list(kernel) and not any(ctx.attr("pads", []))
    )
    erased = n_in - n_out if disjoint and n_in and n_out else None
    return collision(
        ctx,
        f"{ctx.node.op}: lowering a non-maximal element keeps the output",
        _lower_nonmax(ctx),
        erased,
    )


@entry("arg_max arg_min top_k", "1..2", "only the position/values of the extremes survive")
def _argmax(ctx: Ctx) -> Judgement:
    return collision(
        ctx,
        f"{ctx.node.op}: moving a non-extreme element keeps the result",
        _lower_nonmax(ctx) if ctx.node.op != "arg_min" else _raise_nonmin(ctx),
    )


def _raise_nonmin(ctx: Ctx):
    def collide(ins, rng):
        x = np.asarray(ins[0])
        order = np.argsort(-x.reshape(-1), kind="stable")[: min(16, x.size)]
        return search_pair(ctx, ins, 0, order.tolist(), -1.0)

    return collide


@entry("cum_sum", "2", "inclusive cumsum is triangular with unit diagonal (inverse: differences)")
def _cumsum(ctx: Ctx) -> Judgement:
    axis_c = ctx.const(1)
    if ctx.var_slots != [0] or axis_c is None:
        return gray(ctx, "cumsum with a variable axis", "constant axis")
    axis, rev = int(np.ravel(axis_c)[0]), int(ctx.attr("reverse", 0))
    if int(ctx.attr("exclusive", 0)):

        def collide(ins, rng):
            b = np.array(ins[0], copy=True)
            idx = [slice(None)] * b.ndim
            idx[axis] = 0 if rev else -1
            b[tuple(idx)] += 1
            return ins, replace(ins, 0, b)

        return collision(ctx, "exclusive cumsum never sees the last element", collide)

    def inv(s, ins, outs):
        y = np.flip(outs[0], axis) if rev else outs[0]
        x = np.diff(y, axis=axis, prepend=np.zeros_like(np.take(y, [0], axis=axis)))
        return np.flip(x, axis) if rev else x

    return injective(ctx, "inclusive cumsum is invertible (differences)", inv, bijective=True)


@entry("cum_prod", "2", "a zero absorbs every later factor")
def _cumprod(ctx: Ctx) -> Judgement:
    def collide(ins, rng):
        a = np.array(ins[0], copy=True)
        a.reshape(-1)[0] = 0
        b = a.copy()
        b.reshape(-1)[-1] += 1
        return replace(ins, 0, a), replace(ins, 0, b)

    return collision(ctx, "cumprod: after a zero the factors are lost", collide)


@entry("det", "1", "det(A) is one number for n^2 entries: scale a row by 2 and another by 1/2")
def _det(ctx: Ctx) -> Judgement:
    def collide(ins, rng):
        b = np.array(ins[0], copy=True)
        b[..., 0, :] *= 2
        b[..., 1, :] /= 2
        return ins, replace(ins, 0, b)

    return collision(ctx, "det is invariant under row scalings with product 1", collide)

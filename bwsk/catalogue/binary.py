"""Elementwise maps of several tensors. With one variable argument they are unary maps
parameterised by constants; with two variable arguments they usually erase (add: n dims)."""

from __future__ import annotations

import numpy as np

from bwsk.catalogue.base import (
    GIVEN_OTHERS,
    NO,
    Ctx,
    Judgement,
    collision,
    entry,
    flags,
    gray,
    injective,
    replace,
    set_first,
    unbroadcast,
)


def _shape_of(ctx: Ctx, slot: int, like: np.ndarray) -> tuple:
    shape = ctx.shape(slot)
    if shape is None or not all(isinstance(d, int) for d in shape):
        return like.shape
    return shape


def _others(ins, slot):
    return [x for i, x in enumerate(ins) if i != slot and x is not None]


def _nonzero(ctx: Ctx, slot: int) -> bool:
    """Provably nonzero over the reals: a constant without zeros, or exp/sigmoid/softplus."""
    c = ctx.const(slot)
    if c is not None:
        return bool(np.all(c != 0))
    producer = ctx.graph.producer.get(ctx.node.inputs[slot])
    return producer is not None and producer.op in ("exp", "sigmoid", "softplus")


def _two_var_pair(ctx: Ctx, why: str, fa, fb, erased=None) -> Judgement:
    """Collision that rewrites the first two variable slots by (fa, fb)."""
    i, j = ctx.var_slots[:2]

    def collide(ins, rng):
        return ins, replace(replace(ins, i, fa(ins[i], ins[j])), j, fb(ins[i], ins[j]))

    return collision(ctx, why, collide, erased, recover=flags(ctx, GIVEN_OTHERS))


@entry("add sub sum", "2+", "x + c is S (inverse y - c); x + y of variables erases n dims")
def _add(ctx: Ctx) -> Judgement:
    op = ctx.node.op

    def inv(slot, ins, outs):
        rest = _others(ins, slot)
        if op == "sub":
            x = outs[0] + ins[1] if slot == 0 else ins[0] - outs[0]
        else:
            x = outs[0] - sum(rest) if rest else outs[0]
        return unbroadcast(x, _shape_of(ctx, slot, np.asarray(x))).astype(np.asarray(outs[0]).dtype)

    if len(ctx.var_slots) <= 1:
        return injective(
            ctx, f"{op} with constants is a translation", inv, how=GIVEN_OTHERS, bijective=True
        )
    sign = 1.0 if op == "sub" else -1.0
    n = ctx.numel(0, output=True)
    j = _two_var_pair(
        ctx,
        f"{op} of two variables: shift one by d and the other by {sign:+g}d",
        lambda a, b: a + 1.0,
        lambda a, b: b + sign,
        n,
    )
    j.invert = inv
    return j


@entry("mean", "variadic", "the mean of several variables erases n dims like add")
def _mean(ctx: Ctx) -> Judgement:
    if len(ctx.var_slots) <= 1:
        k = len([x for x in ctx.node.inputs if x])

        def inv(slot, ins, outs):
            return unbroadcast(outs[0] * k - sum(_others(ins, slot)), _shape_of(ctx, slot, outs[0]))

        return injective(ctx, "mean with constants is affine", inv, how=GIVEN_OTHERS)
    return _two_var_pair(
        ctx,
        "mean of two variables: move mass between them",
        lambda a, b: a + 1.0,
        lambda a, b: b - 1.0,
        ctx.numel(0, output=True),
    )


def _zero_factor(slot: int):
    """x * 0 = (x + 1) * 0: only ``slot`` differs, the other factor is 0 in both."""

    def collide(ins, rng):
        other = replace(ins, 1 - slot, np.zeros_like(ins[1 - slot]))
        return other, replace(other, slot, ins[slot] + np.ones_like(ins[slot]))

    return collide


@entry("mul div", "2", "x * c is S iff c has no zeros; x * y of variables erases")
def _mul(ctx: Ctx) -> Judgement:
    op, var = ctx.node.op, ctx.var_slots

    def inv(slot, ins, outs):
        if op == "div" and slot == 1:
            x = ins[0] / outs[0]
        elif op == "div":
            x = outs[0] * ins[1]
        else:
            x = outs[0] / ins[1 - slot]
        return unbroadcast(x, _shape_of(ctx, slot, np.asarray(x))).astype(np.asarray(outs[0]).dtype)

    if len(var) == 2:
        recover = [
            GIVEN_OTHERS if _nonzero(ctx, 1 - s) or (op == "div" and s == 0) else NO
            for s in range(2)
        ]
        if op == "div":
            j = _two_var_pair(ctx, "x / y = 2x / 2y", lambda a, b: a * 2, lambda a, b: b * 2)
        else:
            j = _two_var_pair(ctx, "x * y = 2x * y/2", lambda a, b: a * 2, lambda a, b: b / 2)
            j.pinned = [(s, "x * 0 = (x + 1) * 0", _zero_factor(s)) for s in range(2)]
        j.recover, j.invert = recover, inv
        return j
    if not var:
        return injective(ctx, "no variable input", None)
    slot, other = var[0], 1 - var[0]
    c = ctx.const(other)
    if op == "div" and slot == 1:
        if np.any(c == 0):
            return gray(ctx, "0 / x", "numerator has no zeros")
        return injective(ctx, "c / x is injective on x != 0 for c without zeros", inv)
    if np.all(c != 0):
        return injective(ctx, f"{op} by a constant without zeros", inv, bijective=True)
    zero = np.flatnonzero(
        np.broadcast_to(
            c == 0,
            np.broadcast_shapes(
                c.shape,
                (ctx.shape(slot) and tuple(d if isinstance(d, int) else 1 for d in ctx.shape(slot)))
                or (),
            ),
        )
    )
    return collision(
        ctx,
        f"{op} by a constant with {zero.size} zero entries",
        lambda ins, rng: (
            set_first(ins, slot, 1.0, 2.0) if np.ravel(c)[0] == 0 else _zero_pair(ins, slot, c)
        ),
        None,
    )


def _zero_pair(ins, slot, c):
    x = np.array(ins[slot], copy=True)
    mask = np.broadcast_to(c == 0, np.broadcast_shapes(c.shape, x.shape))
    idx = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
    idx = tuple(i if d > 1 else 0 for i, d in zip(idx[len(idx) - x.ndim :], x.shape, strict=False))
    b = x.copy()
    b[idx] += 1.0
    return ins, replace(ins, slot, b)


@entry("pow", "2", "x^c: S for odd integer c or on x > 0 for c != 0; even c folds x and -x")
def _pow(ctx: Ctx) -> Judgement:
    var = ctx.var_slots
    if var == [0] and ctx.const(1) is not None:
        c = np.asarray(ctx.const(1), np.float64)
        if np.all(c == 0):
            return collision(ctx, "x^0 = 1", lambda ins, rng: set_first(ins, 0, 1.0, 2.0))
        if np.all((c == np.round(c)) & (np.round(c) % 2 == 0)):
            return collision(
                ctx, "even power: x^c = (-x)^c", lambda ins, rng: set_first(ins, 0, 1.0, -1.0)
            )
        if np.all(c != 0):
            odd = np.all((c == np.round(c)) & (np.abs(np.round(c)) % 2 == 1))

            def inv(s, ins, outs):
                y = np.asarray(outs[0])
                return (np.sign(y) * np.abs(y) ** (1 / c)).astype(y.dtype)

            return injective(
                ctx,
                "odd power" if odd else "power on x > 0 is strictly monotone",
                inv,
                bijective=bool(odd),
            )
        return gray(ctx, "pow with mixed exponents", "exponent has no zeros")
    if var == [1] and ctx.const(0) is not None:
        b = np.asarray(ctx.const(0), np.float64)
        if np.all((b > 0) & (b != 1)):
            return injective(
                ctx,
                "c^x with c > 0, c != 1 is strictly monotone",
                lambda s, ins, outs: (np.log(outs[0]) / np.log(b)).astype(outs[0].dtype),
            )
        return gray(ctx, "c^x", "base > 0 and != 1")
    return gray(ctx, "pow of two variables", "one argument constant")


_FOLDS = {  # op -> (collision of the variable slot with a constant partner, reason)
    "max": (-1e6, -2e6, "max with a constant ignores smaller values"),
    "min": (1e6, 2e6, "min with a constant ignores larger values"),
}


@entry("max min", "variadic", "max/min discard the losing argument")
def _maxmin(ctx: Ctx) -> Judgement:
    var = ctx.var_slots
    if len(var) == 1 and len([x for x in ctx.node.inputs if x]) == 1:
        return injective(
            ctx,
            f"{ctx.node.op} of one tensor is the identity",
            lambda s, ins, outs: outs[0],
            bijective=True,
        )
    va, vb, why = _FOLDS[ctx.node.op]
    if len(var) == 1:
        return collision(ctx, why, lambda ins, rng: set_first(ins, var[0], va, vb))
    i, j = var[:2]
    win, lose = (np.maximum, -1.0) if ctx.node.op == "max" else (np.minimum, 1.0)

    def collide(ins, rng):
        a = replace(ins, i, win(ins[i], ins[j]) - lose)
        return a, replace(a, j, ins[j] + lose)

    return collision(
        ctx,
        f"{ctx.node.op}(x, y): moving the loser keeps the result",
        collide,
        recover=flags(ctx, NO),
    )


@entry("p_relu", "2", "leaky relu with per-channel slopes: S iff every slope > 0")
def _prelu(ctx: Ctx) -> Judgement:
    slope = ctx.const(1)
    if ctx.var_slots != [0] or slope is None:
        return gray(ctx, "prelu with a variable slope", "constant slope > 0")
    if not ctx.weights:
        return gray(ctx, "prelu slopes not read (weights=False)", "every slope > 0")
    if np.all(slope > 0):
        return injective(
            ctx,
            f"prelu slopes are positive (min {float(slope.min()):g})",
            lambda s, ins, outs: np.where(outs[0] >= 0, outs[0], outs[0] / slope),
            bijective=True,
        )
    return collision(ctx, "prelu has a slope <= 0", lambda ins, rng: _prelu_pair(ins, slope))


def _prelu_pair(ins, slope):
    """A zero slope sends every negative to 0; a negative slope s folds 1 onto 1/s."""
    x = np.array(ins[0], copy=True)
    s = np.broadcast_to(slope, x.shape)
    idx = np.unravel_index(int(np.flatnonzero(s <= 0)[0]), x.shape)
    a, b = x.copy(), x.copy()
    if s[idx] == 0:
        a[idx], b[idx] = -1.0, -2.0
    else:
        a[idx], b[idx] = 1.0, 1.0 / s[idx]
    return replace(ins, 0, a), replace(ins, 0, b)


@entry(
    "equal greater less greater_or_equal less_or_equal and or bit_shift mod bitwise_and bitwise_or",
    "2",
    "a boolean/bit-dropping result: two inputs on the same side collide",
)
def _compare(ctx: Ctx) -> Judgement:
    var = ctx.var_slots
    if not var:
        return injective(ctx, "no variable input", None)
    slot = var[0]
    return collision(
        ctx,
        f"{ctx.node.op} cannot tell apart nearby inputs",
        lambda ins, rng: _compare_pair(ctx, ins, slot),
    )


def _compare_pair(ctx, ins, slot):
    from bwsk.catalogue.run import run_node

    x = np.asarray(ins[slot])
    base = run_node(ctx.graph, ctx.node, ins)
    for delta in (1e6, -1e6, 0.25, 1, 2, 4, 1 << 20):
        b = x.copy()
        try:
            b.reshape(-1)[0] = b.reshape(-1)[0] + np.asarray(delta).astype(x.dtype)
        except (OverflowError, ValueError):
            continue
        other = replace(ins, slot, b)
        outs = run_node(ctx.graph, ctx.node, other)
        same = all(np.array_equal(p, q) for p, q in zip(base, outs, strict=False))
        if same and b.reshape(-1)[0] != x.reshape(-1)[0]:
            return ins, other
    return ins, ins


@entry("xor bitwise_xor", "2", "xor with a constant is an involution; of two variables it erases")
def _xor(ctx: Ctx) -> Judgement:
    if len(ctx.var_slots) <= 1:
        f = np.logical_xor if ctx.node.op == "xor" else np.bitwise_xor
        return injective(
            ctx,
            "xor with a constant is an involution",
            lambda s, ins, outs: f(outs[0], ins[1 - s]),
            how=GIVEN_OTHERS,
            bijective=True,
        )
    flip = (lambda a, b: np.logical_not(a)) if ctx.node.op == "xor" else (lambda a, b: np.invert(a))
    flip_b = (
        (lambda a, b: np.logical_not(b)) if ctx.node.op == "xor" else (lambda a, b: np.invert(b))
    )
    return _two_var_pair(ctx, "x ^ y = ~x ^ ~y", flip, flip_b, ctx.numel(0, output=True))

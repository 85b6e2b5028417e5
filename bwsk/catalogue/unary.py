"""Elementwise maps of one tensor. Injective ones carry their inverse; the others carry two
reals with equal images (a collision placed at one element)."""

from __future__ import annotations

import functools
import math

import numpy as np

from bwsk.catalogue.base import Ctx, Judgement, collision, entry, gray, injective, set_first


def _erfinv(y: np.ndarray) -> np.ndarray:
    """Newton's method on erf (no scipy); erf is strictly increasing, so it converges."""
    y = np.clip(np.asarray(y, dtype=np.float64), -1 + 1e-15, 1 - 1e-15)
    x = np.zeros_like(y)
    erf = np.vectorize(math.erf)
    for _ in range(60):
        x = x - (erf(x) - y) / (2 / math.sqrt(math.pi) * np.exp(-x * x))
    return x


def _cast(y, like):
    return np.asarray(y).astype(np.asarray(like).dtype if like is not None else np.float32)


# atom -> (inverse of y given attrs, bijective, well_conditioned, rationale)
_INJECTIVE = {
    "identity": (lambda y, a: y, True, True, "identity"),
    "neg": (lambda y, a: -y, True, True, "negation is its own inverse"),
    "exp": (lambda y, a: np.log(y), False, True, "exp is strictly increasing; inverse log"),
    "log": (lambda y, a: np.exp(y), True, True, "log is strictly increasing on x > 0"),
    "sqrt": (lambda y, a: y * y, False, True, "sqrt is strictly increasing on x >= 0"),
    "reciprocal": (lambda y, a: 1 / y, False, True, "1/x is an involution on x != 0"),
    "tanh": (lambda y, a: np.arctanh(y), False, False, "tanh is strictly increasing (saturates)"),
    "sigmoid": (
        lambda y, a: np.log(y / (1 - y)),
        False,
        False,
        "sigmoid is strictly increasing (saturates)",
    ),
    "atan": (lambda y, a: np.tan(y), False, False, "atan is strictly increasing (saturates)"),
    "asinh": (lambda y, a: np.sinh(y), True, True, "asinh is a bijection of the reals"),
    "sinh": (lambda y, a: np.arcsinh(y), True, True, "sinh is a bijection of the reals"),
    "asin": (lambda y, a: np.sin(y), False, True, "asin is strictly increasing on [-1, 1]"),
    "acos": (lambda y, a: np.cos(y), False, True, "acos is strictly decreasing on [-1, 1]"),
    "acosh": (lambda y, a: np.cosh(y), False, True, "acosh is strictly increasing on x >= 1"),
    "atanh": (lambda y, a: np.tanh(y), True, True, "atanh is strictly increasing on (-1, 1)"),
    "erf": (lambda y, a: _erfinv(y), False, False, "erf is strictly increasing (saturates)"),
    "softplus": (
        lambda y, a: np.log(np.expm1(y)),
        False,
        False,
        "softplus is strictly increasing (flat for x -> -inf)",
    ),
    "softsign": (
        lambda y, a: y / (1 - np.abs(y)),
        False,
        False,
        "x/(1+|x|) is strictly increasing (saturates)",
    ),
    "bitwise_not": (lambda y, a: np.invert(y), True, True, "bitwise not is an involution"),
    "not": (lambda y, a: np.logical_not(y), True, True, "logical not is an involution"),
}

for _atom, (_inv, _bij, _wc, _why) in _INJECTIVE.items():

    def _rule(ctx: Ctx, inv=_inv, bij=_bij, wc=_wc, why=_why) -> Judgement:
        attrs = ctx.node.attrs
        return injective(
            ctx,
            why,
            lambda s, ins, outs: _cast(
                inv(
                    np.asarray(outs[0], np.float64)
                    if np.asarray(outs[0]).dtype.kind == "f"
                    else outs[0],
                    attrs,
                ),
                outs[0],
            ),
            bijective=bij,
            well_conditioned=wc,
        )

    entry(_atom, "1", _why, "same")(_rule)


def _pair(ctx: Ctx, why: str, va: float, vb: float, erased: int | None = None) -> Judgement:
    slot = ctx.var_slots[0]
    return collision(ctx, why, lambda ins, rng: set_first(ins, slot, va, vb), erased)


def _level_pair(f, lo: float, hi: float, x0: float) -> float:
    """The x in [lo, hi] with f(x) = f(x0), by bisection (f monotone on [lo, hi])."""
    target, increasing = f(x0), f(hi) > f(lo)
    for _ in range(200):
        mid = (lo + hi) / 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _gelu(x: float, approximate: str = "none") -> float:
    if approximate == "tanh":
        return 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))


# Non-monotone smooth activations: each has a single minimum on the negatives, so a point
# right of it and a point left of it share a value. (function of x and attrs, argmin bracket)
_DIPS = {
    "gelu": (lambda x, a: _gelu(x, a.get("approximate", "none")), "GELU dips below 0 on x < 0"),
    "swish": (
        lambda x, a: x / (1 + math.exp(-a.get("alpha", 1.0) * x)),
        "x*sigmoid(x) dips below 0 on x < 0",
    ),
    "mish": (lambda x, a: x * math.tanh(math.log1p(math.exp(x))), "mish dips below 0 on x < 0"),
}


@functools.lru_cache(maxsize=256)
def _dip_pair(atom: str, attrs: tuple) -> tuple[float, float]:
    """Two points either side of the dip with one value; found once per atom and attributes
    (a 2001-point grid and a bisection in Python: GPT-2 has one GELU per layer)."""
    g = lambda x: _DIPS[atom][0](x, dict(attrs))  # noqa: E731
    grid = np.linspace(-10, 0, 2001)
    xmin = float(grid[int(np.argmin([g(x) for x in grid]))])
    x0 = xmin / 2
    return x0, _level_pair(g, xmin - 20, xmin, x0)


def _dip_rule(atom: str, why: str):
    def rule(ctx: Ctx) -> Judgement:
        attrs = tuple(sorted((k, v) for k, v in ctx.node.attrs.items()
                             if isinstance(v, (str, int, float))))
        return _pair(ctx, why, *_dip_pair(atom, attrs))

    return rule


for _atom, (_f, _why) in _DIPS.items():
    entry(_atom, "1", _why, "same")(_dip_rule(_atom, _why))

# Plain non-injective maps: a fixed pair of reals with equal images.
_PAIRS = {
    "relu": (-1.0, -2.0, "relu maps every negative to 0"),
    "abs": (1.0, -1.0, "|x| = |-x|"),
    "sign": (1.0, 2.0, "sign is constant on the positives"),
    "floor": (0.25, 0.5, "floor is constant on [0, 1)"),
    "ceil": (0.25, 0.5, "ceil is constant on (0, 1]"),
    "round": (0.125, 0.25, "round is constant on (-0.5, 0.5)"),
    "cos": (1.0, -1.0, "cos is even"),
    "cosh": (1.0, -1.0, "cosh is even"),
    "sin": (0.5, math.pi - 0.5, "sin(x) = sin(pi - x)"),
    "tan": (0.5, 0.5 + math.pi, "tan has period pi"),
    "hard_swish": (-4.0, -5.0, "hard-swish is 0 for x <= -3"),
    "is_inf": (1.0, 2.0, "a finite x is never inf"),
    "is_na_n": (1.0, 2.0, "a real x is never NaN"),
    "hardmax": (1.0, 0.5, "hardmax keeps only the position of the maximum"),
}

for _atom, (_va, _vb, _why) in _PAIRS.items():
    entry(_atom, "1", _why, "same")(lambda ctx, va=_va, vb=_vb, why=_why: _pair(ctx, why, va, vb))


@entry("leaky_relu", "1", "x for x >= 0, alpha*x below: injective iff alpha > 0", "same")
def _leaky(ctx: Ctx) -> Judgement:
    alpha = float(ctx.attr("alpha", 0.01))
    if alpha > 0:
        return injective(
            ctx,
            f"leaky relu with slope {alpha:g} > 0 is strictly increasing",
            lambda s, ins, outs: np.where(outs[0] >= 0, outs[0], outs[0] / alpha),
            bijective=True,
        )
    if alpha == 0:
        return _pair(ctx, "leaky relu with slope 0 is relu", -1.0, -2.0)
    return _pair(ctx, f"leaky relu with slope {alpha:g} < 0 folds the line", 1.0, 1.0 / alpha)


def _exp_family(name: str, alpha: float, scale: float) -> tuple:
    """ELU-like x -> scale*x (x > 0), scale*alpha*(e^x - 1) (x <= 0); inverse when alpha > 0."""

    def inv(s, ins, outs):
        y = np.asarray(outs[0], np.float64) / scale
        return _cast(np.where(y > 0, y, np.log1p(np.maximum(y / alpha, -1 + 1e-300))), outs[0])

    return inv, f"{name} with alpha={alpha:g} > 0 is strictly increasing (saturates below)"


@entry("elu selu", "1", "ELU/SELU are strictly increasing iff alpha > 0 (and gamma > 0)", "same")
def _elu(ctx: Ctx) -> Judgement:
    alpha = float(ctx.attr("alpha", 1.0 if ctx.node.op == "elu" else 1.67326319217681884765625))
    scale = float(ctx.attr("gamma", 1.05070102214813232421875)) if ctx.node.op == "selu" else 1.0
    if alpha > 0 and scale > 0:
        inv, why = _exp_family(ctx.node.op, alpha, scale)
        return injective(ctx, why, inv, well_conditioned=False)
    return gray(ctx, f"{ctx.node.op} with alpha={alpha:g}", "alpha > 0")


@entry("celu", "1", "CELU is strictly increasing iff alpha > 0", "same")
def _celu(ctx: Ctx) -> Judgement:
    alpha = float(ctx.attr("alpha", 1.0))
    if alpha <= 0:
        return gray(ctx, f"celu with alpha={alpha:g}", "alpha > 0")

    def inv(s, ins, outs):
        y = np.asarray(outs[0], np.float64)
        return _cast(
            np.where(y > 0, y, alpha * np.log1p(np.maximum(y / alpha, -1 + 1e-300))), outs[0]
        )

    return injective(
        ctx, f"celu with alpha={alpha:g} > 0 is strictly increasing", inv, well_conditioned=False
    )


@entry("thresholded_relu", "1", "0 for x <= alpha: two such x collide", "same")
def _thresholded(ctx: Ctx) -> Judgement:
    alpha = float(ctx.attr("alpha", 1.0))
    return _pair(ctx, f"thresholded relu is 0 below {alpha:g}", alpha - 1, alpha - 2)


@entry("hard_sigmoid", "1", "clamps alpha*x+beta to [0, 1]: saturated inputs collide", "same")
def _hard_sigmoid(ctx: Ctx) -> Judgement:
    alpha, beta = float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5))
    if alpha == 0:
        return _pair(ctx, "hard sigmoid with alpha 0 is constant", 1.0, 2.0)
    return _pair(ctx, "hard sigmoid saturates at 1", (2 - beta) / alpha, (3 - beta) / alpha)


@entry("shrink", "1", "maps [-lambd, lambd] to 0", "same")
def _shrink(ctx: Ctx) -> Judgement:
    lambd, bias = float(ctx.attr("lambd", 0.5)), float(ctx.attr("bias", 0.0))
    if lambd >= 2e-3:
        return _pair(ctx, f"shrink sends |x| <= {lambd:g} to 0", lambd / 2, -lambd / 2)
    if lambd == 0 and bias == 0:
        return injective(
            ctx,
            "shrink with lambd=0, bias=0 is the identity",
            lambda s, ins, outs: outs[0],
            bijective=True,
        )
    return gray(ctx, f"shrink with lambd={lambd:g}, bias={bias:g}", "lambd = 0 and bias = 0")


@entry("clip", "1..3", "saturates above max / below min", "same")
def _clip(ctx: Ctx) -> Judgement:
    lo = ctx.const(1) if ctx.present(1) else ctx.attr("min")
    hi = ctx.const(2) if ctx.present(2) else ctx.attr("max")
    if set(ctx.var_slots) - {0}:
        return gray(ctx, "clip with variable bounds", "constant bounds")
    if hi is not None:
        return _pair(ctx, "clip saturates above max", float(np.max(hi)) + 1, float(np.max(hi)) + 2)
    if lo is not None:
        return _pair(ctx, "clip saturates below min", float(np.min(lo)) - 1, float(np.min(lo)) - 2)
    return injective(
        ctx, "clip without bounds is the identity", lambda s, ins, outs: outs[0], bijective=True
    )

"""Linear maps with constant weights: injective iff the weight has full column rank. The rank
is numerical (singular values against a tolerance, both reported); a rank deficit gives a
kernel vector, hence a collision x, x + v."""

from __future__ import annotations

import numpy as np

from bwsk.catalogue.base import Ctx, Judgement, collision, entry, gray, injective, replace
from bwsk.catalogue.layout import concrete
from bwsk.catalogue.run import run_node
from bwsk.catalogue.spectral import _gram as spectral_gram
from bwsk.catalogue.spectral import known_gram, spectrum


class Solver:
    """x from m @ x = y for one matrix m (normal equations), and a kernel vector of it, with
    what they need memoized on the object: the judgement's closures hold it, so nothing
    outlives the analysis (weights may be views of a model's parameters, changed in place
    between two analyses; the shared cache is emptied after each judging pass)."""

    def __init__(self, m: np.ndarray):
        self.m, self.solves = m, 0
        self._gram = self._inverse = self._null = None

    def keep_gram(self) -> None:
        """Holds the rank check's Gram matrix, if it formed one, for later solves."""
        self._gram = known_gram(self.m)

    def columns(self, y_cols: np.ndarray) -> np.ndarray:
        """Least-squares x with m @ x = y for full-column-rank m. A witness lift solves once
        per matrix: one LU solve, a third of an inverse; a matrix solved again (an inverse
        program run on many batches) keeps its inverse."""
        if self._gram is None:
            self._gram = spectral_gram(self.m)
        rhs = np.asarray(self.m, np.float64).T @ np.asarray(y_cols, np.float64)
        self.solves += 1
        if self.solves == 1:
            return np.linalg.solve(self._gram, rhs)
        if self._inverse is None:
            self._inverse = np.linalg.inv(self._gram)
        return self._inverse @ rhs

    def apply_left(self, y: np.ndarray, last: bool) -> np.ndarray:
        """Undo y = x @ W (``last``: m = W.T acts on the last axis) or y = W @ x."""
        if last:
            flat = np.asarray(y).reshape(-1, y.shape[-1]).T
            return self.columns(flat).T.reshape(*y.shape[:-1], self.m.shape[1])
        return self.columns(y)

    def null(self) -> np.ndarray:
        """A v with m @ v ~ 0, scaled to max |v| = 1."""
        if self._null is None:
            self._null = _null_vector(self.m)
        return self._null


def _null_vector(m: np.ndarray, seed: int = 0) -> np.ndarray:
    """For a wide m, [z, 1, 0...] with m[:, :rows] z = -m[:, rows] (one square LU solve);
    otherwise a random vector minus its row-space part (one solve in the row dimension)."""
    a = np.asarray(m, np.float64)
    rows, cols = a.shape
    if rows < cols:
        try:
            v = np.zeros(cols)
            v[:rows], v[rows] = np.linalg.solve(a[:, :rows], -a[:, rows]), 1.0
            if np.isfinite(v).all():
                return v / np.abs(v).max()
        except np.linalg.LinAlgError:
            pass  # a singular leading block: the general construction below
    r = np.random.default_rng(seed).standard_normal(cols)
    try:  # full row rank (the usual case: fewer outputs than inputs): a plain LU solve
        coef = np.linalg.solve(a @ a.T, a @ r)
    except np.linalg.LinAlgError:
        coef = np.linalg.lstsq(a @ a.T, a @ r, rcond=None)[0]
    v = r - a.T @ coef
    return v / np.abs(v).max()


def precision(w: np.ndarray):
    """The float type a weight computes in (float32 unless it is float64)."""
    return np.float64 if np.asarray(w).dtype == np.float64 else np.float32


def rank_verdict(ctx: Ctx, solver: Solver, what: str, invert, shift, dtype=np.float32) -> Judgement:
    """S or K for x -> m @ x (m = solver.m, columns = input dims); ``shift(ins, v)`` applies a
    kernel vector v."""
    m = solver.m
    rows, cols = m.shape
    if rows < cols:
        return collision(
            ctx,
            f"{what} maps {cols} dims to {rows}",
            lambda ins, rng: (ins, shift(ins, solver.null())),
            cols - rows,
        )
    if not ctx.weights:
        return gray(
            ctx, f"{what}: weights not read (weights=False)", f"{what} has full column rank {cols}"
        )
    smin, smax, tol, how = spec = spectrum(m, dtype)
    bound = {
        "certified": f"> {smin:.3g} (Cholesky certificate)",
        "below": f"< {smin:.3g} (a Cholesky factorization fails there)",
    }.get(how, f"{smin:.3g}")
    cond = f"smallest singular value {bound}, tolerance {tol:.3g}"
    if spec.full_rank:
        solver.keep_gram()
        return injective(
            ctx,
            f"{what} has full column rank {cols} ({cond})",
            invert,
            bijective=rows == cols,
            well_conditioned=how == "certified" or smax / smin < 1e6,
        )
    return collision(
        ctx,
        f"{what} is rank-deficient ({cond})",
        lambda ins, rng: (ins, shift(ins, solver.null())),
    )


@entry("matmul", "2", "x @ W is injective iff W has full row rank (rank = dim of x's rows)")
def _matmul(ctx: Ctx) -> Judgement:
    var = ctx.var_slots
    if len(var) == 2:
        return collision(
            ctx,
            "matmul of two variables: (2x) @ (y/2) = x @ y",
            lambda ins, rng: (ins, replace(replace(ins, 0, ins[0] * 2), 1, ins[1] / 2)),
        )
    if not var:
        return injective(ctx, "no variable input", None)
    slot = var[0]
    w = ctx.const(1 - slot)
    if w is None or w.ndim != 2:
        return gray(ctx, "matmul with a batched or vector weight", "the weight has full rank")
    solver = Solver(w.T if slot == 0 else w)  # y = x @ W: columns of the map are rows of W

    def inv(s, ins, outs):
        return solver.apply_left(outs[0], slot == 0).astype(outs[0].dtype)

    def shift(ins, v):
        v = v if slot == 0 else v[:, None]
        return replace(ins, slot, ins[slot] + v.astype(ins[slot].dtype))

    return rank_verdict(ctx, solver, f"matmul weight {tuple(w.shape)}", inv, shift, precision(w))


@entry("gemm", "2..3", "alpha*A'B' + beta*C: as matmul in the variable factor; C is a translation")
def _gemm(ctx: Ctx) -> Judgement:
    var = ctx.var_slots
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    ta, tb = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
    if var == [2] and beta != 0:
        return injective(
            ctx,
            "gemm is a translation of C",
            lambda s, ins, outs: _gemm_c(ins, outs, alpha, beta, ta, tb),
        )
    if len(var) != 1 or var[0] == 2 or alpha == 0:
        return collision(
            ctx, "gemm of several variables", lambda ins, rng: (ins, _gemm_two(ins, var))
        )
    c = ctx.const(2) if ctx.present(2) else None
    bias = 0 if c is None else beta * c
    if var == [0]:
        b = ctx.const(1).T if tb else ctx.const(1)
        solver = Solver(b.T)

        def inv(s, ins, outs):
            a = solver.apply_left(np.asarray((outs[0] - bias) / alpha, np.float64), True)
            return (a.T if ta else a).astype(outs[0].dtype)

        def shift(ins, v):
            return replace(ins, 0, ins[0] + (v[:, None] if ta else v).astype(ins[0].dtype))

        return rank_verdict(ctx, solver, f"gemm weight {tuple(b.shape)}", inv, shift, precision(b))
    a = ctx.const(0).T if ta else ctx.const(0)
    solver = Solver(a)

    def inv(s, ins, outs):
        x = solver.apply_left(np.asarray((outs[0] - bias) / alpha, np.float64), False)
        return (x.T if tb else x).astype(outs[0].dtype)

    shift = lambda ins, v: replace(ins, 1, ins[1] + (v if tb else v[:, None]).astype(ins[1].dtype))  # noqa: E731
    return rank_verdict(ctx, solver, f"gemm weight {tuple(a.shape)}", inv, shift, precision(a))


def _gemm_c(ins, outs, alpha, beta, ta, tb):
    a, b = (ins[0].T if ta else ins[0]), (ins[1].T if tb else ins[1])
    return ((outs[0] - alpha * a @ b) / beta).astype(outs[0].dtype)


def _gemm_two(ins, var):
    i, j = var[:2]
    if {i, j} == {0, 1}:
        return replace(replace(ins, 0, ins[0] * 2), 1, ins[1] / 2)
    out = replace(ins, i, ins[i] * 0)
    return out


def operator_matrix(ctx: Ctx, slot: int, limit: int = 1024) -> np.ndarray | None:
    """The matrix of a linear op in ``slot`` (rows: outputs), by running it on a basis.
    Batch-major ops only (axis 0 is the batch); None when too large or shapes unknown."""
    shape = concrete(ctx.shape(slot))
    if shape is None or not shape or int(np.prod(shape[1:])) > limit:
        return None
    n = int(np.prod(shape[1:]))
    ins = [
        ctx.const(i) if i != slot else np.eye(n, dtype=np.float32).reshape((n, *shape[1:]))
        for i in range(len(ctx.node.inputs))
    ]
    zero = [
        ctx.const(i) if i != slot else np.zeros((1, *shape[1:]), np.float32)
        for i in range(len(ctx.node.inputs))
    ]
    if ctx.node.op.startswith("conv"):  # drop the bias: the matrix is the linear part
        ins, zero = ins[:2], zero[:2]
    cols = np.asarray(run_node(ctx.graph, _strip(ctx.node), ins)[0], np.float64).reshape(n, -1)
    base = np.asarray(run_node(ctx.graph, _strip(ctx.node), zero)[0], np.float64).reshape(1, -1)
    return (cols - base).T


def _strip(node):
    from dataclasses import replace as dc_replace

    if node.op.startswith("conv"):
        return dc_replace(node, inputs=node.inputs[:2])
    return node


@entry(
    "conv conv_transpose average_pool global_average_pool lp_pool global_lp_pool "
    "conv_integer deform_conv",
    "1..3",
    "linear in x for constant weights: injective iff the operator has full column rank "
    "(materialized on a basis when small)",
)
def _conv(ctx: Ctx) -> Judgement:
    op = ctx.node.op
    if ctx.var_slots != [0]:
        return gray(ctx, f"{op} with variable weights", "constant weights")
    if op in ("lp_pool", "global_lp_pool"):
        return _nonlinear_pool(ctx)
    if op in ("global_average_pool", "average_pool") and _window_swap(ctx) is not None:
        return collision(
            ctx,
            f"{op} averages each window: swapping two of its elements keeps it",
            _window_swap(ctx),
            _pool_erased(ctx),
        )
    n_in, n_out = ctx.numel(0), ctx.numel(0, output=True)
    m = None
    if (
        op not in ("conv", "conv_transpose", "conv_integer", "deform_conv")
        or ctx.weights
        or (n_in and n_out and n_out < n_in)
    ):
        m = operator_matrix(ctx, 0)
    if m is None:
        cond = f"the {op} operator has full column rank"
        if n_in and n_out and n_out < n_in:
            cond = f"(maps {n_in} values to {n_out}: not injective, witness needs a smaller input)"
        return gray(ctx, f"{op}: operator too large to materialize or shape unknown", cond)
    shape = concrete(ctx.shape(0))
    solver = Solver(m)

    def inv(s, ins, outs):
        y = np.asarray(outs[0], np.float64).reshape(len(outs[0]), -1)
        zero = [
            ctx.const(i) if i else np.zeros((1, *shape[1:]), np.float32) for i in range(len(ins))
        ]
        base = np.asarray(run_node(ctx.graph, ctx.node, zero)[0], np.float64).reshape(1, -1)
        x = solver.columns((y - base).T).T  # the Gram matrix is the rank check's
        return x.reshape((len(outs[0]), *shape[1:])).astype(outs[0].dtype)

    def shift(ins, v):
        x = np.asarray(ins[0])
        return replace(
            ins,
            0,
            x
            + np.broadcast_to(v.reshape(shape[1:]), x.shape).astype(x.dtype)
            * (np.arange(x.shape[0]) == 0).reshape((-1,) + (1,) * (x.ndim - 1)),
        )

    weight = (
        ctx.const(1) if ctx.present(1) and ctx.const(1) is not None else np.zeros(0, np.float32)
    )
    what = f"{op} operator {m.shape[0]}x{m.shape[1]}"
    return rank_verdict(ctx, solver, what, inv, shift, precision(weight))


def _window_swap(ctx: Ctx):
    """Swap of two elements of the first window when windows are disjoint (global or
    stride = kernel without padding), else None."""
    shape = ctx.shape(0)
    if shape is None or len(shape) < 3:
        return None
    if ctx.node.op == "average_pool":
        kernel, strides = list(ctx.attr("kernel_shape", [])), list(ctx.attr("strides", []) or [])
        if (
            kernel != strides
            or any(ctx.attr("pads", []))
            or ctx.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID")
        ):
            return None
        axis = next((2 + i for i, k in enumerate(kernel) if k > 1), None)
    else:
        axis = next((i for i in range(2, len(shape)) if shape[i] != 1), None)
    if axis is None:
        return None

    def collide(ins, rng):
        b = np.array(ins[0], copy=True)
        first, second = (0,) * b.ndim, tuple(1 if d == axis else 0 for d in range(b.ndim))
        b[first], b[second] = b[second], b[first]
        return ins, replace(ins, 0, b)

    return collide


def _pool_erased(ctx: Ctx) -> int | None:
    n_in, n_out = ctx.numel(0), ctx.numel(0, output=True)
    return n_in - n_out if n_in and n_out else None


def _nonlinear_pool(ctx: Ctx) -> Judgement:
    def collide(ins, rng):
        b = np.array(ins[0], copy=True)
        b.reshape(-1)[0] *= -1
        a = np.array(ins[0], copy=True)
        a.reshape(-1)[0] = abs(a.reshape(-1)[0]) + 1
        b.reshape(-1)[0] = -a.reshape(-1)[0]
        return replace(ins, 0, a), replace(ins, 0, b)

    return collision(ctx, "an Lp pool sees |x| only, not signs", collide)

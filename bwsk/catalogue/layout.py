"""Ops that only move, copy or drop elements. Pure rearrangements are S with a closed-form
inverse; for selections a probe (the op run on 1..n) shows which input elements survive."""

from __future__ import annotations

import numpy as np

from bwsk.catalogue.base import (
    ALONE,
    Ctx,
    Judgement,
    collision,
    entry,
    flags,
    gray,
    injective,
    replace,
    unbroadcast,
)
from bwsk.catalogue.run import run_node


def concrete(shape: tuple | None) -> tuple[int, ...] | None:
    """Static shape with symbolic dims taken as 2 (probes only); None when rank is unknown."""
    return None if shape is None else tuple(d if isinstance(d, int) else 2 for d in shape)


def target_shape(shape: tuple | None, y: np.ndarray) -> tuple:
    """``shape`` with its symbolic dim (at most one) solved from ``y``'s size."""
    if shape is None:
        raise ValueError("unknown input shape")
    dims = [d if isinstance(d, int) else -1 for d in shape]
    if dims.count(-1) > 1:
        raise ValueError(f"shape {shape} has several symbolic dims")
    return tuple(dims)


def _reshape_back(ctx: Ctx):
    shape = ctx.shape(0)
    return lambda s, ins, outs: np.reshape(outs[0], target_shape(shape, outs[0]))


@entry(
    "reshape flatten squeeze unsqueeze",
    "1..2",
    "a reshape keeps every element in order; the inverse reshapes back",
)
def _reshape(ctx: Ctx) -> Judgement:
    return injective(ctx, f"{ctx.node.op} keeps every element", _reshape_back(ctx), bijective=True)


@entry("transpose", "1", "a permutation of axes; inverse: the inverse permutation")
def _transpose(ctx: Ctx) -> Judgement:
    perm = ctx.attr("perm")

    def inv(s, ins, outs):
        p = list(perm) if perm is not None else list(range(outs[0].ndim))[::-1]
        return np.transpose(outs[0], np.argsort(p))

    return injective(ctx, "transpose permutes elements", inv, bijective=True)


@entry("concat", "variadic", "every input is a slice of the output")
def _concat(ctx: Ctx) -> Judgement:
    axis = int(ctx.attr("axis", 0))

    def inv(slot, ins, outs):
        y = outs[0]
        ax = axis % y.ndim
        sizes = []
        for x, name in zip(ins, ctx.node.inputs, strict=False):
            shape = ctx.graph.values[name].shape if name in ctx.graph.values else None
            static = shape[ax] if shape is not None and isinstance(shape[ax], int) else None
            sizes.append(x.shape[ax] if x is not None else static)
        if sizes.count(None) == 1:
            sizes[sizes.index(None)] = y.shape[ax] - sum(s for s in sizes if s is not None)
        start = sum(sizes[:slot])
        return np.take(y, np.arange(start, start + sizes[slot]), axis=ax)

    return injective(ctx, "concat keeps every input element", inv, bijective=True)


@entry("split", "1..2", "the outputs partition the input (all of them are needed)")
def _split(ctx: Ctx) -> Judgement:
    axis = int(ctx.attr("axis", 0))
    needs = [i for i, o in enumerate(ctx.node.outputs) if o]
    return injective(
        ctx,
        "split partitions its input",
        lambda s, ins, outs: np.concatenate(outs, axis=axis),
        bijective=True,
        needs=needs,
    )


@entry("expand tile", "2", "copies of every element; the inverse reads the first copy")
def _expand(ctx: Ctx) -> Judgement:
    shape = ctx.shape(0)

    def inv(s, ins, outs):
        y = outs[0]
        if ctx.node.op == "expand":
            return unbroadcast(y, target_shape(shape, y)) if shape else y
        return y[tuple(slice(0, d) for d in shape)]

    return injective(ctx, f"{ctx.node.op} only copies elements", inv)


@entry("depth_to_space space_to_depth", "1", "block rearrangements; each is the other's inverse")
def _d2s(ctx: Ctx) -> Judgement:
    return injective(
        ctx, f"{ctx.node.op} permutes elements", _probe_inverse(ctx, 0), bijective=True
    )


def probe(ctx: Ctx, slot: int, zero: tuple[int, ...] = ()) -> np.ndarray | None:
    """Flat map output position -> 1 + input element index of ``slot`` (0: none), or None."""
    shapes = [concrete(ctx.shape(i)) for i in range(len(ctx.node.inputs))]
    if shapes[slot] is None:
        return None
    ins = []
    for i, name in enumerate(ctx.node.inputs):
        if not name:
            ins.append(None)
        elif i == slot:
            ins.append(
                np.arange(1, int(np.prod(shapes[i])) + 1, dtype=np.float64).reshape(shapes[i])
            )
        elif ctx.const(i) is not None and i not in zero:
            ins.append(ctx.const(i))
        elif shapes[i] is None:
            return None
        else:
            dtype = ctx.graph.values[name].dtype
            ins.append(np.zeros(shapes[i], dtype=np.float64 if "float" in dtype else dtype))
    outs = run_node(ctx.graph, ctx.node, ins)
    return np.concatenate([np.asarray(o, np.float64).reshape(-1) for o in outs]).astype(np.int64)


def _probe_inverse(ctx: Ctx, slot: int, where: np.ndarray | None = None):
    def inv(s, ins, outs):
        src = where if where is not None else probe(ctx, slot)
        flat = np.concatenate([np.asarray(o).reshape(-1) for o in outs])
        shape = concrete(ctx.shape(slot))
        x = np.zeros(int(np.prod(shape)), dtype=flat.dtype)
        hit = src > 0
        x[src[hit] - 1] = flat[hit]
        return x.reshape(shape)

    return inv


def selection(ctx: Ctx, data: list[int], zero: tuple[int, ...] = ()) -> Judgement:
    """S when every element of each variable data slot reaches an output; K otherwise."""
    var = ctx.var_slots
    if set(var) - set(data):
        return gray(
            ctx,
            f"{ctx.node.op} with variable indices/parameters",
            "index and parameter inputs are constants",
        )
    maps = {}
    for slot in var:
        src = probe(ctx, slot, zero)
        if src is None:
            return gray(ctx, f"{ctx.node.op}: input shape unknown", "static input shapes")
        n = int(np.prod(concrete(ctx.shape(slot))))
        lost = np.setdiff1d(np.arange(1, n + 1), src)
        if lost.size:
            u = int(lost[0]) - 1

            def collide(ins, rng, slot=slot, u=u):
                b = np.array(ins[slot], copy=True)
                b.reshape(-1)[u] += 1
                return ins, replace(ins, slot, b)

            return collision(
                ctx,
                f"{ctx.node.op} drops {lost.size} of {n} input elements",
                collide,
                int(lost.size),
            )
        maps[slot] = src
    return Judgement(
        "S",
        f"{ctx.node.op} keeps every input element",
        flags(ctx, ALONE),
        erased_dims=0,
        invert=lambda s, ins, outs: _probe_inverse(ctx, s, maps[s])(s, ins, outs),
    )


@entry(
    "slice gather_elements gather_nd trilu compress pad center_crop_pad reverse_sequence "
    "max_unpool col2_im",
    "1..5",
    "a selection: S iff every input element reaches the output (probed on 1..n)",
)
def _select(ctx: Ctx) -> Judgement:
    return selection(ctx, [0])


@entry("where", "3", "with a constant condition each branch element is kept or dropped")
def _where(ctx: Ctx) -> Judgement:
    return selection(ctx, [1, 2])


@entry(
    "scatter scatter_elements scatter_nd tensor_scatter",
    "3..4",
    "data elements overwritten by the updates are lost",
)
def _scatter(ctx: Ctx) -> Judgement:
    if ctx.var_slots != [0]:
        return gray(
            ctx,
            f"{ctx.node.op} with variable updates or indices",
            "only the data input is variable",
        )
    return selection(ctx, [0], zero=tuple(range(2, len(ctx.node.inputs))))


@entry("resize upsample", "1..4", "nearest resizing is a selection; other modes are linear maps")
def _resize(ctx: Ctx) -> Judgement:
    if ctx.attr("mode", "nearest") in ("nearest", b"nearest"):
        return selection(ctx, [0])
    return gray(
        ctx,
        f"{ctx.node.op} in {ctx.attr('mode')} mode",
        "the interpolation operator has full column rank",
    )


def equal_rows(rows: np.ndarray) -> tuple[int, int] | None:
    """Two equal rows (i < j, the first such j), or None: rows hashed as bytes (-0.0 folded
    into 0.0), far cheaper than sorting them; tables with NaN fall back to comparing values.
    Only rows whose first 64 entries hash alike can be equal, so a vectorized hash of those
    picks the candidates (none, for a trained or random vocabulary) before any row is read."""
    if rows.dtype.kind == "f" and np.isnan(rows).any():
        _, first, counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
        if not (counts > 1).any():
            return None
        i = int(first[np.argmax(counts > 1)])
        return i, int(np.flatnonzero((rows == rows[i]).all(axis=1))[1])
    candidates = _alike_prefixes(rows)
    flat = np.ascontiguousarray(
        rows[candidates] + 0 if rows.dtype.kind == "f" else rows[candidates]
    )
    seen: dict[bytes, int] = {}
    for j, row in enumerate(flat):
        i = seen.setdefault(row.tobytes(), j)
        if i != j:
            return int(candidates[i]), int(candidates[j])
    return None


def _alike_prefixes(rows: np.ndarray, width: int = 64) -> np.ndarray:
    """Indices (ascending) of the rows whose first ``width`` entries share a 64-bit hash with
    another row's: a random linear form over the entries' bits, wrapping exactly mod 2^64."""
    if rows.dtype.itemsize not in (4, 8) or len(rows) < 2:
        return np.arange(len(rows))
    head = rows[:, :width] + 0 if rows.dtype.kind == "f" else rows[:, :width]
    bits = np.ascontiguousarray(head).view(f"u{rows.dtype.itemsize}").astype(np.uint64)
    weights = np.random.default_rng(0).integers(1, 2**63, bits.shape[1], dtype=np.uint64)
    _, inverse, counts = np.unique(
        bits @ (weights | np.uint64(1)), return_inverse=True, return_counts=True
    )
    return np.flatnonzero(counts[inverse] > 1)


@entry(
    "gather",
    "2",
    "gather(data, const idx) is a selection; gather(table, ids) is injective "
    "iff the table's rows are distinct",
)
def _gather(ctx: Ctx) -> Judgement:
    if ctx.var_slots == [0] or not ctx.var_slots:
        return selection(ctx, [0])
    table = ctx.const(0)
    if ctx.var_slots != [1] or table is None:
        return gray(ctx, "gather with variable data and indices", "constant data")
    if not ctx.weights:
        return gray(ctx, "embedding lookup", "rows of the table are distinct")
    axis = int(ctx.attr("axis", 0))
    rows = np.moveaxis(table, axis, 0).reshape(table.shape[axis], -1)
    pair = equal_rows(rows)
    if pair is not None:
        i, j = pair

        def collide(ins, rng):
            a, b = np.array(ins[1], copy=True), np.array(ins[1], copy=True)
            a.reshape(-1)[0], b.reshape(-1)[0] = i, j
            return replace(ins, 1, a), replace(ins, 1, b)

        return collision(ctx, f"table rows {i} and {j} are equal", collide)

    norms = []  # the rows' squared norms, once the inverse is first run

    def inv(s, ins, outs):
        y = np.moveaxis(outs[0], axis, -1) if rows.shape[1] == 1 else outs[0]
        flat = np.asarray(y, np.float64).reshape(-1, rows.shape[1])
        if not norms:
            norms.append(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
        return nearest_rows(rows, flat, norms[0]).reshape(
            np.shape(outs[0])[: np.ndim(outs[0]) - table.ndim + 1]
        )

    return injective(ctx, "embedding rows are pairwise distinct", inv)


def nearest_rows(
    rows: np.ndarray, flat: np.ndarray, norms: np.ndarray, shortlist: int = 8
) -> np.ndarray:
    """Per row of ``flat``, the index of the nearest row of ``rows`` (squared ``norms``).
    Distances to the whole table in the table's own precision pick a shortlist, re-ranked in
    float64: a float64 copy of a vocabulary-sized table per call cost more than the rest."""
    low = rows.dtype if rows.dtype in (np.float32, np.float64) else np.float64
    rough = norms[None, :] - 2 * (flat.astype(low) @ rows.T.astype(low, copy=False))
    k = min(shortlist, len(rows))
    pick = np.argpartition(rough, k - 1, axis=1)[:, :k]
    cand = rows[pick].astype(np.float64)  # (queries, k, width)
    exact = norms[pick] - 2 * np.einsum("qkw,qw->qk", cand, flat)  # |y - row|^2 up to |y|^2
    return pick[np.arange(len(pick)), np.argmin(exact, axis=1)]

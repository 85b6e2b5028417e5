"""One mesh axis as the flat arrays bwsk._core.calm_search takes (see csrc/core/calm.hpp)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bwsk.ir import Graph
from bwsk.parallel.classes import Classes
from bwsk.parallel.sharding_rules import shape

ACTIVATION, PARAMETER, INPUT, CONSTANT = 0, 1, 2, 3
REPLICATED, PARTIAL, FREE = -2, -1, -3
AXES = ("data", "sequence", "tensor", "pipeline")


@dataclass
class Seeds:
    """Classes of the graph inputs' batch (dim 0) and sequence (dim 1) dims."""

    batch: set[int]
    sequence: set[int]


def seeds_of(g: Graph, cls: Classes) -> Seeds:
    batch, seq = set(), set()
    for name in g.inputs:
        dims = cls.dims.get(name, [])
        if dims:
            batch.update(dims[0])
        if len(dims) > 1:
            seq.update(dims[1])
    return Seeds(batch, seq)


def parameter_of(g: Graph, name: str, params: set[str]) -> str | None:
    """The parameter a constant is (or is a transposed copy of), if any."""
    for cand in (name, name.removesuffix(".T")):
        if cand in params:
            return cand
    return None


def value_kind(g: Graph, name: str, params: set[str]) -> int:
    if name in g.inputs:
        return INPUT
    if g.is_const(name):
        return PARAMETER if parameter_of(g, name, params) else CONSTANT
    if np.dtype(g.values[name].dtype if g.values[name].dtype != "bfloat16" else "float16").kind \
            not in "fc":
        return INPUT  # integer or boolean: varies with the inputs, carries no gradient
    return ACTIVATION


def value_bytes(g: Graph, name: str, itemsize: int | None) -> int:
    value = g.values[name]
    dt = np.dtype(value.dtype) if value.dtype not in ("bfloat16",) else np.dtype("float16")
    size = itemsize if itemsize and dt.kind == "f" else dt.itemsize
    return int(np.prod(shape(g, name), dtype=np.int64)) * size


def allowed(axis: str, seeds: Seeds, cls: int) -> bool:
    if axis == "data":
        return cls in seeds.batch
    if axis == "tensor":
        return cls not in seeds.batch and cls not in seeds.sequence
    return cls not in seeds.batch  # sequence: the tensor axis's classes plus the tokens


# What each axis is for, as a price per byte of a value left whole (replicated): data
# parallelism splits the batch's activations, tensor parallelism the weight matrices, and
# sequence parallelism both, preferring activations split along the tokens (the problem's
# "preferred" classes: split on another class, a value pays a tie-breaking sliver).
MUST, PREFER = 1e3, 1e-1


def price(axis: str, seeds: Seeds, kind: int, rank: int, carried: list[int]) -> float:
    if kind == PARAMETER and rank >= 2 and axis in ("tensor", "sequence"):
        return MUST
    if kind == ACTIVATION and axis == "data" and seeds.batch.intersection(carried):
        return MUST
    if kind == ACTIVATION and axis == "sequence" and seeds.sequence.intersection(carried):
        return PREFER
    return 0.0


def _flat(lists) -> tuple[list[int], list[int]]:
    off, data = [0], []
    for x in lists:
        data.extend(x)
        off.append(len(data))
    return off, data


def build(g: Graph, cls: Classes, axis: str, world: int, params: set[str],
          itemsize: int | None = None) -> tuple[dict, list[str]]:
    """(problem dict, value names by id) for one axis."""
    names = list(g.values)
    index = {n: i for i, n in enumerate(names)}
    seeds = seeds_of(g, cls)
    carried, ok, fixed, kinds = [], [], [], []
    for name in names:
        dims, shp = cls.dims.get(name, []), shape(g, name)
        carried.append(sorted({c for d in dims for c in d}))
        bad = {c for d, size in zip(dims, shp, strict=False) if len(d) == 1 and size % world
               for c in d}
        ok.append([c for c in carried[-1] if c not in bad and allowed(axis, seeds, c)])
        kinds.append(value_kind(g, name, params))
        fixed.append(_input_state(axis, dims, seeds) if kinds[-1] == INPUT else FREE)
    node_in = [[index[x] if x else -1 for x in n.inputs] for n in g.nodes]
    node_out = [[index[x] for x in n.outputs if x] for n in g.nodes]
    problem = {
        "world": world, "alpha": 1.0, "outputs_replicated": axis != "data",
        "val_price": [price(axis, seeds, k, len(shape(g, n)), c)
                      for n, k, c in zip(names, kinds, carried, strict=True)],
        "val_kind": kinds, "val_bytes": [value_bytes(g, n, itemsize) for n in names],
        "val_fixed": fixed, "node_linear": [s.linear for s in cls.specs],
        "node_stat_bytes": [s.stat_bytes for s in cls.specs],
        "outputs": [index[o] for o in g.outputs],
        "preferred": sorted(seeds.sequence) if axis == "sequence" else [],
    }
    for key, lists in (("val_all", carried), ("val_ok", ok), ("node_in", node_in),
                       ("node_out", node_out), ("node_mix", [sorted(m) for m in cls.mix]),
                       ("node_stat", [sorted(s) for s in cls.stat])):
        problem[f"{key}_off"], problem[key] = _flat(lists)
    return problem, names


def _input_state(axis: str, dims: list[list[int]], seeds: Seeds) -> int:
    if axis == "data" and dims and len(dims[0]) == 1 and dims[0][0] in seeds.batch:
        return dims[0][0]
    return REPLICATED

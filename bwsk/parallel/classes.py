"""Logical dimensions: which tensor dims across the graph are "the same" dim.

A sharding is a choice of logical dim (a class); union-find over the atoms' rules ties,
say, the hidden dim of every residual-stream tensor to the LayerNorm weight's dim and to
the input dim of each projection. A merged dim ([B, T] -> [B*T]) carries both classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bwsk.ir import Graph
from bwsk.parallel.sharding_rules import Spec, shape, spec_of


class UnionFind:
    def __init__(self):
        self.parent: list[int] = []

    def fresh(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


@dataclass
class Classes:
    """Per value and dim, its class ids; per node, its spec and mixed/statistics classes."""

    dims: dict[str, list[list[int]]] = field(default_factory=dict)
    specs: list[Spec] = field(default_factory=list)
    mix: list[set[int]] = field(default_factory=list)
    stat: list[set[int]] = field(default_factory=list)


def _fresh_dims(uf: UnionFind, shp: tuple[int, ...]) -> list[list[int]]:
    return [[uf.fresh()] if d != 1 else [] for d in shp]


def _out_dim(uf: UnionFind, srcs, in_dims, size: int) -> list[int]:
    out: list[int] = []
    for slot, dim, part, parts in srcs:
        if slot >= len(in_dims) or dim >= len(in_dims[slot]):
            continue
        cls = in_dims[slot][dim]
        if parts == 1:
            out += cls
        elif len(cls) == parts:
            out.append(cls[part])
        elif part == 0:
            out += cls
    return out or ([uf.fresh()] if size != 1 else [])


def classes_of(g: Graph) -> Classes:
    uf, res = UnionFind(), Classes()
    produced = {o for n in g.nodes for o in n.outputs if o}
    for name in g.values:
        if name not in produced:
            res.dims[name] = _fresh_dims(uf, shape(g, name))
    raw_mix, raw_stat = [], []
    for n in g.nodes:
        spec = spec_of(g, n)
        res.specs.append(spec)
        in_dims = [res.dims.get(x, []) if x else [] for x in n.inputs]
        for (sa, da), (sb, db) in spec.same:
            a, b = in_dims[sa][da], in_dims[sb][db]
            if len(a) == len(b):
                for x, y in zip(a, b, strict=True):
                    uf.union(x, y)
            elif a and b and min(len(a), len(b)) == 1:  # merged [H, D] meets E: H is E's major part
                uf.union(a[0], b[0])
        for j, out in enumerate(n.outputs):
            shp = shape(g, out)
            dims = spec.outs[j] if j < len(spec.outs) else [[] for _ in shp]
            res.dims[out] = [_out_dim(uf, dims[d] if d < len(dims) else [], in_dims, size)
                             for d, size in enumerate(shp)]
        raw_mix.append([c for s, d in spec.mix if s < len(in_dims) and d < len(in_dims[s])
                        for c in in_dims[s][d]])
        raw_stat.append([c for s, d in spec.stat if d < len(in_dims[s]) for c in in_dims[s][d]])
    for name, dims in res.dims.items():
        res.dims[name] = [sorted({uf.find(c) for c in d}) for d in dims]
    res.mix = [{uf.find(c) for c in m} for m in raw_mix]
    res.stat = [{uf.find(c) for c in s} - res_mix for s, res_mix in zip(raw_stat, res.mix,
                                                                       strict=True)]
    return res

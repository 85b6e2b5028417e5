"""Post-dominators of a graph's dataflow, so "does every path from these values to an output
pass through node k?" costs O(1) per value instead of a walk over the whole graph (the
witness search asks it for every K node: quadratic on deep models otherwise)."""

from __future__ import annotations

from bwsk.ir import Graph

SINK = ("sink",)


class PostDominators:
    """Vertices are ("v", value) and ("n", node index); every graph output flows to SINK."""

    def __init__(self, graph: Graph):
        self.graph = graph
        succ: dict[tuple, list[tuple]] = {("v", o): [SINK] for o in graph.outputs}
        order: dict[tuple, None] = dict.fromkeys(("v", x) for x in graph.inputs)  # topological
        for k, node in enumerate(graph.nodes):
            for x in dict.fromkeys(x for x in node.inputs if x):
                order.setdefault(("v", x))
                succ.setdefault(("v", x), []).append(("n", k))
            succ[("n", k)] = [("v", o) for o in node.outputs if o]
            order.setdefault(("n", k))
            order.update(dict.fromkeys(("v", o) for o in node.outputs if o))
        self.parent: dict[tuple, tuple] = {}
        self.depth: dict[tuple, int] = {SINK: 0}
        for v in reversed(list(order)):
            self._attach(v, [s for s in succ.get(v, []) if s in self.depth])
        self._number()
        self.sources = self._upstream_inputs()

    def _attach(self, v: tuple, succ: list[tuple]) -> None:
        """v's immediate post-dominator: the nearest common tree ancestor of its successors
        (none when no output depends on v)."""
        if not succ:
            return
        a = succ[0]
        for b in succ[1:]:
            while a != b:
                if self.depth[a] >= self.depth[b]:
                    a = self.parent[a]
                else:
                    b = self.parent[b]
        self.parent[v], self.depth[v] = a, self.depth[a] + 1

    def _number(self) -> None:
        """Entry and exit times of a walk over the tree: ancestry in O(1)."""
        children: dict[tuple, list[tuple]] = {}
        for v, p in self.parent.items():
            children.setdefault(p, []).append(v)
        self.enter, self.exit, clock = {}, {}, 0
        stack: list[tuple[tuple, bool]] = [(SINK, False)]
        while stack:
            v, done = stack.pop()
            clock += 1
            if done:
                self.exit[v] = clock
                continue
            self.enter[v] = clock
            stack.append((v, True))
            stack.extend((c, False) for c in children.get(v, []))

    def _upstream_inputs(self) -> dict[str, int]:
        """Per value, a bit mask of the graph inputs it depends on."""
        bit = {name: 1 << i for i, name in enumerate(self.graph.inputs)}
        mask = dict(bit)
        for node in self.graph.nodes:
            m = 0
            for x in node.inputs:
                m |= mask.get(x, 0)
            for o in node.outputs:
                if o:
                    mask[o] = mask.get(o, 0) | m
        return mask

    def only_through(self, k: int, values: set[str]) -> bool:
        """True when every path from ``values`` and the graph inputs they depend on to an
        output passes through node k."""
        m = 0
        for x in values:
            m |= self.sources.get(x, 0)
        names = set(values) | {n for i, n in enumerate(self.graph.inputs) if m >> i & 1}
        top = ("n", k)
        if top not in self.enter:
            return all(("v", x) not in self.enter for x in names)
        lo, hi = self.enter[top], self.exit[top]
        return all(
            ("v", x) not in self.enter or (lo < self.enter[("v", x)] and self.exit[("v", x)] < hi)
            for x in names
        )

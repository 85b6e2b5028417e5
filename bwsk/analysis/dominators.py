"""Post-dominators of a graph's dataflow, so "does every path from these values to an output
pass through node k?" costs O(1) per value instead of a walk over the whole graph (the
witness search asks it for every K node: quadratic on deep models otherwise)."""

from __future__ import annotations

from bwsk.ir import Graph

SINK = 0  # every graph output flows to it


class PostDominators:
    """Vertices are integers: SINK, then values and nodes in topological order (values
    numbered by ``self.value``, node k by ``self.node[k]``), so the tree lives in lists."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.value: dict[str, int] = {}
        self.node: list[int] = []
        succ = self._successors(graph)
        self.parent = [-1] * len(succ)
        self.depth = depth = [-1] * len(succ)
        depth[SINK] = 0
        for v in range(len(succ) - 1, 0, -1):  # successors come later in the numbering
            self._attach(v, [s for s in succ[v] if depth[s] >= 0])
        self._number()

    def _successors(self, graph: Graph) -> list[list[int]]:
        """The dataflow edges, numbering vertices on the way; per value also a bit mask of
        the graph inputs it depends on (``self.sources``), in the same pass. Constants are
        left out: nothing flows into them and queries are about variable values, and a
        constant's post-dominator is no other vertex's (those depend on successors only)."""
        value, succ, values = self.value, [[]], graph.values
        mask = {name: 1 << i for i, name in enumerate(graph.inputs)}
        for x in graph.inputs:
            if value.setdefault(x, len(succ)) == len(succ):
                succ.append([])
        for node in graph.nodes:
            ins, m = [], 0
            for x in dict.fromkeys(
                x for x in node.inputs if x and (x not in values or values[x].const is None)
            ):
                if value.setdefault(x, len(succ)) == len(succ):
                    succ.append([])
                ins.append(value[x])
                m |= mask.get(x, 0)
            k = len(succ)
            succ.append([])
            self.node.append(k)
            for v in ins:
                succ[v].append(k)
            for o in node.outputs:
                if o:
                    if value.setdefault(o, len(succ)) == len(succ):
                        succ.append([])
                    succ[k].append(value[o])
                    mask[o] = mask.get(o, 0) | m
        for o in graph.outputs:
            if value.setdefault(o, len(succ)) == len(succ):
                succ.append([])
            succ[value[o]].append(SINK)
        self.sources = mask
        return succ

    def _attach(self, v: int, succ: list[int]) -> None:
        """v's immediate post-dominator: the nearest common tree ancestor of its successors
        (none when no output depends on v)."""
        if not succ:
            return
        parent, depth = self.parent, self.depth
        a = succ[0]
        for b in succ[1:]:
            while a != b:
                if depth[a] >= depth[b]:
                    a = parent[a]
                else:
                    b = parent[b]
        parent[v], depth[v] = a, depth[a] + 1

    def _number(self) -> None:
        """Entry and exit times of a walk over the tree: ancestry in O(1) (-1: not in it)."""
        children: list[list[int]] = [[] for _ in self.parent]
        for v, p in enumerate(self.parent):
            if p >= 0:
                children[p].append(v)
        self.enter, self.exit = [-1] * len(self.parent), [-1] * len(self.parent)
        clock, stack = 0, [SINK]
        while stack:
            v = stack.pop()
            clock += 1
            if v < 0:
                self.exit[~v] = clock
                continue
            self.enter[v] = clock
            stack.append(~v)
            stack.extend(children[v])

    def only_through(self, k: int, values: set[str]) -> bool:
        """True when every path from ``values`` and the graph inputs they depend on to an
        output passes through node k."""
        m = 0
        for x in values:
            m |= self.sources.get(x, 0)
        names = set(values) | {n for i, n in enumerate(self.graph.inputs) if m >> i & 1}
        enter, exit_ = self.enter, self.exit
        vertices = [self.value[x] for x in names if x in self.value]
        top = self.node[k]
        if enter[top] < 0:
            return all(enter[v] < 0 for v in vertices)
        lo, hi = enter[top], exit_[top]
        return all(enter[v] < 0 or (lo < enter[v] and exit_[v] < hi) for v in vertices)

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
        succ: list[list[int]] = [[]]
        for x in graph.inputs:
            self._vertex(x, succ)
        for node in graph.nodes:
            ins = [self._vertex(x, succ) for x in dict.fromkeys(x for x in node.inputs if x)]
            k = len(succ)
            succ.append([])
            self.node.append(k)
            for v in ins:
                succ[v].append(k)
            succ[k] = [self._vertex(o, succ) for o in node.outputs if o]
        for o in graph.outputs:
            succ[self._vertex(o, succ)].append(SINK)
        self.parent = [-1] * len(succ)
        self.depth = [-1] * len(succ)
        self.depth[SINK] = 0
        for v in range(len(succ) - 1, 0, -1):  # successors come later in the numbering
            self._attach(v, [s for s in succ[v] if self.depth[s] >= 0])
        self._number()
        self.sources = self._upstream_inputs()

    def _vertex(self, name: str, succ: list[list[int]]) -> int:
        v = self.value.get(name)
        if v is None:
            v = self.value[name] = len(succ)
            succ.append([])
        return v

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

    def _upstream_inputs(self) -> dict[str, int]:
        """Per value, a bit mask of the graph inputs it depends on."""
        mask = {name: 1 << i for i, name in enumerate(self.graph.inputs)}
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
        enter, exit_ = self.enter, self.exit
        vertices = [self.value[x] for x in names if x in self.value]
        top = self.node[k]
        if enter[top] < 0:
            return all(enter[v] < 0 for v in vertices)
        lo, hi = enter[top], exit_[top]
        return all(enter[v] < 0 or (lo < enter[v] and exit_[v] < hi) for v in vertices)

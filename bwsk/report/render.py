"""The erasure map as a picture: Graphviz DOT, and SVG/PNG/PDF where ``dot`` is installed.

Nodes are coloured by verdict, K nodes say how many dimensions they erase, edges carry
shapes, blocks become clusters. Weights and everything computed only from weights are hidden:
they are constants, not part of the function being judged. Big graphs stay renderable because
repeats of a block beyond the first collapse into one node ("× 11").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import graphviz

from bwsk.analysis.result import Analysis, BlockVerdict
from bwsk.errors import BwskError
from bwsk.ir import Graph
from bwsk.report.files import atomic_write_text, publish
from bwsk.report.json import variable_inputs

FILL = {"S": "#b7e4b0", "K": "#f4a6a6", "GRAY": "#d9d9d9"}
BORDER = {"S": "#2e7d32", "K": "#c62828", "GRAY": "#757575"}
IMAGE_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
DOT_SUFFIXES = {".dot", ".gv"}
COLLAPSE_OVER = 200  # graphs with more nodes than this collapse repeated blocks
DOT_TIMEOUT_S = 600


@dataclass
class Cluster:
    """A box in the picture: an analysis block, or a module scope when there are no blocks."""

    key: str
    label: str
    nodes: frozenset[str]
    verdict: str | None = None
    repeat_of: str | None = None
    parent: Cluster | None = None


def _block_clusters(blocks: list[BlockVerdict]) -> list[Cluster]:
    return [Cluster(b.name, f"{b.name} ({b.kind}): {b.verdict}", frozenset(b.nodes),
                    b.verdict, b.repeat_of) for b in blocks if b.nodes]


def _natural(key: str) -> list[tuple[int, int, str]]:
    """Sort key putting h.2 before h.10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in key.split(".")]


def _scope_clusters(graph: Graph) -> list[Cluster]:
    """Module scopes (``h.0.attn``) as clusters, skipping prefixes that add no grouping."""
    members: dict[str, set[str]] = {}
    for node in graph.nodes:
        parts = node.scope.split(".") if node.scope else []
        for i in range(1, len(parts) + 1):
            members.setdefault(".".join(parts[:i]), set()).add(node.name)
    clusters, seen = [], set()
    for scope in sorted(members, key=lambda s: (-len(members[s]), _natural(s))):
        group = frozenset(members[scope])
        if len(group) >= 2 and group not in seen and len(group) < len(graph.nodes):
            seen.add(group)
            clusters.append(Cluster(scope, scope, group))
    _mark_scope_repeats(clusters, graph)
    return clusters


def _mark_scope_repeats(clusters: list[Cluster], graph: Graph) -> None:
    """Numbered sibling scopes (h.0 … h.11) running the same op sequence are drawn as repeats.

    This only decides what the picture collapses; verdicts never come from it.
    """
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    ops = {n.name: n.op for n in graph.nodes}
    first: dict[tuple, str] = {}
    for c in sorted(clusters, key=lambda c: _natural(c.key)):
        head, _, last = c.key.rpartition(".")
        if not last.isdigit():
            continue
        signature = (head, tuple(ops[n] for n in sorted(c.nodes, key=order.__getitem__)))
        c.repeat_of = first.setdefault(signature, c.key)
        if c.repeat_of == c.key:
            c.repeat_of = None


def nest_clusters(clusters: list[Cluster]) -> list[Cluster]:
    """Keep the clusters that form a tree (largest first); a straddling one is dropped."""
    owner: dict[str, Cluster | None] = {}
    kept = []
    for cluster in sorted(clusters, key=lambda c: -len(c.nodes)):
        owners = {id(owner.get(n)): owner.get(n) for n in cluster.nodes}
        if len(owners) != 1:
            continue
        cluster.parent = next(iter(owners.values()))
        for n in cluster.nodes:
            owner[n] = cluster
        kept.append(cluster)
    return kept


def weight_only_nodes(graph: Graph) -> set[str]:
    """Nodes whose every input is a constant or derived from constants only."""
    const_values = {name for name, v in graph.values.items() if v.is_const}
    hidden = set()
    for node in graph.nodes:
        if all(not x or x in const_values for x in node.inputs):
            hidden.add(node.name)
            const_values.update(o for o in node.outputs if o)
    return hidden


def _shape_label(graph: Graph, value: str) -> str:
    v = graph.values.get(value)
    if v is None or v.shape is None:
        return ""
    return "×".join(str(d) for d in v.shape) if v.shape else "scalar"


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _esc(text: str) -> str:
    """Text for a DOT label: backslashes kept literal (``\\n`` is ours, a line break)."""
    return text.replace("\\", "\\\\")


class _DotBuilder:
    """Turns one Analysis into a ``graphviz.Digraph``."""

    def __init__(self, analysis: Analysis, collapse_over: int):
        self.analysis, self.graph = analysis, analysis.graph
        self.verdicts = {v.name: v for v in analysis.nodes}
        self.hidden = weight_only_nodes(self.graph)
        self.clusters = nest_clusters(_block_clusters(analysis.blocks)
                                      or _scope_clusters(self.graph))
        self.ids = {n.name: f"n{i}" for i, n in enumerate(self.graph.nodes)}
        self.inputs = {x: f"in{i}" for i, x in enumerate(variable_inputs(self.graph))}
        self.collapsed: dict[str, str] = {}  # node name -> id of the group node replacing it
        self.groups: dict[str, list[Cluster]] = {}  # group id -> the repeats it stands for
        if len(self.graph.nodes) > collapse_over:
            self._collapse_repeats()
        self.owner: dict[str, Cluster] = {}
        for c in self.clusters:  # largest first, so the innermost cluster wins
            self.owner.update(dict.fromkeys(c.nodes, c))

    def _collapse_repeats(self) -> None:
        by_original: dict[str, list[Cluster]] = {}
        gone: set[int] = set()
        for c in self.clusters:  # largest first: an enclosing repeat swallows its parts
            if c.parent is not None and id(c.parent) in gone:
                gone.add(id(c))
            elif c.repeat_of is not None:
                by_original.setdefault(c.repeat_of, []).append(c)
                gone.add(id(c))
        for i, (_, members) in enumerate(sorted(by_original.items())):
            gid = f"g{i}"
            self.groups[gid] = sorted(members, key=lambda c: _natural(c.key))
            for c in members:
                self.collapsed.update(dict.fromkeys(c.nodes, gid))
        self.clusters = [c for c in self.clusters if id(c) not in gone]

    def build(self) -> graphviz.Digraph:
        a, counts = self.analysis, self.analysis.counts()
        title = (f"{a.model}: {a.verdict}   (ops S {counts['S']} · K {counts['K']} · "
                 f"GRAY {counts['GRAY']})")
        dot = graphviz.Digraph(a.model or "model")
        dot.attr(rankdir="TB", label=_esc(title), labelloc="t", fontname="Helvetica")
        dot.attr("node", shape="box", style="rounded,filled", fontname="Helvetica",
                 fontsize="10")
        dot.attr("edge", fontname="Helvetica", fontsize="8", color="#555555")
        for name, nid in self.inputs.items():
            shape = _shape_label(self.graph, name)
            dot.node(nid, f"{_esc(name)}\\n{shape}", shape="ellipse", fillcolor="white")
        self._emit_level(dot, None)
        self._emit_edges(dot)
        return dot

    def _emit_level(self, dot: graphviz.Digraph, parent: Cluster | None) -> None:
        for node in self.graph.nodes:
            if self.owner.get(node.name) is parent and node.name not in self.hidden \
                    and node.name not in self.collapsed:
                self._emit_node(dot, node.name, node.op)
        for gid, members in self.groups.items():
            if members[0].parent is parent:
                self._emit_group(dot, gid, members)
        for child in (c for c in self.clusters if c.parent is parent):
            with dot.subgraph(name=f"cluster_{self.clusters.index(child)}") as sub:
                border = BORDER.get(child.verdict or "", "#9e9e9e")
                sub.attr(label=_esc(child.label), color=border, penwidth="1.5",
                         style="rounded", fontsize="11")
                self._emit_level(sub, child)

    def _emit_node(self, dot: graphviz.Digraph, name: str, op: str) -> None:
        v = self.verdicts.get(name)
        verdict = v.verdict if v else "?"
        label = f"{_esc(_short(name))}\\n{_esc(v.op if v else op)}"
        if verdict == "K":
            dims = v.erased_dims
            label += "\\nerases ? dims" if dims is None else \
                f"\\nerases {dims} dim{'s' if dims != 1 else ''}"
        dot.node(self.ids[name], label, fillcolor=FILL.get(verdict, "white"),
                 tooltip=_esc(f"{verdict}: {v.reason}" if v else "no verdict"))

    def _emit_group(self, dot: graphviz.Digraph, gid: str, members: list[Cluster]) -> None:
        verdicts = {c.verdict for c in members}
        verdict = verdicts.pop() if len(verdicts) == 1 else None
        span = members[0].key if len(members) == 1 else f"{members[0].key} … {members[-1].key}"
        label = f"× {len(members)}\\n{_esc(span)}\\nrepeats of {_esc(members[0].repeat_of or '')}"
        if verdict:
            label += f": {verdict}"
        dot.node(gid, label, shape="box3d", style="filled",
                 fillcolor=FILL.get(verdict or "", "white"))

    def _endpoint(self, value: str) -> str | None:
        if value in self.inputs:
            return self.inputs[value]
        producer = self.graph.producer.get(value)
        if producer is None or producer.name in self.hidden:
            return None
        return self.collapsed.get(producer.name) or self.ids[producer.name]

    def _emit_edges(self, dot: graphviz.Digraph) -> None:
        seen: set[tuple[str, str, str]] = set()
        sinks = [(x, f"out{i}") for i, x in enumerate(self.graph.outputs)]
        for i, (x, oid) in enumerate(sinks):
            dot.node(oid, f"output {i}\\n{_shape_label(self.graph, x)}", shape="ellipse",
                     fillcolor="white")
        uses = [(x, self.collapsed.get(n.name) or self.ids[n.name], n.name in self.collapsed)
                for n in self.graph.nodes if n.name not in self.hidden for x in n.inputs if x]
        for x, dst, grouped in uses + [(x, oid, False) for x, oid in sinks]:
            src = self._endpoint(x)
            if src is None or src == dst:
                continue
            key = (src, dst, "" if grouped or src in self.groups else x)
            if key not in seen:
                seen.add(key)
                dot.edge(src, dst, label=_esc(_shape_label(self.graph, x)))


def to_dot(analysis: Analysis, collapse_over: int = COLLAPSE_OVER) -> str:
    """The DOT source of the erasure map."""
    return _DotBuilder(analysis, collapse_over).build().source


@dataclass
class DotOutput:
    dot_path: Path
    image_path: Path | None
    message: str


def write_dot(analysis: Analysis, path: str | os.PathLike[str],
              collapse_over: int = COLLAPSE_OVER) -> DotOutput:
    """Write ``path`` (.dot/.gv), or ``path``'s .dot plus the image its extension names."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in DOT_SUFFIXES and suffix not in IMAGE_FORMATS:
        allowed = ", ".join(sorted(DOT_SUFFIXES | set(IMAGE_FORMATS)))
        raise BwskError(f"--dot {target}: the extension must be one of {allowed}")
    dot_path = target if suffix in DOT_SUFFIXES else target.with_suffix(".dot")
    atomic_write_text(dot_path, to_dot(analysis, collapse_over))
    if suffix in DOT_SUFFIXES:
        return DotOutput(dot_path, None, f"wrote {dot_path}")
    exe = shutil.which("dot")
    if exe is None:
        return DotOutput(dot_path, None, f"Graphviz 'dot' not found: wrote {dot_path}; "
                         f"install graphviz to get {target}")
    _run_dot(exe, dot_path, target, IMAGE_FORMATS[suffix])
    return DotOutput(dot_path, target, f"wrote {dot_path} and {target}")


def _run_dot(exe: str, dot_path: Path, target: Path, fmt: str) -> None:
    """Render into a temporary file and rename it, so a failed run leaves no broken image."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".{fmt}", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([exe, f"-T{fmt}", str(dot_path), "-o", tmp], capture_output=True,
                              text=True, timeout=DOT_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["no message"])[0]
            raise BwskError(f"Graphviz 'dot' failed on {dot_path}: {first}")
        publish(tmp, target)
    except subprocess.TimeoutExpired:
        raise BwskError(f"Graphviz 'dot' took over {DOT_TIMEOUT_S} s on {dot_path}; "
                        "open the .dot file with another viewer") from None
    finally:
        Path(tmp).unlink(missing_ok=True)

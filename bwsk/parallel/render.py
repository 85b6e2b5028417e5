"""Show a plan: a terminal table per axis, and a Graphviz picture of its segments.

Repeated transformer blocks are summarized ("per layer: 2 all_reduce fwd, ...") when every
block syncs the same way; the picture draws each coordination-free segment (ops connected
without passing a sync point) as a cluster and every sync point as a red edge.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from bwsk.ir import Graph
from bwsk.parallel.analysis import PHASES, per_layer

NEWLINE = "\\n"  # a line break inside a DOT label


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _signature(points: list[dict], layer: str) -> tuple:
    return tuple(sorted((p["where"].removeprefix(layer), p["phase"], p["collective"], p["bytes"],
                         p["count"]) for p in points))


def layer_summary(sync: list[dict]) -> tuple[str | None, list[dict]]:
    """("per layer: ...", the other sync points) or (None, all points). The layers summarized
    are the largest group planned alike; a layer planned otherwise (OPT's first, fed by
    split embeddings) is listed point by point with the rest."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for k, v in per_layer(sync).items():
        groups.setdefault(_signature(v, k), {})[k] = v
    layers = max(groups.values(), key=len, default={})
    if len(layers) < 2:
        return None, sync
    first = next(iter(layers.values()))
    counts: Counter = Counter()
    fusable: Counter = Counter()
    sizes: dict[tuple, set] = {}
    for p in first:
        order = PHASES.index(p["phase"]) if p["phase"] in PHASES else len(PHASES)
        key = (order, p["phase"], p["collective"])
        counts[key] += p["count"]
        sizes.setdefault(key, set()).add(p["bytes"])
        fusable[key] += 0 if p["minimal"] else p["count"]
    parts = []
    for key, n in sorted(counts.items()):
        each = "/".join(human(b) for b in sorted(sizes[key]))
        extra = f"; {fusable[key]} could be summed into fewer" if fusable[key] else ""
        parts.append(f"{n} {key[2].replace('_', '-')} {key[1]} ({each}{extra})")
    inside = {id(p) for pts in layers.values() for p in pts}
    names = list(layers)
    total = sum(len(group) for group in groups.values())
    count = f"{len(names)} layers" if total == len(names) else f"{len(names)} of {total} layers"
    text = f"per layer ({count}, {names[0]} .. {names[-1]}): {', '.join(parts)}"
    return text, [p for p in sync if id(p) not in inside]


def print_report(report: dict, tokens: int, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(f"[bold]{report['model']}[/] on {report['world_size']} ranks "
                  f"({tokens} tokens per step)")
    for skip in report.get("skipped", []):
        console.print(f"[yellow]{skip['axis']}: skipped[/] ({skip['reason']})")
    for axis in report["axes"]:
        tot = axis["totals"]
        counts = "; ".join(f"{ph}: " + ", ".join(f"{n} {c}" for c, n in tot[ph].items())
                           for ph in ("fwd", "bwd", "optim") if tot.get(ph))
        per_token = human(tot["bytes_per_step"] / max(tokens, 1))
        console.print(f"\n[bold]{axis['axis']}[/]  {human(tot['bytes_per_step'])} per step, "
                      f"{per_token} per token  ({counts or 'no sync'})")
        summary, rest = layer_summary(axis["sync_points"])
        if summary:
            console.print("  " + summary)
        if rest:
            table = Table(show_header=True, header_style="bold")
            table.add_column("where", overflow="fold", min_width=16)
            for col in ("phase", "collective", "shape", "bytes", "count", "minimal"):
                table.add_column(col, overflow="fold")
            for p in rest:
                table.add_row(p["where"], p["phase"], p["collective"], str(p["shape"]),
                              human(p["bytes"]), str(p["count"]), "yes" if p["minimal"] else "no")
            console.print(table)


def _segments(g: Graph, cut: set[tuple[str, str]]) -> dict[str, int]:
    parent = {n.name: n.name for n in g.nodes}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for n in g.nodes:
        for x in n.inputs:
            src = g.producer.get(x)
            if src is not None and (x, n.name) not in cut:
                parent[find(src.name)] = find(n.name)
    roots: dict[str, int] = {}
    return {n.name: roots.setdefault(find(n.name), len(roots)) for n in g.nodes}


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(g: Graph, axis: dict) -> str:
    cut = {tuple(e) for e in axis.get("_cut_edges", [])}
    synced = set(axis.get("_sync_values", []))  # results reconciled by a collective: red
    seg = _segments(g, cut)
    lines = [f"digraph {_q(axis['axis'])} {{", "  rankdir=TB; node [shape=box, fontsize=10];"]
    for k in sorted(set(seg.values())):
        members = [n for n in g.nodes if seg[n.name] == k]
        label = _q(f"coordination-free segment {k} ({len(members)} ops)")
        lines.append(f"  subgraph cluster_{k} {{ label={label}; style=rounded; color=darkgreen;")
        lines += [f"    {_q(n.name)} [label={_q(n.op + NEWLINE + n.scope)}"
                  f"{', color=red, penwidth=2' if synced & set(n.outputs) else ''}];"
                  for n in members]
        lines.append("  }")
    for n in g.nodes:
        for x in n.inputs:
            src = g.producer.get(x)
            if src is None:
                continue
            attrs = ' [color=red, penwidth=2, label="sync"]' if (x, n.name) in cut else ""
            lines.append(f"  {_q(src.name)} -> {_q(n.name)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_dot(g: Graph, report: dict, path: Path) -> list[str]:
    """Write one .dot (and .svg when Graphviz is installed) per axis; return messages."""
    axes = report["axes"]
    messages = []
    for axis in axes:
        stem = path.with_suffix("") if len(axes) == 1 else path.with_suffix(f".{axis['axis']}")
        dot_path = stem.with_suffix(".dot") if path.suffix != ".dot" or len(axes) > 1 else path
        if len(axes) > 1:
            dot_path = Path(f"{stem}.dot")
        dot_path.write_text(to_dot(g, axis))
        messages.append(f"wrote {dot_path}")
        if shutil.which("dot") is None:
            messages.append("Graphviz 'dot' is not installed: wrote the .dot file only, no SVG")
            continue
        svg = Path(re.sub(r"\.dot$", ".svg", str(dot_path)))
        subprocess.run(["dot", "-Tsvg", str(dot_path), "-o", str(svg)], check=True)
        messages.append(f"wrote {svg}")
    return list(dict.fromkeys(messages))

"""The terminal summary: the verdict with its certificate, counts, erasure points, blocks.

Everything user-provided (node names, reasons) goes through ``Text`` so that a name such as
``h[0]`` is never read as rich markup.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from bwsk.analysis.result import Analysis, BlockVerdict, NodeVerdict
from bwsk.report.json import summary, variable_inputs

STYLE = {"S": "bold green", "K": "bold red", "GRAY": "bold bright_black"}
MAX_CONDITIONS = 5  # the JSON report has them all
MEANING = {"S": "injective (proved)", "K": "not injective (collision witness)",
           "GRAY": "undecided"}


def _verdict(verdict: str) -> Text:
    return Text(verdict, style=STYLE.get(verdict, ""))


def headline(analysis: Analysis) -> Text:
    text = Text.assemble(("model ", "dim"), (analysis.model, "bold"), ("  verdict ", "dim"),
                         _verdict(analysis.verdict), f" — {MEANING.get(analysis.verdict, '')}")
    if analysis.reason:
        text.append(f"\n  {analysis.reason}")
    return text


def certificate(analysis: Analysis) -> Text:
    """One or more lines saying what backs the model's verdict."""
    if analysis.verdict == "S":
        inv = "available" if analysis.inverse is not None else "not built"
        flags = [f"{flag.replace('_', '-')}: {'yes' if analysis.extra[flag] else 'no'}"
                 for flag in ("bijective", "well_conditioned") if flag in analysis.extra]
        return Text(f"certificate: left-inverse program {inv}"
                    + (f" ({', '.join(flags)})" if flags else ""))
    if analysis.verdict == "K":
        return Text("certificate: " + _witness_line(analysis))
    conditions = analysis.conditions or ["no deciding condition known"]
    more = len(conditions) - MAX_CONDITIONS
    text = "; ".join(conditions[:MAX_CONDITIONS]) + (f"; … and {more} more" if more > 0 else "")
    return Text("would be decided by: " + text)


def _witness_line(analysis: Analysis) -> str:
    witness = analysis.witness
    if witness is None:
        return "no witness attached"
    parts = []
    for name in variable_inputs(analysis.graph):
        if name in witness.a and name in witness.b:
            a = np.asarray(witness.a[name], dtype=np.float64)
            b = np.asarray(witness.b[name], dtype=np.float64)
            gap = float(np.abs(a - b).max()) if a.size else 0.0
            parts.append(f"{name}{list(a.shape)} max|a-b|={gap:.3g}")
    return "collision witness a≠b with equal outputs: " + ", ".join(parts)


def counts_table(analysis: Analysis) -> Table:
    info = summary(analysis)
    table = Table(title=f"{info['ops']} primitive ops", title_justify="left")
    for column in ("verdict", "ops", "ratio"):
        table.add_column(column, justify="left" if column == "verdict" else "right")
    for key, ratio in (("S", "s_ratio"), ("K", "k_ratio"), ("GRAY", "gray_ratio")):
        table.add_row(_verdict(key), str(info[key]), f"{100 * info[ratio]:.1f} %")
    return table


def erasure_table(nodes: list[NodeVerdict], top: int = 10) -> Table | None:
    """The K nodes losing the most degrees of freedom (unknown counts last).

    Nodes erasing the same way (op, dims, reason), typically one per repeated layer, share
    a row so that twelve layers do not push everything else off the table.
    """
    groups: dict[tuple, list[NodeVerdict]] = {}
    for n in nodes:
        if n.verdict == "K":
            groups.setdefault((n.op, n.erased_dims, n.reason), []).append(n)
    if not groups:
        return None
    ranked = sorted(groups.values(), key=lambda g: (g[0].erased_dims is None,
                                                    -(g[0].erased_dims or 0), -len(g)))
    shown = ranked[:top]
    total = sum(len(g) for g in groups.values())
    table = Table(title=f"top erasure points ({sum(len(g) for g in shown)} of {total} K nodes)",
                  title_justify="left")
    for column in ("node", "op", "erased dims", "reason"):
        table.add_column(column, overflow="fold")
    for group in shown:
        first = group[0]
        name = first.name if len(group) == 1 else f"{len(group)} × {first.name}, …"
        dims = "?" if first.erased_dims is None else str(first.erased_dims)
        table.add_row(Text(name), Text(first.op), dims, Text(first.reason))
    return table


def gray_table(nodes: list[NodeVerdict], top: int = 8) -> Table | None:
    """Undecided ops grouped by operator, with what would decide them."""
    groups: dict[str, list[NodeVerdict]] = {}
    for n in nodes:
        if n.verdict == "GRAY":
            groups.setdefault(n.op, []).append(n)
    if not groups:
        return None
    table = Table(title="undecided (GRAY) ops", title_justify="left")
    for column in ("op", "count", "would be decided by"):
        table.add_column(column, overflow="fold")
    for op, members in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:top]:
        conditions = dict.fromkeys(c for n in members for c in n.conditions)
        decided_by = "; ".join(list(conditions)[:3]) or members[0].reason
        table.add_row(Text(op), str(len(members)), Text(decided_by))
    return table


def dedup_blocks(blocks: list[BlockVerdict]) -> list[tuple[BlockVerdict, int]]:
    """Each distinct block with its number of occurrences (itself plus its repeats)."""
    repeats = Counter(b.repeat_of for b in blocks if b.repeat_of is not None)
    names = {b.name for b in blocks}
    out = [(b, 1 + repeats.get(b.name, 0)) for b in blocks if b.repeat_of is None]
    # A repeat whose original is missing still has to be shown once.
    orphans = [b for b in blocks if b.repeat_of is not None and b.repeat_of not in names]
    seen: set[str] = set()
    for b in orphans:
        if b.repeat_of not in seen:
            seen.add(b.repeat_of)
            out.append((b, repeats[b.repeat_of]))
    return out


def blocks_table(blocks: list[BlockVerdict]) -> Table | None:
    if not blocks:
        return None
    table = Table(title=f"blocks ({len(blocks)})", title_justify="left")
    for column in ("block", "kind", "verdict", "reason"):
        table.add_column(column, overflow="fold")
    for block, count in dedup_blocks(blocks):
        label = f"{count} × {block.name}" if count > 1 else block.name
        shown = block.conditions[:MAX_CONDITIONS]
        reason = block.reason + "".join(f"\n  decided by: {c}" for c in shown)
        table.add_row(Text(label), Text(block.kind), _verdict(block.verdict), Text(reason))
    return table


def render_summary(analysis: Analysis) -> Group:
    parts = [headline(analysis), certificate(analysis), counts_table(analysis)]
    tables = (erasure_table(analysis.nodes), gray_table(analysis.nodes),
              blocks_table(analysis.blocks))
    parts += [t for t in tables if t is not None]
    return Group(*parts)


def print_summary(analysis: Analysis, console: Console | None = None) -> None:
    """Print the summary to the terminal (stdout unless a console is given)."""
    (console or Console()).print(render_summary(analysis))

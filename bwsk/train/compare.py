"""``bwsk train --compare``: every mode on the same data, seed and steps, one table, one plot.

Each mode runs in its own process so that peak RSS is that mode's own; a mode that
refuses (its one-line error) is reported in the table instead of stopping the others.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bwsk.train.checkpoint import write_atomic
from bwsk.train.config import MODES, TrainConfig
from bwsk.train.plots import plot_curves

COLUMNS = (("mode", "{}"), ("steps", "{}"), ("final_loss", "{:.4f}"),
           ("val_perplexity", "{:.2f}"), ("test_perplexity", "{:.2f}"),
           ("saved_activation_bytes", "{:,}"), ("peak_rss_bytes", "{:,}"),
           ("train_time_s", "{:.1f}"), ("tokens_per_s", "{:.0f}"))


def command(cfg: TrainConfig, mode: str, out: Path) -> list[str]:
    """The ``bwsk train`` command line that reproduces ``cfg`` in ``mode`` into ``out``."""
    args = [sys.executable, "-m", "bwsk", "train"]
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name in ("mode", "out", "resume", "progress") or value is None \
                or value == getattr(defaults, f.name):
            continue
        args += [f"--{f.name.replace('_', '-')}", str(value)]
    return [*args, "--mode", mode, "--out", str(out), "--no-progress"]


def run_mode(cfg: TrainConfig, mode: str, out: Path) -> dict[str, Any]:
    proc = subprocess.run(command(cfg, mode, out), capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        return {"mode": mode, "error": lines[-1]}
    return json.loads((out / "results.json").read_text())


def compare(cfg: TrainConfig, modes: tuple[str, ...] = MODES) -> str:
    """Run ``modes`` into ``--out/MODE``; write compare.json, compare.md and compare.png."""
    root = cfg.out_dir
    root.mkdir(parents=True, exist_ok=True)
    docs = [run_mode(cfg, mode, root / mode) for mode in modes]
    table = format_table(docs)
    write_atomic(root / "compare.json", json.dumps(
        [{k: v for k, v in d.items() if k != "curves"} for d in docs], indent=2))
    write_atomic(root / "compare.md", table + "\n")
    curves = {d["mode"]: d["curves"] for d in docs if "curves" in d}
    if curves:
        plot_curves(curves, root / "compare.png",
                    title=f"{cfg.arch}: all modes, seed {cfg.seed}, same batches")
    return table


def format_table(docs: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = []
    for d in docs:
        if "error" in d:
            rows.append(f"| {d['mode']} | refused: {d['error']} |" + " |" * (len(COLUMNS) - 2))
            continue
        rows.append("| " + " | ".join(fmt.format(d[name]) if d.get(name) is not None else "-"
                                      for name, fmt in COLUMNS) + " |")
    return "\n".join([head, rule, *rows])

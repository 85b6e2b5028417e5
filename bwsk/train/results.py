"""The output directory: refusing unsafe reuse, a progress bar, results.json and the plot."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bwsk.errors import TrainingError
from bwsk.train import checkpoint

if TYPE_CHECKING:
    from bwsk.train.config import TrainConfig
    from bwsk.train.loop import Trainer


def prepare_out(cfg: TrainConfig, is_main: bool) -> Path:
    """Create ``--out`` and prove it writable before any work; never clobber a run."""
    out = cfg.out_dir
    if not is_main:
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except OSError as exc:
        raise TrainingError(f"--out {out} is not writable: {exc.strerror or exc}") from exc
    if checkpoint.has_checkpoint(out) and not cfg.resume:
        raise TrainingError(f"--out {out} already holds a training run; pass --resume to "
                            "continue it or choose another directory")
    if cfg.resume and not checkpoint.has_checkpoint(out):
        raise TrainingError(f"--resume: no checkpoint in {out / 'checkpoints'}")
    return out


class _NoBar:
    def update(self, _n: int) -> None: ...
    def set_postfix(self, **_kw) -> None: ...
    def close(self) -> None: ...


def progress(cfg: TrainConfig, is_main: bool, total: int, done: int):
    """A tqdm bar on stderr on the main rank, when asked for."""
    if not (cfg.progress and is_main):
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=f"train {cfg.mode}", unit="step",
                file=sys.stderr, dynamic_ncols=True)


def summarize(trainer: Trainer, *, val: float, test: float, saved_bytes: int, peak_rss: int,
              tokens: int) -> dict[str, Any]:
    cfg, state, model = trainer.cfg, trainer.state, trainer.model
    hf_cfg = model.hf.config
    losses = state["losses"]
    return {
        "mode": cfg.mode, "experiment": cfg.experiment, "arch": cfg.arch,
        "model": {"layers": hf_cfg.num_hidden_layers, "d_model": hf_cfg.hidden_size,
                  "heads": hf_cfg.num_attention_heads,
                  "parameters": sum(p.numel() for p in model.parameters())},
        "mode_info": trainer.mode_info,
        "data": trainer.data_source, "vocab_size": len(trainer.vocab),
        "perplexity_unit": "word-level token (WikiText words + <eos> per line)" + (
            "; the checkpoint's own subword tokenizer, NLL summed per word"
            if cfg.experiment == "finetune" else ""),
        "seq_len": cfg.seq_len, "batch_size": cfg.batch_size, "seed": cfg.seed,
        "precision": cfg.precision, "world_size": trainer.world.size,
        "parallel": trainer.axis and {"axis": trainer.axis, "microbatches": trainer.microbatches,
                                      "plan": "plan.json"},
        "steps": state["step"], "epochs": state["step"] / trainer.batches.steps_per_epoch,
        "stopped": state["stopped"],
        "final_loss": losses[-1] if losses else None,
        "val_loss": val, "val_perplexity": math.exp(val),
        "test_loss": test, "test_perplexity": math.exp(test),
        "saved_activation_bytes": saved_bytes, "peak_rss_bytes": peak_rss,
        "train_time_s": state["train_time"], "train_cpu_s": state["train_cpu"],
        "tokens_per_s": tokens / state["train_time"] if state["train_time"] > 0 else None,
    }


def write(out: Path, summary: dict[str, Any], state: dict[str, Any]) -> None:
    """results.json (summary + curves) and loss.png, each replaced atomically."""
    from bwsk.train.plots import plot_curves

    doc = dict(summary, curves={"train_loss": state["losses"], "val": state["evals"]})
    checkpoint.write_atomic(out / "results.json", json.dumps(doc, indent=2))
    tmp = out / f".loss.{os.getpid()}.png"
    plot_curves({summary["mode"]: doc["curves"]}, tmp, title=_title(summary))
    os.replace(tmp, out / "loss.png")


def _title(summary: dict[str, Any]) -> str:
    m = summary["model"]
    return (f"{summary['arch']} {m['layers']}L d{m['d_model']} — {summary['experiment']}, "
            f"test ppl {summary['test_perplexity']:.1f}")

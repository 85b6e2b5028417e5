"""The training loop: AdamW, cosine schedule with warmup, clipping, early stopping,
atomic checkpoints with exact resume, clean Ctrl-C, and a refusal to continue past NaN.

What differs per ``--parallel`` axis (batch rows, forward/backward, norms, evaluation,
the sharded state) lives in the engine (bwsk/train/parallel.py).
"""

from __future__ import annotations

import json
import math
import signal
import time
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bwsk.errors import TrainingError
from bwsk.train import checkpoint, results
from bwsk.train.config import TrainConfig
from bwsk.train.data import SubwordVocab, TrainBatches, Vocab, eval_windows, load_splits
from bwsk.train.distributed import World, setup
from bwsk.train.memory import peak_rss_bytes
from bwsk.train.models import build_model, check_context, load_pretrained
from bwsk.train.modes import apply_mode
from bwsk.train.parallel import build_engine, print_plan


def cosine_with_warmup(warmup: int, total: int):
    """LR multiplier: linear warmup, then cosine decay to zero at ``total``."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a checkpoint is whole."""

    def __init__(self):
        self.caught: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.caught = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, cfg: TrainConfig, world: World | None = None):
        self.cfg = cfg.validate()
        self.world = world or setup(cfg.parallel, cfg.batch_size, cfg.microbatches)
        self.axis = cfg.parallel or ("dp" if self.world.size > 1 else None)
        self.microbatches = (cfg.microbatches or self.world.size) if self.axis == "pp" else None
        self.out = results.prepare_out(cfg, self.world.is_main)
        splits = load_splits(cfg.data)
        self.data_source = splits.source
        torch.manual_seed(cfg.seed)
        self.vocab, self.model = self._vocab_and_model(splits)
        self._encode(splits)
        check_context(self.model, cfg.seq_len)
        x, y = self.batches.batch(0)
        self.mode_info = apply_mode(self.model, cfg.mode,
                                    self.world.shard(torch.cat([x, y[:, -1:]], dim=1)),
                                    cfg.memory_budget)
        saved = self._load_checkpoint() if cfg.resume else None  # before any sharding
        self.engine = build_engine(self.model, self.world, self.axis, batch=cfg.batch_size,
                                   seq_len=cfg.seq_len, example=x,
                                   microbatches=self.microbatches, loss_fn=self._pipeline_loss)
        self.net = self.engine.net
        self._write_plan()
        self._optimizer()
        self.state: dict[str, Any] = {"step": 0, "losses": [], "evals": [], "best_val": None,
                                      "bad_evals": 0, "train_time": 0.0, "train_cpu": 0.0,
                                      "stopped": None}
        if saved is not None:
            self._restore(saved)

    def _encode(self, splits) -> None:
        cfg = self.cfg
        encoded = {name: self.vocab.encode_words(getattr(splits, name))
                   for name in ("train", "valid", "test")}
        self.streams = {name: ids for name, (ids, _) in encoded.items()}
        # perplexity is per word: the number of words whose first token is predicted
        self.n_words = {name: int(starts[1:].sum()) for name, (_, starts) in encoded.items()}
        self.batches = TrainBatches(self.streams["train"], cfg.seq_len, cfg.batch_size,
                                    cfg.seed)

    def _optimizer(self) -> None:
        """AdamW over the parameters this rank holds, cosine schedule with warmup."""
        cfg = self.cfg
        self.total_steps = min(cfg.max_steps or 10**12, cfg.epochs * self.batches.steps_per_epoch)
        self.opt = torch.optim.AdamW(self.engine.parameters(), lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, cosine_with_warmup(min(cfg.warmup_steps, self.total_steps),
                                         self.total_steps))

    def _vocab_and_model(self, splits):
        """Scratch: word vocabulary + random weights; finetune: the checkpoint's own."""
        cfg = self.cfg
        if cfg.experiment == "finetune":
            model = load_pretrained(Path(cfg.arch))
            return SubwordVocab.load(Path(cfg.arch)), model
        vocab = Vocab.build(splits.train)
        return vocab, build_model(cfg.arch, len(vocab), layers=cfg.layers,
                                  d_model=cfg.d_model, heads=cfg.heads, dropout=cfg.dropout)

    # -- one step -------------------------------------------------------------------------
    def _autocast(self):
        if self.cfg.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    def _loss(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            logits = net(x)
        return nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    @staticmethod
    def _pipeline_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    def _step(self, step: int) -> float:
        x, y = self.engine.batch(*self.batches.batch(step))
        loss = self.engine.forward_backward(x, y, self._loss)  # global: the same on all ranks
        if self.world.any(not torch.isfinite(loss).item()):  # before the update
            raise TrainingError(f"loss is {loss.item()} at step {step + 1}: training stopped; "
                                f"the last good checkpoint in {self.out / 'checkpoints'} "
                                "is kept")
        self.engine.clip(self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.item()

    # -- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str) -> float:
        """NLL per word-level token over the whole split (subword NLL summed per word)."""
        self.model.eval()
        windows = eval_windows(self.streams[split], self.cfg.seq_len,
                               max(16, self.cfg.batch_size))
        total = self.engine.nll_sum(windows, self._nll)
        self.model.train()
        return total / self.n_words[split]

    def _nll(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        with self._autocast():
            logits = model(x)
        return nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten(),
                                           reduction="sum").item()

    def _early_stop(self) -> bool:
        """Evaluate on val; True once ``patience`` evaluations passed without improvement."""
        val = self.evaluate("valid")
        self.state["evals"].append({"step": self.state["step"], "val_loss": val})
        best = self.state["best_val"]
        if best is None or val < best:
            self.state["best_val"], self.state["bad_evals"] = val, 0
        else:
            self.state["bad_evals"] += 1
        return 0 < self.cfg.patience <= self.state["bad_evals"]

    # -- checkpoints ----------------------------------------------------------------------
    def save(self) -> None:
        """The unsharded state, whatever the axis (gathering it is collective)."""
        weights, optimizer = self.engine.weights(), self.engine.optimizer_state(self.opt)
        if self.world.is_main:
            state = dict(self.state, optimizer=optimizer,
                         scheduler=self.sched.state_dict(), rng=torch.get_rng_state(),
                         config=self.cfg.to_dict(), vocab_size=len(self.vocab))
            checkpoint.save(self.out, weights, state)
        self.world.barrier()

    def resume(self) -> None:
        """Reload the latest checkpoint (one process; a sharded run resumes in __init__)."""
        self._restore(self._load_checkpoint())

    def _load_checkpoint(self) -> dict[str, Any]:
        """Weights into the unsharded model; the rest of the saved state, checked."""
        saved = checkpoint.load(self.out, self.model)
        changed = self.cfg.differs_from(saved.get("config", {}))
        if changed:
            raise TrainingError(f"--resume: the checkpoint was trained with different "
                                f"{', '.join('--' + c.replace('_', '-') for c in changed)}")
        return saved

    def _restore(self, saved: dict[str, Any]) -> None:
        self.engine.load_optimizer_state(self.opt, saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        self.state = {k: saved[k] for k in self.state}

    # -- the run --------------------------------------------------------------------------
    def _write_plan(self) -> None:
        """plan.json beside results.json, and its summary once, on rank 0."""
        report = self.engine.report
        if report is None or not self.world.is_main:
            return

        checkpoint.write_atomic(self.out / "plan.json", json.dumps(report, indent=1))
        print_plan(report, self.cfg.batch_size * self.cfg.seq_len)

    def run(self) -> dict[str, Any]:
        self.state["stopped"] = None
        with _StopSignal() as stop:
            self._train(stop)
        if self.state["stopped"] == "interrupted":
            self.save()
            raise KeyboardInterrupt
        self.save()
        return self._finish()

    def _train(self, stop: _StopSignal) -> None:
        bar = results.progress(self.cfg, self.world.is_main, self.total_steps, self.state["step"])
        self.model.train()
        while self.state["step"] < self.total_steps:
            if self.world.any(stop.caught is not None):
                self.state["stopped"] = "interrupted"
                break
            t0, c0 = time.perf_counter(), time.process_time()
            loss = self._step(self.state["step"])
            self.state["train_time"] += time.perf_counter() - t0
            self.state["train_cpu"] += time.process_time() - c0
            self.state["step"] += 1
            self.state["losses"].append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if self._periodic():
                break
        else:
            self.state["stopped"] = "max_steps"
        bar.close()

    def _periodic(self) -> bool:
        """Evaluate and checkpoint on schedule; True when early stopping fires."""
        step, cfg = self.state["step"], self.cfg
        stop = step % cfg.eval_every == 0 and self._early_stop()
        if stop:
            self.state["stopped"] = "early_stopping"
        if step % cfg.checkpoint_every == 0 and step < self.total_steps and not stop:
            self.save()
        return stop

    def _finish(self) -> dict[str, Any]:
        val, test = self.evaluate("valid"), self.evaluate("test")
        saved = self.engine.saved_bytes(*self.engine.batch(*self.batches.batch(0)), self._loss)
        tokens = self.state["step"] * self.cfg.batch_size * self.cfg.seq_len
        summary = results.summarize(self, val=val, test=test, saved_bytes=saved,
                                    peak_rss=peak_rss_bytes(), tokens=tokens)
        if self.world.is_main:
            results.write(self.out, summary, self.state)
        self.world.close()
        return summary


def train(cfg: TrainConfig) -> dict[str, Any]:
    """One run; the process group is left whether it ends, fails or is interrupted."""
    cfg.validate()
    world = setup(cfg.parallel, cfg.batch_size, cfg.microbatches)
    try:
        return Trainer(cfg, world).run()
    finally:
        world.close()

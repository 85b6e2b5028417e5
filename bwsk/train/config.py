"""Everything a training run depends on, in one validated record.

The record is stored in every checkpoint, so ``--resume`` can refuse to continue a run
under a different configuration instead of silently mixing two experiments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from bwsk.errors import TrainingError

MODES = ("conventional", "analyzed", "reversible", "recompute")
EXPERIMENTS = ("scratch", "finetune")
PRECISIONS = ("fp32", "bf16")
PARALLEL = ("dp", "tp", "sp", "pp")

# Fields that may differ between the interrupted and the resumed invocation. Checkpoints hold
# the unsharded (canonical) state, so a run may resume under another --parallel axis.
RESUMABLE_OVERRIDES = ("max_steps", "epochs", "resume", "progress", "out", "checkpoint_every",
                       "parallel", "microbatches")


@dataclass
class TrainConfig:
    arch: str = "gpt2"
    layers: int | None = None
    d_model: int | None = None
    heads: int | None = None
    seq_len: int = 128
    batch_size: int = 8
    epochs: int = 1
    max_steps: int | None = None
    seed: int = 0
    out: str = "out/train"
    mode: str = "conventional"
    experiment: str = "scratch"
    data: str | None = None
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    patience: int = 0  # evaluations without val improvement before stopping; 0 = never
    eval_every: int = 100
    checkpoint_every: int = 100
    precision: str = "fp32"
    memory_budget: int | None = None  # bytes of saved activations per step, for recompute
    dropout: float = 0.0
    resume: bool = False
    progress: bool = True
    parallel: str | None = None  # dp|tp|sp|pp under torchrun; None: dp when several ranks
    microbatches: int | None = None  # pp only; None: one per rank


    def validate(self) -> TrainConfig:
        """Reject settings that would fail late (after data loading) or train nonsense."""
        _one_of("mode", self.mode, MODES)
        _one_of("experiment", self.experiment, EXPERIMENTS)
        _one_of("precision", self.precision, PRECISIONS)
        for name in ("seq_len", "batch_size", "epochs", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("layers", "d_model", "heads", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1")
        if self.lr <= 0 or self.grad_clip <= 0:
            raise TrainingError("--lr and --grad-clip must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise TrainingError("--dropout must be in [0, 1)")
        if self.experiment == "finetune" and any(
                getattr(self, n) is not None for n in ("layers", "d_model", "heads")):
            raise TrainingError("size overrides (--layers, --d-model, --heads) apply to "
                                "--experiment scratch; a fine-tuned checkpoint keeps its sizes")
        self._validate_parallel()
        if self.mode == "reversible" and self.experiment == "finetune":
            raise TrainingError("reversible mode rebuilds the network as two-stream couplings, "
                                "which changes its function: use it with --experiment scratch "
                                "(recompute or analyzed keep the function for fine-tuning)")
        return self

    def _validate_parallel(self) -> None:
        if self.parallel is not None:
            _one_of("parallel", self.parallel, PARALLEL)
        if self.microbatches is not None:
            if self.parallel != "pp":
                raise TrainingError("--microbatches applies to --parallel pp")
            if self.microbatches < 1 or self.batch_size % self.microbatches:
                raise TrainingError(f"--batch-size {self.batch_size} is not divisible into "
                                    f"{self.microbatches} microbatches")
        if self.parallel in ("tp", "sp", "pp"):
            if self.mode != "conventional":
                raise TrainingError(f"--parallel {self.parallel} shards the model as built; "
                                    f"--mode {self.mode} rewrites its blocks, which the plan "
                                    "does not cover: use --parallel dp")
            if self.precision != "fp32":
                raise TrainingError(f"--parallel {self.parallel} trains in fp32 only (bf16 "
                                    "autocast over sharded tensors is not verified): use "
                                    "--parallel dp")

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def differs_from(self, saved: dict) -> list[str]:
        """Names of fields that changed since the checkpoint was written."""
        mine = self.to_dict()
        return [k for k in mine if k not in RESUMABLE_OVERRIDES and saved.get(k) != mine[k]]


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise TrainingError(f"--{name} must be one of {', '.join(allowed)} (got {value!r})")

"""Training on WikiText-2: conventional, recompute, reversible and analyzed modes.

``Trainer`` and ``train`` load lazily: the CLI imports the config without torch.
"""

from __future__ import annotations

from bwsk.train.config import TrainConfig

__all__ = ["TrainConfig", "Trainer", "train"]


def __getattr__(name: str):
    if name in ("Trainer", "train"):
        from bwsk.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'bwsk.train' has no attribute {name!r}")

"""Shared by the training tests: a small WikiText-2 slice and a one-thread torch fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bwsk.train.data import BUNDLED


def wikitext_slice(root: Path, train: int, valid: int, test: int) -> str:
    """The first lines of the bundled valid.txt split into a --data directory (seconds, not
    minutes of training)."""
    lines = (BUNDLED / "valid.txt").read_text().splitlines()
    root.mkdir(exist_ok=True)
    bounds = {"train": (0, train), "valid": (train, train + valid),
              "test": (train + valid, train + valid + test)}
    for name, (lo, hi) in bounds.items():
        (root / f"{name}.txt").write_text("\n".join(lines[lo:hi]) + "\n")
    return str(root)


@pytest.fixture
def one_thread():
    """Two shared cores: OpenMP threads spinning against other processes cost 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

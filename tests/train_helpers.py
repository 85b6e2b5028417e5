"""Shared by the training tests: a small WikiText-2 slice, a one-thread torch fixture, and
launchers for runs on several gloo ranks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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


TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
# one thread per process: the suite shares two cores, where OpenMP spinning is ruinous
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node N -m bwsk train ARGS``, as a user launches it."""
    return subprocess.run([TORCHRUN, "--standalone", f"--nproc-per-node={nproc}", "-m", "bwsk",
                           "train", *args], env=ENV, capture_output=True, text=True, timeout=600)


def launch_ranks(args: list[str], logs: Path, world: int = 2) -> list[subprocess.Popen]:
    """The ranks torchrun would start (same entry point and environment), as processes the
    caller can signal one by one; rank r's stderr goes to ``logs/rank{r}.err``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for rank in range(world):
        env = dict(ENV, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        with open(logs / f"rank{rank}.err", "w") as err:
            procs.append(subprocess.Popen([sys.executable, "-m", "bwsk", "train", *args],
                                          env=env, stdout=subprocess.DEVNULL, stderr=err))
    return procs

"""Atomic checkpoints: a complete step directory appears at once, or not at all.

Each checkpoint is ``checkpoints/step-NNNNNNN/`` holding ``model.safetensors`` (weights of
the unsharded model, whatever ``--parallel`` axis wrote them) and ``state.pt`` (optimizer
as one process holds it, scheduler, RNG, step, curves, config). It is written under a
temporary name and renamed into place; ``latest.json`` (also replaced atomically) names
the newest complete one with the weights' sha256, so a torn or tampered file is detected
on ``--resume`` and the previous good checkpoint is never deleted first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bwsk.errors import TrainingError

KEEP = 2  # checkpoints kept on disk: the newest and the one before it


def checkpoint_root(out: Path) -> Path:
    return out / "checkpoints"


def save(out: Path, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write checkpoint for ``state['step']`` and point ``latest.json`` at it.

    ``weights`` names each tensor once (a tied weight under one of its names), as
    ``load_model`` expects."""
    from safetensors.torch import save_file

    root = checkpoint_root(out)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:07d}"
    for stale in root.glob(".tmp-step-*"):  # left by a run killed mid-save
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir()
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    torch.save(state, tmp / "state.pt")
    _fsync_dir_files(tmp)
    final = root / name
    if final.exists():  # the same step saved again (e.g. Ctrl-C right after a save)
        shutil.rmtree(final)
    os.replace(tmp, final)
    digest = _sha256(final / "model.safetensors")
    write_atomic(root / "latest.json", json.dumps({"dir": name, "step": state["step"],
                                                    "model_sha256": digest}))
    _prune(root, keep=name)
    return final


def load(out: Path, model: nn.Module) -> dict[str, Any]:
    """Restore weights into ``model`` and return the saved training state."""
    from safetensors.torch import load_model

    root = checkpoint_root(out)
    pointer = root / "latest.json"
    if not pointer.is_file():
        raise TrainingError(f"--resume: no checkpoint in {root}")
    try:
        latest = json.loads(pointer.read_text())
        ckpt = root / latest["dir"]
        if _sha256(ckpt / "model.safetensors") != latest["model_sha256"]:
            raise ValueError("weights do not match their recorded sha256")
        load_model(model, str(ckpt / "model.safetensors"))
        state = torch.load(ckpt / "state.pt", weights_only=True)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrainingError(f"--resume: corrupt checkpoint in {root}: {msg}") from exc
    if state.get("step") != latest["step"]:
        raise TrainingError(f"--resume: corrupt checkpoint in {root}: step mismatch")
    return state


def has_checkpoint(out: Path) -> bool:
    return (checkpoint_root(out) / "latest.json").is_file()


def _prune(root: Path, keep: str) -> None:
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-KEEP]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir_files(directory: Path) -> None:
    for p in directory.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

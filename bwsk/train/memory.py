"""Measure what training keeps for backward, exactly, and the process's peak RSS.

Every tensor autograd saves passes through ``saved_tensors_hooks``; we count each
underlying storage once and leave out the parameters (they exist whatever the mode).
A checkpointed segment hides its internals behind its own hooks, so segments report
the inputs they keep alive through ``record``.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable

import torch
from torch import nn

_ACTIVE: list[SavedBytesMeter] = []


class SavedBytesMeter:
    """Context manager: bytes of distinct non-parameter storages saved for backward."""

    def __init__(self, model: nn.Module):
        self.param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.storages: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def record(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.param_storages:
            self.storages[ptr] = storage.nbytes()

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self.record(t)
        return t

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> SavedBytesMeter:
        _ACTIVE.append(self)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        _ACTIVE.remove(self)


def record_kept(*tensors: torch.Tensor) -> None:
    """Called by checkpointed segments for the inputs they keep alive until backward."""
    for meter in _ACTIVE:
        for t in tensors:
            if isinstance(t, torch.Tensor):
                meter.record(t)


def saved_bytes_of_step(model: nn.Module, loss_of: Callable[[], torch.Tensor]) -> int:
    """Saved-for-backward bytes of one forward pass; the backward frees them again."""
    with SavedBytesMeter(model) as meter:
        loss = loss_of()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return meter.bytes


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)

"""Measure what training keeps for backward, exactly, and the process's peak RSS.

Every tensor autograd saves passes through ``saved_tensors_hooks``; we count each
underlying storage once and leave out the parameters (they exist whatever the mode).
A (non-reentrant) checkpointed segment hides its internals behind its own hooks but
saves its inputs through ours, so what recompute keeps alive is counted too.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable

import torch
from torch import nn


class SavedBytesMeter:
    """Context manager: bytes of distinct non-parameter storages saved for backward."""

    def __init__(self, model: nn.Module):
        self.param_storages = {_storage(p).data_ptr() for p in model.parameters()}
        self.storages: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = _storage(t)
        ptr = storage.data_ptr()
        if ptr not in self.param_storages:
            self.storages[ptr] = storage.nbytes()
        return t

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> SavedBytesMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def _storage(t: torch.Tensor):
    """A tensor's storage; a DTensor's is its local shard's (the bytes this rank keeps)."""
    from torch.distributed.tensor import DTensor

    if isinstance(t, DTensor):
        with torch.no_grad():
            t = t.to_local()
    return t.untyped_storage()


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

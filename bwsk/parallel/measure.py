"""Measure what an engine really sends, to hold the report to it.

Two loggers: a dispatch mode that logs every functional collective DTensor issues
(tensor/sequence axes), and a DDP communication hook that logs gradient buckets (data
axis). Pipeline sends are logged in bwsk.parallel.verify around the schedule's p2p call.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# functional collective overload name -> (report name, which tensor holds the logical size)
_COLLECTIVES = {
    "all_reduce": ("all_reduce", "in"),
    "all_reduce_": ("all_reduce", "in"),
    "all_gather_into_tensor": ("all_gather", "out"),
    "all_gather_into_tensor_out": ("all_gather", "out"),
    "reduce_scatter_tensor": ("reduce_scatter", "in"),
    "all_to_all_single": ("all_to_all", "in"),
}


def _nbytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


@dataclass
class CommRecord:
    collective: str
    phase: str  # "fwd" or "bwd"
    bytes: int
    shape: tuple[int, ...]


@dataclass
class CommLog(TorchDispatchMode):
    """Log each functional collective with its phase and logical (unsharded) byte count."""

    records: list[CommRecord] = field(default_factory=list)

    def __post_init__(self):
        super().__init__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.namespace == "_c10d_functional":
            kind = _COLLECTIVES.get(func._opname)
            if kind is not None:
                tensor = args[0] if kind[1] == "in" else out
                phase = "bwd" if torch._C._current_autograd_node() is not None else "fwd"
                self.records.append(CommRecord(kind[0], phase, _nbytes(tensor),
                                               tuple(tensor.shape)))
        return out

    def counts(self) -> dict[str, Counter]:
        out: dict[str, Counter] = {"fwd": Counter(), "bwd": Counter()}
        for r in self.records:
            out[r.phase][r.collective] += 1
        return out

    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.records)


def ddp_byte_logger(log: list[int]):
    """A DDP comm hook: all-reduce each gradient bucket (averaged) and log its bytes."""
    import torch.distributed as dist

    def hook(process_group, bucket):
        buf = bucket.buffer()
        log.append(_nbytes(buf))
        group = process_group if process_group is not None else dist.group.WORLD
        buf.div_(dist.get_world_size(group))
        return dist.all_reduce(buf, group=group, async_op=True).get_future().then(
            lambda fut: fut.value()[0])

    return hook

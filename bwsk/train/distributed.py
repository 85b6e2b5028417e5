"""The process group torchrun describes, or a no-op world for a single process.

Which rows of the global batch a rank feeds depends on the parallel axis
(bwsk/train/parallel.py): with ``dp`` each rank takes its contiguous slice and DDP averages
gradients, so two ranks compute exactly the gradient of one process on the whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from bwsk.errors import TrainingError


@dataclass
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch (the batch must divide evenly)."""
        if self.size == 1:
            return batch
        per = batch.shape[0] // self.size
        return batch[self.rank * per:(self.rank + 1) * per]

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on one (stop decisions must agree)."""
        return bool(self.max(int(flag)))

    def max(self, value: float) -> float:
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return t.item()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``t`` (a new tensor; ``t`` is left alone)."""
        t = t.detach().clone()
        if self.size > 1:
            torch.distributed.all_reduce(t)
        return t

    def broadcast(self, t: torch.Tensor, src: int) -> torch.Tensor:
        """Rank ``src``'s ``t`` on every rank (the others pass a tensor of the same shape)."""
        t = t.detach().clone()
        if self.size > 1:
            torch.distributed.broadcast(t, src)
        return t

    def close(self) -> None:
        if self.size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup(parallel: str | None, batch_size: int, microbatches: int | None) -> World:
    """Join the process group torchrun describes in the environment, if any."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        if parallel:
            raise TrainingError(f"--parallel {parallel} needs several processes: launch with "
                                "torchrun --nproc-per-node N -m bwsk train ...")
        return World()
    if parallel in (None, "dp") and batch_size % size:
        raise TrainingError(f"--batch-size {batch_size} is not divisible by the "
                            f"{size} processes")
    if parallel == "pp" and batch_size % (microbatches or size):
        raise TrainingError(f"--batch-size {batch_size} is not divisible into "
                            f"{microbatches or size} microbatches")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    return World(rank=torch.distributed.get_rank(), size=size)

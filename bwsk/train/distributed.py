"""DDP over gloo when launched by torchrun; a no-op context for a single process.

Each rank takes its contiguous slice of the global batch, and DDP averages gradients,
so two ranks compute exactly the gradient of one process on the concatenated batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

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

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on one (stop decisions must agree)."""
        if self.size == 1:
            return flag
        t = torch.tensor([int(flag)])
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def close(self) -> None:
        if self.size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup(batch_size: int) -> World:
    """Join the process group torchrun describes in the environment, if any."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if batch_size % size:
        raise TrainingError(f"--batch-size {batch_size} is not divisible by the "
                            f"{size} processes")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    return World(rank=torch.distributed.get_rank(), size=size)

"""Pipeline (``pp``) training: the plan's stage cuts, run by torch's GPipe schedule.

Stage 0 is fed the whole batch and the last stage the targets; the schedule splits both
into microbatches and scales gradients by 1/M, so the loss is the mean of the microbatch
losses, which equals the whole-batch mean when the microbatches are equal.

A weight used on two stages (GPT-2's tied ``wte``/``lm_head``) gets a copy per stage; the
copies' gradients are summed over ranks after every backward (the gradient of the one
shared weight), so the copies take identical steps and stay equal.

Evaluation runs on rank 0 on the unsharded model, refreshed from every stage's weights:
validation windows come in varying batch sizes (the split's tail is shorter), which a
pipeline traced for one microbatch shape cannot take.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from bwsk.errors import TrainingError
from bwsk.parallel.engines import tied_groups
from bwsk.train.distributed import World
from bwsk.train.models import CausalLM
from bwsk.train.parallel import Engine, scale_to_norm


class PipelineEngine(Engine):
    axis = "pp"

    def __init__(self, model: CausalLM, world: World, mesh, *, example: torch.Tensor,
                 batch: int, seq_len: int, microbatches: int, loss_fn):
        from bwsk.parallel import parallelize

        super().__init__(model, world)
        alias = _aliases(model)
        self.run, self.report = parallelize(
            model.hf, "pp", mesh, batch=batch, seq_len=seq_len, example_inputs=(example,),
            microbatches=microbatches, loss_fn=loss_fn)
        self.stage = self.run.stage_module
        # stage parameters are named ``model.<name in hf>`` (bwsk.parallel's TensorsOnly)
        self._entries = [(alias["hf." + n.removeprefix("model.")], p)
                         for n, p in self.stage.named_parameters()]
        self._shared_and_owned()

    def _shared_and_owned(self) -> None:
        """Which canonical weights live on several stages, and which copy counts in norms."""
        names = [n for n, _ in self._entries]
        every: list = [None] * self.world.size
        torch.distributed.all_gather_object(every, names)
        counts = Counter(n for ns in every for n in ns)
        missing = sorted(set(self.canonical) - set(counts))
        if missing:
            raise TrainingError(f"the pipeline stages lost parameters: {', '.join(missing[:3])}")
        self.shared = sorted(n for n, c in counts.items() if c > 1)
        first: dict[str, tuple[int, int]] = {}
        for rank, ns in enumerate(every):
            for i, n in enumerate(ns):
                first.setdefault(n, (rank, i))
        self.owned = [first[n] == (self.world.rank, i) for i, n in enumerate(names)]

    def entries(self) -> list[tuple[str, nn.Parameter]]:
        return self._entries

    def gather(self, local: dict) -> dict:
        parts: list | None = [None] * self.world.size if self.world.is_main else None
        torch.distributed.gather_object(local, parts, dst=0)
        merged: dict = {}
        for part in parts or []:
            merged.update(part)  # copies of a shared weight are equal: any one will do
        return merged

    def forward_backward(self, x, y, loss_of=None) -> torch.Tensor:
        losses: list[torch.Tensor] = []
        last = self.world.size - 1
        if self.world.rank == 0:
            self.run.schedule.step(x)
        elif self.world.rank == last:
            self.run.schedule.step(target=y, losses=losses)
        else:
            self.run.schedule.step()
        self._sum_shared_gradients()
        mean = torch.stack(losses).mean().detach().float() if losses else torch.zeros(())
        return self.world.broadcast(mean, last)

    def _sum_shared_gradients(self) -> None:
        for name in self.shared:
            copies = [p for n, p in self._entries if n == name]
            total = torch.zeros_like(self.model.get_parameter(name), dtype=torch.float32)
            for p in copies:
                if p.grad is not None:
                    total += p.grad
            total = self.world.sum(total)
            for p in copies:
                p.grad = total.clone()

    def clip(self, max_norm: float) -> None:
        sq = torch.zeros(())
        for own, (_, p) in zip(self.owned, self._entries, strict=True):
            if own and p.grad is not None:
                sq += p.grad.float().pow(2).sum()
        scale_to_norm(self.parameters(), self.world.sum(sq).sqrt(), max_norm)

    def nll_sum(self, windows, nll) -> float:
        full = self.weights()
        total = torch.zeros((), dtype=torch.float64)
        if self.world.is_main:
            missing, unexpected = self.model.load_state_dict(full, strict=False)
            tied = {n for group in tied_groups(self.model) for n in group[1:]}
            if unexpected or set(missing) - tied:
                raise TrainingError("the pipeline's weights do not fit the unsharded model")
            total += sum(nll(self.model, x, y) for x, y in windows)
        return self.world.broadcast(total, 0).item()

    def saved_bytes(self, x, y, loss_of) -> int:
        from bwsk.train.memory import SavedBytesMeter

        with SavedBytesMeter(self.stage) as meter:
            self.forward_backward(x, y)
        for p in self.parameters():
            p.grad = None
        return int(self.world.max(meter.bytes))


def _aliases(model: nn.Module) -> dict[str, str]:
    """Every parameter name -> the canonical (first) name of its tensor."""
    return {n: group[0] for group in tied_groups(model) for n in group}

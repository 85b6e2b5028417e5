"""`bwsk train --parallel dp|tp|sp|pp`: one axis of a bwsk plan, applied by PyTorch's engines.

Every rank plans the same model the same way (``bwsk.parallel.parallelize``), so the ranks
agree without exchanging the plan. An *engine* hides what differs per axis from the loop:
which batch rows a rank feeds, how forward and backward run, how the gradient norm is
summed, how a split is evaluated, and how the sharded state maps back to the *canonical*
state (the parameter names, layouts and optimizer indices of the unsharded model). Every
checkpoint holds the canonical state, so a run saved under one axis resumes under any
other, or in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from bwsk.errors import TrainingError
from bwsk.train.distributed import World
from bwsk.train.models import CausalLM

LossOf = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class Engine:
    """One process: the model as built. The base of the parallel engines."""

    axis: str | None = None

    def __init__(self, model: CausalLM, world: World):
        self.model, self.world, self.net = model, world, model
        self.canonical = [name for name, _ in model.named_parameters()]
        every = {n for n, _ in model.named_parameters(remove_duplicate=False)}
        self.buffers = [n for n in model.state_dict() if n not in every]  # persistent only
        self.report: dict | None = None  # the bwsk.plan/1 report of the applied axis

    # -- what the optimizer steps, under which canonical names -------------------------------
    def entries(self) -> list[tuple[str, nn.Parameter]]:
        """(canonical name, local parameter) in the order the optimizer holds them."""
        return list(self.model.named_parameters())

    def parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.entries()]

    def to_full(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """A local tensor of parameter ``name`` (or its optimizer state) in canonical layout."""
        return t.detach()

    def to_local(self, name: str, param: nn.Parameter, full: torch.Tensor) -> torch.Tensor:
        return full

    def gather(self, local: dict) -> dict:
        """Merge per-rank dicts on rank 0 (engines whose ranks hold different parameters)."""
        return local

    # -- one step ----------------------------------------------------------------------------
    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    def forward_backward(self, x, y, loss_of: LossOf) -> torch.Tensor:
        """Backward of the global mean loss; returns that loss, the same on every rank."""
        loss = loss_of(self.net, x, y)
        loss.backward()
        return loss.detach()

    def clip(self, max_norm: float) -> None:
        nn.utils.clip_grad_norm_(self.parameters(), max_norm)

    def nll_sum(self, windows: Iterable, nll: Callable) -> float:
        """Summed NLL of ``nll(model, x, y)`` over the windows, the global value on every rank."""
        return sum(nll(self.model, x, y) for x, y in windows)

    def saved_bytes(self, x, y, loss_of: LossOf) -> int:
        """Saved-for-backward bytes of one step on the rank that keeps the most."""
        from bwsk.train.memory import saved_bytes_of_step

        return int(self.world.max(saved_bytes_of_step(self.net, lambda: loss_of(self.net, x, y))))

    # -- canonical state ---------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor] | None:
        """The unsharded model's weights on rank 0 (None elsewhere); collective."""
        local = {name: self.to_full(name, p) for name, p in self.entries()}
        full = self.gather(local)
        if not self.world.is_main:
            return None
        full.update({n: self.model.get_buffer(n).detach() for n in self.buffers})
        return {n: _plain(t).contiguous() for n, t in full.items()}

    def optimizer_state(self, opt: torch.optim.Optimizer) -> dict | None:
        """``opt.state_dict()`` as one process would hold it, on rank 0; collective."""
        sd = opt.state_dict()
        index = {n: i for i, n in enumerate(self.canonical)}
        state = {}
        for i, (name, _) in enumerate(self.entries()):
            if i in sd["state"]:
                state[index[name]] = {k: self.to_full(name, v) if _per_element(v) else v
                                      for k, v in sd["state"][i].items()}
        state = self.gather(state)
        if not self.world.is_main:
            return None
        state = {i: {k: _plain(v) for k, v in s.items()} for i, s in state.items()}
        group = dict(_one_group(sd), params=list(range(len(self.canonical))))
        return {"state": state, "param_groups": [group]}

    def load_optimizer_state(self, opt: torch.optim.Optimizer, saved: dict) -> None:
        index = {n: i for i, n in enumerate(self.canonical)}
        state = {}
        for i, (name, param) in enumerate(self.entries()):
            if index[name] in saved["state"]:
                # the step counter is a tensor AdamW increments in place: one per copy
                state[i] = {k: self.to_local(name, param, v) if _per_element(v)
                            else v.clone() if torch.is_tensor(v) else v
                            for k, v in saved["state"][index[name]].items()}
        group = dict(_one_group(saved), params=list(range(len(self.entries()))))
        opt.load_state_dict({"state": state, "param_groups": [group]})


class DataEngine(Engine):
    """DDP: each rank feeds its rows of the global batch; gradients are averaged."""

    axis = "dp"

    def __init__(self, model: CausalLM, world: World, ddp: nn.Module):
        super().__init__(model, world)
        self.net = CausalLM(ddp, model.arch)

    def batch(self, x, y):
        return self.world.shard(x), self.world.shard(y)

    def forward_backward(self, x, y, loss_of: LossOf) -> torch.Tensor:
        loss = super().forward_backward(x, y, loss_of)
        return self.world.sum(loss) / self.world.size  # equal rows per rank: mean of means

    def nll_sum(self, windows, nll) -> float:
        mine = (w for i, w in enumerate(windows) if i % self.world.size == self.world.rank)
        return self.world.sum(torch.tensor(super().nll_sum(mine, nll), dtype=torch.float64)).item()


def scale_to_norm(params: Iterable[nn.Parameter], total: torch.Tensor, max_norm: float) -> None:
    """torch's clip_grad_norm_ given the total norm (summed over the ranks' shards)."""
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0).item()
    for p in params:
        if p.grad is not None:
            p.grad.mul_(coef)


def _per_element(v: Any) -> bool:
    """Optimizer state laid out like its parameter (moments), not a scalar (the step)."""
    return torch.is_tensor(v) and v.dim() > 0


def _plain(t):
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def _one_group(sd: dict) -> dict:
    if len(sd["param_groups"]) != 1:
        raise TrainingError("parallel checkpoints expect one optimizer parameter group")
    return {k: v for k, v in sd["param_groups"][0].items() if k != "params"}


def build_engine(model: CausalLM, world: World, axis: str | None, *, batch: int, seq_len: int,
                 example: torch.Tensor, microbatches: int | None,
                 loss_fn: Callable) -> Engine:
    """Plan ``model`` on ``axis`` and apply the plan on this rank (one process: as built)."""
    if axis is None:
        return Engine(model, world)
    if axis != "dp" and model.arch != "gpt2":  # OPT: separate q/k/v; its pipeline cut
        # sends a non-contiguous activation, which gloo's send refuses
        raise TrainingError(f"--parallel {axis} is built and verified for GPT-2; "
                            f"{model.arch} trains with --parallel dp")
    from torch.distributed.device_mesh import init_device_mesh

    from bwsk.parallel import parallelize

    mesh = init_device_mesh("cpu", (world.size,))
    if axis == "dp":
        ddp, report = parallelize(model.hf, axis, mesh, batch=batch, seq_len=seq_len)
        engine = DataEngine(model, world, ddp)
        engine.report = report
        return engine
    if axis in ("tp", "sp"):
        from bwsk.train.parallel_tensor import TensorEngine

        return TensorEngine(model, world, mesh, axis, batch=batch, seq_len=seq_len)
    from bwsk.train.parallel_pipeline import PipelineEngine

    return PipelineEngine(model, world, mesh, example=example, batch=batch, seq_len=seq_len,
                          microbatches=microbatches, loss_fn=loss_fn)


def print_plan(report: dict, tokens: int) -> None:
    """The plan's per-axis summary (sync points per step), on stderr: stdout is the result."""
    from rich.console import Console

    from bwsk.parallel.render import print_report

    print_report(report, tokens, Console(stderr=True))

"""Tensor (``tp``) and sequence (``sp``) parallel training on one mesh dimension.

``bwsk.parallel`` converts GPT-2's ``Conv1D`` projections to ``nn.Linear`` and lays the fused
QKV rows out so each rank holds whole heads; this engine maps the sharded weights back to
the canonical ones (gathered, rows un-permuted, transposed back).

Weights the model ties (GPT-2's ``lm_head`` and ``wte``) stay one parameter: the plan gives
them one layout and ``bwsk.parallel.apply`` ties them again after sharding.
"""

from __future__ import annotations

import torch
from torch import nn

from bwsk.errors import TrainingError
from bwsk.parallel.engines import settle_gradients
from bwsk.parallel.hf import fused_qkv_modules, qkv_permutation
from bwsk.train.distributed import World
from bwsk.train.models import CausalLM
from bwsk.train.parallel import Engine, scale_to_norm


class TensorEngine(Engine):
    """Every rank feeds the whole batch; the plan's collectives keep activations exact."""

    def __init__(self, model: CausalLM, world: World, mesh, axis: str, *, batch: int,
                 seq_len: int):
        from bwsk.parallel import parallelize

        super().__init__(model, world)
        self.axis = axis
        self.convs = {f"hf.{n}.weight" for n, m in model.hf.named_modules()
                      if type(m).__name__ == "Conv1D"}
        sizes = {n: (a.split_size, a.num_heads) for n, a in fused_qkv_modules(model.hf)}
        _, self.report = parallelize(model.hf, axis, mesh, batch=batch, seq_len=seq_len)
        plan = self.report["axes"][0]["plan"]
        self.perms = {}
        for name, (embed, heads) in sizes.items():
            if plan.get(f"{name}.c_attn") == "colwise":  # apply laid these rows out by head
                perm = qkv_permutation(embed, heads, mesh.size())
                self.perms.update({f"hf.{name}.c_attn.{leaf}": perm for leaf in ("weight", "bias")})
        self._entries = list(model.named_parameters())
        if {n for n, _ in self._entries} != set(self.canonical):
            raise TrainingError(f"--parallel {axis} changed the model's parameters")

    def entries(self) -> list[tuple[str, nn.Parameter]]:
        return self._entries

    def to_full(self, name: str, t: torch.Tensor) -> torch.Tensor:
        from torch.distributed.tensor import DTensor

        t = t.detach()
        full = t.full_tensor() if isinstance(t, DTensor) else t
        if name in self.perms:
            full = full[torch.argsort(self.perms[name])]
        return full.t() if name in self.convs else full

    def to_local(self, name: str, param: nn.Parameter, full: torch.Tensor) -> torch.Tensor:
        from torch.distributed.tensor import DTensor, distribute_tensor

        if name in self.convs:
            full = full.t()
        if name in self.perms:
            full = full[self.perms[name]]
        if isinstance(param, DTensor):  # every rank holds the full tensor: no communication
            return distribute_tensor(full.contiguous(), param.device_mesh, param.placements,
                                     src_data_rank=None)
        return full

    def forward_backward(self, x, y, loss_of) -> torch.Tensor:
        loss = super().forward_backward(x, y, loss_of)
        settle_gradients(self.parameters())
        return loss

    def clip(self, max_norm: float) -> None:
        """torch's clip_grad_norm_ over the unsharded gradients: shards summed over ranks."""
        from torch.distributed.tensor import DTensor

        grads = [p.grad for p in self.parameters() if p.grad is not None]
        sharded, replicated = torch.zeros(()), torch.zeros(())
        for g in grads:
            local = g.to_local() if isinstance(g, DTensor) else g
            if isinstance(g, DTensor) and any(pl.is_shard() for pl in g.placements):
                sharded += local.float().pow(2).sum()
            else:  # replicated: the same on every rank, counted once
                replicated += local.float().pow(2).sum()
        scale_to_norm(self.parameters(), (self.world.sum(sharded) + replicated).sqrt(), max_norm)


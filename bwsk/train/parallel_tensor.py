"""Tensor (``tp``) and sequence (``sp``) parallel training on one mesh dimension.

``bwsk.parallel`` converts GPT-2's ``Conv1D`` projections to ``nn.Linear`` and lays the fused
QKV rows out so each rank holds whole heads; this engine maps the sharded weights back to
the canonical ones (gathered, rows un-permuted, transposed back).

Weights the model ties (GPT-2's ``lm_head`` and ``wte``) are sharded module by module, which
leaves two tensors. Sharded alike, they are tied again; sharded differently (the plan may
split the embedding by hidden size and the head by vocabulary), they stay two copies whose
gradients are summed after every backward, so they take identical steps and stay equal.
"""

from __future__ import annotations

import torch
from torch import nn

from bwsk.errors import TrainingError
from bwsk.parallel.hf import fused_qkv_modules, qkv_permutation
from bwsk.train.distributed import World
from bwsk.train.models import CausalLM
from bwsk.train.parallel import Engine, scale_to_norm, tied_groups


class TensorEngine(Engine):
    """Every rank feeds the whole batch; the plan's collectives keep activations exact."""

    def __init__(self, model: CausalLM, world: World, mesh, axis: str, *, batch: int,
                 seq_len: int):
        from bwsk.parallel import parallelize

        super().__init__(model, world)
        self.axis = axis
        ties = [g for g in tied_groups(model) if len(g) > 1]
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
        self.copies = _retie(model, ties)
        alias = {n: group[0] for group in ties for n in group}
        self._entries = [(alias.get(n, n), p) for n, p in model.named_parameters()]
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
        _settle_gradients(self.parameters())
        for group in self.copies:
            _sum_gradients([self.model.get_parameter(n) for n in group])
        return loss

    def clip(self, max_norm: float) -> None:
        """torch's clip_grad_norm_ over the unsharded gradients: shards summed over ranks."""
        from torch.distributed.tensor import DTensor

        seen, grads = set(), []
        for name, p in self._entries:  # a tied weight's copies counted once
            if p.grad is not None and name not in seen:
                grads.append(p.grad)
            seen.add(name)
        sharded, replicated = torch.zeros(()), torch.zeros(())
        for g in grads:
            local = g.to_local() if isinstance(g, DTensor) else g
            if isinstance(g, DTensor) and any(pl.is_shard() for pl in g.placements):
                sharded += local.float().pow(2).sum()
            else:  # replicated: the same on every rank, counted once
                replicated += local.float().pow(2).sum()
        scale_to_norm(self.parameters(), (self.world.sum(sharded) + replicated).sqrt(), max_norm)


def _retie(model: nn.Module, groups: list[list[str]]) -> list[list[str]]:
    """Tie each group again where its tensors are sharded alike; return the other groups."""
    copies = []
    for first, *others in groups:
        keep = model.get_parameter(first)
        if any(_layout(model.get_parameter(n)) != _layout(keep) for n in others):
            copies.append([first, *others])
            continue
        for name in others:
            path, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(path), leaf, keep)
    return copies


def _layout(p: torch.Tensor):
    return getattr(p, "placements", None)


def _sum_gradients(params: list[nn.Parameter]) -> None:
    """Every copy of a tied weight gets the sum of the copies' gradients, in its own layout."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = sum(g.full_tensor() if isinstance(g, DTensor) else g for g in grads)
    for p in params:
        p.grad = (distribute_tensor(total, p.device_mesh, p.placements, src_data_rank=None)
                  if isinstance(p, DTensor) else total.clone())


def _settle_gradients(params) -> None:
    """Bring each DTensor gradient to its parameter's placement (SP's LayerNorm partial sums)."""
    from torch.distributed.tensor import DTensor

    for p in params:
        if isinstance(p.grad, DTensor) and p.grad.placements != p.placements:
            p.grad = p.grad.redistribute(p.device_mesh, p.placements)

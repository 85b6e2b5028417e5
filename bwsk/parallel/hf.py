"""Make Hugging Face GPT-2-style modules shardable by the torch engines.

HF's ``Conv1D`` stores its weight transposed, which ColwiseParallel/RowwiseParallel
would shard along the wrong dimension; a fused QKV projection sharded contiguously
would hand a rank a mix of query and key columns. Both are fixed here, once, before
any engine sees the model.
"""

from __future__ import annotations

import torch
from torch import nn


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """Replace every HF ``Conv1D`` by an equivalent ``nn.Linear`` (in place; returns model)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__ != "Conv1D":
                continue
            n_in, n_out = child.weight.shape
            lin = nn.Linear(n_in, n_out, bias=child.bias is not None)
            with torch.no_grad():
                lin.weight.copy_(child.weight.t())
                if child.bias is not None:
                    lin.bias.copy_(child.bias)
            setattr(parent, name, lin.to(child.weight.dtype))
    return model


def qkv_permutation(embed: int, heads: int, shards: int) -> torch.Tensor:
    """Row order of a fused [q; k; v] projection so that shard r holds q, k, v of its heads.

    Shard r of the permuted rows is [q heads of r, k heads of r, v heads of r]; after a
    contiguous column-wise split, each rank's local ``split(E/P)`` yields whole heads.
    """
    if heads % shards:
        from bwsk.errors import PlanError

        raise PlanError(f"{heads} attention heads are not divisible by world size {shards}")
    per = embed // shards
    rows = [part * embed + r * per + torch.arange(per)
            for r in range(shards) for part in range(3)]
    return torch.cat(rows)


def fused_qkv_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Attention modules with a fused ``c_attn`` projection (HF GPT-2 layout)."""
    return [(name, m) for name, m in model.named_modules()
            if hasattr(m, "c_attn") and hasattr(m, "split_size") and hasattr(m, "num_heads")]


def layout_qkv_for_shards(model: nn.Module, shards: int) -> None:
    """Permute every fused QKV weight for ``shards`` ranks and shrink the local split size."""
    for _, attn in fused_qkv_modules(model):
        lin = attn.c_attn
        if not isinstance(lin, nn.Linear):
            raise TypeError("convert Conv1D to Linear before laying out QKV")
        perm = qkv_permutation(attn.split_size, attn.num_heads, shards)
        with torch.no_grad():
            lin.weight.copy_(lin.weight[perm])
            if lin.bias is not None:
                lin.bias.copy_(lin.bias[perm])
        attn.split_size = attn.split_size // shards
        attn.num_heads = attn.num_heads // shards

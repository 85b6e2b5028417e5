"""Analyzed mode: recompute boundaries placed where the analysis proves information is erased.

The model cards' "analyzed" mode classified modules by a lookup table. Here each distinct
block class is exported (``bwsk.frontends.torch.graph_of``) and every primitive op is
judged by the catalogue, which proves K with a collision rule (LayerNorm: x and x + 1;
softmax: x and x + c; a variable-variable matmul: 2x and y/2; ...). The input of an
erasing op cannot be rebuilt from its output, so it must be kept: each top-level sublayer
of a block that contains a K op becomes a recomputed segment whose boundary (its input)
is the one value kept; sublayers proved S throughout are left as they are (reversible
mode is the one that exploits those). Ops at block level (the residual adds) stay outside
every segment. The function is unchanged, so this mode also suits fine-tuning.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bwsk.errors import BwskError, TrainingError


def erasing_sublayers(block: nn.Module, d_model: int) -> dict[str, list[str]]:
    """Sublayer name -> the K ops proved inside it ('' = ops at block level)."""
    from bwsk.catalogue import judge
    from bwsk.frontends.torch import graph_of

    was_training = block.training
    try:
        graph = graph_of(block.eval(), (torch.zeros(1, 4, d_model),))
        verdicts = [(node, judge(graph, node)) for node in graph.nodes]
    except BwskError as exc:
        raise TrainingError(f"analyzed mode: cannot analyse {type(block).__name__}: "
                            f"{exc}".splitlines()[0]) from exc
    finally:
        block.train(was_training)
    erasing: dict[str, list[str]] = {}
    for node, j in verdicts:
        if j.verdict == "K":
            erasing.setdefault(node.scope.split(".")[0], []).append(f"{node.op}: {j.reason}")
    return erasing


def apply_analyzed(blocks: nn.ModuleList, d_model: int) -> dict[str, Any]:
    """Recompute, in every block, the sublayers that contain an erasing op."""
    from bwsk.reversible.recompute import recompute_in_backward

    found: dict[type, dict[str, list[str]]] = {}
    for block in blocks:
        if type(block) not in found:
            found[type(block)] = erasing_sublayers(block, d_model)
        erasing = found[type(block)]
        for name, child in block.named_children():
            if name in erasing:
                recompute_in_backward(child)
    first = found[type(blocks[0])]
    children = [name for name, _ in blocks[0].named_children()]
    return {"segments_per_block": [c for c in children if c in first],
            "kept_sublayers": [c for c in children if c not in first],
            "block_level_k_ops": first.get("", []),
            "k_ops": {c: ops for c, ops in first.items() if c}}

"""The four training modes, applied to a freshly built model before the optimizer sees it.

- conventional: the model as built;
- recompute: the same function; transformer blocks become checkpointed segments
  (recomputed in backward instead of stored), as few as meet ``--memory-budget``;
- reversible: ``bwsk.reversible.convert`` rebuilds the block stack as two-stream
  couplings that the proof engine licenses (a different function: scratch only);
- analyzed: segment boundaries at the erasing (K) operations the analysis finds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from bwsk.errors import TrainingError
from bwsk.train.memory import record_kept, saved_bytes_of_step
from bwsk.train.models import CausalLM


class Checkpointed(nn.Module):
    """A segment whose activations are recomputed in backward instead of saved."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kwargs):
        record_kept(*args, *kwargs.values())
        return checkpoint(self.inner, *args, use_reentrant=False, **kwargs)


def apply_mode(model: CausalLM, mode: str, sample: torch.Tensor,
               memory_budget: int | None) -> dict[str, Any]:
    """Transform ``model`` in place for ``mode``; return what was done, for results.json."""
    if mode == "conventional":
        return {}
    if mode == "recompute":
        return _recompute(model, sample, memory_budget)
    if mode == "reversible":
        return _reversible(model)
    return _analyzed(model)


def _loss_of(model: nn.Module, ids: torch.Tensor):
    def run():
        logits = model(ids[:, :-1])
        return nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
    return run


def _recompute(model: CausalLM, sample: torch.Tensor, budget: int | None) -> dict[str, Any]:
    """Checkpoint blocks from the first until the measured saved bytes meet the budget."""
    blocks = model.blocks()
    full = saved_bytes_of_step(model, _loss_of(model, sample))
    chosen = 0
    saved = full
    while chosen < len(blocks) and (budget is None or saved > budget):
        blocks[chosen] = Checkpointed(blocks[chosen])
        chosen += 1
        saved = saved_bytes_of_step(model, _loss_of(model, sample))
    if budget is not None and saved > budget:
        raise TrainingError(f"--memory-budget {budget} bytes is below the {saved} bytes that "
                            f"remain with every block recomputed (batch {sample.shape[0]})")
    return {"recomputed_blocks": chosen, "blocks": len(blocks),
            "planned_saved_bytes": saved, "unplanned_saved_bytes": full}


def _reversible(model: CausalLM) -> dict[str, Any]:
    try:
        from bwsk.reversible import convert
    except ImportError as exc:
        raise TrainingError("reversible mode needs bwsk.reversible, which is not available "
                            f"in this build ({exc})") from exc
    report = convert(model.hf)
    return {"conversion": str(report)} if report is not None else {}


def _analyzed(model: CausalLM) -> dict[str, Any]:
    raise TrainingError("analyzed mode is not available yet: it needs the analysis of the "
                        f"{model.arch} blocks to place checkpoint boundaries at K operations")

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

from bwsk.errors import TrainingError
from bwsk.train.memory import saved_bytes_of_step
from bwsk.train.models import CausalLM


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
    """Every block recomputed, or the fewest that meet ``budget`` (bwsk.reversible's planner)."""
    from bwsk.reversible import plan_recompute
    from bwsk.reversible.recompute import recompute_in_backward

    blocks = model.blocks()
    if budget is None:
        full = saved_bytes_of_step(model, _loss_of(model, sample))
        for block in blocks:
            recompute_in_backward(block)
        return {"recomputed_blocks": len(blocks), "blocks": len(blocks),
                "planned_saved_bytes": saved_bytes_of_step(model, _loss_of(model, sample)),
                "unplanned_saved_bytes": full}
    try:
        plan = plan_recompute(model.hf, sample[:, :-1], budget)
    except TrainingError as exc:
        raise TrainingError(f"--memory-budget: {exc}") from exc
    return {"recomputed_blocks": len(plan.segments), "blocks": len(blocks),
            "segments": plan.segments, "planned_saved_bytes": plan.saved_bytes,
            "unplanned_saved_bytes": plan.baseline_bytes}


def _reversible(model: CausalLM) -> dict[str, Any]:
    try:
        from bwsk.reversible import convert
    except ImportError as exc:
        raise TrainingError("reversible mode needs bwsk.reversible, which is not available "
                            f"in this build ({exc})") from exc
    conversion = convert(model.hf)
    return {"couplings": conversion.couplings, "licenses": [str(x) for x in conversion.licenses]}


def _analyzed(model: CausalLM) -> dict[str, Any]:
    from bwsk.train.analyzed import apply_analyzed

    return apply_analyzed(model.blocks(), model.hf.config.hidden_size)

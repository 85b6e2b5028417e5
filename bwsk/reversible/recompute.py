"""Function-preserving recomputation: checkpoint the fewest blocks that meet a memory budget.

For fine-tuning, a model must keep its exact function, so instead of couplings the
repeated blocks (each a segment that starts by erasing: LayerNorm is K) are recomputed in
backward (``torch.utils.checkpoint``, ``use_reentrant=False``, RNG state preserved, so the
values and gradients are bitwise those of the plain model). A checkpointed block keeps only
its inputs. The planner measures what each block saves for backward, exactly, picks the
blocks that save most until the budget is met, applies them in place and measures again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from bwsk.errors import TrainingError

_METERS: list[_Meter] = []


class _Meter:
    """Distinct non-parameter storages saved for backward, attributed to the running block."""

    def __init__(self, model: nn.Module):
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.owner: dict[int, tuple[str, int]] = {}  # storage -> (block or "", bytes)
        self.stack: list[str] = []
        self.inputs: dict[str, int] = {}  # block -> bytes of the tensors it was called with

    def record(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self.params:
            where = self.stack[-1] if self.stack else ""
            self.owner.setdefault(storage.data_ptr(), (where, storage.nbytes()))
        return t

    def by_block(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for where, nbytes in self.owner.values():
            out[where] = out.get(where, 0) + nbytes
        return out


def _measure(model: nn.Module, run: Callable[[], torch.Tensor], blocks: dict[str, nn.Module]):
    meter = _Meter(model)

    def enter(name: str):
        def hook(_module, args) -> None:  # returns None: arguments unchanged
            meter.stack.append(name)
            meter.inputs[name] = sum(t.untyped_storage().nbytes() for t in args
                                     if isinstance(t, torch.Tensor))
        return hook

    def leave(*_) -> None:
        meter.stack.pop()

    hooks = [m.register_forward_pre_hook(enter(n)) for n, m in blocks.items()]
    hooks += [m.register_forward_hook(leave) for m in blocks.values()]
    _METERS.append(meter)
    try:
        with torch.autograd.graph.saved_tensors_hooks(meter.record, lambda t: t):
            loss = run()
    finally:
        _METERS.remove(meter)
        for h in hooks:
            h.remove()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return meter.by_block(), meter.inputs


def recompute_in_backward(module: nn.Module) -> None:
    """Make ``module`` keep only its inputs; state-dict names stay as they were."""
    inner = type(module).forward.__get__(module)

    def forward(*args, **kwargs):
        for meter in _METERS:  # the inputs stay alive until backward
            for t in (*args, *kwargs.values()):
                if isinstance(t, torch.Tensor):
                    meter.record(t)
        return checkpoint(inner, *args, use_reentrant=False, **kwargs)

    module.forward = forward


def repeated_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The longest ModuleList of same-class modules (the transformer's blocks), by name."""
    best: dict[str, nn.Module] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > len(best) and \
                len({type(m) for m in mod}) == 1:
            best = {f"{name}.{i}": m for i, m in enumerate(mod)}
    if not best:
        raise TrainingError(f"{type(model).__name__} has no repeated blocks to recompute")
    return best


@dataclass
class RecomputePlan:
    segments: list[str]  # blocks recomputed in backward
    saved_bytes: int  # measured with the plan applied
    baseline_bytes: int  # measured without it
    budget: int

    def __str__(self) -> str:
        return (f"recompute {len(self.segments)} block(s): saved for backward "
                f"{self.saved_bytes} of {self.baseline_bytes} bytes (budget {self.budget})")


def _runner(model: nn.Module, example: Any) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        out = model(**example) if isinstance(example, dict) else \
            model(*(example if isinstance(example, tuple) else (example,)))
        out = getattr(out, "logits", out)
        out = out if isinstance(out, torch.Tensor) else out[0]
        return out.float().square().mean()
    return run


def plan_recompute(model: nn.Module, example: Any, budget: int) -> RecomputePlan:
    """Checkpoint, in place, the fewest blocks of ``model`` so one step on ``example``
    saves at most ``budget`` bytes for backward; TrainingError when no plan can."""
    blocks = repeated_blocks(model)
    run = _runner(model, example)
    per_block, inputs = _measure(model, run, blocks)
    baseline = sum(per_block.values())
    gain = {n: per_block.get(n, 0) - inputs.get(n, 0) for n in blocks}
    order = sorted(blocks, key=lambda n: -gain[n])
    want, predicted = 0, baseline  # predicted from the per-block measurement...
    while predicted > budget and want < len(order):
        predicted -= gain[order[want]]
        want += 1
    chosen: list[str] = []
    saved = baseline
    while saved > budget and len(chosen) < len(order):  # ...then checked by measuring
        for name in order[len(chosen):max(want, len(chosen) + 1)]:
            recompute_in_backward(blocks[name])
            chosen.append(name)
        saved = sum(_measure(model, run, blocks)[0].values())
    if saved > budget:
        raise TrainingError(f"memory budget {budget} bytes is below the {saved} bytes saved "
                            f"with all {len(blocks)} blocks recomputed")
    return RecomputePlan(sorted(chosen, key=list(blocks).index), saved, baseline, budget)

"""Run a plan with PyTorch's own engines: DDP, tensor/sequence parallel, pipelining.

``apply(model, axis_plan, mesh)`` takes one axis entry of a ``bwsk.plan/1`` report
(``{"axis": ..., "plan": {module: choice}}``) and returns the sharded model (or, for
the pipeline axis, a ``PipelineRun`` holding this rank's stage and its GPipe schedule).
The report's claims are checked against exactly these engines in tests/test_parallel_dist.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bwsk.errors import PlanError
from bwsk.parallel.hf import conv1d_to_linear, layout_qkv_for_shards


def apply(model: nn.Module, axis_plan: dict, mesh, **pipeline_kwargs: Any):
    """Shard ``model`` along ``axis_plan["axis"]`` on the 1-D device ``mesh``."""
    axis, plan = axis_plan.get("axis"), axis_plan.get("plan", {})
    _check_modules(model, plan)
    if axis == "data":
        return nn.parallel.DistributedDataParallel(model, process_group=mesh.get_group())
    if axis in ("tensor", "sequence"):
        return _apply_tensor(model, plan, mesh, sequence=axis == "sequence")
    if axis == "pipeline":
        return _apply_pipeline(model, plan, mesh, **pipeline_kwargs)
    raise PlanError(f"unknown axis {axis!r}; expected data, sequence, tensor or pipeline")


def _check_modules(model: nn.Module, plan: dict) -> None:
    names = {name for name, _ in model.named_modules()}
    missing = sorted(set(plan) - names)
    if missing:
        raise PlanError(f"plan names modules the model does not have: {', '.join(missing[:5])}")


def _apply_tensor(model: nn.Module, plan: dict, mesh, *, sequence: bool) -> nn.Module:
    """Megatron column/row pairs via parallelize_module; with ``sequence``, Megatron-SP."""
    from torch.distributed.tensor.parallel import parallelize_module

    conv1d_to_linear(model)
    qkv_colwise = any(plan.get(f"{name}.c_attn") == "colwise"
                      for name, m in model.named_modules() if hasattr(m, "c_attn"))
    if qkv_colwise:
        layout_qkv_for_shards(model, mesh.size())
    styles = _styles(model, plan, sequence)
    if not styles:
        raise PlanError("the plan shards no module on the tensor axis")
    return parallelize_module(model, mesh, styles)


def _styles(model: nn.Module, plan: dict, sequence: bool) -> dict:
    """Map plan choices to ParallelStyles; with ``sequence`` the residual stream is Shard(1)."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        PrepareModuleInput,
        RowwiseParallel,
        SequenceParallel,
    )

    styles, in_region = {}, False
    for name, module in model.named_modules():
        choice = plan.get(name)
        if choice == "colwise":
            styles[name] = ColwiseParallel(input_layouts=Shard(1)) if sequence else ColwiseParallel()
        elif choice == "rowwise":
            styles[name] = (RowwiseParallel(output_layouts=Shard(1), use_local_output=False)
                            if sequence else RowwiseParallel())
        elif choice == "sequence" and isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
            styles[name], in_region = SequenceParallel(), True
        elif choice == "sequence":  # where the replicated stream enters the sharded region
            styles[name], in_region = PrepareModuleInput(
                input_layouts=(Replicate(),), desired_input_layouts=(Shard(1),),
                use_local_output=False), True
        elif choice == "replicate" and sequence and in_region:  # leaves the region: gather
            styles[name] = PrepareModuleInput(
                input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),),
                use_local_output=True)
    return styles


@dataclass
class PipelineRun:
    """This rank's pipeline stage and the GPipe schedule that drives it."""

    stage: Any
    schedule: Any
    stage_module: nn.Module


def _apply_pipeline(model: nn.Module, plan: dict, mesh, *, example_inputs: tuple,
                    microbatches: int, loss_fn=None) -> PipelineRun:
    """Split before each ``split_before`` module with torch.distributed.pipelining."""
    from torch.distributed.pipelining import ScheduleGPipe, SplitPoint, pipeline

    cuts = [name for name, choice in plan.items() if choice == "split_before"]
    if len(cuts) != mesh.size() - 1:
        raise PlanError(f"a {mesh.size()}-stage pipeline needs {mesh.size() - 1} cuts, "
                        f"the plan has {len(cuts)}")
    batch = example_inputs[0].shape[0]
    if batch % microbatches:
        raise PlanError(f"batch {batch} is not divisible into {microbatches} microbatches")
    chunk = tuple(x.chunk(microbatches)[0] for x in example_inputs)
    pipe = pipeline(model, mb_args=chunk, split_spec={c: SplitPoint.BEGINNING for c in cuts})
    rank = mesh.get_local_rank()
    stage = pipe.build_stage(rank, torch.device("cpu"), group=mesh.get_group())
    schedule = ScheduleGPipe(stage, microbatches, loss_fn=loss_fn)
    return PipelineRun(stage, schedule, pipe.get_stage_module(rank))

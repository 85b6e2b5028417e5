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
    groups = tied_groups(model)
    model = parallelize_module(model, mesh, styles)
    retie(model, groups)
    return model


def tied_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names grouped by tensor, first name first: a tied weight (GPT-2's wte and
    lm_head) has several."""
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return list(groups.values())


def retie(model: nn.Module, groups: list[list[str]]) -> None:
    """Tie each group again: parallelize_module shards module by module, so a tied weight
    comes out as one sharded copy per module. The planner gives a tied weight one layout
    (bwsk.parallel.tied); a plan that lays it out two ways would need two copies with
    summed gradients, which the report does not price, so it is refused."""
    for first, *others in groups:
        keep = model.get_parameter(first)
        for name in others:
            mine = getattr(model.get_parameter(name), "placements", None)
            if mine != getattr(keep, "placements", None):
                raise PlanError(f"the plan lays out tied weight {first} two ways "
                                f"({_layout(keep)} and {_layout(model.get_parameter(name))} "
                                f"as {name}); give its modules one layout")
            path, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(path), leaf, keep)


def settle_gradients(params) -> None:
    """Bring each DTensor gradient to its parameter's placement, as an optimizer step needs
    (under SP a LayerNorm's gradient is a partial sum over the tokens each rank holds)."""
    from torch.distributed.tensor import DTensor

    for p in params:
        if isinstance(p.grad, DTensor) and p.grad.placements != p.placements:
            p.grad = p.grad.redistribute(p.device_mesh, p.placements)


def _layout(p) -> str:
    placements = getattr(p, "placements", None)
    return "replicated" if placements is None else ", ".join(map(str, placements))


def _styles(model: nn.Module, plan: dict, sequence: bool) -> dict:
    """Map plan choices to ParallelStyles; with ``sequence`` the residual stream is Shard(1)."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import PrepareModuleOutput, SequenceParallel

    styles = {}
    for name, module in model.named_modules():
        choice = plan.get(name)
        if choice in ("colwise", "rowwise"):
            styles[name] = _matrix_style(model, name, module, choice, plan, sequence)
        elif choice == "sequence":
            styles[name] = SequenceParallel()
        elif choice == "replicate" and sequence and isinstance(module, nn.Embedding):
            styles[name] = _enter_region(Shard(1))
        elif choice is None and sequence and isinstance(module, nn.Embedding):
            # not in the graph (folded: it does not depend on the inputs); a DTensor so it
            # can be added to the sharded stream
            styles[name] = PrepareModuleOutput(output_layouts=Replicate(),
                                               desired_output_layouts=Replicate(),
                                               use_local_output=False)
    return styles


def _enter_region(layout):
    from torch.distributed.tensor import Replicate
    from torch.distributed.tensor.parallel import PrepareModuleOutput

    return PrepareModuleOutput(output_layouts=Replicate(), desired_output_layouts=layout,
                               use_local_output=False)


def _matrix_style(model, name, module, choice, plan, sequence):
    """Megatron pairs: colwise feeds a rowwise sibling; an unpaired colwise gathers its output
    (onto the tokens under ``sequence``), an unpaired rowwise splits its whole input."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    embedding = isinstance(module, nn.Embedding)
    parent = name.rpartition(".")[0]
    partner = "colwise" if choice == "rowwise" else "rowwise"
    paired = any(k.rpartition(".")[0] == parent and v == partner for k, v in plan.items())
    if choice == "rowwise":
        if sequence and not (paired or embedding):  # a head on the token-split stream
            return RowwiseParallel(input_layouts=Shard(1), output_layouts=Replicate())
        if sequence:
            return RowwiseParallel(input_layouts=Replicate() if embedding else Shard(-1),
                                   output_layouts=Shard(1), use_local_output=False)
        # an unpaired head (GPT-2's lm_head tied to a hidden-split table) splits its whole input
        whole = embedding or not paired
        return RowwiseParallel(input_layouts=Replicate()) if whole else RowwiseParallel()
    output = {} if paired else {"output_layouts": Replicate()}
    if sequence and embedding:  # a hidden-split table, moved onto the tokens
        return ColwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1),
                               use_local_output=False)
    if sequence:
        return ColwiseParallel(input_layouts=Shard(1), **output)
    return ColwiseParallel(input_layouts=Replicate(), **output)


class TensorsOnly(nn.Module):
    """Pipelining traces tensors to tensors; HF models return a ModelOutput: keep its logits.

    Parameter names inside a stage gain the prefix ``model.``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args):
        out = self.model(*args)
        return out.logits if hasattr(out, "logits") else out


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
    split = {f"model.{c}": SplitPoint.BEGINNING for c in cuts}
    pipe = pipeline(TensorsOnly(model), mb_args=chunk, split_spec=split)
    rank = mesh.get_local_rank()
    stage = pipe.build_stage(rank, torch.device("cpu"), group=mesh.get_group())
    schedule = ScheduleGPipe(stage, microbatches, loss_fn=loss_fn)
    return PipelineRun(stage, schedule, pipe.get_stage_module(rank))

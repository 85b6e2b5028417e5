"""The planner's front door: model (zoo name, module or graph) in, bwsk.plan/1 report out."""

from __future__ import annotations

from typing import Any

from bwsk.errors import PlanError
from bwsk.ir import Graph
from bwsk.parallel.problem import AXES

SCHEMA = "bwsk.plan/1"
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def apply_plan(model, axis_plan: dict, mesh, **kwargs):
    from bwsk.parallel.apply import apply

    return apply(model, axis_plan, mesh, **kwargs)


def build_graph(model: Any, *, batch: int = 2, seq_len: int = 8, sizes: dict | None = None):
    """(graph, module) for a zoo name or an nn.Module, traced on [batch, seq_len] token ids."""
    if isinstance(model, Graph):
        return model, getattr(model, "source", None)
    import torch

    from bwsk.frontends.torch import graph_of

    if isinstance(model, str):
        from bwsk.zoo import build_model

        module, example = build_model(model, seq_len=seq_len, **(sizes or {}))
    else:
        module, example = model, None
    if example is None:
        vocab = getattr(getattr(module, "config", None), "vocab_size", 2)
        example = {"input_ids": torch.randint(0, vocab, (batch, seq_len))}
    example = {k: v.repeat(batch, *[1] * (v.dim() - 1)) if v.shape[0] == 1 else v
               for k, v in example.items()}
    return graph_of(module, example), module


def check_world(graph: Graph, module, axes: list[str], world: int) -> None:
    """World size 1, or larger than what an axis can be split into: a one-line PlanError."""
    if world < 2:
        raise PlanError(f"world size must be at least 2 (got {world})")
    shape = graph.values[graph.inputs[0]].shape if graph.inputs else ()
    config = getattr(module, "config", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    for axis in axes:
        if axis not in AXES:
            raise PlanError(f"unknown axis {axis!r}; choose from {', '.join(AXES)}")
        if axis == "data" and shape and shape[0] % world:
            raise PlanError(f"batch {shape[0]} cannot be split over {world} ranks on the data axis")
        if axis == "sequence" and len(shape) > 1 and shape[1] % world:
            raise PlanError(f"sequence length {shape[1]} cannot be split over {world} ranks")
        if axis in ("tensor", "sequence") and heads and heads % world:
            raise PlanError(f"{heads} attention heads are not divisible by world size {world}: "
                            f"the {axis} axis cannot shard them")


def plan(model: Any, world_size: int, axes: list[str] | None = None, *, batch: int = 2,
         seq_len: int = 8, dtype: str | None = None, microbatches: int | None = None,
         sizes: dict | None = None, name: str | None = None) -> dict:
    """The bwsk.plan/1 report for ``model`` on ``world_size`` ranks per axis."""
    from bwsk.parallel.analysis import axis_report

    axes = list(axes or AXES)
    if dtype is not None and dtype not in ITEMSIZE:
        raise PlanError(f"unknown dtype {dtype!r}; choose from {', '.join(ITEMSIZE)}")
    if world_size < 2:
        raise PlanError(f"world size must be at least 2 (got {world_size})")
    graph, module = build_graph(model, batch=batch, seq_len=seq_len, sizes=sizes)
    check_world(graph, module, axes, world_size)
    entries = [axis_report(graph, a, world_size, ITEMSIZE.get(dtype or ""), microbatches)
               for a in axes]
    label = name or (model if isinstance(model, str) else type(module or model).__name__)
    return {"schema": SCHEMA, "model": label, "world_size": world_size, "axes": entries,
            "_graph": graph}


def to_json(report: dict) -> dict:
    """The report without its private fields (the graph, the cut edges)."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if not k.startswith("_")}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(report)

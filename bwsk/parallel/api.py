"""The planner's front door: model (zoo name, module or graph) in, bwsk.plan/1 report out."""

from __future__ import annotations

from typing import Any

from bwsk.errors import PlanError
from bwsk.ir import Graph
from bwsk.parallel.problem import AXES

SCHEMA = "bwsk.plan/1"
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def apply_plan(model, axis_plan: dict, mesh, **kwargs):
    from bwsk.parallel.engines import apply

    return apply(model, axis_plan, mesh, **kwargs)


def build_module(model: Any, *, batch: int = 2, seq_len: int = 8, sizes: dict | None = None):
    """(module, example inputs of [batch, seq_len] token ids) for a zoo name or an nn.Module."""
    import torch

    if isinstance(model, str):
        from bwsk.zoo import build_model

        with _no_weight_init():  # a plan depends on shapes only; skip random init
            module, example = build_model(model, seq_len=seq_len, **(sizes or {}))
        if hasattr(module, "tie_weights"):  # skipping init skips tying too: a tied weight
            module.tie_weights()  # is one parameter, synced and sharded once
    else:
        vocab = getattr(getattr(model, "config", None), "vocab_size", 2)
        module, example = model, {"input_ids": torch.randint(0, vocab, (1, seq_len))}
    example = {k: v.repeat(batch, *[1] * (v.dim() - 1)) if v.shape[0] == 1 else v
               for k, v in example.items()}
    return module, example


def _no_weight_init():
    import contextlib

    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: initialize as usual
        return contextlib.nullcontext()
    return no_init_weights()


def build_graph(model: Any, *, batch: int = 2, seq_len: int = 8, sizes: dict | None = None):
    """(graph, module) for a zoo name, an nn.Module or a Graph."""
    from bwsk.frontends.torch import graph_of

    if isinstance(model, Graph):
        return model, getattr(model, "source", None)
    module, example = build_module(model, batch=batch, seq_len=seq_len, sizes=sizes)
    return graph_of(module, example, fold_parameters=False), module


def check_world(module, axes: list[str], world: int, batch: int, seq_len: int,
                strict: bool = True) -> dict[str, str]:
    """World size 1, or larger than what an axis can be split into: a one-line PlanError.

    With ``strict`` False (no axis was asked for by name) an axis that cannot be split is
    skipped instead; the reasons are returned by axis."""
    if world < 2:
        raise PlanError(f"world size must be at least 2 (got {world})")
    config = getattr(module, "config", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    skipped = {}
    for axis in axes:
        if axis not in AXES:
            raise PlanError(f"unknown axis {axis!r}; choose from {', '.join(AXES)}")
        reason = None
        if axis == "data" and batch % world:
            reason = f"batch {batch} cannot be split over {world} ranks on the data axis"
        elif axis == "sequence" and seq_len % world:
            reason = f"sequence length {seq_len} cannot be split over {world} ranks"
        if axis in ("tensor", "sequence") and heads and heads % world and reason is None:
            reason = (f"{heads} attention heads are not divisible by world size {world}: "
                      f"the {axis} axis cannot shard them")
        if reason and strict:
            raise PlanError(reason)
        if reason:
            skipped[axis] = reason
    return skipped


def _traced(model, axes, world, batch, seq_len, sizes, strict, check):
    """(graph, module, skipped axes): checks first, then the trace (cached for zoo names)."""
    from bwsk.parallel import cache, shipped
    from bwsk.zoo import SEEDS

    zoo = isinstance(model, str) and model in SEEDS
    graph = shipped.load(model, sizes, batch, seq_len) if zoo else None
    k = cache.key(model, sizes, batch, seq_len) if zoo and graph is None else None
    graph = graph or (cache.load(k) if k else None)
    if graph is not None:
        module = graph.source
        skipped = check_world(module, axes, world, batch, seq_len, strict)
        if check is not None:
            check(module)
        return graph, module, skipped
    module, example = build_module(model, batch=batch, seq_len=seq_len, sizes=sizes)
    skipped = check_world(module, axes, world, batch, seq_len, strict)
    if check is not None:
        check(module)
    from bwsk.frontends.torch import graph_of

    graph = graph_of(module, example, fold_parameters=False)
    if k:
        cache.store(k, graph, module)
    return graph, module, skipped


def plan(model: Any, world_size: int, axes: list[str] | None = None, *, batch: int = 2,
         seq_len: int = 8, dtype: str | None = None, microbatches: int | None = None,
         sizes: dict | None = None, name: str | None = None, check=None) -> dict:
    """The bwsk.plan/1 report for ``model`` on ``world_size`` ranks per axis.

    ``check(module)`` runs before the (slow) trace, so bad input fails fast."""
    from bwsk.parallel.analysis import axis_report

    strict = axes is not None
    axes = list(axes or AXES)
    if dtype is not None and dtype not in ITEMSIZE:
        raise PlanError(f"unknown dtype {dtype!r}; choose from {', '.join(ITEMSIZE)}")
    if world_size < 2:
        raise PlanError(f"world size must be at least 2 (got {world_size})")
    if isinstance(model, Graph):
        graph, module = model, getattr(model, "source", None)
        shape = graph.values[graph.inputs[0]].shape if graph.inputs else ()
        batch, seq_len = [*list(shape or ()), batch, seq_len][:2]
        skipped = check_world(module, axes, world_size, int(batch), int(seq_len), strict)
    else:
        graph, module, skipped = _traced(model, axes, world_size, batch, seq_len, sizes, strict,
                                         check)
    entries = [axis_report(graph, a, world_size, ITEMSIZE.get(dtype or ""), microbatches)
               for a in axes if a not in skipped]
    label = name or (model if isinstance(model, str) else type(module or model).__name__)
    return {"schema": SCHEMA, "model": label, "world_size": world_size, "axes": entries,
            "skipped": [{"axis": a, "reason": r} for a, r in skipped.items()], "_graph": graph}


def to_json(report: dict) -> dict:
    """The report without its private fields (the graph, the cut edges)."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if not k.startswith("_")}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(report)


SHORT_AXES = {"dp": "data", "sp": "sequence", "tp": "tensor", "pp": "pipeline"}


def parallelize(model, axis: str, mesh, *, batch: int, seq_len: int, **pipeline_kwargs):
    """Plan ``model`` on one axis (``dp|sp|tp|pp`` or the full name) and apply it on ``mesh``.

    For ``bwsk train --parallel``: every rank plans the same model the same way, so all
    ranks agree without exchanging the plan. Returns (sharded model or PipelineRun, report).
    """
    name = SHORT_AXES.get(axis, axis)
    report = plan(model, mesh.size(), [name], batch=batch, seq_len=seq_len,
                  microbatches=pipeline_kwargs.get("microbatches"))
    return apply_plan(model, report["axes"][0], mesh, **pipeline_kwargs), to_json(report)

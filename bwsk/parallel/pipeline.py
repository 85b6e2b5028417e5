"""Pipeline stage cuts: balanced work, smallest activation crossing each cut.

Stages are cut only where a module begins (torch.distributed.pipelining splits before a
module), so each candidate boundary is named by the module that starts there. The choice
itself runs in the C++ core (bwsk._core.calm_cuts).
"""

from __future__ import annotations

import numpy as np

from bwsk.errors import PlanError
from bwsk.ir import Graph
from bwsk.parallel.problem import ACTIVATION, INPUT, parameter_of, value_bytes, value_kind
from bwsk.parallel.sharding_rules import shape


def _flops(g: Graph, n) -> float:
    out = float(np.prod(shape(g, n.outputs[0]) or (1,))) if n.outputs else 0.0
    if n.op in ("matmul", "gemm") and n.inputs and shape(g, n.inputs[0]):
        return 2.0 * out * shape(g, n.inputs[0])[-1]
    return out


def _new_modules(g: Graph) -> list[str | None]:
    """Per node, the shallowest called module that starts at it (None if it starts none).

    Containers (a ModuleList such as ``transformer.h``) own no op themselves and are never
    called, so the engine cannot split before them; their first block stands in."""
    called = {n.scope for n in g.nodes if n.scope}
    seen: set[str] = set()
    starts: list[str | None] = []
    for n in g.nodes:
        parts = n.scope.split(".") if n.scope else []
        prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
        fresh = [p for p in prefixes if p not in seen and p in called]
        starts.append(fresh[0] if fresh else None)
        seen.update(prefixes)
    return starts


def _loads(g: Graph, kinds: dict[str, int], params: set[str], itemsize) -> list[float]:
    flops = [_flops(g, n) for n in g.nodes]
    pbytes, seen = [], set()
    for n in g.nodes:
        fresh = [x for x in n.inputs if x and x not in seen and x in params]
        seen.update(fresh)
        pbytes.append(float(sum(value_bytes(g, x, itemsize) for x in fresh)))
    tf, tp = sum(flops) or 1.0, sum(pbytes) or 1.0
    return [f / tf + p / tp for f, p in zip(flops, pbytes, strict=True)]


def _crossing(g: Graph, kinds: dict[str, int]) -> list[list[str]]:
    """Per boundary b (before node b), the activations live across it."""
    n = len(g.nodes)
    born = {x: -1 for x in g.inputs}
    last: dict[str, int] = {}
    for i, node in enumerate(g.nodes):
        for o in node.outputs:
            born[o] = i
        for x in node.inputs:
            if x in born:
                last[x] = i
    for o in g.outputs:
        last[o] = n
    live = [[] for _ in range(n + 1)]
    for x, b in born.items():
        if kinds.get(x) in (ACTIVATION, INPUT):
            for boundary in range(b + 1, last.get(x, b) + 1):
                live[boundary].append(x)
    return live


def _send(g: Graph, where: str, phase: str, x: str, microbatches: int, itemsize) -> dict:
    """One tensor crossing a cut: sent once per microbatch (its gradient back, in bwd)."""
    shp = list(shape(g, x))
    if shp and shp[0] % microbatches == 0:
        shp[0] //= microbatches
    return {"where": where, "phase": phase, "collective": "send_recv", "shape": shp,
            "bytes": value_bytes(g, x, itemsize) // microbatches, "count": microbatches,
            "minimal": True}


def _shared_weights(g: Graph, cuts: list[int], params: set[str], itemsize) -> list[dict]:
    """A parameter read on several stages (GPT-2's tied wte/lm_head) lives as a copy per stage;
    the copies stay one weight only if their gradients are summed every step."""
    stages: dict[str, set[int]] = {}
    for i, node in enumerate(g.nodes):
        stage = sum(1 for b in cuts if b <= i)
        for x in node.inputs:
            param = parameter_of(g, x, params) if x and g.is_const(x) else None
            if param is not None:  # read as itself or through its transpose
                stages.setdefault(param, set()).add(stage)
    return [{"where": x, "phase": "optim", "collective": "all_reduce",
             "shape": list(shape(g, x)), "bytes": value_bytes(g, x, itemsize), "count": 1,
             "minimal": True} for x, on in stages.items() if len(on) > 1]


def pipeline_axis(g: Graph, world: int, params: set[str], microbatches: int,
                  itemsize: int | None = None) -> dict:
    from bwsk import _core

    kinds = {x: value_kind(g, x, params) for x in g.values}
    starts = _new_modules(g)
    live = _crossing(g, kinds)
    crossing = [sum(value_bytes(g, x, itemsize) for x in xs) for xs in live]
    candidate = [1 if 0 < b < len(g.nodes) and starts[b] else 0 for b in range(len(g.nodes) + 1)]
    if sum(candidate) < world - 1:
        raise PlanError(f"world size {world} is larger than the model's {sum(candidate) + 1} "
                        "possible pipeline stages")
    cuts = _core.calm_cuts(_loads(g, kinds, params, itemsize), crossing, candidate, world)
    plan, sync = {}, []
    for b in cuts:
        plan[starts[b]] = "split_before"
        for x in live[b]:
            phases = ("fwd", "bwd") if kinds[x] == ACTIVATION else ("fwd",)
            sync += [_send(g, starts[b], phase, x, microbatches, itemsize) for phase in phases]
    sync += _shared_weights(g, cuts, params, itemsize)
    from bwsk.parallel.analysis import totals

    cut_edges = [(x, n.name) for b in cuts for n in g.nodes[b:] for x in n.inputs if x in live[b]]
    return {"axis": "pipeline", "plan": plan, "microbatches": microbatches,
            "local_ops": [n.name for n in g.nodes], "sync_points": sync, "totals": totals(sync),
            "_cut_edges": cut_edges}

"""The parallelism report: per mesh axis, which ops are shard-local and where it syncs.

CALM-inspired (the theorem is about monotone set-valued programs; here the analogue is
an op acting on each shard independently): every op either runs on shards without
coordination or is a sync point with a collective, a phase and a byte count. The
placement search runs in the C++ core (bwsk._core.calm_search); this module lowers the
graph into its flat arrays and turns its answer into the ``bwsk.plan/1`` JSON.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from bwsk.errors import PlanError
from bwsk.ir import Graph, Node
from bwsk.parallel.classes import Classes, classes_of
from bwsk.parallel.problem import PARTIAL, build, parameter_of, seeds_of
from bwsk.parallel.reconcile import per_module
from bwsk.parallel.sharding_rules import shape
from bwsk.parallel.tied import agree

PHASES = ("fwd", "bwd", "optim")
COLLECTIVES = (None, "all_reduce", "all_gather", "reduce_scatter", "all_to_all")
MATRIX_OPS = ("matmul", "gemm")


def search_axis(g: Graph, cls: Classes, axis: str, world: int, params: set[str],
                itemsize: int | None = None) -> dict:
    """One axis entry of the report (data, sequence or tensor)."""
    from bwsk import _core

    problem, names = build(g, cls, axis, world, params, itemsize)
    try:
        out = agree(problem, names, g, cls.dims, params, _core.calm_search(problem),
                    _core.calm_search)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    states = dict(zip(names, out["value_state"], strict=True))
    module_plan = _module_plan(g, cls, states, axis)
    records, fused = per_module(g, names, list(out["records"]), states, module_plan, itemsize)
    partial = {i for i, s in enumerate(out["value_state"]) if s == PARTIAL}
    sync = _sync_points(g, names, records, params, fused, partial)
    if axis == "data":
        sync = _fuse_gradients(g, sync, itemsize)
    edges = [(r[0], n) for r in records if PHASES[r[2]] != "optim"  # weight gradients: no op
             for n in _sync_nodes(g, names, r)]
    synced = {n for _, n in edges}
    entry = {
        "axis": axis,
        "plan": module_plan,
        "local_ops": [n.name for i, n in enumerate(g.nodes) if i not in synced],
        "sync_points": sync,
    }
    entry["totals"] = totals(sync)
    entry["_cut_edges"] = [(names[v], g.nodes[n].name) for v, n in edges]
    entry["_sync_values"] = sorted({names[r[0]] for r in records if PHASES[r[2]] == "fwd"})
    _check_split(g, cls, axis, world, entry)
    if axis == "sequence":
        entry["context_parallel"] = context_parallel(g, cls, itemsize)
    return entry


def _sync_nodes(g: Graph, names: list[str], rec) -> list[int]:
    """The node a collective feeds; a conversion shared by several consumers (node -1)
    feeds each of them."""
    if rec[1] >= 0:
        return [rec[1]]
    index = {id(n): i for i, n in enumerate(g.nodes)}
    return [index[id(c)] for c in g.consumers.get(names[rec[0]], [])]


def _back_to_matmul(g: Graph, name: str) -> Node | None:
    """The matmul a softmax's logits come from, through scaling and masking."""
    node = g.producer.get(name)
    while node is not None and node.op in ("mul", "add", "div", "sub"):
        node = g.producer.get(next((x for x in node.inputs if x and not g.is_const(x)), ""))
    return node if node is not None and node.op == "matmul" else None


def context_parallel(g: Graph, cls: Classes, itemsize: int | None) -> dict:
    """The alternative that shards attention itself along the tokens (ring/all-gather
    context parallelism): every rank needs all keys and values, so each attention
    all-gathers K and V forward and reduce-scatters their gradients backward."""
    from bwsk.parallel.problem import value_bytes

    seq = seeds_of(g, cls).sequence
    points = []
    for n in g.nodes:
        if n.op != "softmax" or not (cls.mix[g.nodes.index(n)] & seq):
            continue
        scores = _back_to_matmul(g, n.inputs[0])
        apply_v = next((c for c in g.consumers.get(n.outputs[0], []) if c.op == "matmul"), None)
        if scores is None or apply_v is None:
            continue
        for label, value in (("keys", scores.inputs[1]), ("values", apply_v.inputs[1])):
            for phase, coll in (("fwd", "all_gather"), ("bwd", "reduce_scatter")):
                points.append({"where": f"{n.scope or n.name} ({label})", "phase": phase,
                               "collective": coll, "shape": list(shape(g, value)),
                               "bytes": value_bytes(g, value, itemsize), "count": 1,
                               "minimal": True})
    return {"note": "causal attention sharded along the tokens; not chosen (the tensor-"
                    "parallel attention above needs fewer bytes) and not runnable on CPU in "
                    "torch 2.13", "sync_points": points, "totals": totals(points)}


def _scope(node: Node | None) -> str:
    return "" if node is None else (node.scope or node.name)


def _where(g: Graph, names: list[str], rec, params: set[str], partial: set[int]) -> str:
    value, node, phase, _, _ = rec
    name = names[value]
    if PHASES[phase] == "optim":
        return parameter_of(g, name, params) or name
    producer = g.producer.get(name)
    if value in partial:  # a partial sum is reconciled where it was computed (its transpose too)
        return _scope(producer)
    if node >= 0:
        return _scope(g.nodes[node])
    if producer is not None and layer_of(_scope(producer)) is not None:
        return _common_scope(g.consumers.get(name, [])) or _scope(producer)
    return _scope(producer)


def _common_scope(nodes: list[Node]) -> str:
    """A conversion several consumers share, made once: inside a repeated layer it belongs
    to the block that consumes it (a layer gathers its own input), like a single
    consumer's; elsewhere (embeddings) to the value's producer."""
    parts = [_scope(n).split(".") for n in nodes]
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return ".".join(common)


def _sync_points(g: Graph, names: list[str], records, params: set[str],
                 fused: dict[int, dict], partial: set[int]) -> list[dict]:
    bwd_per_value = Counter(r[0] for r in records if PHASES[r[2]] == "bwd")
    grouped: dict[tuple, dict] = {}
    for rec in records:
        value, _, phase, coll, nbytes = rec
        key = (_where(g, names, rec, params, partial), PHASES[phase], COLLECTIVES[coll],
               list(shape(g, names[value])), nbytes)
        point = grouped.setdefault(repr(key), {
            "where": key[0], "phase": key[1], "collective": key[2], "shape": key[3],
            "bytes": nbytes, "count": 0, "minimal": True})
        point["count"] += 1
        if PHASES[phase] == "bwd" and bwd_per_value[value] > 1:
            point["minimal"] = False  # the consumers' partial gradients could be summed first
        if value in fused and PHASES[phase] != "optim":
            point["minimal"] = False
            point["fused"] = fused[value].get(PHASES[phase])
    return list(grouped.values())


def _fuse_gradients(g: Graph, sync: list[dict], itemsize: int | None) -> list[dict]:
    """Data parallelism all-reduces every trainable parameter's gradient, in fused buckets."""
    grads = [p for p in sync if p["phase"] == "optim"]
    rest = [p for p in sync if p["phase"] != "optim"]
    source = getattr(g, "source", None)
    if source is not None and hasattr(source, "parameters"):
        tensors = [p for p in source.parameters() if p.requires_grad]
        nbytes = sum(p.numel() * (itemsize or p.element_size()) for p in tensors)
    else:
        tensors, nbytes = grads, sum(p["bytes"] for p in grads)
    if not tensors:
        return rest
    return [*rest, {"where": f"gradients of {len(tensors)} parameter tensors", "phase": "optim",
                    "collective": "all_reduce", "shape": [], "bytes": int(nbytes), "count": 1,
                    "minimal": True}]


def totals(sync: list[dict]) -> dict:
    out: dict = {"fwd": {}, "bwd": {}, "optim": {}, "bytes_per_step": 0}
    for p in sync:
        phase = out.setdefault(p["phase"], {})
        phase[p["collective"]] = phase.get(p["collective"], 0) + p["count"]
        out["bytes_per_step"] += p["bytes"] * p["count"]
    return out


def _module_plan(g: Graph, cls: Classes, states: dict[str, int], axis: str) -> dict[str, str]:
    """Module -> colwise/rowwise/replicate for weights, sequence for norms sharded on tokens."""
    plan: dict[str, str] = {}
    seq = seeds_of(g, cls).sequence
    for n in g.nodes:
        weight = _weight_slot(g, n)
        if weight is not None and n.scope and axis != "data":
            w = n.inputs[weight]
            choice = _matrix_choice(n.op, states[w], cls.dims[w])
            if choice != "replicate" or n.scope not in plan:
                plan[n.scope] = choice
        if n.op in ("layernorm", "rmsnorm") and n.scope and states[n.outputs[0]] in seq:
            plan[n.scope] = "sequence"
    return plan


def _matrix_choice(op: str, state: int, dims: list[list[int]]) -> str:
    """A weight's placement as a torch style: a table [vocab, hidden] split by rows is
    "rowwise" (vocab-parallel); a matmul weight [in, out] split by outputs is "colwise"."""
    if state < 0:
        return "replicate"
    if op == "gather":
        return "rowwise" if state in dims[0] else "colwise"
    return "colwise" if state in dims[-1] else "rowwise"


def _weight_slot(g: Graph, n: Node) -> int | None:
    if n.op in MATRIX_OPS and len(n.inputs) > 1 and g.is_const(n.inputs[1]) \
            and len(shape(g, n.inputs[1])) == 2:
        return 1
    if n.op == "gather" and g.is_const(n.inputs[0]) and len(shape(g, n.inputs[0])) == 2:
        return 0
    return None


def _check_split(g: Graph, cls: Classes, axis: str, world: int, entry: dict) -> None:
    if axis in ("tensor", "sequence") and not any(
            v in ("colwise", "rowwise") for v in entry["plan"].values()):
        raise PlanError(f"the model cannot be split on the {axis} axis with world size {world}: "
                        "no weight matrix has a dimension divisible by it")


def parameters_of(g: Graph) -> set[str]:
    """Names of the graph's constants that are trainable parameters of its source module."""
    source = getattr(g, "source", None)
    if source is not None and hasattr(source, "named_parameters"):
        return {name for name, _ in source.named_parameters(remove_duplicate=False)}
    return {n for n, v in g.values.items() if v.is_const and n.endswith((".weight", ".bias"))}


def axis_report(g: Graph, axis: str, world: int, itemsize: int | None = None,
                microbatches: int | None = None) -> dict:
    params = parameters_of(g)
    if axis == "pipeline":
        from bwsk.parallel.pipeline import pipeline_axis

        return pipeline_axis(g, world, params, microbatches or world, itemsize)
    return search_axis(g, classes_of(g), axis, world, params, itemsize)


def layer_of(where: str) -> str | None:
    """'transformer.h.3.attn' -> 'transformer.h.3' (the repeated block it belongs to)."""
    parts = where.split(".")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].isdigit():
            return ".".join(parts[: i + 1])
    return None


def per_layer(sync: list[dict]) -> dict[str, list[dict]]:
    layers: dict[str, list[dict]] = defaultdict(list)
    for p in sync:
        layer = layer_of(p["where"])
        if layer is not None:
            layers[layer].append(p)
    return dict(layers)


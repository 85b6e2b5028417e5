"""The report against the engines: 2 gloo ranks run each axis of the plan bwsk computed.

One spawn runs every axis (tensor, sequence, data, pipeline, BatchNorm under DDP) and
saves what each rank saw; the tests compare values and gradients with a one-process
reference (within 1e-5) and the measured collectives with the report's.
"""

from __future__ import annotations

import os
import socket
from collections import Counter

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = [pytest.mark.dist, pytest.mark.slow]

WORLD, MICRO = 2, 2
TOL = dict(rtol=1e-5, atol=1e-5)


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 64, (4, 8), generator=g), torch.randint(0, 64, (4, 8), generator=g)


def _bn_inputs():
    g = torch.Generator().manual_seed(2)
    return torch.randn(8, 8, generator=g), torch.randn(8, 4, generator=g)


def _worker(rank: int, port: int, plans: dict, out_dir: str) -> None:
    import torch.distributed as dist
    import torch.nn.functional as F

    from bwsk.parallel import verify as V

    mesh = V.init(rank, WORLD, port)
    ids, targets = _inputs()
    res = {"ref": V.reference(V.linear_gpt2, ids, targets)}
    for axis in ("tensor", "sequence"):
        res[axis] = V.run_tensor(V.tiny_gpt2, plans[axis], mesh, ids, targets)
    res["tied_ref"] = V.reference(V.linear_tied_gpt2, ids, targets)
    for axis in ("tensor", "sequence"):
        res[f"tied_{axis}"] = V.run_tensor(V.tied_gpt2, plans[f"tied_{axis}"], mesh, ids,
                                           targets)
    odd = ids % V.ODD_VOCAB, targets % V.ODD_VOCAB
    res["odd_ref"] = V.reference(V.linear_odd_tied_gpt2, *odd)
    for axis in ("tensor", "sequence"):
        res[f"odd_{axis}"] = V.run_tensor(V.odd_tied_gpt2, plans[f"odd_{axis}"], mesh, *odd)
    res["data"] = V.run_data(V.tiny_gpt2, plans["data"], mesh, ids, targets)
    res["ref_hf"] = V.reference(V.tiny_gpt2, ids, targets)
    res["pipeline"] = V.run_pipeline(V.tiny_gpt2, plans["pipeline"], mesh, ids, targets, MICRO)
    x, y = _bn_inputs()
    res["bn_ref"] = V.reference(V.bn_mlp, x, y, loss_fn=F.mse_loss)
    res["bn"] = V.run_data(V.bn_mlp, {"axis": "data", "plan": {}}, mesh, x, y,
                           loss_fn=F.mse_loss)
    torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def report():
    from bwsk.parallel import plan
    from bwsk.parallel.verify import tiny_gpt2

    model = tiny_gpt2()
    return plan(model, WORLD, batch=4, seq_len=8, microbatches=MICRO)


@pytest.fixture(scope="module")
def tied_report():
    """GPT-2 as shipped: lm_head.weight is transformer.wte.weight."""
    from bwsk.parallel import plan
    from bwsk.parallel.verify import tied_gpt2

    return plan(tied_gpt2(), WORLD, ["tensor", "sequence"], batch=4, seq_len=8)


@pytest.fixture(scope="module")
def odd_report():
    """Tied, with a vocabulary no rank count divides (GPT-2's 50257): split by hidden size."""
    from bwsk.parallel import plan
    from bwsk.parallel.verify import odd_tied_gpt2

    return plan(odd_tied_gpt2(), WORLD, ["tensor", "sequence"], batch=4, seq_len=8)


@pytest.fixture(scope="module")
def bn_report():
    from bwsk.parallel import plan
    from bwsk.parallel.verify import bn_mlp

    x, _ = _bn_inputs()
    from bwsk.frontends.torch import graph_of

    return plan(graph_of(bn_mlp(), (x,)), WORLD, ["data"])


@pytest.fixture(scope="module")
def runs(report, tied_report, odd_report, tmp_path_factory):
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("dist")
    plans = {a["axis"]: {"axis": a["axis"], "plan": a["plan"]} for a in report["axes"]}
    plans.update({f"tied_{a['axis']}": {"axis": a["axis"], "plan": a["plan"]}
                  for a in tied_report["axes"]})
    plans.update({f"odd_{a['axis']}": {"axis": a["axis"], "plan": a["plan"]}
                  for a in odd_report["axes"]})
    mp.spawn(_worker, args=(_free_port(), plans, str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _axis(report, name):
    return next(a for a in report["axes"] if a["axis"] == name)


def _reported(axis: dict) -> tuple[Counter, Counter]:
    """Counts and bytes per (phase, collective) as gloo runs them: DTensor moves a shard to
    another dim with all_gather + chunk on CPU (torch's shard_dim_alltoall: gloo has no
    alltoall), whose logical bytes are the all-to-all's."""
    counts, nbytes = Counter(), Counter()
    for p in axis["sync_points"]:
        coll = "all_gather" if p["collective"] == "all_to_all" else p["collective"]
        counts[(p["phase"], coll)] += p["count"]
        nbytes[(p["phase"], coll)] += p["count"] * p["bytes"]
    return counts, nbytes


def _close_grads(got: dict, want: dict, fix=lambda name, g: g) -> None:
    assert got, "no gradients"
    for name, g in got.items():
        torch.testing.assert_close(g, fix(name, want[name]), **TOL, msg=name)


def _unpermute(name, g):
    """The engine's fused QKV rows are laid out per shard; the reference's are not."""
    from bwsk.parallel.hf import qkv_permutation

    return g[qkv_permutation(32, 4, WORLD)] if ".c_attn." in name else g


@pytest.mark.parametrize("axis", ["tensor", "sequence"])
def test_tensor_axes_match_reference_and_report(runs, report, axis):
    ref = runs[0]["ref"]
    for rank in range(WORLD):
        got = runs[rank][axis]
        torch.testing.assert_close(got["logits"], ref["logits"], **TOL)
        _close_grads(got["grads"], ref["grads"], _unpermute)
    counts, nbytes = _reported(_axis(report, axis))
    measured = runs[0][axis]
    assert Counter(measured["counts"]) == counts
    assert Counter(measured["bytes"]) == nbytes


@pytest.mark.parametrize("axis", ["tensor", "sequence"])
def test_tied_weights_keep_one_layout_and_match_reference_and_report(runs, tied_report, axis):
    """GPT-2's tied wte/lm_head: the plan splits the one table one way (by vocabulary: a
    vocab-parallel embedding and a column-parallel head; or by hidden size: a hidden-split
    embedding and a row-parallel head), the engine holds one tensor, its gradient is the
    sum of both uses, and what is sent is exactly what the report lists."""
    entry = _axis(tied_report, axis)
    assert (entry["plan"]["transformer.wte"], entry["plan"]["lm_head"]) in {
        ("rowwise", "colwise"), ("colwise", "rowwise")}
    assert "lm_head.weight" not in runs[0]["tied_ref"]["grads"]  # one parameter, one gradient
    _matches_reference_and_report(runs, "tied", axis, entry)


def _matches_reference_and_report(runs, model: str, axis: str, entry: dict) -> None:
    """Every rank's logits and gradients equal the one-process run's; the bytes and counts
    rank 0 measured equal the report's."""
    ref = runs[0][f"{model}_ref"]
    for rank in range(WORLD):
        got = runs[rank][f"{model}_{axis}"]
        torch.testing.assert_close(got["logits"], ref["logits"], **TOL)
        assert set(got["grads"]) == set(ref["grads"])
        _close_grads(got["grads"], ref["grads"], _unpermute)
    counts, nbytes = _reported(entry)
    assert Counter(runs[0][f"{model}_{axis}"]["counts"]) == counts
    assert Counter(runs[0][f"{model}_{axis}"]["bytes"]) == nbytes


@pytest.mark.parametrize("axis", ["tensor", "sequence"])
def test_tied_table_split_by_hidden_size_matches_reference_and_report(runs, odd_report, axis):
    """The odd vocabulary leaves the hidden split: a hidden-split embedding and a row-parallel
    head, whose input is moved off the tokens on the sequence axis (an all-to-all each way)."""
    entry = _axis(odd_report, axis)
    assert (entry["plan"]["transformer.wte"], entry["plan"]["lm_head"]) == ("colwise", "rowwise")
    moves = {p["where"] for p in entry["sync_points"] if p["collective"] == "all_to_all"}
    assert moves == (set() if axis == "tensor" else
                     {"transformer.wte", "transformer.wpe", "lm_head"})
    _matches_reference_and_report(runs, "odd", axis, entry)


def test_tensor_axis_has_megatron_figures(report):
    """Per layer: 2 all-reduces forward and 2 backward, each B*T*E*4 bytes."""
    from bwsk.parallel.analysis import per_layer

    layers = per_layer(_axis(report, "tensor")["sync_points"])
    assert set(layers) == {"transformer.h.0", "transformer.h.1"}
    for points in layers.values():
        got = Counter()
        for p in points:
            got[(p["phase"], p["collective"], p["bytes"])] += p["count"]
        assert got == {("fwd", "all_reduce", 4 * 8 * 32 * 4): 2,
                       ("bwd", "all_reduce", 4 * 8 * 32 * 4): 2}
    plan = _axis(report, "tensor")["plan"]
    assert plan["transformer.h.0.attn.c_attn"] == "colwise"
    assert plan["transformer.h.0.attn.c_proj"] == "rowwise"


@pytest.mark.parametrize("axis,style,coll", [("tensor", "colwise", "all_gather"),
                                              ("sequence", "rowwise", "reduce_scatter")])
def test_trainable_position_embeddings_reconcile_per_module(report, axis, style, coll):
    """Token and position embeddings, both split alike: the engine reconciles each module's
    output (B*T*E and T*E bytes), one more collective than reconciling their sum. On the
    tensor axis split along the hidden dim and gathered (a ring all-gather moves half an
    all-reduce's bytes); on the sequence axis vocab-parallel, reduce-scattered onto tokens."""
    entry = _axis(report, axis)
    assert entry["plan"]["transformer.wte"] == entry["plan"]["transformer.wpe"] == style
    points = {p["where"]: p for p in entry["sync_points"]
              if p["phase"] == "fwd" and p["collective"] == coll and "h." not in p["where"]
              and p["where"] != "lm_head"}
    assert {w: (p["bytes"], p["count"], p["minimal"]) for w, p in points.items()} == {
        "transformer.wte": (4 * 8 * 32 * 4, 1, False), "transformer.wpe": (8 * 32 * 4, 1, False)}
    assert points["transformer.wte"]["fused"] == {"where": "transformer", "bytes": 4 * 8 * 32 * 4,
                                                  "count": 1}


def test_sequence_axis_has_megatron_sp_figures(report):
    from bwsk.parallel.analysis import per_layer

    for points in per_layer(_axis(report, "sequence")["sync_points"]).values():
        got = Counter()
        for p in points:
            got[(p["phase"], p["collective"])] += p["count"]
        assert got[("fwd", "all_gather")] == got[("fwd", "reduce_scatter")] == 2
        assert got[("bwd", "all_gather")] == got[("bwd", "reduce_scatter")] == 2
        assert got[("optim", "all_reduce")] == 4  # two LayerNorms' weight and bias


def test_data_axis_matches_reference_and_report(runs, report):
    ref = runs[0]["ref_hf"]
    axis = _axis(report, "data")
    grads = [p for p in axis["sync_points"] if p["phase"] == "optim"]
    assert len(grads) == 1
    n_params = sum(p.numel() for p in __import__("bwsk.parallel.verify", fromlist=["x"])
                   .tiny_gpt2().parameters() if p.requires_grad)
    assert grads[0]["bytes"] == 4 * n_params
    assert axis["totals"]["bwd"] == {}  # wpe's gradient rides on the parameter all-reduce
    for rank in range(WORLD):
        got = runs[rank]["data"]
        torch.testing.assert_close(got["logits"], ref["logits"].chunk(WORLD)[rank], **TOL)
        _close_grads(got["grads"], ref["grads"])
        assert sum(got["buckets"]) == grads[0]["bytes"]
        assert len(got["buckets"]) >= grads[0]["count"]


def test_pipeline_matches_reference_and_report(runs, report):
    ref = runs[0]["ref_hf"]
    axis = _axis(report, "pipeline")
    assert list(axis["plan"].values()) == ["split_before"]
    torch.testing.assert_close(runs[1]["pipeline"]["loss"], ref["loss"], **TOL)
    for rank in range(WORLD):
        _close_grads(runs[rank]["pipeline"]["grads"], ref["grads"])
    counts, nbytes = _reported(axis)
    for rank, phase in ((0, "fwd"), (1, "bwd")):
        sends = runs[rank]["pipeline"]["sends"]
        # activations (and their gradients); the engine also sends the causal mask, which
        # the frontend folds into a constant, and a scalar per stage
        acts = [b for b, shape, dtype in sends if "float" in dtype and len(shape) == 3]
        assert (len(acts), sum(acts)) == (counts[(phase, "send_recv")],
                                          nbytes[(phase, "send_recv")])
        assert len(sends) >= counts[(phase, "send_recv")]
    assert counts[("fwd", "send_recv")] == counts[("bwd", "send_recv")] == MICRO


def test_batchnorm_is_a_data_sync_point_and_matters(runs, bn_report):
    axis = bn_report["axes"][0]
    bn = [p for p in axis["sync_points"] if p["phase"] in ("fwd", "bwd")]
    assert {p["collective"] for p in bn} == {"all_reduce"}
    assert all("1" in p["where"] or "batch" in p["where"].lower() for p in bn), bn
    assert {p["bytes"] for p in bn} == {2 * 16 * 4}  # per-channel sum and sum of squares
    ref, got = runs[0]["bn_ref"], runs[0]["bn"]
    diff = max((got["grads"][n] - ref["grads"][n]).abs().max().item() for n in ref["grads"])
    assert diff > 1e-4, "per-process batch statistics should change the gradients"


@pytest.mark.skip(reason="causal context-parallel attention (torch.distributed.tensor."
                  "experimental.context_parallel) needs CUDA/SDPA kernels; it cannot run on CPU "
                  "in torch 2.13. The report states its all-gathers (see test_parallel_plan.py).")
def test_context_parallel_attention():
    raise AssertionError("unreachable")


@pytest.fixture
def one_rank_mesh():
    """A gloo group of one process: enough for DTensor placements and their bookkeeping."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0,
                            world_size=1)
    yield init_device_mesh("cpu", (1,))
    dist.destroy_process_group()


@pytest.mark.parametrize("head_dim", [0, 1])
def test_apply_reties_a_weight_sharded_alike_and_refuses_two_layouts(one_rank_mesh, head_dim):
    """parallelize_module leaves one sharded copy per module of a tied weight: one layout is
    tied again; two would need copies with summed gradients, so such a plan is refused."""
    from torch import nn
    from torch.distributed.tensor import Shard, distribute_tensor

    from bwsk.errors import PlanError
    from bwsk.parallel.engines import retie

    model = nn.ModuleDict({"emb": nn.Embedding(8, 4), "head": nn.Linear(4, 8, bias=False)})
    w = torch.randn(8, 4)
    for name, dim in (("emb", 0), ("head", head_dim)):
        model[name].weight = nn.Parameter(distribute_tensor(w, one_rank_mesh, [Shard(dim)]))
    if head_dim:
        with pytest.raises(PlanError, match=r"tied weight emb\.weight two ways"):
            retie(model, [["emb.weight", "head.weight"]])
    else:
        retie(model, [["emb.weight", "head.weight"]])
        assert model["head"].weight is model["emb"].weight

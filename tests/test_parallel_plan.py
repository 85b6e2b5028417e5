"""The planner on hand-built graphs (exact figures) and through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bwsk.errors import PlanError
from bwsk.ir import Graph, Node, Value
from bwsk.parallel.analysis import axis_report

B, E, F = 4, 8, 16


def _graph(nodes, values, inputs=("x",), outputs=("y",)) -> Graph:
    vals = {}
    for name, (shape, const) in values.items():
        data = np.zeros(shape, np.float32) if const else None
        vals[name] = Value(name, shape, "float32", data)
    return Graph("g", list(inputs), list(outputs), vals, nodes)


def mlp() -> Graph:
    """tanh(x) @ W1 -> gelu -> @ W2: the Megatron MLP, with scopes like a module tree."""
    return _graph(
        [Node("pre", "tanh", ["x"], ["t"], scope="pre"),
         Node("fc", "matmul", ["t", "fc.weight"], ["h"], scope="fc"),
         Node("act", "gelu", ["h"], ["a"], scope="act"),
         Node("proj", "matmul", ["a", "proj.weight"], ["y"], scope="proj")],
        {"x": ((B, E), False), "t": ((B, E), False), "fc.weight": ((E, F), True),
         "h": ((B, F), False), "a": ((B, F), False), "proj.weight": ((F, E), True),
         "y": ((B, E), False)})


def _count(axis, phase, coll):
    return sum(p["count"] for p in axis["sync_points"]
               if p["phase"] == phase and p["collective"] == coll)


def test_megatron_pairing_falls_out_of_the_search():
    axis = axis_report(mlp(), "tensor", 2)
    assert axis["plan"] == {"fc": "colwise", "proj": "rowwise"}
    assert _count(axis, "fwd", "all_reduce") == 1  # after the row-wise projection
    assert _count(axis, "bwd", "all_reduce") == 1  # gradient of the column-wise input
    assert axis["totals"]["bytes_per_step"] == 2 * B * E * 4
    assert "act" in axis["local_ops"]  # gelu runs on its shard: coordination-free


def test_data_axis_syncs_only_gradients():
    axis = axis_report(mlp(), "data", 2)
    assert [p["phase"] for p in axis["sync_points"]] == ["optim"]
    assert axis["sync_points"][0]["bytes"] == (E * F + F * E) * 4
    assert set(axis["local_ops"]) == {"pre", "fc", "act", "proj"}


def test_batch_mean_is_a_data_sync_point():
    g = _graph([Node("m", "reduce_mean", ["x"], ["y"], {"axes": [0], "keepdims": 0}, scope="loss")],
               {"x": ((B, E), False), "y": ((E,), False)})
    axis = axis_report(g, "data", 2)
    assert axis["totals"]["fwd"] == {}  # a partial mean may stay partial as an output...
    g.outputs = ["z"]
    g.nodes.append(Node("t", "tanh", ["y"], ["z"], scope="head"))
    g.values["z"] = Value("z", (E,), "float32")
    axis = axis_report(g, "data", 2)  # ...but tanh needs the full mean: all-reduce
    assert [(p["where"], p["collective"], p["bytes"]) for p in axis["sync_points"]
            if p["phase"] == "fwd"] == [("loss", "all_reduce", E * 4)]


def test_batchnorm_statistics_are_a_data_sync_point():
    c = 6
    g = _graph([Node("bn", "batchnorm", ["x", "bn.weight", "bn.bias", "m", "v"], ["y"],
                     scope="bn")],
               {"x": ((B, c), False), "bn.weight": ((c,), True), "bn.bias": ((c,), True),
                "m": ((c,), True), "v": ((c,), True), "y": ((B, c), False)})
    axis = axis_report(g, "data", 2)
    stats = [p for p in axis["sync_points"] if p["where"] == "bn"]
    assert {(p["phase"], p["collective"], p["bytes"]) for p in stats} == {
        ("fwd", "all_reduce", 2 * c * 4), ("bwd", "all_reduce", 2 * c * 4)}


def test_softmax_over_a_sharded_dim_gathers():
    g = _graph([Node("s", "softmax", ["x"], ["y"], {"axis": 0}, scope="s")],
               {"x": ((B, E), False), "y": ((B, E), False)})
    axis = axis_report(g, "data", 2)
    assert _count(axis, "fwd", "all_gather") == 1


def chain(layers: int) -> Graph:
    nodes, values = [], {"x": ((B, E), False)}
    prev = "x"
    for i in range(layers):
        w, out = f"h.{i}.weight", f"y{i}"
        nodes.append(Node(f"mm{i}", "matmul", [prev, w], [out], scope=f"h.{i}"))
        values[w], values[out] = ((E, E), True), ((B, E), False)
        prev = out
    return _graph(nodes, values, outputs=(prev,))


def test_pipeline_cuts_balance_and_count_microbatch_sends():
    axis = axis_report(chain(4), "pipeline", 2, microbatches=4)
    assert axis["plan"] == {"h.2": "split_before"}
    assert axis["totals"]["fwd"] == {"send_recv": 4}
    assert axis["totals"]["bwd"] == {"send_recv": 4}
    assert axis["totals"]["bytes_per_step"] == 2 * B * E * 4


def test_pipeline_world_larger_than_layers_is_an_error():
    with pytest.raises(PlanError, match="larger than"):
        axis_report(chain(2), "pipeline", 4)


def test_core_rejects_malformed_problems():
    from bwsk import _core

    with pytest.raises(ValueError, match="calm"):
        _core.calm_cuts([1.0, 1.0], [0, 0], [0, 1, 0], 2)
    assert _core.calm_cuts([1.0, 1.0, 1.0, 1.0], [0, 9, 1, 9, 0], [0, 1, 1, 1, 0], 2) == [2]


def test_default_axes_skip_what_cannot_be_split():
    from bwsk.parallel.api import check_world

    class Config:
        n_head = 12

    module = type("M", (), {"config": Config()})()
    skipped = check_world(module, ["data", "tensor", "pipeline"], 8, 8, 128, strict=False)
    assert list(skipped) == ["tensor"] and "12 attention heads" in skipped["tensor"]
    with pytest.raises(PlanError, match="not divisible"):
        check_world(module, ["tensor"], 8, 8, 128)


def test_world_size_one_is_a_plan_error():
    from bwsk.parallel import plan

    with pytest.raises(PlanError, match="at least 2"):
        plan(mlp(), 1)


def test_apply_rejects_missing_modules():
    torch = pytest.importorskip("torch")
    from bwsk.parallel import apply

    with pytest.raises(PlanError, match="does not have"):
        apply(torch.nn.Linear(2, 2), {"axis": "tensor", "plan": {"nope": "colwise"}}, None)


def _cli(*args, cache=None):
    env = {**os.environ, "BWSK_CACHE": str(cache)} if cache else None
    return subprocess.run([sys.executable, "-m", "bwsk", "plan", *args], capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.mark.slow
def test_cli_reports_gpt2_and_rejects_bad_input(tmp_path):
    pytest.importorskip("transformers")
    out, dot = tmp_path / "p.json", tmp_path / "p.dot"
    small = ("--layers", "2", "--d-model", "64", "--heads", "4", "--vocab", "128", "--seq-len", "8")
    r = _cli("gpt2", "--world-size", "2", *small,
             "--json", str(out), "--dot", str(dot), "--axis", "tensor", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    again = tmp_path / "again.json"  # from the cached shape-only graph: the same report
    r2 = _cli("gpt2", "--world-size", "2", *small, "--json", str(again), "--axis", "tensor",
              cache=tmp_path)
    assert r2.returncode == 0 and again.read_text() == out.read_text()
    assert len(list((tmp_path / "plan").glob("*.pkl"))) == 1
    assert "per layer" in r.stdout and "all-reduce" in r.stdout
    report = json.loads(out.read_text())
    assert report["schema"] == "bwsk.plan/1" and report["world_size"] == 2
    (axis,) = report["axes"]
    assert set(axis) >= {"axis", "plan", "local_ops", "sync_points", "totals"}
    assert "cluster_" in dot.read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "bwsk.plan/1", "axes": [{"axis": "tensor",
                                                                 "plan": {"h.99": "colwise"}}]}))
    for args, message in ((("--world-size", "1"), "at least 2"),
                          (("--world-size", "3", "--axis", "tensor"), "not divisible"),
                          (("--world-size", "2", "--check", str(bad)), "does not have")):
        r = _cli("gpt2", *small, *args, cache=tmp_path)
        last = r.stderr.strip().splitlines()[-1]  # (transformers may warn first)
        assert r.returncode == 2 and last.startswith("bwsk: error:") and message in last


@pytest.mark.slow
def test_sequence_axis_states_context_parallel_all_gathers():
    """Sharding attention itself along the tokens needs every key and value: 2 all-gathers
    per layer forward (and 2 reduce-scatters backward), B*T*E*4 bytes each."""
    pytest.importorskip("transformers")
    from bwsk.parallel import plan
    from bwsk.parallel.verify import tiny_gpt2

    report = plan(tiny_gpt2(), 2, ["sequence"], batch=4, seq_len=8)
    cp = report["axes"][0]["context_parallel"]
    assert cp["totals"]["fwd"] == {"all_gather": 4} and cp["totals"]["bwd"] == {"reduce_scatter": 4}
    assert {p["bytes"] for p in cp["sync_points"]} == {4 * 8 * 32 * 4}
    assert {p["where"] for p in cp["sync_points"]} == {
        f"transformer.h.{i}.attn ({kv})" for i in (0, 1) for kv in ("keys", "values")}


def test_summary_and_picture():
    from bwsk.parallel.render import layer_summary, to_dot

    pts = [{"where": f"m.h.{i}.attn", "phase": ph, "collective": "all_reduce", "bytes": 4096,
            "count": 1, "shape": [], "minimal": True} for i in range(3) for ph in ("fwd", "bwd")]
    text, rest = layer_summary([*pts, {**pts[0], "where": "head"}])
    assert text == ("per layer (3 layers, m.h.0 .. m.h.2): 1 all-reduce fwd (4 KiB), "
                    "1 all-reduce bwd (4 KiB)")
    assert [p["where"] for p in rest] == ["head"]
    text, rest = layer_summary([*pts, {**pts[0], "where": "m.h.3.attn"}])  # planned otherwise
    assert text.startswith("per layer (3 of 4 layers, m.h.0 .. m.h.2): 1 all-reduce fwd")
    assert [p["where"] for p in rest] == ["m.h.3.attn"]
    dot = to_dot(mlp(), axis_report(mlp(), "tensor", 2))
    assert dot.count("subgraph cluster_") == 2  # split where the input gradient syncs
    assert 'color=red' in dot


def test_training_batchnorm_running_statistics_follow_channels():
    c = 6
    g = _graph([Node("bn", "batchnorm", ["x", "bn.weight", "bn.bias", "m", "v"],
                     ["y", "m2", "v2"], {"training_mode": 1}, scope="bn")],
               {"x": ((B, c), False), "bn.weight": ((c,), True), "bn.bias": ((c,), True),
                "m": ((c,), True), "v": ((c,), True), "y": ((B, c), False),
                "m2": ((c,), False), "v2": ((c,), False)}, outputs=("y", "m2", "v2"))
    axis = axis_report(g, "data", 2)
    stats = {(p["phase"], p["collective"]) for p in axis["sync_points"] if p["where"] == "bn"}
    assert ("fwd", "all_reduce") in stats


def test_position_embeddings_are_a_parameter_not_a_constant():
    """wpe is looked up at fixed positions; its gradient still reaches the report, carried by
    the data-parallel gradient all-reduce (no extra backward all-reduce, as in DDP)."""
    from bwsk.parallel import plan
    from bwsk.parallel.verify import tiny_gpt2

    model = tiny_gpt2()
    assert model.transformer.wpe.weight.requires_grad
    report = plan(model, 2, ["data"], batch=4, seq_len=8)
    reads = {x for n in report["_graph"].nodes for x in n.inputs}
    assert "transformer.wpe.weight" in reads
    [grads] = report["axes"][0]["sync_points"]
    assert grads["phase"] == "optim" and grads["bytes"] == 4 * sum(
        p.numel() for p in model.parameters())


def test_input_free_constant_subgraph_syncs_nothing_backward():
    """A bias computed from a parameter alone is the same on every rank: no bwd all-reduce."""
    g = _graph([Node("pos", "tanh", ["pos.weight"], ["q"], scope="pos"),
                Node("add", "add", ["x", "q"], ["y"], scope="add")],
               {"x": ((B, E), False), "pos.weight": ((E,), True), "q": ((E,), False),
                "y": ((B, E), False)})
    axis = axis_report(g, "data", 2)
    assert [(p["phase"], p["bytes"]) for p in axis["sync_points"]] == [("optim", E * 4)]
    assert axis["totals"]["bwd"] == {}


def test_a_sharded_input_free_value_keeps_its_backward_sync():
    """Only a value computed identically on every rank may push its partial gradient back to
    its parameters: a table sharded on the tensor axis is not such a value."""
    from bwsk import _core
    from bwsk.parallel.classes import classes_of
    from bwsk.parallel.problem import build

    g = _graph([Node("pos", "tanh", ["pos.weight"], ["q"], scope="pos"),
                Node("add", "add", ["x", "q"], ["y"], scope="add")],
               {"x": ((B, E), False), "pos.weight": ((E,), True), "q": ((E,), False),
                "y": ((B, E), False)})
    problem, names = build(g, classes_of(g), "data", 2, {"pos.weight"})
    out = _core.calm_search(problem)
    assert [(names[r[0]], r[1], r[2]) for r in out["records"]] == [("pos.weight", -1, 2)]
    problem["val_fixed"][names.index("q")] = problem["val_all"][problem["val_all_off"][
        names.index("q")]]  # force q sharded on its own dim: not replicated, so no push
    problem["val_ok"] = problem["val_all"]
    problem["val_ok_off"] = problem["val_all_off"]
    kinds = {(names[r[0]], r[2]) for r in _core.calm_search(problem)["records"]}
    assert ("pos.weight", 2) not in kinds


def test_partial_sums_of_two_modules_are_reconciled_per_module():
    """The search may add two modules' partial sums before one all-reduce; the engine
    reconciles each module's output (before the add): two records with their own bytes, and
    the fused one."""
    from bwsk.parallel.problem import PARTIAL, REPLICATED
    from bwsk.parallel.reconcile import per_module

    g = _graph([Node("tok", "gather", ["tok.weight", "x"], ["e"], scope="tok"),
                Node("pos", "gather", ["pos.weight", "p"], ["q"], scope="pos"),
                Node("add", "add", ["e", "q"], ["s"], scope="model"),
                Node("ln", "layernorm", ["s"], ["y"], scope="ln")],
               {"x": ((B, E), False), "p": ((1, E), True), "tok.weight": ((E, F), True),
                "pos.weight": ((E, F), True), "e": ((B, E, F), False), "q": ((1, E, F), False),
                "s": ((B, E, F), False), "y": ((B, E, F), False)})
    names = list(g.values)
    states = dict.fromkeys(names, REPLICATED) | {"e": PARTIAL, "q": PARTIAL, "s": PARTIAL}
    fwd = (names.index("s"), 3, 0, 1, B * E * F * 4)
    bwd = (names.index("s"), 3, 1, 1, B * E * F * 4)  # the consumer's own gradient all-reduce
    records, fused = per_module(g, names, [fwd, bwd], states,
                                {"tok": "rowwise", "pos": "rowwise"}, None)
    assert sorted((names[r[0]], r[1], r[2], r[4]) for r in records) == [
        ("e", 2, 0, B * E * F * 4), ("q", 2, 0, E * F * 4), ("s", 3, 1, B * E * F * 4)]
    assert fused[names.index("q")]["fwd"] == {"where": "model", "bytes": B * E * F * 4,
                                              "count": 1}
    states["q"] = REPLICATED  # a replicated (frozen) position table: one module, one record
    one, _ = per_module(g, names, [fwd], states, {"tok": "rowwise"}, None)
    assert one == [fwd]


def tied_lm(vocab: int = 64) -> Graph:
    """A token table looked up and then, transposed, used as the output head (GPT-2's tie)."""
    g = _graph([Node("tok", "gather", ["tok.weight", "x"], ["e"], scope="tok"),
                Node("act", "tanh", ["e"], ["h"], scope="act"),
                Node("head", "matmul", ["h", "tok.weight.T"], ["y"], scope="head")],
               {"x": ((B, E), False), "tok.weight": ((vocab, F), True),
                "tok.weight.T": ((F, vocab), True), "e": ((B, E, F), False),
                "h": ((B, E, F), False), "y": ((B, E, vocab), False)})
    g.values["x"] = Value("x", (B, E), "int64", None)
    return g


ONE_LAYOUT = {("rowwise", "colwise"), ("colwise", "rowwise")}  # both by vocab, or by hidden


@pytest.mark.parametrize("axis", ["tensor", "sequence"])
def test_a_tied_table_gets_one_layout(monkeypatch, axis):
    """Searched freely, the table splits by hidden size for the lookup and by vocabulary for
    the head: one parameter, two layouts. The planner searches again with each layout the
    two uses can share and keeps the cheapest."""
    import bwsk.parallel.analysis as analysis

    plan = axis_report(tied_lm(), axis, 2)["plan"]
    assert (plan["tok"], plan["head"]) in ONE_LAYOUT
    monkeypatch.setattr(analysis, "agree", lambda *args: args[5])
    free = axis_report(tied_lm(), axis, 2)["plan"]
    assert (free["tok"], free["head"]) not in ONE_LAYOUT


def test_tied_gpt2_plans_one_layout_for_wte_and_lm_head():
    """The issue's tiny GPT-2 with its real tie: vocab-parallel embedding and head."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from bwsk.parallel import plan

    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=1000, n_positions=16,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
    report = plan(GPT2LMHeadModel(config), 2, ["tensor", "sequence"], batch=4, seq_len=16)
    for entry in report["axes"]:
        assert (entry["plan"]["transformer.wte"], entry["plan"]["lm_head"]) == (
            "rowwise", "colwise")
        assert not [p for p in entry["sync_points"] if "wte.weight" in p["where"]
                    or "lm_head.weight" in p["where"]]  # one tensor: nothing to reconcile

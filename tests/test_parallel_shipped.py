"""The planner on the shipped full-size zoo graphs: cold start without torch, the graphs equal
a fresh trace, and the figures the issue names come out of the search layer by layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

COLD = """
import sys
from bwsk.cli import main
code = main(["plan", "gpt2", "--world-size", "8", "--json", sys.argv[1]])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers"})
print("HEAVY", heavy)
sys.exit(code)
"""


def test_cold_gpt2_plan_reads_the_shipped_graph_without_torch(tmp_path):
    """Issue 5: the default `bwsk plan gpt2` needs neither torch nor a trace nor a cache."""
    out = tmp_path / "p.json"
    r = subprocess.run([sys.executable, "-c", COLD, str(out)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "BWSK_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout and not (tmp_path / "plan").exists()
    report = json.loads(out.read_text())
    assert [a["axis"] for a in report["axes"]] == ["data", "pipeline"]  # 12 heads, P=8
    data = report["axes"][0]["totals"]
    assert data["bytes_per_step"] == 124_439_808 * 4  # every gradient once, wte = lm_head once


def _shipped():
    from bwsk.parallel.shipped import SHIPPED

    return [(name, b, t) for name, shapes in SHIPPED.items() for b, t in shapes]


@pytest.mark.slow
@pytest.mark.parametrize("name,batch,seq_len", _shipped())
def test_shipped_graph_matches_a_fresh_trace(name, batch, seq_len):
    """The shipped graphs are the models' architecture: a fresh trace must give the same."""
    pytest.importorskip("transformers")
    from bwsk.parallel import shipped

    stored = shipped.load(name, None, batch, seq_len)
    assert stored is not None
    assert shipped.fingerprint(shipped.trace(name, batch, seq_len)) == shipped.fingerprint(stored)


@pytest.mark.slow
def test_plan_from_the_shipped_graph_equals_the_traced_plan():
    """Stripping the weights changes no figure: the full traced graph plans alike."""
    pytest.importorskip("transformers")
    from bwsk.parallel import plan
    from bwsk.parallel.api import build_graph, to_json

    full, _ = build_graph("gpt2", batch=8, seq_len=128)
    traced = to_json(plan(full, 8, batch=8, seq_len=128, name="gpt2"))
    assert traced == to_json(plan("gpt2", 8, batch=8, seq_len=128, name="gpt2"))


def _layers(name: str, axis: str, world: int, batch: int) -> dict:
    """{layer: Counter of (phase, collective, bytes or 0 for optim)} on a shipped graph."""
    from collections import Counter

    from bwsk.parallel import shipped
    from bwsk.parallel.analysis import per_layer
    from bwsk.parallel.api import plan

    entry = plan(shipped.load(name, None, batch, 128), world, [axis], name=name)["axes"][0]
    return {layer: Counter({(p["phase"], p["collective"], p["bytes"] * (p["phase"] != "optim"),
                             p["where"].removeprefix(layer)): p["count"] for p in points})
            for layer, points in per_layer(entry["sync_points"]).items()}


@pytest.mark.parametrize("axis,want", [
    ("tensor", {("fwd", "all_reduce"): 2, ("bwd", "all_reduce"): 2}),
    ("sequence", {("fwd", "all_gather"): 2, ("fwd", "reduce_scatter"): 2,
                  ("bwd", "all_gather"): 2, ("bwd", "reduce_scatter"): 2,
                  ("optim", "all_reduce"): 4})])
def test_full_size_gpt2_gets_the_megatron_figures_in_every_layer(axis, want):
    """Issue 5 at the zoo's shipped size (12 layers, E=768, vocab 50257, tied lm_head): the
    search, not a template, finds Megatron TP and SP; each activation sync is B*T*E*4 bytes
    and the optimizer phase all-reduces the two LayerNorms' weight and bias."""
    layers = _layers("gpt2", axis, 4, 4)
    assert len(layers) == 12
    for got in layers.values():
        counts = {}
        for (phase, coll, _, _), n in got.items():
            counts[(phase, coll)] = counts.get((phase, coll), 0) + n
        assert counts == want
        assert {b for (ph, _, b, _) in got if ph != "optim"} == {4 * 128 * 768 * 4}


@pytest.mark.parametrize("axis", ["tensor", "sequence"])
def test_opt_350m_plans_every_layer_alike_but_the_first(axis):
    """Layers 1..23 get one plan. Layer 0 really differs: its input is the sum of the
    hidden-split project_in output and position table, gathered once, so its q/k/v
    gradients reduce-scatter back onto that split (tensor) and its residual stays whole
    rather than paying an all-to-all onto the tokens (sequence)."""
    layers = list(_layers("opt-350m", axis, 8, 8).values())
    assert len(layers) == 24
    assert all(got == layers[1] for got in layers[2:])
    assert layers[0] != layers[1]
    q_bwd = {c for (ph, c, _, w) in layers[0] if ph == "bwd" and w == ".self_attn.q_proj"}
    assert q_bwd == {"reduce_scatter"}


def test_a_weight_tied_across_stages_syncs_its_gradient_copies():
    """GPT-2's wte and lm_head are one parameter on the first and the last stage: each stage
    holds a copy, and their gradients are summed once per step (V*E*4 bytes)."""
    from bwsk.parallel import shipped
    from bwsk.parallel.api import plan

    entry = plan(shipped.load("gpt2", None, 4, 128), 4, ["pipeline"], name="gpt2")["axes"][0]
    optim = [p for p in entry["sync_points"] if p["phase"] == "optim"]
    assert [(p["collective"], p["shape"], p["bytes"], p["count"]) for p in optim] == [
        ("all_reduce", [50257, 768], 50257 * 768 * 4, 1)]

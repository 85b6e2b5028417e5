"""The benchmark's comparison pieces: the re-created published classifier reproduces the
model cards, and scope subgraphs are cut as functions of what flows into a module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_report_common import layered_graph

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_analyze import CARDS, scope_subgraph
from bwsk_classifier_baseline import classify, classify_type, time_model, twins


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt2", "bert-base", "t5-small", "opt-350m"])
def test_recreated_table_reproduces_the_model_cards(name):
    torch = pytest.importorskip("torch")
    from bwsk.zoo import build_model

    with torch.device("meta"):
        model, _ = build_model(name)
    census = classify(model)
    ratios = tuple(round(100 * census.ratio(k), 1) for k in ("S", "K", "GRAY"))
    assert ratios == CARDS[name]


def test_table_follows_the_class_hierarchy_then_suffixes():
    torch = pytest.importorskip("torch")

    class MyEmbedding(torch.nn.Embedding):
        pass

    class FancyLayerNorm(torch.nn.Module):
        pass

    assert classify_type(MyEmbedding) == ("S", 0.95)
    assert classify_type(FancyLayerNorm)[0] == "S"
    assert classify_type(torch.nn.Tanh)[0] == "K"  # the table's mistake bwsk corrects
    assert classify_type(torch.nn.Bilinear) == ("GRAY", 0.50)


def test_scope_subgraph_is_the_module_as_a_function_of_its_inputs():
    graph = layered_graph(layers=11)
    sub = scope_subgraph(graph, "h.1")  # not h.10
    assert [n.name for n in sub.nodes] == ["h.1/transpose", "h.1/mm", "h.1/relu", "h.1/add"]
    assert sub.inputs == ["h.0/add:0"]  # the weight stays a constant, not an input
    assert sub.outputs == ["h.1/add:0"]
    whole = scope_subgraph(graph, "h")  # a parent scope takes in its children
    assert len(whole.nodes) == 44 and whole.inputs == ["x"] and whole.outputs == ["h.10/add:0"]
    assert scope_subgraph(graph, "h.1/relu") is None


def test_time_model_times_both_routes_on_a_twin_fx_can_trace():
    pytest.importorskip("torch")
    model, inputs = twins()["coupling"]
    row = time_model(model, inputs, repeats=1)
    assert row["route"] == "fx" and isinstance(row["fx lookup"], float)
    steps = ("lookup", "fx lookup", "capture", "export capture", "walk", "analyze",
             "analyze+weights")
    assert all(row[k] > 0 for k in steps)
    # the table calls the coupling's Tanh and ReLU erasing; the coupling is proved injective
    assert classify(model).counts["K"] == 2
    assert row["analyze verdict"] == row["analyze+weights verdict"] == "S"

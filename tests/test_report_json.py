"""The JSON report contract: schema validity, witness keys and shapes, summary arithmetic."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from test_report_common import toy_analysis

from bwsk.analysis import Witness
from bwsk.report import JSON_SCHEMA, check_witness, to_dict, write_json

VALIDATOR = jsonschema.Draft202012Validator(JSON_SCHEMA)


@pytest.mark.parametrize("verdict", ["S", "K", "GRAY"])
def test_report_validates_against_schema(tmp_path, verdict):
    path = write_json(toy_analysis(verdict=verdict), tmp_path / "r.json")
    doc = json.loads(path.read_text())
    VALIDATOR.validate(doc)
    assert doc["schema"] == "bwsk.report/1"
    assert doc["verdict"] == verdict
    assert doc["inverse_available"] is (verdict == "S")
    assert (doc["witness"] is None) is (verdict != "K")
    assert doc["term"] == "\\x. softmax x"


def test_schema_rejects_broken_reports():
    doc = to_dict(toy_analysis())
    for mutate in (lambda d: d.update(verdict="maybe"), lambda d: d.pop("summary"),
                   lambda d: d["nodes"][0].update(erased_dims="two"),
                   lambda d: d["summary"].update(s_ratio=1.5)):
        broken = json.loads(json.dumps(doc))
        mutate(broken)
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate(broken)


def test_witness_keys_and_shapes_are_the_graph_inputs_exactly(tmp_path):
    analysis = toy_analysis()
    doc = json.loads(write_json(analysis, tmp_path / "r.json").read_text())
    for side in ("a", "b"):
        assert list(doc["witness"][side]) == ["x"]
        replay = np.asarray(doc["witness"][side]["x"], dtype=np.float32)
        assert replay.shape == analysis.graph.values["x"].shape
        np.testing.assert_array_equal(replay, getattr(analysis.witness, side)["x"])
    assert doc["witness"]["max_abs_diff"] == pytest.approx(5.0)


def test_initializers_listed_as_inputs_are_not_witness_keys():
    analysis = toy_analysis()
    analysis.graph.inputs.append("bias")  # old ONNX files list initializers as inputs
    doc = to_dict(analysis)
    assert list(doc["witness"]["a"]) == ["x"]
    assert [v["name"] for v in doc["inputs"]] == ["x"]


@pytest.mark.parametrize("a, b, message", [
    ({"x": np.zeros((2, 4))}, {"x": np.ones((2, 4)), "z": np.ones(1)}, "keys"),
    ({"x": np.zeros((4, 2))}, {"x": np.ones((4, 2))}, "shape"),
    ({"x": np.zeros((2, 4))}, {"x": np.zeros((2, 4))}, "differ by"),
])
def test_witness_breaking_the_contract_is_refused(a, b, message):
    analysis = toy_analysis()
    with pytest.raises(ValueError, match=message):
        check_witness(analysis.graph, Witness(a, b))


def test_symbolic_dims_accept_any_size():
    analysis = toy_analysis()
    analysis.graph.values["x"].shape = ("batch", 4)
    gap = check_witness(analysis.graph, Witness({"x": np.zeros((7, 4))}, {"x": np.ones((7, 4))}))
    assert gap == 1.0


def test_summary_counts_and_ratios():
    summary = to_dict(toy_analysis(layers=3))["summary"]
    # per layer: transpose S, matmul GRAY, relu K, add K; plus the final softmax K
    assert (summary["ops"], summary["S"], summary["K"], summary["GRAY"]) == (13, 3, 7, 3)
    assert summary["k_ratio"] == pytest.approx(7 / 13)
    assert summary["s_ratio"] + summary["k_ratio"] + summary["gray_ratio"] == pytest.approx(1)
    assert (summary["blocks"], summary["distinct_blocks"]) == (3, 1)


def test_nodes_carry_erased_dims_conditions_and_scope():
    nodes = {n["name"]: n for n in to_dict(toy_analysis())["nodes"]}
    assert nodes["head/softmax"]["erased_dims"] == 1
    assert nodes["h.0/relu"]["erased_dims"] is None
    assert nodes["h.1/mm"]["conditions"] == ["W has full column rank"]
    assert nodes["h.1/mm"]["scope"] == "h.1"


def test_extra_becomes_plain_json():
    analysis = toy_analysis()
    analysis.extra = {"sigma_min": np.float32(0.5), "tol": float("inf"), "obj": object()}
    extra = json.loads(json.dumps(to_dict(analysis), allow_nan=False))["extra"]
    assert extra["sigma_min"] == 0.5 and extra["tol"] == "inf"
    assert extra["obj"].startswith("<object")

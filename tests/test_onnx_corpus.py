"""The external ONNX corpus shipped in the onnx wheel: every model loads, lowers and gets a
verdict without an error, and every K witness collides when run independently."""

from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import onnx
import pytest

import bwsk

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
LIGHT = sorted(glob.glob(os.path.join(DATA, "light", "*.onnx")))
PYTORCH = sorted(glob.glob(os.path.join(DATA, "pytorch-*", "*", "model.onnx")))


def outputs(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    """onnxruntime, or ONNX's reference evaluator for what onnxruntime cannot load."""
    import onnxruntime as ort

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.ir_version = min(copy.ir_version, 10)
    try:
        sess = ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])
        wanted = {i.name for i in sess.get_inputs()}
        return sess.run(None, {k: v for k, v in feeds.items() if k in wanted})
    except Exception:
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, feeds)


def check(model, analysis) -> None:
    assert analysis.verdict in ("S", "K", "GRAY")
    assert analysis.reason
    assert not any("rule failed" in n.reason for n in analysis.nodes), analysis.reason
    assert analysis.term is not None, analysis.extra.get("term")
    if analysis.verdict == "K":
        w = analysis.witness
        diff = max(
            float(
                np.max(
                    np.abs(np.asarray(w.a[n], np.float64) - np.asarray(w.b[n], np.float64)),
                    initial=0.0,
                )
            )
            for n in w.a
        )
        assert diff >= 1e-3
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for p, q in zip(outputs(model, w.a), outputs(model, w.b), strict=False):
                np.testing.assert_allclose(
                    np.asarray(p, np.float64), np.asarray(q, np.float64), rtol=1e-4, atol=1e-5
                )


@pytest.mark.slow
@pytest.mark.parametrize("path", LIGHT, ids=[os.path.basename(p) for p in LIGHT])
def test_light_models(path):
    check(onnx.load(path), bwsk.analyze(path))


def test_pytorch_converted_and_operator_models():
    assert len(PYTORCH) >= 110
    for path in PYTORCH:
        check(onnx.load(path), bwsk.analyze(path))


@pytest.mark.slow
def test_node_conformance_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    assert len(cases) >= 1800
    verdicts = {"S": 0, "K": 0, "GRAY": 0}
    for case in cases:
        analysis = bwsk.analyze(case.model)
        check(case.model, analysis)
        verdicts[analysis.verdict] += 1
    assert verdicts["S"] > 100 and verdicts["K"] > 300

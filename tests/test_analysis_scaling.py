"""Analysis work grows linearly with depth, measured without a clock: the number of function
calls bwsk makes (Python and C) during a warm analysis of 8-, 16- and 32-layer tiny GPT-2s,
and the onnxruntime sessions it builds. A per-block scan of the whole model, a per-block
session or a quadratic walk shows up as a growing increment per added layer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import onnxruntime
import pytest

import bwsk
from bwsk.analysis import analyze
from bwsk.frontends.onnx import load_onnx

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PACKAGE = os.path.dirname(bwsk.__file__)
DEPTHS = (8, 16, 32)


def _tiny_gpt2(layers: int):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import make_examples
    finally:
        sys.path.remove(str(EXAMPLES))
    return load_onnx(make_examples.tiny_gpt2(layers=layers, d=16, vocab=32))


def _work(graph, monkeypatch) -> tuple[int, int]:
    """(calls made from bwsk's own code, sessions built) in one analysis after a warm-up
    (first-use imports and the per-op session cache are start-up costs, not depth costs)."""
    analyze(graph, weights=True)
    calls, sessions = [0], [0]
    real = onnxruntime.InferenceSession

    def counting(*args, **kwargs):
        sessions[0] += 1
        return real(*args, **kwargs)

    def hook(frame, event, arg):
        if event in ("call", "c_call") and frame.f_code.co_filename.startswith(PACKAGE):
            calls[0] += 1

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting)
    sys.setprofile(hook)
    try:
        analysis = analyze(graph, weights=True)
    finally:
        sys.setprofile(None)
        monkeypatch.setattr(onnxruntime, "InferenceSession", real)
    assert analysis.blocks  # the per-block proofs are part of what is measured
    return calls[0], sessions[0]


@pytest.mark.slow
def test_analysis_work_per_added_layer_stays_constant(monkeypatch):
    work = {layers: _work(_tiny_gpt2(layers), monkeypatch) for layers in DEPTHS}
    calls = [work[layers][0] for layers in DEPTHS]
    first, second = calls[1] - calls[0], calls[2] - calls[1]
    assert first > 0
    # linear work doubles the increment when the added depth doubles; a quadratic term of
    # 0.4 % of the per-layer work would already push it past 2.15
    assert second <= 2.15 * first, (calls, second / first)
    sessions = {work[layers][1] for layers in DEPTHS}
    assert len(sessions) == 1 and max(sessions) <= 1, work  # none per block or per layer

"""Round trip on lowered real models: the printer's text of a model term parses back to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bwsk.lang import parse, print_term

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["coupling.onnx", "tiny_gpt2.onnx", "resnet_like.onnx"])
def test_lowered_model_terms_round_trip(name):
    load_onnx = pytest.importorskip("bwsk.frontends.onnx").load_onnx
    lower = pytest.importorskip("bwsk.lower").lower
    graph = load_onnx(EXAMPLES / name)
    surface = lower(graph, normalize=False)  # \x1 ... xn. <...>: lambdas and shared lets
    assert surface.kind == "lam"
    for term in (surface, surface.normalize()):
        text = print_term(term)
        assert parse(text, source=name) == term

"""The bundled examples are exactly what examples/make_examples.py writes, and they load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bwsk.frontends.onnx import load_onnx
from bwsk.lower import find_blocks

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ("tiny_gpt2.onnx", "resnet_like.onnx", "coupling.onnx")


def test_examples_are_regenerated_byte_for_byte(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), str(tmp_path)],
                   check=True, capture_output=True)
    for name in NAMES:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name
    assert sum((EXAMPLES / n).stat().st_size for n in NAMES) < 1_000_000


def test_examples_load_with_scopes():
    gpt2 = load_onnx(EXAMPLES / "tiny_gpt2.onnx")
    assert gpt2.inputs == ["input_ids"] and gpt2.values["logits"].shape == (1, 8, 128)
    assert {"h.0.attn", "h.1.mlp.act"} <= {n.scope for n in gpt2.nodes}
    assert "softmax" in {n.op for n in gpt2.nodes}
    resnet = load_onnx(EXAMPLES / "resnet_like.onnx")
    assert {"conv", "batchnorm", "relu", "max_pool", "add", "gemm"} <= {n.op for n in resnet.nodes}
    assert [b.scope for b in find_blocks(resnet)] == ["layer1.0", "layer1.1"]
    coupling = load_onnx(EXAMPLES / "coupling.onnx")
    assert coupling.inputs == ["x1", "x2"] and coupling.outputs == ["y1", "y2"]
    y1 = coupling.producer["y1"]
    assert y1.op == "add" and "x1" in y1.inputs
    assert {"tanh", "relu"} <= {n.op for n in coupling.nodes}

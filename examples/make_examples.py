"""Regenerate the bundled example models (deterministic; run from anywhere):

    python examples/make_examples.py [OUT_DIR]

tiny_gpt2.onnx   a 2-layer GPT-2 (d 64, 4 heads, vocab 128, 8 tokens) with exporter-style
                 names ("/h.0/attn/MatMul") so scopes and repeated blocks are visible
resnet_like.onnx conv / batchnorm / relu / residual add / max pool / global pool / gemm
coupling.onnx    an additive coupling y1 = x1 + F(x2), y2 = x2 + G(y1) with nonlinear F, G

They are written with onnx.helper rather than a torch exporter: the TorchScript exporter
rejects current transformers GPT-2 (aten::diff) and the dynamo one needs onnxscript; by hand
the files are small, byte-stable and need nothing but onnx and numpy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
FLOAT = TensorProto.FLOAT


class Builder:
    """Collects nodes and initializers; names follow the exporter style '/scope/Op_k'."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count: dict[str, int] = {}

    def weight(self, name: str, shape: tuple[int, ...], scale: float = 0.02) -> str:
        data = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        return self.const(name, data)

    def const(self, name: str, data) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(data), name))
        return name

    def op(self, scope: str, op_type: str, inputs: list[str], n_out: int = 1,
           out: str | None = None, **attrs) -> list[str]:
        key = f"{scope}/{op_type}"
        k = self.count.get(key, 0)
        self.count[key] = k + 1
        name = f"/{scope}/{op_type}" + (f"_{k}" if k else "")
        outs = [out] if out else [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs

    def one(self, scope: str, op_type: str, inputs: list[str], out: str | None = None,
            **attrs) -> str:
        return self.op(scope, op_type, inputs, out=out, **attrs)[0]

    def model(self, name: str, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="bwsk-examples")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _linear(b: Builder, scope: str, x: str, d_in: int, d_out: int, prefix: str) -> str:
    w = b.weight(f"{prefix}.weight", (d_in, d_out))
    bias = b.weight(f"{prefix}.bias", (d_out,))
    return b.one(scope, "Add", [b.one(scope, "MatMul", [x, w]), bias])


def _layernorm(b: Builder, scope: str, x: str, d: int, prefix: str) -> str:
    w = b.const(f"{prefix}.weight", np.ones(d, np.float32))
    bias = b.const(f"{prefix}.bias", np.zeros(d, np.float32))
    return b.one(scope, "LayerNormalization", [x, w, bias], axis=-1, epsilon=1e-5)


def _gelu_tanh(b: Builder, scope: str, x: str) -> str:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as GPT-2 spells it."""
    c = {k: b.const(f"{scope}.{k}", np.float32(v)) for k, v in
         (("half", 0.5), ("three", 3.0), ("k", 0.044715), ("s", 0.7978845608028654),
          ("one", 1.0))}
    cube = b.one(scope, "Mul", [b.one(scope, "Pow", [x, c["three"]]), c["k"]])
    inner = b.one(scope, "Mul", [b.one(scope, "Add", [x, cube]), c["s"]])
    return b.one(scope, "Mul", [b.one(scope, "Mul", [x, c["half"]]),
                                b.one(scope, "Add", [b.one(scope, "Tanh", [inner]), c["one"]])])


def _attention(b: Builder, layer: str, x: str, seq: int, d: int, heads: int) -> str:
    scope = f"{layer}/attn"
    qkv = _linear(b, f"{scope}/c_attn", x, d, 3 * d, f"{layer}.attn.c_attn")
    split = b.const(f"{layer}.attn.split", np.array([d, d, d], np.int64))
    q, k, v = b.op(scope, "Split", [qkv, split], n_out=3, axis=2)
    shape = b.const(f"{layer}.attn.heads_shape", np.array([1, seq, heads, d // heads], np.int64))
    q, k, v = (b.one(scope, "Transpose", [b.one(scope, "Reshape", [t, shape])], perm=[0, 2, 1, 3])
               for t in (q, k, v))
    kt = b.one(scope, "Transpose", [k], perm=[0, 1, 3, 2])
    scale = b.const(f"{layer}.attn.scale", np.float32((d // heads) ** -0.5))
    scores = b.one(scope, "Mul", [b.one(scope, "MatMul", [q, kt]), scale])
    mask = b.const(f"{layer}.attn.causal_mask",
                   np.triu(np.full((seq, seq), -1e4, np.float32), k=1))
    probs = b.one(scope, "Softmax", [b.one(scope, "Add", [scores, mask])], axis=-1)
    ctx = b.one(scope, "Transpose", [b.one(scope, "MatMul", [probs, v])], perm=[0, 2, 1, 3])
    merged = b.const(f"{layer}.attn.merge_shape", np.array([1, seq, d], np.int64))
    ctx = b.one(scope, "Reshape", [ctx, merged])
    return _linear(b, f"{scope}/c_proj", ctx, d, d, f"{layer}.attn.c_proj")


def tiny_gpt2(layers: int = 2, d: int = 64, heads: int = 4, vocab: int = 128,
              seq: int = 8) -> onnx.ModelProto:
    b = Builder(seed=0)
    wte = b.weight("wte.weight", (vocab, d))
    wpe = b.weight("wpe.weight", (seq, d), scale=0.01)
    positions = b.const("position_ids", np.arange(seq, dtype=np.int64).reshape(1, seq))
    h = b.one("embed", "Add", [b.one("wte", "Gather", [wte, "input_ids"], axis=0),
                                b.one("wpe", "Gather", [wpe, positions], axis=0)])
    for i in range(layers):
        layer = f"h.{i}"
        a = _attention(b, layer, _layernorm(b, f"{layer}/ln_1", h, d, f"{layer}.ln_1"),
                       seq, d, heads)
        h = b.one(layer, "Add", [h, a])
        m = _linear(b, f"{layer}/mlp/c_fc", _layernorm(b, f"{layer}/ln_2", h, d, f"{layer}.ln_2"),
                    d, 4 * d, f"{layer}.mlp.c_fc")
        m = _linear(b, f"{layer}/mlp/c_proj", _gelu_tanh(b, f"{layer}/mlp/act", m),
                    4 * d, d, f"{layer}.mlp.c_proj")
        h = b.one(layer, "Add", [h, m])
    h = _layernorm(b, "ln_f", h, d, "ln_f")
    wte_t = b.one("lm_head", "Transpose", [wte], perm=[1, 0])
    b.one("lm_head", "MatMul", [h, wte_t], out="logits")
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq])]
    outputs = [helper.make_tensor_value_info("logits", FLOAT, [1, seq, vocab])]
    return b.model("tiny_gpt2", inputs, outputs)


def _conv_bn(b: Builder, scope: str, x: str, c_in: int, c_out: int, prefix: str) -> str:
    w = b.weight(f"{prefix}.conv.weight", (c_out, c_in, 3, 3), scale=0.2)
    conv = b.one(f"{scope}/conv", "Conv", [x, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    stats = [b.const(f"{prefix}.bn.{k}", v) for k, v in (
        ("weight", np.ones(c_out, np.float32)), ("bias", np.zeros(c_out, np.float32)),
        ("running_mean", np.zeros(c_out, np.float32)),
        ("running_var", np.ones(c_out, np.float32)))]
    return b.one(f"{scope}/bn", "BatchNormalization", [conv, *stats], epsilon=1e-5)


def resnet_like(channels: int = 8, classes: int = 10, size: int = 16) -> onnx.ModelProto:
    b = Builder(seed=1)
    h = b.one("stem", "Relu", [_conv_bn(b, "stem", "image", 3, channels, "stem")])
    for i in range(2):
        scope = f"layer1.{i}"
        r = b.one(scope, "Relu", [_conv_bn(b, f"{scope}/1", h, channels, channels,
                                           f"{scope}.1")])
        r = _conv_bn(b, f"{scope}/2", r, channels, channels, f"{scope}.2")
        h = b.one(scope, "Relu", [b.one(scope, "Add", [r, h])])
    h = b.one("pool", "MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.one("head", "Flatten", [b.one("head", "GlobalAveragePool", [h])], axis=1)
    w = b.weight("fc.weight", (classes, channels), scale=0.3)
    bias = b.weight("fc.bias", (classes,))
    b.one("head/fc", "Gemm", [h, w, bias], out="logits", transB=1)
    inputs = [helper.make_tensor_value_info("image", FLOAT, [1, 3, size, size])]
    outputs = [helper.make_tensor_value_info("logits", FLOAT, [1, classes])]
    return b.model("resnet_like", inputs, outputs)


def _mlp(b: Builder, scope: str, x: str, d: int, act: str) -> str:
    h = b.one(scope, act, [_linear(b, f"{scope}/fc1", x, d, 2 * d, f"{scope}.fc1")])
    return _linear(b, f"{scope}/fc2", h, 2 * d, d, f"{scope}.fc2")


def coupling(d: int = 8) -> onnx.ModelProto:
    b = Builder(seed=2)
    b.one("coupling", "Add", ["x1", _mlp(b, "F", "x2", d, "Tanh")], out="y1")
    b.one("coupling", "Add", ["x2", _mlp(b, "G", "y1", d, "Relu")], out="y2")
    inputs = [helper.make_tensor_value_info(n, FLOAT, [1, d]) for n in ("x1", "x2")]
    outputs = [helper.make_tensor_value_info(n, FLOAT, [1, d]) for n in ("y1", "y2")]
    return b.model("coupling", inputs, outputs)


EXAMPLES = {"tiny_gpt2.onnx": tiny_gpt2, "resnet_like.onnx": resnet_like,
            "coupling.onnx": coupling}


def main(out_dir: str | None = None) -> None:
    out = Path(out_dir) if out_dir else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    for name, make in EXAMPLES.items():
        (out / name).write_bytes(make().SerializeToString(deterministic=True))
        print(out / name)


if __name__ == "__main__":
    main(*sys.argv[1:2])

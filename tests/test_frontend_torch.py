"""The torch frontend: ATen graphs map onto bwsk atoms and compute what the module computes."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from bwsk import zoo  # noqa: E402
from bwsk.catalogue.run import run_node  # noqa: E402
from bwsk.errors import UnsupportedModelError  # noqa: E402
from bwsk.frontends import aten_atoms  # noqa: E402
from bwsk.frontends.torch import graph_of  # noqa: E402
from bwsk.frontends.torch_export import export_module  # noqa: E402

SMALL = {"layers": 2, "d_model": 64, "heads": 4, "vocab": 100}

# Every ATen op that torch.export emits for the five seeds (transformers 5.x, torch 2.13).
SEED_OPS = [
    "__and__", "_assert_tensor_metadata", "abs", "add", "addmm", "alias", "arange", "argmax",
    "contiguous", "cumsum", "diff", "div", "dropout", "embedding", "eq", "expand", "full_like",
    "gather", "ge", "gelu", "gt", "index", "layer_norm", "le", "linear", "log", "lt", "matmul",
    "max", "mean", "min", "mul", "ne", "neg", "new_ones", "one_hot", "ones", "ones_like",
    "permute", "pow", "relu", "reshape", "rms_norm", "rsqrt", "rsub",
    "scaled_dot_product_attention", "select", "slice", "softmax", "split", "sub", "tanh", "to",
    "transpose", "unsqueeze", "view", "where", "zeros", "zeros_like",
]


def test_every_seed_op_has_an_atom():
    assert [op for op in SEED_OPS if not aten_atoms.is_mapped(op)] == []


def _gelu(x, approximate):
    """GELU in float64, exact or with the tanh approximation."""
    x = x.astype(np.float64)
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
        return (0.5 * x * (1 + np.tanh(inner))).astype(np.float32)
    assert approximate == "none", approximate
    return (0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))).astype(np.float32)


def evaluate(graph, feeds):
    """Run the graph node by node with ONNX's reference ops: an oracle for the mapping."""
    env = dict(feeds)
    for node in graph.nodes:
        ins = [(env[x] if x in env else graph.values[x].const) if x else None
               for x in node.inputs]
        if node.op == "gelu":  # the reference evaluator has no Gelu kernel
            outs = [_gelu(ins[0], node.attrs["approximate"])]
        else:
            outs = run_node(graph, node, ins)
        env.update(zip(node.outputs, outs, strict=False))
    return [env[o] if o in env else graph.values[o].const for o in graph.outputs]


def _check_seed(name: str, **extra):
    model, inputs = zoo.build_model(name, **SMALL, **extra)
    exported, _ = export_module(model, inputs)
    ops = {aten_atoms.aten_name(n.target) for n in exported.graph.nodes
           if n.op == "call_function" and n.target.__module__ != "_operator"}
    assert {op for op in ops if not aten_atoms.is_mapped(op)} == set(), name
    assert ops <= set(SEED_OPS), f"{name} uses ops missing from SEED_OPS: {ops - set(SEED_OPS)}"
    graph = graph_of(model, inputs)
    assert not [n.op for n in graph.nodes if n.op.startswith("aten::")]
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
    got = evaluate(graph, {k: v.numpy() for k, v in inputs.items()})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    return graph, sorted(ops)


def test_gpt2_maps_and_computes_the_same():
    graph, ops = _check_seed("gpt2")
    assert {"addmm", "layer_norm", "scaled_dot_product_attention", "embedding"} <= set(ops)
    weights = {v.name for v in graph.values.values() if v.is_const}
    assert "transformer.h.1.attn.c_attn.weight" in weights
    scopes = {n.scope for n in graph.nodes}
    assert "transformer.h.0.attn" in scopes and "transformer.h.1.mlp.c_fc" in scopes
    gelus = [n for n in graph.nodes if n.op == "gelu"]  # NewGELUActivation, fused
    assert [(n.attrs, n.scope) for n in gelus] == [
        ({"approximate": "tanh"}, f"transformer.h.{i}.mlp.act") for i in range(2)]
    assert not [n for n in graph.nodes if n.op in ("tanh", "pow")]
    ln = next(n for n in graph.nodes if n.op == "layernorm")
    assert ln.attrs == {"axis": -1, "epsilon": 1e-5}
    assert graph.inputs == ["input_ids"] and graph.values["input_ids"].shape == (1, 8)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert-base", "t5-small", "opt-350m", "switch-base-8"])
def test_seed_maps_and_computes_the_same(name):
    graph, _ = _check_seed(name)
    if name == "bert-base":
        assert any(n.op == "gelu" and n.attrs["approximate"] == "none" for n in graph.nodes)
    if name == "switch-base-8":  # the router and the experts are in the graph
        assert {"arg_max", "one_hot"} <= {n.op for n in graph.nodes}
        assert any("experts.expert_7" in v for v in graph.values)


@pytest.mark.slow
def test_switch_export_route_keeps_the_function():
    model, inputs = zoo.build_model("switch-base-8", **SMALL)
    with torch.no_grad():
        before = model(**inputs, attention_mask=torch.ones_like(inputs["input_ids"])).logits
    exported, _ = export_module(model, inputs)
    with torch.no_grad():
        after = exported.module()(**inputs).logits
    # dense experts see all tokens, so matmul blocking (not the function) differs
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    assert "forward" not in vars(model)  # the export-time patches are undone


def test_plain_modules_get_default_inputs():
    linear = graph_of(torch.nn.Linear(4, 3))
    assert linear.values[linear.inputs[0]].shape == (1, 4)
    assert [n.op for n in linear.nodes] == ["matmul", "add"]
    assert linear.values["weight.T"].const.shape == (4, 3)
    conv = graph_of(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()))
    assert conv.values[conv.inputs[0]].shape == (1, 3, 16, 16)
    assert [n.scope for n in conv.nodes][-1] == "1"
    with pytest.raises(UnsupportedModelError, match="pass example_inputs"):
        graph_of(torch.nn.ReLU())


def test_export_failure_is_one_line():
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(UnsupportedModelError, match=r"torch\.export failed") as info:
        graph_of(DataDependent(), (torch.randn(4),))
    assert "\n" not in str(info.value)


def test_scalar_promotion_and_leaky_relu():
    class Net(torch.nn.Module):
        def forward(self, x, k):
            return torch.nn.functional.leaky_relu(x * 2, 0.2) + k * 3

    x, k = torch.randn(2, 3), torch.arange(3)
    graph = graph_of(Net(), (x, k))
    assert [n.op for n in graph.nodes].count("cast") == 1  # k * 3 + float: int64 promoted
    assert any(n.op == "leaky_relu" and n.attrs == {"alpha": 0.2} for n in graph.nodes)
    got = evaluate(graph, {"x": x.numpy(), "k": k.numpy()})[0]
    np.testing.assert_allclose(got, Net()(x, k).numpy(), rtol=1e-6)


def test_vision_ops_map_and_compute_the_same():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1, stride=2), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 4, 3, padding="same", groups=2),
        torch.nn.AvgPool2d(2), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(4, 3), torch.nn.SiLU(), torch.nn.GELU(approximate="tanh"),
        torch.nn.Hardtanh(), torch.nn.ELU(0.5), torch.nn.LogSoftmax(-1)).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_()
        net[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 16, 16)
    graph = graph_of(net, (x,))
    assert [n.op for n in graph.nodes] == [
        "conv", "batchnorm", "relu", "max_pool", "conv", "average_pool", "global_average_pool",
        "reshape", "matmul", "add", "sigmoid", "mul", "gelu", "clip", "elu", "log_softmax"]
    assert graph.nodes[0].attrs == {"kernel_shape": [3, 3], "strides": [2, 2],
                                    "dilations": [1, 1], "group": 1, "pads": [1, 1, 1, 1]}
    with torch.no_grad():
        expected = net(x).numpy()
    got = evaluate(graph, {graph.inputs[0]: x.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_masked_fill_and_layer_norm_without_affine():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.LayerNorm(4, elementwise_affine=False)

        def forward(self, x):
            return self.norm(x).masked_fill(x > 0.5, -1.0)

    x = torch.randn(2, 4)
    graph = graph_of(Net(), (x,))
    assert [n.op for n in graph.nodes] == ["layernorm", "greater", "where"]
    got = evaluate(graph, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, Net()(x).numpy(), rtol=1e-5, atol=1e-6)


def test_decomposed_elementwise_ops():
    class Net(torch.nn.Module):
        def forward(self, x):
            d = torch.diff(x, dim=1).sum() + torch.diff(x, n=2, dim=0, prepend=x[:1]).sum()
            soft = torch.nn.functional.softplus(x)
            return torch.clamp(x, min=-0.5) + soft + d + torch.stack([x, x], 0).sum(0)

    x = torch.randn(4, 5)
    graph = graph_of(Net(), (x,))
    assert not [n.op for n in graph.nodes if n.op.startswith("aten::")]
    got = evaluate(graph, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, Net()(x).numpy(), rtol=1e-5, atol=1e-5)


def test_batch_norm_forms_map_to_onnx_batchnorm():
    """Eval, batch-statistics and decomposed training BatchNorm all become ``batchnorm`` with
    ONNX's momentum (the old statistics' weight) and ``training_mode``."""
    from bwsk.frontends.torch import Emitter

    no_stats = torch.nn.Sequential(torch.nn.BatchNorm1d(4, momentum=0.25,
                                                        track_running_stats=False))
    [bn] = graph_of(no_stats, (torch.randn(3, 4),)).nodes
    assert (bn.op, bn.inputs[3:], bn.attrs) == (
        "batchnorm", ["", ""], {"epsilon": 1e-5, "momentum": 0.75, "training_mode": 1})
    train = torch.nn.Sequential(torch.nn.BatchNorm1d(4)).train()
    exported = torch.export.export(train, (torch.randn(3, 4),)).run_decompositions({})
    fqn = {s.arg.name: s.target for s in exported.graph_signature.input_specs if s.target}
    emitter = Emitter(exported, fqn)
    emitter.run()
    [bn] = emitter.nodes
    assert bn.source_op == "aten::_native_batch_norm_legit_functional"
    assert bn.attrs["training_mode"] == 1 and len(bn.outputs) == 3  # Y, running mean, var
    assert set(bn.outputs) <= set(emitter.outputs)


def test_t5_layer_norm_is_one_rmsnorm_and_proved_injective():
    from transformers.models.t5.modeling_t5 import T5LayerNorm

    from bwsk.analysis import analyze

    norm = T5LayerNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 8)
    graph = graph_of(norm, (x,))
    [node] = graph.nodes
    assert (node.op, node.attrs) == ("rmsnorm", {"axis": -1, "epsilon": 1e-6})
    assert "forward" not in vars(norm)  # the export-time spelling is undone
    got = evaluate(graph, {graph.inputs[0]: x.numpy()})[0]
    np.testing.assert_allclose(got, norm(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert analyze(graph).verdict == "S"


class _SpelledGelu(torch.nn.Module):
    """The tanh GELU written out, with constants and uses that may break the pattern."""

    def __init__(self, cubic=0.044715, leak=False):
        super().__init__()
        self.cubic, self.leak = cubic, leak

    def forward(self, x):
        inner = math.sqrt(2 / math.pi) * (x + self.cubic * torch.pow(x, 3.0))
        out = 0.5 * (x * (1.0 + torch.tanh(inner)))
        return out + inner if self.leak else out


def test_spelled_out_tanh_gelu_is_one_atom_with_an_executed_witness():
    from transformers.activations import NewGELUActivation

    from bwsk.analysis import analyze

    x = torch.randn(3, 5)
    for module in (NewGELUActivation(), _SpelledGelu()):
        graph = graph_of(module, (x,))
        [node] = graph.nodes
        assert (node.op, node.attrs, node.inputs) == ("gelu", {"approximate": "tanh"},
                                                       graph.inputs)
        assert set(graph.values) == {*graph.inputs, *graph.outputs}  # no dead constants
        got = evaluate(graph, {graph.inputs[0]: x.numpy()})[0]
        np.testing.assert_allclose(got, module(x).numpy(), rtol=1e-5, atol=1e-6)
        analysis = analyze(graph)
        assert analysis.verdict == "K" and analysis.nodes[0].verdict == "K"
        a, b = (torch.from_numpy(w[graph.inputs[0]]) for w in
                (analysis.witness.a, analysis.witness.b))
        assert (a - b).abs().max() >= 1e-3
        torch.testing.assert_close(module(a), module(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("module", [_SpelledGelu(cubic=0.0447), _SpelledGelu(leak=True)],
                         ids=["other-constant", "intermediate-reused"])
def test_near_miss_gelu_spellings_stay_op_by_op(module):
    graph = graph_of(module, (torch.randn(3, 5),))
    assert "gelu" not in {n.op for n in graph.nodes} and "tanh" in {n.op for n in graph.nodes}

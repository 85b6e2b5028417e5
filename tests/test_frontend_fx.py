"""The recorded fx capture gives the graph torch.export gives, or steps aside for export."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bwsk.analysis import analyze  # noqa: E402
from bwsk.errors import UnsupportedModelError  # noqa: E402
from bwsk.frontends.torch import graph_of  # noqa: E402
from bwsk.frontends.torch_export import capture  # noqa: E402
from bwsk.frontends.torch_fx import Refused, capture_fx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bwsk_classifier_baseline import twins  # noqa: E402

nn = torch.nn
F = torch.nn.functional


class Functional(nn.Module):
    """Functions and tensor methods, not only leaf modules; an embedding and a layer norm."""

    def __init__(self):
        super().__init__()
        self.lin, self.norm, self.emb = nn.Linear(4, 4), nn.LayerNorm(4), nn.Embedding(10, 4)
        self.drop, self.conv = nn.Dropout(0.1), nn.Conv1d(2, 2, 3, padding="same")
        self.head = nn.Parameter(torch.randn(50, 3))

    def forward(self, x, ids):
        h = self.norm(self.drop(self.lin(x))) + self.emb(ids)
        h = F.gelu(h, approximate="tanh").view(-1, 4).transpose(0, 1).reshape(2, -1)
        h = torch.cat([h, 2 * h - 1, 1 - h, h.mean(dim=1, keepdim=True) / 3], dim=1)
        h = self.conv(h.reshape(1, 2, -1)).flatten(1)
        h = F.dropout(h, 0.2, training=False) + F.silu(h) + F.leaky_relu(h, 0.1) + F.tanh(h)
        h = torch.unsqueeze(h, 1).squeeze(1).sum(dim=0) + torch.sum(h, -1, keepdim=True)
        return torch.softmax(torch.relu(h) @ self.head, -1), -h


def _key(graph):
    """Everything a graph says: nodes, wiring, attributes, scopes, shapes and constants."""
    values = {k: (v.shape, v.dtype, None if v.const is None else v.const.tobytes())
              for k, v in graph.values.items()}
    nodes = [(n.name, n.op, n.inputs, n.outputs, n.attrs, n.source_op, n.scope)
             for n in graph.nodes]
    return nodes, graph.inputs, graph.outputs, values


def _vision():
    """Every leaf module of the vocabulary, with non-default settings where it has them."""
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, stride=2), nn.BatchNorm2d(4, momentum=None), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding="same", groups=2), nn.AvgPool2d(2),
        nn.LeakyReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Identity(), nn.Linear(4, 6),
        nn.SiLU(), nn.GELU(approximate="tanh"), nn.Hardtanh(), nn.ELU(0.5), nn.Softplus(2.0),
        nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Unflatten(1, (2, 3)), nn.Conv1d(2, 2, 1),
        nn.BatchNorm1d(2), nn.LayerNorm(3), nn.AlphaDropout(0.1), nn.Softmax(-1),
        nn.LogSoftmax(1), nn.ReLU6())
    with torch.no_grad():
        for bn in (net[1], net[20]):
            bn.running_mean.uniform_()
            bn.running_var.uniform_(0.5, 2.0)
    return net.eval(), (torch.randn(1, 3, 16, 16),)


def _models():
    torch.manual_seed(0)
    models = dict(twins())
    models["functional"] = (Functional().eval(), (torch.randn(2, 4), torch.tensor([[1], [2]])))
    models["vision"] = _vision()
    models["linear"] = (nn.Linear(4, 3).eval(), (torch.randn(2, 4),))  # a leaf as the root
    models["shape_loop"] = (ShapeLoop(), (torch.randn(3, 4),))
    models["conv"] = (nn.Conv2d(3, 2, 3, stride=2).eval(), (torch.randn(1, 3, 8, 8),))
    from transformers.activations import NewGELUActivation  # fused into one gelu atom

    models["gpt2_gelu"] = (nn.Sequential(nn.Linear(4, 6), NewGELUActivation()).eval(),
                           (torch.randn(2, 4),))
    return models


@pytest.mark.parametrize("name", ["resnet_like", "coupling", "mlp", "functional", "vision",
                                  "linear", "conv", "gpt2_gelu", "shape_loop"])
def test_fx_and_export_give_the_same_graph_and_verdicts(name):
    model, inputs = _models()[name]
    assert capture(model, inputs)[2] == "fx"  # auto takes the fast route here
    fx_graph, ex_graph = graph_of(model, inputs, how="fx"), graph_of(model, inputs, how="export")
    assert _key(fx_graph) == _key(ex_graph)
    for weights in (False, True) if name != "resnet_like" else (False,):  # conv ranks: slow
        a, b = analyze(fx_graph, weights=weights), analyze(ex_graph, weights=weights)
        assert a.verdict == b.verdict
        assert [(n.verdict, n.reason) for n in a.nodes] == [(n.verdict, n.reason) for n in b.nodes]


def test_coupling_twin_is_proved_injective_through_fx():
    model, inputs = twins()["coupling"]
    analysis = analyze(graph_of(model, inputs, how="fx"), weights=False)
    assert analysis.verdict == "S"
    with torch.no_grad():
        outputs = [t.numpy() for t in model(*inputs)]
    recovered = analysis.inverse(*outputs)
    for name, x in zip(("x1", "x2"), inputs, strict=True):
        np.testing.assert_allclose(recovered[name], x.numpy(), atol=1e-4)


class ShapeLoop(nn.Module):
    """A Python loop over a size, indexing rows: specialised to the shape, as export does."""

    def forward(self, x):
        return sum(x[i] * (i + 1) for i in range(x.shape[0]))


class Masked(nn.Module):
    """A boolean mask as index: the result's shape depends on the values."""

    def forward(self, x):
        return torch.tanh(x)[x > 0]


class Unmapped(nn.Module):
    """torch.sin is outside the vocabulary: refused, never guessed."""

    def forward(self, x):
        return torch.sin(x) + 1


class Branch(nn.Module):
    """Control flow on a value: the recording would hold one branch only."""

    def forward(self, x):
        h = torch.tanh(x)
        return h if h.mean(dim=[0, 1]) else torch.relu(x)  # bool(a tensor)


class InPlace(nn.Module):
    """An in-place update of an intermediate."""

    def forward(self, x):
        h = torch.tanh(x)
        h.add_(1)
        return h * 2


class Swallowed(nn.Module):
    """A forward that catches the refusal and goes on: still refused."""

    def forward(self, x):
        try:
            return torch.sin(x)
        except Exception:
            return torch.tanh(x)


class Constants(nn.Module):
    """Work on constants only (a plain tensor attribute, a buffer, positions): computed by
    the calls themselves, and a value read back into Python from them is no input's."""

    def __init__(self):
        super().__init__()
        self.scale = torch.full((4,), 2.0)  # a plain attribute, not a buffer
        self.register_buffer("mask", torch.tensor([True, True, False, True]))

    def forward(self, x):
        positions = torch.arange(4).float()
        if self.mask.all():  # a constant: the same branch for every input
            positions = positions * 0
        keep = self.mask.clone()
        keep.logical_not_()  # in place on a constant: read anew afterwards
        return torch.where(keep, x * self.scale, positions)


def test_work_on_constants_is_computed_by_the_calls_and_folded():
    model, x = Constants(), torch.randn(3, 4)
    graph = graph_of(model, (x,), how="fx")  # export refuses the branch on the buffer
    assert [n.op for n in graph.nodes] == ["mul", "where"]
    np.testing.assert_allclose(_run(graph, {"x": x}), model(x).numpy(), rtol=1e-6)


def _run(graph, feeds):
    """The graph's first output, node by node (not through its source module)."""
    from bwsk.analysis.execute import evaluate

    out = graph.outputs[0]
    return evaluate(graph, {k: v.numpy() for k, v in feeds.items()}, {out})[out]


class Noisy(nn.Module):
    def forward(self, x):
        return x + torch.randn(4)


def test_random_numbers_are_no_constant():
    with pytest.raises(Refused, match="random"):
        capture_fx(Noisy(), (torch.randn(3, 4),), {})


@pytest.mark.parametrize("module, reason", [
    (Masked(), "basic indexing"), (Unmapped(), "sin"), (nn.Sequential(nn.Hardswish()),
                                                         "hardswish"),
    (InPlace(), "add_"), (Swallowed(), "sin"),
    (nn.Sequential(nn.ReLU(inplace=True)), "in-place")])
def test_auto_falls_back_to_export_where_the_recording_cannot(module, reason):
    x = torch.randn(3, 4)
    with pytest.raises(Refused, match=reason):
        capture_fx(module, (x,), {})
    assert capture(module, (x,))[2] == "export"
    assert _key(graph_of(module, (x,))) == _key(graph_of(module, (x,), how="export"))
    with pytest.raises(UnsupportedModelError, match="the fx recording cannot capture"):
        graph_of(module, (x,), how="fx")


def test_control_flow_on_a_value_is_refused_by_both_routes():
    with pytest.raises(Refused, match="__bool__"):
        capture_fx(Branch(), (torch.randn(3, 4),), {})
    with pytest.raises(UnsupportedModelError, match=r"torch\.export failed"):
        graph_of(Branch(), (torch.randn(3, 4),))


def test_a_translation_that_computes_differently_is_refused(monkeypatch):
    from bwsk.frontends import fx_rules

    wrong = lambda b, x: b.call(torch.ops.aten.sigmoid.default, x)  # noqa: E731
    monkeypatch.setitem(fx_rules.FUNCTIONS, torch.tanh, wrong)
    model, inputs = twins()["coupling"]  # F uses Tanh: the per-call check catches it
    with pytest.raises(Refused, match="tanh: the rewritten call computes a different"):
        capture_fx(model, inputs, {})
    assert capture(model, inputs)[2] == "export"


def test_capture_keeps_the_training_mode_and_rejects_unknown_routes():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.BatchNorm1d(3)).train()
    graph = graph_of(model, (torch.randn(2, 3),), how="fx")
    assert model.training and [n.op for n in graph.nodes] == ["matmul", "add", "batchnorm"]
    assert graph.nodes[-1].attrs["training_mode"] == 0  # captured in eval mode
    with pytest.raises(UnsupportedModelError, match="capture must be one of"):
        graph_of(model, (torch.randn(2, 3),), how="trace")


def test_one_tensor_passed_twice_stays_two_inputs():
    model, _ = twins()["coupling"]
    x = torch.randn(1, 8)
    graph = graph_of(model, (x, x), how="fx")
    assert graph.inputs == ["x1", "x2"] and _key(graph) == _key(
        graph_of(model, (x, x.clone()), how="export"))


def _zero_adds(graph) -> set[str]:
    def zero(x):
        const = graph.values[x].const if x in graph.values else None
        return const is not None and not np.any(const)

    return {n.name for n in graph.nodes if n.op == "add" and zero(n.inputs[1])
            and n.source_op == "aten::scaled_dot_product_attention"}


def _canonical(graph):
    """The graph with values renamed in order of first use, constants compared by content
    (leading unit dimensions dropped: one route may broadcast a mask the other spells out),
    and attention masks that add an all-zero constant dropped (export keeps the masks that
    eager transformers skip once it has checked they are all ones)."""
    names: dict[str, str] = {}
    alias: dict[str, str] = {}

    def name(x):
        x = alias.get(x, x)
        return names.setdefault(x, f"v{len(names)}") if x else x

    nodes = []
    for n in graph.nodes:
        if n.name in _zero_adds(graph):
            alias[n.outputs[0]] = alias.get(n.inputs[0], n.inputs[0])
            continue
        nodes.append((n.op, [name(x) for x in n.inputs], [name(x) for x in n.outputs],
                      n.attrs, n.source_op, n.scope))
    consts = {names[k]: np.asarray(v.const).reshape(
        [d for i, d in enumerate(np.shape(v.const)) if d != 1 or i >= np.ndim(v.const) - 2]
    ).tobytes() for k, v in graph.values.items() if k in names and v.const is not None}
    return nodes, [name(x) for x in graph.inputs], [name(x) for x in graph.outputs], consts


@pytest.mark.parametrize("name", ["gpt2", "bert-base", "t5-small", "opt-350m"])
def test_transformers_are_recorded_with_the_graph_export_gives(name):
    """transformers models record in milliseconds; export takes seconds for the same graph
    (up to value names: export also records the mask arithmetic the Emitter folds)."""
    from bwsk import zoo

    model, inputs = zoo.build_model(name, layers=2, d_model=32, heads=2, vocab=64)
    assert capture(model, inputs)[2] == "fx"
    recorded, exported = graph_of(model, inputs), graph_of(model, inputs, how="export")
    assert _canonical(recorded) == _canonical(exported)
    a, b = analyze(recorded, weights=False), analyze(exported, weights=False)
    assert a.verdict == b.verdict and _verdicts(recorded, a) == _verdicts(exported, b)


def _verdicts(graph, analysis):
    skip = _zero_adds(graph)
    return [(n.op, n.verdict, n.reason) for n in analysis.nodes if n.name not in skip]


def test_switch_is_recorded_and_computes_what_the_module_computes():
    """Switch's decoder adds its zero position bias and its mask in one constant where export
    adds them one after the other: the same function, one add fewer."""
    from bwsk import zoo

    model, inputs = zoo.build_model("switch-base-8", layers=2, d_model=32, heads=2, vocab=64)
    assert capture(model, inputs)[2] == "fx"
    recorded = graph_of(model, inputs)
    exported = graph_of(model, inputs, how="export")
    assert len(recorded.nodes) == len(exported.nodes) - 2  # one per decoder layer
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
    np.testing.assert_allclose(_run(recorded, inputs), expected, rtol=1e-4, atol=1e-5)
    assert analyze(recorded, weights=False).verdict == analyze(exported, weights=False).verdict


class Hidden(nn.Module):
    """Work the recording cannot see (torch function handling switched off): the result might
    depend on the input, so it is no constant."""

    def forward(self, x):
        with torch._C.DisableTorchFunction():
            h = x * 2
        return torch.tanh(h)


def test_a_tensor_computed_outside_the_recording_is_refused():
    with pytest.raises(Refused, match="outside the recording"):
        capture_fx(Hidden(), (torch.randn(3, 4),), {})


class Rewritten(nn.Module):
    """A constant updated in place between two reads: each read sees its value then."""

    def forward(self, x):
        shift = torch.ones(4)
        a = x + shift
        shift.mul_(3)
        return a * shift


class BufferUpdate(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls.add_(1)
        return torch.tanh(x)


def test_a_constant_updated_in_place_is_read_afresh():
    model, x = Rewritten(), torch.randn(3, 4)
    graph = graph_of(model, (x,), how="fx")
    np.testing.assert_allclose(_run(graph, {"x": x}), ((x + 1) * 3).numpy(), rtol=1e-6)
    with pytest.raises(Refused, match="updates a buffer in place"):  # before it runs
        capture_fx(BufferUpdate(), (x,), {})

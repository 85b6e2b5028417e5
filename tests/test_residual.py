"""Residuals x + f(x): S when the weights bound Lip(f) below 1, else gray saying why."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers.activations import NewGELUActivation  # noqa: E402

from bwsk import zoo  # noqa: E402
from bwsk.analysis import analyze  # noqa: E402
from bwsk.analysis.residual import _coverage  # noqa: E402
from bwsk.frontends.torch import graph_of  # noqa: E402

nn = torch.nn


class MlpResidual(nn.Module):
    """x + W2 gelu_tanh(W1 x + b1) + b2, GPT-2's MLP sublayer without its layer norm."""

    def __init__(self, width: int, scale: float):
        super().__init__()
        self.fc, self.act, self.proj = nn.Linear(6, width), NewGELUActivation(), nn.Linear(width, 6)
        with torch.no_grad():  # spectral norms exactly `scale` each
            for lin in (self.fc, self.proj):
                lin.weight.mul_(scale / torch.linalg.matrix_norm(lin.weight, 2))

    def forward(self, x):
        return x + self.proj(self.act(self.fc(x)))


def _residual_add(analysis):
    [node] = [n for n in analysis.nodes if any("Lip" in c or "contraction" in c
                                               for c in n.conditions)]
    return node


def test_scaled_down_weights_prove_the_residual_injective_and_invert_it():
    torch.manual_seed(0)
    model, x = MlpResidual(12, 0.8).eval(), torch.randn(3, 6)
    analysis = analyze(graph_of(model, (x,)))
    assert analysis.verdict == "S", analysis.reason
    [cond] = [c for c in _residual_add(analysis).conditions if "contraction" in c]
    assert f"Lip(f) <= {0.8 * 1.13 * 0.8:.3g} < 1" in cond  # the product of the slopes
    with torch.no_grad():
        y = model(x).numpy()
    back = analysis.inverse(y)
    np.testing.assert_allclose(next(iter(back.values())), x.numpy(), atol=1e-4)


def test_weights_too_large_leave_it_gray_with_the_bound():
    torch.manual_seed(0)
    model, x = MlpResidual(12, 1.5).eval(), torch.randn(3, 6)
    graph = graph_of(model, (x,))
    analysis = analyze(graph)
    assert analysis.verdict == "GRAY"
    [cond] = _residual_add(analysis).conditions
    assert cond.startswith("Lip(f) < 1 for the residual branch") and "not < 1" in cond
    assert f"bound {1.5 * 1.13 * 1.5:.3g}" in cond
    [cond] = _residual_add(analyze(graph, weights=False)).conditions
    assert cond.endswith("(weights not read)")


def test_gpt2_residuals_are_tried_and_say_why_no_bound_exists():
    model, inputs = zoo.build_model("gpt2", layers=2, d_model=32, heads=2, vocab=50)
    analysis = analyze(graph_of(model, inputs))
    residuals = [n for n in analysis.nodes if any("Lip(f) < 1" in c for c in n.conditions)]
    assert len(residuals) == 4  # attention and MLP sublayer, per layer
    for node in residuals:
        assert node.verdict == "K"  # as a node: an add of two variables
        [cond] = node.conditions
        assert "layernorm" in cond and "1/sqrt(eps)" in cond
    attention = [n.conditions[0] for n in residuals[::2]]
    assert all("multiplies two variables" in c for c in attention)
    blocks = [b for b in analysis.blocks if b.kind == "residual"]  # x -> x + f(x) itself
    assert [b.name.rsplit(":", 1)[1] for b in blocks] == [n.name for n in residuals]
    assert all(b.verdict == "GRAY" and "Lip(f) < 1" in b.conditions[0] for b in blocks)
    assert [b.repeat_of for b in blocks[2:]] == [b.name for b in blocks[:2]]
    layers = [b for b in analysis.blocks if b.kind == "layer"]
    assert layers and all(b.verdict == "GRAY" for b in layers)
    assert all(any("Lip(f) < 1" in c for c in b.conditions) for b in layers)


def test_overlapping_max_pool_slope_needs_the_coverage_factor():
    """One element in three windows: a spike moves three outputs, so slope 1 would be
    unsound; sqrt(3) holds on random pairs."""
    pool = lambda t: torch.nn.functional.max_pool1d(t, 3, 1)  # noqa: E731
    assert _coverage({"kernel_shape": [3], "strides": [1]}) == 3
    assert _coverage({"kernel_shape": [2, 2], "strides": [2, 2]}) == 1
    spike = torch.zeros(1, 1, 7)
    spike[0, 0, 3] = 1.0
    assert pool(spike).norm() / spike.norm() == pytest.approx(math.sqrt(3))
    torch.manual_seed(0)
    a, b = torch.randn(50, 1, 9), torch.randn(50, 1, 9)
    ratios = (pool(a) - pool(b)).flatten(1).norm(dim=1) / (a - b).flatten(1).norm(dim=1)
    assert ratios.max() <= math.sqrt(3)


def test_broadcasting_and_variable_denominators_get_no_bound():
    """x + c with c of shape (3, 2) copies x three times (slope sqrt 3); c / x is
    unbounded: neither may pass for slope 1 or 1/|c|."""
    from bwsk.analysis.residual import lipschitz
    from bwsk.ir import Graph, Node, Value

    c = np.ones((3, 2), np.float32)
    values = {"x": Value("x", (2,)), "c": Value("c", (3, 2), const=c),
              "d": Value("d", (2,), const=c[0]), "y": Value("y", (3, 2)), "z": Value("z", (2,))}
    for node, why in ((Node("b", "add", ["x", "c"], ["y"]), "broadcasts"),
                      (Node("q", "div", ["d", "x"], ["z"]), "no Lipschitz bound")):
        graph = Graph("g", ["x"], node.outputs, values, [node])
        bound, reason = lipschitz(graph, "x", [0])
        assert bound is None and why in reason
    graph = Graph("g", ["x"], ["z"], values, [Node("q", "div", ["x", "d"], ["z"])])
    assert lipschitz(graph, "x", [0]) == (1.0, "")


def test_gemm_bound_only_through_its_matrix_operands():
    """gemm(A, B, C) with a variable C is beta * C: the norm of A says nothing about it."""
    from bwsk.analysis.residual import lipschitz
    from bwsk.ir import Graph, Node, Value

    a = np.full((2, 2), 0.1, np.float32)
    values = {"a": Value("a", (2, 2), const=a), "b": Value("b", (2, 2), const=a),
              "x": Value("x", (2, 2)), "y": Value("y", (2, 2))}
    node = Node("g", "gemm", ["a", "b", "x"], ["y"], {"beta": 5.0})
    assert lipschitz(Graph("g", ["x"], ["y"], values, [node]), "x", [0])[0] is None
    node = Node("g", "gemm", ["x", "b", "a"], ["y"], {"alpha": 2.0})
    bound = lipschitz(Graph("g", ["x"], ["y"], values, [node]), "x", [0])[0]
    assert bound == pytest.approx(2 * 0.2, rel=1e-5)


class _Branch(nn.Module):
    """x + f(x) for a chosen f, so the bound of f can be set against measured slopes."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return x + self.f(x)


@pytest.mark.parametrize("f", [
    nn.Sequential(nn.Linear(8, 16), nn.GELU(approximate="tanh"), nn.Linear(16, 8)),
    nn.Sequential(nn.Linear(8, 8), nn.Softmax(-1), nn.Tanh(), nn.Linear(8, 8)),
    nn.Sequential(nn.Unflatten(1, (1, 8)), nn.MaxPool1d(3, 1, padding=1), nn.Flatten(),
                  nn.LeakyReLU(-1.5), nn.Hardtanh()),
], ids=["mlp", "softmax", "max_pool"])
def test_branch_bound_is_never_below_a_measured_slope(f):
    from bwsk.analysis.residual import lipschitz, upgrade
    from bwsk.catalogue import judge

    torch.manual_seed(1)
    model = _Branch(f).eval()
    graph = graph_of(model, (torch.randn(4, 8),))
    [members] = upgrade(graph, [judge(graph, n) for n in graph.nodes], True).values()
    bound, why = lipschitz(graph, graph.inputs[0], members)
    assert bound is not None, why
    a = torch.randn(4000, 8) * 3
    b = a + torch.randn(4000, 8) * torch.logspace(-3, 0, 4000)[:, None]
    with torch.no_grad():
        slopes = (f(a) - f(b)).norm(dim=1) / (a - b).norm(dim=1)
    assert slopes.max() <= bound
    assert slopes.max() > bound / 50  # the bound is not vacuous


def test_a_branch_without_a_bound_reads_no_weight(monkeypatch):
    """Whether an op has a bound does not depend on weights: a layer norm in the branch
    decides before any spectral norm is computed (GPT-2 spent half its weight checks there)."""
    from bwsk.analysis import residual
    from bwsk.catalogue import judge

    def unread(w):
        raise AssertionError("a spectral norm was computed for an unbounded branch")

    model = _Branch(nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 8))).eval()
    graph = graph_of(model, (torch.randn(4, 8),))
    [members] = residual.upgrade(graph, [judge(graph, n) for n in graph.nodes], False).values()
    monkeypatch.setattr(residual, "norm_bound", unread)
    bound, why = residual.lipschitz(graph, graph.inputs[0], members)
    assert bound is None and "layernorm" in why and "1/sqrt(eps)" in why


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_only_a_contraction_claim_pays_for_certified_norms(monkeypatch, scale):
    """Lower bounds on the norms settle 'not < 1'; certificates run only for 'S'."""
    from bwsk.analysis import residual

    torch.manual_seed(0)
    lin = nn.Linear(96, 96)
    with torch.no_grad():
        lin.weight.mul_(scale / torch.linalg.matrix_norm(lin.weight, 2))
    certified = []
    real = residual.norm_bound
    monkeypatch.setattr(residual, "norm_bound", lambda w: certified.append(w.shape) or real(w))
    analysis = analyze(graph_of(_Branch(lin).eval(), (torch.randn(3, 96),)))
    [cond] = [c for c in _residual_add(analysis).conditions if "Lip" in c]
    if scale < 1:
        assert f"Lip(f) <= {scale:.3g} < 1" in cond
    else:  # power steps on W: a lower bound on the norms' product, already >= 1
        floor = float(cond.split("bound at least ")[1].split(",")[0])
        assert 1 <= floor <= scale
    assert (analysis.verdict, certified) == (("S", [(96, 96)]) if scale < 1 else ("GRAY", []))


def test_weights_changed_in_place_are_read_again_by_the_next_analysis():
    """Torch weights reach the graph as views: training changes them under the same memory,
    so no spectrum may be remembered from one analysis to the next."""
    torch.manual_seed(0)
    lin = nn.Linear(96, 96, bias=False)
    graph = graph_of(lin.eval(), (torch.randn(2, 96),))
    assert analyze(graph).verdict == "S"
    with torch.no_grad():
        lin.weight[5] = lin.weight[7]  # same buffer, now rank-deficient
    again = analyze(graph)
    assert again.verdict == "K"
    assert any("rank-deficient" in n.reason for n in again.nodes)

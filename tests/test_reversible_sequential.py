"""RevSequential: same gradients as the conventional run, exact inversion, memory flat in depth."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
rev = pytest.importorskip("bwsk.reversible")

from torch import nn  # noqa: E402

from bwsk.errors import TrainingError  # noqa: E402
from bwsk.reversible import RevSequential, ops  # noqa: E402

D = 32


def _sublayer(p_drop: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(D), nn.Linear(D, 2 * D), nn.GELU(), nn.Dropout(p_drop),
                         nn.Linear(2 * D, D))


def _stack(depth: int, p_drop: float = 0.0, exact: bool = False, seed: int = 0) -> RevSequential:
    torch.manual_seed(seed)
    return RevSequential([(_sublayer(p_drop), _sublayer(p_drop)) for _ in range(depth)],
                         exact=exact)


def _inputs(seed: int = 1, shape=(2, 8, D)):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g).requires_grad_(),
            torch.randn(shape, generator=g).requires_grad_())


def _grads(model, run, x1, x2, seed=7):
    """Gradients of a fixed scalar loss w.r.t. inputs and weights, after seeding dropout."""
    x1.grad = x2.grad = None
    model.zero_grad()
    torch.manual_seed(seed)
    y1, y2 = run(x1, x2)
    (y1.square().mean() + (y1 * y2).sum() / y1.numel()).backward()
    return [x1.grad.clone(), x2.grad.clone(), *(p.grad.clone() for p in model.parameters())]


def _max_rel_err(got, want):
    return max(((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
               for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("p_drop", [0.0, 0.3])
def test_gradients_match_conventional(p_drop):
    model = _stack(6, p_drop)
    x1, x2 = _inputs()
    got = _grads(model, model, x1, x2)
    want = _grads(model, model.conventional, x1, x2)
    assert _max_rel_err(got, want) <= 1e-5


def test_forward_matches_conventional_and_leaves_inputs_alone():
    model = _stack(3)
    x1, x2 = _inputs()
    keep = (x1.detach().clone(), x2.detach().clone())
    y = model(x1, x2)
    kept_y = [t.detach().clone() for t in y]
    (y[0].sum() + y[1].sum()).backward()
    assert torch.equal(x1, keep[0]) and torch.equal(x2, keep[1])
    assert all(torch.equal(a, b) for a, b in zip(y, kept_y, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(y, model.conventional(x1, x2), strict=True))


def test_same_tensor_as_both_streams():
    model = _stack(2)
    x, _ = _inputs()
    x.grad = None
    torch.manual_seed(0)
    sum(model(x, x)).sum().backward()
    got = x.grad.clone()
    x.grad = None
    sum(model.conventional(x, x)).sum().backward()
    assert torch.allclose(got, x.grad, rtol=1e-5, atol=1e-6)


def _exact_round_trip_error(depth: int, autocast: bool) -> torch.Tensor:
    model = _stack(depth, exact=True).eval()
    x1, x2 = (t.detach() for t in _inputs(shape=(2, 8, D)))
    q1, q2 = ops.quantize(x1), ops.quantize(x2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        r1, r2 = model.inverse(*model(q1, q2))
    assert torch.equal(r1, q1) and torch.equal(r2, q2)  # bit-identical reconstruction
    back = torch.cat([ops.dequantize(r1), ops.dequantize(r2)])
    return (back - torch.cat([x1, x2])).abs()


@pytest.mark.parametrize("autocast", [False, True])
def test_exact_inverse_error_does_not_grow_with_depth(autocast):
    err2 = _exact_round_trip_error(2, autocast)
    err32 = _exact_round_trip_error(32, autocast)
    assert torch.equal(err2, err32)
    assert err32.max().item() <= 2.0 ** -ops.FRAC_BITS


def test_exact_mode_trains_like_float_mode():
    exact, flt = _stack(4, exact=True), _stack(4)
    x1, x2 = _inputs()
    got = _grads(exact, exact, x1, x2)
    want = _grads(flt, flt.conventional, x1, x2)
    assert _max_rel_err(got, want) <= 1e-4  # only the 2^-24 rounding of the streams differs


def _saved_bytes(model, depth_inputs, run):
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run(*depth_inputs)
    return total


def test_saved_bytes_flat_in_depth_and_small():
    x = _inputs(shape=(4, 16, D))
    rev_bytes = {n: _saved_bytes(m := _stack(n), x, m) for n in (2, 4, 8, 16, 32)}
    assert max(rev_bytes.values()) / min(rev_bytes.values()) <= 1.15
    twelve = _stack(12)
    conventional = _saved_bytes(twelve, x, twelve.conventional)
    assert 0 < _saved_bytes(twelve, x, twelve) <= conventional / 4


def test_gradient_accumulation():
    model = _stack(3)
    a, b = _inputs(seed=1), _inputs(seed=2)
    model.zero_grad()
    for x1, x2 in (a, b):
        sum(model(x1, x2)).square().mean().backward()
    accumulated = [p.grad.clone() for p in model.parameters()]
    separate = []
    for x1, x2 in (a, b):
        model.zero_grad()
        sum(model(x1, x2)).square().mean().backward()
        separate.append([p.grad.clone() for p in model.parameters()])
    want = [s + t for s, t in zip(*separate, strict=True)]
    assert _max_rel_err(accumulated, want) <= 1e-6


def test_bf16_autocast_training_close_to_conventional():
    model = _stack(4)
    x1, x2 = _inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _grads(model, model, x1, x2)
        want = _grads(model, model.conventional, x1, x2)
    assert _max_rel_err(got, want) <= 1e-3  # reconstruction may flip a bf16 rounding


@pytest.mark.slow
def test_torch_compile():
    model = _stack(3, p_drop=0.2)
    x1, x2 = _inputs()
    want = _grads(model, model, x1, x2)
    got = _grads(model, torch.compile(model, backend="aot_eager"), x1, x2)
    assert _max_rel_err(got, want) <= 1e-5


def test_bad_streams_are_refused():
    model = _stack(1)
    with pytest.raises(TrainingError, match="streams differ"):
        model(torch.zeros(2, D), torch.zeros(3, D))
    with pytest.raises(TrainingError, match="exact=True"):
        model(torch.zeros(2, D, dtype=torch.int64), torch.zeros(2, D, dtype=torch.int64))
    with pytest.raises(TrainingError, match="at least one"):
        RevSequential([])


class _Bias(nn.Module):
    """A sublayer that ignores its input (its vjp w.r.t. the input is None)."""

    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.randn(D))

    def forward(self, x):
        return self.b.expand_as(x)


def test_sublayers_that_ignore_their_input():
    torch.manual_seed(0)
    model = RevSequential([(_Bias(), _sublayer()), (_sublayer(), _Bias()), (_Bias(), _Bias())])
    x1, x2 = _inputs()
    dy = torch.randn(2, 8, D)

    def grads(run):
        x1.grad = x2.grad = None
        model.zero_grad()
        y1, y2 = run(x1, x2)
        ((y1 + y2) * dy).sum().backward()
        return [x1.grad.clone(), x2.grad.clone(), *(p.grad.clone() for p in model.parameters())]

    assert _max_rel_err(grads(model), grads(model.conventional)) <= 1e-5


def test_backward_twice_with_retain_graph():
    model = _stack(2, p_drop=0.2)
    x1, x2 = _inputs()
    loss = sum(model(x1, x2)).square().mean()
    loss.backward(retain_graph=True)
    first = x1.grad.clone()
    x1.grad = None
    loss.backward()
    assert torch.equal(first, x1.grad)

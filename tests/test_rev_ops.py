"""The bwsk_rev operators against plain torch, and torch.library.opcheck on each schema."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
ops = pytest.importorskip("bwsk.reversible.ops")

from bwsk.errors import TrainingError  # noqa: E402

FLOATS = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sign", [1, -1])
def test_couple_matches_torch(dtype, sign):
    a = torch.randn(7, 33).to(dtype)
    b = torch.randn(7, 33).to(dtype)
    want = a + b if sign > 0 else a - b
    assert torch.equal(ops.couple(a, b, sign), want)
    c = a.clone()
    assert torch.equal(ops.couple_(c, b, sign), want)


def test_couple_strided_and_inplace_alias():
    a = torch.randn(8, 6).t()  # non-contiguous
    b = torch.randn(6, 8)
    assert torch.equal(ops.couple(a, b, -1), a - b)
    c = a.clone()
    ops.couple_(c, c, 1)
    assert torch.equal(c, a + a)


def test_couple_gradient():
    a = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x, y: ops.couple(x, y, -1), (a, b))


@pytest.mark.parametrize("dtype", FLOATS)
def test_fixed_point_inverse_is_bit_exact(dtype):
    q = ops.quantize(torch.randn(5, 9) * 100)
    f = (torch.randn(5, 9) * 3).to(dtype)
    y = ops.couple_fixed(q, f, 1)
    assert torch.equal(ops.couple_fixed(y, f, -1), q)
    step = torch.round(f.double() * 2**ops.FRAC_BITS).long()
    assert torch.equal(y - q, step)
    ops.couple_fixed_(y, f, -1)
    assert torch.equal(y, q)


def test_quantize_round_trip_within_half_step():
    x = torch.randn(1000) * torch.logspace(-8, 6, 1000)
    back = ops.dequantize(ops.quantize(x), dtype=torch.float32)
    assert (back.double() - x.double()).abs().max() <= 2.0 ** -(ops.FRAC_BITS + 1)
    assert torch.equal(ops.quantize(back), ops.quantize(x))


def test_quantize_ties_to_even():
    half = 2.0 ** -(ops.FRAC_BITS + 1)
    x = torch.tensor([half, 3 * half, -half], dtype=torch.float64)
    assert ops.quantize(x).tolist() == [0, 2, 0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2.0**40])
def test_quantize_rejects_unrepresentable(bad):
    with pytest.raises(TrainingError, match="bwsk_rev"):
        ops.quantize(torch.tensor([1.0, bad], dtype=torch.float64))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(RuntimeError, match="shapes differ"):
        ops.couple(torch.zeros(3), torch.zeros(4))
    with pytest.raises(RuntimeError, match="sign must be"):
        ops.couple(torch.zeros(3), torch.zeros(3), 2)


def _opcheck_cases():
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    q = ops.quantize(a)
    return [
        (torch.ops.bwsk_rev.couple.default, (a, b, 1)),
        (torch.ops.bwsk_rev.couple.default,
         (a.clone().requires_grad_(), b.clone().requires_grad_(), -1)),
        (torch.ops.bwsk_rev.couple_.default, (a.clone(), b, -1)),
        (torch.ops.bwsk_rev.couple_fixed.default, (q, b, 1, ops.FRAC_BITS)),
        (torch.ops.bwsk_rev.couple_fixed_.default, (q.clone(), b, -1, ops.FRAC_BITS)),
        (torch.ops.bwsk_rev.quantize.default, (a, ops.FRAC_BITS)),
        (torch.ops.bwsk_rev.dequantize.default, (q, ops.FRAC_BITS, torch.float32)),
    ]


@pytest.mark.parametrize("case", range(len(_opcheck_cases())))
def test_opcheck(case):
    op, args = _opcheck_cases()[case]
    torch.library.opcheck(op, args)


def test_ops_compile_without_graph_breaks():
    def fn(a, b):
        q = ops.quantize(a)
        return ops.dequantize(ops.couple_fixed(q, b, 1)), ops.couple(a, b, -1)

    a, b = torch.randn(4, 4), torch.randn(4, 4)
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    for got, want in zip(compiled(a, b), fn(a, b), strict=True):
        assert torch.equal(got, want)


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_FINITE, _FINITE), min_size=1, max_size=40))
def test_fixed_coupling_inverts_exactly_for_any_values(pairs):
    x = torch.tensor([a for a, _ in pairs])
    f = torch.tensor([b for _, b in pairs])
    q = ops.quantize(x)
    assert torch.equal(ops.couple_fixed(ops.couple_fixed(q, f, 1), f, -1), q)
    assert torch.equal(ops.couple(x, f, -1), x - f)

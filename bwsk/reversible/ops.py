"""Typed wrappers over the ``bwsk_rev`` operators that ``bwsk._rev`` registers.

The compiled module only registers schemas and device kernels; the fake (meta) kernels
that let ``torch.compile`` trace through the ops, and the autograd formula of the float
coupling, live here. ``sign`` is +1 for the forward coupling and gradient accumulation
(``a + b``) and -1 for the inverse (``a - b``).

Exact mode uses int64 fixed point with ``FRAC_BITS`` fractional bits: a value ``v`` is
``round(v * 2**FRAC_BITS)``, ties to even. The step is 2**-24 (about 6e-8) and the range
+-2**38 (checked on entry). A float32 value round-trips within half a step: at most 24
significant bits survive either way.
"""

from __future__ import annotations

import torch

from bwsk.errors import TrainingError

try:
    import bwsk._rev  # noqa: F401  (loading the library registers torch.ops.bwsk_rev)
except ImportError as exc:  # pragma: no cover - only on a build without torch
    raise TrainingError(f"bwsk._rev is not built ({exc}); run ./dev build") from exc

FRAC_BITS = 24
_OPS = torch.ops.bwsk_rev


def couple(a: torch.Tensor, b: torch.Tensor, sign: int = 1) -> torch.Tensor:
    """``a + sign * b`` (same shape, dtype and device), differentiable."""
    return _OPS.couple.default(a, b, sign)


def couple_(a: torch.Tensor, b: torch.Tensor, sign: int = 1) -> torch.Tensor:
    """In place ``a += sign * b``: reuses ``a``'s memory where the caller owns it."""
    _OPS.couple_.default(a, b, sign)
    return a


def couple_fixed(q: torch.Tensor, f: torch.Tensor, sign: int = 1,
                 frac_bits: int = FRAC_BITS) -> torch.Tensor:
    """``q + sign * round(f * 2**frac_bits)`` on an int64 fixed-point stream ``q``."""
    return _OPS.couple_fixed.default(q, f, sign, frac_bits)


def couple_fixed_(q: torch.Tensor, f: torch.Tensor, sign: int = 1,
                  frac_bits: int = FRAC_BITS) -> torch.Tensor:
    """In-place :func:`couple_fixed`."""
    _OPS.couple_fixed_.default(q, f, sign, frac_bits)
    return q


def quantize(x: torch.Tensor, frac_bits: int = FRAC_BITS) -> torch.Tensor:
    """Enter the fixed-point domain; non-finite or out-of-range values raise TrainingError."""
    try:
        return _OPS.quantize.default(x, frac_bits)
    except RuntimeError as exc:
        if "bwsk_rev:" not in str(exc):
            raise
        raise TrainingError(str(exc).splitlines()[0]) from exc


def dequantize(q: torch.Tensor, frac_bits: int = FRAC_BITS,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Leave the fixed-point domain: ``q * 2**-frac_bits`` rounded once to ``dtype``."""
    return _OPS.dequantize.default(q, frac_bits, dtype)


@torch.library.register_fake("bwsk_rev::couple")
def _couple_fake(a, b, sign):
    torch._check(a.shape == b.shape, lambda: "bwsk_rev::couple: shapes differ")
    torch._check(a.dtype == b.dtype, lambda: "bwsk_rev::couple: dtypes differ")
    return torch.empty_like(a)


@torch.library.register_fake("bwsk_rev::couple_")
def _couple_inplace_fake(a, b, sign):
    torch._check(a.shape == b.shape, lambda: "bwsk_rev::couple_: shapes differ")


@torch.library.register_fake("bwsk_rev::couple_fixed")
def _couple_fixed_fake(q, f, sign, frac_bits):
    torch._check(q.shape == f.shape, lambda: "bwsk_rev::couple_fixed: shapes differ")
    return torch.empty_like(q)


@torch.library.register_fake("bwsk_rev::couple_fixed_")
def _couple_fixed_inplace_fake(q, f, sign, frac_bits):
    torch._check(q.shape == f.shape, lambda: "bwsk_rev::couple_fixed_: shapes differ")


@torch.library.register_fake("bwsk_rev::quantize")
def _quantize_fake(x, frac_bits):
    return torch.empty_like(x, dtype=torch.int64)


@torch.library.register_fake("bwsk_rev::dequantize")
def _dequantize_fake(q, frac_bits, dtype):
    return torch.empty_like(q, dtype=dtype)


def _couple_setup(ctx, inputs, output):
    ctx.sign = inputs[2]


def _couple_backward(ctx, grad):
    # d(a + s*b) = da + s*db: the gradient is routed, never stored activations.
    return grad, (grad if ctx.sign > 0 else -grad), None


torch.library.register_autograd("bwsk_rev::couple", _couple_backward, setup_context=_couple_setup)

"""RevSequential: two-stream additive couplings trained without storing block activations.

Each block computes ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``; its inverse
``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)`` lets the backward pass rebuild every block's
inputs from its outputs (the RevNet/Reformer construction). Only the stack's final
outputs are kept for backward, so activation memory does not grow with depth.

Exact mode carries the streams as int64 fixed point (see ``bwsk.reversible.ops``): the
inverse subtracts exactly what the forward added, so reconstruction is bit-identical in
any precision. Gradients pass straight through the rounding (it is treated as identity).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bwsk.errors import TrainingError
from bwsk.reversible import ops
from bwsk.reversible.ops import FRAC_BITS


class _Codec:
    """How a stream is stored: the float tensor itself, or its int64 fixed-point code."""

    def __init__(self, exact: bool, frac_bits: int, dtype: torch.dtype):
        self.exact, self.bits, self.dtype = exact, frac_bits, dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return ops.quantize(x, self.bits) if self.exact else x

    def decode(self, s: torch.Tensor) -> torch.Tensor:
        return ops.dequantize(s, self.bits, self.dtype) if self.exact else s

    def add(self, s: torch.Tensor, f: torch.Tensor, sign: int, inplace: bool) -> torch.Tensor:
        """``s + sign * f``; in place only on buffers the engine owns."""
        f = f.detach()
        if self.exact:
            return (ops.couple_fixed_ if inplace else ops.couple_fixed)(s, f, sign, self.bits)
        return (ops.couple_ if inplace else ops.couple)(s, f.to(s.dtype), sign)


class _Rng:
    """Generator state before a sublayer ran, so recomputation draws the same dropout masks."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def replay(self, fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        devices = [self.device] if self.cuda is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            return fn(x)


def _accumulate(acc: torch.Tensor, extra: torch.Tensor | None, owned: bool) -> torch.Tensor:
    if extra is None:  # the sublayer ignored its input; still never write the engine's grads
        return acc if owned else acc.clone()
    return (ops.couple_ if owned else ops.couple)(acc, extra.to(acc.dtype), 1)


class _RevFunction(torch.autograd.Function):
    """Forward without a graph; backward by reconstruction and per-block recomputation."""

    @staticmethod
    def forward(ctx, stack, x1, x2, *params):
        codec = stack._codec(x1)
        s1, s2, rngs = stack._run(codec, codec.encode(x1), codec.encode(x2), record=True)
        device_type = x1.device.type
        ctx.stack, ctx.codec, ctx.rngs, ctx.params = stack, codec, rngs, params
        ctx.autocast = (device_type, torch.is_autocast_enabled(device_type),
                        torch.get_autocast_dtype(device_type))
        ctx.save_for_backward(s1, s2)
        return codec.decode(s1), codec.decode(s2)

    @staticmethod
    def backward(ctx, dy1, dy2):
        ys = ctx.saved_tensors
        dys = (dy1, dy2)
        grads: dict[int, torch.Tensor] = {}
        device_type, enabled, dtype = ctx.autocast
        with torch.autocast(device_type, dtype=dtype, enabled=enabled):
            last = len(ctx.stack) - 1
            for i in range(last, -1, -1):
                ys, dys = ctx.stack._block_backward(i, ctx.codec, ys, dys, ctx.rngs[i], grads,
                                                    owned=i < last)
        return (None, *dys, *(grads.get(id(p)) for p in ctx.params))


class RevSequential(nn.Module):
    """A stack of additive couplings ``[(F1, G1), (F2, G2), ...]`` on two streams.

    ``forward(x1, x2) -> (y1, y2)`` saves no block activations for backward;
    ``inverse(y1, y2) -> (x1, x2)`` undoes it (in eval mode, where dropout is off).
    With ``exact=True``, int64 inputs are taken as fixed-point streams and the result
    stays fixed point, which makes ``inverse(forward(q)) == q`` bit for bit.
    """

    def __init__(self, blocks: Sequence[tuple[nn.Module, nn.Module]], exact: bool = False,
                 frac_bits: int = FRAC_BITS):
        super().__init__()
        if not blocks:
            raise TrainingError("RevSequential needs at least one (F, G) block")
        self.f = nn.ModuleList(f for f, _ in blocks)
        self.g = nn.ModuleList(g for _, g in blocks)
        self.exact, self.frac_bits = exact, frac_bits

    def __len__(self) -> int:
        return len(self.f)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x1, x2)
        params = tuple(p for p in self.parameters() if p.requires_grad)
        wants_grad = x1.requires_grad or x2.requires_grad or bool(params)
        if torch.is_grad_enabled() and wants_grad and not _is_fixed(x1):
            return _RevFunction.apply(self, x1, x2, *params)
        codec = self._codec(x1)
        with torch.no_grad():
            s1, s2, _ = self._run(codec, self._enter(codec, x1), self._enter(codec, x2), False)
        return self._leave(codec, s1, x1), self._leave(codec, s2, x1)

    @torch.no_grad()
    def inverse(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(y1, y2)
        codec = self._codec(y1)
        s1, s2 = self._enter(codec, y1), self._enter(codec, y2)
        for i in range(len(self) - 1, -1, -1):
            s2 = codec.add(s2, self.g[i](codec.decode(s1)), -1, inplace=i < len(self) - 1)
            s1 = codec.add(s1, self.f[i](codec.decode(s2)), -1, inplace=i < len(self) - 1)
        return self._leave(codec, s1, y1), self._leave(codec, s2, y1)

    def conventional(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same float couplings under ordinary autograd (every activation stored)."""
        for f, g in zip(self.f, self.g, strict=True):
            x1 = ops.couple(x1, f(x2).to(x1.dtype), 1)
            x2 = ops.couple(x2, g(x1).to(x2.dtype), 1)
        return x1, x2

    def _check(self, a: torch.Tensor, b: torch.Tensor) -> None:
        if a.shape != b.shape or a.dtype != b.dtype:
            raise TrainingError(f"RevSequential streams differ: {tuple(a.shape)} {a.dtype} vs "
                                f"{tuple(b.shape)} {b.dtype}")
        if _is_fixed(a) and not self.exact:
            raise TrainingError("int64 (fixed-point) streams need RevSequential(exact=True)")
        if not _is_fixed(a) and not a.is_floating_point():
            raise TrainingError(f"RevSequential streams must be floating or int64, got {a.dtype}")

    def _codec(self, x: torch.Tensor) -> _Codec:
        dtype = torch.get_default_dtype() if _is_fixed(x) else x.dtype
        return _Codec(self.exact, self.frac_bits, dtype)

    @staticmethod
    def _enter(codec: _Codec, x: torch.Tensor) -> torch.Tensor:
        return x if _is_fixed(x) else codec.encode(x)

    @staticmethod
    def _leave(codec: _Codec, s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return s if _is_fixed(like) else codec.decode(s)

    def _run(self, codec: _Codec, s1: torch.Tensor, s2: torch.Tensor, record: bool):
        """Forward through every block; the first block never overwrites its inputs."""
        rngs = []
        for i, (f, g) in enumerate(zip(self.f, self.g, strict=True)):
            rf = _Rng(s1.device) if record else None
            s1 = codec.add(s1, f(codec.decode(s2)), 1, inplace=i > 0)
            rg = _Rng(s1.device) if record else None
            s2 = codec.add(s2, g(codec.decode(s1)), 1, inplace=i > 0)
            rngs.append((rf, rg))
        return s1, s2, rngs

    def _block_backward(self, i, codec, ys, dys, rngs, grads, owned):
        """Rebuild block i's inputs from its outputs and push the gradient through it."""
        (y1, y2), (dy1, dy2) = ys, dys
        g, dz1 = _vjp(self.g[i], codec.decode(y1), rngs[1], dy2, grads)
        x2 = codec.add(y2, g, -1, inplace=owned)
        dy1 = _accumulate(dy1, dz1, owned)
        del g, dz1
        f, dz2 = _vjp(self.f[i], codec.decode(x2), rngs[0], dy1, grads)
        x1 = codec.add(y1, f, -1, inplace=owned)
        dy2 = _accumulate(dy2, dz2, owned)
        return (x1, x2), (dy1, dy2)


def _is_fixed(x: torch.Tensor) -> bool:
    return x.dtype == torch.int64


def _vjp(fn: nn.Module, x: torch.Tensor, rng: _Rng, dy: torch.Tensor, grads: dict):
    """Recompute ``fn(x)`` with grad; return its value and dL/dx, accumulating weight grads."""
    params = [p for p in fn.parameters() if p.requires_grad]
    with torch.enable_grad():
        z = x.detach().requires_grad_()
        out = rng.replay(fn, z)
        got = torch.autograd.grad(out, [z, *params], dy.to(out.dtype), allow_unused=True)
    for p, gp in zip(params, got[1:], strict=True):
        if gp is not None:
            grads[id(p)] = gp if id(p) not in grads else grads[id(p)] + gp
    return out.detach(), got[0]

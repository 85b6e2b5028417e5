"""Elementwise ATen ops that need more than a one-to-one rename (decompositions, options
ONNX lacks). Registered into ``aten_atoms.HANDLERS`` on import."""

from __future__ import annotations

from bwsk.frontends.aten_atoms import arg as _arg
from bwsk.frontends.aten_atoms import handler


@handler("clamp", "clip")
def _clamp(em, n, args, kw):
    low, high = _arg(args, kw, 1, "min"), _arg(args, kw, 2, "max")
    dtype = em.dtype_of(n)
    bounds = [em.operand(b, dtype) if b is not None else "" for b in (low, high)]
    em.node("clip", [em.ref(args[0]), *bounds], {}, out=n.name, like=n)


@handler("softplus")
def _softplus(em, n, args, kw):
    beta = _arg(args, kw, 1, "beta", 1)
    if beta != 1:  # ONNX Softplus has no beta (and no threshold)
        return em.unknown(n)
    em.node("softplus", [em.ref(args[0])], {}, out=n.name, like=n)


@handler("diff")
def _diff(em, n, args, kw):
    """x[1:] - x[:-1] along ``dim`` (after prepend/append), once per order."""
    x = args[0]
    order, dim = int(_arg(args, kw, 1, "n", 1)), int(_arg(args, kw, 2, "dim", -1))
    extra = [_arg(args, kw, 3, "prepend"), x, _arg(args, kw, 4, "append")]
    parts = [em.ref(t) for t in extra if t is not None]
    current = parts[0]
    if len(parts) > 1:
        current = em.node("concat", parts, {"axis": dim}, out=f"{n.name}.cat", like=n, shape=None)
    big = 2**62
    for k in range(order):
        axes = em.const_array([dim], "int64")
        hi = em.node("slice", [current, em.const_array([1], "int64"),
                               em.const_array([big], "int64"), axes], {},
                     out=f"{n.name}.hi{k}", like=n, shape=None)
        lo = em.node("slice", [current, em.const_array([0], "int64"),
                               em.const_array([-1], "int64"), axes], {},
                     out=f"{n.name}.lo{k}", like=n, shape=None)
        last = k == order - 1
        current = em.node("sub", [hi, lo], {}, out=n.name if last else f"{n.name}.d{k}",
                          like=n, shape="meta" if last else None)


@handler("silu")
def _silu(em, n, args, kw):
    """x · sigmoid(x), as ONNX exporters write it."""
    em.node("sigmoid", [em.ref(args[0])], {}, out=f"{n.name}.sigmoid", like=n)
    em.node("mul", [em.ref(args[0]), f"{n.name}.sigmoid"], {}, out=n.name, like=n)


@handler("elu")
def _elu(em, n, args, kw):
    alpha = float(_arg(args, kw, 1, "alpha", 1.0))
    if float(_arg(args, kw, 2, "scale", 1.0)) != 1.0 or float(
            _arg(args, kw, 3, "input_scale", 1.0)) != 1.0:
        return em.unknown(n)
    em.node("elu", [em.ref(args[0])], {"alpha": alpha}, out=n.name, like=n)

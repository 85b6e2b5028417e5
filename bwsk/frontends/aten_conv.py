"""ATen convolution, normalization and pooling ops onto ONNX-style atoms (vision models).

Registered into ``aten_atoms.HANDLERS`` on import; attribute names follow ONNX
(``kernel_shape``, ``strides``, ``pads`` as begins then ends, ``dilations``, ``group``).
"""

from __future__ import annotations

from bwsk.frontends import aten_atoms as A
from bwsk.frontends.aten_atoms import arg as _arg
from bwsk.frontends.aten_atoms import handler


def _per_dim(value, rank: int) -> list[int]:
    """An int or a list (torch allows both, and [] for 'same as kernel') as rank ints."""
    if isinstance(value, int):
        return [value] * rank
    value = list(value)
    return value * rank if len(value) == 1 else value


@handler("conv1d", "conv2d", "conv3d", "convolution")
def _conv(em, n, args, kw):
    x, w = args[0], args[1]
    bias = _arg(args, kw, 2, "bias", None)
    spatial = len(em.shape_of(w)) - 2
    transposed = aten_name_is(n, "convolution") and bool(_arg(args, kw, 6, "transposed", False))
    groups = _arg(args, kw, 8 if aten_name_is(n, "convolution") else 6, "groups", 1)
    padding = _arg(args, kw, 4, "padding", 0)
    attrs = {"kernel_shape": list(em.shape_of(w)[2:]),
             "strides": _per_dim(_arg(args, kw, 3, "stride", 1), spatial),
             "dilations": _per_dim(_arg(args, kw, 5, "dilation", 1), spatial),
             "group": int(groups)}
    if isinstance(padding, str):
        attrs["auto_pad"] = "VALID" if padding == "valid" else "SAME_UPPER"
    else:
        attrs["pads"] = _per_dim(padding, spatial) * 2
    if transposed:
        attrs["output_padding"] = _per_dim(_arg(args, kw, 7, "output_padding", 0), spatial)
    inputs = [em.ref(x), em.ref(w), *([em.ref(bias)] if bias is not None else [])]
    em.node("conv_transpose" if transposed else "conv", inputs, attrs, out=n.name, like=n)


# op -> positions of (running_mean, running_var, training, momentum, eps); None: absent
_BATCH_NORM_ARGS = {
    "batch_norm": (3, 4, 5, 6, 7),
    "native_batch_norm": (3, 4, 5, 6, 7),
    "_native_batch_norm_legit": (3, 4, 5, 6, 7),
    "_native_batch_norm_legit.no_stats": (None, None, 3, 4, 5),
    "_native_batch_norm_legit_functional": (3, 4, 5, 6, 7),
    "_native_batch_norm_legit_no_training": (3, 4, None, 5, 6),
}


@handler(*{name.split(".")[0] for name in _BATCH_NORM_ARGS})
def _batch_norm(em, n, args, kw):
    """ONNX BatchNormalization: ``momentum`` weighs the old running statistics (1 - torch's),
    ``training_mode`` 1 normalizes by batch statistics; outputs Y then, where torch returns
    them, the updated running mean and variance."""
    overload = getattr(n.target, "_overloadname", "default")
    name = A.aten_name(n.target)
    i_mean, i_var, i_train, i_momentum, i_eps = _BATCH_NORM_ARGS.get(
        f"{name}.{overload}", _BATCH_NORM_ARGS[name])
    x, weight, bias = (tuple(args) + (None,) * 3)[:3]
    mean, var = (_arg(args, kw, i, k, None) if i is not None else None
                 for i, k in ((i_mean, "running_mean"), (i_var, "running_var")))
    training = i_train is not None and bool(_arg(args, kw, i_train, "training", False))
    if not training and (mean is None or var is None):
        return em.unknown(n)
    momentum = _arg(args, kw, i_momentum, "momentum", 0.1)
    attrs = {"epsilon": float(_arg(args, kw, i_eps, "eps", 1e-5)),
             "momentum": 1.0 - float(0.1 if momentum is None else momentum),
             "training_mode": int(training)}
    channels = int(em.shape_of(x)[1])
    dtype = em.dtype_of(x)
    scale = em.ref(weight) if weight is not None else em.const_array([1.0] * channels, dtype)
    shift = em.ref(bias) if bias is not None else em.const_array([0.0] * channels, dtype)
    em.node("batchnorm", [em.ref(x), scale, shift, em.ref(mean), em.ref(var)], attrs,
            out=_batch_norm_outputs(em, n, name), like=n)


def _batch_norm_outputs(em, n, name: str) -> str | list[str]:
    """Y, and the new running statistics the functional form returns (results 3 and 4)."""
    if not isinstance(n.meta.get("val"), (list, tuple)):
        return n.name
    names = em.multi_outputs(n, len(n.meta["val"]))
    used = {u.args[1] for u in n.users}
    if name == "_native_batch_norm_legit_functional" and {3, 4} & used:
        return [names[0], names[3], names[4]]
    return names[:1]


@handler("max_pool1d", "max_pool2d", "max_pool3d")
def _max_pool(em, n, args, kw):
    kernel = list(args[1])
    spatial = len(kernel)
    stride = _arg(args, kw, 2, "stride", []) or kernel
    attrs = {"kernel_shape": _per_dim(kernel, spatial), "strides": _per_dim(stride, spatial),
             "pads": _per_dim(_arg(args, kw, 3, "padding", 0), spatial) * 2,
             "dilations": _per_dim(_arg(args, kw, 4, "dilation", 1), spatial),
             "ceil_mode": int(bool(_arg(args, kw, 5, "ceil_mode", False)))}
    em.node("max_pool", [em.ref(args[0])], attrs, out=n.name, like=n)


@handler("avg_pool1d", "avg_pool2d", "avg_pool3d")
def _avg_pool(em, n, args, kw):
    kernel = list(args[1])
    spatial = len(kernel)
    stride = _arg(args, kw, 2, "stride", []) or kernel
    if _arg(args, kw, 6, "divisor_override", None) is not None:
        return em.unknown(n)
    attrs = {"kernel_shape": _per_dim(kernel, spatial), "strides": _per_dim(stride, spatial),
             "pads": _per_dim(_arg(args, kw, 3, "padding", 0), spatial) * 2,
             "ceil_mode": int(bool(_arg(args, kw, 4, "ceil_mode", False))),
             "count_include_pad": int(bool(_arg(args, kw, 5, "count_include_pad", True)))}
    em.node("average_pool", [em.ref(args[0])], attrs, out=n.name, like=n)


@handler("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d")
def _adaptive_avg_pool(em, n, args, kw):
    size = _per_dim(args[1], len(em.shape_of(args[0])) - 2)
    if any(s != 1 for s in size):
        em.node("aten::adaptive_avg_pool", [em.ref(args[0])], {"output_size": size},
                out=n.name, like=n)
        return
    em.node("global_average_pool", [em.ref(args[0])], {}, out=n.name, like=n)


@handler("stack")
def _stack(em, n, args, kw):
    dim = int(_arg(args, kw, 1, "dim", 0))
    rank = len(em.shape_of(n))
    axis = dim + rank if dim < 0 else dim
    pieces = []
    for i, t in enumerate(args[0]):
        piece = f"{n.name}.u{i}"
        em.node("unsqueeze", [em.ref(t), em.const_array([axis], "int64")], {}, out=piece,
                like=n, shape=None)
        pieces.append(piece)
    em.node("concat", pieces, {"axis": axis}, out=n.name, like=n)


def aten_name_is(n, name: str) -> bool:
    from bwsk.frontends.aten_atoms import aten_name

    return aten_name(n.target) == name

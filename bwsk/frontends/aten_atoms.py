"""ATen operators mapped onto bwsk's atoms, the same atoms the ONNX frontend produces.

Attributes use ONNX's names (``axis``, ``epsilon``, ``perm``, ``approximate``, ``alpha``) so
the catalogue reads one spelling whichever frontend built the graph. Scalars become constant
inputs, as the ONNX exporter emits them. Ops with no meaning for a trained model in eval mode
(dropout, aliasing, metadata asserts) become aliases of their input, not nodes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

# Ops that pass their first argument through unchanged (eval mode, no copies in the math).
ALIASES = {"alias", "dropout", "contiguous", "clone", "detach", "lift_fresh_copy",
           "_assert_tensor_metadata", "feature_dropout", "alpha_dropout", "to", "type_as",
           "_to_copy"}

# Ops whose result depends only on shapes (and constants), never on input values.
SHAPE_ONLY = {"zeros_like", "ones_like", "full_like", "empty_like", "new_ones", "new_zeros",
              "new_full", "new_empty", "zeros", "ones", "full", "empty", "arange", "scalar_tensor",
              "sym_size", "size", "fill"}

# ATen name -> atom, for ops whose positional arguments map one to one onto the atom's
# inputs (keyword arguments such as dtype have no ONNX counterpart and are dropped).
SIMPLE = {
    "neg": "neg", "abs": "abs", "log": "log", "exp": "exp", "sqrt": "sqrt", "tanh": "tanh",
    "sigmoid": "sigmoid", "relu": "relu", "pow": "pow", "matmul": "matmul", "bmm": "matmul",
    "mm": "matmul", "__and__": "and", "logical_and": "and",
    "__or__": "or", "logical_or": "or", "logical_not": "not", "bitwise_not": "not",
    "reciprocal": "reciprocal", "erf": "erf",
    "sin": "sin", "cos": "cos", "hardswish": "hard_swish", "mish": "mish",
    "hardtanh": "clip", "sign": "sign", "floor": "floor", "ceil": "ceil", "cumsum": "cum_sum",
}


@functools.cache
def aten_name(target: Any) -> str:
    """'aten.add.Tensor' -> 'add' (the overload packet's short name)."""
    packet = getattr(target, "overloadpacket", None)
    name = getattr(packet, "__name__", None) or getattr(target, "__name__", str(target))
    name = name.split(".")[-1]
    return name[:-1] if name.endswith("_") and not name.startswith("_") else name  # in-place


def is_mapped(name: str) -> bool:
    """True if the op has an atom (or is an alias / shape-only constant)."""
    return name in ALIASES or name in SHAPE_ONLY or name in SIMPLE or name in HANDLERS


Emit = Any  # bwsk.frontends.torch.Emitter; typed loosely to avoid an import cycle
Handler = Callable[[Emit, Any, tuple, dict], None]
HANDLERS: dict[str, Handler] = {}


def handler(*names: str):
    def register(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = fn
        return fn
    return register


def arg(args: tuple, kw: dict, index: int, key: str, default: Any = None) -> Any:
    """An ATen argument given by position or by keyword."""
    return args[index] if len(args) > index else kw.get(key, default)


def _axis(dim: int, rank: int) -> int:
    return dim + rank if dim < 0 else dim


@handler("linear")
def _linear(em, n, args, kw):
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else kw.get("bias")
    out = n.name if b is None else f"{n.name}.mm"
    em.node("matmul", [em.ref(x), em.transposed(w)], {}, out=out, like=n)
    if b is not None:
        em.node("add", [out, em.ref(b)], {}, out=n.name, like=n)


@handler("addmm")
def _addmm(em, n, args, kw):
    b, x, w = args[:3]
    em.node("matmul", [em.ref(x), em.ref(w)], {}, out=f"{n.name}.mm", like=n)
    em.node("add", [f"{n.name}.mm", em.ref(b)], {}, out=n.name, like=n)


@handler("layer_norm", "native_layer_norm")
def _layer_norm(em, n, args, kw):
    x, shape = args[0], args[1]
    w = args[2] if len(args) > 2 else kw.get("weight")
    b = args[3] if len(args) > 3 else kw.get("bias")
    eps = args[4] if len(args) > 4 else kw.get("eps", 1e-5)
    dtype = em.dtype_of(x)
    scale = em.ref(w) if w is not None else em.const_array(np.ones(list(shape)), dtype)
    inputs = [em.ref(x), scale, em.ref(b) if b is not None else ""]  # ONNX needs a scale
    em.node("layernorm", inputs, {"axis": -len(shape), "epsilon": float(eps)}, out=n.name, like=n)


@handler("rms_norm")
def _rms_norm(em, n, args, kw):
    x, shape = args[0], args[1]
    w, eps = arg(args, kw, 2, "weight"), arg(args, kw, 3, "eps")
    if eps is None:  # torch then uses the dtype's machine epsilon
        eps = float(np.finfo(em.dtype_of(x)).eps)
    scale = em.ref(w) if w is not None else em.const_array(np.ones(list(shape)), em.dtype_of(x))
    em.node("rmsnorm", [em.ref(x), scale], {"axis": -len(shape), "epsilon": float(eps)},
            out=n.name, like=n)


@handler("gelu")
def _gelu(em, n, args, kw):
    approximate = kw.get("approximate", args[1] if len(args) > 1 else "none")
    em.node("gelu", [em.ref(args[0])], {"approximate": approximate}, out=n.name, like=n)


@handler("leaky_relu")
def _leaky_relu(em, n, args, kw):
    alpha = args[1] if len(args) > 1 else kw.get("negative_slope", 0.01)
    em.node("leaky_relu", [em.ref(args[0])], {"alpha": float(alpha)}, out=n.name, like=n)


@handler("softmax", "_softmax", "log_softmax", "_log_softmax")
def _softmax(em, n, args, kw):
    atom = "log_softmax" if "log" in aten_name(n.target) else "softmax"
    em.node(atom, [em.ref(args[0])], {"axis": int(args[1])}, out=n.name, like=n)


@handler("view", "reshape", "_unsafe_view", "flatten", "unflatten")
def _reshape(em, n, args, kw):
    shape = em.shape_of(n)
    em.node("reshape", [em.ref(args[0]), em.const_array(shape, "int64")], {}, out=n.name, like=n)


@handler("expand", "expand_as", "broadcast_to")
def _expand(em, n, args, kw):
    shape = em.shape_of(n)
    em.node("expand", [em.ref(args[0]), em.const_array(shape, "int64")], {}, out=n.name, like=n)


@handler("transpose", "t", "permute", "numpy_T")
def _transpose(em, n, args, kw):
    rank = len(em.shape_of(n))
    name = aten_name(n.target)
    perm = list(range(rank))
    if name == "permute":
        perm = [_axis(d, rank) for d in args[1]]
    elif rank >= 2:
        d0, d1 = (0, 1) if name == "t" else (_axis(args[1], rank), _axis(args[2], rank))
        perm[d0], perm[d1] = perm[d1], perm[d0]
    em.node("transpose", [em.ref(args[0])], {"perm": perm}, out=n.name, like=n)


@handler("unsqueeze", "squeeze")
def _unsqueeze(em, n, args, kw):
    name = aten_name(n.target)
    src_rank = len(em.shape_of(args[0]))
    if name == "squeeze" and len(args) < 2:
        axes = [i for i, d in enumerate(em.shape_of(args[0])) if d == 1]
    else:
        dims = args[1] if isinstance(args[1], (list, tuple)) else [args[1]]
        rank = src_rank + (1 if name == "unsqueeze" else 0)
        axes = [_axis(int(d), rank) for d in dims]
    em.node(name, [em.ref(args[0]), em.const_array(axes, "int64")], {}, out=n.name, like=n)


@handler("slice")
def _slice(em, n, args, kw):
    x, dim = args[0], (args[1] if len(args) > 1 else 0)
    start = args[2] if len(args) > 2 and args[2] is not None else 0
    end = args[3] if len(args) > 3 and args[3] is not None else 2**63 - 1
    step = args[4] if len(args) > 4 else 1
    inputs = [em.ref(x), *(em.const_array([v], "int64") for v in (start, end, dim, step))]
    em.node("slice", inputs, {}, out=n.name, like=n)


@handler("select")
def _select(em, n, args, kw):
    em.node("gather", [em.ref(args[0]), em.const_array(int(args[2]), "int64")],
            {"axis": int(args[1])}, out=n.name, like=n)


@handler("split", "split_with_sizes", "chunk")
def _split(em, n, args, kw):
    dim = int(args[2] if len(args) > 2 else kw.get("dim", 0))
    sizes = [int(em.shape_of_value(v)[dim]) for v in n.meta["val"]]
    em.node("split", [em.ref(args[0]), em.const_array(sizes, "int64")], {"axis": dim},
            out=em.multi_outputs(n, len(sizes)), like=n)


@handler("unbind")
def _unbind(em, n, args, kw):
    dim = int(args[1] if len(args) > 1 else kw.get("dim", 0))
    count = len(n.meta["val"])
    pieces = [f"{n.name}.piece{i}" for i in range(count)]
    em.node("split", [em.ref(args[0]), em.const_array([1] * count, "int64")], {"axis": dim},
            out=pieces, like=n, shape=None)
    for piece, out in zip(pieces, em.multi_outputs(n, count), strict=True):
        em.node("squeeze", [piece, em.const_array([dim], "int64")], {}, out=out, like=n)


# Elementwise ops whose operands torch promotes to a common dtype and ONNX does not.
ARITHMETIC = {"mul": "mul", "div": "div", "minimum": "min",
              "maximum": "max"}
COMPARISONS = {"eq": "equal", "lt": "less", "le": "less_or_equal", "gt": "greater",
               "ge": "greater_or_equal"}


@handler(*ARITHMETIC)
def _arithmetic(em, n, args, kw):
    dtype = em.dtype_of(n)
    attrs = {"rounding_mode": kw["rounding_mode"]} if kw.get("rounding_mode") else {}
    if attrs:
        return em.unknown(n)
    em.node(ARITHMETIC[aten_name(n.target)], [em.operand(a, dtype) for a in args[:2]], attrs,
            out=n.name, like=n)


@handler(*COMPARISONS)
def _compare(em, n, args, kw):
    dtype = next(em.dtype_of(a) for a in args if em.is_tensor(a))
    em.node(COMPARISONS[aten_name(n.target)], [em.operand(a, dtype) for a in args[:2]], {},
            out=n.name, like=n)


@handler("where")
def _where(em, n, args, kw):
    dtype = em.dtype_of(n)
    em.node("where", [em.ref(args[0]), em.operand(args[1], dtype), em.operand(args[2], dtype)],
            {}, out=n.name, like=n)


@handler("masked_fill")
def _masked_fill(em, n, args, kw):
    dtype = em.dtype_of(n)
    em.node("where", [em.ref(args[1]), em.operand(args[2], dtype), em.operand(args[0], dtype)],
            {}, out=n.name, like=n)


@handler("add", "sub", "rsub")
def _add_sub(em, n, args, kw):
    name = aten_name(n.target)
    a, b = (args[1], args[0]) if name == "rsub" else (args[0], args[1])
    alpha = kw.get("alpha", args[2] if len(args) > 2 else 1)
    dtype = em.dtype_of(n)
    b_ref = em.operand(b, dtype)
    if alpha != 1:
        em.node("mul", [b_ref, em.const_array(alpha, dtype)], {}, out=f"{n.name}.alpha",
                like=n, shape=em.shape_of(b) if em.is_tensor(b) else ())
        b_ref = f"{n.name}.alpha"
    em.node("add" if name == "add" else "sub", [em.operand(a, dtype), b_ref], {}, out=n.name,
            like=n)


@handler("argmax", "argmin")
def _argmax(em, n, args, kw):
    atom = "arg_max" if aten_name(n.target) == "argmax" else "arg_min"
    dim = args[1] if len(args) > 1 else kw.get("dim")
    keep = bool(args[2] if len(args) > 2 else kw.get("keepdim", False))
    if dim is None:
        return em.unknown(n)
    em.node(atom, [em.ref(args[0])], {"axis": int(dim), "keepdims": int(keep)}, out=n.name,
            like=n)


@handler("one_hot")
def _one_hot(em, n, args, kw):
    depth = em.const_array(int(em.shape_of(n)[-1]), "int64")
    em.node("one_hot", [em.ref(args[0]), depth, em.const_array([0, 1], "int64")], {"axis": -1},
            out=n.name, like=n)


@handler("cat", "concat")
def _cat(em, n, args, kw):
    dim = args[1] if len(args) > 1 else kw.get("dim", 0)
    em.node("concat", [em.ref(t) for t in args[0]], {"axis": int(dim)}, out=n.name, like=n)


@handler("embedding")
def _embedding(em, n, args, kw):
    em.node("gather", [em.ref(args[0]), em.ref(args[1])], {"axis": 0}, out=n.name, like=n)


@handler("gather")
def _gather(em, n, args, kw):
    em.node("gather_elements", [em.ref(args[0]), em.ref(args[2])], {"axis": int(args[1])},
            out=n.name, like=n)


@handler("mean", "sum", "amax", "amin", "prod")
def _reduce(em, n, args, kw):
    name = aten_name(n.target)
    rank = len(em.shape_of(args[0]))
    dims = args[1] if len(args) > 1 and args[1] is not None else list(range(rank))
    dims = [dims] if isinstance(dims, int) else list(dims)
    keep = bool(args[2] if len(args) > 2 else kw.get("keepdim", False))
    atom = {"mean": "reduce_mean", "sum": "reduce_sum", "amax": "reduce_max",
            "amin": "reduce_min", "prod": "reduce_prod"}[name]
    axes = em.const_array([_axis(d, rank) for d in dims], "int64")
    em.node(atom, [em.ref(args[0]), axes], {"keepdims": int(keep)}, out=n.name, like=n)


@handler("rsqrt")
def _rsqrt(em, n, args, kw):
    em.node("sqrt", [em.ref(args[0])], {}, out=f"{n.name}.sqrt", like=n)
    em.node("reciprocal", [f"{n.name}.sqrt"], {}, out=n.name, like=n)


@handler("ne")
def _ne(em, n, args, kw):
    dtype = next(em.dtype_of(a) for a in args if em.is_tensor(a))
    em.node("equal", [em.operand(a, dtype) for a in args[:2]], {}, out=f"{n.name}.eq", like=n)
    em.node("not", [f"{n.name}.eq"], {}, out=n.name, like=n)


@handler("min", "max")
def _min_max(em, n, args, kw):
    name = aten_name(n.target)
    if len(args) == 2 and em.is_tensor(args[1]):
        dtype = em.dtype_of(n)
        em.node(name, [em.operand(a, dtype) for a in args], {}, out=n.name, like=n)
        return
    rank = len(em.shape_of(args[0]))
    dim = _axis(int(args[1]), rank) if len(args) > 1 else None
    keep = int(bool(args[2] if len(args) > 2 else kw.get("keepdim", False)))
    axes = em.const_array([dim] if dim is not None else list(range(rank)), "int64")
    if dim is None:
        em.node(f"reduce_{name}", [em.ref(args[0]), axes], {"keepdims": keep}, out=n.name, like=n)
        return
    values, indices = em.multi_outputs(n, 2)
    em.node(f"reduce_{name}", [em.ref(args[0]), axes], {"keepdims": keep}, out=values, like=n,
            shape=em.shape_of_value(n.meta["val"][0]))
    em.node(f"arg_{name}", [em.ref(args[0])], {"axis": dim, "keepdims": keep}, out=indices,
            like=n, shape=em.shape_of_value(n.meta["val"][1]), dtype="int64")


@handler("index_select")
def _index_select(em, n, args, kw):
    em.node("gather", [em.ref(args[0]), em.ref(args[2])], {"axis": int(args[1])}, out=n.name,
            like=n)


@handler("scaled_dot_product_attention")
def _sdpa(em, n, args, kw):
    """softmax(q kᵀ · scale + mask) v, spelled in atoms so the catalogue judges each step."""
    q, k, v = args[:3]
    mask = args[3] if len(args) > 3 else kw.get("attn_mask")
    causal = bool(args[5] if len(args) > 5 else kw.get("is_causal", False))
    q_shape, k_shape = em.shape_of(q), em.shape_of(k)
    scale = kw.get("scale") or (args[6] if len(args) > 6 else None) or q_shape[-1] ** -0.5
    rank = len(k_shape)
    perm = [*range(rank - 2), rank - 1, rank - 2]
    scores_shape = (*q_shape[:-1], k_shape[-2])
    kt_shape = (*k_shape[:-2], k_shape[-1], k_shape[-2])
    p = n.name
    em.node("transpose", [em.ref(k)], {"perm": perm}, out=f"{p}.kT", shape=kt_shape, like=n)
    em.node("matmul", [em.ref(q), f"{p}.kT"], {}, out=f"{p}.qk", shape=scores_shape, like=n)
    em.node("mul", [f"{p}.qk", em.const_array(float(scale), em.dtype_of(q))], {},
            out=f"{p}.scaled",
            shape=scores_shape, like=n)
    logits = f"{p}.scaled"
    bias = em.attention_bias(mask, causal, q_shape[-2], k_shape[-2])
    if bias is not None:
        em.node("add", [logits, bias], {}, out=f"{p}.masked", shape=scores_shape, like=n)
        logits = f"{p}.masked"
    em.node("softmax", [logits], {"axis": -1}, out=f"{p}.attn", shape=scores_shape, like=n)
    em.node("matmul", [f"{p}.attn", em.ref(v)], {}, out=n.name, like=n)


@handler("index")
def _index(em, n, args, kw):
    """x[i] along one axis is gather; constant indices on leading axes are gather_nd."""
    present = [(d, t) for d, t in enumerate(args[1]) if t is not None]
    if any(em.dtype_of(t) == "bool" for _, t in present):  # boolean masks select, not gather
        em.node("aten::index", [em.ref(args[0]), *(em.ref(t) for _, t in present)], {},
                out=n.name, like=n)
        return
    if len(present) == 1:
        d, t = present[0]
        em.node("gather", [em.ref(args[0]), em.ref(t)], {"axis": d}, out=n.name, like=n)
        return
    consts = [em.constant_value(t) for _, t in present]
    leading = [d for d, _ in present] == list(range(len(present)))
    if not leading or any(c is None for c in consts):
        em.node("aten::index", [em.ref(args[0]), *(em.ref(t) for _, t in present)], {},
                out=n.name, like=n)
        return
    stacked = np.stack(np.broadcast_arrays(*consts), axis=-1).astype(np.int64)
    em.node("gather_nd", [em.ref(args[0]), em.const_array(stacked, "int64")], {}, out=n.name,
            like=n)


from bwsk.frontends import aten_conv, aten_elementwise  # noqa: E402, F401 - registers handlers

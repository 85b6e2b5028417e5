"""Which ATen call torch.export records for each torch function and tensor method a
forward calls (the vocabulary of ``torch_fx``).

Each rule receives the builder and the call's arguments (fx nodes for tensors) and returns
what ``builder.call`` built. Leaf modules need no rules of their own: their ``forward`` calls
the ``torch.nn.functional`` function these rules map (eval mode). Arguments a rule does not
take, in-place updates and training-mode calls are refused, never approximated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

aten = torch.ops.aten


class Refused(Exception):
    """The recording cannot capture this module faithfully; torch.export must."""


FUNCTIONS: dict[Any, Callable[..., Any]] = {}
METHODS: dict[str, Callable[..., Any]] = {}


def rule_for(func: Any, method: str | None) -> Callable[..., Any] | None:
    """The rule for a torch function, or for the tensor method named ``method``."""
    return METHODS.get(method) if method is not None else FUNCTIONS.get(func)


def function(*targets: Any, method: str | None = None):
    def register(fn):
        for t in targets:
            FUNCTIONS[t] = fn
        if method:
            METHODS[method] = fn
        return fn
    return register


def _pair(value: Any, rank: int) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value] * rank


def _no_inplace(inplace: bool) -> None:
    if inplace:
        raise Refused("an in-place call")


def _is_tensor(x: Any) -> bool:
    return isinstance(x, torch.fx.Node)


# --- arithmetic -----------------------------------------------------------------------
def _binary(op):
    def rule(b, x, y):
        if not _is_tensor(x):
            raise Refused(f"{op} with a scalar first")
        return b.call(op, x, y)
    return rule


for _fn, _method, _op in ((torch.add, "add", aten.add.Tensor),
                          (torch.mul, "mul", aten.mul.Tensor),
                          (torch.sub, "sub", aten.sub.Tensor),
                          (torch.div, "div", aten.div.Tensor)):
    function(_fn, method=_method)(_binary(_op))


@function(method="__rsub__")
def _rsub(b, x, y):
    """``c - x``: export records the tensor first."""
    if _is_tensor(y):
        raise Refused("__rsub__ of two tensors")
    return b.call(aten.rsub.Scalar, x, y)


for _name in ("relu", "tanh", "sigmoid", "neg", "exp"):
    _op = getattr(aten, _name).default
    function(getattr(torch, _name), method=_name)(lambda b, x, _op=_op: b.call(_op, x))
for _alias, _same in ((F.tanh, torch.tanh), (F.sigmoid, torch.sigmoid)):
    FUNCTIONS[_alias] = FUNCTIONS[_same]


@function(F.relu)
def _relu(b, x, inplace=False):
    _no_inplace(inplace)
    return b.call(aten.relu.default, x)


@function(torch.pow, method="pow")
def _pow(b, x, exponent):
    """A tensor to a scalar power (GPT-2's spelled-out GELU cubes its input)."""
    if not _is_tensor(x) or _is_tensor(exponent):
        raise Refused("pow other than tensor ** scalar")
    return b.call(aten.pow.Tensor_Scalar, x, exponent)


@function(torch.matmul, method="matmul")
def _matmul(b, x, y):
    return b.call(aten.matmul.default, x, y)


# --- shapes ---------------------------------------------------------------------------
def _shape(shape: tuple) -> list:
    return list(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else list(
        shape)


@function(torch.flatten, method="flatten")
def _flatten(b, x, start_dim=0, end_dim=-1):
    return b.call(aten.flatten.using_ints, x, start_dim, end_dim)


@function(method="unflatten")
def _unflatten(b, x, dim, sizes):
    return b.call(aten.unflatten.int, x, dim, list(sizes))


@function(torch.cat, torch.concat)
def _cat(b, tensors, dim=0):
    return b.call(aten.cat.default, list(tensors), dim)


@function(method="view")
def _view(b, x, *shape):
    return b.call(aten.view.default, x, _shape(shape))


@function(torch.reshape, method="reshape")
def _reshape(b, x, *shape):
    return b.call(aten.reshape.default, x, _shape(shape))


@function(torch.transpose, method="transpose")
def _transpose(b, x, dim0, dim1):
    return b.call(aten.transpose.int, x, dim0, dim1)


@function(torch.permute, method="permute")
def _permute(b, x, *dims):
    return b.call(aten.permute.default, x, _shape(dims))


@function(torch.unsqueeze, method="unsqueeze")
def _unsqueeze(b, x, dim):
    return b.call(aten.unsqueeze.default, x, dim)


@function(torch.squeeze, method="squeeze")
def _squeeze(b, x, dim):
    return b.call(aten.squeeze.dim, x, dim)


# --- reductions and normalisations ------------------------------------------------------
@function(torch.mean, method="mean")
def _mean(b, x, dim, keepdim=False):
    return b.call(aten.mean.dim, x, _pair(dim, 1), keepdim)


@function(torch.sum, method="sum")
def _sum(b, x, dim, keepdim=False):
    return b.call(aten.sum.dim_IntList, x, _pair(dim, 1), keepdim)


@function(F.softmax, torch.softmax, method="softmax")
def _softmax(b, x, dim, _stacklevel=3, dtype=None):
    if dim is None:
        raise Refused("softmax with an implicit dim")
    return b.call(aten.softmax.int, x, dim, dtype)


@function(F.log_softmax)
def _log_softmax(b, x, dim, _stacklevel=3, dtype=None):
    if dim is None:
        raise Refused("log_softmax with an implicit dim")
    return b.call(aten.log_softmax.int, x, dim, dtype)


@function(F.batch_norm)
def _batch_norm(b, x, running_mean, running_var, weight=None, bias=None, training=False,
                momentum=0.1, eps=1e-5):
    if training or running_mean is None:
        raise Refused("batch norm with batch statistics")
    return b.call(aten.batch_norm.default, x, weight, bias, running_mean, running_var, False,
                  0.0 if momentum is None else momentum, eps, torch.backends.cudnn.enabled)


@function(F.layer_norm)
def _layer_norm(b, x, normalized_shape, weight=None, bias=None, eps=1e-5):
    return b.call(aten.layer_norm.default, x, list(normalized_shape), weight, bias, eps,
                  torch.backends.cudnn.enabled)


# --- maps with weights ----------------------------------------------------------------
@function(F.linear)
def _linear(b, x, weight, bias=None):
    return b.call(aten.linear.default, x, weight, bias)


@function(F.embedding)
def _embedding(b, ids, weight, padding_idx=None, max_norm=None, norm_type=2.0,
               scale_grad_by_freq=False, sparse=False):
    if max_norm is not None:
        raise Refused("embedding with max_norm renormalizes its weight")
    padding = -1 if padding_idx is None else padding_idx
    return b.call(aten.embedding.default, weight, ids, padding, scale_grad_by_freq, sparse)


def _conv(rank: int):
    def rule(b, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        op = getattr(aten, f"conv{rank}d")
        if isinstance(padding, str):  # "same"/"valid" is its own overload
            return b.call(op.padding, x, weight, bias, _pair(stride, rank), padding,
                          _pair(dilation, rank), groups)
        return b.call(op.default, x, weight, bias, _pair(stride, rank), _pair(padding, rank),
                      _pair(dilation, rank), groups)
    return rule


for _rank, _fn in ((1, F.conv1d), (2, F.conv2d), (3, F.conv3d)):
    FUNCTIONS[_fn] = _conv(_rank)


# --- activations ----------------------------------------------------------------------
@function(F.gelu)
def _gelu(b, x, approximate="none"):
    return b.call(aten.gelu.default, x, approximate=approximate)


@function(F.silu)
def _silu(b, x, inplace=False):
    _no_inplace(inplace)
    return b.call(aten.silu.default, x)


@function(F.leaky_relu)
def _leaky_relu(b, x, negative_slope=0.01, inplace=False):
    _no_inplace(inplace)
    return b.call(aten.leaky_relu.default, x, negative_slope)


@function(F.hardtanh)
def _hardtanh(b, x, min_val=-1.0, max_val=1.0, inplace=False):
    _no_inplace(inplace)
    return b.call(aten.hardtanh.default, x, min_val, max_val)


@function(F.softplus)
def _softplus(b, x, beta=1.0, threshold=20.0):
    return b.call(aten.softplus.default, x, beta, threshold)


@function(F.elu)
def _elu(b, x, alpha=1.0, inplace=False):
    _no_inplace(inplace)
    return b.call(aten.elu.default, x, alpha)


# --- dropout (inference: the identity, kept as export keeps it) -------------------------
def _dropout(op, rank: int | None = None):
    def rule(b, x, p=0.5, training=True, inplace=False):
        _no_inplace(inplace)
        if training:
            raise Refused("dropout in training mode")
        if rank is not None and len(b.value(x).shape) != rank:
            raise Refused(f"feature dropout on a {len(b.value(x).shape)}-d input")
        return b.call(op, x, float(p), False)
    return rule


FUNCTIONS[F.dropout] = _dropout(aten.dropout.default)
FUNCTIONS[F.alpha_dropout] = _dropout(aten.alpha_dropout.default)
for _rank, _fn in ((3, F.dropout1d), (4, F.dropout2d), (5, F.dropout3d)):
    FUNCTIONS[_fn] = _dropout(aten.feature_dropout.default, _rank)


# --- pooling --------------------------------------------------------------------------
def _max_pool(rank: int):
    def rule(b, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):
        if return_indices:
            raise Refused("max pool returning indices")
        stride = kernel_size if stride is None or stride == [] else stride
        return b.call(getattr(aten, f"max_pool{rank}d").default, x, _pair(kernel_size, rank),
                      _pair(stride, rank), _pair(padding, rank), _pair(dilation, rank),
                      ceil_mode)
    return rule


for _rank, _fn in ((1, F.max_pool1d), (2, F.max_pool2d), (3, F.max_pool3d)):
    FUNCTIONS[_fn] = _max_pool(_rank)


@function(F.avg_pool2d)
def _avg_pool(b, x, kernel_size, stride=None, padding=0, ceil_mode=False,
              count_include_pad=True, divisor_override=None):
    stride = kernel_size if stride is None or stride == [] else stride
    return b.call(aten.avg_pool2d.default, x, _pair(kernel_size, 2), _pair(stride, 2),
                  _pair(padding, 2), ceil_mode, count_include_pad, divisor_override)


@function(F.adaptive_avg_pool2d)
def _adaptive_avg_pool(b, x, output_size):
    return b.call(aten.adaptive_avg_pool2d.default, x, _pair(output_size, 2))


# --- transformers' attention blocks -----------------------------------------------------
@function(torch.addmm)
def _addmm(b, bias, x, weight, *, beta=1, alpha=1):
    """GPT-2's Conv1D: bias + x @ weight."""
    return b.call(aten.addmm.default, bias, x, weight, beta=beta, alpha=alpha)


@function(method="split")
def _split(b, x, split_size, dim=0):
    if isinstance(split_size, (list, tuple)):
        return b.call(aten.split_with_sizes.default, x, list(split_size), dim)
    return b.call(aten.split.Tensor, x, split_size, dim)


@function(method="contiguous")
def _contiguous(b, x, memory_format=torch.contiguous_format):
    """The same values: export records nothing for it."""
    if memory_format is not torch.contiguous_format:
        raise Refused(f"contiguous({memory_format})")
    return x


@function(method="to")
def _to(b, x, *args, **kwargs):
    """A dtype change is a cast; a move to the device the tensor is on is the identity."""
    value = b.value(x)
    target = value.to(*_no_nodes(args), **kwargs)  # only metadata is read from the result
    if target.device != value.device or kwargs.get("copy"):
        raise Refused("a copy or a move to another device")
    if target.dtype == value.dtype:
        return x
    return b.call(aten.to.dtype, x, target.dtype)


def _no_nodes(args: tuple) -> tuple:
    if any(_is_tensor(a) for a in args):
        raise Refused("to(another tensor)")
    return args


@function(F.scaled_dot_product_attention)
def _sdpa(b, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
          enable_gqa=False):
    if dropout_p:
        raise Refused("attention dropout in training mode")
    return b.call(aten.scaled_dot_product_attention.default, q, k, v, attn_mask, 0.0,
                  is_causal, scale=scale, enable_gqa=enable_gqa)


@function(method="__getitem__")
def _getitem(b, x, index):
    """Basic indexing as export records it, left to right: a narrowing slice is
    ``aten.slice``, an int ``aten.select``, None ``aten.unsqueeze``; tensor indices refused."""
    index = index if isinstance(index, tuple) else (index,)
    consuming = sum(1 for i in index if i is not None and i is not Ellipsis)
    if index.count(Ellipsis) > 1 or any(
            isinstance(i, bool) or not (i is None or i is Ellipsis or isinstance(i, (int, slice)))
            for i in index):
        raise Refused("indexing other than basic indexing (slices, ints, None, ...)")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        rank = len(b.value(x).shape)
        index = index[:at] + (slice(None),) * (rank - consuming) + index[at + 1:]
    dim = 0
    for i in index:
        if i is None:
            x = b.call(aten.unsqueeze.default, x, dim)
        elif isinstance(i, int):
            x = b.call(aten.select.int, x, dim, i)
            continue
        elif i.start not in (None, 0) or i.stop is not None or i.step not in (None, 1):
            x = b.call(aten.slice.Tensor, x, dim, 0 if i.start is None else i.start,
                       2**63 - 1 if i.stop is None else i.stop, 1 if i.step is None else i.step)
        dim += 1
    return x


@function(torch.argmax, method="argmax")
def _argmax(b, x, dim=None, keepdim=False):
    return b.call(aten.argmax.default, x, dim, keepdim)


@function(torch.max, method="max")
def _max(b, x, dim=None, keepdim=False):
    if dim is None or _is_tensor(dim):
        raise Refused("max other than along a dim")
    return b.call(aten.max.dim, x, dim, keepdim)


@function(torch.cumsum, method="cumsum")
def _cumsum(b, x, dim, *, dtype=None):
    return b.call(aten.cumsum.default, x, dim, dtype=dtype)


@function(F.one_hot)
def _one_hot(b, x, num_classes=-1):
    return b.call(aten.one_hot.default, x, num_classes)


for _method, _scalar, _tensor in (("le", aten.le.Scalar, aten.le.Tensor),
                                  ("lt", aten.lt.Scalar, aten.lt.Tensor),
                                  ("ge", aten.ge.Scalar, aten.ge.Tensor),
                                  ("gt", aten.gt.Scalar, aten.gt.Tensor),
                                  ("eq", aten.eq.Scalar, aten.eq.Tensor)):
    function(getattr(torch, _method), method=_method)(
        lambda b, x, y, _s=_scalar, _t=_tensor: b.call(_t if _is_tensor(y) else _s, x, y))


@function(F.rms_norm)
def _rms_norm(b, x, normalized_shape, weight=None, eps=None):
    return b.call(aten.rms_norm.default, x, list(normalized_shape), weight, eps)


@function(torch.where)
def _where(b, condition, x, y):
    """T5's masked position bias: where(mask, bias, minimum)."""
    if not _is_tensor(x):
        raise Refused("where with a scalar first branch")
    op = aten.where.self if _is_tensor(y) else aten.where.ScalarOther
    return b.call(op, condition, x, y)


# tensors whose values depend only on another tensor's shape: constants at fixed shapes
SHAPE_ONLY = frozenset({torch.ones_like, torch.zeros_like, torch.full_like})
SHAPE_ONLY_METHODS = frozenset({"new_ones", "new_zeros", "new_full"})

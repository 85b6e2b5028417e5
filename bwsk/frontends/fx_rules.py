"""Which ATen call torch.export records for each leaf module, torch function and tensor
method that an fx trace shows (the vocabulary of ``torch_fx``).

Each rule receives the builder and the call's arguments (fx nodes for tensors) and returns
what ``builder.call`` built. Modules are matched by exact type: a subclass may override
``forward``, so it is traced through or refused, never guessed. Rules mirror what the
``torch.nn.functional`` call inside the module's ``forward`` passes (eval mode).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

aten = torch.ops.aten



class Refused(Exception):
    """The fx route cannot capture this module faithfully; torch.export must."""


MODULES: dict[type, Callable[..., Any]] = {}
FUNCTIONS: dict[Any, Callable[..., Any]] = {}
METHODS: dict[str, Callable[..., Any]] = {}


def _pair(value: Any, rank: int) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value] * rank


def module(*types: type):
    def register(fn):
        for t in types:
            MODULES[t] = fn
        return fn
    return register


@module(nn.Linear)
def _linear(b, m, x):
    return b.call(aten.linear.default, x, b.tensor(m.weight), b.tensor(m.bias))


_CONVS = {nn.Conv1d: aten.conv1d.default, nn.Conv2d: aten.conv2d.default,
          nn.Conv3d: aten.conv3d.default}


@module(*_CONVS)
def _conv(b, m, x):
    if m.padding_mode != "zeros":
        raise Refused(f"padding_mode {m.padding_mode}")
    op = _CONVS[type(m)]
    padding = list(m.padding)
    if isinstance(m.padding, str):  # "same"/"valid" is its own overload
        op, padding = getattr(aten, op.overloadpacket.__name__).padding, m.padding
    return b.call(op, x, b.tensor(m.weight), b.tensor(m.bias), list(m.stride), padding,
                  list(m.dilation), m.groups)


@module(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
def _batch_norm(b, m, x):
    if m.training or m.running_mean is None:
        raise Refused("batch norm with batch statistics")
    momentum = 0.0 if m.momentum is None else m.momentum
    return b.call(aten.batch_norm.default, x, b.tensor(m.weight), b.tensor(m.bias),
                  b.tensor(m.running_mean), b.tensor(m.running_var), False, momentum, m.eps,
                  torch.backends.cudnn.enabled)


@module(nn.LayerNorm)
def _layer_norm(b, m, x):
    return b.call(aten.layer_norm.default, x, list(m.normalized_shape), b.tensor(m.weight),
                  b.tensor(m.bias), m.eps, torch.backends.cudnn.enabled)


@module(nn.Embedding)
def _embedding(b, m, ids):
    if m.max_norm is not None:
        raise Refused("embedding with max_norm renormalizes its weight")
    padding = -1 if m.padding_idx is None else m.padding_idx
    return b.call(aten.embedding.default, b.tensor(m.weight), ids, padding,
                  m.scale_grad_by_freq, m.sparse)


@module(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
def _dropout(b, m, x):
    op = {nn.Dropout: aten.dropout.default, nn.AlphaDropout: aten.alpha_dropout.default}.get(
        type(m), aten.feature_dropout.default)
    return b.call(op, x, float(m.p), False)


@module(nn.Identity)
def _identity(b, m, x):
    return x


@module(nn.Flatten)
def _flatten_module(b, m, x):
    return b.call(aten.flatten.using_ints, x, m.start_dim, m.end_dim)


@module(nn.Unflatten)
def _unflatten(b, m, x):
    return b.call(aten.unflatten.int, x, m.dim, list(m.unflattened_size))


_POINTWISE = {nn.ReLU: aten.relu.default, nn.Tanh: aten.tanh.default,
              nn.Sigmoid: aten.sigmoid.default, nn.SiLU: aten.silu.default}


@module(*_POINTWISE)
def _pointwise(b, m, x):
    return b.call(_POINTWISE[type(m)], x)


@module(nn.GELU)
def _gelu_module(b, m, x):
    return b.call(aten.gelu.default, x, approximate=m.approximate)


@module(nn.LeakyReLU)
def _leaky_relu(b, m, x):
    return b.call(aten.leaky_relu.default, x, m.negative_slope)


@module(nn.Hardtanh)
def _hardtanh(b, m, x):
    return b.call(aten.hardtanh.default, x, m.min_val, m.max_val)


@module(nn.Softplus)
def _softplus(b, m, x):
    return b.call(aten.softplus.default, x, m.beta, m.threshold)


@module(nn.ELU)
def _elu(b, m, x):
    return b.call(aten.elu.default, x, m.alpha)


@module(nn.Softmax, nn.LogSoftmax)
def _softmax_module(b, m, x):
    op = aten.softmax.int if type(m) is nn.Softmax else aten.log_softmax.int
    if m.dim is None:
        raise Refused("softmax with an implicit dim")
    return b.call(op, x, m.dim)


@module(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
def _max_pool(b, m, x):
    rank = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}[type(m)]
    if m.return_indices:
        raise Refused("max pool returning indices")
    op = getattr(aten, f"max_pool{rank}d").default
    return b.call(op, x, _pair(m.kernel_size, rank), _pair(m.stride, rank),
                  _pair(m.padding, rank), _pair(m.dilation, rank), m.ceil_mode)


@module(nn.AvgPool2d)
def _avg_pool(b, m, x):
    return b.call(aten.avg_pool2d.default, x, _pair(m.kernel_size, 2), _pair(m.stride, 2),
                  _pair(m.padding, 2), m.ceil_mode, m.count_include_pad, m.divisor_override)


@module(nn.AdaptiveAvgPool2d)
def _adaptive_avg_pool(b, m, x):
    return b.call(aten.adaptive_avg_pool2d.default, x, _pair(m.output_size, 2))


# --- functions and methods ------------------------------------------------------------
def function(*targets: Any, method: str | None = None):
    def register(fn):
        for t in targets:
            FUNCTIONS[t] = fn
        if method:
            METHODS[method] = fn
        return fn
    return register


def _binary(op, swapped=None):
    """x op y as export records it: the tensor first where the op commutes."""
    def rule(b, x, y):
        if isinstance(x, torch.fx.Node):
            return b.call(op, x, y)
        if swapped is None:
                raise Refused(f"{op} with a scalar first")
        return b.call(swapped, y, x)
    return rule


for _fn, _method, _op, _swap in (
        ((operator.add, torch.add), "add", aten.add.Tensor, aten.add.Tensor),
        ((operator.mul, torch.mul), "mul", aten.mul.Tensor, aten.mul.Tensor),
        ((operator.sub, torch.sub), "sub", aten.sub.Tensor, aten.rsub.Scalar),
        ((operator.truediv, torch.div), "div", aten.div.Tensor, None)):
    function(*_fn, method=_method)(_binary(_op, _swap))

for _name in ("relu", "tanh", "sigmoid", "neg", "exp"):
    _op = getattr(aten, _name).default
    function(getattr(torch, _name), method=_name)(lambda b, x, _op=_op: b.call(_op, x))
FUNCTIONS[operator.neg] = FUNCTIONS[torch.neg]
for _alias, _same in ((F.relu, torch.relu), (F.tanh, torch.tanh), (F.sigmoid, torch.sigmoid)):
    FUNCTIONS[_alias] = FUNCTIONS[_same]


@function(torch.pow, operator.pow, method="pow")
def _pow(b, x, exponent):
    """A tensor to a scalar power (GPT-2's spelled-out GELU cubes its input)."""
    if not isinstance(x, torch.fx.Node) or isinstance(exponent, torch.fx.Node):
        raise Refused("pow other than tensor ** scalar")
    return b.call(aten.pow.Tensor_Scalar, x, exponent)


@function(torch.flatten, method="flatten")
def _flatten(b, x, start_dim=0, end_dim=-1):
    return b.call(aten.flatten.using_ints, x, start_dim, end_dim)


@function(torch.cat, torch.concat)
def _cat(b, tensors, dim=0):
    return b.call(aten.cat.default, list(tensors), dim)


@function(torch.matmul, operator.matmul, method="matmul")
def _matmul(b, x, y):
    return b.call(aten.matmul.default, x, y)


def _shape(shape: tuple) -> list:
    return list(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else list(
        shape)


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


@function(F.gelu)
def _gelu(b, x, approximate="none"):
    return b.call(aten.gelu.default, x, approximate=approximate)


@function(F.softmax, torch.softmax, method="softmax")
def _softmax(b, x, dim, _stacklevel=3, dtype=None):
    if dtype is not None:
        raise Refused("softmax with a dtype")
    return b.call(aten.softmax.int, x, dim)


@function(torch.mean, method="mean")
def _mean(b, x, dim, keepdim=False):
    return b.call(aten.mean.dim, x, _pair(dim, 1), keepdim)


@function(torch.sum, method="sum")
def _sum(b, x, dim, keepdim=False):
    return b.call(aten.sum.dim_IntList, x, _pair(dim, 1), keepdim)


@function(torch.unsqueeze, method="unsqueeze")
def _unsqueeze(b, x, dim):
    return b.call(aten.unsqueeze.default, x, dim)


@function(torch.squeeze, method="squeeze")
def _squeeze(b, x, dim):
    return b.call(aten.squeeze.dim, x, dim)


@function(F.dropout)
def _dropout_function(b, x, p=0.5, training=True, inplace=False):
    if training or inplace:
        raise Refused("dropout in training mode")
    return b.call(aten.dropout.default, x, float(p), False)


@function(F.silu)
def _silu(b, x, inplace=False):
    return b.call(aten.silu.default, x)


@function(F.leaky_relu)
def _leaky_relu_function(b, x, negative_slope=0.01, inplace=False):
    return b.call(aten.leaky_relu.default, x, negative_slope)


@function(F.linear)
def _linear_function(b, x, weight, bias=None):
    """A bare nn.Linear traced as the root: its forward is this call."""
    return b.call(aten.linear.default, x, weight, bias)


def _conv_function(rank: int):
    def rule(b, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        op = getattr(aten, f"conv{rank}d")
        if isinstance(padding, str):
            return b.call(op.padding, x, weight, bias, _pair(stride, rank), padding,
                          _pair(dilation, rank), groups)
        return b.call(op.default, x, weight, bias, _pair(stride, rank), _pair(padding, rank),
                      _pair(dilation, rank), groups)
    return rule


for _rank, _fn in ((1, F.conv1d), (2, F.conv2d), (3, F.conv3d)):
    FUNCTIONS[_fn] = _conv_function(_rank)

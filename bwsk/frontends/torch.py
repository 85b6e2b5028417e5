"""PyTorch frontend: an nn.Module becomes a bwsk Graph through ``torch.export``, or through
one recorded forward pass where that captures it (``torch_fx``: the same ATen calls, in an fx
graph).

The ATen graph is walked once. Everything that does not depend on the user's
inputs (parameters, masks built from positions, shape arithmetic) is evaluated and becomes
a constant; everything else is mapped onto bwsk's atoms by ``aten_atoms``. Parameters and
buffers keep their fully qualified names; each node's ``scope`` is its module path.
Activations written out op by op (GPT-2's tanh GELU) are fused into their atom (``fuse``).
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import numpy as np
import torch
from torch import fx

from bwsk.errors import UnsupportedModelError
from bwsk.frontends import aten_atoms as A
from bwsk.frontends.fuse import fuse_tanh_gelu
from bwsk.frontends.torch_export import capture
from bwsk.ir import Dim, Graph, Node, Value


def graph_of(module: torch.nn.Module, example_inputs: Any = None, *,
             fold_parameters: bool = True, how: str = "auto") -> Graph:
    """The graph IR of ``module`` traced on ``example_inputs`` (a sensible default if None).

    With ``fold_parameters`` False, computations on a trainable parameter that do not depend
    on the inputs (position embeddings looked up at fixed positions) stay nodes reading the
    parameter by name, so a planner sees its gradient; buffers, literals and frozen
    parameters still fold. ``how`` picks the capture (``torch_export.capture``): both routes
    give the same graph, the fx recording in milliseconds where it captures the module."""
    program, names, _ = capture(module, example_inputs, how)
    return graph_of_program(module, program, names, fold_parameters)


def graph_of_program(module: torch.nn.Module, program: Any, names: dict[str, str],
                     fold_parameters: bool = True) -> Graph:
    """The graph IR of a captured ``program`` (what ``torch_export.capture`` returns)."""
    emitter = Emitter(program, names, fold_parameters)
    emitter.run()
    nodes = fuse_tanh_gelu(emitter.nodes, emitter.values, emitter.outputs)
    return Graph(type(module).__name__, emitter.inputs, emitter.outputs, emitter.values,
                 nodes, source=module)


def term_of(module: torch.nn.Module, example_inputs: Any = None):
    """The normalized combinator term of ``module`` (identical blocks shared)."""
    from bwsk.lower import lower

    return lower(graph_of(module, example_inputs))


@functools.cache
def _np_dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _onnx_dtype(dtype: torch.dtype) -> int:
    """The ONNX TensorProto element type (Cast's ``to``) of a torch dtype."""
    import onnx

    np_dtype = np.dtype(_np_dtype(dtype)) if dtype != torch.bfloat16 else None
    if np_dtype is None:
        return onnx.TensorProto.BFLOAT16
    return onnx.helper.np_dtype_to_tensor_dtype(np_dtype)


@functools.cache
def _numpy_dtype_name(dtype: np.dtype) -> str:
    return dtype.name


def _dtype_name(array: np.ndarray) -> str:
    """``array.dtype.name``, looked up once per dtype (numpy computes it in Python)."""
    return _numpy_dtype_name(array.dtype)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy view of ``t`` (weights are not copied: a model's graph costs no extra memory)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()


class Emitter:
    """Walks an ExportedProgram, folding constants and emitting bwsk nodes."""

    def __init__(self, exported, fqn_of: dict[str, str], fold_parameters: bool = True):
        self.ep = exported
        self.fqn_of = fqn_of  # placeholder name -> parameter/buffer FQN
        self._fqns = set(fqn_of.values())
        trained = {fqn for fqn in exported.graph_signature.parameters
                   if exported.state_dict[fqn].requires_grad}
        self.unfolded = set() if fold_parameters else {  # placeholders that must not fold
            name for name, fqn in fqn_of.items() if fqn in trained}
        self.values: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.consts: dict[str, torch.Tensor] = {}  # fx name -> value of a constant node
        self.const_name: dict[str, str] = {}  # fx name -> Value name of a materialized const
        self.alias: dict[str, str] = {}  # fx name -> value name it stands for
        self._counter = 0

    # --- the walk -------------------------------------------------------------------
    def run(self) -> None:
        state = {**self.ep.state_dict, **self.ep.constants}
        for n in self.ep.graph.nodes:
            if n.op == "placeholder":
                self._placeholder(n, state)
            elif n.op == "call_function":
                self._call(n)
            elif n.op == "output":
                flat = torch.utils._pytree.tree_leaves(n.args[0])
                self.outputs = [self.ref(x) for x in flat if isinstance(x, fx.Node)]

    def _placeholder(self, n: fx.Node, state: dict[str, Any]) -> None:
        fqn = self.fqn_of.get(n.name)
        if fqn is not None:
            self.consts[n.name] = state[fqn]
            self.const_name[n.name] = fqn
            return
        value = n.meta.get("val")
        if not isinstance(value, torch.Tensor):
            raise UnsupportedModelError(f"input {n.name!r} is not a tensor; pass tensors only")
        self.values[n.name] = Value(n.name, self.shape_of_value(value), _np_dtype(value.dtype))
        self.inputs.append(n.name)

    def _call(self, n: fx.Node) -> None:
        name = A.aten_name(n.target)
        if n.target is operator.getitem:
            self._getitem(n)
        elif not _has_tensor_result(n):
            return  # guards on symbolic sizes (sym_size, _assert_scalar): no data flows
        elif self._is_constant(n, name):
            self.consts[n.name] = self._evaluate(n)
        elif name in A.ALIASES:
            self._alias(n)
        elif name in A.HANDLERS:
            A.HANDLERS[name](self, n, n.args, dict(n.kwargs))
        elif name in A.SIMPLE:
            self.node(A.SIMPLE[name], [self.ref(a) for a in n.args], {}, out=n.name, like=n)
        else:
            self.unknown(n)

    def _is_constant(self, n: fx.Node, name: str) -> bool:
        deps = n.all_input_nodes
        if any(d.name in self.unfolded for d in deps):
            return False
        if all(d.name in self.consts for d in deps):
            return True
        return name in A.SHAPE_ONLY and all(
            all(isinstance(s, int) for s in getattr(d.meta.get("val"), "shape", (None,)))
            for d in deps)

    def _evaluate(self, n: fx.Node) -> Any:
        def value(x: fx.Node):
            if x.name in self.consts:
                return self.consts[x.name]
            meta = x.meta["val"]  # a shape-only op on a variable: any tensor of that shape
            return torch.zeros(meta.shape, dtype=meta.dtype)

        args, kwargs = fx.node.map_arg((n.args, n.kwargs), value)
        with torch.no_grad():
            return n.target(*args, **kwargs)

    def _getitem(self, n: fx.Node) -> None:
        parent, index = n.args
        if parent.name in self.consts:
            self.consts[n.name] = self.consts[parent.name][index]
        elif n.name not in self.values:
            raise UnsupportedModelError(
                f"{A.aten_name(parent.target)} returns several results; only some are mapped")

    def _alias(self, n: fx.Node) -> None:
        source = n.args[0]
        if not isinstance(source, fx.Node):
            return  # _assert_tensor_metadata and friends have no result
        meta = n.meta.get("val")
        if isinstance(meta, torch.Tensor) and meta.dtype != source.meta["val"].dtype:
            self.node("cast", [self.ref(source)], {"to": _onnx_dtype(meta.dtype)}, out=n.name,
                      like=n)
        else:
            self.alias[n.name] = self.ref(source)

    def _scalar_attrs(self, n: fx.Node) -> dict[str, Any]:
        return {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                for k, v in n.kwargs.items() if v is not None and not isinstance(v, fx.Node)}

    # --- what handlers call ---------------------------------------------------------
    def is_tensor(self, x: Any) -> bool:
        return isinstance(x, fx.Node)

    def ref(self, x: Any) -> str:
        """The Value name for an argument; constants and scalars are materialized lazily."""
        if x is None:
            return ""
        if not isinstance(x, fx.Node):
            return self.const_array(x, "bool" if isinstance(x, bool) else
                                    "int64" if isinstance(x, int) else "float32")
        if x.name in self.alias:
            return self.alias[x.name]
        if x.name in self.consts:
            name = self.const_name.setdefault(x.name, x.name)
            if name not in self.values:
                array = _to_numpy(torch.as_tensor(self.consts[x.name]))
                self.values[name] = Value(name, tuple(array.shape), _dtype_name(array), array)
            return name
        return x.name

    def dtype_of(self, x: Any) -> str:
        value = x.meta.get("val") if isinstance(x, fx.Node) else None
        if isinstance(value, (list, tuple)):
            value = value[0]
        return _np_dtype(value.dtype) if isinstance(value, torch.Tensor) else "float32"

    def constant_value(self, x: Any) -> np.ndarray | None:
        """The value of a constant argument, None if it depends on the inputs."""
        if not isinstance(x, fx.Node) or x.name not in self.consts:
            return None
        return _to_numpy(torch.as_tensor(self.consts[x.name]))

    def operand(self, x: Any, dtype: str) -> str:
        """``x`` as an operand of dtype ``dtype`` (torch promotes implicitly, ONNX does not)."""
        if not isinstance(x, fx.Node):
            return self.const_array(x, dtype)
        name = self.ref(x)
        value = self.values[name]
        if value.dtype == dtype:
            return name
        if value.is_const:
            return self.const_array(value.const.astype(dtype), dtype)
        cast = f"{name}.as_{dtype}"
        if cast not in self.values:
            self.node("cast", [name], {"to": _onnx_dtype(getattr(torch, dtype))}, out=cast,
                      like=x, dtype=dtype)
        return cast

    def transposed(self, w: fx.Node) -> str:
        """wᵀ for a linear layer: a named constant when w is one, else a transpose node."""
        name = self.ref(w)
        value = self.values[name]
        if value.is_const and value.const.ndim == 2:
            t_name = f"{name}.T"
            if t_name not in self.values:
                array = value.const.T  # a view
                self.values[t_name] = Value(t_name, tuple(array.shape), _dtype_name(array), array)
            return t_name
        shape = tuple(reversed(value.shape)) if value.shape else None
        return self.node("transpose", [name], {"perm": [1, 0]}, out=f"{name}.T", like=w,
                         shape=shape)

    def const_array(self, data: Any, dtype: str) -> str:
        array = np.asarray(data, dtype=dtype)
        self._counter += 1
        name = f"c{self._counter}"
        while name in self.values or name in self._fqns:  # a parameter named c3
            self._counter += 1
            name = f"c{self._counter}"
        self.values[name] = Value(name, tuple(array.shape), _dtype_name(array), array)
        return name

    def shape_of_value(self, value: Any) -> tuple[Dim, ...]:
        return tuple(int(d) if isinstance(d, int) else str(d) for d in value.shape)

    def shape_of(self, x: Any) -> tuple[Dim, ...]:
        if isinstance(x, fx.Node):
            return self.shape_of_value(x.meta["val"])
        return ()

    def multi_outputs(self, n: fx.Node, count: int) -> list[str]:
        """Output names for a multi-result op: its getitem users' names where they exist."""
        names = [f"{n.name}.{i}" for i in range(count)]
        for user in n.users:
            if user.target is operator.getitem:
                names[user.args[1]] = user.name
        return names

    def node(self, op: str, inputs: list[str], attrs: dict[str, Any], *, out: str | list[str],
             like: fx.Node, shape: Any = "meta", dtype: str | None = None) -> str:
        outs = [out] if isinstance(out, str) else list(out)
        meta = like.meta.get("val")
        metas = meta if isinstance(meta, (list, tuple)) else [meta] * len(outs)
        for name, m in zip(outs, metas, strict=False):
            if shape != "meta":
                s = shape
            else:
                s = self.shape_of_value(m) if isinstance(m, torch.Tensor) else None
            d = dtype or (_np_dtype(m.dtype) if isinstance(m, torch.Tensor) else "float32")
            self.values[name] = Value(name, tuple(s) if s is not None else None, d)
        self.nodes.append(Node(outs[0], op, inputs, outs, attrs,
                               source_op=f"aten::{A.aten_name(like.target)}",
                               scope=_scope(like)))
        return outs[0]

    def attention_bias(self, mask: Any, causal: bool, q_len: Any, k_len: Any) -> str | None:
        """The additive bias of an attention mask: 0 where allowed, -inf where masked."""
        bias = None
        if mask is not None:
            if self.is_tensor(mask) and mask.name in self.consts:
                m = torch.as_tensor(self.consts[mask.name])
                if m.dtype == torch.bool:
                    m = torch.zeros(m.shape).masked_fill(~m, float("-inf"))
                bias = self.const_array(_to_numpy(m), "float32")
            elif self.is_tensor(mask) and mask.meta["val"].dtype == torch.bool:
                bias = self.node("where", [self.ref(mask), self.const_array(0.0, "float32"),
                                           self.const_array(-np.inf, "float32")], {},
                                 out=f"{mask.name}.bias", like=mask)
            else:
                bias = self.ref(mask)
        if causal:
            tri = np.triu(np.full((q_len, k_len), -np.inf, dtype=np.float32), k=1)
            causal_name = self.const_array(tri, "float32")
            if bias is None:
                return causal_name
            self.nodes.append(Node(f"{bias}.causal", "add", [bias, causal_name],
                                   [f"{bias}.causal"], {}, "aten::scaled_dot_product_attention"))
            self.values[f"{bias}.causal"] = Value(f"{bias}.causal")
            bias = f"{bias}.causal"
        return bias

    def unknown(self, n: fx.Node) -> None:
        """An op (or variant) with no atom: ``aten::name``, which the analysis calls gray."""
        meta = n.meta.get("val")
        outs = self.multi_outputs(n, len(meta)) if isinstance(meta, (list, tuple)) else n.name
        self.node(f"aten::{A.aten_name(n.target)}",
                  [self.ref(a) for a in n.args if self.is_tensor(a)], self._scalar_attrs(n),
                  out=outs, like=n)


def _has_tensor_result(n: fx.Node) -> bool:
    value = n.meta.get("val")
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, torch.Tensor) for v in value)
    return isinstance(value, torch.Tensor) or "val" not in n.meta


def _scope(n: fx.Node) -> str:
    stack = n.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return path.removeprefix("L['self'].") if path else ""

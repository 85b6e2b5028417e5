"""Capturing a module with ``torch.fx`` instead of ``torch.export``, when fx can trace it.

An fx trace plus two small forward passes cost milliseconds where ``torch.export`` costs tens
to hundreds (it re-traces through the dispatcher with fake tensors). Only the trace's graph
is needed, so the ``GraphModule`` that ``symbolic_trace`` would generate code for is skipped.
The fx graph speaks in leaf modules, torch functions and tensor methods; each is rewritten
into the ATen call that export's pre-dispatch IR records for it (``nn.Linear`` ->
``aten.linear``, ``x + y`` -> ``aten.add.Tensor``, trailing default arguments dropped as
export drops them) and executed on real tensors, so every node carries its value as export's
``meta["val"]`` does. The same walk (``Emitter``) then maps both routes onto atoms: one
graph, whichever route captured it.

The rewrite covers a fixed vocabulary (``fx_rules``). Anything outside it, a trace failure,
or a result that differs from the module's own output raises ``Refused`` (with the reason),
and ``torch_export.capture`` falls back to ``torch.export``.
"""

from __future__ import annotations

import contextlib
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx

from bwsk.frontends import fx_rules
from bwsk.frontends.fx_rules import Refused


@dataclass
class _Signature:
    parameters: list[str]


@dataclass
class FxProgram:
    """The parts of an ``ExportedProgram`` the Emitter reads."""

    graph: fx.Graph
    state_dict: dict[str, torch.Tensor]
    graph_signature: _Signature
    constants: dict[str, Any] = field(default_factory=dict)


def capture_fx(module: torch.nn.Module, args: tuple, kwargs: dict):
    """(FxProgram, {placeholder: FQN}) for ``module`` (in eval mode); raises Refused, saying
    why, where the fx route cannot capture it faithfully."""
    if kwargs or not all(isinstance(a, torch.Tensor) for a in args):
        raise Refused("inputs other than positional tensors")
    try:
        traced = fx.Tracer().trace(module)
    except Exception as exc:  # fx tracing fails in many ways
        raise Refused(f"fx trace: {_first_line(exc)}") from None
    builder = _Builder(module)
    try:
        with _one_thread():
            outputs = builder.run(traced, args)
            with torch.no_grad():
                expected = module(*args)
    except Refused:
        raise
    except Exception as exc:  # a rewritten call that does not run
        raise Refused(f"rewritten graph does not run: {_first_line(exc)}") from None
    if not _same(outputs, expected):
        raise Refused("rewritten graph computes a different result than forward()")
    return builder.program(), builder.fqn_of


@contextlib.contextmanager
def _one_thread():
    """Ops run one at a time on an example input, with Python between them: intra-op threads
    would be put to sleep and woken per op (under load, a scheduler slice each)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def _same(got: Any, expected: Any) -> bool:
    """Leaves equal in structure, shape, dtype and value (the same kernels ran)."""
    got_leaves, got_spec = torch.utils._pytree.tree_flatten(got)
    exp_leaves, exp_spec = torch.utils._pytree.tree_flatten(expected)
    if got_spec != exp_spec:
        return False
    for a, b in zip(got_leaves, exp_leaves, strict=True):
        if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
            if a != b:
                return False
        elif a.shape != b.shape or a.dtype != b.dtype or not torch.allclose(
                a, b, rtol=1e-6, atol=1e-7, equal_nan=True):
            return False
    return True


class _Builder:
    """Rewrites an fx graph into export-style ATen calls, running each on real tensors."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.graph = fx.Graph()
        self.fqn_of: dict[str, str] = {}  # placeholder name -> parameter/buffer FQN
        self.state: dict[str, torch.Tensor] = {}
        self.params: list[str] = []
        self._by_id = {id(t): (name, True) for name, t in module.named_parameters()}
        self._by_id.update({id(t): (name, False) for name, t in module.named_buffers()
                            if id(t) not in self._by_id})
        self._placeholder_of: dict[str, fx.Node] = {}
        self.stack: dict[str, tuple[str, type]] = {}  # nn_module_stack of the node in hand

    def program(self) -> FxProgram:
        return FxProgram(self.graph, self.state, _Signature(self.params))

    def run(self, traced: fx.Graph, args: tuple) -> Any:
        env: dict[fx.Node, Any] = {}
        inputs = iter(args)
        for n in traced.nodes:
            self.stack = dict(n.meta.get("nn_module_stack") or {})
            if n.op == "placeholder":
                env[n] = self._input(str(n.target).lstrip("*"), next(inputs, None))
            elif n.op == "output":
                result = fx.node.map_arg(n.args[0], lambda x: env[x])
                self.graph.output(result)
                return fx.node.map_aggregate(result, self.value)
            else:
                call_args, call_kwargs = fx.node.map_arg((n.args, n.kwargs), lambda x: env[x])
                env[n] = self._call(n, call_args, call_kwargs)
        raise Refused("no output")

    def _input(self, name: str, value: Any) -> fx.Node:
        if not isinstance(value, torch.Tensor):
            raise Refused(f"input {name} has no tensor")
        node = self.graph.placeholder(name)
        node.name = name  # export keeps the argument's name even where fx avoids a builtin
        node.meta["val"] = value
        return node

    def _call(self, n: fx.Node, args: tuple, kwargs: dict) -> Any:
        if n.op == "get_attr":
            return self.tensor(_attr(self.module, n.target))
        if n.op == "call_module":
            sub = self.module.get_submodule(n.target)
            rule = fx_rules.MODULES.get(type(sub))
            if rule is None:
                raise Refused(f"module {type(sub).__name__}")
            self.stack.setdefault(n.target, (n.target, type(sub)))
            return rule(self, sub, *args, **kwargs)
        if n.op == "call_method":
            rule = fx_rules.METHODS.get(n.target)
        else:
            rule = fx_rules.FUNCTIONS.get(n.target)
            if n.target is operator.getitem and not isinstance(args[0], fx.Node):
                return args[0][args[1]]
        if rule is None:
            raise Refused(f"{n.op} {n.target}")
        return rule(self, *args, **kwargs)

    # --- what rules call --------------------------------------------------------------
    def tensor(self, t: Any) -> Any:
        """A parameter or buffer as the placeholder export gives it; None stays None."""
        if t is None:
            return None
        entry = self._by_id.get(id(t))
        if entry is None:
            raise Refused("a tensor attribute that is neither parameter nor buffer")
        fqn, is_param = entry
        node = self._placeholder_of.get(fqn)
        if node is None:
            name = ("p_" if is_param else "b_") + fqn.replace(".", "_")
            with self.graph.inserting_before(next(iter(self.graph.nodes), None)):
                node = self.graph.placeholder(name)
            node.meta["val"] = t
            self.fqn_of[node.name] = fqn
            self.state[fqn] = t
            if is_param:
                self.params.append(fqn)
            self._placeholder_of[fqn] = node
        return node

    def value(self, x: Any) -> Any:
        return x.meta["val"] if isinstance(x, fx.Node) else x

    def call(self, target: torch._ops.OpOverload, *args: Any, **kwargs: Any) -> fx.Node:
        """``target`` applied as export records it: keyword-only arguments by keyword,
        trailing defaults dropped; executed now so the node carries its value."""
        args, kwargs = _normalize(target, args, kwargs)
        real_args, real_kwargs = fx.node.map_aggregate((args, kwargs), self.value)
        with torch.no_grad():
            result = target(*real_args, **real_kwargs)
        node = self.graph.call_function(target, tuple(args), kwargs,
                                        name=target.overloadpacket.__name__)
        node.meta["val"] = result
        if self.stack:
            node.meta["nn_module_stack"] = dict(self.stack)
        if isinstance(result, (tuple, list)):
            return tuple(self._item(node, i, r) for i, r in enumerate(result))
        return node

    def _item(self, parent: fx.Node, index: int, value: Any) -> fx.Node:
        node = self.graph.call_function(operator.getitem, (parent, index), name="getitem")
        node.meta["val"] = value
        return node


def _attr(root: torch.nn.Module, target: str) -> Any:
    owner, _, leaf = target.rpartition(".")
    return getattr(root.get_submodule(owner) if owner else root, leaf)


def _normalize(target, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    schema = target._schema.arguments
    positional = [a for a in schema if not a.kwarg_only]
    merged = list(args) + [kwargs.pop(a.name) for a in positional[len(args):]
                           if a.name in kwargs]
    if len(merged) > len(positional) or any(k not in {a.name for a in schema} for k in kwargs):
        raise Refused(f"arguments of {target}")
    while merged and _is_default(positional[len(merged) - 1], merged[-1]):
        merged.pop()
    keyword = {a.name: kwargs[a.name] for a in schema
               if a.kwarg_only and a.name in kwargs and not _is_default(a, kwargs[a.name])}
    return tuple(merged), keyword


def _is_default(arg, value: Any) -> bool:
    if isinstance(value, fx.Node) or not arg.has_default_value():
        return False
    default = arg.default_value
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return (type(value) is type(default) and value == default) or (value is None and
                                                                    default is None)

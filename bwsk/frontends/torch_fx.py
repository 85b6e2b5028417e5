"""Capturing a module by recording one forward pass into a torch.fx graph.

``torch.export`` re-traces the module through the dispatcher with fake tensors: tens of
milliseconds for a small net, seconds for GPT-2. Here the module's own ``forward`` runs once
on the example inputs under a ``TorchFunctionMode``, which sees every torch function and
tensor method it calls. Each call is rewritten into the ATen call export's pre-dispatch IR
records for it (``fx_rules``: ``F.linear`` -> ``aten.linear``, ``x + y`` ->
``aten.add.Tensor``, trailing default arguments dropped as export drops them), run on the
real tensors, checked against the original call on the same arguments, and appended to an fx
graph whose nodes carry their values as export's ``meta["val"]`` does. The same walk
(``Emitter``) then maps both routes onto atoms: one graph, whichever route captured it.

Why the recording is the function (at the example's shapes, as the analysis is): a tensor
is *variable* when it is an input, a parameter, or the result of a recorded call on a
variable; every other tensor the forward touches (buffers, masks built from positions, a
``ones_like`` of an input) holds the same values for every input, so calls on constants only
run as they are and their results become constants, and values they return to Python
(``bool(mask.all())``) are no input's. A call on a variable needs a rule; anything else raises
``Refused`` with the reason and ``torch_export.capture`` falls back to torch.export: a call
outside the vocabulary, a variable read back into Python (``bool(x)``, ``x.item()``:
data-dependent control flow), an in-place update, random numbers. Reading shapes is
allowed; the graph is specialised to them, as export specialises static shapes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

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
    why, where the recording cannot capture it faithfully."""
    names = _argument_names(module, args, kwargs)
    builder = _Builder(module)
    copies = builder.inputs(names, (*args, *kwargs.values()))
    call_args = copies[:len(args)]
    call_kwargs = dict(zip(kwargs, copies[len(args):], strict=True))
    recorder = _Recorder(builder)
    try:
        with _one_thread(), torch.no_grad(), _module_stack(module, builder), recorder:
            outputs = module(*call_args, **call_kwargs)
    except Refused:
        raise
    except Exception as exc:  # the forward failed under the recording
        raise Refused(recorder.refused or f"forward: {_first_line(exc)}") from None
    if recorder.refused:  # raised inside forward and caught there: still refused
        raise Refused(recorder.refused)
    builder.output(outputs)
    return builder.program(), builder.fqn_of


def _argument_names(module: torch.nn.Module, args: tuple, kwargs: dict) -> list[str]:
    """The forward's names for the positional arguments, then the keywords (export's
    placeholder names); tensors only."""
    if not all(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())):
        raise Refused("inputs other than tensors")
    params = list(inspect.signature(module.forward).parameters.values())
    names = [p.name for p in params[:len(args)]
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(names) < len(args):
        raise Refused("forward takes *args")
    return names + list(kwargs)


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


@contextlib.contextmanager
def _module_stack(root: torch.nn.Module, builder: _Builder):
    """Keeps ``builder.stack`` the path of submodules being called (export's
    ``nn_module_stack``: the root is not on it)."""
    paths = builder.paths

    def enter(module, _args):
        path = paths.get(id(module))
        if path is not None:
            builder.stack[path] = (path, type(module))

    def leave(module, _args, _output):
        builder.stack.pop(paths.get(id(module)), None)

    hooks = (torch.nn.modules.module.register_module_forward_pre_hook(enter),
             torch.nn.modules.module.register_module_forward_hook(leave))
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def _same(got: Any, expected: Any) -> bool:
    """Equal in structure, shape, dtype and value (the same kernels ran: usually bitwise)."""
    if isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor):
        return got.shape == expected.shape and got.dtype == expected.dtype and (
            torch.equal(got, expected) or torch.allclose(got, expected, rtol=1e-6, atol=1e-7,
                                                         equal_nan=True))
    if isinstance(got, (tuple, list)) and isinstance(expected, (tuple, list)):
        return len(got) == len(expected) and all(map(_same, got, expected))
    return type(got) is type(expected) and got == expected


def _map(fn, kind: type, x: Any) -> Any:
    """``x`` with ``fn`` applied to each ``kind`` inside tuples, lists and dicts (a call's
    arguments are shallow: pytree's generality costs more than the call itself)."""
    if isinstance(x, kind):
        return fn(x)
    if isinstance(x, (tuple, list)):
        return type(x)([_map(fn, kind, v) if isinstance(v, (kind, tuple, list, dict)) else v
                        for v in x])
    if isinstance(x, dict):
        return {k: _map(fn, kind, v) for k, v in x.items()}
    return x


# --- what the forward may do besides recorded calls ------------------------------------
_METADATA = frozenset({"size", "dim", "ndimension", "numel", "nelement", "__len__", "stride",
                       "is_floating_point", "is_complex", "is_contiguous", "element_size",
                       "get_device"})
_GRAD_MODE = (torch._C._set_grad_enabled, torch.is_grad_enabled)


def _method_name(func: Any) -> str | None:
    """``add`` for ``Tensor.add`` / ``TensorBase.add``; None for a free function."""
    qualname = getattr(func, "__qualname__", "")
    if qualname.startswith(("TensorBase.", "Tensor.")):
        return qualname.split(".", 1)[1]
    return None


def _reads_metadata(func: Any) -> bool:
    """Shape, dtype and device reads and grad-mode switches: no tensor data reaches Python."""
    if func in _GRAD_MODE:
        return True
    if getattr(func, "__name__", "") == "__get__":  # a property such as .shape or .dtype
        owner = getattr(getattr(func, "__self__", None), "__objclass__", None)
        return owner is torch._C.TensorBase
    return _method_name(func) in _METADATA


class _Recorder(TorchFunctionMode):
    """Rewrites, runs, checks and records each torch call of the forward (see the module
    docstring); the first refusal is kept even where the forward catches the exception."""

    def __init__(self, builder: _Builder):
        super().__init__()
        self.builder = builder
        self.refused: str | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            if _reads_metadata(func):
                return self._metadata(func, args, kwargs)
            return self._record(func, args, kwargs)
        except Refused as why:
            self.refused = self.refused or str(why)
            raise

    def _metadata(self, func, args: tuple, kwargs: dict) -> Any:
        result = func(*args, **kwargs)
        if _tensors(result):
            raise Refused(f"{_name(func)} returns a tensor outside the recording")
        return result

    def _record(self, func, args: tuple, kwargs: dict) -> Any:
        b = self.builder
        tensors = _tensors((args, kwargs))
        if not all(map(b.is_known, tensors)):
            raise Refused(f"{_name(func)} reads a tensor computed outside the recording")
        if func in fx_rules.SHAPE_ONLY or _method_name(func) in fx_rules.SHAPE_ONLY_METHODS or (
                not any(map(b.is_variable, tensors))):
            return self._constant(func, args, kwargs)
        rule = fx_rules.rule_for(func, _method_name(func))
        if rule is None:
            raise Refused(f"{_name(func)} is outside the vocabulary")
        node_args, node_kwargs = _map(b.node_of, torch.Tensor, (args, kwargs))
        try:
            result = _map(b.value, fx.Node, rule(b, *node_args, **node_kwargs))
        except Refused:
            raise
        except Exception as exc:  # a rule whose arguments do not fit, or a call that fails
            raise Refused(f"{_name(func)}: {_first_line(exc)}") from None
        expected = func(*args, **kwargs)
        if not _same(result, expected):
            raise Refused(f"{_name(func)}: the rewritten call computes a different result")
        # a structseq such as max's (values, indices) keeps its type: code reads .values
        return type(expected)(result) if hasattr(expected, "n_fields") else result

    def _constant(self, func, args: tuple, kwargs: dict) -> Any:
        """A call that reads no input and no parameter (a mask from positions, a dtype
        check), or only an input's shape (``ones_like``): its result is a constant, computed
        by the call itself, and any value it returns to Python (``bool(mask.all())``) is the
        same for every input."""
        name = _name(func)
        if "out" in kwargs or any(word in name for word in _RANDOM):
            raise Refused(f"{name} writes to out= or draws random numbers")
        in_place = _method_name(func) and name.endswith("_") and not name.endswith("__")
        if in_place and any(map(self.builder.is_state, _tensors((args, kwargs)))):
            raise Refused(f"{name} updates a buffer in place")  # export functionalizes it
        result = func(*args, **kwargs)
        if in_place:
            for t in _tensors((args, kwargs)):  # updated in place: lifted anew when read
                self.builder.forget(t)
        self.builder.constants(_tensors(result))
        return result


_RANDOM = ("rand", "normal", "bernoulli", "multinomial", "poisson", "exponential_", "uniform_")


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _tensors(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tensors(v)]
    return []


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


class _Builder:
    """The fx graph under construction: export-style ATen calls, each run on real tensors."""

    def __init__(self, module: torch.nn.Module):
        self.graph = fx.Graph()
        self.fqn_of: dict[str, str] = {}  # placeholder name -> parameter/buffer FQN
        self.state: dict[str, torch.Tensor] = {}
        self.params: list[str] = []
        self.paths: dict[int, str] = {}  # id of a submodule -> its path
        self._state_by_id: dict[int, tuple[str, bool]] = {}  # parameters and buffers
        self._constant_name: dict[int, str] = {}  # other constants: attributes, results
        self._lifted = itertools.count()
        for path, sub in module.named_modules(remove_duplicate=False):
            if path:
                self.paths.setdefault(id(sub), path)
            prefix = path + "." if path else ""
            # a tied tensor takes its last name, as export names it (GPT-2: lm_head.weight)
            for is_param, tensors in ((False, sub._buffers), (True, sub._parameters)):
                for name, t in tensors.items():
                    if t is not None:
                        self._state_by_id[id(t)] = (prefix + name, is_param)
            for name, t in vars(sub).items():  # a plain tensor attribute: export's constant
                if isinstance(t, torch.Tensor) and id(t) not in self._state_by_id:
                    self._constant_name[id(t)] = prefix + name
        self._node_by_id: dict[int, fx.Node] = {}  # recorded values are kept alive in meta
        self._variable: set[int] = set()  # ids of inputs and recorded results
        self.consts: dict[str, torch.Tensor] = {}  # lifted constants, export's ``constants``
        self._alive: list[torch.Tensor] = []  # constants' ids stay theirs while recording
        self.stack: dict[str, tuple[str, type]] = {}  # nn_module_stack of the call in hand

    def program(self) -> FxProgram:
        return FxProgram(self.graph, self.state, _Signature(self.params), self.consts)

    def inputs(self, names: list[str], args: tuple) -> tuple:
        """Placeholders for the inputs, and copies of them for the forward to run on (one
        tensor passed twice, or a parameter passed as input, stays two values)."""
        copies = tuple(a.detach().clone() for a in args)
        for name, value in zip(names, copies, strict=True):
            node = self.graph.placeholder(name)
            node.name = name  # export keeps the argument's name even where fx avoids a builtin
            self._record(node, value)
        return copies

    def output(self, outputs: Any) -> None:
        leaves = pytree.tree_leaves(outputs)
        if not leaves or not all(isinstance(x, torch.Tensor) for x in leaves):
            raise Refused("forward returns something other than tensors")
        self.graph.output(pytree.tree_map_only(torch.Tensor, self.node_of, outputs))

    # --- what rules call --------------------------------------------------------------
    def is_variable(self, t: torch.Tensor) -> bool:
        """Whether ``t`` is an input, a parameter, or computed from one by a recorded call
        (everything else the forward reads is a constant: buffers, masks, literals)."""
        entry = self._state_by_id.get(id(t))
        return id(t) in self._variable or (entry is not None and entry[1])

    def is_known(self, t: torch.Tensor) -> bool:
        """Recorded or constant: a tensor computed where the recording cannot see (inside
        ``torch._C.DisableTorchFunction``) might depend on an input, so it is refused."""
        return id(t) in self._variable or id(t) in self._state_by_id or (
            id(t) in self._constant_name)

    def is_state(self, t: torch.Tensor) -> bool:
        return id(t) in self._state_by_id

    def constants(self, tensors: list[torch.Tensor]) -> None:
        """Results of calls on constants only: constants themselves."""
        for t in tensors:
            if id(t) not in self._constant_name:
                self._constant_name[id(t)] = f"lifted_tensor_{next(self._lifted)}"
                self._alive.append(t)

    def forget(self, t: torch.Tensor) -> None:
        """A constant updated in place: read afresh, as a new constant, from now on."""
        self._node_by_id.pop(id(t), None)
        self._state_by_id.pop(id(t), None)
        self._constant_name.pop(id(t), None)
        self.constants([t])

    def node_of(self, t: torch.Tensor) -> fx.Node:
        """The node whose value ``t`` is: an input or recorded result, a parameter or buffer
        (a placeholder named as export names it), or else a lifted constant."""
        node = self._node_by_id.get(id(t))
        if node is not None:
            return node
        if not self.is_known(t):
            raise Refused("a tensor computed outside the recording")
        fqn, is_param = self._state_by_id.get(id(t)) or (self._constant_name[id(t)], None)
        prefix = {True: "p_", False: "b_", None: "c_"}[is_param]
        with self.graph.inserting_before(next(iter(self.graph.nodes), None)):
            node = self.graph.placeholder(prefix + fqn.replace(".", "_"))
        self.fqn_of[node.name] = fqn
        self._node_by_id[id(t)] = node
        if is_param is None:  # a snapshot: the forward may update the tensor in place later
            t = self.consts[fqn] = t.detach().clone()
        else:
            self.state[fqn] = t
        if is_param:
            self.params.append(fqn)
        node.meta["val"] = t
        return node

    def value(self, x: Any) -> Any:
        return x.meta["val"] if isinstance(x, fx.Node) else x

    def call(self, target: torch._ops.OpOverload, *args: Any, **kwargs: Any) -> fx.Node:
        """``target`` applied as export records it: keyword-only arguments by keyword,
        trailing defaults dropped; executed now so the node carries its value."""
        args, kwargs = _normalize(target, args, kwargs)
        real_args, real_kwargs = fx.node.map_aggregate((args, kwargs), self.value)
        result = target(*real_args, **real_kwargs)
        node = self._call_node(target, tuple(args), kwargs, target.overloadpacket.__name__)
        if self.stack:
            node.meta["nn_module_stack"] = dict(self.stack)
        if isinstance(result, (tuple, list)):
            node.meta["val"] = result
            return tuple(self._item(node, i, r) for i, r in enumerate(result))
        return self._record(node, result)

    def _item(self, parent: fx.Node, index: int, value: Any) -> fx.Node:
        node = self._call_node(operator.getitem, (parent, index), {}, "getitem")
        return self._record(node, value)

    def _call_node(self, target: Any, args: tuple, kwargs: dict, name: str) -> fx.Node:
        """``graph.call_function``, arguments set afterwards: torch 2.13's create_node walks
        them with pytree looking for symbolic ints, which a recording (concrete values only)
        never has; the walk was most of a node's cost."""
        node = self.graph.call_function(target, name=name)
        node.args, node.kwargs = args, kwargs
        return node

    def _record(self, node: fx.Node, value: Any) -> fx.Node:
        node.meta["val"] = value
        if isinstance(value, torch.Tensor):
            self._node_by_id[id(value)] = node
            self._variable.add(id(value))
        return node


def _normalize(target, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    positional, keyword_only, names = _schema(target)
    merged = list(args) + [kwargs.pop(name) for name, *_ in positional[len(args):]
                           if name in kwargs]
    if len(merged) > len(positional) or any(k not in names for k in kwargs):
        raise Refused(f"arguments of {target}")
    while merged and _is_default(positional[len(merged) - 1], merged[-1]):
        merged.pop()
    keyword = {arg[0]: kwargs[arg[0]] for arg in keyword_only
               if arg[0] in kwargs and not _is_default(arg, kwargs[arg[0]])}
    return tuple(merged), keyword


@functools.cache
def _schema(target) -> tuple[tuple, tuple, frozenset]:
    """(positional, keyword-only) arguments as (name, has default, default), and all names:
    read from the op's schema once (each read builds new objects)."""
    arguments = target._schema.arguments
    described = [(a.name, a.has_default_value(),
                  a.default_value if a.has_default_value() else None) for a in arguments]
    positional = tuple(d for d, a in zip(described, arguments, strict=True) if not a.kwarg_only)
    keyword_only = tuple(d for d, a in zip(described, arguments, strict=True) if a.kwarg_only)
    return positional, keyword_only, frozenset(a.name for a in arguments)


def _is_default(arg: tuple, value: Any) -> bool:
    _, has_default, default = arg
    if isinstance(value, fx.Node) or not has_default:
        return False
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return (type(value) is type(default) and value == default) or (value is None and
                                                                    default is None)

"""Running models and parts of them on numpy arrays: whole models through onnxruntime (the
reference evaluator when onnxruntime refuses), single nodes through the catalogue's runner."""

from __future__ import annotations

import numpy as np
import onnx

from bwsk.catalogue import run_node
from bwsk.catalogue.layout import concrete
from bwsk.catalogue.run import node_proto, opset_of
from bwsk.errors import UnsupportedModelError
from bwsk.ir import Graph


def random_inputs(graph: Graph, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One sample of every variable input (symbolic dims taken as 2)."""
    out = {}
    for name in graph.inputs:
        value = graph.values[name]
        shape = concrete(value.shape) or ()
        dtype = np.dtype(value.dtype) if value.dtype in np.sctypeDict else np.dtype(np.float32)
        if dtype.kind == "f":
            out[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            out[name] = rng.integers(0, 2, shape).astype(bool)
        else:
            out[name] = rng.integers(0, 2, shape).astype(dtype)
    return out


def to_onnx(graph: Graph) -> onnx.ModelProto:
    """The graph as an ONNX model (used when the frontend kept no ModelProto)."""
    from onnx import helper, numpy_helper

    def info(name):
        v = graph.values[name]
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(v.dtype))
        return helper.make_tensor_value_info(name, elem, None if v.shape is None else list(v.shape))

    used = {x for n in graph.nodes for x in n.inputs if x}
    inits = [
        numpy_helper.from_array(np.asarray(graph.values[n].const), n)
        for n in sorted(used)
        if graph.is_const(n)
    ]
    body = helper.make_graph(
        [node_proto(n) for n in graph.nodes],
        graph.name or "g",
        [info(i) for i in graph.inputs],
        [info(o) for o in graph.outputs],
        inits,
    )
    # graphs from torch carry no opset: 21 is the newest onnxruntime runs everywhere
    opset = (
        opset_of(graph)
        if isinstance(getattr(graph, "source", None), onnx.ModelProto)
        or getattr(graph, "opset", None)
        else 21
    )
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


class Runner:
    """Executes the whole model; built once per analysis (session creation is the cost)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        source = getattr(graph, "source", None)
        self.module = source if source is not None and hasattr(source, "forward") else None
        self.model = source if isinstance(source, onnx.ModelProto) else None
        self._session = None
        self._reference = None

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.module is not None:
            return self._torch(feeds)
        if self.model is None:
            self.model = to_onnx(self.graph)
        names = [o.name for o in self.model.graph.output]
        try:
            return self._ort(feeds)
        except UnsupportedModelError:
            raise
        except Exception:
            pass
        try:
            if self._reference is None:
                from onnx.reference import ReferenceEvaluator

                self._reference = ReferenceEvaluator(self.model)
            return [np.asarray(x) for x in self._reference.run(names, feeds)]
        except Exception as exc:
            raise UnsupportedModelError(
                f"cannot execute {self.graph.name}: {type(exc).__name__}"
            ) from exc

    def _torch(self, feeds):
        """The nn.Module itself on the graph's inputs, in order; outputs flattened."""
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.graph.inputs]
        try:
            with torch.no_grad():
                out = self.module.eval()(*args)
        except Exception as exc:
            raise UnsupportedModelError(f"cannot execute the module: {type(exc).__name__}") from exc
        flat = []
        stack = [out.to_tuple() if hasattr(out, "to_tuple") else out]
        while stack:
            item = stack.pop(0)
            if isinstance(item, (tuple, list)):
                stack[:0] = list(item)
            elif isinstance(item, torch.Tensor):
                flat.append(item.detach().numpy())
        if len(flat) != len(self.graph.outputs):
            raise UnsupportedModelError("module outputs do not match the graph's outputs")
        return flat

    def _ort(self, feeds):
        import onnxruntime as ort

        if self.model is None:
            self.model = to_onnx(self.graph)
        if self._session is None:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            opts.intra_op_num_threads = 1
            model = onnx.ModelProto()
            model.CopyFrom(self.model)
            model.ir_version = min(model.ir_version, 10)  # onnxruntime lags onnx's IR version
            self._session = ort.InferenceSession(
                model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
            )
        wanted = {i.name for i in self._session.get_inputs()}
        return [
            np.asarray(x)
            for x in self._session.run(None, {k: v for k, v in feeds.items() if k in wanted})
        ]


def evaluate(graph: Graph, feeds: dict[str, np.ndarray], wanted: set[str]) -> dict[str, np.ndarray]:
    """Values of ``wanted``, node by node: per-node sessions are cached and take weights as
    inputs, where a prefix model would copy every weight into a new session."""
    env = dict(feeds)
    if wanted <= env.keys():
        return env
    need = set(wanted)
    for node in reversed(graph.nodes):
        if not need.isdisjoint(node.outputs):
            need.update(node.inputs)
            need.discard("")  # an omitted input names no value (nor an omitted output)
    values = graph.values
    for node in graph.nodes:
        if need.isdisjoint(node.outputs) or all(o in env for o in node.outputs if o):
            continue
        outs = run_node(
            graph,
            node,
            [(env.get(x) if x not in values or values[x].const is None else values[x].const)
             if x else None for x in node.inputs],
        )
        env.update({o: v for o, v in zip(node.outputs, outs, strict=False) if o})
    return env


class StepRunner:
    """Executes a small graph (a block) node by node: no session holding its weights."""

    def __init__(self, graph: Graph):
        self.graph = graph

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        env = evaluate(self.graph, feeds, set(self.graph.outputs))
        return [env[o] for o in self.graph.outputs]

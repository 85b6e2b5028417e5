"""Runs one node on numpy arrays with ONNX's reference implementation, so a rule can probe
an operator (which input elements reach the output) and witnesses can be checked per node."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import onnx
from onnx import helper

from bwsk.catalogue import spectral
from bwsk.errors import UnsupportedModelError
from bwsk.ir import Graph, Node, atom_of_onnx


@lru_cache(maxsize=1)
def _onnx_types() -> dict[str, str]:
    return {atom_of_onnx(s.name): s.name for s in onnx.defs.get_all_schemas() if s.domain == ""}


def onnx_type(node: Node) -> tuple[str, str]:
    """(domain, op_type) of ``node``: from its source op when that is ONNX, else its atom."""
    if "::" in node.source_op and not node.source_op.startswith("aten::"):
        domain, op_type = node.source_op.split("::", 1)
        return ("" if domain in ("ai.onnx", "") else domain), op_type
    if node.op in _onnx_types():
        return "", _onnx_types()[node.op]
    raise UnsupportedModelError(f"no ONNX operator for atom {node.op!r} (node {node.name})")


def onnx_attr(key: str, value):
    if isinstance(value, np.ndarray):
        return helper.make_attribute(key, onnx.numpy_helper.from_array(value))
    if isinstance(value, tuple):
        value = list(value)
    return helper.make_attribute(key, value)


def node_proto(node: Node) -> onnx.NodeProto:
    domain, op_type = onnx_type(node)
    proto = helper.make_node(
        op_type, list(node.inputs), list(node.outputs), name=node.name, domain=domain
    )
    proto.attribute.extend(onnx_attr(k, v) for k, v in node.attrs.items())
    return proto


def opset_of(graph: Graph) -> int:
    """The default-domain opset of the model the graph came from (latest when unknown)."""
    if getattr(graph, "opset", None):
        return int(graph.opset)
    source = getattr(graph, "source", None)
    if isinstance(source, onnx.ModelProto):  # (asked per node run: no lookup on a module)
        for imp in source.opset_import:
            if imp.domain in ("", "ai.onnx"):
                return int(imp.version)
    return _newest_opset()


@lru_cache(maxsize=1)
def _newest_opset() -> int:
    return onnx.defs.onnx_opset_version()


@lru_cache(maxsize=4096)
def _evaluator(key: bytes, opset: int):
    from onnx.reference import ReferenceEvaluator

    proto = onnx.NodeProto()
    proto.ParseFromString(key)
    return ReferenceEvaluator(proto, opsets={"": opset})


def _model_bytes(proto: onnx.NodeProto, opset: int, dtypes: tuple[int, ...]) -> bytes:
    inputs = [
        helper.make_tensor_value_info(n, t, None)
        for n, t in zip(proto.input, dtypes, strict=False)
        if n
    ]
    graph = helper.make_graph(
        [proto], "node", inputs, [onnx.ValueInfoProto(name=o) for o in proto.output if o]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return model.SerializeToString()


def _ort_session(model: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=1)
def _ort_max_opset() -> int:
    """The newest default-domain opset this onnxruntime loads (onnx's own may be newer)."""
    identity = helper.make_node("Identity", ["i0"], ["o0"])
    for opset in range(onnx.defs.onnx_opset_version(), 6, -1):
        try:
            _ort_session(_model_bytes(identity, opset, (onnx.TensorProto.FLOAT,)))
            return opset
        except Exception:  # ort refuses opsets newer than it knows; older ones load
            continue
    return 0


@lru_cache(maxsize=1024)
def ort_opset(op_type: str, opset: int) -> int | None:
    """An opset onnxruntime loads under which ``op_type`` has the same definition as under
    ``opset`` (same since-version), so running there changes nothing; None when none is."""
    newest = _ort_max_opset()
    if opset <= newest:
        return opset
    try:
        same = (
            onnx.defs.get_schema(op_type, opset, "").since_version
            == onnx.defs.get_schema(op_type, newest, "").since_version
        )
    except onnx.defs.SchemaError:
        return None
    return newest if same else None


@lru_cache(maxsize=1024)
def _session(key: bytes, opset: int, dtypes: tuple[int, ...]):
    """(session, its output names) for one canonical node, or None when onnxruntime refuses
    it (cached too: a refused session costs as much as a built one)."""
    proto = onnx.NodeProto()
    proto.ParseFromString(key)
    try:
        sess = _ort_session(_model_bytes(proto, opset, dtypes))
    except Exception:  # ort lacks this op, type or attribute: the reference evaluator runs it
        return None
    return sess, [o.name for o in sess.get_outputs()]


@lru_cache(maxsize=64)
def _tensor_type(dtype: np.dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(dtype)


@dataclass(frozen=True)
class Prepared:
    """A node as run alone: its canonical proto (serialized, the key of cached sessions),
    the feed name of each input slot ('' when omitted), its present outputs' names, and
    whether onnxruntime may take it (default domain, no subgraph, no input repeated)."""

    key: bytes
    op_type: str
    feeds: tuple[str, ...]
    outputs: tuple[str, ...]
    ort: bool


_PREPARED: dict[int, tuple[Node, Prepared]] = {}
_PREPARED_MAX = 8192


def prepared(node: Node) -> Prepared:
    """``node`` made runnable, once per node object (frontends never edit a node once built;
    an entry holds its node, so the id it is filed under stays that node's)."""
    hit = _PREPARED.get(id(node))
    if hit is not None:
        return hit[1]
    proto = node_proto(node)
    nested = any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in proto.attribute
    )
    proto = proto if nested else _canonical(proto)
    named = [x for x in node.inputs if x]
    entry = Prepared(
        proto.SerializeToString(),
        proto.op_type,
        tuple(proto.input),
        tuple(o for o in proto.output if o),
        not proto.domain and not nested and len(set(named)) == len(named),
    )
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()
    _PREPARED[id(node)] = (node, entry)
    return entry


def _run_ort(node: Prepared, opset: int, feeds: dict) -> list | None:
    """onnxruntime on one node (fast pooling/conv); None when it cannot take this node."""
    try:
        dtypes = tuple(_tensor_type(feeds[n].dtype) if n in feeds else 0 for n in node.feeds)
        runnable = ort_opset(node.op_type, opset)
        found = None if runnable is None else _session(node.key, runnable, dtypes)
        if found is None:
            return None
        sess, names = found
        out = dict(zip(names, sess.run(None, feeds), strict=False))
        return [out.get(o) for o in node.outputs]
    except Exception:
        return None


def _canonical(proto: onnx.NodeProto) -> onnx.NodeProto:
    """The node with positional value names and no name, so the cached session of an op is
    shared by every layer."""
    rename = {n: f"i{j}" for j, n in enumerate(dict.fromkeys(x for x in proto.input if x))}
    proto.name = ""
    inputs = [rename.get(x, "") for x in proto.input]
    while inputs and not inputs[-1]:  # omitted trailing optionals: onnxruntime 1.31 crashes
        inputs.pop()  # on an explicit "" (LayerNormalization without bias)
    proto.input[:] = inputs
    proto.output[:] = [f"o{j}" if o else "" for j, o in enumerate(proto.output)]
    return proto


def _c_order(x) -> np.ndarray:
    """``x`` in C order: onnxruntime takes a strided view (a transposed weight) at twice the
    cost of the run. Within an analysis the copy of a weight is made once."""
    x = np.asarray(x)
    if x.flags.c_contiguous:
        return x
    if spectral.in_session():
        return spectral.cached("c order", x, np.ascontiguousarray)
    return np.ascontiguousarray(x)


def run_node(graph: Graph, node: Node, inputs: list) -> list[np.ndarray]:
    """The node's outputs on ``inputs`` (None for omitted optional inputs)."""
    ready = prepared(node)
    feeds = {name: _c_order(x) for name, x in zip(ready.feeds, inputs, strict=False)
             if name and x is not None}
    opset = opset_of(graph)
    if ready.ort:
        outs = _run_ort(ready, opset, feeds)
        if outs is not None:
            return [np.asarray(o) for o in outs]
    try:
        outs = _evaluator(ready.key, opset).run(None, feeds)
    except Exception as exc:  # the reference implementation signals bad input in many ways
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UnsupportedModelError(
            f"cannot run node {node.name} ({node.op}): {type(exc).__name__}: {first}"
        ) from exc
    return [np.asarray(o) for o in outs]

"""ONNX frontend: a ModelProto (or file) becomes a bwsk Graph.

Only onnx and numpy are needed here (no torch), so analysing an ONNX file stays light.
Shapes come from ONNX shape inference; initializers, Constant nodes and small all-constant
subgraphs (shape arithmetic, ConstantOfShape weights) become ``Value.const`` arrays.
"""

from __future__ import annotations

import ast
import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from bwsk.errors import UnsupportedModelError
from bwsk.frontends.onnx_fold import fold
from bwsk.ir import Graph, Node, Value, atom_of_onnx

_CONSTANT_ATTRS = ("value", "value_float", "value_floats", "value_int", "value_ints",
                   "value_string", "value_strings", "sparse_value")


def load_onnx(model: str | os.PathLike | onnx.ModelProto | bytes,
              input_shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    """Load an ONNX model into the graph IR; ``input_shapes`` binds symbolic input dims."""
    proto, label = _read(model)
    if input_shapes:
        proto = _copy(proto)  # the caller's ModelProto stays as it was
        _bind_input_shapes(proto, input_shapes)
    if proto.functions:
        with contextlib.suppress(Exception):  # an un-inlinable function stays a custom atom
            proto = onnx.inliner.inline_local_functions(proto)
    inferred = _infer_shapes(proto)
    graph = _graph_of(inferred, label)
    if _has_unknown_shapes(graph):
        _refine_shapes(graph, inferred)
    graph.source = proto
    return graph


def _has_unknown_shapes(graph: Graph) -> bool:
    return any(v.shape is None or not all(isinstance(d, int) for d in v.shape)
               for v in graph.values.values() if not v.is_const)


def _refine_shapes(graph: Graph, proto: onnx.ModelProto) -> None:
    """Infer again with folded constants as initializers: a Reshape fed by folded shape
    arithmetic gets a static output shape that the first pass could not see."""
    g = proto.graph
    produced = {o for n in g.node for o in n.output}
    folded = [v for v in graph.values.values() if v.is_const and v.name in produced
              and v.const.dtype != object]
    if not folded:
        return
    again = _copy(proto)
    del again.graph.value_info[:]
    del again.graph.node[:]
    names = {n.name for n in graph.nodes}
    again.graph.node.extend(n for i, n in enumerate(g.node)
                            if (n.name or f"{n.op_type}_{i}") in names)
    again.graph.initializer.extend(numpy_helper.from_array(v.const, v.name) for v in folded)
    refined = _infer_shapes(again)
    for info in [*refined.graph.value_info, *refined.graph.output]:
        value = graph.values.get(info.name)
        if value is not None and not value.is_const:
            better = _value_of_info(info)
            if better.shape is not None and all(isinstance(d, int) for d in better.shape):
                value.shape = better.shape


def _read(model: Any) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        _check_structure(model, model.graph.name or "model")
        return model, model.graph.name or "model"
    if isinstance(model, bytes):
        return _parse(model, "<bytes>", None), "model"
    path = Path(model)
    if not path.is_file():
        raise UnsupportedModelError(f"{path}: no such file")
    proto = _parse(path.read_bytes(), str(path), path.parent)
    return proto, proto.graph.name or path.stem


def _parse(data: bytes, label: str, base_dir: Path | None) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ...
        raise UnsupportedModelError(
            f"{label} is not a valid ONNX model: {_first_line(exc)}") from None
    _check_structure(proto, label)
    if base_dir is not None:
        _load_external(proto, base_dir, label)
    return proto


def _check_structure(proto: onnx.ModelProto, label: str) -> None:
    """Catch what parses but is no model: empty files, files cut at a field boundary."""
    if not proto.ir_version or not proto.HasField("graph"):
        raise UnsupportedModelError(f"{label} is not a valid ONNX model: no ir_version or graph")
    if not proto.graph.output:
        raise UnsupportedModelError(f"{label} is not a valid ONNX model: graph has no outputs")
    known = {i.name for i in proto.graph.input} | {t.name for t in proto.graph.initializer}
    known |= {t.values.name for t in proto.graph.sparse_initializer}
    for node in proto.graph.node:
        known.update(node.output)
    for node in proto.graph.node:
        undefined = [x for x in node.input if x and x not in known]
        if undefined:
            raise UnsupportedModelError(
                f"{label} is not a valid ONNX model: node {node.name or node.op_type!r} uses "
                f"undefined value {undefined[0]!r}")
    missing = [o.name for o in proto.graph.output if o.name not in known]
    if missing:
        raise UnsupportedModelError(
            f"{label} is not a valid ONNX model: output {missing[0]!r} is never produced")


def _load_external(proto: onnx.ModelProto, base_dir: Path, label: str) -> None:
    from onnx.external_data_helper import _get_all_tensors, load_external_data_for_model

    needed = set()
    for tensor in _get_all_tensors(proto):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            needed.add(location)
    for location in sorted(needed):
        if not (base_dir / location).is_file():
            raise UnsupportedModelError(
                f"{label}: external data file {location!r} not found next to the model")
    if needed:
        try:
            load_external_data_for_model(proto, str(base_dir))
        except Exception as exc:  # onnx raises several types here
            raise UnsupportedModelError(
                f"{label}: cannot read external data: {_first_line(exc)}") from None


def _bind_input_shapes(proto: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> None:
    inputs = {i.name: i for i in proto.graph.input}
    for name, shape in shapes.items():
        if name not in inputs:
            raise UnsupportedModelError(
                f"input_shapes names {name!r}, not an input of the model (inputs: "
                f"{', '.join(inputs)})")
        dims = inputs[name].type.tensor_type.shape.dim
        if dims and len(dims) != len(shape):
            raise UnsupportedModelError(
                f"input_shapes[{name!r}] has rank {len(shape)}, the model says {len(dims)}")
        inputs[name].type.tensor_type.shape.Clear()
        for d in shape:
            inputs[name].type.tensor_type.shape.dim.add().dim_value = int(d)


def _infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Shape inference, best effort; a custom domain missing from opset_import (which
    would stop inference of the whole model) is declared first."""
    declared = {o.domain for o in proto.opset_import}
    missing = {n.domain for n in proto.graph.node} - declared - {"ai.onnx"}
    if missing:
        proto = _copy(proto)
        for domain in sorted(missing):
            proto.opset_import.add(domain=domain, version=1)
    try:
        return onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:  # shapes stay unknown where inference cannot go
        return proto


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _graph_of(proto: onnx.ModelProto, label: str) -> Graph:
    g = proto.graph
    values: dict[str, Value] = {}
    for info in [*g.input, *g.value_info, *g.output]:
        value = _value_of_info(info)
        known = values.get(info.name)  # an input that is also an output: keep what is known
        if known is None or (known.shape is None and value.shape is not None):
            values[info.name] = value
    for init in g.initializer:
        values[init.name] = _const_value(init.name, numpy_helper.to_array(init))
    for sparse in g.sparse_initializer:
        name = sparse.values.name
        values[name] = _const_value(name, _dense(sparse))
    nodes = []
    opsets = {o.domain: o.version for o in proto.opset_import}
    for index, proto_node in enumerate(g.node):
        node = _node_of(proto_node, index)
        if proto_node.op_type == "Constant" and proto_node.domain in ("", "ai.onnx"):
            values[node.outputs[0]] = _const_value(node.outputs[0], _constant_array(node))
            continue
        folded = fold(proto_node, values, opsets)
        if folded is not None:
            for name, array in zip(node.outputs, folded, strict=True):
                values[name] = _const_value(name, array)
            continue
        nodes.append(node)
        for name in [*node.inputs, *node.outputs]:
            if name and name not in values:
                values[name] = Value(name)
    inputs = [i.name for i in g.input if not values[i.name].is_const]
    return Graph(label, inputs, [o.name for o in g.output], values, _toposort(nodes, values))


def _value_of_info(info: onnx.ValueInfoProto) -> Value:
    ttype = info.type.tensor_type
    dtype = "float32"
    if ttype.elem_type:
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type)).name
        except (KeyError, TypeError, ValueError):
            dtype = onnx.TensorProto.DataType.Name(ttype.elem_type).lower()
    if not info.type.HasField("tensor_type") or not ttype.HasField("shape"):
        return Value(info.name, None, dtype)
    dims: list[int | str] = []
    for axis, d in enumerate(ttype.shape.dim):
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or f"?{info.name}:{axis}")
    return Value(info.name, tuple(dims), dtype)


def _const_value(name: str, array: np.ndarray) -> Value:
    array = np.asarray(array)
    return Value(name, tuple(int(d) for d in array.shape), array.dtype.name, array)


def _dense(sparse: onnx.SparseTensorProto) -> np.ndarray:
    values = numpy_helper.to_array(sparse.values)
    out = np.zeros(tuple(sparse.dims), dtype=values.dtype)
    indices = numpy_helper.to_array(sparse.indices) if sparse.HasField("indices") else None
    if indices is not None and indices.size:
        if indices.ndim == 1:
            out.reshape(-1)[indices] = values
        else:
            out[tuple(indices.T)] = values
    return out


def _node_of(proto_node: onnx.NodeProto, index: int) -> Node:
    domain = proto_node.domain or "ai.onnx"
    name = proto_node.name or f"{proto_node.op_type}_{index}"
    attrs = {a.name: _attr_value(a) for a in proto_node.attribute}
    inputs = list(proto_node.input)
    captured = _captured(proto_node)
    if captured:  # values a subgraph reads from this scope are inputs too, after the formal ones
        attrs["captured"] = captured
        inputs += captured
    return Node(name, atom_of_onnx(proto_node.op_type, proto_node.domain),
                inputs, list(proto_node.output), attrs,
                source_op=f"{domain}::{proto_node.op_type}", scope=_scope(proto_node))


def _captured(proto_node: onnx.NodeProto) -> list[str]:
    """Names the node's subgraphs (If/Loop/Scan bodies) use without defining them."""
    graphs = [a.g for a in proto_node.attribute if a.type == onnx.AttributeProto.GRAPH]
    graphs += [g for a in proto_node.attribute if a.type == onnx.AttributeProto.GRAPHS
               for g in a.graphs]
    used: list[str] = []
    for g in graphs:
        defined = {i.name for i in g.input} | {t.name for t in g.initializer}
        defined |= {o for n in g.node for o in n.output}
        for n in g.node:
            for x in [*n.input, *_captured(n)]:
                if x and x not in defined and x not in used:
                    used.append(x)
        used += [o.name for o in g.output if o.name not in defined and o.name not in used]
    return used


def _scope(proto_node: onnx.NodeProto) -> str:
    """The module path: the dynamo exporter records it in metadata, TorchScript in names."""
    for prop in proto_node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            path = scopes[-2] if isinstance(scopes, list) and len(scopes) >= 2 else ""
            return str(path).removeprefix("L['self'].")
    return scope_of_name(proto_node.name)


def _attr_value(attr: onnx.AttributeProto) -> Any:
    kind = attr.type
    A = onnx.AttributeProto
    if kind == A.TENSOR:
        return numpy_helper.to_array(attr.t)
    if kind == A.SPARSE_TENSOR:
        return _dense(attr.sparse_tensor)
    if kind == A.GRAPH:
        return f"graph:{attr.g.name}"
    if kind == A.GRAPHS:
        return [f"graph:{g.name}" for g in attr.graphs]
    if kind == A.TENSORS:
        return [numpy_helper.to_array(t) for t in attr.tensors]
    if kind == A.TYPE_PROTO or kind == A.TYPE_PROTOS:
        return str(onnx.helper.get_attribute_value(attr)).strip()
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def _constant_array(node: Node) -> np.ndarray:
    for key in _CONSTANT_ATTRS:
        if key in node.attrs:
            value = node.attrs[key]
            if key == "value_float":
                return np.array(value, dtype=np.float32)
            if key in ("value_floats",):
                return np.array(value, dtype=np.float32)
            if key in ("value_int", "value_ints"):
                return np.array(value, dtype=np.int64)
            if key in ("value_string", "value_strings"):
                return np.array(value, dtype=object)
            return np.asarray(value)
    raise UnsupportedModelError(f"Constant node {node.name!r} has no value attribute")


def scope_of_name(name: str) -> str:
    """Exporter names such as '/h.0/attn/MatMul' carry the module path: 'h.0.attn'."""
    if not name.startswith("/"):
        return ""
    parts = [p for p in name.split("/") if p]
    return ".".join(parts[:-1])


def _toposort(nodes: list[Node], values: dict[str, Value]) -> list[Node]:
    """Stable topological order; ONNX requires it but hand-made files do not always comply."""
    producer = {o: i for i, n in enumerate(nodes) for o in n.outputs if o}
    done: set[int] = set()
    order: list[Node] = []
    for start in range(len(nodes)):
        stack = [start]
        while stack:
            i = stack[-1]
            if i in done:
                stack.pop()
                continue
            pending = [producer[x] for x in nodes[i].inputs
                       if x in producer and producer[x] not in done and producer[x] != i]
            if pending and pending[0] in stack:
                raise UnsupportedModelError(f"graph has a cycle through node {nodes[i].name!r}")
            if pending:
                stack.append(pending[0])
                continue
            done.add(i)
            order.append(nodes[i])
            stack.pop()
    return order

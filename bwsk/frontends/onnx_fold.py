"""Constant folding for the ONNX frontend: nodes whose inputs are all known are evaluated
with ONNX's reference implementation, so shape arithmetic and generated weights become
constants the analysis can read."""

from __future__ import annotations

import numpy as np
import onnx

from bwsk.ir import Value

# Pure, deterministic ops worth evaluating when every input is constant (shape arithmetic,
# ConstantOfShape weights); results above _FOLD_LIMIT elements stay as nodes.
_FOLDABLE = {"ConstantOfShape", "Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat",
             "Cast", "Reshape", "Slice", "Identity", "Range", "Transpose", "Expand", "Add",
             "Sub", "Mul", "Div", "Equal", "Where", "Not", "Less", "Greater", "Neg", "Sqrt",
             "Floor", "Ceil", "Min", "Max", "ReduceProd", "Flatten", "CastLike"}
_FOLD_LIMIT = 1 << 20


def fold(proto_node: onnx.NodeProto, values: dict[str, Value],
         opsets: dict[str, int]) -> list[np.ndarray] | None:
    """The node's outputs if it can be evaluated now, else None (the node stays)."""
    if proto_node.domain not in ("", "ai.onnx") or proto_node.op_type not in _FOLDABLE:
        return None
    names = [x for x in proto_node.input if x]
    if proto_node.op_type in ("Shape", "Size") and names:
        return _shape_of(proto_node, values.get(names[0]))
    if names and all(values.get(x) is not None and values[x].is_const for x in names):
        feeds = {x: values[x].const for x in names}
    else:
        return None
    if any(v.dtype == object for v in feeds.values()):
        return None
    if proto_node.op_type == "ConstantOfShape" and np.prod(feeds[names[0]]) > _FOLD_LIMIT:
        return None
    try:
        from onnx.reference import ReferenceEvaluator

        out = ReferenceEvaluator(proto_node, opsets=opsets or None).run(None, feeds)
    except Exception:  # not foldable here: the node stays
        return None
    if any(np.asarray(o).size > _FOLD_LIMIT for o in out):
        return None
    return [np.asarray(o) for o in out]


def _shape_of(proto_node: onnx.NodeProto, value: Value | None) -> list[np.ndarray] | None:
    """Shape/Size of a statically shaped value, without materializing the tensor."""
    shape = value.shape if value is not None else None
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    if proto_node.op_type == "Size":
        return [np.array(int(np.prod(shape)), dtype=np.int64)]
    attrs = {a.name: a.i for a in proto_node.attribute}
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    return [np.array(shape[start:end], dtype=np.int64)]

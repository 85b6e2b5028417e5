"""The ONNX frontend: the onnx wheel's corpus loads, structure is faithful, bad files fail."""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bwsk.errors import UnsupportedModelError
from bwsk.frontends.onnx import load_onnx, scope_of_name
from bwsk.lower import lower

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _corpus(pattern: str) -> list[str]:
    return sorted(glob.glob(str(DATA / pattern)))


@pytest.mark.parametrize(("pattern", "count"), [
    ("light/*.onnx", 9),
    ("pytorch-converted/*/model.onnx", 82),
    ("pytorch-operator/*/model.onnx", 35),
])
def test_corpus_models_load(pattern, count):
    files = _corpus(pattern)
    assert len(files) == count
    for path in files:
        graph = load_onnx(path)
        assert graph.outputs, path
        for node in graph.nodes:
            assert all(not x or x in graph.values for x in node.inputs), (path, node.name)
        assert lower(graph).size > 0


@pytest.mark.slow
def test_all_node_conformance_cases_load():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators overflow casts on purpose
        cases = collect_testcases()
    assert len(cases) == 1884
    ops = set()
    for case in cases:
        graph = load_onnx(case.model)
        ops.update(n.op for n in graph.nodes)
        assert graph.outputs, case.name
    assert len(ops) > 150


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _info(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def test_initializers_constants_and_names():
    w = numpy_helper.from_array(np.eye(3, dtype=np.float32), "w")
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
            np.ones(3, np.float32))),
        helper.make_node("MatMul", ["x", "w"], ["m"], name="/h.0/attn/MatMul"),
        helper.make_node("Add", ["m", "c"], ["y"]),
        helper.make_node("Relu", ["y"], ["z"], domain="com.example"),
    ]
    # "w" is listed as an input too, as old exporters did: it is still a constant
    model = _model(nodes, [_info("x", [2, 3]), _info("w", [3, 3])], [_info("z", [2, 3])], [w])
    graph = load_onnx(model)
    assert graph.inputs == ["x"]
    assert np.array_equal(graph.values["w"].const, np.eye(3))
    assert np.array_equal(graph.values["c"].const, np.ones(3))
    assert [n.op for n in graph.nodes] == ["matmul", "add", "com_example::relu"]
    matmul, add, relu = graph.nodes
    assert (matmul.name, matmul.scope, matmul.source_op) == ("/h.0/attn/MatMul", "h.0.attn",
                                                             "ai.onnx::MatMul")
    assert add.name == "Add_2" and add.scope == ""
    assert relu.source_op == "com.example::Relu"
    assert graph.values["m"].shape == (2, 3)  # from shape inference
    assert graph.source is model


def test_scope_from_dynamo_metadata():
    node = helper.make_node("Relu", ["x"], ["y"], name="node_relu_3")
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes",
                            value="['', 'encoder.layers.0', 'encoder.layers.0.act', 'relu_3']")
    graph = load_onnx(_model([node], [_info("x", [2])], [_info("y", [2])]))
    assert graph.nodes[0].scope == "encoder.layers.0.act"


def test_scope_of_exporter_names():
    assert scope_of_name("/transformer/h.0/attn/c_attn/Gemm") == "transformer.h.0.attn.c_attn"
    assert scope_of_name("/MatMul") == ""
    assert scope_of_name("MatMul_3") == ""


def test_shape_arithmetic_is_folded():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ReduceProd", ["s"], ["n"], keepdims=1),
             helper.make_node("Reshape", ["x", "n"], ["y"])]
    model = _model(nodes, [_info("x", [2, 3])], [_info("y", None)])
    graph = load_onnx(model)
    assert [n.op for n in graph.nodes] == ["reshape"]
    assert np.array_equal(graph.values["n"].const, [6])
    assert graph.values["y"].shape == (6,)


def test_symbolic_dims_and_input_shapes():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = _model(nodes, [_info("x", ["batch", 4])], [_info("y", ["batch", 4])])
    graph = load_onnx(model)
    assert graph.values["x"].shape == ("batch", 4)
    with pytest.raises(UnsupportedModelError, match="symbolic dim 'batch'"):
        graph.static_shape("y")
    bound = load_onnx(model, input_shapes={"x": (2, 4)})
    assert bound.static_shape("y") == (2, 4)
    with pytest.raises(UnsupportedModelError, match="not an input"):
        load_onnx(model, input_shapes={"nope": (1,)})
    with pytest.raises(UnsupportedModelError, match="rank"):
        load_onnx(model, input_shapes={"x": (1, 2, 3)})


def test_source_runs_on_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    graph = load_onnx(EXAMPLES / "coupling.onnx")
    session = ort.InferenceSession(graph.source.SerializeToString())
    x = np.ones((1, 8), np.float32)
    y1, y2 = session.run(None, {"x1": x, "x2": x})
    assert y1.shape == y2.shape == (1, 8)


def test_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a protobuf at all\n" * 10)
    with pytest.raises(UnsupportedModelError, match="is not a valid ONNX model"):
        load_onnx(path)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(UnsupportedModelError, match="is not a valid ONNX model"):
        load_onnx(empty)
    with pytest.raises(UnsupportedModelError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")


def test_subgraph_captures_are_inputs():
    branch = helper.make_graph([helper.make_node("Relu", ["outer"], ["r"])], "then", [],
                               [_info("r", [2])])
    other = helper.make_graph([helper.make_node("Neg", ["outer"], ["m"])], "else", [],
                              [_info("m", [2])])
    nodes = [helper.make_node("Tanh", ["x"], ["outer"]),
             helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other)]
    model = _model(nodes, [_info("x", [2]), _info("c", [], TensorProto.BOOL)],
                   [_info("y", [2])])
    graph = load_onnx(model)
    branch_node = graph.nodes[-1]
    assert branch_node.op == "if" and branch_node.inputs == ["c", "outer"]
    assert branch_node.attrs["captured"] == ["outer"]
    assert graph.consumers["outer"] == [branch_node]


def test_undefined_value():
    model = _model([helper.make_node("Add", ["x", "ghost"], ["y"])], [_info("x", [2])],
                   [_info("y", [2])])
    with pytest.raises(UnsupportedModelError, match="undefined value 'ghost'"):
        load_onnx(model)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.97])
def test_truncated(tmp_path, fraction):
    data = (EXAMPLES / "tiny_gpt2.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(UnsupportedModelError) as info:
        load_onnx(path)
    assert "\n" not in str(info.value)


def _external_model(tmp_path) -> Path:
    w = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_info("x", [1, 64])],
                   [_info("y", [1, 64])], [w])
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.weights", size_threshold=0)
    return path


def test_external_data(tmp_path):
    path = _external_model(tmp_path)
    graph = load_onnx(path)
    assert graph.values["w"].const[1, 0] == 64.0
    os.remove(tmp_path / "ext.weights")
    with pytest.raises(UnsupportedModelError, match=r"'ext\.weights' not found"):
        load_onnx(path)

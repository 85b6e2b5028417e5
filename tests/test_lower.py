"""Lowering graphs to terms: faithful structure, canonical attributes, shared blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bwsk import lower as lowering
from bwsk import term
from bwsk.errors import UnsupportedModelError
from bwsk.frontends.onnx import load_onnx
from bwsk.ir import Graph, Node, Value

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _graph(nodes, inputs, outputs, consts=None):
    values = {name: Value(name, (2,)) for n in nodes for name in [*n.inputs, *n.outputs] if name}
    for name, array in (consts or {}).items():
        values[name] = Value(name, array.shape, array.dtype.name, array)
    return Graph("g", inputs, outputs, values, nodes)


def test_lambda_prims_refs_and_inline_constants():
    graph = _graph(
        [Node("m", "matmul", ["x", "w"], ["h"]),
         Node("r", "reshape", ["h", "s"], ["y"]),
         Node("t", "softmax", ["y"], ["z"], {"axis": -1})],
        ["x"], ["z", "h"],
        {"w": np.ones((2, 2), np.float32), "s": np.array([2], np.int64)})
    raw = lowering.lower(graph, normalize=False)
    expected = term.lam("x0", term.tup(
        term.app(term.prim("softmax", "axis=-1"),
                 term.app(term.prim("reshape"),
                          term.app(term.prim("matmul"), term.prim("x0"), term.ref("w")),
                          term.prim("const", 'dtype="int64", shape=[1], value=[2]'))),
        term.app(term.prim("matmul"), term.prim("x0"), term.ref("w"))))
    assert raw == expected
    normal = lowering.lower(graph)
    assert normal == raw.normalize() and "\\" not in str(normal)


def test_undefined_values_are_an_error():
    graph = _graph([Node("a", "add", ["x", "ghost"], ["y"])], ["x"], ["y"])
    with pytest.raises(UnsupportedModelError, match="'ghost' is used but never defined"):
        lowering.lower(graph)


def test_multi_output_nodes_project_and_omitted_inputs_are_empty():
    graph = _graph([Node("s", "split", ["x"], ["a", "b"], {"axis": 0}),
                    Node("n", "layernorm", ["a", "", "b"], ["y"])], ["x"], ["y"])
    text = str(lowering.lower(graph, normalize=False))
    assert "#0/2" in text and "#1/2" in text and "<>" in text


@pytest.mark.parametrize(("value", "text"), [
    (3, "3"), (True, "1"), (1e-5, "1e-05"), (-1.5, "-1.5"), ("tanh", '"tanh"'),
    ('a"b', '"a\\"b"'), ([1, [2, 3]], "[1, [2, 3]]"), (float("-inf"), '"-inf"'),
    (np.int64(4), "4"), (np.array([1, 2]), "[1, 2]"),
    (np.zeros((5, 5)), '"tensor[5, 5]:float64:c45d01b195de"'),
])
def test_canonical_values(value, text):
    assert lowering.canonical_value(value) == text


def test_canonical_attrs_parse_back_to_the_same_prim():
    lang = pytest.importorskip("bwsk.lang")
    attrs = {"perm": [0, 2, 1], "epsilon": 1e-5, "approximate": "tanh", "axis": -1}
    text = lowering.canonical_attrs(attrs)
    assert text == 'approximate="tanh", axis=-1, epsilon=1e-05, perm=[0, 2, 1]'
    assert lang.parse(f"gelu[{text}]") == term.prim("gelu", text)


def test_ref_names_are_legal():
    assert lowering.ref_name("/h.0/attn/Constant_output_0") == "_/h.0/attn/Constant_output_0"
    assert lowering.ref_name("conv1 weight") == "conv1_weight"
    assert lowering.ref_name("h.0.attn.c_attn.weight") == "h.0.attn.c_attn.weight"


def test_blocks_are_found_by_numbered_scope():
    graph = load_onnx(EXAMPLES / "tiny_gpt2.onnx")
    blocks = lowering.find_blocks(graph)
    assert [b.scope for b in blocks] == ["h.0", "h.1"]
    assert len(blocks[0].nodes) == len(blocks[1].nodes) > 20


def _growth(graphs: dict) -> int:
    """Normalized-term nodes per extra layer, 2 -> 12 layers; checks on the way that
    normalization is idempotent and the printer round-trips."""
    from bwsk.lang import parse, print_term

    sizes = {}
    for layers, graph in graphs.items():
        normal = lowering.lower(graph)
        assert normal.normalize() == normal
        assert parse(print_term(normal)) == normal
        sizes[layers] = normal.size
    return (sizes[12] - sizes[2]) // 10


def _tiny_gpt2(layers):
    import sys

    sys.path.insert(0, str(EXAMPLES))
    try:
        import make_examples
    finally:
        sys.path.remove(str(EXAMPLES))
    return load_onnx(make_examples.tiny_gpt2(layers=layers, d=16, vocab=32))


def test_repeated_onnx_blocks_stay_shared_after_normalization(monkeypatch):
    graphs = {n: _tiny_gpt2(n) for n in (2, 12)}
    shared = _growth(graphs)
    monkeypatch.setattr(lowering, "find_blocks", lambda graph: [])
    inlined = _growth(graphs)
    assert shared <= 8  # per extra layer: scope[prefix=...] applied to the shared body
    assert inlined > 10 * shared


@pytest.mark.slow
def test_repeated_torch_blocks_stay_shared_after_normalization(monkeypatch):
    pytest.importorskip("transformers")
    from bwsk import zoo
    from bwsk.frontends.torch import graph_of

    graphs = {layers: graph_of(*zoo.build_model("gpt2", layers=layers, d_model=32, heads=2,
                                                 vocab=50)) for layers in (2, 12)}
    shared = _growth(graphs)
    monkeypatch.setattr(lowering, "find_blocks", lambda graph: [])
    inlined = _growth(graphs)
    assert shared <= 10
    assert inlined > 10 * shared


def test_blocks_read_their_own_weights_through_scope():
    from bwsk.evaluate import evaluate

    nodes = [Node(f"h.{i}.m", "mul", [x, f"h.{i}.w"], [y], scope=f"h.{i}")
             for i, (x, y) in enumerate([("x", "a"), ("a", "b"), ("b", "c")])]
    consts = {f"h.{i}.w": np.full(20, i + 2.0) for i in range(3)}
    graph = _graph(nodes, ["x"], ["c"], consts)
    normal = lowering.lower(graph)
    text = str(normal)
    assert text.count("%w") == 1 and 'scope[prefix="h.2"]' in text
    values = {"mul": lambda a, b: a * b, **{f"%{k}": v for k, v in consts.items()}}
    assert np.array_equal(evaluate(normal, values, np.ones(20)), np.full(20, 24.0))


def test_term_of_plain_module():
    torch = pytest.importorskip("torch")
    import bwsk

    t = bwsk.term_of(torch.nn.Linear(4, 4))
    assert "%weight.T" in str(t) and "%bias" in str(t)
    assert t.normalize() == t

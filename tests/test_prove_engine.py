"""The proof engine end to end on small ONNX graphs: S with a working inverse, K with an
executed witness, gray with the deciding condition, and the native fixpoint itself."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import bwsk
from bwsk import _core
from bwsk.errors import BwskError

RNG = np.random.default_rng(0)


def make_model(nodes, inputs, outputs, inits=None, shape=(2, 4)) -> onnx.ModelProto:
    """A float model: ``inputs`` of ``shape``; ``inits`` maps names to constant arrays."""
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape)) for n in inputs]
    outs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape) if n in inputs else None)
        for n in outputs
    ]
    consts = [
        numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in (inits or {}).items()
    ]
    graph = helper.make_graph(
        [helper.make_node(*n[:3], **(n[3] if len(n) > 3 else {})) for n in nodes],
        "g",
        ins,
        outs,
        consts,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )


def check_inverse(model, analysis, shape=(2, 4)):
    feeds = {i.name: RNG.standard_normal(shape).astype(np.float32) for i in model.graph.input}
    outs = run(model, feeds)
    back = analysis.inverse(*outs)
    for name, x in feeds.items():
        np.testing.assert_allclose(back[name], x, atol=1e-4)


def check_witness(model, analysis):
    w = analysis.witness
    diff = max(np.abs(w.a[n] - w.b[n]).max() for n in w.a)
    assert diff >= 1e-3
    for p, q in zip(run(model, w.a), run(model, w.b), strict=False):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-5)


def square(seed=1, n=4):
    return np.random.default_rng(seed).standard_normal((n, n)).astype(np.float32)


def test_native_fixpoint_orders_the_inverse_program():
    # v0 -[n0: x + c]-> v1 ; known v1 ; slot 0 recoverable given the others
    known, steps = _core.prove_recoverable(3, [0, 2], [0, 2], [1, 0], [0, 1], [1], [1], [1, 2])
    assert known == [1, 1, 1] and steps == [(0, 0)]
    # needed output unknown: nothing is recovered
    known, steps = _core.prove_recoverable(3, [0, 1], [0], [2], [0, 2], [1, 2], [1, 1], [1])
    assert known[0] == 0 and steps == []
    with pytest.raises(ValueError, match="out of range"):
        _core.prove_recoverable(1, [0, 1], [5], [2], [0, 1], [0], [1], [0])


def test_additive_coupling_is_S_for_any_F_and_G():
    nodes = [
        ("MatMul", ["x2", "W"], ["a"]),
        ("Relu", ["a"], ["f"]),
        ("Add", ["x1", "f"], ["y1"]),
        ("MatMul", ["y1", "V"], ["b"]),
        ("Abs", ["b"], ["g"]),
        ("Add", ["x2", "g"], ["y2"]),
    ]
    zero_rank = np.zeros((4, 4), np.float32)  # F, G may erase everything
    model = make_model(nodes, ["x1", "x2"], ["y1", "y2"], {"W": zero_rank, "V": square()})
    a = bwsk.analyze(model)
    assert a.verdict == "S", a.reason
    assert a.counts()["K"] >= 3  # the coupling is S although it contains K nodes
    check_inverse(model, a)


def test_affine_coupling_uses_exp_as_nonzero_scale():
    nodes = [
        ("MatMul", ["x2", "W"], ["s"]),
        ("Exp", ["s"], ["e"]),
        ("Mul", ["x1", "e"], ["m"]),
        ("Add", ["m", "x2"], ["y1"]),
        ("Identity", ["x2"], ["y2"]),
    ]
    model = make_model(nodes, ["x1", "x2"], ["y1", "y2"], {"W": square()})
    a = bwsk.analyze(model)
    assert a.verdict == "S", a.reason
    check_inverse(model, a)


@pytest.mark.parametrize("op, attrs, erased", [("Softmax", {"axis": -1}, 2), ("Relu", {}, None)])
def test_erasing_op_gets_an_executed_witness(op, attrs, erased):
    model = make_model(
        [("MatMul", ["x", "W"], ["h"]), (op, ["h"], ["y"], attrs)], ["x"], ["y"], {"W": square()}
    )
    a = bwsk.analyze(model)
    assert a.verdict == "K", a.reason
    assert a.nodes[1].erased_dims == erased
    check_witness(model, a)


def test_layernorm_is_shift_invariant_and_erases_one_per_vector():
    model = make_model(
        [("LayerNormalization", ["x", "g", "b"], ["y"], {"epsilon": 1e-5})],
        ["x"],
        ["y"],
        {"g": np.ones(4), "b": np.zeros(4)},
    )
    a = bwsk.analyze(model)
    assert a.verdict == "K" and a.nodes[0].erased_dims == 2
    check_witness(model, a)


def test_rank_deficient_weight_reports_singular_value_and_kernel_witness():
    w = square()
    w[:, 3] = w[:, 0] + w[:, 1]  # rank 3: x -> W x (columns) loses a direction in x @ W^T
    model = make_model([("MatMul", ["x", "W"], ["y"])], ["x"], ["y"], {"W": w.T.copy()})
    a = bwsk.analyze(model)
    assert a.verdict == "K" and "rank-deficient" in a.nodes[0].reason
    assert "smallest singular value" in a.nodes[0].reason
    check_witness(model, a)
    full = make_model([("MatMul", ["x", "W"], ["y"])], ["x"], ["y"], {"W": square()})
    assert bwsk.analyze(full).verdict == "S"
    no_weights = bwsk.analyze(full, weights=False)
    assert no_weights.verdict == "GRAY" and any(
        "full column rank" in c for c in no_weights.conditions
    )


def test_projection_to_fewer_dims_is_K_without_reading_weights():
    w = np.random.default_rng(2).standard_normal((4, 2)).astype(np.float32)
    model = make_model([("MatMul", ["x", "W"], ["y"])], ["x"], ["y"], {"W": w})
    a = bwsk.analyze(model, weights=False)
    assert a.verdict == "K" and a.nodes[0].erased_dims == 2
    check_witness(model, a)


def test_two_variable_add_and_unused_input():
    model = make_model([("Add", ["x", "z"], ["y"])], ["x", "z"], ["y"])
    a = bwsk.analyze(model)
    assert a.verdict == "K" and a.nodes[0].erased_dims == 8
    check_witness(model, a)
    unused = make_model([("Tanh", ["x"], ["y"])], ["x", "z"], ["y"])
    a = bwsk.analyze(unused)
    assert a.verdict == "K" and "does not reach" in a.reason
    check_witness(unused, a)


def test_saturating_maps_are_S_but_not_well_conditioned():
    for op in ("Tanh", "Sigmoid", "Elu", "Softplus"):
        model = make_model([(op, ["x"], ["y"])], ["x"], ["y"])
        a = bwsk.analyze(model)
        assert a.verdict == "S" and not a.nodes[0].well_conditioned, op
        check_inverse(model, a)


def test_residual_without_weight_bound_is_gray_and_inverse_refuses():
    nodes = [("MatMul", ["x", "W"], ["h"]), ("Tanh", ["h"], ["f"]), ("Add", ["x", "f"], ["y"])]
    model = make_model(nodes, ["x"], ["y"], {"W": 3 * square()})
    a = bwsk.analyze(model)
    assert a.verdict == "GRAY", a.reason
    with pytest.raises(BwskError, match="GRAY"):
        bwsk.inverse(model)


def test_unknown_op_is_gray_with_domain():
    node = helper.make_node("Fancy", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", 1, [2])],
        [helper.make_tensor_value_info("y", 1, [2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]
    )
    a = bwsk.analyze(model)
    assert a.verdict == "GRAY" and a.nodes[0].reason == "unknown op com.example::Fancy"


def test_residual_with_contractive_branch_is_S_and_inverts_by_fixed_point():
    nodes = [("MatMul", ["x", "W"], ["h"]), ("Tanh", ["h"], ["f"]), ("Add", ["x", "f"], ["y"])]
    w = square()
    w *= 0.5 / np.linalg.norm(w, 2)  # Lip(tanh(x W)) <= 0.5
    model = make_model(nodes, ["x"], ["y"], {"W": w})
    a = bwsk.analyze(model)
    assert a.verdict == "S", a.reason
    assert any("contraction" in c for c in a.nodes[2].conditions)
    check_inverse(model, a)
    gray = bwsk.analyze(model, weights=False)
    assert gray.verdict == "GRAY" and any("Lip(f) < 1" in c for c in gray.conditions)


def test_every_k_block_gets_a_witness_checked_on_the_block_alone():
    """Four rank-deficient blocks in a row (more than any shared budget): each is K with a
    witness on its own inputs that the block alone maps to equal outputs."""
    nodes, inits, x = [], {}, "x"
    for k in range(4):
        w = square()
        w[:, 3] = w[:, 0] - w[:, 2]
        inits[f"W{k}"], inits[f"b{k}"] = w.T.copy(), np.full(4, k, np.float32)
        nodes += [
            ("MatMul", [x, f"W{k}"], [f"h{k}"], {"name": f"/blk{k}/MatMul"}),
            ("Add", [f"h{k}", f"b{k}"], [f"y{k}"], {"name": f"/blk{k}/Add"}),
        ]
        x = f"y{k}"
    a = bwsk.analyze(make_model(nodes, ["x"], [x], inits))
    blocks = {b.name: b for b in a.blocks}
    assert sorted(blocks) == [f"blk{k}" for k in range(4)]
    for k in range(4):
        block = blocks[f"blk{k}"]
        assert block.verdict == "K" and block.witness is not None, block.reason
        inp = "x" if k == 0 else f"y{k - 1}"
        assert set(block.witness.a) == {inp}
        sub = make_model(nodes[2 * k : 2 * k + 2], [inp], [f"y{k}"], inits)
        sub.graph.node[0].input[0] = inp
        check_witness(sub, block)


def test_input_that_is_also_an_output_keeps_its_shape():
    """An output's value_info without a shape must not erase the input's."""
    model = make_model([("Relu", ["x"], ["y"])], ["x"], ["x", "y"])
    model.graph.output[0].type.tensor_type.ClearField("shape")
    from bwsk.frontends.onnx import load_onnx

    graph = load_onnx(model)
    assert graph.values["x"].shape == (2, 4) and graph.values["x"].dtype == "float32"
    a = bwsk.analyze(model)
    assert a.verdict == "S", a.reason


@pytest.mark.parametrize("gate, verdict", [("Tanh", "K"), ("Sigmoid", "S")])
def test_mul_with_a_visible_factor_collides_by_zeroing_it(gate, verdict):
    """z = x * gate(g) with gate(g) also an output: x alone changes while the gate is 0,
    which tanh reaches (g = 0); a sigmoid gate is never 0, so x = z / h is recovered."""
    model = make_model(
        [(gate, ["g"], ["h"]), ("Mul", ["x", "h"], ["z"])], ["x", "g"], ["z", "h"], shape=(2, 4)
    )
    a = bwsk.analyze(model)
    assert a.verdict == verdict, a.reason
    if verdict == "K":
        assert "x * 0 = (x + 1) * 0" in a.reason
        check_witness(model, a)


def test_post_dominators_agree_with_walking_the_graph():
    """The O(1) 'only through node k' query against a direct walk, on random DAGs."""
    from bwsk.analysis.dominators import PostDominators
    from bwsk.ir import Graph, Node, Value

    rng = np.random.default_rng(5)
    for _ in range(200):
        vals = [f"i{i}" for i in range(rng.integers(1, 4))]
        inputs, nodes = list(vals), []
        for k in range(rng.integers(1, 12)):
            outs = [f"v{k}_{j}" for j in range(rng.integers(1, 3))]
            nodes.append(Node(f"n{k}", "add", list(rng.choice(vals, rng.integers(1, 3))), outs))
            vals += outs
        outputs = list(dict.fromkeys(rng.choice(vals, size=rng.integers(1, 3))))
        g = Graph("g", inputs, outputs, {v: Value(v) for v in vals}, nodes)
        pdom = PostDominators(g)
        for k, node in enumerate(nodes):
            up = set(node.inputs)
            for n in reversed(nodes[:k]):
                if up & set(n.outputs):
                    up |= set(n.inputs)
            reached = up & (set(node.inputs) | set(inputs))
            for i, n in enumerate(nodes):
                if i != k and reached & set(n.inputs):
                    reached |= set(n.outputs)
            assert pdom.only_through(k, set(node.inputs)) == (not reached & set(outputs))


def test_rmsnorm_built_from_primitives_is_never_k():
    """x * 1/sqrt(mean(x^2) + eps) is injective: the mul's local collision (x, r) ~ (2x, r/2)
    lifts to a near-collision only (off by ~eps), which must not become a K verdict."""
    model = make_model(
        [
            ("Mul", ["x", "x"], ["sq"]),
            ("ReduceMean", ["sq", "axes"], ["ms"], {"keepdims": 1}),
            ("Add", ["ms", "eps"], ["v"]),
            ("Sqrt", ["v"], ["s"]),
            ("Reciprocal", ["s"], ["r"]),
            ("Mul", ["x", "r"], ["y"]),
        ],
        ["x"],
        ["y"],
        inits={"eps": np.float32(1e-6)},
    )
    axes = numpy_helper.from_array(np.array([-1], np.int64), "axes")
    model.graph.initializer.append(axes)
    analysis = bwsk.analyze(model)
    assert analysis.verdict != "K", analysis.reason
    assert analysis.witness is None

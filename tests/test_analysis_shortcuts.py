"""The analysis's shortcuts agree with the long way round: the tolerance test with
np.allclose, a stuck prefix with the fixpoint, coded facts with fresh ones, post-dominators
on graphs with constants with a walk, a lowered-on-read term with lowering, a prepared
node run with the node's meaning, lazily drawn inputs with eager ones."""

from __future__ import annotations

import numpy as np
import pytest

from bwsk.analysis import analyze
from bwsk.analysis.dominators import PostDominators
from bwsk.analysis.execute import random_inputs
from bwsk.analysis.inverse import Facts, recover
from bwsk.analysis.witness import Sample, _stuck, ancestors, close
from bwsk.catalogue import ALONE, GIVEN_OTHERS, NO, Judgement, run_node
from bwsk.ir import Graph, Node, Value

SPECIAL = np.array([0.0, 1.0, -1.0, 1e-6, 1e300, -1e300, np.inf, -np.inf, np.nan])


def test_close_is_allclose_with_equal_nan():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        shape = tuple(rng.integers(1, 4, rng.integers(0, 3)))
        p = rng.choice(SPECIAL, shape) if rng.random() < 0.5 else rng.standard_normal(shape)
        q = p + rng.choice([0.0, 1e-7, 1e-5, 1e-3], shape) * rng.standard_normal(shape)
        q = np.where(rng.random(shape) < 0.2, rng.choice(SPECIAL, shape), q)
        for equal_nan in (True, False):
            want = np.allclose(p, q, rtol=1e-4, atol=1e-5, equal_nan=equal_nan)
            assert close(p, q, 1e-4, 1e-5, equal_nan) == want, (p, q)


def _random_graph(rng, consts: bool = True):
    """A random DAG of two-input nodes over variables and (optionally) constants, each
    input slot with a random recoverability flag, as the fixpoint sees a catalogue's."""
    inputs = [f"i{i}" for i in range(rng.integers(1, 4))]
    values = {v: Value(v) for v in inputs}
    if consts:
        values.update({f"c{i}": Value(f"c{i}", const=np.zeros(1)) for i in range(2)})
    pool, nodes, facts = list(values), [], []
    for k in range(rng.integers(1, 10)):
        outs = [f"v{k}_{j}" for j in range(rng.integers(1, 3))]
        nodes.append(Node(f"n{k}", "add", list(rng.choice(pool, rng.integers(1, 3))), outs))
        flags = [int(f) for f in rng.choice([NO, GIVEN_OTHERS, ALONE], len(nodes[-1].inputs))]
        facts.append(Judgement("GRAY", "", recover=flags))
        values.update({o: Value(o) for o in outs})
        pool += outs
    variable = [v for v in pool if values[v].const is None]
    outputs = list(dict.fromkeys(rng.choice(variable, size=rng.integers(1, 3))))
    return Graph("g", inputs, outputs, values, nodes), facts


def test_a_stuck_input_is_never_recovered_by_the_fixpoint():
    rng, stuck = np.random.default_rng(1), 0
    for _ in range(400):
        graph, facts = _random_graph(rng)
        for k, node in enumerate(graph.nodes):
            var = {node.inputs[i] for i in graph.variable_inputs(node)}
            up, prefix = ancestors(graph, var, k - 1)
            known = recover(graph, facts, var, prefix).known
            for x in (n for n in graph.inputs if n in up and n not in var):
                if _stuck(graph, facts, x, prefix):
                    stuck += 1
                    assert x not in known
    assert stuck > 50  # the shortcut is taken, so this checks something


def test_coded_facts_recover_as_fresh_ones_on_blocks_too():
    rng = np.random.default_rng(2)
    for _ in range(200):
        graph, facts = _random_graph(rng)
        shared = Facts(facts)
        for nodes in (None, sorted(rng.choice(len(graph.nodes), len(graph.nodes) // 2 + 1,
                                              replace=False).tolist())):
            known = set(graph.outputs)
            fresh, coded = recover(graph, facts, known, nodes), recover(graph, shared, known, nodes)
            assert (fresh.known, fresh.steps) == (coded.known, coded.steps)
        members = list(range(len(graph.nodes) // 2 + 1))
        sub = Graph("b", graph.inputs, graph.outputs, graph.values,
                    [graph.nodes[k] for k in members])
        block = shared.subset(members)
        assert block.codes is shared.codes
        got, want = recover(sub, block, set(sub.outputs)), recover(sub, facts[: len(members)],
                                                                   set(sub.outputs))
        assert (got.known, got.steps) == (want.known, want.steps)


def test_post_dominators_on_graphs_with_constants_agree_with_a_walk():
    rng = np.random.default_rng(3)
    for _ in range(200):
        graph, _ = _random_graph(rng)
        pdom = PostDominators(graph)
        for k, node in enumerate(graph.nodes):
            var = {node.inputs[i] for i in graph.variable_inputs(node)}
            if not var:
                continue
            up = set(var)
            for n in reversed(graph.nodes[:k]):
                if up & set(n.outputs):
                    up |= set(n.inputs)
            reached = up & (var | set(graph.inputs))
            for i, n in enumerate(graph.nodes):
                if i != k and reached & set(n.inputs):
                    reached |= set(n.outputs)
            assert pdom.only_through(k, var) == (not reached & set(graph.outputs))


def _onnx_graph():
    from onnx import TensorProto, helper

    from bwsk.frontends.onnx import load_onnx

    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Relu", ["sq"], ["y"])]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])]),
        opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    return load_onnx(model)


def test_term_is_lowered_on_first_read_and_a_set_term_wins():
    from bwsk.lower import lower

    graph = _onnx_graph()
    analysis = analyze(graph)
    assert "_lower" in analysis.__dict__  # not lowered by the analysis itself
    assert str(analysis.term) == str(lower(graph))
    assert "_lower" not in analysis.__dict__
    other = analyze(graph)
    other.term = "given"
    assert other.term == "given"


def test_term_that_cannot_be_lowered_says_why(monkeypatch):
    from bwsk import lower as lowering
    from bwsk.errors import UnsupportedModelError

    def refuse(graph, **_):
        raise UnsupportedModelError("no")

    analysis = analyze(_onnx_graph())
    monkeypatch.setattr(lowering, "lower", refuse)
    assert analysis.term is None
    assert analysis.extra["term"] == "lowering failed: no"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prepared_node_runs_repeated_inputs_and_each_dtype(dtype):
    graph = _onnx_graph()
    x = np.arange(6, dtype=dtype).reshape(2, 3) - 2
    for _ in range(2):  # the second run takes the prepared node and its cached session
        (sq,) = run_node(graph, graph.nodes[0], [x, x])
        assert sq.dtype == dtype and np.array_equal(sq, x * x)
        (y,) = run_node(graph, graph.nodes[1], [x])
        assert np.array_equal(y, np.maximum(x, 0))


def test_sample_draws_on_first_use_as_an_eager_draw_would():
    graph = _onnx_graph()
    sample = Sample(graph, 0)
    base, rng = sample()
    assert sample() == (base, rng)
    eager = np.random.default_rng(0)
    want = random_inputs(graph, eager)
    assert all(np.array_equal(base[k], want[k]) for k in want)
    assert rng.standard_normal() == eager.standard_normal()

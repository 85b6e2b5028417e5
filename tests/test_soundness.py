"""Soundness on random graphs built from the catalogue: an S verdict survives a collision
search and its inverse reconstructs the inputs; a K witness collides in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_prove_engine import make_model

import bwsk

RNG = np.random.default_rng(7)
FULL = (RNG.standard_normal((4, 4)) / 2).astype(np.float32)
LOW = FULL.copy()
LOW[:, 3] = LOW[:, 0] - LOW[:, 2]  # rank 3
CONSTS = {
    "W": FULL,
    "L": LOW,
    "c": np.array([0.5, -1.0, 2.0, 0.25], np.float32),
    "z": np.array([1.0, 0.0, 2.0, 3.0], np.float32),
    "g": np.ones(4, np.float32),
    "b": np.zeros(4, np.float32),
}
UNARY = [
    ("Tanh", {}),
    ("Sigmoid", {}),
    ("Relu", {}),
    ("Abs", {}),
    ("Neg", {}),
    ("LeakyRelu", {"alpha": 0.1}),
    ("Elu", {}),
    ("Softplus", {}),
    ("Softmax", {"axis": -1}),
    ("Sin", {}),
    ("Identity", {}),
]
WITH_CONST = [("Add", "c"), ("Mul", "c"), ("Mul", "z"), ("MatMul", "W"), ("MatMul", "L")]
BINARY = ["Add", "Sub", "Mul"]


@st.composite
def graphs(draw):
    n_in = draw(st.integers(1, 2))
    pool = [f"x{i}" for i in range(n_in)]
    nodes = []
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["unary", "unary", "unary", "const", "binary", "norm"]))
        a = draw(st.sampled_from(pool))
        out = f"v{k}"
        if kind == "unary":
            op, attrs = draw(st.sampled_from(UNARY))
            nodes.append((op, [a], [out], attrs))
        elif kind == "const":
            op, c = draw(st.sampled_from(WITH_CONST))
            nodes.append((op, [a, c], [out]))
        elif kind == "binary":
            nodes.append((draw(st.sampled_from(BINARY)), [a, draw(st.sampled_from(pool))], [out]))
        else:
            nodes.append(("LayerNormalization", [a, "g", "b"], [out]))
        pool.append(out)
    outs = sorted({pool[-1], draw(st.sampled_from(pool))})
    used = {x for n in nodes for x in n[1]}
    return make_model(
        nodes, [f"x{i}" for i in range(n_in)], outs, {k: v for k, v in CONSTS.items() if k in used}
    )


def run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )


def search_collision(model, feeds) -> bool:
    """Perturb each input coordinate by 0.5: does any perturbation leave the outputs alone?"""
    base = run(model, feeds)
    for name, x in feeds.items():
        for i in range(x.size):
            y = x.copy()
            y.reshape(-1)[i] += 0.5
            outs = run(model, {**feeds, name: y})
            if all(
                np.allclose(p, q, rtol=1e-6, atol=1e-7) for p, q in zip(base, outs, strict=False)
            ):
                return True
    return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_verdicts_are_sound(model):
    analysis = bwsk.analyze(model)
    if analysis.verdict == "S":
        feeds = {
            i.name: (RNG.standard_normal((2, 4)) / 2).astype(np.float32) for i in model.graph.input
        }
        assert not search_collision(model, feeds)
        back = analysis.inverse(*run(model, feeds))
        for name, x in feeds.items():
            np.testing.assert_allclose(back[name], x, atol=1e-4, rtol=1e-3)
    elif analysis.verdict == "K":
        w = analysis.witness
        assert max(np.abs(w.a[n] - w.b[n]).max() for n in w.a) >= 1e-3
        for p, q in zip(run(model, w.a), run(model, w.b), strict=False):
            np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-5)

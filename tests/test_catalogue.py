"""The op catalogue: coverage of the ONNX default domain, and verdicts that follow the
mathematics (attrs, shapes, weights), each K checked by running its collision on the node."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from bwsk.catalogue import CATALOGUE, GRAY_BY_DESIGN, judge, run_node
from bwsk.frontends.onnx import load_onnx
from bwsk.ir import atom_of_onnx


def test_every_default_domain_op_has_an_entry_or_a_gray_reason():
    ops = {s.name for s in onnx.defs.get_all_schemas() if s.domain == ""}
    assert len(ops) >= 200
    missing = sorted(
        op
        for op in ops
        if atom_of_onnx(op) not in CATALOGUE and atom_of_onnx(op) not in GRAY_BY_DESIGN
    )
    assert missing == []
    assert not set(CATALOGUE) & set(GRAY_BY_DESIGN)
    for atom, entry in CATALOGUE.items():
        assert entry.rationale and entry.arity, atom
    assert all(reason for reason in GRAY_BY_DESIGN.values())


def single(op, attrs=None, shape=(2, 4), consts=None, inputs=("x",), n_out=1):
    """A one-node graph; ``consts`` maps extra input names to arrays (initializers)."""
    consts = consts or {}
    names = list(inputs) + list(consts)
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], **(attrs or {}))
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(shape)) for n in inputs],
        [
            helper.make_tensor_value_info(f"y{i}", onnx.TensorProto.FLOAT, None)
            for i in range(n_out)
        ],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    g = load_onnx(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    )
    return g, g.nodes[0]


def collides(g, node, j) -> bool:
    """The judgement's collision really gives equal node outputs for different inputs."""
    rng = np.random.default_rng(0)
    ins = [
        g.values[x].const
        if g.is_const(x)
        else rng.standard_normal(g.static_shape(x)).astype(np.float32)
        for x in node.inputs
    ]
    a, b = j.collide(ins, rng)
    diff = max(
        float(np.max(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64))))
        for p, q in zip(a, b, strict=False)
    )
    same = all(
        np.allclose(p, q, rtol=1e-4, atol=1e-5)
        for p, q in zip(run_node(g, node, a), run_node(g, node, b), strict=False)
    )
    return diff >= 1e-3 and same


W = np.random.default_rng(3).standard_normal((4, 4)).astype(np.float32)
CASES = [
    ("Tanh", {}, {}, "S"),
    ("Sigmoid", {}, {}, "S"),
    ("Elu", {"alpha": 1.0}, {}, "S"),
    ("Selu", {}, {}, "S"),
    ("Celu", {"alpha": 0.5}, {}, "S"),
    ("Softplus", {}, {}, "S"),
    ("LeakyRelu", {"alpha": 0.1}, {}, "S"),
    ("LeakyRelu", {"alpha": 0.0}, {}, "K"),
    ("LeakyRelu", {"alpha": -0.5}, {}, "K"),
    ("Relu", {}, {}, "K"),
    ("Gelu", {}, {}, "K"),
    ("Gelu", {"approximate": "tanh"}, {}, "K"),
    ("Mish", {}, {}, "K"),
    ("Abs", {}, {}, "K"),
    ("Softmax", {"axis": -1}, {}, "K"),
    ("LogSoftmax", {"axis": 0}, {}, "K"),
    ("Dropout", {}, {}, "S"),
    ("Erf", {}, {}, "S"),
    ("Sin", {}, {}, "K"),
    ("Round", {}, {}, "K"),
    ("Add", {}, {"c": np.ones(4, np.float32)}, "S"),
    ("Mul", {}, {"c": np.array([1, 2, 3, 4], np.float32)}, "S"),
    ("Mul", {}, {"c": np.array([1, 0, 3, 4], np.float32)}, "K"),
    ("Div", {}, {"c": np.array([2.0], np.float32)}, "S"),
    ("MatMul", {}, {"W": W}, "S"),
    ("MatMul", {}, {"W": W[:, :2].copy()}, "K"),
    ("ReduceSum", {"keepdims": 1}, {"axes": np.array([1])}, "K"),
    ("ReduceMax", {}, {"axes": np.array([0])}, "K"),
    ("Slice", {}, {"s": np.array([0]), "e": np.array([2]), "a": np.array([1])}, "K"),
    ("Slice", {}, {"s": np.array([0]), "e": np.array([9]), "a": np.array([1])}, "S"),
    ("Gather", {"axis": 1}, {"i": np.array([3, 2, 1, 0])}, "S"),
    ("Gather", {"axis": 1}, {"i": np.array([0, 0, 1])}, "K"),
    ("Transpose", {}, {}, "S"),
    ("CumSum", {}, {"ax": np.array(1)}, "S"),
    ("CumSum", {"exclusive": 1}, {"ax": np.array(1)}, "K"),
    ("Cast", {"to": onnx.TensorProto.INT32}, {}, "K"),
    ("Cast", {"to": onnx.TensorProto.DOUBLE}, {}, "S"),
    ("LpNormalization", {"axis": -1}, {}, "K"),
    ("Clip", {}, {"lo": np.array(-1.0, np.float32)}, "K"),
    ("Floor", {}, {}, "K"),
    ("HardSigmoid", {}, {}, "K"),
    ("PRelu", {}, {"s": np.full(4, 0.2, np.float32)}, "S"),
]


@pytest.mark.parametrize(
    "op, attrs, consts, verdict", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_verdict_follows_the_mathematics(op, attrs, consts, verdict):
    g, node = single(op, attrs, consts=consts)
    j = judge(g, node)
    assert j.verdict == verdict, j.reason
    if verdict == "K":
        assert collides(g, node, j)


def test_rmsnorm_S_only_with_eps_and_layernorm_erases_one_per_vector():
    scale = {"g": np.ones(4, np.float32)}
    g, node = single("RMSNormalization", {"epsilon": 1e-5}, consts=scale)
    assert judge(g, node).verdict == "S"
    g, node = single("LayerNormalization", {}, consts={**scale, "b": np.zeros(4, np.float32)})
    j = judge(g, node)
    assert j.verdict == "K" and j.erased_dims == 2 and collides(g, node, j)


def test_pooling_and_reductions_report_erased_dims():
    g, node = single("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, shape=(1, 1, 4, 4))
    j = judge(g, node)
    assert j.verdict == "K" and j.erased_dims == 12 and collides(g, node, j)  # 3 per window
    g, node = single("ReduceSum", {"keepdims": 0}, consts={"axes": np.array([1])}, shape=(3, 5))
    j = judge(g, node)
    assert j.erased_dims == 3 * 4 and collides(g, node, j)  # n - 1 per sum


def test_strided_conv_is_S_with_full_rank_patches_and_K_without():
    w = np.random.default_rng(1).standard_normal((4, 1, 2, 2)).astype(np.float32)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]}
    g, node = single("Conv", attrs, consts={"w": w}, shape=(1, 1, 4, 4))
    assert judge(g, node).verdict == "S"
    assert judge(g, node, weights=False).verdict == "GRAY"
    w[3] = w[0] + w[1]
    g, node = single("Conv", attrs, consts={"w": w}, shape=(1, 1, 4, 4))
    j = judge(g, node)
    assert j.verdict == "K" and "rank-deficient" in j.reason and collides(g, node, j)


def test_unknown_and_gray_by_design_ops_never_raise():
    g, node = single("Relu")
    node.op, node.source_op = "mystery", "com.x::Mystery"
    assert judge(g, node).reason == "unknown op com.x::Mystery"
    node.op = "random_normal_like"
    assert judge(g, node).verdict == "GRAY"


def test_rank_certificate_agrees_with_numpy_rank():
    from bwsk.catalogue.linear import spectrum

    rng = np.random.default_rng(3)
    good = rng.standard_normal((12, 5))
    smin, _, tol, how = spectrum(good, np.float64)
    assert how == "certified" and smin > tol and np.linalg.matrix_rank(good) == 5
    bad = good.copy()
    bad[:, 4] = bad[:, 0] - 2 * bad[:, 1]
    smin, _, tol, how = spectrum(bad, np.float64)
    assert how == "exact" and smin <= tol and np.linalg.matrix_rank(bad) == 4


def test_equal_embedding_rows_found_by_hash_even_with_signed_zero():
    from bwsk.catalogue.layout import equal_rows

    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert equal_rows(rows) is None
    rows[3] = rows[1]
    rows[1, 0], rows[3, 0] = 0.0, -0.0
    assert equal_rows(rows) == (1, 3)
    rows[0, 0] = np.nan
    assert equal_rows(rows) == (1, 3)


@pytest.mark.parametrize("lead_singular", [False, True])
def test_kernel_vector_of_a_wide_matrix(lead_singular):
    from bwsk.catalogue.linear import _null_vector

    m = np.random.default_rng(4).standard_normal((5, 9))
    if lead_singular:
        m[:, 1] = m[:, 0]
    v = _null_vector(m)
    assert np.abs(v).max() == 1 and np.abs(m @ v).max() < 1e-10


def test_nearest_rows_matches_a_float64_search_of_the_whole_table():
    from bwsk.catalogue.layout import nearest_rows

    rng = np.random.default_rng(6)
    rows = rng.standard_normal((500, 16)).astype(np.float32)
    rows[7] = rows[3] + 1e-6  # nearly equal rows: only the float64 re-ranking tells them apart
    ids = np.r_[3, 7, rng.integers(0, 500, 30)]
    flat = rows[ids].astype(np.float64) + rng.standard_normal((len(ids), 16)) * 1e-8
    flat[:2] = rows[[3, 7]].astype(np.float64)
    brute = np.argmin(((flat[:, None, :] - rows[None].astype(np.float64)) ** 2).sum(-1), axis=1)
    norms = (rows.astype(np.float64) ** 2).sum(1)
    assert (nearest_rows(rows, flat, norms) == brute).all() and (brute == ids).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.float16])
def test_equal_rows_beyond_the_hashed_prefix(dtype):
    from bwsk.catalogue.layout import equal_rows

    rows = np.random.default_rng(2).integers(-50, 50, (300, 100)).astype(dtype)
    rows[10:20, :64] = rows[5, :64]  # alike in the hashed prefix, different after it
    assert equal_rows(rows) is None
    rows[250] = rows[12]
    rows[290] = rows[40]
    assert equal_rows(rows) == (12, 250)



def test_a_tall_weight_certified_from_a_subset_never_forms_its_whole_gram(monkeypatch):
    from bwsk.analysis import analyze
    from bwsk.catalogue import spectral

    w = np.random.default_rng(4).standard_normal((40, 200)).astype(np.float32)
    g, _ = single("MatMul", consts={"w": w}, shape=(2, 40))  # x @ W: the map is W.T, 200 x 40
    made = []
    real = spectral._gram
    monkeypatch.setattr(spectral, "_gram", lambda m: made.append(m.shape) or real(m))
    analysis = analyze(g)
    assert analysis.verdict == "S" and "Cholesky certificate" in analysis.nodes[0].reason
    assert made and all(rows < 200 for rows, _ in made)
    x = np.random.default_rng(5).standard_normal((2, 40)).astype(np.float32)
    back = analysis.inverse(x @ w)  # the inverse forms what it needs itself
    np.testing.assert_allclose(next(iter(back.values())), x, atol=1e-4)

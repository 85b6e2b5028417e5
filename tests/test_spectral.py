"""Certified spectral bounds: every bound holds against the exact SVD, the cheap certificate
is what decides on ordinary weights, and the rank check and the residual check share one
Gram matrix per weight."""

from __future__ import annotations

import numpy as np
import pytest

from bwsk.catalogue import spectral


@pytest.fixture(autouse=True)
def _fresh_cache():
    spectral._CACHE.clear()
    yield
    spectral._CACHE.clear()


def _no_exact(g):
    raise AssertionError("the Lanczos + Cholesky certificate should have decided")


@pytest.mark.parametrize(
    "shape, scale", [((200, 200), 1.0), ((96, 300), 0.02), ((300, 96), 3.0), ((120, 120), 1e-3)]
)
def test_norm_bound_is_certified_and_tight(monkeypatch, shape, scale):
    w = (np.random.default_rng(0).standard_normal(shape) * scale).astype(np.float32)
    monkeypatch.setattr(spectral, "exact_norm", _no_exact)
    bound = spectral.norm_bound(w)
    exact = np.linalg.norm(w.astype(np.float64), 2)
    assert exact <= bound <= exact * (1 + 2 * spectral.NORM_MARGIN)


def test_a_top_eigenvalue_lanczos_misses_falls_back_to_the_exact_solver(monkeypatch):
    w = np.diag(np.r_[np.linspace(0.0, 1.0, 99), 5.0])
    monkeypatch.setattr(spectral, "_lanczos_top", lambda g: 1.0)  # a bad estimate (exact: 25)
    assert spectral.norm_bound(w) == pytest.approx(5.0, rel=2e-6)
    assert spectral.norm_bound(w) >= 5.0


def test_small_and_zero_weights():
    w = np.random.default_rng(1).standard_normal((7, 5))
    assert np.linalg.norm(w, 2) <= spectral.norm_bound(w) <= np.linalg.norm(w, 2) * (1 + 2e-6)
    assert spectral.norm_bound(np.zeros((80, 80), np.float32)) == 0.0


@pytest.mark.parametrize("transposed", [False, True])
def test_rank_check_and_norm_bound_share_the_gram_matrix(monkeypatch, transposed):
    w = np.random.default_rng(2).standard_normal((100, 100)).astype(np.float32)
    m = w.T if transposed else w  # x @ W checks W.T; W @ x checks W
    made = []
    real = spectral._gram
    monkeypatch.setattr(spectral, "_gram", lambda a: made.append(a.shape) or real(a))
    smin, _, _, how = spectral.spectrum(m)
    assert how == "certified" and smin > 0
    spectral.norm_bound(w)
    assert made == [(100, 100)]


def test_spectrum_certificate_agrees_with_the_exact_smallest_singular_value():
    rng, decided = np.random.default_rng(5), set()
    for _ in range(30):
        m = rng.standard_normal((rng.integers(5, 90), 5)) * 10.0 ** rng.integers(-3, 4)
        m[:, 4] = m[:, 0] * rng.random() + m[:, 4] * 10.0 ** rng.uniform(-10, -2)
        smin, smax, tol, how = spectral.spectrum(m, np.float64)
        exact = np.linalg.svd(m, compute_uv=False)
        if how == "certified":
            assert exact.min() > smin >= tol > 0 and smax >= exact.max()
        else:
            # through the Gram matrix, sigma_min is known to about sqrt(eps) * sigma_max
            assert smin == pytest.approx(exact.min(), rel=1e-6, abs=1e-7 * exact.max())
        decided.add(how)
    assert decided == {"certified", "exact"}  # both ways of deciding were exercised


@pytest.mark.parametrize(
    "ratio, how", [(1.3, "certified"), (0.5, "below"), (1.0005, "exact"), (0.9995, "exact")]
)
def test_near_the_tolerance_the_refined_factorizations_decide_as_numpy(monkeypatch, ratio, how):
    """Square, smallest singular value ``ratio`` x numpy's tolerance: Gershgorin's loose
    bound on sigma_max cannot certify; the Lanczos-pinned tolerance decides both ways, and
    only a ratio within the rounding band needs the full eigenvalue solve."""
    n, eps = 100, np.finfo(np.float32).eps
    rng = np.random.default_rng(8)
    u, v = (np.linalg.qr(rng.standard_normal((n, n)))[0] for _ in range(2))
    sigma = np.r_[1.0, np.linspace(0.9, 0.1, n - 2), ratio * n * eps]
    m = (u * sigma) @ v.T
    sizes = []
    real = np.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda a: sizes.append(len(a)) or real(a))
    spec = spectral.spectrum(m)
    assert spec.how == how and spec.full_rank == (ratio > 1)
    assert (n in sizes) == (how == "exact")
    assert any(key[0] == "top" for key in spectral._CACHE)  # Gershgorin did not decide
    exact = np.linalg.svd(m, compute_uv=False)
    assert (exact.min() > exact.max() * n * eps) == spec.full_rank  # numpy's own decision


def test_a_tall_head_is_certified_from_a_subset_of_its_rows(monkeypatch):
    rng = np.random.default_rng(7)
    m = rng.standard_normal((2000, 40)).astype(np.float32)
    made = []
    real = spectral._gram
    monkeypatch.setattr(spectral, "_gram", lambda a: made.append(a.shape) or real(a))
    smin, smax, tol, how = spectral.spectrum(m)
    exact = np.linalg.svd(m.astype(np.float64), compute_uv=False)
    assert how == "certified" and exact.min() > smin >= tol and smax >= exact.max()
    assert len(made) == 1 and made[0][0] < 2000  # only the sampled rows' Gram matrix
    # rows the stride skips carry the rank: the subset cannot certify, the whole matrix does
    m = np.zeros((2000, 40), np.float32)
    m[1::2] = rng.standard_normal((1000, 40))
    spectral._CACHE.clear()
    smin, _, tol, how = spectral.spectrum(m)
    assert how == "certified" and smin >= tol and made[-2:] == [(250, 40), (2000, 40)]
    m[:, 3] = m[:, 1]  # rank-deficient: no certificate
    spectral._CACHE.clear()
    spec = spectral.spectrum(m)
    assert spec.how == "exact" and not spec.full_rank  # 40 columns: eigvalsh is cheap


@pytest.mark.parametrize("shape", [(300, 120), (120, 300), (80, 40)])
def test_norm_floor_is_below_the_norm_and_reads_no_gram_of_a_large_weight(monkeypatch, shape):
    w = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    exact = np.linalg.norm(w.astype(np.float64), 2)
    small = min(shape) <= 64
    if not small:
        monkeypatch.setattr(spectral, "_gram", _no_exact)
    floor, is_exact = spectral.norm_floor(w)
    assert is_exact == small
    if small:
        assert floor == pytest.approx(exact, rel=2e-6) and floor >= exact
    else:
        assert 0.8 * exact < floor <= exact


def test_a_weight_changed_in_place_between_analyses_is_read_afresh():
    """Each analysis is a session: its copies and spectra are gone when it ends, so a weight
    trained in place (a view of a parameter) is judged and run on its new values."""
    from bwsk.catalogue.run import _c_order

    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    with spectral.session():
        first = _c_order(w.T)
        assert _c_order(w.T) is first  # one copy per analysis
    w *= 2
    assert not spectral._CACHE
    with spectral.session():
        np.testing.assert_array_equal(_c_order(w.T), np.ascontiguousarray(w.T))
    assert _c_order(w.T) is not _c_order(w.T)  # outside an analysis nothing is kept

"""Certified spectral bounds of constant weights, from one shared Gram matrix per weight.

The rank check (smallest singular value) and the residual check (largest singular value)
ask about the same weights; both read ``gram``, cached by the array's memory, so a weight
seen as ``W`` by one and as the view ``W.T`` by the other is factored once. Every bound is a
proof: a Cholesky factorization that succeeds in floating point shows a matrix positive
definite once its diagonal is lowered by the rounding slack (Rump, BIT 2006: about
(n + 1) u tr; the Gram's own rounding adds k u tr(G) for inner dimension k). Exact
eigenvalues (eigvalsh, the expensive path) are computed only when a certificate fails."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np

_CACHE: dict[tuple, tuple[np.ndarray, object]] = {}
_SESSIONS = 0
_EPS = float(np.finfo(np.float64).eps)
NORM_MARGIN = 1e-6  # relative margin on a spectral norm bound (covers eigvalsh's rounding)


def _key(kind: str, m: np.ndarray) -> tuple:
    """``kind`` of the matrix ``m`` as memory, layout and type: two views of one buffer with
    the same shape and strides are the same matrix (kept alive in the cache: no address
    reuse; emptied by ``forget``: no in-place change carried over)."""
    return kind, m.__array_interface__["data"][0], m.shape, m.strides, m.dtype.str


def cached(kind: str, m: np.ndarray, make):
    """``make(m)`` memoized by the matrix, until ``forget``."""
    key = _key(kind, m)
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        hit = _CACHE[key] = (m, make(m))
    return hit[1]


@contextlib.contextmanager
def session():
    """One analysis: shared from a clean cache, forgotten at its end (weights can be views of
    a model's parameters that training changes in place between analyses)."""
    global _SESSIONS
    forget()
    _SESSIONS += 1
    try:
        yield
    finally:
        _SESSIONS -= 1
        forget()


def in_session() -> bool:
    return _SESSIONS > 0


def forget() -> None:
    """Ends the sharing (at both ends of each analysis's ``session``). Weights can be views
    of a model's parameters that training changes in place, so nothing keyed by memory may
    carry over to the next analysis; what an inverse or a witness needs later is held by
    the judgements themselves (linear.Solver)."""
    _CACHE.clear()


def gram(m: np.ndarray) -> np.ndarray:
    """m.T @ m in float64 (exact products of float32 entries; sums rounded)."""
    return cached("gram", m, _gram)


def known_gram(m: np.ndarray) -> np.ndarray | None:
    """m's Gram matrix if the shared cache holds it (a rank check certified from a subset of
    rows never formed it), else None."""
    hit = _CACHE.get(_key("gram", m))
    return None if hit is None else hit[1]


def _gram(m: np.ndarray) -> np.ndarray:
    """m.T @ m with the float64 copy made in m's own memory order (a plain cast, no gather),
    in the a.T @ a or b @ b.T pattern numpy hands to BLAS syrk (half a general product)."""
    if m.flags.c_contiguous:
        a = m.astype(np.float64)
        return a.T @ a
    b = np.asarray(m.T, np.float64, order="C")
    return b @ b.T


def _slack(g: np.ndarray, inner: int, trace: float) -> float:
    """How far below a computed Cholesky's success the proof stands: the Gram's rounding
    (|fl(G) - G| <= gamma_k |A|^T |A|, spectral norm <= k eps tr G) and the factorization's
    (about (n + 1) eps/2 times the trace of the factored matrix, taken generously)."""
    return inner * _EPS * float(np.trace(g)) + 2 * (len(g) + 2) * _EPS * trace


def _positive_definite(mat: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(mat)
        return True
    except np.linalg.LinAlgError:
        return False


class Spectrum(NamedTuple):
    """What the rank check knows of x -> m @ x. ``how``: "certified" (smin is a proved lower
    bound, >= tol), "below" (smin is a proved upper bound, <= tol: rank-deficient at that
    tolerance) or "exact" (eigenvalues of the Gram matrix). tol = sigma_max * max(shape) *
    eps, numpy's matrix_rank tolerance, or larger when sigma_max is only bounded above."""

    smin: float
    smax: float
    tol: float
    how: str

    @property
    def full_rank(self) -> bool:
        return self.how == "certified" or (self.how == "exact" and self.smin > self.tol)


def spectrum(m: np.ndarray, dtype=np.float32) -> Spectrum:
    """The rank check of x -> m @ x (see ``_spectrum``), once per matrix and precision."""
    return cached(f"spectrum {np.dtype(dtype).str}", m, lambda _: _spectrum(m, dtype))


def _spectrum(m: np.ndarray, dtype) -> Spectrum:
    """The rank check of x -> m @ x, decided as numpy's smin > tol would decide it. A Cholesky
    factor of gram - c I with c = s^2 + slack, s = max(tol, sigma_max / 1e6), certifies
    sigma_min > s (full rank, well conditioned) in one O(n^3 / 3) step, first against
    Gershgorin's bound on sigma_max, then against a Lanczos estimate certified from above;
    a factorization failing below the tolerance shows rank deficiency (Higham, Thm 10.7);
    only what falls between (a band of relative width ~1e-4) needs eigvalsh.
    A tall m (rows >= 3 columns) first tries a strided subset of its rows, 1.5 x columns or
    an eighth of them (a vocabulary-sized head): dropping rows only lowers sigma_min
    (m^T m >= m_S^T m_S), so a certificate for the subset, against the Frobenius norm's
    larger tolerance, holds for m, at a half to an eighth of the Gram matrix's cost."""
    if not m.size:
        return Spectrum(0.0, 0.0, 0.0, "exact")
    eps = float(np.finfo(dtype).eps)  # the precision the model computes in, not the probe's
    rows, cols = m.shape
    relative = max(m.shape) * eps
    step = rows // max(3 * cols // 2, rows // 8, 1)
    if step >= 2:
        sub = m[::step]
        fro = float(np.sqrt(np.einsum("ij,ij->", m, m, dtype=np.float64)))
        hit = _floor(gram(sub), len(sub), fro * (1 + m.size * _EPS), relative)
        if hit is not None:
            return hit
    g = gram(m)
    smax = float(np.sqrt(np.abs(g).sum(axis=1).max()))  # >= sigma_max (Gershgorin)
    hit = _floor(g, rows, smax, relative)
    if hit is None and len(g) > 64:
        hit = _refine(m, g, relative)
    if hit is not None:
        return hit
    s = np.sqrt(np.clip(np.linalg.eigvalsh(g), 0, None))
    smax = float(s.max())
    return Spectrum(float(s.min()), smax, smax * relative, "exact")


def _floor(g: np.ndarray, inner: int, smax: float, relative: float) -> Spectrum | None:
    """spectrum's certified answer for Gram matrix g when sigma_max <= smax, else None."""
    tol = smax * relative
    shift = max(tol, smax * 1e-6)
    lowered = shift * shift + _slack(g, inner, float(np.trace(g)))
    if _positive_definite(g - lowered * np.eye(len(g))):
        return Spectrum(shift, smax, tol, "certified")
    return None


def _refine(m: np.ndarray, g: np.ndarray, relative: float) -> Spectrum | None:
    """With sigma_max pinned between a Lanczos estimate and its certified bound (relative
    width NORM_MARGIN), one factorization proves smin above the tolerance, or another one
    failing below it proves smin under it; None in the band between."""
    low = np.sqrt(max(cached("top", m, lambda _: _lanczos_top(g)), 0.0)) * (1 - 1e-9)
    high = low * (1 + 2 * NORM_MARGIN)
    hit = _floor(g, m.shape[0], high, relative)
    if hit is not None:
        return hit if _below(g, m.shape[0], high * high) else None
    # Cholesky succeeds on A when lambda_min(A) > n (n + 1) u max a_ii (Higham, Thm 10.7):
    # failing at c shows lambda_min(G) <= c + that + the Gram's rounding, here <= tol^2
    tol = low * relative
    n = len(g)
    c = tol * tol - n * (n + 1) * _EPS * float(g.diagonal().max()) - _slack(g, m.shape[0], 0)
    if c > 0 and not _positive_definite(g - c * np.eye(n)):
        return Spectrum(tol, low, tol, "below")
    return None


def _below(g: np.ndarray, inner: int, top: float) -> bool:
    """Whether lambda_max of the exact Gram matrix is below ``top``: a Cholesky factor of
    (top - slack) I - g exists."""
    room = top - _slack(g, inner, len(g) * top)
    return _positive_definite(room * np.eye(len(g)) - g)


def _norm_gram(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, m.T @ m) for the Gram matrix of 2-D ``w`` to use: a cached one, else the smaller."""
    a = w.reshape(w.shape[0], -1)
    ours, other = (a.T, a) if a.shape[0] <= a.shape[1] else (a, a.T)
    m = other if _key("gram", other) in _CACHE and _key("gram", ours) not in _CACHE else ours
    return m, gram(m)


def norm_floor(w: np.ndarray, steps: int = 8) -> tuple[float, bool]:
    """(a lower bound on the spectral norm of ``w``, whether it is exact up to NORM_MARGIN):
    exact when a side is at most 64 (a small Gram matrix), else a few power steps on w
    itself, no Gram matrix: enough to show norms too large for a contraction, never that
    they are small enough (``norm_bound`` does that)."""
    a = w.reshape(w.shape[0], -1)
    if min(a.shape) <= 64:
        return norm_bound(w), True
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    v = np.random.default_rng(0).standard_normal(a.shape[1]).astype(a.dtype)
    for _ in range(steps):
        v = a.T @ (a @ v)
        v /= np.linalg.norm(v)
    # the Rayleigh quotient |a v| / |v| <= |a|, less a bound on its rounding in a's precision
    rounding = min(0.5, 4 * max(a.shape) * float(np.finfo(a.dtype).eps))
    return float(np.linalg.norm(a @ v) / np.linalg.norm(v)) * (1 - rounding), False


def norm_bound(w: np.ndarray) -> float:
    """An upper bound on the spectral norm of ``w`` (rows are outputs), within NORM_MARGIN of
    exact: from whichever of its Gram matrices is cached (else the smaller), a Lanczos
    estimate certified by one Cholesky factor of bound^2 I - G (a third of the cost of the
    full eigenvalue solve, which decides only when the certificate fails)."""
    m, g = _norm_gram(w)
    if len(g) <= 64:
        return exact_norm(g) if g.size else 0.0
    top = cached("top", m, lambda _: _lanczos_top(g))
    bound = float(np.sqrt(max(top, 0.0)) * (1 + NORM_MARGIN))
    return bound if _below(g, m.shape[0], bound * bound) else exact_norm(g)


def exact_norm(g: np.ndarray) -> float:
    """sqrt of g's top eigenvalue from the full symmetric eigensolver, plus NORM_MARGIN."""
    return float(np.sqrt(max(np.linalg.eigvalsh(g).max(initial=0.0), 0.0)) * (1 + NORM_MARGIN))


def _lanczos_top(g: np.ndarray, steps: int = 160) -> float:
    """The largest Ritz value of symmetric ``g`` on a Krylov space from a fixed start (an
    estimate from below, converging fast at the top; full reorthogonalization, twice)."""
    n = min(steps, len(g))
    basis = np.zeros((n, len(g)))
    start = np.random.default_rng(0).standard_normal(len(g))
    basis[0] = start / np.linalg.norm(start)
    alpha, beta, top = np.zeros(n), np.zeros(n), -np.inf
    for j in range(n):
        w = g @ basis[j]
        alpha[j] = basis[j] @ w
        for _ in range(2):
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta[j] = np.linalg.norm(w)
        done = j + 1 == n or beta[j] <= 1e-12 * max(abs(alpha[j]), 1e-300)
        if done or j % 8 == 7:
            t = np.diag(alpha[: j + 1]) + np.diag(beta[:j], 1) + np.diag(beta[:j], -1)
            new = float(np.linalg.eigvalsh(t)[-1])
            if done or new - top <= 1e-9 * abs(new):
                return new
            top = new
        basis[j + 1] = w / beta[j]
    return top

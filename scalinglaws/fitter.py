"""A law-agnostic, vectorised multi-start robust fitter.

It minimises ``sum_i rho(f_i(theta) - y_i)`` for many starts at once, where ``rho`` is
the Huber loss (or half the squared error) and ``f`` is any model that gives values
and a Jacobian for a batch of parameter vectors.  It knows nothing of scaling laws.

Algorithm: a damped Newton method (Levenberg-Marquardt style trust control) advanced
for all starts together as numpy arrays.  When the model supplies the curvature
``sum_i w_i Hessian(f_i)`` the step uses the full Hessian of the objective,
``J^T diag(rho'') J + sum_i rho'(r_i) Hessian(f_i)``; otherwise the IRLS majoriser
``J^T diag(rho'(r)/r) J``, which keeps Huber steps stable.  Box bounds are handled by
projection with an active set.  Starts that have converged are frozen; starts that
arrive at the same point (within ``merge_tol``) are merged and carry a multiplicity,
so the report still counts every start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class Model(Protocol):  # pragma: no cover - a typing aid
    has_curvature: bool

    def value(self, theta: np.ndarray) -> np.ndarray: ...

    def value_jac(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def curvature(self, theta: np.ndarray, w: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class RobustLoss:
    """``huber`` (quadratic within ``delta``, linear outside) or ``mse`` (half squared error)."""

    kind: str = "huber"
    delta: float = 1e-3

    def __post_init__(self):
        if self.kind not in ("huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {self.kind!r}")
        if self.kind == "huber" and not (self.delta > 0 and np.isfinite(self.delta)):
            raise ValueError(f"delta must be a finite number > 0, got {self.delta}")

    def rho(self, r):
        if self.kind == "mse":
            return 0.5 * r * r
        a = np.abs(r)
        return np.where(a <= self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))

    def psi(self, r):
        return r if self.kind == "mse" else np.clip(r, -self.delta, self.delta)

    def dpsi(self, r):
        return np.ones_like(r) if self.kind == "mse" else (np.abs(r) <= self.delta).astype(float)

    def irls_weight(self, r):
        if self.kind == "mse":
            return np.ones_like(r)
        a = np.abs(r)
        return np.where(a <= self.delta, 1.0, self.delta / np.maximum(a, 1e-300))

    def total(self, r, weights=None):
        v = self.rho(r)
        return v.sum(axis=-1) if weights is None else v @ weights


@dataclass
class MultiStartResult:
    """Outcome of :func:`minimize_multistart`.

    Attributes
    ----------
    x : best point (P,)
    fun : best objective
    xs, funs : final point and objective of every start, shapes (S, P) and (S,)
    converged : (S,) bool, whether each start met the convergence test
    n_iter : (S,) iterations each start ran (merged starts share their representative's)
    n_best : number of starts whose objective is within ``rtol_best`` of the best
    n_evals : model evaluations (batched calls), for benchmarks
    """

    x: np.ndarray
    fun: float
    xs: np.ndarray
    funs: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    n_best: int
    n_starts: int
    n_evals: int = 0
    message: str = ""
    best_converged: bool = True
    extra: dict = field(default_factory=dict)


def minimize_multistart(model: Model, y: np.ndarray, starts: np.ndarray, lower: np.ndarray,
                        upper: np.ndarray, loss: RobustLoss = RobustLoss(), *, free: np.ndarray | None = None,
                        weights: np.ndarray | None = None, max_iter: int = 400, ftol: float = 1e-13,
                        xtol: float = 1e-10, gtol: float = 1e-14, merge_tol: float = 1e-9,
                        rtol_best: float = 1e-6, progress=None) -> MultiStartResult:
    """Minimise ``sum_i weights_i * rho(model(theta)_i - y_i)`` from every row of ``starts``.

    Parameters
    ----------
    model : object with ``value(theta)``, ``value_jac(theta)``, ``has_curvature`` and
        (if ``has_curvature``) ``curvature(theta, w)``; ``theta`` has shape (S, P).
    y : (n,) targets.
    starts : (S, P) start points (clipped into the bounds).
    lower, upper : (P,) bounds (may be infinite).
    loss : the robust loss.
    free : (P,) bool; False holds that parameter at its start value.
    weights : (n,) non-negative run weights (bootstrap counts); default all 1.
    progress : optional callable(done_fraction) for a progress bar.
    """
    y = np.asarray(y, dtype=float)
    X0 = np.clip(np.asarray(starts, dtype=float), lower, upper)
    S, P = X0.shape
    free = np.ones(P, bool) if free is None else np.asarray(free, bool)
    w_run = None if weights is None else np.asarray(weights, dtype=float)
    evals = 0

    def objective(theta):
        nonlocal evals
        evals += 1
        with np.errstate(all="ignore"):
            r = model.value(theta) - y
            v = loss.total(r, w_run)
        return np.where(np.isfinite(v), v, np.inf)

    # Merge identical starts up front (a fixed parameter collapses its grid axis).
    uniq, inverse = np.unique(X0, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    owner = inverse.copy()  # start -> row of the working arrays
    X = uniq.copy()
    mult = np.bincount(inverse, minlength=len(uniq)).astype(int)
    F = objective(X)
    lam = np.full(len(X), 1e-3)
    it = np.zeros(len(X), int)
    conv = np.zeros(len(X), bool)
    active = np.isfinite(F)
    need = active.copy()  # rows whose gradient/Hessian must be recomputed
    G = np.zeros((len(X), P))
    H = np.zeros((len(X), P, P))
    eye = np.eye(P)
    total_work = max(1, active.sum())

    for k in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        # -- gradient and Hessian where the point moved
        ridx = idx[need[idx]]
        if ridx.size:
            th = X[ridx]
            with np.errstate(all="ignore"):
                f, J = model.value_jac(th)
                evals += 1
                r = f - y
                psi = loss.psi(r)
                if w_run is not None:
                    psi = psi * w_run
                g = np.einsum("snp,sn->sp", J, psi)
                if model.has_curvature:
                    d2 = loss.dpsi(r) if w_run is None else loss.dpsi(r) * w_run
                    h = np.einsum("snp,snq->spq", J * d2[:, :, None], J) + model.curvature(th, psi)
                else:
                    wr = loss.irls_weight(r) if w_run is None else loss.irls_weight(r) * w_run
                    h = np.einsum("snp,snq->spq", J * wr[:, :, None], J)
            bad = ~(np.isfinite(g).all(1) & np.isfinite(h).all((1, 2)))
            g[bad] = 0.0
            h[bad] = eye
            G[ridx], H[ridx] = g, h
            need[ridx] = False
        th, g, h, l = X[idx], G[idx], H[idx], lam[idx]
        # -- active set: fixed parameters and bounds the gradient pushes against
        lo_hit = (th <= lower + 1e-12 * (1 + np.abs(lower))) & (g > 0)
        hi_hit = (th >= upper - 1e-12 * (1 + np.abs(upper))) & (g < 0)
        blocked = lo_hit | hi_hit | ~free
        g = np.where(blocked, 0.0, g)
        keep = (~blocked)[:, :, None] & (~blocked)[:, None, :]
        h = np.where(keep, h, 0.0)
        # -- damped system (H + lam * (|diag H| + tiny)) step = -g
        diag = np.abs(np.diagonal(h, axis1=1, axis2=2))
        scale = np.maximum(diag, 1e-12 * np.maximum(diag.max(1, keepdims=True), 1e-300))
        A = h + (l[:, None] * scale)[:, :, None] * eye + blocked[:, :, None] * eye
        try:
            step = -np.linalg.solve(A, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(A, g)])
        step = np.where(blocked | ~np.isfinite(step), 0.0, step)
        gnorm = np.abs(g).max(1)
        descent = (step * g).sum(1) < 0
        trial = np.clip(th + step, lower, upper)
        Ft = np.full(idx.size, np.inf)
        go = descent & (gnorm > 0)
        if go.any():
            Ft[go] = objective(trial[go])
        Fi = F[idx]
        accept = Ft < Fi
        rel = np.where(accept, (Fi - Ft) / np.maximum(np.abs(Fi), 1e-300), 0.0)
        moved = np.abs(trial - th).max(1)
        # -- update
        a_idx, r_idx = idx[accept], idx[~accept]
        X[a_idx], F[a_idx] = trial[accept], Ft[accept]
        lam[a_idx] = np.maximum(lam[a_idx] * 0.2, 1e-12)
        lam[r_idx] = lam[r_idx] * 8.0
        need[a_idx] = True
        it[idx] += 1
        done = (accept & (rel < ftol) & (moved < xtol * (1 + np.abs(th).max(1)))) \
            | (gnorm <= gtol * np.maximum(np.abs(Fi), 1e-300)) | (~accept & (lam[idx] > 1e14))
        conv[idx[done]] = True
        active[idx[done]] = False
        # -- merge rows that sit on the same point (their futures are identical)
        if merge_tol > 0 and k % 5 == 4:
            aidx = np.flatnonzero(active | conv)
            if aidx.size > 1:
                key = np.round(X[aidx] / merge_tol).astype(np.int64) if merge_tol else X[aidx]
                _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
                inv = inv.reshape(-1)
                rep = aidx[first][inv]
                dup = rep != aidx
                if dup.any():
                    # prefer a converged representative: it stays, the duplicate follows it
                    for src, dst in zip(aidx[dup], rep[dup]):
                        owner[owner == src] = dst
                        mult[dst] += mult[src]
                        mult[src] = 0
                        conv[dst] = conv[dst] or conv[src]
                        active[src] = False
                        active[dst] = active[dst] and not conv[dst]
        if progress is not None:
            progress(1.0 - active.sum() / total_work)

    xs, funs, converged_all, iters = X[owner], F[owner], conv[owner], it[owner]
    finite = np.isfinite(funs)
    if not finite.any():
        return MultiStartResult(x=np.full(P, np.nan), fun=np.inf, xs=xs, funs=funs, converged=converged_all,
                                n_iter=iters, n_best=0, n_starts=S, n_evals=evals,
                                message="no start gave a finite objective", best_converged=False)
    best = int(np.nanargmin(np.where(finite, funs, np.inf)))
    fbest = funs[best]
    n_best = int((funs <= fbest + rtol_best * max(abs(fbest), 1e-300)).sum())
    ok = bool(converged_all[best])
    msg = "converged" if ok else f"best start did not converge within {max_iter} iterations"
    return MultiStartResult(x=xs[best].copy(), fun=float(fbest), xs=xs, funs=funs, converged=converged_all,
                            n_iter=iters, n_best=n_best, n_starts=S, n_evals=evals, message=msg,
                            best_converged=ok)

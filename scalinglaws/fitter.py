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


def _newton(model, y, loss, X, F, lower, upper, free, w_run, *, max_iter, ftol, xtol, gtol, counter,
            progress=None):
    """Advance every row of ``X`` (in place) by damped Newton steps until each converges.

    Returns (converged mask, iterations per row).  ``F`` holds the objective of each row.
    """
    S, P = X.shape
    lam = np.full(S, 1e-3)
    it = np.zeros(S, int)
    conv = np.zeros(S, bool)
    active = np.isfinite(F)
    need = active.copy()
    G = np.zeros((S, P))
    H = np.zeros((S, P, P))
    eye = np.eye(P)
    total = max(1, int(active.sum()))

    def objective(theta):
        counter[0] += 1
        with np.errstate(all="ignore"):
            v = loss.total(model.value(theta) - y, w_run)
        return np.where(np.isfinite(v), v, np.inf)

    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        ridx = idx[need[idx]]
        if ridx.size:  # gradient and Hessian where the point moved
            th = X[ridx]
            with np.errstate(all="ignore"):
                f, J = model.value_jac(th)
                counter[0] += 1
                r = f - y
                psi = loss.psi(r) if w_run is None else loss.psi(r) * w_run
                Jt = J.transpose(0, 2, 1)
                g = np.matmul(Jt, psi[:, :, None])[:, :, 0]
                if model.has_curvature:
                    d2 = loss.dpsi(r) if w_run is None else loss.dpsi(r) * w_run
                    h = np.matmul(Jt * d2[:, None, :], J) + model.curvature(th, psi)
                else:
                    wr = loss.irls_weight(r) if w_run is None else loss.irls_weight(r) * w_run
                    h = np.matmul(Jt * wr[:, None, :], J)
            bad = ~(np.isfinite(g).all(1) & np.isfinite(h).all((1, 2)))
            g[bad], h[bad] = 0.0, eye
            G[ridx], H[ridx] = g, h
            need[ridx] = False
        th, g, h, l = X[idx], G[idx], H[idx], lam[idx]
        # active set: fixed parameters and bounds the gradient pushes against
        lo_hit = (th <= lower + 1e-12 * (1 + np.abs(lower))) & (g > 0)
        hi_hit = (th >= upper - 1e-12 * (1 + np.abs(upper))) & (g < 0)
        blocked = lo_hit | hi_hit | ~free
        g = np.where(blocked, 0.0, g)
        h = np.where((~blocked)[:, :, None] & (~blocked)[:, None, :], h, 0.0)
        # damped system (H + lam * (|diag H| + tiny)) step = -g
        diag = np.abs(np.diagonal(h, axis1=1, axis2=2))
        scale = np.maximum(diag, 1e-12 * np.maximum(diag.max(1, keepdims=True), 1e-300))
        A = h + (l[:, None] * scale + blocked)[:, :, None] * eye
        try:
            step = -np.linalg.solve(A, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(A, g)])
        step = np.where(blocked | ~np.isfinite(step), 0.0, step)
        gnorm = np.abs(g).max(1)
        trial = np.clip(th + step, lower, upper)
        Ft = np.full(idx.size, np.inf)
        go = ((step * g).sum(1) < 0) & (gnorm > 0)
        if go.any():
            Ft[go] = objective(trial[go])
        Fi = F[idx]
        accept = Ft < Fi
        rel = np.where(accept, (Fi - Ft) / np.maximum(np.abs(Fi), 1e-300), 0.0)
        moved = np.abs(trial - th).max(1)
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
        if progress is not None:
            progress(1.0 - active.sum() / total)
    return conv, it


def minimize_multistart(model: Model, y: np.ndarray, starts: np.ndarray, lower: np.ndarray,
                        upper: np.ndarray, loss: RobustLoss = RobustLoss(), *, free: np.ndarray | None = None,
                        weights: np.ndarray | None = None, max_iter: int = 400, explore_iter: int = 40,
                        ftol: float = 1e-13, xtol: float = 1e-10, gtol: float = 1e-14,
                        merge_tol: float = 1e-4, polish_rtol: float = 0.05, rtol_best: float = 1e-6,
                        progress=None) -> MultiStartResult:
    """Minimise ``sum_i weights_i * rho(model(theta)_i - y_i)`` from every row of ``starts``.

    Three steps: (1) *explore*: every distinct start takes up to ``explore_iter``
    damped Newton steps (stopping early once converged); (2) *merge*: end points that
    agree within ``merge_tol`` (in the fitted space) are one point; (3) *polish*: each
    merged point whose objective is within ``polish_rtol`` of the best continues to
    tight convergence (``max_iter`` steps in all).  Every start is reported with the
    end point of its merged point; starts left behind after exploring are marked not
    converged.

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
    counter = [0]
    common = dict(lower=lower, upper=upper, free=free, w_run=w_run, counter=counter, gtol=gtol)

    # identical starts (a fixed parameter collapses its grid axis) are run once
    X, owner = np.unique(X0, axis=0, return_inverse=True)
    owner = owner.reshape(-1)
    with np.errstate(all="ignore"):
        F = loss.total(model.value(X) - y, w_run)
    counter[0] += 1
    F = np.where(np.isfinite(F), F, np.inf)
    report = (lambda f: progress(0.8 * f)) if progress else None
    conv, it = _newton(model, y, loss, X, F, max_iter=min(explore_iter, max_iter), ftol=ftol, xtol=xtol,
                       progress=report, **common)

    # merge end points, then polish the promising ones
    finite = np.isfinite(F)
    if finite.any():
        key = np.round(X / merge_tol).astype(np.int64)
        _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        rep = first[inv]            # row -> representative row
        fbest = F[finite].min()
        cand = np.unique(rep[F <= fbest + polish_rtol * abs(fbest)])
        if cand.size and max_iter > explore_iter:
            Xc, Fc = X[cand].copy(), F[cand].copy()
            report = (lambda f: progress(0.8 + 0.2 * f)) if progress else None
            cc, ic = _newton(model, y, loss, Xc, Fc, max_iter=max_iter - explore_iter, ftol=ftol, xtol=xtol,
                             progress=report, **common)
            X[cand], F[cand], conv[cand], it[cand] = Xc, Fc, cc, it[cand] + ic
        owner = rep[owner]
    if progress:
        progress(1.0)
    xs, funs, converged_all, iters = X[owner], F[owner], conv[owner], it[owner]
    finite = np.isfinite(funs)
    if not finite.any():
        return MultiStartResult(x=np.full(P, np.nan), fun=np.inf, xs=xs, funs=funs, converged=converged_all,
                                n_iter=iters, n_best=0, n_starts=S, n_evals=counter[0],
                                message="no start gave a finite objective", best_converged=False)
    best = int(np.argmin(np.where(finite, funs, np.inf)))
    fbest = funs[best]
    n_best = int((funs <= fbest + rtol_best * max(abs(fbest), 1e-300)).sum())
    ok = bool(converged_all[best])
    msg = "converged" if ok else f"best start did not converge within {max_iter} iterations"
    return MultiStartResult(x=xs[best].copy(), fun=float(fbest), xs=xs, funs=funs, converged=converged_all,
                            n_iter=iters, n_best=n_best, n_starts=S, n_evals=counter[0], message=msg,
                            best_converged=ok)

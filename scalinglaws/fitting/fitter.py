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

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Protocol

import numpy as np

from scalinglaws.fitting import workers
from scalinglaws.fitting.defaults import HUBER_DELTA

_EPS = np.finfo(float).eps
#: a last round of more starts than this first converges in single precision (to ``_SINGLE_FTOL``)
_PREPOLISH = 64
_SINGLE_FTOL = 1e-7
#: starts the halving stopped within this relative distance of the best have their objective
#: recomputed in double precision at the end (the others keep their single-precision one)
_NEAR_BEST = 1e-3
#: the last round converges its starts in fixed chunks of at most this many (in worker processes when
#: there are several chunks and cores): the chunks, not the core count, decide the numbers
FINISH_CHUNK = 400


class Model(Protocol):  # pragma: no cover - a typing aid
    def value(self, theta: np.ndarray) -> np.ndarray: ...

    def evaluate(self, theta: np.ndarray, jac: bool = False) -> tuple[np.ndarray, object]: ...

    def grad_hess(self, theta: np.ndarray, cache, psi: np.ndarray, hw: np.ndarray,
                  cw: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class RobustLoss:
    """``huber`` (quadratic within ``delta``, linear outside) or ``mse`` (half squared error)."""

    kind: str = "huber"
    delta: float = HUBER_DELTA

    def __post_init__(self):
        if self.kind not in ("huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {self.kind!r}")
        if self.kind == "huber" and not (self.delta > 0 and np.isfinite(self.delta)):
            raise ValueError(f"delta must be a finite number > 0, got {self.delta}")

    def rho(self, r):
        if self.kind == "mse":
            return 0.5 * r * r
        a = np.abs(r)
        m = np.minimum(a, self.delta)
        return m * (a - 0.5 * m)          # a^2/2 within delta, delta (a - delta/2) outside

    def psi(self, r):
        return r if self.kind == "mse" else np.clip(r, -self.delta, self.delta)

    def dpsi(self, r):
        return np.ones_like(r) if self.kind == "mse" else (np.abs(r) <= self.delta).astype(r.dtype)

    def irls_weight(self, r):
        """``psi(r) / r``: the weights of the quadratic majoriser of ``rho`` at ``r``."""
        if self.kind == "mse":
            return np.ones_like(r)
        return self.delta / np.maximum(np.abs(r), self.delta)

    def total(self, r, weights=None):
        v = self.rho(r)
        if weights is None:
            return v.sum(axis=-1)
        return v @ weights if weights.ndim == 1 else (v * weights).sum(axis=-1)


def explore_subset(n: int, explore_rows: int, seed: int) -> np.ndarray:
    """The seeded subset of ``explore_rows`` of ``n`` runs (sorted) on which a large table's starts are ranked."""
    return np.sort(np.random.default_rng(seed).choice(n, int(explore_rows), replace=False))


@dataclass
class MultiStartResult:
    """Outcome of :func:`minimize_multistart`.

    Attributes
    ----------
    x : best point (P,)
    fun : best objective
    xs, funs : final point and objective of every start, shapes (S, P) and (S,).  A start the halving
        stopped reports its objective as last computed, in single precision (its rounding, about
        1e-7 of each run's term, dominates an objective near 0, as in noise-free fits), unless it is
        within 0.1% of the best (or below it), where it is recomputed in double precision; NaN for
        one stopped on the run subset of a large table (see ``explore_rows``)
    converged : (S,) bool, whether each start met the convergence test
    n_iter : (S,) iterations each start ran (merged starts share their representative's)
    n_best : number of starts whose objective is within ``rtol_best`` of the best
    n_stopped : starts stopped by the successive halving before they converged
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
    n_stopped: int = 0
    message: str = ""
    best_converged: bool = True


def _take(cache, rows):
    """Rows of a model's cache (None, an array, or a tuple of arrays with rows first)."""
    if cache is None:
        return None
    if isinstance(cache, tuple):
        return tuple(_take(c, rows) for c in cache)
    return cache[rows]


def _blocks(rows, size):
    """``rows`` in consecutive blocks of about ``size``: arrays that stay in the CPU cache."""
    n = -(-rows.size // size)
    return np.array_split(rows, n) if n > 1 else [rows] if n else []


def _rows(w, rows):
    """Run weights for some rows: ``w`` is None, (n,) shared by all rows, or (S, n)."""
    return w if w is None or w.ndim == 1 else w[rows]


def _lm(model, y, loss, X, F, lower, upper, free, w, *, max_iter, ftol, gtol, switch, counter,
        progress=None, exact=None, block=None, backtrack=True):
    """Advance every row of ``X`` (in place) by trust-controlled Newton steps until each converges.

    Each row starts with IRLS (Gauss-Newton on the Huber majoriser, which walks out of
    the linear region of the loss reliably) and switches to exact Newton steps (the
    loss's own curvature plus the model's, when it has it) once a step improves the
    objective by less than ``switch`` relative: there IRLS would only converge
    linearly.  The damping follows Nielsen's rule on the ratio of actual to predicted
    decrease.  ``F`` holds each row's objective and is updated in place.

    With ``backtrack``, a rejected step that points downhill is tried again at once at a fraction of
    its length along the same direction (the minimum of the parabola through the objective, its slope
    and the trial's objective, within [0.1, 0.5]; the damping is left as it was when that is taken).
    In a long curved valley the undamped direction is often right and only too long: raising the
    damping instead turns the step toward the gradient and shrinks it, and the row then crawls
    (bootstrap refits of 16-18 parameter laws took ~30 steps, 20-35% fewer with it).

    The rows are independent problems.  Each iteration does the small (rows, P, P) work once for
    every active row and calls the model in blocks of about ``block`` rows, whose (block, n) arrays
    stay in the CPU cache.

    Returns (converged mask, iterations per row, exact-mode mask).
    """
    S, P = X.shape
    if block is None:  # (block, n) arrays under 256 KB: no numpy temporary elision checks, cache resident
        block = max(8, 30000 // max(1, y.size))
    lam = np.full(S, 1e-3)
    nu = np.full(S, 2.0)
    it = np.zeros(S, int)
    conv = np.zeros(S, bool)
    exact = np.zeros(S, bool) if exact is None else exact.copy()
    active = np.isfinite(F)
    G = np.zeros((S, P))
    taken = np.ones(S, bool)  # whether the row's last trial was taken: its next one likely is
    H = np.zeros((S, P, P))
    eye = np.eye(P)
    held = ~np.asarray(free, bool)
    at_lower = lower + 1e-12 * (1 + np.abs(lower))  # a parameter this close to a bound is on it
    at_upper = upper - 1e-12 * (1 + np.abs(upper))
    total = max(1, int(active.sum()))
    eps = max(_EPS, float(np.finfo(y.dtype).eps))  # the objective's rounding (single precision: 5e8 times double's)

    def derivatives(rows, theta, f, cache, keep=None):
        """The gradient and Hessian of ``rows`` at ``theta`` (values ``f``, the model's ``cache``) into
        G and H; with ``keep``, of those rows only (the others' are computed with them and dropped:
        cheaper than copying most of a cache)."""
        wr = _rows(w, rows)
        r = f - y
        psi = loss.psi(r)
        ex = exact[rows]
        if ex.all():
            hw = loss.dpsi(r)
        elif ex.any():
            hw = np.where(ex[:, None], loss.dpsi(r), loss.irls_weight(r))
        else:
            hw = loss.irls_weight(r)
        if wr is not None:
            psi, hw = psi * wr, hw * wr
        cw = psi * ex[:, None] if ex.any() else None
        g, h = model.grad_hess(theta, cache, psi, hw, cw)
        if keep is not None:
            rows, g, h = rows[keep], g[keep], h[keep]
        bad = ~(np.isfinite(g).all(1) & np.isfinite(h).all((1, 2)))
        if bad.any():
            g[bad], h[bad] = 0.0, eye
            active[rows[bad]] = False  # no usable derivatives here: the start stops, not converged
        G[rows], H[rows] = g, h

    def at(rows):
        """Values and derivatives at the rows' current points, in blocks."""
        for b in _blocks(rows, block):
            f, cache = model.evaluate(X[b], jac=True)
            counter[0] += 1
            derivatives(b, X[b], f, cache)

    def accepted(Fi, Ft, pred):
        """A step is taken where it lowers the objective by more than 1e-4 of the predicted decrease."""
        return (Ft < Fi) & ((Fi - Ft) / pred > 1e-4)

    def trials(rows, points, Fi, pred, eager):
        """Objectives of ``rows`` at trial ``points`` (in blocks; inf where not finite) and which steps
        are accepted; the accepted rows' derivatives are computed at once, from the model's cache.
        With ``eager``, where at least half of the rows took their last step, the model computes its
        Jacobian with the values (one pass for a step that is taken, a wasted Jacobian for one that is
        not: bootstrap refits of the generic laws 1.0-1.26x faster, measured alternating in one process)."""
        Ft, ok = np.empty(rows.size), np.zeros(rows.size, bool)
        jac = eager and 2 * taken[rows].sum() >= rows.size
        for b in _blocks(np.arange(rows.size), block):
            ft, cache_t = model.evaluate(points[b], jac=jac)
            counter[0] += 1
            v = loss.total(ft - y, _rows(w, rows[b]))
            Ft[b] = np.where(np.isfinite(v), v, np.inf)
            ok[b] = good = accepted(Fi[b], Ft[b], pred[b])
            if 4 * good.sum() >= 3 * good.size:  # most steps taken: no copy of the cache (1.0-1.18x)
                derivatives(rows[b], points[b], ft, cache_t, good)
            elif good.any():
                derivatives(rows[b[good]], points[b[good]], ft[good], _take(cache_t, good))
        taken[rows] = ok
        return Ft, ok

    def iterate(idx):
        th, g, h, l = X[idx], G[idx], H[idx], lam[idx]
        # active set: fixed parameters and bounds the gradient pushes against
        blocked = ((th <= at_lower) & (g > 0)) | ((th >= at_upper) & (g < 0)) | held
        if blocked.any():
            g = np.where(blocked, 0.0, g)
            h = np.where((~blocked)[:, :, None] & (~blocked)[:, None, :], h, 0.0)
        diag = np.abs(np.diagonal(h, axis1=1, axis2=2))
        scale = np.maximum(diag, 1e-12 * np.maximum(diag.max(1, keepdims=True), 1e-300))
        A = h + (l[:, None] * scale + blocked)[:, :, None] * eye
        try:
            step = -np.linalg.solve(A, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(A, g)])
        step = np.where(blocked | ~np.isfinite(step), 0.0, step)
        trial = np.clip(th + step, lower, upper)
        se = trial - th
        gs, sHs = (g * se).sum(1), np.einsum("sp,spq,sq->s", se, h, se)
        pred = -(gs + 0.5 * sHs)
        Fi = F[idx]
        Ft = np.full(idx.size, np.inf)
        go = (pred > 0) & (np.abs(se).max(1) > 0)
        safe = np.where(go, pred, 1.0)
        accept = np.zeros(idx.size, bool)
        pos = np.flatnonzero(go)
        Ft[pos], accept[pos] = trials(idx[pos], trial[pos], Fi[pos], safe[pos], True)
        kept = np.zeros(idx.size, bool)
        if backtrack:
            back = np.flatnonzero(go & ~accept & np.isfinite(Ft) & (gs < 0))
            # the step overshot: try a fraction of it along the same direction (the minimum of the
            # parabola through F, the slope and the trial's objective, within [0.1, 0.5])
            a = np.clip(-gs[back] / (2 * np.maximum(Ft[back] - Fi[back] - gs[back], 1e-300)), 0.1, 0.5)
            pb = -(a * gs[back] + 0.5 * a * a * sHs[back])
            back, a, pb = back[pb > 0], a[pb > 0], pb[pb > 0]
            if back.size:
                tb = th[back] + a[:, None] * se[back]
                vb, ok = trials(idx[back], tb, Fi[back], pb, False)
                back = back[ok]
                trial[back], Ft[back], safe[back], kept[back] = tb[ok], vb[ok], pb[ok], True
                accept |= kept
        rho = np.where(go, (Fi - Ft) / safe, -1.0)
        # Nielsen's damping rule (a step kept by backtracking leaves the damping as it was)
        upd = accept & ~kept
        lam[idx[upd]] = np.maximum(l[upd] * np.maximum(1 / 3, 1 - (2 * rho[upd] - 1) ** 3), 1e-15)
        nu[idx[upd]] = 2.0
        rej = idx[~accept]
        lam[rej] *= nu[rej]
        nu[rej] *= 2.0
        rel = np.where(accept, (Fi - Ft) / np.maximum(np.abs(Fi), 1e-300), 0.0)
        a_idx = idx[accept]
        X[a_idx], F[a_idx] = trial[accept], Ft[accept]
        it[idx] += 1
        gnorm = np.abs(g).max(1)
        ex = exact[idx]
        small = accept & (rel < switch) & ~ex
        # a step that cannot beat the objective's rounding is not helped by more damping (which only
        # shrinks it): rejected with a predicted decrease at rounding level, the row is done
        stuck = ~accept & ((lam[idx] > 1e12) | (ex & (pred > 0) & (pred <= 8 * eps * np.abs(Fi))))
        # an IRLS row that stalls or is stuck goes on with exact steps; an exact row that is
        # stuck, or improves by less than ftol, or has no gradient left, is done
        to_exact = idx[small | (stuck & ~ex)]
        restart = idx[stuck & ~ex]  # IRLS is stuck: try exact steps from here
        stuck &= ex
        done = (ex & accept & (rel < ftol)) | stuck | (gnorm <= gtol * np.maximum(np.abs(Fi), 1e-300))
        exact[to_exact] = True          # from the next accepted step on (at once where stuck)
        lam[to_exact], nu[to_exact] = np.minimum(lam[to_exact], 1e-3), 2.0
        if restart.size:
            at(restart)
        conv[idx[done]] = True
        active[idx[done]] = False

    with np.errstate(all="ignore"):
        at(np.flatnonzero(active))
        for _ in range(max_iter):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            iterate(rows)
            if progress is not None:
                progress(1.0 - active.sum() / total)
    return conv, it, exact


def minimize_multistart(model: Model, y: np.ndarray, starts: np.ndarray, lower: np.ndarray,
                        upper: np.ndarray, loss: RobustLoss = RobustLoss(), *, free: np.ndarray | None = None,
                        weights: np.ndarray | None = None, max_iter: int = 400, round_iter: int = 3,
                        keep: float = 0.25, min_keep: int = 32, ftol: float = 1e-13, gtol: float = 1e-14,
                        switch: float = 1e-4, merge_tol: float = 1e-6, rtol_best: float = 1e-6,
                        explore_dtype=np.float32, explore_rows: int | None = 2048, seed: int = 0,
                        newton: bool = False, confirm: int = 0, n_jobs: int | None = 1,
                        progress=None) -> MultiStartResult:
    """Minimise ``sum_i weights_i * rho(model(theta)_i - y_i)`` from every row of ``starts``.

    Successive halving: every distinct start takes ``round_iter`` steps; then only the
    best ``keep`` fraction of the starts still moving (at least ``min_keep``) goes on
    for another round, and so on until at most ``min_keep`` are left, which run to
    convergence in double precision (at most ``max_iter`` steps less those of the rounds).
    Before that round, survivors of a large table converge on its run subset, and more than
    64 survivors converge in single precision first (each at most ``max_iter`` steps): cheap
    steps that leave the double-precision round few.  Starts that converge in
    that round drop out at once (in the single-precision rounds they only pause), and
    keep their end point; starts that arrive at the same point (within ``merge_tol`` in
    the fitted space) are merged and follow one path from then on.  A start stopped by
    the halving is reported with its last point and marked not converged, so
    ``n_best`` counts only starts that really reached the best optimum.

    Parameters
    ----------
    model : object with ``value(theta)``, ``evaluate(theta, jac=False) -> (values, cache)`` (``jac``: a
        hint that the derivatives will be wanted, which a model may compute with the values; the
        values must not depend on it) and
        ``grad_hess(theta, cache, psi, hw, cw) -> (g, H)`` where ``g = J^T psi`` and
        ``H = J^T diag(hw) J + sum_i cw_i Hessian(f_i)`` (``cw`` may be None: no model
        curvature); ``theta`` has shape (S, P) and values (S, n).
    y : (n,) targets.
    starts : (S, P) start points (clipped into the bounds).
    lower, upper : (P,) bounds (may be infinite).
    loss : the robust loss.
    free : (P,) bool; False holds that parameter at its start value.
    weights : run weights (bootstrap counts): (n,) for every start, or (S, n), one
        weighting per start.  With per-start weights every row is its own problem: rows
        are neither de-duplicated, merged nor stopped, and each runs to convergence.
    switch : relative improvement below which a start leaves IRLS for exact Newton steps.
    newton : start every row with exact Newton steps instead of IRLS (for starts already
        near their optimum with a loss whose curvature there is known, such as a profile's refits).
    explore_dtype : precision of the halving rounds when the model has ``astype(dtype)``
        (single precision is twice as fast; the last round, which converges, is float64).
    explore_rows : with more runs than this, the halving rounds see a seeded random subset of
        this many runs (when the model has ``take(rows)``): ranking thousands of starts needs no
        more, so a large table costs about as much as this many rows until the last round, whose
        survivors converge on the subset (double precision) and then on every run.  None: always
        every run.
    seed : seed of that subset.
    confirm : while fewer than this many starts reached the best optimum (within ``rtol_best``),
        the next-ranked starts the halving stopped converge too, as many again as have converged,
        until a batch no longer improves the best or none is left (0: never).  On a rugged landscape
        the objective after a few steps ranks the starts badly; this finds the optimum anyway.
    n_jobs : worker processes for the last round (and the confirmation batches) when it has more than
        ``FINISH_CHUNK`` starts: they converge in fixed chunks of at most that many, so the result is the
        same for any ``n_jobs`` (None: every core; 1: all in this process).
    progress : optional callable(done_fraction) for a progress bar.
    """
    workers.validate_jobs(n_jobs)
    y = np.asarray(y, dtype=float)
    X0 = np.clip(np.asarray(starts, dtype=float), lower, upper)
    S, P = X0.shape
    free = np.ones(P, bool) if free is None else np.asarray(free, bool)
    w = None if weights is None else np.asarray(weights, dtype=float)
    if w is not None and w.ndim == 2 and w.shape[0] != S:
        raise ValueError(f"weights has {w.shape[0]} rows for {S} starts")
    counter = [0]
    common = dict(lower=lower, upper=upper, free=free, counter=counter, gtol=gtol, switch=switch, ftol=ftol)

    def objective(theta, rows):
        counter[0] += 1
        return _objective(model, y, loss, theta, w, rows)

    if w is not None and w.ndim == 2:  # independent problems (bootstrap resamples)
        X = X0.copy()
        F = objective(X, np.arange(S))
        conv, it, _ = _lm(model, y, loss, X, F, w=w, max_iter=max_iter, progress=progress,
                          exact=np.full(S, bool(newton)), **common)
        return _result(X, F, conv, it, S, counter[0], max_iter, rtol_best)

    # identical starts (a fixed parameter collapses its grid axis) are run once
    X, owner = np.unique(X0, axis=0, return_inverse=True)
    owner = owner.reshape(-1)
    U = len(X)
    explore_model, y_explore = model, y
    settle_model = None
    if explore_rows and y.size > explore_rows and hasattr(model, "take") and w is None:
        subset = explore_subset(y.size, explore_rows, seed)
        explore_model, y_explore = model.take(subset), y[subset]
        settle_model = explore_model  # in double precision (the rounds use a single-precision copy)

    def finish(rows, n, prepolish, fraction):
        """Converge ``rows`` (at most ``n`` steps in double precision on every run), in fixed chunks
        (:func:`_finish`), in worker processes when there are several; ``fraction``: of the progress
        bar done before (None: leave the bar alone)."""
        job = SimpleNamespace(model=model, y=y, loss=loss, w=w, common=dict(common, counter=None),
                              settle_model=settle_model, y_explore=y_explore, explore_model=explore_model,
                              X=X, F=F, exact=exact, it=it, n=n, max_iter=max_iter, prepolish=prepolish)
        chunks = _blocks(rows, FINISH_CHUNK)
        n_workers = workers.workers_for(n_jobs, len(chunks), threads=False)
        tick = None if progress is None or fraction is None else (lambda f: progress(fraction + (1 - fraction) * f))
        for r, Xr, Fr, cr, itr, er, evals in workers.map_batches(_finish, job, chunks, n_workers, tick,
                                                                  lambda: load_code(model, X[rows[:1]])):
            X[r], F[r], it[r], exact[r], conv[r] = Xr, Fr, itr, er, cr
            counter[0] += evals

    if hasattr(explore_model, "astype") and explore_dtype:
        explore_model = explore_model.astype(explore_dtype)
    if y_explore is y:
        F = objective(X, None)
    else:  # the halving ranks starts on the subset; the survivors' objectives are recomputed on every run
        F = _objective(explore_model, y_explore.astype(explore_model.dtype), loss, X)
    rep = np.arange(U)                 # each distinct start's representative (after merging)
    stopped_ok = np.ones(U, bool)      # False: stopped by the halving
    moving = np.isfinite(F)            # still iterating
    conv = np.zeros(U, bool)
    exact = np.full(U, bool(newton))
    it = np.zeros(U, int)
    used = 0
    done_fraction = 0.0
    while moving.any() and used < max_iter:
        rows = np.flatnonzero(moving)
        last = rows.size <= min_keep or keep >= 1 or used + round_iter >= max_iter
        n = max_iter - used if last else min(round_iter, max_iter - used)
        if last:
            # many survivors (diagnose, converge=0) go most of their way in single precision first
            finish(rows, n, explore_model is not model and rows.size > _PREPOLISH, done_fraction)
            moving[rows[conv[rows]]] = False
            break
        Xr, Fr = X[rows], F[rows]
        # (no backtracking in the rounds of 3 steps: a second evaluation per rejected step there costs
        # more than it saves, and reorders which starts survive: measured slower for Chinchilla's grid)
        cr, ir, er = _lm(explore_model, y_explore.astype(explore_model.dtype), loss, Xr, Fr, w=w, max_iter=n,
                         exact=exact[rows], backtrack=False, **common)
        X[rows], F[rows], it[rows], exact[rows] = Xr, Fr, it[rows] + ir, er
        used += n
        if explore_model is model:
            conv[rows] = cr
            moving[rows[cr]] = False  # (in single precision a start only pauses: the last round decides)
        if progress:
            done_fraction = min(1.0, used / (used + 4 * round_iter))
            progress(done_fraction)
        _merge(X, rep, merge_tol)
        moving &= rep == np.arange(U)
        # successive halving: the best of the starts still moving go on
        rows = np.flatnonzero(moving)
        n_keep = max(min_keep, int(np.ceil(keep * rows.size)))
        if rows.size > n_keep:
            order = np.argsort(F[rows], kind="stable")
            moving[rows[order[n_keep:]]] = False
            stopped_ok[rows[order[n_keep:]]] = False
    rep = _final(rep)
    # confirmation: while fewer than ``confirm`` starts reached the best optimum, the next-ranked
    # starts the halving stopped converge too (as many again as have converged), until a batch
    # no longer improves on the best
    improved = True
    while confirm and improved:
        done = conv & np.isfinite(F) & (rep == np.arange(U))
        stopped = np.flatnonzero(~stopped_ok & (rep == np.arange(U)) & np.isfinite(F))
        if not done.any() or stopped.size == 0:
            break
        mult = np.bincount(rep[owner], minlength=U)   # starts each representative stands for
        f_best = F[done].min()
        tol = rtol_best * max(abs(f_best), 1e-300)
        if mult[done & (F <= f_best + tol)].sum() >= confirm:
            break
        batch = stopped[np.argsort(F[stopped], kind="stable")[:max(min_keep, int(mult[done].sum()))]]
        finish(batch, max_iter, False, None)
        stopped_ok[batch] = True
        improved = bool((conv[batch] & (F[batch] < f_best - tol)).any())
        _merge(X, rep, merge_tol)
        rep = _final(rep)
    if progress:
        progress(1.0)
    if explore_model is not model:  # objectives of starts last seen in single precision or on the subset
        redo = np.flatnonzero(~conv & np.isfinite(F))
        if y_explore is y:
            # last seen in single precision (to about 1e-6 relative): enough to report, except near the
            # best, where the objective decides the winner and the count of starts that reached it
            done = conv & np.isfinite(F)
            if done.any():
                f_best = F[done].min()
                redo = redo[F[redo] <= f_best + _NEAR_BEST * abs(f_best)]
            F[redo] = objective(X[redo], redo)
        else:  # on every run that would cost more than the whole fit: the starts the halving stopped
            # are reported without one (survivors and confirmed starts have theirs from every run)
            F[redo[~stopped_ok[redo]]] = np.nan
    owner = rep[owner]
    res = _result(X[owner], F[owner], conv[owner], it[owner], S, counter[0], max_iter, rtol_best)
    res.n_stopped = int((~stopped_ok[owner]).sum())
    return res


def load_code(model: Model, theta: np.ndarray) -> None:
    """Evaluate ``model``'s values and derivatives once at ``theta`` (S, P) in this process: code a law
    generates on first use is then loaded before worker processes fork, not generated in each."""
    with np.errstate(all="ignore"):
        f, cache = model.evaluate(theta)
        model.grad_hess(theta, cache, np.zeros_like(f), np.ones_like(f), np.zeros_like(f))


def _finish(token, rows):
    """The last round for ``rows`` of the job ``token`` (see ``finish`` in :func:`minimize_multistart`):
    on a large table, converge on its run subset first (double precision); with ``prepolish``, most of
    the way in single precision first; then to convergence in double precision on every run.
    Returns (rows, end points, objectives, converged, iterations, exact-mode mask, evaluations)."""
    job = workers.JOBS[token]
    counter = [0]
    common = dict(job.common, counter=counter)
    Xr, exr, itr = job.X[rows].copy(), job.exact[rows].copy(), job.it[rows].copy()
    if job.settle_model is not None:
        # a step on every run of a large table costs as much as hundreds on the subset, and from the
        # subset's optimum the full problem needs few
        Fs = _objective(job.settle_model, job.y_explore, job.loss, Xr)
        _, i, exr = _lm(job.settle_model, job.y_explore, job.loss, Xr, Fs, w=job.w, max_iter=job.max_iter,
                        exact=exr, **common)
        itr += i
    elif job.prepolish:  # a single-precision step costs about half a double-precision one
        m = job.explore_model
        _, i, _ = _lm(m, job.y_explore.astype(m.dtype), job.loss, Xr, job.F[rows].copy(), w=job.w,
                      max_iter=job.n, exact=exr, **dict(common, ftol=_SINGLE_FTOL))
        itr += i
        # the double-precision pass starts in the mode the halving left (IRLS, mostly), not in the exact
        # steps the single-precision pass ended with: it leaves many starts on plateaus it cannot resolve
        # (on the replication grid 15% of the starts, which then took 74% of the double-precision steps),
        # and IRLS walks off them better (every start converged there: 10% fewer double-precision
        # evaluations, 2,353 starts at the best instead of 2,236); one at its optimum switches back to
        # exact steps within a step or two
    if job.explore_model is not job.model:  # the halving's objectives were on another model
        counter[0] += 1
        Fr = _objective(job.model, job.y, job.loss, Xr, job.w, rows)
    else:
        Fr = job.F[rows].copy()
    cr, i, exr = _lm(job.model, job.y, job.loss, Xr, Fr, w=job.w, max_iter=job.n, exact=exr, **common)
    return rows, Xr, Fr, cr, itr + i, exr, counter[0]


def _objective(model, y, loss, theta, w=None, rows=None):
    """The objective of every row of ``theta`` under ``model`` and targets ``y``, in cache-sized
    blocks; non-finite values become inf (a start outside the law's domain)."""
    v = np.empty(len(theta))
    for b in _blocks(np.arange(len(theta)), max(8, 30000 // max(1, y.size))):
        with np.errstate(all="ignore"):
            v[b] = loss.total(model.value(theta[b]) - y, _rows(w, rows if rows is None else rows[b]))
    return np.where(np.isfinite(v), v, np.inf)


def _merge(X, rep, tol):
    """Merge points that arrived together (the same within ``tol``): among the live representatives
    (``rep[i] == i``) the first of each group goes on for all; ``rep`` is updated in place."""
    live = np.flatnonzero(rep == np.arange(rep.size))
    R = np.round(X[live] / tol)
    order = np.lexsort(R.T)            # stable: within a group of equal rows, the first start comes first
    Rs = R[order]
    first = np.ones(order.size, bool)
    first[1:] = (Rs[1:] != Rs[:-1]).any(1)
    group = np.empty(order.size, int)
    group[order] = np.cumsum(first) - 1
    rep[live] = live[order[first][group]]  # (np.unique(axis=0) does the same, sorting rows as bytes: 20x slower)


def _final(rep):
    """Merge chains followed to their final representative."""
    while True:
        nxt = rep[rep]
        if np.array_equal(nxt, rep):
            return rep
        rep = nxt


def _result(xs, funs, converged, iters, S, n_evals, max_iter, rtol_best) -> MultiStartResult:
    P = xs.shape[1]
    finite = np.isfinite(funs)
    if not finite.any():
        return MultiStartResult(x=np.full(P, np.nan), fun=np.inf, xs=xs, funs=funs, converged=converged,
                                n_iter=iters, n_best=0, n_starts=S, n_evals=n_evals,
                                message="no start gave a finite objective", best_converged=False)
    best = int(np.argmin(np.where(finite, funs, np.inf)))
    fbest = funs[best]
    n_best = int((funs <= fbest + rtol_best * max(abs(fbest), 1e-300)).sum())
    ok = bool(converged[best])
    msg = "converged" if ok else f"best start did not converge within {max_iter} iterations"
    return MultiStartResult(x=xs[best].copy(), fun=float(fbest), xs=xs, funs=funs, converged=converged,
                            n_iter=iters, n_best=n_best, n_starts=S, n_evals=n_evals, message=msg,
                            best_converged=ok)

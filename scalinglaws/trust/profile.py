"""Profile intervals: how far each parameter can move before the fit gets worse.

For a free parameter ``theta_j`` the profile is ``F_j(t) = min F(theta)`` over the other
parameters with ``theta_j = t``; the interval is where ``F_j(t) - F_min`` stays under a
threshold.  Unlike a bootstrap percentile or a correlation from the Hessian, the interval of
``theta_j`` does not change when the *other* parameters are written differently (``A`` at
N = 1 or at the data's typical N, for instance), so a wide or open interval means the data
really cannot pin that parameter down, whatever the parametrisation.

Threshold (calibration).  The objective is a sum of robust losses ``rho(r_i)`` of the
residuals; its drop-in-dispersion statistic ``2 (F_j(t) - F_min) sum psi'(r_i) / sum psi(r_i)^2``
is asymptotically chi-square with one degree of freedom (Ronchetti 1982; for least squares,
``rho = r^2/2``, it is the familiar ``Delta SSE / sigma^2``).  So the interval at ``level`` is
where ``F_j(t) - F_min <= q / 2 * sum psi^2 / sum psi'`` with ``q`` the chi-square quantile
(3.84 at 95%); for ``n`` runs and ``p`` free parameters the F(1, n - p) quantile and a factor
``n / (n - p)`` on the scale stand in for it, as for least squares with an estimated variance.
Calibration on synthetic Chinchilla tables with known truth (``benchmarks/profile_coverage.py``)
is printed there; the intervals cover the truth less often than the level on small tables
with the Hoffmann protocol's tiny Huber threshold, where the objective is nearly an L1 norm.  With no residual inside the Huber threshold (``sum psi' = 0``) the scale is
not defined and no interval is given.

The walk refits each step from the previous point; where that refit first rises past the threshold,
:data:`CHECK_STARTS` starts of the law's grid refit there too, so that a local optimum of the profile
does not close an interval the data leave open.

An end of the interval that reaches the parameter's bound is *open*: the data allow any value
out to the bound (and perhaps beyond), and the warning says so, naming the parameters that
move along with it (those that trade off against it).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import f as f_dist

from scalinglaws.fitting import defaults
from scalinglaws.fitting.fitter import minimize_multistart
from scalinglaws.fitting.problem import Problem
from scalinglaws.fitting.result import FitResult

#: how many steps of the quadratic estimate of the half-width a profile walks at most, each side
MAX_STEPS = 24
#: bisection steps once the threshold is bracketed (the end is then known to 1/32 of a step)
BISECT = 5
#: where a walk's refit (from the previous point alone) first rises past the threshold, this many starts of
#: the law's grid (seeded) refit there too: a single refit can stop at a local optimum of the profile and
#: close an interval the data leave open (a 1.6x range of sizes "pinned" alpha to [1.03, 2.90], leaving out
#: the truth 0.35; tests/test_profile.py)
CHECK_STARTS = 16
#: of which the best this many (after rounds of a few steps) converge
CHECK_KEEP = 4
#: a parameter "moves along" a profile when it shifts by more than this many of its own
#: quadratic half-widths between the optimum and the interval's end
PARTNER = 0.5


def threshold(prob: Problem, x: np.ndarray, level: float) -> float:
    """The objective rise that ends a profile interval at ``level`` (nan when not defined)."""
    r = -prob.residuals(x)
    psi, dpsi = prob.loss.psi(r), prob.loss.dpsi(r)
    s2, s1 = float(np.sum(psi ** 2)), float(np.sum(dpsi))
    n, p = r.size, int(prob.free.sum())
    if not (s1 > 0 and s2 > 0) or n <= p:
        return math.nan
    # small samples: the F(1, n - p) quantile and the n / (n - p) correction of the scale, as for
    # least squares with an estimated variance (both tend to the chi-square form as n grows)
    return 0.5 * float(f_dist.ppf(level, 1, n - p)) * s2 * n / (n - p) / s1


def profile(result: FitResult, runs, *, level: float = defaults.LEVEL, mapping=None,
            names: list[str] | None = None, problem: Problem | None = None) -> dict:
    """Profile intervals of the free parameters of ``result`` (refitting on ``runs``).

    Returns ``{"level", "threshold", "params": {name: {"low", "high", "low_end", "high_end",
    "low_open", "high_open", "partners"}}}`` in public units; ``low_end`` / ``high_end`` say how
    each end was found (``"closed"``, ``"bound"``, ``"far"``, ``"failed"``: see :func:`_walk`),
    ``low_open`` / ``high_open`` are True for every end but a closed one, ``partners`` the
    parameters that move along the profile (see :data:`PARTNER`).  A parameter whose interval could not be computed has
    ``low``/``high`` None and a ``reason``.  ``problem``: the fit's problem on ``runs`` when the caller
    has built it already (:meth:`Problem.from_fit`), so that it is not built twice.
    """
    prob = problem if problem is not None else Problem.from_fit(result, runs, mapping)
    law = prob.law
    x0 = prob.x.copy()
    F0 = prob.objective(x0)
    delta = threshold(prob, x0, level)
    n_free = int(prob.free.sum())
    reason = (f"{prob.n} runs for {n_free} free parameters: no interval" if prob.n <= n_free else
              "no residual within the Huber threshold: the objective's scale is not defined")
    out = {"level": float(level), "threshold": delta, "params": {}}
    free = np.flatnonzero(prob.free)
    want = [law.param_names[j] for j in free] if names is None else list(names)
    with np.errstate(all="ignore"):
        H = prob.hessian(x0)
    Hf = H[np.ix_(free, free)]
    try:
        cov = np.linalg.pinv(Hf)
    except np.linalg.LinAlgError:
        cov = np.full(Hf.shape, np.nan)
    half = np.full(len(law.params), np.nan)      # quadratic half-width of each free parameter
    half[free] = np.sqrt(np.maximum(2 * delta * np.diag(cov), 0)) if math.isfinite(delta) else np.nan
    for name in want:
        j = law.param_names.index(name)
        p = law.params[j]
        if not prob.free[j]:
            continue
        if not math.isfinite(delta):
            out["params"][name] = {"low": None, "high": None, "low_open": False, "high_open": False,
                                   "low_end": None, "high_end": None, "partners": [], "reason": reason}
            continue
        ends, kinds, moved = [], [], set()
        for side in (-1.0, 1.0):
            t_end, kind, x_end = _walk(prob, x0, F0, delta, j, side, half[j])
            ends.append(t_end)
            kinds.append(kind)
            if x_end is not None:
                shift = np.abs(x_end - x0) / np.where(half > 0, half, np.inf)
                moved |= {law.param_names[k] for k in free if k != j and shift[k] > PARTNER}
        pub = [float(p.to_public(t)) for t in ends]
        order = (0, 1) if pub[0] <= pub[1] else (1, 0)
        lo_kind, hi_kind = kinds[order[0]], kinds[order[1]]
        out["params"][name] = {"low": pub[order[0]], "high": pub[order[1]], "low_end": lo_kind, "high_end": hi_kind,
                               "low_open": lo_kind != "closed", "high_open": hi_kind != "closed",
                               "partners": sorted(moved)}
    return out


def _refit(prob: Problem, starts: np.ndarray, j: int, **options) -> tuple[np.ndarray, float]:
    """The best refit from ``starts`` (one point or several) with theta_j held at their value: (point,
    objective; not finite where no start gave a finite objective)."""
    free = prob.free.copy()
    free[j] = False
    res = minimize_multistart(prob.model, prob.y, np.atleast_2d(starts), prob.lower, prob.upper, prob.loss,
                              free=free, **options)
    return res.x, float(res.fun)


def _recheck(prob: Problem, x_t: np.ndarray, j: int) -> tuple[np.ndarray, float]:
    """The best refit with theta_j held at ``x_t[j]`` from ``x_t`` and :data:`CHECK_STARTS` seeded starts of the
    law's grid."""
    grid = prob.law.start_grid()
    pick = np.random.default_rng(j).choice(len(grid), min(CHECK_STARTS, len(grid)), replace=False)
    starts = np.vstack([x_t[None], prob.hold(grid[np.sort(pick)])])
    starts[:, j] = x_t[j]
    return _refit(prob, starts, j, min_keep=CHECK_KEEP)


def _walk(prob, x0, F0, delta, j, side, h):
    """Walk theta_j from the optimum towards ``side`` until the profile rises by ``delta``.

    Returns ``(end, kind, x)``: ``kind`` is ``"closed"`` (the rise was found), ``"bound"`` (the
    walk reached the parameter's bound inside the threshold), ``"far"`` (still inside after
    :data:`MAX_STEPS` growing steps) or ``"failed"`` (a refit had no finite objective: the
    profile beyond ``end`` is unknown).
    """
    lo, hi = prob.lower[j], prob.upper[j]
    bound = lo if side < 0 else hi
    step = h / 2 if np.isfinite(h) and h > 0 else 0.05 * max(1.0, abs(x0[j]))
    x_in, t_in = x0.copy(), x0[j]
    for _ in range(MAX_STEPS):
        t = t_in + side * step
        if (t - bound) * side >= 0:
            t = bound
        start = x_in.copy()
        start[j] = t
        x_t, F_t = _refit(prob, start, j, newton=True)
        if not np.isfinite(F_t):
            return t_in, "failed", x_in
        if F_t - F0 > delta:            # the walk's refit may have stopped at a local optimum: look wider
            x_c, F_c = _recheck(prob, x_t, j)
            if F_c < F_t:
                x_t, F_t = x_c, F_c
        if F_t - F0 > delta:            # bracketed between t_in and t
            a, b, xa = t_in, t, x_in
            for _ in range(BISECT):
                m = 0.5 * (a + b)
                s = xa.copy()
                s[j] = m
                x_m, F_m = _refit(prob, s, j, newton=True)
                if F_m - F0 > delta:
                    b = m
                else:
                    a, xa = m, x_m
            return a, "closed", xa
        x_in, t_in = x_t, t
        if t == bound:
            return bound, "bound", x_in
        step *= 1.6                     # the profile may be far flatter than the quadratic guess
    return t_in, "far", x_in            # still inside after the longest walk: open on this side


def profile_warnings(law, prof: dict) -> list[dict]:
    """One plain line per parameter whose profile interval is open (or could not be followed) at an end."""
    out = []
    pct = f"{100 * prof['level']:g}%"
    for name, iv in prof["params"].items():
        if iv.get("low") is None:
            continue
        p = law.params[law.param_names.index(name)]
        said = []
        for side, kind, value in (("lower", iv["low_end"], iv["low"]), ("upper", iv["high_end"], iv["high"])):
            if kind == "bound":
                said.append(f"reaches its {side} bound ({p.bounds[0 if side == 'lower' else 1]:.4g})")
            elif kind == "far":
                said.append(f"is still open at {value:.4g} on the {side} side after {MAX_STEPS} growing steps")
            elif kind == "failed":
                said.append(f"could not be followed past {value:.4g} on the {side} side (the law has no finite "
                            f"value there)")
        if not said:
            continue
        ends = " and ".join(said)
        with_ = (f"; {', '.join(iv['partners'])} move{'s' if len(iv['partners']) == 1 else ''} with it (they "
                 f"trade off: the data cannot separate them)") if iv["partners"] else ""
        out.append({"code": "profile_open",
                    "message": f"{name} is not pinned down: its {pct} profile interval [{iv['low']:.4g}, "
                               f"{iv['high']:.4g}] {ends}{with_}"})
    return out


__all__ = ["profile", "profile_warnings", "threshold"]

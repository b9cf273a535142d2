"""Amplitudes solved, not searched: the starts of a law whose formula is affine in some parameters.

A law may declare :attr:`~scalinglaws.laws.base.Law.amplitudes`: log-scale parameters its formula
is affine in, jointly, ``L = c + sum_k P_k z_k`` with ``c`` and the ``z_k`` functions of the other
parameters and the runs (Chinchilla's ``E + A N^-alpha + B D^-beta`` in E, A and B).  For given
values of the other parameters the best amplitudes are the solution of a small problem in the
amplitudes alone, and ``c`` and ``z_k`` are read off the law with one evaluation each (every
amplitude at 0, then each at 1).  :func:`solve` gives every start the amplitudes solved for its
other parameters, from one first point (the middle of each amplitude's grid), so the starts that
differ only in their amplitudes become one start, which the fitter runs once (its identical starts
are merged, and still counted each).  The amplitudes' grids then only place that first point.

Why: a start whose amplitudes are far from the best for its exponents spends most of its steps
getting them there, on plateaus such as Chinchilla's E on its lower bound with a small exponent
standing in for it, where a step in ``log E`` moves the loss by ``E``: 66 of the default fit's 100
best-ranked starts took 106-181 steps for that (docs/fitter-speed.md).  On the amplitudes ``c + Z P``
is linear, so Gauss-Newton steps on it (IRLS weights for the Huber loss, the box bounds clipped,
halved until the objective falls) solve it in steps that never call the law.

A law declares its amplitudes only where solving them was measured to lose nothing: a solved start
explores less than the grid's starts that differ in their amplitudes, and on some tables the searched
grid reaches a lower optimum (1.1e-3 lower for one law on ``data/trainer_runs.csv``, 2.1e-5 for another
at one bit width of ``data/ladder_runs.csv``), so those laws, whose formulas are affine in some
parameters too, search their grid (docs/fitter-speed.md names them, and the laws' files say why).  An amplitude solved onto its lower bound
switches its term off and leaves the term's own parameters nothing to move; such a start keeps its
grid amplitudes.

The fitter knows no law: this module sees the law's parameters, its ``log_predict`` and the
names it declares, nothing more.
"""

from __future__ import annotations

import numpy as np

#: Gauss-Newton steps on the amplitudes at most, and the relative decrease of the objective below which
#: a start's amplitudes count as solved (they only start the fit, which converges them with the rest).  IRLS
#: converges linearly where runs sit in Huber's linear part: on the 36-run Chinchilla table of
#: ``tests/test_amplitudes.py`` the objective was 1e-5 above its minimum after 60 steps, 1e-10 after 200
#: (measured; the test checks 200 steps to 1e-9 against scipy).  60 start the fit as well: on the
#: replication table the fit then takes the same steps (median 22, at most 208) and 0.09-0.10 s instead of
#: 0.11-0.13 s with 200
MAX_STEPS = 60
FTOL = 1e-12
#: distinct starts are solved in blocks whose arrays hold about this many numbers (a large table is solved on
#: the fitter's exploring subset of its runs: ``scalinglaws.fit`` passes it)
BLOCK = 2_000_000


def indices(law, free: np.ndarray) -> list[int]:
    """The law's free amplitudes, as indices into its parameters."""
    names = set(law.amplitudes)
    return [j for j, p in enumerate(law.params) if p.name in names and p.log and free[j]]


def solve(law, X, y: np.ndarray, space: str, loss, starts: np.ndarray, lower: np.ndarray, upper: np.ndarray,
          free: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """``starts`` (S, P) in the fitted space with the free amplitudes replaced by the best ones for each
    start's other parameters (one first point for all, so starts that differ only in their amplitudes
    become equal).  ``y``: the targets in the fitted ``space`` (``"log"`` or ``"linear"``), ``loss`` the
    fit's :class:`~scalinglaws.fitting.fitter.RobustLoss`, ``weights`` the runs' (n,) or None.  A start
    whose affine form or solved objective is not finite (the formula at an amplitude of 0), or whose solve
    switches a term off (below), keeps its amplitudes.  Also returns how many starts were solved."""
    amp = indices(law, free)
    S0 = np.array(starts, dtype=float)
    if not amp or not len(S0):
        return S0, 0
    declared = indices(law, np.ones(len(law.params), bool))      # the free ones and any held at a value
    K = len(amp)
    grids = {j: law.params[j].internal_grid() for j in amp}
    first = np.clip([float(np.median(grids[j])) for j in amp], lower[amp], upper[amp])
    S = S0.copy()
    S[:, amp] = first
    U, owner = np.unique(S, axis=0, return_inverse=True)
    owner = owner.reshape(-1)
    y = np.asarray(y, float)
    w = None if weights is None else np.asarray(weights, float)
    solved = np.tile(first, (len(U), 1))
    ok = np.zeros(len(U), bool)
    block = max(1, BLOCK // max(1, y.size * (K + 2)))       # distinct starts at a time: arrays of ~BLOCK numbers
    for i in range(0, len(U), block):
        u = U[i:i + block]
        # the affine form of each distinct start: c with the free amplitudes at 0 (held ones at their values);
        # z_k = L(P_k = 1, every other amplitude at 0, held ones too) - L(every amplitude at 0), so that a held
        # amplitude's term does not swamp z_k in rounding
        probe = np.repeat(u, K + 2, axis=0).reshape(len(u), K + 2, -1)
        probe[:, 0, amp] = -np.inf
        probe[:, 1:, declared] = -np.inf
        for k, j in enumerate(amp):
            probe[:, k + 2, j] = 0.0
        with np.errstate(all="ignore"):
            L = np.exp(np.asarray(law.log_predict(probe.reshape(len(u) * (K + 2), -1), X), float))
        L = L.reshape(len(u), K + 2, -1)
        c, Z = L[:, 0], np.moveaxis(L[:, 2:] - L[:, 1:2], 1, 2)         # (u, n), (u, n, K)
        good = np.isfinite(c).all(1) & np.isfinite(Z).all((1, 2))
        theta, f = _solve(c[good], Z[good], np.exp(first), np.exp(lower[amp]), np.exp(upper[amp]), y,
                          space == "log", loss, w)
        sol = np.clip(np.log(theta), lower[amp], upper[amp])
        # an amplitude solved onto its lower bound switches its term off, and the term's own parameters then
        # move nothing: such a start keeps its grid amplitudes (it is searched as before) -- unless its term is
        # another amplitude's term over again (N^-alpha at alpha = 0 is E's 1), where the two only share
        off = (sol <= lower[amp] + 1e-6 * np.maximum(1.0, upper[amp] - lower[amp])) & ~_collinear(Z[good])
        idx = np.arange(i, i + len(u))[good]
        keep = np.isfinite(f) & ~off.any(1)
        solved[idx[keep]] = sol[keep]
        ok[idx[keep]] = True
    out = S0.copy()
    good = ok[owner]
    out[np.ix_(good, amp)] = solved[owner[good]]
    return out, int(good.sum())


def _collinear(Z: np.ndarray) -> np.ndarray:
    """(U, K) whether each amplitude's column of ``Z`` (U, n, K) is proportional to another's."""
    norm = np.linalg.norm(Z, axis=1, keepdims=True)
    Zn = Z / np.where(norm > 0, norm, 1.0)
    G = np.abs(np.einsum("unk,unl->ukl", Zn, Zn))
    G[:, np.arange(Z.shape[2]), np.arange(Z.shape[2])] = 0.0
    return (G > 1 - 1e-12).any(2)


def _solve(c, Z, first, lo, hi, y, log_space, loss, w):
    """The amplitudes (U, K) minimising the robust loss of ``y - T(c + Z theta)`` within ``[lo, hi]``
    (T: log or nothing), from ``first`` for every row."""
    U, n, K = Z.shape
    theta = np.tile(first, (U, 1))
    f, m, r = _objective(theta, c, Z, y, log_space, loss, w)
    active = np.isfinite(f)
    for _ in range(MAX_STEPS):
        if not active.any():
            break
        a = np.flatnonzero(active)
        J = Z[a] / m[a][..., None] if log_space else Z[a]                 # d T(m) / d theta
        om = loss.irls_weight(r[a]) if w is None else w * loss.irls_weight(r[a])
        H = np.einsum("un,unk,unl->ukl", om, J, J)
        H += np.eye(K) * (1e-9 * np.einsum("ukk->uk", H) + 1e-300)[:, None, :]   # a direction no run sees
        g = np.einsum("un,unk->uk", om * r[a], J)
        step = np.linalg.solve(H, g[..., None])[..., 0]
        t = np.ones((a.size, 1))
        new_f, new_th = f[a].copy(), theta[a].copy()
        todo = np.ones(a.size, bool)
        for _ in range(40):                                               # halve until the objective falls
            th = np.clip(theta[a] + t * step, lo, hi)
            ft, mt, rt = _objective(th, c[a], Z[a], y, log_space, loss, w)
            better = todo & (ft < f[a])
            new_f[better], new_th[better] = ft[better], th[better]
            m[a[better]], r[a[better]] = mt[better], rt[better]
            todo &= ~better
            if not todo.any():
                break
            t[todo] *= 0.5
        gain = f[a] - new_f
        theta[a], f[a] = new_th, new_f
        active[a] = gain > FTOL * np.abs(new_f)
    return theta, f


def _objective(th, c, Z, y, log_space, loss, w):
    """The robust objective of each row of amplitudes, the affine form's values and the residuals."""
    m = c + np.einsum("unk,uk->un", Z, th)
    with np.errstate(all="ignore"):
        r = y - (np.log(m) if log_space else m)
    f = loss.total(r, w)
    return np.where(np.isfinite(f), f, np.inf), m, r

"""Dremov et al. 2025: compute-optimal quantization-aware training (QAT).

Dremov, Grangier, Katharopoulos, Hannun 2025, "Compute-Optimal Quantization-Aware
Training" (arXiv:2509.22935).  A run trains ``D_fp`` tokens in full precision, then
``D_qat`` tokens with QAT at ``w_bits`` = B bits per weight.  The paper's statistic is
the *tokens per parameter byte*, ``S = D / (N B / 8)`` (tokens over the bytes of the
quantized weights); ``S_total``, ``S_fp`` and ``S_qat`` use D_fp + D_qat, D_fp and D_qat.

Two laws, two registry entries.

What was checked against the paper, and how
-------------------------------------------
The stored copy of the paper (arXiv HTML) could be read only as far as its abstract, so
the rest was established from two independent summaries that quote the paper's equations
(papernotes.org, English and Chinese notes of the ICLR 2026 version) and the ICLR 2026
reviews (OpenReview), checked against each other and against the algebra:

* ``S_total = D_total / (N B / 8)``: quoted as such ("normalizing training tokens by the
  quantized parameter bytes").  ``S_qat`` and ``S_fp`` are not spelled out in the summaries,
  but they share that denominator: the fraction law is derived from a straight line between
  ``log S_total`` and the optimal ``log S_qat``, and ``f = S_qat / S_total = D_qat / D_total``
  holds only with the same ``N B / 8`` under both (reviewer 4 also describes Fig. 1 as QAT
  tokens-per-byte against total tokens-per-byte).  So ``S_qat = D_qat / (N B / 8)`` and
  ``S_fp = D_fp / (N B / 8)``, as implemented.
* The fraction law is quoted as ``f_hat(D_total, N, B) = exp(log S_total - a / log S_total) /
  S_total`` with ``a = 6.7297`` (MAE 0.091 on the paper's optima).  The log is the natural
  log: the formula pairs it with ``exp`` so that ``exp(log S_total) = S_total``, which makes
  ``f_hat = exp(-a / ln S_total)`` and ``f_hat = S_qat / S_total`` with ``ln S_qat = ln S_total
  - a / ln S_total``; with log10 the first term would not cancel (``exp(log10 S) != S``) and
  ``f_hat`` would no longer be ``S_qat / S_total``.  Its argument is ``S_total`` (tokens per
  parameter byte of the whole run), not D/N.
* The unified loss's penalty terms are quoted term by term as implemented below (irreducible
  ``theta 2^(-kappa B)``, pure QAT ``phi 2^(-chi B) / (N^psi S_qat^omega)``, FP/QAT interaction
  ``lambda 2^(-mu B) / (N^nu S_fp^xi S_qat^rho)``), fitted with a Huber loss.
* **Not established:** the Chinchilla part is quoted only as "Chinchilla-like"; this law uses
  ``E + A / N^alpha + B / (D_fp + D_qat)^beta`` (all tokens trained), which we could not check
  against the paper's equation, and gives full-precision rows (``w_bits >= 16``) no penalty, a
  choice of this toolkit.  The paper's fitted constants of the loss law (its appendix) were not
  readable, hence no preset.
* **FP-loss regularisation, not implemented:** reviewer 1 of the ICLR review writes that "the
  full-precision loss regularisation used to fit the unified law is crucial to interpreting
  Fig. 5 and the FP-vs-QAT comparisons, but it's only described in Appendix E".  So the paper's
  fit does depend on such a term, but its form (which FP losses, what penalty, what weight)
  is in Appendix E, which we could not read; nothing is invented here.  What the toolkit offers
  today: full-precision rows in the fitted table already tie the Chinchilla part to the FP
  runs' losses with the same (unit) weight as every QAT run, and a law can add pseudo-rows
  with targets of its own in :meth:`Law.prepare` / :meth:`Law.observed` / :meth:`Law.design`
  (an extra indicator column, as ``q`` here).  A *weighted* penalty (a regularisation strength)
  would need a law-declared per-row weight that :class:`scalinglaws.fitting.problem.Problem`
  passes to the fitter (today weights reach the fitter only as bootstrap counts).

``dremov-fraction`` -- the optimal QAT fraction
-----------------------------------------------
::

    f*(S_total) = D_qat* / (D_fp + D_qat) = exp(-a / ln S_total)

(the paper writes it as ``exp(ln S - a / ln S) / S``; the same thing).  One parameter:

a : how late QAT should start; larger a, smaller QAT fraction at a given S_total.

It is fitted to the **best fraction of each sweep**, not to single runs: rows are
grouped by (N, D_fp + D_qat, w_bits); each group with runs at two or more fractions
contributes one point, the fraction of its lowest-loss run, at its S_total (that is what
:meth:`DremovFraction.prepare` builds and :meth:`DremovFraction.observed` returns, so
``n_runs`` of the fit counts groups).  Groups with a single fraction carry no
information about the optimum and are skipped; rows with ``w_bits >= 16`` (no
quantization) are ignored.  The fit is in log space: ``log f = -a / ln S_total``.
Preset ``dremov2025``: a = 6.7297 (so f* = 0.23 at S_total = 100 and 0.56 at S_total = 1e5, worked
out from the formula; the paper prints the formula and a).

``dremov-qat`` -- the unified loss
----------------------------------
::

    L = E + A / N^alpha + B / (D_fp + D_qat)^beta + delta
    delta = theta 2^(-kappa b)
          + phi 2^(-chi b) / (N^psi S_qat^omega)
          + lambda 2^(-mu b) / (N^nu S_fp^xi S_qat^rho)

with b = ``w_bits`` (the parameter named ``B`` is Chinchilla's data coefficient, not the
bit-width).  Parameters:

E, A, alpha, B, beta : Chinchilla in N and the total tokens D_fp + D_qat.
theta, kappa : the irreducible QAT error at b bits, theta 2^(-kappa b).
phi, chi, psi, omega : the pure-QAT term, shrinking with N and with QAT tokens S_qat.
lambda, mu, nu, xi, rho : the FP/QAT interaction term, in N, S_fp and S_qat.

Rows with ``w_bits >= 16`` are full-precision runs: ``delta = 0`` (they pin the
Chinchilla part).  A quantized row needs ``D_qat > 0`` (without QAT the run is
post-training quantization, which this law does not model) and ``D_fp > 0`` (the
interaction term has ``S_fp^xi`` in a denominator, undefined at S_fp = 0); other rows
are refused with their row number.  No constants of this law were available to us, so
it has no preset: fit it to your runs.  Its start grid explores only the Chinchilla
scales and exponents and theta (144 starts); the other eleven parameters start from one
value each.

Planners
--------
``qat-fraction --N --D --w-bits``: the optimal QAT fraction and the split of D into
D_fp and D_qat.  From ``dremov-fraction`` (the closed form) or from a ``dremov-qat``
fit (the fraction in (0, 1) that minimises the unified loss, found numerically).

``bits --memory BYTES --D TOKENS``: for each bit-width b in 1..8 and 16, the largest
model that fits the memory, N = 8 memory / b, its loss after training on D tokens with
the best QAT fraction (b = 16: full precision, no QAT), and the winner.  This needs a
loss, so it needs a ``dremov-qat`` fit; the fraction law alone cannot rank bit-widths
(it says when to start QAT, not how good the result is) and answers with an error that
says so.  Note that S_total = D / memory does not depend on b.
"""

from __future__ import annotations

import numpy as np

from scalinglaws.data.columns import as_columns
from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, View, exps, row_error
from scalinglaws.laws.derive import Vars

#: bit-widths the ``bits`` planner compares
BITS_CANDIDATES = (1, 2, 3, 4, 5, 6, 8, 16)


def tokens_per_param_byte(D, N, bits):
    """``S = D / (N bits / 8)``."""
    return np.asarray(D, dtype=float) / (np.asarray(N, dtype=float) * np.asarray(bits, dtype=float) / 8.0)


def _total_tokens(cols, who):
    if "D_fp" in cols and "D_qat" in cols:
        return cols["D_fp"] + cols["D_qat"]
    if "D" in cols:
        return cols["D"]
    raise InputError(f"{who} needs columns 'D_fp' and 'D_qat' (or 'D', the total)", file=cols.source)


def _check_planner(N, D, w_bits):
    S = float(tokens_per_param_byte(D, N, w_bits))
    if S <= 1.0:
        raise InputError(f"S_total = D / (N w_bits / 8) = {S:.3g} tokens per parameter byte; the QAT fraction "
                         f"law needs S_total > 1 (train on more tokens than the model has bytes)")
    return S


def _split(res, D, f):
    res.update(qat_fraction=f, D_qat=f * D, D_fp=(1.0 - f) * D)
    return res


_S_AXIS = ("S", "tokens per parameter byte S_total = D / (N bits / 8)")


class DremovFraction(Law):
    name = "dremov-fraction"
    title = "Dremov QAT fraction: f* = exp(-a / ln S_total)"
    reference = "Dremov et al. 2025, Compute-Optimal Quantization-Aware Training (arXiv:2509.22935)"
    formula_text = ("f* = exp(-a / ln S_total), S_total = (D_fp + D_qat) / (N w_bits / 8); "
                    "fitted to each sweep's best f")
    params = (Param("a", "QAT-start constant: larger a, smaller optimal QAT fraction", (0.0, 100.0),
                    (1.0, 4.0, 10.0)),)
    columns = ("N", "D_fp", "D_qat", "w_bits")
    predicts = "qat_fraction"
    target_unit = ""
    axis = _S_AXIS
    figure = (View("along", x="S", curves="w_bits",
                   title="optimal QAT fraction against tokens per parameter byte (dots: each sweep's best)"),)
    presets = {"dremov2025": Preset({"a": 6.7297},
                                    "Dremov et al. 2025, Compute-Optimal Quantization-Aware Training "
                                    "(optimal QAT fraction fit, a = 6.7297)")}
    planners = (
        Planner("qat-fraction", "optimal QAT fraction f* and the split D = D_fp + D_qat", "plan_qat_fraction",
                required=("N", "D", "w_bits")),
        Planner("bits", "best bit-width for a memory budget (needs a fitted dremov-qat loss law)", "plan_bits",
                required=("memory", "D")),
    )

    @property
    def target_name(self) -> str:
        return "optimal QAT fraction"

    def prepare(self, runs):
        cols = as_columns(runs)
        cols.require(("N", "D_fp", "D_qat", "loss"), f"law '{self.name}'")
        N, Dfp, Dq, w, loss = cols["N"], cols["D_fp"], cols["D_qat"], cols["w_bits"], cols["loss"]
        Dt = Dfp + Dq
        row_error(cols, "D_fp + D_qat must be > 0", ~(Dt > 0), "D_qat")
        groups: dict = {}
        for i, k in enumerate(zip((f"{n:.6g}" for n in N), (f"{d:.6g}" for d in Dt), (f"{b:.6g}" for b in w))):
            if w[i] < 16:
                groups.setdefault(k, []).append(i)
        best, f_best, S_best, n_fr, gaps, skipped = [], [], [], [], [], 0
        for idx in groups.values():
            fr = Dq[idx] / Dt[idx]
            if len(set(np.round(fr, 9))) < 2:
                skipped += 1
                continue
            j = idx[int(np.argmin(loss[idx]))]
            f = Dq[j] / Dt[j]
            others = fr[(np.abs(fr - f) > 1e-9 * max(f, 1e-300)) & (fr > 0)]
            gaps.append(float(np.min(np.abs(np.log(others / f)))) if f > 0 and others.size else np.nan)
            S = float(tokens_per_param_byte(Dt[j], N[j], w[j]))
            if f <= 0:
                raise cols.error(f"the sweep at N={N[j]:.4g}, D={Dt[j]:.4g}, w_bits={w[j]:g} is best with no QAT "
                                 f"at all (D_qat = 0), which f* = exp(-a/ln S) cannot express; drop the D_qat = 0 "
                                 f"runs (a where filter \"D_qat > 0\")", j)
            if S <= 1:
                raise cols.error(f"S_total = {S:.3g} tokens per parameter byte; the fraction law needs "
                                 f"S_total > 1", j)
            best.append(j)
            f_best.append(f)
            S_best.append(S)
            n_fr.append(len(idx))
        if not best:
            raise InputError("law 'dremov-fraction' is fitted to the best QAT fraction of each (N, D_fp + D_qat, "
                             "w_bits) sweep, and no such group of quantized runs (w_bits < 16) has runs at two or "
                             "more fractions", file=cols.source)
        out = runs.iloc[best].copy()
        out["f_best"], out["S_total"], out["n_fractions"], out["f_gap"] = f_best, S_best, n_fr, gaps
        out.attrs.update(runs.attrs)
        out.attrs["source"] = cols.source
        out.attrs["groups_skipped"] = skipped
        return out

    def observed(self, runs):
        cols = as_columns(runs)
        if "f_best" in cols:
            return cols["f_best"]
        return cols["D_qat"] / (cols["D_fp"] + cols["D_qat"])

    #: the resolution of a sweep's best fraction, in units of the log gap to the nearest other fraction of
    #: the sweep: half of it, so that the neighbouring fraction is two standard deviations away.  The loss of
    #: the runs next to the best differs from the best's by little (it is flat at its minimum), so noise
    #: moves the best to a neighbour often; on the example design (fractions f*, f*/2 and (1 + f*)/2, 0.5%
    #: loss noise) the best is the neighbour f*/2 in about 1 of 10 sweeps, and validate FAILed the true law
    #: on 6 of 6 tables, PASSing it now (docs/trust.md)
    RESOLUTION = 0.5

    def resolution(self, runs):
        """Half the log gap between each sweep's best fraction and the nearest other fraction it ran."""
        cols = as_columns(runs)
        return self.RESOLUTION * np.asarray(cols["f_gap"], float) if "f_gap" in cols else None

    def design(self, runs):
        cols = as_columns(runs)
        cols.require(("N",), f"law '{self.name}'")
        D = _total_tokens(cols, f"law '{self.name}'")
        S = tokens_per_param_byte(D, cols["N"], cols["w_bits"])
        bad = np.flatnonzero(~(S > 1))
        if bad.size:
            raise cols.error(f"S_total = D / (N w_bits / 8) = {S[bad[0]]:.3g}; the fraction law needs S_total > 1",
                             int(bad[0]))
        return {"S": S}

    def formula(self, p, x, m=np):
        return m.exp(-p.a / m.log(x.S))

    def example(self):
        """Sweeps of QAT fractions at several (N, D, bits); each sweep includes the law's own f*."""
        a = self.presets["dremov2025"].values["a"]
        rows = []
        for N in (1e8, 3e8, 1e9):
            for D in (1e10, 1e11, 1e12):
                for b in (2.0, 4.0, 8.0):
                    f = float(np.exp(-a / np.log(D / (N * b / 8))))
                    rows += [(N, (1 - g) * D, g * D, b) for g in (f, 0.5 * f, 0.5 + 0.5 * f)]
        return {"a": a}, dict(zip(("N", "D_fp", "D_qat", "w_bits"), np.array(rows, float).T))

    def simulate_target(self, params, runs):
        """A loss whose best fraction in each sweep is the one nearest the law's f* (1 + (f - f*)^2)."""
        cols = as_columns(runs)
        f = cols["D_qat"] / (cols["D_fp"] + cols["D_qat"])
        return 1.0 + (f - self.predict(params, cols)) ** 2

    def along_axis(self, params, values):
        return self.formula(self.public(self.to_internal(params)[None]), Vars({"S": np.asarray(values, float)}))[0]

    def plan_qat_fraction(self, params, N, D, w_bits):
        """``f* = exp(-a / ln S_total)`` and the split of D."""
        S = _check_planner(N, D, w_bits)
        f = self.at(params, N=N, D=D, w_bits=w_bits)
        res = _split({"N": N, "D": D, "w_bits": w_bits, "S_total": S}, D, f)
        res["summary"] = (f"S_total = {S:.4g} tokens per parameter byte: spend {f:.1%} of the {human(D)} tokens "
                          f"in QAT at {w_bits:g} bits (D_fp = {human(res['D_fp'])}, D_qat = {human(res['D_qat'])})")
        return res

    def plan_bits(self, params, memory, D):
        """Not answerable from the fraction law alone (see the message)."""
        raise InputError("'optimal bits' compares the loss reached at each bit-width, and the QAT fraction law "
                         "(dremov-fraction, e.g. preset dremov2025) predicts only the best fraction of training to "
                         "spend in QAT, not the loss, so it cannot rank bit-widths. Fit the unified loss law "
                         "'dremov-qat' to your runs (columns N, D_fp, D_qat, w_bits, loss) and ask that fit")


class DremovQAT(Law):
    name = "dremov-qat"
    title = "Dremov unified QAT loss: Chinchilla plus a penalty in bits, N, S_fp and S_qat"
    reference = "Dremov et al. 2025, Compute-Optimal Quantization-Aware Training (arXiv:2509.22935)"
    formula_text = ("L = E + A/N^alpha + B/(D_fp+D_qat)^beta + theta 2^(-kappa b) + phi 2^(-chi b)/(N^psi "
                    "S_qat^omega) + lambda 2^(-mu b)/(N^nu S_fp^xi S_qat^rho), b = w_bits, S = D/(N b/8)")
    params = (
        Param("E", "irreducible loss (nats/token)", exps(-7, 5), exps(0.25, 0.75), log=True),
        Param("A", "scale of the finite-model term", exps(-10, 60), exps(3, 7, 11), log=True),
        Param("B", "scale of the finite-data term (not the bit-width)", exps(-10, 60), exps(3, 7, 11), log=True),
        Param("alpha", "exponent of model size", (0.0, 5.0), (0.25, 0.5)),
        Param("beta", "exponent of total tokens", (0.0, 5.0), (0.25, 0.5)),
        Param("theta", "scale of the irreducible QAT error", exps(-30, 10), exps(-4, -1), log=True),
        Param("kappa", "bit decay of the irreducible error, 2^(-kappa b)", (0.0, 5.0), (0.5,)),
        Param("phi", "scale of the pure-QAT term", exps(-30, 30), exps(0), log=True),
        Param("chi", "bit decay of the pure-QAT term", (0.0, 5.0), (0.5,)),
        Param("psi", "model-size exponent of the pure-QAT term", (-2.0, 3.0), (0.2,)),
        Param("omega", "QAT-token exponent of the pure-QAT term", (-2.0, 3.0), (0.3,)),
        Param("lambda", "scale of the FP/QAT interaction term", exps(-30, 30), exps(-2), log=True),
        Param("mu", "bit decay of the interaction term", (0.0, 5.0), (0.5,)),
        Param("nu", "model-size exponent of the interaction term", (-2.0, 3.0), (0.2,)),
        Param("xi", "FP-token exponent of the interaction term", (-3.0, 3.0), (0.0,)),
        Param("rho", "QAT-token exponent of the interaction term", (-2.0, 3.0), (0.3,)),
    )
    # (E, A, B, theta, phi and lambda enter the formula affinely, but solved per start
    # (scalinglaws.fitting.amplitudes) phi went to its lower bound on tests/test_law_dremov.py's table, 3.4x the
    # objective: the grid is searched, docs/fitter-speed.md)
    columns = ("N", "D_fp", "D_qat", "w_bits")
    planners = (
        Planner("qat-fraction", "QAT fraction that minimises the unified loss, and the split of D",
                "plan_qat_fraction", required=("N", "D", "w_bits")),
        Planner("bits", "for each bit-width, the largest N that fits --memory, its loss, and the winner",
                "plan_bits", required=("memory", "D")),
    )
    penalty_axes = ("bits", "tokens_per_byte")
    figure = (View("curves", x="qat_fraction", panels="w_bits", curves="N", fixed={"D": "max"}, quantized_only=True,
                   mark="min", title="loss against the QAT fraction, one panel per weight bit width "
                                     "(diamonds: the fitted best fraction)"),)

    # ------------------------------------------------------------------ data
    def prepare(self, runs):
        cols = as_columns(runs)
        if not (cols["w_bits"] < 16).any():
            raise InputError(f"law '{self.name}' needs quantized runs (w_bits < 16) to fit its QAT penalty"
                             + ("" if "w_bits" in cols else "; the table has no 'w_bits' column, which means 16 "
                                                            "bits on every run"), file=cols.source)
        return runs

    def design(self, runs):
        cols = as_columns(runs)
        X = super().design(cols)
        N, Dfp, Dq, b = X["N"], X["D_fp"], X["D_qat"], X["w_bits"]
        q = b < 16
        for col, arr in (("D_qat", Dq), ("D_fp", Dfp)):
            why = ("without QAT tokens the run is post-training quantization, which this law does not model"
                   if col == "D_qat" else
                   "the FP/QAT interaction term has S_fp^xi in a denominator, undefined at D_fp = 0")
            row_error(cols, f"a quantized row (w_bits < 16) needs {col} > 0: {why}; leave such rows out "
                            f"with a where filter \"{col} > 0 or w_bits >= 16\"", q & ~(arr > 0), col)
        Dt = Dfp + Dq
        row_error(cols, "D_fp + D_qat must be > 0", ~(Dt > 0), "D_fp")
        byte = N * b / 8.0
        # unquantized rows have no penalty (q = 0); their S and b are set to neutral finite values
        return {"N": N, "Dt": Dt, "q": q.astype(float), "b": np.where(q, b, 0.0),
                "Sq": np.where(q, np.where(q, Dq, 1.0) / byte, 1.0),
                "Sf": np.where(q, np.where(q, Dfp, 1.0) / byte, 1.0)}

    def example(self):
        """Sweeps of the QAT fraction at 3 sizes, 3 budgets and 4 bit widths, plus FP runs.

        The penalty scales (phi = 6, lambda = 20) put the QAT terms well above 0.5% noise at these
        sizes: with phi = 0.6 and lambda = 6 (an earlier choice) the pure-QAT term was about 0.008
        nats, below the noise, and phi's 95% profile interval on 300 noisy runs spanned 0.44 to
        2.1e6 (the design could not tell phi from psi); now every profile interval is closed."""
        rows = []
        for N in (30e6, 86e6, 250e6):
            for D in (5e9, 2e10, 8e10):
                rows.append((N, D, 0.0, 16.0))
                for b in (1.0, 2.0, 4.0, 6.0):
                    for f in (0.05, 0.2, 0.5, 0.8, 0.95):
                        rows.append((N, (1 - f) * D, f * D, b))
        truth = dict(E=1.8, A=400.0, B=2000.0, alpha=0.33, beta=0.33, theta=0.3, kappa=0.8, phi=6.0, chi=0.5,
                     psi=0.1, omega=0.2, mu=0.3, nu=0.1, xi=0.6, rho=0.05, **{"lambda": 20.0})
        return truth, dict(zip(("N", "D_fp", "D_qat", "w_bits"), np.array(rows, float).T))

    # --------------------------------------------------------------- formula
    def formula(self, p, x, m=np):
        pen = (p.theta * 2.0 ** (-p.kappa * x.b)
               + p.phi * 2.0 ** (-p.chi * x.b) / (x.N ** p.psi * x.Sq ** p.omega)
               + p["lambda"] * 2.0 ** (-p.mu * x.b) / (x.N ** p.nu * x.Sf ** p.xi * x.Sq ** p.rho))
        return p.E + p.A / x.N ** p.alpha + p.B / x.Dt ** p.beta + x.q * pen

    # -------------------------------------------------------------- planners
    def loss(self, params, N, D_fp, D_qat, w_bits):
        """The unified loss for plain numbers or arrays (w_bits >= 16: no penalty)."""
        N, Dfp, Dq, b = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (N, D_fp, D_qat, w_bits)))
        out = self.at(params, N=N.ravel(), D_fp=Dfp.ravel(), D_qat=Dq.ravel(), w_bits=b.ravel()).reshape(N.shape)
        return float(out) if out.ndim == 0 else out

    def best_fraction(self, params, N, D, w_bits) -> tuple[float, float]:
        """(f*, loss): the QAT fraction in (0, 1) minimising the loss (coarse grid, then Brent)."""
        from scipy.optimize import minimize_scalar
        grid = np.linspace(1e-4, 1 - 1e-4, 2001)
        vals = self.loss(params, N, (1 - grid) * D, grid * D, w_bits)
        vals = np.where(np.isfinite(vals), vals, np.inf)
        i = int(np.argmin(vals))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        r = minimize_scalar(lambda f: self.loss(params, N, (1 - f) * D, f * D, w_bits), bounds=(lo, hi),
                            method="bounded", options={"xatol": 1e-10})
        if r.fun <= vals[i]:
            return float(r.x), float(r.fun)
        return float(grid[i]), float(vals[i])

    def plan_qat_fraction(self, params, N, D, w_bits):
        """The QAT fraction that minimises the unified loss."""
        S = _check_planner(N, D, w_bits)
        if w_bits >= 16:
            raise OptionError("w_bits", ">= 16 is full precision: the law has no QAT penalty there, so no QAT "
                                        "fraction")
        f, L = self.best_fraction(params, N, D, w_bits)
        res = _split({"N": N, "D": D, "w_bits": w_bits, "S_total": S}, D, f)
        res["loss"] = L
        res["summary"] = (f"spend {f:.1%} of the {human(D)} tokens in QAT at {w_bits:g} bits (D_fp = "
                          f"{human(res['D_fp'])}, D_qat = {human(res['D_qat'])}); predicted loss {L:.4f}")
        return res

    def plan_bits(self, params, memory, D):
        """For each bit-width, the largest model that fits ``memory`` bytes and its loss after D tokens."""
        rows = []
        for b in BITS_CANDIDATES:
            N = memory * 8.0 / b
            if b >= 16:
                f, L = 0.0, float(self.loss(params, N, D, 0.0, b))
            else:
                if D / (N * b / 8.0) <= 1.0:
                    raise OptionError("D", f"{D:g} tokens is not more than the memory ({memory:g} bytes): too few "
                                           f"tokens per parameter byte for QAT")
                f, L = self.best_fraction(params, N, D, b)
            rows.append({"w_bits": b, "N": N, "qat_fraction": f, "D_qat": f * D, "loss": L})
        best = min(rows, key=lambda r: r["loss"])
        res = {"memory": memory, "D": D, "S_total": D / memory, "w_bits": best["w_bits"], "N": best["N"],
               "loss": best["loss"], "table": rows, "best": best}
        res["summary"] = (f"with {human(memory)} bytes of weights and {human(D)} tokens, {best['w_bits']}-bit weights "
                          f"win: N = {human(best['N'])}, QAT fraction {best['qat_fraction']:.1%}, "
                          f"loss {best['loss']:.4f}")
        return res

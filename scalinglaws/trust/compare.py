"""Side-by-side comparison of laws on one run table.

:func:`compare` fits every law to the same runs with the same settings and reports,
per law: its parameters, the objective, AIC and BIC, and the held-out error from one
split shared by all laws (see :mod:`scalinglaws.trust.validate`), then which law wins by each
measure.

AIC and BIC of a Huber fit (a pseudo-likelihood)
-------------------------------------------------
The fitter minimises ``objective = sum_i rho(r_i)`` with ``r_i`` the residuals in the
fitted space (``log obs - log fit`` by default) and ``rho`` the Huber loss (quadratic
within ``delta``, linear beyond) or half the squared error (``--loss mse``).  A Huber
objective is not a likelihood, so there is no exact AIC.  We use the Gaussian form with
the robust sum in place of the residual sum of squares::

    Q      = 2 * objective              (= RSS exactly when loss = mse)
    -2 lnL = n * (ln(2 pi Q / n) + 1)
    AIC    = -2 lnL + 2 (k + 1)
    BIC    = -2 lnL + (k + 1) ln n

with ``n`` runs and ``k`` free parameters (+1 for the noise scale).  For ``mse`` this
is the exact Gaussian AIC/BIC; for ``huber`` it is a *pseudo*-likelihood: ``Q`` is
``r^2`` for small residuals and ``2 delta |r| - delta^2`` for large ones, so the
criteria rank fits by a robust measure of misfit penalised by parameter count.  Compare only
laws fitted to the same runs with the same loss (the table says when a law is not comparable).

Ties: when the data cannot tell
-------------------------------
A measure names a winner only when the best law beats the next by more than a stated margin;
otherwise it says the two tie (``winners[measure]`` is None and ``verdicts[measure]`` says why):

* AIC, BIC: a difference of at most :data:`TIE_IC` (2) units.  For AIC, Burnham and Anderson's rule
  (*Model Selection and Multimodel Inference*, 2002): within 2 units both models keep substantial
  support; for BIC, Kass and Raftery's (*Bayes Factors*, 1995): a difference under 2 is "not worth more
  than a bare mention".  Neither says anything where a law has fewer than its free parameters + 3 runs
  (the held-out check's margin): its likelihood is then a near-interpolation, and the measure says
  "cannot tell".
* objective: a relative difference of at most :data:`TIE_OBJECTIVE` (1e-6), the fitter's own
  tolerance for "the same optimum" (two laws that are one law written twice end there).
* held-out error: no winner when any law's held-out check is INCONCLUSIVE (its fitted runs cannot
  identify it, so its held-out error says nothing), nor when the mean absolute errors differ by no
  more than the noise of one run (the larger of the two laws' robust noise scales, in the target's
  units): a difference one run's noise could make.

``benchmarks/compare_calibration.py`` measures how often these margins name the true law, tie or
name a wrong one on synthetic tables with known truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from scalinglaws.data.errors import OptionError
from scalinglaws.data.runs import select
from scalinglaws.fitting.api import fit as fit_law
from scalinglaws.fitting.options import FitOptions
from scalinglaws.fitting.result import FitResult
from scalinglaws.data.errors import InputError, ScalingLawsError
from scalinglaws.laws import get_law
from scalinglaws.fitting.problem import filtered_table
from scalinglaws.trust.validate import LEVEL, MARGIN, Validation, _distinct, holdout as holdout_check

#: measures a law can win, with the direction that wins
MEASURES = {"objective": "lower", "aic": "lower", "bic": "lower", "heldout_mean_abs_error": "lower"}
#: AIC or BIC differences up to this many units are a tie (Burnham & Anderson 2002)
TIE_IC = 2.0
#: objectives within this relative difference are a tie (the fitter's tolerance for the same optimum)
TIE_OBJECTIVE = 1e-6


def information_criteria(objective: float, n: int, k: int) -> dict:
    """``{"neg2_loglik", "aic", "bic"}`` from a summed robust objective (see the module doc)."""
    if not (n > 0 and math.isfinite(objective)):
        return {"neg2_loglik": float("nan"), "aic": float("nan"), "bic": float("nan")}
    Q = max(2.0 * objective, 1e-300)
    m2ll = n * (math.log(2.0 * math.pi * Q / n) + 1.0)
    return {"neg2_loglik": m2ll, "aic": m2ll + 2.0 * (k + 1), "bic": m2ll + (k + 1) * math.log(n)}


def parse_laws(laws: str | Iterable[str]) -> list[str]:
    """``"LAW,LAW"`` -> registered names; unknown names are an InputError."""
    names = [s.strip() for s in laws.split(",")] if isinstance(laws, str) else [str(s).strip() for s in laws]
    names = [n for n in names if n]
    if not names:
        raise OptionError("laws", "needs at least one law name (scalinglaws laws lists them)")
    out = []
    for n in names:
        name = get_law(n).name  # raises 'unknown law' with the registered names
        if name not in out:
            out.append(name)
    return out


def default_holdout(table: pd.DataFrame) -> str | None:
    """The default split: the runs of the largest model size (None when there is one size only)."""
    if "N" not in table.columns:
        return None
    N = table["N"].to_numpy(float)
    values, key = _distinct(N)
    if values.size < 2:
        return None
    return f"N >= {float(N[key == values[-1]].min())!r}"  # exact: never rounds above the runs it means


@dataclass
class LawEntry:
    """One law in a comparison: its fit on all runs, criteria and held-out check (or why it failed)."""

    law: str
    fit: FitResult | None = None
    error: str | None = None
    criteria: dict = field(default_factory=dict)
    heldout: Validation | None = None
    heldout_error: str | None = None
    comparable: bool = True

    @property
    def n_free(self) -> int:
        return 0 if self.fit is None else len(self.fit.params) - len(self.fit.fixed or {})

    def value(self, measure: str) -> float:
        if measure == "objective":
            return self.fit.objective if self.fit else float("nan")
        if measure == "heldout_mean_abs_error":
            return self.heldout.errors["mean_abs_error"] if self.heldout else float("nan")
        return self.criteria.get(measure, float("nan"))

    def to_dict(self) -> dict:
        d = {"law": self.law, "ok": self.fit is not None, "error": self.error, "comparable": self.comparable}
        if self.fit is not None:
            d.update(params=self.fit.params, objective=self.fit.objective, n_runs=self.fit.n_runs,
                     n_free=self.n_free, target=get_law(self.law).predicts, converged=self.fit.converged,
                     on_bound=self.fit.status.get("on_bound", []), warnings=self.fit.warnings, **self.criteria)
        if self.heldout is not None:
            h = self.heldout.to_dict()
            h.pop("runs", None)
            h.pop("params", None)
            d["heldout"] = h
        elif self.heldout_error:
            d["heldout"] = {"error": self.heldout_error}
        return d


@dataclass
class Comparison:
    """The result of :func:`compare`: one :class:`LawEntry` per law and the winner per measure."""

    entries: list
    split: str | None
    loss: dict
    winners: dict
    notes: list
    verdicts: dict = field(default_factory=dict)

    def label(self, measure: str) -> str:
        """The winner of ``measure`` as printed: the law, ``tie``, ``cannot tell`` or ``-`` (no law has it)."""
        if self.winners.get(measure):
            return self.winners[measure]
        why = self.verdicts.get(measure, "")
        return "tie" if why.startswith("tie") else "cannot tell" if why.startswith("cannot tell") else "-"

    def entry(self, law: str) -> LawEntry:
        return next(e for e in self.entries if e.law == get_law(law).name)

    def to_dict(self) -> dict:
        return {"split": self.split, "loss": self.loss, "winners": self.winners, "verdicts": self.verdicts,
                "labels": {m: self.label(m) for m in self.winners},
                "notes": self.notes, "measures": MEASURES,
                "ties": {"aic": TIE_IC, "bic": TIE_IC, "objective_rel": TIE_OBJECTIVE,
                         "heldout_mean_abs_error": "one run's noise"},
                "laws": [e.to_dict() for e in self.entries]}


def _noise_in_target(e: LawEntry, space: str) -> float:
    """One run's noise in the target's units: the held-out check's robust noise scale (fitted space),
    times the held-out runs' mean observed target where the fit is in log space."""
    h = e.heldout
    scale = float(np.mean(np.abs(h.runs["observed"].to_numpy(float)))) if space == "log" else 1.0
    return float(h.noise) * scale


def _verdict(m: str, cands: list, by_law: dict, space: str) -> tuple[str | None, str]:
    """The winner of measure ``m`` among ``cands`` ((value, law) pairs, best first), or None for a tie, and
    one line saying why."""
    (v0, best), (v1, second) = cands[0], cands[1]
    gap = v1 - v0
    if m in ("aic", "bic"):
        few = [law for _, law in cands if by_law[law].fit.n_runs < by_law[law].n_free + MARGIN]
        if few:
            return None, (f"cannot tell: {', '.join(few)} {'has' if len(few) == 1 else 'have'} fewer runs than "
                          f"free parameters + {MARGIN}, where the criterion means nothing")
        if gap <= TIE_IC:
            return None, (f"tie: {best} and {second} are {gap:.3g} apart, within {TIE_IC:g} units: the data "
                          f"cannot tell them apart")
        return best, f"{best}, {gap:.3g} below {second} (ties: within {TIE_IC:g})"
    if m == "objective":
        rel = gap / max(abs(v0), abs(v1), 1e-300)
        if rel <= TIE_OBJECTIVE:
            return None, (f"tie: {best} and {second} reach the same objective (within {TIE_OBJECTIVE:g} "
                          f"relative)")
        return best, f"{best}, {rel:.3g} relative below {second}"
    unsure = [law for _, law in cands if by_law[law].heldout.outcome == "INCONCLUSIVE"]
    if unsure:
        one = len(unsure) == 1
        return None, (f"cannot tell: the held-out check{'' if one else 's'} of {', '.join(unsure)} "
                      f"{'is' if one else 'are'} inconclusive (the fitted runs cannot identify the law, or the held-out runs "
                      f"cannot be scored as they are), so "
                      f"{'its' if one else 'their'} held-out error says nothing")
    noise = max(_noise_in_target(by_law[best], space), _noise_in_target(by_law[second], space))
    if gap <= noise:
        return None, (f"tie: the mean held-out errors of {best} and {second} differ by {gap:.3g}, no more than "
                      f"one run's noise ({noise:.3g})")
    return best, f"{best}, {gap:.3g} below {second} (one run's noise: {noise:.3g})"


def _winners(entries: list, space: str = "log") -> tuple[dict, list, dict]:
    ok = [e for e in entries if e.fit is not None]
    notes = []
    if not ok:
        return {m: None for m in MEASURES}, notes, {}
    # comparable = fitted to the same number of runs of the same target as most laws
    key = lambda e: (get_law(e.law).predicts, e.fit.n_runs)  # noqa: E731
    groups: dict = {}
    for e in ok:
        groups.setdefault(key(e), []).append(e)
    ref = max(groups, key=lambda k: (len(groups[k]), -ok.index(groups[k][0])))
    for e in ok:
        if key(e) != ref:
            e.comparable = False
            notes.append(f"{e.law} is fitted to {e.fit.n_runs} runs of its {key(e)[0]} (the others: {ref[1]} runs "
                         f"of {ref[0]}); it takes no part in the ranking")
    winners, verdicts = {}, {}
    by_law = {e.law: e for e in ok}
    for m in MEASURES:
        cands = sorted((e.value(m), e.law) for e in ok if e.comparable and math.isfinite(e.value(m)))
        if m == "heldout_mean_abs_error":
            ns = {e.heldout.n_test for e in ok if e.comparable and e.heldout is not None}
            if len(ns) > 1:
                notes.append("the laws score different numbers of held-out runs; no held-out winner")
                cands = []
        if len(cands) >= 2:
            winners[m], verdicts[m] = _verdict(m, cands, by_law, space)
        elif cands:
            winners[m], verdicts[m] = cands[0][1], f"{cands[0][1]}, the only law with this measure"
        else:
            winners[m], verdicts[m] = None, "no law has this measure"
    return winners, notes, verdicts


def compare(runs, laws: str | Iterable[str], *, holdout: str | None = None, level: float = LEVEL,
            options: FitOptions | None = None, mapping=None, progress: Callable[[float], None] | None = None,
            **option_values) -> Comparison:
    """Fit each law in ``laws`` to ``runs`` and compare them.

    Parameters
    ----------
    holdout : str, optional
        Condition picking the held-out runs for every law (``"N>=1e9"``).  Default: the
        runs of the largest model size; ``""`` for no held-out check.
    options, option_values : the :class:`~scalinglaws.fitting.options.FitOptions` used for
        every law (``starts``, ``seed``, ``loss``, ``delta``, ``space``, ``where``).  ``fix``
        does not apply across laws.

    A law that cannot be fitted to the table (a missing column, say) is listed with the
    reason and takes no part in the ranking; an unknown law name is an error.
    """
    names = parse_laws(laws)
    opts = FitOptions.of(options, **option_values)
    if opts.fix:
        raise OptionError("fix", "names one law's parameters; it does not apply to a comparison")
    table, opts = filtered_table(runs, None, opts, mapping=mapping, required=())
    split = default_holdout(table) if holdout is None else (holdout.strip() or None)
    if split is not None:  # a bad split is the user's to fix, whatever the law: check it once, here
        mask = select(table, split, "holdout")
        if not mask.any() or mask.all():
            raise OptionError("holdout", f"{split!r} " + ("selects no runs" if not mask.any() else
                              f"holds out all {len(table)} runs and leaves none to fit on"),
                              file=table.attrs.get("source"))
    entries = []
    steps = 2 * len(names)
    done = 0
    for name in names:
        e = LawEntry(law=name)
        try:
            e.fit = fit_law(table, law=name, options=opts)
            e.criteria = information_criteria(e.fit.objective, e.fit.n_runs, e.n_free)
        except ScalingLawsError as exc:
            e.error = str(exc)
        done += 1
        if progress:
            progress(done / steps)
        if e.fit is not None and split:
            try:
                e.heldout = holdout_check(table, name, split, level=level, options=opts)
            except ScalingLawsError as exc:
                e.heldout_error = str(exc)
        done += 1
        if progress:
            progress(done / steps)
        entries.append(e)
    if all(e.fit is None for e in entries):
        raise InputError("no law could be fitted to these runs: " + "; ".join(f"{e.law}: {e.error}" for e in entries))
    loss = opts.loss_record()
    winners, notes, verdicts = _winners(entries, loss.get("space", "log"))
    if split is None:
        notes.append("no held-out check: " + ("none asked for" if holdout is not None
                                              else "the table has one model size only"))
    return Comparison(entries=entries, split=split, loss=loss, winners=winners, notes=notes, verdicts=verdicts)

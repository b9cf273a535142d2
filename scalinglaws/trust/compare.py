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
criteria rank fits by a robust measure of misfit penalised by parameter count.  Treat
differences of a few units as a tie, and compare only laws fitted to the same runs with
the same loss (the table says when a law is not comparable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import pandas as pd

from scalinglaws.data.errors import OptionError
from scalinglaws.data.runs import select
from scalinglaws.fitting.api import fit as fit_law
from scalinglaws.fitting.options import FitOptions
from scalinglaws.fitting.result import FitResult
from scalinglaws.data.errors import InputError, ScalingLawsError
from scalinglaws.laws import get_law
from scalinglaws.fitting.problem import filtered_table
from scalinglaws.trust.validate import LEVEL, Validation, _distinct, holdout as holdout_check

#: measures a law can win, with the direction that wins
MEASURES = {"objective": "lower", "aic": "lower", "bic": "lower", "heldout_mean_abs_error": "lower"}


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

    def entry(self, law: str) -> LawEntry:
        return next(e for e in self.entries if e.law == get_law(law).name)

    def to_dict(self) -> dict:
        return {"split": self.split, "loss": self.loss, "winners": self.winners, "notes": self.notes,
                "measures": MEASURES, "laws": [e.to_dict() for e in self.entries]}


def _winners(entries: list) -> tuple[dict, list]:
    ok = [e for e in entries if e.fit is not None]
    notes = []
    if not ok:
        return {m: None for m in MEASURES}, notes
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
    winners = {}
    for m in MEASURES:
        cands = [(e.value(m), e.law) for e in ok if e.comparable and math.isfinite(e.value(m))]
        if m == "heldout_mean_abs_error":
            ns = {e.heldout.n_test for e in ok if e.comparable and e.heldout is not None}
            if len(ns) > 1:
                notes.append("the laws score different numbers of held-out runs; no held-out winner")
                cands = []
        winners[m] = min(cands)[1] if cands else None
    return winners, notes


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
    winners, notes = _winners(entries)
    loss = opts.loss_record()
    if split is None:
        notes.append("no held-out check: " + ("none asked for" if holdout is not None
                                              else "the table has one model size only"))
    return Comparison(entries=entries, split=split, loss=loss, winners=winners, notes=notes)

"""``scalinglaws plan``: the best N, D and precision of a fit or preset, with its uncertainty.

:func:`plan` reads the budgets (suffixes allowed: ``"1e23"``, ``"16GB"``, ``"7B"``), runs the
law-agnostic search of :mod:`scalinglaws.laws.plan` on the fit's parameters and, when the fit
was bootstrapped, adds

* ``intervals``: percentile intervals of the chosen configuration's ``N_opt``, ``D_opt``,
  ``loss`` and ``memory_bytes``, re-optimised in every resample (the configuration held
  fixed, so that the interval is about one plan, not a mixture), over the
  ``interval_samples`` of the ``bootstrap_samples`` resamples in which it is feasible;
* ``choices``: how often each configuration wins when the whole search is repeated on the
  resamples (at most ``choice_samples`` of them, evenly spaced), so a user sees whether
  the data pin the choice down or the runner-up wins as often.

>>> import scalinglaws as sl
>>> res = sl.plan("fit.json", flops="1e23", memory="16GB", cost="bits")    # doctest: +SKIP
>>> res["config"], res["N_opt"], res["D_opt"], res["loss"]                 # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import numpy as np

from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.fitting.result import FitResult, resolve_fit
from scalinglaws.laws.base import OPTIONS
from scalinglaws.laws.plan import COSTS, plan_configs, search
from scalinglaws.trust.bootstrap import _level, interval_caveats, plan_interval, samples_of

#: the outputs whose intervals a bootstrapped plan reports
INTERVAL_KEYS = ("N_opt", "D_opt", "loss", "memory_bytes")
#: the share of resamples the chosen configuration must win for the plan to call the choice pinned down
PINNED = 0.9


def _whole_list(values, name: str, lo: float, hi: float | None = None, integer: bool = True) -> list | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [v for v in values.replace(" ", "").split(",") if v]
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise OptionError(name, f"{v!r} is not a number (give a comma list such as 2,4,8)") from None
        if not np.isfinite(x) or x < lo or (hi is not None and x > hi) or (integer and not x.is_integer()):
            span = f"between {lo:g} and {hi:g}" if hi is not None else f">= {lo:g}"
            raise OptionError(name, f"{v!r}: each value must be a {'whole ' if integer else ''}number {span}")
        out.append(int(x) if integer else x)
    if not out:
        raise OptionError(name, "is empty: give a comma list such as 2,4,8")
    return sorted(set(out))


def plan(fit: str | FitResult, *, flops=None, memory=None, N=None, D=None, cost: str = "6ND",
         bits: Sequence | str | None = None, w_bits: Sequence | str | None = None,
         a_bits: Sequence | str | None = None, group_sizes: Sequence | str | None = None,
         qat_fractions: Sequence | str | None = None, top: int = 5, level: float | None = None,
         choice_samples: int = 200) -> dict:
    """Plan with ``fit`` (a fit.json path, a preset name or a :class:`FitResult`).

    Returns the :func:`scalinglaws.laws.plan.search` answer (``best``, ``config``, ``N_opt``,
    ``D_opt``, ``loss``, ``table`` of the runners-up, ``summary``), plus ``intervals``,
    ``level``, ``choices`` and ``caveats`` (the fit's warnings about its bootstrap,
    :func:`~scalinglaws.trust.bootstrap.interval_caveats`) for a bootstrapped fit.
    """
    result = resolve_fit(fit)
    law = result.law_obj
    given = {k: OPTIONS[k].read(v) for k, v in (("flops", flops), ("memory", memory), ("N", N), ("D", D))
             if v is not None}
    if cost not in COSTS:
        raise OptionError("cost", f"{cost!r}: choose {' or '.join(COSTS)}")
    if not (isinstance(top, (int, np.integer)) and top >= 1):
        raise OptionError("top", f"must be a whole number >= 1, got {top!r}")
    if not (isinstance(choice_samples, (int, np.integer)) and choice_samples >= 1):
        raise OptionError("choice_samples", f"must be a whole number >= 1, got {choice_samples!r}")
    kw = dict(bits=_whole_list(bits, "bits", 1, 64), w_bits=_whole_list(w_bits, "w_bits", 1, 64),
              a_bits=_whole_list(a_bits, "a_bits", 1, 64),
              group_sizes=_whole_list(group_sizes, "group_sizes", 1),
              qat_fractions=_whole_list(qat_fractions, "qat_fractions", 0.0, 1.0, integer=False))
    kw = {k: v for k, v in kw.items() if v is not None}
    res = search(law, result.params, cost=cost, top=int(top), **given, **kw)
    res["inputs"] = {**given, "cost": cost, **kw}
    samples = samples_of(result) if result.bootstrap else []
    if not samples:
        if level is not None:
            raise OptionError("level", "applies to a bootstrapped fit (scalinglaws fit ... --bootstrap R)")
        return res
    level = _level(result, level)
    chosen = plan_configs(res)

    used = [0]

    def held(params: Mapping[str, float]) -> dict:
        out = search(law, params, cost=cost, configs=[chosen], **given)
        used[0] += 1
        return {k: out[k] for k in INTERVAL_KEYS}

    res["intervals"] = plan_interval(result, held, level)
    res["level"] = level
    res["caveats"] = interval_caveats(result)
    res["interval_samples"] = used[0]          # resamples in which the chosen configuration is feasible
    res["bootstrap_samples"] = len(samples)
    pick = np.unique(np.linspace(0, len(samples) - 1, min(choice_samples, len(samples))).round().astype(int))
    wins: Counter = Counter()
    for i in pick:
        try:
            wins[search(law, samples[i], cost=cost, top=1, **given, **kw)["config"]] += 1
        except InputError:
            wins["(none feasible)"] += 1
    res["choices"] = {c: n / len(pick) for c, n in wins.most_common()}
    res["choice_samples"] = int(len(pick))
    share = res["choices"].get(res["config"], 0.0)
    res["choice_pinned"] = bool(share >= PINNED)
    res["summary"] += (f"; {res['config']} wins in {100 * share:.0f}% of {len(pick)} bootstrap resamples"
                       + ("" if share >= PINNED else
                          f" (below {100 * PINNED:.0f}%: the data do not pin the choice down; the others win "
                          + ", ".join(f"{c} {100 * v:.0f}%" for c, v in res["choices"].items() if c != res["config"])
                          + ")"))
    return res


__all__ = ["plan", "INTERVAL_KEYS"]

"""The weight/activation decomposition of a QAT penalty (Chen et al. 2025, Section 4.3).

Is the penalty of quantizing weights and activations together the sum of the two
penalties alone?  :func:`decompose` answers it for any registered law that declares a
``decomposition`` (its penalty as a law of its own, and its unquantized part).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from scalinglaws.data.columns import as_columns
from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.fitting.api import fit as fit_law
from scalinglaws.fitting.options import FitOptions
from scalinglaws.fitting.problem import filtered_table
from scalinglaws.laws import REGISTRY, Law, get_law
from scalinglaws.data.columns import group_sizes


@dataclass(frozen=True)
class _Spec:
    law: str
    penalty: Law
    base: Law
    coefficient: float
    reference: str


def _decomposition(law) -> _Spec:
    if law is None:
        have = [x for x in REGISTRY.values() if getattr(x, "decomposition", None) is not None]
        if len(have) != 1:
            raise OptionError("law", "must name the law whose penalty is decomposed (laws with a decomposition: "
                              f"{', '.join(x.name for x in have) or 'none'})")
        law = have[0]
    law = get_law(law)
    d = getattr(law, "decomposition", None)
    if d is None:
        raise OptionError("law", f"'{law.name}' declares no decomposition of its penalty")
    return _Spec(law.name, d.penalty, d.base, d.published_coefficient, d.reference)


def _label(w, a) -> str:
    f = lambda v: str(int(v)) if float(v).is_integer() else f"{v:g}"  # noqa: E731
    return f"W{f(w)}A{f(a)}"


def decompose(runs, law: str | Law | None = None, *, base: Mapping[str, float] | None = None,
              options: FitOptions | None = None, mapping=None, **option_values) -> dict:
    """The weight/activation decomposition of a QAT penalty (Chen et al. 2025, Sec. 4.3).

    The table holds unquantized (BF16) runs and three quantized settings: weight-only
    (``w_bits < 16``, ``a_bits >= 16``, e.g. W4A16), activation-only (W16A4) and both
    (W4A4), each with ``group_size``.  Steps:

    1. The observed penalty of each quantized run is its loss minus the BF16 loss at the
       same N and D: the measured BF16 run when the table has one (the paper's ground
       truth), otherwise the law's unquantized part fitted to the BF16 runs (or given as
       ``base``, e.g. the Chinchilla constants of a preset).
    2. ``delta_W`` (weight-only) and ``delta_A`` (activation-only) are fitted separately,
       each ``k D^gamma_D (log2 G)^gamma_G / N^gamma_N``, on their own rows' penalties
       (robust ``loss``/``delta`` on the differences themselves, which may be <= 0).
       The W4A4 rows get their own term too, for reference.
    3. On the W4A4 rows, the observed penalty is compared with ``delta_W + delta_A``.

    Parameters
    ----------
    runs : DataFrame or path
    law : the law whose penalty is decomposed (default: the one registered law that
        declares a ``decomposition``)
    base : dict, optional
        Parameters of the law's unquantized part (for Chinchilla ``E A B alpha beta``),
        used where no BF16 run matches (N, D).  Default: fitted to the table's BF16 runs
        when some quantized run has no match.
    options, option_values : :class:`~scalinglaws.fitting.options.FitOptions` of the penalty
        fits (robust loss on loss differences, always in linear space); ``fix`` names the
        penalty's parameters (k, gamma_D, gamma_G, gamma_N).

    Returns
    -------
    dict with
        ``weight``, ``activation``, ``both`` : fitted terms (``label`` such as W4A16,
            ``params``, ``n_runs``, ``mean_relative_error`` of the term on its own rows);
        ``mean_relative_error`` : mean over W4A4 rows of
            ``|delta_obs - (delta_W + delta_A)| / |delta_obs|``;
        ``median_relative_error``, ``max_relative_error``;
        ``coefficient`` : least-squares c in ``delta_obs = c (delta_W + delta_A)``
            (Chen et al. report 0.906);
        ``measured`` : the same check without any law, on W4A4 rows whose W-only and
            A-only runs exist at the same (N, D, G): mean relative error and coefficient;
        ``rows`` : one dict per W4A4 run;  ``reference`` : where the BF16 losses came from;
        ``notes`` : warnings (e.g. one group size only: gamma_G not identified);
        ``summary`` : one sentence.
    """
    spec = _decomposition(law)
    opts = FitOptions.of(options, **option_values).replace(space="linear")
    table, opts = filtered_table(runs, None, opts, mapping=mapping, required=("N", "D", "loss"))
    src = table.attrs.get("source", "the table")
    cols = as_columns(table)
    w, a = cols["w_bits"], cols["a_bits"]
    is_base = (w >= 16) & (a >= 16)
    cats = {"weight": (w < 16) & (a >= 16), "activation": (w >= 16) & (a < 16), "both": (w < 16) & (a < 16)}
    missing = [k for k, m in cats.items() if not m.any()]
    if missing:
        what = {"weight": "weight-only (w_bits < 16, a_bits = 16, e.g. W4A16)",
                "activation": "activation-only (w_bits = 16, a_bits < 16, e.g. W16A4)",
                "both": "weight-and-activation (both < 16, e.g. W4A4)"}
        raise InputError("the decomposition needs " + "; ".join(what[k] for k in missing) + " runs",
                         file=src)
    labels = {}
    for k, m in cats.items():
        settings = sorted(set(zip(w[m], a[m])))
        if len(settings) > 1:
            raise InputError(f"{k} runs mix several settings ({', '.join(_label(*s) for s in settings)}); "
                             f"keep one with --where", file=src)
        labels[k] = _label(*settings[0])
    q = ~is_base
    G = group_sizes(cols, q, f"the {spec.law} decomposition")
    if np.any(q & (G < 2)):
        i = int(np.flatnonzero(q & (G < 2))[0])
        raise cols.error("group size must be >= 2 here (log2 G = 0 gives no penalty to fit)", i, "group_size")
    N, D, y = cols["N"], cols["D"], cols["loss"]

    # BF16 reference loss of every quantized run
    ref = np.full(len(table), np.nan)
    bN, bD, by = N[is_base], D[is_base], y[is_base]
    for i in np.flatnonzero(q):
        hit = np.isclose(bN, N[i], rtol=1e-6) & np.isclose(bD, D[i], rtol=1e-6)
        if hit.any():
            ref[i] = by[hit].mean()
    n_matched = int(np.sum(q & ~np.isnan(ref)))
    need = q & np.isnan(ref)
    chin = None
    names = spec.base.param_names
    if need.any():
        if base is None:
            if is_base.sum() < 6 or len(set(bN)) < 2 or len(set(bD)) < 2:
                raise InputError(f"{int(need.sum())} quantized runs have no BF16 run at the same N and D, "
                                 f"and the {int(is_base.sum())} BF16 runs are too few to fit the "
                                 f"{spec.base.name} loss (need >= 6 at >= 2 sizes and token counts); pass "
                                 f"base={{{', '.join(names)}}}", file=src)
            bt = table[is_base].copy()
            bt.attrs["source"] = src
            chin = dict(fit_law(bt, law=spec.base).params)
        else:
            miss = [p for p in names if p not in base]
            if miss:
                raise OptionError("base", f"lacks {', '.join(miss)}")
            chin = {p: float(base[p]) for p in names}
        ref[need] = spec.base.at(chin, N=N[need], D=D[need])
    dobs = y - ref

    fitted = {}
    notes = []
    for k, m in cats.items():
        if m.sum() < 4:
            raise InputError(f"{labels[k]}: {int(m.sum())} runs are too few to fit the 4-parameter penalty",
                             file=src)
        df = pd.DataFrame({"N": N[m], "D": D[m], "group_size": G[m], "delta": dobs[m]})
        df.attrs["source"] = f"{src} ({labels[k]} runs)"
        fix = opts.fix
        if len(set(G[m])) < 2 and not (fix and "gamma_G" in fix):
            notes.append(f"{labels[k]}: one group size only, so k and gamma_G are not separately identified")
        if len(set(D[m])) < 2 and not (fix and "gamma_D" in fix):
            notes.append(f"{labels[k]}: one token count only, so gamma_D is not identified")
        if len(set(N[m])) < 2 and not (fix and "gamma_N" in fix):
            notes.append(f"{labels[k]}: one model size only, so gamma_N is not identified")
        res = fit_law(df, law=spec.penalty, options=opts)
        pred = spec.penalty.at(res.params, N=N[m], D=D[m], group_size=G[m])
        fitted[k] = {"label": labels[k], "params": dict(res.params), "n_runs": int(m.sum()),
                     "mean_relative_error": float(np.mean(np.abs(dobs[m] - pred) / np.abs(dobs[m]))),
                     "converged": res.converged}

    mb = cats["both"]
    dW = spec.penalty.at(fitted["weight"]["params"], N=N[mb], D=D[mb], group_size=G[mb])
    dA = spec.penalty.at(fitted["activation"]["params"], N=N[mb], D=D[mb], group_size=G[mb])
    s, o = dW + dA, dobs[mb]
    rel = np.abs(o - s) / np.abs(o)
    coef = float(np.dot(o, s) / np.dot(s, s))

    # the law-free check: measured W-only + A-only penalties at the same (N, D, G)
    def _match(cat, i):
        mm = cats[cat] & np.isclose(N, N[i], rtol=1e-6) & np.isclose(D, D[i], rtol=1e-6) \
            & np.isclose(G, G[i], rtol=1e-6)
        return float(dobs[mm].mean()) if mm.any() else math.nan

    rows = []
    for j, i in enumerate(np.flatnonzero(mb)):
        mw, ma = _match("weight", i), _match("activation", i)
        rows.append({"row": cols.rows[i], "N": N[i], "D": D[i], "group_size": G[i],
                     "observed": float(o[j]), "weight": float(dW[j]), "activation": float(dA[j]),
                     "sum": float(s[j]), "relative_error": float(rel[j]),
                     "measured_weight": mw, "measured_activation": ma})
    ms = np.array([r["measured_weight"] + r["measured_activation"] for r in rows])
    ok = np.isfinite(ms)
    measured = {"n_runs": int(ok.sum())}
    if ok.any():
        measured["mean_relative_error"] = float(np.mean(np.abs(o[ok] - ms[ok]) / np.abs(o[ok])))
        measured["coefficient"] = float(np.dot(o[ok], ms[ok]) / np.dot(ms[ok], ms[ok]))
    out = {
        "weight": fitted["weight"], "activation": fitted["activation"], "both": fitted["both"],
        "mean_relative_error": float(rel.mean()), "median_relative_error": float(np.median(rel)),
        "max_relative_error": float(rel.max()), "coefficient": coef, "measured": measured,
        "rows": rows,
        "reference": {"matched_bf16_runs": n_matched, f"from_{spec.base.name}": int(need.sum()),
                      spec.base.name: chin},
        "notes": notes,
    }
    out["summary"] = (f"{labels['both']} penalty vs {labels['weight']} + {labels['activation']} on "
                      f"{int(mb.sum())} runs: mean relative error {out['mean_relative_error']:.1%}, "
                      f"{labels['both']} = {coef:.3f} x (sum) ({spec.reference} finds {spec.coefficient:g})")
    return out

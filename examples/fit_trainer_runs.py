"""Fit the quantization laws to the trainer's runs and compare the trends with the papers.

    python examples/fit_trainer_runs.py [data/trainer_runs.csv]
    python examples/fit_trainer_runs.py data/ladder_runs.csv

The table (made by ``scalinglaws sweep data/trainer_sweep.toml``, see data/README.md)
holds full-precision (FP) runs, post-training-quantization (PTQ) rows of them, and
QAT-from-scratch runs with integer weights and activations at 8, 4, 3 and 2 bits, per
channel / per token or with one scale per 32 inputs (G32).  This script

1. measures the penalties straight from the data: QAT penalty = loss of a QAT run minus
   the FP loss at the same N and D; PTQ degradation = loss - loss_fp;
2. fits the laws that apply: ``chinchilla`` (FP rows), ``kumar-ptq`` (FP + PTQ rows),
   ``ouyang-qid`` (PTQ rows), ``chen-qat`` (FP rows + one QAT bit-width at a time, both
   granularities; per-channel rows get G = d_model), ``kumar-precision`` (FP +
   per-channel QAT rows), ``frantar-eff`` (FP + every integer QAT format) and, when the
   table has floating-point-format runs (data/ladder_runs.csv), ``capybara`` (FP rows as
   E8M23 + the ExMy runs);
3. prints, for each finding of the papers, what the data and the fits say.

Every number printed is computed here from the table; nothing is asserted.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

import scalinglaws as sl
from scalinglaws.data.units import human

PATH = sys.argv[1] if len(sys.argv) > 1 else "data/trainer_runs.csv"


def slope(x, y) -> float:
    """Least-squares slope of y on x."""
    return float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])


#: how a trend over many series is judged against the papers' sign (printed with the table)
RULE = ("agrees: the papers' sign in at least 75% of the series and a two-sided sign test p < 0.05; "
        "DISAGREES: the opposite sign by the same standard; weak: the papers' sign on average but short of that; "
        "not seen: otherwise. Orderings (by bits): agrees when every step has the papers' sign, weak when the "
        "ends do, DISAGREES otherwise")


def sign_test(k: int, m: int) -> float:
    """Two-sided p of k or more of m series with one sign, when either sign is as likely."""
    from math import comb
    tail = sum(comb(m, j) for j in range(max(k, m - k), m + 1)) / 2 ** m
    return min(1.0, 2 * tail)


def trend_verdict(slopes, sign: int) -> str:
    """The verdict of per-series slopes against the expected ``sign`` (+1 rises, -1 falls)."""
    x = np.asarray(slopes, float)
    m = x.size
    if m == 0:
        return "not seen (no series)"
    k = int(np.sum(np.sign(x) == sign))
    frac, p = k / m, sign_test(k, m)
    if frac >= 0.75 and p < 0.05:
        return "agrees"
    if 1 - frac >= 0.75 and p < 0.05:
        return "DISAGREES"
    if np.mean(x) * sign > 0:
        return f"weak ({frac:.0%} of {m} series, sign test p = {p:.2g})"
    return f"not seen ({frac:.0%} of {m} series, sign test p = {p:.2g})"


def order_verdict(values) -> str:
    """Penalties listed from most to fewest bits: should rise at every step."""
    v = np.asarray(values, float)
    if np.all(np.diff(v) > 0):
        return "agrees"
    return "weak (not at every step)" if v[-1] > v[0] else "DISAGREES"


def main() -> None:
    t0 = time.perf_counter()
    runs = sl.load_runs(PATH)
    runs = runs[runs["diverged"] == 0]
    is_ptq = runs["ptq_bits"] < 16
    is_qat = (runs["w_bits"] < 16) | (runs["a_bits"] < 16)
    is_fmt = is_qat & (runs["format"] == "fp") if "format" in runs else is_qat & False   # FP formats ExMy
    fp, ptq, qat, fmt = runs[~is_ptq & ~is_qat], runs[is_ptq], runs[is_qat & ~is_fmt].copy(), runs[is_fmt].copy()
    qat["G"] = qat["group_size"].fillna(qat["d_model"])
    qat["gran"] = np.where(qat["group_size"].notna(), "G32", "per-ch")
    sizes, budgets = sorted(fp["N"].unique()), sorted(fp["D"].unique())
    print(f"{PATH}: {len(runs)} rows: {len(fp)} FP, {len(ptq)} PTQ, {len(qat)} integer QAT, {len(fmt)} FP-format QAT; "
          f"N = {', '.join(human(n, 3) for n in sizes)}; D = {', '.join(human(d, 3) for d in budgets)}")

    # ---- 1. the data -------------------------------------------------------------
    base = fp.set_index(["N", "D"])["loss"]
    qat["penalty"] = qat["loss"].to_numpy() - base.loc[list(zip(qat["N"], qat["D"]))].to_numpy()
    ptq = ptq.assign(penalty=ptq["loss"] - ptq["loss_fp"])
    print("\nFP loss (nats/byte), rows N, columns D:")
    print(fp.pivot(index="N", columns="D", values="loss").round(3).to_string())
    print("\nQAT penalty (nats), mean over N and D, by bits and granularity:")
    print(qat.pivot_table(index="w_bits", columns="gran", values="penalty").round(4).sort_index(ascending=False)
          .to_string())
    if len(fmt):
        fmt["penalty"] = fmt["loss"].to_numpy() - base.loc[list(zip(fmt["N"], fmt["D"]))].to_numpy()
        fmt["name"] = [f"E{e:g}M{m:g}" for e, m in zip(fmt["exp_bits"], fmt["man_bits"])]
        print("\nFP-format QAT penalty (nats), rows N, columns format (mean over D):")
        print(fmt.pivot_table(index="N", columns="name", values="penalty").round(4).to_string())
    print("\nPTQ degradation loss - loss_fp (nats), mean over N and D, by bits:")
    print(ptq.groupby("ptq_bits")["penalty"].mean().round(4).sort_index(ascending=False).to_string())

    # Trends in the data: change of the penalty per doubling of N (at fixed D and setting) and
    # per doubling of D (at fixed N), averaged over the settings where the penalty is sizeable.
    def trends(df, keys):
        big = df.groupby(keys)["penalty"].transform("mean") > 0.01
        d = df[big]
        per_n = [slope(np.log2(g["N"]), g["penalty"]) for _, g in d.groupby(keys + ["D"]) if g["N"].nunique() > 1]
        per_d = [slope(np.log2(g["D"]), g["penalty"]) for _, g in d.groupby(keys + ["N"]) if g["D"].nunique() > 1]
        return np.array(per_n), np.array(per_d)

    q_n, q_d = trends(qat, ["w_bits", "gran"])
    p_n, p_d = trends(ptq, ["ptq_bits"])
    by_bits = qat[qat["gran"] == "per-ch"].groupby("w_bits")["penalty"].mean().sort_index(ascending=False)
    ptq_bits = ptq.groupby("ptq_bits")["penalty"].mean().sort_index(ascending=False)
    paired = qat.pivot_table(index=["N", "D", "w_bits"], columns="gran", values="penalty").dropna()

    # ---- 2. the fits ---------------------------------------------------------------
    fits = {}
    data = {"chinchilla": fp, "kumar-ptq": pd.concat([fp, ptq]), "ouyang-qid": ptq}
    for b in sorted(qat["w_bits"].unique()):
        rows = qat[qat["w_bits"] == b]
        if rows["gran"].nunique() == 2 and rows["penalty"].mean() > 0.01:   # needs two group sizes
            data[f"chen-qat W{b:g}A{b:g}"] = pd.concat([fp, rows.assign(group_size=rows["G"])])
    data["kumar-precision"] = pd.concat([fp, qat[qat["gran"] == "per-ch"]])
    data["frantar-eff"] = pd.concat([fp, qat])            # one efficiency per integer format
    if len(fmt):   # the FP runs as E8M23 (float32) with the formats' block size: a negligible penalty
        blocks = fmt["group_size"].iloc[0]
        data["capybara"] = pd.concat([fp.assign(exp_bits=8, man_bits=23, group_size=blocks), fmt])
    for name, df in data.items():
        law = name.split()[0]
        fix = {"gamma_kv": 0.9578, "n_kv": 2.4185} if law == "kumar-precision" else None  # KV is never quantized here
        fits[name] = sl.fit(df.drop(columns=["G", "gran", "penalty", "name"], errors="ignore"), law=law,
                            starts=None if law == "ouyang-qid" else 200, seed=0, fix=fix)
    print("\nfits (r = RMS of the log residuals; ouyang-qid: of the degradation):")
    for name, f in fits.items():
        df = data[name]
        if name == "ouyang-qid":                 # fitted to the degradation loss - loss_fp > 0
            df = df[df["loss"] > df["loss_fp"]]
            y = df["loss"] - df["loss_fp"]
        else:
            y = df["loss"]
        r = np.log(y.to_numpy()) - np.log(f.predict(df))
        params = ", ".join(f"{k}={v:.4g}" for k, v in f.params.items())
        print(f"  {name:16s} ({f.n_runs} rows, r={np.sqrt(np.mean(r ** 2)):.4f}) {params}")

    kp = fits["kumar-precision"].params

    def n_eff_fraction(bits):
        g = lambda p, n: 1 - np.exp(-bits / kp[f"gamma_{p}"] + kp[f"n_{p}"])   # noqa: E731
        return g("w", kp["n_w"]) * g("a", kp["n_a"]) * (1 - np.exp(-16 / kp["gamma_kv"] + kp["n_kv"]))

    # ---- 3. the comparison -------------------------------------------------------
    print("\nfinding of the papers                           this data and these fits")
    chen = {k: f.params for k, f in fits.items() if k.startswith("chen")}
    ko, oq = fits["kumar-ptq"].params, fits["ouyang-qid"].params
    lines = [
        ("QAT penalty falls as N grows (Chen: gamma_N > 0)",
         f"{q_n.mean():+.4f} nats per doubling of N (falls in {np.mean(q_n < 0):.0%} of {len(q_n)} series); "
         + "; ".join(f"{k[9:]} gamma_N={v['gamma_N']:.3f}" for k, v in chen.items()),
         trend_verdict(q_n, -1)),
        ("QAT penalty rises with D (Chen: gamma_D > 0)",
         f"{q_d.mean():+.4f} nats per doubling of D (rises in {np.mean(q_d > 0):.0%} of {len(q_d)} series); "
         + "; ".join(f"{k[9:]} gamma_D={v['gamma_D']:.3f}" for k, v in chen.items()),
         trend_verdict(q_d, +1)),
        ("QAT penalty rises as bits fall",
         "per channel: " + ", ".join(f"W{b:g}A{b:g} {v:+.4f}" for b, v in by_bits.items())
         + "; N_eff/N (kumar-precision): " + ", ".join(f"{b}b {n_eff_fraction(b):.2f}" for b in (8, 4, 3, 2)),
         order_verdict(by_bits.to_numpy())),
        ("QAT penalty rises as groups coarsen (Chen: gamma_G > 0)",
         f"per channel minus G32: {(paired['per-ch'] - paired['G32']).mean():+.4f} nats on average "
         f"(higher in {np.mean(paired['per-ch'] > paired['G32']):.0%} of {len(paired)} pairs); "
         + "; ".join(f"{k[9:]} gamma_G={v['gamma_G']:.3f}" for k, v in chen.items()),
         trend_verdict((paired["per-ch"] - paired["G32"]).to_numpy(), +1)),
        ("PTQ degradation falls as N grows (Kumar gamma_N > 0, Ouyang alpha > 0)",
         f"{p_n.mean():+.4f} nats per doubling of N; kumar-ptq gamma_N={ko['gamma_N']:.3f}, "
         f"ouyang-qid alpha={oq['alpha']:.3f}",
         trend_verdict(p_n, -1)),
        ("PTQ degradation rises with D (Kumar gamma_D > 0, Ouyang beta > 0)",
         f"{p_d.mean():+.4f} nats per doubling of D; kumar-ptq gamma_D={ko['gamma_D']:.3f}, "
         f"ouyang-qid beta={oq['beta']:.3f}",
         trend_verdict(p_d, +1)),
        ("PTQ degradation rises as bits fall",
         ", ".join(f"PTQ {b:g}b {v:+.4f}" for b, v in ptq_bits.items())
         + f"; ouyang-qid gamma={oq['gamma']:.2f}, kumar-ptq gamma_post={ko['gamma_post']:.2f}",
         order_verdict(ptq_bits.to_numpy())),
    ]
    if len(fmt):
        by_width = fmt.assign(width=1 + fmt["exp_bits"] + fmt["man_bits"]).groupby("width")["penalty"].mean()
        f_n, _ = trends(fmt.assign(w_bits=fmt["name"]), ["w_bits"])
        cp = fits["capybara"].params
        lines += [
            ("FP-format QAT penalty rises as the format narrows (Sun et al.)",
             ", ".join(f"{w:g} bits {v:+.4f}" for w, v in by_width.sort_index(ascending=False).items()),
             order_verdict(by_width.sort_index(ascending=False).to_numpy())),
            ("FP-format QAT penalty falls as N grows (Sun: penalty ~ D^beta / N^alpha)",
             f"{f_n.mean():+.4f} nats per doubling of N (falls in {np.mean(f_n < 0):.0%} of {len(f_n)} series); "
             f"capybara alpha={cp['alpha']:.3f}", trend_verdict(f_n, -1)),
        ]
    effs = {k: v for k, v in fits["frantar-eff"].params.items() if k.startswith("eff[")}
    per_ch = [effs[f"eff[W{b:g}A{b:g}]"] for b in sorted(qat["w_bits"].unique(), reverse=True)
              if f"eff[W{b:g}A{b:g}]" in effs]
    lines.append(("Each format counts as a fraction of its parameters, lower for fewer bits (Frantar et al.)",
                  ", ".join(f"{k[4:-1]} {v:.3g}" for k, v in sorted(effs.items(), key=lambda kv: -kv[1])),
                  order_verdict([1 - e for e in per_ch])))
    for claim, evidence, said in lines:
        print(f"- {claim}: {said}\n    {evidence}")
    print(f"\n({RULE})")
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()

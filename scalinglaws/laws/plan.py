"""One planner across laws (the search behind ``scalinglaws plan``): the best N, D and precision under compute and memory budgets.

:func:`search` finds, for a law and its parameters, model size ``N``, tokens ``D`` and every
precision axis the law models, jointly:

* training bits (``w_bits``/``a_bits``/``kv_bits``: one width for all of them, or the product
  of separate weight and activation lists), post-training bits (``ptq_bits``);
* floating-point formats ``ExMy`` (``exp_bits``/``man_bits``: every split of each width);
* group sizes (``group_size``);
* the QAT fraction ``f = D_qat / (D_fp + D_qat)``;
* the formats a law was fitted on, for laws whose parameters are per format
  (:meth:`Law.plan_space`).

Which axes apply is read from the law's columns (and its :meth:`Law.plan_space` hook), so no
law is named here.  Each configuration's loss is evaluated on a log grid of N (with D set by
the compute budget) in one vectorised call of the law's formula, and the best N of each
configuration is refined on two finer grids (to about 0.01% in N).

Budgets
-------
compute : ``C = 6 N D k`` FLOPs with ``k = 1`` (``cost="6ND"``, the default), or
    ``k = (1 - f) + f P / 16`` (``cost="bits"``: Kumar et al.'s ``C = (6/16) N D P`` for the
    tokens trained at ``P`` bits, the matmul-input width ``max(w_bits, a_bits)`` or the FP
    format's ``1 + E + M``).
memory : the trained model's weights, ``N (b + s / G) / 8`` bytes with ``b`` the deployed
    weight bits (``ptq_bits`` when quantized after training, else the trained weight bits,
    else the FP format's width, else 16), ``s = 16``-bit scales and ``G`` the group size
    (no scale term without one).  N is the non-embedding count, as in the laws.

Points outside the law's domain (a loss that is not finite, a row the law refuses, or one
:meth:`Law.in_domain` rules out, such as an effective parameter count <= 0) are left out; a
configuration with no point left is dropped and counted (``outside_domain``).
"""

from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Sequence

import numpy as np

from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.schema import UNQUANTIZED_BITS
from scalinglaws.data.units import human, human_bytes

#: default search lists (user units)
BITS = (2, 3, 4, 5, 6, 7, 8, 16)
GROUP_SIZES = (16, 32, 64, 128, 256)
QAT_FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 41), 4))
SCALE_BITS = 16
N_RANGE = (1e2, 1e16)     # the search range of N (parameters)
COSTS = ("6ND", "bits")
#: what each search list is about, for the message when a law does not model it
AXIS_WORDS = {"bits": "a bit width", "w_bits": "a weight bit width", "a_bits": "an activation bit width",
              "group_sizes": "a group size", "qat_fractions": "a QAT fraction"}


def not_modelled(law_name: str, axis: str, why: str = "") -> OptionError:
    """The error for a search list (``bits``, ``qat_fractions``, ...) that law ``law_name`` has no term for."""
    return OptionError(axis, f"does not apply: law '{law_name}' does not model {AXIS_WORDS[axis]}{why}")


#: the configuration keys a plan reports, in this order
AXES = ("w_bits", "a_bits", "kv_bits", "ptq_bits", "exp_bits", "man_bits", "group_size", "qat_fraction")


def space(law, params: Mapping[str, float], *, bits: Sequence[int] | None = None,
          w_bits: Sequence[int] | None = None, a_bits: Sequence[int] | None = None,
          group_sizes: Sequence[float] | None = None, qat_fractions: Sequence[float] | None = None
          ) -> list[dict]:
    """The configurations to search: a list of dicts over :data:`AXES` (absent keys: not modelled)."""
    custom = law.plan_space(params, bits=bits, w_bits=w_bits, a_bits=a_bits, group_sizes=group_sizes,
                            qat_fractions=qat_fractions)
    if custom is not None:
        return [dict(c) for c in custom]
    cols = set(law.columns) | set(law.optional_columns)
    axes_of = {"bits": ("w_bits", "a_bits", "kv_bits", "ptq_bits", "exp_bits"), "group_sizes": ("group_size",),
               "qat_fractions": ("D_qat",)}
    for name, given in (("bits", bits), ("group_sizes", group_sizes), ("qat_fractions", qat_fractions)):
        if given is not None and not cols & set(axes_of[name]):
            raise not_modelled(law.name, name)
    axes: list[list[dict]] = []
    widths = list(bits or BITS)
    train = [c for c in ("w_bits", "a_bits", "kv_bits") if c in cols]
    if w_bits is not None or a_bits is not None:
        if not train:
            raise OptionError("w_bits", f"law '{law.name}' has no training precision to search")
        if a_bits is not None and "a_bits" not in cols:
            raise not_modelled(law.name, "a_bits")
        ws, as_ = list(w_bits or widths), list(a_bits or widths)
        axes.append([{"w_bits": w, **({"a_bits": a} if "a_bits" in cols else {}),
                      **({"kv_bits": a} if "kv_bits" in cols else {})} for w in ws for a in as_])
    elif train:
        axes.append([{c: b for c in train} for b in widths])
    if "ptq_bits" in cols:
        axes.append([{"ptq_bits": b} for b in widths])
    if "exp_bits" in cols and "man_bits" in cols:
        axes.append([{"exp_bits": e, "man_bits": b - 1 - e} for b in widths if b < 16 for e in range(1, b)]
                    + [{"exp_bits": e, "man_bits": b - 1 - e} for b in widths if b == 16 for e in (5, 8)])
    if "group_size" in cols:
        axes.append([{"group_size": g} for g in (group_sizes or GROUP_SIZES)])
    if "D_qat" in cols:
        axes.append([{"qat_fraction": float(f)} for f in (qat_fractions if qat_fractions is not None
                                                            else QAT_FRACTIONS)])
    out, seen = [], set()
    for combo in itertools.product(*axes):
        cfg = dict(itertools.chain.from_iterable(d.items() for d in combo))
        plain = "exp_bits" not in cfg and all(cfg.get(c, UNQUANTIZED_BITS) >= UNQUANTIZED_BITS
                                              for c in ("w_bits", "a_bits", "kv_bits", "ptq_bits"))
        if plain and "group_size" in cfg:
            cfg.pop("group_size")   # nothing is quantized: no scales, whatever the group size
        if "qat_fraction" in cfg:
            if plain:
                cfg["qat_fraction"] = 0.0   # nothing to train with QAT
            elif cfg["qat_fraction"] <= 0:
                continue                    # quantized without QAT tokens: post-training quantization
        key = tuple(sorted(cfg.items()))
        if key not in seen:
            seen.add(key)
            out.append(cfg)
    return out


def deployed_bits(cfg: Mapping[str, float]) -> float:
    """Weight bits of the trained model as stored (see the module docstring)."""
    if cfg.get("ptq_bits", UNQUANTIZED_BITS) < UNQUANTIZED_BITS:
        return float(cfg["ptq_bits"])
    if "w_bits" in cfg:
        return float(cfg["w_bits"])
    if "exp_bits" in cfg:
        return float(1 + cfg["exp_bits"] + cfg["man_bits"])
    return UNQUANTIZED_BITS


def training_bits(cfg: Mapping[str, float]) -> float:
    """Width of the matmul inputs in training (16 when the law models none)."""
    if "exp_bits" in cfg:
        return float(1 + cfg["exp_bits"] + cfg["man_bits"])
    if "w_bits" not in cfg and "a_bits" not in cfg:
        return UNQUANTIZED_BITS
    # a law that models only the weights trains its activations in 16 bits
    widths = [cfg.get("w_bits", UNQUANTIZED_BITS), cfg.get("a_bits", UNQUANTIZED_BITS)]
    return float(min(max(widths), UNQUANTIZED_BITS))


def bytes_per_param(cfg: Mapping[str, float]) -> float:
    g = cfg.get("group_size")
    return (deployed_bits(cfg) + (SCALE_BITS / g if g else 0.0)) / 8.0


def cost_factor(cfg: Mapping[str, float], cost: str) -> float:
    """``k`` in ``C = 6 N D k``."""
    if cost == "6ND":
        return 1.0
    f = cfg.get("qat_fraction", 1.0)
    return (1.0 - f) + f * training_bits(cfg) / UNQUANTIZED_BITS


def label(cfg: Mapping[str, float]) -> str:
    """A short name of a configuration: ``W4A4 G32``, ``E4M3``, ``PTQ 4``, ``f 0.35``."""
    parts = []
    if "w_bits" in cfg:
        w, a = cfg["w_bits"], cfg.get("a_bits")
        parts.append(f"W{w:g}" + (f"A{a:g}" if a is not None else ""))
    if "exp_bits" in cfg:
        parts.append(f"E{cfg['exp_bits']:g}M{cfg['man_bits']:g}")
    if cfg.get("ptq_bits", UNQUANTIZED_BITS) < UNQUANTIZED_BITS:
        parts.append(f"PTQ {cfg['ptq_bits']:g}")
    if "group_size" in cfg:
        parts.append(f"G{cfg['group_size']:g}")
    if "qat_fraction" in cfg:
        parts.append(f"f {cfg['qat_fraction']:g}")
    extra = [f"{k}={v}" for k, v in cfg.items() if k not in AXES]
    return " ".join(parts + extra) or "16-bit"


def _columns(cfgs: Sequence[Mapping], N: np.ndarray, D: np.ndarray) -> dict[str, np.ndarray]:
    """Run columns for configurations x N values (rows: config-major)."""
    k, g = len(cfgs), N.shape[1]
    out: dict[str, np.ndarray] = {"N": N.ravel(), "D": D.ravel()}
    keys = sorted({key for c in cfgs for key in c})
    for key in keys:
        if key == "qat_fraction":
            continue
        out[key] = np.repeat(np.array([float(c.get(key, np.nan)) for c in cfgs]), g)
    if any("qat_fraction" in c for c in cfgs):
        f = np.repeat(np.array([float(c.get("qat_fraction", 1.0)) for c in cfgs]), g)
        out["D_qat"] = f * out["D"]
        out["D_fp"] = out["D"] - out["D_qat"]
    assert out["N"].size == k * g
    return out


def search(law, params: Mapping[str, float], *, flops: float | None = None, memory: float | None = None,
         N: float | None = None, D: float | None = None, cost: str = "6ND", top: int = 5,
         configs: Iterable[Mapping] | None = None, n_range: tuple[float, float] = N_RANGE, **space_kw) -> dict:
    """The best configuration of ``law`` with ``params`` under the budgets; see the module docstring.

    Returns a dict: ``best`` (the winning configuration with N, D, loss, memory and FLOPs),
    ``best_config`` (its run columns alone, as searched),
    its numbers at the top level (``N_opt``, ``D_opt``, ``loss``, ``memory_bytes``, ``flops_used``),
    ``table`` (the ``top`` best configurations, each at its own best N), ``searched`` /
    ``feasible`` / ``outside_domain`` counts and a one-sentence ``summary``.
    """
    if law.predicts != "loss" or law.target != "loss":
        raise InputError(f"law '{law.name}' predicts {law.target_name}, not the loss: plan needs a loss law")
    if cost not in COSTS:
        raise OptionError("cost", f"{cost!r}: choose {' or '.join(COSTS)}")
    if flops is None and D is None:
        raise OptionError("flops", "is needed unless D is given (the budget is what decides the tokens)")
    if flops is None and N is None and memory is None:
        raise OptionError("flops", "or memory is needed to bound N (or give N)")
    if N is not None and D is not None and flops is not None:
        raise OptionError("flops", "with both N and D given there is nothing left for the budget to decide; "
                                   "drop one of them")
    cfgs = [dict(c) for c in configs] if configs is not None else space(law, params, **space_kw)
    if not cfgs:
        raise InputError(f"law '{law.name}': no configuration to search")
    kf = np.array([cost_factor(c, cost) for c in cfgs])
    bpp = np.array([bytes_per_param(c) for c in cfgs])
    lo, hi = n_range
    n_max = np.full(len(cfgs), hi) if memory is None else memory / bpp
    def tokens(n_arr):
        if D is not None:
            return np.full_like(n_arr, float(D))
        return flops / (6.0 * n_arr * kf[:, None])

    def evaluate(n_arr):
        d_arr = tokens(n_arr)
        with np.errstate(all="ignore"):
            try:
                cols = _columns(cfgs, n_arr, d_arr)
                loss = np.asarray(law.predict(params, cols), float).reshape(n_arr.shape)
                loss[~np.asarray(law.in_domain(params, cols), bool).reshape(n_arr.shape)] = np.nan
            except InputError:          # some rows are outside the law: find them one configuration at a time
                loss = np.full(n_arr.shape, np.nan)
                for k in range(len(cfgs)):
                    try:
                        cols = _columns(cfgs[k:k + 1], n_arr[k:k + 1], d_arr[k:k + 1])
                        loss[k] = np.where(law.in_domain(params, cols), law.predict(params, cols), np.nan)
                    except InputError:
                        pass
        ok = np.isfinite(loss) & (n_arr <= n_max[:, None] * (1 + 1e-12)) & (n_arr > 0)
        if flops is None and D is None:   # no compute budget: N is bounded by memory only
            ok &= np.isfinite(n_max)[:, None]
        return np.where(ok, loss, np.inf)

    if D is not None and flops is not None and N is None:      # N follows from the budget
        n_arr = (flops / (6.0 * float(D) * kf))[:, None]
        loss = evaluate(n_arr)
    elif N is not None:
        n_arr = np.full((len(cfgs), 1), float(N))
        loss = evaluate(n_arr)
    else:
        top_n = np.minimum(n_max, hi)
        if flops is not None and D is None:
            top_n = np.minimum(top_n, flops / (6.0 * kf))    # at least one token
        a = np.full(len(cfgs), lo)
        b = np.maximum(top_n, lo * 1.0001)
        n_arr = np.exp(np.linspace(np.log(a), np.log(b), 801, axis=1))
        loss = evaluate(n_arr)
        for _ in range(2):    # two refinements around each configuration's best point
            i = np.argmin(loss, axis=1)
            step = np.log(n_arr[:, 1] / n_arr[:, 0])
            centre = np.log(n_arr[np.arange(len(cfgs)), i])
            la = np.maximum(centre - 2 * step, np.log(a))
            lb = np.minimum(centre + 2 * step, np.log(b))
            n_arr = np.exp(np.linspace(la, lb, 81, axis=1))
            loss = evaluate(n_arr)
    j = np.argmin(loss, axis=1)
    best_loss = loss[np.arange(len(cfgs)), j]
    best_n = n_arr[np.arange(len(cfgs)), j]
    feasible = np.isfinite(best_loss)
    if not feasible.any():
        raise InputError(f"no configuration of law '{law.name}' is feasible under these budgets"
                         + (f" (memory {human_bytes(memory)} allows at most {human(float(np.max(n_max)))} parameters)"
                            if memory is not None else ""))
    order = [int(k) for k in np.argsort(best_loss, kind="stable") if feasible[k]]

    def row(k):
        n = float(best_n[k])
        d = float(D) if D is not None else float(flops / (6.0 * n * kf[k]))
        out = {"config": label(cfgs[k]), **{a: cfgs[k][a] for a in AXES if a in cfgs[k]},
               **{a: v for a, v in cfgs[k].items() if a not in AXES},
               "N": n, "D": d, "tokens_per_param": d / n, "loss": float(best_loss[k]),
               "memory_bytes": n * float(bpp[k]), "flops_used": 6.0 * n * d * float(kf[k])}
        if memory is not None and n >= n_max[k] * (1 - 1e-6):
            out["memory_bound"] = True
        elif N is None and D is None and (n <= lo * (1 + 1e-6) or n >= hi * (1 - 1e-6)):
            out["range_bound"] = True      # the optimum lies outside the searched N
        return out

    table = [row(k) for k in order[:top]]
    best = table[0]
    gap = table[1]["loss"] - best["loss"] if len(table) > 1 else float("nan")
    res = {"best": best, "best_config": dict(cfgs[order[0]]), "config": best["config"], "N_opt": best["N"], "D_opt": best["D"], "loss": best["loss"],
           "memory_bytes": best["memory_bytes"], "flops_used": best["flops_used"],
           **{a: best[a] for a in AXES if a in best},
           "runner_up_gap": gap, "searched": len(cfgs), "feasible": int(feasible.sum()),
           "outside_domain": int((~feasible).sum()), "cost": cost, "table": table}
    budget = []
    if flops is not None:
        budget.append(f"C = {flops:.3g} FLOPs ({'6ND' if cost == '6ND' else '6ND P/16'})")
    if memory is not None:
        budget.append(f"{human_bytes(memory)} of weights")
    fixed = [f"{k} = {human(float(v))}" for k, v in (("N", N), ("D", D)) if v is not None]
    res["summary"] = (f"best of {int(feasible.sum())} configurations"
                      + (f" under {' and '.join(budget)}" if budget else "")
                      + (f" at {', '.join(fixed)}" if fixed else "")
                      + f": {best['config']}, N = {human(best['N'])}, D = {human(best['D'])} "
                        f"({best['tokens_per_param']:.3g} tokens/parameter), loss {best['loss']:.4f}"
                      + (f"; the runner-up ({table[1]['config']}) is {gap:.2g} nats worse" if len(table) > 1 else "")
                      + (" (limited by memory)" if best.get("memory_bound") else "")
                      + (f" (at the edge of the searched N, {human(lo)} to {human(hi)}: the optimum lies beyond)"
                         if best.get("range_bound") else ""))
    return res


def plan_configs(res: Mapping) -> dict:
    """The winning configuration of a :func:`search` result, to pass back as ``configs=[...]``."""
    return dict(res["best_config"])


__all__ = ["search", "space", "plan_configs", "label", "bytes_per_param", "cost_factor", "BITS", "GROUP_SIZES",
           "QAT_FRACTIONS", "COSTS", "AXES"]

"""Frantar efficiency: a compressed model counts as a fraction of its parameters.

Frantar et al. 2025, "Compression Scaling Laws: Unifying Sparsity and Quantization"
(arXiv 2502.16440)::

    L = A (N * eff(C))^-alpha + B D^-beta + E

where C is the compression format a run was trained in and eff(C) in (0, 1] its
*effective parameter multiplier* (EPM): a model of N parameters in format C behaves like a
dense 16-bit model of N * eff(C) parameters.  The law has one efficiency per distinct
format, so its parameter list depends on the table it is fitted to.

What was checked against the paper, and how
-------------------------------------------
* The law's form.  The paper's abstract (arXiv 2502.16440, read in the ar5iv copy) says that
  "weight sparsity acts as a constant multiplier on model size in scaling laws" and that
  "this 'effective parameter' scaling pattern extends to quantization as well"; the form
  ``L(N, D, C) = a / (N eff(C))^b + c / D^d + e`` is the one QuEST (Panferov et al. 2025,
  Sec. 4.3, Eq. 5: "Following Frantar et al. (2025) ... a multiplicative factor eff(P)")
  and summaries of the paper quote.  That is the formula below.
* The paper's tables of fitted multipliers could NOT be read here: only the abstract and
  the opening of the introduction were reachable in the stored copies of the paper.  The
  multipliers that summaries of the paper quote (4-bit weight-only 0.923, 4-bit weights and
  activations 0.747, 1-bit weights and activations 0.067, 50% sparsity 0.871, "8-bit
  quantization" 0.857) are therefore NOT presets here; ``examples/papers/frantar2025.py``
  lists them as known differences, with where they were quoted.  Nor are the paper's fitted
  a, b, c, d, e known, which a usable preset would also need.  So this law has no preset.
* Combining sparsity with quantization.  Whether the paper states that the multipliers of
  a sparse-and-quantized format multiply (eff(S50 + W4) = eff(S50) eff(W4)) could not be
  established from the text available.  So the law assumes nothing: a combined format is a
  format of its own, with its own fitted efficiency (the law as written, one eff(C) per
  format C), and predicting a combination that was not fitted is refused even when its
  parts were.  A table with the parts and the combination lets one compare the fitted
  eff of the combination with the product of the parts' (see the tests).

Formats
-------
The format of a row is its key from ``w_bits``, ``a_bits``, ``group_size`` (when the table
has it; quantized formats only) and ``sparsity`` (the fraction of the weights pruned;
empty or absent = 0, dense): ``W4A16``, ``W4A4G32``, ``W16A16S50`` (16-bit, 50% of the
weights pruned), ``W4A16S50`` (both), ``W3.5A16`` (see :func:`format_key`; the sparsity is
written in percent).  Rows with ``w_bits >= 16``, ``a_bits >= 16`` and no sparsity are the
dense baseline and have eff = 1 exactly (whatever their group size): they carry no
efficiency parameter.  Every other format found gets a parameter named ``eff[KEY]``, fitted
as ``log eff`` within [-10, 0], so that eff stays in (0, 1] (eff = 1 means the format costs
nothing; exp(-10) is the floor).  N is the parameter count of the dense architecture (a 50%
sparse model of N parameters keeps N / 2 of them non-zero).

Parameters depending on the data
--------------------------------
The registered law (``get_law("frantar-eff")``) has only ``E A B alpha beta``.
:meth:`FrantarEff.for_runs` returns an instance whose parameters also include one
``eff[KEY]`` per format found in a table; :func:`scalinglaws.fit` calls it through
the generic :meth:`Law.specialize` hook, and :func:`scalinglaws.load_fit` rebuilds
the same instance from the parameter names in ``fit.json`` through
:meth:`Law.from_param_names`.  ``fix={"eff[W4A16]": 0.5}`` holds one efficiency.
Predicting a row whose format has no fitted efficiency is refused, naming it.

Scales (A, B, E) and efficiencies are fitted as their logarithms.

Parameters
----------
E : irreducible loss (nats/token).
A, alpha : scale and exponent of the finite-model term, in effective parameters.
B, beta : scale and exponent of the finite-data term.
eff[KEY] : effective parameter multiplier of format KEY, in (0, 1].

Planner ``compute`` (``--flops``, optional ``--w-bits``, ``--a-bits``, ``--group-size``,
``--sparsity``): compute-optimal N and D for C = 6ND when training in that format (dense
16-bit by default): Chinchilla with A' = A eff^-alpha.  ``scalinglaws plan`` searches the
fitted formats (and dense 16-bit) through :meth:`FrantarEff.plan_space`.
"""

from __future__ import annotations

import math
import re
from typing import Iterable

import numpy as np

from scalinglaws.data.columns import as_columns
from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.schema import DENSE_SPARSITY, UNQUANTIZED_BITS
from scalinglaws.data.units import human
from scalinglaws.laws.plan import not_modelled
from scalinglaws.laws.base import Law, Option, Param, Planner, View, exps
from scalinglaws.laws.chinchilla import compute_optimal

_EFF_NAME = re.compile(r"^eff\[(.+)\]$")
_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_KEY = re.compile(rf"^W{_NUM}A{_NUM}(?:G{_NUM})?(?:S{_NUM})?$")


def format_keys(names) -> list[str]:
    """The format keys of the efficiency parameters among ``names`` (``eff[W4A16G128]`` -> ``W4A16G128``), in order."""
    return [m.group(1) for m in map(_EFF_NAME.match, map(str, names)) if m]


def _num(v: float) -> str:
    return str(int(round(v))) if abs(v - round(v)) < 1e-9 else f"{v:g}"


def _given(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def is_quantized(w_bits: float, a_bits: float) -> bool:
    """Weights or activations below 16 bits."""
    return not (w_bits >= UNQUANTIZED_BITS and a_bits >= UNQUANTIZED_BITS)


def format_key(w_bits: float, a_bits: float, group_size: float | None = None,
               sparsity: float = DENSE_SPARSITY) -> str:
    """The format key of a run: ``W4A16``, ``W4A4G32``, ``W16A16S50``, ``W4A16S87.5``.

    ``G`` only with a group size and only for a quantized format (a 16-bit format has no
    scales); ``S`` only with a sparsity > 0, written in percent of the weights pruned.
    """
    key = f"W{_num(w_bits)}A{_num(a_bits)}"
    if _given(group_size) and is_quantized(w_bits, a_bits):
        key += f"G{_num(group_size)}"
    if _given(sparsity) and sparsity > 0:
        key += f"S{_num(100.0 * sparsity)}"
    return key


def parse_format_key(key: str) -> dict[str, float]:
    """The run columns of a format key (the inverse of :func:`format_key`)."""
    m = _KEY.match(key)
    if not m:
        raise InputError(f"format {key!r} is not a key of the form W<bits>A<bits>[G<group>][S<percent>] "
                         f"(W4A16, W4A4G32, W16A16S50)")
    w, a, g, s = m.groups()
    out = {"w_bits": float(w), "a_bits": float(a)}
    if g is not None:
        out["group_size"] = float(g)
    if s is not None:
        out["sparsity"] = float(s) / 100.0
    return out


def is_dense(w_bits: float, a_bits: float, sparsity: float = DENSE_SPARSITY) -> bool:
    """16-bit weights and activations, nothing pruned: the baseline, eff = 1."""
    return not is_quantized(w_bits, a_bits) and not (_given(sparsity) and sparsity > 0)


def eff_name(key: str) -> str:
    return f"eff[{key}]"


_SPARSITY = Option("sparsity", "fraction of the weights pruned, 0 <= s < 1 (0.5: 50% sparsity)", "number", lo=0)


class FrantarEff(Law):
    name = "frantar-eff"
    title = "Frantar efficiency: one effective-parameter multiplier per compression format"
    reference = "Frantar et al. 2025, Compression Scaling Laws: Unifying Sparsity and Quantization"
    formula_text = ("L = A (N eff(C))^-alpha + B D^-beta + E, one eff(C) in (0, 1] per format C "
                    "(parameters eff[W4A16], eff[W16A16S50], ...; eff = 1 for dense 16-bit rows)")
    base_params = (
        Param("E", "irreducible loss (nats/token)", exps(-7, 5), exps(0, 1), log=True),
        Param("A", "scale of the finite-model term (effective parameters)", exps(-10, 60), exps(4, 8, 12),
              log=True),
        Param("B", "scale of the finite-data term", exps(-10, 60), exps(4, 8, 12), log=True),
        Param("alpha", "exponent of effective model size", (0.0, 5.0), (0.2, 0.5, 0.8)),
        Param("beta", "exponent of data size", (0.0, 5.0), (0.2, 0.5, 0.8)),
    )
    params = base_params
    amplitudes = ("E", "A", "B")  # the formula is affine in them: solved per start, not searched
    columns = ("N", "D", "w_bits", "a_bits")
    optional_columns = ("group_size", "sparsity")
    presets = {}
    planners = (
        Planner("compute", "compute-optimal N and D for C = 6ND when training in a format", "plan_compute",
                required=("flops",), optional=("w_bits", "a_bits", "group_size", _SPARSITY)),
    )
    penalty_axes = ("bits", "group_size", "tokens_per_byte")
    figure = (View("params", match=r"^eff\[(.+)\]$", label="effective parameter multiplier eff", reference=1.0,
                   reference_label="eff = 1: dense 16-bit",
                   title="efficiency of each format (1: as good as dense 16-bit)"),
              View("curves", x="D", panels="N", curves="precision",
                   title="loss against tokens, one panel per model size, one curve per format"))

    def __init__(self, formats: Iterable[str] = ()):
        self.formats = tuple(formats)
        if len(set(self.formats)) != len(self.formats):
            raise InputError(f"law '{self.name}': repeated format in {', '.join(self.formats)}")
        self.params = self.base_params + tuple(
            Param(eff_name(f), f"effective parameter multiplier of format {f}, in (0, 1]",
                  exps(-10, 0), exps(-0.5), log=True) for f in self.formats)

    def __repr__(self):
        return f"FrantarEff(formats={list(self.formats)!r})"

    # ------------------------------------------------- data-dependent parameters
    @classmethod
    def _row_parts(cls, runs):
        cols = as_columns(runs)
        cols.require(cls.columns, f"law '{cls.name}'")
        g = cols["group_size"] if "group_size" in cols else np.full(cols.n, np.nan)
        return cols, cols["w_bits"], cols["a_bits"], g, cols["sparsity"]   # sparsity: 0 when absent

    @classmethod
    def row_formats(cls, runs) -> list[str | None]:
        """The format key of each row (None for dense 16-bit rows)."""
        _, w, a, g, s = cls._row_parts(runs)
        return [None if is_dense(wi, ai, si) else format_key(wi, ai, gi, si)
                for wi, ai, gi, si in zip(w, a, g, s)]

    @classmethod
    def for_runs(cls, runs) -> "FrantarEff":
        """A law with one ``eff[KEY]`` per non-dense format in ``runs`` (ordered by bits, group, sparsity)."""
        cols, w, a, g, s = cls._row_parts(runs)
        keys = cls.row_formats(cols)  # raises on a missing column
        order = {}
        for k, wi, ai, gi, si in zip(keys, w, a, g, s):
            if k is not None and k not in order:
                order[k] = (wi, ai, math.inf if math.isnan(gi) or not is_quantized(wi, ai) else gi, si)
        return cls(sorted(order, key=lambda k: order[k]))

    def specialize(self, runs):
        return self.for_runs(runs)

    def from_param_names(self, names):
        formats = format_keys(names)
        return self if tuple(formats) == self.formats else type(self)(formats)

    def plan_space(self, params, bits=None, w_bits=None, a_bits=None, group_sizes=None, qat_fractions=None):
        """Dense 16-bit and every format ``params`` has an efficiency for, as run columns.

        The search lists narrow the fitted formats: ``bits`` (weights and activations alike),
        ``w_bits``, ``a_bits``, ``group_sizes``; dense 16-bit is always a candidate.
        ``scalinglaws plan`` counts a sparse model's memory as its dense one (every weight
        stored): it does not model sparse storage.
        """
        if qat_fractions is not None:
            raise not_modelled(self.name, "qat_fractions")
        keys = format_keys(params)
        fmts = [parse_format_key(k) for k in keys]

        def keep(f):
            w, a = f.get("w_bits", UNQUANTIZED_BITS), f.get("a_bits", UNQUANTIZED_BITS)
            return ((bits is None or (w in bits and a in bits) or (w in bits and a >= UNQUANTIZED_BITS))
                    and (w_bits is None or w in w_bits) and (a_bits is None or a in a_bits)
                    and (group_sizes is None or f.get("group_size") in group_sizes))
        chosen = [f for f in fmts if keep(f)]
        if fmts and not chosen:
            raise OptionError("bits" if bits is not None else "group_sizes",
                              f"leaves none of the fitted formats ({', '.join(keys)}) to search")
        return [{"w_bits": UNQUANTIZED_BITS, "a_bits": UNQUANTIZED_BITS}] + chosen

    # ------------------------------------------------------------------ data
    def design(self, runs):
        cols = as_columns(runs)
        X = super().design(cols)
        keys = self.row_formats(cols)
        index = {f: j for j, f in enumerate(self.formats)}
        onehot = np.zeros((len(self.formats), len(keys)))
        for i, k in enumerate(keys):
            if k is None:
                continue
            if k not in index:
                raise cols.error(self._missing(k), i)
            onehot[index[k], i] = 1.0
        for j in range(len(self.formats)):
            X[f"fmt{j}"] = onehot[j]   # 1 where a run is in format j
        return X

    def _missing(self, key: str, have: Iterable[str] | None = None) -> str:
        have = list(self.formats if have is None else have)
        listed = ", ".join(have) or "none (only dense 16-bit rows were fitted)"
        cfg = parse_format_key(key) if _KEY.match(key) else {}
        combined = cfg.get("sparsity", 0) > 0 and is_quantized(cfg["w_bits"], cfg["a_bits"])
        why = (" (a sparse and quantized format is fitted as a format of its own, not as the product of "
               "its parts)") if combined else ""
        return f"format {key} has no fitted efficiency (this fit has: {listed}); refit on runs that include it{why}"

    def example(self):
        fmts = {"W16A16": (16, 16, np.nan), "W4A16": (4, 16, np.nan), "W2A16": (2, 16, np.nan),
                "W4A4G32": (4, 4, 32), "W8A8": (8, 8, np.nan)}
        rows = [(N, N * t, *f) for N in (1e7, 1e8, 1e9) for t in (5, 14, 37, 100) for f in fmts.values()]
        cols = dict(zip(("N", "D", "w_bits", "a_bits", "group_size"), np.array(rows, float).T))
        truth = {"E": 1.9, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.36,
                 "eff[W2A16]": 0.45, "eff[W4A4G32]": 0.6, "eff[W4A16]": 0.8, "eff[W8A8]": 0.95}
        return truth, cols

    # --------------------------------------------------------------- formula
    def formula(self, p, x, m=np):
        mult = 1.0
        for j, f in enumerate(self.formats):
            mult = mult * p[eff_name(f)] ** x[f"fmt{j}"]
        return p.A / (x.N * mult) ** p.alpha + p.B / x.D ** p.beta + p.E

    # --------------------------------------------------------------- planner
    def plan_compute(self, params, flops, w_bits=UNQUANTIZED_BITS, a_bits=UNQUANTIZED_BITS, group_size=None,
                     sparsity=DENSE_SPARSITY):
        """Compute-optimal N and D for ``flops`` (C = 6ND) in the format (w_bits, a_bits, group_size, sparsity)."""
        w, a, s = float(w_bits), float(a_bits), float(sparsity)
        if not s < 1:
            raise OptionError("sparsity", f"must be a fraction < 1 (0.5 for 50% of the weights pruned), got {s:g}")
        if is_dense(w, a, s):
            key, eff = "W16A16 (dense)", 1.0
        else:
            key = format_key(w, a, group_size, s)
            name = eff_name(key)
            if name not in params:
                raise InputError(self._missing(key, format_keys(params)))
            eff = float(params[name])
        p = params
        res = compute_optimal(p["E"], p["A"] * eff ** -p["alpha"], p["B"], p["alpha"], p["beta"], flops)
        res.update(eff=eff, N_eff=res["N_opt"] * eff)
        res["summary"] = (f"in {key} (eff {eff:.3g}): N_opt = {human(res['N_opt'])} parameters, "
                          f"D_opt = {human(res['D_opt'])} tokens ({res['tokens_per_param']:.1f} tokens/parameter), "
                          f"loss {res['loss']:.4f}")
        res["format"] = key
        return res

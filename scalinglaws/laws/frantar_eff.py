"""Frantar efficiency: a compressed model counts as a fraction of its parameters.

Frantar et al. 2025, "Compression Scaling Laws: Unifying Sparsity and Quantization"::

    L = A (N * eff(C))^-alpha + B D^-beta + E

where C is the compression format a run was trained in and eff(C) in (0, 1] its
*effective parameter multiplier*: a model of N parameters in format C behaves like a
dense 16-bit model of N * eff(C) parameters.  The law has one efficiency per distinct
format, so its parameter list depends on the table it is fitted to.

Formats
-------
The format of a row is its key from ``w_bits``, ``a_bits`` and (when the table has
it) ``group_size``: ``W4A16``, ``W4A4G32``, ``W3.5A16`` (see :func:`format_key`).
Rows with ``w_bits >= 16`` and ``a_bits >= 16`` are the dense baseline and have
eff = 1 exactly (whatever their group size): they carry no efficiency parameter.
Every other format found gets a parameter named ``eff[KEY]``, fitted as
``log eff`` within [-10, 0], so that eff stays in (0, 1] (eff = 1 means the format
costs nothing; exp(-10) is the floor).

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

No preset (the paper's efficiencies belong to its own formats and setup).

Planner ``compute`` (``--flops``, optional ``--w-bits``, ``--a-bits``, ``--group-size``):
compute-optimal N and D for C = 6ND when training in that format (dense 16-bit by
default): Chinchilla with A' = A eff^-alpha.
"""

from __future__ import annotations

import math
import re
from typing import Iterable

import numpy as np

from scalinglaws.data.columns import as_columns
from scalinglaws.data.errors import InputError
from scalinglaws.data.schema import UNQUANTIZED_BITS
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, View, exps
from scalinglaws.laws.chinchilla import compute_optimal

_EFF_NAME = re.compile(r"^eff\[(.+)\]$")


def _num(v: float) -> str:
    return str(int(round(v))) if abs(v - round(v)) < 1e-9 else f"{v:g}"


def format_key(w_bits: float, a_bits: float, group_size: float | None = None) -> str:
    """The format key of a run: ``W4A16``, ``W4A4G32`` (``G`` only with a group size)."""
    key = f"W{_num(w_bits)}A{_num(a_bits)}"
    if group_size is not None and not (isinstance(group_size, float) and math.isnan(group_size)):
        key += f"G{_num(group_size)}"
    return key


def is_dense(w_bits: float, a_bits: float) -> bool:
    """16-bit weights and activations: the baseline, eff = 1."""
    return w_bits >= 16 and a_bits >= 16


def eff_name(key: str) -> str:
    return f"eff[{key}]"


class FrantarEff(Law):
    name = "frantar-eff"
    title = "Frantar efficiency: one effective-parameter multiplier per compression format"
    reference = "Frantar et al. 2025, Compression Scaling Laws: Unifying Sparsity and Quantization"
    formula_text = ("L = A (N eff(C))^-alpha + B D^-beta + E, one eff(C) in (0, 1] per format C "
               "(parameters eff[W4A16], ...; eff = 1 for 16-bit rows)")
    base_params = (
        Param("E", "irreducible loss (nats/token)", exps(-7, 5), exps(0, 1), log=True),
        Param("A", "scale of the finite-model term (effective parameters)", exps(-10, 60), exps(4, 8, 12),
              log=True),
        Param("B", "scale of the finite-data term", exps(-10, 60), exps(4, 8, 12), log=True),
        Param("alpha", "exponent of effective model size", (0.0, 5.0), (0.2, 0.5, 0.8)),
        Param("beta", "exponent of data size", (0.0, 5.0), (0.2, 0.5, 0.8)),
    )
    params = base_params
    columns = ("N", "D", "w_bits", "a_bits")
    optional_columns = ("group_size",)
    presets = {}
    planners = (
        Planner("compute", "compute-optimal N and D for C = 6ND when training in a format", "plan_compute",
                required=("flops",), optional=("w_bits", "a_bits", "group_size")),
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
    def row_formats(cls, runs) -> list[str | None]:
        """The format key of each row (None for dense 16-bit rows)."""
        cols = as_columns(runs)
        cols.require(cls.columns, f"law '{cls.name}'")
        w, a = cols["w_bits"], cols["a_bits"]
        g = cols["group_size"] if "group_size" in cols else np.full(cols.n, np.nan)
        return [None if is_dense(wi, ai) else format_key(wi, ai, None if math.isnan(gi) else gi)
                for wi, ai, gi in zip(w, a, g)]

    @classmethod
    def for_runs(cls, runs) -> "FrantarEff":
        """A law with one ``eff[KEY]`` per non-16-bit format in ``runs`` (ordered by bits, then group)."""
        cols = as_columns(runs)
        keys = cls.row_formats(cols)  # raises on a missing column
        w, a = cols["w_bits"], cols["a_bits"]
        g = cols["group_size"] if "group_size" in cols else np.full(cols.n, np.nan)
        order = {}
        for k, wi, ai, gi in zip(keys, w, a, g):
            if k is not None and k not in order:
                order[k] = (wi, ai, math.inf if math.isnan(gi) else gi)
        return cls(sorted(order, key=lambda k: order[k]))

    def specialize(self, runs):
        return self.for_runs(runs)

    def from_param_names(self, names):
        formats = []
        for n in names:
            m = _EFF_NAME.match(str(n))
            if m:
                formats.append(m.group(1))
        return self if tuple(formats) == self.formats else type(self)(formats)

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
                have = ", ".join(self.formats) or "none (only 16-bit rows were fitted)"
                raise cols.error(f"format {k} has no fitted efficiency (this fit has: {have}); "
                                 f"refit on runs that include it", i)
            onehot[index[k], i] = 1.0
        for j in range(len(self.formats)):
            X[f"fmt{j}"] = onehot[j]   # 1 where a run is in format j
        return X

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
    def plan_compute(self, params, flops, w_bits=UNQUANTIZED_BITS, a_bits=UNQUANTIZED_BITS, group_size=None):
        """Compute-optimal N and D for ``flops`` (C = 6ND) in the format (w_bits, a_bits, group_size)."""
        w, a = float(w_bits), float(a_bits)
        if is_dense(w, a):
            key, eff = "W16A16 (dense)", 1.0
        else:
            key = format_key(w, a, group_size)
            name = eff_name(key)
            if name not in params:
                have = ", ".join(_EFF_NAME.match(k).group(1) for k in params if _EFF_NAME.match(k)) or "none"
                raise InputError(f"format {key} has no fitted efficiency (this fit has: {have})")
            eff = float(params[name])
        p = params
        res = compute_optimal(p["E"], p["A"] * eff ** -p["alpha"], p["B"], p["alpha"], p["beta"], flops)
        res.update(eff=eff, N_eff=res["N_opt"] * eff)
        res["summary"] = (f"in {key} (eff {eff:.3g}): N_opt = {human(res['N_opt'])} parameters, "
                          f"D_opt = {human(res['D_opt'])} tokens ({res['tokens_per_param']:.1f} tokens/parameter), "
                          f"loss {res['loss']:.4f}")
        res["format"] = key
        return res

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

Fitted in log-sum-exp form, ``log L = LSE(a - alpha (lnN + log eff), b - beta lnD, e)``
with ``a = log A``, ``b = log B``, ``e = log E``.

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

from scalinglaws.data.errors import InputError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, check_positive, lse, require
from scalinglaws.laws.chinchilla import compute_optimal
from scalinglaws.laws.kumar_ptq import check_bits

_E, _A, _B, _ALPHA, _BETA = range(5)
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
    formula = ("L = A (N eff(C))^-alpha + B D^-beta + E, one eff(C) in (0, 1] per format C "
               "(parameters eff[W4A16], ...; eff = 1 for 16-bit rows)")
    base_params = (
        Param("E", "irreducible loss (nats/token)", (-5.0, 5.0), (0.0, 1.0), log=True),
        Param("A", "scale of the finite-model term (effective parameters)", (-10.0, 60.0), (4.0, 8.0, 12.0),
              log=True),
        Param("B", "scale of the finite-data term", (-10.0, 60.0), (4.0, 8.0, 12.0), log=True),
        Param("alpha", "exponent of effective model size", (0.0, 5.0), (0.2, 0.5, 0.8)),
        Param("beta", "exponent of data size", (0.0, 5.0), (0.2, 0.5, 0.8)),
    )
    params = base_params
    columns = ("N", "D", "w_bits", "a_bits")
    optional_columns = ("group_size",)
    presets = {}
    planners = (
        Planner("compute", "compute-optimal N and D for C = 6ND when training in a format", "plan_compute",
                ("flops", "w_bits", "a_bits", "group_size")),
    )

    def __init__(self, formats: Iterable[str] = ()):
        self.formats = tuple(formats)
        if len(set(self.formats)) != len(self.formats):
            raise InputError(f"law '{self.name}': repeated format in {', '.join(self.formats)}")
        self.params = self.base_params + tuple(
            Param(eff_name(f), f"effective parameter multiplier of format {f}, in (0, 1]",
                  (-10.0, 0.0), (-0.5,), log=True) for f in self.formats)

    def __repr__(self):
        return f"FrantarEff(formats={list(self.formats)!r})"

    # ------------------------------------------------- data-dependent parameters
    @classmethod
    def row_formats(cls, runs) -> list[str | None]:
        """The format key of each row (None for dense 16-bit rows)."""
        missing = [c for c in cls.columns if c not in runs.columns]
        if missing:
            raise InputError(f"law '{cls.name}' needs column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(m) for m in missing)}", file=runs.attrs.get("source", "the table"))
        w = runs["w_bits"].to_numpy(dtype=float)
        a = runs["a_bits"].to_numpy(dtype=float)
        g = runs["group_size"].to_numpy(dtype=float) if "group_size" in runs.columns else np.full(len(w), np.nan)
        return [None if is_dense(wi, ai) else format_key(wi, ai, None if math.isnan(gi) else gi)
                for wi, ai, gi in zip(w, a, g)]

    @classmethod
    def for_runs(cls, runs) -> "FrantarEff":
        """A law with one ``eff[KEY]`` per non-16-bit format in ``runs`` (ordered by bits, then group)."""
        w = runs["w_bits"].to_numpy(dtype=float) if "w_bits" in runs.columns else None
        keys = cls.row_formats(runs)  # raises on a missing column
        a = runs["a_bits"].to_numpy(dtype=float)
        g = runs["group_size"].to_numpy(dtype=float) if "group_size" in runs.columns else np.full(len(a), np.nan)
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
        X = super().design(runs)
        X["lnN"], X["lnD"] = np.log(X["N"]), np.log(X["D"])
        keys = self.row_formats(runs)
        index = {f: j for j, f in enumerate(self.formats)}
        onehot = np.zeros((len(keys), len(self.formats)))
        for i, k in enumerate(keys):
            if k is None:
                continue
            if k not in index:
                have = ", ".join(self.formats) or "none (only 16-bit rows were fitted)"
                row = runs.index[i] if runs.index.name == "row" else i + 1
                raise InputError(f"format {k} has no fitted efficiency (this fit has: {have}); "
                                 f"refit on runs that include it", file=runs.attrs.get("source"), row=int(row))
            onehot[i, index[k]] = 1.0
        X["onehot"] = onehot
        return X

    # --------------------------------------------------------------- formula
    def _u(self, t, X):
        lneff = X["lnN"] + t[:, 5:] @ X["onehot"].T  # log(N eff), shape (S, n)
        return (t[:, _A, None] - t[:, _ALPHA, None] * lneff,
                t[:, _B, None] - t[:, _BETA, None] * X["lnD"],
                t[:, _E, None] + 0.0 * X["lnN"], lneff)

    def log_predict(self, theta, X):
        u1, u2, u3, _ = self._u(np.asarray(theta), X)
        return lse(u1, u2, u3)

    def log_predict_jac(self, theta, X):
        t = np.asarray(theta, dtype=float)
        u1, u2, u3, lneff = self._u(t, X)
        u = np.stack(np.broadcast_arrays(u1, u2, u3))
        m = u.max(axis=0)
        ex = np.exp(u - m)
        s = ex.sum(axis=0)
        p = ex / s
        J = np.empty(p.shape[1:] + (t.shape[1],))
        J[:, :, _E], J[:, :, _A], J[:, :, _B] = p[2], p[0], p[1]
        J[:, :, _ALPHA], J[:, :, _BETA] = -p[0] * lneff, -p[1] * X["lnD"]
        J[:, :, 5:] = (-p[0] * t[:, _ALPHA, None])[:, :, None] * X["onehot"][None, :, :]
        return m + np.log(s), J

    # --------------------------------------------------------------- planner
    def plan_compute(self, params, flops: float | None = None, w_bits: float | None = None,
                     a_bits: float | None = None, group_size: float | None = None):
        """Compute-optimal N and D for ``flops`` (C = 6ND) in the format (w_bits, a_bits, group_size)."""
        require(flops=flops)
        check_positive(flops=flops)
        check_bits(w_bits=w_bits, a_bits=a_bits)
        if group_size is not None and not (math.isfinite(group_size) and group_size >= 1):
            raise InputError(f"--group-size must be a number of elements >= 1, got {group_size}")
        w = 16.0 if w_bits is None else float(w_bits)
        a = 16.0 if a_bits is None else float(a_bits)
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

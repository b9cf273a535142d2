"""What a law family declares, and the few generic pieces every law shares.

A law is declarative: a subclass of :class:`Law` lists its parameters
(:class:`Param`: bounds and start grid, in the space the fitter works in), the
columns it needs, its presets, and one method, :meth:`Law.log_predict`, that gives
``log L`` for many parameter vectors at once.  Everything else (the fitter, the
CLI, bootstrap, plots) works from those declarations.

Optional, for speed or for planners:

* :meth:`Law.log_predict_jac` -- an analytic Jacobian (the default uses the
  complex-step derivative of :meth:`log_predict`, exact to rounding, so
  ``log_predict`` must only use complex-safe numpy functions on the parameters:
  ``exp``, ``log``, ``power``, ``log2``, arithmetic).
* :meth:`Law.curvature` -- ``sum_i w_i * Hessian(log L_i)``; when a law has it the
  fitter takes full Newton steps, otherwise Gauss-Newton (IRLS) steps.
* ``planners`` -- derived optima, each a method taking the public parameter dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterable, Mapping

import numpy as np
import pandas as pd

from scalinglaws.data.errors import InputError


@dataclass(frozen=True)
class Param:
    """One parameter of a law.

    Parameters
    ----------
    name : str
        Public name, as in ``fit.json`` (``"A"``, ``"alpha"``).
    doc : str
        Meaning, one line.
    bounds : (float, float)
        Bounds in the *fitted* space (log space when ``log`` is true).
    grid : tuple of float
        Start values in the fitted space; the default start grid is the product of
        every parameter's grid.
    log : bool
        Fit ``log(value)`` instead of the value (for scale constants that span decades).
    """

    name: str
    doc: str
    bounds: tuple[float, float]
    grid: tuple[float, ...]
    log: bool = False

    def to_public(self, x):
        return np.exp(x) if self.log else x

    def to_internal(self, v: float, where: str = "") -> float:
        if self.log:
            if not v > 0:
                raise InputError(f"{where}{self.name} must be > 0 (it is fitted in log space), got {v}")
            return math.log(v)
        return float(v)


@dataclass(frozen=True)
class Preset:
    """Published constants of a law: values by public name, and where they come from."""

    values: Mapping[str, float]
    source: str
    note: str = ""


#: Options a planner may take (``scalinglaws optimal KIND --flops ...``), with their meaning.
PLANNER_OPTIONS = {
    "N": "parameters", "D": "training tokens", "flops": "compute budget in FLOPs",
    "memory": "memory budget in bytes (suffixes: GB, GiB)", "bits": "total bits of a number format",
    "w_bits": "weight bits", "a_bits": "activation bits", "kv_bits": "key/value bits",
    "ptq_bits": "post-training quantization bits", "exp_bits": "exponent bits", "man_bits": "mantissa bits",
    "group_size": "elements per scale (block size)", "threshold": "loss increase to stay under (nats)",
}


@dataclass(frozen=True)
class Planner:
    """A derived optimum a law answers (``scalinglaws optimal KIND``).

    ``method`` names a Law method called as ``method(params, **options)``; it returns a
    dict of plain numbers plus ``"summary"`` (one sentence) and optionally ``"table"``
    (a list of row dicts) and ``"best"`` (the winning row).  ``options`` lists the
    option names (keys of :data:`PLANNER_OPTIONS`) it accepts.
    """

    kind: str
    doc: str
    method: str
    options: tuple[str, ...] = ()


class Law:
    """Base class of a law family.  Subclasses set the class attributes and ``log_predict``.

    Class attributes
    ----------------
    name : str            registry key (``"chinchilla"``)
    title : str           one-line description
    reference : str       paper
    formula : str         the law in plain text
    params : tuple[Param] parameters, in the order of the fitted vector
    columns : tuple[str]  canonical columns the law needs (besides ``loss``)
    target : str          the column the law is fitted to (``"loss"``)
    predicts : str        what the prediction is, names output columns (``"loss"`` -> ``loss_pred``)
    presets : dict        name -> Preset
    planners : tuple      Planner entries
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    columns: ClassVar[tuple[str, ...]] = ("N", "D")
    optional_columns: ClassVar[tuple[str, ...]] = ()
    target: ClassVar[str] = "loss"
    predicts: ClassVar[str] = "loss"
    presets: ClassVar[dict[str, Preset]] = {}
    planners: ClassVar[tuple[Planner, ...]] = ()

    # ------------------------------------------------------------------ data
    def prepare(self, runs: pd.DataFrame) -> pd.DataFrame:
        """Rows of ``runs`` this law is fitted on (default: all).  Override to select."""
        return runs

    def design(self, runs: pd.DataFrame) -> dict[str, np.ndarray]:
        """The arrays :meth:`log_predict` reads (default: the needed columns as floats)."""
        missing = [c for c in self.required_columns() if c not in runs.columns]
        if missing:
            src = runs.attrs.get("source", "the table")
            raise InputError(f"law '{self.name}' needs column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(m) for m in missing)}", file=src)
        X = {c: runs[c].to_numpy(dtype=float) for c in self.required_columns()}
        for c in self.optional_columns:
            if c in runs.columns:
                X[c] = runs[c].to_numpy(dtype=float)
        return X

    def observed(self, runs: pd.DataFrame) -> np.ndarray:
        """The observed target (``loss``) of each run."""
        return runs[self.target].to_numpy(dtype=float)

    def required_columns(self) -> tuple[str, ...]:
        return tuple(self.columns)

    # ------------------------------------------- parameters that depend on the data
    def specialize(self, runs: pd.DataFrame) -> "Law":
        """The law to fit on ``runs`` (default: ``self``).

        Most laws have a fixed parameter list.  A law whose parameters depend on the
        data (for example one efficiency per compression format found in the table)
        returns a new instance whose ``params`` match ``runs``.
        :func:`scalinglaws.fit` calls this after :meth:`prepare` and before it builds
        the design, the start grid and the bounds and resolves ``fix``.
        """
        return self

    def from_param_names(self, names: Iterable[str]) -> "Law":
        """The law whose parameters are ``names``, as saved in ``fit.json`` (default: ``self``).

        The counterpart of :meth:`specialize` for a saved fit:
        :func:`scalinglaws.load_fit`, :attr:`FitResult.law_obj` and :meth:`predict`
        call it so that a data-dependent law is rebuilt from its parameter names.
        Laws with a fixed parameter list return ``self``; unknown names are then
        reported by :meth:`to_internal`.
        """
        return self

    # --------------------------------------------------------------- formula
    def log_predict(self, theta: np.ndarray, X: Mapping[str, np.ndarray]) -> np.ndarray:
        """``log`` of the predicted target, shape (S, n), for fitted-space ``theta`` (S, P)."""
        raise NotImplementedError

    def log_predict_jac(self, theta: np.ndarray, X: Mapping[str, np.ndarray]):
        """``(log L, d log L / d theta)``, shapes (S, n) and (S, n, P).

        Default: complex-step differentiation of :meth:`log_predict` (exact to rounding).
        """
        theta = np.asarray(theta, dtype=float)
        S, P = theta.shape
        h = 1e-30
        pert = np.repeat(theta[:, None, :], P, axis=1).astype(complex)  # (S, P, P)
        pert[:, np.arange(P), np.arange(P)] += 1j * h
        out = self.log_predict(pert.reshape(S * P, P), X)
        out = out.reshape(S, P, -1)
        f = self.log_predict(theta, X)
        J = np.moveaxis(out.imag / h, 1, 2)  # (S, n, P)
        return f, J

    #: set to True by laws that implement :meth:`curvature`
    has_curvature: ClassVar[bool] = False

    def curvature(self, theta: np.ndarray, X: Mapping[str, np.ndarray], w: np.ndarray) -> np.ndarray:
        """``sum_i w[s, i] * Hessian_theta(log L_i)`` for each start s, shape (S, P, P)."""
        raise NotImplementedError

    def evaluate(self, theta: np.ndarray, X: Mapping[str, np.ndarray]):
        """``(log L, cache)`` for the fitter: values now, and whatever :meth:`grad_hess`
        can reuse at the same ``theta`` (None, an array or a tuple of arrays with one row
        per parameter vector).  Default: no cache."""
        return self.log_predict(theta, X), None

    def grad_hess(self, theta: np.ndarray, X: Mapping[str, np.ndarray], cache, psi: np.ndarray,
                  hw: np.ndarray, cw: np.ndarray | None):
        """Gradient and Hessian pieces of a weighted objective in ``log L``, for each row.

        ``g = J^T psi`` and ``H = J^T diag(hw) J + sum_i cw_i Hessian(log L_i)`` with
        ``J = d log L / d theta``; ``psi``, ``hw``, ``cw`` have shape (S, n), and ``cw``
        is None when no model curvature is wanted (or the law has none).
        Default: from :meth:`log_predict_jac` and :meth:`curvature`.
        """
        _, J = self.log_predict_jac(theta, X)
        Jt = J.transpose(0, 2, 1)
        g = np.matmul(Jt, psi[:, :, None])[:, :, 0]
        H = np.matmul(Jt * hw[:, None, :], J)
        if cw is not None and self.has_curvature:
            H = H + self.curvature(theta, X, cw)
        return g, H

    # ---------------------------------------------------------- conversions
    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def to_public(self, theta: np.ndarray) -> dict[str, float]:
        """Fitted-space vector -> ``{name: value}`` of plain floats."""
        return {p.name: float(p.to_public(float(t))) for p, t in zip(self.params, theta)}

    def to_internal(self, values: Mapping[str, float], where: str = "") -> np.ndarray:
        """``{name: value}`` -> fitted-space vector; every parameter must be given."""
        unknown = [k for k in values if k not in self.param_names]
        if unknown:
            raise InputError(f"{where}law '{self.name}' has no parameter {', '.join(map(repr, unknown))}; "
                             f"its parameters are {', '.join(self.param_names)}")
        missing = [p.name for p in self.params if p.name not in values]
        if missing:
            raise InputError(f"{where}missing parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        return np.array([p.to_internal(float(values[p.name]), where) for p in self.params])

    def start_grid(self) -> np.ndarray:
        """The default starts: the product of every parameter's grid, shape (S, P)."""
        grids = [np.asarray(p.grid, dtype=float) for p in self.params]
        mesh = np.meshgrid(*grids, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([p.bounds[0] for p in self.params], dtype=float)
        hi = np.array([p.bounds[1] for p in self.params], dtype=float)
        return lo, hi

    # -------------------------------------------------------------- predict
    def predict(self, params: Mapping[str, float], runs: pd.DataFrame) -> np.ndarray:
        """Predicted target for each run, from public parameters."""
        law = self.from_param_names(list(params))
        theta = law.to_internal(params)[None, :]
        return np.exp(law.log_predict(theta, law.design(runs))[0])

    def planner(self, kind: str) -> Callable:
        for p in self.planners:
            if p.kind == kind:
                return getattr(self, p.method)
        kinds = ", ".join(p.kind for p in self.planners) or "none"
        raise InputError(f"law '{self.name}' has no '{kind}' planner (it has: {kinds})")

    def describe(self) -> dict:
        """Plain-data description (``scalinglaws laws --json``)."""
        return {
            "name": self.name, "title": self.title, "reference": self.reference,
            "formula": self.formula,
            "parameters": [{"name": p.name, "doc": p.doc, "fitted_as": f"log {p.name}" if p.log else p.name,
                            "bounds": list(p.bounds), "grid_size": len(p.grid)} for p in self.params],
            "columns": list(self.required_columns()), "optional_columns": list(self.optional_columns),
            "presets": {k: {"values": dict(v.values), "source": v.source} for k, v in self.presets.items()},
            "planners": [p.kind for p in self.planners],
            "start_grid_size": int(np.prod([len(p.grid) for p in self.params])),
        }


def lse(*terms):
    """Stable log-sum-exp of same-shaped arrays (works on complex input for complex-step)."""
    stacked = np.stack(np.broadcast_arrays(*terms))
    m = np.max(stacked.real, axis=0)
    return m + np.log(np.sum(np.exp(stacked - m), axis=0))


def require(**values) -> None:
    """Planner argument checks: every value given (not None), else a clear InputError."""
    for k, v in values.items():
        if v is None:
            raise InputError(f"--{k.replace('_', '-')} is required here")


def check_positive(**values) -> None:
    """Planner argument checks: every value finite and > 0, else a clear InputError."""
    for k, v in values.items():
        if v is None:
            continue
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
            raise InputError(f"--{k.replace('_', '-')} must be a finite number > 0, got {v}")

"""The user-facing Python API: ``fit``, ``FitResult``, ``load_fit``, ``resolve_fit``, ``planner_method``.

This module joins a law (what to fit) to the fitter (how to fit): the fitter sees
only a model with values, a Jacobian and (optionally) curvature.

>>> import scalinglaws as sl
>>> res = sl.fit("data/chinchilla_runs.csv", law="chinchilla")   # doctest: +SKIP
>>> res.params                                                   # doctest: +SKIP
{'E': 1.81, 'A': 477.8, 'B': 2143.4, 'alpha': 0.347, 'beta': 0.367}
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from scalinglaws import __version__
from scalinglaws.data.atomic import write_atomic  # noqa: F401 (re-exported)
from scalinglaws.data.errors import FitError, InputError
from scalinglaws.fitting.fitter import RobustLoss, minimize_multistart
from scalinglaws.laws import Law, find_preset, get_law
from scalinglaws.data.runs import load_runs


class LawModel:
    """A law and its data seen as a plain model ``f(theta)`` for the fitter.

    ``space="log"`` fits ``log L`` (the default); ``space="linear"`` fits ``L`` itself.
    """

    def __init__(self, law: Law, X: Mapping[str, np.ndarray], space: str = "log", dtype=np.float64):
        if space not in ("log", "linear"):
            raise InputError(f"--space must be 'log' or 'linear', got {space!r}")
        self.dtype = np.dtype(dtype)
        self.law, self.space = law, space
        self.X = {k: np.asarray(v, dtype=self.dtype) for k, v in X.items()}

    def astype(self, dtype) -> "LawModel":
        """The same model computing in ``dtype`` (the fitter explores in single precision)."""
        return self if np.dtype(dtype) == self.dtype else LawModel(self.law, self.X, self.space, dtype)

    def value(self, theta):
        g = self.law.log_predict(np.asarray(theta, dtype=self.dtype), self.X)
        return g if self.space == "log" else np.exp(g)

    def evaluate(self, theta):
        g, cache = self.law.evaluate(np.asarray(theta, dtype=self.dtype), self.X)
        if self.space == "log":
            return g, cache
        e = np.exp(g)
        return e, (cache, e)

    def grad_hess(self, theta, cache, psi, hw, cw):
        if self.space == "log":
            return self.law.grad_hess(np.asarray(theta, dtype=self.dtype), self.X, cache, psi, hw, cw)
        # f = exp(g): J_f = f J_g and Hessian(f) = f (J_g J_g^T + Hessian(g)), so the
        # weights carry over to log space as psi f, hw f^2 + cw f and cw f
        cache, e = cache
        cwe = None if cw is None else cw * e
        hwe = hw * e * e + (0.0 if cw is None else cwe)
        return self.law.grad_hess(np.asarray(theta, dtype=self.dtype), self.X, cache, psi * e, hwe, cwe)


@dataclass
class FitResult:
    """A fitted law: plain data, saved as ``fit.json``.

    Attributes
    ----------
    law : str             registered law name
    params : dict         parameter name -> value (plain floats)
    objective : float     the minimised objective (summed robust loss)
    n_runs : int          runs used in the fit
    loss : dict           ``{"loss": "huber", "delta": 1e-3, "space": "log"}``
    fixed : dict          parameters held fixed and their values
    status : dict         convergence: message, starts, starts reaching the best, parameters on bounds
    data : dict           where the runs came from and how they were filtered
    extra : dict          room for later additions (bootstrap samples, diagnostics)
    version : str         package version that made the fit
    """

    law: str
    params: dict[str, float]
    objective: float
    n_runs: int
    loss: dict = field(default_factory=lambda: {"loss": "huber", "delta": 1e-3, "space": "log"})
    fixed: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    version: str = __version__

    @property
    def law_obj(self) -> Law:
        return get_law(self.law).from_param_names(list(self.params))

    @property
    def converged(self) -> bool:
        return bool(self.status.get("converged", True))

    def predict(self, runs) -> np.ndarray:
        """Predicted loss for each run (a DataFrame, a path, or a dict of columns/scalars)."""
        law = self.law_obj
        return law.predict(self.params, as_table(runs, law))

    def intervals(self) -> dict[str, tuple[float, float]]:
        """Bootstrap percentile interval of each parameter (empty without a bootstrap)."""
        b = (self.extra or {}).get("bootstrap") or {}
        if not b.get("samples"):
            return {}
        return {k: (float(v[0]), float(v[1])) for k, v in (b.get("intervals") or {}).items()
                if v and None not in v}

    def to_dict(self) -> dict:
        d = _plain(asdict(self))
        b = d["extra"].get("bootstrap")
        if b and b.get("samples"):  # one row of parameters per line keeps fit.json readable
            b["samples"] = [[float(f"{v:.10g}") for v in row] for row in b["samples"]]
            b["residuals"] = [float(f"{v:.10g}") for v in b.get("residuals") or []]
        return d

    def save(self, path: str | os.PathLike) -> None:
        """Write ``fit.json`` atomically (a temporary file in the same folder, then rename)."""
        write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def summary(self) -> str:
        lines = [f"law {self.law}: objective {self.objective:.10g} on {self.n_runs} runs "
                 f"({self.loss.get('loss')}, delta {self.loss.get('delta')}, {self.loss.get('space')} space)"]
        for k, v in self.params.items():
            lines.append(f"  {k:>10} = {v:.6g}" + ("  (fixed)" if k in self.fixed else ""))
        st = self.status
        if st:
            lines.append(f"  {st.get('message', '')}; {st.get('n_best', '?')} of {st.get('n_starts', '?')} "
                         f"starts reached the best optimum" + _stopped(st))
            if st.get("on_bound"):
                lines.append(f"  on a bound: {', '.join(st['on_bound'])}")
        return "\n".join(lines)


def _stopped(status: dict) -> str:
    n = status.get("n_stopped")
    return f" ({n} stopped early by successive halving)" if n else ""


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def load_fit(path: str | os.PathLike) -> FitResult:
    """Load a ``fit.json`` written by :meth:`FitResult.save`."""
    path = os.fspath(path)
    try:
        with open(path) as fh:
            d = json.load(fh)
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a fit file (invalid JSON: {exc})", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from None
    if not isinstance(d, dict) or "law" not in d or "params" not in d:
        raise InputError("not a fit file (needs 'law' and 'params')", file=path)
    if not isinstance(d["params"], dict):
        raise InputError("not a fit file ('params' must map names to values)", file=path)
    law = get_law(d["law"]).from_param_names(list(d["params"]))  # data-dependent laws rebuild here
    law.to_internal(d["params"], where=f"{path}: ")  # validates names and values
    known = {k: d[k] for k in FitResult.__dataclass_fields__ if k in d}
    known.setdefault("objective", float("nan"))
    known.setdefault("n_runs", 0)
    known["params"] = {k: float(v) for k, v in d["params"].items()}
    return FitResult(**known)


def from_preset(name: str) -> FitResult:
    """A FitResult holding a published preset (no data behind it)."""
    law, key = find_preset(name)
    p = law.presets[key]
    return FitResult(law=law.name, params=dict(p.values), objective=float("nan"), n_runs=0,
                     status={"message": f"preset {key}: {p.source}", "preset": key},
                     data={"preset": key, "source": p.source})


def resolve_fit(source: str | os.PathLike | FitResult, law: str | None = None) -> FitResult:
    """A fit from a FitResult, a ``fit.json`` path, or a preset name (``hoffmann2022``)."""
    if isinstance(source, FitResult):
        res = source
    else:
        s = os.fspath(source)
        if os.path.exists(s) or s.endswith(".json"):
            res = load_fit(s)
        else:
            res = from_preset(s)
    if law is not None and get_law(law).name != res.law:
        raise InputError(f"{source} is a '{res.law}' fit, not '{law}'")
    return res


def planner_method(fit: "FitResult", kind: str, options: Mapping[str, Any]):
    """The planner ``kind`` of the fit's law with ``options`` bound: a function of the parameters.

    Options the planner does not take are refused with one line naming them.
    """
    law = fit.law_obj
    planner = next((p for p in law.planners if p.kind == kind), None)
    if planner is None:
        have = ", ".join(p.kind for p in law.planners) or "none"
        raise InputError(f"law '{law.name}' has no '{kind}' planner (it has: {have})")
    extra = [k for k in options if k not in planner.options]
    if extra:
        raise InputError(f"option{'s' if len(extra) > 1 else ''} "
                         f"{', '.join('--' + k.replace('_', '-') for k in extra)} do not apply to "
                         f"'optimal {kind}' of law '{law.name}' (it takes: "
                         f"{', '.join('--' + k.replace('_', '-') for k in planner.options) or 'no options'})")
    method = getattr(law, planner.method)
    return lambda params: method(params, **options)


def as_table(runs, law: Law | None = None) -> pd.DataFrame:
    """A DataFrame of runs from a DataFrame, a path, or a dict of columns (scalars broadcast)."""
    if isinstance(runs, pd.DataFrame):
        return runs
    if isinstance(runs, Mapping):
        cols = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in runs.items()}
        n = max(len(v) for v in cols.values())
        df = pd.DataFrame({k: np.broadcast_to(v, (n,)) if len(v) == 1 else v for k, v in cols.items()})
        return load_runs(df, required=(), name="<arguments>")
    req = law.required_columns() if law is not None else ()
    return load_runs(runs, required=req)


def _starts(law: Law, starts, seed: int) -> np.ndarray:
    if starts is None or (isinstance(starts, str) and starts == "grid"):
        return law.start_grid()
    if isinstance(starts, (int, np.integer)):
        if starts < 1:
            raise InputError(f"--starts must be >= 1, got {starts}")
        grid = law.start_grid()
        lo, hi = grid.min(0), grid.max(0)
        rng = np.random.default_rng(seed)
        return lo + (hi - lo) * rng.random((int(starts), grid.shape[1]))
    arr = np.atleast_2d(np.asarray(starts, dtype=float))
    if arr.shape[1] != len(law.params):
        raise InputError(f"starts must have {len(law.params)} columns ({', '.join(law.param_names)})")
    return arr


@dataclass
class Problem:
    """A law and a run table as the fitter's problem: model, targets, bounds, held parameters.

    :func:`fit` builds one; :func:`scalinglaws.trust.bootstrap` rebuilds it around a finished
    fit (:meth:`from_fit`) to refit resampled weights of the same runs.
    """

    law: Law
    table: pd.DataFrame
    model: LawModel
    y: np.ndarray            # the target in the fitted space (log loss in log space)
    loss: RobustLoss
    lower: np.ndarray
    upper: np.ndarray
    free: np.ndarray         # False: held by ``fix``
    fixed: dict              # public name -> value of the held parameters
    held: np.ndarray         # fitted-space values of the held parameters (nan where free)

    @classmethod
    def build(cls, runs, law: str | Law, *, loss: str = "huber", delta: float = 1e-3, space: str = "log",
              fix: Mapping[str, float] | None = None, where: str | None = None, exclude_top: int = 0,
              mapping=None) -> "Problem":
        law = get_law(law)
        if loss not in ("huber", "mse"):
            raise InputError(f"--loss must be 'huber' or 'mse', got {loss!r}")
        if not (isinstance(delta, (int, float)) and delta > 0 and math.isfinite(delta)):
            raise InputError(f"--delta must be a finite number > 0, got {delta}")
        if space not in ("log", "linear"):
            raise InputError(f"--space must be 'log' or 'linear', got {space!r}")
        required = tuple(law.required_columns()) + (law.target,)
        table = law.prepare(canonical_table(runs, required, mapping=mapping, where=where, exclude_top=exclude_top))
        if len(table) == 0:
            raise InputError(f"no runs left for law '{law.name}'", file=table.attrs.get("source"))
        law = law.specialize(table)  # laws whose parameter list depends on the data
        y_obs = law.observed(table)
        model = LawModel(law, law.design(table), space)
        lo, hi = law.bounds()
        free = np.ones(len(law.params), bool)
        held = np.full(len(law.params), np.nan)
        fix = {k: float(v) for k, v in (fix or {}).items()}
        for name, value in fix.items():
            if name not in law.param_names:
                raise InputError(f"--fix {name}: law '{law.name}' has no parameter {name!r}; "
                                 f"its parameters are {', '.join(law.param_names)}")
            j = law.param_names.index(name)
            v = law.params[j].to_internal(value, "--fix ")
            lo[j], hi[j] = min(lo[j], v), max(hi[j], v)
            free[j], held[j] = False, v
        return cls(law=law, table=table, model=model, y=np.log(y_obs) if space == "log" else y_obs,
                   loss=RobustLoss(loss, delta), lower=lo, upper=hi, free=free, fixed=fix, held=held)

    @classmethod
    def from_fit(cls, result: "FitResult", runs, mapping=None) -> "Problem":
        """The problem ``result`` was fitted on: pass the same ``runs`` that were given to :func:`fit`
        (the fit's ``where`` and ``exclude_top`` are applied again)."""
        d = result.data or {}
        prob = cls.build(runs, result.law, loss=result.loss.get("loss", "huber"),
                         delta=float(result.loss.get("delta", 1e-3)), space=result.loss.get("space", "log"),
                         fix=result.fixed, where=d.get("where"), exclude_top=int(d.get("exclude_top") or 0),
                         mapping=mapping)
        if list(prob.law.param_names) != list(result.params):
            raise InputError(f"the fit's parameters ({', '.join(result.params)}) do not match law "
                             f"'{prob.law.name}' on these runs ({', '.join(prob.law.param_names)}): "
                             f"are these the runs of the fit?", file=prob.table.attrs.get("source"))
        if len(prob.table) != result.n_runs:
            raise InputError(f"the fit was made on {result.n_runs} runs but these give {len(prob.table)}: "
                             f"are these the runs of the fit?", file=prob.table.attrs.get("source"))
        return prob

    def hold(self, starts: np.ndarray) -> np.ndarray:
        """``starts`` with the held parameters set to their values."""
        starts = np.array(starts, dtype=float)
        j = ~self.free
        starts[:, j] = self.held[j]
        return starts


def fit(runs, law: str | Law = "chinchilla", *, loss: str = "huber", delta: float = 1e-3, space: str = "log",
        fix: Mapping[str, float] | None = None, starts=None, seed: int = 0, where: str | None = None,
        exclude_top: int = 0, mapping=None, weights=None, init: Mapping[str, float] | None = None,
        max_iter: int = 400, converge: int = 32, progress=None) -> FitResult:
    """Fit ``law`` to ``runs`` by robust multi-start minimisation.

    Parameters
    ----------
    runs : DataFrame or path
        Run table (see :func:`scalinglaws.load_runs`).
    law : str or Law
        A registered law name (``scalinglaws laws`` lists them).
    loss : ``"huber"`` or ``"mse"``
        Robust Huber loss (quadratic within ``delta``) or half squared error, *summed* over runs.
    delta : float
        Huber threshold on residuals (in ``space``).
    space : ``"log"`` or ``"linear"``
        Residuals of ``log(loss)`` (default) or of ``loss``.
    fix : dict, optional
        Parameters to hold fixed, by public name and value.
    starts : None, int or array
        ``None``: the law's full start grid; an int: that many seeded random starts
        inside the grid's range; an array (S, P) in fitted space.
    init : dict, optional
        One extra start at these public values (added to the grid).
    weights : array, optional
        Run weights (bootstrap counts).
    converge : int
        How many starts successive halving leaves to run to full convergence (the rest
        are stopped early, and reported so); 0: every start.
    """
    if not (isinstance(converge, (int, np.integer)) and converge >= 0):
        raise InputError(f"--converge must be a whole number >= 0, got {converge}")
    prob = Problem.build(runs, law, loss=loss, delta=delta, space=space, fix=fix, where=where,
                         exclude_top=exclude_top, mapping=mapping)
    law, table, lo, hi, free = prob.law, prob.table, prob.lower, prob.upper, prob.free
    S0 = _starts(law, starts, seed)
    if init:
        S0 = np.vstack([law.to_internal({**law.to_public(S0[0]), **init}, "init: "), S0])
    S0 = prob.hold(S0)
    fix = prob.fixed
    w = None if weights is None else np.asarray(weights, dtype=float)
    res = minimize_multistart(prob.model, prob.y, S0, lo, hi, prob.loss, free=free, weights=w,
                              max_iter=max_iter, min_keep=converge or len(S0), progress=progress)
    if not np.isfinite(res.fun):
        raise FitError(f"law '{law.name}': no start gave a finite objective on these runs")
    span = hi - lo
    on_bound = [p.name for j, p in enumerate(law.params)
                if free[j] and (abs(res.x[j] - lo[j]) <= 1e-6 * max(1, span[j])
                                or abs(res.x[j] - hi[j]) <= 1e-6 * max(1, span[j]))]
    status = {"converged": res.best_converged, "message": res.message, "n_starts": res.n_starts,
              "n_best": res.n_best, "n_stopped": res.n_stopped, "on_bound": on_bound, "n_iter": int(res.n_iter.max()),
              "n_evals": res.n_evals}
    out = FitResult(
        law=law.name, params=law.to_public(res.x), objective=res.fun, n_runs=len(table),
        loss={"loss": loss, "delta": delta, "space": space}, fixed=dict(fix),
        status=status,
        data={"source": table.attrs.get("source"), "where": where, "exclude_top": exclude_top})
    out.multistart = res  # every start's end point, for diagnostics (not saved)
    return out


def canonical_table(runs, required=(), *, mapping=None, where: str | None = None,
                    exclude_top: int = 0) -> pd.DataFrame:
    """A canonical run table (``runs`` a path or a DataFrame), filtered like :func:`fit` does.

    A table that is already canonical (from :func:`scalinglaws.load_runs`) is used as it is
    when no filter is asked for; its ``required`` columns are still checked.
    """
    if isinstance(runs, pd.DataFrame) and "source" in runs.attrs and not (where or exclude_top or mapping):
        missing = [c for c in required if c not in runs.columns]
        if missing:
            raise InputError(f"missing required column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(m) for m in missing)}", file=runs.attrs.get("source"))
        return runs
    return load_runs(runs, mapping=mapping, required=required, where=where, exclude_top=exclude_top)

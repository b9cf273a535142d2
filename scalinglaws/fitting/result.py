"""A fitted law as plain data (``FitResult``), its file (``fit.json``), and published presets as fits.

>>> res = resolve_fit("fit.json")          # or a preset name, which stands in for a fit file  # doctest: +SKIP
>>> res.predict({"N": "70B", "D": "1.4T"})                                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from scalinglaws import __version__
from scalinglaws.data.atomic import write_atomic
from scalinglaws.data.columns import as_table
from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.fitting.options import FitOptions
from scalinglaws.laws import Law, find_preset, get_law


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
    data : dict           where the runs came from and how they were filtered (``where``, ``exclude_top``)
    warnings : list       what the data cannot tell (``{"code", "message"}``, see
                          :mod:`scalinglaws.fitting.identifiability`)
    extra : dict          what the trust tools added: ``"bootstrap"`` (resamples, intervals, residuals)
    version : str         package version that made the fit
    multistart : the fitter's record of every start's end point (not saved; None for a loaded fit)
    """

    law: str
    params: dict[str, float]
    objective: float
    n_runs: int
    loss: dict = field(default_factory=lambda: FitOptions().loss_record())
    fixed: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    version: str = __version__
    multistart: Any = field(default=None, repr=False, compare=False)

    @property
    def law_obj(self) -> Law:
        return get_law(self.law).from_param_names(list(self.params))

    @property
    def converged(self) -> bool:
        return bool(self.status.get("converged", True))

    @property
    def options(self) -> FitOptions:
        """The options this fit was made with (loss, delta, space, fix, where, exclude_top)."""
        return FitOptions.from_record(self.loss, self.fixed, self.data)

    @property
    def bootstrap(self) -> dict:
        """The bootstrap record (``{}`` without one): n, cluster, seed, level, samples, intervals, residuals."""
        return (self.extra or {}).get("bootstrap") or {}

    def predict(self, runs) -> np.ndarray:
        """Predicted target for each run: a DataFrame, a path, or a dict of columns (numbers or
        strings with suffixes such as ``"70B"``; scalars broadcast)."""
        law = self.law_obj
        return law.predict(self.params, as_table(runs, law.required_columns()))

    def intervals(self) -> dict[str, tuple[float, float]]:
        """Bootstrap percentile interval of each parameter (empty without a bootstrap)."""
        b = self.bootstrap
        if not b.get("samples"):
            return {}
        return {k: (float(v[0]), float(v[1])) for k, v in (b.get("intervals") or {}).items()
                if v and None not in v}

    def to_dict(self) -> dict:
        d = _plain({f.name: getattr(self, f.name) for f in fields(self) if f.name != "multistart"})
        b = d["extra"].get("bootstrap")
        if b and b.get("samples"):  # one row of parameters per line keeps fit.json readable
            b["samples"] = [[float(f"{v:.10g}") for v in row] for row in b["samples"]]
            b["residuals"] = [float(f"{v:.10g}") for v in b.get("residuals") or []]
        return d

    def save(self, path: str | os.PathLike) -> None:
        """Write ``fit.json`` atomically (a temporary file in the same folder, then rename)."""
        write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @property
    def distinct_note(self) -> str:
        """How many distinct starts the grid was where the fit solved the law's amplitudes for each start
        (:mod:`scalinglaws.fitting.amplitudes`), e.g. "25 distinct once E, A, B are solved for each start of
        the other parameters"; empty where it did not."""
        st = self.status or {}
        solved = st.get("solved") or []
        if not solved:
            return ""
        return (f"{st.get('n_distinct')} distinct once {', '.join(solved)} {'is' if len(solved) == 1 else 'are'} "
                f"solved for each start of the other parameters")

    def starts_line(self, within: str = "") -> str:
        """How many starts reached the best optimum (``within``: how near, said right after), and
        :attr:`distinct_note`."""
        st = self.status or {}
        line = f"{st.get('n_best', '?')} of {st.get('n_starts', '?')} starts reached the best optimum{within}"
        return line + (f"; {self.distinct_note}" if self.distinct_note else "")

    def summary(self) -> str:
        lines = [f"law {self.law}: objective {self.objective:.10g} on {self.n_runs} runs "
                 f"({self.loss.get('loss')}, delta {self.loss.get('delta')}, {self.loss.get('space')} space)"]
        for k, v in self.params.items():
            lines.append(f"  {k:>10} = {v:.6g}" + ("  (fixed)" if k in self.fixed else ""))
        st = self.status
        if st:
            n = st.get("n_stopped")
            lines.append(f"  {st.get('message', '')}; "
                         + self.starts_line(f" ({n} stopped early by successive halving)" if n else ""))
            if st.get("on_bound"):
                lines.append(f"  on a bound: {', '.join(st['on_bound'])}")
        return "\n".join(lines)


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


_SAVED = [f.name for f in fields(FitResult) if f.name != "multistart"]


def load_fit(path: str | os.PathLike) -> FitResult:
    """Load a ``fit.json`` written by :meth:`FitResult.save`; a bad file is one InputError naming it."""
    path = os.fspath(path)
    try:
        with open(path) as fh:
            d = json.load(fh)
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except IsADirectoryError:
        raise InputError("is a folder, expected a fit.json", file=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a fit file (invalid JSON: {exc})", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from None
    if not isinstance(d, dict) or "law" not in d or "params" not in d:
        raise InputError("not a fit file (needs 'law' and 'params')", file=path)
    if not isinstance(d["params"], dict):
        raise InputError("not a fit file ('params' must map names to values)", file=path)
    try:
        law = get_law(d["law"]).from_param_names(list(d["params"]))  # data-dependent laws rebuild here
    except InputError as exc:  # an unknown law (a fit of a newer version, a typo): name the file
        raise InputError(f"key 'law': {exc.reason}", file=path) from None
    try:
        law.to_internal(d["params"])  # names, numbers, signs
    except OptionError as exc:
        raise InputError(f"key 'params': {exc.reason}", file=path) from None
    for key, kind in (("loss", dict), ("fixed", dict), ("status", dict), ("data", dict), ("extra", dict),
                      ("warnings", list)):
        if key in d and d[key] is not None and not isinstance(d[key], kind):
            raise InputError(f"key '{key}' must be an object, got {type(d[key]).__name__}", file=path)
    known = {k: d[k] for k in _SAVED if k in d and d[k] is not None}
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
    """A fit from a FitResult, a ``fit.json`` path, or a preset name (see ``scalinglaws laws``)."""
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


__all__ = ["FitResult", "load_fit", "from_preset", "resolve_fit"]

"""scalinglaws: fit and predict scaling laws for low-precision (quantized) LLM training.

>>> import scalinglaws as sl
>>> runs = sl.load_runs("data/synthetic_chinchilla.csv")     # doctest: +SKIP
>>> fit = sl.fit(runs)                                       # doctest: +SKIP
>>> fit.params["alpha"], fit.predict(runs)[:3]               # doctest: +SKIP

The package is layered (imports run one way, each layer a sub-package):

``data``     run tables: columns, units, errors, atomic files (no fitter, no laws)
``laws``     one declarative file per law family, and the registry
``fitting``  the law-agnostic fitter, fit options, problems, results and their files
``trust``    bootstrap, validate, compare, diagnose, the W/A decomposition
``viz``      figures and the report
``train``    the QAT trainer (imports only the table layer)

Names below are imported on first use, so ``import scalinglaws`` (and the trainer)
loads no fitter, pandas or scipy until they are needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "InputError": "scalinglaws.data.errors", "OptionError": "scalinglaws.data.errors",
    "ScalingLawsError": "scalinglaws.data.errors", "FitError": "scalinglaws.data.errors",
    "CANONICAL": "scalinglaws.data.schema", "parse_number": "scalinglaws.data.units",
    "parse_bytes": "scalinglaws.data.units", "load_runs": "scalinglaws.data.runs",
    "REGISTRY": "scalinglaws.laws", "get_law": "scalinglaws.laws", "register": "scalinglaws.laws",
    "fit": "scalinglaws.fitting.api", "FitOptions": "scalinglaws.fitting.options",
    "FitResult": "scalinglaws.fitting.result", "load_fit": "scalinglaws.fitting.result",
    "resolve_fit": "scalinglaws.fitting.result",
    "bootstrap": "scalinglaws.trust.bootstrap", "predict_interval": "scalinglaws.trust.bootstrap",
    "plan_interval": "scalinglaws.trust.bootstrap", "plan": "scalinglaws.trust.plan",
    "holdout": "scalinglaws.trust.validate", "leave_one_out": "scalinglaws.trust.validate",
    "compare": "scalinglaws.trust.compare", "diagnose": "scalinglaws.trust.diagnose",
    "decompose": "scalinglaws.trust.decompose", "write_report": "scalinglaws.viz.report",
}

__all__ = ["__version__", *_EXPORTS]


#: the layers, importable as attributes too (``sl.laws.REGISTRY``)
_PACKAGES = ("data", "laws", "fitting", "trust", "viz", "train", "cli")


def __getattr__(name: str):
    if name in _PACKAGES:
        return importlib.import_module(f"scalinglaws.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scalinglaws' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

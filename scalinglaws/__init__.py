"""scalinglaws: fit and predict scaling laws for low-precision (quantized) LLM training.

>>> import scalinglaws as sl
>>> runs = sl.load_runs("data/runs.csv")                     # doctest: +SKIP
>>> fit = sl.fit(runs, law="chinchilla")                     # doctest: +SKIP
>>> fit.params["alpha"], fit.predict(runs)[:3]               # doctest: +SKIP
"""

__version__ = "0.1.0"

from scalinglaws.data.errors import FitError, InputError, ScalingLawsError  # noqa: E402
from scalinglaws.data.runs import CANONICAL, load_runs  # noqa: E402
from scalinglaws.data.units import parse_bytes, parse_number  # noqa: E402

__all__ = ["__version__", "load_runs", "CANONICAL", "parse_number", "parse_bytes",
           "InputError", "ScalingLawsError", "FitError"]

from scalinglaws.fitting.api import FitResult, fit, load_fit, resolve_fit  # noqa: E402
from scalinglaws.laws import REGISTRY, get_law  # noqa: E402

__all__ += ["fit", "FitResult", "load_fit", "resolve_fit", "REGISTRY", "get_law"]

from scalinglaws.trust.bootstrap import bootstrap, plan_interval, predict_interval  # noqa: E402

__all__ += ["bootstrap", "predict_interval", "plan_interval"]

# trust: extrapolation checks, law comparison, fit diagnosis, reports (docs/trust.md)
from scalinglaws.trust.validate import holdout, leave_one_out  # noqa: E402
from scalinglaws.trust.compare import compare  # noqa: E402
from scalinglaws.trust.diagnose import diagnose  # noqa: E402
from scalinglaws.viz.report import write_report  # noqa: E402

__all__ += ["holdout", "leave_one_out", "compare", "diagnose", "write_report"]

"""scalinglaws: fit and predict scaling laws for low-precision (quantized) LLM training.

>>> import scalinglaws as sl
>>> runs = sl.load_runs("data/runs.csv")                     # doctest: +SKIP
>>> fit = sl.fit(runs, law="chinchilla")                     # doctest: +SKIP
>>> fit.params["alpha"], fit.predict(runs)[:3]               # doctest: +SKIP
"""

__version__ = "0.1.0"

from .errors import FitError, InputError, ScalingLawsError  # noqa: E402
from .runs import CANONICAL, load_runs  # noqa: E402
from .units import parse_bytes, parse_number  # noqa: E402

__all__ = ["__version__", "load_runs", "CANONICAL", "parse_number", "parse_bytes",
           "InputError", "ScalingLawsError", "FitError"]

from .api import FitResult, fit, load_fit, resolve_fit  # noqa: E402
from .laws import REGISTRY, get_law  # noqa: E402

__all__ += ["fit", "FitResult", "load_fit", "resolve_fit", "REGISTRY", "get_law"]

"""Synthetic run tables drawn from a law with known parameters (tests, examples, benchmarks)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from scalinglaws.laws import get_law


def simulate(law, params: Mapping[str, float], runs: pd.DataFrame | Mapping, noise: float = 0.005,
             seed: int = 0) -> pd.DataFrame:
    """Add the law's target column (``loss``) drawn from ``law`` at ``params`` with multiplicative noise.

    ``target = noise-free target * exp(noise * z)``, z standard normal from
    ``numpy.random.default_rng(seed)``; the noise-free target is the law's own
    (:meth:`~scalinglaws.laws.base.Law.simulate_target`: the prediction for most laws, the
    unquantized loss plus the degradation for a degradation law).  ``runs`` holds the
    covariates (N, D, bits...), a DataFrame or a dict of equal-length columns.
    """
    law = get_law(law)
    table = pd.DataFrame(runs).reset_index(drop=True).astype(float)
    exact = law.from_param_names(list(params)).simulate_target(params, table)
    rng = np.random.default_rng(seed)
    out = table.copy()
    out[law.target] = exact * np.exp(noise * rng.standard_normal(len(table)))
    return out


def grid(N, D, **columns) -> pd.DataFrame:
    """All combinations of the given N, D (and other column) values as a table."""
    axes = {"N": np.atleast_1d(N), "D": np.atleast_1d(D), **{k: np.atleast_1d(v) for k, v in columns.items()}}
    mesh = np.meshgrid(*axes.values(), indexing="ij")
    return pd.DataFrame({k: m.ravel().astype(float) for k, m in zip(axes, mesh)})


def example_table(law, rows: int = 300, noise: float = 0.005, seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """The law's own example design (:meth:`~scalinglaws.laws.base.Law.example`) repeated to ``rows``
    runs (a larger design is cut to its first ``rows``), with its target drawn at the example's known
    parameters: ``(params, table)``.

    The registry-wide checks and ``benchmarks/fit_speed.py`` fit every law on such a table, one
    design per law at a common size (not every design pins every parameter down at 0.5% noise:
    ``scalinglaws fit --profile`` says which ones it does not).
    """
    law = get_law(law)
    params, cols = law.example()
    design = pd.DataFrame(cols)
    design = pd.concat([design] * -(-rows // len(design)), ignore_index=True).iloc[:rows]
    return params, simulate(law, params, design, noise=noise, seed=seed)

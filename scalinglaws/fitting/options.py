"""How to fit: one options object, with one default for each setting.

:class:`FitOptions` is plain data (scikit-learn's habit: hyper-parameters are values, not
behaviour).  :func:`scalinglaws.fit`, the trust tools and the command line all take it,
so a default such as the Huber ``delta`` is written once, here.

>>> FitOptions(delta=1e-2, fix={"alpha": 0.34}).robust_loss()          # doctest: +SKIP
RobustLoss(kind='huber', delta=0.01)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Mapping

import numpy as np

from scalinglaws.data.errors import OptionError
from scalinglaws.fitting import defaults
from scalinglaws.fitting.fitter import RobustLoss
from scalinglaws.fitting.workers import validate_jobs

LOSSES = ("huber", "mse")
SPACES = ("log", "linear")


@dataclass(frozen=True)
class FitOptions:
    """Settings of a fit; every field has its one default.

    Parameters
    ----------
    loss : ``"huber"`` or ``"mse"``
        Robust Huber loss (quadratic within ``delta``) or half squared error, summed over runs.
    delta : float
        Huber threshold on the residuals (in ``space``).
    space : ``"log"`` or ``"linear"``
        Residuals of ``log(target)`` (default) or of the target itself.
    starts : None, int or array
        ``None``: the law's start grid; an int: that many seeded random starts inside the
        grid's range; an array (S, P) of starts in the fitted space.
    seed : int
        Seed of random starts (and of bootstrap resamples made from these options).
    fix : mapping
        Parameters held at a value, by public name.
    where : str or None
        Keep only the runs matching this condition (``"N>=1e8 and D<300B"``).
    exclude_top : int
        Drop the ``exclude_top`` highest-loss runs (after ``where``).
    converge : int or None
        Starts that successive halving runs to full convergence (0: every start; None: the law's own
        number, ``Law.converge``, else 32).
    confirm : int
        While fewer than this many starts reached the best optimum, successive halving converges
        the next-ranked starts it stopped (as many again as have converged each time), until a
        new batch no longer improves the best (0: never).  A rugged landscape, where the early
        objective does not rank the starts well, then still gets its best optimum.
    max_iter : int
        Steps per start at most in the double-precision round on every run, the one that decides
        convergence (the cheaper rounds before it, in single precision or on a run subset, may take
        as many again).
    explore_rows : int or None
        A table with more runs than this ranks the start grid (the successive-halving rounds)
        on a seeded subset of this many runs; the surviving starts converge on every run.
        None: every round on every run.
    n_jobs : int or None
        Worker processes for a last round of more than 400 starts (``converge=0``, diagnose's 512)
        and for the confirmation batches as large, which converge in fixed chunks of at most 400: the
        result is the same for any value.  None: the cores this process may use; 1: all in this process.
    """

    loss: str = defaults.LOSS
    delta: float = defaults.HUBER_DELTA
    space: str = defaults.SPACE
    starts: object = None
    seed: int = defaults.SEED
    fix: Mapping[str, float] = field(default_factory=dict)
    where: str | None = None
    exclude_top: int = 0
    converge: int | None = None
    confirm: int = defaults.CONFIRM
    max_iter: int = defaults.MAX_ITER
    explore_rows: int | None = defaults.EXPLORE_ROWS
    n_jobs: int | None = None

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise OptionError("loss", f"must be 'huber' or 'mse', got {self.loss!r}")
        if isinstance(self.delta, bool) or not (isinstance(self.delta, (int, float, np.floating))
                                                and math.isfinite(self.delta) and self.delta > 0):
            raise OptionError("delta", f"must be a finite number > 0, got {self.delta}")
        if self.space not in SPACES:
            raise OptionError("space", f"must be 'log' or 'linear', got {self.space!r}")
        if isinstance(self.starts, (int, np.integer)) and not isinstance(self.starts, bool) and self.starts < 1:
            raise OptionError("starts", f"must be >= 1, got {self.starts}")
        if not _whole(self.seed, 0):
            raise OptionError("seed", f"must be a whole number >= 0, got {self.seed}")
        if not _whole(self.exclude_top, 0):
            raise OptionError("exclude_top", f"must be a whole number >= 0, got {self.exclude_top}")
        if self.converge is not None and not _whole(self.converge, 0):
            raise OptionError("converge", f"must be None or a whole number >= 0, got {self.converge}")
        if not _whole(self.confirm, 0):
            raise OptionError("confirm", f"must be a whole number >= 0, got {self.confirm}")
        if not _whole(self.max_iter, 1):
            raise OptionError("max_iter", f"must be a whole number >= 1, got {self.max_iter}")
        validate_jobs(self.n_jobs)
        if self.explore_rows is not None and not _whole(self.explore_rows, 16):
            raise OptionError("explore_rows", f"must be None or a whole number >= 16, got {self.explore_rows}")
        fix = {}
        for k, v in dict(self.fix or {}).items():
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise OptionError("fix", f"{k}: the value must be a number, got {v!r}")
            fix[str(k)] = float(v)
        object.__setattr__(self, "fix", fix)
        object.__setattr__(self, "delta", float(self.delta))

    @classmethod
    def of(cls, options: "FitOptions | None" = None, **values) -> "FitOptions":
        """``options`` (or the defaults) with ``values`` replacing fields; unknown names are refused."""
        base = options if options is not None else cls()
        if not isinstance(base, FitOptions):
            raise OptionError("options", f"must be a FitOptions, got {type(base).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = [k for k in values if k not in names]
        if unknown:
            raise OptionError(unknown[0], f"is not a fit option (they are: {', '.join(sorted(names))})")
        values = {k: v for k, v in values.items()
                  if v is not None or k in ("starts", "where", "explore_rows", "converge", "n_jobs")}
        return replace(base, **values) if values else base

    def replace(self, **values) -> "FitOptions":
        return replace(self, **values)

    def robust_loss(self) -> RobustLoss:
        return RobustLoss(self.loss, self.delta)

    def loss_record(self) -> dict:
        """What a fit file records of the loss: ``{"loss", "delta", "space"}``."""
        return {"loss": self.loss, "delta": self.delta, "space": self.space}

    @classmethod
    def from_record(cls, loss: Mapping | None, fixed: Mapping | None = None, data: Mapping | None = None,
                    **values) -> "FitOptions":
        """The options a saved fit was made with (its ``loss``, ``fixed`` and ``data`` records)."""
        loss, data = dict(loss or {}), dict(data or {})
        base = dict(loss=loss.get("loss", cls.loss), delta=float(loss.get("delta", cls.delta)),
                    space=loss.get("space", cls.space), fix=dict(fixed or {}), where=data.get("where"),
                    exclude_top=int(data.get("exclude_top") or 0))
        base.update(values)
        return cls(**base)


def _whole(v, lo: int) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= lo

"""What a law family declares, and the generic machinery every law shares.

A law is a short declarative class (see ``chinchilla.py`` for the smallest one):

* ``params``: :class:`Param` entries -- name, meaning, bounds and start grid **in the
  units a user reads** (``log=True`` parameters are fitted as their logarithm; that
  transform is internal);
* ``columns`` / ``optional_columns``: the canonical run-table columns it reads (an
  absent precision column means 16 bits, see :mod:`scalinglaws.data.schema`);
* :meth:`Law.formula`: the law, **written once** as arithmetic on the parameters
  ``p`` and the design variables ``x`` (``m`` supplies ``exp``/``log``/``log2``).  The
  same method gives predictions (numpy), the fitter's exact derivatives (sympy,
  :mod:`scalinglaws.laws.derive`) and the planners' losses (:meth:`Law.at`);
* :meth:`Law.design`: the design variables the formula reads, from the run table;
* ``presets`` (:class:`Preset`, with their source) and ``planners`` (:class:`Planner`
  with :class:`Option` declarations, which also build the command line).

Other layers ask a law what they need and never test its name: what its target is
(``target_name``, ``target_label``), its unquantized form of a run (:meth:`Law.unquantized`),
the precision of a run (:meth:`Law.bits_of`), the axes of its quantization penalty
(``penalty_axes``), a covariate to draw its target against (``axis``), and the picture of a fit
(``figure``: :class:`View` declarations, plain data that :mod:`scalinglaws.viz.plotting` draws).
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import ClassVar, Iterable, Mapping

import numpy as np

from scalinglaws.data.columns import Columns, as_columns
from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.schema import BITS_COLUMNS, DEFAULTS, UNQUANTIZED_BITS
from scalinglaws.data.units import SUFFIX_NOTE, parse_bytes, parse_number
from scalinglaws.laws.derive import Vars, functions


def exps(*xs: float) -> tuple[float, ...]:
    """``(e^x, ...)``: a start grid or bounds of a log-scale parameter, written by its exponents."""
    return tuple(math.exp(x) for x in xs)


@dataclass(frozen=True)
class Param:
    """One parameter of a law, in the units a user reads.

    Parameters
    ----------
    name : str
        Public name, as in ``fit.json`` (``"A"``, ``"alpha"``).
    doc : str
        Meaning, one line.
    bounds : (float, float)
        Lower and upper bound of the value.
    grid : tuple of float
        Start values; the default start grid is the product of every parameter's grid.
    log : bool
        Fitted as ``log(value)`` (scale constants that span decades); bounds and grid
        must then be > 0.
    """

    name: str
    doc: str
    bounds: tuple[float, float]
    grid: tuple[float, ...]
    log: bool = False

    def __post_init__(self):
        lo, hi = self.bounds
        if not lo < hi:
            raise ValueError(f"parameter {self.name}: bounds {self.bounds} are not increasing")
        if self.log and not (lo > 0 and all(g > 0 for g in self.grid)):
            raise ValueError(f"parameter {self.name} is fitted in log space: its bounds and grid must be > 0")

    def to_public(self, x):
        return np.exp(x) if self.log else x

    def to_internal(self, v: float, option: str = "value") -> float:
        if not math.isfinite(v):
            raise OptionError(option, f"{self.name} must be a finite number, got {v}")
        if self.log:
            if not v > 0:
                raise OptionError(option, f"{self.name} must be > 0 (it is fitted in log space), got {v}")
            return math.log(v)
        return float(v)

    def internal_bounds(self) -> tuple[float, float]:
        return tuple(math.log(b) if self.log else float(b) for b in self.bounds)

    def internal_grid(self) -> np.ndarray:
        return np.log(self.grid) if self.log else np.asarray(self.grid, dtype=float)

    def contains(self, v: float) -> bool:
        lo, hi = self.bounds
        return lo * (1 - 1e-12) <= v <= hi * (1 + 1e-12) if self.log else lo - 1e-12 <= v <= hi + 1e-12


@dataclass(frozen=True)
class Preset:
    """Published constants of a law: values by public name, and where they come from."""

    values: Mapping[str, float]
    source: str
    note: str = ""


@dataclass(frozen=True)
class View:
    """One block of a law's fit figure (``scalinglaws fit --plot``), declared as plain data.

    The law says *what* to draw; :mod:`scalinglaws.viz.plotting` draws it (the figure code
    stays in the plotting layer and never tests a law's name).  A law's ``figure`` is a tuple
    of views; each view is one block of small panels with one legend.

    kind : str
        ``"curves"``: data (dots) and the fitted law (lines) against ``x``, one colour per
        value of ``curves``, one panel per value of ``panels``;
        ``"isoloss"``: contours of the predicted loss in (N, D), iso-FLOP lines and the
        compute-optimal frontier (16-bit);
        ``"heatmap"``: the loss quantization adds over a grid of ``x`` (values ``xs``) by
        ``y_axis`` (values ``ys``) at one setting of the other columns, relative to the best
        cell of total width ``width`` (:meth:`Law.bits_of`), which is starred;
        ``"params"``: the fitted parameters whose names match the regular expression
        ``match`` (group 1 labels each point), with bootstrap intervals when the fit has them;
        ``"along"``: the target against the law's :attr:`Law.axis` (:meth:`Law.along_axis`),
        dots coloured by ``curves``.
    x : str
        A run-table column or a derived axis the plotting layer knows: ``"D"`` (tokens, or
        D_fp + D_qat), ``"N"``, ``"bits"`` (:meth:`Law.bits_of`, set by :meth:`Law.with_bits`),
        ``"tokens_per_param"`` (D / N), ``"S"`` (tokens per parameter byte), ``"qat_fraction"``
        (D_qat / (D_fp + D_qat)), ``"group_size"``, any other column.
    y : str
        ``"target"`` (what the law predicts) or ``"penalty"`` (the target minus the law's
        prediction for the same runs in their unquantized form, :meth:`Law.unquantized`).
    curves, panels : str or None
        A column (or derived axis) whose values get a colour / a panel each; ``panels`` may
        also be ``"precision"`` (the run's format key, W4A16G32) or ``"quantized"`` (which
        of the law's precision columns a run lowers).
    fixed : mapping
        Columns (or derived axes) held at one value: the data are the runs at that value and
        the fitted curves are drawn there.  A number (the nearest value in the data), or
        ``"min"``, ``"mid"``, ``"max"`` of the values in the data.
    yscale : ``"linear"`` or ``"log"``.
    quantized_only : bool
        Leave out unquantized runs (:meth:`Law.bits_of` >= 16); always so for ``y="penalty"``.
    grid : ``"continuous"`` or ``"integer"`` (fitted curves only at whole values of x).
    fitted_points : bool
        Also mark the fitted value of every run (for a law whose curve cannot pass through
        every run, e.g. several formats of one width).
    mark : ``"min"`` marks the minimum of each fitted curve.
    xs, ys, width : the heat map's grid and the total width it compares formats within.
    match, label, reference, reference_label : the ``"params"`` view's pattern, axis label, a reference
        line and what it means.
    title : str
        What the block shows, in words (a heading above it).
    """

    kind: str
    x: str = "D"
    y: str = "target"
    curves: str | None = "N"
    panels: str | None = None
    fixed: Mapping[str, object] = field(default_factory=dict)
    yscale: str = "linear"
    quantized_only: bool = False
    grid: str = "continuous"
    fitted_points: bool = False
    mark: str | None = None
    y_axis: str | None = None
    xs: tuple = ()
    ys: tuple = ()
    width: float | None = None
    match: str | None = None
    label: str = ""
    reference: float | None = None
    reference_label: str = ""
    title: str = ""

    def __post_init__(self):
        kinds = ("curves", "isoloss", "heatmap", "params", "along")
        if self.kind not in kinds:
            raise ValueError(f"View kind {self.kind!r} is not one of {', '.join(kinds)}")
        if self.y not in ("target", "penalty"):
            raise ValueError(f"View y {self.y!r} is not 'target' or 'penalty'")
        if self.kind == "heatmap" and not (self.y_axis and self.xs and self.ys):
            raise ValueError("a heatmap View needs y_axis, xs and ys")
        if self.kind == "params" and not self.match:
            raise ValueError("a params View needs match (a regular expression over parameter names)")


@dataclass(frozen=True)
class Option:
    """One option of a planner (``scalinglaws optimal KIND --name VALUE``).

    ``kind`` says how a value is read and checked: ``"count"`` (parameters or tokens,
    suffixes such as 7B), ``"flops"``, ``"bytes"`` (16GB, 80GiB), ``"bits"`` (a whole
    number of bits in ``[lo, hi]``), ``"number"``.  ``lo``/``hi`` are inclusive limits
    (physical ones: a number format has at least one bit); ``positive`` requires > 0.
    """

    name: str
    doc: str
    kind: str = "number"
    lo: float | None = None
    hi: float | None = None
    positive: bool = False
    integer: bool = False

    @property
    def metavar(self) -> str:
        return {"count": "COUNT", "flops": "FLOPS", "bytes": "BYTES", "bits": "BITS"}.get(self.kind, "NUMBER")

    def read(self, value):
        """The value (a number, or text with a suffix) as a checked number."""
        if isinstance(value, (bool, np.bool_)):
            raise OptionError(self.name, f"must be a number, got {value!r}")
        if self.kind == "bytes":
            try:
                x = parse_bytes(value, self.name)
            except InputError:
                raise OptionError(self.name, f"{value!r} is not a size in bytes (examples: 16GB, 80GiB, "
                                             f"1.2e10)") from None
        else:
            try:
                x = parse_number(value, self.name)
            except InputError:
                raise OptionError(self.name, f"{value!r} is not a number ({SUFFIX_NOTE})") from None
        if not math.isfinite(x):
            raise OptionError(self.name, f"must be a finite number, got {value!r}")
        if self.positive and not x > 0:
            raise OptionError(self.name, f"must be a finite number > 0, got {x:g}")
        if self.integer and not float(x).is_integer():
            raise OptionError(self.name, f"must be a whole number, got {x:g}")
        if self.lo is not None and x < self.lo:
            what = "a number of bits " if self.kind == "bits" else ""
            raise OptionError(self.name, f"must be {what}>= {self.lo:g}, got {x:g}")
        if self.hi is not None and x > self.hi:
            raise OptionError(self.name, f"must be <= {self.hi:g}, got {x:g}")
        if self.kind == "bits" or self.integer:
            return int(x) if float(x).is_integer() else float(x)
        return float(x)


#: The options planners share; a planner may also declare an :class:`Option` of its own.
OPTIONS = {o.name: o for o in (
    Option("N", "parameters (non-embedding)", "count", positive=True),
    Option("D", "training tokens", "count", positive=True),
    Option("flops", "compute budget in FLOPs (e.g. 1e23)", "flops", positive=True),
    Option("memory", "memory budget in bytes", "bytes", positive=True),
    Option("bits", "total bits of a number format (sign + exponent + mantissa)", "bits", lo=2, hi=64,
           integer=True),
    Option("w_bits", "weight bits", "bits", lo=1, hi=64),
    Option("a_bits", "activation bits", "bits", lo=1, hi=64),
    Option("kv_bits", "key/value bits", "bits", lo=1, hi=64),
    Option("ptq_bits", "post-training quantization bits", "bits", lo=1, hi=64),
    Option("exp_bits", "exponent bits of a floating-point format", "bits", lo=0, hi=63),
    Option("man_bits", "mantissa bits of a floating-point format", "bits", lo=0, hi=63),
    Option("group_size", "elements sharing one scale (block size)", "number", lo=1),
    Option("threshold", "loss increase to stay under (nats)", "number", positive=True),
)}


@dataclass(frozen=True)
class Planner:
    """A derived optimum a law answers (``scalinglaws optimal KIND``).

    ``method`` names a Law method called as ``method(params, **options)`` with the
    options read and checked (see :class:`Option`); it returns a dict of plain numbers
    plus ``"summary"`` (one sentence) and optionally ``"table"`` (a list of row dicts)
    and ``"best"`` (the winning row).  ``required`` and ``optional`` list its options by
    name (the shared ones of :data:`OPTIONS`) or as :class:`Option` declarations.
    """

    kind: str
    doc: str
    method: str
    required: tuple = ()
    optional: tuple = ()

    @property
    def options(self) -> tuple[Option, ...]:
        return tuple(o if isinstance(o, Option) else OPTIONS[o] for o in self.required + self.optional)

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    @property
    def required_names(self) -> tuple[str, ...]:
        return tuple(o.name if isinstance(o, Option) else o for o in self.required)

    def read(self, options: Mapping[str, object]) -> dict:
        """``options`` read, checked and complete: unknown ones refused, required ones present."""
        known = {o.name: o for o in self.options}
        extra = [k for k in options if k not in known]
        if extra:
            raise OptionError(extra[0], f"{'(and ' + ', '.join(extra[1:]) + ') ' if extra[1:] else ''}"
                                        f"and options like it do not apply to the '{self.kind}' planner",
                              takes=list(known))
        out = {k: known[k].read(v) for k, v in options.items() if v is not None}
        for name in self.required_names:
            if name not in out:
                raise OptionError(name, f"is required by the '{self.kind}' planner")
        return out


class Law:
    """Base class of a law family.  Subclasses set the class attributes and :meth:`formula`.

    Class attributes
    ----------------
    name : str            registry key
    title : str           one-line description
    reference : str       paper
    formula_text : str    the law in plain text
    params : tuple        :class:`Param` entries, in the order of the fitted vector
    columns : tuple       canonical columns the law reads (besides its target)
    optional_columns      columns it reads when present
    target : str          the column the law is fitted to (``"loss"``)
    predicts : str        what a prediction is; names output columns (``loss`` -> ``loss_pred``)
    target_name : str     the target in words (default: ``predicts``)
    target_unit : str     its unit (``"nats/token"``; ``""`` for a fraction)
    presets : dict        name -> :class:`Preset`
    planners : tuple      :class:`Planner` entries
    penalty_axes : tuple  axes its quantization penalty varies along (``"bits"``,
                          ``"group_size"``, ``"tokens_per_byte"``); empty: no penalty
    axis : tuple or None  (design variable, label) to draw the target against, for laws
                          whose target is not a loss of N and D
    figure : tuple        :class:`View` entries: the picture of a fit (``fit --plot``), drawn by
                          :mod:`scalinglaws.viz.plotting`; empty: a generic one (target against
                          D, one curve per model size)
    converge : int or None  starts the default fit runs to convergence after successive halving
                          (``FitOptions.converge`` when the user gives none); None: the fitter's
                          default (32).  More for a landscape where the halving's early ranking
                          often misses the basin of the best optimum
    amplitudes : tuple    log-scale parameters the formula is affine in, jointly (``L = c + sum_k P_k
                          z_k``, ``c`` and ``z_k`` free of them: Chinchilla's E, A and B): the fit
                          solves them for each start of the other parameters instead of searching
                          their grid (:mod:`scalinglaws.fitting.amplitudes`); their grids only place
                          the first point of that solve.  ``tests/test_amplitudes.py`` checks the
                          affinity on the formula (sympy).  Empty: every parameter is searched
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    formula_text: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    columns: ClassVar[tuple[str, ...]] = ("N", "D")
    optional_columns: ClassVar[tuple[str, ...]] = ()
    target: ClassVar[str] = "loss"
    predicts: ClassVar[str] = "loss"
    target_unit: ClassVar[str] = "nats/token"
    presets: ClassVar[dict[str, Preset]] = {}
    planners: ClassVar[tuple[Planner, ...]] = ()
    penalty_axes: ClassVar[tuple[str, ...]] = ()
    axis: ClassVar[tuple[str, str] | None] = None
    figure: ClassVar[tuple[View, ...]] = ()
    converge: ClassVar[int | None] = None
    amplitudes: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        """Every planner method of a law checks its options (the :class:`Option` declarations) when called."""
        super().__init_subclass__(**kwargs)
        for planner in cls.__dict__.get("planners", ()):
            fn = cls.__dict__.get(planner.method)
            if fn is not None and not getattr(fn, "_checked", False):
                setattr(cls, planner.method, _checked(fn, planner))

    # ------------------------------------------------------------------ the formula
    def formula(self, p, x, m=np):
        """The law's prediction from parameters ``p`` and design variables ``x``.

        ``p.alpha`` (or ``p["lambda"]``) are public parameter values and ``x.N`` the
        design arrays of :meth:`design`; ``m`` provides ``exp``, ``log``, ``log2``,
        ``log1p``, ``sqrt`` (numpy for values, sympy for derivatives).  Use plain
        arithmetic and those functions only.
        """
        raise NotImplementedError

    @property
    def target_name(self) -> str:
        return self.predicts

    @property
    def target_label(self) -> str:
        """The target with its unit, for axis labels."""
        return f"{self.target_name} ({self.target_unit})" if self.target_unit else self.target_name

    # ------------------------------------------------------------------ data
    def prepare(self, runs):
        """Rows of ``runs`` (a DataFrame) this law is fitted on (default: all).  Override to select."""
        return runs

    def required_columns(self) -> tuple[str, ...]:
        """Columns a table must have: the law's columns, less those with a default (precision bits)."""
        return tuple(c for c in self.columns if c not in DEFAULTS)

    def design(self, cols) -> dict[str, np.ndarray]:
        """The arrays :meth:`formula` reads as ``x`` (default: the law's columns).

        ``cols`` is a run table: :class:`~scalinglaws.data.columns.Columns`, a DataFrame or
        a dict of values (see :func:`~scalinglaws.data.columns.as_columns`).
        """
        cols = as_columns(cols)
        cols.require(self.columns, f"law '{self.name}'")
        X = {c: np.asarray(cols[c], dtype=float) for c in self.columns}
        for c in self.optional_columns:
            if c in cols:
                X[c] = np.asarray(cols[c], dtype=float)
        return X

    def observed(self, runs) -> np.ndarray:
        """The observed target of each run."""
        return np.asarray(as_columns(runs)[self.target], dtype=float)

    def resolution(self, runs) -> np.ndarray | None:
        """How far off each run's observed target may be beyond the runs' own noise, as a standard deviation
        in log space, where the target is only known to a resolution (the best of a few points of a sweep: the
        true best may sit anywhere up to the next point); None (the default): the target is measured.
        ``validate`` widens each held-out run's interval by it (``runs`` as :meth:`prepare` returns them)."""
        return None

    # ------------------------------------------- parameters that depend on the data
    def specialize(self, runs) -> "Law":
        """The law to fit on ``runs`` (default: ``self``).

        A law whose parameters depend on the data (for example one efficiency per
        compression format found in the table) returns a new instance whose ``params``
        match ``runs``.  The fit calls this after :meth:`prepare`.
        """
        return self

    def from_param_names(self, names: Iterable[str]) -> "Law":
        """The law whose parameters are ``names``, as saved in ``fit.json`` (default: ``self``)."""
        return self

    def in_domain(self, params: Mapping[str, float], runs) -> np.ndarray:
        """Which runs lie inside the law's domain under ``params`` (default: all of them).

        A law whose formula gives a finite but meaningless number somewhere (an effective
        parameter count <= 0, say) says so here; planners that search (``scalinglaws plan``)
        leave those points out.
        """
        return np.ones(as_columns(runs).n, bool)

    def plan_space(self, params: Mapping[str, float], **search):
        """The configurations ``scalinglaws plan`` searches, or None for the default.

        The default (:func:`scalinglaws.laws.plan.space`) is read from the law's columns:
        training and post-training bits, FP formats, group sizes, the QAT fraction.  A law
        whose parameters belong to particular formats (one efficiency per fitted format, one
        quantized setting per fit) returns those instead: a list of dicts of run columns
        (``w_bits``, ...).  ``search`` holds the user's lists (``bits``, ``w_bits``, ``a_bits``,
        ``group_sizes``, ``qat_fractions``; None when not given), to honour or refuse.
        """
        return None

    # ------------------------------------------------------------- for the fitter
    def public(self, theta: np.ndarray) -> Vars:
        """Fitted-space vectors (S, P) -> public parameter columns (S, 1) by name."""
        t = np.asarray(theta)
        return Vars({p.name: p.to_public(t[:, j:j + 1]) for j, p in enumerate(self.params)})

    def log_predict(self, theta: np.ndarray, X: Mapping[str, np.ndarray]) -> np.ndarray:
        """``log`` of the predicted target, shape (S, n), for fitted-space ``theta`` (S, P)."""
        t = np.asarray(theta)
        with np.errstate(all="ignore"):  # outside a law's domain: NaN, which the fitter refuses
            out = np.log(self.formula(self.public(t), Vars(X), np))
        return np.broadcast_to(out, (t.shape[0], _rows(X))).astype(t.dtype, copy=False)

    def log_predict_jac(self, theta: np.ndarray, X: Mapping[str, np.ndarray]):
        """``(log L, d log L / d theta)``, shapes (S, n) and (S, n, P), exact (from :meth:`formula`).

        A law that gives only :meth:`log_predict` (no formula) gets the complex-step
        derivative of it instead: exact to rounding when ``log_predict`` uses complex-safe
        numpy functions only.
        """
        t = np.asarray(theta)
        if not self.has_formula:
            return _complex_step(self, t, X)
        with np.errstate(all="ignore"):
            return functions(self, X)["value_jac"](t, X)

    @property
    def has_formula(self) -> bool:
        return type(self).formula is not Law.formula

    @property
    def has_curvature(self) -> bool:
        """Whether :meth:`curvature` is exact (every law with a formula has it, from the formula)."""
        return self.has_formula

    #: whether the generated derivatives merge each product of powers into one exponential
    #: (:func:`scalinglaws.laws.derive.generate`); False differentiates the formula as written
    #: (``benchmarks/law_speed.py`` compares the two)
    merge_powers: ClassVar[bool] = True

    #: whether the fitter's exact steps add the model's curvature (full Newton) to the loss's
    #: (Gauss-Newton); Gauss-Newton unless a law has shown that Newton steps pay (Chinchilla)
    newton_steps: ClassVar[bool] = False

    def curvature(self, theta: np.ndarray, X: Mapping[str, np.ndarray], w: np.ndarray) -> np.ndarray:
        """``sum_i w[s, i] * Hessian_theta(log L_i)`` for each start s, shape (S, P, P)."""
        t = np.asarray(theta)
        with np.errstate(all="ignore"):
            return functions(self, X)["curvature"](t, X, np.asarray(w, dtype=t.dtype))

    def fit_log_predict(self, theta: np.ndarray, X: Mapping[str, np.ndarray]) -> np.ndarray:
        """:meth:`log_predict` for the fitter's inner loop: the code generated from :meth:`formula`
        (:mod:`scalinglaws.laws.derive`, powers merged into single exponentials), equal to it to
        rounding inside the law's domain (outside it, where a power's base is negative, it may be NaN
        where ``log_predict`` is finite: see :func:`~scalinglaws.laws.derive._exp_form`).  A law that
        writes its own ``log_predict`` (a hand-tuned path) is used as written."""
        t = np.asarray(theta)
        if type(self).log_predict is not Law.log_predict or not self.has_formula:
            return self.log_predict(t, X)
        with np.errstate(all="ignore"):
            return functions(self, X)["value"](t, X)

    def evaluate(self, theta: np.ndarray, X: Mapping[str, np.ndarray], jac: bool = False):
        """``(log L, cache)`` for the fitter: values now, and whatever :meth:`grad_hess`
        can reuse at the same ``theta`` (None, an array or a tuple of arrays with one row
        per parameter vector).  Default: :meth:`fit_log_predict` and no cache; with ``jac``
        (the fitter expects to take the step) the values and the Jacobian in one pass, the
        Jacobian kept as the cache, so that :meth:`grad_hess` does not compute the values again (not
        for a law without a formula, whose complex-step Jacobian costs an evaluation per parameter, nor
        for one with its own :meth:`grad_hess`, which knows its own cache)."""
        if jac and self.has_formula and type(self).grad_hess is Law.grad_hess:  # (its cache is J)
            f, J = self.log_predict_jac(theta, X)
            return f, J.transpose(0, 2, 1)  # (S, P, n): each parameter's row contiguous
        return self.fit_log_predict(theta, X), None

    def grad_hess(self, theta: np.ndarray, X: Mapping[str, np.ndarray], cache, psi: np.ndarray,
                  hw: np.ndarray, cw: np.ndarray | None):
        """Gradient and Hessian pieces of a weighted objective in ``log L``, for each row.

        ``g = J^T psi`` and ``H = J^T diag(hw) J + sum_i cw_i Hessian(log L_i)`` with
        ``J = d log L / d theta``; ``psi``, ``hw``, ``cw`` have shape (S, n), and ``cw``
        is None when no model curvature is wanted.
        """
        Jt = self.log_predict_jac(theta, X)[1].transpose(0, 2, 1) if cache is None else cache
        J = Jt.transpose(0, 2, 1)
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

    def to_internal(self, values: Mapping[str, float], option: str = "params") -> np.ndarray:
        """``{name: value}`` -> fitted-space vector; every parameter must be given, as a number."""
        unknown = [k for k in values if k not in self.param_names]
        if unknown:
            raise OptionError(option, f"law '{self.name}' has no parameter {', '.join(map(repr, unknown))}; "
                                      f"its parameters are {', '.join(self.param_names)}")
        missing = [p.name for p in self.params if p.name not in values]
        if missing:
            raise OptionError(option, f"missing parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        out = []
        for p in self.params:
            v = values[p.name]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise OptionError(option, f"{p.name} must be a number, got {v!r}")
            out.append(p.to_internal(float(v), option))
        return np.array(out)

    def start_grid(self) -> np.ndarray:
        """The default starts: the product of every parameter's grid, shape (S, P), fitted space."""
        grids = [p.internal_grid() for p in self.params]
        mesh = np.meshgrid(*grids, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds in the fitted space."""
        b = np.array([p.internal_bounds() for p in self.params], dtype=float).reshape(-1, 2)
        return b[:, 0].copy(), b[:, 1].copy()

    # -------------------------------------------------------------- predict
    def predict(self, params: Mapping[str, float], runs) -> np.ndarray:
        """Predicted target for each run (a Columns, DataFrame or dict of values), from public parameters."""
        law = self.from_param_names(list(params))
        theta = law.to_internal(params)[None, :]
        return np.exp(law.log_predict(theta, law.design(runs))[0])

    def at(self, params: Mapping[str, float], **values):
        """The formula's value at public ``params`` for the run(s) ``values`` (planners use this).

        ``law.at(params, N=1e9, D=2e10)`` -> a float; arrays give an array.
        """
        cols = Columns(values, source="<planner>")
        out = self.predict(params, cols)
        return float(out[0]) if all(np.ndim(v) == 0 for v in values.values()) else out

    def planner(self, kind: str) -> Planner:
        for p in self.planners:
            if p.kind == kind:
                return p
        kinds = ", ".join(p.kind for p in self.planners) or "none"
        raise InputError(f"law '{self.name}' has no '{kind}' planner (it has: {kinds})")

    # ------------------------------------------------- what other layers ask
    def unquantized(self, cols: Columns) -> Columns:
        """The same runs in the law's unquantized form (default: every precision column at 16 bits)."""
        cols = as_columns(cols)
        data = {c: cols[c] for c in cols.columns}
        for c in BITS_COLUMNS:
            data[c] = np.full(cols.n, UNQUANTIZED_BITS)
        return Columns(data, cols.source, cols.rows)

    def bits_of(self, cols: Columns) -> np.ndarray:
        """The precision of each run, for a penalty plot (default: its lowest precision column)."""
        cols = as_columns(cols)
        have = [c for c in BITS_COLUMNS if c in cols and (c in self.columns or c in self.optional_columns)]
        if not have:
            return np.full(cols.n, np.nan)
        return np.min(np.stack([cols[c] for c in have]), axis=0)

    #: what :meth:`bits_of` gives, for an axis label
    bits_label: ClassVar[str] = "bits (lowest quantized precision)"

    def weight_bits_of(self, cols: Columns) -> np.ndarray:
        """Bits per weight of each run, for tokens per parameter byte (default: ``w_bits`` where quantized,
        else :meth:`bits_of`)."""
        cols = as_columns(cols)
        bits = self.bits_of(cols)
        if "w_bits" in cols:
            w = cols["w_bits"]
            return np.where(np.isfinite(w) & (w < UNQUANTIZED_BITS), w, bits)
        return bits

    def with_bits(self, params: Mapping[str, float], cols, bits) -> Columns:
        """The runs ``cols`` at precision ``bits`` (the inverse of :meth:`bits_of`, for a figure's curve).

        Default: every precision column the law reads that a run lowers (below 16 bits) is set to
        ``bits``; a run that lowers none gets them all.  ``params`` are for laws whose inverse
        depends on them (the best format of a width).
        """
        cols = as_columns(cols)
        data = {c: np.asarray(cols[c], dtype=float) for c in cols.columns}
        have = [c for c in BITS_COLUMNS if c in self.columns or c in self.optional_columns]
        bits = np.broadcast_to(np.asarray(bits, dtype=float), (cols.n,))
        low = np.stack([np.asarray(cols[c], dtype=float) < UNQUANTIZED_BITS if c in cols else np.zeros(cols.n, bool)
                        for c in have]) if have else np.zeros((0, cols.n), bool)
        none = ~low.any(axis=0) if have else np.ones(cols.n, bool)
        for j, c in enumerate(have):
            old = data.get(c, np.full(cols.n, UNQUANTIZED_BITS))
            data[c] = np.where(low[j] | none, bits, old)
        return Columns(data, cols.source, cols.rows)

    # ------------------------------------------------- synthetic runs with known truth
    def example(self) -> tuple[dict, dict]:
        """``(params, runs)``: known parameters (the first preset where there is one) and a small design
        (dict of columns, no target) on which the law is identifiable.  The registry-wide checks
        (``tests/test_laws_contract.py``) fit, differentiate and plan with it; every law declares one."""
        raise NotImplementedError(f"law '{self.name}' declares no example design")

    def simulate_target(self, params: Mapping[str, float], runs) -> np.ndarray:
        """The noise-free target column of ``runs`` under ``params`` (default: the prediction itself)."""
        return self.predict(params, runs)

    def along_axis(self, params: Mapping[str, float], values: np.ndarray) -> np.ndarray:
        """The target along :attr:`axis` (for laws that declare one)."""
        raise NotImplementedError(f"law '{self.name}' declares no axis")

    def describe(self) -> dict:
        """Plain-data description (``scalinglaws laws --json``)."""
        return {
            "name": self.name, "title": self.title, "reference": self.reference,
            "formula": self.formula_text,
            "parameters": [{"name": p.name, "doc": p.doc, "fitted_as": f"log {p.name}" if p.log else p.name,
                            "bounds": list(p.bounds), "grid": list(p.grid), "grid_size": len(p.grid)}
                           for p in self.params],
            "columns": list(self.required_columns()),
            "optional_columns": list(self.optional_columns) + [c for c in self.columns if c in DEFAULTS],
            "target": self.target, "predicts": self.predicts,
            "presets": {k: {"values": dict(v.values), "source": v.source} for k, v in self.presets.items()},
            "planners": [{"kind": p.kind, "doc": p.doc, "required": list(p.required_names),
                          "optional": [n for n in p.option_names if n not in p.required_names]}
                         for p in self.planners],
            "start_grid_size": int(np.prod([len(p.grid) for p in self.params])),
        }


def _checked(fn, planner: Planner):
    """``fn(self, params, **options)`` with the options read and checked by ``planner`` first."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def method(self, params, *args, **kwargs):
        bound = sig.bind_partial(self, params, *args, **kwargs)
        given = {k: v for k, v in list(bound.arguments.items())[2:]}
        return fn(self, params, **planner.read(given))

    method._checked = True
    return method


def _complex_step(law, theta, X):
    S, P = theta.shape
    h = 1e-30
    pert = np.repeat(theta[:, None, :], P, axis=1).astype(complex)  # (S, P, P)
    pert[:, np.arange(P), np.arange(P)] += 1j * h
    out = law.log_predict(pert.reshape(S * P, P), X)
    out = out.reshape(S, P, out.shape[-1])
    return law.log_predict(theta, X), np.moveaxis(out.imag / h, 1, 2)


def _rows(X: Mapping[str, np.ndarray]) -> int:
    return max((np.size(v) for v in X.values()), default=1)


def row_error(cols: Columns, message: str, mask, column: str | None = None) -> None:
    """Raise ``message`` naming the first row where ``mask`` holds (nothing when none does)."""
    bad = np.flatnonzero(np.asarray(mask, bool))
    if bad.size:
        raise cols.error(message, int(bad[0]), column)


__all__ = ["Law", "Param", "Preset", "Planner", "Option", "OPTIONS", "View", "exps", "row_error"]

"""Figures of a fit, and the look every figure of the toolkit shares.  Matplotlib, no screen needed.

:func:`plot_fit` draws the picture a law declares in its own file (its ``figure``:
:class:`~scalinglaws.laws.base.View` entries, plain data): data and fitted curves in small
multiples, an iso-loss map with the compute-optimal frontier, a format heat map, fitted
parameters with their intervals.  This module knows the kinds of views and the axes they may
use (tokens, parameters, bits, group size, tokens per parameter byte, QAT fraction ...); it
never tests a law's name.

The shared look, used by :mod:`scalinglaws.viz.figures` too:

* styles (:data:`STYLES`): ``"screen"`` (default) and ``"paper"`` (one column of a paper:
  3.4 in wide, serif type, 300 dpi, legends below the panels);
* tick labels on log axes are plain numbers (2, 3, 5; 100M, 1B, 10B), never ``3 x 10^0``;
* legends sit outside the axes, or in a corner that no data point falls in (:func:`legend`);
* axis labels carry units: the law's ``target_unit``, or the table's own loss unit when it
  declares one (a ``loss_unit`` column or ``attrs["loss_unit"]``: nats/byte for a byte-level
  model), see :func:`loss_unit`.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from scalinglaws.data.atomic import atomic_path  # noqa: E402
from scalinglaws.data.columns import Columns, as_columns  # noqa: E402
from scalinglaws.data.errors import InputError, OptionError, ScalingLawsError  # noqa: E402
from scalinglaws.data.runs import bits_label as format_key  # noqa: E402
from scalinglaws.data.schema import BITS_COLUMNS, UNQUANTIZED_BITS  # noqa: E402
from scalinglaws.data.units import human  # noqa: E402

FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


# ------------------------------------------------------------------------------ styles
@dataclass(frozen=True)
class Style:
    """How a figure looks: panel size, figure width, columns of panels, resolution, type."""

    name: str
    panel: tuple[float, float]        # width, height of one panel (inches)
    width: float | None               # a fixed figure width (inches), or None: from the panels
    max_cols: int                     # panels side by side
    dpi: int
    legend: str                       # "right": outside, right of a block; "below": under it
    legend_width: float               # room a "right" legend takes (inches)
    tight: bool                       # crop to the drawing when saving (screen) or keep the size (paper)
    titles: bool                      # block headings and a figure title
    rc: dict = field(default_factory=dict)
    ms: float = 1.0                   # scale of marker areas
    lw: float = 1.0                   # scale of line widths


STYLES = {
    "screen": Style("screen", (3.4, 2.7), None, 4, 130, "right", 1.45, True, True, {
        "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
        "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 10, "axes.spines.top": False,
        "axes.spines.right": False}),
    "paper": Style("paper", (1.7, 1.45), 3.4, 2, 300, "below", 0.0, False, False, {
        "font.family": "serif", "font.serif": ["Times New Roman", "Times", "Nimbus Roman", "Nimbus Roman No9 L",
                                               "DejaVu Serif"],
        "mathtext.fontset": "dejavuserif", "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7,
        "legend.fontsize": 6, "xtick.labelsize": 6, "ytick.labelsize": 6, "figure.titlesize": 7,
        "lines.linewidth": 1.0, "lines.markersize": 3, "axes.linewidth": 0.6, "xtick.major.width": 0.6,
        "ytick.major.width": 0.6, "xtick.minor.width": 0.4, "ytick.minor.width": 0.4, "legend.handlelength": 1.5,
        "legend.columnspacing": 1.0, "axes.spines.top": False, "axes.spines.right": False,
        "savefig.dpi": 300}, ms=0.35, lw=0.7),
}

#: the width of one column of a two-column paper (inches), the ``paper`` style's figure width
PAPER_WIDTH = STYLES["paper"].width
PAPER_DPI = STYLES["paper"].dpi


def get_style(style: str | Style | None) -> Style:
    """The :class:`Style` called ``style`` (default ``"screen"``)."""
    if isinstance(style, Style):
        return style
    name = "screen" if style is None else str(style).strip().lower()
    if name not in STYLES:
        raise OptionError("style", f"{style!r} is not a figure style; styles: {', '.join(STYLES)}")
    return STYLES[name]


def style_of(fig) -> Style:
    """The style a figure (or sub-figure, or axes) was made in."""
    while fig is not None and not hasattr(fig, "_sl_style"):
        parent = getattr(fig, "figure", None) if not hasattr(fig, "get_figure") else fig.get_figure(root=True)
        fig = None if parent is fig else parent
    return getattr(fig, "_sl_style", STYLES["screen"])


def ms(ax, area: float) -> float:
    """A scatter marker area in the style of ``ax``'s figure."""
    return area * style_of(ax).ms


def lw(ax, width: float) -> float:
    """A line width in the style of ``ax``'s figure."""
    return width * style_of(ax).lw


def new_figure(style: str | Style | None = None, size: tuple[float, float] | None = None, **kw):
    """A figure in ``style`` (constrained layout); ``size`` is the screen size, scaled to the paper width."""
    st = get_style(style)
    w, h = size or (st.panel[0] * 1.5, st.panel[1] * 1.5)
    if st.width is not None:
        h, w = h * st.width / w, st.width
        h = min(h, 1.1 * st.width)
    with plt.rc_context(st.rc):
        fig = plt.figure(figsize=(w, h), layout="constrained", **kw)
    fig._sl_style = st
    return fig


def check_figure_path(path: str | os.PathLike) -> str:
    """The format of a figure file from its extension (png, pdf, svg, jpg); refuse others."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".") or "png"
    if ext not in FORMATS:
        raise InputError(f"cannot draw to {path}: use .png, .pdf, .svg or .jpg")
    return ext


#: the mark every figure file of ours carries in its metadata, so that ``--plot`` writes over our figures only
SIGNATURE = "Made by scalinglaws"


def is_our_figure(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` carries :data:`SIGNATURE` (a PDF keeps its metadata at the end: the whole
    file is read, up to 8 MB; figures are small)."""
    try:
        with open(path, "rb") as fh:
            return SIGNATURE.encode() in fh.read(1 << 23)
    except OSError:
        return False


def _signature(ext: str) -> dict:
    """savefig arguments that put :data:`SIGNATURE` into a file of format ``ext``."""
    import matplotlib
    if ext == "png":
        return {"metadata": {"Software": f"{SIGNATURE} (matplotlib {matplotlib.__version__})"}}
    if ext in ("pdf", "svg"):
        return {"metadata": {"Creator": f"{SIGNATURE} (matplotlib {matplotlib.__version__})"}}
    return {"pil_kwargs": {"comment": SIGNATURE.encode()}}  # jpg: a JPEG comment


def save_figure(fig, path: str | os.PathLike, dpi: int | None = None) -> None:
    """Save ``fig`` atomically (format from the extension: png, pdf, svg, jpg) in its style, and close it.

    The paper style keeps the figure's size (3.4 in wide at 300 dpi: 1020 pixels); the screen
    style crops to the drawing.
    """
    path = os.fspath(path)
    st = style_of(fig)
    try:
        ext = check_figure_path(path)
        with plt.rc_context(st.rc), atomic_path(path, suffix="." + ext) as tmp:
            fig.savefig(tmp, dpi=dpi or st.dpi, bbox_inches="tight" if st.tight else None, format=ext,
                        **_signature(ext))
    finally:
        plt.close(fig)


def finish(fig, path=None):
    """Plain tick labels, legends placed off the data; saved when ``path`` is given.  Returns ``fig``."""
    with plt.rc_context(style_of(fig).rc):
        plain_ticks(fig)
        settle_legends(fig)
    if path is not None:
        save_figure(fig, path)
    return fig


# ---------------------------------------------------------------------- plain ticks
def plain_number(x: float, counts: bool = False) -> str:
    """A tick label: 2, 0.5, 300, 1K, 10B (no powers of ten)."""
    if not math.isfinite(x):
        return ""
    ax = abs(x)
    if ax >= 1e15:  # beyond T (FLOPs): 1e20
        return f"{x:.0e}".replace("e+", "e")
    if ax >= 1000 and (counts or ax >= 1e4):
        return human(x, 3)
    if ax >= 0.01 or ax == 0:
        return f"{x:.4g}"
    return f"{x:.1g}"


class PlainLogFormatter(mticker.LogFormatter):
    """Log-axis labels as plain numbers: decades, and 2 and 5 (or every integer multiple) in between
    when the axis spans few decades."""

    def __init__(self, base: float = 10.0, counts: bool = False):
        super().__init__(base=base, labelOnlyBase=False)
        self.counts = counts

    #: label sets tried, richest last: the richest whose labels keep a label's width apart is used
    SUBLABELS = ({1}, {1, 3}, {1, 2, 5}, {1, 2, 3, 5}, set(range(1, 10)))

    def set_locs(self, locs=None):
        super().set_locs(locs)
        vmin, vmax = self.axis.get_view_interval() if self.axis is not None else (1, 10)
        if vmin <= 0 or vmax <= 0 or self._base != 10:
            return
        vmin, vmax = min(vmin, vmax), max(vmin, vmax)
        try:
            ax = self.axis.axes
            box = ax.get_window_extent()
            dpi = ax.get_figure(root=True).dpi
            vertical = self.axis is ax.yaxis
            length = (box.height if vertical else box.width) / dpi
        except Exception:  # noqa: BLE001 - not placed yet: a usual size
            vertical, length = False, 4.0
        size = plt.rcParams["xtick.labelsize"]
        size = size if isinstance(size, (int, float)) else 8.0
        gap = (3.0 if vertical else 5.0) * 0.6 * size / 72  # inches between labels: one label's height / width
        inch_per_dec = length / max(math.log10(vmax / vmin), 1e-9)
        best = {1}
        for subs in self.SUBLABELS:
            pos = [math.log10(c) + k for k in range(math.floor(math.log10(vmin)), math.ceil(math.log10(vmax)) + 1)
                   for c in sorted(subs)]
            pos = [p for p in pos if math.log10(vmin) - 1e-9 <= p <= math.log10(vmax) + 1e-9]
            if len(pos) < 2 or min(np.diff(pos)) * inch_per_dec >= gap:
                best = subs
            else:
                break
        self._sublabels = best

    def _num_to_string(self, x, vmin, vmax):
        return plain_number(x, self.counts)


def _is_counts(label: str) -> bool:
    return bool(re.search(r"\b(tokens|parameters|FLOPs)\b|\bN\b|\bD\b", label or ""))


def plain_ticks(fig) -> None:
    """Every log axis of ``fig`` labelled with plain numbers (:class:`PlainLogFormatter`)."""
    for ax in fig.axes:
        for axis, label in ((ax.xaxis, ax.get_xlabel()), (ax.yaxis, ax.get_ylabel())):
            if axis.get_scale() != "log":
                continue
            base = getattr(axis.get_transform(), "base", 10.0)
            k = "xtick" if axis is ax.xaxis else "ytick"
            # minor labels level with the major ones (minor ticks are shorter)
            axis.set_tick_params(which="minor", pad=plt.rcParams[f"{k}.major.pad"] + plt.rcParams[f"{k}.major.size"]
                                 - plt.rcParams[f"{k}.minor.size"])
            if base == 10:
                counts = _is_counts(label) or getattr(axis, "_sl_counts", False)
                axis.set_major_formatter(PlainLogFormatter(10.0, counts))
                axis.set_minor_formatter(PlainLogFormatter(10.0, counts))
            else:
                axis.set_major_locator(mticker.LogLocator(base=base))
                axis.set_major_formatter(mticker.FuncFormatter(lambda v, _: plain_number(v)))
                axis.set_minor_formatter(mticker.NullFormatter())


# --------------------------------------------------------------------------- legends
def legend(ax, handles=None, labels=None, **kw):
    """An axes legend placed, when the figure is finished, in a corner free of data (else outside, right)."""
    kw.setdefault("frameon", False)
    if handles is None:
        leg = ax.legend(loc="upper left", **kw)
    else:
        leg = ax.legend(handles, labels, loc="upper left", **kw)
    leg._sl_auto = True
    return leg


def data_points(ax, lines: bool = True) -> np.ndarray:
    """Display coordinates of what is drawn in ``ax``: scatter points, marker and line vertices
    (lines densified), error bars."""
    pts = []
    for c in ax.collections:
        if isinstance(c, PathCollection):
            offs = np.asarray(c.get_offsets(), float).reshape(-1, 2)
            if len(offs):
                pts.append(c.get_offset_transform().transform(offs))
        elif isinstance(c, LineCollection) and lines:
            for seg in c.get_segments():
                seg = np.asarray(seg, float)
                if len(seg):
                    pts.append(_densify(c.get_transform().transform(seg)))
    for ln in ax.lines:
        xy = np.asarray(ln.get_xydata(), float).reshape(-1, 2)
        if not len(xy):
            continue
        d = ln.get_transform().transform(xy)
        has_line = ln.get_linestyle() not in ("None", "none", "", " ")
        if has_line and lines:
            d = _densify(d)
        elif not has_line and ln.get_marker() in ("None", "none", "", " ", None):
            continue
        pts.append(d)
    if not pts:
        return np.zeros((0, 2))
    out = np.concatenate(pts)
    return out[np.isfinite(out).all(axis=1)]


def _densify(d: np.ndarray, step: float = 4.0) -> np.ndarray:
    if len(d) < 2:
        return d
    out = [d[:1]]
    for a, b in zip(d[:-1], d[1:]):
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        n = int(min(200, max(1, np.hypot(*(b - a)) // step)))
        t = np.linspace(0, 1, n + 1)[1:, None]
        out.append(a + t * (b - a))
    return np.concatenate(out)


_CORNERS = ("upper left", "upper right", "lower left", "lower right", "upper center", "lower center",
            "center left", "center right")


def settle_legends(fig) -> None:
    """Move each :func:`legend` to the first corner where it covers no drawn point; outside (right) if none."""
    auto = [(ax, ax.get_legend()) for ax in fig.axes if getattr(ax.get_legend(), "_sl_auto", False)]
    if not auto:
        return
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for ax, leg in auto:
        pts = data_points(ax)
        box = ax.get_window_extent(renderer)
        pts = pts[(pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)]
        for loc in _CORNERS:
            leg.set_loc(loc)
            bb = leg.get_window_extent(renderer).expanded(1.04, 1.08)
            inside = ((pts[:, 0] >= bb.x0) & (pts[:, 0] <= bb.x1) & (pts[:, 1] >= bb.y0) & (pts[:, 1] <= bb.y1))
            if not inside.any():
                break
        else:
            leg.set_loc("upper left")
            leg.set_bbox_to_anchor((1.02, 1.0), transform=ax.transAxes)


def legend_boxes(fig, renderer=None):
    """Every legend of ``fig`` (axes, figure and sub-figure legends) with its display bounding box."""
    renderer = renderer or fig.canvas.get_renderer()
    out = []

    def walk(f):
        for leg in getattr(f, "legends", []):
            out.append((leg, leg.get_window_extent(renderer)))
        for sub in getattr(f, "subfigs", []):
            walk(sub)
    walk(fig)
    for ax in fig.axes:
        if ax.get_legend() is not None:
            out.append((ax.get_legend(), ax.get_legend().get_window_extent(renderer)))
    return out


# ------------------------------------------------------------------------------ units
def loss_unit(runs) -> str | None:
    """The unit a table declares for its loss: ``attrs["loss_unit"]``, else the single value of a
    ``loss_unit`` column (several values: all of them, joined); None when it declares none."""
    if runs is None:
        return None
    attrs = getattr(runs, "attrs", None) or {}
    if attrs.get("loss_unit"):
        return str(attrs["loss_unit"])
    cols = getattr(runs, "columns", ())
    if "loss_unit" in cols:
        vals = [str(v).strip() for v in pd.unique(pd.Series(runs["loss_unit"]).dropna()) if str(v).strip()]
        if vals:
            return " or ".join(vals)
    return None


def unit_of(law, runs=None) -> str:
    """The unit of the law's target for this table (empty for a fraction)."""
    if not law.target_unit:
        return ""
    return loss_unit(runs) or law.target_unit


def target_label(law, runs=None, what: str | None = None) -> str:
    """``what`` (default: the law's target in words) with its unit, for an axis label."""
    unit = unit_of(law, runs)
    what = what or law.target_name
    return f"{what} ({unit})" if unit else what


# -------------------------------------------------------------------- derived axes
def tokens(t) -> np.ndarray | None:
    """Training tokens of each run: D, or D_fp + D_qat."""
    if "D" in t.columns:
        return pd.to_numeric(t["D"], errors="coerce").to_numpy(float)
    if "D_fp" in t.columns and "D_qat" in t.columns:
        return (pd.to_numeric(t["D_fp"], errors="coerce") + pd.to_numeric(t["D_qat"], errors="coerce")).to_numpy(float)
    return None


def _col(t, c) -> np.ndarray:
    if c in t.columns:
        return pd.to_numeric(t[c], errors="coerce").to_numpy(float)
    if c in BITS_COLUMNS:
        return np.full(len(t), UNQUANTIZED_BITS)
    return np.full(len(t), np.nan)


def _set_tokens(t: pd.DataFrame, D) -> pd.DataFrame:
    t = t.copy()
    D = np.asarray(D, float)
    if "D_fp" in t.columns and "D_qat" in t.columns:
        tot = (t["D_fp"] + t["D_qat"]).to_numpy(float)
        frac = np.where(tot > 0, t["D_qat"].to_numpy(float) / np.where(tot > 0, tot, 1), 0.0)
        t["D_qat"], t["D_fp"] = frac * D, (1 - frac) * D
    if "D" in t.columns or not ("D_fp" in t.columns and "D_qat" in t.columns):
        t["D"] = D
    return t


def _frame(cols: Columns) -> pd.DataFrame:
    return pd.DataFrame({c: cols[c] for c in cols.columns})


@dataclass(frozen=True)
class Axis:
    """An axis a view may use: its label, scale, the values of runs, and runs set to given values."""

    label: Callable
    scale: str
    get: Callable
    put: Callable
    counts: bool = False


def _plain_axis(c, label, scale="linear", counts=False):
    def put(t, law, p, x):
        t = t.copy()
        t[c] = x
        return t
    return Axis(lambda law: label, scale, lambda t, law: _col(t, c), put, counts)


def _bits_get(t, law):
    return np.asarray(law.bits_of(as_columns(t)), float)


def _bits_put(t, law, p, x):
    return _frame(law.with_bits(p, as_columns(t), x))


def _wbytes(t, law):
    return np.asarray(law.weight_bits_of(as_columns(t)), float) / 8.0


def _s_get(t, law):
    D = tokens(t)
    return D / (_col(t, "N") * _wbytes(t, law)) if D is not None else np.full(len(t), np.nan)


def _s_put(t, law, p, x):
    return _set_tokens(t, np.asarray(x, float) * _col(t, "N") * _wbytes(t, law))


def _tpp_get(t, law):
    D = tokens(t)
    return D / _col(t, "N") if D is not None else np.full(len(t), np.nan)


def _frac_get(t, law):
    tot = _col(t, "D_fp") + _col(t, "D_qat")
    return _col(t, "D_qat") / tot


def _frac_put(t, law, p, x):
    t = t.copy()
    tot = (t["D_fp"] + t["D_qat"]).to_numpy(float)
    x = np.asarray(x, float)
    t["D_qat"], t["D_fp"] = x * tot, (1 - x) * tot
    return t


AXES: dict[str, Axis] = {
    "D": Axis(lambda law: "tokens D", "log", lambda t, law: tokens(t) if tokens(t) is not None
              else np.full(len(t), np.nan), lambda t, law, p, x: _set_tokens(t, x), True),
    "N": _plain_axis("N", "parameters N", "log", True),
    "bits": Axis(lambda law: law.bits_label, "linear", _bits_get, _bits_put),
    "tokens_per_param": Axis(lambda law: "tokens per parameter D / N", "log", _tpp_get,
                             lambda t, law, p, x: _set_tokens(t, np.asarray(x, float) * _col(t, "N"))),
    "S": Axis(lambda law: "tokens per parameter byte S = D / (N bits / 8)", "log", _s_get, _s_put),
    "qat_fraction": Axis(lambda law: "QAT fraction D_qat / (D_fp + D_qat)", "linear", _frac_get, _frac_put),
    "group_size": _plain_axis("group_size", "group size G (elements per scale)", "log2"),
    "exp_bits": _plain_axis("exp_bits", "exponent bits E"),
    "man_bits": _plain_axis("man_bits", "mantissa bits M"),
    "ptq_bits": _plain_axis("ptq_bits", "post-training quantization bits"),
    "w_bits": _plain_axis("w_bits", "weight bits"),
    "a_bits": _plain_axis("a_bits", "activation bits"),
    "kv_bits": _plain_axis("kv_bits", "key/value bits"),
    "D_fp": _plain_axis("D_fp", "full-precision tokens D_fp", "log", True),
    "D_qat": _plain_axis("D_qat", "QAT tokens D_qat", "log", True),
}

#: short names of columns and axes, for legend entries and panel titles
NAMES = {"N": "N", "D": "D", "ptq_bits": "PTQ bits", "w_bits": "weight bits", "a_bits": "activation bits",
         "kv_bits": "KV bits", "group_size": "group size", "bits": "bits", "exp_bits": "E", "man_bits": "M",
         "tokens_per_param": "D/N", "S": "S", "qat_fraction": "QAT fraction"}
_PARTS = {"w_bits": "weights", "a_bits": "activations", "kv_bits": "KV cache", "ptq_bits": "post-training"}


def axis_of(name: str) -> Axis:
    return AXES.get(name) or _plain_axis(name, name)


def _value_label(key: str, v: float) -> str:
    ax = axis_of(key)
    text = human(v, 3) if ax.counts or key in ("S", "tokens_per_param") and abs(v) >= 1e4 else f"{v:.4g}"
    return f"{NAMES.get(key, key)} = {text}"


# ------------------------------------------------------------------------ the blocks
@dataclass
class Series:
    label: str
    color: object
    x: np.ndarray = None
    y: np.ndarray = None
    fx: np.ndarray = None
    fy: np.ndarray = None
    px: np.ndarray = None        # fitted value at each run (fitted_points)
    py: np.ndarray = None
    mark: tuple | None = None    # (x, y) of the fitted curve's minimum


@dataclass
class Panel:
    title: str
    series: list = field(default_factory=list)


@dataclass
class Block:
    title: str
    panels: list
    xlabel: str = ""
    ylabel: str = ""
    xscale: str = "linear"
    yscale: str = "linear"
    counts: bool = False
    extra: list = field(default_factory=list)       # (label, handle) legend entries beyond the series
    draw: Callable | None = None                    # a special kind: draw(ax) -> [(label, handle)]
    colorbar: bool = False
    integer_x: bool = False                         # whole-number ticks (bits)
    zero: bool = False                              # a line at y = 0 (a penalty), always in view

    @property
    def n(self) -> int:
        return max(1, len(self.panels))


class _Ctx:
    """What every view of one fit figure needs: the law, the scored rows, observed and fitted values."""

    def __init__(self, result, runs):
        from scalinglaws.trust.validate import predict_runs
        self.result = result
        self.law = result.law_obj
        self.params = dict(result.params)
        table, obs, fit = predict_runs(result, runs)
        self.table = table.reset_index(drop=True)
        self.table.attrs.update(getattr(runs, "attrs", {}) or {})
        self.obs, self.fit = np.asarray(obs, float), np.asarray(fit, float)
        self.runs = runs
        self._base = None

    @property
    def base(self):
        """The law's prediction for the same rows in their unquantized form (None where it cannot say)."""
        if self._base is None:
            try:
                self._base = np.asarray(self.law.predict(self.params, self.law.unquantized(as_columns(self.table))),
                                        float)
            except ScalingLawsError:
                self._base = np.full(len(self.table), np.nan)
        return self._base

    def predict(self, t: pd.DataFrame) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(self.law.predict(self.params, t), float)

    def penalty_of(self, t: pd.DataFrame) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.predict(t) - np.asarray(self.law.predict(self.params, self.law.unquantized(as_columns(t))),
                                                float)

    def quantized(self) -> np.ndarray:
        bits = np.asarray(self.law.bits_of(as_columns(self.table)), float)
        return ~(bits >= UNQUANTIZED_BITS)   # NaN (a law without precision columns) counts as quantized


def _pick(values: np.ndarray, how) -> float:
    v = np.unique(values[np.isfinite(values)])
    if not v.size:
        return float("nan")
    if isinstance(how, str):
        if how == "min":
            return float(v[0])
        if how == "max":
            return float(v[-1])
        if how == "mid":
            return float(v[(v.size - 1) // 2])
        raise ValueError(f"a fixed value is a number or 'min', 'mid', 'max', not {how!r}")
    how = float(how)
    d = np.abs(np.log(v / how)) if how > 0 and (v > 0).all() else np.abs(v - how)
    return float(v[int(np.argmin(d))])


def _close(a: np.ndarray, b: float) -> np.ndarray:
    return np.isfinite(a) & (np.abs(a - b) <= 1e-6 * max(abs(b), 1e-300))


def _levels(ctx, key, mask, max_n) -> list[tuple[str, np.ndarray, float | None]]:
    """(label, rows, value) for each value of ``key`` among the rows in ``mask`` (binned when there are many)."""
    t = ctx.table
    if key is None:
        return [("", mask.copy(), None)]
    if key == "precision":
        recs = t.to_dict(orient="records")
        keys = np.array([format_key(r) for r in recs], dtype=object)
        order = {}
        for r, k, m in zip(recs, keys, mask):
            if m and k not in order:
                order[k] = (-_num(r.get("w_bits")), -_num(r.get("a_bits")), _num(r.get("group_size"), math.inf))
        ks = sorted(order, key=lambda k: order[k])
        return [(k, mask & (keys == k), None) for k in ks]
    if key == "quantized":
        have = [c for c in BITS_COLUMNS if c in ctx.law.columns or c in ctx.law.optional_columns]
        low = [(_col(t, c) < UNQUANTIZED_BITS) for c in have]
        keys = np.array([", ".join(_PARTS[c] for c, lo in zip(have, row) if lo) or "none"
                         for row in zip(*low)] if low else ["none"] * len(t), dtype=object)
        ks = list(dict.fromkeys(k for k, m in zip(keys, mask) if m))
        ks.sort(key=lambda k: (k.count(","), [_PARTS[c] for c in have].index(k.split(", ")[0])
                               if k.split(", ")[0] in _PARTS.values() else 9))
        return [(f"quantized: {k}", mask & (keys == k), None) for k in ks]
    v = axis_of(key).get(t, ctx.law)
    vals = np.unique(np.round(v[mask & np.isfinite(v)], 9))
    if vals.size <= max_n:
        return [(_value_label(key, x), mask & _close(v, x), float(x)) for x in vals]
    pos = (vals > 0).all()
    with np.errstate(all="ignore"):
        lv = np.log(v) if pos else v
    edges = np.linspace(np.nanmin(lv[mask]), np.nanmax(lv[mask]) + 1e-9, max_n + 1)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = mask & (lv >= a) & (lv < b)
        if m.any():
            mid = float(np.exp(lv[m].mean()) if pos else lv[m].mean())
            out.append((_value_label(key, mid).replace(" = ", " ~ "), m, mid))
    return out


def _num(v, default=16.0) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(f) else f


_COUNT_COLUMNS = ("N", "D", "D_fp", "D_qat")
#: at most this many curves (colours) in a panel and panels in a block
MAX_CURVES, MAX_PANELS = 8, 8


def _representative(t: pd.DataFrame) -> dict:
    """One run standing for ``t``: each numeric column's single value, or its (geometric) middle."""
    rep = {}
    for c in t.columns:
        s = t[c]
        if s.dtype.kind not in "fiub":
            continue
        v = s.to_numpy(float)
        f = v[np.isfinite(v)]
        if not f.size:
            rep[c] = np.nan
        elif np.unique(f).size == 1:
            rep[c] = float(f[0])
        elif c in _COUNT_COLUMNS and (f > 0).all():
            rep[c] = float(np.exp(np.log(f).mean()))
        else:
            rep[c] = float(np.median(f))
    if "D_fp" in rep and "D_qat" in rep:  # the middle split of the middle total, not two separate middles
        tot = tokens(t)
        ok = np.isfinite(tot) & (tot > 0)
        if ok.any():
            T = float(np.exp(np.log(tot[ok]).mean()))
            f = float(np.median(t["D_qat"].to_numpy(float)[ok] / tot[ok]))
            rep["D_qat"], rep["D_fp"] = f * T, (1 - f) * T
    return rep


def palette(n: int) -> list:
    """``n`` colours from viridis (one: tab:blue), light enough at the end to read on white."""
    if n <= 1:
        return ["tab:blue"]
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.0, 0.85, n)]


def _span(x: np.ndarray, scale: str) -> tuple[float, float]:
    """The range of ``x``, a little wider (log axes: 15%; linear: 3% of the range)."""
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    if scale in ("log", "log2") and lo > 0:
        return lo / 1.15, hi * 1.15
    pad = 0.03 * (hi - lo)
    return lo - pad, hi + pad


def _grid(lo, hi, scale, integer, n=100):
    if integer:
        return np.arange(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1, dtype=float)
    if scale in ("log", "log2") and lo > 0:
        return np.geomspace(lo, hi, n)
    return np.linspace(lo, hi, n)


def _fixed_text(chosen: dict) -> str:
    return ", ".join(_value_label(k, v) for k, v in chosen.items())


def _curves(ctx: _Ctx, view) -> Block | None:
    law = ctx.law
    t = ctx.table
    ax = axis_of(view.x)
    X = np.asarray(ax.get(t, law), float)
    if view.y == "penalty":
        base = ctx.base
        y_obs, y_fit = ctx.obs - base, ctx.fit - base
        keep = ctx.quantized() & np.isfinite(base) & (np.abs(y_fit) > 1e-12 * np.abs(ctx.fit))
    else:
        y_obs, y_fit = ctx.obs, ctx.fit
        keep = ctx.quantized() if view.quantized_only else np.ones(len(t), bool)
    keep &= np.isfinite(X) & np.isfinite(y_obs)
    if ax.scale != "linear":
        keep &= X > 0
    if view.yscale == "log":
        keep &= y_obs > 0
    chosen = {}
    for key, how in view.fixed.items():
        v = np.asarray(axis_of(key).get(t, law), float)
        val = _pick(v[keep], how)
        if not math.isfinite(val):
            return None
        chosen[key] = val
        keep &= _close(v, val)
    if not keep.any():
        return None
    notes = []
    curves = _levels(ctx, view.curves, keep, 6)
    if len(curves) > MAX_CURVES:  # categories (formats) cannot be binned: the first ones, said in the title
        notes.append(f"the first {MAX_CURVES} of {len(curves)} {view.curves} values")
        curves = curves[:MAX_CURVES]
    keep &= np.any([m for _, m, _ in curves], axis=0)
    colors = palette(len(curves))
    panels = []
    block_range = _span(X[keep], ax.scale)
    plevels = _levels(ctx, view.panels, keep, MAX_PANELS)
    if len(plevels) > MAX_PANELS:
        notes.append(f"the first {MAX_PANELS} of {len(plevels)} panels")
        plevels = plevels[:MAX_PANELS]
    for ptitle, pmask, _ in plevels:
        panel = Panel(ptitle)
        for (clabel, cmask, _), color in zip(curves, colors):
            rows = pmask & cmask
            if not rows.any():
                continue
            s = Series(clabel or "runs", color, X[rows], y_obs[rows])
            if view.fitted_points:
                s.px, s.py = X[rows], y_fit[rows]
            rep = _representative(t[rows])
            # a curve spans its own runs; one run alone: the block's range
            lo, hi = _span(X[rows], ax.scale) if np.unique(X[rows]).size > 1 else block_range
            if view.x == "qat_fraction":
                lo, hi = max(0.01, lo), min(0.99, hi)
            g = _grid(lo, hi, ax.scale, view.grid == "integer")
            curve = pd.DataFrame({k: np.full(g.size, v) for k, v in rep.items()})
            try:
                for k, v in chosen.items():
                    curve = axis_of(k).put(curve, law, ctx.params, np.full(g.size, v))
                curve = ax.put(curve, law, ctx.params, g)
                fy = ctx.penalty_of(curve) if view.y == "penalty" else ctx.predict(curve)
            except ScalingLawsError:
                fy = np.full(g.size, np.nan)
            ok = np.isfinite(fy) & ((fy > 0) if view.yscale == "log" else True)
            s.fx, s.fy = g[ok], fy[ok]
            if view.mark == "min" and ok.any():
                k = int(np.argmin(s.fy))
                s.mark = (s.fx[k], s.fy[k])
            panel.series.append(s)
        if panel.series:
            panels.append(panel)
    if not panels:
        return None
    what = ("loss added by quantization" if law.predicts == "loss" else law.target_name) \
        if view.y == "penalty" else law.target_name
    title = view.title + (f" (at {_fixed_text(chosen)})" if chosen else "") + \
        (f" ({'; '.join(notes)})" if notes else "")
    extra = [("data", Line2D([], [], ls="none", marker="o", color="0.45", ms=4)),
             ("fitted law", Line2D([], [], color="0.45"))]
    if len(curves) > 6:  # room for the curves' own entries: at most 10 in a legend
        extra = []
    if view.fitted_points:
        extra.append(("fitted, each run", Line2D([], [], ls="none", marker="x", color="0.45", ms=4)))
    if view.mark == "min":
        extra.append(("fitted optimum", Line2D([], [], ls="none", marker="D", color="0.45", ms=4,
                                               markeredgecolor="k")))
    return Block(title, panels, ax.label(law), target_label(law, ctx.runs, what), ax.scale, view.yscale, ax.counts,
                 extra, integer_x=view.x in _INTEGER_AXES, zero=view.y == "penalty")


_INTEGER_AXES = ("bits", "ptq_bits", "w_bits", "a_bits", "kv_bits", "exp_bits", "man_bits")


def _isoloss(ctx: _Ctx, view) -> Block | None:
    if not isoloss_applies(ctx.law):
        return None
    runs = ctx.table

    def draw(ax):
        return draw_isoloss(ax, ctx.result, runs, unit=unit_of(ctx.law, ctx.runs))
    return Block(view.title, [Panel("")], "parameters N", "tokens D", "log", "log", True, draw=draw)


def _heatmap(ctx: _Ctx, view) -> Block | None:
    law, t = ctx.law, ctx.table
    chosen = {}
    for key, how in view.fixed.items():
        v = np.asarray(axis_of(key).get(t, law), float)
        val = _pick(v, how) if not isinstance(how, (int, float)) or not np.isfinite(v).any() else float(how)
        if isinstance(how, str) and not math.isfinite(val):
            return None
        chosen[key] = val
    rep = _representative(t)
    rep.update(chosen)
    E, M = np.meshgrid(np.asarray(view.xs, float), np.asarray(view.ys, float))
    grid = pd.DataFrame({k: np.full(E.size, v) for k, v in rep.items() if k in t.columns or k in chosen})
    grid = axis_of(view.x).put(grid, law, ctx.params, E.ravel())
    grid = axis_of(view.y_axis).put(grid, law, ctx.params, M.ravel())
    try:
        pen = ctx.penalty_of(grid).reshape(E.shape)
        width = np.asarray(law.bits_of(as_columns(grid)), float).reshape(E.shape)
    except ScalingLawsError:
        return None
    on = np.isclose(width, view.width) & np.isfinite(pen) & (pen > 0)
    if not on.any() or not np.isfinite(pen).any():
        return None
    best = np.unravel_index(np.argmin(np.where(on, pen, np.inf)), pen.shape)
    rel = pen / pen[best]
    at = ", ".join(_value_label(k, v) for k, v in chosen.items())

    def draw(ax):
        ok = np.isfinite(rel) & (rel > 0)
        vmax = min(np.nanmax(rel[ok]), 1e3)
        mesh = ax.pcolormesh(_edges(view.xs), _edges(view.ys), np.where(ok, rel, np.nan), cmap="magma_r",
                             norm=LogNorm(vmin=max(np.nanmin(rel[ok]), 1e-2), vmax=vmax), shading="flat")
        cb = ax.figure.colorbar(mesh, ax=ax, pad=0.02, fraction=0.06)
        cb.set_label(f"loss added / best {view.width:g}-bit's (ratio)")
        for (i, j) in zip(*np.nonzero(on)):
            x, y = view.xs[j], view.ys[i]
            ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, lw=lw(ax, 1.2), ec="tab:cyan"))
            if (i, j) == best:
                continue
            ax.text(x, y, f"{rel[i, j]:.2f}" if rel[i, j] < 9.995 else f"{rel[i, j]:.0f}", ha="center",
                    va="center", fontsize="xx-small",
                    color="k" if rel[i, j] < 3 else "w")
        bx, by = view.xs[best[1]], view.ys[best[0]]
        ax.plot([bx], [by], ls="none", marker="*", ms=13 * style_of(ax).ms ** 0.5, mfc="none", mec="tab:cyan",
                mew=lw(ax, 1.3))
        ax.set_aspect("equal")
        ax.set_xticks(list(view.xs))
        ax.set_yticks(list(view.ys))
        name = f"E{bx:g}M{by:g}"
        return [(f"best {view.width:g}-bit format: {name} (star; outlined: all {view.width:g}-bit formats, "
                 f"numbers: loss added relative to it)", Line2D([], [], ls="none", marker="*", mfc="none",
                                                                  mec="tab:cyan", ms=9))]
    title = view.title + (f" (at {at})" if at else "")
    return Block(title, [Panel("")], axis_of(view.x).label(law), axis_of(view.y_axis).label(law), draw=draw,
                 colorbar=True)


def _edges(vals) -> np.ndarray:
    v = np.asarray(vals, float)
    return np.concatenate([[v[0] - 0.5], (v[:-1] + v[1:]) / 2, [v[-1] + 0.5]])


def _params(ctx: _Ctx, view) -> Block | None:
    pat = re.compile(view.match)
    names = [k for k in ctx.params if pat.match(k)]
    if not names:
        return None
    labels = [pat.match(k).group(1) if pat.groups else k for k in names]
    vals = np.array([ctx.params[k] for k in names], float)
    iv = ctx.result.intervals() or {}
    level = float((ctx.result.bootstrap or {}).get("level", 0.95)) if iv else None

    def draw(ax):
        x = np.arange(len(names))
        out = []
        if iv and all(k in iv for k in names):
            lo = np.array([iv[k][0] for k in names], float)
            hi = np.array([iv[k][1] for k in names], float)
            ax.errorbar(x, vals, yerr=[vals - lo, hi - vals], ls="none", marker="o", color="tab:blue", capsize=3,
                        ms=5 * style_of(ax).ms ** 0.5, elinewidth=lw(ax, 1.0))
            out.append((f"fitted, {level:.0%} bootstrap interval",
                        Line2D([], [], ls="none", marker="o", color="tab:blue")))
        else:
            ax.plot(x, vals, ls="none", marker="o", color="tab:blue", ms=5 * style_of(ax).ms ** 0.5)
            out.append(("fitted (no bootstrap: no intervals)", Line2D([], [], ls="none", marker="o",
                                                                      color="tab:blue")))
        if view.reference is not None:
            ax.axhline(view.reference, color="0.5", lw=0.8, ls="--")
            out.append((view.reference_label or f"reference {view.reference:g}",
                        Line2D([], [], color="0.5", lw=0.8, ls="--")))
        ax.set_xticks(x, labels, rotation=30 if max(map(len, labels)) > 5 else 0, ha="right"
                      if max(map(len, labels)) > 5 else "center")
        ax.set_xlim(-0.6, len(names) - 0.4)
        top = max(float(np.nanmax(vals)), view.reference or 0)
        if iv:
            top = max(top, max(iv[k][1] for k in names if k in iv))
        ax.set_ylim(0, top * 1.08)
        return out
    return Block(view.title, [Panel("")], "format", view.label or "value", draw=draw)


def _along(ctx: _Ctx, view) -> Block | None:
    law = ctx.law
    if law.axis is None:
        return None
    var, label = law.axis
    try:
        x = np.asarray(law.design(ctx.table)[var], float)
    except (ScalingLawsError, KeyError):
        return None
    levels = _levels(ctx, view.curves, np.ones(len(ctx.table), bool), 6)
    colors = palette(len(levels))

    def draw(ax):
        for (lab, m, _), c in zip(levels, colors):
            ax.scatter(x[m], ctx.obs[m], s=ms(ax, 22), color=c, label=lab or "observed", zorder=3)
        g = np.geomspace(max(x.min() / 2, 1.5), x.max() * 2, 200)
        ax.plot(g, law.along_axis(ctx.params, g), color="tab:red", lw=lw(ax, 1.5))
        ax.set_xscale("log")
        if not law.target_unit:
            ax.set_ylim(0, 1.02)
        handles = [(lab or "observed", Line2D([], [], ls="none", marker="o", color=c)) for (lab, _, _), c
                   in zip(levels, colors)]
        return handles + [("fitted law", Line2D([], [], color="tab:red", lw=1.5))]
    return Block(view.title, [Panel("")], label, target_label(law, ctx.runs), "log", draw=draw)


_KINDS = {"curves": _curves, "isoloss": _isoloss, "heatmap": _heatmap, "params": _params, "along": _along}


def default_views(law) -> tuple:
    """The views of a law that declares none: its target against D (or its first column), one curve per N."""
    from scalinglaws.laws.base import View
    cols = list(law.columns)
    if law.axis is not None:
        return (View("along", curves=None, title=law.target_name),)
    x = "D" if "D" in cols or {"D_fp", "D_qat"} <= set(cols) else (cols[0] if cols else "N")
    return (View("curves", x=x, curves="N" if x != "N" and "N" in cols else None,
                 title=f"{law.target_name} against {axis_of(x).label(law)}"),)


def _parity_block(ctx: _Ctx) -> Block:
    def draw(ax):
        lo = float(np.nanmin([ctx.obs.min(), ctx.fit.min()]))
        hi = float(np.nanmax([ctx.obs.max(), ctx.fit.max()]))
        ax.scatter(ctx.obs, ctx.fit, s=ms(ax, 14), color="tab:blue", zorder=3)
        ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=0.8)
        return [("runs", Line2D([], [], ls="none", marker="o", color="tab:blue")),
                ("fitted = observed", Line2D([], [], color="0.5", ls="--", lw=0.8))]
    return Block("fitted against observed", [Panel("")], f"observed {target_label(ctx.law, ctx.runs)}",
                 f"fitted {target_label(ctx.law, ctx.runs)}", draw=draw)


# ------------------------------------------------------------------------------ layout
def _shape(block: Block, st: Style) -> tuple[int, int]:
    """(columns, rows) of a block's panels: at most ``max_cols`` side by side, rows balanced (5 -> 3 + 2)."""
    nrows = math.ceil(block.n / st.max_cols)
    return math.ceil(block.n / nrows), nrows


def _rows(blocks, st) -> list[list[Block]]:
    rows, cur, used = [], [], 0
    for b in blocks:
        cols, nrows = _shape(b, st)
        if cur and (used + cols > min(3, st.max_cols) or nrows > 1 or any(_shape(c, st)[1] > 1 for c in cur)):
            rows.append(cur)
            cur, used = [], 0
        cur.append(b)
        used += cols
    if cur:
        rows.append(cur)
    return rows


def _draw_block(sf, block: Block, st: Style) -> None:
    cols, nrows = _shape(block, st)
    axs = sf.subplots(nrows, cols, squeeze=False, sharex=block.draw is None and block.n > 1)
    flat = list(axs.ravel())
    handles: dict[str, object] = {}
    for i, ax in enumerate(flat):
        if i >= block.n:
            ax.set_visible(False)
            continue
        panel = block.panels[i]
        if block.draw is not None:
            for lab, h in block.draw(ax):
                handles.setdefault(lab, h)
        else:
            for s in panel.series:
                ax.scatter(s.x, s.y, s=16 * st.ms, color=s.color, alpha=0.85, zorder=3, edgecolors="none")
                if s.px is not None:
                    ax.scatter(s.px, s.py, s=18 * st.ms, marker="x", color=s.color, lw=0.9 * st.lw, zorder=4)
                if s.fx is not None and s.fx.size:
                    ax.plot(s.fx, s.fy, color=s.color, lw=1.3 * st.lw)
                if s.mark is not None:
                    ax.plot([s.mark[0]], [s.mark[1]], ls="none", marker="D", ms=5 * st.ms ** 0.5, color=s.color,
                            mec="k", mew=0.6 * st.lw, zorder=5)
                handles.setdefault(s.label, Line2D([], [], color=s.color, marker="o", ms=4 * st.ms ** 0.5,
                                                   lw=1.3 * st.lw))
            if block.xscale == "log2":
                ax.set_xscale("log", base=2)
            else:
                ax.set_xscale(block.xscale)
            ax.set_yscale(block.yscale)
            if block.counts:
                ax.xaxis._sl_counts = True
            _focus(ax, panel, block)
            if block.zero:
                ax.axhline(0, color="0.6", lw=0.6 * st.lw, zorder=1)
        if panel.title:
            ax.set_title(panel.title)
        row, col = divmod(i, cols)
        last_row = row == nrows - 1 or i + cols >= block.n
        if last_row:
            ax.set_xlabel(block.xlabel)
            ax.xaxis.set_tick_params(labelbottom=True)
        if block.draw is None and block.integer_x:
            ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        if col == 0 or block.draw is not None:
            ax.set_ylabel(_wrap_label(block.ylabel, st))
    if block.draw is None:
        for lab, h in block.extra:
            handles.setdefault(lab, h)
    if block.draw is None and [k for k in handles if k == "runs"] and len(block.panels[0].series) == 1:
        handles.pop("runs")  # one unnamed series: "data" and "fitted law" say it all
    if handles:
        labels = list(handles)
        wrap = 22 if st.legend == "right" else 60
        text = ["\n".join(textwrap.wrap(lab, wrap)) or lab for lab in labels]
        if st.legend == "right":
            sf.legend(list(handles.values()), text, loc="outside right center", frameon=False)
        else:  # below: as many columns as fit the block's width
            width = st.width * cols / st.max_cols if st.width else cols * st.panel[0]
            size = plt.rcParams["legend.fontsize"]
            size = size if isinstance(size, (int, float)) else 6.0
            per_char = 0.55 * size / 72
            chars = max(12, int((width - 0.35) / per_char))
            text = ["\n".join(textwrap.wrap(lab, chars)) or lab for lab in labels]
            longest = max(len(line) for t_ in text for line in t_.split("\n"))
            ncol = max(1, min(len(labels), int(width // (0.4 + longest * per_char))))
            sf.legend(list(handles.values()), text, loc="outside lower center", frameon=False, ncol=ncol)
    if st.titles and block.title:
        chars = int(14 * (cols * st.panel[0] + (st.legend_width if st.legend == "right" else 0)))
        sf.suptitle("\n".join(textwrap.wrap(block.title, chars)), fontsize="medium")


def _wrap_label(label: str, st: Style) -> str:
    """A y label broken to fit beside one panel (paper style: short panels)."""
    size = plt.rcParams["axes.labelsize"]
    size = size if isinstance(size, (int, float)) else 7.0
    chars = int(st.panel[1] * 72 / (0.55 * size) * 0.95)
    return "\n".join(textwrap.wrap(label, chars)) if len(label) > chars else label


def _focus(ax, panel: Panel, block: Block) -> None:
    """y limits from the runs (observed, and the fitted curves over the runs' x range): a curve
    carried past the runs may leave the panel, the runs never do."""
    xs = np.concatenate([np.asarray(s.x, float) for s in panel.series])
    lo_x, hi_x = np.nanmin(xs), np.nanmax(xs)
    ys = [np.asarray(s.y, float) for s in panel.series]
    ys += [np.asarray(s.py, float) for s in panel.series if s.py is not None]
    for s in panel.series:
        if s.fx is not None and s.fx.size:
            m = (s.fx >= lo_x) & (s.fx <= hi_x)
            if not m.any():
                m = np.abs(s.fx - xs[0]) == np.abs(s.fx - xs[0]).min()
            ys.append(s.fy[m])
    y = np.concatenate(ys)
    y = y[np.isfinite(y) & ((y > 0) if block.yscale == "log" else True)]
    if not y.size:
        return
    lo, hi = float(y.min()), float(y.max())
    if block.yscale == "log":
        f = (hi / lo) ** 0.08 if hi > lo else 1.5
        ax.set_ylim(lo / f, hi * f)
        return
    if block.zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = 0.08 * (hi - lo) if hi > lo else 0.1 * abs(hi) + 1e-9
    ax.set_ylim(lo - pad, hi + pad)


def _fit_heights(fig, grid, subrows, heights, target: float, passes: int = 2) -> None:
    """Grow (or shrink) each row of blocks until its panels are about ``target`` inches tall: legends,
    titles and labels take what they need, the figure's height follows, its width stays."""
    extra = 0.55 if style_of(fig).titles else 0.0
    for _ in range(passes):
        fig.draw_without_rendering()
        changed = False
        for i, srow in enumerate(subrows):
            axes = [a for a in fig.axes if a.get_visible() and _in(a, srow) and a.get_label() != "<colorbar>"]
            if not axes:
                continue
            by_block: dict = {}
            for a in axes:
                by_block.setdefault(id(a.get_figure(root=False)), []).append(a.get_window_extent())
            need = max((target - min(bx.height for bx in boxes) / fig.dpi) * len({round(bx.y0) for bx in boxes})
                       for boxes in by_block.values())
            if abs(need) > 0.04:
                heights[i] = max(0.5, heights[i] + need)
                changed = True
        if not changed:
            return
        grid.set_height_ratios(heights)
        fig.set_size_inches(fig.get_figwidth(), sum(heights) + extra, forward=False)


def _in(ax, sub) -> bool:
    f = ax.get_figure(root=False)
    while f is not None:
        if f is sub:
            return True
        parent = getattr(f, "_parent", None)
        f = parent if parent is not f else None
    return False


def _figure_title(result, law) -> str:
    p = ", ".join(f"{k} = {v:.4g}" for k, v in result.params.items())
    return f"{law.name}: {law.formula_text}\nfitted: {p}"


def plot_fit(result, runs: pd.DataFrame, path: str | os.PathLike | None = None, title: str | None = None,
             style: str | Style | None = None):
    """The picture of a fit the law declares (its ``figure``), drawn on the runs it was fitted to.

    Each :class:`~scalinglaws.laws.base.View` is a block of small panels with its own legend
    (outside the panels); a view with nothing to draw on these runs is left out, and when none
    is left the figure is fitted against observed.  ``style`` is ``"screen"`` (default) or
    ``"paper"`` (3.4 in wide, serif, 300 dpi).  Returns the figure; saves it when ``path`` is
    given (format from the extension: png, pdf, svg, jpg).
    """
    st = get_style(style)
    if path is not None:
        check_figure_path(path)
    law = result.law_obj
    with plt.rc_context(st.rc):
        ctx = _Ctx(result, runs)
        blocks = []
        for view in (law.figure or default_views(law)):
            try:
                b = _KINDS[view.kind](ctx, view)
            except ScalingLawsError:
                b = None
            if b is not None:
                blocks.append(b)
        if not blocks:
            blocks = [_parity_block(ctx)]
        rows = _rows(blocks, st)
        pw, ph = st.panel
        widths = [sum(_shape(b, st)[0] * pw + (st.legend_width if st.legend == "right" else 0) + (0.6 if b.colorbar
                      else 0) for b in row) for row in rows]
        heights = [max(_shape(b, st)[1] for b in row) * ph + (0.45 if st.titles else 0)
                   + (0.42 if st.legend == "below" else 0) for row in rows]
        W = st.width or max(widths)
        H = sum(heights) + (0.55 if st.titles else 0)
        fig = plt.figure(figsize=(W, H), layout="constrained")
        fig._sl_style = st
        grid = fig.add_gridspec(len(rows), 1, height_ratios=heights)
        subrows = [fig.add_subfigure(grid[i, 0]) for i in range(len(rows))]
        for row, srow, width in zip(rows, subrows, widths):
            ratios = [_shape(b, st)[0] * pw + (st.legend_width if st.legend == "right" else 0)
                      + (0.6 if b.colorbar else 0) for b in row]
            filler = W - width if st.width is None and W - width > 0.3 else 0  # a narrow row keeps its width
            sfs = srow.subfigures(1, len(row) + bool(filler), width_ratios=ratios + ([filler] if filler else []),
                                  squeeze=False)[0]
            for b, sf in zip(row, sfs):
                _draw_block(sf, b, st)
        if st.titles or title:
            text = title or _figure_title(result, law)
            wrap = max(60, int(W * 14))
            fig.suptitle("\n".join(textwrap.fill(line, wrap) for line in text.split("\n")), fontsize="medium")
        plain_ticks(fig)
        if st.legend == "below":  # legends under the panels: the rows grow to keep the panels' height
            _fit_heights(fig, grid, subrows, heights, ph)
        finish(fig)
    if path is not None:
        save_figure(fig, path)
    return fig


# ------------------------------------------------------------------------- iso-loss
def _nd_table(law, N: np.ndarray, D: np.ndarray):
    """Runs at (N, D), unquantized (precision columns absent: 16 bits); None when the law needs more columns."""
    if not set(law.required_columns()) <= {"N", "D"}:
        return None
    return Columns({"N": np.asarray(N, float), "D": np.asarray(D, float)}, source="<grid>")


def isoloss_applies(law) -> bool:
    return law.predicts == "loss" and {"N", "D"} <= set(law.required_columns()) and \
        _nd_table(law, np.ones(1), np.ones(1)) is not None


def compute_frontier(result, flops: np.ndarray, n_range: tuple[float, float] = (1e5, 1e15),
                     points: int = 4001) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(N_opt, D_opt, loss)`` minimising the predicted loss along ``6 N D = C`` for each C.

    A fine log grid of N per budget (``points`` values), refined by a parabola through
    the best grid point and its neighbours.  Unquantized (16-bit) columns.
    """
    law = result.law_obj
    lnN = np.linspace(np.log(n_range[0]), np.log(n_range[1]), points)
    out = []
    for C in np.atleast_1d(flops):
        N = np.exp(lnN)
        t = _nd_table(law, N, C / (6 * N))
        if t is None:
            return None
        with np.errstate(all="ignore"):
            y = law.predict(result.params, t)
        y = np.where(np.isfinite(y), y, np.inf)
        k = int(np.argmin(y))
        k = min(max(k, 1), points - 2)
        y0, y1, y2 = y[k - 1], y[k], y[k + 1]
        h = lnN[1] - lnN[0]
        den = y0 - 2 * y1 + y2
        shift = 0.5 * h * (y0 - y2) / den if np.isfinite(den) and den > 0 else 0.0
        n = float(np.exp(lnN[k] + np.clip(shift, -h, h)))
        tt = _nd_table(law, np.array([n]), np.array([C / (6 * n)]))
        out.append((n, C / (6 * n), float(law.predict(result.params, tt)[0])))
    a = np.array(out)
    return a[:, 0], a[:, 1], a[:, 2]


def isoloss_range(runs, flops=None) -> tuple[float, float, float, float]:
    if runs is not None and len(runs) and {"N", "D"} <= set(runs.columns):
        n_lo, n_hi = runs["N"].min() / 10, runs["N"].max() * 100
        d_lo, d_hi = runs["D"].min() / 10, runs["D"].max() * 100
    else:
        n_lo, n_hi, d_lo, d_hi = 1e7, 1e12, 1e9, 1e14
    if flops is not None:
        n_hi = max(n_hi, 10 * np.sqrt(flops / 6 / 20))
        d_hi = max(d_hi, 10 * np.sqrt(flops / 6 * 20))
    return float(n_lo), float(n_hi), float(d_lo), float(d_hi)


def draw_isoloss(ax, result, runs=None, flops: float | None = None, unit: str = "",
                 box: tuple[float, float, float, float] | None = None) -> list[tuple[str, object]]:
    """Iso-loss contours of ``result`` in (N, D), iso-FLOP lines, the compute-optimal frontier and the runs,
    drawn in ``ax``; returns the legend entries (label, handle).  Raises ScalingLawsError when the law
    cannot predict there."""
    law = result.law_obj
    n_lo, n_hi, d_lo, d_hi = box or isoloss_range(runs, flops)
    N = np.geomspace(n_lo, n_hi, 160)
    D = np.geomspace(d_lo, d_hi, 160)
    NN, DD = np.meshgrid(N, D)
    t = _nd_table(law, NN.ravel(), DD.ravel())
    with np.errstate(all="ignore"):
        L = law.predict(result.params, t).reshape(NN.shape)
    finite = L[np.isfinite(L)]
    levels = np.unique(np.quantile(finite, np.linspace(0.03, 0.97, 11)))
    levels = np.unique(np.array([float(f"{v:.3g}") for v in levels]))
    colors = [plt.get_cmap("viridis")(v) for v in np.linspace(0.0, 0.8, len(levels))]
    cs = ax.contour(NN, DD, L, levels=levels, colors=colors, linewidths=lw(ax, 0.9))
    ax.clabel(cs, fontsize="x-small", fmt=lambda v: f"{v:.3g}", inline_spacing=2)
    out = []
    c_lo, c_hi = 6 * n_lo * d_lo, 6 * n_hi * d_hi
    for C in 10.0 ** np.arange(np.ceil(np.log10(c_lo)), np.floor(np.log10(c_hi)) + 1, 2):
        ax.plot(N, C / (6 * N), color="0.72", lw=lw(ax, 0.7), ls=":")
    out.append(("iso-FLOP lines C = 6ND (every 100x)", Line2D([], [], color="0.72", lw=0.7, ls=":")))
    Cs = np.geomspace(c_lo, c_hi, 60)
    fr = compute_frontier(result, Cs, (n_lo / 100, n_hi * 100))
    if fr is not None:
        ok = (fr[0] >= n_lo) & (fr[0] <= n_hi) & (fr[1] >= d_lo) & (fr[1] <= d_hi)
        ax.plot(fr[0][ok], fr[1][ok], color="tab:red", lw=lw(ax, 2))
        out.append(("compute-optimal frontier", Line2D([], [], color="tab:red", lw=2)))
    if runs is not None and len(runs) and {"N", "D"} <= set(runs.columns):
        ax.scatter(runs["N"], runs["D"], s=ms(ax, 9), color="k", alpha=0.6, zorder=3, edgecolors="none")
        out.append(("runs", Line2D([], [], ls="none", marker="o", color="k", alpha=0.6, ms=3)))
    if flops is not None:
        one = compute_frontier(result, np.array([flops]), (n_lo / 100, n_hi * 100))
        if one is not None:
            ax.scatter(one[0], one[1], marker="*", s=ms(ax, 160), color="tab:red", edgecolor="k", zorder=5)
            out.append((f"optimum at C = {flops:.3g} FLOPs: N = {human(one[0][0])}, D = {human(one[1][0])}",
                        Line2D([], [], ls="none", marker="*", ms=10, color="tab:red", mec="k")))
    out.append((f"contours: predicted loss{f' ({unit})' if unit else ''}", Line2D([], [], color="tab:green",
                                                                             lw=0.9)))
    ax.set(xscale="log", yscale="log", xlim=(n_lo, n_hi), ylim=(d_lo, d_hi), xlabel="parameters N",
           ylabel="tokens D")
    return out


__all__ = ["plot_fit", "save_figure", "finish", "new_figure", "legend", "plain_ticks", "settle_legends",
           "legend_boxes", "data_points", "loss_unit", "target_label", "unit_of", "get_style", "STYLES", "Style",
           "PAPER_WIDTH", "PAPER_DPI", "compute_frontier", "draw_isoloss", "isoloss_applies", "check_figure_path",
           "plain_number", "default_views", "AXES", "palette", "tokens"]

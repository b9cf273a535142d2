"""Figures that show how far to trust a fit.  Matplotlib, no screen needed.

Every function takes a :class:`~scalinglaws.fitting.api.FitResult` (and the runs), returns the
matplotlib figure, and, given ``path``, also writes it atomically
(:func:`scalinglaws.viz.plotting.save_figure`, format from the extension) and closes it.
``style="paper"`` draws it for one column of a paper (3.4 in wide, serif, 300 dpi).  Tick
labels are plain numbers, legends sit where no point is, and axis labels carry the units of
the law's target (or the table's own ``loss_unit``), see :mod:`scalinglaws.viz.plotting`.
A function that does not apply to a law (iso-loss contours of a law that does not
predict a loss from N and D, the quantization penalty of an unquantized law) returns
``None``.

* :func:`parity` -- predicted against observed, fitted and held-out runs marked.
* :func:`residuals` -- observed minus fitted against N and against D.
* :func:`extrapolation` -- the runs a fit was made on, the held-out runs, and the
  fitted curve through them, with the bootstrap interval band when the fit carries one.
* :func:`isoloss` -- contours of the predicted loss in (N, D), iso-FLOP lines
  C = 6ND and the compute-optimal frontier (the N, D that minimise the loss at each C).
* :func:`penalty` -- for quantized laws, the loss that quantization adds (observed:
  loss minus the law's unquantized prediction for the same run; fitted: the law's
  prediction minus that) against bits, group size and tokens per parameter byte
  ``S = D / (N bits / 8)`` (the axes the law declares in ``penalty_axes``); for a law that
  declares an ``axis`` (a target that is not a loss), its target against that axis.
"""

from __future__ import annotations

import textwrap


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from scalinglaws.data.columns import as_columns  # noqa: E402
from scalinglaws.data.errors import ScalingLawsError  # noqa: E402
from scalinglaws.data.schema import BITS_COLUMNS, UNQUANTIZED_BITS  # noqa: E402
from scalinglaws.data.units import human  # noqa: E402
from scalinglaws.fitting import defaults  # noqa: E402
from scalinglaws.trust.bootstrap import predict_interval, samples_of  # noqa: E402
from scalinglaws.viz import plotting as P  # noqa: E402
from scalinglaws.viz.plotting import (compute_frontier, isoloss_applies, legend, lw, ms,  # noqa: E402,F401
                                      new_figure, unit_of)

_BAND_LEVEL = defaults.LEVEL


def target_label(law, runs=None, what: str | None = None) -> str:
    """What the law's target is, with its unit (the table's ``loss_unit`` when it declares one)."""
    return P.target_label(law, runs, what)


def _finish(fig, path):
    return P.finish(fig, path)


def _scored(result, runs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows the law scores (after ``prepare``), observed and predicted target."""
    from scalinglaws.trust.validate import predict_runs
    return predict_runs(result, runs)


def band(result, table: pd.DataFrame, level: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Percentile interval of the prediction over the bootstrap samples (None without a bootstrap)."""
    if len(samples_of(result)) < 2:
        return None
    iv = predict_interval(result, table, level=level)
    return iv["low"].to_numpy(), iv["high"].to_numpy()


# ------------------------------------------------------------------------------ parity
def parity(result, runs: pd.DataFrame, heldout: pd.DataFrame | None = None, path=None, title: str | None = None,
           style=None):
    """Predicted against observed; ``heldout`` runs (scored by ``result`` too) in red."""
    law = result.law_obj
    fig = new_figure(style, (5.6, 5.2))
    st = P.style_of(fig)
    with plt.rc_context(st.rc):
        ax = fig.subplots()
        _, obs, pred = _scored(result, runs)
        ax.scatter(obs, pred, s=ms(ax, 16), color="tab:blue", alpha=0.75, label=f"fitted runs ({len(obs)})")
        allv = [obs, pred]
        if heldout is not None and len(heldout):
            _, ho, hp = _scored(result, heldout)
            ax.scatter(ho, hp, s=ms(ax, 28), facecolor="none", edgecolor="tab:red", lw=lw(ax, 1.3),
                       label=f"held-out runs ({len(ho)})")
            allv += [ho, hp]
        v = np.concatenate(allv)
        lo, hi = np.nanmin(v), np.nanmax(v)
        pad = 0.03 * (hi - lo if hi > lo else abs(hi) + 1e-12)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=lw(ax, 0.9), ls="--",
                label="predicted = observed")
        ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), xlabel=f"observed {target_label(law, runs)}",
               ylabel=f"predicted {target_label(law, runs)}")
        if st.titles or title:
            ax.set_title(title or f"{law.name}: parity")
        ax.set_aspect("equal", adjustable="box")
        legend(ax)
    return _finish(fig, path)


# --------------------------------------------------------------------------- residuals
def residuals(result, runs: pd.DataFrame, heldout: pd.DataFrame | None = None, path=None, title: str | None = None,
              style=None):
    """Observed minus fitted against N and against D (or D_fp + D_qat)."""
    law = result.law_obj
    table, obs, pred = _scored(result, runs)
    sets = [(table, obs - pred, "tab:blue", "fitted runs", dict(s=14, alpha=0.75))]
    if heldout is not None and len(heldout):
        ht, ho, hp = _scored(result, heldout)
        sets.append((ht, ho - hp, "tab:red", "held-out runs", dict(s=26, facecolor="none", lw=1.2)))
    axes_cols = [c for c in ("N", "D") if c == "N" and "N" in table.columns or c == "D" and P.tokens(table) is not None]
    if not axes_cols:
        axes_cols = ["index"]
    fig = new_figure(style, (5.2 * len(axes_cols), 3.8))
    st = P.style_of(fig)
    with plt.rc_context(st.rc):
        axs = fig.subplots(1, len(axes_cols), squeeze=False, sharey=True)
        for ax, col in zip(axs[0], axes_cols):
            ax.axhline(0, color="0.4", lw=lw(ax, 0.8))
            for t, r, color, label, kw in sets:
                x = (t["N"].to_numpy(float) if col == "N" else P.tokens(t) if col == "D" else np.arange(len(t)))
                kw = {**kw, "s": ms(ax, kw["s"])}
                if "facecolor" in kw:
                    ax.scatter(x, r, edgecolor=color, label=label, **kw)
                else:
                    ax.scatter(x, r, color=color, label=label, **kw)
            ax.set(xscale="log" if col != "index" else "linear",
                   xlabel={"N": "parameters N", "D": "tokens D", "index": "run"}[col])
            if ax is axs[0][0]:
                ax.set_ylabel(target_label(law, runs, f"observed - fitted {law.target_name}"))
            legend(ax)
        if st.titles or title:
            fig.suptitle(title or f"{law.name}: residuals", fontsize="medium")
    return _finish(fig, path)


# ----------------------------------------------------------------------- extrapolation
def _group_key(table: pd.DataFrame, cols: list[str]) -> list[tuple]:
    if not cols:
        return [()] * len(table)
    vals = table[cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    return [tuple(float(f"{v:.6g}") if np.isfinite(v) else None for v in row) for row in vals]


def extrapolation(result, train: pd.DataFrame, test: pd.DataFrame, path=None, title: str | None = None,
                  max_curves: int = 6, style=None):
    """The fit (``result``, made on ``train``) carried to the held-out ``test`` runs.

    The x axis is N when the held-out runs reach beyond the fitted sizes, D otherwise.
    Runs are grouped by the law's other columns (one colour each, at most ``max_curves``);
    each group gets the fitted curve along x through the held-out range, with the bootstrap
    percentile band when ``result`` carries a bootstrap.  The legend sits outside the axes.
    """
    law = result.law_obj
    tr, tr_obs, _ = _scored(result, train)
    te, te_obs, te_pred = _scored(result, test)
    x = "N"
    if "N" in te.columns and "N" in tr.columns and te["N"].max() <= tr["N"].max() and "D" in te.columns \
            and "D" in tr.columns and te["D"].max() > tr["D"].max():
        x = "D"
    others = [c for c in law.columns if c != x and c in te.columns]  # precision columns included
    others += [c for c in law.optional_columns if c in te.columns and c not in others and c != x]
    te_keys = _group_key(te, others)
    tr_keys = _group_key(tr, others)
    groups = list(dict.fromkeys(te_keys))
    if len(groups) > max_curves:
        groups = [groups[i] for i in np.linspace(0, len(groups) - 1, max_curves).round().astype(int)]
    has_band = len(samples_of(result)) >= 2
    fig = new_figure(style, (7.5, 4.6))
    st = P.style_of(fig)
    with plt.rc_context(st.rc):
        ax = fig.subplots()
        colors = P.palette(len(groups))
        lo_x = min(tr[x].min(), te[x].min()) if x in tr.columns else te[x].min()
        hi_x = max(tr[x].max(), te[x].max()) * 1.3
        grid_x = np.geomspace(lo_x / 1.1, hi_x, 120)
        drawn_band = False
        handles = []
        for g_i, key in enumerate(groups):
            color = colors[g_i]
            label = ", ".join(f"{c}={human(v) if c in ('N', 'D') else f'{v:g}'}" for c, v in zip(others, key)
                              if v is not None and not (c in BITS_COLUMNS and v >= UNQUANTIZED_BITS)) or "runs"
            m_tr = np.array([k == key for k in tr_keys], bool)
            m_te = np.array([k == key for k in te_keys], bool)
            if m_tr.any():
                ax.scatter(tr[x].to_numpy(float)[m_tr], tr_obs[m_tr], s=ms(ax, 14), color=color, alpha=0.6)
            ax.scatter(te[x].to_numpy(float)[m_te], te_obs[m_te], s=ms(ax, 46), marker="*", color=color,
                       edgecolor="k", lw=lw(ax, 0.5))
            handles.append((label, Line2D([], [], color=color, lw=lw(ax, 1.4))))
            row = te[m_te].iloc[0]
            curve = pd.DataFrame({c: np.full(grid_x.size, row[c]) for c in te.columns
                                  if np.issubdtype(np.asarray(te[c]).dtype, np.number)})
            curve[x] = grid_x
            curve.attrs.update(te.attrs)
            try:
                y = law.predict(result.params, curve)
            except ScalingLawsError:
                continue
            ax.plot(grid_x, y, color=color, lw=lw(ax, 1.4))
            if has_band:
                b = band(result, curve)
                if b is not None:
                    ax.fill_between(grid_x, b[0], b[1], color=color, alpha=0.18, lw=0)
                    drawn_band = True
        ax.axvspan(te[x].min() / 1.05, te[x].max() * 1.05, color="tab:red", alpha=0.06, lw=0)
        handles += [("fitted runs", Line2D([], [], ls="none", marker="o", color="0.5", ms=4)),
                    ("held-out runs", Line2D([], [], ls="none", marker="*", color="0.5", mec="k", ms=8)),
                    ("held-out range", plt.Rectangle((0, 0), 1, 1, color="tab:red", alpha=0.12, lw=0))]
        if drawn_band:
            lvl = result.bootstrap.get("level", _BAND_LEVEL)
            handles.append((f"{lvl:.0%} bootstrap band", plt.Rectangle((0, 0), 1, 1, color="0.5", alpha=0.25, lw=0)))
        mae = float(np.mean(np.abs(te_pred - te_obs)))
        ax.set(xscale="log", xlabel="parameters N" if x == "N" else "tokens D", ylabel=target_label(law, train))
        y_all = np.concatenate([tr_obs, te_obs])
        if np.all(y_all > 0) and y_all.max() / y_all.min() > 30:  # a target spanning decades (a degradation)
            ax.set_yscale("log")
        if st.titles or title:
            ax.set_title(title or f"{law.name}: extrapolation to {len(te)} held-out runs (mean |error| {mae:.3g})")
        labels, hs = zip(*handles)
        labels = ["\n".join(textwrap.wrap(lab, 30)) for lab in labels]
        if st.legend == "below":
            fig.legend(hs, labels, loc="outside lower center", frameon=False, ncol=2)
        else:
            fig.legend(hs, labels, loc="outside right center", frameon=False)
    return _finish(fig, path)


# ------------------------------------------------------------------------------ iso-loss
def isoloss(result, runs: pd.DataFrame | None = None, path=None, flops: float | None = None,
            title: str | None = None, style=None):
    """Iso-loss contours in (N, D), iso-FLOP lines and the compute-optimal frontier.

    For laws that predict the loss from N and D (other bit columns at 16, unquantized).
    ``flops`` marks one budget's optimum.  Returns None for other laws.
    """
    law = result.law_obj
    if not isoloss_applies(law):
        return None
    fig = new_figure(style, (7.4, 5.0))
    st = P.style_of(fig)
    with plt.rc_context(st.rc):
        ax = fig.subplots()
        try:
            handles = P.draw_isoloss(ax, result, runs, flops=flops, unit=unit_of(law, runs))
        except ScalingLawsError:
            plt.close(fig)
            return None
        if st.titles or title:
            ax.set_title(title or f"{law.name}: iso-loss contours (16-bit)")
        labels, hs = zip(*handles)
        if st.legend == "below":
            fig.legend(hs, labels, loc="outside lower center", frameon=False, ncol=1)
        else:
            fig.legend(hs, labels, loc="outside right center", frameon=False)
    return _finish(fig, path)


# ------------------------------------------------------------------------------- penalty
def penalty_applies(law) -> bool:
    return bool(law.penalty_axes) or law.axis is not None


def _along_axis(result, runs, path, title, style=None):
    """The target of a law that declares an ``axis`` against that axis, with the fitted curve."""
    law = result.law_obj
    table, obs, _ = _scored(result, runs)
    var, label = law.axis
    x = np.asarray(law.design(table)[var], float)
    fig = new_figure(style, (6, 4.4))
    st = P.style_of(fig)
    with plt.rc_context(st.rc):
        ax = fig.subplots()
        ax.scatter(x, obs, s=ms(ax, 22), label=f"observed {law.target_name}", zorder=3)
        g = np.geomspace(max(x.min() / 2, 1.5), x.max() * 2, 200)
        ax.plot(g, law.along_axis(result.params, g), color="tab:red", lw=lw(ax, 1.5),
                label=f"fitted: {law.formula_text.split(',')[0]}")
        ax.set(xscale="log", xlabel=label, ylabel=target_label(law, runs))
        if not law.target_unit:
            ax.set_ylim(0, 1.02)
        if st.titles or title:
            ax.set_title(title or f"{law.name}: {law.target_name}")
        legend(ax)
    return _finish(fig, path)


def penalty(result, runs: pd.DataFrame, path=None, title: str | None = None, style=None):
    """The loss quantization adds against the axes the law declares (bits, group size, tokens per parameter byte).

    Observed penalty: observed loss minus the law's prediction for the same run in its
    unquantized form (:meth:`~scalinglaws.laws.base.Law.unquantized`); fitted penalty: the
    law's prediction minus the same.  Laws whose target is the degradation itself plot it
    directly; a law that declares an ``axis`` plots its target against it.  Returns None
    for laws without a quantization term.
    """
    law = result.law_obj
    if not penalty_applies(law):
        return None
    if law.axis is not None:
        return _along_axis(result, runs, path, title, style)
    table, obs, pred = _scored(result, runs)
    if law.predicts != "loss":  # the target is the degradation itself
        y_obs, y_fit = obs, pred
        q = np.ones(len(table), bool)
    else:
        try:
            base = law.predict(result.params, law.unquantized(table))
        except ScalingLawsError:
            return None
        y_obs, y_fit = obs - base, pred - base
        q = np.abs(y_fit) > 1e-12 * np.abs(pred)
    if not q.any():
        return None
    t = table[q]
    cols = as_columns(t)
    bits = law.bits_of(cols)
    panels = []
    if "bits" in law.penalty_axes:
        panels.append(("bits", bits, law.bits_label, "linear"))
    if "group_size" in law.penalty_axes and "group_size" in cols and np.isfinite(cols["group_size"]).any():
        panels.append(("group size", cols["group_size"], "group size G (elements per scale)", "log2"))
    D = P.tokens(t)
    if "tokens_per_byte" in law.penalty_axes and D is not None and "N" in cols:
        S = D / (cols["N"] * law.weight_bits_of(cols) / 8)
        panels.append(("tokens per parameter byte", S, "tokens per parameter byte S = D / (N bits / 8)", "log"))
    varied = [p for p in panels if np.unique(p[1][np.isfinite(p[1])]).size > 1]
    panels = varied or panels[:1]  # a panel whose x takes one value says nothing
    if not panels:
        return None
    fig = new_figure(style, (4.3 * len(panels) + 1.0, 3.8))
    st = P.style_of(fig)
    what = "degradation" if law.predicts != "loss" else "loss added by quantization"
    with plt.rc_context(st.rc):
        axs = fig.subplots(1, len(panels), squeeze=False, sharey=True)
        c = cols["N"] if "N" in cols else None
        norm = LogNorm(vmin=np.nanmin(c), vmax=np.nanmax(c) * (1.0001 if np.nanmin(c) == np.nanmax(c) else 1)) \
            if c is not None else None
        sc = None
        for ax, (name, x, label, scale) in zip(axs[0], panels):
            sc = ax.scatter(x, y_obs[q], s=ms(ax, 18), c=c, cmap="viridis", norm=norm, alpha=0.8, label="observed")
            ax.scatter(x, y_fit[q], s=ms(ax, 22), marker="x", color="tab:red", lw=lw(ax, 0.9), label="fitted")
            ax.axhline(0, color="0.5", lw=lw(ax, 0.7))
            if scale == "log2":
                ax.set_xscale("log", base=2)
            else:
                ax.set_xscale(scale)
            if name == "bits":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set(xlabel=label)
            if ax is axs[0][0]:
                ax.set_ylabel(target_label(law, runs, what))
            legend(ax)
        if c is not None:
            cb = fig.colorbar(sc, ax=axs[0][-1], label="parameters N")
            cb.ax.yaxis._sl_counts = True
        if st.titles or title:
            fig.suptitle(title or f"{law.name}: {what}", fontsize="medium")
    return _finish(fig, path)


def figure_png(fig, dpi: int = 110) -> bytes:
    """A figure as PNG bytes (and closed)."""
    import io
    buf = io.BytesIO()
    try:
        with plt.rc_context(P.style_of(fig).rc):
            fig.savefig(buf, format="png", dpi=dpi, **P._signature("png"))  # the figures use constrained layout
    finally:
        plt.close(fig)
    return buf.getvalue()


__all__ = ["parity", "residuals", "extrapolation", "isoloss", "penalty", "band",
           "compute_frontier", "figure_png", "target_label"]

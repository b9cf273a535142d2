"""Figures that show how far to trust a fit.  Matplotlib, no screen needed.

Every function takes a :class:`~scalinglaws.fitting.api.FitResult` (and the runs), returns the
matplotlib figure, and, given ``path``, also writes it atomically
(:func:`scalinglaws.viz.plotting.save_figure`, format from the extension) and closes it.
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


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scalinglaws.data.columns import Columns, as_columns  # noqa: E402
from scalinglaws.data.errors import ScalingLawsError  # noqa: E402
from scalinglaws.trust.bootstrap import predict_interval, samples_of  # noqa: E402
from scalinglaws.viz.plotting import save_figure  # noqa: E402
from scalinglaws.data.units import human  # noqa: E402

_BAND_LEVEL = 0.95


def target_label(law) -> str:
    """What the law's target is, with its unit, for axis labels."""
    return law.target_label


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


def _scored(result, runs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows the law scores (after ``prepare``), observed and predicted target."""
    from scalinglaws.trust.validate import predict_runs
    return predict_runs(result, runs)


def _tokens(table: pd.DataFrame) -> np.ndarray | None:
    if "D" in table.columns:
        return table["D"].to_numpy(float)
    if "D_fp" in table.columns and "D_qat" in table.columns:
        return (table["D_fp"] + table["D_qat"]).to_numpy(float)
    return None


def band(result, table: pd.DataFrame, level: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Percentile interval of the prediction over the bootstrap samples (None without a bootstrap)."""
    if len(samples_of(result)) < 2:
        return None
    iv = predict_interval(result, table, level=level)
    return iv["low"].to_numpy(), iv["high"].to_numpy()


# ------------------------------------------------------------------------------ parity
def parity(result, runs: pd.DataFrame, heldout: pd.DataFrame | None = None, path=None, title: str | None = None):
    """Predicted against observed; ``heldout`` runs (scored by ``result`` too) in red."""
    law = result.law_obj
    fig, ax = plt.subplots(figsize=(5.6, 5.2), constrained_layout=True)
    _, obs, pred = _scored(result, runs)
    ax.scatter(obs, pred, s=16, color="tab:blue", alpha=0.75, label=f"fitted runs ({len(obs)})")
    allv = [obs, pred]
    if heldout is not None and len(heldout):
        _, ho, hp = _scored(result, heldout)
        ax.scatter(ho, hp, s=28, facecolor="none", edgecolor="tab:red", lw=1.3, label=f"held-out runs ({len(ho)})")
        allv += [ho, hp]
    v = np.concatenate(allv)
    lo, hi = np.nanmin(v), np.nanmax(v)
    pad = 0.03 * (hi - lo if hi > lo else abs(hi) + 1e-12)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=0.9, ls="--", label="predicted = observed")
    ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), xlabel=f"observed {target_label(law)}",
           ylabel=f"predicted {target_label(law)}", title=title or f"{law.name}: parity")
    ax.set_aspect("equal", adjustable="box")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return _finish(fig, path)


# --------------------------------------------------------------------------- residuals
def residuals(result, runs: pd.DataFrame, heldout: pd.DataFrame | None = None, path=None, title: str | None = None):
    """Observed minus fitted against N and against D (or D_fp + D_qat)."""
    law = result.law_obj
    table, obs, pred = _scored(result, runs)
    sets = [(table, obs - pred, "tab:blue", "fitted runs", dict(s=14, alpha=0.75))]
    if heldout is not None and len(heldout):
        ht, ho, hp = _scored(result, heldout)
        sets.append((ht, ho - hp, "tab:red", "held-out runs", dict(s=26, facecolor="none", lw=1.2)))
    axes_cols = [c for c in ("N", "D") if c == "N" and "N" in table.columns or c == "D" and _tokens(table) is not None]
    if not axes_cols:
        axes_cols = ["index"]
    fig, axs = plt.subplots(1, len(axes_cols), figsize=(5.2 * len(axes_cols), 3.8), constrained_layout=True,
                            squeeze=False)
    for ax, col in zip(axs[0], axes_cols):
        ax.axhline(0, color="0.4", lw=0.8)
        for t, r, color, label, kw in sets:
            x = (t["N"].to_numpy(float) if col == "N" else _tokens(t) if col == "D" else np.arange(len(t)))
            if "facecolor" in kw:
                ax.scatter(x, r, edgecolor=color, label=label, **kw)
            else:
                ax.scatter(x, r, color=color, label=label, **kw)
        ax.set(xscale="log" if col != "index" else "linear",
               xlabel={"N": "parameters N", "D": "tokens D", "index": "run"}[col],
               ylabel=f"observed - fitted ({law.predicts})")
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(title or f"{law.name}: residuals", fontsize=10)
    return _finish(fig, path)


# ----------------------------------------------------------------------- extrapolation
def _group_key(table: pd.DataFrame, cols: list[str]) -> list[tuple]:
    if not cols:
        return [()] * len(table)
    vals = table[cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    return [tuple(float(f"{v:.6g}") if np.isfinite(v) else None for v in row) for row in vals]


def extrapolation(result, train: pd.DataFrame, test: pd.DataFrame, path=None, title: str | None = None,
                  max_curves: int = 6):
    """The fit (``result``, made on ``train``) carried to the held-out ``test`` runs.

    The x axis is N when the held-out runs reach beyond the fitted sizes, D otherwise.
    Runs are grouped by the law's other columns (one colour each); each group gets the
    fitted curve along x through the held-out range, with the bootstrap percentile band
    when ``result`` carries a bootstrap.
    """
    law = result.law_obj
    tr, tr_obs, _ = _scored(result, train)
    te, te_obs, te_pred = _scored(result, test)
    x = "N"
    if "N" in te.columns and "N" in tr.columns and te["N"].max() <= tr["N"].max() and "D" in te.columns \
            and "D" in tr.columns and te["D"].max() > tr["D"].max():
        x = "D"
    others = [c for c in law.required_columns() if c != x and c in te.columns]
    others += [c for c in law.optional_columns if c in te.columns and c not in others and c != x]
    te_keys = _group_key(te, others)
    tr_keys = _group_key(tr, others)
    groups = list(dict.fromkeys(te_keys))
    if len(groups) > max_curves:
        groups = [groups[i] for i in np.linspace(0, len(groups) - 1, max_curves).round().astype(int)]
    has_band = len(samples_of(result)) >= 2
    fig, ax = plt.subplots(figsize=(7.5, 5.2), constrained_layout=True)
    cmap = plt.get_cmap("viridis")
    lo_x = min(tr[x].min(), te[x].min()) if x in tr.columns else te[x].min()
    hi_x = max(tr[x].max(), te[x].max()) * 1.3
    grid_x = np.geomspace(lo_x / 1.1, hi_x, 120)
    drawn_band = False
    for g_i, key in enumerate(groups):
        color = cmap(g_i / max(1, len(groups) - 1)) if len(groups) > 1 else "tab:blue"
        label = ", ".join(f"{c}={human(v) if c in ('N', 'D') else f'{v:g}'}" for c, v in zip(others, key)
                          if v is not None) or "runs"
        m_tr = np.array([k == key for k in tr_keys], bool)
        m_te = np.array([k == key for k in te_keys], bool)
        if m_tr.any():
            ax.scatter(tr[x].to_numpy(float)[m_tr], tr_obs[m_tr], s=14, color=color, alpha=0.6)
        ax.scatter(te[x].to_numpy(float)[m_te], te_obs[m_te], s=46, marker="*", color=color, edgecolor="k",
                   lw=0.5, label=f"{label} (held out)")
        row = te[m_te].iloc[0]
        curve = pd.DataFrame({c: np.full(grid_x.size, row[c]) for c in te.columns
                              if np.issubdtype(np.asarray(te[c]).dtype, np.number)})
        curve[x] = grid_x
        curve.attrs.update(te.attrs)
        try:
            y = law.predict(result.params, curve)
        except ScalingLawsError:
            continue
        ax.plot(grid_x, y, color=color, lw=1.4)
        if has_band:
            b = band(result, curve)
            if b is not None:
                ax.fill_between(grid_x, b[0], b[1], color=color, alpha=0.18, lw=0)
                drawn_band = True
    # mark the held-out range
    ax.axvspan(te[x].min() / 1.05, te[x].max() * 1.05, color="tab:red", alpha=0.06, lw=0)
    ax.scatter([], [], s=14, color="0.5", label="fitted runs (dots)")
    if drawn_band:
        lvl = ((result.extra or {}).get("bootstrap") or {}).get("level", _BAND_LEVEL)
        ax.fill_between([], [], [], color="0.5", alpha=0.25, label=f"{lvl:.0%} bootstrap band")
    mae = float(np.mean(np.abs(te_pred - te_obs)))
    ax.set(xscale="log", xlabel="parameters N" if x == "N" else "tokens D", ylabel=target_label(law),
           title=title or f"{law.name}: extrapolation to {len(te)} held-out runs (mean |error| {mae:.3g})")
    ax.legend(fontsize=7, frameon=False, ncol=1 if len(groups) < 4 else 2)
    return _finish(fig, path)


# ------------------------------------------------------------------------------ iso-loss
def _nd_table(law, N: np.ndarray, D: np.ndarray):
    """Runs at (N, D), unquantized (precision columns absent: 16 bits); None when the law needs more columns."""
    if not set(law.required_columns()) <= {"N", "D"}:
        return None
    return Columns({"N": np.asarray(N, float), "D": np.asarray(D, float)}, source="<grid>")


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


def isoloss_applies(law) -> bool:
    return law.predicts == "loss" and {"N", "D"} <= set(law.required_columns()) and \
        _nd_table(law, np.ones(1), np.ones(1)) is not None


def isoloss(result, runs: pd.DataFrame | None = None, path=None, flops: float | None = None,
            title: str | None = None):
    """Iso-loss contours in (N, D), iso-FLOP lines and the compute-optimal frontier.

    For laws that predict the loss from N and D (other bit columns at 16, unquantized).
    ``flops`` marks one budget's optimum.  Returns None for other laws.
    """
    law = result.law_obj
    if not isoloss_applies(law):
        return None
    if runs is not None and len(runs) and {"N", "D"} <= set(runs.columns):
        n_lo, n_hi = runs["N"].min() / 10, runs["N"].max() * 100
        d_lo, d_hi = runs["D"].min() / 10, runs["D"].max() * 100
    else:
        n_lo, n_hi, d_lo, d_hi = 1e7, 1e12, 1e9, 1e14
    if flops is not None:
        n_hi = max(n_hi, 10 * np.sqrt(flops / 6 / 20))
        d_hi = max(d_hi, 10 * np.sqrt(flops / 6 * 20))
    N = np.geomspace(n_lo, n_hi, 160)
    D = np.geomspace(d_lo, d_hi, 160)
    NN, DD = np.meshgrid(N, D)
    t = _nd_table(law, NN.ravel(), DD.ravel())
    try:
        with np.errstate(all="ignore"):
            L = law.predict(result.params, t).reshape(NN.shape)
    except ScalingLawsError:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 5.6), constrained_layout=True)
    finite = L[np.isfinite(L)]
    levels = np.unique(np.quantile(finite, np.linspace(0.02, 0.98, 14)))
    cs = ax.contour(NN, DD, L, levels=levels, cmap="viridis", linewidths=1.0)
    ax.clabel(cs, fontsize=7, fmt="%.3g")
    c_lo, c_hi = 6 * n_lo * d_lo, 6 * n_hi * d_hi
    for C in 10.0 ** np.arange(np.ceil(np.log10(c_lo)), np.floor(np.log10(c_hi)) + 1, 2):
        ax.plot(N, C / (6 * N), color="0.75", lw=0.7, ls=":")
    Cs = np.geomspace(c_lo, c_hi, 60)
    fr = compute_frontier(result, Cs, (n_lo / 100, n_hi * 100))
    if fr is not None:
        ok = (fr[0] >= n_lo) & (fr[0] <= n_hi) & (fr[1] >= d_lo) & (fr[1] <= d_hi)
        ax.plot(fr[0][ok], fr[1][ok], color="tab:red", lw=2, label="compute-optimal frontier")
    if runs is not None and {"N", "D"} <= set(runs.columns):
        ax.scatter(runs["N"], runs["D"], s=10, color="k", alpha=0.6, label="runs")
    if flops is not None:
        one = compute_frontier(result, np.array([flops]), (n_lo / 100, n_hi * 100))
        if one is not None:
            ax.scatter(one[0], one[1], marker="*", s=160, color="tab:red", edgecolor="k", zorder=5,
                       label=f"optimum at C = {flops:.3g}: N = {human(one[0][0])}, D = {human(one[1][0])}")
    ax.plot([], [], color="0.75", lw=0.7, ls=":", label="iso-FLOP C = 6ND (every 100x)")
    ax.set(xscale="log", yscale="log", xlim=(n_lo, n_hi), ylim=(d_lo, d_hi), xlabel="parameters N",
           ylabel="tokens D", title=title or f"{law.name}: iso-loss contours (16-bit)")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return _finish(fig, path)


# ------------------------------------------------------------------------------- penalty
def penalty_applies(law) -> bool:
    return bool(law.penalty_axes) or law.axis is not None


def _along_axis(result, runs, path, title):
    """The target of a law that declares an ``axis`` against that axis, with the fitted curve."""
    law = result.law_obj
    table, obs, _ = _scored(result, runs)
    var, label = law.axis
    x = np.asarray(law.design(table)[var], float)
    fig, ax = plt.subplots(figsize=(6, 4.4), constrained_layout=True)
    ax.scatter(x, obs, s=22, label=f"observed {law.target_name}")
    g = np.geomspace(max(x.min() / 2, 1.5), x.max() * 2, 200)
    ax.plot(g, law.along_axis(result.params, g), color="tab:red", label=f"fitted: {law.formula_text.split(',')[0]}")
    ax.set(xscale="log", xlabel=label, ylabel=law.target_label, title=title or f"{law.name}: {law.target_name}")
    ax.legend(fontsize=8, frameon=False)
    return _finish(fig, path)


def penalty(result, runs: pd.DataFrame, path=None, title: str | None = None):
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
        return _along_axis(result, runs, path, title)
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
    D = _tokens(t)
    if "tokens_per_byte" in law.penalty_axes and D is not None and "N" in cols:
        S = D / (cols["N"] * law.weight_bits_of(cols) / 8)
        panels.append(("tokens per parameter byte", S, "tokens per parameter byte S = D / (N bits / 8)", "log"))
    varied = [p for p in panels if np.unique(p[1][np.isfinite(p[1])]).size > 1]
    panels = varied or panels[:1]  # a panel whose x takes one value says nothing
    if not panels:
        return None
    fig, axs = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), constrained_layout=True,
                            squeeze=False)
    c = np.log10(cols["N"]) if "N" in cols else None
    unit = f" ({law.target_unit})" if law.target_unit else ""
    for ax, (name, x, label, scale) in zip(axs[0], panels):
        sc = ax.scatter(x, y_obs[q], s=18, c=c, cmap="viridis", alpha=0.8, label="observed")
        ax.scatter(x, y_fit[q], s=22, marker="x", color="tab:red", lw=0.9, label="fitted")
        ax.axhline(0, color="0.5", lw=0.7)
        if scale == "log2":
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        else:
            ax.set_xscale(scale)
        ax.set(xlabel=label, ylabel=f"{'degradation' if law.predicts != 'loss' else 'penalty'}{unit}")
        ax.legend(fontsize=7, frameon=False)
    if c is not None:
        fig.colorbar(sc, ax=axs[0][-1], label="log10 N")
    what = "degradation" if law.predicts != "loss" else "loss added by quantization"
    fig.suptitle(title or f"{law.name}: {what}", fontsize=10)
    return _finish(fig, path)


def figure_png(fig, dpi: int = 110) -> bytes:
    """A figure as PNG bytes (and closed)."""
    import io
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)  # the figures use constrained layout
    finally:
        plt.close(fig)
    return buf.getvalue()


__all__ = ["parity", "residuals", "extrapolation", "isoloss", "penalty", "band",
           "compute_frontier", "figure_png", "target_label"]

"""Figures of a fit: data with fitted curves, and residuals.  Matplotlib, no screen needed."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scalinglaws.data.atomic import atomic_path  # noqa: E402
from scalinglaws.data.errors import InputError  # noqa: E402


def save_figure(fig, path: str | os.PathLike, dpi: int = 130) -> None:
    """Save ``fig`` atomically (format from the extension: png, pdf, svg)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".") or "png"
    if ext not in ("png", "pdf", "svg", "jpg", "jpeg"):
        raise InputError(f"cannot draw to {path}: use .png, .pdf, .svg or .jpg")
    try:
        with atomic_path(path, suffix="." + ext) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=ext)
    finally:
        plt.close(fig)


def _groups(runs: pd.DataFrame, law, n_bins: int = 7) -> list[tuple[str, pd.DataFrame]]:
    """Split runs into curves: model-size bins (log-spaced) x the law's other columns."""
    logn = np.log10(runs["N"].to_numpy())
    distinct = np.unique(np.round(logn, 3))
    if distinct.size <= n_bins:
        key = np.round(logn, 3)
    else:
        edges = np.linspace(logn.min(), logn.max() + 1e-9, n_bins + 1)
        key = np.digitize(logn, edges)
    others = [c for c in law.required_columns() if c not in ("N", "D") and c in runs.columns]
    frame = runs.assign(_bin=key)
    out = []
    for k, g in frame.groupby(["_bin"] + others, sort=True, dropna=False):
        k = k if isinstance(k, tuple) else (k,)
        n_mid = float(np.exp(np.log(g["N"]).mean()))
        label = f"N~{_short(n_mid)}" + "".join(f", {c}={v:g}" for c, v in zip(others, k[1:]))
        out.append((label, g))
    return out


def _short(x: float) -> str:
    from scalinglaws.data.units import human
    return human(x, 2)


def plot_fit(result, runs: pd.DataFrame, path: str | os.PathLike | None = None, title: str | None = None):
    """Data and fitted curves (loss vs D per model-size group, loss vs N) and residuals.

    Returns the figure; saves it when ``path`` is given.
    """
    law = result.law_obj
    runs = law.prepare(runs)
    obs = law.observed(runs)
    pred = law.predict(result.params, runs)
    target = law.predicts
    fig = plt.figure(figsize=(13, 7.5), constrained_layout=True)
    gs = fig.add_gridspec(2, 2, height_ratios=(3, 1.3))
    ax_d, ax_n = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])
    ax_rd, ax_rn = fig.add_subplot(gs[1, 0], sharex=ax_d), fig.add_subplot(gs[1, 1], sharex=ax_n)
    groups = _groups(runs, law)
    cmap = plt.get_cmap("viridis")
    for i, (label, g) in enumerate(groups):
        color = cmap(i / max(1, len(groups) - 1))
        ax_d.scatter(g["D"], law.observed(g), s=14, color=color, alpha=0.8, label=label)
        if g["D"].nunique() > 1 or len(groups) == 1:
            D = np.geomspace(g["D"].min(), g["D"].max(), 80)
            grid = {c: np.full_like(D, g[c].iloc[0]) for c in law.required_columns() if c not in ("N", "D")}
            grid.update(N=np.full_like(D, np.exp(np.log(g["N"]).mean())), D=D)
            ax_d.plot(D, law.predict(result.params, pd.DataFrame(grid)), color=color, lw=1.5)
    ax_d.set(xscale="log", yscale="log", xlabel="tokens D", ylabel=f"{target} (nats/token)",
             title="data (dots) and fit (lines) by model size")
    ax_d.legend(fontsize=7, ncol=2, frameon=False)
    sc = ax_n.scatter(runs["N"], obs, c=np.log10(runs["D"]), cmap="magma", s=14, alpha=0.85, label="observed")
    ax_n.scatter(runs["N"], pred, marker="x", s=14, color="0.35", lw=0.8, label="fitted")
    fig.colorbar(sc, ax=ax_n, label="log10 D")
    ax_n.set(xscale="log", yscale="log", xlabel="parameters N", ylabel=f"{target} (nats/token)",
             title="observed and fitted, coloured by tokens")
    ax_n.legend(fontsize=8, frameon=False)
    resid = np.log(obs) - np.log(pred)
    for ax, col in ((ax_rd, "D"), (ax_rn, "N")):
        ax.axhline(0, color="0.4", lw=0.8)
        ax.scatter(runs[col], resid, s=10, color="tab:red", alpha=0.7)
        ax.set(xscale="log", xlabel=f"{'tokens D' if col == 'D' else 'parameters N'}",
               ylabel="log(obs/fit)")
    p = ", ".join(f"{k}={v:.4g}" for k, v in result.params.items())
    fig.suptitle(title or f"{law.name}: {law.formula_text}\n{p}", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig

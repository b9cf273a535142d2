"""Figures worth looking at: each law's own fit figure, the trust figures, the paper style, the gallery.

Checked from the matplotlib objects: at most 10 legend entries, no legend over a plotted point
(a legend outside the axes passes), units on the target's axis labels (the law's, or the table's
own ``loss_unit``), plain tick labels on log axes (no ``10^x`` mathtext).
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

import scalinglaws as sl  # noqa: E402
from scalinglaws.data.columns import as_columns  # noqa: E402
from scalinglaws.fitting.synthetic import simulate  # noqa: E402
from scalinglaws.laws import REGISTRY  # noqa: E402
from scalinglaws.viz import figures as F  # noqa: E402
from scalinglaws.viz.plotting import PAPER_DPI, PAPER_WIDTH, plot_fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAWS = list(REGISTRY)
MATHTEXT = re.compile(r"\\times|10\^|\$")


def example_runs(name, noise=0.002):
    law = REGISTRY[name]
    truth, design = law.example()
    return simulate(law, truth, design, noise=noise, seed=0)


@pytest.fixture(scope="module")
def fits():
    out = {}
    for name in LAWS:
        runs = example_runs(name)
        out[name] = (runs, sl.fit(runs, law=name, starts=16, seed=0))
    return out


# ----------------------------------------------------------------------- what a test reads
def all_legends(fig):
    """Every legend of the figure: figure and sub-figure legends, and axes legends."""
    out = []

    def walk(f):
        out.extend(getattr(f, "legends", []))
        for sub in getattr(f, "subfigs", []):
            walk(sub)
    walk(fig)
    out += [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return out


def plotted_points(fig) -> np.ndarray:
    """Display coordinates of every plotted point: scatter offsets and line markers, in every axes."""
    pts = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for c in ax.collections:
            if isinstance(c, PathCollection) and len(c.get_offsets()):
                pts.append(c.get_offset_transform().transform(np.asarray(c.get_offsets(), float)))
        for ln in ax.lines:
            if ln.get_marker() not in (None, "None", "none", "", " ") and len(ln.get_xydata()):
                pts.append(ln.get_transform().transform(np.asarray(ln.get_xydata(), float)))
    pts = np.concatenate(pts) if pts else np.zeros((0, 2))
    return pts[np.isfinite(pts).all(axis=1)]


def check_figure(fig, unit: str | None, target_words=("loss", "degradation", "penalty", "fraction")):
    """The four rules: legend entries, legends off the points, units, plain log ticks."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pts = plotted_points(fig)
    legends = all_legends(fig)
    for leg in legends:
        n = len(leg.legend_handles)
        assert n <= 10, f"a legend with {n} entries: {[t.get_text() for t in leg.get_texts()]}"
        bb = leg.get_window_extent(renderer).shrunk(0.98, 0.98)
        inside = (pts[:, 0] > bb.x0) & (pts[:, 0] < bb.x1) & (pts[:, 1] > bb.y0) & (pts[:, 1] < bb.y1)
        assert not inside.any(), f"legend {[t.get_text() for t in leg.get_texts()]} covers {inside.sum()} points"
    ylabels = [ax.get_ylabel().replace("\n", " ") for ax in fig.axes if ax.get_visible() and ax.get_ylabel()]
    target = [y for y in ylabels if any(w in y for w in target_words)]
    if unit:
        assert target, f"no axis names the target: {ylabels}"
        for y in target:  # a ratio of two losses is dimensionless and says so
            assert f"({unit})" in y or y.endswith("(ratio)"), f"axis label {y!r} lacks the unit {unit}"
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            labels = [t.get_text() for t in axis.get_ticklabels()] + [t.get_text() for t in
                                                                      axis.get_ticklabels(minor=True)]
            bad = [t for t in labels if MATHTEXT.search(t)]
            assert not bad, f"log-axis tick labels not plain: {bad}"
            assert any(labels), "a log axis without tick labels"
    return legends


# ---------------------------------------------------------------------------- fit figures
def test_every_registered_law_declares_its_own_figure():
    for name, law in REGISTRY.items():
        assert law.figure, f"{name} declares no figure"
        for view in law.figure:
            assert view.title, f"{name}: a view without a title"


@pytest.mark.parametrize("name", LAWS)
def test_each_law_fit_figure_follows_the_rules(fits, name):
    runs, res = fits[name]
    law = REGISTRY[name]
    fig = plot_fit(res, runs)
    try:
        legends = check_figure(fig, law.target_unit)
        assert legends, "a fit figure without a legend"
        assert len([a for a in fig.axes if a.get_visible()]) >= 1
    finally:
        plt.close(fig)


def test_loss_unit_of_the_table_labels_the_axes(fits):
    runs, res = fits["kumar-ptq"]
    by_column = runs.assign(loss_unit="nats/byte")
    fig = plot_fit(res, by_column)
    try:
        check_figure(fig, "nats/byte")
        assert not any("nats/token" in ax.get_ylabel() for ax in fig.axes)
    finally:
        plt.close(fig)
    by_attrs = runs.copy()
    by_attrs.attrs["loss_unit"] = "bits/byte"
    fig = F.parity(res, by_attrs)
    try:
        assert "(bits/byte)" in fig.axes[0].get_xlabel()
    finally:
        plt.close(fig)


def test_fitted_curves_are_the_law_itself(fits):
    """Chinchilla: each line of loss against D is the law at one of the runs' model sizes; chen-qat: each
    penalty line against G is the law minus its unquantized form at the largest D."""
    runs, res = fits["chinchilla"]
    law = res.law_obj
    fig = plot_fit(res, runs)
    try:
        ax = fig.axes[0]
        lines = [ln for ln in ax.lines if len(ln.get_xdata()) > 10]
        assert len(lines) == runs["N"].nunique()
        for ln in lines:
            D, y = np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)
            assert any(np.allclose(law.predict(res.params, {"N": np.full_like(D, N), "D": D}), y, rtol=1e-9)
                       for N in runs["N"].unique())
    finally:
        plt.close(fig)
    runs, res = fits["chen-qat"]
    law = res.law_obj
    fig = plot_fit(res, runs)
    try:
        ax = fig.axes[0]
        assert ax.xaxis.get_scale() == "log" and "group size" in ax.get_xlabel()
        D = runs["D"].max()
        for ln in [ln for ln in ax.lines if len(ln.get_xdata()) > 10]:
            G, y = np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)

            def pen(N):
                cols = {"N": np.full_like(G, N), "D": np.full_like(G, D), "w_bits": np.full_like(G, 4.0),
                        "a_bits": np.full_like(G, 4.0), "group_size": G}
                return law.predict(res.params, cols) - law.predict(res.params, {"N": cols["N"], "D": cols["D"]})
            assert any(np.allclose(pen(N), y, rtol=1e-9) for N in runs["N"].unique())
    finally:
        plt.close(fig)


def test_with_bits_inverts_bits_of_for_every_quantized_law():
    for name, law in REGISTRY.items():
        truth, design = law.example()
        cols = as_columns(design)
        bits = np.asarray(law.bits_of(cols), float)
        if not np.isfinite(bits).any():
            continue
        q = cols.take(np.flatnonzero(bits < 16))
        if not q.n:
            continue
        for b in (3.0, 6.0):
            got = np.asarray(law.bits_of(law.with_bits(truth, q, b)), float)
            assert got == pytest.approx(np.full(q.n, b)), name


def test_trust_figures_follow_the_rules(fits):
    for name in ("chinchilla", "chen-qat", "dremov-fraction"):
        runs, res = fits[name]
        unit = REGISTRY[name].target_unit
        top = runs["N"].max()
        train, test = runs[runs["N"] < top], runs[runs["N"] >= top]
        held = sl.fit(train, law=name, starts=16, seed=0)
        for kind, fig in (("parity", F.parity(held, train, test)), ("residuals", F.residuals(res, runs)),
                          ("extrapolation", F.extrapolation(held, train, test)),
                          ("isoloss", F.isoloss(res, runs, flops=1e21)), ("penalty", F.penalty(res, runs))):
            if fig is None:
                continue
            try:
                # the iso-loss map's axes are N and D: its legend says what the contours are, in what unit
                legends = check_figure(fig, None if kind == "isoloss" else unit,
                                       ("loss", "degradation", "penalty", "fraction", "observed", "predicted"))
                if kind == "isoloss":
                    assert any(f"({unit})" in t.get_text() for leg in legends for t in leg.get_texts())
            finally:
                plt.close(fig)


# ---------------------------------------------------------------------------- paper style
def test_paper_style_is_one_column_at_300_dpi(fits, tmp_path):
    from PIL import Image
    runs, res = fits["kumar-ptq"]
    path = tmp_path / "paper.png"
    fig = plot_fit(res, runs, path, style="paper")
    with Image.open(path) as im:
        assert im.size[0] == round(PAPER_WIDTH * PAPER_DPI) == 1020
        assert im.info["dpi"][0] == pytest.approx(300, abs=0.5)
    assert fig.get_figwidth() == pytest.approx(3.4)
    assert "serif" in fig.axes[0].xaxis.label.get_fontfamily()
    svg = tmp_path / "paper.svg"
    plot_fit(res, runs, svg, style="paper")
    assert ET.parse(svg).getroot().get("width") == "244.8pt"  # 3.4 in


def test_fit_plot_writes_svg_and_the_paper_style_through_the_cli(cli, tmp_path):
    csv = tmp_path / "runs.csv"
    example_runs("chinchilla").to_csv(csv, index=False)
    svg = tmp_path / "fit.svg"
    code, out, err = cli("fit", csv, "--starts", 20, "--plot", svg, "--style", "paper")
    assert code == 0, err
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and root.get("width") == "244.8pt"
    assert len(list(root.iter("{http://www.w3.org/2000/svg}path"))) > 20
    code, out, err = cli("fit", csv, "--starts", 20, "--plot", svg)  # our own figure: written over
    assert code == 0, err
    code, _, err = cli("fit", csv, "--plot", tmp_path / "fit.gif")
    assert code == 2 and "cannot draw to" in err and "Traceback" not in err
    code, _, err = cli("fit", csv, "--plot", tmp_path / "x.png", "--style", "poster")
    assert code == 2 and "--style" in err and "screen, paper" in err
    code, _, err = cli("fit", csv, "--style", "paper")
    assert code == 2 and "applies to --plot" in err


# -------------------------------------------------------------------------------- gallery
def test_the_gallery_draws_every_figure_it_lists(tmp_path):
    out = tmp_path / "gallery"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "gallery.py"), "--fast", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (tmp_path / "gallery.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 20
    for link in links:
        path = tmp_path / link
        assert path.is_file(), link
        if path.suffix == ".png":
            img = mpimg.imread(path)
            assert img.ndim == 3 and img.shape[0] > 100 and img[..., :3].std() > 0.01
        else:
            assert path.suffix == ".svg" and ET.parse(path).getroot().tag.endswith("svg")
    names = {Path(link).name for link in links}
    for law in REGISTRY:
        assert f"{law}-fit.png" in names
    assert {"chinchilla-parity.png", "chinchilla-residuals.png", "chinchilla-extrapolation.png",
            "chinchilla-isoloss.png", "chen-qat-penalty.png", "hoffmann2022-isoloss.png"} <= names
    assert "Figure 4" in md                          # captions name the papers' figures
    assert "frantar-eff has no preset" in md         # and say what was not drawn, and why

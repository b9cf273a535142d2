"""figures and report: every figure is an image, the HTML page is self-contained and renders."""

import base64
import os
import io
import re
import shutil
import subprocess

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.viz import figures as F
from scalinglaws.viz.report import write_report
from scalinglaws.fitting.synthetic import grid, simulate

TRUTH = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
CHEN = sl.get_law("chen-qat").presets["chen2025"].values
FIT = dict(starts=64, seed=0)
IMG = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def chen_table(seed=0):
    rows = []
    for N in (1e8, 3e8, 1e9, 3e9):
        for D in (1e10, 3e10, 1e11):
            rows.append(dict(N=N, D=D, w_bits=16, a_bits=16))
            rows += [dict(N=N, D=D, w_bits=4, a_bits=4, group_size=G) for G in (32, 128)]
    return sl.load_runs(simulate("chen-qat", CHEN, pd.DataFrame(rows), noise=0.001, seed=seed))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rep") / "report"
    runs_csv = folder.parent / "runs.csv"
    chen_table().to_csv(runs_csv, index=False)
    out = write_report(str(runs_csv), "chinchilla,chen-qat", folder, flops=1e21, **FIT)
    return folder, out


def decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(data), format="png")


def test_every_embedded_figure_decodes_as_an_image(report):
    folder, out = report
    page = (folder / "report.html").read_text()
    embedded = IMG.findall(page)
    assert len(embedded) == len(out["figures"]) >= 10
    for b64 in embedded:
        img = decode_png(base64.b64decode(b64, validate=True))
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.01  # not a blank canvas
    # self-contained: nothing is fetched from elsewhere
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_each_law_section_opens_with_the_law_s_own_figure(report):
    folder, out = report
    names = [p.rsplit("/", 1)[-1] for p in out["figures"]]
    for law in ("chinchilla", "chen-qat"):
        assert f"{law}-fit.png" in names
        assert names.index(f"{law}-fit.png") < names.index(f"{law}-parity.png")
    md = (folder / "report.md").read_text()
    assert "the law's own picture of the fit" in md


def test_markdown_twin_points_at_the_same_figures(report):
    folder, out = report
    md = (folder / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert len(links) == len(out["figures"])
    page = (folder / "report.html").read_text()
    embedded = [base64.b64decode(b) for b in IMG.findall(page)]
    for link, data in zip(links, embedded):
        assert (folder / link).read_bytes() == data  # same image, in the same order
    for section in ("## Data", "## Law chinchilla", "## Law chen-qat", "## Extrapolation check", "## Comparison",
                    "## Planner answers"):
        assert section in md


def test_report_content_matches_the_library(report):
    folder, out = report
    md = (folder / "report.md").read_text()
    assert out["comparison"]["winners"]["aic"] == "chen-qat"
    # the planner's answer for the budget, as the Chinchilla closed form gives it
    fit = sl.fit(sl.load_runs(str(folder.parent / "runs.csv")), law="chinchilla", **FIT)
    p = fit.params
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    n_opt = G * (1e21 / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))
    ans = next(a for a in out["planners"]["chinchilla"] if a["planner"] == "compute")
    assert ans["values"]["N_opt"] == pytest.approx(n_opt, rel=1e-9)
    assert "chinchilla: compute at C = 1e+21 FLOPs" in md
    assert ("PASS" in md) or ("FAIL" in md)


def _browser():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_browser() is None, reason="no Chromium or Chrome installed")
def test_the_page_renders_in_a_headless_browser_with_every_image_loaded(report, tmp_path):
    folder, out = report
    page = (folder / "report.html").read_text()
    probe = ("<script>window.addEventListener('load', function () {"
             "var im = Array.prototype.slice.call(document.images);"
             "var ok = im.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;"
             "document.body.setAttribute('data-images', ok + '/' + im.length); });</script></body>")
    probed = tmp_path / "probe.html"
    probed.write_text(page.replace("</body>", probe))
    proc = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "<html" not in proc.stdout.lower():  # e.g. a snap stub in a container
        pytest.skip(f"{_browser()} is installed but did not run here: {proc.stderr.strip()[-300:]}")
    m = re.search(r'data-images="(\d+)/(\d+)"', proc.stdout)
    assert m, proc.stderr[-2000:]
    assert int(m.group(1)) == int(m.group(2)) == len(out["figures"])


# ----------------------------------------------------------------------------- figures
@pytest.fixture(scope="module")
def chin():
    runs = sl.load_runs(simulate("chinchilla", TRUTH, grid(np.geomspace(3e7, 3e9, 6), np.geomspace(1e9, 1e11, 4)),
                                 noise=0.002, seed=0))
    return runs, sl.fit(runs[runs["N"] < 1e9], law="chinchilla", **FIT)


def test_each_figure_is_written_as_a_png(chin, tmp_path):
    runs, fit = chin
    train, test = runs[runs["N"] < 1e9], runs[runs["N"] >= 1e9]
    for name, make in (("parity", lambda p: F.parity(fit, train, test, path=p)),
                       ("residuals", lambda p: F.residuals(fit, train, test, path=p)),
                       ("extrapolation", lambda p: F.extrapolation(fit, train, test, path=p)),
                       ("isoloss", lambda p: F.isoloss(fit, runs, path=p, flops=1e21))):
        path = tmp_path / f"{name}.png"
        assert make(path) is not None
        assert decode_png(path.read_bytes()).shape[0] > 100
    assert F.penalty(fit, runs) is None  # chinchilla has no quantization term
    assert F.isoloss(sl.resolve_fit("ouyang2024")) is None  # predicts a degradation, not a loss


def test_compute_frontier_matches_the_closed_form(chin):
    _, fit = chin
    p = fit.params
    C = np.array([1e19, 1e21, 1e23])
    N, D, L = F.compute_frontier(fit, C)
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    n_opt = G * (C / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))
    assert N == pytest.approx(n_opt, rel=2e-3)
    assert 6 * N * D == pytest.approx(C, rel=1e-12)
    assert L == pytest.approx(p["E"] + p["A"] / n_opt ** p["alpha"] + p["B"] / (C / 6 / n_opt) ** p["beta"],
                              rel=1e-7)


def test_band_is_the_percentile_interval_of_the_bootstrap_predictions(chin):
    runs, fit = chin
    rng = np.random.default_rng(0)
    names = list(fit.params)
    samples = np.array([[fit.params[k] * (1 + 0.02 * rng.standard_normal()) for k in names] for _ in range(200)])
    fit.extra["bootstrap"] = {"n": 200, "level": 0.9, "samples": samples.tolist()}
    try:
        t = pd.DataFrame({"N": [3e9, 1e10], "D": [1e11, 1e11]})
        lo, hi = F.band(fit, t)
        s = dict(zip(names, samples.T))
        by_hand = np.array([s["E"] + s["A"] / N ** s["alpha"] + s["B"] / D ** s["beta"]
                            for N, D in zip(t["N"], t["D"])]).T
        assert lo == pytest.approx(np.percentile(by_hand, 5, axis=0), rel=1e-9)
        assert hi == pytest.approx(np.percentile(by_hand, 95, axis=0), rel=1e-9)
        assert np.all(lo < fit.predict(t)) and np.all(fit.predict(t) < hi)
        assert F.extrapolation(fit, runs[runs["N"] < 1e9], runs[runs["N"] >= 1e9]) is not None
    finally:
        fit.extra.pop("bootstrap")


def test_penalty_of_a_quantized_law_is_observed_minus_unquantized():
    runs = chen_table(seed=1)
    fit = sl.fit(runs, law="chen-qat", init=CHEN, **FIT)
    fig = F.penalty(fit, runs)
    assert fig is not None
    ax = fig.axes[0]
    q = runs[runs["w_bits"] < 16]
    p = fit.params
    expect = p["k"] * q["D"] ** p["gamma_D"] * np.log2(q["group_size"]) ** p["gamma_G"] / q["N"] ** p["gamma_N"]
    fitted = ax.collections[1].get_offsets()[:, 1]  # the crosses: the fitted penalty
    assert np.sort(np.asarray(fitted)) == pytest.approx(np.sort(expect.to_numpy()), rel=1e-9)
    observed = ax.collections[0].get_offsets()[:, 1]
    base = p["E"] + p["A"] / q["N"] ** p["alpha"] + p["B"] / q["D"] ** p["beta"]
    assert np.sort(np.asarray(observed)) == pytest.approx(np.sort((q["loss"] - base).to_numpy()), rel=1e-9)
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_planner_intervals_are_percentiles_over_the_bootstrap_samples(chin):
    from scalinglaws.viz.report import planner_answers
    _, fit = chin
    rng = np.random.default_rng(1)
    names = list(fit.params)
    samples = np.array([[fit.params[k] * (1 + 0.01 * rng.standard_normal()) for k in names] for _ in range(100)])
    fit.extra["bootstrap"] = {"n": 100, "level": 0.95, "samples": samples.tolist()}
    try:
        ans = next(a for a in planner_answers(fit, 1e22) if a["planner"] == "compute")
    finally:
        fit.extra.pop("bootstrap")
    s = dict(zip(names, samples.T))
    G = (s["alpha"] * s["A"] / (s["beta"] * s["B"])) ** (1 / (s["alpha"] + s["beta"]))
    n_opt = G * (1e22 / 6) ** (s["beta"] / (s["alpha"] + s["beta"]))
    lo, hi = ans["intervals"]["N_opt"]
    assert lo == pytest.approx(np.percentile(n_opt, 2.5), rel=1e-9)
    assert hi == pytest.approx(np.percentile(n_opt, 97.5), rel=1e-9)
    assert lo < ans["values"]["N_opt"] < hi


def test_report_with_bootstrap_intervals(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    chen_table().to_csv(runs_csv, index=False)
    out = write_report(str(runs_csv), "chinchilla", tmp_path / "rep", flops=1e21, bootstrap=30, cluster="N", **FIT)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "95% interval low" in md and "clustered by N" in md
    assert "with the bootstrap band" in md
    for b64 in IMG.findall((tmp_path / "rep" / "report.html").read_text()):
        decode_png(base64.b64decode(b64))
    assert len(out["figures"]) >= 5



def test_a_report_written_again_with_fewer_laws_leaves_no_stale_figures(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    chen_table().to_csv(runs_csv, index=False)
    folder = tmp_path / "rep"
    first = write_report(str(runs_csv), "chinchilla,chen-qat", folder, **FIT)
    mine = folder / "figures" / "my-notes.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\n not one of ours")
    second = write_report(str(runs_csv), "chinchilla", folder, **FIT)
    left = {p.name for p in (folder / "figures").iterdir()}
    drawn = {os.path.basename(p) for p in second["figures"]}
    assert left == drawn | {"my-notes.png"}                     # the earlier chen-qat figures are gone
    assert any("chen" in os.path.basename(p) for p in first["figures"]) and not any("chen" in n for n in drawn)

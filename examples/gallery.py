"""Regenerate every figure the toolkit draws, and the page that shows them.

    python examples/gallery.py [--out docs/gallery] [--fast]

* each registered law's own fit figure (``scalinglaws fit --plot``), drawn on synthetic runs
  from the law's example design (``law.example()``: known parameters and a small design,
  the target drawn by :func:`scalinglaws.fitting.synthetic.simulate` with a little noise)
  and fitted back;
* the same figure in the ``paper`` style (one column, 3.4 in wide, serif), as SVG and PNG;
* the trust figures of :mod:`scalinglaws.viz.figures` (parity, residuals, extrapolation to
  the largest model size, iso-loss contours, quantization penalty), as the report draws them;
* the headline figure of each paper, from the presets (``examples/paper_figures.py``).

The images go to ``--out`` (default ``docs/gallery``) and the page listing them, with a
caption each, beside it (``docs/gallery.md`` for the default).  ``--fast`` uses fewer fit
starts and bootstrap resamples and draws the trust figures for a few laws only (every kind
of figure at least once); it runs in well under a minute on two cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

import scalinglaws as sl
from scalinglaws.fitting.synthetic import simulate
from scalinglaws.laws import REGISTRY
from scalinglaws.viz import figures as F
from scalinglaws.viz.plotting import plot_fit, save_figure

ROOT = Path(__file__).resolve().parents[1]

#: multiplicative noise of the synthetic target (a degradation is small against the loss it is measured on)
NOISE = {"ouyang-qid": 0.0005, "dremov-fraction": 0.0}
DEFAULT_NOISE = 0.002
#: laws whose trust figures --fast still draws (between them: every kind of figure)
FAST_TRUST = ("chinchilla", "chen-qat", "dremov-fraction")
SCREEN_DPI = 90
PAPER_DPI = 200


def _paper_figures():
    spec = importlib.util.spec_from_file_location("paper_figures", ROOT / "examples" / "paper_figures.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("paper_figures", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def synthetic(law):
    """(runs, truth): the law's example design with its target drawn from the known parameters."""
    truth, design = law.example()
    runs = simulate(law, truth, design, noise=NOISE.get(law.name, DEFAULT_NOISE), seed=0)
    return runs, truth


def build(out: str, fast: bool = False, log=print) -> list[tuple[str, list[tuple[str, str]]]]:
    """Draw everything into ``out``; returns the sections: (title, [(file name, caption), ...])."""
    os.makedirs(out, exist_ok=True)
    starts = 32 if fast else None
    boot = 16 if fast else 100
    opts = dict(starts=starts, seed=0) if starts else dict(seed=0)
    fits, trust, paper = [], [], []

    def save(fig, name, caption, into, dpi=SCREEN_DPI):
        if fig is None:
            return
        save_figure(fig, os.path.join(out, name), dpi=dpi)
        into.append((name, caption))

    for name, law in REGISTRY.items():
        t0 = time.time()
        runs, truth = synthetic(law)
        res = sl.fit(runs, law=name, **opts)
        if any(law.figure) and any(v.kind == "params" for v in law.figure):
            res = sl.bootstrap(res, runs, boot, seed=0)  # error bars on the fitted parameters
        noise = NOISE.get(name, DEFAULT_NOISE)
        save(plot_fit(res, runs), f"{name}-fit.png",
             f"`{name}` ({law.reference}): the law's own picture of a fit (`scalinglaws fit --plot`), on "
             f"{len(runs)} synthetic runs of its example design ({noise:.2%} noise), fitted back."
             + (f" Error bars: {boot}-resample bootstrap." if any(v.kind == "params" for v in law.figure) else ""),
             fits)
        if name == "chinchilla":
            save(plot_fit(res, runs, style="paper"), f"{name}-fit-paper.svg",
                 f"`{name}` fit in the paper style (`--style paper`: 3.4 in wide, serif), as SVG.", paper)
        if name == "kumar-ptq":
            save(plot_fit(res, runs, style="paper"), f"{name}-fit-paper.png",
                 f"`{name}` fit in the paper style, as PNG (here at {PAPER_DPI} dpi; 300 by default).", paper,
                 dpi=PAPER_DPI)
        if fast and name not in FAST_TRUST:
            log(f"{name}: fit figure ({time.time() - t0:.1f} s)")
            continue
        top = runs["N"].max() if "N" in runs.columns else None
        train, test = (runs[runs["N"] < top], runs[runs["N"] >= top]) if top is not None else (runs, runs.iloc[:0])
        held = None
        if len(test) and len(train):
            try:
                held = sl.fit(train, law=name, **opts)
            except sl.ScalingLawsError as exc:
                log(f"{name}: no held-out fit ({exc})")
        if held is not None and name == "chinchilla":
            held = sl.bootstrap(held, train, boot, seed=0)
        if held is not None:
            save(F.parity(held, train, test), f"{name}-parity.png",
                 f"`{name}`: predicted against observed, fitted without the largest model size (held out, red).",
                 trust)
            save(F.extrapolation(held, train, test), f"{name}-extrapolation.png",
                 f"`{name}`: the fit without the largest model size carried to it"
                 + (f", with the 95% band of a {boot}-resample bootstrap." if name == "chinchilla" else "."), trust)
        save(F.residuals(res, runs), f"{name}-residuals.png", f"`{name}`: residuals against N and D.", trust)
        save(F.isoloss(res, runs, flops=1e21), f"{name}-isoloss.png",
             f"`{name}`: iso-loss contours (16-bit), iso-FLOP lines, the compute-optimal frontier, and the "
             f"optimum at 1e21 FLOPs.", trust)
        save(F.penalty(res, runs), f"{name}-penalty.png",
             f"`{name}`: " + ("its target against the axis it declares." if law.axis is not None else
                              "the loss quantization adds, observed (dots) and fitted (crosses), against the "
                              "axes the law declares."), trust)
        log(f"{name}: fit and trust figures ({time.time() - t0:.1f} s)")

    pf = _paper_figures()
    skipped = []
    for entry in pf.make_all(out, style="paper", fmt="png", dpi=PAPER_DPI, log=lambda *_: None):
        if "file" in entry:
            paper.append((os.path.basename(entry["file"]), entry["caption"]))
        else:
            skipped.append(entry["reason"])
    log(f"paper figures: {len([p for p in paper if p[0].startswith(tuple(f.name for f in pf.FIGURES))])} drawn, "
        f"{len(skipped)} laws skipped")
    return [("Each law's fit figure (`scalinglaws fit --plot`)", fits),
            ("Headline figures of the papers, from the presets (`examples/paper_figures.py`) and the paper style",
             paper),
            ("How far to trust a fit (`scalinglaws report`, `scalinglaws.viz.figures`)", trust),
            ("Not drawn", [("", r) for r in skipped])]


def write_page(md_path: str, out: str, sections, fast: bool) -> None:
    rel = os.path.relpath(out, os.path.dirname(os.path.abspath(md_path)))
    lines = ["# Gallery", "",
             "Every figure the toolkit draws, regenerated by `python examples/gallery.py"
             + (" --fast" if fast else "") + "`. The fit and trust figures are drawn on synthetic runs from each "
             "law's example design (`law.example()`, target from `scalinglaws.fitting.synthetic.simulate`), so "
             "the truth is known; the paper figures use only the presets and the laws' formulas and planners.", ""]
    for title, items in sections:
        if not items:
            continue
        lines += [f"## {title}", ""]
        for name, caption in items:
            if not name:
                lines += [f"- {caption}"]
                continue
            text = caption.replace("*", "\\*")  # f* in a caption is not emphasis
            lines += [f"![{name}]({rel}/{name})", "", f"*{text}*", ""]
        lines.append("")
    with open(md_path, "w") as fh:
        fh.write("\n".join(lines).rstrip() + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "gallery"), help="folder for the images")
    ap.add_argument("--fast", action="store_true", help="fewer starts and resamples, trust figures for a few laws")
    args = ap.parse_args(argv)
    t0 = time.time()
    np.seterr(all="ignore")
    out = os.path.abspath(args.out)
    sections = build(out, args.fast)
    md = out.rstrip(os.sep) + ".md"
    write_page(md, out, sections, args.fast)
    n = sum(len([i for i in items if i[0]]) for _, items in sections)
    print(f"wrote {n} images to {out} and {md} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

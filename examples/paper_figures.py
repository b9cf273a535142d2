"""One headline figure per paper, drawn from the presets alone.

    python examples/paper_figures.py [--out DIR] [--style paper|screen] [--format png|svg|pdf]

Every number comes from a preset's published constants through the law's own formula
(``law.at``) or its planners (``law.plan_*``); nothing is fitted and nothing is read from
the papers' plots.  Each figure is written to DIR (default ``paper_figures/``) with a caption
naming the paper's figure it corresponds to.  Where the paper's figure number could not be
checked against the paper itself the caption says so rather than guess.  A law without a
preset is skipped with the reason printed.

The default style is ``paper``: one column of a two-column paper (3.4 in wide, serif type,
300 dpi), ready for ``\\includegraphics``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from scalinglaws.data.units import human  # noqa: E402
from scalinglaws.laws import REGISTRY, get_law  # noqa: E402
from scalinglaws.viz.plotting import finish, lw, ms, new_figure, palette, save_figure, style_of  # noqa: E402


@dataclass
class PaperFigure:
    name: str            # file stem
    law: str
    preset: str
    paper: str           # who, what
    figure: str          # the paper's figure it corresponds to (or why no number is given)
    what: str            # what the figure shows, for the caption
    draw: Callable       # draw(law, params, style) -> figure

    def caption(self) -> str:
        return f"{self.paper}: {self.what} Preset {self.preset} ({self.law}); {self.figure}."


def _legend_below(fig, ax=None, ncol=3):
    handles, labels = (ax or fig.axes[0]).get_legend_handles_labels()
    if ax is None:
        for a in fig.axes[1:]:
            h, lab = a.get_legend_handles_labels()
            for hh, ll in zip(h, lab):
                if ll not in labels:
                    handles.append(hh)
                    labels.append(ll)
    st = style_of(fig)
    loc = "outside lower center" if st.legend == "below" else "outside right center"
    fig.legend(handles, labels, loc=loc, frameon=False, ncol=ncol if st.legend == "below" else 1)


# ------------------------------------------------------------------ Hoffmann et al. 2022
def chinchilla_isoloss(law, p, style):
    fig = new_figure(style, (6.2, 4.8))
    with plt.rc_context(style_of(fig).rc):
        ax = fig.subplots()
        N = np.geomspace(1e8, 1e12, 160)
        D = np.geomspace(1e9, 1e14, 160)
        NN, DD = np.meshgrid(N, D)
        L = law.at(p, N=NN.ravel(), D=DD.ravel()).reshape(NN.shape)
        levels = [1.9, 2.0, 2.1, 2.2, 2.4, 2.6, 2.8, 3.0, 3.4]
        colors = palette(len(levels))
        cs = ax.contour(NN, DD, L, levels=levels, colors=colors, linewidths=lw(ax, 0.9))
        ax.clabel(cs, fontsize="x-small", fmt=lambda v: f"{v:.2f}".rstrip("0").rstrip("."))
        for C in (1e20, 1e22, 1e24, 1e26):
            ax.plot(N, C / (6 * N), color="0.7", lw=lw(ax, 0.6), ls=":")
            n_txt = np.sqrt(C / 6 / 40)
            if 1e8 < n_txt < 1e12:
                ax.text(n_txt, C / 6 / n_txt, f"{C:.0e}".replace("e+", "e"), fontsize="xx-small", color="0.45",
                        rotation=-33, ha="center", va="bottom")
        Cs = np.geomspace(1e18, 1e27, 60)
        fr = [law.plan_compute(p, flops=C) for C in Cs]
        ax.plot([r["N_opt"] for r in fr], [r["D_opt"] for r in fr], color="tab:red", lw=lw(ax, 1.8),
                label="compute-optimal frontier (planner)")
        ax.plot([], [], color="0.7", lw=lw(ax, 0.6), ls=":", label="iso-FLOP lines C = 6ND")
        ax.scatter([70e9], [1.4e12], marker="*", s=ms(ax, 120), color="tab:red", edgecolor="k", zorder=5,
                   label="70B parameters, 1.4T tokens")
        ax.set(xscale="log", yscale="log", xlim=(1e8, 1e12), ylim=(1e9, 1e14), xlabel="parameters N",
               ylabel="tokens D")
        _legend_below(fig, ax, ncol=1)
    return fig


# --------------------------------------------------------------- Kumar et al. 2024 (PTQ)
def kumar_ptq(law, p, style):
    N = 1e9
    D = np.geomspace(1e10, 1e13, 120)
    fig = new_figure(style, (6.0, 4.2))
    with plt.rc_context(style_of(fig).rc):
        ax = fig.subplots()
        bits = (16, 8, 4, 3)
        for b, c in zip(bits, palette(len(bits))[::-1]):
            y = law.at(p, N=np.full_like(D, N), D=D, ptq_bits=np.full_like(D, float(b)))
            if b == 16:
                ax.plot(D, y, color="k", ls="--", lw=lw(ax, 1.0), label="16-bit (no PTQ)", zorder=4)
                continue
            ax.plot(D, y, color=c, lw=lw(ax, 1.4), label=f"PTQ to {b} bits")
            if b < 16:
                r = law.plan_data(p, N=N, ptq_bits=b)
                if D[0] <= r["D_crit"] <= D[-1]:
                    ax.plot([r["D_crit"]], [r["loss_at_D_crit"]], ls="none", marker="o", ms=4 * style_of(fig).ms ** .5,
                            mfc="white", mec=c, mew=lw(ax, 1.2))
        ax.plot([], [], ls="none", marker="o", mfc="white", mec="0.3", label="critical data size (planner)")
        ax.set(xscale="log", xlabel="pre-training tokens D", ylabel="loss after PTQ (nats/token)")
        ax.set_title(f"N = {human(N)} parameters", fontsize="small")
        _legend_below(fig, ax, ncol=2)
    return fig


# ----------------------------------------------------------- Kumar et al. 2024 (precision)
def kumar_precision(law, p, style):
    Cs = np.geomspace(1e19, 1e26, 8)
    plans = [law.plan_precision(p, flops=C) for C in Cs]
    fig = new_figure(style, (8.0, 3.6))
    with plt.rc_context(style_of(fig).rc):
        a, b = fig.subplots(1, 2)
        a.plot(Cs, [r["bits_opt_continuous"] for r in plans], color="tab:blue", lw=lw(a, 1.4),
               label="continuous optimum")
        a.plot(Cs, [r["bits_opt"] for r in plans], ls="none", marker="o", color="tab:blue",
               ms=4 * style_of(fig).ms ** .5, label="best whole number of bits")
        a.set(xscale="log", ylim=(4, 12), xlabel="compute C (FLOPs)", ylabel="precision P (bits)")
        a.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        a.set_title("(a) compute-optimal precision", fontsize="small")
        for C, r, c in zip(Cs[::3], plans[::3], palette(3)):
            rows = [row for row in r["table"] if row["bits"] >= 4]
            P = np.array([row["bits"] for row in rows], float)
            Lx = np.array([row["loss"] for row in rows], float)
            b.plot(P, Lx - Lx.min(), color=c, lw=lw(b, 1.2), marker="o", ms=3 * style_of(fig).ms ** .5,
                   label=f"C = {C:.0e}".replace("e+", "e"))
            k = int(np.argmin(Lx))
            b.plot([P[k]], [0], ls="none", marker="*", ms=8 * style_of(fig).ms ** .5, color=c, mec="k", mew=0.4)
        b.set(xlabel="precision P (bits)", ylabel="loss - best loss\n(nats/token)")
        b.set_ylim(bottom=-0.004)
        b.set_title("(b) loss against P (star: best)", fontsize="small")
        _legend_below(fig, None, ncol=3)
    return fig


# --------------------------------------------------------------------- Sun et al. 2025
def capybara(law, p, style):
    widths = list(range(3, 17))
    fig = new_figure(style, (8.6, 3.9))
    with plt.rc_context(style_of(fig).rc):
        a, b = fig.subplots(1, 2, width_ratios=(1.25, 1))
        Emax = max(widths) - 1
        R = np.full((Emax, len(widths)), np.nan)
        best = []
        for j, P in enumerate(widths):
            r = law.plan_fp_format(p, bits=P)
            for row in r["table"]:
                R[row["exp_bits"] - 1, j] = row["penalty_vs_best"]
            best.append((P, r["exp_bits"], r["man_bits"]))
        mesh = a.pcolormesh(np.arange(len(widths) + 1) - 0.5 + widths[0], np.arange(Emax + 1) + 0.5, R,
                            cmap="magma_r", norm=LogNorm(1, np.nanmax(R)), shading="flat")
        a.plot([w for w, _, _ in best], [e for _, e, _ in best], ls="none", marker="*", ms=7 * style_of(fig).ms ** .5,
               mfc="tab:cyan", mec="k", mew=0.4, label="best split (planner)")
        for w, e, m in best:
            if w in (4, 8, 12, 16):
                a.annotate(f"E{e}M{m}", (w, e), textcoords="offset points", xytext=(-3, 6), ha="right",
                           va="bottom", fontsize="xx-small")
        cb = fig.colorbar(mesh, ax=a, pad=0.02)
        cb.set_label("penalty / best split's")
        a.set(xlabel="total bits P = E + M + 1", ylabel="exponent bits E", ylim=(0.5, 9.5))
        a.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        a.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        a.set_title("(a) best format per width", fontsize="small")
        Cs = np.geomspace(1e20, 1e26, 7)
        plans = [law.plan_precision(p, flops=C) for C in Cs]
        b.plot(Cs, [r["bits"] for r in plans], marker="o", color="tab:blue", lw=lw(b, 1.2),
               ms=4 * style_of(fig).ms ** .5, label="compute-optimal P (block 128)")
        for C, r in list(zip(Cs, plans))[::2]:
            b.annotate(r["best"]["format"], (C, r["bits"]), textcoords="offset points", xytext=(0, 5), ha="center",
                       fontsize="xx-small")
        b.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="total bits P", ylim=(2, 12))
        b.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        b.set_title("(b) compute-optimal P", fontsize="small")
        _legend_below(fig, None, ncol=2)
    return fig


# -------------------------------------------------------------------- Chen et al. 2025
def chen_group(law, p, style):
    presets = (("chen2025", "W4A4", 4, 4), ("chen2025-w4a16", "W4A16", 4, 16), ("chen2025-w16a4", "W16A4", 16, 4))
    G = 2.0 ** np.arange(4, 10)
    Ns = (74e6, 297e6, 1.2e9)
    D = 100e9
    fig = new_figure(style, (8.6, 4.4))
    with plt.rc_context(style_of(fig).rc):
        axs = fig.subplots(1, 3, sharey=True)
        for ax, (name, label, w, a_) in zip(axs, presets):
            q = law.presets[name].values
            for N, c in zip(Ns, palette(len(Ns))):
                one = np.ones_like(G)
                pen = law.at(q, N=N * one, D=D * one, w_bits=w * one, a_bits=a_ * one, group_size=G) \
                    - law.at(q, N=N * one, D=D * one)
                ax.plot(G, pen, color=c, marker="o", ms=3 * style_of(fig).ms ** .5, lw=lw(ax, 1.2),
                        label=f"N = {human(N)}")
            ax.set_xscale("log", base=2)
            ax.set_title(label, fontsize="small")
            ax.set_xlabel("group size G")
        axs[0].set_ylabel("QAT penalty\n(nats/token)")
        _legend_below(fig, axs[0], ncol=3)
    return fig


# ------------------------------------------------------------------ Dremov et al. 2025
def dremov_fraction(law, p, style):
    S = np.geomspace(10, 1e6, 120)
    N, b = 1e9, 4.0
    f = [law.plan_qat_fraction(p, N=N, D=s * N * b / 8, w_bits=b)["qat_fraction"] for s in S]
    fig = new_figure(style, (5.6, 3.8))
    with plt.rc_context(style_of(fig).rc):
        ax = fig.subplots()
        ax.plot(S, f, color="tab:red", lw=lw(ax, 1.5), label=f"f* = exp(-a / ln S), a = {p['a']:g}")
        for s in (100, 1e4):
            fs = law.plan_qat_fraction(p, N=N, D=s * N * b / 8, w_bits=b)["qat_fraction"]
            ax.plot([s], [fs], ls="none", marker="o", color="tab:red", ms=4 * style_of(fig).ms ** .5)
            ax.annotate(f"{fs:.2f} at S = {human(s)}", (s, fs), textcoords="offset points", xytext=(6, -10),
                        fontsize="x-small")
        ax.set(xscale="log", ylim=(0, 1), xlabel="tokens per parameter byte S = D / (N bits / 8)",
               ylabel="optimal QAT fraction f*")
        _legend_below(fig, ax, ncol=1)
    return fig


# ------------------------------------------------------------------ Ouyang et al. 2024
def ouyang(law, p, style):
    D = np.geomspace(1e10, 1e14, 100)
    Ns = (7e9, 70e9, 405e9)
    fig = new_figure(style, (8.6, 4.4))
    with plt.rc_context(style_of(fig).rc):
        axs = fig.subplots(1, 3)
        for ax, bits in zip(axs, (2, 3, 4)):
            for N, c in zip(Ns, palette(len(Ns))):
                y = law.at(p, N=np.full_like(D, N), D=D, ptq_bits=np.full_like(D, float(bits)))
                ax.plot(D, y, color=c, lw=lw(ax, 1.3), label=f"{human(N)} parameters")
            ax.axvline(1e14, color="0.5", lw=lw(ax, 0.7), ls="--")
            ax.set(xscale="log", yscale="log", xlabel="training tokens D")
            ax.set_title(f"{bits}-bit weights", fontsize="small")
        axs[0].set_ylabel("QiD: loss added by\nPTQ (nats/token)")
        axs[0].plot([], [], color="0.5", lw=0.7, ls="--", label="100T tokens")
        _legend_below(fig, axs[0], ncol=2)
    return fig


FIGURES = [
    PaperFigure("hoffmann2022-isoloss", "chinchilla", "hoffmann2022", "Hoffmann et al. 2022",
                "corresponds to Figure 4 (left), the parametric fit's contours and efficient frontier (there over "
                "training FLOPs and model size, here over N and D)",
                "iso-loss contours of L(N, D) = E + A/N^alpha + B/D^beta, iso-FLOP lines and the compute-optimal "
                "frontier (closed form of the compute planner); the star is the 70B-parameter, 1.4T-token model.",
                chinchilla_isoloss),
    PaperFigure("kumar2024-ptq-tokens", "kumar-ptq", "kumar2024-ptq", "Kumar et al. 2024",
                "corresponds to Figure 2, top row (loss after PTQ against pre-training tokens, one model size per "
                "column, at the paper's 30M to 220M parameters; its bottom row is the degradation fitted with Eq. 2), "
                "here carried to 1B parameters; Figure 1 (left) is the schematic of the same finding, and the "
                "critical data size (Appendix E.1, Eq. 13) has no figure",
                "loss of a 1B-parameter model after post-training quantization against pre-training tokens: "
                "beyond the critical data size (circles, from the data planner) more pre-training makes the "
                "quantized model worse.", kumar_ptq),
    PaperFigure("kumar2024-precision-compute", "kumar-precision", "kumar2024", "Kumar et al. 2024",
                "panel (b) corresponds to Figure 6 (left), the law's predicted loss of the compute-matched runs of "
                "Sec. 4.3.2 (\"We plot our predicted trend in Figure 6 (left)\"); no figure of the paper plots "
                "panel (a): that the compute-optimal precision does not depend on compute and is 7-8 bits is stated "
                "in Sec. 4.3.2 (Eq. 7), Figure 6 (right) is the fixed-N case, where it grows with compute, and "
                "Figure 1 (right) is a schematic",
                "(a) compute-optimal training precision (weights, activations and KV cache alike, cost "
                "C = (6/16) N D P, from the precision planner) against compute: flat near 7-8 bits; (b) the loss "
                "above the best precision at three budgets.", kumar_precision),
    PaperFigure("sun2025-formats", "capybara", "sun2025", "Sun et al. 2025",
                "panel (a) corresponds to Figure 5 (\"The optimal float layouts of different bit widths\") and "
                "panel (b) to Figure 7 (\"The optimal cost-performance ratio precision as a function of the total "
                "compute budget ... when the block size (B) is set to 128 and k = 6/16\"), numbered as in "
                "arXiv:2501.02423v3 (ICML 2025)",
                "(a) every exponent/mantissa split of each total width P, coloured by its precision penalty "
                "relative to the best split (stars, from the fp-format planner); (b) the compute-optimal total "
                "precision against compute (precision planner, C = (6/16) P N D).", capybara),
    PaperFigure("chen2025-group-size", "chen-qat", "chen2025", "Chen et al. 2025",
                "the group-size trend of the fitted law (Eq. 4-5, Table 1); which figure of the paper draws it was "
                "not established: the stored arXiv HTML copy could be read only to its abstract, no other full "
                "text was found, and the ICLR 2026 reviews that were read name Figure 4(b) only for the token "
                "trend, so no figure number is given",
                "QAT penalty delta = k D^gamma_D (log2 G)^gamma_G / N^gamma_N against group size G at "
                "D = 100B tokens for three model sizes, with the W4A4, weight-only W4A16 and activation-only "
                "W16A4 constants (presets chen2025, chen2025-w4a16, chen2025-w16a4).", chen_group),
    PaperFigure("dremov2025-fraction", "dremov-fraction", "dremov2025", "Dremov et al. 2025",
                "the fitted optimal-QAT-fraction law (a = 6.7297); which figure of the paper draws it was not "
                "established: the stored arXiv HTML copy could be read only to its abstract, and the summaries and "
                "ICLR 2026 reviews that were read do not say (one review describes Figure 1 (left) as optimal QAT "
                "tokens-per-byte against total tokens-per-byte), so no figure number is given",
                "optimal fraction of training to spend in QAT, f* = exp(-a / ln S), against tokens per parameter "
                "byte (qat-fraction planner).", dremov_fraction),
    PaperFigure("ouyang2024-qid-tokens", "ouyang-qid", "ouyang2024", "Ouyang et al. 2024",
                "corresponds to Figure 1 (\"Scaling laws for predicting Quantization-induced Degradation ... in "
                "7B, 70B, and 405B models trained on up to 100 trillion (10^14) tokens\"; the caption does not say "
                "which of the paper's fits it draws, here the unified law of Figure 6)",
                "quantization-induced degradation of 7B, 70B and 405B models against training tokens at 2, 3 and "
                "4 bits, up to 100T tokens (dashed).", ouyang),
]


def make_all(out: str, style: str = "paper", fmt: str = "png", dpi: int | None = None,
             log=print) -> list[dict]:
    """Draw every figure into ``out``; returns ``{"file", "caption"}`` per figure drawn and
    ``{"skipped", "reason"}`` per law without a preset."""
    os.makedirs(out, exist_ok=True)
    done = []
    for f in FIGURES:
        law = get_law(f.law)
        p = dict(law.presets[f.preset].values)
        fig = f.draw(law, p, style)
        finish(fig)
        path = os.path.join(out, f"{f.name}.{fmt}")
        save_figure(fig, path, dpi=dpi)
        done.append({"file": path, "caption": f.caption(), "law": f.law})
        log(f"wrote {path}\n  {f.caption()}")
    drawn = {f.law for f in FIGURES}
    for name, law in REGISTRY.items():
        if name in drawn:
            continue
        reason = (f"{name} has no preset: no published constants of this law are in the toolkit, and these "
                  f"figures are drawn from presets only (fit it to your runs and use 'scalinglaws fit --plot')"
                  if not law.presets else f"{name} has presets but no headline figure here")
        done.append({"skipped": name, "reason": reason})
        log(f"skipped {name}: {reason}")
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="paper_figures", help="folder for the figures (default: paper_figures)")
    ap.add_argument("--style", default="paper", choices=("paper", "screen"))
    ap.add_argument("--format", default="png", choices=("png", "svg", "pdf"))
    ap.add_argument("--dpi", type=int, default=None, help="resolution of PNGs (default: the style's)")
    args = ap.parse_args(argv)
    make_all(args.out, args.style, args.format, args.dpi)
    return 0


if __name__ == "__main__":
    sys.exit(main())

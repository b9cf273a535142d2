"""A report a person can read: one self-contained HTML page and a Markdown twin.

:func:`write_report` fits each law to a run table and writes, into one folder:

* ``report.html`` -- a single file with every figure embedded (base64 PNG): it can be
  mailed or opened from anywhere;
* ``report.md`` -- the same text in Markdown, with the figures as PNG files beside it
  in ``figures/``.

Sections: the data summary; each law's fit (parameters, with bootstrap percentile
intervals when ``bootstrap`` resamples are asked for, convergence and the warnings of
:func:`scalinglaws.trust.diagnose.diagnose`, parity and residual plots, iso-loss contours
and quantization penalty where they apply); the extrapolation check (a fit without the
held-out runs, scored on them, see :mod:`scalinglaws.trust.validate`); the side-by-side
comparison (:mod:`scalinglaws.trust.compare`); and the planners' answers for a compute
budget ``flops`` (every planner of a law that takes a FLOP budget), with intervals
over the bootstrap samples for the closed-form ``compute`` planner.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from scalinglaws import __version__
from scalinglaws.data.atomic import write_atomic
from scalinglaws.data.errors import InputError, OptionError, ScalingLawsError
from scalinglaws.data.runs import bits_label, subset
from scalinglaws.data.units import format_number, human
from scalinglaws.fitting.api import planner_method
from scalinglaws.fitting.options import FitOptions
from scalinglaws.fitting.problem import filtered_table
from scalinglaws.fitting.result import FitResult
from scalinglaws.laws import get_law
from scalinglaws.trust.bootstrap import bootstrap as bootstrap_fit, plan_interval, samples_of
from scalinglaws.trust.compare import Comparison, compare
from scalinglaws.trust.validate import LEVEL, RULE



@dataclass
class Figure:
    name: str       # file stem, e.g. "chinchilla-parity"
    caption: str
    png: bytes


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # ("p", text) | ("table", cols, rows) | ("fig", Figure) | ("ul", items)


# ------------------------------------------------------------------------- content
def _fmt(x) -> str:
    if isinstance(x, str):
        return x
    if x is None:
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    return format_number(x)


def data_summary(table: pd.DataFrame) -> Section:
    sec = Section("Data")
    src = table.attrs.get("source", "<table>")
    sec.blocks.append(("p", f"{len(table)} runs from {src}; columns: {', '.join(map(str, table.columns))}."))
    rows = []
    for c in ("N", "D", "D_fp", "D_qat", "loss", "loss_fp"):
        if c in table.columns:
            v = pd.to_numeric(table[c], errors="coerce").dropna()
            if len(v):
                show = human if c in ("N", "D", "D_fp", "D_qat") else _fmt
                rows.append([c, show(float(v.min())), show(float(v.max())), int(v.nunique())])
    if rows:
        sec.blocks.append(("table", ["column", "min", "max", "distinct values"], rows))
    if any(c in table.columns for c in ("w_bits", "a_bits", "group_size")):
        labels = pd.Series([bits_label(r) for r in table.to_dict(orient="records")]).value_counts()
        sec.blocks.append(("table", ["training precision", "runs"], [[k, int(v)] for k, v in labels.items()]))
    return sec


def planner_answers(result: FitResult, flops: float) -> list[dict]:
    """Every planner of the law that needs only a FLOP budget, at ``flops``, with bootstrap intervals
    when the fit has samples."""
    out = []
    for p in result.law_obj.planners:
        if p.required_names != ("flops",):
            continue
        method = planner_method(result, p.kind, {"flops": flops})
        try:
            ans = method(result.params)
        except ScalingLawsError as exc:
            out.append({"planner": p.kind, "error": str(exc)})
            continue
        scalars = {k: v for k, v in ans.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        entry = {"planner": p.kind, "summary": ans.get("summary", ""), "values": scalars, "intervals": {}}
        if samples_of(result):
            ci = plan_interval(result, method)
            entry["intervals"] = {k: tuple(v) for k, v in ci.items() if k in scalars and k != "flops"}
            entry["level"] = float(result.bootstrap["level"])
        out.append(entry)
    return out


# ------------------------------------------------------------------------- rendering
def _html_table(cols, rows) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_cell(v) -> str:
    return _fmt(v).replace("|", "\\|").replace("\n", " ")


def _md_table(cols, rows) -> str:
    lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_md_cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}h3{margin-top:1.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .6em;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.warn{color:#8a5300}.pass{color:#176b1f}.fail{color:#a01515}
code{background:#f4f4f4;padding:0 .2em}
"""


def render_html(title: str, sections: list[Section]) -> str:
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        for b in sec.blocks:
            kind = b[0]
            if kind == "h3":
                parts.append(f"<h3>{html.escape(b[1])}</h3>")
            elif kind == "p":
                cls = ""
                if b[1].startswith("PASS"):
                    cls = " class=\"pass\""
                elif b[1].startswith(("FAIL", "INCONCLUSIVE")):
                    cls = " class=\"fail\"" if b[1].startswith("FAIL") else " class=\"warn\""
                parts.append(f"<p{cls}>{html.escape(b[1])}</p>")
            elif kind == "ul":
                items = "".join(f"<li class=\"warn\">{html.escape(t)}</li>" for t in b[1])
                parts.append(f"<ul>{items}</ul>")
            elif kind == "table":
                parts.append(_html_table(b[1], b[2]))
            elif kind == "fig":
                f: Figure = b[1]
                data = base64.b64encode(f.png).decode("ascii")
                parts.append(f"<figure><img alt=\"{html.escape(f.caption)}\" src=\"data:image/png;base64,{data}\">"
                             f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _remove_stale_figures(fig_dir: str, keep: list[str]) -> None:
    """Remove the figures an earlier report drew into ``fig_dir`` that this one did not (PNG files carrying the
    toolkit's signature only: a file of anyone else's stays)."""
    from scalinglaws.viz.plotting import is_our_figure
    keep_set = {os.path.abspath(p) for p in keep}
    for name in os.listdir(fig_dir):
        path = os.path.join(fig_dir, name)
        if not name.endswith(".png") or os.path.abspath(path) in keep_set or not os.path.isfile(path):
            continue
        if is_our_figure(path):
            try:
                os.remove(path)
            except OSError:
                pass   # a figure that cannot be removed is left as it is


def render_markdown(title: str, sections: list[Section], figure_dir: str = "figures") -> str:
    out = [f"# {title}", ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for b in sec.blocks:
            kind = b[0]
            if kind == "h3":
                out += [f"### {b[1]}", ""]
            elif kind == "p":
                out += [b[1], ""]
            elif kind == "ul":
                out += [f"- {t}" for t in b[1]] + [""]
            elif kind == "table":
                out += [_md_table(b[1], b[2]), ""]
            elif kind == "fig":
                f: Figure = b[1]
                out += [f"![{f.caption}]({figure_dir}/{f.name}.png)", "", f"*{f.caption}*", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- build
def _law_section(entry, table, flops) -> tuple[Section, list[Figure]]:
    from scalinglaws.viz import figures as F
    from scalinglaws.trust.diagnose import diagnose
    res: FitResult = entry.fit
    law = get_law(entry.law)
    sec = Section(f"Law {law.name}")
    sec.blocks.append(("p", f"{law.formula_text}  ({law.reference})"))
    iv = res.intervals()
    b = res.bootstrap
    cols = ["parameter", "value"]
    if iv:
        lvl = float(b.get("level", 0.95))
        cols += [f"{lvl:.0%} interval low", "high"]
    cols.append("note")
    rows = []
    bounds = {p.name: p.bounds for p in res.law_obj.params}
    for k, v in res.params.items():
        note = "fixed" if k in (res.fixed or {}) else ("on a bound" if k in res.status.get("on_bound", []) else "")
        r = [k, v]
        if iv:
            lo_hi = iv.get(k, (None, None))
            r += list(lo_hi)
            hit = [which for which, end, edge in (("low", lo_hi[0], bounds[k][0]), ("high", lo_hi[1], bounds[k][1]))
                   if end is not None and abs(end - edge) <= 1e-6 * max(abs(edge), 1e-300)]
            if hit and k not in (res.fixed or {}):
                note = (note + "; " if note else "") + f"interval {' and '.join(hit)} end on the bound: not identified"
        rows.append(r + [note])
    sec.blocks.append(("table", cols, rows))
    st = res.status
    line = (f"objective {res.objective:.10g} ({res.loss.get('loss')}, delta {res.loss.get('delta')}, "
            f"{res.loss.get('space')} space, summed) on {res.n_runs} runs; "
            f"{'converged' if res.converged else st.get('message')}; "
            f"{res.starts_line()}.")
    if iv:
        line += (f" Intervals: percentile bootstrap, {b.get('n')} resamples"
                 + (f" clustered by {b.get('cluster')}" if b.get("cluster") else "") + f", seed {b.get('seed')}.")
    sec.blocks.append(("p", line))
    figs: list[Figure] = []
    try:
        d = diagnose(res, table)
        sec.blocks.append(("p", f"Diagnosis: {d.n_optima} distinct optima among {d.n_converged} converged starts; "
                                f"Hessian condition number {d.hessian['condition_number']:.3g}"
                                f"{'' if d.hessian['positive_definite'] else ' (not positive definite)'}."))
        lines = list(dict.fromkeys([w["message"] for w in res.warnings] + [w["message"] for w in d.warnings]))
        if lines:
            sec.blocks.append(("ul", lines))
        else:
            sec.blocks.append(("p", "No identifiability warnings."))
    except ScalingLawsError as exc:
        sec.blocks.append(("ul", [f"diagnosis failed: {exc}"]))
    stem = law.name
    from scalinglaws.viz.plotting import plot_fit
    for name, caption, make in (
            ("fit", "the law's own picture of the fit: runs (dots) and the fitted law (lines)",
             lambda: plot_fit(res, table)),
            ("parity", "predicted against observed (fit on all runs)", lambda: F.parity(res, table)),
            ("residuals", "residuals against N and D (fit on all runs)", lambda: F.residuals(res, table)),
            ("isoloss", "iso-loss contours, iso-FLOP lines and the compute-optimal frontier (16-bit)"
             + (f"; the star is the optimum at C = {flops:.3g} FLOPs" if flops else ""),
             lambda: F.isoloss(res, table, flops=flops)),
            ("penalty", "loss added by quantization: observed (dots) and fitted (crosses)",
             lambda: F.penalty(res, table))):
        try:
            fig = make()
        except ScalingLawsError as exc:
            sec.blocks.append(("ul", [f"{name} figure not drawn: {exc}"]))
            continue
        if fig is None:
            continue
        f = Figure(f"{stem}-{name}", f"{law.name}: {caption}", F.figure_png(fig))
        figs.append(f)
        sec.blocks.append(("fig", f))
    return sec, figs


def write_report(runs, laws, out_dir: str | os.PathLike, *, flops: float | None = None, holdout: str | None = None,
                 bootstrap: int = 0, cluster: str | None = None, level: float = LEVEL,
                 options: FitOptions | None = None, mapping=None, title: str | None = None,
                 progress: Callable[[str, float], None] | None = None, **option_values) -> dict:
    """Fit ``laws`` to ``runs`` and write ``report.html`` and ``report.md`` (+ ``figures/``) into ``out_dir``.

    ``holdout`` is the extrapolation split (default: the largest model size),
    ``bootstrap`` the number of resamples for intervals (0: none; needs
    ``scalinglaws.bootstrap``), ``cluster`` a column to resample by (``"N"``),
    ``flops`` the budget for the planners, ``options`` (or single fields such as
    ``where``, ``seed``) the :class:`~scalinglaws.fitting.options.FitOptions` of every fit
    (``seed`` also seeds the bootstrap).  ``progress(stage, fraction)`` is called as work
    proceeds.  Returns the paths written and the comparison as plain data.
    """
    from scalinglaws.viz import figures as F
    out_dir = os.fspath(out_dir)
    if flops is not None and not (isinstance(flops, (int, float)) and math.isfinite(flops) and flops > 0):
        raise OptionError("flops", f"must be a finite number > 0, got {flops}")
    if not (isinstance(bootstrap, int) and bootstrap >= 0):
        raise OptionError("bootstrap", f"must be a whole number >= 0, got {bootstrap}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OptionError("out", f"{out_dir} is a file; the report is a folder (report.html, report.md, figures/)")
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {out_dir}: folder {parent} does not exist")
    try:  # before any work: a folder that cannot be made is said at once
        os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write {out_dir}: {exc.strerror or exc}") from None
    tick = progress or (lambda stage, f: None)
    opts = FitOptions.of(options, **option_values)
    table, opts = filtered_table(runs, None, opts, mapping=mapping, required=())
    if cluster is not None and cluster not in table.columns:
        raise OptionError("cluster", f"{cluster}: the table has no column {cluster!r}", file=table.attrs.get("source"))
    tick("fitting", 0.0)
    comp: Comparison = compare(table, laws, holdout=holdout, level=level, options=opts,
                               progress=lambda f: tick("fitting", f))
    seed = opts.seed
    if bootstrap:
        ok = [e for e in comp.entries if e.fit is not None]
        for i, e in enumerate(ok):
            e.fit = bootstrap_fit(e.fit, table, bootstrap, cluster=cluster, seed=seed, progress=
                               lambda f, i=i: tick("bootstrap", (i + f / 2) / len(ok)))
            if e.heldout is not None:
                train = subset(table, table.index.isin(e.heldout.train_index))
                # (the held-out fit's band only: no path probe, whose warning this fit's page does not show)
                e.heldout.fit = bootstrap_fit(e.heldout.fit, train, bootstrap, cluster=cluster, seed=seed, probe=0,
                                              progress=lambda f, i=i: tick("bootstrap", (i + 0.5 + f / 2) / len(ok)))
    sections: list[Section] = [data_summary(table)]
    figures: list[Figure] = []
    ok = [e for e in comp.entries if e.fit is not None]
    for i, e in enumerate(ok):
        sec, figs = _law_section(e, table, flops)
        sections.append(sec)
        figures += figs
        tick("figures", (i + 1) / max(1, len(ok)))
    failed = [e for e in comp.entries if e.fit is None]
    if failed:
        sections.append(Section("Laws not fitted", [("ul", [f"{e.law}: {e.error}" for e in failed])]))

    # extrapolation ---------------------------------------------------------------------------
    ext = Section("Extrapolation check")
    if comp.split:
        ext.blocks.append(("p", f"Each law is fitted again without the held-out runs ({comp.split}) and scored on "
                                f"them. Error = predicted - observed; each held-out run gets a {level:.0%} prediction "
                                f"interval (bootstrap refits and a robust noise scale). "
                                + RULE.format(level=level)[0].upper() + RULE.format(level=level)[1:] + "."))
        rows = []
        for e in ok:
            h = e.heldout
            if h is None:
                rows.append([e.law, "-", "-", "-", "-", "-", "-", e.heldout_error or "not checked"])
                continue
            rows.append([e.law, h.n_train, h.n_test, h.errors["mean_abs_error"], h.errors["max_abs_error"],
                         h.errors["bias"], h.n_outside, h.outcome])
        ext.blocks.append(("table", ["law", "fitted runs", "held-out runs", "mean |error|", "max |error|", "bias",
                                     f"outside {level:.0%} interval", "verdict"], rows))
        for e in ok:
            h = e.heldout
            if h is None:
                continue
            ext.blocks.append(("h3", e.law))
            ext.blocks.append(("p", h.verdict))
            train = subset(table, table.index.isin(h.train_index))
            test = subset(table, ~table.index.isin(h.train_index))
            try:
                hasb = bool(samples_of(h.fit))
                fig = F.extrapolation(h.fit, train, test)
                f = Figure(f"{e.law}-extrapolation", f"{e.law}: fit without the held-out runs ({comp.split}), "
                           f"carried to them" + (" with the bootstrap band" if hasb else ""), F.figure_png(fig))
                figures.append(f)
                ext.blocks.append(("fig", f))
                fig = F.parity(h.fit, train, test)
                f = Figure(f"{e.law}-heldout-parity", f"{e.law}: parity of the fit without the held-out runs "
                           f"(held-out runs in red)", F.figure_png(fig))
                figures.append(f)
                ext.blocks.append(("fig", f))
            except ScalingLawsError as exc:
                ext.blocks.append(("ul", [f"extrapolation figure not drawn: {exc}"]))
    else:
        ext.blocks.append(("p", "No extrapolation check: " + "; ".join(comp.notes or ["no split"])))
    sections.append(ext)

    # comparison --------------------------------------------------------------------------------
    cmp_sec = Section("Comparison")
    rows = []
    for e in comp.entries:
        if e.fit is None:
            rows.append([e.law, "-", "-", "-", "-", "-", "-", "not fitted"])
            continue
        rows.append([e.law, e.fit.n_runs, e.n_free, e.fit.objective, e.criteria.get("aic"), e.criteria.get("bic"),
                     e.heldout.errors["mean_abs_error"] if e.heldout else None,
                     "" if e.comparable else "not comparable"])
    cmp_sec.blocks.append(("table", ["law", "runs", "free parameters", "objective", "AIC", "BIC",
                                     "held-out mean |error|", "note"], rows))
    cmp_sec.blocks.append(("table", ["measure", "winner", "why"],
                           [[m, comp.label(m), comp.verdicts.get(m, "")] for m in comp.winners]))
    cmp_sec.blocks.append(("p", "AIC and BIC use the Gaussian form with 2 x the summed robust objective in place of "
                                "the residual sum of squares: exact for --loss mse, a pseudo-likelihood for Huber. "
                                "Lower is better; a measure names no winner (a tie) where the best law leads by "
                                "at most 2 units of AIC or BIC, 1e-6 of the objective, or one run's noise of "
                                "held-out error, or where a held-out check cannot tell (docs/trust.md)."))
    if comp.notes:
        cmp_sec.blocks.append(("ul", comp.notes))
    sections.append(cmp_sec)

    # planners ----------------------------------------------------------------------------------
    plan = Section("Planner answers")
    answers = {}
    if flops is None:
        plan.blocks.append(("p", "No compute budget given (--flops)."))
    else:
        for e in ok:
            ans = planner_answers(e.fit, flops)
            answers[e.law] = ans
            for a in ans:
                plan.blocks.append(("h3", f"{e.law}: {a['planner']} at C = {flops:.3g} FLOPs"))
                if "error" in a:
                    plan.blocks.append(("ul", [a["error"]]))
                    continue
                iv = a.get("intervals") or {}
                cols = ["quantity", "value"] + ([f"{a.get('level', 0.95):.0%} interval low", "high"] if iv else [])
                rws = []
                for k, v in a["values"].items():
                    show = human if k.startswith(("N", "D")) and k not in ("N_eff_over_N",) else _fmt
                    r = [k, show(v) if show is human and math.isfinite(v) else v]
                    if iv:
                        lo, hi = iv.get(k, (None, None))
                        r += [show(lo) if show is human and lo is not None and math.isfinite(lo) else lo,
                              show(hi) if show is human and hi is not None and math.isfinite(hi) else hi]
                    rws.append(r)
                plan.blocks.append(("table", cols, rws))
                if a.get("summary"):
                    plan.blocks.append(("p", a["summary"]))
        if not any(answers.values()):
            plan.blocks.append(("p", "None of these laws has a planner that takes a compute budget."))
    sections.append(plan)

    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    title = title or f"Scaling-law report: {', '.join(e.law for e in comp.entries)}"
    sections[0].blocks.insert(0, ("p", f"Made by scalinglaws {__version__} on {stamp}."))
    fig_dir = os.path.join(out_dir, "figures")  # made at the start
    paths = []
    for f in figures:
        p = os.path.join(fig_dir, f"{f.name}.png")
        write_atomic(p, f.png)
        paths.append(p)
    html_path, md_path = os.path.join(out_dir, "report.html"), os.path.join(out_dir, "report.md")
    write_atomic(html_path, render_html(title, sections))
    write_atomic(md_path, render_markdown(title, sections))
    _remove_stale_figures(fig_dir, paths)
    return {"html": html_path, "markdown": md_path, "figures": paths, "comparison": comp.to_dict(),
            "planners": answers, "bootstrap": bootstrap}

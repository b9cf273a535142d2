"""``scalinglaws validate``, ``compare``, ``diagnose`` and ``report``: parse options, call the library, print."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape

from scalinglaws.cli.common import QUIET, console, guard_overwrite, handle_errors, print_json, progress_bar, table
from scalinglaws.cli.fit_cmds import LAW, law_or_default
from scalinglaws.cli.options import fit_options
from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.fitting import defaults

_RUNS = typer.Argument(..., metavar="RUNS", help="Run table (CSV or Parquet), one row per training run.")
_LEVEL = typer.Option(defaults.LEVEL, "--level", help="Level of the held-out runs' prediction intervals behind the verdict.")
_JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _print_errors_table(title: str, rows: list, level: float) -> None:
    from scalinglaws.trust.validate import RULE
    cols = ["split", "fitted runs", "held-out runs", "mean |error|", "max |error|", "bias", "outside", "verdict"]
    console.print(table(title, cols, rows))
    console.print(RULE.format(level=level), highlight=False)


def _row(v) -> list:
    e = v.errors
    return [v.split, v.n_train, v.n_test, e["mean_abs_error"], e["max_abs_error"], e["bias"], v.n_outside, v.outcome]


def _colour(outcome: str) -> str:
    return {"PASS": "[green]", "FAIL": "[red]"}.get(outcome, "[yellow]")


@handle_errors
@fit_options("loss", "delta", "space", "starts", "seed", "where", "fix")
def validate_cmd(
    runs: str = _RUNS,
    law: Optional[str] = LAW,
    holdout: Optional[str] = typer.Option(None, "--holdout", metavar="EXPR",
                                          help="Hold out the runs matching EXPR (e.g. \"N>=1e9\"), fit on the rest."),
    leave_one_out: Optional[str] = typer.Option(None, "--leave-one-out", metavar="N|D",
                                                help="One check per distinct N (or D): hold its runs out."),
    forward: bool = typer.Option(False, "--forward", help="With --leave-one-out: fit on smaller values only."),
    level: float = _LEVEL,
    *,
    options, mapping,
    quiet: bool = QUIET,
    as_json: bool = _JSON,
):
    """Extrapolation check: fit without some runs, predict them, report the error and a verdict."""
    from scalinglaws.data.runs import parse_mapping
    from scalinglaws.trust import validate as V
    law = law_or_default(law).name
    if (holdout is None) == (leave_one_out is None):
        raise InputError("give one of --holdout EXPR or --leave-one-out N|D")
    if forward and leave_one_out is None:
        raise OptionError("forward", "applies to --leave-one-out")
    kw = dict(options=options, level=level, mapping=parse_mapping(mapping))
    if holdout is not None:
        with progress_bar(not (as_json or quiet)) as prog:
            prog.add_task(f"fitting {law} without {holdout}", total=None)
            v = V.holdout(runs, law, holdout, **kw)
        if as_json:
            print_json(v.to_dict())
            return
        console.print(f"[bold]{v.law}[/] fitted on {v.n_train} runs, scored on the {v.n_test} held-out runs "
                      f"({holdout}); error = predicted - observed", highlight=False)
        _print_errors_table(None, [_row(v)], v.level)
        console.print(table("held-out runs", list(v.runs.columns), v.runs.head(40).values.tolist()))
        if len(v.runs) > 40:
            console.print(f"... {len(v.runs) - 40} more runs (--json for all)", highlight=False)
        console.print(_colour(v.outcome) + escape(v.verdict) + "[/]", highlight=False)
        return
    by = leave_one_out.strip()
    with progress_bar(not (as_json or quiet)) as prog:
        task = prog.add_task(f"leave-one-{by}-out" + (" (forward)" if forward else ""), total=1.0)
        res = V.leave_one_out(runs, law, by, forward=forward, progress=lambda f: prog.update(task, completed=f),
                              **kw)
    if as_json:
        print_json(res.to_dict())
        return
    console.print(f"[bold]{res.law}[/]: leave one {by} out" + (", fitting on smaller values only" if forward else ""),
                  highlight=False)
    if res.folds:
        _print_errors_table(None, [_row(f) for f in res.folds], res.level)
    for s in res.skipped:
        console.print(f"skipped {s['split']}: {s['reason']}", highlight=False)
    console.print(_colour(res.outcome) + escape(res.verdict) + "[/]", highlight=False)


@handle_errors
@fit_options("loss", "delta", "space", "starts", "seed", "where")
def compare_cmd(
    runs: str = _RUNS,
    laws: str = typer.Option(..., "--laws", metavar="LAW,LAW", help="Comma list of laws ('scalinglaws laws')."),
    holdout: Optional[str] = typer.Option(None, "--holdout", metavar="EXPR",
                                          help="Held-out split shared by all laws (default: the largest N); "
                                               "\"\" for none."),
    level: float = _LEVEL,
    *,
    options, mapping,
    quiet: bool = QUIET,
    as_json: bool = _JSON,
):
    """Compare laws side by side: parameters, objective, AIC, BIC, held-out error, winner per measure."""
    from scalinglaws.data.runs import parse_mapping
    from scalinglaws.trust.compare import compare, parse_laws
    names = parse_laws(laws)
    with progress_bar(not (as_json or quiet)) as prog:
        task = prog.add_task(f"fitting {len(names)} laws", total=1.0)
        c = compare(runs, names, holdout=holdout, level=level, options=options, mapping=parse_mapping(mapping),
                    progress=lambda f: prog.update(task, completed=f))
    if as_json:
        print_json(c.to_dict())
        return
    ok = [e for e in c.entries if e.fit is not None]
    rows = [[e.law, e.fit.n_runs, e.n_free, e.fit.objective, e.criteria["aic"], e.criteria["bic"],
             e.heldout.errors["mean_abs_error"] if e.heldout else None,
             e.heldout.errors["bias"] if e.heldout else None, "" if e.comparable else "not comparable"] for e in ok]
    console.print(table(f"laws on {runs} ({c.loss['loss']}, {c.loss['space']} space); held out: {c.split or 'none'}",
                        ["law", "runs", "free", "objective", "AIC", "BIC", "held-out |error|", "held-out bias",
                         "note"], rows))
    names_all = list(dict.fromkeys(k for e in ok for k in e.fit.params))
    if len(ok) > 1 or names_all:
        prow = [[k] + [e.fit.params.get(k) if k in e.fit.params else "" for e in ok] for k in names_all]
        console.print(table("parameters", ["parameter"] + [e.law for e in ok], prow))
    for e in c.entries:
        if e.fit is None:
            console.print(f"[yellow]not fitted:[/] {e.law}: {e.error}", highlight=False)
            continue
        for w in e.fit.warnings:
            console.print(f"[yellow]warning ({e.law}, {w['code']}):[/] {escape(w['message'])}", highlight=False)
        if e.heldout_error:
            console.print(f"[yellow]no held-out check for {e.law}:[/] {e.heldout_error}", highlight=False)
    console.print(table("winner by each measure (lower is better; a tie where the data cannot tell)",
                        ["measure", "winner", "why"],
                        [[m, c.label(m), c.verdicts.get(m, "")] for m in c.winners]))
    for n in c.notes:
        console.print(f"note: {n}", highlight=False)
    console.print("AIC/BIC: Gaussian form with 2 x the summed robust objective as the residual sum of squares "
                  "(a pseudo-likelihood for Huber; exact for mse). See docs/trust.md.", highlight=False)


@handle_errors
@fit_options("loss", "delta", "space", "starts", "seed", "where", "fix", "n_jobs")
def diagnose_cmd(
    runs: str = _RUNS,
    law: Optional[str] = LAW,
    near: float = typer.Option(defaults.NEAR, "--near", help="Relative objective gap within which optima count as near-best."),
    converge: int = typer.Option(512, "--converge", metavar="K",
                                 help="Starts run to full convergence (the rest are stopped by successive halving); 0: all."),
    profile: bool = typer.Option(True, "--profile/--no-profile",
                                 help="Profile intervals of every free parameter (open ends: not pinned down)."),
    level: float = typer.Option(defaults.LEVEL, "--level", help="Coverage of the profile intervals."),
    *,
    options, mapping,
    quiet: bool = QUIET,
    as_json: bool = _JSON,
):
    """Diagnose a fit: distinct optima of the start grid, bounds, conditioning, identifiability."""
    from scalinglaws.data.runs import parse_mapping
    from scalinglaws.fitting.api import fit as fit_law
    from scalinglaws.fitting.problem import load_table
    from scalinglaws.trust.diagnose import diagnose
    law_obj = law_or_default(law)
    if not (near >= 0):
        raise OptionError("near", f"must be >= 0, got {near}")
    if not 0 < level < 1:
        raise OptionError("level", f"must be between 0 and 1, got {level}")
    t = load_table(runs, law_obj, mapping=parse_mapping(mapping), where=options.where)
    with progress_bar(not (as_json or quiet)) as prog:
        task = prog.add_task(f"fitting {law_obj.name}", total=1.0)
        res = fit_law(t, law=law_obj, options=options.replace(where=None, converge=converge),
                      progress=lambda f: prog.update(task, completed=f))
    d = diagnose(res, t, near=near, profile=profile, level=level)
    if as_json:
        print_json({**d.to_dict(), "params": res.params, "objective": res.objective})
        return
    console.print(f"[bold]{d.law}[/] on {d.n_runs} runs: objective {res.objective:.10g}", highlight=False)
    distinct = f" ({res.distinct_note})" if res.distinct_note else ""
    console.print(f"start grid: {d.n_starts} starts{distinct}, {d.n_converged} converged, {d.n_optima} distinct optima",
                  highlight=False)
    if d.optima:
        names = list(res.params)
        console.print(table("distinct optima (best first)", ["objective", "rel. gap", "starts"] + names,
                            [[o["objective"], o["rel_gap"], o["n_starts"]] + [o["params"][k] for k in names]
                             for o in d.optima]))
    if d.spread:
        console.print(table(f"spread over the optima within {near:.0%} of the best", ["parameter", "min", "max",
                                                                                      "rel. spread"],
                            [[k, v["min"], v["max"], v["rel_spread"]] for k, v in d.spread.items()]))
    h = d.hessian
    console.print(f"Hessian at the optimum ({h['space']}): condition number {h['condition_number']:.3g}, "
                  f"{'positive definite' if h['positive_definite'] else 'NOT positive definite'}; weakest "
                  f"direction along {', '.join(h['weakest_direction'])}", highlight=False)
    if d.profile and d.profile["params"]:
        pr = d.profile
        rows = []
        for k, iv in pr["params"].items():
            if iv["low"] is None:
                rows.append([k, res.params[k], "-", "-", iv.get("reason", "")])
                continue
            words = {"bound": "reaches the bound", "far": "still open after the longest walk",
                     "failed": "not followed further (no finite value)"}
            notes = [f"{s}: {words[e]}" for s, e in (("low", iv["low_end"]), ("high", iv["high_end"])) if e in words]
            rows.append([k, res.params[k], iv["low"], iv["high"], "; ".join(notes)])
        console.print(table(f"{100 * pr['level']:g}% profile intervals (objective rise <= {pr['threshold']:.3g})",
                            ["parameter", "value", "low", "high", "note"], rows))
    if d.on_bound:
        console.print(f"on a bound: {', '.join(d.on_bound)}", highlight=False)
    if d.warnings:
        for w in d.warnings:
            console.print(f"[yellow]warning ({w['code']}):[/] {w['message']}", highlight=False)
    else:
        console.print("[green]no warnings[/]", highlight=False)


@handle_errors
@fit_options("loss", "delta", "space", "starts", "seed", "where")
def report_cmd(
    runs: str = _RUNS,
    laws: Optional[str] = typer.Option(None, "--laws", metavar="LAW,LAW",
                                       help="Comma list of laws (default: the first registered)."),
    out: str = typer.Option(..., "--out", "-o", metavar="FOLDER", help="Write report.html, report.md, figures/ here."),
    flops: Optional[str] = typer.Option(None, "--flops", help="Compute budget for the planners (suffixes ok)."),
    holdout: Optional[str] = typer.Option(None, "--holdout", metavar="EXPR",
                                          help="Extrapolation split (default: the largest N); \"\" for none."),
    bootstrap: int = typer.Option(0, "--bootstrap", metavar="K", help="Bootstrap resamples for intervals (0: none)."),
    cluster: Optional[str] = typer.Option(None, "--cluster", metavar="COLUMN", help="Resample clusters of runs, e.g. N."),
    level: float = _LEVEL,
    title: Optional[str] = typer.Option(None, "--title", help="Title of the report."),
    *,
    options, mapping,
    force: bool = typer.Option(False, "--force", help="Write into an existing folder that is not a report of ours."),
    quiet: bool = QUIET,
    as_json: bool = _JSON,
):
    """Write a report: one self-contained HTML page and a Markdown twin with its figures."""
    import os

    from scalinglaws.data.runs import parse_mapping
    from scalinglaws.data.units import parse_number
    from scalinglaws.trust.compare import parse_laws
    from scalinglaws.viz.report import write_report
    names = parse_laws(laws if laws is not None else law_or_default(None).name)
    try:
        budget = parse_number(flops, "flops") if flops is not None else None
    except InputError:
        raise OptionError("flops", f"{flops!r} is not a number (e.g. 1e21)") from None
    targets = [os.path.join(out, "report.html"), os.path.join(out, "report.md")]
    if any(os.path.exists(runs) and os.path.exists(t) and os.path.samefile(runs, t) for t in targets) or \
            (os.path.exists(runs) and os.path.isdir(os.path.join(out, "figures"))
             and os.path.samefile(os.path.dirname(os.path.abspath(runs)), os.path.join(out, "figures"))):
        raise InputError(f"refusing to overwrite the input {runs} with the report; choose another --out")
    if os.path.isdir(out):
        guard_overwrite(out, "--out", "report", force)
    with progress_bar(not (as_json or quiet)) as prog:
        task = prog.add_task("report", total=1.0)
        weights = {"fitting": (0.0, 0.45), "bootstrap": (0.45, 0.35), "figures": (0.8, 0.2)}

        def tick(stage, f):
            a, w = weights.get(stage, (0.0, 1.0))
            prog.update(task, completed=a + w * f, description=stage)
        r = write_report(runs, names, out, flops=budget, holdout=holdout, bootstrap=bootstrap, cluster=cluster,
                         level=level, title=title, options=options, mapping=parse_mapping(mapping),
                         progress=tick)
    if as_json:
        print_json(r)
        return
    w = r["comparison"]["labels"]
    console.print(f"wrote {r['html']} (self-contained) and {r['markdown']} with {len(r['figures'])} figures in "
                  f"{os.path.join(out, 'figures')}", highlight=False)
    console.print("winners: " + ", ".join(f"{m} {v}" for m, v in w.items()), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_cmd)
    app.command("compare")(compare_cmd)
    app.command("diagnose")(diagnose_cmd)
    app.command("report")(report_cmd)

"""``scalinglaws fit``, ``predict`` and ``laws``: parse options, call the library, print.

Heavy imports (numpy, pandas, the fitter) happen inside the commands, so that
``scalinglaws --help`` starts quickly.
"""

from __future__ import annotations

import math

import functools
import inspect
import os
from typing import Optional

import typer

from rich.markup import escape

from scalinglaws.cli.common import (QUIET, console, fmt, guard_overwrite, handle_errors, print_caveats, print_json,
                                    progress_bar, table)
from scalinglaws.cli.options import fit_options
from scalinglaws.data.errors import InputError, OptionError, ScalingLawsError
from scalinglaws.data.schema import CANONICAL, COUNT_COLUMNS
from scalinglaws.fitting import defaults

FORCE = typer.Option(False, "--force", help="Write over an existing output file this command did not make.")
LAW = typer.Option(None, "--law", "-l", metavar="LAW",
                   help="Law family ('scalinglaws laws' lists them; default: the first registered).")


def law_or_default(name: str | None):
    from scalinglaws.laws import DEFAULT_LAW, get_law
    return get_law(name if name is not None else DEFAULT_LAW)


def _same_file(a: str, b: str) -> bool:
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def guard_output(out: str | None, flag: str, *inputs: str) -> None:
    """Refuse to write over one of the user's inputs."""
    if out is None:
        return
    for i in inputs:
        if i and _same_file(out, i):
            raise InputError(f"refusing to overwrite the input {i} with the output of {flag}; choose another {flag}")


@handle_errors
@fit_options()
def fit_cmd(
    runs: str = typer.Argument(..., metavar="RUNS", help="Run table (CSV or Parquet), one row per training run."),
    law: Optional[str] = LAW,
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FIT.json", help="Write the fit here (JSON)."),
    plot: Optional[str] = typer.Option(None, "--plot", metavar="FILE",
                                       help="Draw the law's picture of the fit here (.png, .pdf, .svg, .jpg)."),
    style: Optional[str] = typer.Option(None, "--style", metavar="screen|paper",
                                        help="Look of --plot: screen (default) or paper (one column, 3.4 in wide, "
                                             "serif, 300 dpi)."),
    *,
    options, mapping,
    bootstrap: int = typer.Option(0, "--bootstrap", metavar="R",
                                  help="Refit R resamples of the runs for percentile intervals."),
    cluster: Optional[str] = typer.Option(None, "--cluster", metavar="COLUMN",
                                          help="Bootstrap by whole groups of runs sharing COLUMN (e.g. N: by model size)."),
    level: Optional[float] = typer.Option(None, "--level", help="Coverage of the bootstrap and profile intervals "
                                                                 f"(default {defaults.LEVEL:g})."),
    profile: bool = typer.Option(False, "--profile",
                                 help="Profile intervals: refit with each parameter held along its range; an "
                                      "interval that reaches a bound is a parameter the data cannot pin down."),
    force: bool = FORCE,
    quiet: bool = QUIET,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Fit a law to a run table by robust multi-start minimisation."""
    from scalinglaws.data.runs import parse_mapping
    from scalinglaws.fitting.api import fit as fit_law
    from scalinglaws.fitting.problem import filtered_table
    law_obj = law_or_default(law)
    guard_output(out, "--out", runs)
    guard_output(plot, "--plot", runs)
    if out and not out.lower().endswith(".json"):
        raise OptionError("out", f"{out}: a fit is written as JSON; give a name ending in .json")
    guard_overwrite(out, "--out", "fit", force)
    guard_overwrite(plot, "--plot", "figure", force)
    if style is not None and not plot:
        raise OptionError("style", "applies to --plot; give --plot FILE too")
    if plot:  # before the fit: a figure that cannot be drawn is said at once
        from scalinglaws.viz.plotting import check_figure_path, get_style
        check_figure_path(plot)
        get_style(style)
    table_, fit_options = filtered_table(runs, law_obj, options, mapping=parse_mapping(mapping))
    if bootstrap < 0 or bootstrap == 1:
        raise OptionError("bootstrap", f"must be 0 (none) or at least 2 resamples, got {bootstrap}")
    if cluster is not None and not bootstrap:
        raise OptionError("cluster", "applies to --bootstrap; give --bootstrap R too")
    if level is not None and not (bootstrap or profile):
        raise OptionError("level", "applies to the intervals of --bootstrap R or --profile; give one of them too")
    level = defaults.LEVEL if level is None else level
    if not 0 < level < 1:
        raise OptionError("level", f"must be between 0 and 1, got {level}")
    with progress_bar(not (as_json or quiet)) as prog:
        task = prog.add_task(f"fitting {law_obj.name}", total=1.0)
        res = fit_law(table_, law=law_obj, options=fit_options,
                      progress=lambda f: prog.update(task, completed=f))
        if bootstrap:
            from scalinglaws.trust.bootstrap import bootstrap as run_bootstrap
            task = prog.add_task(f"bootstrap ({bootstrap} refits)", total=1.0)
            res = run_bootstrap(res, table_, bootstrap, cluster=cluster, seed=options.seed, level=level,
                                n_jobs=options.n_jobs, progress=lambda f: prog.update(task, completed=f))
        if profile:
            from scalinglaws.trust.profile import profile as profile_intervals, profile_warnings
            prog.add_task("profile intervals", total=None)
            prof = profile_intervals(res, table_, level=level)
            res.extra = {**(res.extra or {}), "profile": prof}
            res.warnings = list(res.warnings) + profile_warnings(res.law_obj, prof)
    res.data.update(source=runs, where=options.where, exclude_top=options.exclude_top)
    if out:
        res.save(out)
    if plot:
        from scalinglaws.viz.plotting import plot_fit
        plot_fit(res, table_, plot, style=style)
    if as_json:
        print_json({**res.to_dict(), "out": out, "plot": plot})
        return
    st = res.status
    console.print(f"[bold]{law_obj.name}[/]: {law_obj.formula_text}   ({res.n_runs} runs from {runs})",
                  highlight=False)
    ci = res.intervals()
    pr = ((res.extra or {}).get("profile") or {}).get("params", {})

    def prof_cells(k):
        iv = pr.get(k)
        if not iv or iv.get("low") is None:
            return ["", ""]
        return [f"{fmt(iv['low'])}{' (open)' if iv['low_open'] else ''}",
                f"{fmt(iv['high'])}{' (open)' if iv['high_open'] else ''}"]

    rows = [[k, v] + ([ci[k][0], ci[k][1]] if ci else []) + (prof_cells(k) if pr else [])
            + ["fixed" if k in res.fixed else ("on bound" if k in st.get("on_bound", []) else "")]
            for k, v in res.params.items()]
    pct = f"{100 * level:g}%"
    console.print(table(None, ["parameter", "value"] + ([f"{pct} low", f"{pct} high"] if ci else [])
                        + ([f"{pct} profile low", f"{pct} profile high"] if pr else []) + ["note"], rows))
    o = options
    console.print(f"objective {res.objective:.10g} ({o.loss}{f', delta {o.delta:g}' if o.loss == 'huber' else ''}, "
                  f"{o.space} space, summed)", highlight=False)
    mark = "[green]converged[/]" if res.converged else f"[yellow]{st.get('message')}[/]"
    stopped = f"; {st['n_stopped']} stopped early by successive halving" if st.get("n_stopped") else ""
    console.print(f"{mark}; {res.starts_line(f' (within 1e-6 relative{stopped})')}", highlight=False)
    mapped = res.data.get("columns") or {}
    if mapped:
        console.print("columns: " + ", ".join(f"{k} -> {v}" for k, v in mapped.items()), highlight=False)
    for w in res.warnings:
        console.print(f"[yellow]warning ({w['code']}):[/] {escape(w['message'])}", highlight=False)
    if ci:
        b = res.bootstrap
        console.print(f"bootstrap: {b['n']} resamples" + (f" of clusters by {cluster}" if cluster else " of runs")
                      + f", seed {options.seed}; {b['n_failed']} refits did not converge" + _path_line(b.get("path")),
                      highlight=False)
    if out:
        console.print(f"wrote {out}", highlight=False)
    if plot:
        console.print(f"drew {plot}", highlight=False)


#: the run-table columns ``predict`` takes as options (every canonical column but the loss)
PREDICT_COLUMNS = [c for c in CANONICAL if c != "loss"]


def _column_flag(c: str) -> str:
    return "--" + c.replace("_", "-")


def _with_column_options(func):
    """Give ``predict`` one option per canonical column (``--N``, ``--w-bits`` ...), from the schema."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    at = [p.name for p in params].index("columns")
    made = [inspect.Parameter(c, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[str],
                              default=typer.Option(None, _column_flag(c),
                                                   help=CANONICAL[c] + (" (suffixes ok: 7B, 1.4T)"
                                                                        if c in COUNT_COLUMNS else "")
                                                   + "; a comma list for several runs."))
            for c in PREDICT_COLUMNS]
    params = params[:at] + made + params[at + 1:]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        cols = {c: kwargs.pop(c) for c in PREDICT_COLUMNS if c in kwargs}
        return func(*args, columns={k: v for k, v in cols.items() if v is not None}, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {**{k: v for k, v in func.__annotations__.items() if k not in ("columns", "return")},
                               **{c: Optional[str] for c in PREDICT_COLUMNS}}
    return wrapper


def _values(text: str, name: str) -> list[float]:
    from scalinglaws.data.units import SUFFIX_NOTE, parse_number
    out = []
    for v in str(text).split(","):
        try:
            x = parse_number(v.strip(), name)
        except InputError:
            raise OptionError(name, f"{v.strip()!r} is not a number ({SUFFIX_NOTE})") from None
        if not math.isfinite(x):  # a NaN would read as an empty cell (16 bits, say), quietly
            raise OptionError(name, f"{v.strip()!r} is not a finite number")
        out.append(x)
    return out


@handle_errors
@_with_column_options
def predict_cmd(
    fit: str = typer.Argument(..., metavar="FIT", help="A fit.json from 'scalinglaws fit', or a preset name "
                                                        "('scalinglaws laws' lists them)."),
    columns=None,
    grid: Optional[str] = typer.Option(None, "--grid", metavar="TABLE", help="Predict every row of this table instead."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE",
                                      help="With --grid: write the table with the prediction column."),
    interval: str = typer.Option("confidence", "--interval", metavar="confidence|prediction",
                                 help="With a bootstrapped fit: interval of the law's curve (confidence) or of a "
                                      "new run (prediction)."),
    level: Optional[float] = typer.Option(None, "--level", help="Interval coverage (default: the fit's bootstrap level)."),
    force: bool = FORCE,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Predict the loss of runs from a fit or a preset (with intervals when the fit was bootstrapped)."""
    from scalinglaws.fitting.result import resolve_fit
    res = resolve_fit(fit)
    law = res.law_obj
    if interval not in ("confidence", "prediction"):
        raise OptionError("interval", f"must be 'confidence' or 'prediction', got {interval!r}")
    boot = bool(res.intervals())
    if interval != "confidence" and not boot:
        raise OptionError("interval", "applies to a bootstrapped fit (scalinglaws fit ... --bootstrap R)")
    caveats: list[dict] = []
    if boot:
        from scalinglaws.trust.bootstrap import interval_caveats
        caveats = interval_caveats(res)
    if level is not None and not boot:
        raise OptionError("level", "applies to a bootstrapped fit (scalinglaws fit ... --bootstrap R)")

    def with_intervals(runs, into) -> None:
        if boot:
            from scalinglaws.trust.bootstrap import predict_interval
            iv = predict_interval(res, runs, level=level, kind=interval)
            into[f"{law.predicts}_low"] = iv["low"].to_numpy()
            into[f"{law.predicts}_high"] = iv["high"].to_numpy()

    given = columns
    if grid is not None:
        from scalinglaws.data.atomic import write_atomic
        from scalinglaws.data.runs import load_runs, read_table
        if given:
            raise OptionError("grid", "takes the runs from a table: give it or column options (--N, --D, ...), "
                                      "not both")
        guard_output(out, "--out", grid, fit)
        if out and not out.lower().endswith((".csv", ".tsv", ".tab", ".parquet", ".pq")):
            raise OptionError("out", f"{out}: the table is written as CSV (.csv), tab-separated (.tsv, .tab) or "
                                     f"Parquet (.parquet, .pq)")
        guard_overwrite(out, "--out", "table", force)
        raw = read_table(grid)
        runs = load_runs(raw, required=law.required_columns(), name=grid)
        pred = law.predict(res.params, runs)
        raw[f"{law.predicts}_pred"] = pred
        with_intervals(runs, raw)
        if out:
            if out.lower().endswith((".parquet", ".pq")):
                import io
                from scalinglaws.data.runs import typed_columns
                buf = io.BytesIO()
                typed_columns(raw).to_parquet(buf, index=False)  # numbers as numbers (a CSV keeps the cells)
                write_atomic(out, buf.getvalue())
            else:
                write_atomic(out, raw.to_csv(index=False, sep="\t" if out.lower().endswith((".tsv", ".tab")) else ","))
        if as_json:
            print_json({"law": law.name, "fit": fit, "out": out, "predictions": raw.to_dict(orient="records"),
                        **({"caveats": caveats} if boot else {})})
        else:
            console.print(table(f"{law.name} predictions ({len(raw)} rows)", list(raw.columns),
                                raw.head(50).values.tolist()))
            if len(raw) > 50:
                console.print(f"... {len(raw) - 50} more rows", highlight=False)
            if boot:
                print_caveats(caveats)
            if out:
                console.print(f"wrote {out}", highlight=False)
        return
    elif out:
        raise OptionError("out", "applies to --grid only")
    import numpy as np
    from scalinglaws.data.columns import Columns
    cols = {k: _values(v, k) for k, v in given.items()}
    missing = [c for c in law.required_columns() if c not in cols]
    if missing:
        raise InputError(f"law '{law.name}' needs {', '.join(_column_flag(m) for m in missing)}")
    lengths = {len(v) for v in cols.values() if len(v) > 1}
    if len(lengths) > 1:
        raise InputError("comma lists must have the same length (or a single value)")
    runs = Columns(cols, source="the command line").check()
    frame = {c: runs[c] for c in cols}
    frame[f"{law.predicts}_pred"] = pred = law.predict(res.params, runs)
    notes = []   # a flag the prediction does not depend on: the law does not read it (or reads it at its default)
    for c in cols:
        if c in law.required_columns():
            continue
        try:
            without = law.predict(res.params, Columns({k: v for k, v in cols.items() if k != c},
                                                      source="the command line").check())
        except ScalingLawsError:
            continue   # the law needs it after all (a format's bits, say)
        if np.array_equal(without, pred, equal_nan=True):
            notes.append(f"{_column_flag(c)} makes no difference to the prediction: law '{law.name}' does not "
                         f"read {c}, or reads this value as its default")
    with_intervals(runs, frame)
    names = list(frame)
    records = [{k: float(frame[k][i]) for k in names} for i in range(runs.n)]
    if as_json:
        print_json({"law": law.name, "fit": fit, "params": res.params, "predictions": records, "notes": notes,
                    **({"interval": interval, "level": level or res.bootstrap["level"], "caveats": caveats}
                       if boot else {})})
        return
    title = f"{law.name} ({fit})" + (f", {interval} intervals" if boot else "")
    console.print(table(title, names, [[r[k] for k in names] for r in records]))
    for n in notes:
        console.print(f"note: {n}", highlight=False)
    if boot:
        print_caveats(caveats)


@handle_errors
def laws_cmd(
    name: Optional[str] = typer.Argument(None, help="Show one law in detail."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """List the registered law families: formula, parameters, columns, presets, planners."""
    from scalinglaws.laws import REGISTRY, get_law
    laws = [get_law(name)] if name else list(REGISTRY.values())
    if as_json:
        print_json([law.describe() for law in laws])
        return
    if not name:
        rows = [[law.name, law.formula_text, " ".join(law.param_names), ", ".join(law.required_columns()),
                 ", ".join(law.presets) or "-"] for law in laws]
        t = table("registered laws ('scalinglaws laws NAME' for details)", ["law", "formula", "parameters",
                                                                            "columns", "presets"], rows)
        console.print(t)
        return
    law = laws[0]
    d = law.describe()
    console.print(f"[bold]{law.name}[/]: {law.title}\n  {law.formula_text}\n  {law.reference}", highlight=False)
    console.print(table("parameters", ["name", "meaning", "fitted as", "bounds", "grid points"],
                        [[p["name"], p["doc"], p["fitted_as"], f"{p['bounds'][0]:g} .. {p['bounds'][1]:g}",
                          p["grid_size"]] for p in d["parameters"]]))
    console.print(f"columns: {', '.join(d['columns'])} (+ {law.target}); start grid: {d['start_grid_size']} points; "
                  f"planners: {', '.join(p['kind'] for p in d['planners']) or 'none'}", highlight=False)
    for k, v in law.presets.items():
        console.print(f"preset [bold]{k}[/] ({v.source}): " + ", ".join(f"{a}={b:g}" for a, b in v.values.items()),
                      highlight=False)


def register(app: typer.Typer) -> None:
    app.command("fit")(fit_cmd)
    app.command("predict")(predict_cmd)
    app.command("laws")(laws_cmd)


def _path_line(path) -> str:
    """The bootstrap's path probe in one clause (see ``scalinglaws.trust.bootstrap``)."""
    if not path:
        return ""
    from scalinglaws.trust.bootstrap import SHIFT_WARN
    line = (f"; {path['n']} refitted again from jittered starts: {path['probed']} pairs converged, "
            f"{path['differ']} ended at another optimum, {path['lower']} at a lower one")
    if path["lower"]:
        line += (f" (moving {path['shift_param']} by up to {path['max_shift']:.3g} of its interval's width; "
                 f"warned from {SHIFT_WARN:g})")
    return line

"""``scalinglaws fit``, ``predict`` and ``laws``: parse options, call the library, print."""

from __future__ import annotations

import os
from typing import List, Optional

import numpy as np
import pandas as pd
import typer

from scalinglaws.fitting.api import as_table, fit as fit_law, resolve_fit, write_atomic
from scalinglaws.data.errors import InputError
from scalinglaws.laws import REGISTRY, get_law
from scalinglaws.data.runs import CANONICAL, load_runs, parse_mapping
from scalinglaws.data.units import parse_number

from scalinglaws.cli.common import console, handle_errors, parse_assignments, print_json, progress_bar, table


def _same_file(a: str, b: str) -> bool:
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def _guard_output(out: str | None, *inputs: str) -> None:
    """Refuse to write over one of the user's inputs."""
    if out is None:
        return
    for i in inputs:
        if i and _same_file(out, i):
            raise InputError(f"refusing to overwrite the input {i} with the output; choose another --out")


@handle_errors
def fit_cmd(
    runs: str = typer.Argument(..., metavar="RUNS", help="Run table (CSV or Parquet), one row per training run."),
    law: str = typer.Option("chinchilla", "--law", "-l", metavar="LAW", help="Law family ('scalinglaws laws' lists them)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FIT.json", help="Write the fit here (JSON)."),
    plot: Optional[str] = typer.Option(None, "--plot", metavar="FILE", help="Draw data, fit and residuals here (.png/.pdf/.svg)."),
    loss: str = typer.Option("huber", "--loss", metavar="huber|mse", help="huber or mse (summed over runs)."),
    delta: float = typer.Option(1e-3, "--delta", help="Huber threshold on residuals."),
    space: str = typer.Option("log", "--space", metavar="log|linear", help="Residuals of log(loss) ('log') or loss ('linear')."),
    fix: Optional[List[str]] = typer.Option(None, "--fix", metavar="NAME=VALUE", help="Hold a parameter: NAME=VALUE (repeatable)."),
    where: Optional[str] = typer.Option(None, "--where", metavar="EXPR", help="Keep runs matching, e.g. \"N>=1e8 and D<300B\"."),
    exclude_top: int = typer.Option(0, "--exclude-top", metavar="K", help="Drop the K highest-loss runs."),
    mapping: Optional[List[str]] = typer.Option(None, "--map", metavar="COLUMN=CANONICAL", help="Rename a column: COLUMN=canonical."),
    starts: Optional[int] = typer.Option(None, "--starts", metavar="K", help="Random starts instead of the law's full grid."),
    seed: int = typer.Option(0, "--seed", help="Seed for random starts and bootstrap resampling."),
    bootstrap: int = typer.Option(0, "--bootstrap", metavar="R", help="Refit R resamples of the runs for percentile intervals."),
    cluster: Optional[str] = typer.Option(None, "--cluster", metavar="COLUMN", help="Bootstrap by whole groups of runs sharing COLUMN (e.g. N: by model size)."),
    level: float = typer.Option(0.95, "--level", help="Coverage of the bootstrap intervals."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Fit a law to a run table by robust multi-start minimisation."""
    law_obj = get_law(law)
    _guard_output(out, runs)
    _guard_output(plot, runs)
    if out and not out.lower().endswith(".json"):
        raise InputError(f"--out {out}: a fit is written as JSON; give a name ending in .json")
    table_ = load_runs(runs, mapping=parse_mapping(mapping), required=law_obj.required_columns() + (law_obj.target,),
                       where=where, exclude_top=exclude_top)
    fixed = parse_assignments(fix, "--fix")
    if bootstrap < 0 or bootstrap == 1:
        raise InputError(f"--bootstrap must be 0 (none) or at least 2 resamples, got {bootstrap}")
    if cluster is not None and not bootstrap:
        raise InputError("--cluster applies to --bootstrap; give --bootstrap R too")
    if not 0 < level < 1:
        raise InputError(f"--level must be between 0 and 1, got {level}")
    with progress_bar(not as_json) as prog:
        task = prog.add_task(f"fitting {law_obj.name}", total=1.0)
        res = fit_law(table_, law=law_obj, loss=loss, delta=delta, space=space, fix=fixed, starts=starts,
                      seed=seed, progress=lambda f: prog.update(task, completed=f))
        if bootstrap:
            from scalinglaws.trust.bootstrap import bootstrap as run_bootstrap
            task = prog.add_task(f"bootstrap ({bootstrap} refits)", total=1.0)
            res = run_bootstrap(res, table_, bootstrap, cluster=cluster, seed=seed, level=level,
                                progress=lambda f: prog.update(task, completed=f))
    res.data.update(source=runs, where=where, exclude_top=exclude_top)
    if out:
        res.save(out)
    if plot:
        from scalinglaws.viz.plotting import plot_fit
        plot_fit(res, table_, plot)
    if as_json:
        print_json({**res.to_dict(), "out": out, "plot": plot})
        return
    st = res.status
    console.print(f"[bold]{law_obj.name}[/]: {law_obj.formula}   ({res.n_runs} runs from {runs})", highlight=False)
    ci = res.intervals()
    rows = [[k, v] + ([ci[k][0], ci[k][1]] if ci else [])
            + ["fixed" if k in res.fixed else ("on bound" if k in st.get("on_bound", []) else "")]
            for k, v in res.params.items()]
    pct = f"{100 * level:g}%"
    console.print(table(None, ["parameter", "value"] + ([f"{pct} low", f"{pct} high"] if ci else []) + ["note"], rows))
    console.print(f"objective {res.objective:.10g} ({loss}{f', delta {delta:g}' if loss == 'huber' else ''}, "
                  f"{space} space, summed)", highlight=False)
    mark = "[green]converged[/]" if res.converged else f"[yellow]{st.get('message')}[/]"
    stopped = f"; {st['n_stopped']} stopped early by successive halving" if st.get("n_stopped") else ""
    console.print(f"{mark}; {st.get('n_best')} of {st.get('n_starts')} starts reached the best optimum "
                  f"(within 1e-6 relative{stopped})", highlight=False)
    if st.get("on_bound"):
        console.print(f"[yellow]warning:[/] on a bound: {', '.join(st['on_bound'])} (widen the bounds or fix "
                      f"the parameter; the data may not identify it)", highlight=False)
    if ci:
        b = res.extra["bootstrap"]
        console.print(f"bootstrap: {b['n']} resamples" + (f" of clusters by {cluster}" if cluster else " of runs")
                      + f", seed {seed}; {b['n_failed']} refits did not converge", highlight=False)
    if out:
        console.print(f"wrote {out}", highlight=False)
    if plot:
        console.print(f"drew {plot}", highlight=False)


_COLUMN_OPTIONS = ("N", "D", "w_bits", "a_bits", "kv_bits", "ptq_bits", "group_size", "exp_bits", "man_bits",
                   "D_fp", "D_qat", "loss_fp")


def _values(text: str, name: str) -> np.ndarray:
    return np.array([parse_number(v.strip(), f"--{name.replace('_', '-')}") for v in str(text).split(",")])


@handle_errors
def predict_cmd(
    fit: str = typer.Argument(..., metavar="FIT", help="A fit.json from 'scalinglaws fit', or a preset name (hoffmann2022)."),
    N: Optional[str] = typer.Option(None, "--N", help="Parameters (suffixes ok; comma list for several)."),
    D: Optional[str] = typer.Option(None, "--D", help="Training tokens (suffixes ok; comma list)."),
    w_bits: Optional[str] = typer.Option(None, "--w-bits", help="Weight bits."),
    a_bits: Optional[str] = typer.Option(None, "--a-bits", help="Activation bits."),
    kv_bits: Optional[str] = typer.Option(None, "--kv-bits", help="Key/value bits."),
    ptq_bits: Optional[str] = typer.Option(None, "--ptq-bits", help="Post-training quantization bits."),
    group_size: Optional[str] = typer.Option(None, "--group-size", help="Elements per scale."),
    exp_bits: Optional[str] = typer.Option(None, "--exp-bits", help="Exponent bits (FP formats)."),
    man_bits: Optional[str] = typer.Option(None, "--man-bits", help="Mantissa bits (FP formats)."),
    D_fp: Optional[str] = typer.Option(None, "--D-fp", help="Full-precision tokens before QAT."),
    D_qat: Optional[str] = typer.Option(None, "--D-qat", help="QAT tokens."),
    loss_fp: Optional[str] = typer.Option(None, "--loss-fp", help="Loss before PTQ (degradation laws)."),
    grid: Optional[str] = typer.Option(None, "--grid", metavar="TABLE", help="Predict every row of this table instead."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE", help="With --grid: write the table with loss_pred."),
    interval: str = typer.Option("confidence", "--interval", metavar="confidence|prediction",
                                 help="With a bootstrapped fit: interval of the law's curve (confidence) or of a new run (prediction)."),
    level: Optional[float] = typer.Option(None, "--level", help="Interval coverage (default: the fit's bootstrap level)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Predict the loss of runs from a fit or a preset (with intervals when the fit was bootstrapped)."""
    res = resolve_fit(fit)
    law = get_law(res.law)
    if interval not in ("confidence", "prediction"):
        raise InputError(f"--interval must be 'confidence' or 'prediction', got {interval!r}")
    boot = bool(res.intervals())
    if level is not None and not boot:
        raise InputError("--level applies to a bootstrapped fit (scalinglaws fit ... --bootstrap R)")

    def with_intervals(table_: pd.DataFrame, into: pd.DataFrame) -> None:
        if boot:
            from scalinglaws.trust.bootstrap import predict_interval
            iv = predict_interval(res, table_, level=level, kind=interval)
            into[f"{law.predicts}_low"] = iv["low"].to_numpy()
            into[f"{law.predicts}_high"] = iv["high"].to_numpy()
    given = {k: v for k, v in dict(N=N, D=D, w_bits=w_bits, a_bits=a_bits, kv_bits=kv_bits, ptq_bits=ptq_bits,
                                   group_size=group_size, exp_bits=exp_bits, man_bits=man_bits, D_fp=D_fp,
                                   D_qat=D_qat, loss_fp=loss_fp).items() if v is not None}
    if grid is not None:
        if given:
            raise InputError("give either --grid or column options (--N, --D, ...), not both")
        _guard_output(out, grid, fit)
        runs = load_runs(grid, required=law.required_columns())
        pred = law.predict(res.params, runs)
        raw = pd.read_parquet(grid) if grid.lower().endswith((".parquet", ".pq")) else \
            pd.read_csv(grid, dtype=str, keep_default_na=False)
        raw[f"{law.predicts}_pred"] = pred
        with_intervals(runs, raw)
        if out:
            if out.lower().endswith((".parquet", ".pq")):
                import io
                buf = io.BytesIO()
                raw.to_parquet(buf, index=False)
                write_atomic(out, buf.getvalue())
            else:
                write_atomic(out, raw.to_csv(index=False))
        if as_json:
            print_json({"law": law.name, "fit": fit, "out": out, "predictions": raw.to_dict(orient="records")})
        else:
            console.print(table(f"{law.name} predictions ({len(raw)} rows)", list(raw.columns),
                                raw.head(50).values.tolist()))
            if len(raw) > 50:
                console.print(f"... {len(raw) - 50} more rows", highlight=False)
            if out:
                console.print(f"wrote {out}", highlight=False)
        return
    elif out:
        raise InputError("--out applies to --grid only")
    cols = {k: _values(v, k) for k, v in given.items()}
    missing = [c for c in law.required_columns() if c not in cols and c not in ("w_bits", "a_bits", "kv_bits",
                                                                                 "ptq_bits")]
    if missing:
        raise InputError(f"law '{law.name}' needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
    lengths = {len(v) for v in cols.values() if len(v) > 1}
    if len(lengths) > 1:
        raise InputError("comma lists must have the same length (or a single value)")
    runs = as_table(cols, law)
    for c in law.required_columns():
        if c not in runs.columns:
            runs[c] = 16.0
    shown = [c for c in runs.columns if c in given]
    frame = runs[shown].copy()
    frame[f"{law.predicts}_pred"] = law.predict(res.params, runs)
    with_intervals(runs, frame)
    records = frame.astype(float).to_dict(orient="records")
    if as_json:
        print_json({"law": law.name, "fit": fit, "params": res.params, "predictions": records,
                    **({"interval": interval, "level": level or res.extra["bootstrap"]["level"]} if boot else {})})
        return
    title = f"{law.name} ({fit})" + (f", {interval} intervals" if boot else "")
    console.print(table(title, list(frame.columns), frame.values.tolist()))


@handle_errors
def laws_cmd(
    name: Optional[str] = typer.Argument(None, help="Show one law in detail."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """List the registered law families: formula, parameters, columns, presets, planners."""
    laws = [get_law(name)] if name else list(REGISTRY.values())
    if as_json:
        print_json([law.describe() for law in laws])
        return
    if not name:
        rows = [[law.name, law.formula, " ".join(law.param_names), ", ".join(law.required_columns()),
                 ", ".join(law.presets) or "-"] for law in laws]
        t = table("registered laws ('scalinglaws laws NAME' for details)", ["law", "formula", "parameters",
                                                                            "columns", "presets"], rows)
        console.print(t)
        return
    law = laws[0]
    d = law.describe()
    console.print(f"[bold]{law.name}[/]: {law.title}\n  {law.formula}\n  {law.reference}", highlight=False)
    console.print(table("parameters", ["name", "meaning", "fitted as", "bounds", "grid points"],
                        [[p["name"], p["doc"], p["fitted_as"], f"{p['bounds'][0]:g} .. {p['bounds'][1]:g}",
                          p["grid_size"]] for p in d["parameters"]]))
    console.print(f"columns: {', '.join(d['columns'])} (+ loss); start grid: {d['start_grid_size']} points; "
                  f"planners: {', '.join(d['planners']) or 'none'}", highlight=False)
    for k, v in law.presets.items():
        console.print(f"preset [bold]{k}[/] ({v.source}): " + ", ".join(f"{a}={b:g}" for a, b in v.values.items()),
                      highlight=False)


def register(app: typer.Typer) -> None:
    app.command("fit")(fit_cmd)
    app.command("predict")(predict_cmd)
    app.command("laws")(laws_cmd)
    from scalinglaws.cli import optimal_cmds
    optimal_cmds.register(app)

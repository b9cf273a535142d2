"""``scalinglaws optimal KIND FIT``: the planners.  Each law declares which it answers.

A planner is a method of a law (see ``scalinglaws.laws.base.Planner``); this module
only turns options into arguments and prints the answer.
"""

from __future__ import annotations

from typing import Optional

import typer

from scalinglaws.fitting.api import planner_method, resolve_fit
from scalinglaws.trust.bootstrap import plan_interval
from scalinglaws.data.errors import InputError
from scalinglaws.laws.base import PLANNER_OPTIONS
from scalinglaws.data.units import human, parse_bytes, parse_number

from scalinglaws.cli.common import console, fmt, handle_errors, is_count, print_json, table

optimal_app = typer.Typer(help="Planners: compute-optimal N and D, training precision, FP format, "
                               "critical data size, QAT fraction, bits under a memory budget.",
                          no_args_is_help=True)

KINDS = {
    "compute": "Compute-optimal N and D for --flops C (C = 6ND).",
    "precision": "Compute-optimal training precision for --flops C.",
    "fp-format": "Best exponent/mantissa split for a total of --bits P (P = E + M + 1).",
    "data": "Critical data size: tokens beyond which more data hurts (or degradation reaches --threshold).",
    "qat-fraction": "Optimal fraction of training spent in QAT, for --N, --D, --w-bits.",
    "bits": "For each bit-width, the largest N that fits --memory, its predicted loss, and the winner.",
}


def _parse_options(raw: dict) -> dict:
    out = {}
    for k, v in raw.items():
        if v is None:
            continue
        name = "--" + k.replace("_", "-")
        if k == "memory":
            out[k] = parse_bytes(v, name)
        elif k in ("w_bits", "a_bits", "kv_bits", "ptq_bits", "exp_bits", "man_bits", "bits", "group_size"):
            x = parse_number(v, name)
            out[k] = int(x) if float(x).is_integer() else x
        else:
            out[k] = parse_number(v, name)
    return out


def run_planner(kind: str, fit_source: str, options: dict, as_json: bool, level: float | None = None) -> dict:
    fit = resolve_fit(fit_source)
    law = fit.law_obj
    given = _parse_options(options)
    method = planner_method(fit, kind, given)
    result = method(fit.params)
    boot = bool(fit.intervals())
    if level is not None and not boot:
        raise InputError("--level applies to a bootstrapped fit (scalinglaws fit ... --bootstrap R)")
    ci = {k: v for k, v in plan_interval(fit, method, level).items() if k not in given} if boot else {}
    level = level or (fit.extra.get("bootstrap") or {}).get("level")
    source = fit.data.get("preset") or fit.data.get("source") or fit_source
    answer = {"planner": kind, "law": law.name, "fit": str(fit_source), "source": source,
              "params": fit.params, "inputs": given, **result}
    if boot:
        answer["intervals"], answer["level"] = ci, level
    if as_json:
        print_json(answer)
        return answer
    console.print(f"[bold]{kind}[/] with law [bold]{law.name}[/] ({source})", highlight=False)
    console.print("  " + ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items()), highlight=False)
    pct = f"{100 * level:g}%" if boot else ""
    rows = result.get("table")
    if rows:
        cols = list(rows[0].keys())
        body = [[r.get(c) for c in cols] for r in rows]
        if boot:  # interval of each numeric cell, "low .. high"
            body = [[_span(v, ci.get(f"table[{i}].{c}")) for c, v in zip(cols, row)] for i, row in enumerate(body)]
        console.print(table(f"{pct} intervals in brackets" if boot else None, cols, body))
    else:
        scalars = [(k, v) for k, v in result.items() if k not in ("summary", "table", "best")
                   and isinstance(v, (int, float)) and not isinstance(v, bool)]
        head = ["quantity", "value"] + ([f"{pct} low", f"{pct} high"] if boot else [])
        body = []
        for k, v in scalars:
            row = [k, _fmt(k, v)]
            if boot:
                row += [_fmt(k, ci[k][0]), _fmt(k, ci[k][1])] if k in ci else ["", ""]
            body.append(row)
        console.print(table(None, head, body))
    if result.get("summary"):
        console.print(result["summary"], highlight=False)
    return answer


def _fmt(key: str, v):
    return human(float(v)) if is_count(key) else v


def _span(v, iv):
    if iv is None or not isinstance(v, (int, float)) or isinstance(v, bool):
        return v
    return f"{fmt(v)} [{fmt(iv[0])} .. {fmt(iv[1])}]"


def _make(kind: str, doc: str):
    @handle_errors
    def command(
        fit: str = typer.Argument(..., help="A fit.json from 'scalinglaws fit', or a preset name."),
        N: Optional[str] = typer.Option(None, "--N", help=PLANNER_OPTIONS["N"]),
        D: Optional[str] = typer.Option(None, "--D", help=PLANNER_OPTIONS["D"]),
        flops: Optional[str] = typer.Option(None, "--flops", help=PLANNER_OPTIONS["flops"]),
        memory: Optional[str] = typer.Option(None, "--memory", help=PLANNER_OPTIONS["memory"]),
        bits: Optional[str] = typer.Option(None, "--bits", help=PLANNER_OPTIONS["bits"]),
        w_bits: Optional[str] = typer.Option(None, "--w-bits", help=PLANNER_OPTIONS["w_bits"]),
        a_bits: Optional[str] = typer.Option(None, "--a-bits", help=PLANNER_OPTIONS["a_bits"]),
        kv_bits: Optional[str] = typer.Option(None, "--kv-bits", help=PLANNER_OPTIONS["kv_bits"]),
        ptq_bits: Optional[str] = typer.Option(None, "--ptq-bits", help=PLANNER_OPTIONS["ptq_bits"]),
        exp_bits: Optional[str] = typer.Option(None, "--exp-bits", help=PLANNER_OPTIONS["exp_bits"]),
        man_bits: Optional[str] = typer.Option(None, "--man-bits", help=PLANNER_OPTIONS["man_bits"]),
        group_size: Optional[str] = typer.Option(None, "--group-size", help=PLANNER_OPTIONS["group_size"]),
        threshold: Optional[str] = typer.Option(None, "--threshold", help=PLANNER_OPTIONS["threshold"]),
        level: Optional[float] = typer.Option(None, "--level", help="With a bootstrapped fit: interval coverage (default: the fit's)."),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ):
        run_planner(kind, fit, dict(N=N, D=D, flops=flops, memory=memory, bits=bits, w_bits=w_bits,
                                    a_bits=a_bits, kv_bits=kv_bits, ptq_bits=ptq_bits, exp_bits=exp_bits,
                                    man_bits=man_bits, group_size=group_size, threshold=threshold), as_json, level)
    command.__doc__ = doc
    return command


for _kind, _doc in KINDS.items():
    optimal_app.command(_kind)(_make(_kind, _doc))


def register(app: typer.Typer) -> None:
    app.add_typer(optimal_app, name="optimal")

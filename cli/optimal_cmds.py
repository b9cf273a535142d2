"""``scalinglaws optimal KIND FIT``: the planners, made from what the registered laws declare.

Each kind of planner (``compute``, ``data``, ...) is a command whose options are the
union of the :class:`~scalinglaws.laws.base.Option` declarations of every law that
answers it, with their help text and units; a law registered with a planner of a new
kind gets its command with no change here.  The commands are built when the ``optimal``
group is first used, so the rest of the command line does not load the laws.
"""

from __future__ import annotations

import inspect
from typing import Optional

import typer
from typer.core import TyperGroup

from scalinglaws.cli.common import console, fmt, handle_errors, is_count, print_caveats, print_json, table
from scalinglaws.data.errors import OptionError


def _kinds():
    from scalinglaws.laws import planner_kinds
    return planner_kinds()


def _help(kind: str, answers) -> str:
    first = answers[0][1].doc
    lines = [f"{first[:1].upper() + first[1:]} ({', '.join(law.name for law, _ in answers)}).",
             f"Planner '{kind}' of each law that answers it:"]
    lines += [f"{law.name}: {p.doc} (needs {', '.join('--' + n.replace('_', '-') for n in p.required_names)})"
              for law, p in answers]
    return "\n\n".join(lines)


def _options(answers) -> dict:
    """The options of a kind: name -> Option, first declaration wins, in declaration order."""
    out = {}
    for _, p in answers:
        for o in p.options:
            out.setdefault(o.name, o)
    return out


def _units(o) -> str:
    """What the help says of an option's values, from its declaration."""
    if o.kind == "count":
        return " Suffixes: 125M, 7B, 1.4T."
    if o.kind == "bytes":
        return " Suffixes: 16GB, 80GiB."
    span = [f"at least {o.lo:g}" if o.lo is not None else "", f"at most {o.hi:g}" if o.hi is not None else ""]
    span = " and ".join(x for x in span if x)
    if o.kind == "bits":
        return f" {'Whole bits' if o.integer else 'Bits'}{', ' + span if span else ''}."
    return f" {span[:1].upper() + span[1:]}." if span else ""


def build_command(kind: str, answers, every=None):
    """The typer command of planner ``kind`` (``answers``: the (law, planner) pairs that declare it).

    Options of other kinds (``every``: all (law, planner) pairs) are accepted but hidden, so
    that the planner itself answers that they do not apply and says what it takes.
    """
    opts = _options(answers)
    hidden = {k: o for k, o in _options(every or []).items() if k not in opts}

    @handle_errors
    def command(fit: str, level: Optional[float] = None, as_json: bool = False, **given):
        run_planner(kind, fit, {k: v for k, v in given.items() if v is not None}, as_json, level)

    params = [inspect.Parameter("fit", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
                                default=typer.Argument(..., metavar="FIT",
                                                       help="A fit.json from 'scalinglaws fit', or a preset name."))]
    for o in list(opts.values()) + list(hidden.values()):
        units = _units(o)
        params.append(inspect.Parameter(o.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[str],
                                        default=typer.Option(None, "--" + o.name.replace("_", "-"), metavar=o.metavar,
                                                             help=o.doc[:1].upper() + o.doc[1:] + "." + units,
                                                             hidden=o.name in hidden)))
    params.append(inspect.Parameter("level", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[float],
                                    default=typer.Option(None, "--level", help="With a bootstrapped fit: interval "
                                                                               "coverage (default: the fit's).")))
    params.append(inspect.Parameter("as_json", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=bool,
                                    default=typer.Option(False, "--json", help="Print machine-readable JSON.")))

    def entry(**kwargs):
        return command(**kwargs)

    entry.__signature__ = inspect.Signature(params)
    entry.__annotations__ = {p.name: p.annotation for p in params}
    entry.__doc__ = _help(kind, answers)
    entry.__name__ = kind.replace("-", "_")
    return entry


class PlannerGroup(TyperGroup):
    """The ``optimal`` group: one command per planner kind of the registered laws, built on first use."""

    def list_commands(self, ctx):
        return list(_kinds())

    def get_command(self, ctx, name):
        kinds = _kinds()
        answers = kinds.get(name)
        if answers is None:
            return None
        app = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})
        app.command(name)(build_command(name, answers, [a for v in kinds.values() for a in v]))
        cmd = typer.main.get_command(app)
        cmd.name = name
        return cmd


def run_planner(kind: str, fit_source: str, options: dict, as_json: bool, level: float | None = None) -> dict:
    from scalinglaws.data.units import human
    from scalinglaws.fitting.api import planner_method
    from scalinglaws.fitting.result import resolve_fit
    from scalinglaws.trust.bootstrap import plan_interval
    fit = resolve_fit(fit_source)
    law = fit.law_obj
    method = planner_method(fit, kind, options)
    given = law.planner(kind).read(options)
    result = method(fit.params)
    boot = bool(fit.intervals())
    if level is not None and not boot:
        raise OptionError("level", "applies to a bootstrapped fit (scalinglaws fit ... --bootstrap R)")
    ci = {k: v for k, v in plan_interval(fit, method, level).items() if k not in given} if boot else {}
    level = level or fit.bootstrap.get("level")
    source = fit.data.get("preset") or fit.data.get("source") or fit_source
    answer = {"planner": kind, "law": law.name, "fit": str(fit_source), "source": source,
              "params": fit.params, "inputs": given, **result}
    if boot:
        from scalinglaws.trust.bootstrap import interval_caveats
        answer["intervals"], answer["level"], answer["caveats"] = ci, level, interval_caveats(fit)
    if as_json:
        print_json(answer)
        return answer
    console.print(f"[bold]{kind}[/] with law [bold]{law.name}[/] ({source})", highlight=False)
    console.print("  " + ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items()), highlight=False)
    pct = f"{100 * level:g}%" if boot else ""
    rows = result.get("table")

    def show(key, v):
        return human(float(v)) if is_count(key) else v

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
            row = [k, show(k, v)]
            if boot:
                row += [show(k, ci[k][0]), show(k, ci[k][1])] if k in ci else ["", ""]
            body.append(row)
        console.print(table(None, head, body))
    if result.get("summary"):
        console.print(result["summary"], highlight=False)
    if boot:
        print_caveats(answer["caveats"])
    return answer


def _span(v, iv):
    if iv is None or not isinstance(v, (int, float)) or isinstance(v, bool):
        return v
    return f"{fmt(v)} [{fmt(iv[0])} .. {fmt(iv[1])}]"


def plan_command(
    fit: str = typer.Argument(..., metavar="FIT", help="A fit.json from 'scalinglaws fit', or a preset name."),
    flops: Optional[str] = typer.Option(None, "--flops", metavar="FLOPS",
                                        help="Compute budget in FLOPs (e.g. 1e23)."),
    memory: Optional[str] = typer.Option(None, "--memory", metavar="BYTES",
                                         help="Memory budget for the trained model's weights (16GB, 80GiB)."),
    N: Optional[str] = typer.Option(None, "--N", metavar="COUNT", help="Fix the parameters (non-embedding)."),
    D: Optional[str] = typer.Option(None, "--D", metavar="COUNT", help="Fix the training tokens."),
    cost: str = typer.Option("6ND", "--cost", help="Compute model: 6ND, or bits (C = 6ND P/16 for the tokens "
                                                   "trained at P bits, as in Kumar et al.)."),
    bits: Optional[str] = typer.Option(None, "--bits", metavar="LIST",
                                       help="Bit widths to search, a comma list (default 2,3,4,5,6,7,8,16)."),
    w_bits: Optional[str] = typer.Option(None, "--w-bits", metavar="LIST",
                                         help="Weight bits to search, separately from activations."),
    a_bits: Optional[str] = typer.Option(None, "--a-bits", metavar="LIST",
                                         help="Activation bits to search, separately from weights."),
    group_sizes: Optional[str] = typer.Option(None, "--group-sizes", metavar="LIST",
                                              help="Group sizes to search (default 16,32,64,128,256)."),
    qat_fractions: Optional[str] = typer.Option(None, "--qat-fractions", metavar="LIST",
                                                help="QAT fractions to search (default 0, 0.025, ..., 1)."),
    top: int = typer.Option(5, "--top", help="How many configurations to list."),
    level: Optional[float] = typer.Option(None, "--level", help="With a bootstrapped fit: interval coverage."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Search N, D, precision, format and QAT fraction under compute and memory budgets.

    Jointly, with any loss law that models them; intervals when the fit was bootstrapped."""
    from scalinglaws.data.units import human, human_bytes
    from scalinglaws.trust.plan import plan
    res = plan(fit, flops=flops, memory=memory, N=N, D=D, cost=cost, bits=bits, w_bits=w_bits, a_bits=a_bits,
               group_sizes=group_sizes, qat_fractions=qat_fractions, top=top, level=level)
    if as_json:
        print_json(res)
        return
    cols = ["config", "N", "D", "tokens_per_param", "loss", "memory", "flops_used"]
    body = [[r["config"], r["N"], r["D"], r["tokens_per_param"], r["loss"], human_bytes(r["memory_bytes"]),
             r["flops_used"]] for r in res["table"]]
    console.print(table(f"the {len(body)} best of {res['feasible']} feasible configurations ({res['searched']} "
                        f"searched{', %d outside the law' % res['outside_domain'] if res['outside_domain'] else ''})",
                        cols, body))
    if "intervals" in res:
        ci = res["intervals"]
        pct = f"{100 * res['level']:g}%"
        rows = [[k, *(human(v) if k != "loss" else v for v in (res[k], *ci[k]))] for k in ("N_opt", "D_opt", "loss")
                if k in ci]
        if "memory_bytes" in ci:
            rows.append(["memory", human_bytes(res["memory_bytes"]), *map(human_bytes, ci["memory_bytes"])])
        console.print(table(f"{res['config']} re-planned on the bootstrap resamples ({res['interval_samples']} of "
                            f"{res['bootstrap_samples']} feasible)", ["quantity", "value",
                                                                                         f"{pct} low", f"{pct} high"],
                            rows))
        console.print(table(f"winner over {res['choice_samples']} resamples", ["config", "share"],
                            [[c, f"{100 * v:.1f}%"] for c, v in res["choices"].items()]))
    console.print(res["summary"], highlight=False)
    print_caveats(res.get("caveats", []))


def register(app: typer.Typer) -> None:
    app.command("plan")(handle_errors(plan_command))
    optimal_app = typer.Typer(cls=PlannerGroup, no_args_is_help=True,
                              help="Planners: compute-optimal N and D, training precision, FP format, critical data "
                                   "size, QAT fraction, bits under a memory budget -- whatever the registered laws "
                                   "declare ('scalinglaws optimal --help' lists them).")
    app.add_typer(optimal_app, name="optimal")

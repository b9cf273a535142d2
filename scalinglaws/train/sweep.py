"""Sweeps: a TOML spec -> a grid of runs -> rows appended to one CSV, resumable.

Spec format (every key is an option of ``scalinglaws train``, dashes or underscores)::

    [base]                      # options shared by every run
    seq_len = 128
    val_tokens = "64K"

    [grid]                      # the cartesian product of these lists
    params = ["50K", "100K"]
    tokens = ["250K", "500K", "1M"]
    seed = [0]

    [[variant]]                 # each variant is combined with every grid point
    ptq_bits = [8, 4, 3, 2]     # (a bundle of options set together)
    [[variant]]
    w_bits = 4
    a_bits = 4
    group_size = 32

Runs whose config hash is already in the output CSV are skipped, so an interrupted
sweep resumes where it stopped.  Each run's rows are appended atomically
(:func:`~scalinglaws.train.loop.append_rows`).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from typing import Callable

from scalinglaws.data.errors import InputError

from scalinglaws.train.data import Corpus
from scalinglaws.train.loop import TrainConfig, append_rows, plan, read_rows, train

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None

SECTIONS = ("base", "grid", "variant")


def load_spec(path: str) -> list[TrainConfig]:
    """The runs a spec file describes, in order (grid points outer, variants inner)."""
    if tomllib is None:
        raise InputError("reading a TOML spec needs Python 3.11 or the 'tomli' package")
    if not os.path.isfile(path):
        raise InputError("no such spec file", file=path)
    try:
        with open(path, "rb") as fh:
            spec = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=path) from None
    return expand_spec(spec, path)


def expand_spec(spec: dict, label: str = "<spec>") -> list[TrainConfig]:
    """Expand a parsed spec (see the module docstring) into run configs."""
    unknown = [k for k in spec if k not in SECTIONS]
    if unknown:
        raise InputError(f"unknown section {unknown[0]!r}; a spec has [base], [grid] and "
                         f"[[variant]] tables", file=label)
    base, grid, variants = spec.get("base", {}), spec.get("grid", {}), spec.get("variant", [{}])
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise InputError("[base] and [grid] must be tables", file=label)
    if isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants):
        raise InputError("variants are written as [[variant]] tables", file=label)
    keys = list(grid)
    lists = []
    for k in keys:
        v = grid[k]
        if k.replace("-", "_") == "ptq_bits" and v and not isinstance(v[0], list):
            v = [v]  # a flat list of widths is one setting, not a grid axis
        lists.append(v if isinstance(v, list) else [v])
        if not lists[-1]:
            raise InputError(f"grid key {k!r} has an empty list", file=label)
    for i, var in enumerate(variants or [{}]):
        clash = set(var) & set(keys)
        if clash:
            raise InputError(f"variant {i + 1} sets {sorted(clash)[0]!r}, which the grid varies", file=label)
    configs = []
    for point in itertools.product(*lists):
        for var in variants or [{}]:
            opts = {**base, **dict(zip(keys, point)), **var}
            configs.append(TrainConfig.from_options(opts, where=f"key in {label}:"))
    return configs


@dataclass
class SweepResult:
    total: int
    skipped: int = 0
    done: int = 0
    diverged: int = 0


def run_sweep(configs: list[TrainConfig], out: str, *,
              on_run: Callable[[int, int, TrainConfig, str, list], None] | None = None,
              on_step: Callable[[int, int, float], None] | None = None,
              **overrides) -> SweepResult:
    """Train every config whose hash is not yet in ``out``; append each run's rows at once.

    ``overrides`` (device, compile, threads) apply to every run and do not change
    the hashes.  ``on_run(i, n, cfg, status, rows)`` is called with status ``"skip"``,
    ``"start"`` and ``"done"`` (then ``rows`` are the rows just appended, else []).
    """
    for k in overrides:
        if k not in TrainConfig.NOT_HASHED:
            raise InputError(f"run_sweep: cannot override {k!r}")
    for cfg in configs:       # check every run before training any
        plan(cfg)
    _, rows = read_rows(out)
    have = {r.get("config_hash") for r in rows}
    res = SweepResult(total=len(configs))
    corpora: dict = {}
    seen = set()
    for i, cfg in enumerate(configs):
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        h = cfg.hash()
        if h in have or h in seen:
            res.skipped += 1
            if on_run:
                on_run(i, len(configs), cfg, "skip", [])
            continue
        seen.add(h)
        if on_run:
            on_run(i, len(configs), cfg, "start", [])
        if cfg.data not in corpora:
            corpora[cfg.data] = Corpus.load(cfg.data)
        new = train(cfg, on_step=on_step, corpus=corpora[cfg.data])
        append_rows(out, new)
        res.done += 1
        res.diverged += int(new[0]["diverged"])
        if on_run:
            on_run(i, len(configs), cfg, "done", new)
    return res

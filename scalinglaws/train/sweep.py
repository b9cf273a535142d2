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

Two more tables say how the runs are executed by ``scalinglaws sweep --executor local|slurm``
(see :mod:`scalinglaws.train.executor` and docs/trainer.md)::

    [resources]                 # what each run's job asks for; may grow with the model
    time_min = 10
    time_min_per_Mparam = 0.5   # + 0.5 minute per million parameters
    gpus = 1
    mem_gb = {"1M" = 4, "100M" = 16}   # by model size: up to 1M params 4 GB, ...

    [executor]                  # defaults of the command's flags
    name = "slurm"
    partition = "gpu"
    max_parallel = 32
    retries = 1

Runs whose config hash is already in the output CSV are skipped, so an interrupted
sweep resumes where it stopped; the CSV is read again before each run, so several
sweeps of one spec writing to one file skip what the others finished.  Each run's rows
are appended atomically under the table's lock file
(:func:`~scalinglaws.train.loop.append_rows`), never twice for one config hash.  Every
run is checked before the first trains; a bad key or value names the spec file, the
variant and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import os
from dataclasses import dataclass, replace
from typing import Callable

from scalinglaws.data.errors import InputError

from scalinglaws.train.data import Corpus
from scalinglaws.train.executor import Resources, parse_executor, parse_resources, toml_text
from scalinglaws.train.loop import (TrainConfig, check_runs, checkpoint_path, config_hashes, plan,
                                    remove_checkpoint, train_into)
from scalinglaws.train.model import RunOptionError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None

SECTIONS = ("base", "grid", "variant", "resources", "executor")


@dataclass
class Sweep:
    """A sweep file: its runs, the resources of their jobs and the executor's settings."""

    path: str
    configs: list[TrainConfig]
    resources: Resources
    executor: dict          # the [executor] table, checked (see executor.parse_executor)


def load_spec(path: str) -> list[TrainConfig]:
    """The runs a spec file describes, in order (grid points outer, variants inner)."""
    return load_sweep(path).configs


def load_sweep(path: str) -> Sweep:
    """A spec file: its runs (see :func:`load_spec`), its ``[resources]`` and ``[executor]`` tables, checked."""
    spec = _readtoml_text(path)
    configs = expand_spec(spec, path)
    return Sweep(path, configs, parse_resources(spec.get("resources"), path),
                 parse_executor(spec.get("executor"), path))


def _readtoml_text(path: str) -> dict:
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
    return spec


def expand_spec(spec: dict, label: str = "<spec>") -> list[TrainConfig]:
    """Expand a parsed spec (see the module docstring) into run configs, each checked.

    A bad key or value raises InputError naming ``label`` (the file), the variant by
    its number (when the spec has variants) and each key at fault with its value and,
    outside the variant, its section: ``spec.toml: variant 2, w_bits = 1: w_bits must be
    >= 2 ...``, ``spec.toml: [grid] seq_len = 0: seq_len must be >= 1``.
    """
    unknown = [k for k in spec if k not in SECTIONS]
    if unknown:
        raise InputError(f"unknown section {unknown[0]!r}; a spec has [base], [grid], [[variant]], "
                         f"[resources] and [executor] tables", file=label)
    base, grid, variants = spec.get("base", {}), spec.get("grid", {}), spec.get("variant", [{}])
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise InputError("[base] and [grid] must be tables", file=label)
    if isinstance(variants, dict) or not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise InputError("variants are written as [[variant]] tables", file=label)
    variants = variants or [{}]
    tables = [("[base]", base), ("[grid]", grid)] + [(_variant(i, variants), v) for i, v in enumerate(variants)]
    for section, table in tables:
        for key in table:
            if key.replace("-", "_") not in FIELDS:
                near = difflib.get_close_matches(key.replace("-", "_"), FIELDS, n=1)
                hint = f"did you mean {near[0]!r}?" if near else "see docs/trainer.md for the keys"
                raise InputError(f"{section}: unknown key {key!r}; {hint}", file=label)
    keys = list(grid)
    lists = []
    for k in keys:
        v = grid[k]
        if k.replace("-", "_") == "ptq_bits" and v and not isinstance(v[0], list):
            v = [v]  # a flat list of widths is one setting, not a grid axis
        lists.append(v if isinstance(v, list) else [v])
        if not lists[-1]:
            raise InputError(f"[grid]: key {k!r} has an empty list", file=label)
    for i, var in enumerate(variants):
        clash = {k.replace("-", "_") for k in var} & {k.replace("-", "_") for k in keys}
        if clash:
            raise InputError(f"{_variant(i, variants)} sets {sorted(clash)[0]!r}, which the grid varies", file=label)
    configs = []
    for point in itertools.product(*lists):
        for i, var in enumerate(variants):
            cell = dict(zip(keys, point))
            try:
                cfg = TrainConfig.from_options({**base, **cell, **var}, where="key")
                plan(cfg)
            except InputError as exc:
                raise _located(exc, label, base, cell, var, _variant(i, variants)) from None
            configs.append(cfg)
    return configs


FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


def _variant(i: int, variants: list) -> str:
    return f"variant {i + 1}" if len(variants) > 1 or variants[0] else "the run"


def _located(exc: InputError, label: str, base: dict, cell: dict, var: dict, variant: str) -> InputError:
    """``exc`` with the run it is in and where the keys it names were set.

    ``spec.toml: variant 2, w_bits = 1: ...`` (a key of the variant), ``variant 1,
    [grid] tokens = "5K": ...``, ``[base] seq_len = 0: ...``.
    """
    names = exc.options if isinstance(exc, RunOptionError) else ()
    found: dict = {}                      # section -> keys set there, the variant's first
    for name in dict.fromkeys(names):
        for section, table in ((variant, var), ("[grid]", cell), ("[base]", base)):
            key = next((k for k in table if k.replace("-", "_") == name), None)
            if key is not None:
                found.setdefault(section, []).append(f"{key} = {toml_text(table[key])}")
                break
    where = [variant] + found.pop(variant, []) if variant != "the run" else found.pop(variant, [])
    for section in ("[grid]", "[base]"):
        where += [f"{section} {text}" for text in found.get(section, [])]
    return InputError(f"{', '.join(where)}: {exc}" if where else str(exc), file=label)


def _hashes(path: str, cache: dict) -> set:
    """The config hashes in the table at ``path``, read again only when the file changed.

    Every append replaces the file (a new inode), so the stat tells a changed table.
    """
    try:
        st = os.stat(path)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        key = None
    if cache.get("key") != key or "hashes" not in cache:
        cache["key"], cache["hashes"] = key, config_hashes(path)
    return cache["hashes"]


def pending(configs: list[TrainConfig], out: str, **overrides) -> list[TrainConfig]:
    """The configs whose runs are not yet in ``out``, each once, in order."""
    have = config_hashes(out)
    todo, seen = [], set()
    for cfg in configs:
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        h = cfg.hash()
        if h not in have and h not in seen:
            seen.add(h)
            todo.append(cfg)
    return todo


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

    ``overrides`` (device, compile, threads, peak_flops, checkpoint_every) apply to every
    run and do not change the hashes.  A run with ``checkpoint_every`` keeps its checkpoint at
    :func:`~scalinglaws.train.loop.checkpoint_path` (``<out>.ckpt/<hash>.pt``), resumes
    from it and removes it once its rows are in ``out``.  ``on_run(i, n, cfg, status,
    rows)`` is called with status ``"skip"``, ``"start"`` and ``"done"`` (then ``rows``
    are the rows just appended, else []); a
    run that another process appended to ``out`` while this one trained it is reported
    ``"skip"`` after its ``"start"`` and its rows are not appended twice.

    ``out`` is checked first (:func:`~scalinglaws.train.loop.check_run_table`) and read
    again before each run, so several sweeps of one spec on one file share the work
    they have finished.
    """
    for k in overrides:
        if k not in TrainConfig.NOT_HASHED:
            raise InputError(f"run_sweep: cannot override {k!r}")
    check_runs(configs, out)  # every run checked before any trains
    res = SweepResult(total=len(configs))
    corpora: dict = {}
    seen, cache = set(), {}
    for i, cfg in enumerate(configs):
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        h = cfg.hash()
        if h in seen or h in _hashes(out, cache):
            if h not in seen:
                remove_checkpoint(checkpoint_path(out, cfg))    # one left by a run killed after its append
            res.skipped += 1
            if on_run:
                on_run(i, len(configs), cfg, "skip", [])
            continue
        seen.add(h)
        if on_run:
            on_run(i, len(configs), cfg, "start", [])
        if cfg.data not in corpora:
            corpora[cfg.data] = Corpus.load(cfg.data)
        new, added = train_into(cfg, out, on_step=on_step, corpus=corpora[cfg.data])
        if not added:
            res.skipped += 1
            if on_run:
                on_run(i, len(configs), cfg, "skip", [])
            continue
        res.done += 1
        res.diverged += int(new[0]["diverged"])
        if on_run:
            on_run(i, len(configs), cfg, "done", new)
    return res

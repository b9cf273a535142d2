"""Sweeps beyond one machine: each run a job through submitit, on local processes or Slurm.

:func:`run_on_executor` (``scalinglaws sweep --executor local|slurm``) keeps at most
``max_parallel`` jobs queued or running, submits the runs whose config hash is not yet in
the output CSV, waits for them and retries the failed ones; every job appends its own rows
through :func:`~scalinglaws.train.loop.append_rows` (locked, ``unique=True``), so a run
lands in the CSV once whoever trains it.  :func:`sweep_status` (``scalinglaws sweep status``)
counts the runs done, running, failed and to do.

Beside ``runs.csv`` the folder ``.runs.csv.jobs/`` holds one folder per job (submitit's
submission script, pickles and the logs ``<job>_0_log.out`` / ``<job>_0_log.err``) and
``jobs.jsonl``, one JSON line per event: ``submit`` (by the sweep), ``start`` and ``end``
(by the job itself), ``failed`` (by the sweep, when a job ended without its rows).  A
re-run reads it to leave alone the jobs still queued or running.

The ``[resources]`` and ``[executor]`` tables of a sweep file are read here
(:func:`parse_resources`, :func:`parse_executor`).  submitit is imported only when a job
is submitted or run.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import math
import os
import shutil
import socket
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.units import human, parse_number

from scalinglaws.train.loop import (TrainConfig, check_run_table, check_runs, checkpoint_path, config_hashes, plan,
                                    read_rows, remove_checkpoint, train_into)

EXECUTORS = ("inline", "local", "slurm")

# ----------------------------------------------------------------------------- [resources]

#: Resources a job asks for; each may be a number, a table keyed by model size, and may
#: grow with the model through ``<name>_per_Mparam`` and ``<name>_per_PFLOP``.
RESOURCES = {"time_min": "minutes", "gpus": "GPUs", "mem_gb": "GB", "cpus": "CPU cores"}
SCALES = ("_per_Mparam", "_per_PFLOP")


@dataclass(frozen=True)
class Resources:
    """The ``[resources]`` table of a sweep file, checked (see :func:`parse_resources`)."""

    table: dict = field(default_factory=dict)

    def for_run(self, n_params: float, tokens: float) -> dict:
        """``{"time_min", "gpus", "mem_gb", "cpus"}`` of a run with ``n_params`` (non-embedding)
        parameters trained on ``tokens`` tokens; None where the table says nothing.

        value = base + per_Mparam x N / 1e6 + per_PFLOP x 6 N D / 1e15, where base is the
        number given, or from a table keyed by size the value of the smallest size >= N
        (the largest size's value above it).  Rounded up: minutes, GPUs and cores to whole
        numbers (at least 1 minute and 1 core), memory to whole MB.
        """
        out = {}
        for name in RESOURCES:
            keys = [name] + [name + s for s in SCALES]
            if not any(k in self.table for k in keys):
                out[name] = None
                continue
            base = self.table.get(name, 0.0)
            if isinstance(base, tuple):         # ((size, value), ...) sorted by size
                base = next((v for s, v in base if n_params <= s), base[-1][1])
            x = base + self.table.get(name + "_per_Mparam", 0.0) * n_params / 1e6 \
                + self.table.get(name + "_per_PFLOP", 0.0) * 6 * n_params * tokens / 1e15
            if name == "mem_gb":
                out[name] = math.ceil(x * 1024 - 1e-6) / 1024
            else:
                out[name] = max(0 if name == "gpus" else 1, math.ceil(x - 1e-9))
        return out


def parse_resources(table, label: str) -> Resources:
    """Check a ``[resources]`` table; a bad key or value names ``label`` (the file), the table and the key."""
    if table is None:
        return Resources()
    if not isinstance(table, dict):
        raise InputError("[resources] must be a table", file=label)
    names = list(RESOURCES) + [r + s for r in RESOURCES for s in SCALES]
    out = {}
    for key, value in table.items():
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            hint = (f"did you mean {near[0]!r}?" if near
                    else f"known: {', '.join(RESOURCES)} (each also _per_Mparam, _per_PFLOP)")
            raise InputError(f"[resources]: unknown key {key!r}; {hint}", file=label)
        unit = RESOURCES[key.split("_per_")[0]]
        if isinstance(value, dict) and key in RESOURCES:
            if not value:
                raise InputError(f"[resources] {key} = {{}}: a table keyed by model size needs at least one size",
                                 file=label)
            steps = []
            for size, v in value.items():
                try:
                    s = parse_number(size, "size")
                except InputError:
                    s = float("nan")
                if not (math.isfinite(s) and s > 0):
                    raise InputError(f"[resources] {key}.{toml_text(size)} = {toml_text(v)}: {toml_text(size)} is not a model "
                                     f"size (e.g. \"50K\", \"10M\")", file=label)
                steps.append((s, _amount(v, f"[resources] {key}.{toml_text(size)} = {toml_text(v)}", unit, label)))
            out[key] = tuple(sorted(steps))
        else:
            out[key] = _amount(value, f"[resources] {key} = {toml_text(value)}", unit, label)
    return Resources(out)


def toml_text(value) -> str:
    """A value as a TOML spec writes it (for messages that quote the spec)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_text(k)} = {toml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    return repr(value)


def _amount(value, where: str, unit: str, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"{where}: must be a number >= 0 ({unit})", file=label)
    return float(value)


# ----------------------------------------------------------------------------- [executor]

#: Keys of the ``[executor]`` table: what each holds.
EXECUTOR_KEYS = {
    "name": "inline, local or slurm",
    "partition": "a Slurm partition (text)",
    "account": "a Slurm account (text)",
    "qos": "a Slurm quality of service (text)",
    "max_parallel": "a whole number >= 1",
    "retries": "a whole number >= 0",
    "poll_s": "a number of seconds > 0",
    "setup": "a list of shell lines run before each job",
}

#: Defaults of ``max_parallel`` (local: one run per CPU core).
MAX_PARALLEL = {"slurm": 32, "local": None}


@dataclass(frozen=True)
class Settings:
    """How a sweep's runs are executed (the ``[executor]`` table, with the flags on top)."""

    name: str = "inline"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    max_parallel: int | None = None
    retries: int = 1
    poll_s: float | None = None
    setup: tuple = ()
    gpus_per_run: int | None = None      # --gpus-per-run: overrides [resources] gpus

    @property
    def parallel(self) -> int:
        if self.max_parallel is not None:
            return self.max_parallel
        return MAX_PARALLEL.get(self.name) or max(1, os.cpu_count() or 1)

    @property
    def poll(self) -> float:
        return self.poll_s if self.poll_s is not None else (30.0 if self.name == "slurm" else 0.5)


def parse_executor(table, label: str) -> dict:
    """Check an ``[executor]`` table; returns its values (keys as in :class:`Settings`)."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise InputError("[executor] must be a table", file=label)
    out = {}
    for key, value in table.items():
        if key not in EXECUTOR_KEYS:
            near = difflib.get_close_matches(key, EXECUTOR_KEYS, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(EXECUTOR_KEYS)}"
            raise InputError(f"[executor]: unknown key {key!r}; {hint}", file=label)
        where = f"[executor] {key} = {toml_text(value)}"
        ok = {
            "name": isinstance(value, str) and value in EXECUTORS,
            "partition": isinstance(value, str) and value != "",
            "account": isinstance(value, str) and value != "",
            "qos": isinstance(value, str) and value != "",
            "max_parallel": _whole(value) and value >= 1,
            "retries": _whole(value) and value >= 0,
            "poll_s": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value > 0,
            "setup": isinstance(value, list) and all(isinstance(v, str) for v in value),
        }[key]
        if not ok:
            raise InputError(f"{where}: expects {EXECUTOR_KEYS[key]}", file=label)
        out[key] = tuple(value) if key == "setup" else value
    return out


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def resolve_settings(table: dict, *, executor: str | None = None, partition: str | None = None,
                     max_parallel: int | None = None, retries: int | None = None,
                     gpus_per_run: int | None = None, poll: float | None = None) -> Settings:
    """The ``[executor]`` table's values (already checked) with the flags given on top.

    Bad flags raise :class:`OptionError` naming the option (``max_parallel`` -> the
    command line's ``--max-parallel``); flags that do not apply to the executor chosen
    (``--partition`` without Slurm, ``--max-parallel`` on an inline sweep) are refused.
    """
    if executor is not None and executor not in EXECUTORS:
        near = difflib.get_close_matches(executor, EXECUTORS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise OptionError("executor", f"{executor!r} is not an executor: choose inline, local or slurm{hint}")
    for name, value, low in (("max_parallel", max_parallel, 1), ("retries", retries, 0),
                             ("gpus_per_run", gpus_per_run, 0)):
        if value is not None and value < low:
            raise OptionError(name, f"must be >= {low}, got {value}")
    if poll is not None and not (math.isfinite(poll) and poll > 0):
        raise OptionError("poll", f"must be a number of seconds > 0, got {poll:g}")
    name = executor or table.get("name", "inline")
    if name == "inline":
        for opt, value in (("max_parallel", max_parallel), ("retries", retries), ("gpus_per_run", gpus_per_run),
                           ("poll", poll), ("partition", partition)):
            if value is not None:
                raise OptionError(opt, "needs --executor local or slurm (an inline sweep trains one run after "
                                       "another in this process)")
    if name == "local" and partition is not None:
        raise OptionError("partition", "applies to --executor slurm only")
    values = dict(table)
    values.pop("name", None)
    for key, value in (("partition", partition), ("max_parallel", max_parallel), ("retries", retries),
                       ("poll_s", poll)):
        if value is not None:
            values[key] = value
    return Settings(name=name, gpus_per_run=gpus_per_run, **values)


# ----------------------------------------------------------------------------- the job folder


def jobs_folder(out: str) -> str:
    """``.NAME.jobs`` beside the run table ``out``: job logs and the sweep's ``jobs.jsonl``."""
    folder, name = os.path.split(os.path.abspath(out))
    return os.path.join(folder, f".{name}.jobs")


def _ledger(jobs: str) -> str:
    return os.path.join(jobs, "jobs.jsonl")


def record(jobs: str, **fields) -> None:
    """Append one event to ``jobs.jsonl`` (under its lock file; a line at a time)."""
    from filelock import FileLock
    line = json.dumps({"t": round(time.time(), 3), **fields}, sort_keys=True) + "\n"
    os.makedirs(jobs, exist_ok=True)
    with FileLock(os.path.join(jobs, ".jobs.jsonl.lock"), timeout=120):
        with open(_ledger(jobs), "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def read_ledger(jobs: str) -> list[dict]:
    """The events of ``jobs.jsonl`` in order (a line cut short by a kill is skipped)."""
    try:
        with open(_ledger(jobs), encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=_ledger(jobs)) from None
    out = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "hash" in event and "job" in event:
            out.append(event)
    return out


def _latest(events: list[dict]) -> dict[str, dict]:
    """Per config hash: its last ``submit`` event, with ``end``/``failed`` of that job folded in."""
    last: dict[str, dict] = {}
    for e in events:
        if e.get("event") == "submit":
            last[e["hash"]] = dict(e)
    for e in events:
        sub = last.get(e["hash"])
        if sub is not None and e["job"] == sub["job"] and e.get("event") in ("start", "end", "failed"):
            sub[e["event"]] = e
    return last


def log_path(event: dict, kind: str = "err") -> str:
    """The job's stderr (``err``) or stdout (``out``) log, from its ``submit`` event."""
    job = str(event["job"])
    return os.path.join(event["folder"].replace("%j", job), f"{job}_0_log.{kind}")


def error_lines(event: dict, n: int = 3) -> list[str]:
    """The last ``n`` lines of a failed job's stderr log that are not submitit's own INFO lines,
    else what the job or the sweep recorded about it."""
    lines = []
    try:
        with open(log_path(event), encoding="utf-8", errors="replace") as fh:
            lines = [ln.rstrip() for ln in fh.read().splitlines()[-400:]]
    except OSError:
        pass
    lines = [ln for ln in lines if ln.strip() and not ln.startswith(("submitit INFO", "submitit WARNING"))]
    if lines:
        return lines[-n:]
    for key, field_ in (("end", "error"), ("failed", "reason")):
        text = (event.get(key) or {}).get(field_)
        if text:
            return [text]
    return ["the job is gone and left no error in its log (killed?)"]


# ----------------------------------------------------------------------------- the job


def _job_id() -> str:
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID") or f"pid{os.getpid()}"


def run_job(cfg: TrainConfig, out: str, jobs: str) -> dict:
    """What one job does: train ``cfg`` unless its hash is already in ``out``, append its rows.

    Records ``start`` and ``end`` in ``jobs.jsonl``; an exception is recorded (its last
    line) and raised again, so submitit keeps it too.  A diverged run is a success: its
    row, with ``diverged = 1``, is appended like any other.  With ``checkpoint_every`` a
    retried job resumes from the checkpoint the failed one left (``<out>.ckpt/<hash>.pt``).
    """
    h, job = cfg.hash(), _job_id()
    record(jobs, event="start", hash=h, job=job, pid=os.getpid(), host=socket.gethostname())
    try:
        if h in config_hashes(out):
            remove_checkpoint(checkpoint_path(out, cfg))        # one left by a run killed after its append
            result = {"status": "skip"}
        else:
            rows, added = train_into(cfg, out, on_step=_StepPrinter())
            result = {"status": "done" if added else "skip", "diverged": int(rows[0]["diverged"]),
                      "loss": rows[0]["loss"], "wall_s": rows[0]["wall_s"]}
    except BaseException as exc:
        text = str(exc).strip().splitlines()
        record(jobs, event="end", hash=h, job=job, status="error",
               error=f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": "))
        raise
    record(jobs, event="end", hash=h, job=job, **result)
    print(f"run {h}: {result['status']}", flush=True)
    return result


class _StepPrinter:
    """A line per tenth of the steps on stdout (the job's log)."""

    def __init__(self):
        self.next = 1

    def __call__(self, step: int, total: int, loss: float) -> None:
        if step * 10 >= self.next * total:
            self.next = step * 10 // total + 1
            print(f"step {step}/{total} loss {loss:.4f}", flush=True)


def _rows_by_hash(out: str) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for r in read_rows(out)[1]:
        rows.setdefault(r.get("config_hash"), []).append(r)
    return rows


# ----------------------------------------------------------------------------- describing a run


def describe(cfg: TrainConfig) -> str:
    """``N 13.4K, D 12.3K, W4A4 G16`` (N and D as trained)."""
    p = plan(cfg)
    parts = [f"{k}{s.bits}" for k, s in (("W", p.w), ("A", p.a), ("KV", p.kv)) if s is not None]
    fp = next((s for s in (p.w, p.a, p.kv) if s is not None and s.format != "int"), None)
    prec = f"E{fp.exp_bits}M{fp.man_bits}" if fp and fp.format == "fp" else fp.format.upper() if fp else \
        "".join(parts) or "FP16"
    if fp and fp.stochastic:
        prec += " SR"
    if p.fc2_a is not None:
        prec += f" FC2:{p.fc2_a.bits}"
    if cfg.group_size and (p.quantized or p.ptq):
        prec += f" G{cfg.group_size}"
    if p.ptq:
        prec += " +PTQ " + ",".join(str(s.bits) for s in p.ptq)
    return f"N {human(p.shape.n_params, 3)}, D {human(p.steps * p.tokens_per_step, 3)}, {prec}"


def run_resources(cfg: TrainConfig, resources: Resources, settings: Settings) -> dict:
    """The resources of one run's job (``--gpus-per-run`` over ``[resources] gpus``)."""
    p = plan(cfg)
    res = resources.for_run(p.shape.n_params, p.steps * p.tokens_per_step)
    if settings.gpus_per_run is not None:
        res["gpus"] = settings.gpus_per_run
    return res


# ----------------------------------------------------------------------------- backends

#: Slurm states of a job still queued or running.
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
          "SUSPENDED", "RESIZING", "READY", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}

#: Seconds a Slurm job may be unknown to sacct after its submission before it counts as gone.
SACCT_GRACE_S = 300.0


@dataclass
class Flight:
    """A run whose job is queued or running."""

    cfg: TrainConfig
    job_id: str
    attempt: int
    t_submit: float
    gpus: tuple = ()
    job: Any = None                    # the submitit Job, when this process submitted it
    event: dict = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return self.cfg.hash()


class _Backend:
    """Submits runs through submitit and tells which jobs are still queued or running."""

    def __init__(self, name: str, jobs: str, out: str, settings: Settings, resources: Resources):
        try:
            import submitit
        except ImportError:
            raise InputError(f"--executor {name} needs submitit: pip install submitit "
                             "(or pip install -e \".[train]\")") from None
        self.name, self.jobs, self.out, self.settings, self.resources = name, jobs, out, settings, resources
        self.pattern = os.path.join(jobs, "%j")
        self.host = socket.gethostname()
        self.sacct_broken = False
        if name == "slurm":
            missing = [t for t in ("sbatch", "srun", "sacct") if shutil.which(t) is None]
            if missing:
                raise InputError(f"--executor slurm needs Slurm's {', '.join(missing)} on PATH: run the sweep on a "
                                 "machine of the cluster (a login node), or use --executor local")
            self.pool: list[int] = []
        else:
            self.pool = _visible_gpus()
        self.submitit = submitit
        self.busy: set[int] = set()

    # -- what a job asks for
    def resources_of(self, cfg: TrainConfig) -> dict:
        res = run_resources(cfg, self.resources, self.settings)
        if self.name == "local" and res["gpus"] is None:
            res["gpus"] = 1 if self.pool and cfg.device != "cpu" else 0
        return res

    def check(self, configs: list[TrainConfig]) -> None:
        """Refuse, before any submission, runs the local machine cannot hold."""
        if self.name != "local":
            return
        for cfg in configs:
            g = self.resources_of(cfg)["gpus"]
            if g > len(self.pool):
                raise InputError(f"the runs ask for {g} GPU(s) each, but this machine shows {len(self.pool)} to "
                                 "the local executor (see CUDA_VISIBLE_DEVICES, [resources] gpus, --gpus-per-run)")

    def threads(self, cfg: TrainConfig, res: dict) -> int:
        if cfg.threads:
            return cfg.threads
        if res.get("cpus"):
            return res["cpus"]
        if self.name == "local":
            return max(1, (os.cpu_count() or 1) // self.settings.parallel)
        return 0

    # -- submission
    def submit(self, batch: list[TrainConfig]) -> list[tuple[TrainConfig, str, Any, tuple, dict]]:
        """Submit what fits now; returns (config, job id, job, GPUs, resources) for each submitted."""
        groups: dict[tuple, list] = {}
        for cfg in batch:
            res = self.resources_of(cfg)
            groups.setdefault(tuple(sorted(res.items())), []).append((cfg, res))
        done = []
        for key, items in groups.items():
            res = dict(key)
            if self.name == "slurm":
                done += self._submit_slurm(items, res)
            else:
                for cfg, res_ in items:
                    free = [g for g in self.pool if g not in self.busy]
                    if res_["gpus"] > len(free):
                        continue          # waits for GPUs to free up
                    gpus = tuple(free[:res_["gpus"]])
                    done.append(self._submit_local(cfg, res_, gpus))
        return done

    def _executor(self, **params):
        """A fresh submitit executor with ``params`` (those that are None left out)."""
        cls = self.submitit.SlurmExecutor if self.name == "slurm" else self.submitit.LocalExecutor
        ex = cls(folder=self.pattern)
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return ex

    def _submit_slurm(self, items, res) -> list:
        s = self.settings
        mem = res["mem_gb"]
        ex = self._executor(
            job_name="scalinglaws-" + os.path.basename(self.out), partition=s.partition, account=s.account,
            qos=s.qos, time=res["time_min"], gpus_per_node=res["gpus"] or None, cpus_per_task=res["cpus"],
            mem=None if mem is None else (f"{int(mem)}G" if mem == int(mem) else f"{math.ceil(mem * 1024)}M"),
            array_parallelism=s.parallel, setup=list(s.setup) or None)
        cfgs = [replace(cfg, threads=self.threads(cfg, res)) for cfg, _ in items]
        try:
            with contextlib.redirect_stderr(io.StringIO()), ex.batch():   # submitit echoes sbatch's stderr
                jobs = [ex.submit(run_job, cfg, self.out, self.jobs) for cfg in cfgs]
        except Exception as exc:  # noqa: BLE001 - sbatch's refusal, in its words
            raise InputError(f"sbatch refused the job: {_last_line(exc)}") from None
        return [(cfg, str(job.job_id), job, (), res) for (cfg, _), job in zip(items, jobs)]

    def _submit_local(self, cfg, res, gpus) -> tuple:
        ex = self._executor(timeout_min=res["time_min"] or 60 * 24 * 365, gpus_per_node=len(gpus),
                            visible_gpus=gpus, setup=list(self.settings.setup))
        try:
            job = ex.submit(run_job, replace(cfg, threads=self.threads(cfg, res)), self.out, self.jobs)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot start a local job: {_last_line(exc)}") from None
        self.busy.update(gpus)
        return cfg, str(job.job_id), job, gpus, res

    def release(self, flight: Flight) -> None:
        self.busy.difference_update(flight.gpus)

    def adopt(self, flight: Flight) -> None:
        self.busy.update(g for g in flight.gpus if g in self.pool)

    # -- state
    def states(self, flights: list[Flight]) -> dict[str, tuple[bool, str]]:
        """Per config hash: (still queued or running?, the state in words)."""
        out = {}
        slurm = [f for f in flights if self.name == "slurm"]
        info = self._sacct([f.job_id for f in slurm]) if slurm else {}
        for f in flights:
            if self.name == "local":
                if f.job is not None:
                    state = f.job.get_info()["jobState"]
                    out[f.hash] = (state == "RUNNING", state)
                else:
                    alive = _pid_alive(int(f.job_id), f.t_submit)
                    out[f.hash] = (alive, "RUNNING" if alive else "ended")
            else:
                out[f.hash] = _slurm_state(f, info, self.sacct_broken)
        return out

    def _sacct(self, ids: list[str]) -> dict:
        info, self.sacct_broken = sacct(ids)
        return info


def sacct(ids: list[str]) -> tuple[dict, bool]:
    """Slurm's accounting of jobs ``ids`` (``12345`` or ``12345_3``): ({id: {"State": ...}}, sacct failed?)."""
    if not ids:
        return {}, False
    from submitit.slurm.slurm import SlurmInfoWatcher
    cmd = ["sacct", "-o", "JobID,State", "--parsable2"]
    for base in sorted({i.split("_")[0] for i in ids}):
        cmd += ["-j", base]
    try:
        text = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}, True
    return SlurmInfoWatcher().read_info(text), False


def _slurm_state(f: Flight, info: dict, broken: bool) -> tuple[bool, str]:
    folder = f.event.get("folder", "").replace("%j", f.job_id)
    if folder and os.path.exists(os.path.join(folder, f"{f.job_id}_0_result.pkl")):
        return False, "COMPLETED"
    state = (info.get(f.job_id) or {}).get("State", "")
    word = state.split()[0].upper() if state else ""
    if word:
        return word in ACTIVE, state
    if broken:
        return True, "unknown (sacct failed)"
    return time.time() - f.t_submit < SACCT_GRACE_S, "not known to sacct"


def _visible_gpus() -> list[int]:
    """GPU numbers the local executor may hand to its jobs (CUDA_VISIBLE_DEVICES, else all)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        items = [x.strip() for x in env.split(",") if x.strip()]
        if not all(x.isdigit() for x in items):
            raise InputError(f"CUDA_VISIBLE_DEVICES={env}: the local executor needs GPU numbers (0,1,...), "
                             "not names")
        return [int(x) for x in items]
    try:
        import torch
        return list(range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001
        return []


def _pid_alive(pid: int, since: float) -> bool:
    """Whether process ``pid`` runs, and was started no later than ``since`` (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return False
        with open("/proc/stat") as fh:
            boot = next(float(ln.split()[1]) for ln in fh if ln.startswith("btime"))
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return started <= since + 2.0
    except (OSError, StopIteration, IndexError, ValueError):
        return True


def _last_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


# ----------------------------------------------------------------------------- the sweep


@dataclass
class ExecutorResult:
    total: int
    skipped: int = 0                    # in the table already (or appended by another process meanwhile)
    done: int = 0
    diverged: int = 0
    adopted: int = 0                    # jobs of an earlier sweep still queued or running, waited for
    failed: dict = field(default_factory=dict)    # config hash -> (config, reason)


def run_on_executor(configs: list[TrainConfig], out: str, settings: Settings, resources: Resources | None = None,
                    *, on_event: Callable[[str, TrainConfig, dict], None] | None = None,
                    **overrides) -> ExecutorResult:
    """Run every config whose hash is not in ``out`` as a job of ``settings.name`` (local or slurm).

    At most ``settings.parallel`` jobs are queued or running at once; the table is read
    again before each submission, so no run already in it is submitted; jobs of an
    earlier sweep of this table that are still queued or running are waited for, not
    submitted again.  A job that ends without its rows is submitted again up to
    ``settings.retries`` times.  ``on_event(kind, cfg, info)`` is called with kind
    ``"adopt"`` (a job of an earlier sweep), ``"begin"`` (cfg None, info: the runs to
    do), then ``"submit"``, ``"done"``, ``"skip"``, ``"retry"``, ``"failed"``.
    ``overrides`` (device, compile, threads, peak_flops, checkpoint_every) apply to every
    run and change no hash.
    """
    if settings.name not in ("local", "slurm"):
        raise OptionError("executor", f"{settings.name!r}: run_on_executor runs local or slurm jobs")
    for k in overrides:
        if k not in TrainConfig.NOT_HASHED:
            raise InputError(f"run_on_executor: cannot override {k!r}")
    resources = resources or Resources()
    configs = [replace(c, **{k: v for k, v in overrides.items() if v is not None}) for c in configs]
    check_runs(configs, out)             # every run checked before any is submitted
    out = os.path.abspath(out)
    jobs = jobs_folder(out)
    backend = _Backend(settings.name, jobs, out, settings, resources)
    backend.check(configs)
    try:
        os.makedirs(jobs, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the job folder {jobs}: {exc.strerror or exc}", file=out) from None
    from filelock import FileLock, Timeout
    lock = FileLock(os.path.join(jobs, ".sweep.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise InputError(f"another sweep is submitting the runs of this table (it holds {lock.lock_file}); let it "
                         "finish, or see `scalinglaws sweep status`", file=out) from None
    try:
        return _drive(configs, out, jobs, settings, backend, on_event or (lambda *a: None))
    finally:
        lock.release()
        try:                      # the empty folder submitit's local controller makes of the pattern
            os.rmdir(os.path.join(jobs, "%j"))
        except OSError:
            pass


def _drive(configs, out, jobs, settings, backend: _Backend, on_event) -> ExecutorResult:
    unique = list({c.hash(): c for c in configs}.values())
    res = ExecutorResult(total=len(unique))
    have = config_hashes(out)
    todo = [c for c in unique if c.hash() not in have]
    res.skipped = len(unique) - len(todo)
    flights: dict[str, Flight] = {}
    attempts: dict[str, int] = {}
    latest = _latest(read_ledger(jobs))
    candidates = []                      # jobs of an earlier sweep, perhaps still queued or running
    for cfg in todo:
        e = latest.get(cfg.hash())
        if e is None or e.get("executor") != settings.name or "end" in e or "failed" in e:
            continue
        if settings.name == "local" and e.get("host") != backend.host:
            continue
        candidates.append(Flight(cfg, str(e["job"]), 1, float(e.get("t", 0)), tuple(e.get("gpus", ())), event=e))
    states = backend.states(candidates) if candidates else {}
    for fl in candidates:
        if states[fl.hash][0]:
            flights[fl.hash] = fl
            attempts[fl.hash] = 1
            backend.adopt(fl)
            res.adopted += 1
            on_event("adopt", fl.cfg, {"job": fl.job_id})
    queue = deque(c for c in todo if c.hash() not in flights)
    on_event("begin", None, {"todo": len(todo), "adopted": len(flights), "jobs": jobs})
    try:
        while queue or flights:
            if flights:
                states = backend.states(list(flights.values()))
                ended = [f for f in flights.values() if not states[f.hash][0]]
                rows = _rows_by_hash(out) if ended else {}
                for f in ended:
                    del flights[f.hash]
                    backend.release(f)
                    if f.hash in rows:
                        res.done += 1
                        res.diverged += any(r.get("diverged") == "1" for r in rows[f.hash])
                        on_event("done", f.cfg, {"job": f.job_id, "rows": rows[f.hash]})
                        continue
                    reason = _reason(f, states[f.hash][1], jobs)
                    record(jobs, event="failed", hash=f.hash, job=f.job_id, reason=reason)
                    info = {"job": f.job_id, "attempt": f.attempt, "reason": reason,
                            "attempts": 1 + settings.retries, "log": log_path(f.event)}
                    if attempts[f.hash] < 1 + settings.retries:
                        queue.appendleft(f.cfg)
                        on_event("retry", f.cfg, info)
                    else:
                        res.failed[f.hash] = (f.cfg, reason)
                        on_event("failed", f.cfg, info)
            free = settings.parallel - len(flights)
            if queue and free > 0:
                have = config_hashes(out)
                batch = []
                while queue and len(batch) < free:
                    cfg = queue.popleft()
                    if cfg.hash() in have:           # another process trained it meanwhile
                        res.skipped += 1
                        on_event("skip", cfg, {})
                        continue
                    batch.append(cfg)
                submitted = backend.submit(batch)
                left = {c.hash() for c, *_ in submitted}
                queue.extendleft(reversed([c for c in batch if c.hash() not in left]))
                for cfg, job_id, job, gpus, r in submitted:
                    h = cfg.hash()
                    attempts[h] = attempts.get(h, 0) + 1
                    event = dict(event="submit", hash=h, job=job_id, executor=settings.name,
                                 folder=backend.pattern, host=backend.host, attempt=attempts[h],
                                 gpus=list(gpus), resources=r)
                    record(jobs, **event)
                    flights[h] = Flight(cfg, job_id, attempts[h], time.time(), gpus, job, event)
                    on_event("submit", cfg, {"job": job_id, "attempt": attempts[h], "resources": r})
            if flights:
                time.sleep(settings.poll)
    except BaseException:
        if settings.name == "local":     # local jobs end with the sweep; cluster jobs carry on
            for f in flights.values():
                if f.job is not None:
                    try:
                        f.job.cancel(check=False)
                    except Exception:  # noqa: BLE001
                        pass
        raise
    return res


def _reason(f: Flight, state: str, jobs: str) -> str:
    """Why a job ended without its rows, in one line."""
    end = next((e for e in reversed(read_ledger(jobs))
                if e.get("event") == "end" and e["hash"] == f.hash and str(e["job"]) == f.job_id), None)
    if end is not None and end.get("status") == "error":
        return end.get("error") or "the run raised an error"
    if end is not None:
        return "the job ended, but its rows are not in the table"
    if state and state not in ("FINISHED", "COMPLETED", "ended"):
        return f"the job ended without its rows (state {state})"
    return "the job ended without its rows or an error (killed?)"


# ----------------------------------------------------------------------------- status


@dataclass
class SweepStatus:
    total: int
    done: int = 0
    diverged: int = 0
    running: int = 0
    queued: int = 0                      # of the running: waiting in Slurm's queue
    failed: list = field(default_factory=list)    # (config, submit event with end/failed, error lines)
    todo: int = 0
    unchecked: int = 0                   # Slurm jobs counted running since sacct could not be asked
    jobs: str = ""


def sweep_status(configs: list[TrainConfig], out: str) -> SweepStatus:
    """How far the sweep of ``configs`` into ``out`` has got: done (rows in ``out``),
    running (a job queued or running), failed (its last job ended without rows), to do."""
    check_run_table(out)
    out = os.path.abspath(out)
    jobs = jobs_folder(out)
    rows = _rows_by_hash(out)
    latest = _latest(read_ledger(jobs))
    unique = list({c.hash(): c for c in configs}.values())
    st = SweepStatus(total=len(unique), jobs=jobs)
    pending = []
    for cfg in unique:
        h = cfg.hash()
        if h in rows:
            st.done += 1
            st.diverged += any(r.get("diverged") == "1" for r in rows[h])
        elif h in latest:
            pending.append((cfg, latest[h]))
        else:
            st.todo += 1
    slurm_ids = [str(e["job"]) for _, e in pending if e.get("executor") == "slurm" and "end" not in e
                 and "failed" not in e]
    info, broken = ({}, False)
    if slurm_ids:
        info, broken = sacct(slurm_ids) if shutil.which("sacct") else ({}, True)
    host = socket.gethostname()
    for cfg, e in pending:
        ended = "end" in e or "failed" in e
        active, queued = False, False
        if not ended:
            fl = Flight(cfg, str(e["job"]), 1, float(e.get("t", 0)), event=e)
            if e.get("executor") == "slurm":
                active, state = _slurm_state(fl, info, broken)
                queued = active and state.startswith("PENDING")
                st.unchecked += active and broken
            elif e.get("host") != host:
                active = True            # a local job of another machine: cannot be checked from here
                st.unchecked += 1
            else:
                active = _pid_alive(int(e["job"]), float(e.get("t", 0)))
        if active:
            st.running += 1
            st.queued += queued
        else:
            st.failed.append((cfg, e, error_lines(e)))
    return st

"""Sweeps as jobs (submitit): local processes with a worker killed mid-run, then a re-run;
``sweep status``; the Slurm path against a fake sbatch/sacct; errors of the flags and tables."""

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("submitit")

from scalinglaws.train.executor import jobs_folder, read_ledger, record  # noqa: E402
from scalinglaws.train.loop import append_rows  # noqa: E402
from scalinglaws.train.sweep import load_spec, load_sweep  # noqa: E402

TINY = """
[base]
n_layer = 1
d_model = 32
n_head = 2
seq_len = 64
batch_size = 8
val_tokens = "2K"
"""


def _table(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert all(len(r) == len(header) for r in body)           # rows whole
    return [dict(zip(header, r)) for r in body]


def _wait(what, timeout=90, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(step)
    raise AssertionError("timed out")


def test_local_sweep_with_a_worker_killed_then_run_again_has_every_run_once(write, tmp_path, cli):
    spec = write("spec.toml", TINY + '[grid]\ntokens = ["8K", "12K"]\nseed = [0, 1]\n')
    out, jobs = tmp_path / "runs.csv", jobs_folder(str(tmp_path / "runs.csv"))
    want = sorted(c.hash() for c in load_spec(str(spec)))
    flags = ["--executor", "local", "--max-parallel", "2", "--threads", "1", "--poll", "0.05"]
    proc = subprocess.Popen([sys.executable, "-m", "scalinglaws.cli.main", "sweep", str(spec), "--out", str(out),
                             *flags, "--retries", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = _wait(lambda: next((e for e in read_ledger(jobs) if e["event"] == "start"), None))
        os.kill(victim["pid"], signal.SIGKILL)                # a worker, in the middle of its run
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    assert "1 run(s) failed after 1 attempt(s)" in stderr and "sweep status" in stderr
    assert "3 run(s) trained" in stdout
    assert re.search(r"submitted \w{12} \(N 13.4K, D 8.19K, FP16\): job \d+", stderr)
    rows = _table(out)
    assert sorted(r["config_hash"] for r in rows) == sorted(set(want) - {victim["hash"]})

    code, text, _ = cli("sweep", "status", spec, "--out", out)
    assert code == 0
    assert re.search(r"done +3\n", text) and re.search(r"running +0\n", text)
    assert re.search(r"failed +1\n", text) and re.search(r"to do +0", text)
    assert victim["hash"] in text and "killed?" in text and f"job {victim['job']}" in text

    code, text, err = cli("sweep", spec, "--out", out, *flags)
    assert code == 0, err
    assert "1 run(s) trained, 3 already in" in text
    rows = _table(out)
    assert sorted(r["config_hash"] for r in rows) == want            # every run exactly once
    assert all(float(r["loss"]) > 0 for r in rows)
    submits = [e for e in read_ledger(jobs) if e["event"] == "submit"]
    assert sorted(e["hash"] for e in submits) == sorted(want + [victim["hash"]])   # only the gap again
    code, text, _ = cli("sweep", "status", spec, "--out", out)
    assert re.search(r"done +4\n", text) and re.search(r"failed +0\n", text)
    assert not os.path.exists(os.path.join(jobs, "%j"))


def test_status_of_a_partly_done_sweep(write, tmp_path, cli):
    spec = write("spec.toml", TINY + '[grid]\ntokens = ["4K", "6K", "8K", "10K", "12K"]\n')
    out = tmp_path / "runs.csv"
    c = load_spec(str(spec))
    jobs = jobs_folder(str(out))
    append_rows(str(out), [{"N": 1, "D": 2, "loss": 3.0, "diverged": 0, "config_hash": c[0].hash()},
                           {"N": 1, "D": 2, "loss": None, "diverged": 1, "config_hash": c[1].hash()}])
    folder, host = os.path.join(jobs, "%j"), socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.05)
        record(jobs, event="submit", hash=c[2].hash(), job=str(sleeper.pid), executor="local", folder=folder,
               host=host)                                      # running
        record(jobs, event="submit", hash=c[3].hash(), job="4242", executor="local", folder=folder, host=host)
        os.makedirs(os.path.join(jobs, "4242"))
        with open(os.path.join(jobs, "4242", "4242_0_log.err"), "w") as fh:
            fh.write("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                     "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
        record(jobs, event="end", hash=c[3].hash(), job="4242", status="error", error="RuntimeError: CUDA out of memory")
        code, text, err = cli("sweep", "status", spec, "--out", out)
        assert code == 0, err
        assert re.search(r"5 runs in .*spec.toml -> .*runs.csv", text)
        assert re.search(r"done +2 \(1 diverged\)", text) and re.search(r"running +1\n", text)
        assert re.search(r"failed +1\n", text) and re.search(r"to do +1", text)
        assert "job 4242" in text and "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" in text
        assert c[3].hash() in text and c[2].hash() not in text
    finally:
        sleeper.kill()
        sleeper.wait()
    code, text, _ = cli("sweep", "status", spec, "--out", out)    # the running job is gone, without rows
    assert re.search(r"running +0\n", text) and re.search(r"failed +2\n", text) and "killed?" in text


# --------------------------------------------------------------------------- Slurm, faked
FAKE_SBATCH = """#!{python}
import json, os, pathlib, sys
rec = pathlib.Path(os.environ["FAKE_SLURM"])
n = len(list(rec.glob("sbatch-*.json")))
(rec / f"sbatch-{{n}}.json").write_text(json.dumps({{"argv": sys.argv[1:], "script": open(sys.argv[-1]).read()}}))
print(f"Submitted batch job {{1000 + n}}")
"""
FAKE_SACCT = """#!{python}
import os, pathlib
states = pathlib.Path(os.environ["FAKE_SLURM"]) / "states"
print("JobID|State")
print(states.read_text() if states.exists() else "", end="")
"""

SLURM_SPEC = """
[base]
n_layer = 1
n_head = 2
seq_len = 64
batch_size = 8
val_tokens = "2K"

[grid]
d_model = [32, 64]                 # 13.4K and 53.4K parameters
tokens = ["8K", "12K"]

[resources]
time_min = 5
time_min_per_Mparam = 500          # 5 + 500 x 0.0134 -> 12 minutes; 5 + 500 x 0.0534 -> 32
mem_gb = {"20K" = 2, "1M" = 4}     # by size
cpus = 1

[executor]                         # the flags override these
name = "local"
partition = "cpu"
max_parallel = 8
retries = 3
"""


def test_slurm_jobs_through_a_fake_sbatch(write, tmp_path, monkeypatch):
    from submitit.core.utils import DelayedSubmission
    fake, rec = tmp_path / "bin", tmp_path / "slurm"
    fake.mkdir()
    rec.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_SACCT), ("srun", "#!/bin/sh\nexit 0\n"),
                       ("scancel", "#!/bin/sh\nexit 0\n")):
        (fake / name).write_text(text.format(python=sys.executable))
        (fake / name).chmod(0o755)
    spec = write("spec.toml", SLURM_SPEC)
    out = tmp_path / "runs.csv"
    jobs = jobs_folder(str(out))
    want = sorted(c.hash() for c in load_spec(str(spec)))
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", FAKE_SLURM=str(rec))
    cmd = [sys.executable, "-m", "scalinglaws.cli.main", "sweep", str(spec), "--out", str(out), "--executor", "slurm",
           "--partition", "gpu", "--gpus-per-run", "1", "--max-parallel", "3", "--retries", "0", "--poll", "0.05"]
    log = tmp_path / "sweep.err"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)

    def submitted():
        return [json.loads(p.read_text()) for p in sorted(rec.glob("sbatch-*.json"), key=lambda p: int(p.stem[7:]))]

    def job_ids(n, script):
        m = re.search(r"#SBATCH --array=0-(\d+)%(\d+)", script)
        return [f"{1000 + n}_{i}" for i in range(int(m.group(1)) + 1)] if m else [str(1000 + n)]

    try:
        _wait(lambda: len(submitted()) >= 2 and all(
            os.path.exists(os.path.join(jobs, j, f"{j}_submitted.pkl"))
            for n, s in enumerate(submitted()) for j in job_ids(n, s["script"])))
        time.sleep(0.5)
        first = submitted()
        assert len(first) == 2 and sum(len(job_ids(n, s["script"])) for n, s in enumerate(first)) == 3  # <= 3 at once
        small, big = first[0]["script"], first[1]["script"]
        for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=1", "--time=12", "--mem=2G",
                     "--array=0-1%2"):
            assert f"#SBATCH {line}\n" in small, small
        for line in ("--partition=gpu", "--gpus-per-node=1", "--time=32", "--mem=4G"):
            assert f"#SBATCH {line}\n" in big, big
        assert "--array" not in big and os.path.join(jobs, "%A_%a", "%A_%a_0_log.out") in small

        proc.kill()                                # the sweep dies; its jobs stay queued
        proc.wait()
        with open(log, "w") as err:                # run again: it waits for them, submits nothing new
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        _wait(lambda: log.read_text().count("submitted earlier") == 3)
        time.sleep(0.3)
        assert len(submitted()) == 2

        ran = set()
        while proc.poll() is None:                 # run each job's callable here, then tell sacct it completed
            for n, s in enumerate(submitted()):
                for j in job_ids(n, s["script"]):
                    pkl = os.path.join(jobs, j, f"{j}_submitted.pkl")
                    if j in ran or not os.path.exists(pkl):
                        continue
                    delayed = DelayedSubmission.load(pkl)
                    assert delayed.args[0].threads == 1                    # cpus per task -> torch threads
                    with monkeypatch.context() as m:
                        base, _, task = j.partition("_")
                        m.setenv("SLURM_JOB_ID", j)
                        if task:
                            m.setenv("SLURM_ARRAY_JOB_ID", base)
                            m.setenv("SLURM_ARRAY_TASK_ID", task)
                        assert delayed.result()["status"] == "done"
                    with open(rec / "states", "a") as fh:
                        fh.write(f"{j}|COMPLETED\n")
                    ran.add(j)
            time.sleep(0.05)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log.read_text()
    assert "4 run(s) trained, 0 already in" in stdout and "0 failed" in stdout
    assert len(submitted()) == 3 and "--time=32" in submitted()[2]["script"]     # the 4th when a slot freed
    rows = _table(out)
    assert sorted(r["config_hash"] for r in rows) == want
    starts = {e["job"] for e in read_ledger(jobs) if e["event"] == "start"}
    assert starts == ran == {e["job"] for e in read_ledger(jobs) if e["event"] == "submit"}


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("table, words", [
    ("[resources]\ntime_min = -5\n", "[resources] time_min = -5: must be a number >= 0 (minutes)"),
    ("[resources]\ngpu = 1\n", "[resources]: unknown key 'gpu'; did you mean 'gpus'?"),
    ("[resources]\nmem_gb = {\"lots\" = 4}\n", "[resources] mem_gb.\"lots\" = 4: \"lots\" is not a model size"),
    ("[resources]\ncpus = \"4\"\n", "[resources] cpus = \"4\": must be a number >= 0 (CPU cores)"),
    ("[executor]\nname = \"k8s\"\n", "[executor] name = \"k8s\": expects inline, local or slurm"),
    ("[executor]\nmax_parallel = 0\n", "[executor] max_parallel = 0: expects a whole number >= 1"),
])
def test_bad_tables_name_the_file_the_table_and_the_key(cli, write, tmp_path, table, words):
    spec = write("spec.toml", TINY + 'tokens = "4K"\n' + table)
    code, _, err = cli("sweep", spec, "--out", tmp_path / "runs.csv", "--executor", "local")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{spec}: {words}" in err, err
    assert not (tmp_path / "runs.csv").exists()
    with pytest.raises(Exception, match=re.escape(words)):
        load_sweep(str(spec))


@pytest.mark.parametrize("flags, words", [
    (["--executor", "k8s"], "--executor 'k8s' is not an executor: choose inline, local or slurm"),
    (["--executor", "local", "--max-parallel", "0"], "--max-parallel must be >= 1, got 0"),
    (["--executor", "local", "--retries", "-1"], "--retries must be >= 0, got -1"),
    (["--max-parallel", "4"], "--max-parallel needs --executor local or slurm"),
    (["--executor", "local", "--partition", "gpu"], "--partition applies to --executor slurm only"),
    (["--executor", "slurm"], "--executor slurm needs Slurm's sbatch, srun, sacct on PATH"),
])
def test_bad_flags_exit_2_with_one_line(cli, write, tmp_path, monkeypatch, flags, words):
    monkeypatch.setenv("PATH", str(tmp_path))             # no Slurm here
    spec = write("spec.toml", TINY + 'tokens = "4K"\n')
    code, _, err = cli("sweep", spec, "--out", tmp_path / "runs.csv", *flags)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_dry_run_shows_the_jobs_resources(cli, write, tmp_path):
    spec = write("spec.toml", SLURM_SPEC)
    code, text, err = cli("sweep", spec, "--out", tmp_path / "runs.csv", "--dry-run", "--gpus-per-run", "1")
    assert code == 0, err
    assert "4 runs in" in text and "4 still to do (local, at most 8 at a time)" in text
    assert "2 run(s): 1 GPU(s), 1 CPU core(s), 2 GB, 12 min" in text
    assert "2 run(s): 1 GPU(s), 1 CPU core(s), 4 GB, 32 min" in text


def test_a_job_sbatch_refuses_is_one_line_with_its_words(cli, write, tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, text in (("sbatch", "#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpux' >&2\nexit 1\n"),
                       ("srun", "#!/bin/sh\nexit 0\n"), ("sacct", "#!/bin/sh\nexit 0\n")):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    spec = write("spec.toml", TINY + 'tokens = "4K"\n[executor]\nname = "slurm"\npartition = "gpux"\n')
    code, _, err = cli("sweep", spec, "--out", tmp_path / "runs.csv", "--quiet")
    assert code == 2 and err.count("\n") == 1
    assert "sbatch refused the job: sbatch: error: invalid partition specified: gpux" in err
    assert not (tmp_path / "runs.csv").exists()

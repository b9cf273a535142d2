"""Sweeps: spec expansion, bad specs, and a sweep killed mid-way then resumed."""

import csv
import random
import re
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")

from scalinglaws.data.errors import InputError  # noqa: E402
from scalinglaws.train.sweep import expand_spec, load_spec  # noqa: E402

SPEC = """
[base]
n_layer = 1
d_model = 32
n_head = 2
seq_len = 64
batch_size = 8
val_tokens = "2K"

[grid]
tokens = ["12K", "16K", "20K"]

[[variant]]
ptq_bits = [8, 4]
[[variant]]
w_bits = 4
a_bits = 4
group_size = 16
"""


def test_expand_spec():
    cfgs = expand_spec({"base": {"seq_len": 64}, "grid": {"params": ["50K", "100K"], "tokens": [1e5, "200K"],
                                                          "ptq_bits": [8, 4]},
                        "variant": [{}, {"seed": 1}]})
    assert len(cfgs) == 8 and len({c.hash() for c in cfgs}) == 8
    assert [(c.params, c.tokens, c.seed) for c in cfgs[:4]] == [
        (5e4, 1e5, 0), (5e4, 1e5, 1), (5e4, 2e5, 0), (5e4, 2e5, 1)]
    assert all(c.ptq_bits == (8, 4) and c.seq_len == 64 for c in cfgs)


@pytest.mark.parametrize("text, words", [
    ("[base]\nw_bit = 4\n", "'w_bit'; did you mean 'w_bits'"),
    ("[grid]\ntokens = []\n", "empty list"),
    ("[bases]\nseq_len = 3\n", "unknown section"),
    ("[grid]\nw_bits = [4]\n[[variant]]\nw_bits = 8\n", "which the grid varies"),
    ("[base]\ntokens = \"lots\"\n", "not a number"),
    ("[base\n", "not valid TOML"),
])
def test_bad_specs(write, text, words):
    path = write("spec.toml", text)
    with pytest.raises(InputError, match=words) as e:
        load_spec(str(path))
    assert str(path) in str(e.value)


def test_bad_spec_cli_exit_2(cli, write, tmp_path):
    path = write("spec.toml", "[base]\ntokens = \"1M\"\nparams = \"50K\"\ngranularity = \"per_group\"\n")
    code, out, err = cli("sweep", path, "--out", tmp_path / "runs.csv")
    assert code == 2 and "granularity" in err and err.count("\n") == 1
    assert not (tmp_path / "runs.csv").exists()


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sweep_killed_at_a_random_moment_keeps_whole_runs_and_resumes(write, tmp_path, cli, seed):
    """SIGKILL a random fraction of a second after the table holds a random number of rows
    (1 to all but one; runs take about 0.1 s, so the kill lands in a run or an append):
    every row left is whole, every run has all its rows, and running the sweep again
    completes the set with each run once."""
    spec = write("spec.toml", SPEC)
    out = tmp_path / "runs.csv"
    configs = load_spec(str(spec))
    n_rows = len(configs) + 2 * 3                 # plus 2 PTQ rows per FP run
    rng = random.Random(seed)
    want, delay = rng.randrange(1, n_rows), rng.uniform(0, 0.3)
    cmd = [sys.executable, "-m", "scalinglaws.cli.main", "sweep", str(spec), "--out", str(out), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and \
                (len(_rows(out)) - 1 if out.exists() else 0) < want:
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)          # no chance to clean up
    finally:
        proc.wait()
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
    col = None
    if out.exists():
        rows = _rows(out)
        header, body = rows[0], rows[1:]
        assert all(len(r) == len(header) for r in body)
        col = {name: header.index(name) for name in ("loss", "config_hash", "ptq_bits")}
        assert all(float(r[col["loss"]]) > 0 and len(r[col["config_hash"]]) == 12 for r in body)
        per_run = {}
        for r in body:
            per_run[r[col["config_hash"]]] = per_run.get(r[col["config_hash"]], 0) + 1
        expect = {c.hash(): 3 if c.ptq_bits else 1 for c in configs}
        assert all(per_run[h] == expect[h] for h in per_run)               # whole runs only

    code, _, err = cli("sweep", spec, "--out", out, "--threads", "1")
    assert code == 0, err
    rows = _rows(out)
    col = col or {name: rows[0].index(name) for name in ("loss", "config_hash", "ptq_bits")}
    body = rows[1:]
    trained = [r for r in body if r[col["ptq_bits"]] == ""]
    assert sorted(r[col["config_hash"]] for r in trained) == sorted(c.hash() for c in configs)   # each run once
    assert len(body) == n_rows
    if len(configs) > want:                      # progress lines on a pipe: runs done of those to do, ETA
        assert re.search(r"sweep: \d+/\d+ runs trained, \d+ to do, elapsed \d+s, ETA", err), err

    code, out_text, _ = cli("sweep", spec, "--out", out, "--dry-run")
    assert code == 0 and "0 still to do" in out_text


def test_quiet_sweep_prints_only_its_summary(write, tmp_path, cli):
    spec = write("spec.toml", "[base]\nn_layer = 1\nd_model = 32\nn_head = 2\nseq_len = 64\nbatch_size = 4\n"
                              "val_tokens = \"2K\"\nthreads = 1\n[grid]\ntokens = [\"4K\", \"6K\"]\n")
    code, out, err = cli("sweep", spec, "--out", tmp_path / "runs.csv", "--quiet")
    assert code == 0 and err == "" and "2 run(s) trained" in out


def test_sweep_help_shows_the_sections(cli):
    code, out, _ = cli("sweep", "--help")
    assert code == 0 and "[base]" in out and "[grid]" in out and "[[variant]]" in out


@pytest.mark.parametrize("text, words", [
    ("[[variant]]\nw_bits = 4\n[[variant]]\nw_bits = 1\n", "variant 2, w_bits = 1: w_bits must be >= 2"),
    ("[[variant]]\nw_bits = 4\n[[variant]]\nw_bits = 4\ngroup_size = 7\n",
     "variant 2, group_size = 7, [base] params = \"50K\": group_size 7 does not divide"),
    ("[grid]\nseq_len = [64, 0]\n", "[grid] seq_len = 0: seq_len must be >= 1"),
    ("[[variant]]\nptq_bits = [8]\n[[variant]]\nfuse_cooldown = true\n",
     "variant 2, fuse_cooldown = true: fuse_cooldown needs quantization"),
    ("[[variant]]\nw_bits = 4\n[[variant]]\nwbits = 4\n", "variant 2: unknown key 'wbits'; did you mean 'w_bits'"),
])
def test_sweep_errors_name_the_file_the_variant_and_the_key(cli, write, tmp_path, text, words):
    path = write("spec.toml", "[base]\nparams = \"50K\"\ntokens = \"1M\"\n" + text)
    code, out, err = cli("sweep", path, "--out", tmp_path / "runs.csv")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}: " in err and words in err, err
    assert not (tmp_path / "runs.csv").exists()


def test_an_inline_sweep_ignores_the_job_tables(write, tmp_path, cli):
    spec = write("spec.toml", "[base]\nn_layer = 1\nd_model = 32\nn_head = 2\nseq_len = 64\nbatch_size = 4\n"
                              "val_tokens = \"2K\"\nthreads = 1\n[grid]\ntokens = [\"4K\", \"6K\"]\n"
                              "[resources]\ntime_min = 5\ngpus = 1\n[executor]\nname = \"inline\"\nretries = 2\n")
    code, out, err = cli("sweep", spec, "--out", tmp_path / "runs.csv", "--quiet")
    assert code == 0 and err == "" and "2 run(s) trained" in out
    code, out, _ = cli("sweep", "status", spec, "--out", tmp_path / "runs.csv")
    assert code == 0 and re.search(r"done +2\n", out) and re.search(r"to do +0", out)


def test_dry_run_refuses_a_table_without_the_columns_the_runs_fill(write, tmp_path, cli):
    """A table from before stochastic_rounding: the real sweep refuses it, so --dry-run does too (no "to do")."""
    from scalinglaws.train.loop import COLUMNS, LATE
    out = tmp_path / "runs.csv"
    out.write_text(",".join(c for c in COLUMNS if c not in LATE) + "\n")
    spec = write("spec.toml", "[base]\nn_layer = 1\nd_model = 32\nn_head = 2\nseq_len = 64\nbatch_size = 4\n"
                              "val_tokens = \"2K\"\ntokens = \"4K\"\nformat = \"mxfp4\"\nstochastic_rounding = true\n")
    for extra in ([], ["--executor", "local"]):
        code, text, err = cli("sweep", spec, "--out", out, "--dry-run", *extra)
        assert code == 2 and "has no column stochastic_rounding" in err and err.count("\n") == 1, err
        assert "to do" not in text
    code, _, err = cli("sweep", spec, "--out", out, "--quiet")                 # the run it stands for
    assert code == 2 and "has no column stochastic_rounding" in err


def test_a_run_already_in_the_table_has_its_leftover_checkpoint_removed(tmp_path):
    """A run killed after its append but before removing its checkpoint: the next sweep, or job, removes it."""
    import os

    from scalinglaws.train.executor import run_job
    from scalinglaws.train.loop import TrainConfig, append_rows, checkpoint_path
    from scalinglaws.train.sweep import run_sweep
    out = str(tmp_path / "runs.csv")
    cfg = TrainConfig(n_layer=1, d_model=32, n_head=2, seq_len=64, batch_size=4, val_tokens=2048, tokens=4096)
    append_rows(out, [{"N": 1, "D": 4096, "loss": 2.0, "config_hash": cfg.hash()}])
    for go in (lambda: run_sweep([cfg], out), lambda: run_job(cfg, out, str(tmp_path / "jobs"))):
        ck = checkpoint_path(out, cfg)
        os.makedirs(os.path.dirname(ck), exist_ok=True)
        open(ck, "wb").close()
        res = go()
        assert getattr(res, "skipped", None) == 1 or res == {"status": "skip"}
        assert not os.path.exists(ck) and not os.path.exists(out + ".ckpt")

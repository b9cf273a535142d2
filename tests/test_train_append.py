"""The run table under stress: processes appending at once, kills in the middle of appends,
outputs that are not run tables (never clobbered), and progress lines on a pipe."""

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")

from scalinglaws.data.errors import InputError  # noqa: E402
from scalinglaws.train.loop import (COLUMNS, LATE, ON_DEMAND, append_rows, check_run_table, lock_path,  # noqa: E402
                                    read_rows)

#: The header of a new run table that holds byte-level runs only (no shard run's tokenizer columns).
BYTE_COLUMNS = [c for c in COLUMNS if c not in ON_DEMAND]

# Appends n rows to the table through the real append function, one or two rows per call,
# once every worker is ready (so that they all write at the same time).
WORKER = r"""
import os, sys, time
from scalinglaws.train.loop import append_rows
path, folder, k, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
open(os.path.join(folder, f"ready{k}"), "w").close()
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.002)
per = 2 if k % 2 else 1
for i in range(0, n, per):
    append_rows(path, [{"N": 1000 + k, "D": i + j + 1, "loss": 2.5, "seed": k, "steps": i + j,
                        "corpus": 'a, "quoted"\nname', "config_hash": f"{k:02d}{i + j:010d}"} for j in range(per)])
"""

# Appends rows 0, 1, 2, ... one per call, carrying on from the rows already there, until killed.
APPENDER = r"""
import sys
from scalinglaws.train.loop import append_rows, read_rows
path = sys.argv[1]
for i in range(len(read_rows(path)[1]), 10**6):
    append_rows(path, [{"N": 1, "D": i + 1, "loss": 2.0, "steps": i, "config_hash": f"{i:012d}"}])
"""


def _whole_rows(path):
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    header, body = table[0], table[1:]
    assert all(len(r) == len(header) for r in body)
    return header, [dict(zip(header, r)) for r in body]


def _count(path):
    """Rows in a table without quoted line breaks (cheaper than parsing it while it is being written)."""
    with open(path, "rb") as fh:
        return fh.read().count(b"\n") - 1


def test_four_processes_appending_at_once_keep_every_row_once(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss,config_hash\n7,8,9.5,000000000old\n")   # an older, narrower run table
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(tmp_path), str(k), "100"],
                              stderr=subprocess.PIPE) for k in range(4)]
    try:
        deadline = time.monotonic() + 60
        while sum((tmp_path / f"ready{k}").exists() for k in range(4)) < 4 and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), [p.stderr.read().decode()[-2000:] for p in procs]
            time.sleep(0.01)
        (tmp_path / "go").touch()
        for p in procs:
            p.wait(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 4, [p.stderr.read().decode()[-2000:] for p in procs]
    header, rows = _whole_rows(path)
    assert header[:4] == ["N", "D", "loss", "config_hash"]                  # widened, but not by the LATE ones
    assert sorted(header) == sorted(c for c in COLUMNS if c not in LATE)
    assert len(rows) == 401 and len({r["config_hash"] for r in rows}) == 401
    assert rows[0]["config_hash"] == "000000000old"
    for k in range(4):                        # each worker's rows, whole and in its order
        mine = [r for r in rows if r["seed"] == str(k)]
        assert [r["steps"] for r in mine] == [str(i) for i in range(100)]
        assert all(r["N"] == str(1000 + k) and r["corpus"] == 'a, "quoted"\nname' for r in mine)
    leftovers = {p.name for p in tmp_path.iterdir()} - {"runs.csv", ".runs.csv.lock", "go"}
    assert leftovers == {f"ready{k}" for k in range(4)}


def test_kills_in_the_middle_of_appends_lose_at_most_the_row_being_written(tmp_path):
    path = str(tmp_path / "runs.csv")
    # A long table, so that every append spends most of its time rewriting it and a kill
    # at a random moment often lands inside a write.
    append_rows(path, [{"N": 1, "D": i + 1, "loss": 2.0, "steps": i, "config_hash": f"{i:012d}"}
                       for i in range(1500)])
    rng = random.Random(0)
    for _ in range(3):
        before = len(read_rows(path)[1])
        want = before + rng.randint(1, 15)
        proc = subprocess.Popen([sys.executable, "-c", APPENDER, path], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while _count(path) < want and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.02))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        header, rows = _whole_rows(path)
        assert len(rows) >= want - 1
        assert [r["steps"] for r in rows] == [str(i) for i in range(len(rows))]   # no row lost, none twice
        assert len({r["config_hash"] for r in rows}) == len(rows)
    stray = [n for n in os.listdir(tmp_path) if n not in ("runs.csv", ".runs.csv.lock")]
    assert all(re.fullmatch(r"\.runs\.csv\..+\.tmp", n) for n in stray), stray   # at most killed writes' temporaries


# ------------------------------------------------------------------ never clobber
TINY = ["--n-layer", "1", "--d-model", "32", "--n-head", "2", "--seq-len", "64", "--batch-size", "4",
        "--val-tokens", "2K", "--threads", "1"]


def test_train_refuses_a_table_that_is_not_a_run_table(cli, tmp_path):
    path = tmp_path / "synthetic_chinchilla.csv"
    path.write_bytes(b"N,D,loss\r\n20000000,200000000,5.13005\r\n20000000,400000000,4.69434\r\n")
    before = path.read_bytes()
    code, out, err = cli("train", *TINY, "--tokens", "20K", "--out", path)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and "config_hash" in err and "not a run table" in err
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_sweep_refuses_a_table_with_columns_the_trainer_does_not_write(cli, write, tmp_path):
    spec = write("spec.toml", "[base]\nn_layer = 1\nd_model = 32\nn_head = 2\ntokens = \"10K\"\n")
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss,config_hash,my_note,lab\n1,2,3.5,abc,keep me,x\n")
    before = path.read_bytes()
    for extra in ([], ["--dry-run"]):
        code, out, err = cli("sweep", spec, "--out", path, *extra)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert str(path) in err and "'my_note', 'lab'" in err
        assert path.read_bytes() == before


def test_what_counts_as_a_run_table(tmp_path):
    ok = tmp_path / "old.csv"
    ok.write_text("N,D,loss,w_bits,config_hash\n1,2,3.5,,abc\n")      # a subset of the columns: widened
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for p in (ok, empty, tmp_path / "absent.csv", tmp_path / "new" / "folder" / "runs.csv"):
        check_run_table(str(p))
    assert append_rows(str(ok), [{"N": 4, "D": 5, "loss": 2.0, "config_hash": "abc"}], unique=True) == 0
    assert append_rows(str(empty), [{"N": 4, "D": 5, "loss": 2.0, "config_hash": "def"}]) == 1
    assert read_rows(str(empty))[0] == BYTE_COLUMNS
    before = ok.read_bytes(), empty.read_bytes()   # a table with a header never gets the late columns, and
    for path, late in ((ok, {"tokenizer": "bpe", "vocab_size": 512}), (empty, {"tokenizer": "bpe"}),
                       (ok, {"stochastic_rounding": 1})):             # a row that needs one is refused
        with pytest.raises(InputError, match=f"has no columns? {next(iter(late))}.*write these runs to a new table"):
            append_rows(str(path), [{"N": 4, "D": 5, "loss": 2.0, "config_hash": "ghi", **late}])
        with pytest.raises(InputError, match="write these runs to a new table"):
            check_run_table(str(path), fills=tuple(late))
    assert (ok.read_bytes(), empty.read_bytes()) == before
    assert "stochastic_rounding" in read_rows(str(empty))[0]         # a new table has it: it takes such runs
    assert append_rows(str(empty), [{"N": 4, "D": 5, "loss": 2.0, "config_hash": "ghi", "stochastic_rounding": 1}])
    old_speed = tmp_path / "speed.csv"           # the speed columns are left out of such a table's rows
    old_speed.write_text(",".join(c for c in BYTE_COLUMNS if c not in LATE) + "\n")
    assert append_rows(str(old_speed), [{"N": 4, "D": 5, "loss": 2.0, "config_hash": "ghi", "mfu": 0.5}]) == 1
    assert "mfu" not in read_rows(str(old_speed))[0]
    shards = tmp_path / "shards.csv"             # a new table whose first row is a shard run has them
    assert append_rows(str(shards), [{"N": 4, "D": 5, "loss": 2.0, "config_hash": "jkl", "tokenizer": "bpe",
                                      "vocab_size": 512}]) == 1
    assert append_rows(str(shards), [{"N": 4, "D": 5, "loss": 2.0, "config_hash": "mno"}]) == 1
    header, rows = read_rows(str(shards))
    assert header == list(COLUMNS) and [r["vocab_size"] for r in rows] == ["512", ""]
    bad = {"twice.csv": ("N,D,loss,config_hash,loss\n", "loss appears twice"),
           "cells.csv": ("N,D,loss,config_hash\n1,2,3,abc,extra\n", "line 2 has 5 cells where the header has 4"),
           "blank.csv": ("\nN,D,loss,config_hash\n", "first line is empty"),
           "other.csv": ("N,D,loss,config_hash,foo\n", "no column 'foo'")}
    for name, (text, words) in bad.items():
        p = tmp_path / name
        p.write_text(text)
        for call in (lambda: check_run_table(str(p)),
                     lambda: append_rows(str(p), [{"N": 1, "D": 2, "loss": 3.0, "config_hash": "x"}])):
            with pytest.raises(InputError, match=words) as e:
                call()
            assert str(p) in str(e.value) and p.read_text() == text
    with pytest.raises(InputError, match="is a folder"):
        check_run_table(str(tmp_path))
    with pytest.raises(InputError, match="does not write: bogus"):
        append_rows(str(ok), [{"N": 1, "D": 2, "loss": 3.0, "config_hash": "x", "bogus": 1}])
    assert lock_path(str(ok)) == str(tmp_path / ".old.csv.lock")


# ------------------------------------------------------------------ progress
LINE = re.compile(r"^step (\d+)/(\d+) \(\d+%\), [\d,]+ tok/s, loss \d+\.\d+, ETA (-|\d+s)$", re.M)


def test_train_prints_progress_lines_on_a_pipe(tmp_path):
    cmd = [sys.executable, "-m", "scalinglaws.cli.main", "train", *TINY, "--tokens", "20K",
           "--out", str(tmp_path / "runs.csv")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    steps = [(int(a), int(b)) for a, b, _ in LINE.findall(run.stderr)]
    assert 5 <= len(steps) <= 12 and steps[-1][0] == steps[-1][1] == 79, run.stderr   # about every tenth
    assert "appended 1 row(s)" in run.stderr and "FP16" in run.stdout


def test_quiet_train_prints_no_progress(cli):
    code, out, err = cli("train", *TINY, "--tokens", "20K")     # stderr is not a terminal here either
    assert code == 0 and len(LINE.findall(err)) >= 5
    code, out, err = cli("train", *TINY, "--tokens", "20K", "--quiet")
    assert code == 0, err
    assert not LINE.search(err) and "step" not in err and "FP16" in out

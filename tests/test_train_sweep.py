"""Sweeps: spec expansion, bad specs, and a sweep killed mid-way then resumed."""

import csv
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
                        "variant": [{}, {"w_bits": 4}]})
    assert len(cfgs) == 8 and len({c.hash() for c in cfgs}) == 8
    assert [(c.params, c.tokens, c.w_bits) for c in cfgs[:4]] == [
        (5e4, 1e5, None), (5e4, 1e5, 4), (5e4, 2e5, None), (5e4, 2e5, 4)]
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


def test_killed_sweep_keeps_whole_rows_and_resumes(write, tmp_path, cli):
    spec = write("spec.toml", SPEC)
    out = tmp_path / "runs.csv"
    cmd = [sys.executable, "-c", "from scalinglaws.cli.main import main; main()",
           "sweep", str(spec), "--out", str(out), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)          # no chance to clean up
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    rows = _rows(out)
    header, body = rows[0], rows[1:]
    configs = load_spec(str(spec))
    assert 1 <= len(body) < len(configs) + 2 * 3    # killed after the first run, before the last
    assert all(len(r) == len(header) for r in body)
    col = {name: header.index(name) for name in ("loss", "config_hash", "ptq_bits")}
    assert all(float(r[col["loss"]]) > 0 and len(r[col["config_hash"]]) == 12 for r in body)

    code, _, err = cli("sweep", spec, "--out", out, "--threads", "1")
    assert code == 0, err
    body = _rows(out)[1:]
    trained = [r for r in body if r[col["ptq_bits"]] == ""]
    hashes = [r[col["config_hash"]] for r in trained]
    assert sorted(hashes) == sorted(c.hash() for c in configs)          # each run once
    assert len(body) == len(configs) + 2 * 3                              # plus 2 PTQ rows per FP run

    code, out_text, _ = cli("sweep", spec, "--out", out, "--dry-run")
    assert code == 0 and "0 still to do" in out_text

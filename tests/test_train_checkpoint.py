"""Checkpoints: a killed run, started again, ends with the loss of the uninterrupted run; hashes stay put."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from scalinglaws.data.errors import InputError  # noqa: E402
from scalinglaws.train.data import Corpus  # noqa: E402
from scalinglaws.train.loop import TrainConfig, checkpoint_path, config_hashes, train  # noqa: E402
from scalinglaws.train.sweep import load_sweep, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# A 13K-parameter model that trains in about a second on one CPU thread (as in test_train_loop).
TINY = dict(n_layer=1, d_model=32, n_head=2, seq_len=64, batch_size=16, val_tokens=8192, lr=3e-3, threads=1)


class Killed(Exception):
    """Stands for a kill: raised by the progress hook after a given step."""


def kill_after(step):
    def hook(done, total, loss):
        if done == step:
            raise Killed
    return hook


@pytest.fixture(scope="module")
def corpus():
    return Corpus.load(None)


def test_checkpoint_every_changes_no_hash():
    """The shipped sweep's runs keep the hashes of the shipped table, with or without checkpoints."""
    sweep = load_sweep(str(ROOT / "data" / "trainer_sweep.toml"))
    have = config_hashes(str(ROOT / "data" / "trainer_runs.csv"))
    assert len(sweep.configs) == 96 and {c.hash() for c in sweep.configs} <= have
    from dataclasses import replace
    assert {replace(c, checkpoint_every=50).hash() for c in sweep.configs} <= have


@pytest.mark.parametrize("kw", [{}, dict(w_bits=4, a_bits=4, qat_fraction=0.5),
                                dict(format="mxfp4", stochastic_rounding=True, qat_fraction=0.5)],
                         ids=["fp", "fp-then-qat", "mxfp4-stochastic-rounding"])
def test_resumed_run_ends_with_the_uninterrupted_loss(corpus, tmp_path, kw):
    base = TrainConfig(tokens=40 * 1024, **TINY, **kw)                  # 40 steps; QAT from step 20
    ref = train(base, corpus=corpus)
    cfg = TrainConfig(tokens=40 * 1024, checkpoint_every=7, **TINY, **kw)
    ck = checkpoint_path(str(tmp_path / "runs.csv"), cfg)
    assert ck == str(tmp_path / "runs.csv.ckpt" / f"{base.hash()}.pt")
    with pytest.raises(Killed):
        train(cfg, corpus=corpus, checkpoint=ck, on_step=kill_after(25))
    state = torch.load(ck, weights_only=True)
    assert state["step"] == 21 and state["config_hash"] == base.hash()          # the last multiple of 7 before 25
    steps = []
    rows = train(cfg, corpus=corpus, checkpoint=ck, on_step=lambda s, n, loss: steps.append(s))
    assert steps == list(range(22, 41))                                         # it went on from step 21
    for key in ("loss", "D", "steps", "D_fp", "D_qat", "diverged", "config_hash"):
        assert rows[0][key] == ref[0][key], key                                 # bit for bit on the CPU
    assert os.path.exists(ck)                  # the caller removes it after appending the rows


def test_compiled_resumed_run_leaves_every_compiling_step_out_of_tokens_per_s(corpus, tmp_path, monkeypatch):
    """On a fake clock: each step takes 1 s, a step that compiles 101 s (the first, the switch to QAT
    and, in the process that resumes, its first).  16 steps of 1,024 tokens, killed after step 13
    (checkpoint at 12), resumed: 3 compiling steps, 13 timed ones, so 1,024 tokens/s exactly."""
    from types import SimpleNamespace

    from scalinglaws.train import loop
    clock = [0.0]
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(loop, "use_compile", lambda device, flag: True)
    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)
    real_step, at = loop.train_step, {}

    def step(model, fwd, opt, batch, clip, device):        # at["step"]: the step this call trains
        clock[0] += 101.0 if at["step"] in (at["first"], 8) else 1.0
        at["step"] += 1
        return real_step(model, fwd, opt, batch, clip, device)
    monkeypatch.setattr(loop, "train_step", step)
    cfg = TrainConfig(tokens=16 * 1024, w_bits=4, a_bits=4, qat_fraction=0.5, checkpoint_every=4, **TINY)
    ck = checkpoint_path(str(tmp_path / "runs.csv"), cfg)
    at.update(step=0, first=0)
    with pytest.raises(Killed):
        train(cfg, corpus=corpus, checkpoint=ck, on_step=kill_after(13))
    state = torch.load(ck, weights_only=True)
    assert (state["step"], state["untimed"], state["untimed_s"], state["train_s"]) == (12, 2, 202.0, 212.0)
    at.update(step=12, first=12)
    (row,) = train(cfg, corpus=corpus, checkpoint=ck)
    assert row["steps"] == 16 and row["tokens_per_s"] == 1024.0 and row["wall_s"] == 316.0


def test_bad_checkpoints_are_refused_with_one_line(corpus, tmp_path):
    cfg = TrainConfig(tokens=8 * 1024, checkpoint_every=3, **TINY)
    ck = checkpoint_path(str(tmp_path / "runs.csv"), cfg)
    with pytest.raises(Killed):
        train(cfg, corpus=corpus, checkpoint=ck, on_step=kill_after(4))
    other = TrainConfig(tokens=8 * 1024, checkpoint_every=3, **{**TINY, "lr": 1e-3})
    with pytest.raises(InputError, match="a checkpoint of another run .*delete it"):
        train(other, corpus=corpus, checkpoint=ck)
    Path(ck).write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot resume from this checkpoint .*delete it"):
        train(cfg, corpus=corpus, checkpoint=ck)
    with pytest.raises(InputError, match="checkpoint_every needs a checkpoint file"):
        train(cfg, corpus=corpus)


def test_checkpoint_of_another_device_type_is_refused_with_one_line(corpus, tmp_path, cli):
    """The device is not in the hash; a checkpoint written on CUDA, resumed on the CPU, is refused, not misread."""
    out = tmp_path / "runs.csv"
    cfg = TrainConfig(tokens=8192.0, checkpoint_every=3, **TINY)      # as the command line below reads it
    ck = checkpoint_path(str(out), cfg)
    with pytest.raises(Killed):
        train(cfg, corpus=corpus, checkpoint=ck, on_step=kill_after(4))
    state = torch.load(ck, weights_only=True)
    assert state["device"] == "cpu"
    torch.save({**state, "device": "cuda"}, ck)
    with pytest.raises(InputError, match="written on cuda, resumed on cpu.*delete it"):
        train(cfg, corpus=corpus, checkpoint=ck)
    args = ["train", "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--seq-len", "64", "--batch-size", "16",
            "--tokens", "8192", "--val-tokens", "8192", "--lr", "0.003", "--threads", "1", "--quiet",
            "--checkpoint-every", "3", "--out", str(out)]
    code, _, err = cli(*args)
    assert code == 2 and "written on cuda, resumed on cpu" in err and err.count("\n") == 1, err
    assert "Traceback" not in err and not out.exists()
    # a generator state that cannot be restored (as a CUDA one on the CPU): the same one-line advice
    torch.save({**state, "torch_rng": torch.zeros(3, dtype=torch.uint8)}, ck)
    with pytest.raises(InputError, match="cannot restore the run from this checkpoint .*RuntimeError.*delete it"):
        train(cfg, corpus=corpus, checkpoint=ck)


def test_cli_checkpoint_flag_errors(cli, tmp_path):
    args = ["train", "--n-layer", "1", "--d-model", "32", "--tokens", "4K", "-q"]
    code, out, err = cli(*args, "--checkpoint-every", "5")
    assert code == 2 and "--checkpoint-every needs --out" in err and err.count("\n") == 1
    code, out, err = cli(*args, "--checkpoint-every", "-1", "--out", tmp_path / "r.csv")
    assert code == 2 and "--checkpoint-every must be >= 0" in err and err.count("\n") == 1


def test_sweep_resumes_a_killed_run_from_its_checkpoint(corpus, tmp_path):
    cfgs = [TrainConfig(tokens=24 * 1024, **TINY, seed=s) for s in (0, 1)]
    ref = [train(c, corpus=corpus)[0]["loss"] for c in cfgs]
    out = str(tmp_path / "runs.csv")
    current = {}

    def on_step(done, total, loss):             # the first run finishes, the second is killed at step 15
        if current["run"] == 1 and done == 15:
            raise Killed

    with pytest.raises(Killed):
        run_sweep(cfgs, out, checkpoint_every=5, on_step=on_step,
                  on_run=lambda i, n, c, status, rows: current.update(run=i))
    assert len(config_hashes(out)) == 1
    assert os.listdir(out + ".ckpt") == [f"{cfgs[1].hash()}.pt"]            # the first run's is removed
    assert torch.load(os.path.join(out + ".ckpt", f"{cfgs[1].hash()}.pt"), weights_only=True)["step"] == 15
    res = run_sweep(cfgs, out, checkpoint_every=5)
    assert (res.done, res.skipped) == (1, 1) and not os.path.exists(out + ".ckpt")
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["loss"]) for r in rows] == pytest.approx(ref, rel=1e-5, abs=0)


RUN = """
import sys
from scalinglaws.cli.main import run
sys.exit(run(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_with_the_same_loss(tmp_path, cli):
    out = tmp_path / "runs.csv"
    args = ["train", "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--seq-len", "64", "--batch-size", "16",
            "--tokens", "60K", "--val-tokens", "8192", "--lr", "0.003", "--threads", "1", "--quiet",
            "--checkpoint-every", "5", "--out", str(out)]
    cfg = TrainConfig(tokens=60e3, **TINY)       # as the command line reads --tokens 160K
    ck = Path(checkpoint_path(str(out), cfg))
    proc = subprocess.Popen([sys.executable, "-c", RUN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ck.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert ck.exists(), proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL and not out.exists()        # killed before its row
    step = torch.load(ck, weights_only=True)["step"]
    assert 5 <= step < 59 and step % 5 == 0
    code, _, err = cli(*args)                                             # the same command again
    assert code == 0, err
    assert not ck.exists() and not ck.parent.exists()                     # removed once the row is in
    with open(out, newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    ref = train(cfg)[0]
    assert float(row["loss"]) == pytest.approx(ref["loss"], rel=1e-5, abs=0) and row["config_hash"] == cfg.hash()
    assert int(row["steps"]) == ref["steps"] == 59

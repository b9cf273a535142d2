"""One training run: plan, schedule, rows, PTQ, divergence, atomic appends, CLI errors."""

import csv
import math
import os

import pytest

torch = pytest.importorskip("torch")

from scalinglaws.data.errors import InputError  # noqa: E402
from scalinglaws.train import loop  # noqa: E402
from scalinglaws.train.data import Corpus  # noqa: E402
from scalinglaws.train.loop import TrainConfig, append_rows, plan, read_rows, train  # noqa: E402
from scalinglaws.train.model import GPT, shape_for  # noqa: E402

# A 13K-parameter model that trains in about a second on one CPU thread.
TINY = dict(n_layer=1, d_model=32, n_head=2, seq_len=64, batch_size=16, val_tokens=8192, lr=3e-3, threads=1)


@pytest.fixture(scope="module")
def corpus():
    return Corpus.load(None)


@pytest.fixture(scope="module")
def runs(corpus):
    """The same tiny model and budget in FP (with PTQ rows), W8A8 and W2A2."""
    out = {}
    for name, kw in {"fp": dict(ptq_bits=(8, 2)), "w8": dict(w_bits=8, a_bits=8),
                     "w2": dict(w_bits=2, a_bits=2)}.items():
        out[name] = train(TrainConfig(tokens=100_000, **TINY, **kw), corpus=corpus)
    return out


def unigram_loss(corpus, n):
    """Cross-entropy of the first n validation bytes under the training split's byte frequencies."""
    p = torch.bincount(corpus.train.long(), minlength=256).double() + 1
    return -(p / p.sum())[corpus.val[:n].long()].log().mean().item()


def test_tiny_run_learns_beyond_unigram(runs, corpus):
    row = runs["fp"][0]
    assert row["diverged"] == 0 and row["steps"] == math.ceil(100_000 / 1024)
    assert row["D"] == row["steps"] * 16 * 64
    # ln 256 = 5.55 is a uniform guess; byte frequencies alone give about 3.24 nats.
    assert row["loss"] < unigram_loss(corpus, 8192) - 0.3 < math.log(256) - 2


def test_low_bits_cost_loss(runs):
    fp, w8, w2 = runs["fp"][0]["loss"], runs["w8"][0]["loss"], runs["w2"][0]["loss"]
    assert abs(w8 - fp) < 0.02            # 8-bit QAT is nearly free
    assert w2 > w8 + 0.1                  # ternary weights and activations are not
    r = runs["w2"][0]
    assert (r["w_bits"], r["a_bits"], r["kv_bits"]) == (2, 2, None)
    assert (r["w_granularity"], r["a_granularity"]) == ("per_channel", "per_token")
    assert r["D_fp"] == 0 and r["D_qat"] == r["D"] and r["qat_fraction"] == 1.0


def test_ptq_rows(runs):
    base, p8, p2 = runs["fp"]
    assert base["ptq_bits"] is None and base["loss_fp"] is None and base["w_bits"] is None
    assert [p8["ptq_bits"], p2["ptq_bits"]] == [8, 2]
    for r in (p8, p2):
        assert r["loss_fp"] == base["loss"] and r["config_hash"] == base["config_hash"]
        assert (r["N"], r["D"], r["w_bits"]) == (base["N"], base["D"], None)
    assert abs(p8["loss"] - base["loss"]) < 0.005 < p2["loss"] - base["loss"]


def test_ptq_matches_manual_rounding(corpus):
    """The PTQ row's loss is the loss of the same weights rounded by hand, per output channel."""
    cfg = TrainConfig(tokens=20_000, ptq_bits=(3,), **TINY)
    rows = train(cfg, corpus=corpus)
    p = plan(cfg)
    torch.manual_seed(0)
    model = loop.build(p, torch.device("cpu"))
    opt = loop.make_optimizer(model, cfg, p.lr, torch.device("cpu"))
    batches = corpus.batches(p.batch_size, cfg.seq_len, cfg.seed)
    for step in range(p.steps):
        for g in opt.param_groups:
            g["lr"] = p.lr_at(step)
        loop.train_step(model, model, opt, next(batches), cfg.grad_clip, torch.device("cpu"))
    vx, vy = corpus.val_windows(cfg.seq_len, cfg.val_tokens)
    assert loop.evaluate(model, vx, vy, 64, torch.device("cpu")) == pytest.approx(rows[0]["loss"], abs=1e-6)
    with torch.no_grad():
        for block in model.blocks:
            for lin in (block.attn.qkv, block.attn.out, block.mlp.fc1, block.mlp.fc2):
                w = lin.weight
                s = w.abs().amax(1, keepdim=True) / 3          # 3 bits: codes -3..3
                w.copy_(torch.clamp(torch.round(w / s), -3, 3) * s)
    assert loop.evaluate(model, vx, vy, 64, torch.device("cpu")) == pytest.approx(rows[1]["loss"], abs=1e-5)


def test_divergence_is_recorded(corpus):
    rows = train(TrainConfig(tokens=200_000, **{**TINY, "lr": 1e6}, grad_clip=0), corpus=corpus)
    r = rows[0]
    assert r["diverged"] == 1 and r["steps"] < math.ceil(200_000 / 1024)


def test_schedules_against_formulas():
    cfg = dict(tokens=100 * 1024, **TINY)             # 100 steps, 5 warmup steps
    c = plan(TrainConfig(**cfg))
    lr = c.lr
    cos = lambda i, n, w: lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (i - w) / (n - w))))  # noqa: E731
    assert [c.lr_at(i) for i in range(5)] == pytest.approx([lr * (i + 1) / 5 for i in range(5)])
    assert [c.lr_at(i) for i in range(5, 100)] == pytest.approx([cos(i, 100, 5) for i in range(5, 100)])
    w = plan(TrainConfig(**cfg, schedule="wsd", decay_fraction=0.2))
    assert [w.lr_at(i) for i in (5, 79)] == pytest.approx([lr, lr])
    assert [w.lr_at(i) for i in range(80, 100)] == pytest.approx([lr * (0.1 + 0.9 * (1 - (i - 80) / 20))
                                                                  for i in range(80, 100)])
    # FP then QAT: two cycles, each with its own warmup; fused: one warmup, decay during QAT only
    q = plan(TrainConfig(**cfg, w_bits=4, qat_fraction=0.3))
    assert q.qat_start == 70
    assert q.lr_at(69) == pytest.approx(cos(69, 70, 4)) and q.lr_at(70) == pytest.approx(lr / 2)
    assert q.lr_at(99) == pytest.approx(cos(29, 30, 2))
    f = plan(TrainConfig(**cfg, w_bits=4, qat_fraction=0.3, fuse_cooldown=True, schedule="wsd"))
    assert [f.lr_at(i) for i in (5, 69, 70)] == pytest.approx([lr, lr, lr])
    assert f.lr_at(85) == pytest.approx(lr * (0.1 + 0.9 * (1 - 15 / 30)))
    d = plan(TrainConfig(**{**cfg, "tokens": None}, w_bits=4, d_fp=70_000, d_qat=30_000))
    assert d.qat_start == d.steps - round(0.3 * d.steps)


def test_ladder_and_param_count():
    s = shape_for(1e6)
    model = GPT(s, 32)
    blocks = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("embed", "head")))
    assert s.n_params == blocks and s.n_total == sum(p.numel() for p in model.parameters())
    assert 0.7e6 < s.n_params < 1.4e6 and s.batch_tokens == 1024
    g = shape_for(None, n_layer=2, d_model=64, n_head=4, n_kv_head=2)
    assert sum(p.numel() for n, p in GPT(g, 16).named_parameters() if n.startswith("blocks")) + 64 == g.n_params


def test_config_hash():
    a = TrainConfig.from_options({"tokens": "1M", "params": "100K", "w-bits": 4})
    assert a.hash() == TrainConfig(tokens=1e6, params=1e5, w_bits=4).hash()
    assert a.hash() == TrainConfig(tokens=1e6, params=1e5, w_bits=4, device="cpu", threads=3).hash()
    assert a.hash() != TrainConfig(tokens=1e6, params=1e5, w_bits=4, seed=1).hash()
    assert len(a.hash()) == 12 and int(a.hash(), 16) >= 0
    assert TrainConfig.from_options({"ptq_bits": "2,8,4"}).ptq_bits == (8, 4, 2)


def test_append_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "runs.csv")
    append_rows(path, [{"N": 1, "D": 2, "loss": 3.5, "config_hash": "a"}])
    append_rows(path, [{"N": 4, "D": 5, "loss": 2.25, "config_hash": "b", "w_bits": 4}])
    header, rows = read_rows(path)
    assert header[:3] == ["N", "D", "loss"] and [r["config_hash"] for r in rows] == ["a", "b"]
    assert rows[0]["w_bits"] == "" and rows[1]["w_bits"] == "4"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask      # not mkstemp's 0600
    before = open(path).read()

    class Boom(csv.DictWriter):
        def writerow(self, row):
            if row.get("config_hash") == "c":
                raise KeyboardInterrupt          # interrupted in the middle of writing
            return super().writerow(row)

    monkeypatch.setattr(loop.csv, "DictWriter", Boom)
    with pytest.raises(KeyboardInterrupt):
        append_rows(path, [{"N": 6, "D": 7, "loss": 1.0, "config_hash": "c"}])
    assert open(path).read() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".runs.csv.lock", "runs.csv"]   # no temporary file left


@pytest.mark.parametrize("opts", [
    dict(w_granularity="per_row", w_bits=4),
    dict(exp_bits=4, man_bits=3),
    dict(format="fp", exp_bits=4, man_bits=3, w_bits=4),
    dict(w_bits=4, group_size=7),
    dict(tokens=-5),
    dict(ptq_bits=(4,), w_bits=4),
    dict(qat_fraction=0.5),
    dict(w_bits=1),
])
def test_bad_options_raise(opts):
    with pytest.raises(InputError):
        plan(TrainConfig(**{"tokens": 1e6, "params": 5e4, **opts}))


@pytest.mark.parametrize("args, words", [
    (["--w-bits", "4", "--w-granularity", "per_row"], "--w-granularity"),
    (["--exp-bits", "4"], "--format fp"),
    (["--tokens", "-5"], "--tokens"),
    (["--w-bits", "4", "--group-size", "7"], "does not divide"),
    (["--tokens", "1x"], "not a number"),
])
def test_cli_bad_options_one_line(cli, args, words):
    argv = ["train", "--params", "50K", *(["--tokens", "1M"] if "--tokens" not in args else []), *args]
    code, out, err = cli(*argv)
    assert code == 2 and words in err and err.count("\n") == 1 and "Traceback" not in err


def test_row_of_fp_format_run_with_fc2_kv_and_qat_fraction(corpus):
    cfg = TrainConfig(tokens=16_384, format="fp", exp_bits=4, man_bits=3, kv_bits=8, fc2_bits=8, group_size=16,
                      qat_fraction=0.5, fuse_cooldown=True, **TINY)
    (r,) = train(cfg, corpus=corpus)
    assert (r["w_bits"], r["a_bits"], r["kv_bits"], r["exp_bits"], r["man_bits"]) == (8, 8, 8, 4, 3)
    assert (r["group_size"], r["fc2_bits"], r["format"], r["fuse_cooldown"]) == (16, 8, "fp", 1)
    assert r["D_fp"] == r["D_qat"] == r["D"] / 2 == 8 * 1024 and r["qat_fraction"] == 0.5
    assert r["w_granularity"] == r["a_granularity"] == "per_group" and r["diverged"] == 0
    assert r["params_total"] == r["N"] + 2 * 256 * 32 and r["config_hash"] == cfg.hash()

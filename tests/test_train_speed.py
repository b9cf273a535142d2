"""Training speed on the CPU: the MFU formula by hand, the peak table, --peak-flops, the compile
default, the compiled path (through aot_eager), the new row columns and old tables, and
benchmarks/train_gpu.py (--smoke, and the message without CUDA)."""

import csv
import dataclasses
import functools
import json
import math
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import load_script  # noqa: E402
from scalinglaws.data.errors import InputError  # noqa: E402
from scalinglaws.train import loop, model as model_mod  # noqa: E402
from scalinglaws.train.data import Corpus  # noqa: E402
from scalinglaws.train.loop import (COLUMNS, LATE, ON_DEMAND, TrainConfig, append_rows, read_rows, train,  # noqa: E402
                                    use_compile)
from scalinglaws.train.model import shape_for  # noqa: E402
from scalinglaws.train.speed import flops_per_token, mfu, peak_flops  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_layer=1, d_model=32, n_head=2, seq_len=64, batch_size=16, val_tokens=8192, lr=3e-3, threads=1)


@pytest.fixture(scope="module")
def corpus():
    return Corpus.load(None)


# ------------------------------------------------------------------ the formula and the table
def test_flops_per_token_and_mfu_by_hand():
    # 2 layers, d_model 64, 4 heads, d_ff 192: per layer QKV 64x192, out 64x64, FC1 64x384, FC2 192x64
    # and two norms of 64; a final norm of 64; the lm head 64x256.
    per_layer = 64 * 192 + 64 * 64 + 64 * 384 + 192 * 64 + 2 * 64       # 53,376
    n_matmul = 2 * per_layer + 64 + 64 * 256                               # 123,200
    attention = 12 * 2 * 64 * 128                                          # 196,608 at seq_len 128
    assert n_matmul == 123_200 and attention == 196_608
    s = shape_for(None, n_layer=2, d_model=64, n_head=4)
    assert flops_per_token(s, 128) == 6 * 123_200 + 196_608 == 935_808
    assert mfu(s, 128, 1000.0, 1e12) == pytest.approx(935_808 * 1000 / 1e12, rel=1e-12)
    assert mfu(s, 128, 1000.0, None) is None
    # on token shards the lm head has the shards' vocabulary: 64 x 4096 instead of 64 x 256
    s4k = dataclasses.replace(s, vocab=4096)
    assert flops_per_token(s4k, 128) == 6 * (2 * per_layer + 64 + 64 * 4096) + 196_608 == 2_410_368
    # the ~125M benchmark shape: GPT-2 small's body, 85M non-embedding (docs/trainer.md's ladder table)
    big = shape_for(125e6)
    assert (big.n_layer, big.d_model, big.n_head, big.n_params) == (12, 768, 12, 84_953_856)
    assert flops_per_token(big, 1024) == 6 * (84_953_856 + 768 * 256) + 12 * 12 * 768 * 1024


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989e12),            # the SXM part, as torch names it
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H100 NVL", None),                    # not the H100 SXM figure
    ("NVIDIA H200", 989e12),
    ("NVIDIA H200 NVL", None),
    ("NVIDIA GH200 480GB", 990e12),
    ("NVIDIA A100-SXM4-80GB", 312e12),
    ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA A10", 125e12),
    ("NVIDIA A10G", None),                        # not an A10
    ("NVIDIA RTX A1000 6GB Laptop GPU", None),    # not an A100
    ("NVIDIA L4", 121e12),
    ("NVIDIA L40S", 362e12),                      # not an L4
    ("NVIDIA L40", None),
    ("NVIDIA GeForce RTX 4090", 165.2e12),
    ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", None),  # a slice of the device
    ("Tesla T4", None),
    ("", None),
])
def test_peak_table_lookup_by_device_name(name, peak):
    assert peak_flops(name) == peak


@pytest.mark.parametrize("value, words", [("-3", "must be a number of FLOP/s > 0"), ("0", "> 0"),
                                          ("abc", "is not a number"), ("nan", "> 0")])
def test_bad_peak_flops_is_one_line_exit_2(cli, value, words):
    code, out, err = cli("train", "--params", "50K", "--tokens", "1M", "--peak-flops", value)
    assert code == 2 and "--peak-flops" in err and words in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_peak_flops_in_a_sweep_is_one_line_exit_2(cli, write, tmp_path):
    spec = write("spec.toml", "[base]\nn_layer = 1\nd_model = 32\nn_head = 2\ntokens = \"10K\"\n")
    code, out, err = cli("sweep", spec, "--out", tmp_path / "runs.csv", "--peak-flops", "-1", "--dry-run")
    assert code == 2 and "--peak-flops" in err and err.count("\n") == 1 and "Traceback" not in err


# ------------------------------------------------------------------ compile
def test_compile_default_on_cuda_only():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert [use_compile(cuda, f) for f in (None, True, False)] == [True, True, False]
    assert [use_compile(cpu, f) for f in (None, True, False)] == [False, False, False]
    assert TrainConfig().compile is None
    assert TrainConfig.from_options({"compile": "false"}).compile is False


def test_how_a_run_runs_changes_no_hash():
    base = TrainConfig(tokens=1e6, params=1e5, w_bits=4)
    for kw in (dict(compile=False), dict(compile=True), dict(peak_flops=989e12), dict(device="cpu", threads=2)):
        assert TrainConfig(tokens=1e6, params=1e5, w_bits=4, **kw).hash() == base.hash()


def test_hashes_of_the_shipped_runs_are_unchanged():
    """Every run of data/trainer_sweep.toml hashes to a config_hash of data/trainer_runs.csv (written earlier)."""
    from scalinglaws.train.sweep import load_sweep
    configs = load_sweep(str(ROOT / "data" / "trainer_sweep.toml")).configs
    have = {r["config_hash"] for r in read_rows(str(ROOT / "data" / "trainer_runs.csv"))[1]}
    assert len(configs) == 96 and {c.hash() for c in configs} == have


def test_cpu_run_does_not_compile(corpus, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("torch.compile called on the CPU")
    monkeypatch.setattr(torch, "compile", refuse)
    (row,) = train(TrainConfig(tokens=4096, **TINY), corpus=corpus)
    assert row["diverged"] == 0


@pytest.mark.slow
def test_compiled_path_gives_the_eager_losses(corpus, monkeypatch):
    """The CUDA path's compile, on the CPU through aot_eager with fullgraph=True: the model and its
    quantizers trace without a graph break, the QAT switch recompiles, and the losses are the eager ones."""
    cfg = TrainConfig(tokens=16384, w_bits=4, a_bits=4, kv_bits=4, group_size=16, qat_fraction=0.5, **TINY)
    (eager,) = train(cfg, corpus=corpus)
    calls = []
    real = torch.compile

    def compile_(model, **kw):
        calls.append(model)
        return real(model, backend="aot_eager", fullgraph=True)
    monkeypatch.setattr(torch, "compile", compile_)
    monkeypatch.setattr(loop, "use_compile", lambda device, flag: True)
    (compiled,) = train(cfg, corpus=corpus)
    assert len(calls) == 1 and compiled["loss"] == eager["loss"] and compiled["steps"] == eager["steps"] == 16
    assert compiled["tokens_per_s"] > 0


def test_attention_is_fused_causal_without_a_mask(monkeypatch):
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, *args, **kw):
        seen.append((args, kw))
        return real(q, k, v, *args, **kw)
    monkeypatch.setattr(model_mod.F, "scaled_dot_product_attention", spy)
    m = model_mod.GPT(shape_for(None, n_layer=2, d_model=64, n_head=4, n_kv_head=2), 16)
    m(torch.zeros(2, 16, dtype=torch.long))
    assert seen == [((), {"is_causal": True})] * 2


# ------------------------------------------------------------------ rows and old tables
def test_row_speed_columns(corpus):
    (plain,) = train(TrainConfig(tokens=4096, **TINY), corpus=corpus)
    (given,) = train(TrainConfig(tokens=4096, peak_flops=1e12, **TINY), corpus=corpus)
    per_token = 6 * (13_408 + 32 * 256) + 12 * 1 * 32 * 64                # 154,176 by hand
    for r in (plain, given):
        assert r["model_flops_per_s"] == pytest.approx(per_token * r["tokens_per_s"], rel=1e-3)
    assert plain["mfu"] is None                                           # the CPU has no peak
    assert given["mfu"] == pytest.approx(per_token * given["tokens_per_s"] / 1e12, abs=1e-4)
    assert list(LATE) == ["model_flops_per_s", "mfu", "tokenizer", "vocab_size", "stochastic_rounding"]
    assert set(LATE) <= set(COLUMNS)


def test_peak_flops_given_as_text_from_python(corpus):
    """TrainConfig(peak_flops="1T") from Python: parsed once, so the row's MFU is the same as with 1e12."""
    cfg = TrainConfig(tokens=4096, peak_flops="1T", **TINY)
    assert cfg.peak_flops == 1e12 and cfg.hash() == TrainConfig(tokens=4096, **TINY).hash()
    (row,) = train(cfg, corpus=corpus)
    per_token = 6 * (13_408 + 32 * 256) + 12 * 1 * 32 * 64                # 154,176 by hand, as above
    assert row["mfu"] == pytest.approx(per_token * row["tokens_per_s"] / 1e12, abs=1e-4)
    with pytest.raises(InputError, match="peak_flops"):
        TrainConfig(tokens=4096, peak_flops="fast", **TINY)


def test_appending_to_the_shipped_table_keeps_its_header(tmp_path, corpus):
    path = tmp_path / "trainer_runs.csv"
    shutil.copy(ROOT / "data" / "trainer_runs.csv", path)
    before = path.read_text()
    old_header = before.splitlines()[0].split(",")
    assert not set(LATE) & set(old_header)
    rows = train(TrainConfig(tokens=4096, peak_flops=1e12, ptq_bits=(4,), **TINY), corpus=corpus)
    assert append_rows(str(path), rows) == 2
    after = path.read_text()
    assert after.startswith(before)                                     # header and old rows byte for byte
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == old_header and all(len(r) == len(old_header) for r in table)
    new = dict(zip(old_header, table[-2]))
    assert new["config_hash"] == rows[0]["config_hash"]
    assert float(new["tokens_per_s"]) == pytest.approx(rows[0]["tokens_per_s"], rel=1e-5)
    # a new table gets the new columns (the tokenizer ones only from a run on shards), and a
    # table with them keeps getting them
    fresh = tmp_path / "new.csv"
    append_rows(str(fresh), rows[:1])
    append_rows(str(fresh), rows[1:])
    header, got = read_rows(str(fresh))
    assert header == [c for c in COLUMNS if c not in ON_DEMAND] and {"model_flops_per_s", "mfu"} <= set(header)
    assert [float(r["mfu"]) for r in got] == [rows[0]["mfu"]] * 2


# ------------------------------------------------------------------ benchmarks/train_gpu.py
@pytest.fixture(scope="module")
def train_gpu():
    return load_script("benchmarks/train_gpu.py")


def test_train_gpu_smoke_on_the_cpu(train_gpu, tmp_path, capsys):
    out = tmp_path / "res" / "train_gpu.json"
    assert train_gpu.main(["--smoke", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    text = capsys.readouterr().out
    assert doc["smoke"] and doc["steps"] == 3 and doc["compile"] is False and doc["peak_flops"] is None
    assert doc["flops_per_token"] == 154_176                       # 1 layer, d_model 32, seq_len 64, by hand
    assert [r["name"] for r in doc["runs"]] == [name for name, _, _ in train_gpu.RUNS]
    base = doc["runs"][0]
    for r in doc["runs"]:
        assert "error" not in r and r["tokens_per_s"] > 0 and math.isfinite(r["loss"])
        assert r["model_flops_per_s"] == pytest.approx(154_176 * r["tokens_per_s"])
        assert r["tokens_per_s"] == pytest.approx(3 * 4 * 64 / (3 * r["step_s"]))
        assert r["step_time_ratio"] == pytest.approx(r["step_s"] / base["step_s"]) and r["mfu"] is None
    assert base["target"] == "MFU >= 40%" and doc["runs"][1]["target"] == "<= 1.3x"
    assert "int W4A4 G32" in text and "vs FP" in text and str(out) in text


def test_train_gpu_smoke_writes_to_OUT(train_gpu, tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert train_gpu.main(["--smoke", "--peak-flops", "1e12"]) == 0
    doc = json.loads((tmp_path / "train_gpu.json").read_text())
    assert doc["peak_flops"] == 1e12 and doc["peak_from"] == "--peak-flops"
    assert all(r["mfu"] == pytest.approx(r["model_flops_per_s"] / 1e12) for r in doc["runs"])


def test_train_gpu_without_cuda_says_so(train_gpu, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("OUT", str(tmp_path))
    assert train_gpu.main([]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("no CUDA device") and "nothing was measured" in err and err.count("\n") == 1
    assert out == "" and list(tmp_path.iterdir()) == []


def test_train_gpu_formats_are_valid_configs(train_gpu):
    for name, options, limit in train_gpu.RUNS:
        p = loop.plan(TrainConfig(tokens=1e12, params=125e6, seq_len=1024, **options))
        assert p.quantized == bool(options) and (limit is None) == (not options)
        assert p.batch_size * 1024 == 65536


def test_quantizers_compile_to_the_same_values():
    from scalinglaws.train.quant import QuantSpec, fake_quant
    specs = [QuantSpec(4, granularity="per_group", group_size=32),
             QuantSpec(8, format="fp", exp_bits=4, man_bits=3, granularity="per_group", group_size=32),
             QuantSpec(4, granularity="per_token", is_symmetric=False),
             QuantSpec(3, granularity="per_tensor"), QuantSpec(4, granularity="per_channel")]
    x = torch.randn(4, 16, 64, generator=torch.Generator().manual_seed(0)) * 3
    for spec in specs:
        f = torch.compile(functools.partial(fake_quant, spec=spec), backend="aot_eager", fullgraph=True)
        xs = x.clone().requires_grad_(True)
        y = f(xs)
        (y * torch.arange(64.0)).sum().backward()
        assert torch.equal(y, fake_quant(x, spec)), spec.label
        assert torch.equal(xs.grad, torch.arange(64.0).expand_as(x)), spec.label   # straight through

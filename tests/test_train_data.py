"""Token shards: ``scalinglaws tokenize`` (bytes and BPE), the held-out split, training on shards, bad inputs."""

import json
import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scalinglaws.data.errors import InputError  # noqa: E402
from scalinglaws.train.data import Corpus, default_corpus_files, read_meta  # noqa: E402
from scalinglaws.train.loop import TrainConfig, plan, train  # noqa: E402
from scalinglaws.train.tokenize import tokenize  # noqa: E402

# A 13K-parameter model that trains in about a second on one CPU thread (as in test_train_loop).
TINY = dict(n_layer=1, d_model=32, n_head=2, seq_len=64, batch_size=16, val_tokens=8192, lr=3e-3, threads=1)


@pytest.fixture(scope="module")
def comedies(tmp_path_factory):
    """Six plays (about 600 KB) copied into a folder of their own."""
    folder = tmp_path_factory.mktemp("comedies")
    plays = [f for f in default_corpus_files() if f.parent.name == "comedies"][:6]
    assert len(plays) == 6
    for f in plays:
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def bin_ids(folder, name):
    meta = json.loads((folder / "meta.json").read_text())
    return np.fromfile(folder / name, dtype=meta["dtype"])


def unigram_loss(train_ids, val_ids, vocab):
    """Cross-entropy (nats/token) of val under the training split's token frequencies (add-one)."""
    p = np.bincount(train_ids, minlength=vocab).astype(float) + 1
    return float(-np.log((p / p.sum())[val_ids]).mean())


def test_bytes_shards_of_one_file_hold_its_head_and_tail(tmp_path):
    text = b"".join(b"line %d of the text\n" % i for i in range(2000))
    (tmp_path / "t.txt").write_bytes(text)
    s = tokenize(tmp_path / "t.txt", tmp_path / "sh", tokenizer="bytes", val_fraction=0.1)
    # by hand: the tail starts after the first line break at or past 90% of the bytes
    cut = text.index(b"\n", len(text) - round(0.1 * len(text))) + 1
    train_ids, val_ids = bin_ids(tmp_path / "sh", "train.bin"), bin_ids(tmp_path / "sh", "val.bin")
    assert train_ids.dtype == np.uint16 and train_ids.tobytes() == np.frombuffer(text[:cut], np.uint8).astype(
        np.uint16).tobytes()
    assert bytes(val_ids.astype(np.uint8)) == text[cut:] and val_ids.size + train_ids.size == len(text)
    assert (s.split, s.train_tokens, s.val_tokens, s.vocab_size) == ("tail", cut, len(text) - cut, 256)
    assert read_meta(tmp_path / "sh").vocab_size == 256 and read_meta(tmp_path / "sh").tokenizer == "bytes"


def test_folder_split_holds_out_whole_files(comedies, tmp_path):
    texts = {f.name: f.read_bytes() for f in comedies.iterdir()}
    total = sum(map(len, texts.values()))
    choices = set()
    for seed in range(6):
        out = tmp_path / f"s{seed}"
        s = tokenize(comedies, out, tokenizer="bytes", val_fraction=0.15, seed=seed)
        val = bytes(bin_ids(out, "val.bin").astype(np.uint8))
        train_text = bytes(bin_ids(out, "train.bin").astype(np.uint8))
        held = [n for n, t in texts.items() if t in val]
        kept = [n for n, t in texts.items() if t in train_text]
        assert sorted(held + kept) == sorted(texts) and not set(held) & set(kept)     # a partition of the files
        # each split is its files joined by a blank line, in name order
        assert val == b"\n\n".join(texts[n] for n in sorted(held))
        assert train_text == b"\n\n".join(texts[n] for n in sorted(kept))
        share = sum(len(texts[n]) for n in held) / total
        assert share >= 0.15 and min(len(texts[n]) for n in held) > 0
        assert (s.split, s.val_files, s.train_files) == ("files", len(held), len(kept))
        choices.add(tuple(sorted(held)))
    assert len(choices) > 1                   # the seed picks the held-out files


def test_tiny_model_trains_on_byte_shards(comedies, tmp_path):
    tokenize(comedies, tmp_path / "sh", tokenizer="bytes", val_fraction=0.1)
    cfg = TrainConfig(tokens=100_000, data=str(tmp_path / "sh"), **TINY)
    (row,) = train(cfg)
    ref = unigram_loss(bin_ids(tmp_path / "sh", "train.bin"), bin_ids(tmp_path / "sh", "val.bin")[:8192], 256)
    assert row["loss"] < ref - 0.3 and row["diverged"] == 0
    assert (row["loss_unit"], row["tokenizer"], row["vocab_size"]) == ("nats/byte", "bytes", 256)
    assert row["params_total"] == row["N"] + 2 * 256 * 32 and row["corpus"] == str(tmp_path / "sh")
    assert row["val_tokens"] == 8192 and row["D"] == math.ceil(100_000 / 1024) * 1024


def test_bpe_shards_decode_to_the_text_and_a_tiny_model_trains_on_them(comedies, tmp_path):
    tokenizers = pytest.importorskip("tokenizers", reason="the 'tokenizers' package is not installed: "
                                     "pip install tokenizers to test --tokenizer bpe")
    out = tmp_path / "bpe"
    s = tokenize(comedies, out, tokenizer="bpe", vocab_size=512, val_fraction=0.1, seed=3)
    tok = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["vocab_size"] == tok.get_vocab_size() == s.vocab_size <= 512 and meta["dtype"] == "uint16"
    texts = {f.name: f.read_bytes() for f in comedies.iterdir()}
    val_ids, train_ids = bin_ids(out, "val.bin"), bin_ids(out, "train.bin")
    assert int(max(val_ids.max(), train_ids.max())) < meta["vocab_size"]
    val = tok.decode(val_ids.tolist()).encode()          # byte-level BPE gives the text back
    held = sorted(n for n, t in texts.items() if t in val)
    assert held and val == b"\n\n".join(texts[n] for n in held)
    assert 1.8 < s.val_bytes / s.val_tokens < 4          # merges shorten the text
    cfg = TrainConfig(tokens=60_000, data=str(out), **TINY)
    p = plan(cfg)
    assert p.shape.vocab == meta["vocab_size"] and p.tokenizer == "bpe"
    (row,) = train(cfg)
    ref = unigram_loss(train_ids, val_ids[:8192], meta["vocab_size"])
    assert row["loss"] < ref - 0.2 and row["loss"] < math.log(meta["vocab_size"]) - 1
    assert (row["loss_unit"], row["tokenizer"], row["vocab_size"]) == ("nats/token", "bpe", meta["vocab_size"])
    assert row["params_total"] == row["N"] + 2 * meta["vocab_size"] * 32


def test_bpe_is_trained_on_the_training_split_only(tmp_path):
    pytest.importorskip("tokenizers", reason="the 'tokenizers' package is not installed: pip install tokenizers")
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    head = "".join(f"{words[i % 5]} {words[(3 * i) % 5]} {i % 7}\n" for i in range(3000))
    tail = "zqxjvk " * 3000 + "\n"                      # frequent, but only in the held-out tail
    (tmp_path / "t.txt").write_text(head + tail)
    tokenize(tmp_path / "t.txt", tmp_path / "sh", tokenizer="bpe", vocab_size=400, val_fraction=0.4)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(tmp_path / "sh" / "tokenizer.json"))
    assert len(tok.encode(" alpha").ids) == 1            # frequent in training: merged into one token
    assert len(tok.encode(" zqxjvk").ids) >= 6           # never seen: one token per byte (space included)


def test_tokenize_is_deterministic(comedies, tmp_path):
    for name in ("a", "b"):
        tokenize(comedies, tmp_path / name, tokenizer="bytes", seed=1)
    for f in ("train.bin", "val.bin"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_missing_tokenizers_package_is_one_clear_error(tmp_path, monkeypatch, cli):
    (tmp_path / "t.txt").write_text("some text\n" * 100)
    monkeypatch.setitem(sys.modules, "tokenizers", None)       # import tokenizers -> ImportError
    code, out, err = cli("tokenize", tmp_path / "t.txt", "--out", tmp_path / "sh")
    assert code == 2 and "pip install tokenizers" in err and err.count("\n") == 1
    assert not (tmp_path / "sh" / "meta.json").exists()


def _shards(folder, dtype="uint16", vocab=256, train=b"ab" * 500, val=b"cd" * 200, files=("train.bin", "val.bin")):
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in (("train.bin", train), ("val.bin", val)):
        if name in files:
            (folder / name).write_bytes(raw)
    (folder / "meta.json").write_text(json.dumps({"dtype": dtype, "vocab_size": vocab, "tokenizer": "bytes"}))
    return folder


@pytest.mark.parametrize("make, words", [
    (lambda d: _shards(d, files=("val.bin",)), "train.bin is missing"),
    (lambda d: _shards(d, dtype="int16"), "dtype 'int16' is not one of uint16, uint32"),
    (lambda d: _shards(d, vocab=70000), "vocab_size 70000 must be an integer from 2 to 65536"),
    (lambda d: _shards(d, dtype="uint32", train=b"abcdef"), "not a whole number of uint32 tokens"),
    (lambda d: _shards(d, val=b""), "val.bin has 0 bytes, no tokens"),
    (lambda d: (_shards(d), (d / "meta.json").write_text("{dtype: uint16")), "cannot read meta.json"),
    (lambda d: _shards(d, vocab=300, val=np.array([1, 2, 400] * 100, np.uint16).tobytes()),
     "val.bin: holds token id 400, outside the vocabulary of 300"),
])
def test_bad_shards_one_line_exit_2(tmp_path, cli, make, words):
    make(tmp_path / "sh")
    code, out, err = cli("train", "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--seq-len", "8",
                         "--tokens", "2K", "--val-tokens", "64", "--data", tmp_path / "sh", "-q")
    assert code == 2 and words in err and err.count("\n") == 1 and "Traceback" not in err, err
    if "token id" not in words:
        assert "--data" in err


@pytest.mark.parametrize("args, words", [
    (["--tokenizer", "bytes"], "no text found"),
    (["--tokenizer", "sentencepiece"], "--tokenizer 'sentencepiece': choose bytes or bpe"),
    (["--vocab-size", "100"], "--vocab-size must be from 257"),
    (["--tokenizer", "bytes", "--vocab-size", "512"], "--vocab-size 512 does not apply to --tokenizer bytes"),
    (["--tokenizer", "bytes", "--val-fraction", "1"], "--val-fraction must be between 0 and 1"),
])
def test_bad_tokenize_inputs_one_line_exit_2(tmp_path, cli, args, words):
    (tmp_path / "empty.txt").write_text("")
    code, out, err = cli("tokenize", tmp_path / "empty.txt", "--out", tmp_path / "sh", *args)
    assert code == 2 and words in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_tokenize_refuses_a_folder_with_shards_and_a_missing_source(tmp_path, cli):
    (tmp_path / "t.txt").write_text("to be or not to be\n" * 50)
    assert cli("tokenize", tmp_path / "t.txt", "--out", tmp_path / "sh", "--tokenizer", "bytes")[0] == 0
    before = (tmp_path / "sh" / "train.bin").read_bytes()
    code, out, err = cli("tokenize", tmp_path / "t.txt", "--out", tmp_path / "sh", "--tokenizer", "bytes")
    assert code == 2 and "--out" in err and "already holds" in err and err.count("\n") == 1
    assert (tmp_path / "sh" / "train.bin").read_bytes() == before
    code, out, err = cli("tokenize", tmp_path / "nothing.txt", "--out", tmp_path / "x", "--tokenizer", "bytes")
    assert code == 2 and "no such file or folder" in err and err.count("\n") == 1


def test_text_data_is_unchanged(tmp_path):
    """A text file is still read as bytes: no tokenizer columns, 256 ids, the hash of before."""
    (tmp_path / "t.txt").write_text("hello world\n" * 2000)
    corpus = Corpus.load(tmp_path / "t.txt")
    assert corpus.tokenizer is None and corpus.vocab_size == 256 and corpus.train.dtype == torch.uint8
    cfg = TrainConfig(tokens=2048, data=str(tmp_path / "t.txt"), **TINY)
    (row,) = train(cfg, corpus=corpus)
    assert row["tokenizer"] is None and row["vocab_size"] is None and row["loss_unit"] == "nats/byte"
    with pytest.raises(InputError, match="meta.json"):       # a folder with a meta.json is a shard folder
        (tmp_path / "meta.json").write_text("{}")
        plan(TrainConfig(tokens=2048, data=str(tmp_path), **TINY))

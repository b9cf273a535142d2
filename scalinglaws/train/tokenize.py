"""``scalinglaws tokenize``: text -> token shards (``train.bin``, ``val.bin``, ``meta.json``).

nanoGPT's layout: each ``.bin`` is a flat array of token ids (``uint16`` when the
vocabulary fits, else ``uint32``), read back with ``numpy.memmap``; ``meta.json`` says
the dtype, the vocabulary size and the tokenizer (see :func:`~scalinglaws.train.data.read_meta`).

The split comes first, before any tokenizer sees the text, and the held-out part is
never trained on (neither by the model nor by the BPE tokenizer):

* a folder of two or more text files: whole files, in an order shuffled by ``seed``;
  the validation split is the shortest run of that order holding at least
  ``val_fraction`` of the bytes, the rest is training;
* one file (or a folder with one text file): its last ``val_fraction`` of the bytes,
  starting after a line break when there is one in that tail (so no line is cut).

Tokenizers: ``bytes`` (ids are the 256 byte values, nothing to train) or ``bpe``, a
byte-level BPE tokenizer trained here on the training split with the ``tokenizers``
package (nothing is fetched from a hub), saved as ``tokenizer.json`` beside the shards.
Files of one split are joined by a blank line, as the text loader does.

Every file is written to a temporary file and renamed into place, ``meta.json`` last,
so a folder with ``meta.json`` holds complete shards; a folder that already holds shards
is refused (runs name their data by its path, which must keep meaning the same tokens).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from scalinglaws.data.atomic import atomic_path, write_atomic
from scalinglaws.data.errors import InputError, OptionError

from scalinglaws.train.data import DTYPES, SHARDS, text_files as data_text_files

TOKENIZERS = ("bytes", "bpe")

#: Default vocabulary of a BPE tokenizer: 256 byte tokens and 3,840 merges.
BPE_VOCAB = 4096

#: Text handed to the BPE tokenizer at once, cut at line breaks.
CHUNK_BYTES = 1 << 20

#: Files of the shard folder this command writes (besides SHARDS).
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class Summary:
    """What :func:`tokenize` wrote (the content of ``meta.json``)."""

    dtype: str
    vocab_size: int
    tokenizer: str
    train_tokens: int
    val_tokens: int
    train_bytes: int
    val_bytes: int
    split: str                           # files (whole files held out) | tail (the end of one file)
    train_files: int
    val_files: int
    val_fraction: float
    seed: int
    source: str


def text_files(path: str | os.PathLike) -> list[tuple[Path, bytes]]:
    """The non-empty text files of ``path`` with their bytes (see :func:`scalinglaws.train.data.text_files`)."""
    out = [(f, raw) for f, raw in data_text_files(path) if raw]
    if not out:
        raise InputError("no text found (empty, or only binary files)", file=str(path))
    return out


def split(files: list[tuple[Path, bytes]], val_fraction: float, seed: int
          ) -> tuple[list[bytes], list[bytes]]:
    """The training and validation texts (lists of documents), disjoint; see the module's docstring."""
    total = sum(len(raw) for _, raw in files)
    if len(files) == 1:
        raw = files[0][1]
        cut = len(raw) - max(1, round(val_fraction * len(raw)))
        line = raw.find(b"\n", cut)
        if 0 <= line < len(raw) - 1:
            cut = line + 1
        if cut < 1:
            raise InputError(f"too short to hold out {val_fraction:g} of it and keep text to train on",
                             file=str(files[0][0]))
        return [raw[:cut]], [raw[cut:]]
    order = list(range(len(files)))
    random.Random(seed).shuffle(order)
    val, held = [], 0
    for i in order:
        if held >= val_fraction * total:
            break
        val.append(i)
        held += len(files[i][1])
    if len(val) == len(files):
        raise OptionError("val_fraction", f"{val_fraction:g} holds out every one of the {len(files)} files; lower it")
    keep = set(val)
    return ([raw for i, (_, raw) in enumerate(files) if i not in keep],
            [files[i][1] for i in sorted(val)])


def _chunks(doc: bytes) -> Iterator[str]:
    """``doc`` as text in pieces of about :data:`CHUNK_BYTES`, each ending at a line break."""
    i = 0
    while i < len(doc):
        j = doc.find(b"\n", i + CHUNK_BYTES)
        j = len(doc) if j < 0 else j + 1
        yield doc[i:j].decode("utf-8", errors="replace")
        i = j


def train_bpe(docs: list[bytes], vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2's pre-tokenization, no special tokens) trained on ``docs``."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        raise InputError("--tokenizer bpe needs the 'tokenizers' package: pip install tokenizers "
                         "(or pip install -e \".[train]\"); --tokenizer bytes needs nothing") from None
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator((c for d in docs for c in _chunks(d)), trainer=trainer)
    return tok


def _write_ids(path: Path, docs: list[bytes], encode, dtype: str) -> int:
    """Token ids of ``docs`` joined by a blank line, written atomically to ``path``; returns their count."""
    n = 0
    sep = encode(b"\n\n").astype(dtype)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for k, doc in enumerate(docs):
            for ids in ((sep,) if k else ()) + (encode(doc).astype(dtype),):
                ids.tofile(fh)
                n += len(ids)
    return n


def tokenize(source: str | os.PathLike, out: str | os.PathLike, *, tokenizer: str = "bpe",
             vocab_size: int | None = None, val_fraction: float = 0.05, seed: int = 0) -> Summary:
    """Split the text at ``source``, tokenize it and write the shards to the folder ``out``.

    ``vocab_size``: the BPE vocabulary (default :data:`BPE_VOCAB`; the trained one may be
    smaller when the text has fewer distinct pieces, and ``meta.json`` gives the real
    size); ``bytes`` takes 256 or nothing.  Bad options raise
    :class:`~scalinglaws.data.errors.OptionError` naming them.
    """
    if tokenizer not in TOKENIZERS:
        raise OptionError("tokenizer", f"{tokenizer!r}: choose {' or '.join(TOKENIZERS)}")
    if tokenizer == "bytes":
        if vocab_size not in (None, 256):
            raise OptionError("vocab_size", f"{vocab_size} does not apply to --tokenizer bytes (256 byte values); "
                              "drop it or use --tokenizer bpe")
        vocab_size = 256
    elif vocab_size is None:
        vocab_size = BPE_VOCAB
    elif not 257 <= vocab_size <= DTYPES["uint32"]:
        raise OptionError("vocab_size", f"must be from 257 (the 256 bytes and one merge) to {DTYPES['uint32']}, "
                          f"got {vocab_size}")
    if not 0 < val_fraction < 1:
        raise OptionError("val_fraction", f"must be between 0 and 1 (for example 0.05), got {val_fraction:g}")
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OptionError("out", f"{out} is a file; give a folder for the shards")
    there = [n for n in (*SHARDS, TOKENIZER_FILE) if (folder / n).exists()]
    if there:
        raise OptionError("out", f"{out} already holds {', '.join(there)}; runs name their data by this folder, "
                          "so it is not overwritten: give a new folder (or delete those files)")
    import numpy as np

    files = text_files(source)
    train_docs, val_docs = split(files, val_fraction, seed)
    if tokenizer == "bpe":
        tok = train_bpe(train_docs, vocab_size)
        vocab_size = tok.get_vocab_size()

        def encode(doc: bytes):
            return np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(list(_chunks(doc)))])
    else:
        tok = None

        def encode(doc: bytes):
            return np.frombuffer(doc, dtype=np.uint8)
    dtype = "uint16" if vocab_size <= DTYPES["uint16"] else "uint32"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the folder: {exc.strerror or exc}", file=str(out)) from None
    if tok is not None:
        write_atomic(folder / TOKENIZER_FILE, tok.to_str())
    n_train = _write_ids(folder / "train.bin", train_docs, encode, dtype)
    n_val = _write_ids(folder / "val.bin", val_docs, encode, dtype)
    joined = lambda docs: sum(map(len, docs)) + 2 * (len(docs) - 1)  # noqa: E731  (bytes, blank lines included)
    summary = Summary(dtype, vocab_size, tokenizer, n_train, n_val, joined(train_docs), joined(val_docs),
                      "files" if len(files) > 1 else "tail", len(train_docs), len(val_docs),
                      val_fraction, seed, os.path.abspath(os.fspath(source)))
    write_atomic(folder / "meta.json", json.dumps(asdict(summary), indent=2) + "\n")
    return summary

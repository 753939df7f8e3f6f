"""Atomic file writes: an output either appears whole or not at all.

Every write of the project goes through here, so every ``OSError`` of the file system becomes one
``OutputError`` that names the path and the reason (no space, read-only, not a directory).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from uticompile.errors import OutputError

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a parent of it is not a directory",
    errno.EISDIR: "it is a directory",
    errno.ENAMETOOLONG: "the name is too long",
}


PROBE_BYTES = 64 << 10  # check_writable_dir's probe: more than a tmpfs/ext4 block or two


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def _umask() -> int:
    """The process's umask (read by setting and restoring it: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_target(path: str | os.PathLike[str]) -> Path:
    """Refuse an output path that cannot be replaced by a regular file; return it as a Path."""
    target = Path(path)
    if not os.fspath(path) or not target.name:  # click turns -o '' into Path('.')
        raise OutputError(f"output path {os.fspath(path)!r} is empty or names no file")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise OutputError(f"{target}: cannot write: {_reason(exc)}") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise OutputError(f"{target}: cannot write: it is {kind}")
    return target


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds.

    The file gets the mode a plain ``open`` would give (0666 less the umask), not mkstemp's 0600.
    """
    target = check_target(path)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise OutputError(f"{target}: cannot write: {_reason(exc)}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_writable_dir(path: str | os.PathLike[str]) -> None:
    """Before long work (training), prove files can be written in ``path`` (or, while it does not
    exist yet, in its parent) by writing and removing a small one: a full or read-only disk is
    then refused at once, not after the first epoch. The probe holds data (an empty file needs
    no free block, so it would pass on a full disk)."""
    if not os.fspath(path):
        raise OutputError("output path is empty")
    directory = Path(path)
    if not directory.exists():
        directory = directory.parent
    probe = directory / ".uticompile-write-check"
    atomic_write_bytes(probe, bytes(PROBE_BYTES))
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _same(a: Path, b: Path) -> bool:
    """One file under two names (symlink or hard link included), or one path not yet created."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_outputs_distinct(
    outputs: dict[str, str | os.PathLike[str] | None],
    inputs: dict[str, str | os.PathLike[str] | None],
) -> None:
    """Refuse, before any work, an output that is an input or another output: writing it would
    destroy data the run still needs. Keys name the options in the message."""
    named = [(k, Path(v)) for k, v in outputs.items() if v is not None and os.fspath(v)]
    others = named + [(k, Path(v)) for k, v in inputs.items() if v is not None and os.fspath(v)]
    for i, (name, path) in enumerate(named):
        for other, other_path in others[i + 1 :]:
            if _same(path, other_path):
                raise OutputError(f"{name} {path} is the same file as {other} {other_path}")

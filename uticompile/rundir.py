"""Integrity of resumable run directories (``prune`` rounds, ``shrink`` stages).

A step's ``done`` marker, written last, records the sha256 of every file the step wrote, so a
resumed run can tell a finished step from one whose files were since damaged or deleted: such a
step is run again (the runners are deterministic, so the redo writes the same bytes). A run's
``config.json`` says which run the directory holds; it is never guessed. ``*.tmp`` files that
kill -9 left behind mid-write are removed on resume.

An empty ``done`` is the marker of runs written before the checksums: its step is trusted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from uticompile.errors import ConfigError, DamagedFileError
from uticompile.fileio import atomic_write_text

DONE_FORMAT = "uticompile-done/1"
T = TypeVar("T")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_done(done: Path, root: Path, files: Iterable[Path]) -> None:
    """Mark a step finished: the sha256 of each of ``files`` (named relative to ``root``)."""
    sums = {f.relative_to(root).as_posix(): file_sha256(f) for f in files}
    record = {"format": DONE_FORMAT, "sha256": sums}
    atomic_write_text(done, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _safe_name(name: object) -> bool:
    """A name inside the run directory: a hostile marker must not make us read or delete
    anything outside it."""
    if not isinstance(name, str) or not name or "\\" in name:
        return False
    parts = PurePosixPath(name).parts
    return not PurePosixPath(name).is_absolute() and ".." not in parts and "." not in parts


def damaged_files(done: Path, root: Path) -> list[Path]:
    """The files ``done`` lists that are missing or changed (``[done]`` for a damaged marker)."""
    try:
        text = done.read_bytes()
    except OSError:
        return [done]
    if not text.strip():
        return []  # a marker written before checksums: trusted
    try:
        record = json.loads(text)
        sums = record["sha256"]
        ok = record.get("format") == DONE_FORMAT and isinstance(sums, dict)
    except (ValueError, TypeError, KeyError, AttributeError):
        ok = False
    if not ok or not all(_safe_name(k) and isinstance(v, str) for k, v in sums.items()):
        return [done]
    bad: list[Path] = []
    for name, sha in sorted(sums.items()):
        path = root / name
        try:
            if not path.is_file() or file_sha256(path) != sha:
                bad.append(path)
        except OSError:
            bad.append(path)
    return bad


def remove(paths: Iterable[Path]) -> None:
    """Remove files (those absent are fine) so that the step that makes them runs again."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            raise DamagedFileError(path, "a directory where a file belongs; remove it") from None
        except OSError as exc:
            raise DamagedFileError(path, f"cannot remove it: {exc.strerror}") from None


def redo_if_damaged(path: Path, work: Callable[[], T]) -> T:
    """``work()``; if it finds ``path`` (the state it resumes from) damaged, remove it and
    start over."""
    try:
        return work()
    except DamagedFileError as exc:
        if Path(str(exc.path)) != path:
            raise
    remove([path])
    return work()


def remove_stale_tmp(root: Path) -> list[Path]:
    """Remove the temporary files (``.NAME.XXXX.tmp``) of writes that kill -9 cut short."""
    stale = [
        p
        for p in root.rglob(".*.tmp")
        if p.is_file() and not p.is_symlink() and p.name.count(".") >= 3
    ]
    remove(stale)
    return stale


def read_json(path: Path) -> Any:
    """A JSON file of a run directory; DamagedFileError naming it if it is not JSON."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise DamagedFileError(path, "not UTF-8 text") from None
    except FileNotFoundError:
        raise DamagedFileError(path, "missing") from None
    except IsADirectoryError:
        raise DamagedFileError(path, "a directory, not a file") from None
    except OSError as exc:
        raise DamagedFileError(path, exc.strerror or type(exc).__name__) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise DamagedFileError(path, f"not valid JSON: {exc}") from None


def prepare_run_dir(root: Path, config: Path, identity: dict[str, Any], resume: bool) -> None:
    """Create ``root`` holding ``identity`` in ``config``, or (with ``resume``) check that it
    holds the same run and clean up after kill -9.

    Raises ConfigError for a non-empty directory without ``resume``, one holding another run
    or one without its ``config.json``; DamagedFileError for a ``config.json`` that is not JSON.
    """
    text = json.dumps(identity, indent=2, sort_keys=True) + "\n"
    if root.is_dir() and any(root.iterdir()):
        if not resume:
            raise ConfigError(
                f"resume is needed to continue the non-empty run directory {root} "
                "(or choose another directory)",
                option="resume",
            )
        if not config.exists():
            raise ConfigError(
                f"run directory {root} has no {config.name}: it is missing (deleted, or this is "
                "not a run directory), so the run it holds is unknown; choose another directory"
            )
        if read_json(config) != json.loads(text):
            raise ConfigError(
                f"run directory {root} holds a run with other options (or another model "
                "or dataset); choose another directory"
            )
        remove_stale_tmp(root)
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"run directory {root} is a file, not a directory") from None
    except OSError as exc:
        raise ConfigError(f"run directory {root}: cannot create it: {exc.strerror}") from None
    atomic_write_text(config, text)


def existing(paths: Iterable[Path]) -> list[Path]:
    return [p for p in paths if p.is_file()]


def unreadable(path: Path, exc: BaseException) -> DamagedFileError:
    """The error for a file a reader could not parse (EOFError of a zero-byte file included)."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or (path.exists() and path.stat().st_size == 0):
        reason = "empty or truncated"
    return DamagedFileError(path, reason.splitlines()[0])


__all__ = [
    "DONE_FORMAT",
    "damaged_files",
    "existing",
    "file_sha256",
    "prepare_run_dir",
    "read_json",
    "redo_if_damaged",
    "remove",
    "remove_stale_tmp",
    "unreadable",
    "write_done",
]

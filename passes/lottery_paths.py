"""A lottery run directory: one paths object naming every artifact, and the masks' file format.

Layout: ``config.json`` (what the results depend on), ``rewind.onnx``, ``timing.json`` (ET
ticket), ``timesteps.json`` (the ET criterion's choice), ``report.jsonl`` (one line per finished
round), and per round ``round_NN/`` with ``masks.npz``, ``train.ckpt`` (while training),
``trained.onnx``, ``report.json`` and the ``done`` marker, written last: a round is finished
exactly when ``done`` exists.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uticompile.fileio import atomic_open, atomic_write_text
from uticompile.rundir import prepare_run_dir, unreadable


@dataclass(frozen=True)
class RoundPaths:
    """The files of one round's folder."""

    dir: Path

    @property
    def masks(self) -> Path:
        return self.dir / "masks.npz"

    @property
    def checkpoint(self) -> Path:
        return self.dir / "train.ckpt"

    @property
    def trained(self) -> Path:
        return self.dir / "trained.onnx"

    @property
    def report(self) -> Path:
        return self.dir / "report.json"

    @property
    def done(self) -> Path:
        return self.dir / "done"

    @property
    def artifacts(self) -> tuple[Path, ...]:
        """Every file the round writes (a redo removes them all)."""
        return (self.masks, self.checkpoint, self.trained, self.report, self.done)


@dataclass(frozen=True)
class RunPaths:
    """The files of a run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def rewind(self) -> Path:
        return self.root / "rewind.onnx"

    @property
    def timing(self) -> Path:
        return self.root / "timing.json"

    @property
    def timesteps(self) -> Path:
        """``--search-timesteps auto``: the ET criterion's choice, written once."""
        return self.root / "timesteps.json"

    @property
    def reports(self) -> Path:
        return self.root / "report.jsonl"

    def round(self, r: int) -> RoundPaths:
        return RoundPaths(self.root / f"round_{r:02d}")

    def prepare(self, identity: dict[str, Any], resume: bool) -> None:
        """Create the directory for ``identity``, or check that it holds the same run.

        Raises ConfigError for a non-empty directory without ``resume``, one holding another
        run or one whose ``config.json`` is missing; DamagedFileError for a damaged one.
        """
        prepare_run_dir(self.root, self.config, identity, resume)

    def write_reports(self, reports: list[dict[str, Any]]) -> None:
        atomic_write_text(
            self.reports, "".join(json.dumps(x, sort_keys=True) + "\n" for x in reports)
        )


def save_masks(
    path: Path, masks: Mapping[str, np.ndarray], pruned: Mapping[str, np.ndarray]
) -> None:
    """Masks in layer order under index keys (node names need not be valid zip names)."""
    names = list(masks)
    arrays: dict[str, np.ndarray] = {"layers": np.array(names, dtype=np.str_)}
    for i, name in enumerate(names):
        arrays[f"mask_{i}"] = np.asarray(masks[name], dtype=bool)
        arrays[f"pruned_{i}"] = np.asarray(pruned[name], dtype=bool)
    with atomic_open(path) as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def load_masks(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(masks, magnitude-pruned masks before balancing) saved by ``save_masks``.

    Raises DamagedFileError for a file that is not such an archive (zero bytes included).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["layers"]]
            masks = {n: data[f"mask_{i}"] for i, n in enumerate(names)}
            pruned = {n: data[f"pruned_{i}"] for i, n in enumerate(names)}
    except (
        OSError,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
    ) as exc:
        raise unreadable(path, exc) from None
    if any(m.dtype != bool or m.shape != pruned[n].shape for n, m in masks.items()):
        raise unreadable(path, ValueError("masks are not boolean arrays of matching shapes"))
    return masks, pruned

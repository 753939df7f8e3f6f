"""One object naming every artifact of a shrink run directory.

``config.json`` (what the results depend on), ``original/`` (the input model's numbers),
``spatial/`` (``spectrum.json``, then the rebuilt and retrained model), ``T{t}/`` per temporal
stage, and ``report.json`` (the summary). A stage folder holds ``trained.onnx``, ``report.json``,
and a ``done`` marker written last; while a temporal stage trains, also ``train.ckpt``,
``curve.json`` (validation accuracy per epoch) and ``best.onnx`` (the best epoch's weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StagePaths:
    root: Path

    @property
    def model(self) -> Path:
        return self.root / "trained.onnx"

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "train.ckpt"

    @property
    def curve(self) -> Path:
        return self.root / "curve.json"

    @property
    def best(self) -> Path:
        return self.root / "best.onnx"

    @property
    def done(self) -> Path:
        return self.root / "done"


@dataclass(frozen=True)
class ShrinkPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def summary(self) -> Path:
        return self.root / "report.json"

    @property
    def spectrum(self) -> Path:
        return self.root / "spatial" / "spectrum.json"

    @property
    def original(self) -> StagePaths:
        return StagePaths(self.root / "original")

    @property
    def spatial(self) -> StagePaths:
        return StagePaths(self.root / "spatial")

    def temporal(self, timesteps: int) -> StagePaths:
        return StagePaths(self.root / f"T{timesteps}")

"""kill -9 in the middle of a pruning round, then --resume: the same bytes as an unbroken run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from uticompile.cli import main

ARGS = ["--dataset", "digits", "--rounds", "1", "--epochs", "2", "--batch-size", "256",
        "--balance", "uticket", "--pes", "16", "--seed", "3"]  # fmt: skip


def _prune(model: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uticompile", "prune", str(model), "-o", str(out), *ARGS, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_9_mid_round_then_resume(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    assert (
        main(["train", "--model", "vgg_small", "--epochs", "0", "--size", "16", "-o", str(model)])
        == 0
    )
    straight = tmp_path / "straight.onnx"
    assert _prune(model, straight).wait(timeout=300) == 0

    broken = tmp_path / "broken.onnx"
    proc = _prune(model, broken)
    ckpt = tmp_path / "broken.run" / "round_01" / "train.ckpt"
    deadline = time.monotonic() + 300
    while not ckpt.exists():  # round 1 has finished an epoch and is training the next
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not broken.exists()
    assert _prune(model, broken, "--resume").wait(timeout=300) == 0
    assert broken.read_bytes() == straight.read_bytes()

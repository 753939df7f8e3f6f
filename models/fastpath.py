"""Optional fast paths for training: mixed precision, channels-last memory, ``torch.compile``.

They are run-time choices of the process (like ``torch.backends`` flags), not options of the run:
training reads the process-wide setting, so every command that trains (train, prune, shrink)
inherits them without new parameters, and data-parallel followers receive the leader's setting
with each job. What is exported (ONNX, figures) is always float32: autocast never changes the
dtype of parameters, and the LIF keeps its membrane in float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from uticompile.errors import ConfigError


@dataclass(frozen=True)
class FastPaths:
    """``amp``: bfloat16 autocast (CUDA only); ``channels_last``: NHWC convolutions;
    ``compile``: ``torch.compile`` of the time-folded network."""

    amp: bool = False
    channels_last: bool = False
    compile: bool = False

    def check(self, device: str) -> None:
        """Refuse what the device cannot do correctly (one-line ConfigError)."""
        if self.amp and device != "cuda":
            raise ConfigError(
                "amp needs device cuda (bfloat16 autocast is not used on CPUs)", option="amp"
            )

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[object]:
        """The forward's precision context; a null context when AMP is off."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def prepare(self, net: nn.Module) -> None:
        """Move the network's parameters to channels-last when asked."""
        if self.channels_last:
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


_CURRENT = FastPaths()


def current() -> FastPaths:
    """The fast paths training uses in this process (all off unless a command turned them on)."""
    return _CURRENT


@contextlib.contextmanager
def use(fast: FastPaths) -> Iterator[FastPaths]:
    """Turn fast paths on for the duration of a command."""
    global _CURRENT
    previous, _CURRENT = _CURRENT, fast
    try:
        yield fast
    finally:
        _CURRENT = previous

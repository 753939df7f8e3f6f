"""The limits every format and config shares: one place, so the writer, the readers and the
option checks can never disagree about what a mapping or a spike file may hold.
"""

from __future__ import annotations

from uticompile.errors import ConfigError

MAX_TIMESTEPS = 64
"""Spike codes hold at most 64 timesteps (one u64 bit each)."""
MAX_DIM = 65535
"""Largest channel count, height, width or class count."""
MAX_PES = 4096
"""Largest PE count per group (TILE's pe field is a u16; 4096 keeps tiles countable)."""
MAX_SCRATCHPAD_WORDS = 1 << 24
MAX_ACCUMULATORS = 1 << 20
WEIGHT_BITS = (2, 16)
"""Weight widths a mapping can store (weights are stored as i16)."""

#: Hardware parameters a mapping records, and the ranges both the hardware config and the
#: mapped-binary reader accept. The paper's accelerator: input_bits 8, word_bits 16, acc_bits 24,
#: accumulators 256.
HARDWARE_RANGES: dict[str, tuple[int, int]] = {
    "input_bits": (2, 8),
    "num_pes": (1, MAX_PES),
    "scratchpad_words": (1, MAX_SCRATCHPAD_WORDS),
    "word_bits": WEIGHT_BITS,
    "acc_bits": (8, 32),
    "accumulators": (1, MAX_ACCUMULATORS),
}

# Largest weight magnitude an imported model may hold: beyond it, scaling and quantization
# overflow float32 long before any real network's weights get there.
MAX_ABS_WEIGHT = 1e30


def check_pes(pes: int) -> None:
    """PEs per group: the one rule that ``map``, ``prune``, ``shrink`` and ``compare`` share."""
    if pes < 1:
        raise ConfigError(f"pes must be >= 1, got {pes}", option="pes")
    if pes > MAX_PES:
        raise ConfigError(f"pes must be <= {MAX_PES} (the mapped format's limit), got {pes}",
                          option="pes")  # fmt: skip


def check_timesteps(value: int, option: str) -> None:
    """A timestep count: spike codes hold at most ``MAX_TIMESTEPS``."""
    if not 1 <= value <= MAX_TIMESTEPS:
        raise ConfigError(f"{option} must lie in 1..{MAX_TIMESTEPS}, got {value}", option=option)

"""The modeled accelerator, read from a TOML hardware config (defaults: hw_default.toml).

One frozen dataclass is the single source of the PE count, scratchpad, widths and the energy
table, for the mapper and the runtime alike.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any

from uticompile.errors import ConfigError

_SECTIONS = ("pe", "cycles", "power_mw", "access_pj")


@dataclass(frozen=True)
class HardwareConfig:
    num_pes: int = 16
    clock_mhz: float = 400.0
    scratchpad_words: int = 1024
    word_bits: int = 16
    acc_bits: int = 24
    accumulators: int = 256
    input_bits: int = 8
    per_match: int = 1
    mac_dynamic: float = 0.02511
    mac_dynamic_ungated: float = 0.01924
    mac_leakage: float = 6.2e-5
    lif_dynamic: float = 0.01886
    lif_dynamic_ungated: float = 0.05625
    lif_leakage: float = 8.4e-5
    scratchpad_dynamic: float = 0.11241
    scratchpad_dynamic_ungated: float = 0.21233
    scratchpad_leakage: float = 5.23e-4
    dram: float = 55.58
    sram: float = 1.95
    scratchpad: float = 0.2779

    def __post_init__(self) -> None:
        checks = {
            "num_pes": 1 <= self.num_pes <= 4096,
            "scratchpad_words": 1 <= self.scratchpad_words <= 2**24,
            "word_bits": 2 <= self.word_bits <= 16,
            "acc_bits": 8 <= self.acc_bits <= 32,
            "accumulators": 1 <= self.accumulators <= 2**20,
            "input_bits": 2 <= self.input_bits <= 8,
            "per_match": self.per_match >= 1,
            "clock_mhz": self.clock_mhz > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"hardware config: {name} = {getattr(self, name)} is out of range"
                )

    def with_pes(self, num_pes: int) -> HardwareConfig:
        return replace(self, num_pes=num_pes)


def _flatten(doc: dict[str, Any], source: str) -> dict[str, Any]:
    known = {f.name: f.type for f in fields(HardwareConfig)}
    out: dict[str, Any] = {}
    for section, values in doc.items():
        if section not in _SECTIONS or not isinstance(values, dict):
            raise ConfigError(f"{source}: unknown section [{section}]")
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{source}: unknown key {key!r} in [{section}]")
            want = int if known[key] in (int, "int") else float
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source}: {key} must be a number")
            if want is int and not isinstance(value, int):
                raise ConfigError(f"{source}: {key} must be an integer")
            out[key] = want(value)
    return out


def default_hardware() -> HardwareConfig:
    text = resources.files("uticompile").joinpath("hw_default.toml").read_text()
    return HardwareConfig(**_flatten(tomllib.loads(text), "hw_default.toml"))


def load_hardware(path: str | os.PathLike[str] | None) -> HardwareConfig:
    """The default config, overridden by the keys of the TOML file at ``path`` (if given)."""
    base = default_hardware()
    if path is None:
        return base
    try:
        with open(path, "rb") as handle:
            doc = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such hardware config") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return replace(base, **_flatten(doc, str(path)))

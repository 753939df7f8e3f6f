"""The modeled accelerator, read from a TOML hardware config (defaults: hw_default.toml).

One frozen dataclass carries the PE count, scratchpad, widths and the energy table, for the mapper
and the runtime alike; its default values are hw_default.toml's (the one place they are written).
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any

from uticompile.errors import ConfigError
from uticompile.limits import HARDWARE_RANGES

_SECTIONS = ("pe", "cycles", "power_mw", "access_pj")


def _default_text() -> str:
    return resources.files("uticompile").joinpath("hw_default.toml").read_text()


# hw_default.toml is the one source of the default values; the fields below only name and type
# them (a field without a TOML key fails here, a TOML key without a field in ``_flatten``).
_DEFAULTS: dict[str, Any] = {
    key: value
    for section in tomllib.loads(_default_text()).values()
    for key, value in section.items()
}


@dataclass(frozen=True)
class HardwareConfig:
    """The accelerator the mapper targets and the runtime costs; defaults: ``hw_default.toml``."""

    num_pes: int = _DEFAULTS["num_pes"]
    clock_mhz: float = _DEFAULTS["clock_mhz"]
    scratchpad_words: int = _DEFAULTS["scratchpad_words"]
    word_bits: int = _DEFAULTS["word_bits"]
    acc_bits: int = _DEFAULTS["acc_bits"]
    accumulators: int = _DEFAULTS["accumulators"]
    input_bits: int = _DEFAULTS["input_bits"]
    per_match: int = _DEFAULTS["per_match"]
    mac_dynamic: float = _DEFAULTS["mac_dynamic"]
    mac_dynamic_ungated: float = _DEFAULTS["mac_dynamic_ungated"]
    mac_leakage: float = _DEFAULTS["mac_leakage"]
    lif_dynamic: float = _DEFAULTS["lif_dynamic"]
    lif_dynamic_ungated: float = _DEFAULTS["lif_dynamic_ungated"]
    lif_leakage: float = _DEFAULTS["lif_leakage"]
    scratchpad_dynamic: float = _DEFAULTS["scratchpad_dynamic"]
    scratchpad_dynamic_ungated: float = _DEFAULTS["scratchpad_dynamic_ungated"]
    scratchpad_leakage: float = _DEFAULTS["scratchpad_leakage"]
    dram: float = _DEFAULTS["dram"]
    sram: float = _DEFAULTS["sram"]
    scratchpad: float = _DEFAULTS["scratchpad"]

    def __post_init__(self) -> None:
        checks = {
            name: lo <= getattr(self, name) <= hi for name, (lo, hi) in HARDWARE_RANGES.items()
        }
        # Energies and the clock are floats: NaN passes every comparison, so finiteness first.
        checks |= {
            f.name: math.isfinite(getattr(self, f.name)) and getattr(self, f.name) >= 0
            for f in fields(self)
            if f.type in (float, "float")
        }
        checks |= {
            "per_match": self.per_match >= 1,
            "clock_mhz": math.isfinite(self.clock_mhz) and self.clock_mhz > 0,
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
    """The default accelerator, read (and checked like any user file) from hw_default.toml."""
    return HardwareConfig(**_flatten(tomllib.loads(_default_text()), "hw_default.toml"))


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

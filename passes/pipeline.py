"""The map pipeline from a pruned IR graph to a mapped binary.

graph -> FoldBatchNorm -> LowerToHardware -> Quantize -> ChoosePlacement -> PlaceOnPEs ->
EncodeWeights -> Mapping. Calibrated placement (the hits of ``ChoosePlacement``) is measured by
the runtime (``runtime.calibrate``), which runs a first, contiguous mapping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from collections.abc import Mapping as AnyMapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import uticompile
from uticompile.errors import ConfigError
from uticompile.grouping import GROUPINGS
from uticompile.hardware import HardwareConfig
from uticompile.hwir import HwModule
from uticompile.ir import Graph
from uticompile.limits import WEIGHT_BITS
from uticompile.mapfile import (
    GROUPING_CODES,
    KIND_CODES,
    LAYER_FLAG_BIAS,
    LAYR_DTYPE,
    MODL_DTYPE,
    RESET_CODES,
    TILE_DTYPE,
    Mapping,
)
from uticompile.mapfile.compact import ENCODING_WSP
from uticompile.mapfile.wsp import WORD_BYTES, wsp_words
from uticompile.passes.base import Pass, PassManager
from uticompile.passes.choose_placement import ChoosePlacement
from uticompile.passes.encode_weights import WEIGHT_ENCODINGS, EncodeWeights
from uticompile.passes.fold_batchnorm import FoldBatchNorm
from uticompile.passes.lower_to_hardware import LowerToHardware
from uticompile.passes.place_on_pes import PlaceOnPEs
from uticompile.passes.quantize import Quantize
from uticompile.passes.registry import MAP_PIPELINE
from uticompile.placement import PLACEMENTS


@dataclass(frozen=True)
class MapConfig:
    """Options of ``uticompile map``."""

    pes: int = 16
    grouping: str = "sata"
    bits: int = 16
    placement: str = "auto"
    calibration: int = 64  # training samples whose spikes weigh placement costs; 0 = static
    weight_encoding: str = "wsp"  # per tile: wsp (the paper's), compact (1.2), auto (smaller)

    def __post_init__(self) -> None:
        if self.pes < 1:
            raise ConfigError(f"pes must be >= 1, got {self.pes}", option="pes")
        if self.grouping not in GROUPINGS:
            raise ConfigError(f"grouping must be one of {', '.join(GROUPINGS)}", option="grouping")
        lo, hi = WEIGHT_BITS
        if not lo <= self.bits <= hi:
            raise ConfigError(f"bits must lie in {lo}..{hi}, got {self.bits}", option="bits")
        if self.placement not in PLACEMENTS:
            raise ConfigError(
                f"placement must be one of {', '.join(PLACEMENTS)}", option="placement"
            )
        if self.weight_encoding not in WEIGHT_ENCODINGS:
            raise ConfigError(
                f"weight_encoding must be one of {', '.join(WEIGHT_ENCODINGS)}",
                option="weight_encoding",
            )
        if self.calibration < 0:
            raise ConfigError(
                f"calibration must be >= 0, got {self.calibration}", option="calibration"
            )


def input_bound(mean: tuple[float, ...], std: tuple[float, ...]) -> float:
    """Largest |normalized pixel| of a dataset whose raw pixels lie in [0, 1]."""
    return max(max(m, 1 - m) / s for m, s in zip(mean, std, strict=True))


CALIBRATION_SPLIT = "train"  # calibration images: never the test images runs are scored on


def calibrated(config: MapConfig) -> bool:
    """Whether ``config``'s placement is chosen on measured spikes (else on nonzero weights)."""
    return config.placement != "contiguous" and config.calibration > 0


def _config_record(config: MapConfig) -> dict[str, Any]:
    """``config`` as META stores it; the default WSP encoding is left out, so that mappings that
    do not use the compact encoding stay byte-identical to those written before it existed (and
    ``MapConfig(**record)`` gives the default back)."""
    record = asdict(config)
    if record["weight_encoding"] == MapConfig.weight_encoding:
        del record["weight_encoding"]
    return record


def map_metadata(
    config: MapConfig,
    hw: HardwareConfig,
    bound: float,
    source: bytes,
    calibration_dataset: str | None = None,
) -> dict:
    """What ``--check`` needs to redo the mapping exactly, stored in the META section."""
    meta: dict[str, Any] = {
        "map_config": _config_record(config),
        "hardware": {
            "scratchpad_words": hw.scratchpad_words,
            "word_bits": hw.word_bits,
            "acc_bits": hw.acc_bits,
            "accumulators": hw.accumulators,
            "input_bits": hw.input_bits,
        },
        "input_bound": bound,
        "source_sha256": hashlib.sha256(source).hexdigest(),
    }
    if calibrated(config) and calibration_dataset is not None:
        meta["calibration"] = {"dataset": calibration_dataset, "split": CALIBRATION_SPLIT}
    return meta


def map_graph(
    graph: Graph,
    config: MapConfig,
    hw: HardwareConfig,
    bound: float,
    source: bytes = b"",
    *,
    hits: AnyMapping[str, np.ndarray] | None = None,
    calibration_dataset: str | None = None,
) -> tuple[HwModule, Mapping]:
    """The map recipe: compile ``graph`` and record in META what ``run --check`` needs to redo it.

    ``bound`` is the largest |normalized input| (``input_bound`` of the dataset); ``source`` the
    ONNX bytes the graph was read from (their hash is stored). ``hits``: placement costs measured
    on the first ``config.calibration`` training images of ``calibration_dataset``
    (``runtime.simulate.map_calibrated`` measures them).
    """
    module = compile_graph(graph, config, hw, bound, hits=hits)
    meta = map_metadata(config, hw, bound, source, calibration_dataset if hits else None)
    return module, to_mapping(module, meta)


def compile_graph(
    graph: Graph,
    config: MapConfig,
    hw: HardwareConfig,
    input_bound: float,
    on_pass: Callable[[str, bool], None] | None = None,
    hits: AnyMapping[str, np.ndarray] | None = None,
) -> HwModule:
    """Run the map pipeline on ``graph``; ``input_bound`` = the largest |normalized input|.

    ``hits``: calibration cycles per weight position and step, per layer name (placement costs);
    without them placement counts one cycle per nonzero weight.
    """
    hw = hw.with_pes(config.pes)
    passes: list[Pass] = [
        FoldBatchNorm(),
        LowerToHardware(hw, config.grouping, input_bound),
        Quantize(config.bits, hw.input_bits, hw.acc_bits),
        ChoosePlacement(config.placement, dict(hits or {})),
        PlaceOnPEs(),
        EncodeWeights(config.weight_encoding),
    ]
    assert tuple(p.name for p in passes) == MAP_PIPELINE
    return PassManager(passes).run(graph, on_pass)


def to_mapping(module: HwModule, meta: dict | None = None) -> Mapping:
    """The mapped-binary records of a compiled module (docs/mapping-format.md, section 2)."""
    assert module.wsp is not None and module.wsp_offsets is not None
    assert module.tile_codes is not None
    hw = module.hw
    layers = np.zeros(len(module.layers), LAYR_DTYPE)
    tile_rows: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    n_bias = n_tiles = 0
    for i, layer in enumerate(module.layers):
        rec = layers[i]
        rec["kind"] = KIND_CODES[layer.kind]
        rec["input0"] = layer.inputs[0]
        rec["input1"] = layer.inputs[1] if len(layer.inputs) > 1 else -1
        rec["in_shape"] = layer.in_shape
        rec["out_shape"] = layer.out_shape
        rec["kernel"] = layer.kernel
        rec["stride"] = layer.stride
        rec["pads"] = layer.pads
        rec["frac_bits"] = layer.frac_bits
        rec["shift0"], rec["shift1"] = layer.shifts
        if layer.kind == "LIF":
            rec["threshold"] = layer.threshold_q
            rec["leak_mult"], rec["leak_shift"] = layer.leak_mult, layer.leak_shift
            rec["reset"] = RESET_CODES[layer.reset]
        if layer.is_weight:
            assert layer.tiles is not None and layer.bias is not None
            rec["weight_bits"] = layer.weight_bits
            rec["flags"] = LAYER_FLAG_BIAS
            rec["bias_index"] = n_bias
            biases.append(layer.bias.astype(np.int32))
            n_bias += len(layer.bias)
            rec["tile_first"], rec["tile_count"] = n_tiles, len(layer.tiles)
            rec["groups"], rec["spatial_tiles"] = layer.groups, layer.spatial_tiles
            rec["placement"] = layer.placement.code if layer.placement is not None else 0
            t = np.zeros(len(layer.tiles), TILE_DTYPE)
            t["layer"] = i
            for col, name in enumerate(
                ("group", "pe", "tile", "filter", "position", "count", "nnz")
            ):
                t[name] = layer.tiles[:, col]
            codes = module.tile_codes[n_tiles : n_tiles + len(t)]
            t["encoding"], t["rice_k"], t["words"] = codes.T
            assert np.array_equal(  # WSP tiles: the words section 2.3 gives
                codes[codes[:, 0] == ENCODING_WSP, 2],
                wsp_words(layer.tiles[:, 5], layer.tiles[:, 6])[codes[:, 0] == ENCODING_WSP],
            )
            t["wsp_bytes"] = np.where(codes[:, 0] == ENCODING_WSP, WORD_BYTES * codes[:, 2], 0)
            t["wsp_offset"] = module.wsp_offsets[n_tiles : n_tiles + len(t)]
            tile_rows.append(t)
            n_tiles += len(t)
    tiles = np.concatenate(tile_rows) if tile_rows else np.zeros(0, TILE_DTYPE)
    model = np.zeros((), MODL_DTYPE)
    model["timesteps"] = module.timesteps
    model["num_classes"] = module.num_classes
    model["input_shape"] = module.input_shape
    model["input_frac_bits"] = module.input_frac_bits
    model["input_bits"] = hw.input_bits
    model["num_pes"] = hw.num_pes
    model["scratchpad_words"] = hw.scratchpad_words
    model["word_bits"] = hw.word_bits
    model["acc_bits"] = hw.acc_bits
    model["accumulators"] = hw.accumulators
    model["grouping"] = GROUPING_CODES[module.grouping]
    model["layer_count"] = len(layers)
    model["tile_count"] = len(tiles)
    info = {
        "producer": f"uticompile {uticompile.__version__}",
        "report": {layer.name: layer.report for layer in module.layers if layer.report},
    }
    info.update(meta or {})
    return Mapping(
        name=module.name,
        model=model,
        layers=layers,
        layer_names=[layer.name for layer in module.layers],
        tiles=tiles,
        wsp=np.frombuffer(module.wsp, dtype=np.uint8).copy(),
        bias=np.concatenate(biases) if biases else np.zeros(0, np.int32),
        meta=info,
    )

"""Every compiler pass by name: the CLI, saved configs and tests look passes up here."""

from __future__ import annotations

from uticompile.passes.choose_placement import ChoosePlacement
from uticompile.passes.encode_weights import EncodeWeights
from uticompile.passes.fold_batchnorm import FoldBatchNorm
from uticompile.passes.lower_to_hardware import LowerToHardware
from uticompile.passes.place_on_pes import PlaceOnPEs
from uticompile.passes.quantize import Quantize

PASSES: dict[str, type] = {
    p.name: p
    for p in (
        FoldBatchNorm,
        LowerToHardware,
        Quantize,
        ChoosePlacement,
        PlaceOnPEs,
        EncodeWeights,
    )
}

#: The map pipeline, in order (``passes.pipeline.compile_graph`` builds it with its options).
MAP_PIPELINE: tuple[str, ...] = (
    "fold-batchnorm",
    "lower-to-hardware",
    "quantize",
    "choose-placement",
    "place-on-pes",
    "encode-weights",
)

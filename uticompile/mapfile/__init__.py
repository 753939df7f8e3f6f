"""The mapped binary (``.utm``, docs/mapping-format.md §2), one module per concern.

* ``records``: byte layouts (numpy structured dtypes), format codes, and ``Mapping``;
* ``wsp``: the WSP blob of a tile and its word counts;
* ``codec``: encoding to / decoding from the container, writing and reading files;
* ``validate``: every rule a consumer relies on, checked on encode and on decode.

``from uticompile.mapfile import X`` keeps working for every public name.
"""

from __future__ import annotations

from uticompile.limits import MAX_DIM, MAX_PES, MAX_SCRATCHPAD_WORDS, MAX_TIMESTEPS
from uticompile.mapfile.codec import decode_mapping, encode_mapping, read_mapping, write_mapping
from uticompile.mapfile.records import (
    BASE_VERSION,
    GROUPING_CODES,
    GROUPING_NAMES,
    GROUPING_SATA,
    GROUPING_SYSTOLIC,
    KIND_ADD,
    KIND_CODES,
    KIND_CONV,
    KIND_ENCODE,
    KIND_FC,
    KIND_FLATTEN,
    KIND_LIF,
    KIND_MAXPOOL,
    KIND_NAMES,
    KIND_SUMPOOL,
    LAYER_FLAG_BIAS,
    LAYR_DTYPE,
    MAGIC_UTM,
    MODL_DTYPE,
    MODL_RANGES,
    PLACEMENT_CONTIGUOUS,
    PLACEMENT_NAMES,
    PLACEMENT_SORTED,
    PLACEMENT_SPLIT,
    REQUIRED_SECTIONS,
    RESET_HARD,
    RESET_SUBTRACT,
    SECTION_TAGS,
    TILE_DTYPE,
    VERSION,
    WEIGHT_KINDS,
    WINDOW_SUMPOOL_MINOR,
    Mapping,
    required_version,
    window_sumpools,
)
from uticompile.mapfile.wsp import dense_from_wsp, mask_words, wsp_decode, wsp_encode, wsp_words

__all__ = [
    "BASE_VERSION",
    "GROUPING_CODES",
    "GROUPING_NAMES",
    "GROUPING_SATA",
    "GROUPING_SYSTOLIC",
    "KIND_ADD",
    "KIND_CODES",
    "KIND_CONV",
    "KIND_ENCODE",
    "KIND_FC",
    "KIND_FLATTEN",
    "KIND_LIF",
    "KIND_MAXPOOL",
    "KIND_NAMES",
    "KIND_SUMPOOL",
    "LAYER_FLAG_BIAS",
    "LAYR_DTYPE",
    "MAGIC_UTM",
    "MAX_DIM",
    "MAX_PES",
    "MAX_SCRATCHPAD_WORDS",
    "MAX_TIMESTEPS",
    "MODL_DTYPE",
    "MODL_RANGES",
    "PLACEMENT_CONTIGUOUS",
    "PLACEMENT_NAMES",
    "PLACEMENT_SORTED",
    "PLACEMENT_SPLIT",
    "REQUIRED_SECTIONS",
    "RESET_HARD",
    "RESET_SUBTRACT",
    "SECTION_TAGS",
    "TILE_DTYPE",
    "VERSION",
    "WEIGHT_KINDS",
    "WINDOW_SUMPOOL_MINOR",
    "Mapping",
    "decode_mapping",
    "dense_from_wsp",
    "encode_mapping",
    "mask_words",
    "read_mapping",
    "required_version",
    "window_sumpools",
    "write_mapping",
    "wsp_decode",
    "wsp_encode",
    "wsp_words",
]

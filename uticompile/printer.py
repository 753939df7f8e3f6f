"""A stable text form of the IR and of a mapping, for people and for golden-text tests.

Stable means: the same graph or mapping always prints the same text, independent of dict order,
float formatting or platform (floats print with ``repr``, attributes sorted by name).
"""

from __future__ import annotations

import zlib

from uticompile.ir import Graph
from uticompile.mapfile import GROUPING_NAMES, KIND_NAMES, PLACEMENT_NAMES, RESET_CODES, Mapping


def _attr(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ",".join(str(v) for v in value) + ")"
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def format_graph(g: Graph, *, digests: bool = False) -> str:
    """One line per node: ``%out = Op(%in, @param[shape]) attr=value ... : [shape]``."""
    shapes = g.shapes()
    c, h, w = g.input_shape
    lines = [f"graph {g.name} input %{g.input_name}[{c},{h},{w}] T={g.timesteps} "
             f"classes={g.num_classes} encoding={g.encoding} -> %{g.output_name}"]  # fmt: skip
    for node in g.nodes:
        args = [f"%{v}" for v in g.activations(node)]
        for p in g.param_names(node):
            arr = g.params[p]
            text = f"@{p}[{','.join(str(d) for d in arr.shape)}]"
            if digests:
                text += f"#{zlib.crc32(arr.tobytes()):08x}"
            args.append(text)
        attrs = " ".join(f"{k}={_attr(v)}" for k, v in sorted(node.attrs.items()))
        shape = ",".join(str(d) for d in shapes[node.output])
        name = "" if node.name == node.output else f"  # {node.name}"
        lines.append(
            f"%{node.output} = {node.op}({', '.join(args)})"
            + (f" {attrs}" if attrs else "")
            + f" : [{shape}]{name}"
        )
    return "\n".join(lines) + "\n"


def format_mapping(m: Mapping) -> str:
    """Header, then one line per layer with its fields that matter for its kind."""
    md = m.model
    shape = ",".join(str(int(v)) for v in md["input_shape"])
    lines = [
        f"mapping {m.name} input[{shape}] T={int(md['timesteps'])} "
        f"classes={int(md['num_classes'])} input_frac_bits={int(md['input_frac_bits'])} "
        f"pes={int(md['num_pes'])} "
        f"grouping={GROUPING_NAMES[int(md['grouping'])]} scratchpad={int(md['scratchpad_words'])} "
        f"acc_bits={int(md['acc_bits'])} tiles={len(m.tiles)} wsp_bytes={len(m.wsp)}"
    ]
    for i, rec in enumerate(m.layers):
        kind = KIND_NAMES[int(rec["kind"])]
        inputs = [int(rec["input0"])] + ([int(rec["input1"])] if int(rec["input1"]) >= 0 else [])
        out = ",".join(str(int(v)) for v in rec["out_shape"])
        parts = [f"{i:3d} {kind:<8} {m.layer_names[i]:<10} in={inputs} out=[{out}]"]
        if kind in ("ENCODE", "CONV", "MAXPOOL"):
            parts.append(f"k={tuple(int(v) for v in rec['kernel'])} "
                         f"s={tuple(int(v) for v in rec['stride'])}")  # fmt: skip
        if kind in ("ENCODE", "CONV", "FC"):
            first, count = int(rec["tile_first"]), int(rec["tile_count"])
            nnz = int(m.tiles[first : first + count]["nnz"].sum())
            parts.append(f"frac={int(rec['frac_bits'])} bits={int(rec['weight_bits'])} "
                         f"groups={int(rec['groups'])} tiles={count} nnz={nnz}")  # fmt: skip
            if int(rec["placement"]):
                parts.append(f"placement={PLACEMENT_NAMES[int(rec['placement'])]}")
            compact = int(m.tiles[first : first + count]["encoding"].astype(bool).sum())
            if compact:  # 1.2: WSP (the default) is not printed
                parts.append(f"compact_tiles={compact}")
        if kind == "ENCODE":
            parts.append(f"shift={int(rec['shift0'])}")
        if kind == "LIF":
            names = {code: name for name, code in RESET_CODES.items()}
            reset = names.get(int(rec["reset"]), str(int(rec["reset"])))
            leak = f"{int(rec['leak_mult'])}/2^{int(rec['leak_shift'])}"
            parts.append(f"threshold={int(rec['threshold'])} leak={leak} reset={reset}")
        if kind == "ADD":
            parts.append(f"shifts=({int(rec['shift0'])},{int(rec['shift1'])})")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"

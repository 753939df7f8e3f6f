"""``show``: an ONNX model's IR or a mapped binary as stable text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from uticompile.errors import UticompileError


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def show(path: Path) -> None:
    """Print an ONNX model's IR or a mapped binary (.utm) as stable text."""
    from uticompile.mapfile import MAGIC_UTM, read_mapping
    from uticompile.onnx_import import read_graph
    from uticompile.printer import format_graph, format_mapping

    with open(path, "rb") if path.is_file() else _missing(path) as handle:
        head = handle.read(len(MAGIC_UTM))
    mapped = head == MAGIC_UTM or path.suffix.lower() == ".utm"
    if not head:
        kind = "mapped binary" if mapped else "file: neither a mapped binary nor an ONNX model"
        raise UticompileError(f"{path}: empty {kind} (0 bytes: truncated or never written)")
    if mapped:  # a truncated or damaged .utm gets the mapped-binary reader's error
        click.echo(format_mapping(read_mapping(path)), nl=False)
    else:
        click.echo(format_graph(read_graph(path), digests=True), nl=False)


def _missing(path: Path) -> Any:
    raise UticompileError(f"{path}: no such file")


COMMANDS = (show,)

"""The ``uticompile`` command line: parse, build a config, call the library, print or write.

Every error a user can cause ends as one line on stderr and exit status 2, never a traceback; a
failed internal invariant (a bug) ends as one "internal error" line and exit status 70.
"""

from __future__ import annotations

import sys

import click

import uticompile
from uticompile.cli import compare, hw, nir, prune, show, shrink, train
from uticompile.cli.options import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, flag_message
from uticompile.errors import InvariantError, UticompileError


class _Group(click.Group):
    """click turns ``EOFError`` into ``Abort`` (as if Ctrl-C was pressed, exit 130): here it is
    what it is when no command reads a terminal, a file that ended early: a user error."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except EOFError as exc:
            detail = f": {exc}" if str(exc) else ""
            raise UticompileError(
                f"an input file ended unexpectedly (empty or truncated){detail}"
            ) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(uticompile.__version__, prog_name="uticompile")
def cli() -> None:
    """uticompile: train, prune, map and run workload-balanced sparse spiking neural networks."""


for _module in (train, prune, shrink, show, hw, compare, nir):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning every user error into one line and an exit code."""
    try:
        result = cli.main(args=argv, prog_name="uticompile", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("uticompile: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"uticompile: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except UticompileError as exc:
        click.echo(f"uticompile: error: {flag_message(exc)}", err=True)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        click.echo(
            "uticompile: error: this command needs PyTorch: pip install 'uticompile[train]'",
            err=True,
        )
        return EXIT_USER_ERROR
    except (InvariantError, AssertionError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        click.echo(f"uticompile: internal error (a bug, please report it): {detail}", err=True)
        return EXIT_INTERNAL_ERROR
    except KeyboardInterrupt:
        click.echo("uticompile: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

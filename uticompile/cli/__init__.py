"""The ``uticompile`` command line, one module per group of commands.

``app`` holds the command group and the entry point; ``options`` what the commands share.
"""

from __future__ import annotations

from uticompile.cli.app import cli, main
from uticompile.cli.options import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR

__all__ = ["EXIT_INTERNAL_ERROR", "EXIT_USER_ERROR", "cli", "main"]

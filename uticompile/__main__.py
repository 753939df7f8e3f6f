"""``python -m uticompile`` and the console script."""

from __future__ import annotations

import sys

from uticompile.cli import main


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()

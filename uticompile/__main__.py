"""``python -m uticompile`` and the console script."""

from __future__ import annotations

import sys

from uticompile.threads import prefer_passive_omp_wait


def run() -> None:
    prefer_passive_omp_wait()  # before any command imports torch
    from uticompile.cli import main

    sys.exit(main())


if __name__ == "__main__":
    run()

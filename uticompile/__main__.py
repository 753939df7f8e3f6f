"""``python -m uticompile`` and the console script."""

from __future__ import annotations

import os
import sys

from uticompile.threads import prefer_passive_omp_wait


def run() -> None:
    prefer_passive_omp_wait()  # before any command imports torch
    from uticompile.cli import main

    # Under torchrun (WORLD_SIZE > 1) rank 0 runs the command and the other ranks serve its
    # training jobs; torch is imported only then, so other commands start fast.
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import logging

        from uticompile.models.distributed import session
        from uticompile.models.train import serve

        # Rank 0 reports on stderr that every rank trained the same masks and weights.
        logging.basicConfig(format="uticompile: %(message)s")
        logging.getLogger("uticompile.models.distributed").setLevel(logging.INFO)

        with session() as group:
            if group is not None and not group.world.is_leader:
                serve(group)
                sys.exit(0)
            sys.exit(main())
    sys.exit(main())


if __name__ == "__main__":
    run()

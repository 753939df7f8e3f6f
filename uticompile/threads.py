"""The OpenMP wait policy for torch's worker threads: one rule, applied by the layers using torch.

PyTorch's OpenMP threads spin while they wait for work. On a loaded machine (2 cores shared with
other processes, as on CI) spinning threads starve each other: a training step measured 6x
slower. A passive wait policy keeps the parallel speed-up without the spinning. OpenMP reads the
variable once, when torch loads it, so this must run before the first ``import torch``: the
``uticompile.models`` package and the CLI entry call it; importing ``uticompile`` itself changes
no environment. A value the user set is kept.
"""

from __future__ import annotations

import os


def prefer_passive_omp_wait() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

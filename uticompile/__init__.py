"""uticompile: compiler and deployment toolchain for workload-balanced sparse SNNs."""

from __future__ import annotations

import os

# PyTorch's OpenMP threads spin while they wait for work. On a loaded machine (2 cores shared with
# other processes, as on CI) spinning threads starve each other: a training step measured 6x
# slower. A passive wait policy keeps the parallel speed-up without the spinning. It must be set
# before torch loads OpenMP, i.e. here; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

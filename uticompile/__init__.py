"""uticompile: compiler and deployment toolchain for workload-balanced sparse SNNs."""

from __future__ import annotations

__version__ = "0.1.0"

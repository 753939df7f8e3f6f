"""Pass infrastructure: a pass is a small callable object; a manager chains passes.

Each pass returns a ``PassResult`` saying whether it changed the module and checks its own
postcondition: a broken precondition (the input cannot be mapped) is a ``PassError``, a broken
postcondition (a bug) an ``InvariantError``. Pass options are frozen dataclass fields, so the
CLI and saved run configs are built from one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from uticompile.errors import InvariantError, PassError, UticompileError


@dataclass(frozen=True)
class PassResult:
    module: Any
    changed: bool


class Pass(Protocol):
    name: ClassVar[str]

    def __call__(self, module: Any, /) -> PassResult: ...


@dataclass(frozen=True)
class PassManager:
    """Runs passes in order; a failure names the pass it came from."""

    passes: Sequence[Pass]

    def run(self, module: Any, on_pass: Callable[[str, bool], None] | None = None) -> Any:
        for p in self.passes:
            try:
                result = p(module)
            except PassError as exc:
                raise PassError(f"pass {p.name}: {exc}") from None
            except InvariantError as exc:  # a postcondition: a bug, kept apart from user errors
                raise InvariantError(f"pass {p.name}: {exc}") from exc
            except UticompileError:
                raise
            if on_pass is not None:
                on_pass(p.name, result.changed)
            module = result.module
        return module

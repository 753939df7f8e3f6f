"""What every CLI command shares: exit codes, output, progress bars and common options.

Commands import the library lazily, inside the command, so a command that needs no torch
(``inspect``, ``encode-input``, ``run``, ``show``, ``map``) never loads it.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from uticompile.errors import UticompileError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE (sysexits.h): a bug, not the user's input


class FiniteFloat(click.FloatRange):
    """A float range that also refuses NaN and infinities (NaN passes every range comparison)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


json_option = click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the dataset files are.",
)
hw_option = click.option(
    "--hw", "hw_path", type=click.Path(dir_okay=False, path_type=Path), help="Hardware TOML."
)
grouping_option = click.option(
    "--grouping", type=click.Choice(["sata", "systolic"]), default="sata", show_default=True
)
device_option = click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True
)


def json_safe(value: Any) -> Any:
    """NaN and infinities as explicit nulls: ``NaN``/``Infinity`` are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def flag_message(exc: UticompileError) -> str:
    """The error's message with its option named as the CLI flag (``rounds`` -> ``--rounds``)."""
    text = str(exc)
    if exc.option is None:
        return text
    return "--" + exc.option.replace("_", "-") + text[len(exc.option) :]


def emit(as_json: bool, payload: dict[str, Any], text: Callable[[], str] | str) -> None:
    """Print ``payload`` as JSON (machine-readable) or the human text."""
    if as_json:
        click.echo(json.dumps(json_safe(payload), indent=2, sort_keys=True, allow_nan=False))
    else:
        click.echo(text() if callable(text) else text)


@contextmanager
def step_bar(label: str, enabled: bool) -> Iterator[Callable[[Any], None]]:
    """Training progress on stderr: a bar per epoch on a terminal, else one line per epoch."""
    state: dict[str, Any] = {}
    tty = sys.stderr.isatty()

    def finish() -> None:
        info = state.get("info")
        if info is None:
            return
        if state.get("bar") is not None:
            state["bar"].render_finish()
        else:
            click.echo(
                f"{label} {info.epoch}/{info.epochs}: loss {info.loss:.4f} "
                f"train accuracy {info.accuracy:.4f}",
                err=True,
            )

    def on_step(info: Any) -> None:
        if not enabled:
            return
        if state.get("epoch") != info.epoch:
            finish()
            state["bar"] = None
            if tty:
                state["bar"] = click.progressbar(
                    length=info.steps,
                    file=sys.stderr,
                    show_pos=True,
                    label=f"{label} {info.epoch}/{info.epochs}",
                )
            state["epoch"] = info.epoch
        state["info"] = info
        if state["bar"] is not None:
            state[
                "bar"
            ].label = (
                f"{label} {info.epoch}/{info.epochs} loss {info.loss:.3f} acc {info.accuracy:.3f}"
            )
            state["bar"].update(1)

    yield on_step
    if enabled:
        finish()


def fast_path_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the fast-path flags to ``command`` and run it with them turned on (checked first)."""

    @click.option("--amp", is_flag=True, help="bfloat16 mixed precision for training (CUDA only).")
    @click.option("--channels-last", is_flag=True, help="Channels-last convolutions in training.")
    @click.option(
        "--compile", "compile_", is_flag=True, help="torch.compile the network for training."
    )
    @functools.wraps(command)
    def wrapper(*args: Any, amp: bool, channels_last: bool, compile_: bool, **kwargs: Any) -> Any:
        from uticompile.models import fastpath

        fast = fastpath.FastPaths(amp=amp, channels_last=channels_last, compile=compile_)
        fast.check(kwargs.get("device", "cpu"))
        with fastpath.use(fast):
            return command(*args, **kwargs)

    return wrapper


def search_timesteps_value(value: str | None) -> int | str | None:
    """--search-timesteps: an integer, 'auto', or absent (one-line error otherwise)."""
    from uticompile.errors import ConfigError

    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--search-timesteps takes an integer or 'auto', got {value!r}") from None


def int_list(value: str, what: str) -> tuple[int, ...]:
    """A comma-separated list of integers (one-line error naming the option otherwise)."""
    from uticompile.errors import ConfigError

    try:
        items = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--{what} takes comma-separated integers, got {value!r}") from None
    if not items:
        raise ConfigError(f"--{what} needs at least one value")
    return items


def search_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The ET ticket's options, shared by ``prune`` and ``compare`` (values parsed here)."""
    command = click.option(
        "--search-candidates",
        default="2,3,4",
        show_default=True,
        callback=lambda _c, _p, v: int_list(v, "search-candidates"),
        help="auto: candidate search T, comma-separated (those below T count).",
    )(command)
    command = click.option(
        "--search-threshold",
        type=float,
        default=0.6,
        show_default=True,
        help="auto: the largest normalized KL(p_T || p_t) accepted.",
    )(command)
    return click.option(
        "--search-timesteps",
        default=None,
        callback=lambda _c, _p, v: search_timesteps_value(v),
        help="ET ticket: T of the search rounds, or 'auto' (the KL criterion after dense "
        "epoch 2; the final round uses the model's T).",
    )(command)


def warn_redo(step: str, damaged: tuple[str, ...]) -> None:
    """A resumed run found a finished step's files damaged: say which, and that it runs again."""
    files = ", ".join(damaged) or "its files"
    click.echo(f"uticompile: {step}: {files} missing or damaged; running it again", err=True)

"""The project's exception hierarchy.

Every error a user can cause (bad file, bad option, missing data) is a ``UticompileError``; the CLI
turns it into a one-line message and a non-zero exit. Anything else escaping is a bug.
"""

from __future__ import annotations


class UticompileError(Exception):
    """Base of every error caused by input the user gave.

    Messages name options as the Python API spells them (``rounds must be >= 0``), never as CLI
    flags: the library is also used from Python. ``option`` is the option at fault, when one is;
    its message then starts with that name, and the CLI shows the flag instead (``--rounds ...``).
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        assert option is None or message.startswith(option), (option, message)
        self.option = option


class ModelFormatError(UticompileError):
    """An ONNX file is malformed, inconsistent, or uses what the IR does not support."""


class DatasetError(UticompileError):
    """A dataset is unknown, missing, or its files are malformed."""


class ConfigError(UticompileError):
    """An option or configuration value is impossible."""


class MappingFormatError(UticompileError):
    """A mapped binary is truncated, corrupted, of another version, or hostile."""


class PassError(UticompileError):
    """A compiler pass cannot handle its input (a precondition the user's model breaks)."""


class OutputError(UticompileError):
    """An output cannot be written: no space, read-only, a parent that is a file, a bad path."""


class DamagedFileError(UticompileError):
    """A file a run directory (or a checkpoint) holds is unreadable or not what was written.

    ``path`` names it, so a resumable runner can remove it and redo the work that made it.
    """

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: damaged ({reason})")
        self.path = path


class TrainingDivergedError(UticompileError):
    """The training loss became NaN or infinite (learning rate or weight decay too large)."""


class InvariantError(Exception):
    """An internal postcondition failed: a bug in uticompile, not an error in the user's input.

    Deliberately not a ``UticompileError``: the CLI reports it as an internal error (exit 70),
    never as the user's mistake (exit 2).
    """


class CheckError(UticompileError):
    """``run --check``: the runtime and onnxruntime disagree, or the mapping is not the source's."""

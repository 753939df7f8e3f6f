"""``compare --plan``: the pruning runs of a comparison as independent command lines.

Every variant's run directory is named by the hash of its inputs (``prune_runs``), so a job that
prunes into that directory can run anywhere that shares the filesystem, in any order or all at
once, and a later ``compare`` with the same options finds the finished rounds and only maps, runs
and tabulates. Pruning is nearly all of a comparison's time; mapping and running stay in the
collecting ``compare``. With ``spatio_temporal``, one more job shrinks the model and then
u-Ticket-prunes the shrunk model (one line: the second step needs the first's output); both run
directories are named before anything runs (``spatio_temporal_dirs``).
"""

from __future__ import annotations

import shlex
from dataclasses import fields, replace
from pathlib import Path

from uticompile.compare.config import SWEEP_VARIANT, CompareConfig
from uticompile.compare.experiment import digest, load_inputs, prune_runs
from uticompile.compare.spatio_temporal import spatio_temporal_dirs
from uticompile.errors import ConfigError
from uticompile.passes.lottery import PruneConfig
from uticompile.shrink import ShrinkConfig

# The PruneConfig fields a comparison sets, with their ``uticompile prune`` flags; every other
# field keeps the prune command's default (checked in ``prune_argv``).
_FLAGS = {
    "rounds": "--rounds",
    "rate": "--rate",
    "epochs": "--epochs",
    "balance": "--balance",
    "pes": "--pes",
    "grouping": "--grouping",
    "cycle_rates": "--cycle-rates",
    "batch_size": "--batch-size",
    "seed": "--seed",
    "device": "--device",
}


# The ShrinkConfig fields a comparison sets, with their ``uticompile shrink`` flags (the dataset
# and the schedule are written out below); every other field keeps the shrink command's default.
_SHRINK_FLAGS = {
    "variance": "--variance",
    "max_drop": "--max-drop",
    "epochs": "--epochs",
    "max_stage_epochs": "--max-stage-epochs",
    "patience": "--patience",
    "validation_fraction": "--validation-fraction",
    "samples": "--samples",
    "run_samples": "--run-samples",
    "pes": "--pes",
    "grouping": "--grouping",
    "bits": "--bits",
    "placement": "--placement",
    "batch_size": "--batch-size",
    "seed": "--seed",
    "device": "--device",
}


def _launch(argv: list[str], nproc_per_node: int) -> list[str]:
    if nproc_per_node > 1:
        launcher = ["torchrun", "--standalone", f"--nproc-per-node={nproc_per_node}"]
        return [*launcher, "-m", "uticompile", *argv]
    return ["uticompile", *argv]


def _data_flags(config: CompareConfig) -> list[str]:
    argv = []
    if config.data_dir is not None:
        argv += ["--data-dir", config.data_dir]
    if config.train_limit is not None:
        argv += ["--train-limit", str(config.train_limit)]
    return argv


def _flag_value(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def prune_argv(
    model: Path, config: CompareConfig, pc: PruneConfig, run_dir: Path, nproc_per_node: int = 1
) -> list[str]:
    """The command that prunes ``pc`` into ``run_dir`` (resumable: ``--resume``)."""
    set_fields = {f.name: getattr(pc, f.name) for f in fields(pc) if f.name in _FLAGS}
    # An internal invariant: the flags below reproduce ``pc`` exactly.
    assert replace(PruneConfig(dataset=pc.dataset), **set_fields) == pc
    argv = ["prune", str(model), "--dataset", pc.dataset, *_data_flags(config)]
    for name, flag in _FLAGS.items():
        argv += [flag, _flag_value(set_fields[name])]
    argv += ["--run-dir", str(run_dir), "-o", str(run_dir.with_suffix(".onnx")), "--resume"]
    return _launch(argv, nproc_per_node)


def shrink_argv(
    model: Path, config: CompareConfig, sc: ShrinkConfig, run_dir: Path, nproc_per_node: int = 1
) -> list[str]:
    """The command that shrinks ``model`` with ``sc`` into ``run_dir`` and writes the kept model
    to ``run_dir`` + ``.onnx`` (resumable: ``--resume``)."""
    set_fields = {f.name: getattr(sc, f.name) for f in fields(sc) if f.name in _SHRINK_FLAGS}
    assert sc.variance is not None
    assert sc.timesteps is not None
    # An internal invariant: the flags below reproduce ``sc`` exactly.
    assert replace(ShrinkConfig(dataset=sc.dataset), timesteps=sc.timesteps, **set_fields) == sc
    argv = ["shrink", str(model), "--dataset", sc.dataset, *_data_flags(config)]
    argv += ["--timesteps", ",".join(map(str, sc.timesteps))]
    for name, flag in _SHRINK_FLAGS.items():
        argv += [flag, _flag_value(set_fields[name])]
    if config.hw_path is not None:
        argv += ["--hw", config.hw_path]  # the stage reports' costs depend on it
    argv += ["--run-dir", str(run_dir), "-o", str(run_dir.with_suffix(".onnx")), "--resume"]
    return _launch(argv, nproc_per_node)


def plan_compare(
    model_path: str | Path,
    config: CompareConfig,
    results_dir: str | Path,
    *,
    nproc_per_node: int = 1,
) -> list[str]:
    """One shell line per variant: the independent jobs of ``run_compare``'s pruning (the
    spatio-temporal variants' line runs shrink, then u-Ticket on its output)."""
    if config.match_layer_counts:
        raise ConfigError(
            "match_layer_counts needs the baseline's finished rounds before the other variants "
            "start, but a plan's jobs are independent: run compare itself, or plan without it",
            option="match_layer_counts",
        )
    model = Path(model_path)
    graph, _data, train_data = load_inputs(model, config)
    runs = prune_runs(graph, train_data, config, Path(results_dir))
    lines = [
        shlex.join(prune_argv(model, config, pc, run_dir, nproc_per_node))
        for pc, _identity, run_dir in runs.values()
    ]
    if config.spatio_temporal:
        shrink_dir, prune_dir = spatio_temporal_dirs(
            graph, train_data, config, Path(results_dir), digest
        )
        shrunk = shrink_dir.with_suffix(".onnx")
        pc = config.prune_config(SWEEP_VARIANT)
        shrink = shrink_argv(model, config, config.shrink_config(), shrink_dir, nproc_per_node)
        prune = prune_argv(shrunk, config, pc, prune_dir, nproc_per_node)
        lines.append(f"{shlex.join(shrink)} && {shlex.join(prune)}")
    return lines


def plan_script(lines: list[str]) -> str:
    """A bash script of the jobs: run it whole, or one line per task of a job array."""
    head = [
        "#!/usr/bin/env bash",
        f"# uticompile compare --plan: {len(lines)} independent pruning jobs, one per line.",
        "# Run them in any order, on any machines that share this filesystem; a job array runs",
        "# task I with:  grep -v '^#' THIS_SCRIPT | sed -n \"${I}p\" | bash",
        "# When all have finished, the same `uticompile compare` command without --plan collects",
        "# the finished run directories, maps, runs and writes results.json.",
    ]
    return "\n".join([*head, *lines]) + "\n"

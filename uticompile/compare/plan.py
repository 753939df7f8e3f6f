"""``compare --plan``: the pruning runs of a comparison as independent command lines.

Every variant's run directory is named by the hash of its inputs (``prune_runs``), so a job that
prunes into that directory can run anywhere that shares the filesystem, in any order or all at
once, and a later ``compare`` with the same options finds the finished rounds and only maps, runs
and tabulates. Pruning is nearly all of a comparison's time; mapping and running stay in the
collecting ``compare``.
"""

from __future__ import annotations

import shlex
from dataclasses import fields, replace
from pathlib import Path

from uticompile.compare.config import CompareConfig
from uticompile.compare.experiment import load_inputs, prune_runs
from uticompile.errors import ConfigError
from uticompile.passes.lottery import PruneConfig

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


def prune_argv(
    model: Path, config: CompareConfig, pc: PruneConfig, run_dir: Path, nproc_per_node: int = 1
) -> list[str]:
    """The command that prunes ``pc`` into ``run_dir`` (resumable: ``--resume``)."""
    set_fields = {f.name: getattr(pc, f.name) for f in fields(pc) if f.name in _FLAGS}
    # An internal invariant: the flags below reproduce ``pc`` exactly.
    assert replace(PruneConfig(dataset=pc.dataset), **set_fields) == pc
    argv = ["prune", str(model), "--dataset", pc.dataset]
    if config.data_dir is not None:
        argv += ["--data-dir", config.data_dir]
    if config.train_limit is not None:
        argv += ["--train-limit", str(config.train_limit)]
    for name, flag in _FLAGS.items():
        value = set_fields[name]
        argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    argv += ["--run-dir", str(run_dir), "-o", str(run_dir.with_suffix(".onnx")), "--resume"]
    if nproc_per_node > 1:
        launcher = ["torchrun", "--standalone", f"--nproc-per-node={nproc_per_node}"]
        return [*launcher, "-m", "uticompile", *argv]
    return ["uticompile", *argv]


def plan_compare(
    model_path: str | Path,
    config: CompareConfig,
    results_dir: str | Path,
    *,
    nproc_per_node: int = 1,
) -> list[str]:
    """One shell line per variant: the independent jobs of ``run_compare``'s pruning."""
    if config.match_layer_counts:
        raise ConfigError(
            "match_layer_counts needs the baseline's finished rounds before the other variants "
            "start, but a plan's jobs are independent: run compare itself, or plan without it",
            option="match_layer_counts",
        )
    model = Path(model_path)
    graph, _data, train_data = load_inputs(model, config)
    runs = prune_runs(graph, train_data, config, Path(results_dir))
    return [
        shlex.join(prune_argv(model, config, pc, run_dir, nproc_per_node))
        for pc, _identity, run_dir in runs.values()
    ]


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

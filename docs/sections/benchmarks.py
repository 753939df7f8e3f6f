"""The benchmarks in bench/: each prints its own ratios, measured side by side in one run."""

from __future__ import annotations

from pathlib import Path

from sections import Section

# Commands run in the section's work directory; $REPO is the repository root (docs/regen.py).
COMMANDS = ('python "$REPO/bench/run_all.py" > bench.txt',)


def _body(workdir: Path) -> str:
    text = (workdir / "bench.txt").read_text().strip()
    return "\n".join(
        [
            "Every benchmark runs its candidates side by side in one process (or alternated, best "
            "of several runs) and prints the ratio, so the ratios hold on a loaded machine where "
            "absolute times do not. What each compares is in its script's docstring.",
            "",
            "```text",
            text,
            "```",
        ]
    )


SECTION = Section(
    name="benchmarks",
    title="Benchmarks (`python bench/run_all.py`)",
    commands=COMMANDS,
    render=_body,
    cost="10-15 min",
)

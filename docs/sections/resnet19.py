"""ResNet-19 at width 0.25 on digits: the reference head against a BatchNorm in the head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sections import Section
from sections.paper import pct, table

EPOCHS = 5
MODELS = ("resnet19", "resnet19_bnhead")
# Both trainings run side by side; `wait -n` twice fails if either fails.
COMMANDS = (
    " & ".join(
        f"uticompile train --model {m} --width 0.25 --dataset digits --epochs {EPOCHS} "
        f"-o {m}.onnx --json > {m}.json"
        for m in MODELS
    )
    + " & wait -n && wait -n",
)


def _body(workdir: Path) -> str:
    runs: dict[str, dict[str, Any]] = {
        m: json.loads((workdir / f"{m}.json").read_text()) for m in MODELS
    }
    rows = []
    for m, d in runs.items():
        # the hidden head LIF is the last LIF (lif1..lifN; the JSON's keys are sorted as text)
        head = max(d["spike_sparsity"], key=lambda k: int(k.removeprefix("lif")))
        rows.append(
            [f"`{m}`", *(f"{h['loss']:.3f}" for h in d["history"]), pct(d["test_accuracy"]),
             pct(1 - d["spike_sparsity"][head])]
        )  # fmt: skip
    out = table(
        ["model", *(f"loss, epoch {i + 1}" for i in range(EPOCHS)), "test accuracy",
         "head LIF firing rate (test set)"],
        rows,
    )  # fmt: skip
    ref, bn = (runs[m]["test_accuracy"] for m in MODELS)
    out += [
        "",
        f"The reference ResNet-19 ends at {pct(ref)} (chance is 10%): its head is global "
        "average pool -> Linear 512x256 (N(0, 0.01) init) -> LIF -> Linear. Pooled spike rates "
        "below 1 times weights of 0.01 keep the hidden LIF's membrane far "
        "below its threshold of 1, so it does not fire (the last column): the classifier sees "
        "zeros, and the surrogate gradient that reaches the layers below passes through two "
        "0.01-scale matrices. `resnet19_bnhead` changes one thing: a BatchNorm between the "
        "hidden Linear and its LIF, which scales the membrane to unit variance in training, so "
        f"the head fires from the first step; it reaches {pct(bn)}. The BatchNorm folds into the "
        "Linear when mapping (`fold-batchnorm`), so the deployed network has the reference's "
        "layers and weight count. The reference stays selectable as `--model resnet19`. The "
        "paper trains it for 200-300 epochs per round on a GPU, where the head's weights have "
        "time to grow; 5 CPU epochs do not give them that time.",
    ]
    return "\n".join(out)


SECTION = Section(
    name="resnet19",
    title="ResNet-19 at width 0.25: a BatchNorm in the head makes it train",
    commands=COMMANDS,
    render=_body,
    cost="10-40 min",
)

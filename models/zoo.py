"""The SNN model zoo: VGG-16 and ResNet-19 as in the reference code, plus two small nets for CPUs.

Every builder takes the dataset's input shape and class count, a width multiplier (channels are
scaled and rounded, at least 1), T, the neuron, and a seed, and returns an initialized IR graph.
The first conv + BN form the direct encoder: they run once on the analog image and their output
is repeated for every timestep before the first LIF.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from uticompile.datasets import Dataset
from uticompile.errors import ConfigError
from uticompile.ir import NEURON_PRESETS, Graph, LIFParams
from uticompile.models.builder import GraphBuilder

VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"
)  # fmt: skip
VGG_SMALL_CFG: tuple[int | str, ...] = (16, "M", 32, 32, "M", 64, "M")
RESNET19_STAGES: tuple[tuple[int, int], ...] = ((128, 3), (256, 3), (512, 2))
RESNET_SMALL_STAGES: tuple[tuple[int, int], ...] = ((32, 1), (64, 1))


@dataclass(frozen=True)
class ModelSpec:
    """What a zoo builder needs besides the network's own structure."""

    input_shape: tuple[int, int, int]
    num_classes: int
    width: float = 1.0
    timesteps: int = 4
    neuron: LIFParams = field(default_factory=LIFParams)
    seed: int = 0

    def channels(self, c: int) -> int:
        return max(1, round(c * self.width))


def _builder(name: str, spec: ModelSpec) -> GraphBuilder:
    return GraphBuilder(
        name,
        spec.input_shape,
        spec.num_classes,
        timesteps=spec.timesteps,
        neuron=spec.neuron,
        seed=spec.seed,
    )


def _vgg(name: str, cfg: Sequence[int | str], spec: ModelSpec) -> Graph:
    b = _builder(name, spec)
    x = "input"
    first = True
    for item in cfg:
        if item == "M":
            x = b.maxpool(x)
            continue
        x = b.bn(b.conv(x, spec.channels(int(item))))
        if first:
            x = b.encode(x)
            first = False
        x = b.lif(x)
    return b.build(b.linear(b.flatten(x), spec.num_classes))


def _basic_block(b: GraphBuilder, x: str, out_ch: int, stride: int) -> str:
    y = b.lif(b.bn(b.conv(x, out_ch, stride=stride, bias=False)))
    y = b.bn(b.conv(y, out_ch, bias=False))
    shortcut = x
    if stride != 1 or b.shape[x][0] != out_ch:
        shortcut = b.bn(b.conv(x, out_ch, k=1, stride=stride, pad=0, bias=False))
    return b.lif(b.add(y, shortcut))


def _resnet(
    name: str,
    stem: int,
    stages: Sequence[tuple[int, int]],
    hidden: int | None,
    spec: ModelSpec,
    *,
    global_pool: bool = True,
    head_bn: bool = False,
) -> Graph:
    b = _builder(name, spec)
    x = b.lif(b.encode(b.bn(b.conv("input", spec.channels(stem), bias=False))))
    for channels, blocks in stages:
        for i in range(blocks):
            x = _basic_block(b, x, spec.channels(channels), 2 if i == 0 else 1)
    x = b.flatten(b.global_avgpool(x) if global_pool else x)
    if hidden is not None:
        h = b.linear(x, spec.channels(hidden))
        x = b.lif(b.bn(h) if head_bn else h)
    return b.build(b.linear(x, spec.num_classes))


def vgg16(spec: ModelSpec) -> Graph:
    """VGG-16: 13 conv3x3(+bias)-BN-LIF layers, 5 max-pools, one Linear classifier."""
    return _vgg("vgg16", VGG16_CFG, spec)


def resnet19(spec: ModelSpec) -> Graph:
    """ResNet-19: stem 64, stages of 3/3/2 basic blocks at 128/256/512, head 512-256-classes."""
    return _resnet("resnet19", 64, RESNET19_STAGES, 256, spec)


def resnet19_bnhead(spec: ModelSpec) -> Graph:
    """ResNet-19 with a BatchNorm between the hidden Linear and its LIF (the one change).

    With the reference head, the pooled spikes (rates ~0.2) times N(0, 0.01) weights give the
    hidden LIF a membrane near 0.03 against a threshold of 1: it never fires, the classifier sees
    zeros, and at small width the network stays at chance. The BatchNorm scales that membrane to
    unit variance in training, so the head fires from the first step; it folds into the Linear
    when mapping, so the deployed network has the reference's layers and weights count.
    """
    return _resnet("resnet19_bnhead", 64, RESNET19_STAGES, 256, spec, head_bn=True)


def vgg_small(spec: ModelSpec) -> Graph:
    """A plain VGG-style net (16, M, 32, 32, M, 64, M) that trains in seconds on a CPU."""
    return _vgg("vgg_small", VGG_SMALL_CFG, spec)


def resnet_small(spec: ModelSpec) -> Graph:
    """A small residual net: stem 16, one block at 32 and one at 64 (stride 2), classifier.

    It flattens the last feature map instead of averaging it: a global average over 8x8 divides
    the classifier's gradient by 64, and with the reference N(0, 0.01) init the convolutions then
    barely learn in the few epochs a CPU run has.
    """
    return _resnet("resnet_small", 16, RESNET_SMALL_STAGES, None, spec, global_pool=False)


ZOO: dict[str, Callable[[ModelSpec], Graph]] = {
    "vgg16": vgg16,
    "resnet19": resnet19,
    "resnet19_bnhead": resnet19_bnhead,
    "vgg_small": vgg_small,
    "resnet_small": resnet_small,
}


def build_model(name: str, spec: ModelSpec) -> Graph:
    """Build zoo model ``name``; unknown names and impossible specs raise ConfigError."""
    if name not in ZOO:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(ZOO)}")
    if spec.width <= 0:
        raise ConfigError(f"width multiplier must be positive, got {spec.width}")
    if spec.timesteps < 1:
        raise ConfigError(f"timesteps must be >= 1, got {spec.timesteps}")
    return ZOO[name](spec)


def build_for_dataset(
    name: str,
    data: Dataset,
    *,
    width: float = 1.0,
    timesteps: int = 4,
    neuron: str = "paper",
    seed: int = 0,
) -> Graph:
    """Zoo model ``name`` for ``data``'s input shape and classes, with LIF preset ``neuron``."""
    if neuron not in NEURON_PRESETS:
        raise ConfigError(
            f"neuron must be one of {', '.join(NEURON_PRESETS)}, got {neuron!r}", option="neuron"
        )
    spec = ModelSpec(
        data.input_shape, data.num_classes, width=width, timesteps=timesteps,
        neuron=NEURON_PRESETS[neuron], seed=seed,
    )  # fmt: skip
    return build_model(name, spec)

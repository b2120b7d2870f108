"""Model zoo: ResNet-18/50, MobileNet-V2 and a small CNN, written from scratch.

The ResNets and MobileNet-V2 use TorchVision's module names, so a TorchVision checkpoint's
``state_dict`` loads with ``model.load_state_dict(sd)`` (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``/``.1``, ``fc``; MobileNet-V2:
``features.N.conv...``, ``classifier.1``). TorchVision itself is not a dependency.

Options shared by every model (all keyword arguments of :func:`build_model`):

* ``num_classes`` (default 1000, SmallCNN: 10) and ``in_channels`` (default 3, SmallCNN: 1);
* ``width_mult``: every channel count is scaled (ResNet: ``round(64 * width_mult)`` base
  width; MobileNet-V2: TorchVision's ``_make_divisible`` rule);
* ``small_input``: a stem for 28x28/32x32 images: a 3x3 stride-1 first convolution and no
  max-pool (ResNet); a stride-1 first convolution (MobileNet-V2). Keys are unchanged.

Every forward is plain ``torch.fx``-traceable and uses only the operations the quantizer
supports (conv, batch-norm, ReLU/ReLU6, residual ``+``, max/average pooling, flatten,
dropout, linear).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "InvertedResidual",
    "MobileNetV2",
    "SmallCNN",
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "small_cnn",
    "MODELS",
    "build_model",
]


def _scaled(c: int, width_mult: float) -> int:
    return max(1, int(round(c * width_mult)))


class _ResidualBlock(nn.Module):
    """The end both ResNet blocks share: add the identity (through ``downsample`` when the
    block changes shape) to the main path, then ReLU."""

    relu: nn.Module
    downsample: nn.Module | None

    def _add_identity(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class BasicBlock(_ResidualBlock):
    """ResNet basic block: two 3x3 convolutions with a residual add."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self._add_identity(x, out)


class Bottleneck(_ResidualBlock):
    """ResNet-50 bottleneck (TorchVision v1.5: the stride sits on the 3x3 convolution)."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self._add_identity(x, out)


class ResNet(nn.Module):
    """ResNet with TorchVision's module names (``conv1``, ``bn1``, ``layer1..4``, ``fc``)."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        small_input: bool = False,
    ):
        super().__init__()
        base = _scaled(64, width_mult)
        self.inplanes = base
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, base, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, base * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base * 8 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: Any, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """TorchVision's channel rounding: nearest multiple of ``divisor``, never below 90% of v."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU(nn.Sequential):
    """Conv + BN + ReLU6 (TorchVision's ``Conv2dNormActivation``: keys ``.0`` and ``.1``)."""

    def __init__(self, inp: int, oup: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(oup),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNet-V2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection (+ residual)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden, kernel=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNet-V2 with TorchVision's module names (``features.N``, ``classifier.1``).

    ``last_channel`` overrides the 1280-channel final 1x1 convolution (tiny test models).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        small_input: bool = False,
        last_channel: int | None = None,
        dropout: float = 0.2,
    ):
        super().__init__()
        setting = [
            # t, c, n, s
            [1, 16, 1, 1],
            [6, 24, 2, 2],
            [6, 32, 3, 2],
            [6, 64, 4, 2],
            [6, 96, 3, 1],
            [6, 160, 3, 2],
            [6, 320, 1, 1],
        ]
        input_channel = _make_divisible(32 * width_mult)
        if last_channel is None:
            last_channel = _make_divisible(1280 * max(1.0, width_mult))
        self.last_channel = last_channel
        features: list[nn.Module] = [
            ConvBNReLU(in_channels, input_channel, stride=1 if small_input else 2)
        ]
        for t, c, n, s in setting:
            out = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(input_channel, out, s if i == 0 else 1, t))
                input_channel = out
        features.append(ConvBNReLU(input_channel, last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


class SmallCNN(nn.Module):
    """Quick-run CNN: 4x (3x3 conv + BN + ReLU) with a 2x2 max-pool after the 2nd and 4th, FC.

    For 28x28 inputs the FC sees a ``2*width x 7 x 7`` map (``input_size`` sets it).
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        width_mult: float = 1.0,
        small_input: bool = True,
        input_size: int = 28,
    ):
        super().__init__()
        w = _scaled(32, width_mult)
        self.conv1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.conv2 = nn.Conv2d(w, w, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w)
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(w, 2 * w, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(2 * w)
        self.conv4 = nn.Conv2d(2 * w, 2 * w, 3, 1, 1, bias=False)
        self.bn4 = nn.BatchNorm2d(2 * w)
        self.pool2 = nn.MaxPool2d(2)
        self.relu = nn.ReLU(inplace=True)
        side = input_size // 4
        self.fc = nn.Linear(2 * w * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.pool1(self.relu(self.bn2(self.conv2(x))))
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.pool2(self.relu(self.bn4(self.conv4(x))))
        return self.fc(torch.flatten(x, 1))


def resnet18(**kw: Any) -> ResNet:
    """ResNet-18 (BasicBlock x [2, 2, 2, 2])."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kw)


def resnet50(**kw: Any) -> ResNet:
    """ResNet-50 (Bottleneck x [3, 4, 6, 3])."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kw)


def mobilenet_v2(**kw: Any) -> MobileNetV2:
    """MobileNet-V2 (TorchVision layout)."""
    return MobileNetV2(**kw)


def small_cnn(**kw: Any) -> SmallCNN:
    """The 4-conv quick-run CNN."""
    return SmallCNN(**kw)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "small_cnn": small_cnn,
}


def build_model(name: str, **kw: Any) -> nn.Module:
    """Build a model by name (``resnet18``, ``resnet50``, ``mobilenet_v2``, ``small_cnn``).

    Names are case-insensitive and ``-`` is accepted for ``_`` (``MobileNet-V2``). Keyword
    arguments: ``num_classes``, ``in_channels``, ``width_mult``, ``small_input`` (and
    ``last_channel``/``dropout`` for MobileNet-V2, ``input_size`` for SmallCNN).
    """
    key = name.lower().replace("-", "_")
    aliases = {"mobilenetv2": "mobilenet_v2", "smallcnn": "small_cnn", "cnn": "small_cnn"}
    key = aliases.get(key, key)
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    try:
        return MODELS[key](**kw)
    except TypeError as e:
        raise ValueError(f"model {key!r}: bad options {sorted(kw)}: {e}") from e


def parse_model_arg(value: str) -> bool | int | float | str:
    """Value of a ``--model-arg KEY=VALUE`` option: bool, int, float or the string itself."""
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    return value

"""MobileNetV2 (width 1.0) in torchvision's layout, written here (torchvision is not installable
beside our torch): its ImageNet state_dict loads with strict=True.

features.0 is conv 3x3/2-BN-ReLU6; features.1..17 are InvertedResidual blocks whose ``conv``
Sequential is [expand 1x1 conv-BN-ReLU6 (absent when t == 1)], depthwise 3x3 conv-BN-ReLU6,
project 1x1 conv, BN; features.18 is conv 1x1 (320 -> 1280)-BN-ReLU6; then the mean over H, W
and classifier = Dropout(0.2), Linear(1280, classes). Any input side that is a multiple of 32
works (adaptive pooling).
"""

from __future__ import annotations

from torch import Tensor, nn

# (expansion t, output channels c, blocks n, stride of the first block s), as in the paper
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))


class ConvBNReLU6(nn.Sequential):
    """[0] conv kxk (padding (k-1)//2, no bias), [1] BN, [2] ReLU6."""

    def __init__(self, inp: int, out: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand (1x1, x t), depthwise 3x3 (stride), project (1x1, linear); + x when the shape
    is kept (stride 1 and inp == out)."""

    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNReLU6(inp, hidden, kernel=1)]
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """3.5 M weights; 0.30 G MACs at 224x224. Initialised as torchvision does (convs
    Kaiming-normal fan_out, BN 1/0, Linear N(0, 0.01)); load real weights over it."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU6(3, 32, stride=2)]
        inp = 32
        for t, c, n, s in SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        layers.append(ConvBNReLU6(inp, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    return MobileNetV2(num_classes)

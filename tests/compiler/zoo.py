"""Small, structurally faithful copies of the network families users bring: torchvision-style
classifiers (ResNet, ResNeXt, EfficientNet, MobileNetV3, DenseNet, VGG), a U-Net and a 1-D
keyword spotter. Our own definitions with few channels and small inputs; each block keeps the
layer order, kinds and wiring of the original (BatchNorm after each conv, folded in eval mode)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn


def cbr(ic: int, oc: int, k: int = 3, stride: int = 1, groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    """conv (no bias, 'same' padding for odd k) -> BatchNorm -> activation."""
    layers = [nn.Conv2d(ic, oc, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(oc)]
    return nn.Sequential(*layers, *([act()] if act else []))


# ---- ResNet / ResNeXt ------------------------------------------------------------------------

class Basic(nn.Module):
    """torchvision BasicBlock: relu(bn(conv3(relu(bn(conv3 /s(x))))) + shortcut(x))."""

    def __init__(self, ic: int, oc: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(cbr(ic, oc, 3, stride), cbr(oc, oc, 3, act=None))
        self.down = (cbr(ic, oc, 1, stride, act=None) if stride > 1 or ic != oc
                     else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.down(x))


class Bottleneck(nn.Module):
    """torchvision Bottleneck (ResNeXt when groups > 1): 1x1 -> grouped 3x3 /s -> 1x1 expand."""

    def __init__(self, ic: int, width: int, oc: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(cbr(ic, width, 1), cbr(width, width, 3, stride, groups),
                                  cbr(width, oc, 1, act=None))
        self.down = (cbr(ic, oc, 1, stride, act=None) if stride > 1 or ic != oc
                     else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.down(x))


def resnet(classes: int = 10) -> nn.Module:
    """ResNet-18 shape at 1/8 width: 7x7 /2 stem, 3x3 /2 max pool, 4 stages of 2 basic blocks."""
    w = (8, 16, 24, 32)
    stages = [nn.Sequential(Basic(a, b, 1 if i == 0 else 2), Basic(b, b))
              for i, (a, b) in enumerate(zip((8, *w[:-1]), w, strict=True))]
    return nn.Sequential(cbr(3, 8, 7, 2), nn.MaxPool2d(3, 2, 1), *stages,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w[-1], classes))


def resnext(classes: int = 10) -> nn.Module:
    """ResNeXt-50 (32x4d) shape in miniature: bottlenecks with 4 groups of 4 channels."""
    return nn.Sequential(
        cbr(3, 16, 3, 1), nn.MaxPool2d(3, 2, 1),
        Bottleneck(16, 16, 32, 1, groups=4), Bottleneck(32, 16, 32, 1, groups=4),
        Bottleneck(32, 32, 64, 2, groups=4), Bottleneck(64, 32, 64, 1, groups=8),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(64, classes))


# ---- EfficientNet / MobileNetV3 --------------------------------------------------------------

class SqueezeExcite(nn.Module):
    """torchvision SqueezeExcitation: x * gate(fc2(act(fc1(avgpool(x))))), fcs as 1x1 convs."""

    def __init__(self, c: int, squeeze: int, act: type[nn.Module], gate: type[nn.Module]):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)
        self.act, self.gate = act(), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MBConv: 1x1 expand -> depthwise k x k /s -> squeeze-excite -> 1x1 project (+ x)."""

    def __init__(self, ic: int, expand: int, oc: int, k: int, stride: int,
                 act: type[nn.Module], se: tuple | None) -> None:
        super().__init__()
        layers = [cbr(ic, expand, 1, act=act)] if expand != ic else []
        layers.append(cbr(expand, expand, k, stride, groups=expand, act=act))
        if se:
            layers.append(SqueezeExcite(expand, *se))
        layers.append(cbr(expand, oc, 1, act=None))
        self.body, self.residual = nn.Sequential(*layers), stride == 1 and ic == oc

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def efficientnet(classes: int = 10) -> nn.Module:
    """EfficientNet-B0 shape: SiLU everywhere, SE (SiLU, sigmoid) at 1/4 of the block input."""
    def mb(ic, e, oc, k, s):
        return InvertedResidual(ic, ic * e, oc, k, s, nn.SiLU,
                                (max(2, ic // 4), nn.SiLU, nn.Sigmoid))
    return nn.Sequential(
        cbr(3, 8, 3, 2, act=nn.SiLU), mb(8, 1, 8, 3, 1), mb(8, 4, 12, 3, 2), mb(12, 4, 12, 5, 1),
        mb(12, 4, 16, 5, 2), cbr(16, 48, 1, act=nn.SiLU),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(48, classes))


def mobilenet_v3(classes: int = 10) -> nn.Module:
    """MobileNetV3-Small shape: hardswish, SE with ReLU and hardsigmoid (channels to /4 rounded
    to 8), a hardswish Linear head."""
    def ir(ic, e, oc, k, s, act, se):
        return InvertedResidual(ic, e, oc, k, s, act,
                                (max(8, e // 4), nn.ReLU, nn.Hardsigmoid) if se else None)
    return nn.Sequential(
        cbr(3, 8, 3, 2, act=nn.Hardswish), ir(8, 8, 8, 3, 2, nn.ReLU, True),
        ir(8, 24, 12, 3, 2, nn.ReLU, False), ir(12, 32, 12, 3, 1, nn.ReLU, False),
        ir(12, 32, 16, 5, 1, nn.Hardswish, True), ir(16, 48, 16, 5, 1, nn.Hardswish, True),
        cbr(16, 48, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(48, 64), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(64, classes))


# ---- DenseNet / VGG --------------------------------------------------------------------------

class DenseLayer(nn.Module):
    """A dense layer: 1x1 bottleneck -> 3x3 growth, concatenated onto its input. ``pre``: the
    torchvision order (BN-ReLU-conv, the BN reading the concatenation); else conv-BN-ReLU."""

    def __init__(self, ic: int, growth: int, pre: bool) -> None:
        super().__init__()
        if pre:
            self.body = nn.Sequential(
                nn.BatchNorm2d(ic), nn.ReLU(), nn.Conv2d(ic, 2 * growth, 1, bias=False),
                nn.BatchNorm2d(2 * growth), nn.ReLU(), nn.Conv2d(2 * growth, growth, 3, 1, 1,
                                                                 bias=False))
        else:
            self.body = nn.Sequential(cbr(ic, 2 * growth, 1), cbr(2 * growth, growth, 3))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


def densenet(classes: int = 10, pre: bool = False) -> nn.Module:
    """DenseNet-121 shape: stem, dense blocks (growth 4), transitions 1x1 conv -> avg pool 2."""
    def block(ic, n):
        return [DenseLayer(ic + 4 * i, 4, pre) for i in range(n)]

    def transition(ic, oc):
        if pre:
            return [nn.BatchNorm2d(ic), nn.ReLU(), nn.Conv2d(ic, oc, 1, bias=False),
                    nn.AvgPool2d(2, 2)]
        return [cbr(ic, oc, 1), nn.AvgPool2d(2, 2)]
    return nn.Sequential(
        cbr(3, 8, 3, 1), nn.MaxPool2d(3, 2, 1), *block(8, 3), *transition(20, 10),
        *block(10, 3), *transition(22, 12), *block(12, 2), nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(), nn.Linear(20, classes))


def vgg(classes: int = 10) -> nn.Module:
    """VGG-11-BN shape: conv-BN-ReLU stacks and 2x2 max pools, then a 3-Linear classifier with
    dropout, after an adaptive average pool to 2x2."""
    cfg, layers, ic = (8, "M", 16, "M", 24, 24, "M", 32, 32, "M"), [], 3
    for c in cfg:
        layers += [nn.MaxPool2d(2, 2)] if c == "M" else [cbr(ic, c)]
        ic = ic if c == "M" else c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                         nn.Linear(32, 64), nn.ReLU(), nn.Dropout(),
                         nn.Linear(64, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, classes))


# ---- U-Net -----------------------------------------------------------------------------------

class UNet(nn.Module):
    """Two-level U-Net: double convs, max-pool down, ``mode`` x2 upsample, skip concatenation,
    1x1 head to per-pixel class scores."""

    def __init__(self, classes: int = 3, mode: str = "nearest") -> None:
        super().__init__()
        def double(ic, oc):
            return nn.Sequential(cbr(ic, oc), cbr(oc, oc))
        self.enc1, self.enc2, self.mid = double(3, 8), double(8, 16), double(16, 16)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.dec2, self.dec1 = double(32, 8), double(16, 8)
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up(m), e2], 1))
        return self.head(self.dec1(torch.cat([self.up(d2), e1], 1)))


# ---- keyword spotting ------------------------------------------------------------------------

def cbr1(ic: int, oc: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(ic, oc, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm1d(oc), nn.ReLU())


def kws(classes: int = 12, mfcc: int = 40) -> nn.Module:
    """A 1-D DS-CNN keyword spotter on (mfcc, frames): conv /2, depthwise-separable blocks
    (depthwise k=3 then pointwise), max pool, global average pool, Linear."""
    def ds(ic, oc, stride):
        return [cbr1(ic, ic, 3, stride, groups=ic), cbr1(ic, oc, 1)]
    return nn.Sequential(cbr1(mfcc, 32, 5, 2), *ds(32, 32, 1), *ds(32, 48, 2), nn.MaxPool1d(2),
                         *ds(48, 48, 1), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         nn.Linear(48, classes))


# name -> (factory, per-sample input shape in the model's layout)
ZOO = {
    "resnet": (resnet, (3, 32, 32)),
    "resnext": (resnext, (3, 32, 32)),
    "efficientnet": (efficientnet, (3, 32, 32)),
    "mobilenet_v3": (mobilenet_v3, (3, 32, 32)),
    "densenet": (densenet, (3, 32, 32)),
    "vgg": (vgg, (3, 32, 32)),
    "unet": (UNet, (3, 16, 16)),
    "unet_bilinear": (partial(UNet, mode="bilinear"), (3, 16, 16)),
    "kws": (kws, (40, 49)),
    # torchvision's DenseNet order: BN-ReLU-conv, each BN reading a concatenation
    "densenet_preact": (partial(densenet, pre=True), (3, 32, 32)),
}


def build(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """The seeded model ``name`` in eval mode with non-trivial BatchNorm statistics, and 16
    seeded calibration inputs."""
    make, shape = ZOO[name]
    torch.manual_seed(seed)
    module = make()
    warm_batch_norm(module, shape)
    return module, torch.randn(16, *shape)


def warm_batch_norm(module: nn.Module, shape: tuple[int, ...]) -> None:
    """Random BN affine parameters and running statistics from a train-mode pass, then eval."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.momentum = None  # running statistics = the one batch's
        module.train()
        module(torch.randn(16, *shape))
    module.eval()

"""The vision zoo's pure-PyTorch CNN zoos beyond torchvision and timm: lukemelas'
``efficientnet_pytorch``, ``geffnet`` (gen-efficientnet) and osmr's ``pytorchcv`` (imgclsmob),
the packages users reach for for "other ResNets, EfficientNets".

Each table maps a row's name (without its ``ep_``/``gef_``/``cv_`` prefix) to (builder, input
shape per sample); benchmarks.vision_zoo joins them into MODELS. pytorchcv's networks end in an
average pool sized for 224x224 inputs (a 7x7 map; SelecSLS's 4x4, Xception's 10x10); on the
zoo's small inputs that pool is the global average it stands for (``_global_final_pool``).
pytorchcv imports torchvision at its package init (``torchvision.ops`` for one video model), so
it is built under benchmarks.vision_zoo's ``real_torchvision``.
"""

from __future__ import annotations

from collections.abc import Callable

IMG = (3, 64, 64)
CIFAR = (3, 32, 32)


def _efficientnet_pytorch(name: str) -> Callable[[], object]:
    """``EfficientNet.from_name(name, num_classes=10, image_size=64)``: its static same-padding
    convs sized for the zoo's 64x64 input, its default autograd swish (MemoryEfficientSwish;
    export traces its forward, so the plain ``set_swish(memory_efficient=False)`` is no other
    case: run once, bit-exact)."""
    def build():
        from efficientnet_pytorch import EfficientNet

        return EfficientNet.from_name(name, num_classes=10, image_size=IMG[1])
    return build


def _geffnet(name: str) -> Callable[[], object]:
    """``geffnet.create_model(name, num_classes=10)`` (its default layers: the autograd swish)."""
    def build():
        import geffnet

        return geffnet.create_model(name, num_classes=10)
    return build


def _global_final_pool(model):
    """``model`` with each stride-1 average pool named ``final_pool`` or of a kernel of 7 or
    more (the last map of a 224x224 input: 7x7, SelecSLS's 4x4, Xception's 10x10) a global
    average pool: what it computes there, on any input size."""
    import torch

    for parent in list(model.modules()):
        for key, child in list(parent.named_children()):
            if (type(child) is torch.nn.AvgPool2d and child.stride in (1, (1, 1))
                    and (key == "final_pool"
                         or min(torch.nn.modules.utils._pair(child.kernel_size)) >= 7)):
                setattr(parent, key, torch.nn.AdaptiveAvgPool2d(1))
    return model


def _cv(name: str, **kw) -> Callable[[], object]:
    """``pytorchcv.model_provider.get_model(name, pretrained=False, **kw)``, its 224-sized
    final pool global."""
    def build():
        from benchmarks.vision_zoo import real_torchvision

        with real_torchvision():
            from pytorchcv.model_provider import get_model

            return _global_final_pool(get_model(name, pretrained=False, **kw))
    return build


EFFICIENTNET_PYTORCH: dict[str, tuple[Callable[[], object], tuple[int, ...]]] = {
    "efficientnet_b0": (_efficientnet_pytorch("efficientnet-b0"), IMG),
    "efficientnet_b1": (_efficientnet_pytorch("efficientnet-b1"), IMG),
    "efficientnet_b3": (_efficientnet_pytorch("efficientnet-b3"), IMG),
}

GEFFNET: dict[str, tuple[Callable[[], object], tuple[int, ...]]] = {
    name: (_geffnet(name), IMG) for name in (
        "efficientnet_b0", "mixnet_s", "mobilenetv3_large_100", "fbnetc_100", "spnasnet_100",
        "tf_efficientnet_b0", "mnasnet_a1")
}

# pytorchcv: families timm and torchvision lack (pre-activation, Dirac, shared, dilated,
# dual-path, BagNet, FishNet, ESPNetv2, VoVNet, HarDNet, IBN, AirNet, BAM/CBAM, residual
# attention, SK, self-calibrated, octave, iSQRT-COV, condensed, IGCV3, SqueezeNext, ShuffleNet
# v1, MENet, PeleeNet, BN-Inception, ...), CIFAR networks and light segmentation networks
CV_IMAGENET = (
    "preresnet18", "seresnet18", "diracnet18v2", "sharesnet18", "drnc26", "dpn68", "darknet53",
    "bagnet9", "dla34", "fishnet99", "espnetv2_wd2", "hrnet_w18_small_v1", "vovnet27s",
    "selecsls42b", "hardnet39ds", "ibn_resnet50", "airnet50_1x64d_r2", "bam_resnet18",
    "cbam_resnet18", "resattnet56", "sknet50", "fbnet_cb", "proxylessnas_mobile", "igcv3_wd4",
    "sqnxt23_w1", "shufflenet_g1_w1", "menet108_8x1_g3", "condensenet74_c4_g4", "peleenet",
    "bninception", "xception", "octresnet10_ad2", "isqrtcovresnet18")
CV_CIFAR = ("pyramidnet110_a48_cifar10", "wrn16_10_cifar10", "diaresnet20_cifar10",
            "wrn20_10_1bit_cifar10")
CV_SEGMENTATION = ("fastscnn_cityscapes", "cgnet_cityscapes", "dabnet_cityscapes",
                   "lednet_cityscapes", "enet_cityscapes", "fpenet_cityscapes",
                   "bisenet_resnet18_celebamaskhq")
PYTORCHCV: dict[str, tuple[Callable[[], object], tuple[int, ...]]] = {
    **{n: (_cv(n, num_classes=10), IMG) for n in CV_IMAGENET},
    # its self-calibration pools a 2x2 average of the last stage's map: 4x4 at least
    "scnet50": (_cv("scnet50", num_classes=10), (3, 128, 128)),
    **{n: (_cv(n), CIFAR) for n in CV_CIFAR},
    **{n: (_cv(n, in_size=IMG[1:]), IMG) for n in CV_SEGMENTATION},
}

"""Image ops over a stack of images folded into the batch (qasic.quant.image_stacks): DepthPro's
patch embedding of the overlapping patches it cuts from each image (patches * batch), SAM 2
Hiera's query pooling of each attention window (batch * windows), EfficientLoFTR's padded convs
over the two images of a pair (batch * 2), diffusers' FIR filter of each channel as a one-channel
image (batch * C, upfirdn2d). Each runs as one op: over the tall image of the stack when no
window can straddle two images, else over the images side by side along the channels (each
padded on its own)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant.torch_export import capture
from tests.quant.transformer_nets import check


class _Patches(nn.Module):
    """DepthPro's shape: overlapping 8x8 patches of a 16x16 image (stride 4: 9 of them) stacked
    patch-major ((9 * batch, 3, 8, 8): the batch is the inner factor), a 4x4 stride-4 conv
    embedding each patch, the patches' tokens back per sample and a linear."""

    def __init__(self):
        super().__init__()
        self.embed, self.out = nn.Conv2d(3, 8, 4, 4), nn.Linear(9 * 8 * 4, 16)

    def forward(self, x):
        n, c = x.shape[:2]
        p = F.unfold(x, kernel_size=8, stride=4).permute(2, 0, 1).reshape(-1, c, 8, 8)
        y = self.embed(p)  # (9 * n, 8, 2, 2)
        return self.out(y.reshape(9, n, -1).permute(1, 0, 2).reshape(n, -1))


class _Windows(nn.Module):
    """SAM 2 Hiera's shape: a conv stem to an 8x8 map, channels last, 4x4 windows moved into
    the batch (batch * 4, 4, 4, C), each window's queries max pooled (``pool``) in torch's
    (N, C, H, W) and back to channels last, a linear over the tokens."""

    def __init__(self, pool):
        super().__init__()
        self.stem, self.pool, self.out = nn.Conv2d(3, 8, 2, 2), pool, nn.Linear(8, 8)

    def forward(self, x):
        y = self.stem(x).permute(0, 2, 3, 1)  # (n, 8, 8, 8)
        n, c = y.shape[0], y.shape[3]
        y = y.view(n, 2, 4, 2, 4, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, 4, c)
        y = self.pool(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.out(y.reshape(n, -1, c))


def _image(size: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(2, 3, size, size)).astype(np.float32)


def _run(model: nn.Module, x: np.ndarray, tall: tuple[int, ...]) -> None:
    import qasic

    torch.manual_seed(0)
    graph, _, cosine = check(model.eval(), x)
    stacked = [n for n in graph.nodes if n.name.endswith(".tall")]
    assert [graph.shapes[n.output] for n in stacked] == [tall]  # one op over the tall image
    assert cosine > 0.999, cosine
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_a_conv_over_patches_folded_into_the_batch_runs_bit_exact():
    torch.manual_seed(0)
    _run(_Patches(), _image(16), (9 * 2, 2, 8))  # 9 patches of a 2x2 map of 8 channels


def test_a_max_pool_over_windows_folded_into_the_batch_runs_bit_exact():
    torch.manual_seed(0)
    _run(_Windows(nn.MaxPool2d(2)), _image(16), (4 * 2, 2, 8))  # 4 windows pooled to 2x2 each


class _Pair(nn.Module):
    """An image pair's backbone (EfficientLoFTR, stereo, optical flow): a stem to a 8x8 map,
    channels last, its top and bottom halves as the two images of a pair in the batch
    (batch * 2, C, 4, 8), a padded 3x3 conv (stride ``stride``) over each image, a batch norm
    (``norm``: RepVGG's conv-bn), a linear."""

    def __init__(self, stride: int = 1, groups: int = 1, norm: bool = False):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 2, 2)
        self.conv = nn.Conv2d(8, 8, 3, stride, padding=1, groups=groups)
        self.norm = nn.BatchNorm2d(8) if norm else nn.Identity()
        if norm:
            self.norm.running_mean.uniform_(-1, 1)
            self.norm.running_var.uniform_(0.5, 2)
            self.norm.weight.data.uniform_(0.5, 2)
        self.out = nn.Linear(8, 8)

    def forward(self, x):
        y = self.stem(x).permute(0, 2, 3, 1)  # (n, 8, 8, 8)
        n, c = y.shape[0], y.shape[3]
        y = y.reshape(n * 2, 4, 8, c).permute(0, 3, 1, 2)  # the pair in the batch
        y = self.norm(self.conv(y)).permute(0, 2, 3, 1)
        return self.out(y.reshape(n, -1, c))


class _Fir(nn.Module):
    """diffusers' FIR downsampling (upfirdn2d_native) after a sequence op: each channel of the
    (n, C, 8, 8) map a one-channel image in the batch (n * C, 1, 10, 10) after a zero pad, a
    fixed 4x4 filter, every other pixel kept; then a linear over the channels."""

    def __init__(self):
        super().__init__()
        self.stem, self.out = nn.Conv2d(3, 8, 2, 2), nn.Linear(8, 8)
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("fir", (torch.outer(k, k) / 64).view(1, 1, 4, 4))

    def forward(self, x):
        y = self.stem(x).permute(0, 2, 3, 1)  # channels last: a sequence model
        y = self.out(y).permute(0, 3, 1, 2)  # (n, 8, 8, 8)
        n, c, h, w = y.shape
        t = F.pad(y.reshape(-1, h, w, 1), [0, 0, 1, 1, 1, 1])  # (n * c, 10, 10, 1)
        t = F.conv2d(t.permute(0, 3, 1, 2).reshape(-1, 1, h + 2, w + 2), self.fir)
        t = t.reshape(-1, 1, h - 1, w - 1).permute(0, 2, 3, 1)[:, ::2, ::2, :]
        return self.out(t.reshape(n, c, h // 2, w // 2).permute(0, 2, 3, 1))


def _side(model: nn.Module, x: np.ndarray, stacked: tuple[int, ...]) -> None:
    """Runs bit-exact, the op over the images side by side: one node of shape ``stacked``."""
    import qasic

    torch.manual_seed(0)
    graph, _, cosine = check(model.eval(), x)
    assert not [n for n in graph.nodes if n.name.endswith(".tall")]
    side = [n for n in graph.nodes if n.name.endswith(".stacked")]
    assert [graph.shapes[n.output] for n in side] == [stacked]
    assert cosine > 0.999, cosine
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.998, record["cosine"]


def test_a_padded_max_pool_over_windows_runs_per_window_bit_exact():
    """A 3x3 stride-2 max pool padded by 1 over each 4x4 window: (2, 2, 4 * 8) side by side."""
    torch.manual_seed(0)
    _side(_Windows(nn.MaxPool2d(3, 2, padding=1)), _image(16), (2, 2, 4 * 8))


@pytest.mark.parametrize(("stride", "groups", "norm", "stacked"), [
    (1, 1, False, (4, 8, 2 * 8)), (2, 1, False, (2, 4, 2 * 8)), (1, 2, False, (4, 8, 2 * 8)),
    (2, 1, True, (2, 4, 2 * 8))])
def test_a_padded_conv_over_an_image_pair_pads_each_image_bit_exact(stride, groups, norm,
                                                                    stacked):
    """Each image padded on its own: the conv of g groups is one of 2 * g groups over the two
    images side by side, its weight repeated (the float graph equals torch: no window reads
    the other image); a batch norm after it folds into it, its statistics repeated too."""
    torch.manual_seed(0)
    model = _Pair(stride, groups, norm)
    _side(model, _image(16), stacked)
    if norm:  # folded: no node of its own
        graph = capture(model.eval(), torch.from_numpy(_image(16)))
        assert not [n for n in graph.nodes if ".norm" in n.name or n.name.endswith("norm")]


def test_a_side_by_side_conv_repeats_its_weight_per_image():
    torch.manual_seed(0)
    model = _Pair().eval()
    graph = capture(model, torch.from_numpy(_image(16)))
    conv = next(n for n in graph.nodes if n.name.endswith(".stacked"))
    w = model.conv.weight.detach().numpy().transpose(0, 2, 3, 1)
    assert conv.attrs["groups"] == 2 and conv.attrs["padding"] == (1, 1, 1, 1)
    np.testing.assert_array_equal(conv.params["weight"], np.concatenate([w, w]))


def test_a_fir_filter_of_channels_folded_into_the_batch_is_a_depthwise_conv_bit_exact():
    """upfirdn2d's conv of (n * C, 1, 10, 10): a depthwise conv of the (8, 8, C) map padded
    by 1 (C groups of the one 4x4 filter) to (7, 7, C)."""
    torch.manual_seed(0)
    _side(_Fir(), _image(16), (7, 7, 8))

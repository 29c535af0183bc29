"""Image ops over a stack of images folded into the batch (qasic.quant.image_stacks): DepthPro's
patch embedding of the overlapping patches it cuts from each image (patches * batch), SAM 2
Hiera's query pooling of each attention window (batch * windows). Each runs as one op over the
tall image of the stack; a window that could straddle two images is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.errors import UnsupportedOpError
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


def test_a_window_that_could_straddle_two_images_is_refused():
    torch.manual_seed(0)
    model = _Windows(nn.MaxPool2d(3, 2, padding=1)).eval()
    with pytest.raises(UnsupportedOpError, match=r"maxpool2d over a stack of 4 images of 4x4 "
                                                 r"per sample .* kernel 3x3, stride 2x2"):
        capture(model, torch.from_numpy(_image(16)))

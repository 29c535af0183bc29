"""Video clips (batch, frames, C, H, W): captured in sequence mode; the patch embeddings (a Conv3d
of tubelets, or a Conv2d of the frames folded into the batch) are one conv2d over the stacked
frames (qasic.quant.video; frames in the batch: qasic.quant.image_stacks), bit-exact on the
simulator."""

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float
from tests.quant.opcheck import torch_out


class Tubelets(nn.Module):
    """VideoMAE's patch embedding: (B, T, C, H, W) permuted to (B, C, T, H, W), a Conv3d of
    kernel = stride (kt, 4, 4), flattened to patches and a linear."""

    def __init__(self, kt: int = 2, kernel: tuple = (4, 4), stride: tuple = (4, 4)) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 16, (kt, *kernel), (kt, *stride))
        self.fc = nn.Linear(16, 8)

    def forward(self, x):
        return self.fc(self.conv(x.permute(0, 2, 1, 3, 4)).flatten(2).transpose(1, 2))


class FramesInBatch(nn.Module):
    """TimeSformer's: the frames folded into the batch, a Conv2d of 4x4 patches (padded along
    the width), the patches of all frames one sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 4, (4, 2), padding=(0, 1))
        self.fc = nn.Linear(16, 8)

    def forward(self, x):
        b, t, c, h, w = x.shape
        y = self.conv(x.reshape(b * t, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc(y.reshape(b, -1, 16))


def float_matches(module, x: np.ndarray):
    """The capture of ``module``, its float executor checked against torch (a sequence model's
    output is in torch's layout)."""
    graph = capture(module.eval(), torch.from_numpy(x[:1]))
    got = run_float(graph, graph.to_internal(x))
    np.testing.assert_allclose(got, torch_out(module, x), rtol=1e-4, atol=1e-4)
    return graph


def _clip(frames: int = 4):
    return np.random.default_rng(0).normal(size=(2, frames, 3, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("kt", [1, 2])
def test_tubelets_are_one_conv2d_over_the_stacked_frames(kt):
    torch.manual_seed(0)
    g = float_matches(Tubelets(kt), _clip())
    (conv,) = [n for n in g.nodes if n.op == "conv2d"]
    # (T/kt H, W, kt C) in, kernel (4, 4) and stride (4, 4); (T/kt * 2, 2, 16) out
    assert g.shapes[conv.inputs[0]] == (4 // kt * 8, 8, kt * 3)
    assert conv.params["weight"].shape == (16, 4, 4, kt * 3)
    assert g.shapes[conv.output] == (4 // kt * 2, 2, 16)


def test_frames_in_the_batch_are_one_conv2d():
    torch.manual_seed(0)
    g = float_matches(FramesInBatch(), _clip())
    (conv,) = [n for n in g.nodes if n.op == "conv2d"]
    assert g.shapes[conv.inputs[0]] == (32, 8, 3) and conv.attrs["padding"] == (0, 1, 0, 1)


@pytest.mark.parametrize("model", [Tubelets(2), FramesInBatch()], ids=["tubelets", "frames"])
def test_video_patch_embeddings_run_bit_exact(model):
    torch.manual_seed(0)
    x = _clip()
    r = qasic.evaluate(model.eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def test_windows_across_frames_are_time_taps_of_frame_convs():
    """Once refused ('only windows within a frame'): quant.conv3d_factored makes the Conv3d the
    sum of its kt time taps' convs of the frames (in the batch), which runs."""
    torch.manual_seed(0)
    m = Tubelets(2, kernel=(3, 3), stride=(2, 2))  # overlapping rows: a window crosses frames
    g = float_matches(m, _clip())
    assert sum(n.op == "conv2d" for n in g.nodes) == 2


class WindowPool(nn.Module):
    """SAM 2's Hiera query pooling: windows folded into the batch, (B nw, ws, ws, C) permuted to
    (B nw, C, ws, ws), a 2x2 max pool, permuted back."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 16)

    def forward(self, x):  # (B, T, C, H, W): the T frames stand for the windows
        b, t, c, h, w = x.shape
        y = self.fc(x.permute(0, 1, 3, 4, 2).reshape(b * t, h, w, c))
        y = torch.nn.functional.max_pool2d(y.permute(0, 3, 1, 2), 2, 2).permute(0, 2, 3, 1)
        return y.reshape(b, -1, 16)


def test_a_max_pool_of_windows_in_the_batch_is_one_maxpool2d():
    torch.manual_seed(0)
    x = _clip()
    g = float_matches(WindowPool(), x)
    (pool,) = [n for n in g.nodes if n.op == "maxpool2d"]
    assert g.shapes[pool.inputs[0]] == (32, 8, 16) and g.shapes[pool.output] == (16, 4, 16)
    r = qasic.evaluate(WindowPool().eval(), x, calibration=x)
    assert r["bit_exact"]

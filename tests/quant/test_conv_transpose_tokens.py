"""Transposed convolutions of tokens viewed as images (qasic.quant.lowering_convt in sequence
mode): a plain vision transformer's simple feature pyramid (BEiT's UperNet neck, ViTDet's:
each stage's patch tokens, the class token sliced off, transposed and viewed as (N, C, h, w),
then ConvTranspose2d -> BatchNorm2d -> GELU -> ConvTranspose2d, ConvTranspose2d, identity and
MaxPool2d), a transposed convolution of a torch-layout image in sequence mode, and
ConvTranspose1d/2d in a token model; each follows torch and runs bit-exact."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.quant import capture
from tests.quant.opcheck import float_matches


def _bn(c: int) -> nn.BatchNorm2d:
    """A BatchNorm2d with drawn statistics: a fold that did nothing would show."""
    bn = nn.BatchNorm2d(c)
    bn.weight.data, bn.bias.data = torch.rand(c) + 0.5, torch.randn(c) * 0.1
    bn.running_mean, bn.running_var = torch.randn(c) * 0.1, torch.rand(c) + 0.5
    return bn


class Pyramid(nn.Module):
    """Patches (4x4 on 16x16: 16 tokens) and a class token, two token-mixing stages; each
    stage's tokens and the first's again make four maps of the pyramid (x4, x2, x1, x0.5),
    upsampled to x1 and joined by a 1x1 conv."""

    def __init__(self, c: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.patch, self.cls = nn.Conv2d(3, c, 4, stride=4), nn.Parameter(torch.randn(1, 1, c))
        self.stages = nn.ModuleList(nn.Sequential(nn.LayerNorm(c), nn.Linear(c, c), nn.GELU())
                                    for _ in range(2))
        self.fpn1 = nn.Sequential(nn.ConvTranspose2d(c, c, 2, 2), _bn(c), nn.GELU(),
                                  nn.ConvTranspose2d(c, c, 2, 2))
        self.fpn2, self.fpn4 = nn.ConvTranspose2d(c, c, 2, 2), nn.MaxPool2d(2)
        self.out = nn.Conv2d(4 * c, 4, 1)

    def forward(self, x):
        t = torch.cat((self.cls.expand(x.shape[0], -1, -1),
                       self.patch(x).flatten(2).transpose(1, 2)), 1)
        feats = []
        for stage in self.stages:
            t = t + stage(t)
            feats.append(t)
        b, _, c = t.shape
        maps = [f[:, 1:].permute(0, 2, 1).reshape(b, c, 4, 4) for f in feats + feats]
        maps = [self.fpn1(maps[0]), self.fpn2(maps[1]), maps[2], self.fpn4(maps[3])]
        maps = [maps[2]] + [F.interpolate(m, size=(4, 4), mode="bilinear") for m in
                            (maps[0], maps[1], maps[3])]
        return self.out(torch.cat(maps, 1))


def _x(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 16, 16)).astype(np.float32)


def test_a_simple_feature_pyramid_of_tokens_moves_no_sequence_and_folds_its_batch_norm():
    """Before: 'transposed convolution: only 1-D and 2-D ones in image models' (BEiT's
    fpn1); each token slice after the first ran in image mode on the whole sequence permuted
    to an image (a (9 x 8) transpose per map, and one back per map)."""
    g = float_matches(Pyramid().eval(), _x())
    # the class token sliced off each time in torch's axes, a (16, 17) selector; the
    # transposes and views to maps dropped: the only permutes are the pixel shuffles'
    assert [g.shapes[n.output] for n in g.nodes if n.name.startswith("slice")
            and n.op == "matmul"] == [(16, 8)] * 4
    assert [n.name for n in g.nodes if n.op == "permute"] == [
        f"{m}.{s}" for m in ("fpn1.0", "fpn1.3", "fpn2") for s in ("phases", "rows")]
    assert [n.name for n in g.nodes if n.op == "conv2d"] == [
        "patch", "fpn1.0", "fpn1.3", "fpn2", "out"]  # the BatchNorm folded into fpn1.0
    assert [n.op for n in g.nodes].count("maxpool2d") == 1


def test_a_simple_feature_pyramid_of_tokens_runs_bit_exact():
    x = _x()
    r = qasic.evaluate(Pyramid().eval(), x[:2], calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # measured 0.9997


class TorchLayoutUp(nn.Module):
    """Tokens transposed to (N, C, L) and put through a GELU before the view as (N, C, h,
    w): no transpose the view can drop, so the map is torch's (C, h, w) in sequence mode;
    the transposed conv reads it permuted to its image, and its BatchNorm and ReLU fold and
    fuse into it."""

    def __init__(self, c: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.patch, self.mix = nn.Conv2d(3, c, 4, stride=4), nn.Linear(c, c)
        self.up, self.bn = nn.ConvTranspose2d(c, 6, 4, 2, 1, bias=False), _bn(6)

    def forward(self, x):
        t = self.mix(self.patch(x).flatten(2).transpose(1, 2))
        b, _, c = t.shape
        return torch.relu(self.bn(self.up(F.gelu(t.transpose(1, 2)).reshape(b, c, 4, 4))))


def test_a_transposed_conv_of_a_torch_layout_map_goes_back_to_image_mode():
    g = float_matches(TorchLayoutUp().eval(), _x())
    assert [(n.name, n.attrs["perm"]) for n in g.nodes if n.op == "permute"] == [
        ("transpose_1", (1, 0)), ("up.nhwc", (1, 2, 0)), ("up.phases", (1, 0, 2)),
        ("up.rows", (1, 0, 2))]  # to torch's (C, L) for the GELU; the image; the shuffle
    # the BatchNorm folded into the conv, the ReLU before the shuffle (fused when compiled)
    assert [n.op for n in g.nodes if n.op not in ("reshape", "permute")] == [
        "conv2d", "linear", "lut", "conv2d", "relu"]
    x = _x()
    r = qasic.evaluate(TorchLayoutUp().eval(), x[:2], calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class TokenUp(nn.Module):
    """A token model: embeddings viewed as a 4x4 image (N, H, W, C) permuted to (N, C, H, W)
    and a ConvTranspose2d (to 8x8), BatchNorm2d and ReLU, and the (N, C, T) transpose of the
    embeddings and a ConvTranspose1d (16 -> 64 positions); both back to tokens, added, a
    linear."""

    def __init__(self, c: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, c)
        self.up2, self.up1 = nn.ConvTranspose2d(c, c, 2, 2), nn.ConvTranspose1d(c, c, 4, 4)
        self.bn, self.fc = _bn(c), nn.Linear(c, c)

    def forward(self, ids):
        e = self.emb(ids)
        y = self.up2(e.view(-1, 4, 4, e.shape[2]).permute(0, 3, 1, 2))
        y = torch.relu(self.bn(y)).flatten(2)
        return self.fc((y + self.up1(e.transpose(1, 2))).transpose(1, 2))


def test_transposed_convs_in_a_token_model_write_torch_layout_and_run_bit_exact():
    """Before: 'transposed convolution: only 1-D and 2-D ones in image models'; the batch
    norm folds into the conv and the relu runs before the shuffle, as in an image model."""
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 50, (4, 16)))
    g = capture(TokenUp().eval(), ids[:1])  # (the cosine below checks the numbers)
    convs = [g.shapes[n.output] for n in g.nodes if n.op == "conv2d"]
    assert convs == [(4, 4, 32), (1, 16, 32)]  # a channel per phase: 4 = 2 x 2, 4
    assert [n.op for n in g.nodes if n.op not in ("reshape", "permute")] == [
        "embedding", "conv2d", "relu", "conv2d", "add", "linear"]
    assert [g.shapes[n.output] for n in g.nodes if n.name.endswith(".torch")] == [
        (8, 8, 8), (8, 64)]
    r = qasic.evaluate(TokenUp().eval(), ids, calibration=ids)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]

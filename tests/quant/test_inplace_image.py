"""In-place views in image models (quant.inplace.view_ in the image handlers): SK-Net's
selective kernel unsqueezes each branch in place (``conv(x).unsqueeze_(dim=1)``) before
stacking the branches on a new axis, a softmax over it and a weighted sum. It was refused as
"supported in sequence models only"; the float graph equals torch and golden == simulator."""

import numpy as np
import torch
from torch import nn

from tests.quant.transformer_nets import float_and_quantized


class SKConv(nn.Module):
    """ResearchingDexter/SKNet_pytorch's SKConv (M branches of growing kernels, grouped)."""

    def __init__(self, features=8, M=2, G=4, d=8):
        super().__init__()
        torch.manual_seed(0)
        self.convs = nn.ModuleList([
            nn.Sequential(nn.Conv2d(features, features, 3 + i * 2, padding=1 + i, groups=G),
                          nn.ReLU(inplace=False)) for i in range(M)])
        self.fc = nn.Linear(features, d)
        self.fcs = nn.ModuleList([nn.Linear(d, features) for _ in range(M)])
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        feas = None
        for conv in self.convs:
            fea = conv(x).unsqueeze_(dim=1)
            feas = fea if feas is None else torch.cat([feas, fea], dim=1)
        fea_z = self.fc(torch.sum(feas, dim=1).mean(-1).mean(-1))
        vectors = None
        for fc in self.fcs:
            vector = fc(fea_z).unsqueeze_(dim=1)
            vectors = vector if vectors is None else torch.cat([vectors, vector], dim=1)
        vectors = self.softmax(vectors).unsqueeze(-1).unsqueeze(-1)
        return (feas * vectors).sum(dim=1)


def test_sk_conv_in_place_unsqueezes_run_bit_exact():
    m = SKConv().eval()
    x = np.random.default_rng(0).standard_normal((4, 8, 6, 6)).astype(np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    _, cosine = float_and_quantized(m, x, want)  # float graph == torch, golden == simulator
    assert cosine > 0.99

"""A slice or split of a vector's features in an image model (inputs (batch, C), not maps):
NeRF's ``rays[..., :3], rays[..., 3:]`` and ``torch.split(x, [63, 27], dim=-1)`` are channel
selections (they were refused: 'a slice along dim 1 of a rank-2 image; only along the channels
(dim 1)'); a vector over its 2-norm, ``d / torch.norm(d, dim=-1, keepdim=True)`` (NeRF's view
directions; F.normalize of a projection head's embedding), is a ``norm`` node as in sequence
models (it was refused: 'linalg_vector_norm is supported in sequence models only'). The float
graph is torch's and the quantized model is bit-exact."""

import numpy as np
import torch
from torch import nn

import qasic
from tests.quant.opcheck import float_matches


class Rays(nn.Module):
    """(B, 6) points and directions -> sin / cos features of the points, an MLP with a skip
    concat of the points and a split of its output, as NeRF's MLP does."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(9, 16), nn.Linear(19, 16)
        self.out = nn.Linear(8 + 3, 4)

    def forward(self, rays):
        pts, dirs = rays[..., :3], rays[..., 3:]
        h = torch.relu(self.a(torch.cat([pts, torch.sin(2 * pts), torch.cos(2 * pts)], -1)))
        h = torch.relu(self.b(torch.cat([pts, h], -1)))
        feat, _ = torch.split(h, [8, 8], dim=-1)
        return self.out(torch.cat([feat, dirs], -1))


def test_slices_of_vector_features_are_bit_exact():
    torch.manual_seed(0)
    m = Rays().eval()
    x = np.random.default_rng(0).uniform(-1, 1, (16, 6)).astype(np.float32)
    float_matches(m, x)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


class Directions(nn.Module):
    """NeRF's directions normalized inside the model, and a projection head's embedding
    normalized by F.normalize (its clamp_min and expand_as of the norm)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 16), nn.Linear(16, 8)

    def forward(self, x):
        d = x[..., 3:]
        d = d / torch.norm(d, dim=-1, keepdim=True)
        h = self.b(torch.relu(self.a(torch.cat([x[..., :3], d], -1))))
        return nn.functional.normalize(h, dim=-1)


def test_a_vector_over_its_norm_is_a_norm_node_and_bit_exact():
    torch.manual_seed(0)
    m = Directions().eval()
    x = np.random.default_rng(0).standard_normal((16, 6)).astype(np.float32)
    g = float_matches(m, x)
    assert [n.op for n in g.nodes].count("norm") == 2
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def test_a_norm_over_a_maps_channels_runs_as_a_norm_over_the_last_axis():
    """Refused before ('runs on vectors ...'); quant.length_norm moves the channels last."""
    class MapNorm(nn.Module):
        def forward(self, x):
            return x / x.norm(dim=1, keepdim=True)

    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    g = float_matches(MapNorm().eval(), x)
    assert "norm" in [n.op for n in g.nodes]
    r = qasic.evaluate(MapNorm().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]

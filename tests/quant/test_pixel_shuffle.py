"""nn.PixelShuffle / nn.PixelUnshuffle of images (quant.pixel_shuffle): the float graph is
torch's, the channel regroup folds into a dense conv before the shuffle (else reshape, permute,
reshape), and the quantized model simulates bit-exact to the golden reference close to the
float model (ESPCN, EDSR and SwinIR upsample so; they were refused: op aten.pixel_shuffle)."""

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from tests.quant.opcheck import float_matches


class Upsampler(nn.Module):
    """ESPCN's tail (conv -> PixelShuffle(r)); ``between``: a tanh between them (the regroup
    is then data moves, not a fold); ``unshuffle``: Real-ESRGAN x2's PixelUnshuffle(2) of the
    input first."""

    def __init__(self, r: int, between: bool = False, unshuffle: bool = False) -> None:
        super().__init__()
        self.between, self.unshuffle = between, unshuffle
        cin = 12 if unshuffle else 3
        self.un = nn.PixelUnshuffle(2)
        self.body = nn.Conv2d(cin, 8, 3, 1, 1)
        self.up = nn.Conv2d(8, 2 * r * r, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(r)

    def forward(self, x):
        if self.unshuffle:
            x = self.un(x)
        y = self.up(torch.relu(self.body(x)))
        return self.shuffle(torch.tanh(y) if self.between else y)


def _x(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 8, 6)).astype(np.float32)


@pytest.mark.parametrize(("r", "between", "unshuffle", "permutes"),
                         [(2, False, False, 0), (3, False, False, 0), (2, True, False, 1),
                          (2, True, True, 4)])
def test_pixel_shuffle_is_torchs_and_bit_exact(r, between, unshuffle, permutes):
    torch.manual_seed(0)
    m = Upsampler(r, between, unshuffle).eval()
    x = _x()
    g = float_matches(m, x)
    ops = [n.op for n in g.nodes]
    assert ops.count("conv2d") == 2
    # the height phases move by two permutes (lowering_convt's shuffle); the regroup folds into
    # the conv, else one more; an unshuffle moves rows twice and regroups once more
    assert ops.count("permute") == 2 + permutes
    r_ = qasic.evaluate(m, x, calibration=x)
    assert r_["bit_exact"] and r_["cosine"] > 0.999


def test_a_shuffle_in_a_token_model_is_refused_naming_the_op():
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 8)

        def forward(self, x):  # (B, 16, 8) tokens viewed as a (B, 8, 4, 4) map
            y = self.proj(x).transpose(1, 2).reshape(x.shape[0], 8, 4, 4)
            return nn.functional.pixel_shuffle(y, 2)

    x = np.random.default_rng(0).standard_normal((2, 16, 8)).astype(np.float32)
    with pytest.raises(qasic.errors.UnsupportedOpError, match="pixel_shuffle of a token model"):
        qasic.evaluate(Tokens().eval(), x, calibration=x)

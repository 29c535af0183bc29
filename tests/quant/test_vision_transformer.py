"""Vision transformers in torchvision's and timm's layouts: an image model that turns into a
sequence one at its patches (conv -> flatten -> transpose), with a class token concatenated,
nn.MultiheadAttention (sequence-first inside) or timm's fused qkv, and a head on the class
token."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, reference
from tests.quant.transformer_nets import TimmViT, TorchvisionViT, check, torch_out


@pytest.mark.parametrize("net", [TorchvisionViT, TimmViT])
def test_vision_transformer_captures_and_follows_torch(net):
    torch.manual_seed(0)
    model = net().eval()
    x = np.random.default_rng(0).normal(size=(64, 3, 16, 16)).astype(np.float32)
    graph, q, cos = check(model, x)
    assert graph.input_layout == "NCHW" and graph.shapes["input"] == (16, 16, 3)
    ops = [n.op for n in graph.nodes]
    assert ops[:6] == ["conv2d", "reshape", "constant", "matmul", "constant", "add"]
    assert graph.shapes[graph.nodes[1].output] == (16, 32)  # the patches, a (N, D) sequence
    assert ops.count("softmax") == (2 if net is TorchvisionViT else 1)
    top1 = np.mean(q.dequantize_output(reference.run(q, q.quantize_input(x))).argmax(-1)
                   == torch_out(model, x).argmax(-1))
    assert cos > 0.995 and top1 > 0.9, (cos, top1)            # 0.9993 / 0.9998, 1.0 / 0.95


def _bn(c: int) -> nn.BatchNorm1d:
    """A BatchNorm1d with running statistics and an affine part far from the identity."""
    bn = nn.BatchNorm1d(c)
    g = torch.Generator().manual_seed(1)
    for t, lo in ((bn.weight, 0.5), (bn.bias, -0.5), (bn.running_mean, -0.5),
                  (bn.running_var, 0.5)):
        t.data = lo + torch.rand(c, generator=g)
    return bn.eval()


class LinearBN(nn.Module):
    """LeViT's MLPLayerWithBN: a linear whose (batch * S, D) output is batch-normalized and
    viewed back (reshape_as reads the linear's shape, not its values)."""

    def __init__(self, d: int, out: int):
        super().__init__()
        self.fc, self.bn = nn.Linear(d, out, bias=False), _bn(out)

    def forward(self, x):
        y = self.fc(x)
        return self.bn(y.flatten(0, 1)).reshape_as(y)


class TinyLevit(nn.Module):
    """Conv patches to a (batch, S, D) sequence, LeViT's linear + BatchNorm1d twice (a GELU
    between), the second on the one token a mean pool leaves (flattened to (batch, D)); with
    ``positions`` the first norm is over the positions instead (a BatchNorm1d(S))."""

    def __init__(self, d: int = 16, positions: bool = False):
        super().__init__()
        self.patches = nn.Conv2d(3, d, 4, 4)
        self.up, self.down = LinearBN(d, 2 * d), LinearBN(2 * d, d)
        self.pos = _bn(16) if positions else None

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)  # (batch, 16, d)
        if self.pos is not None:
            x = self.pos(x)
        return self.down(F.gelu(self.up(x)).mean(1, keepdim=True))


def test_levit_batch_norms_fold_into_their_linears():
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3, 16, 16)).astype(np.float32)
    graph, _, cos = check(TinyLevit().eval(), x)
    ops = [n.op for n in graph.nodes]
    assert ops.count("linear") == 2 and "batch_norm" not in "".join(n.name for n in graph.nodes)
    assert cos > 0.999, cos                                                 # 0.99998


def test_a_batch_norm_over_the_positions_of_a_sequence_is_a_constant_affine():
    """A BatchNorm1d(S) of a (batch, S, D) sequence (CLAP's BatchNorm2d over its mel bins is
    the same) scales and shifts each position: a constant ``mul`` and a constant ``add`` (it
    was refused); the golden reference follows torch."""
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3, 16, 16)).astype(np.float32)
    graph, _, cos = check(TinyLevit(positions=True).eval(), x)
    ops = [n.op for n in graph.nodes]
    assert ops[2:6] == ["constant", "mul", "constant", "add"], ops
    assert graph.shapes[graph.nodes[3].inputs[1]] == (16, 16)  # (S, D): one value per position
    assert cos > 0.999, cos


class Registers(nn.Module):
    """DINOv2 with registers' embeddings: patches with a class token, then register tokens
    put between the class token and the patches (a cat of two slices of one activation and a
    constant along the positions)."""

    def __init__(self, d: int = 16):
        super().__init__()
        self.patches, self.cls = nn.Conv2d(3, d, 4, 4), nn.Parameter(torch.randn(1, 1, d))
        self.registers, self.out = nn.Parameter(torch.randn(1, 2, d)), nn.Linear(d, d)

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)                  # (batch, 16, d)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)      # (batch, 17, d)
        reg = self.registers.expand(x.shape[0], -1, -1)
        return self.out(torch.cat([x[:, :1], reg, x[:, 1:]], 1))        # (batch, 19, d)


def test_register_tokens_between_two_parts_of_the_sequence_are_placed_and_added():
    """The patches placed by a 0/1 selector (rows 0-2 zero) plus one constant: the class token
    (the first cat's slice that reads it alone: quant.seqpasses; before, a selection of that
    cat, at the cat's encoding) and the registers, summed; the golden reference follows
    torch."""
    torch.manual_seed(0)
    model = Registers()
    x = np.random.default_rng(0).normal(size=(16, 3, 16, 16)).astype(np.float32)
    graph, _, cos = check(model, x)
    assert graph.shapes[graph.output] == (19, 16)
    cat = [n for n in graph.nodes if n.name.startswith("cat_1.") or n.name == "cat_1_1"]
    assert [n.op for n in cat] == ["constant", "matmul", "constant", "add"]
    place, const = cat[0].params["value"].reshape(19, 16), cat[2].params["value"]
    assert not place[:3].any() and (place[3:] == np.eye(16)).all()
    tokens = np.concatenate([model.cls.detach().numpy()[0], model.registers.detach().numpy()[0]])
    np.testing.assert_allclose(const[:3], tokens, rtol=1e-6)
    assert not const[3:].any()
    assert cos > 0.999, cos


def test_random_numbers_drawn_inside_the_model_are_refused_in_one_line():
    """ViTMAE's random masking draws noise with torch.rand in its forward: capture would
    freeze one draw (a silent difference from the float model), so it is refused."""
    class Noisy(nn.Module):
        def forward(self, x):
            return x + torch.rand(x.shape[0], 4)

    with pytest.raises(UnsupportedOpError) as e:
        capture(Noisy().eval(), torch.zeros(2, 4))
    msg = str(e.value)
    assert msg.startswith("node 'rand'") and "\n" not in msg and "random numbers drawn inside " \
        "the model (aten.rand.default, e.g. ViTMAE's random patch masking): capture would " \
        "freeze one draw; pass the draw in as a constant or remove it" in msg

"""A slice of a cat that reads one of its parts is that part (qasic.quant.seqpasses): CoaT's
class token, small next to the patch tokens it joins, sliced back out by the convolutional
position encoding. Before, the slice read the cat's one 8-bit encoding, fitted to the patch
tokens: the class token came out of it at a few codes, and the LayerNorm after scaled that
error up to O(1) (timm's coat_lite_tiny: 0.832 to fp32, 0.989 after)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.quant.fgraph import FNode
from qasic.quant.seqpasses import compose_selections
from tests.quant.transformer_nets import Attention, float_and_quantized, ops, torch_out

D = 32


class ClassTokenPosConv(nn.Module):
    """Patches, a class token of std 0.02 joined before them, CoaT's ConvPosEnc (the class
    token and the patch grid split, a depthwise conv on the grid, joined again), a pre-LN
    attention block, the head on the class token."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, D, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        self.cpe = nn.Conv2d(D, D, 3, 1, 1, groups=D)
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.attn = Attention(D, 2, causal=False)
        with torch.no_grad():  # a sharp attention, as trained: the class token's query matters
            self.attn.qkv.weight.mul_(3.0)
        self.head = nn.Linear(D, 10)

    def forward(self, x):
        n = x.shape[0]
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(n, -1, -1), x], dim=1)
        cls, img = x[:, :1], x[:, 1:]
        grid = img.transpose(1, 2).reshape(n, D, 4, 4)
        img = (self.cpe(grid) + grid).flatten(2).transpose(1, 2)
        x = torch.cat([cls, img], dim=1)
        x = x + self.attn(self.ln1(x))
        return self.head(self.ln2(x)[:, 0])


def test_a_class_token_sliced_back_out_of_its_cat_keeps_its_own_encoding():
    torch.manual_seed(0)
    model = ClassTokenPosConv().eval()
    x = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    fg, cos = float_and_quantized(model, x, torch_out(model, x))
    assert cos > 0.995, cos  # 0.9989; 0.970 when the slice read the cat's encoding
    # the class token's rows a constant: no add of it to the placed patches (the first cat)
    assert "cat_1.0" in {n.name for n in fg.nodes if n.op == "constant"}, ops(fg)
    assert not any(n.op == "add" and n.name == "cat_1" for n in fg.nodes), ops(fg)


def _selection(name: str, value: np.ndarray, x: str) -> list[FNode]:
    return [FNode(f"{name}.rows", "constant", (), f"{name}.rows", {}, {"value": value}),
            FNode(name, "matmul", (f"{name}.rows", x), name, {"transpose_b": False})]


def test_a_selection_of_placed_parts_reads_the_one_part_it_selects():
    place = np.eye(5)[:, 1:]  # x's 4 rows placed after a constant row
    cls = np.zeros((5, 3))
    cls[0] = [0.01, -0.02, 0.03]
    nodes = [*_selection("placed", place, "x"),
             FNode("cls", "constant", (), "cls", {}, {"value": cls}),
             FNode("cat", "add", ("placed", "cls"), "cat"),
             *_selection("head", np.eye(5)[:1] * 2.0, "cat"),
             *_selection("tail", np.eye(5)[2:], "cat"),
             *_selection("both", np.eye(5)[:2], "cat"),
             FNode("out", "concat", ("head", "tail", "both"), "out")]
    got = {n.output: n for n in compose_selections(nodes, "out")}
    assert got["head"].op == "constant" and np.array_equal(got["head"].params["value"],
                                                           2.0 * cls[:1])
    assert got["tail"].inputs[1] == "x"
    np.testing.assert_array_equal(got[got["tail"].inputs[0]].params["value"], np.eye(4)[1:])
    assert got["both"].inputs[1] == "cat"  # reads both parts: stays a selection of the cat

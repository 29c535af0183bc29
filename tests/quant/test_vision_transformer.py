"""Vision transformers in torchvision's and timm's layouts: an image model that turns into a
sequence one at its patches (conv -> flatten -> transpose), with a class token concatenated,
nn.MultiheadAttention (sequence-first inside) or timm's fused qkv, and a head on the class
token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.quant import reference
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

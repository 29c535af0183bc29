"""A chunk or split of an image's channels (ultralytics' C2f: ``list(cv1(x).chunk(2, 1))``, then
a bottleneck on the last part and a cat of all; Res2Net's ``torch.split``) is a ``channels``
node sharing its input's codes and TensorQ, stored as a view of the input's pixels
(compiler.memory): no selection linear on the array; a cat of all the parts in order reads
the tensor itself. Where a part cannot be a view (the graph output, a concat input) a copy
kernel reads the view. Golden == simulator, cosine."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import QuantConfig
from qasic.quant.quantize import quantize


def _conv(ci: int, co: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, k, padding=k // 2), nn.SiLU())


class C2f(nn.Module):
    """conv -> SiLU -> chunk(2, 1) -> a 3x3 bottleneck of the last part (+ it) -> cat of the
    parts and the bottleneck's output -> conv; ``out_part``: return channels 3.. of the last
    part instead (a part of a part as the graph output)."""

    def __init__(self, c: int = 8, out_part: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.cv1, self.m, self.cv2 = _conv(3, 2 * c), _conv(c, c, 3), _conv(3 * c, c)
        self.out_part = out_part

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        if self.out_part:
            return torch.split(y[1], [3, 5], 1)[1]  # a part of a part: a view of a view
        y.append(self.m(y[-1]) + y[-1])
        return self.cv2(torch.cat(y, 1))


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 8, 8)).astype(np.float32)


def test_a_c2f_chunk_is_a_view_bit_exact():
    x = _images()
    graph = quantize(C2f().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    parts = [(n.attrs["start"], n.attrs["stop"]) for n in graph.nodes if n.op == "channels"]
    assert sorted(parts) == [(0, 8), (8, 16)], parts
    assert not [n for n in graph.nodes if n.op == "linear"]
    src = {n.inputs[0] for n in graph.nodes if n.op == "channels"}
    assert all(graph.tensors[n.output] == graph.tensors[n.inputs[0]]
               for n in graph.nodes if n.op == "channels")  # the input's codes and TensorQ
    # the cat reads the chunked tensor whole: it is stored in the cat's channels, the parts
    # views of it; the program runs the four convs, the add and nothing else
    (cat,) = [n for n in graph.nodes if n.op == "concat"]
    assert len(src) == 1 and cat.inputs[0] in src
    program = qasic.compile(graph)
    kinds = [la["kind"] for la in program.meta["layers"]]
    assert kinds == ["gemm", "gemm", "ew", "gemm"], kinds
    r = qasic.evaluate(C2f().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_a_part_as_the_graph_output_is_copied_from_the_view():
    x = _images()
    r = qasic.evaluate(C2f(out_part=True).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
    assert [la["kind"] for la in r["layers"]][-1] == "copy"

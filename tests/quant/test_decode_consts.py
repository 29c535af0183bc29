"""A constant over the positions in a decode step (quant.decode_consts): a decoder that
concatenates a zero column, ``g[..., :1] * 0`` (quant.zero_product: zeros_like, a constant of
C rows; requantized to the concat's encoding by a table), to each token's features, as
InklingTextModel's router pads its expert mask. The table of the constant kept all C rows in a
prefill and a decode step, and the concat of the step's row with them stored C rows into a
region of one: 'write of dram [...] is not inside one DRAM region' (the program verifier).
Folded to a constant, the concat reads its rows at the step's positions (a copy of the
constant: compiler.pipeline.insert_copies), and the model generates equal to the golden
reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, decode_consts, reference
from qasic.quant.decode import _infer
from qasic.quant.graph import QNode
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference
from tests.quant.transformer_nets import Block, float_and_quantized

V, C, D = 40, 8, 16


class ZeroColumnLM(nn.Module):
    """An attention block, a sigmoid gate, and [h | gate | gate[..., :1] * 0] into the head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.tok, self.block = nn.Embedding(V, D), Block(D, 2)
        self.gate, self.head = nn.Linear(D, 4), nn.Linear(D + 5, V)

    def forward(self, ids):
        h = self.block(self.tok(ids))
        g = torch.sigmoid(self.gate(h))
        return self.head(torch.cat([h, g, g[..., :1] * 0], -1))


def _ids(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, V, (n, C))


@pytest.fixture(scope="module")
def full():
    return quantize(ZeroColumnLM().eval(), (torch.from_numpy(_ids()[:1]),), _ids(),
                    QuantConfig())


def test_a_zero_column_in_a_decode_step_generates_like_the_golden_reference(full):
    producer = {n.output: n for n in full.nodes}
    (cat,) = [n for n in full.nodes if n.op == "concat"]
    table = producer[cat.inputs[2]]  # the zeros' requantization, a table of a constant
    assert table.op == "lut" and producer[table.inputs[0]].op == "constant"
    assert full.shapes[table.inputs[0]] == (C, 1)
    assert_generates_like_the_golden_reference(full, _ids()[0, :3], 5)


def test_the_zero_column_model_is_close_to_torch_and_bit_exact():
    net, x = ZeroColumnLM().eval(), _ids()
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    _, cos = float_and_quantized(net, x, want)  # float graph == torch, golden == simulator
    assert cos > 0.999, cos


def test_a_table_of_a_constant_is_the_constant_of_its_codes(full):
    folded = decode_consts.folded(full)
    (cat,) = [n for n in folded.nodes if n.op == "concat"]
    node = {n.output: n for n in folded.nodes}[cat.inputs[2]]
    assert node.op == "constant"
    np.testing.assert_array_equal(reference.run(folded, _ids()), reference.run(full, _ids()))
    assert decode_consts.folded(folded) is folded  # nothing left to fold


def test_a_folded_constant_read_by_a_concat_compiles_through_a_copy(full):
    """Read by the concat directly, the constant's codes stay in the constants region: the
    concat reads a copy (before: a KeyError in compiler.memory, the constant placed as a view
    of the concat's buffer)."""
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional

    folded, x = decode_consts.folded(full), _ids()
    got = run_functional(compile_graph(folded, default_arch()), default_arch(), x)
    gold = reference.run(folded, x)
    np.testing.assert_array_equal(got.reshape(gold.shape), gold)


def test_a_concat_whose_parts_keep_other_positions_is_refused_in_one_line():
    n = QNode("cat", "concat", ("a", "b"), "cat", {})
    with pytest.raises(UnsupportedOpError, match=r"^cat: concat of shapes \(1, 4\), \(8, 1\) "
                                                 r"in a generation graph: parts whose leading"):
        _infer(None, n, {"a": (1, 4), "b": (8, 1)})
    assert _infer(None, n, {"a": (3, 4), "b": (3, 1)}) == (3, 5)

"""Vector-unit kernels (POOL, ADD, LUT: qasic.compiler.vector) place each operand and the result
at fixed offsets of their output-scratchpad half, those of the full tile. A row's last, shorter
pooling tile used to place its result right after its smaller band, where the full tile two
steps later loads its band while that result may still be being stored: the program verifier
refused it (a WAR with no token; torchvision's Inception V3 at 80x80, timm's too). Bit-exact
against the golden reference now."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.arch.config import load_arch
from qasic.compiler import compile_graph
from qasic.evaluation import evaluate, resolve_model
from qasic.flow import quantize_model
from qasic.quant import QuantConfig

torch = pytest.importorskip("torch")
nn = torch.nn


class PoolThenAdd(nn.Module):
    """64 channels, a 3x3 stride-2 max pool to 18x18: four column tiles a row (5, 5, 5, 3)
    alternate between the halves, so a short tile's half is next used by a full one."""

    def __init__(self):
        super().__init__()
        self.conv, self.pool = nn.Conv2d(3, 64, 3), nn.MaxPool2d(3, 2)

    def forward(self, x):
        y = self.pool(self.conv(x))
        return y + torch.sigmoid(y)


def test_a_pool_whose_last_tile_is_short_verifies_and_is_bit_exact():
    torch.manual_seed(0)
    model = PoolThenAdd().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 39, 39)).astype(np.float32)
    record = evaluate(model, x, calibration=x)  # before: VerificationError, WAR on output
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]
    program = compile_graph(quantize_model(resolve_model(model, calibration=x), QuantConfig()),
                            load_arch("default"))
    for op, field in (("POOL", "dst_addr"), ("ADD", "dst_addr"), ("ADD", "b_addr")):
        addrs = {i.args[field] for i in program.instrs if i.op == op}
        assert len(addrs) == 2, (op, field, sorted(addrs))  # one place per half

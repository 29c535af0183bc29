"""Average pools whose divisor changes from window to window (PoolFormer's token mixer
AvgPool2d(3, 1, 1, count_include_pad=False) - x, a ceil_mode overhang) compile and simulate
bit-exact against the golden reference: an interior-divisor pool, a product by a per-position
constant, and the subtraction an add of a negating table."""

from __future__ import annotations

import pytest

from qasic.evaluation import evaluate

torch = pytest.importorskip("torch")
nn = torch.nn


class Mixer(nn.Module):
    """conv -> PoolFormer's pool(y) - y -> a ceil_mode pool whose last windows overhang."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.down = nn.AvgPool2d(3, 2, ceil_mode=True)

    def forward(self, x):
        y = self.conv(x)
        return self.down(self.pool(y) - y)


def test_window_varying_divisors_are_bit_exact():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8)  # 8 rows: the 4th 3-row window at stride 2 overhangs
    record = evaluate(Mixer().eval(), x, calibration=x)
    assert record["bit_exact"]
    assert record["cosine"] > 0.999, record["cosine"]
    ops = [op for layer in record["layers"] for op in layer["ops"]]
    assert ops.count("avgpool2d") == 2 and ops.count("mul") == 2 and ops.count("add") == 1

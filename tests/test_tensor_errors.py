"""qasic evaluate's per-tensor errors (qasic.quant.tensor_errors, qasic.tensor_report): each
tensor of the quantized graph against fp32, and the warning naming where the signal is lost."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import ConfigError
from qasic.evaluation import summary
from qasic.quant import quantize
from qasic.quant.calibrate import prepare
from qasic.quant.tensor_errors import first_loss, tensor_errors, why_lost
from qasic.quant.torch_export import capture
from qasic.tensor_report import wanted

X = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)


class Skip(nn.Module):
    """Two branches joined by a concat, whose inputs share one encoding: ``big`` scaled by
    ``big`` sets its range, so ``small`` (|x| < 2) rounds to zero when ``big`` is 1e4 (the
    smp U-Net's MobileOne skip); ``head`` scales the small branch's weight in the output."""

    def __init__(self, big: float = 1.0, head: float = 1.0):
        super().__init__()
        torch.manual_seed(0)
        self.small = nn.Conv2d(3, 4, 3, padding=1)
        self.big = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)
        with torch.no_grad():
            self.big.weight.mul_(big)
            self.big.bias.mul_(big)
            self.head.weight[:, :4].mul_(head)

    def forward(self, x):
        return self.head(torch.cat([self.small(x), self.big(x)], 1))


def rows_of(model: nn.Module, x: np.ndarray) -> tuple[list[dict], object]:
    """(tensor_errors rows on ``x``, the QGraph), quantized (W8A8) on X."""
    example = (torch.from_numpy(X[:1]),)
    graph = quantize(model, example, X)
    return tensor_errors(graph, prepare(capture(model, example)), x), graph


def test_a_collapsed_output_names_the_tensor_rounded_away():
    """The output collapses (cosine < 0.5), so the analysis runs without being asked; the
    warning names exactly ``small``: its SQNR is 0 dB while the input it is made from is
    fine, its values spanning a fraction of one step of the concat's encoding."""
    record = qasic.evaluate(Skip(big=1e4, head=1e4).eval(), X, calibration=X)
    assert record["cosine"] < 0.5
    lost = [w for w in record["warnings"] if w.startswith("warning: tensor ")]
    assert lost == [record["warnings"][1]] and "\n" not in lost[0]
    assert lost[0].startswith("warning: tensor small (conv2d) of Skip loses the signal: SQNR "
                              "0.0 dB against fp32 (made from input, each >= 20 dB)")
    assert "span only 0.0" in lost[0] and "concat cat" in lost[0]
    assert [r["tensor"] for r in record["tensor_errors"]] == ["input", "small", "big", "cat",
                                                              "head"]
    assert "tensors furthest from fp32 (5 compared):\ntensor" in summary(record)
    assert summary(record).splitlines()[-5].startswith("small   conv2d      0.0")


def test_a_healthy_model_gets_no_warning_and_no_analysis_unless_asked():
    net = Skip().eval()
    asked = qasic.evaluate(net, X[:4], calibration=X, errors=True)
    assert asked["warnings"] == [] and len(asked["tensor_errors"]) == 5
    assert min(r["sqnr_db"] for r in asked["tensor_errors"]) > 30
    quiet = qasic.evaluate(net, X[:4], calibration=X)
    assert quiet["tensor_errors"] is None and "furthest" not in summary(quiet)


def test_sqnr_and_ranges_are_those_of_the_torch_tensors_and_the_codes():
    """Each row against torch's own tensor (a forward hook, NCHW -> NHWC) and the golden
    reference's codes dequantized by hand: scale * (q - zero_point)."""
    from qasic.quant import reference

    net = Skip(big=30.0).eval()
    rows, graph = rows_of(net, X[:8])
    seen = {}
    hooks = [getattr(net, n).register_forward_hook(
        lambda m, i, o, n=n: seen.__setitem__(n, o.detach().double().numpy()))
        for n in ("small", "big", "head")]
    with torch.no_grad():
        net(torch.from_numpy(X[:8]))
    for h in hooks:
        h.remove()
    codes = reference.run(graph, graph.quantize_input(X[:8]), keep=True)
    by_name = {r["tensor"]: r for r in rows}
    for name, f in seen.items():
        f, t = f.transpose(0, 2, 3, 1), graph.tensors[name]
        d = t.scale * (codes[name] - t.zero_point)
        row = by_name[name]
        want = 10 * np.log10(np.sum(f ** 2) / np.sum((f - d) ** 2))
        assert row["sqnr_db"] == pytest.approx(want, rel=1e-6), name  # fp32 torch
        assert (row["float_min"], row["float_max"]) == pytest.approx((f.min(), f.max()))
        assert row["encoding_min"] == pytest.approx(t.scale * (-128 - t.zero_point))
        assert row["step"] == t.scale and row["clipped"] == 0.0
    assert by_name["small"]["shared_with"] == "cat" and by_name["head"]["shared_with"] is None
    assert by_name["small"]["sqnr_db"] < by_name["big"]["sqnr_db"] - 20  # 30x coarser steps


def test_clipping_is_named_as_the_cause():
    """Inputs 10x the calibration's: the input's own encoding clips them (no sources)."""
    rows, _ = rows_of(Skip().eval(), 10 * X[:4])
    row = first_loss(rows)
    assert row["tensor"] == "input" and row["sources"] == [] and row["clipped"] > 0.5
    assert why_lost(row).startswith(f"{row['clipped']:.1%} of its values [")
    assert "are clipped by its encoding [" in why_lost(row)


def _row(name: str, db: float | None, sources: tuple[str, ...] = ()) -> dict:
    return {"tensor": name, "sqnr_db": db, "sources": list(sources)}


@pytest.mark.parametrize("rows, lost", [
    ([_row("a", 40.0), _row("b", 5.0, ("a",))], "b"),
    ([_row("a", 40.0), _row("b", 15.0, ("a",)), _row("c", 5.0, ("b",))], None),  # gradual
    ([_row("a", None), _row("b", 5.0, ("a",)), _row("c", 1.0, ("b",))], "b"),  # null: exact
    ([_row("a", 40.0), _row("b", 12.0, ("a",))], None),
    ([_row("a", 3.0), _row("b", 2.0, ("a",))], "a"),
    ([_row("a", 40.0), {**_row("m", 5.0, ("a",)), "op": "topk_mask"}], None),  # a decision
])
def test_the_first_loss_is_below_10_db_with_every_source_at_20_db(rows, lost):
    row = first_loss(rows)
    assert (row and row["tensor"]) == lost


def test_equalized_tensors_do_not_compare_so_asking_is_one_line():
    assert wanted(None, True) is False and wanted(True, False) is True
    with pytest.raises(ConfigError, match="^--errors compares each tensor with the float "
                       "model's, and --equalize rescales the channels of some of them: give "
                       "one of them$"):
        qasic.evaluate(Skip().eval(), X[:2], calibration=X,
                       config=qasic.QuantConfig(equalize=True), errors=True)


def test_a_model_too_big_to_keep_one_input_is_one_line(monkeypatch):
    import qasic.quant.tensor_errors as te

    monkeypatch.setattr(te, "KEPT_ELEMENTS", 1000)  # Skip keeps 192 + 2 x 256 + 512 + 128
    with pytest.raises(ConfigError, match=r"^the per-tensor errors of \w+ keep 1344 values an "
                       "input, over the 1000 they may hold: evaluate a smaller input"):
        rows_of(Skip().eval(), X[:2])

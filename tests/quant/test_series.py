"""A float (batch, T) input read by attention is a series of T steps, captured in sequence mode
(qasic.quant.lowering_seq.input_layout), as the time-series transformers read their past values:
scaled by their own mean absolute value with a fallback over the batch that a constant
all-observed mask never takes (qasic.quant.selects: a where of a literal condition is its
operand), lagged, projected, attended; their distilling layers' max pool of torch's (batch, C, L)
in a sequence model (qasic.quant.lowering_seqpool.max_pool). transformers skips the
bidirectional mask no mask given while qasic exports, as in eager (qasic.quant.hf_masks); the
layers no capture can run are refused by name naming the setting that runs
(qasic.quant.known_modules)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, hf_masks, known_modules, run_float, selects, torch_export
from tests.quant.transformer_nets import Attention, Fn

T, D = 14, 16


class Series(nn.Module):
    """Past values (batch, T): the mean scaler (a per-sample scale; the batch's where no value
    is observed), lags 1-3 stacked as features, a linear to D, one attention layer; with
    ``distil`` a circular conv over the steps, ELU and MaxPool1d(3, 2, padding 1) (Informer's
    distilling layer) before it."""

    def __init__(self, distil: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.out = nn.Linear(3, D), nn.Linear(D, D)
        self.attn = Attention(D, 2, causal=False)
        self.distil = distil
        self.conv = nn.Conv1d(D, D, 3, padding=1, padding_mode="circular")
        self.pool = nn.MaxPool1d(3, stride=2, padding=1)

    def forward(self, x):
        observed = torch.ones(x.shape[0], x.shape[1])
        total = (x * observed).abs().sum(1, keepdim=True)
        count = observed.sum(1, keepdim=True)
        batch = total.sum(0) / count.sum(0).clamp(min=1)  # across samples: never taken
        scale = torch.where(count > 0, total / count.clamp(min=1), batch).clamp(min=1e-5)
        x = x / scale
        h = self.inp(torch.stack([x[:, 2:], x[:, 1:-1], x[:, :-2]], -1))
        if self.distil:
            h = self.pool(F.elu(self.conv(h.transpose(1, 2)))).transpose(1, 2)
        return self.out(self.attn(h))


def _series(batch: int = 8) -> np.ndarray:
    t = np.arange(T)
    rng = np.random.default_rng(0)
    return (2 + np.sin(t / 2)[None] + 0.3 * rng.standard_normal((batch, T))).astype(np.float32)


@pytest.mark.parametrize("distil", [False, True], ids=["attention", "distilled"])
def test_a_series_read_by_attention_runs_in_sequence_mode_bit_exact(distil):
    x = _series()
    m = Series(distil).eval()
    g = capture(m, (torch.from_numpy(x[:2]),), "series")
    assert g.input_layout == "sequence" and g.shapes["input"] == (T,)
    assert ("maxpool2d" in [n.op for n in g.nodes]) == distil
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), want, atol=1e-4, rtol=1e-4)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_a_vector_of_features_stays_an_image_models_input():
    torch.manual_seed(0)
    mlp = Fn(lambda x, a, b: torch.softmax(b(torch.relu(a(x))), -1), nn.Linear(8, 16),
             nn.Linear(16, 4)).eval()
    g = capture(mlp, (torch.randn(2, 8),), "mlp")
    assert g.input_layout != "sequence"


def test_a_where_of_a_literal_condition_is_the_operand_it_takes():
    m = Series().eval()
    ep = torch.export.export(m, (torch.from_numpy(_series(2)),))
    graph = selects.decompose(ep.graph, set(ep.graph_signature.user_inputs))
    wheres = [n for n in graph.nodes if n.target is torch.ops.aten.where.self]
    assert not wheres
    # the batch fallback (sums over axis 0) is left to no output: never captured
    sums = [n for n in graph.nodes if n.target is torch.ops.aten.sum.dim_IntList
            and list(n.args[1]) == [0]]
    assert sums and not set(sums) & torch_export._live(graph)


def test_a_where_of_a_mixed_literal_condition_is_left_to_capture():
    def f(x):
        keep = torch.arange(x.shape[1]) < 3
        return torch.where(keep, x, x.sum(0))

    ep = torch.export.export(Fn(lambda x: f(x)), (torch.randn(2, 5),))
    graph = selects.decompose(ep.graph, set(ep.graph_signature.user_inputs))
    assert [n for n in graph.nodes if n.target is torch.ops.aten.where.self]


def test_no_mask_given_skips_the_bidirectional_mask_while_exporting():
    from transformers import masking_utils

    ignore = masking_utils._ignore_bidirectional_mask_sdpa
    with hf_masks.eager_skips():
        assert masking_utils._ignore_bidirectional_mask_sdpa(None, 16)
        assert masking_utils._ignore_bidirectional_mask_sdpa(None, 16, 8) is False
        assert masking_utils._ignore_bidirectional_mask_sdpa(torch.ones(1, 16, dtype=torch.bool),
                                                             16) in (True, False)
    assert masking_utils._ignore_bidirectional_mask_sdpa is ignore


@pytest.mark.parametrize("layer, setting", [
    ("InformerProbSparseAttention", "attention_type='full'")])
def test_sampled_attentions_are_refused_naming_what_runs(layer, setting):
    model = nn.Sequential(type(layer, (nn.Module,), {})())
    with pytest.raises(UnsupportedOpError, match=r"module '0' \(" + layer) as e:
        known_modules.check(model)
    assert setting in str(e.value) and "\n" not in str(e.value)

"""Sequence-model selections by constant matrices along a per-sample axis: average pooling and
zero padding (qasic.quant.lowering_seqpool), repeat_interleave (qasic.quant.lowering_gather) and
cat along a non-last axis (qasic.quant.lowering_seq.cat), as Funnel pools and upsamples its
tokens (from token ids: a float (batch, S, D) input with a pool is taken for a Conv1d net's
(batch, C, L)). The averaging matrices against torch, the QGraph ops, the golden reference against
torch, golden reference == simulator, and one-line refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from qasic.quant.lowering_seqpool import adaptive_averaging, averaging, pool_stages
from tests.quant.transformer_nets import Fn, check, ops

D, S, VOCAB = 16, 12, 50


def _ids(batch: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, (batch, S))


def _model(f) -> nn.Module:
    torch.manual_seed(0)
    return Fn(lambda ids, emb, fc: f(fc(emb(ids))), nn.Embedding(VOCAB, D), nn.Linear(D, D))


@pytest.mark.parametrize("n, kernel, stride, ceil, pad, include, divisor", [
    (12, 2, 2, True, 0, True, None), (11, 2, 2, True, 0, True, None),
    (11, 2, 2, False, 0, True, None), (7, 3, 2, True, 0, True, None),
    (8, 3, 3, True, 0, True, None), (8, 3, 2, False, 1, True, None),  # ResNeSt's avd pool
    (7, 3, 2, True, 1, True, None), (7, 3, 2, True, 1, False, None),
    (9, 5, 2, True, 2, False, None), (6, 3, 1, False, 1, True, 4)])
def test_averaging_matrices_are_torchs_avg_pool(n, kernel, stride, ceil, pad, include, divisor):
    x = torch.randn(1, 1, n, 1, dtype=torch.float64)
    want = F.avg_pool2d(x, (kernel, 1), (stride, 1), (pad, 0), ceil_mode=ceil,
                        count_include_pad=include, divisor_override=divisor)[0, 0, :, 0].numpy()
    got = averaging(n, kernel, stride, ceil, pad, include, divisor) @ x[0, 0, :, 0].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def _resnest_avd(x):  # a radix softmax's rows (a sequence model) then AvgPool2d(3, 2, 1)
    img = x.view(-1, 4, 3, D).permute(0, 3, 1, 2)
    return F.avg_pool2d(img, 3, 2, padding=1).flatten(1)


def test_a_padded_avg_pool_in_a_sequence_model_runs_bit_exact():
    """Before: refused ('avg_pool with padding or divisor_override in a sequence model')."""
    x = _ids(4)
    graph, _, cos = check(_model(_resnest_avd), _ids())
    assert ops(graph).count("matmul") >= 2 and cos > 0.999, cos
    r = qasic.evaluate(_model(_resnest_avd).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


@pytest.mark.parametrize("n, o", [(12, 1), (12, 5), (7, 3), (5, 5), (3, 7)])
def test_adaptive_averaging_matrices_are_torchs(n, o):
    x = torch.randn(1, 1, n, dtype=torch.float64)
    want = F.adaptive_avg_pool1d(x, o)[0, 0].numpy()
    np.testing.assert_allclose(adaptive_averaging(n, o) @ x[0, 0].numpy(), want, rtol=0,
                               atol=1e-12)


@pytest.mark.parametrize("f", [
    lambda x: F.adaptive_avg_pool1d(x.transpose(1, 2), 1).flatten(1),  # Swin's pooler
    lambda x: F.adaptive_avg_pool1d(x.transpose(1, 2), 5).transpose(1, 2),  # uneven windows
    lambda x: F.adaptive_avg_pool2d(x.view(-1, 3, 4, D).permute(0, 3, 1, 2), (2, 3)).flatten(1),
], ids=["pooler", "five", "2d"])
def test_adaptive_pools_of_tokens_run_bit_exact(f):
    x = _ids(4)
    graph, _, cos = check(_model(f), _ids())
    assert ops(graph).count("matmul") >= 1 and cos > 0.999, cos
    r = qasic.evaluate(_model(f).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def _funnel_pool(x):  # Funnel's pool_tensor with separate_cls: [cls, tokens[:-1]] pooled
    x = torch.cat([x[:, :1], x[:, :-1]], dim=1)
    return F.avg_pool2d(x[:, None], (2, 1), stride=(2, 1), ceil_mode=True)[:, 0]


def _funnel_up(x):  # Funnel's upsample: cls, then each pooled token twice, padded, cut
    x = _funnel_pool(x)
    cls, up = x[:, :1], torch.repeat_interleave(x[:, 1:], repeats=2, dim=1)
    up = F.pad(up, (0, 0, 0, 1, 0, 0))[:, :S - 1]
    return torch.cat([cls, up], dim=1)


CASES = {  # name -> (function, QGraph ops, cosine bound); measured cosine in the comment
    # the cat of two slices of one tensor composes into one selection (qasic.quant.seqpasses)
    "pool": (_funnel_pool, ["embedding", "linear", "constant", "matmul", "reshape", "constant",
                            "matmul", "reshape"], 0.999),
    "slice_of_slice": (lambda x: x[:, 2:][:, 1:4], ["embedding", "linear", "constant", "matmul"],
                       0.999),
    "cat_of_slices": (lambda x: torch.cat([x[:, 5:], x[:, :2], x[:, 3:4]], 1),
                      ["embedding", "linear", "constant", "matmul"], 0.999),
    "pool_pad_upsample": (_funnel_up, ["embedding", "linear", "constant", "matmul", "reshape",
                                       "constant", "matmul", "reshape", "constant", "matmul"],
                          0.999),
}


@pytest.mark.parametrize("name", list(CASES))
def test_funnel_pool_and_upsample_become_selector_matmuls(name):
    f, want, bound = CASES[name]
    graph, _, cos = check(_model(f), _ids())
    assert ops(graph) == want
    assert cos > bound, cos  # measured 0.99982 .. 0.9999


def test_funnel_pool_and_upsample_run_bit_exact():
    x = _ids(4)
    r = qasic.evaluate(_model(_funnel_up).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


# Hiera's query pooling (a max over the stride axis of a view), an amax over the heads' axis, a
# max over the last axes (a DETR-style head's best class score per query): a maxpool2d of the
# per-sample tensor viewed as an image (A, K, R), kernel (1, K)
MAXES = {
    "hiera": (lambda x: x.view(x.shape[0], 4, -1, D).max(dim=1).values, (1, 4), (3, D),
              ["reshape"]),
    "amax_keepdim": (lambda x: x.view(x.shape[0], S, 2, 8).amax(dim=2, keepdim=True), (1, 2),
                     (S, 1, 8), []),  # the pool's (S, 1, 8) is the output: no reshape after it
    "max_last": (lambda x: x.max(dim=-1).values, (1, D), (S,), ["reshape"]),
    "amax_last_keepdim": (lambda x: x.amax(-1, keepdim=True), (1, D), (S, 1), ["reshape"]),
    "amax_last_two": (lambda x: x.view(x.shape[0], S, 2, 8).amax(dim=(-2, -1)), (1, D), (S,),
                      ["reshape"]),
    "amax_heads_and_last": (lambda x: x.view(x.shape[0], 2, S, 8).amax(dim=(2, 3)),
                            (1, S * 8), (2,), ["reshape"]),
}


@pytest.mark.parametrize("name", list(MAXES))
def test_a_max_over_a_per_sample_axis_is_a_max_pool(name):
    f, kernel, out, after = MAXES[name]
    graph, _, cos = check(_model(f), _ids())
    assert ops(graph) == ["embedding", "linear", "reshape", "maxpool2d", *after]
    pool = graph.nodes[3]
    assert pool.attrs["kernel"] == kernel == pool.attrs["stride"]
    assert graph.shapes[graph.output] == out
    assert cos > 0.999, cos


@pytest.mark.parametrize("name", ["hiera", "max_last", "amax_last_two"])
def test_a_max_over_an_axis_runs_bit_exact(name):
    x = _ids(4)
    r = qasic.evaluate(_model(MAXES[name][0]).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_a_max_wider_than_the_pool_window_field_pools_in_stages():
    """515 values per row: windows of 172 (the POOL instruction's kw is 8 bits; the last one
    padded by 1 with the lowest code), then 3."""
    torch.manual_seed(0)
    model = Fn(lambda ids, emb, fc: fc(emb(ids)).max(-1).values, nn.Embedding(VOCAB, D),
               nn.Linear(D, 515)).eval()
    graph = capture(model, torch.from_numpy(_ids(2)))
    pools = [n.attrs for n in graph.nodes if n.op == "maxpool2d"]
    assert [(a["kernel"], a["padding"]) for a in pools] == [((1, 172), (0, 0, 0, 1)),
                                                            ((1, 3), (0, 0, 0, 0))]
    x = _ids(4)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


@pytest.mark.parametrize("k, stages", [(16, [(16, 0)]), (255, [(255, 0)]),
                                       (256, [(128, 0), (2, 0)]), (257, [(129, 1), (2, 0)]),
                                       (70000, [(255, 125), (138, 1), (2, 0)])])
def test_pool_stages_fit_the_window_field(k, stages):
    assert pool_stages(k) == stages
    for window, pad in stages:
        assert window <= 255 and pad < window
        k = (k + pad) // window
    assert k == 1


def _best_class_gate(x):  # a DETR-style head: each query's best class score gates its features
    return x * torch.sigmoid(x.max(-1, keepdim=True).values)


def test_a_best_class_score_gating_its_row_runs_bit_exact():
    x = _ids(4)
    r = qasic.evaluate(_model(_best_class_gate).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def _shift(x):  # x-transformers' token shift: half the features one position later
    return torch.cat([F.pad(x[..., :D // 2], (0, 0, 1, -1)), x[..., D // 2:]], -1)


def test_a_negative_pad_crops_in_the_placement_matmul_and_runs_bit_exact():
    """Before: refused ('a crop (negative pad); only zero padding')."""
    graph, _, cos = check(_model(_shift), _ids())
    assert ops(graph) == ["embedding", "linear", "constant", "matmul", "linear", "lut",
                          "concat"]
    np.testing.assert_array_equal(graph.nodes[2].params["value"], np.eye(S, k=-1))
    assert cos > 0.999, cos
    x = _ids(4)
    r = qasic.evaluate(_model(_shift).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


REFUSED = {
    "max_apart": (lambda x: x.view(x.shape[0], S, 2, 8).amax(dim=(1, 3)),
                  "only over adjacent per-sample axes"),
    "max_batch": (lambda x: x.amax(dim=(0, 1)), "only over adjacent per-sample axes"),
    # a vector quantizer's nearest codebook entry: rows picked by the values
    "argmax": (lambda x: x[:, :, :4][..., x.max(dim=-1).indices[0, 0]],
               "the indices of a max (an argmax: a selection that depends on the values"),
    "pad_batch": (lambda x: F.pad(x, (0, 0, 0, 0, 1, 0)), "the batch axis"),
    "crop_all": (lambda x: F.pad(x, (0, 0, -S, 0)), "crop all 12 positions of dim 1"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_other_pools_and_pads_are_refused_in_one_line(name):
    f, why = REFUSED[name]
    with pytest.raises(UnsupportedOpError) as e:
        capture(_model(f).eval(), torch.from_numpy(_ids(2)))
    assert why in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("n", [4, 5])
def test_rotations_compose_to_any_permutation(n):
    import itertools

    from qasic.quant.lowering_seq import rotations
    a = np.arange(math.prod(range(2, 2 + n))).reshape(range(2, 2 + n))
    for perm in itertools.permutations(range(n)):
        b = a
        for r in rotations(perm):
            k = next(i for i, j in enumerate(r) if j != i)  # a prefix in place, two blocks
            assert list(r[k:]) == sorted(r[k:], key=lambda j: j < r[k])  # swapped
            b = b.transpose(r)
        assert np.array_equal(b, a.transpose(perm)), perm


def _unroll(x):  # Hiera's unroll: a permute that moves 5 groups of per-sample axes
    return x.view(x.shape[0], 2, 2, 3, 2, 8).permute(0, 2, 4, 1, 5, 3).reshape(x.shape[0], S, D)


def test_a_permute_of_more_than_three_groups_is_a_chain_of_rotations_and_runs_bit_exact():
    """Before: the program refused it ('moves 5 axes; qasic permutes 2-D and 3-D')."""
    graph, _, cos = check(_model(_unroll), _ids())
    perms = [n.attrs["perm"] for n in graph.nodes if n.op == "permute"]
    assert perms == [(1, 2, 3, 4, 0), (0, 2, 3, 4, 1), (0, 1, 3, 4, 2), (0, 1, 2, 4, 3)]
    assert cos > 0.999, cos  # 0.99994
    x = _ids(4)
    r = qasic.evaluate(_model(_unroll).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]

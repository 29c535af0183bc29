import numpy as np

from qasic.quant.observers import (
    affine,
    maxabs_scales,
    minmax_range,
    mse_scales,
    percentile_range,
    quantize_weight,
)


def test_affine_covers_zero_exactly():
    tq = affine(0.0, 2.55, 8)
    assert tq.zero_point == -128 and np.isclose(tq.scale, 0.01)
    tq = affine(-1.0, 3.0, 8)
    assert tq.qmin <= tq.zero_point <= tq.qmax
    # the code range spans [lo, hi] to within one step, and real 0 is the code zero_point
    assert np.isclose(tq.scale * (tq.qmin - tq.zero_point), -1.0, atol=tq.scale)
    assert np.isclose(tq.scale * (tq.qmax - tq.zero_point), 3.0, atol=tq.scale)


def test_affine_of_a_constant_tensor_is_valid():
    tq = affine(0.0, 0.0, 8)
    assert tq.scale > 0


def test_percentile_ignores_outliers_minmax_does_not():
    v = np.concatenate([np.linspace(-1, 1, 100_000), [50.0]])
    assert minmax_range(v)[1] == 50.0
    assert percentile_range(v, 99.99)[1] < 1.01


def test_weight_codes_stay_in_the_symmetric_range():
    w = np.random.default_rng(0).normal(size=(8, 3, 3, 4))
    for bits in (2, 3, 4, 8):
        q = (1 << (bits - 1)) - 1
        for scales in (maxabs_scales(w, bits), mse_scales(w, bits)):
            codes = quantize_weight(w, scales, bits)
            assert codes.min() >= -q and codes.max() <= q
    assert set(np.unique(quantize_weight(w, mse_scales(w, 2), 2))) <= {-1, 0, 1}


def test_mse_clipping_never_loses_to_maxabs():
    w = np.random.default_rng(1).standard_t(3, size=(16, 100))  # heavy tails
    for bits in (2, 3, 4):
        errs = []
        for scales in (maxabs_scales(w, bits), mse_scales(w, bits)):
            deq = quantize_weight(w, scales, bits) * scales[:, None]
            errs.append(((deq - w) ** 2).sum(axis=1))
        assert np.all(errs[1] <= errs[0] + 1e-12)
        assert errs[1].sum() < errs[0].sum()


def test_all_zero_channel_gets_a_positive_scale():
    w = np.zeros((2, 5))
    assert np.all(maxabs_scales(w, 4) > 0) and np.all(mse_scales(w, 4) > 0)

import numpy as np

from qasic.models.digits import load_digits_split


def test_split_is_fixed_stratified_and_scaled():
    a, b = load_digits_split(), load_digits_split()
    assert a.train_x.shape == (1437, 1, 8, 8) and a.test_x.shape == (360, 1, 8, 8)
    assert a.train_x.dtype == np.float32 and a.test_y.dtype == np.int64
    assert 0.0 <= a.train_x.min() and a.train_x.max() <= 1.0
    assert np.array_equal(a.test_x, b.test_x) and np.array_equal(a.train_y, b.train_y)
    counts = np.bincount(a.test_y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 per class

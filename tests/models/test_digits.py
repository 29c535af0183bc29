import numpy as np

from qasic.models.digits import load_digits_split


def test_split_is_fixed_stratified_and_scaled():
    a, b = load_digits_split(), load_digits_split()
    assert a.train_x.shape == (1181, 1, 8, 8) and a.test_x.shape == (360, 1, 8, 8)
    assert a.val_x.shape == (256, 1, 8, 8) and a.val_y.shape == (256,)
    assert a.train_x.dtype == np.float32 and a.test_y.dtype == np.int64
    assert 0.0 <= a.train_x.min() and a.train_x.max() <= 1.0
    assert np.array_equal(a.test_x, b.test_x) and np.array_equal(a.train_y, b.train_y)
    counts = np.bincount(a.test_y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 per class


def test_validation_is_held_out_of_training_and_leaves_the_test_split_alone():
    from sklearn.datasets import load_digits

    from qasic.models.digits import PIXEL_MAX, SPLIT_SEED, TEST_FRACTION
    from qasic.models.split import stratified_split

    a = load_digits_split()
    data = load_digits()
    x = (data.images / PIXEL_MAX).astype(np.float32)[:, None, :, :]
    plain = stratified_split(x, data.target, TEST_FRACTION, SPLIT_SEED)
    assert np.array_equal(a.test_x, plain.test_x) and len(plain.val_x) == 0
    # train + validation are the plain split's training samples, each used once
    rows = lambda *xs: sorted(map(bytes, np.concatenate(xs).reshape(-1, 64)))
    assert rows(a.train_x, a.val_x) == rows(plain.train_x)
    assert np.array_equal(np.bincount(a.val_y, minlength=10),
                          np.bincount(plain.train_y, minlength=10) - np.bincount(a.train_y))

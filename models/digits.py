"""The scikit-learn digits data set (ships with sklearn: no download) as a fixed split.

Split: 80/20, stratified by class, ``random_state=0`` (360 test samples); 256 of the other 1437
are held out of training as the validation split (same seed, stratified), 1181 train. The split
seed is fixed on purpose, independent of the model seed, so every model is scored on the same
test set. Inputs are float32 (N, 1, 8, 8): the 0..16 pixel intensities divided by 16, in [0, 1].
"""

from __future__ import annotations

import numpy as np

from qasic.models.split import Split, stratified_split

SPLIT_SEED = 0
TEST_FRACTION = 0.2
VALIDATION_SAMPLES = 256
PIXEL_MAX = 16.0  # digits pixels are integers 0..16

DigitsSplit = Split  # the name this module exported before the loaders shared one type


def load_digits_split() -> Split:
    """The fixed stratified split (seed 0) of sklearn's ``load_digits``: 1181 / 256 / 360."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / PIXEL_MAX).astype(np.float32)[:, None, :, :]
    return stratified_split(x, data.target.astype(np.int64), TEST_FRACTION, SPLIT_SEED,
                            VALIDATION_SAMPLES)

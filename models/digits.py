"""The scikit-learn digits data set (ships with sklearn: no download) as a fixed train/test split.

Split: 80/20, stratified by class, ``random_state=0`` (1437 train / 360 test samples). The split
seed is fixed on purpose, independent of the model seed, so every model is scored on the same
test set. Inputs are float32 (N, 1, 8, 8): the 0..16 pixel intensities divided by 16, in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 0
TEST_FRACTION = 0.2
PIXEL_MAX = 16.0  # digits pixels are integers 0..16


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    train_x: np.ndarray  # float32 (N, 1, 8, 8) in [0, 1]
    train_y: np.ndarray  # int64 (N,) class 0..9
    test_x: np.ndarray
    test_y: np.ndarray


def load_digits_split() -> DigitsSplit:
    """The fixed 80/20 stratified split (seed 0) of sklearn's ``load_digits``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / PIXEL_MAX).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    tx, vx, ty, vy = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED
    )
    return DigitsSplit(tx, ty, vx, vy)

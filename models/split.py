"""A data set as a fixed train/validation/test split: the shape every built-in loader returns.

The validation samples are held out of training and of the test: choices made from data (the
per-layer bits of a mixed-precision policy) are scored on them, so the test split only reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Split:
    train_x: np.ndarray  # float32 (N, C, H, W) in [0, 1], shuffled
    train_y: np.ndarray  # int64 (N,) class 0..9
    test_x: np.ndarray
    test_y: np.ndarray
    val_x: np.ndarray    # held out of training; may hold 0 samples
    val_y: np.ndarray


def stratified_split(x: np.ndarray, y: np.ndarray, test_size: float, seed: int,
                     validation_size: int = 0) -> Split:
    """Shuffle with ``seed`` and hold out ``test_size`` (a fraction in (0, 1), or an int: a
    sample count) with the class proportions of ``y``; then hold ``validation_size`` samples of
    the rest out of training the same way. The test split does not depend on
    ``validation_size``. The arrays returned are new copies."""
    from sklearn.model_selection import train_test_split

    tx, vx, ty, vy = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    if validation_size == 0:
        return Split(tx, ty, vx, vy, tx[:0].copy(), ty[:0].copy())
    tx, hx, ty, hy = train_test_split(tx, ty, test_size=validation_size, stratify=ty,
                                      random_state=seed)
    return Split(tx, ty, vx, vy, hx, hy)

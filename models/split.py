"""A data set as a fixed train/test split: the shape every built-in data set loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Split:
    train_x: np.ndarray  # float32 (N, C, H, W) in [0, 1], shuffled
    train_y: np.ndarray  # int64 (N,) class 0..9
    test_x: np.ndarray
    test_y: np.ndarray


def stratified_split(x: np.ndarray, y: np.ndarray, test_size: float, seed: int) -> Split:
    """Shuffle with ``seed`` and hold out ``test_size`` (a fraction in (0, 1), or an int: a
    sample count) with the class proportions of ``y``. The arrays returned are new copies."""
    from sklearn.model_selection import train_test_split

    tx, vx, ty, vy = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    return Split(tx, ty, vx, vy)

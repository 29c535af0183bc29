"""Real photographs for the ImageNet-shaped models: crops of scikit-learn's two sample images
(china.jpg, a temple; flower.jpg, a dahlia; 427x640 RGB, shipped with sklearn: no download).

A crop is a square window of the photo (side in source pixels, at a position given as fractions
of the free room along y and x), resized to ``size`` x ``size`` (bilinear, antialiased), maybe
mirrored, then ImageNet-normalised. The test and calibration sets use the same four window sides
at disjoint positions, so no sample of one is in the other:

- test: 2 photos x 4 sides x 8 positions (y in {0, 1} x x in {0, 1/3, 2/3, 1}) x 2 mirrors = 128;
- calibration: 2 photos x 4 sides x 8 positions (y in {1/4, 3/4} x x in {1/8, 3/8, 5/8, 7/8}) = 64.

Order: photo (china, then flower), side, y, x, mirror (test only): the first half is china.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

MEAN = (0.485, 0.456, 0.406)  # ImageNet RGB channel means and standard deviations of [0, 1]
STD = (0.229, 0.224, 0.225)
PHOTOS = ("china.jpg", "flower.jpg")
SIDES = (416, 320, 224, 160)  # window sides in source pixels (the photos are 427 high)
TEST_GRID = ((0.0, 1.0), (0.0, 1 / 3, 2 / 3, 1.0))
CALIBRATION_GRID = ((0.25, 0.75), (0.125, 0.375, 0.625, 0.875))


def eval_crops(size: int = 224) -> np.ndarray:
    """float32 (128, 3, size, size): the test crops, normalised; a new array on every call.
    (Not ``test_...``: pytest would collect it.)"""
    return _crops(size, TEST_GRID, mirrors=(False, True)).copy()


def calibration_crops(size: int = 224) -> np.ndarray:
    """float32 (64, 3, size, size): the calibration crops, disjoint from the test crops."""
    return _crops(size, CALIBRATION_GRID, mirrors=(False,)).copy()


@lru_cache(maxsize=4)
def _crops(size: int, grid: tuple[tuple[float, ...], ...], mirrors: tuple[bool, ...]
           ) -> np.ndarray:
    out = [_crop(img, side, fy, fx, size, mirror)
           for img in _photos()
           for side, fy, fx, mirror in itertools.product(SIDES, *grid, mirrors)]
    return _normalise(np.stack(out))


def _crop(img: np.ndarray, side: int, fy: float, fx: float, size: int, mirror: bool
          ) -> np.ndarray:
    """(3, size, size) float32 in [0, 1] from an (H, W, 3) uint8 photo."""
    import torch
    from torch.nn.functional import interpolate

    y, x = round(fy * (img.shape[0] - side)), round(fx * (img.shape[1] - side))
    window = torch.from_numpy(img[y:y + side, x:x + side].astype(np.float32) / 255.0)
    out = interpolate(window.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)[0].numpy()
    return out[:, :, ::-1] if mirror else out


def _normalise(x: np.ndarray) -> np.ndarray:
    mean, std = (np.array(v, np.float32)[:, None, None] for v in (MEAN, STD))
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    by_name = {f.rsplit("/", 1)[-1]: img for f, img in zip(data.filenames, data.images)}
    return tuple(by_name[p] for p in PHOTOS)

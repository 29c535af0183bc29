"""Real photographs for the ImageNet-shaped models: crops of nine photos that ship inside
installed packages (no download at run time):

- scikit-learn's sample images: china.jpg (a temple), flower.jpg (a dahlia);
- scikit-image's ``skimage/data``: chelsea.png (a tabby cat), coffee.png (a cup of coffee),
  astronaut.png (Eileen Collins), rocket.jpg (a launch pad), motorcycle_left.png (a motorcycle),
  camera.png (a cameraman with a tripod; grayscale, replicated to RGB);
- matplotlib's sample data: grace_hopper.jpg (a portrait in uniform).

scikit-image is installed without its dependencies (Makefile), so it is never imported: its files
are read from the package directory with Pillow (a matplotlib dependency).

A crop is a square window of the photo (side a fraction of the photo's short side, at a position
given as fractions of the free room along y and x), resized to ``size`` x ``size`` (bilinear,
antialiased), maybe mirrored, then ImageNet-normalised. The test and calibration sets use the
same four window sides at the four corners: the test windows at two opposite corners, the
calibration windows at the other two, so no sample of one is in the other (a test window is the
whole free room away from every calibration window along one axis; pixels still overlap, as any
two large crops of one photo do):

- test: 9 photos x 4 sides x 2 corners ((0, 0), (1, 1)) x 2 mirrors = 144;
- calibration: 9 photos x 4 sides x 2 corners ((0, 1), (1, 0)) = 72.

Order: mirror (test only), side, position, photo: the photo varies fastest, so any prefix of 9k
crops holds k of each photo, and the first 72 test crops are the unmirrored ones.
"""

from __future__ import annotations

import importlib.util
import itertools
from functools import lru_cache
from pathlib import Path

import numpy as np

MEAN = (0.485, 0.456, 0.406)  # ImageNet RGB channel means and standard deviations of [0, 1]
STD = (0.229, 0.224, 0.225)
# (where it ships, file): "sklearn" load_sample_images, "skimage" skimage/data, "matplotlib"
# mpl-data/sample_data
PHOTOS = (("sklearn", "china.jpg"), ("sklearn", "flower.jpg"), ("skimage", "chelsea.png"),
          ("skimage", "coffee.png"), ("skimage", "astronaut.png"), ("skimage", "rocket.jpg"),
          ("skimage", "motorcycle_left.png"), ("skimage", "camera.png"),
          ("matplotlib", "grace_hopper.jpg"))
SIDES = (0.9, 0.8, 0.7, 0.6)  # window sides, fractions of the photo's short side
TEST_POSITIONS = ((0.0, 0.0), (1.0, 1.0))  # (y, x) fractions of the free room
CALIBRATION_POSITIONS = ((0.0, 1.0), (1.0, 0.0))


def eval_crops(size: int = 224) -> np.ndarray:
    """float32 (144, 3, size, size): the test crops, normalised; a new array on every call.
    (Not ``test_...``: pytest would collect it.)"""
    return _crops(size, TEST_POSITIONS, mirrors=(False, True)).copy()


def calibration_crops(size: int = 224) -> np.ndarray:
    """float32 (72, 3, size, size): the calibration crops, disjoint from the test crops."""
    return _crops(size, CALIBRATION_POSITIONS, mirrors=(False,)).copy()


def photo_names() -> tuple[str, ...]:
    """The file name of each crop's photo cycles through these (crop i is of photo i % 9)."""
    return tuple(name for _, name in PHOTOS)


@lru_cache(maxsize=4)
def _crops(size: int, positions: tuple[tuple[float, float], ...], mirrors: tuple[bool, ...]
           ) -> np.ndarray:
    out = [_crop(img, side, fy, fx, size, mirror)
           for mirror, side, (fy, fx), img in itertools.product(mirrors, SIDES, positions,
                                                                _photos())]
    return _normalise(np.stack(out))


def _crop(img: np.ndarray, side: float, fy: float, fx: float, size: int, mirror: bool
          ) -> np.ndarray:
    """(3, size, size) float32 in [0, 1] from an (H, W, 3) uint8 photo."""
    import torch
    from torch.nn.functional import interpolate

    n = round(side * min(img.shape[:2]))
    y, x = round(fy * (img.shape[0] - n)), round(fx * (img.shape[1] - n))
    window = torch.from_numpy(img[y:y + n, x:x + n].astype(np.float32) / 255.0)
    out = interpolate(window.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)[0].numpy()
    return out[:, :, ::-1] if mirror else out


def _normalise(x: np.ndarray) -> np.ndarray:
    mean, std = (np.array(v, np.float32)[:, None, None] for v in (MEAN, STD))
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """Every photo of PHOTOS as (H, W, 3) uint8 RGB."""
    return tuple(_LOADERS[source](name) for source, name in PHOTOS)


def _sklearn(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


def _skimage(name: str) -> np.ndarray:
    spec = importlib.util.find_spec("skimage")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        from qasic.errors import ConfigError

        raise ConfigError("the photo crops need scikit-image's sample photos: "
                          "pip install --no-deps scikit-image")
    return _read(Path(next(iter(spec.submodule_search_locations))) / "data" / name)


def _matplotlib(name: str) -> np.ndarray:
    from matplotlib import cbook

    return _read(Path(cbook.get_sample_data(name, asfileobj=False)))


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


_LOADERS = {"sklearn": _sklearn, "skimage": _skimage, "matplotlib": _matplotlib}

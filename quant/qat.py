"""Quantization-aware fine-tuning by distillation (Polino et al. 2018, "quantized distillation").

``qat_finetune`` copies a trained float model, folds its batch norms into the preceding layers
(the same fold the PTQ capture does, taken from that capture) and fine-tunes the copy with every
conv/linear weight fake-quantized in the forward pass: symmetric per output channel at
``config.bits_for(layer)`` bits (or ``config.format_for(layer)``), scales chosen by the PTQ
path's own scalers (MSE clipping at <= 4 bits under 'auto'), recomputed from the current weights
at every forward, i.e. every optimizer step, and held constant in the backward pass. Gradients
pass straight through the rounding and are zero outside the clip range [-qmax*s, qmax*s].

Loss: alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))
where the teacher is the frozen fp32 model in eval mode. Batch norm is folded before the
fine-tune, so no batch statistics drift and the layer trained is exactly the layer exported.

The result holds the fake-quantized weights themselves (already on the quantization grid), so the
normal PTQ path (``qasic.flow.quantize_model``) recovers the same codes and calibrates activations
on the network that will run. QAT changes float weights only; nothing downstream knows about it.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from qasic.errors import ConfigError
from qasic.quant.config import QuantConfig
from qasic.quant.observers import WEIGHT_SCALERS, qmax_for, quantize_weight
from qasic.quant.weights import quantize_weights

if TYPE_CHECKING:
    from qasic.models.registry import TrainedModel

Progress = Callable[[str], None]

EPOCHS = 5
LR = 1e-3           # Adam; cosine-annealed to 0 over the fine-tune
TEMPERATURE = 4.0
ALPHA = 0.5         # weight of the label loss; 1 - ALPHA goes to the teacher
BATCH_SIZE = 32


def qat_finetune(trained: TrainedModel, config: QuantConfig, epochs: int = EPOCHS, lr: float = LR,
                 temperature: float = TEMPERATURE, alpha: float = ALPHA, seed: int = 0,
                 train_x: np.ndarray | None = None, train_y: np.ndarray | None = None,
                 progress: Progress | None = None) -> TrainedModel:
    """A copy of ``trained`` (a TrainedModel) whose module is fine-tuned for ``config``.

    ``train_x`` float32 (N, ...) in the model's layout and ``train_y`` int64 (N,) default to the
    built-in model's training split. Deterministic for a given seed (one thread). The copy's
    module has its batch norms folded and its weights on the quantization grid; its
    ``fp32_accuracy`` is that module's float accuracy on the test split."""
    _check_hyper(epochs, lr, temperature, alpha)
    x, y = _training_data(trained, train_x, train_y)
    from qasic.models.train import deterministic, float_accuracy

    start = time.perf_counter()
    with deterministic(seed):
        student = fold_for_qat(trained, config)
        teacher = _teacher_logits(trained.module, x)
        _fit(student, x, y, teacher, epochs, lr, temperature, alpha, seed, progress)
        for layer in _fake_quantized(student):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    student.eval()
    if progress:
        progress(f"{trained.name}: QAT {epochs} epochs in {time.perf_counter() - start:.1f} s")
    acc = float_accuracy(student, trained.test_inputs, trained.test_labels)
    return dataclasses.replace(trained, module=student, fp32_accuracy=acc)


def fake_quantize(w: Tensor, deq: Tensor, limit: Tensor) -> Tensor:
    """Forward ``deq`` (the quantized weight); backward the straight-through estimator: gradient
    1 where |w| <= limit (per output channel, broadcast), 0 where the quantizer clips."""
    clipped = torch.clamp(w, -limit, limit)
    return clipped + (deq - clipped).detach()


def distillation_loss(student: Tensor, teacher: Tensor, labels: Tensor, temperature: float,
                      alpha: float) -> Tensor:
    """alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(p_teacher || p_student), both
    softmaxes at temperature T, KL averaged over the batch. T^2 keeps the soft-target gradient
    the same size as the label gradient whatever T is (Hinton et al. 2015)."""
    hard = F.cross_entropy(student, labels)
    soft = F.kl_div(F.log_softmax(student / temperature, dim=1),
                    F.log_softmax(teacher / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * hard + (1.0 - alpha) * temperature ** 2 * soft


class WeightQuantizer(nn.Module):
    """A parametrization of one layer's weight: ``fake_quantize`` with the PTQ path's scales."""

    def __init__(self, bits: int, fmt: str | None, clip: str) -> None:
        super().__init__()
        self.bits, self.fmt, self.clip = bits, fmt, clip

    def forward(self, w: Tensor) -> Tensor:
        deq, limit = dequantized(w.detach().double().numpy(), self.bits, self.fmt, self.clip)
        shape = (-1,) + (1,) * (w.ndim - 1)
        return fake_quantize(w, torch.from_numpy(deq).to(w.dtype),
                             torch.from_numpy(limit).to(w.dtype).reshape(shape))


def dequantized(w: np.ndarray, bits: int, fmt: str | None,
                clip: str) -> tuple[np.ndarray, np.ndarray]:
    """(real value of w's quantized codes, (OC,) clip limit) exactly as ``quantize`` encodes a
    layer: integer codes with WEIGHT_SCALERS[clip], or the per-channel format ``fmt``."""
    if fmt is None:
        scale = WEIGHT_SCALERS[clip](w, bits)
        return _per_channel(quantize_weight(w, scale, bits), scale), qmax_for(bits) * scale
    lw = quantize_weights(w, fmt, clip)
    top = qmax_for(bits) if lw.lut is None else np.abs(lw.lut).max()
    return _per_channel(lw.levels, lw.scale), top * lw.scale


def _per_channel(levels: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return levels * scale.reshape((-1,) + (1,) * (levels.ndim - 1))


def fold_for_qat(trained: TrainedModel, config: QuantConfig) -> nn.Module:
    """A copy of ``trained.module`` with batch norm folded into its conv/linear layers (weights
    and biases taken from the PTQ capture, so the fold is the exported one), every batch norm
    replaced by Identity, and a WeightQuantizer on each weighted layer."""
    from qasic.quant.torch_export import capture

    graph = capture(trained.module, trained.example_input, trained.name)
    layers = [n.name for n in graph.weighted_nodes()]
    for name in config.named_layers:
        if name not in layers:
            raise ConfigError(f"the QAT config names layer {name!r}, which model "
                              f"{trained.name} does not have; its layers: {', '.join(layers)}")
    student = copy.deepcopy(trained.module)
    for node in graph.weighted_nodes():
        layer = _layer(student, node.name)
        _load_folded(layer, node.params["weight"], node.params["bias"])
        bits = config.bits_for(node.name)
        quantizer = WeightQuantizer(bits, config.format_for(node.name), config.clipping_for(bits))
        parametrize.register_parametrization(layer, "weight", quantizer)
    for name, module in list(student.named_modules()):
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            student.set_submodule(name, nn.Identity())
    return student


def _layer(module: nn.Module, name: str) -> nn.Conv2d | nn.Linear:
    try:
        layer = module.get_submodule(name)
    except AttributeError:
        layer = None
    if not isinstance(layer, (nn.Conv2d, nn.Linear)):
        raise ConfigError(f"QAT needs layer {name!r} to be an nn.Conv2d or nn.Linear submodule "
                          f"of that path; it is {type(layer).__name__}")
    return layer


def _load_folded(layer: nn.Conv2d | nn.Linear, weight: np.ndarray, bias: np.ndarray) -> None:
    """FGraph conv weights are (OC, KH, KW, IC); torch wants (OC, IC, KH, KW)."""
    w = torch.from_numpy(weight).float()
    if isinstance(layer, nn.Conv2d):
        w = w.permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        layer.weight.copy_(w)
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros(len(bias)))
        layer.bias.copy_(torch.from_numpy(bias).float())


def _fake_quantized(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if parametrize.is_parametrized(m, "weight")]


def _teacher_logits(teacher: nn.Module, x: Tensor) -> Tensor:
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.no_grad():
            return teacher(x)
    finally:
        teacher.train(was_training)


def _fit(student: nn.Module, x: Tensor, y: Tensor, teacher: Tensor, epochs: int, lr: float,
         temperature: float, alpha: float, seed: int, progress: Progress | None) -> None:
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    student.train()
    for epoch in range(epochs):
        loss_sum = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(BATCH_SIZE):
            opt.zero_grad()
            loss = distillation_loss(student(x[idx]), teacher[idx], y[idx], temperature, alpha)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
        sched.step()
        if progress:
            progress(f"QAT epoch {epoch + 1}/{epochs} loss {loss_sum / len(x):.4f}")


def _training_data(trained: TrainedModel, train_x: np.ndarray | None,
                   train_y: np.ndarray | None) -> tuple[Tensor, Tensor]:
    if (train_x is None) != (train_y is None):
        raise ConfigError("give both train_x and train_y, or neither (the built-in training split)")
    if train_x is None:
        train_x, train_y = _builtin_split(trained.name)
    x = np.ascontiguousarray(train_x, dtype=np.float32)
    y = np.ascontiguousarray(train_y, dtype=np.int64)
    if len(x) == 0 or len(x) != len(y):
        raise ConfigError(f"train_x has {len(x)} samples and train_y {len(y)}; they must match "
                          "and be non-empty")
    return torch.from_numpy(x), torch.from_numpy(y)


def _builtin_split(name: str) -> tuple[np.ndarray, np.ndarray]:
    from qasic.models.recipes import RECIPES
    from qasic.models.registry import DATASETS

    if name not in RECIPES:
        raise ConfigError(f"model {name!r} is not built in, so QAT has no training data; "
                          "pass train_x and train_y")
    data = DATASETS[RECIPES[name].dataset]()
    return data.train_x, data.train_y


def _check_hyper(epochs: object, lr: float, temperature: float, alpha: float) -> None:
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ConfigError(f"epochs = {epochs!r} must be a positive integer")
    if not lr > 0:
        raise ConfigError(f"lr = {lr!r} must be > 0")
    if not temperature > 0:
        raise ConfigError(f"temperature = {temperature!r} must be > 0")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha = {alpha!r} must be in [0, 1] (1: labels only, 0: teacher only)")

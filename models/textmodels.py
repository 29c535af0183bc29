"""The text built-ins (``tiny_gpt``, ``minilm``) as TextModels: a TrainedModel whose inputs are
int64 token ids, plus what scoring a text model needs.

tiny_gpt: inputs (N, 64) byte windows of the corpus's test split (unseen modules), labels the
next byte of every position (N, 64); calibration windows from the train split, validation
windows from the validation split. ``fp32_accuracy`` is next-byte top-1 accuracy; perplexity and
the unigram baseline are in ``fp32_metrics``. Trained on a cache miss (about 2 minutes; see
qasic.models.gpt_train), cached at ``<cache_dir>/tiny_gpt-v<version>-seed<seed>.pt``.

minilm: inputs (N, 32) padded sentence ids (qasic.models.text.sentences; the first ``test`` are
the test set, the next ``calibration`` the calibration batch); no ground truth, so
``test_labels`` is each test sentence's nearest neighbour under the fp32 embeddings
(``labels_are_fp32``) and ``fp32_embeddings`` holds those embeddings. The seed does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from qasic.models import text
from qasic.models.recipes import TextRecipe
from qasic.models.registry import Progress, TrainedModel, _load_cached, _save, default_cache_dir


@dataclass(frozen=True, eq=False)
class TextModel(TrainedModel):
    """A TrainedModel over int64 token ids (example_input (1, seq_len) int64; calibration and
    test_inputs (N, seq_len) int64). ``score`` turns the model's outputs on ``test_inputs`` into
    the task's metrics, comparable with ``fp32_metrics``."""

    task: str = "language_model"
    pad_id: int | None = None                  # minilm: 0; tiny_gpt: None (no padding)
    fp32_metrics: dict[str, float] = field(default_factory=dict)
    fp32_embeddings: np.ndarray | None = None  # minilm: float32 (N, 384) of test_inputs

    def score(self, outputs: np.ndarray) -> dict[str, float]:
        """Metrics of ``outputs`` (float, the module's output layout) on ``test_inputs``.

        language_model: logits (N, T, 256) -> perplexity and next_token_accuracy over
        test_labels. sentence_embedding: hidden (N, T, 384) -> retrieval_agreement with the fp32
        embeddings and their mean embedding_cosine. Flattened outputs, (N, T * width), are
        reshaped to (N, T, width)."""
        outputs = np.asarray(outputs, dtype=np.float32).reshape(*self.test_inputs.shape, -1)
        if self.task == "language_model":
            return language_model_metrics(outputs, self.test_labels)
        from qasic.models.minilm import embed, retrieval_agreement

        emb = embed(outputs, self.test_inputs, self.pad_id)
        return {"retrieval_agreement": retrieval_agreement(emb, self.fp32_embeddings),
                "embedding_cosine": float(np.mean(np.sum(emb * self.fp32_embeddings, axis=1)))}


def language_model_metrics(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    from qasic.models.tiny_gpt import nll

    return {"perplexity": float(np.exp(nll(logits, targets))),
            "next_token_accuracy": float(np.mean(np.argmax(logits, axis=-1) == targets))}


def get_text_model(recipe: TextRecipe, seed: int = 0, cache_dir: str | Path | None = None,
                   progress: Progress | None = None) -> TextModel:
    """The built-in text model of ``recipe`` (see the module doc)."""
    if recipe.task == "language_model":
        return _tiny_gpt(recipe, seed, cache_dir, progress)
    return _minilm(recipe)


def cache_path(recipe: TextRecipe, seed: int, cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"{recipe.name}-v{recipe.version}-seed{seed}.pt"


def _tiny_gpt(recipe: TextRecipe, seed: int, cache_dir: str | Path | None,
              progress: Progress | None) -> TextModel:
    from qasic.models.gpt_train import TrainSettings, train_gpt
    from qasic.models.tiny_gpt import GPTConfig, TinyGPT, encode, unigram_perplexity, windows

    train_ids = encode(text.corpus("train"))
    torch.manual_seed(seed)
    module = TinyGPT(GPTConfig(context=recipe.seq_len)).eval()
    path = cache_path(recipe, seed, cache_dir)
    if not _load_cached(module, path):
        module, _ = train_gpt(module.config, TrainSettings(), train_ids, seed, progress)
        _save(module.eval(), path)
    calib = windows(train_ids, recipe.seq_len, recipe.calibration)[:, :-1]
    val = windows(encode(text.corpus("validation")), recipe.seq_len, recipe.test)
    test = windows(encode(text.corpus("test")), recipe.seq_len, recipe.test)
    with torch.no_grad():
        metrics = language_model_metrics(module(torch.from_numpy(test[:, :-1])).numpy(),
                                         test[:, 1:])
    metrics["unigram_perplexity"] = unigram_perplexity(train_ids, test)
    return TextModel(
        name=recipe.name, module=module, example_input=torch.from_numpy(test[:1, :-1].copy()),
        calibration=calib, test_inputs=test[:, :-1], test_labels=test[:, 1:],
        fp32_accuracy=metrics["next_token_accuracy"], validation_inputs=val[:, :-1],
        validation_labels=val[:, 1:], task=recipe.task, fp32_metrics=metrics)


def _minilm(recipe: TextRecipe) -> TextModel:
    from qasic.models.minilm import (
        PAD_ID,
        encode_sentences,
        load_minilm,
        nearest_neighbours,
        token_counts,
        tokenize,
    )

    module = load_minilm()
    sentences = text.sentences(recipe.test + recipe.calibration)
    test, calib = sentences[:recipe.test], sentences[recipe.test:]
    ids = tokenize(test, recipe.seq_len)
    emb = encode_sentences(module, ids)
    truncated = int((token_counts(test) > recipe.seq_len).sum())
    return TextModel(
        name=recipe.name, module=module, example_input=torch.from_numpy(ids[:1].copy()),
        calibration=tokenize(calib, recipe.seq_len), test_inputs=ids,
        test_labels=nearest_neighbours(emb), fp32_accuracy=1.0, labels_are_fp32=True,
        task=recipe.task, pad_id=PAD_ID, fp32_embeddings=emb,
        fp32_metrics={"sentences": float(len(test)), "truncated": float(truncated),
                      "retrieval_agreement": 1.0, "embedding_cosine": 1.0})

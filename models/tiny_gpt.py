"""``tiny_gpt``: a small decoder-only GPT over bytes, and its float reference metrics.

Tokens are UTF-8 bytes (vocab 256, no special ids): ``encode``/``decode``. The network: token
embedding + learned position embedding, ``depth`` blocks of pre-LayerNorm causal self-attention
and a GELU MLP (both residual), a final LayerNorm and an untied LM head (every weight belongs to
one layer). Input (B, T) int64 ids with T <= context; output (B, T, 256) float32 logits.

Attention is written two ways with the same parameters and the same numbers (tested):
``attention="sdpa"`` calls ``F.scaled_dot_product_attention(q, k, v, is_causal=True)`` after
splitting heads with view + transpose (the form torch.export emits); ``attention="explicit"``
writes ``softmax((q @ k^T) * scale masked causally with -inf) @ v``. ``with_attention`` rebuilds
a trained model in the other form. Training: qasic.models.gpt_train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from qasic.errors import ConfigError, InputError

VOCAB = 256  # byte-level
ATTENTION_FORMS = ("sdpa", "explicit")


@dataclass(frozen=True)
class GPTConfig:
    context: int = 64        # tokens per input at most (the learned positions)
    width: int = 192         # model dimension
    depth: int = 4           # transformer blocks
    heads: int = 6           # width / heads per head
    mlp_ratio: int = 4       # MLP hidden = mlp_ratio * width
    attention: str = "sdpa"  # or "explicit": same numbers, see the module doc

    def __post_init__(self) -> None:
        for name in ("context", "width", "depth", "heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ConfigError(f"GPTConfig.{name} = {getattr(self, name)}: give a value >= 1")
        if self.width % self.heads:
            raise ConfigError(f"GPTConfig width {self.width} is not a multiple of heads "
                              f"{self.heads}; pick heads dividing the width")
        if self.attention not in ATTENTION_FORMS:
            raise ConfigError(f"GPTConfig.attention = {self.attention!r}: use "
                              f"{' or '.join(map(repr, ATTENTION_FORMS))}")


class Attention(nn.Module):
    """Causal multi-head self-attention; (B, T, width) -> (B, T, width)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.heads, self.explicit = config.heads, config.attention == "explicit"
        self.q, self.k, self.v, self.proj = (nn.Linear(config.width, config.width)
                                             for _ in range(4))
        # True above the diagonal: the later positions a query must not see
        future = torch.ones(config.context, config.context, dtype=torch.bool).triu(1)
        self.register_buffer("future", future, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = (self._split(m(x), b, t, c) for m in (self.q, self.k, self.v))
        if self.explicit:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // self.heads))
            scores = scores.masked_fill(self.future[:t, :t], float("-inf"))
            y = scores.softmax(dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))

    def _split(self, x: Tensor, b: int, t: int, c: int) -> Tensor:
        return x.view(b, t, self.heads, c // self.heads).transpose(1, 2)  # (B, heads, T, dh)


class Block(nn.Module):
    """x + attn(ln1(x)), then + mlp(ln2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = config.mlp_ratio * config.width
        self.ln1, self.ln2 = nn.LayerNorm(config.width), nn.LayerNorm(config.width)
        self.attn = Attention(config)
        self.fc1, self.act, self.fc2 = (nn.Linear(config.width, hidden), nn.GELU(),
                                        nn.Linear(hidden, config.width))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class TinyGPT(nn.Module):
    """(B, T) int64 byte ids, T <= context -> (B, T, 256) float32 next-byte logits."""

    def __init__(self, config: GPTConfig = GPTConfig()) -> None:
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(VOCAB, config.width)
        self.pos = nn.Parameter(torch.zeros(config.context, config.width))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.ln_f = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, VOCAB, bias=False)
        self._init_weights()

    def forward(self, ids: Tensor) -> Tensor:
        x = self.tok(ids) + self.pos[:ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def _init_weights(self) -> None:
        """GPT-2's: N(0, 0.02), zero biases, residual projections scaled by 1/sqrt(2 depth)."""
        for name, p in self.named_parameters():
            if p.dim() == 1 and "ln" not in name:
                nn.init.zeros_(p)
            elif p.dim() > 1:
                std = 0.02 / math.sqrt(2 * self.config.depth) if name.endswith(
                    ("proj.weight", "fc2.weight")) else 0.02
                nn.init.normal_(p, std=std)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def with_attention(module: TinyGPT, attention: str) -> TinyGPT:
    """A copy of ``module`` (same weights, eval mode) whose attention is written as
    ``attention`` ("sdpa" or "explicit")."""
    other = TinyGPT(replace(module.config, attention=attention))
    other.load_state_dict(module.state_dict())
    return other.eval()


def encode(text: str) -> np.ndarray:
    """int64 (len of the UTF-8 bytes,): the byte ids of ``text``."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def decode(ids: np.ndarray | list[int]) -> str:
    """The text of byte ids (invalid UTF-8 shows as U+FFFD)."""
    return bytes(np.asarray(ids, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")


def windows(tokens: np.ndarray, length: int, count: int | None = None) -> np.ndarray:
    """int64 (N, length + 1): non-overlapping windows of ``tokens``, each an input of ``length``
    ids and its ``length`` next-token targets (``w[:, :-1]``, ``w[:, 1:]``); with ``count``,
    ``count`` of them evenly spaced over the text."""
    n = (len(tokens) - 1) // length
    if n < 1 or (count is not None and not 0 < count <= n):
        raise InputError(f"{len(tokens)} tokens make {n} windows of {length}; asked for "
                         f"{count if count is not None else 'at least one'}")
    starts = np.arange(n) * length
    if count is not None:
        starts = starts[np.linspace(0, n - 1, count).round().astype(np.int64)]
    return np.stack([tokens[s:s + length + 1] for s in starts]).astype(np.int64)


def nll(logits: np.ndarray | Tensor, targets: np.ndarray | Tensor) -> float:
    """Mean negative log-likelihood (nats) of ``targets`` (N, T) under ``logits`` (N, T, V)."""
    logits, targets = torch.as_tensor(logits).double(), torch.as_tensor(targets)
    return float(F.cross_entropy(logits.flatten(0, 1), targets.flatten()))


def perplexity(module: nn.Module, token_windows: np.ndarray, batch: int = 64) -> float:
    """exp(mean NLL) of every target of ``token_windows`` (N, T + 1) int64 (see ``windows``)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(token_windows), batch):
            w = torch.from_numpy(np.ascontiguousarray(token_windows[i:i + batch]))
            total += nll(module(w[:, :-1]), w[:, 1:]) * w[:, 1:].numel()
            count += w[:, 1:].numel()
    return math.exp(total / count)


def unigram_perplexity(train_tokens: np.ndarray, token_windows: np.ndarray) -> float:
    """The baseline: perplexity of the targets of ``token_windows`` under the byte frequencies of
    ``train_tokens`` (add-one smoothed over the 256 bytes)."""
    counts = np.bincount(train_tokens, minlength=VOCAB).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return math.exp(-logp[token_windows[:, 1:]].mean())


def generate(module: TinyGPT, prompt_ids: np.ndarray | list[int], n: int) -> np.ndarray:
    """int64 (n,): ``n`` greedy next bytes after ``prompt_ids`` (at least one id).

    Every step runs one fixed-shape input (1, context): the last ``context`` ids, right-padded
    with 0; causal attention makes the logits at the last real position exactly those of the
    unpadded sequence, so a compiled fixed-shape program can follow the same steps."""
    ids = [int(i) for i in np.asarray(prompt_ids).reshape(-1)]
    if not ids:
        raise InputError("generate needs a prompt of at least one token id")
    context, out = module.config.context, []
    with torch.no_grad():
        for _ in range(n):
            window = ids[-context:]
            x = torch.zeros(1, context, dtype=torch.int64)
            x[0, :len(window)] = torch.tensor(window)
            ids.append(int(module(x)[0, len(window) - 1].argmax()))
            out.append(ids[-1])
    return np.array(out, dtype=np.int64)

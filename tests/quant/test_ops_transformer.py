"""Transformer ops captured from small torch modules: the QGraph ops and attrs they become, the
float executor against torch, and the golden reference against torch at W8A8.

Cosine bounds: one op at 8 bits keeps ~40 dB SQNR (cosine ~0.9999); chains of a few requantized
tensors ~0.999; a whole block (LayerNorm, attention, GELU MLP, residuals: ~12 requantized
tensors) ~0.999. Each bound sits well below the measured value (in the comment next to it) and
well above what a wrong mask, transpose or scale gives (0.3 .. 0.9)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.errors import ConfigError, InputError, UnsupportedOpError
from qasic.quant import QuantConfig, capture, quantize, reference
from qasic.quant.evaluate import cosine
from tests.quant.transformer_nets import Attention, Block, Fn, TokenModel, check, ops, torch_out

D, H, S = 32, 2, 8


def _seq(batch: int = 64, s: int = S, d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, s, d)).astype(np.float32)


def _ids(batch: int = 64, s: int = S, vocab: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, vocab, size=(batch, s))


def _rms(x, w):  # LLaMA's RMSNorm, written out (w: a module holding the (D,) weight)
    return w.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def _ln_written(x, w):  # Cohere's LayerNorm without bias, written out
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return w.weight * ((x - mean) * torch.rsqrt(var + 1e-5))


def _ln_var(x, w):  # xLSTM's multi-head LayerNorm, written out with var (biased)
    return w.weight * ((x - x.mean(-1, keepdim=True))
                       * torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5))


def _xglm_scores(x):  # XGLM's: masked scores clamped at finfo.min, viewed (batch * H, S, S)
    b, s, d = x.shape
    q = x.view(b, s, H, d // H).transpose(1, 2)
    low = torch.finfo(torch.float32).min
    scores = q @ q.transpose(-2, -1) + torch.full((S, S), low).triu(1)
    scores = torch.max(scores, torch.full((), low)).view(b * H, s, s)
    return torch.softmax(scores, -1).view(b, H, s, s)


def _xielu(x):  # Apertus's xIELU: two branches picked by x > 0
    neg = (torch.expm1(torch.min(x, torch.tensor(-1e-6))) - x) * 0.8 + 0.5 * x
    return torch.where(x > 0, 0.8 * x * x + 0.5 * x, neg)


def _copy_into(x):  # an in-place write into a slice of a tensor returned later
    y = F.layer_norm(x, (D,)).clone()
    y[..., :4].copy_(x[..., :4] * 2)
    return y


def _filled(x, fc, half=False):  # MiniCPM3's: a new buffer filled by copy_ into slices
    y = fc(x)
    k = y.new_empty(y.shape[:-1] + (2 * D,))
    k[..., :D].copy_(torch.tanh(y))
    if not half:
        k[..., D:].copy_(F.layer_norm(y, (D,)))
    return k


def _scan(x, fc):  # RecurrentGemma's scan: a zeros_like buffer filled token by token
    y = fc(x)
    out, h = torch.zeros_like(y), torch.zeros_like(y[:, 0])
    for t in range(y.shape[1]):
        h = torch.tanh(h) * 0.5 + y[:, t]
        out[:, t] = h
    return out


def _gelu_new(x):  # GPT-2's NewGELUActivation
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def _heads(x):  # (B, S, D) -> (B, H, S, Dh) -> back, as attention splits and merges heads
    b, s, d = x.shape
    return x.view(b, s, H, d // H).transpose(1, 2).transpose(1, 2).reshape(b, s, d)


_ANGLES = torch.arange(S)[:, None] * 0.5 ** torch.arange(D // H // 2).repeat(2)  # (S, Dh)


def _rope(x):  # Llama's rotary embedding of the heads: q cos + rotate_half(q) sin
    b, s, d = x.shape
    q = x.view(b, s, H, d // H).transpose(1, 2)
    half = q.shape[-1] // 2
    rot = torch.cat((-q[..., half:], q[..., :half]), -1)
    return (q * torch.cos(_ANGLES) + rot * torch.sin(_ANGLES)).transpose(1, 2).reshape(b, s, d)


def _rope_every_two(x):  # GPT-J's: q cos + rotate_every_two(q) sin, channels in pairs
    b, s, d = x.shape
    q = x.view(b, s, H, d // H)
    rot = torch.stack((-q[..., 1::2], q[..., ::2]), -1).flatten(-2)
    angles = _ANGLES[:, None].repeat_interleave(1, 1)  # (S, 1, Dh): per position and channel
    return (q * torch.cos(angles) + rot * torch.sin(angles)).reshape(b, s, d)


def _rope_every_two_features(x):  # CodeGen's: rotate_every_two of a linear's first 8 features
    r = x[..., :8]  # a part of a linear's output features: a linear of those weight rows
    rot = torch.stack((-r[..., 1::2], r[..., ::2]), -1).flatten(-2)
    return torch.cat((r * torch.cos(_ANGLES[:, :8]) + rot * torch.sin(_ANGLES[:, :8]),
                      x[..., 8:]), -1)


_BIAS = torch.randn(1, H, S, S, generator=torch.Generator().manual_seed(0))


def _repeat_kv(x):  # (B, S, D) as 2 heads, each read by 2 query heads (Llama's repeat_kv)
    b, s, d = x.shape
    kv = x.view(b, s, 2, d // 2).transpose(1, 2)[:, :, None].expand(b, 2, 2, s, d // 2)
    return kv.reshape(b, 4, s, d // 2).transpose(1, 2).reshape(b, s, 2 * d)


# a band of 5 keys around each query: not causal, not all ones (a sliding window)
_BAND = torch.ones(S, S).triu(3).bool() | torch.ones(S, S).tril(-3).bool()
# per head: a causal window of 3, and the keys of the query's own half of the sequence
_POS = torch.arange(S)
_PER_HEAD = torch.stack([(_POS[None] > _POS[:, None]) | (_POS[None] <= _POS[:, None] - 3),
                         _POS[None] // (S // 2) != _POS[:, None] // (S // 2)])[None]
_ALIBI = -torch.tensor([0.5, 0.25])[:, None, None] * _POS  # (H, 1, S): ALiBi's slopes * key


def _heads4(x):  # (B, S, D) -> (B, H, S, Dh)
    return x.view(x.shape[0], S, H, D // H).transpose(1, 2)


def _bloom_qkv(x, fc):  # BLOOM's fused QKV: (B, S, 3D) viewed (B, S, H, 3, Dh), split by select
    t = fc(x).view(x.shape[0], S, H, 3, D // H)
    q, k, v = (t[..., i, :].transpose(1, 2) for i in range(3))
    return (torch.softmax(q @ k.transpose(-1, -2), -1) @ v).transpose(1, 2).reshape(x.shape)


def _baddbmm(x, fc):  # BLOOM's scores: baddbmm(alibi, Q, K^T, alpha = 1/sqrt(Dh)), then causal
    q = fc(x).view(x.shape[0], S, H, D // H).transpose(1, 2).reshape(-1, S, D // H)
    scores = torch.baddbmm(_ALIBI.repeat(x.shape[0], 1, 1), q, q.transpose(1, 2), beta=1.0,
                           alpha=0.25).view(x.shape[0], H, S, S)
    return torch.softmax(scores.masked_fill(torch.ones(S, S).triu(1).bool(), -1e9), -1)


_REL = torch.randn(S, D // H, generator=torch.Generator().manual_seed(2))  # (keys, Dh)


def _query_bias(x, fc):  # SAM's: sdpa with attn_mask = q @ a constant (keys, Dh) table
    q = _heads4(fc(x))
    return F.scaled_dot_product_attention(q, q, q, attn_mask=q @ _REL.T)


def _altup(x, fc, coef):  # Gemma 3n's AltUp: 2 streams stacked in front of the batch, mixed
    s = torch.stack([x, fc(x)], 0)  # by a (2, 2) matrix per token, one updated in place
    c = coef(x).view(*x.shape[:-1], 2, 2)
    p = torch.matmul(s.permute(1, 2, 3, 0), c).permute(3, 0, 1, 2) + s
    p = p + (x - p[0]).repeat(2, 1, 1, 1) * 0.5
    p[1:] += torch.tanh(x)
    return p[0] + p[1]


_QUERIES = torch.randn(1, H, 4, D // H, generator=torch.Generator().manual_seed(3))


def _learned_queries(x, fc):  # MaskFormer's decoder: learned queries attend among themselves
    q = F.scaled_dot_product_attention(_QUERIES, _QUERIES, _QUERIES)  # (constants: folded)
    kv = _heads4(fc(x))                                               # then to the image
    return F.scaled_dot_product_attention(q.expand(x.shape[0], -1, -1, -1), kv, kv)


def _stages(x, a, c):  # ZoeDepth's reassemble: stages joined along the batch axis, normed
    h = F.layer_norm(torch.cat([a(x), c(x)], 0), (D,))  # together, split back
    p, q = h.split(x.shape[0], 0)
    return p + 2 * q


def _stages_whole(x, a, c):  # the joined batch also read whole: batch_parts leaves it joined
    h = F.layer_norm(torch.cat([a(x), c(x)], 0), (D,))
    p, q = h.split(x.shape[0], 0)
    return p + 2 * q + h.narrow(0, 0, x.shape[0])


def _mean_sq(t):
    return t.pow(2).mean(-1, keepdim=True)


def _rescaled(x, fc):  # Gemma 3n: a stream scaled to the rms of the embeddings
    y = fc(x)
    return y * _mean_sq(x) ** 0.5 / torch.sqrt(_mean_sq(y).clamp(min=1e-5))


# Swin's window attention: 2 windows of 4 tokens, a relative position bias per head and a
# shifted-window mask per window (-100, as HF writes it), the same for every sample
_WIN_BIAS = torch.randn(H, 4, 4, generator=torch.Generator().manual_seed(1)) \
    + torch.tensor([0.0, -100.0])[:, None, None, None] * (1 - torch.eye(4))


def _windows(x, fc):  # (B, 8, D): a roll, 2 windows, sdpa with the bias, windows merged back
    b = x.shape[0]
    t = torch.roll(F.pad(fc(x), (0, 0, 0, 0)), -1, 1)
    q = t.view(b, 2, 4, H, D // H).permute(0, 1, 3, 2, 4).reshape(b * 2, H, 4, D // H)
    y = F.scaled_dot_product_attention(q, q, q, attn_mask=_WIN_BIAS.repeat(b, 1, 1, 1))
    return torch.roll(y.view(b, 2, H, 4, D // H).permute(0, 1, 3, 2, 4).reshape(b, S, D), 1, 1)


def _weight():
    ln = nn.LayerNorm(D)
    nn.init.normal_(ln.weight, 1.0, 0.3)
    return ln


def _split_parts(x):  # a split of an activation no linear made, its parts used apart
    a, b = F.layer_norm(x, (D,)).split(D // 2, -1)
    return torch.tanh(a) + b


def _after_linear(f):
    return Fn(lambda x, fc: f(fc(x)), nn.Linear(D, D))


torch.manual_seed(0)
ATTENTION_OPS = (["linear"] * 3 + ["reshape", "permute"] * 3
                 + ["matmul", "softmax", "matmul", "permute", "reshape", "linear"])
CASES = {
    # name: (module, expected ops, cosine bound); measured cosine in the comment
    "linear_3d": (nn.Linear(D, 16), ["linear"], 0.999),                     # 0.99992
    "layer_norm": (nn.LayerNorm(D), ["norm"], 0.999),                       # 0.99993
    "rms_norm": (nn.RMSNorm(D, eps=1e-6), ["norm"], 0.999),                 # 0.99993
    "rms_written": (Fn(lambda x, fc, w: _rms(fc(x), w), nn.Linear(D, D), _weight()),
                    ["linear", "norm"], 0.999),                             # 0.99985
    # a LayerNorm written out (x - mean(x), the mean of its squares): a norm with center True
    "ln_written": (Fn(lambda x, fc, w: _ln_written(fc(x), w), nn.Linear(D, D), _weight()),
                   ["linear", "norm"], 0.999),                             # 0.99986
    # a floor at finfo.min leaves masked scores as they are; a view of them views the mask
    "clamped_mask": (_after_linear(_xglm_scores),
                     ["linear", "reshape", "permute", "matmul", "softmax"], 0.995),  # 0.99996
    # a repeat of the heads (DiffLlama's value halves): a selection by stacked identities
    "repeat_heads": (_after_linear(lambda x: x.view(-1, S, H, D // H).transpose(1, 2).repeat(
        1, 2, 1, 1).transpose(1, 2).reshape(-1, S, 2 * D)),
                     ["linear", "reshape", "permute", "reshape", "constant", "matmul",
                      "reshape", "permute", "reshape"], 0.999),  # 0.99989
    # DeepSeek sparse attention's indexer scores: every head's queries (S, H, Dh) times one
    # key (1, Dh, S) shared by the heads: torch broadcasts its axis of 1; the heads merge
    # with the query rows, one (S H, Dh) @ (Dh, S) matmul (the key's transpose folded)
    "shared_key": (Fn(lambda x, a, b: F.relu(a(x).view(-1, S, H, D // H) @ b(x).transpose(
        -1, -2).unsqueeze(1)).flatten(2), nn.Linear(D, D), nn.Linear(D, D // H)),
                   ["linear", "linear", "reshape", "matmul", "reshape", "relu", "reshape"],
                   0.999),                                                  # 0.99974
    # the other way round, queries (1, S, Dh) shared by the heads' keys (H, Dh, S): the
    # queries repeated over the heads by a column of ones, then the per-head matmul
    "shared_queries": (Fn(lambda x, a, b: (a(x).unsqueeze(1) @ b(x).view(-1, S, H, D // H)
                                           .permute(0, 2, 3, 1)).permute(0, 2, 1, 3).flatten(2),
                          nn.Linear(D, D // H), nn.Linear(D, D)),
                       ["linear", "linear", "reshape", "permute", "reshape", "constant",
                        "matmul", "reshape", "matmul", "permute", "reshape"], 0.999),  # 0.99977
    # a where() of a comparison of an activation and branches of it: one table
    "xielu": (_after_linear(_xielu), ["linear", "lut"], 0.999),             # 0.99985
    # a new buffer whose last axis is filled by copy_ into slices: the concat of the parts
    # (the norm's part requantized to the concat's scale, as any concat's)
    "filled_buffer": (Fn(_filled, nn.Linear(D, D)), ["linear", "lut", "norm", "lut", "concat"],
                      0.999),                                               # 0.99986
    # a buffer filled along the tokens by copy_ into selects (out[:, t] = h): each token's
    # row placed by a 0/1 selector, the placements summed
    "scan_filled": (Fn(_scan, nn.Linear(D, D)), None, 0.999),
    # SEW-D's XSoftmax without padding: probs.masked_fill_(~mask, 0) with a mask of all ones
    # selects nothing: the probabilities as they are
    "fill_of_nothing": (_after_linear(lambda x: torch.softmax(x, -1).masked_fill_(
        torch.zeros(D, dtype=torch.bool), 0.0)), ["linear", "softmax"], 0.995),  # 0.99805
    # RWKV's token shift ZeroPad2d((0, 0, 1, -1)): a zero row in, the last row cropped: one
    # 0/1 selector
    "token_shift": (_after_linear(lambda x: F.pad(x, (0, 0, 1, -1))),
                    ["linear", "constant", "matmul"], 0.999),
    # a maximum or minimum of an activation and a scalar: a table
    "maximum": (_after_linear(lambda x: torch.minimum(torch.maximum(x, torch.tensor(-0.2)),
                                                      torch.tensor(0.3))),
                ["linear", "lut"], 0.999),                                  # 0.99980
    # softmax outputs step by 1/127: probabilities near 1/32 carry ~12% rounding error
    "softmax": (_after_linear(lambda x: torch.softmax(x * 2, -1)), ["linear", "softmax"],
                0.995),                                                     # 0.99893
    "gelu": (_after_linear(nn.GELU()), ["linear", "lut"], 0.999),           # 0.99986
    "gelu_tanh": (_after_linear(nn.GELU("tanh")), ["linear", "lut"], 0.999),  # 0.99988
    "gelu_written": (_after_linear(_gelu_new), ["linear", "lut"], 0.999),   # 0.99989
    "silu_written": (_after_linear(lambda x: x * torch.sigmoid(x)), ["linear", "lut"],
                     0.999),                                                # 0.99989
    "tanh": (_after_linear(torch.tanh), ["linear", "lut"], 0.999),          # 0.9999
    # x - y of two activations: an add of x and y's negating table
    "two_act_sub": (Fn(lambda x: F.layer_norm(x, (D,)) - x), ["norm", "lut", "add"],
                    0.999),                                                 # 0.99923
    "heads": (Fn(lambda x, fc: _heads(fc(x)), nn.Linear(D, D)),
              ["linear", "reshape", "permute", "permute", "reshape"], 0.999),  # 0.99991
    "attention": (Attention(D, H), ATTENTION_OPS, 0.998),                   # 0.99976
    "sdpa": (Attention(D, H, "sdpa"), ATTENTION_OPS, 0.998),                # 0.99973
    "bmm": (Attention(D, H, "bmm"), ATTENTION_OPS, 0.998),                  # 0.99975
    "alibi": (_after_linear(lambda x: torch.softmax(
        x @ x.transpose(-2, -1) + torch.arange(S) * 0.1 - 1e9 * torch.ones(S, S).triu(1), -1)),
              ["linear", "matmul", "constant", "add", "softmax"], 0.995),   # 0.99999
    # RoPE: products by constant cos/sin tables; rotate_half a linear of +-1 weights
    "rope": (Fn(lambda x, fc: _rope(fc(x)), nn.Linear(D, D)),
             ["linear", "reshape", "permute", "constant", "mul", "linear", "constant", "mul",
              "add", "permute", "reshape"], 0.999),                        # 0.99983
    # GPT-J's rotate_every_two: a stack of column selections along a new last axis, then a
    # flatten: one interleaving linear of +-1 weights
    "rope_every_two": (Fn(lambda x, fc: _rope_every_two(fc(x)), nn.Linear(D, D)),
                       ["linear", "reshape", "linear", "constant", "mul", "constant", "mul",
                        "add", "reshape"], 0.999),                         # 0.99981
    # CodeGen's: the stack's pieces are parts of a linear's output features (and a negation of
    # one): one linear of those weight rows, interleaved and signed
    "rope_every_two_features": (Fn(lambda x, fc: _rope_every_two_features(fc(x)),
                                   nn.Linear(D, D)),
                                ["linear", "linear", "constant", "mul", "constant", "mul",
                                 "add", "linear", "concat"], 0.999),  # 0.99988
    # a split's parts of an activation no linear made: a `channels` view each (no GEMM)
    "split_parts": (Fn(_split_parts), ["norm", "channels", "channels", "lut", "add"], 0.999),
    # a mean over the channels: a linear of a 1/D row; a division by it: a product by its
    # reciprocal's table, widened over the channels by a column of ones
    "channel_mean": (_after_linear(lambda x: x / (x.abs().mean(-1, keepdim=True) + 0.5)),
                     ["linear", "lut", "linear", "lut", "linear", "mul"], 0.999),
    # a part of the channels of an activation no linear made: a `channels` view, the * 2 a
    # table (it was a linear of a 2/0 selection)
    "channel_slice": (_after_linear(lambda x: torch.tanh(x)[..., :16] * 2),
                      ["linear", "lut", "channels", "lut"], 0.999),         # 0.9999
    # grouped-query heads: K/V heads repeated by a constant column of ones (repeat_kv), or
    # picked per query head (sdpa's enable_gqa)
    "repeat_kv": (Fn(lambda x, fc: _repeat_kv(fc(x)), nn.Linear(D, D)),
                  ["linear", "reshape", "permute", "reshape", "constant", "matmul", "reshape",
                   "permute", "reshape"], 0.999),                          # 0.99986
    "gqa": (Fn(lambda x, fc: F.scaled_dot_product_attention(
        x.view(-1, S, 4, 8).transpose(1, 2), *[fc(x).view(-1, S, 2, 8).transpose(1, 2)] * 2,
        enable_gqa=True), nn.Linear(D, 16)),
            ["reshape", "permute", "linear", "reshape", "permute"]
            + ["reshape", "constant", "matmul", "reshape"] * 2
            + ["matmul", "softmax", "matmul"], 0.998),                      # 0.99971
    # T5's relative position bias: a constant per (head, query, key) added to the scores
    "attention_bias": (Fn(lambda x, fc: F.scaled_dot_product_attention(
        *[fc(x).view(-1, S, H, D // H).transpose(1, 2)] * 3,
        attn_mask=_BIAS), nn.Linear(D, D)),
                       ["linear", "reshape", "permute", "matmul", "constant", "add", "softmax",
                        "matmul"], 0.998),                                  # 0.99965
    # SAM's decomposed relative positions: a bias computed from the queries (q @ a constant
    # table) as sdpa's attn_mask, an add to the scores
    "attention_bias_of_queries": (Fn(_query_bias, nn.Linear(D, D)),
                                  ["linear", "reshape", "permute", "linear", "matmul", "add",
                                   "softmax", "matmul"], 0.998),            # 0.99956
    # constant queries (learned ones) cross-attending to activations: a ``constant`` node
    "constant_queries": (Fn(_learned_queries, nn.Linear(D, D)),
                         ["linear", "reshape", "permute", "constant", "matmul", "softmax",
                          "matmul"], 0.999),                                # 0.99976
    # a cat along the batch axis (the parts outside the samples): per sample a new axis the
    # parts are placed on; a split of whole blocks of samples: selections along it
    # split back into the same parts: each part through its own norm (quant.batch_parts)
    "stages_in_batch": (Fn(_stages, nn.Linear(D, D), nn.Linear(D, D)),
                        ["linear", "linear", "norm", "norm", "add"], 0.999),  # 0.99989
    "stages_in_batch_whole": (Fn(_stages_whole, nn.Linear(D, D), nn.Linear(D, D)),
                              ["linear", "linear"] + ["reshape", "constant", "matmul",
                                                      "reshape"] * 2
                              + ["add", "norm"] + ["reshape", "constant", "matmul", "reshape"] * 2
                              + ["add", "reshape", "constant", "matmul", "reshape", "add"],
                              0.999),                                       # 0.99972
    # Gemma 3n's AltUp: a stack in front of the batch (a concat of (..., 1) views and a
    # permute), a matmul per token, repeat into a new leading axis, a broadcast add of
    # (S, D) to (1, S, D) and ``p[1:] += v`` (qasic.quant.writeback: the cat it makes)
    "altup": (Fn(_altup, nn.Linear(D, D), nn.Linear(D, 4)), None, 0.999),  # 0.99952
    # an rms used as values (of x, scaling another tensor): square, mean and power tables;
    # RMSNorm written with pow(., -0.5) a norm
    # a write into a slice of a copy returned later: the cat it makes; a stack along the
    # positions: a stack along a new last axis, permuted into place
    "inplace_copy": (Fn(_copy_into), ["norm", "channels", "lut", "channels", "lut", "concat"],
                     0.999),                                                # 0.99986
    "stack_positions": (Fn(lambda x: torch.stack((F.layer_norm(x, (D,)), x), 1)),
                        ["norm", "reshape", "reshape", "lut", "lut", "concat", "permute"],
                        0.999),                                             # 0.99992
    "rms_values": (Fn(_rescaled, nn.Linear(D, D)),
                   ["linear", "lut", "linear", "lut", "linear", "mul", "lut", "linear", "clamp",
                    "lut", "linear", "mul"], 0.999),                        # 0.99981
    # Gemma 3n's gaussian top-k: relu(x - (mean + 1.645 std)) per token, std a centered rms
    "gaussian_topk": (_after_linear(lambda x: F.relu(x - (x.mean(-1, keepdim=True) + x.std(
        -1, keepdim=True, unbiased=False) * 1.6449))),
                      ["linear", "linear", "linear", "lut", "linear", "lut", "lut", "add", "lut",
                       "linear", "add", "relu"], 0.999),                   # 0.99963
    "rms_norm_pow": (_after_linear(lambda x: x * torch.pow(_mean_sq(x) + 1e-6, -0.5)),
                     ["linear", "norm"], 0.999),                     # 0.99992
    # constant masks other than causal: the softmax's valid pattern (qasic.quant.masks); the
    # scores * 0.1 spread the probabilities: unmasked, the cosine would be 0.86 and 0.70
    "window": (_after_linear(lambda x: torch.softmax((x @ x.transpose(-2, -1) * 0.1)
                                                     .masked_fill(_BAND, -1e9), -1)),
               ["linear", "matmul", "softmax"], 0.995),                # 0.99996
    "window_per_head": (_after_linear(lambda x: torch.softmax(
        (_heads4(x) @ _heads4(x).transpose(-2, -1) * 0.1).masked_fill(_PER_HEAD, -torch.inf),
        -1)), ["linear"] + ["reshape", "permute"] * 2 + ["matmul", "softmax"], 0.995),  # 0.99997
    # ALiBi through baddbmm: a matmul (alpha in its requantization), a constant and an add
    "baddbmm_alibi": (Fn(_baddbmm, nn.Linear(D, D)),
                      ["linear", "reshape", "permute", "matmul", "constant", "add", "softmax"],
                      0.995),                                               # 0.99994
    # BLOOM's fused QKV: each select of the split features is a linear of those weight rows
    "qkv_view_select": (Fn(_bloom_qkv, nn.Linear(D, 3 * D)),
                        ["linear", "reshape", "permute"] * 3
                        + ["matmul", "softmax", "matmul", "permute", "reshape"], 0.998),  # 0.99961
    # Swin: zero pads of nothing vanish, rolls are selections by a permutation (a constant
    # and a matmul), a bias per (window, head) is a constant added to the scores
    "windows": (Fn(_windows, nn.Linear(D, D)),
                ["linear", "constant", "matmul", "reshape", "permute", "matmul", "constant",
                 "add", "softmax", "matmul", "permute", "reshape", "constant", "matmul"],
                0.995),                                                     # 0.99832
    # a constant condition that picks one side everywhere (Funnel's token types) is that side
    "where_all_true": (_after_linear(lambda x: torch.where(
        torch.ones(S, D, dtype=torch.bool), torch.tanh(x), x * 2)), ["linear", "lut"],
                       0.999),                                              # 0.9999
    "where_all_false": (_after_linear(lambda x: torch.where(
        torch.zeros(S, 1, dtype=torch.bool), torch.tanh(x), x)), ["linear"], 0.999),  # 0.99991
    # Swin V2's cosine attention: F.normalize(x, dim=-1) (a 2-norm over the last axis, clamped
    # by 1e-12, divided by) is a norm node of gamma 1 / sqrt(Dh); the scores times 10
    "cosine_attention": (_after_linear(lambda x: torch.softmax(
        F.normalize(_heads4(x), dim=-1) @ F.normalize(_heads4(x), dim=-1).transpose(-2, -1)
        * 10.0, -1)), ["linear"] + ["reshape", "permute", "norm"] * 2 + ["matmul", "softmax"],
                         0.995),                                            # 0.99999
    "block": (Block(D, H), None, 0.998),                                    # 0.99987
    # positions picked or averaged: a matmul by a constant selector
    "cls": (_after_linear(lambda x: x[:, 0]), ["linear", "constant", "matmul", "reshape"],
            0.999),                                                         # 0.99987
    "last_two": (_after_linear(lambda x: x[:, -2:]), ["linear", "constant", "matmul"],
                 0.999),                                                    # 0.99987
    "mean_pool": (_after_linear(lambda x: x.mean(1)), ["linear", "constant", "matmul",
                                                       "reshape"], 0.999),  # 0.9999
    # sums over per-sample axes: a matmul by a row of ones, over the channels a linear of one
    "sum_positions": (_after_linear(lambda x: x.sum(1) * 0.2), ["linear", "constant", "matmul",
                                                                "reshape"], 0.999),  # 0.99989
    "sum_channels": (_after_linear(lambda x: x + torch.tanh(x.sum(-1, keepdim=True) * 0.2)),
                     ["linear", "linear", "lut", "linear", "add"], 0.999),  # 0.99986
    # one channel broadcast over the channels by a per-channel constant: the constant folds
    # into the widening linear (it used to fold into the mean's, giving a (D, D) weight for a
    # one-channel output: a crash at calibration)
    "channel_scale_broadcast": (Fn(lambda x, fc, w: x + fc(x).mean(-1, keepdim=True) * w.weight,
                                   nn.Linear(D, D), _weight()),
                                ["linear", "linear", "linear", "add"], 0.999),
    # a size-1 axis other than the channels broadcast (MobileViTV2's softmax of one query
    # channel times the keys): a selection by a column of ones; expand_as likewise
    "broadcast_positions": (_after_linear(lambda x: x * torch.tanh(x[:, :1])),
                            ["linear", "constant", "matmul", "lut", "constant", "matmul",
                             "mul"], 0.999),                       # 0.99971
    "expand_as": (_after_linear(lambda x: torch.tanh(x[:, :1]).expand_as(x) + x),
                  ["linear", "constant", "matmul", "lut", "constant", "matmul", "add"],
                  0.999),                                                   # 0.99986
    # lerp(x, y, w) = x + w (y - x): a table of one activation; of two, a sub, a mul, an add
    "lerp_scalar": (_after_linear(lambda x: torch.lerp(x, torch.tanh(x), 0.25)),
                    ["linear", "lut"], 0.999),                               # 0.99988
    "lerp_tensor": (Fn(lambda x, a, b: torch.lerp(a(x), b(x), torch.full((D,), 0.3)),
                       nn.Linear(D, D), nn.Linear(D, D)),
                    ["linear", "linear", "lut", "add", "constant", "mul", "add"], 0.999),  # 0.99987
    # nn.MultiheadAttention runs sequence-first and picks q, k, v by select: the batch axis
    # moves, per sample nothing does until the heads
    "mha": (Fn(lambda x, m: m(x, x, x, need_weights=False)[0],
               nn.MultiheadAttention(D, H, batch_first=True)), None, 0.998),
    "encoder_layer": (nn.TransformerEncoderLayer(D, H, 64, 0.0, batch_first=True,
                                                 norm_first=True), None, 0.998),
}


@pytest.mark.parametrize("name", list(CASES))
def test_op_captures_and_the_reference_follows_torch(name):
    module, want_ops, bound = CASES[name]
    graph, _, cos = check(module, _seq())
    assert graph.input_layout == "sequence"
    if want_ops is not None:
        assert ops(graph) == want_ops
    assert cos > bound, cos


def test_attention_graph_shapes_and_attrs():
    g, q, _ = check(Attention(D, H), _seq())
    mm = [n for n in q.nodes if n.op == "matmul"]
    sm = q.node(next(n.name for n in q.nodes if n.op == "softmax"))
    assert [dict(n.attrs) for n in mm] == [{"transpose_b": True}, {"transpose_b": False}]
    assert [q.shapes[n.output] for n in mm] == [(H, S, S), (H, S, D // H)]
    # Q . K^T reads the permuted heads (H, S, Dh) of q and k; the 1/sqrt(Dh) scale is in M
    assert [q.shapes[t] for t in mm[0].inputs] == [(H, S, D // H)] * 2
    assert g.node(mm[0].name).attrs["alpha"] == pytest.approx(1 / math.sqrt(D // H))
    assert dict(sm.attrs) == {"causal": True} and sm.inputs == (mm[0].output,)
    assert len(sm.params["table"]) == 256
    perms = [dict(n.attrs) for n in q.nodes if n.op == "permute"]
    assert perms == [{"perm": (1, 0, 2)}] * 4
    # operands symmetric, softmax output 1/127 with zero point 0
    for t in mm[0].inputs + mm[1].inputs:
        assert q.tensors[t].zero_point == 0 and not q.tensors[t].is_fp
    assert (q.tensors[sm.output].scale, q.tensors[sm.output].zero_point) == (1 / 127, 0)


def test_constant_masks_become_the_softmax_pattern():
    """All ones: nothing; causal in every head: the attr; anything else: ``valid`` (P, S, T),
    P = 1 when the heads agree; the reference's masked keys get exactly 0."""
    for name, want in (("window", ~_BAND[None]), ("window_per_head", ~_PER_HEAD[0])):
        module, _, _ = CASES[name]
        _, q, _ = check(module, _seq())
        sm = q.node(next(n.name for n in q.nodes if n.op == "softmax"))
        assert dict(sm.attrs) == {"causal": False}
        assert sm.params["valid"].dtype == np.uint8
        assert np.array_equal(sm.params["valid"], want.numpy().astype(np.uint8))
        x = q.quantize_input(_seq(4))
        probs = reference.run(q, x, keep=True)[sm.output]
        assert not probs[np.broadcast_to(sm.params["valid"] == 0, probs.shape)].any()
        assert probs[np.broadcast_to(sm.params["valid"] == 1, probs.shape)].any()
    _, q, _ = check(*CASES["baddbmm_alibi"][:1], _seq())
    sm = next(n for n in q.nodes if n.op == "softmax")
    assert dict(sm.attrs) == {"causal": True} and "valid" not in sm.params


def test_rotate_every_two_is_one_interleaving_linear():
    graph, _, _ = check(CASES["rope_every_two"][0], _seq(4))
    rot = next(n for n in graph.nodes if n.name == "stack")
    dh = D // H  # out channel 2k is -x[2k + 1], 2k + 1 is x[2k]: pairs swapped, the first negated
    want = np.kron(np.eye(dh // 2), [[0.0, -1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(rot.params["weight"], want)
    assert graph.shapes[rot.output] == (S, H, dh) and not rot.params["bias"].any()


def test_a_stack_of_a_linears_features_interleaves_its_weight_rows():
    fc = nn.Linear(D, D)
    graph, _, _ = check(Fn(lambda x, fc: _rope_every_two_features(fc(x)), fc), _seq(4))
    rot = next(n for n in graph.nodes if n.name == "stack.rows")
    w, bias = fc.weight.detach().double().numpy(), fc.bias.detach().double().numpy()
    # out feature 2k is -r[2k + 1], 2k + 1 is r[2k] (r: fc's first 8 features): fc's rows
    want = np.stack((-w[1:8:2], w[0:8:2]), axis=1).reshape(8, D)
    np.testing.assert_allclose(rot.params["weight"], want, rtol=1e-12)
    np.testing.assert_allclose(rot.params["bias"], np.stack((-bias[1:8:2], bias[0:8:2]),
                                                            1).reshape(8), rtol=1e-12)
    assert rot.inputs == ("input",) and graph.shapes[rot.output] == (S, 8)


@pytest.mark.parametrize("ln", [_ln_written, _ln_var])
def test_a_layer_norm_written_out_is_a_centered_norm(ln):
    w = _weight()
    graph, _, _ = check(Fn(lambda x, fc, w: ln(fc(x), w), nn.Linear(D, D), w), _seq(4))
    norm = next(n for n in graph.nodes if n.op == "norm")
    assert norm.attrs == {"center": True, "eps": 1e-5} and norm.inputs == ("mods.0",)
    np.testing.assert_allclose(norm.params["gamma"], w.weight.detach().double().numpy(),
                               rtol=1e-6)
    assert not norm.params["beta"].any()


def test_fused_qkv_splits_into_three_linears():
    g, _, _ = check(Attention(D, H), _seq())
    lin = [n for n in g.nodes if n.op == "linear"]
    assert [n.name for n in lin[:3]] == ["qkv.0", "qkv.1", "qkv.2"]
    assert all(n.params["weight"].shape == (D, D) for n in lin[:3])


def test_a_transformer_block_end_to_end_w8a8():
    torch.manual_seed(1)
    model = TokenModel(depth=2).eval()
    graph, q, cos = check(model, _ids(128, 16))
    assert graph.input_layout == "tokens" and graph.shapes["input"] == (16,)
    assert q.tensors["input"] == q.tensors["input"].__class__(1.0, 0, 32)
    assert ops(graph)[:4] == ["embedding", "constant", "add", "norm"]
    assert cos > 0.99, cos                                                     # 0.99966


def test_fp8_activations_keep_scores_and_residuals_int():
    torch.manual_seed(1)
    model = TokenModel(depth=1).eval()
    cfg = QuantConfig(8, activation_format="fp8_e4m3")
    _, q, cos = check(model, _ids(128, 16), cfg)
    for n in q.nodes:
        if n.op in ("softmax", "norm", "matmul"):
            assert not q.tensors[n.inputs[0]].is_fp, n.name
    assert any(t.is_fp for t in q.tensors.values())
    assert cos > 0.99, cos                                                     # 0.9988


def test_norm_inputs_may_be_wider_than_the_activations():
    torch.manual_seed(1)
    cfg = QuantConfig(8, activation_format="fp8_e4m3", norm_input_bits=16)
    _, q, cos = check(TokenModel(depth=1).eval(), _ids(128, 16), cfg)
    wide = {n.inputs[0] for n in q.nodes if n.op == "norm"}
    # and the token and position rows (QuantConfig.embedding_bits 16, the default)
    rows = {n.output for n in q.nodes if n.op in ("embedding", "constant")}
    assert {q.tensors[t].bits for t in wide | rows} == {16}
    assert {q.tensors[t].bits for t in q.tensors if t not in wide | rows and t != "input"} == {8}
    assert cos > 0.99, cos                                                     # 0.9989
    with pytest.raises(ConfigError, match=r"norm_input_bits = 17 is out of range: allowed "
                                          r"integers 2..16"):
        QuantConfig(norm_input_bits=17)
    x = _seq(4, 2, 2048)
    with pytest.raises(ConfigError, match=r"2048 channels of 12-bit codes \(int16 above 8 "
                                          r"bits\) can overflow the kernel's int64 sums; use "
                                          r"norm_input_bits <= 8$"):
        quantize(nn.LayerNorm(2048), torch.from_numpy(x[:2]), x,
                 QuantConfig(8, norm_input_bits=12))


def test_norm_max_bits_keeps_the_int64_sum_of_squares_of_stored_codes():
    """D^3 2^(2B) < 2^62 with B the stored width (int16 for 9..16 bits)."""
    from qasic.quant.intops import NORM_MAX_LEN, norm_max_bits

    assert [norm_max_bits(d) for d in (1, 384, 1023, 1024, NORM_MAX_LEN, 41285, 41286)] == \
        [16, 16, 16, 8, 8, 8, 7]
    for d in (1023, 1024, 41285, 41286):
        b = norm_max_bits(d)
        assert d ** 3 << 2 * b < 1 << 62 <= d ** 3 << 2 * (16 if b == 8 else b + 1)


@pytest.mark.parametrize("config, d, bits", [
    (QuantConfig(), 64, 16), (QuantConfig(), 1023, 16), (QuantConfig(), 1024, 8),
    (QuantConfig(norm_input_bits=16), 2048, 8), (QuantConfig(activation_bits=6), 2048, 6),
    (QuantConfig(norm_input_bits=8), 2048, 8), (QuantConfig(norm_input_bits=None), 64, 8),
    (QuantConfig(activation_bits=6, norm_input_bits=None), 64, 6)])
def test_norm_input_width_defaults_to_16_where_the_row_length_allows(config, d, bits):
    """16 bits (the default) where NORM's int64 sums take int16 codes, D^3 2^32 < 2^62, else
    the activation width; None is the activation width; an explicit narrower width is kept."""
    x = _seq(4, 2, d)
    model = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d)).eval()
    q = quantize(model, torch.from_numpy(x[:2]), x, config)
    norm = next(n for n in q.nodes if n.op == "norm")
    assert q.tensors[norm.inputs[0]].bits == bits


@pytest.mark.parametrize("model, bits", [
    (Fn(lambda x, fc: F.layer_norm(fc(x), (D,)) - x, nn.Linear(D, D)), 16),
    (Fn(lambda x, fc: F.layer_norm(y := fc(x), (D,)) - y, nn.Linear(D, D)), 8),
    (Fn(lambda x, fc, fc2: F.layer_norm(y := fc(x), (D,)) + fc2(y), nn.Linear(D, D),
        nn.Linear(D, D)), 8),
    (Fn(lambda x: F.layer_norm(x, (D,))), 8),
    (Fn(lambda x, fc: F.layer_norm((fc(x) + x).transpose(1, 2), (S,)), nn.Linear(D, D)), 16),
    (Fn(lambda x, fc, fc2: F.layer_norm(torch.cat([fc(x) + x, fc2(x) + x], -1), (2 * D,)),
        nn.Linear(D, D), nn.Linear(D, D)), 16),
    (Fn(lambda x, fc: F.layer_norm(torch.cat([fc(x) + x, x], -1), (2 * D,)), nn.Linear(D, D)),
     8)])
def test_the_default_width_is_the_activations_where_int16_cannot_be_stored(model, bits):
    """At the default a norm input that a kernel other than ADD or NORM would read (the
    negating table of x - y), or that the host writes (the graph input), keeps the activation
    width: the accelerator stores int16 codes only where ADD, NORM and plain GEMMs handle them
    (compiler.pipeline._check_wide). Permutes move them and a concat holds them when adds
    write every part; a part copied by a requant table (the graph input) keeps 8 bits."""
    _, q, _ = check(model.eval(), _seq(), QuantConfig())
    norm = next(n for n in q.nodes if n.op == "norm")
    assert q.tensors[norm.inputs[0]].bits == bits


def test_per_layer_weight_bits_name_the_linears():
    torch.manual_seed(1)
    model = TokenModel(depth=1).eval()
    x = _ids(64, 16)
    graph = capture(model, torch.from_numpy(x[:2]))
    layers = [n.name for n in graph.weighted_nodes()]
    assert all(graph.node(n).op == "linear" for n in layers)
    q = quantize(graph, None, x, QuantConfig({layers[0]: 4, layers[-1]: 6}))
    assert q.weighted_nodes()[0].weight_bits == 4
    assert q.node(layers[-1]).weight_bits == 6


def _masked_model(form):
    torch.manual_seed(2)
    return TokenModel(depth=2, form=form, pad=0).eval()


@pytest.mark.parametrize("form", ["explicit", "sdpa"])
def test_padding_mask_from_ids_becomes_the_softmax_mask_input(form):
    model = _masked_model(form)
    x = _ids(128, 16)
    x[::2, 10:] = 0
    _, q, cos = check(model, x)
    masks = [n for n in q.nodes if n.op == "embedding" and n.params["table"].ndim == 1]
    assert len(masks) == 1  # one mask tensor, read by every layer's softmax
    assert masks[0].params["table"].tolist() == [0] + [1] * 49
    assert q.tensors[masks[0].output] == q.tensors["input"].__class__(1.0, 0, 8)
    soft = [n for n in q.nodes if n.op == "softmax"]
    assert all(n.inputs[1] == masks[0].output and not n.attrs["causal"] for n in soft)
    assert cos > 0.99, cos                                                     # 0.999


def test_padding_matters_and_unpadded_positions_match_the_unpadded_run():
    model = _masked_model("explicit")
    x = _ids(128, 16)
    x[::2, 10:] = 0
    _, q, _ = check(model, x)
    short = torch_out(model, x[::2, :10])  # the same sentences, unpadded
    got = q.dequantize_output(reference.run(q, q.quantize_input(x)))[::2, :10]
    assert cosine(got, short) > 0.99                                           # 0.999
    blind = type(q)(q.name, q.input, q.output, tuple(
        type(n)(n.name, n.op, n.inputs[:1], n.output, n.attrs, n.params) if n.op == "softmax"
        else n for n in q.nodes), q.tensors, q.shapes, q.input_layout)
    unmasked = blind.dequantize_output(reference.run(blind, q.quantize_input(x)))[::2, :10]
    err, blind_err = (np.linalg.norm(y - short) / np.linalg.norm(short) for y in (got, unmasked))
    assert blind_err > 3 * err                                                 # 0.17 vs 0.026


def test_token_ids_are_checked():
    torch.manual_seed(1)
    q = quantize(TokenModel(depth=1).eval(), torch.from_numpy(_ids(2, 16)), _ids(32, 16),
                 QuantConfig(8))
    assert np.array_equal(q.quantize_input(_ids(3, 16)), _ids(3, 16))
    with pytest.raises(InputError, match=r"^token id 50 is outside the vocabulary of model "
                                         r"TokenModel \(ids 0..49\)$"):
        q.quantize_input(np.full((1, 16), 50))
    with pytest.raises(InputError, match="must be integers"):
        q.quantize_input(np.full((1, 16), 1.5))
    with pytest.raises(InputError, match=r"expected \(batch, 16\) \(at most 16 tokens"):
        q.quantize_input(np.ones((1, 17), dtype=np.int64))
    with pytest.raises(InputError, match="must be integer token ids"):
        quantize(TokenModel(depth=1).eval(), torch.from_numpy(_ids(2, 16)),
                 _ids(4, 16) + 0.5, QuantConfig(8))
    bad = _ids(4, 16)
    bad[2, 5] = 50  # calibration runs the float graph: its ids are checked before
    with pytest.raises(InputError, match=r"^calibration token id 50 is outside the vocabulary "
                                         r"of model TokenModel \(ids 0..49\)$"):
        quantize(TokenModel(depth=1).eval(), torch.from_numpy(_ids(2, 16)), bad,
                 QuantConfig(8))


def test_evaluate_checks_the_test_ids_before_compiling():
    """An id outside the vocabulary in the test inputs is named in the model's terms, not by
    the simulator's GATHER that would read past the table."""
    from qasic import evaluate

    torch.manual_seed(1)
    bad = _ids(2, 16)
    bad[1, 3] = 50
    with pytest.raises(InputError, match=r"^token id 50 is outside the vocabulary of model "
                                         r"TokenModel \(ids 0..49\)$"):
        evaluate(TokenModel(depth=1).eval(), bad, calibration=_ids(8, 16))


REFUSED = {
    # grid_sample at computed locations runs (tests/quant/test_grid_sample.py); reflection
    # padding is not built
    "grid_sample": (Fn(lambda x, fc: F.grid_sample(
        x.view(-1, 1, S, D), torch.tanh(fc(x)[..., :2]).view(-1, S, 1, 2),
        padding_mode="reflection", align_corners=False), nn.Linear(D, D)),
                    "grid_sample padding_mode='reflection'"),
    "compare": (Fn(lambda x: torch.softmax(x.masked_fill(x > 1, -1e9), -1)),
                "an attention mask of type Act"),
    # where() of a comparison and values of other activations runs: test_where_select.py
    "per_sample_mask": (Fn(lambda x: torch.softmax((x @ x.transpose(-2, -1)).masked_fill(
        torch.arange(2)[:, None, None] * torch.ones(S, S).triu(1) > 0, -1e9), -1)),
                        "differs between samples"),
    # over another per-sample axis it runs (tests/quant/test_softmax_axes.py)
    "softmax_batch": (Fn(lambda x: torch.softmax(x, 0)), "the axis that holds the batch"),
    "expand_two_axes": (Fn(lambda x: F.layer_norm(x, (D,))[:, None, None].expand(
        -1, 2, 2, -1, -1)), "only of one size-1 axis"),
    # axes apart (adjacent ones, the trailing too, are a global average: MaxViT's head)
    "mean_feat": (Fn(lambda x: F.layer_norm(x, (D,)).view(x.shape[0], S, 2, D // 2)
                     .mean((1, 3))), "a mean over dims [1, 3]"),
    "norm_channels": (Fn(lambda x: torch.linalg.vector_norm(F.layer_norm(x, (D,)), dim=-1)),
                      "a vector norm over dims [2]"),
    "select_batch": (Fn(lambda x: F.layer_norm(x, (D,))[0]), "the batch axis"),
    "max_of_scores": (Fn(lambda x: torch.softmax(torch.max(
        x @ x.transpose(-2, -1) - 1e9 * torch.ones(S, S).triu(1), torch.tensor(-5.0)), -1)),
                      "a maximum of attention scores and -5.0"),
    "repeat_batch": (Fn(lambda x: F.layer_norm(x, (D,)).repeat(2, 1, 1)), "repeat by [2, 1, 1]"),
    # dropped unread before, it silently left y as it was
    "half_filled": (Fn(lambda x, fc: _filled(x, fc, half=True), nn.Linear(D, D)),
                    "an in-place write (aten.copy_.default) into a tensor"),
    "topk": (Fn(lambda x: torch.topk(F.layer_norm(x, (D,)), 2, -1).values),
             "aten.topk selects by value"),
    "stack_of_a_tensor_and_a_constant": (
        Fn(lambda x: torch.stack((F.layer_norm(x, (D,)), torch.ones_like(x)), -1)),
        "a stack of pieces that are not activations of one shape"),
}


def test_stack_of_two_tensors_is_a_concat():
    """Two activations stacked along a new last axis (no longer refused: Mamba stacks its scan's
    outputs so): each viewed as (..., 1), one concat; the flatten interleaves them."""
    m = Fn(lambda x: torch.stack((F.layer_norm(x, (D,)), torch.tanh(x)), -1).flatten(-2))
    graph, _, cos = check(m, _seq())
    assert ops(graph).count("concat") == 1 and cos > 0.999


@pytest.mark.parametrize("name", list(REFUSED))
def test_unsupported_transformer_forms_are_one_line(name):
    module, reason = REFUSED[name]
    with pytest.raises(UnsupportedOpError) as e:
        capture(module.eval(), torch.from_numpy(_seq(2)))
    assert reason in str(e.value) and "\n" not in str(e.value)


class MaskBias(nn.Module):
    """A padding mask used as a bias, not a mask."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, D)

    def forward(self, ids):
        x = self.emb(ids)
        return torch.softmax(x @ x.transpose(-2, -1) + (ids != 0)[:, None, :] * 0.5, -1)


def test_a_padding_mask_used_as_a_bias_is_refused():
    with pytest.raises(UnsupportedOpError, match="an additive attention bias other than 0"):
        capture(MaskBias().eval(), torch.from_numpy(_ids(2)))


class WindowAndPadding(nn.Module):
    """A sliding window and a padding mask on the same scores."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, D)

    def forward(self, ids):
        x = self.emb(ids)
        scores = (x @ x.transpose(-2, -1)).masked_fill(_BAND, -1e9)
        return torch.softmax(scores.masked_fill((ids == 0)[:, None, :], -1e9), -1)


def test_a_padding_mask_with_a_constant_pattern_is_one_row_mask():
    """SOFTMAX reads one mask: a padding mask and a constant pattern (ModernBERT's sliding
    window over a padded batch) are one row mask per sample computed from the ids at run time
    (qasic.quant.masks.row_mask). Before: refused."""
    import qasic

    x = _ids(16)
    x[::2, -1:] = 0  # every other sample padded (no query left without a key)
    _, _, cos = check(WindowAndPadding(), x)
    assert cos > 0.99, cos
    r = qasic.evaluate(WindowAndPadding().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


def test_layer_norm_over_the_width_of_an_image_map_runs_in_torch_layout():
    """Before: refused ('only in sequence models or on vectors'); the map enters sequence mode
    (qasic.quant.layouts), where the last axis is torch's W."""
    module = nn.Sequential(nn.Conv2d(3, 4, 1), nn.LayerNorm(5)).eval()
    x = np.random.default_rng(0).standard_normal((8, 3, 5, 5)).astype(np.float32)
    g = capture(module, torch.from_numpy(x[:2]))
    assert ops(g) == ["conv2d", "permute", "norm"] and g.output_layout == "torch"
    q = quantize(g, None, x, QuantConfig(8))
    got = q.dequantize_output(reference.run(q, q.quantize_input(x)))
    assert cosine(got, torch_out(module, x)) > 0.999


def test_a_norm_calibrated_on_zeros_caps_its_multiplier_and_keeps_zeros():
    """A LayerNorm of an all-zero input (random-weight MobileViT's) outputs beta = 0: its output
    unit vanishes and gamma / unit would overflow the multiplier, which is capped instead."""
    x = np.zeros((4, S, D), np.float32)
    g = quantize(nn.LayerNorm(D).eval(), torch.from_numpy(x[:1]), x, QuantConfig(8))
    norm = next(n for n in g.nodes if n.op == "norm")
    assert norm.params["shift"].max() <= 29 and not norm.params["bias"].any()
    codes = g.tensors[g.input].encode(x)
    assert not g.tensors[g.output].decode(reference.run(g, codes)).any()


def _blocks(x):  # Pixtral's block mask: a constant filled in place, one block per image
    s = x.shape[1]
    mask = torch.full((s, s), float("-inf"))
    mask[: s // 2, : s // 2] = 0.0
    mask[s // 2:, s // 2:].fill_(0.0)
    return torch.softmax(x @ x.transpose(-2, -1) * 0.1 + mask, -1) @ x


def test_in_place_writes_into_constants_run_as_torch_runs_them():
    """Writes into a constant (fill_ of slices of a torch.full mask) are constant folding, in
    graph order: the mask is the block-diagonal softmax pattern; a write of activations stays
    refused (REFUSED's inplace_copy)."""
    _, q, cos = check(_after_linear(_blocks), _seq())
    sm = next(n for n in q.nodes if n.op == "softmax")
    half = np.kron(np.eye(2), np.ones((S // 2, S // 2)))
    np.testing.assert_array_equal(sm.params["valid"][0], half)
    assert cos > 0.995, cos

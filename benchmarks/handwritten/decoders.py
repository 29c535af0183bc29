"""Decoder-only language models written by hand, each the way a well-known codebase writes it:
PyTorch's word-language-model tutorial, Meta's reference Llama, a multi-query ALiBi decoder,
Karpathy's nanoGPT, minGPT and llama2.c, a GPT-NeoX-style parallel residual, johnma2006's
mamba-minimal, an RWKV-v4 time-mix loop and Mistral's reference sliding-window decoder. Small,
random weights; ids (batch, T) in, logits out."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.handwritten import Network, ids


def _gain(m, g):
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.mul_(g)
    return m.eval()


# --- PyTorch's word_language_model tutorial (sequence-first, nn.TransformerEncoder) ----------


class PositionalEncoding(nn.Module):
    def __init__(self, d, max_len=64):
        super().__init__()
        pos = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, 1, d)
        pe[:, 0, 0::2] = torch.sin(pos * div)
        pe[:, 0, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe)

    def forward(self, x):  # (T, B, d): the tutorial's sequence-first layout
        return x + self.pe[: x.size(0)]


class TutorialLM(nn.Module):
    """The tutorial's TransformerModel, ids (B, T) in (transposed to sequence-first), logits
    (B, T, V) out."""

    def __init__(self, ntoken=80, d=48, nhead=4, nhid=96, nlayers=2):
        super().__init__()
        self.emb = nn.Embedding(ntoken, d)
        self.d = d
        self.pos = PositionalEncoding(d)
        layer = nn.TransformerEncoderLayer(d, nhead, nhid, dropout=0.2)
        self.enc = nn.TransformerEncoder(layer, nlayers)
        self.dec = nn.Linear(d, ntoken)

    def forward(self, ids):
        src = ids.t()
        mask = nn.Transformer.generate_square_subsequent_mask(src.size(0))
        x = self.pos(self.emb(src) * math.sqrt(self.d))
        out = self.dec(self.enc(x, mask, is_causal=True))
        return out.transpose(0, 1)


def tutorial_lm():
    """At the tutorial's init (unit gain). Weights x 3 make its attention so peaked that the
    cosine drops to 0.969 (x 2: 0.988), still bit-exact."""
    torch.manual_seed(0)
    return TutorialLM().eval()


# --- Meta's reference Llama (llama/model.py): complex RoPE by torch.polar, repeat_kv, SwiGLU --


def precompute_freqs_cis(dim, end, theta=10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = torch.arange(end, device=freqs.device)
    freqs = torch.outer(t, freqs).float()
    return torch.polar(torch.ones_like(freqs), freqs)


def reshape_for_broadcast(freqs_cis, x):
    ndim = x.ndim
    shape = [d if i == 1 or i == ndim - 1 else 1 for i, d in enumerate(x.shape)]
    return freqs_cis.view(*shape)


def apply_rotary_emb(xq, xk, freqs_cis):
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    freqs_cis = reshape_for_broadcast(freqs_cis, xq_)
    xq_out = torch.view_as_real(xq_ * freqs_cis).flatten(3)
    xk_out = torch.view_as_real(xk_ * freqs_cis).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


def repeat_kv(x, n_rep):
    bs, slen, n_kv_heads, head_dim = x.shape
    if n_rep == 1:
        return x
    return (x[:, :, :, None, :].expand(bs, slen, n_kv_heads, n_rep, head_dim)
            .reshape(bs, slen, n_kv_heads * n_rep, head_dim))


class LlamaRMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        return self._norm(x.float()).type_as(x) * self.weight


class LlamaAttention(nn.Module):
    def __init__(self, dim, n_heads, n_kv_heads):
        super().__init__()
        self.n_heads, self.n_kv, self.hd = n_heads, n_kv_heads, dim // n_heads
        self.wq = nn.Linear(dim, n_heads * self.hd, bias=False)
        self.wk = nn.Linear(dim, n_kv_heads * self.hd, bias=False)
        self.wv = nn.Linear(dim, n_kv_heads * self.hd, bias=False)
        self.wo = nn.Linear(n_heads * self.hd, dim, bias=False)

    def forward(self, x, freqs_cis, mask):
        bsz, seqlen, _ = x.shape
        xq = self.wq(x).view(bsz, seqlen, self.n_heads, self.hd)
        xk = self.wk(x).view(bsz, seqlen, self.n_kv, self.hd)
        xv = self.wv(x).view(bsz, seqlen, self.n_kv, self.hd)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis)
        keys = repeat_kv(xk, self.n_heads // self.n_kv)
        values = repeat_kv(xv, self.n_heads // self.n_kv)
        xq, keys, values = xq.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2)
        scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(self.hd)
        scores = scores + mask
        scores = F.softmax(scores.float(), dim=-1).type_as(xq)
        out = torch.matmul(scores, values)
        return self.wo(out.transpose(1, 2).contiguous().view(bsz, seqlen, -1))


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class LlamaBlock(nn.Module):
    def __init__(self, dim, h, kv):
        super().__init__()
        self.attention, self.feed_forward = LlamaAttention(dim, h, kv), SwiGLU(dim, 4 * dim)
        self.attention_norm, self.ffn_norm = LlamaRMSNorm(dim), LlamaRMSNorm(dim)

    def forward(self, x, freqs_cis, mask):
        h = x + self.attention(self.attention_norm(x), freqs_cis, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class MetaLlama(nn.Module):
    def __init__(self, vocab=100, dim=64, n_layers=2, h=4, kv=2, max_seq_len=32):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(LlamaBlock(dim, h, kv) for _ in range(n_layers))
        self.norm = LlamaRMSNorm(dim)
        self.output = nn.Linear(dim, vocab, bias=False)
        self.freqs_cis = precompute_freqs_cis(dim // h, max_seq_len * 2)

    def forward(self, tokens):
        _bsz, seqlen = tokens.shape
        h = self.tok_embeddings(tokens)
        freqs_cis = self.freqs_cis[:seqlen]
        mask = torch.full((seqlen, seqlen), float("-inf"))
        mask = torch.triu(mask, diagonal=1)
        for layer in self.layers:
            h = layer(h, freqs_cis, mask)
        return self.output(self.norm(h)).float()


def meta_llama():
    torch.manual_seed(0)
    return _gain(MetaLlama(), 2.0)


# --- a multi-query ALiBi decoder with a parallel SwiGLU block and a tied head -----------------


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def alibi_slopes(h):
    return torch.tensor([2 ** (-8 * (i + 1) / h) for i in range(h)])


class MqaBlock(nn.Module):
    """Parallel attention + SwiGLU MLP (PaLM/GPT-J style), multi-query attention, ALiBi."""

    def __init__(self, d, h, ctx):
        super().__init__()
        self.h, self.dh = h, d // h
        self.norm = RMSNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.kv = nn.Linear(d, 2 * self.dh, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(d, 2 * d, bias=False)
        self.up = nn.Linear(d, 2 * d, bias=False)
        self.down = nn.Linear(2 * d, d, bias=False)
        pos = torch.arange(ctx)
        rel = (pos[None, :] - pos[:, None]).float()
        self.register_buffer("alibi", alibi_slopes(h)[:, None, None] * rel, persistent=False)
        self.register_buffer("mask", torch.triu(torch.ones(ctx, ctx, dtype=torch.bool), 1),
                             persistent=False)

    def forward(self, x):
        B, T, D = x.shape
        y = self.norm(x)
        q = self.q(y).view(B, T, self.h, self.dh).transpose(1, 2)
        k, v = self.kv(y).split(self.dh, -1)
        k, v = k[:, None], v[:, None]  # one KV head, broadcast over the query heads
        a = (q @ k.transpose(-2, -1)) / math.sqrt(self.dh) + self.alibi[:, :T, :T]
        a = a.masked_fill(self.mask[:T, :T], float("-inf")).softmax(-1)
        att = (a @ v).transpose(1, 2).reshape(B, T, D)
        mlp = self.down(F.silu(self.gate(y)) * self.up(y))
        return x + self.o(att) + mlp


class MqaGPT(nn.Module):
    def __init__(self, vocab=96, d=64, h=4, n=2, ctx=64):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(MqaBlock(d, h, ctx) for _ in range(n))
        self.norm = RMSNorm(d)

    def forward(self, ids):
        x = self.emb(ids)
        for b in self.blocks:
            x = b(x)
        return self.norm(x) @ self.emb.weight.T  # tied head


def mqa_alibi():
    torch.manual_seed(0)
    return _gain(MqaGPT(), 2.0)


# --- Karpathy's nanoGPT (model.py): fused c_attn, SDPA is_causal, weight tying, last-row logits -


class NanoLayerNorm(nn.Module):
    """LayerNorm but with an optional bias (nanoGPT's own)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class NanoAttention(nn.Module):
    def __init__(self, n_embd, n_head, bias, dropout=0.0):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None,
                                           dropout_p=self.dropout if self.training else 0,
                                           is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class NanoMLP(nn.Module):
    def __init__(self, n_embd, bias, dropout=0.0):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class NanoBlock(nn.Module):
    def __init__(self, n_embd, n_head, bias):
        super().__init__()
        self.ln_1 = NanoLayerNorm(n_embd, bias=bias)
        self.attn = NanoAttention(n_embd, n_head, bias)
        self.ln_2 = NanoLayerNorm(n_embd, bias=bias)
        self.mlp = NanoMLP(n_embd, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, vocab_size=96, block_size=64, n_layer=2, n_head=4, n_embd=64, bias=True):
        super().__init__()
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab_size, n_embd),
            "wpe": nn.Embedding(block_size, n_embd),
            "drop": nn.Dropout(0.0),
            "h": nn.ModuleList([NanoBlock(n_embd, n_head, bias) for _ in range(n_layer)]),
            "ln_f": NanoLayerNorm(n_embd, bias=bias),
        })
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        device = idx.device
        _b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=device)
        tok_emb = self.transformer.wte(idx)
        pos_emb = self.transformer.wpe(pos)
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        else:
            # inference-time mini-optimization: only forward the lm_head on the very last position
            logits = self.lm_head(x[:, [-1], :])
            loss = None
        return logits, loss


def nanogpt():
    torch.manual_seed(0)
    return NanoGPT().eval()


# --- Karpathy's minGPT (mingpt/model.py): tril mask buffer + masked_fill(-inf), NewGELU --------


class NewGELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi)
                                           * (x + 0.044715 * torch.pow(x, 3.0))))


class MinAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size, pdrop=0.1):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout = nn.Dropout(pdrop)
        self.resid_dropout = nn.Dropout(pdrop)
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size))
                             .view(1, 1, block_size, block_size))
        self.n_head, self.n_embd = n_head, n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MinBlock(nn.Module):
    def __init__(self, n_embd, n_head, block_size, pdrop=0.1):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = MinAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.ModuleDict({
            "c_fc": nn.Linear(n_embd, 4 * n_embd),
            "c_proj": nn.Linear(4 * n_embd, n_embd),
            "act": NewGELU(),
            "dropout": nn.Dropout(pdrop),
        })
        m = self.mlp
        self.mlpf = lambda x: m.dropout(m.c_proj(m.act(m.c_fc(x))))  # MLP forward

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlpf(self.ln_2(x))


class MinGPT(nn.Module):
    def __init__(self, vocab_size=96, block_size=64, n_layer=2, n_head=4, n_embd=48):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab_size, n_embd),
            "wpe": nn.Embedding(block_size, n_embd),
            "drop": nn.Dropout(0.1),
            "h": nn.ModuleList([MinBlock(n_embd, n_head, block_size) for _ in range(n_layer)]),
            "ln_f": nn.LayerNorm(n_embd),
        })
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            torch.nn.init.zeros_(module.bias)
            torch.nn.init.ones_(module.weight)

    def forward(self, idx, targets=None):
        device = idx.device
        _b, t = idx.size()
        assert t <= self.block_size, f"Cannot forward sequence of length {t}"
        pos = torch.arange(0, t, dtype=torch.long, device=device).unsqueeze(0)  # shape (1, t)
        tok_emb = self.transformer.wte(idx)
        pos_emb = self.transformer.wpe(pos)
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        return logits, loss


def mingpt():
    torch.manual_seed(0)
    return MinGPT().eval()


# --- a GPT-NeoX layer written by hand: packed per-head qkv, partial rotary, parallel residual --


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class NeoXAttention(nn.Module):
    def __init__(self, d, heads, rotary_pct=0.25, base=10000):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.rd = int(self.hd * rotary_pct)
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)
        inv_freq = 1.0 / (base ** (torch.arange(0, self.rd, 2).float() / self.rd))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x):
        B, T, _ = x.shape
        qkv = self.query_key_value(x).view(B, T, self.h, 3 * self.hd).permute(0, 2, 1, 3)
        q, k, v = qkv[..., : self.hd], qkv[..., self.hd: 2 * self.hd], qkv[..., 2 * self.hd:]
        t = torch.arange(T, device=x.device, dtype=self.inv_freq.dtype)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        q_rot, q_pass = q[..., : self.rd], q[..., self.rd:]
        k_rot, k_pass = k[..., : self.rd], k[..., self.rd:]
        q = torch.cat((q_rot * cos + rotate_half(q_rot) * sin, q_pass), dim=-1)
        k = torch.cat((k_rot * cos + rotate_half(k_rot) * sin, k_pass), dim=-1)
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))
        att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hd)
        att = att.masked_fill(~causal, torch.finfo(att.dtype).min)
        att = torch.softmax(att, dim=-1)
        out = torch.matmul(att, v).permute(0, 2, 1, 3).reshape(B, T, self.h * self.hd)
        return self.dense(out)


class NeoXLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(d)
        self.post_attention_layernorm = nn.LayerNorm(d)
        self.attention = NeoXAttention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):  # use_parallel_residual: both branches read x
        return x + self.attention(self.input_layernorm(x)) + self.mlp(
            self.post_attention_layernorm(x))


class NeoX(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, n=2):
        super().__init__()
        self.embed_in = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(NeoXLayer(d, heads) for _ in range(n))
        self.final_layer_norm = nn.LayerNorm(d)
        self.embed_out = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.embed_in(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.embed_out(self.final_layer_norm(x))


def neox():
    torch.manual_seed(0)
    return NeoX().eval()


# --- johnma2006/mamba-minimal: selective scan as a Python loop over positions -----------------


class MambaRMSNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MambaBlock(nn.Module):
    def __init__(self, d_model, d_state=8, expand=2, d_conv=4):
        super().__init__()
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, bias=True, kernel_size=d_conv,
                                groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + d_state * 2, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        A = torch.arange(1, d_state + 1).float().repeat(self.d_inner, 1)  # 'n -> d n'
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, x):
        (_b, l, _d) = x.shape
        x_and_res = self.in_proj(x)
        (x, res) = x_and_res.split(split_size=[self.d_inner, self.d_inner], dim=-1)
        x = x.transpose(1, 2)  # rearrange 'b l d_in -> b d_in l'
        x = self.conv1d(x)[:, :, :l]
        x = x.transpose(1, 2)
        x = F.silu(x)
        y = self.ssm(x)
        y = y * F.silu(res)
        return self.out_proj(y)

    def ssm(self, x):
        (_d_in, n) = self.A_log.shape
        A = -torch.exp(self.A_log.float())
        D = self.D.float()
        x_dbl = self.x_proj(x)
        (delta, B, C) = x_dbl.split(split_size=[self.dt_rank, n, n], dim=-1)
        delta = F.softplus(self.dt_proj(delta))
        return self.selective_scan(x, delta, A, B, C, D)

    def selective_scan(self, u, delta, A, B, C, D):
        (b, l, d_in) = u.shape
        n = A.shape[1]
        deltaA = torch.exp(torch.einsum("bld,dn->bldn", delta, A))
        deltaB_u = torch.einsum("bld,bln,bld->bldn", delta, B, u)
        x = torch.zeros((b, d_in, n), device=deltaA.device)
        ys = []
        for i in range(l):
            x = deltaA[:, i] * x + deltaB_u[:, i]
            y = torch.einsum("bdn,bn->bd", x, C[:, i, :])
            ys.append(y)
        y = torch.stack(ys, dim=1)
        return y + u * D


class MambaResidual(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.mixer = MambaBlock(d_model)
        self.norm = MambaRMSNorm(d_model)

    def forward(self, x):
        return self.mixer(self.norm(x)) + x


class MambaMinimal(nn.Module):
    def __init__(self, vocab=64, d_model=32, n_layer=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList([MambaResidual(d_model) for _ in range(n_layer)])
        self.norm_f = MambaRMSNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        self.lm_head.weight = self.embedding.weight  # tie output projection to embedding weights

    def forward(self, input_ids):
        x = self.embedding(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm_f(x))


def mamba_minimal():
    torch.manual_seed(0)
    return MambaMinimal().eval()


# --- RWKV-v4 written by hand (BlinkDL's GPT mode; the WKV as a loop over time, "RWKV in 150
# lines"' num / den form): token shift by ZeroPad2d, time-mix, squared-ReLU channel mix ---------


class RwkvTimeMix(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.time_decay = nn.Parameter(torch.linspace(-2.0, 0.5, d))
        self.time_first = nn.Parameter(torch.full((d,), 0.3))
        self.time_mix_k = nn.Parameter(torch.rand(1, 1, d))
        self.time_mix_v = nn.Parameter(torch.rand(1, 1, d))
        self.time_mix_r = nn.Parameter(torch.rand(1, 1, d))
        self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.receptance = nn.Linear(d, d, bias=False)
        self.output = nn.Linear(d, d, bias=False)

    def forward(self, x):
        B, T, C = x.size()
        xx = self.time_shift(x)
        xk = x * self.time_mix_k + xx * (1 - self.time_mix_k)
        xv = x * self.time_mix_v + xx * (1 - self.time_mix_v)
        xr = x * self.time_mix_r + xx * (1 - self.time_mix_r)
        k, v = self.key(xk), self.value(xv)
        r = torch.sigmoid(self.receptance(xr))
        w = torch.exp(-torch.exp(self.time_decay))
        num = torch.zeros(B, C)
        den = torch.zeros(B, C)
        out = []
        for t in range(T):
            kt, vt = k[:, t], v[:, t]
            e = torch.exp(self.time_first + kt)
            out.append((num + e * vt) / (den + e))
            num = w * num + torch.exp(kt) * vt
            den = w * den + torch.exp(kt)
        return self.output(r * torch.stack(out, dim=1))


class RwkvChannelMix(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
        self.time_mix_k = nn.Parameter(torch.rand(1, 1, d))
        self.time_mix_r = nn.Parameter(torch.rand(1, 1, d))
        self.key = nn.Linear(d, 4 * d, bias=False)
        self.receptance = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(4 * d, d, bias=False)

    def forward(self, x):
        xx = self.time_shift(x)
        xk = x * self.time_mix_k + xx * (1 - self.time_mix_k)
        xr = x * self.time_mix_r + xx * (1 - self.time_mix_r)
        k = torch.square(torch.relu(self.key(xk)))
        return torch.sigmoid(self.receptance(xr)) * self.value(k)


class RwkvBlock(nn.Module):
    def __init__(self, d, layer_id):
        super().__init__()
        self.layer_id = layer_id
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(d)
        self.att, self.ffn = RwkvTimeMix(d), RwkvChannelMix(d)

    def forward(self, x):
        if self.layer_id == 0:
            x = self.ln0(x)
        x = x + self.att(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class Rwkv4(nn.Module):
    def __init__(self, vocab=80, d=48, n=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.Sequential(*[RwkvBlock(d, i) for i in range(n)])
        self.ln_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        return self.head(self.ln_out(self.blocks(self.emb(idx))))


def rwkv4():
    torch.manual_seed(0)
    return Rwkv4().eval()


# --- Mistral's reference decoder (mistral-src one_file_ref.py): a banded mask by tril / triu /
# torch.log, repeat_interleave GQA, complex RoPE indexed by positions --------------------------


class MistralAttention(nn.Module):
    def __init__(self, dim, n_heads, n_kv_heads):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, dim // n_heads
        self.repeats = n_heads // n_kv_heads
        self.scale = self.head_dim ** -0.5
        self.wq = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(n_heads * self.head_dim, dim, bias=False)

    def forward(self, x, freqs_cis, mask):
        bsz, seqlen, _ = x.shape
        xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)
        xq = xq.view(bsz, seqlen, self.n_heads, self.head_dim)
        xk = xk.view(bsz, seqlen, self.n_kv_heads, self.head_dim)
        xv = xv.view(bsz, seqlen, self.n_kv_heads, self.head_dim)
        xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
        xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
        freqs_cis = freqs_cis[:, None, :]
        xq = torch.view_as_real(xq_ * freqs_cis).flatten(3).type_as(xq)
        xk = torch.view_as_real(xk_ * freqs_cis).flatten(3).type_as(xk)
        key = torch.repeat_interleave(xk, repeats=self.repeats, dim=2)
        value = torch.repeat_interleave(xv, repeats=self.repeats, dim=2)
        query, key, value = xq.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
        scores = torch.matmul(query, key.transpose(2, 3)) * self.scale
        if mask is not None:
            scores += mask[None, None, ...]
        scores = scores.float()
        scores = nn.functional.softmax(scores, dim=-1).type_as(query)
        output = torch.matmul(scores, value)
        output = output.transpose(1, 2).contiguous().view(bsz, seqlen, -1)
        return self.wo(output)


class MistralBlock(nn.Module):
    def __init__(self, dim, h, kv):
        super().__init__()
        self.attention = MistralAttention(dim, h, kv)
        self.feed_forward = SwiGLU(dim, 3 * dim)
        self.attention_norm, self.ffn_norm = LlamaRMSNorm(dim), LlamaRMSNorm(dim)

    def forward(self, x, freqs_cis, mask):
        r = self.attention.forward(self.attention_norm(x), freqs_cis, mask)
        h = x + r
        r = self.feed_forward.forward(self.ffn_norm(h))
        return h + r


class Mistral(nn.Module):
    def __init__(self, vocab=100, dim=64, n_layers=2, h=4, kv=1, sliding_window=6):
        super().__init__()
        self.sliding_window = sliding_window
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(MistralBlock(dim, h, kv) for _ in range(n_layers))
        self.norm = LlamaRMSNorm(dim)
        self.output = nn.Linear(dim, vocab, bias=False)
        self.freqs_cis = precompute_freqs_cis(dim // h, 128, theta=1000000.0)

    def forward(self, input_ids):
        seqlen = input_ids.shape[1]
        positions = torch.arange(0, seqlen)
        h = self.tok_embeddings(input_ids)
        freqs_cis = self.freqs_cis[positions]
        mask = None
        if input_ids.shape[1] > 1:
            tensor = torch.full((seqlen, seqlen), dtype=h.dtype, fill_value=1, device=h.device)
            mask = torch.tril(tensor, diagonal=0).to(h.dtype)
            # make the mask banded to account for sliding window
            mask = torch.triu(mask, diagonal=-self.sliding_window)
            mask = torch.log(mask)
        for layer in self.layers:
            h = layer(h, freqs_cis, mask)
        return self.output(self.norm(h)).float()


def mistral():
    torch.manual_seed(0)
    return _gain(Mistral(), 2.0)


# --- Karpathy's llama2.c (model.py): real RoPE by reshape / unbind / stack, SDPA is_causal, tied
# embedding, last-row logits ------------------------------------------------------------------


def precompute_freqs_cos_sin(dim, end, theta=10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = torch.arange(end, device=freqs.device)
    freqs = torch.outer(t, freqs).float()
    return torch.cos(freqs), torch.sin(freqs)


def apply_rotary_emb_real(xq, xk, freqs_cos, freqs_sin):
    xq_r, xq_i = xq.float().reshape(xq.shape[:-1] + (-1, 2)).unbind(-1)
    xk_r, xk_i = xk.float().reshape(xk.shape[:-1] + (-1, 2)).unbind(-1)
    freqs_cos = reshape_for_broadcast(freqs_cos, xq_r)
    freqs_sin = reshape_for_broadcast(freqs_sin, xq_r)
    xq_out_r = xq_r * freqs_cos - xq_i * freqs_sin
    xq_out_i = xq_r * freqs_sin + xq_i * freqs_cos
    xk_out_r = xk_r * freqs_cos - xk_i * freqs_sin
    xk_out_i = xk_r * freqs_sin + xk_i * freqs_cos
    xq_out = torch.stack([xq_out_r, xq_out_i], dim=-1).flatten(3)
    xk_out = torch.stack([xk_out_r, xk_out_i], dim=-1).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


class L2cAttention(nn.Module):
    def __init__(self, dim, n_heads, n_kv_heads):
        super().__init__()
        self.n_local_heads, self.n_local_kv_heads = n_heads, n_kv_heads
        self.n_rep, self.head_dim = n_heads // n_kv_heads, dim // n_heads
        self.wq = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(n_heads * self.head_dim, dim, bias=False)
        self.resid_dropout = nn.Dropout(0.0)
        self.dropout = 0.0

    def forward(self, x, freqs_cos, freqs_sin):
        bsz, seqlen, _ = x.shape
        xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)
        xq = xq.view(bsz, seqlen, self.n_local_heads, self.head_dim)
        xk = xk.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
        xv = xv.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb_real(xq, xk, freqs_cos, freqs_sin)
        xk = repeat_kv(xk, self.n_rep)
        xv = repeat_kv(xv, self.n_rep)
        xq, xk, xv = xq.transpose(1, 2), xk.transpose(1, 2), xv.transpose(1, 2)
        output = torch.nn.functional.scaled_dot_product_attention(
            xq, xk, xv, attn_mask=None, dropout_p=self.dropout if self.training else 0.0,
            is_causal=True)
        output = output.transpose(1, 2).contiguous().view(bsz, seqlen, -1)
        return self.resid_dropout(self.wo(output))


class L2cFeedForward(nn.Module):
    def __init__(self, dim, multiple_of=32):
        super().__init__()
        hidden_dim = int(2 * (4 * dim) / 3)
        hidden_dim = multiple_of * ((hidden_dim + multiple_of - 1) // multiple_of)
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class L2cBlock(nn.Module):
    def __init__(self, dim, h, kv):
        super().__init__()
        self.attention, self.feed_forward = L2cAttention(dim, h, kv), L2cFeedForward(dim)
        self.attention_norm, self.ffn_norm = LlamaRMSNorm(dim, 1e-5), LlamaRMSNorm(dim, 1e-5)

    def forward(self, x, freqs_cos, freqs_sin):
        h = x + self.attention.forward(self.attention_norm(x), freqs_cos, freqs_sin)
        return h + self.feed_forward.forward(self.ffn_norm(h))


class Llama2c(nn.Module):
    def __init__(self, vocab=100, dim=64, n_layers=2, h=4, kv=2, max_seq_len=64):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.ModuleList(L2cBlock(dim, h, kv) for _ in range(n_layers))
        self.norm = LlamaRMSNorm(dim, 1e-5)
        self.output = nn.Linear(dim, vocab, bias=False)
        self.tok_embeddings.weight = self.output.weight  # share the unembedding parameters
        freqs_cos, freqs_sin = precompute_freqs_cos_sin(dim // h, max_seq_len)
        self.register_buffer("freqs_cos", freqs_cos, persistent=False)
        self.register_buffer("freqs_sin", freqs_sin, persistent=False)
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith(("w3.weight", "wo.weight")):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layers))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, tokens, targets=None):
        _bsz, seqlen = tokens.shape
        h = self.dropout(self.tok_embeddings(tokens))
        freqs_cos = self.freqs_cos[:seqlen]
        freqs_sin = self.freqs_sin[:seqlen]
        for layer in self.layers:
            h = layer(h, freqs_cos, freqs_sin)
        h = self.norm(h)
        if targets is not None:
            logits = self.output(h)
            self.last_loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        else:
            # inference-time mini-optimization: only forward the output on the very last position
            logits = self.output(h[:, [-1], :])
            self.last_loss = None
        return logits


def llama2c():
    torch.manual_seed(0)
    return Llama2c().eval()


NETWORKS = (
    Network("tutorial_lm", "PyTorch's word-language-model tutorial LM (sequence-first "
            "nn.TransformerEncoder, is_causal mask, sinusoidal table)", "tutorial_lm",
            ids(80, 8, 32), prompt=(3, 14, 15, 9, 26), tokens=8),
    Network("meta_llama", "Meta's reference Llama (complex RoPE by torch.polar / view_as_complex, "
            "repeat_kv GQA, SwiGLU, triu -inf mask)", "meta_llama", ids(100, 8, 32),
            prompt=(3, 14, 15, 9, 26), tokens=8),
    Network("mqa_alibi", "a multi-query ALiBi decoder (parallel attention + SwiGLU, bool mask "
            "buffer by masked_fill, head tied by emb.weight.T)", "mqa_alibi", ids(96, 16, 32),
            prompt=(5, 17, 33, 2, 9), tokens=8),
    Network("nanogpt", "Karpathy's nanoGPT (fused c_attn split, F.scaled_dot_product_attention "
            "is_causal, tied wte / lm_head, (logits of the last row, loss) returned)", "nanogpt",
            ids(96, 8, 32), prompt=(5, 17, 33, 2, 9), tokens=8),
    Network("mingpt", "Karpathy's minGPT (tril mask buffer, masked_fill(-inf), NewGELU by tanh, "
            "MLP as a lambda over a ModuleDict, (logits, loss) returned)", "mingpt",
            ids(96, 8, 32), prompt=(5, 17, 33, 2, 9), tokens=8),
    Network("neox", "a GPT-NeoX layer by hand (per-head packed qkv, partial rotary by "
            "rotate_half, masked_fill(finfo.min), parallel residual)", "neox", ids(100, 8, 32),
            prompt=(3, 14, 15, 9, 26), tokens=8),
    Network("mamba_minimal", "johnma2006's mamba-minimal (depthwise Conv1d, softplus dt, "
            "selective scan as a Python loop over positions, tied head)", "mamba_minimal",
            ids(64, 8, 32), prompt=(3, 14, 15, 9, 26), tokens=8),
    Network("rwkv4", "RWKV-v4 by hand (ZeroPad2d token shift, WKV num / den as a loop over time, "
            "squared-ReLU channel mix)", "rwkv4", ids(80, 8, 32), prompt=(3, 14, 15, 9, 26),
            tokens=8),
    Network("mistral_swa", "Mistral's reference decoder (banded mask by tril / triu / torch.log, "
            "window 6; repeat_interleave GQA; complex RoPE indexed by positions)", "mistral",
            ids(100, 8, 32), prompt=(3, 14, 15, 9, 26), tokens=8),
    Network("llama2c", "Karpathy's llama2.c (RoPE by reshape / unbind / stack, SDPA is_causal, "
            "GQA repeat_kv, tied embedding, logits of the last row)", "llama2c",
            ids(100, 8, 32), prompt=(3, 14, 15, 9, 26), tokens=8),
)

"""Language / sequence models written by hand, the fourth round, each the way a well-known
codebase writes it: Meta's Llama 3 reference (RoPE frequencies rescaled by apply_scaling,
repeat_kv by expand + reshape, a cache-offset mask by hstack), Google's gemma_pytorch (Gemma 2:
embedding times sqrt(hidden), RMSNorm by (1 + weight), tanh-GELU GeGLU, attention and final
logit soft-capping, pre and post norms, sliding-window layers), Qwen2 (q / k / v biases, GQA,
RoPE by inv_freq @ position_ids), DeepSeek-V2's multi-head latent attention (low-rank q and kv,
a decoupled rope key shared by the heads, the query assembled in an empty tensor),
Microsoft's Differential Transformer (two softmax maps, re-parametrised lambda, a per-head
RMSNorm), NVIDIA's nGPT (every hidden vector on the unit sphere, eigen learning rates,
s_qk / s_uv / s_z scalings), RWKV-v6 by hand (data-dependent lerp token shift by a LoRA,
matrix-valued per-head state as a loop over time, GroupNorm of the heads), xLSTM's mLSTM
(parallel_stabilized_simple: log-sigmoid forget gates by cumsum, exponential input gate, max
stabiliser), Mamba-2's ssd_minimal (segsum by cumsum + tril masks + exp, chunked einsums),
ALBERT (factorised embedding, one layer's weights shared by every layer), StreamingLLM-style
attention sinks plus a sliding window, MEGA (fairseq's multi-head damped EMA by FFT, single-head
gated attention) and Hyena (implicit positional filter MLP, long convolution by FFT).
Small, random weights; ids (batch, T) in, logits out."""

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from benchmarks.handwritten import Network, ids


def _gain(m, g):
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.mul_(g)
    return m.eval()


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class RMSNorm(nn.Module):
    """Meta's llama RMSNorm: the norm in float, cast back, times the weight."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        return self._norm(x.float()).type_as(x) * self.weight


# --- Meta's Llama 3 reference (llama3/llama/model.py) -----------------------------------------


def apply_scaling(freqs):
    scale_factor, low_freq_factor, high_freq_factor, old_context_len = 8, 1, 4, 8192
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    new_freqs = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            new_freqs.append(freq)
        elif wavelen > low_freq_wavelen:
            new_freqs.append(freq / scale_factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (
                high_freq_factor - low_freq_factor)
            new_freqs.append((1 - smooth) * freq / scale_factor + smooth * freq)
    return torch.tensor(new_freqs, dtype=freqs.dtype, device=freqs.device)


def precompute_freqs_cis(dim, end, theta=500000.0, use_scaled=True):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = torch.arange(end, device=freqs.device, dtype=torch.float32)
    if use_scaled:
        freqs = apply_scaling(freqs)
    freqs = torch.outer(t, freqs)
    return torch.polar(torch.ones_like(freqs), freqs)  # complex64


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


class Llama3Attention(nn.Module):
    def __init__(self, dim, n_heads, n_kv_heads):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, dim // n_heads
        self.n_rep = n_heads // n_kv_heads
        self.wq = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(n_heads * self.head_dim, dim, bias=False)

    def forward(self, x, start_pos, freqs_cis, mask):
        bsz, seqlen, _ = x.shape
        xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)
        xq = xq.view(bsz, seqlen, self.n_heads, self.head_dim)
        xk = xk.view(bsz, seqlen, self.n_kv_heads, self.head_dim)
        xv = xv.view(bsz, seqlen, self.n_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis=freqs_cis)
        keys = repeat_kv(xk, self.n_rep)  # (bs, cache_len + seqlen, n_heads, head_dim)
        values = repeat_kv(xv, self.n_rep)
        xq = xq.transpose(1, 2)
        keys = keys.transpose(1, 2)
        values = values.transpose(1, 2)
        scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        scores = F.softmax(scores.float(), dim=-1).type_as(xq)
        output = torch.matmul(scores, values)
        output = output.transpose(1, 2).contiguous().view(bsz, seqlen, -1)
        return self.wo(output)


class Llama3FeedForward(nn.Module):
    def __init__(self, dim, hidden_dim, multiple_of, ffn_dim_multiplier):
        super().__init__()
        hidden_dim = int(2 * hidden_dim / 3)
        if ffn_dim_multiplier is not None:
            hidden_dim = int(ffn_dim_multiplier * hidden_dim)
        hidden_dim = multiple_of * ((hidden_dim + multiple_of - 1) // multiple_of)
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Llama3Block(nn.Module):
    def __init__(self, dim, n_heads, n_kv_heads):
        super().__init__()
        self.attention = Llama3Attention(dim, n_heads, n_kv_heads)
        self.feed_forward = Llama3FeedForward(dim, 4 * dim, multiple_of=32,
                                              ffn_dim_multiplier=1.3)
        self.attention_norm, self.ffn_norm = RMSNorm(dim), RMSNorm(dim)

    def forward(self, x, start_pos, freqs_cis, mask):
        h = x + self.attention(self.attention_norm(x), start_pos, freqs_cis, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Llama3(nn.Module):
    def __init__(self, vocab=100, dim=64, n_layers=2, n_heads=4, n_kv_heads=1, max_seq_len=32):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(Llama3Block(dim, n_heads, n_kv_heads)
                                    for _ in range(n_layers))
        self.norm = RMSNorm(dim)
        self.output = nn.Linear(dim, vocab, bias=False)
        self.freqs_cis = precompute_freqs_cis(dim // n_heads, max_seq_len * 2)

    def forward(self, tokens, start_pos=0):
        _bsz, seqlen = tokens.shape
        h = self.tok_embeddings(tokens)
        freqs_cis = self.freqs_cis[start_pos: start_pos + seqlen]
        mask = None
        if seqlen > 1:
            mask = torch.full((seqlen, seqlen), float("-inf"))
            mask = torch.triu(mask, diagonal=1)
            # with the kv cache, only the (seqlen, cache_len + seqlen) block is masked
            mask = torch.hstack([torch.zeros((seqlen, start_pos)), mask]).type_as(h)
        for layer in self.layers:
            h = layer(h, start_pos, freqs_cis, mask)
        h = self.norm(h)
        return self.output(h).float()


def llama3():
    torch.manual_seed(0)
    return _gain(Llama3(), 1.5)


# --- Google's gemma_pytorch (gemma/model.py), Gemma 2 -----------------------------------------


class GemmaRMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6, add_unit_offset=True):
        super().__init__()
        self.eps, self.add_unit_offset = eps, add_unit_offset
        self.weight = nn.Parameter(torch.zeros(dim))

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        output = self._norm(x.float())
        if self.add_unit_offset:
            output = output * (1 + self.weight.float())
        else:
            output = output * self.weight.float()
        return output.type_as(x)


def gemma_precompute_freqs_cis(dim, end, theta=10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = torch.arange(end, device=freqs.device)
    freqs = torch.outer(t, freqs).float()
    return torch.polar(torch.ones_like(freqs), freqs)


def gemma_apply_rotary_emb(x, freqs_cis):
    """gemma_pytorch's: the two halves of each head as the real and imaginary parts."""
    x_ = torch.view_as_complex(torch.stack(torch.chunk(x.transpose(1, 2).float(), 2, dim=-1),
                                           dim=-1))
    x_out = torch.view_as_real(x_ * freqs_cis).type_as(x)
    x_out = torch.cat(torch.chunk(x_out, 2, dim=-1), dim=-2)
    x_out = x_out.reshape(x_out.shape[0], x_out.shape[1], x_out.shape[2], -1).transpose(1, 2)
    return x_out


class GemmaMLP(nn.Module):
    def __init__(self, hidden_size, intermediate_size):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size)
        self.up_proj = nn.Linear(hidden_size, intermediate_size)
        self.down_proj = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x):
        gate = F.gelu(self.gate_proj(x), approximate="tanh")
        up = self.up_proj(x)
        return self.down_proj(gate * up)


class GemmaAttention(nn.Module):
    def __init__(self, hidden_size, num_heads, num_kv_heads, head_dim, query_pre_attn_scalar,
                 attn_logit_softcapping, sliding_window_size):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.num_queries_per_kv = num_heads // num_kv_heads
        self.q_size, self.kv_size = num_heads * head_dim, num_kv_heads * head_dim
        self.scaling = query_pre_attn_scalar ** -0.5
        self.qkv_proj = nn.Linear(hidden_size, (num_heads + 2 * num_kv_heads) * head_dim,
                                  bias=False)
        self.o_proj = nn.Linear(num_heads * head_dim, hidden_size, bias=False)
        self.attn_logit_softcapping = attn_logit_softcapping
        self.sliding_window_size = sliding_window_size

    def forward(self, hidden_states, freqs_cis, mask):
        batch_size, input_len, _ = hidden_states.shape
        qkv = self.qkv_proj(hidden_states)
        xq, xk, xv = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        xq = xq.view(batch_size, -1, self.num_heads, self.head_dim)
        xk = xk.view(batch_size, -1, self.num_kv_heads, self.head_dim)
        xv = xv.view(batch_size, -1, self.num_kv_heads, self.head_dim)
        xq = gemma_apply_rotary_emb(xq, freqs_cis=freqs_cis)
        xk = gemma_apply_rotary_emb(xk, freqs_cis=freqs_cis)
        key, value = xk, xv
        if self.num_kv_heads != self.num_heads:
            key = torch.repeat_interleave(key, self.num_queries_per_kv, dim=2)
            value = torch.repeat_interleave(value, self.num_queries_per_kv, dim=2)
        q = xq.transpose(1, 2)
        k = key.transpose(1, 2)
        v = value.transpose(1, 2)
        q.mul_(self.scaling)
        scores = torch.matmul(q, k.transpose(2, 3))
        if self.sliding_window_size is not None:
            all_ones = torch.ones_like(mask)
            sliding_mask = torch.triu(all_ones, -1 * self.sliding_window_size + 1) * torch.tril(
                all_ones, self.sliding_window_size - 1)
            mask = torch.where(sliding_mask == 1, mask, -2.3819763e38)
        if self.attn_logit_softcapping is not None:
            scores = scores / self.attn_logit_softcapping
            scores = torch.tanh(scores)
            scores = scores * self.attn_logit_softcapping
        scores = scores + mask
        scores = F.softmax(scores.float(), dim=-1).type_as(q)
        output = torch.matmul(scores, v)
        output = output.transpose(1, 2).contiguous().view(batch_size, input_len, -1)
        return self.o_proj(output)


class Gemma2DecoderLayer(nn.Module):
    def __init__(self, hidden, heads, kv_heads, head_dim, sliding_window_size):
        super().__init__()
        self.self_attn = GemmaAttention(hidden, heads, kv_heads, head_dim, head_dim, 50.0,
                                        sliding_window_size)
        self.mlp = GemmaMLP(hidden, 4 * hidden)
        self.input_layernorm = GemmaRMSNorm(hidden)
        self.post_attention_layernorm = GemmaRMSNorm(hidden)
        self.pre_feedforward_layernorm = GemmaRMSNorm(hidden)
        self.post_feedforward_layernorm = GemmaRMSNorm(hidden)

    def forward(self, hidden_states, freqs_cis, mask):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states = self.self_attn(hidden_states, freqs_cis, mask)
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.pre_feedforward_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = self.post_feedforward_layernorm(hidden_states)
        return residual + hidden_states


class Gemma2(nn.Module):
    def __init__(self, vocab=100, hidden=64, heads=4, kv_heads=2, head_dim=16, n=2,
                 max_seq_len=32, sliding_window=8, final_logit_softcapping=30.0):
        super().__init__()
        self.embedder = nn.Embedding(vocab, hidden)
        self.hidden = hidden
        self.layers = nn.ModuleList(
            Gemma2DecoderLayer(hidden, heads, kv_heads, head_dim,
                               sliding_window if i % 2 == 0 else None) for i in range(n))
        self.norm = GemmaRMSNorm(hidden)
        self.final_logit_softcapping = final_logit_softcapping
        self.register_buffer("freqs_cis", gemma_precompute_freqs_cis(head_dim, max_seq_len * 2),
                             persistent=False)

    def forward(self, input_token_ids):
        _b, seqlen = input_token_ids.shape
        hidden_states = self.embedder(input_token_ids)
        normalizer = torch.tensor(self.hidden ** 0.5, dtype=hidden_states.dtype)
        hidden_states = hidden_states * normalizer
        freqs_cis = self.freqs_cis.index_select(0, torch.arange(seqlen))
        mask = torch.full((1, 1, seqlen, seqlen), -2.3819763e38).triu(diagonal=1)
        for layer in self.layers:
            hidden_states = layer(hidden_states, freqs_cis, mask)
        hidden_states = self.norm(hidden_states)
        logits = torch.matmul(hidden_states, self.embedder.weight.t())  # tied embedder
        if self.final_logit_softcapping is not None:
            logits = logits / self.final_logit_softcapping
            logits = torch.tanh(logits)
            logits = logits * self.final_logit_softcapping
        return logits


def gemma2():
    torch.manual_seed(0)
    m = Gemma2()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                p.normal_(0.0, 0.1)  # (1 + weight) around 1, as trained Gemma norms sit
    return _gain(m, 1.5)


# --- Qwen2 by hand (modeling_qwen2.py's layout): q / k / v biases, GQA, rotate_half RoPE -----


class Qwen2Rotary(nn.Module):
    def __init__(self, dim, base=1000000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @torch.no_grad()
    def forward(self, x, position_ids):
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(
            position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype=x.dtype), emb.sin().to(dtype=x.dtype)


class Qwen2Attention(nn.Module):
    def __init__(self, hidden, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.q_proj = nn.Linear(hidden, heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(heads * self.head_dim, hidden, bias=False)

    def forward(self, x, cos, sin, causal_mask):
        input_shape = x.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        q = self.q_proj(x).view(hidden_shape).transpose(1, 2)
        k = self.k_proj(x).view(hidden_shape).transpose(1, 2)
        v = self.v_proj(x).view(hidden_shape).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        n_rep = self.heads // self.kv_heads
        b, kvh, t, hd = k.shape
        k = k[:, :, None, :, :].expand(b, kvh, n_rep, t, hd).reshape(b, kvh * n_rep, t, hd)
        v = v[:, :, None, :, :].expand(b, kvh, n_rep, t, hd).reshape(b, kvh * n_rep, t, hd)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask)
        out = out.transpose(1, 2).reshape(*input_shape, -1).contiguous()
        return self.o_proj(out)


class Qwen2MLP(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class Qwen2Layer(nn.Module):
    def __init__(self, hidden, heads, kv_heads):
        super().__init__()
        self.self_attn = Qwen2Attention(hidden, heads, kv_heads)
        self.mlp = Qwen2MLP(hidden, 3 * hidden)
        self.input_layernorm = nn.RMSNorm(hidden, eps=1e-6)
        self.post_attention_layernorm = nn.RMSNorm(hidden, eps=1e-6)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen2(nn.Module):
    def __init__(self, vocab=100, hidden=64, heads=4, kv_heads=2, n=2):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Qwen2Layer(hidden, heads, kv_heads) for _ in range(n))
        self.norm = nn.RMSNorm(hidden, eps=1e-6)
        self.rotary_emb = Qwen2Rotary(hidden // heads)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tie_word_embeddings

    def forward(self, input_ids):
        T = input_ids.shape[1]
        x = self.embed_tokens(input_ids)
        position_ids = torch.arange(T).unsqueeze(0)
        cos, sin = self.rotary_emb(x, position_ids)
        min_dtype = torch.finfo(x.dtype).min
        causal_mask = torch.full((T, T), fill_value=min_dtype, dtype=x.dtype)
        causal_mask = torch.triu(causal_mask, diagonal=1)[None, None, :, :]
        for layer in self.layers:
            x = layer(x, cos, sin, causal_mask)
        return self.lm_head(self.norm(x))


def qwen2():
    torch.manual_seed(0)
    m = Qwen2()
    with torch.no_grad():  # Qwen's trained q / k biases are large: give them a spread
        for layer in m.layers:
            for p in (layer.self_attn.q_proj.bias, layer.self_attn.k_proj.bias):
                p.normal_(0.0, 0.5)
    return _gain(m, 1.5)


# --- DeepSeek-V2 multi-head latent attention (modeling_deepseek.py's DeepseekV2Attention) ----


def deepseek_apply_rotary(q, k, cos, sin):
    """DeepSeek's rope: the interleaved pairs of the rope dims moved to halves, rotate_half."""
    b, h, s, d = q.shape
    q = q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    b, h, s, d = k.shape
    k = k.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


class DeepseekRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class DeepseekV2Attention(nn.Module):
    def __init__(self, hidden=64, heads=4, q_lora_rank=32, kv_lora_rank=24,
                 qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, max_pos=64):
        super().__init__()
        self.num_heads = heads
        self.kv_lora_rank, self.v_head_dim = kv_lora_rank, v_head_dim
        self.qk_nope_head_dim, self.qk_rope_head_dim = qk_nope_head_dim, qk_rope_head_dim
        self.q_head_dim = qk_nope_head_dim + qk_rope_head_dim
        self.q_a_proj = nn.Linear(hidden, q_lora_rank, bias=False)
        self.q_a_layernorm = DeepseekRMSNorm(q_lora_rank)
        self.q_b_proj = nn.Linear(q_lora_rank, heads * self.q_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(hidden, kv_lora_rank + qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = DeepseekRMSNorm(kv_lora_rank)
        self.kv_b_proj = nn.Linear(
            kv_lora_rank, heads * (self.q_head_dim - qk_rope_head_dim + v_head_dim), bias=False)
        self.o_proj = nn.Linear(heads * v_head_dim, hidden, bias=False)
        self.softmax_scale = self.q_head_dim ** (-0.5)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, qk_rope_head_dim, 2).float()
                                    / qk_rope_head_dim))
        freqs = torch.outer(torch.arange(max_pos).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self, hidden_states, attention_mask, position_ids):
        bsz, q_len, _ = hidden_states.size()
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(hidden_states)))
        q = q.view(bsz, q_len, self.num_heads, self.q_head_dim).transpose(1, 2)
        q_nope, q_pe = torch.split(q, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        compressed_kv = self.kv_a_proj_with_mqa(hidden_states)
        compressed_kv, k_pe = torch.split(
            compressed_kv, [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        k_pe = k_pe.view(bsz, q_len, 1, self.qk_rope_head_dim).transpose(1, 2)
        kv = (self.kv_b_proj(self.kv_a_layernorm(compressed_kv))
              .view(bsz, q_len, self.num_heads, self.qk_nope_head_dim + self.v_head_dim)
              .transpose(1, 2))
        k_nope, value_states = torch.split(kv, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
        cos = self.cos_cached[position_ids].unsqueeze(1)
        sin = self.sin_cached[position_ids].unsqueeze(1)
        q_pe, k_pe = deepseek_apply_rotary(q_pe, k_pe, cos, sin)
        query_states = k_pe.new_empty(bsz, self.num_heads, q_len, self.q_head_dim)
        query_states[:, :, :, : self.qk_nope_head_dim] = q_nope
        query_states[:, :, :, self.qk_nope_head_dim:] = q_pe
        key_states = k_pe.new_empty(bsz, self.num_heads, q_len, self.q_head_dim)
        key_states[:, :, :, : self.qk_nope_head_dim] = k_nope
        key_states[:, :, :, self.qk_nope_head_dim:] = k_pe
        attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) \
            * self.softmax_scale
        attn_weights = attn_weights + attention_mask
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(q_pe.dtype)
        attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).contiguous().reshape(
            bsz, q_len, self.num_heads * self.v_head_dim)
        return self.o_proj(attn_output)


class DeepseekMLP(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DeepseekV2Layer(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.self_attn = DeepseekV2Attention(hidden)
        self.mlp = DeepseekMLP(hidden, 3 * hidden)
        self.input_layernorm = DeepseekRMSNorm(hidden)
        self.post_attention_layernorm = DeepseekRMSNorm(hidden)

    def forward(self, x, mask, position_ids):
        x = x + self.self_attn(self.input_layernorm(x), mask, position_ids)
        return x + self.mlp(self.post_attention_layernorm(x))


class DeepseekV2MLA(nn.Module):
    def __init__(self, vocab=100, hidden=64, n=2):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(DeepseekV2Layer(hidden) for _ in range(n))
        self.norm = DeepseekRMSNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, input_ids):
        _bsz, T = input_ids.shape
        position_ids = torch.arange(T, dtype=torch.long).unsqueeze(0)
        x = self.embed_tokens(input_ids)
        mask = torch.full((T, T), torch.finfo(x.dtype).min).triu(1)[None, None]
        for layer in self.layers:
            x = layer(x, mask, position_ids)
        return self.lm_head(self.norm(x)).float()


def deepseek_mla():
    torch.manual_seed(0)
    return _gain(DeepseekV2MLA(), 1.5)


# --- Microsoft's Differential Transformer (unilm/Diff-Transformer/multihead_diffattn.py) ----


def lambda_init_fn(depth):
    return 0.8 - 0.6 * math.exp(-0.3 * depth)


def rotate_every_two(x):
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def apply_rotary_emb_interleaved(x, cos, sin):
    """flash-attn's apply_rotary_emb(interleaved=True) in plain torch: (B, T, H, D) x (T, D/2)."""
    cos = repeat(cos, "... d -> ... 1 (d 2)")
    sin = repeat(sin, "... d -> ... 1 (d 2)")
    return x * cos + rotate_every_two(x) * sin


class MultiheadDiffAttn(nn.Module):
    def __init__(self, embed_dim, depth, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads // 2
        self.scaling = self.head_dim ** -0.5
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.lambda_init = lambda_init_fn(depth)
        self.lambda_q1 = nn.Parameter(torch.zeros(self.head_dim).normal_(mean=0, std=0.1))
        self.lambda_k1 = nn.Parameter(torch.zeros(self.head_dim).normal_(mean=0, std=0.1))
        self.lambda_q2 = nn.Parameter(torch.zeros(self.head_dim).normal_(mean=0, std=0.1))
        self.lambda_k2 = nn.Parameter(torch.zeros(self.head_dim).normal_(mean=0, std=0.1))
        self.subln = RMSNorm(2 * self.head_dim, eps=1e-5)

    def forward(self, x, rel_pos, attn_mask=None):
        bsz, tgt_len, _embed_dim = x.size()
        src_len = tgt_len
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.view(bsz, tgt_len, 2 * self.num_heads, self.head_dim)
        k = k.view(bsz, src_len, 2 * self.num_heads, self.head_dim)
        v = v.view(bsz, src_len, self.num_heads, 2 * self.head_dim)
        q = apply_rotary_emb_interleaved(q, *rel_pos)
        k = apply_rotary_emb_interleaved(k, *rel_pos)
        offset = src_len - tgt_len
        q = q.transpose(1, 2)
        k = k.transpose(1, 2)  # repeat_kv(k, n_rep) with n_rep 1
        v = v.transpose(1, 2)
        q *= self.scaling
        attn_weights = torch.matmul(q, k.transpose(-1, -2))
        if attn_mask is None:
            attn_mask = torch.triu(torch.zeros([tgt_len, src_len]).float().fill_(float("-inf"))
                                   .type_as(attn_weights), 1 + offset)
        attn_weights = torch.nan_to_num(attn_weights)
        attn_weights += attn_mask
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).type_as(attn_weights)
        lambda_1 = torch.exp(torch.sum(self.lambda_q1 * self.lambda_k1, dim=-1).float()).type_as(q)
        lambda_2 = torch.exp(torch.sum(self.lambda_q2 * self.lambda_k2, dim=-1).float()).type_as(q)
        lambda_full = lambda_1 - lambda_2 + self.lambda_init
        attn_weights = attn_weights.view(bsz, self.num_heads, 2, tgt_len, src_len)
        attn_weights = attn_weights[:, :, 0] - lambda_full * attn_weights[:, :, 1]
        attn = torch.matmul(attn_weights, v)
        attn = self.subln(attn)
        attn = attn * (1 - self.lambda_init)
        attn = attn.transpose(1, 2).reshape(bsz, tgt_len, self.num_heads * 2 * self.head_dim)
        return self.out_proj(attn)


class DiffBlock(nn.Module):
    def __init__(self, d, depth, heads):
        super().__init__()
        self.attn_norm, self.ffn_norm = RMSNorm(d), RMSNorm(d)
        self.attn = MultiheadDiffAttn(d, depth, heads)
        self.w1, self.w2, self.w3 = (nn.Linear(d, 3 * d, bias=False),
                                     nn.Linear(3 * d, d, bias=False),
                                     nn.Linear(d, 3 * d, bias=False))

    def forward(self, x, rel_pos):
        x = x + self.attn(self.attn_norm(x), rel_pos)
        h = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class DiffTransformer(nn.Module):
    def __init__(self, vocab=100, d=64, heads=2, n=2, max_len=64):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(DiffBlock(d, i, heads) for i in range(n))
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        hd = d // heads // 2
        inv_freq = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.outer(torch.arange(max_len).float(), inv_freq)
        self.register_buffer("cos", freqs.cos(), persistent=False)
        self.register_buffer("sin", freqs.sin(), persistent=False)

    def forward(self, ids):
        T = ids.shape[1]
        rel_pos = (self.cos[:T], self.sin[:T])
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, rel_pos)
        return self.head(self.norm(x))


def diff_transformer():
    torch.manual_seed(0)
    return _gain(DiffTransformer(), 1.5)


# --- NVIDIA's nGPT (NVIDIA/ngpt model.py): the normalized transformer ------------------------


def justnorm(x, idim=-1):
    dtype = x.dtype
    x = x.float()
    return (x / x.norm(p=2, dim=idim, keepdim=True)).to(dtype=dtype)


def ngpt_rotary(q, k, sinusoidal_pos):
    sin, cos = sinusoidal_pos.chunk(2, dim=-1)
    q_rot = torch.stack((-q[..., 1::2], q[..., ::2]), dim=-1)
    k_rot = torch.stack((-k[..., 1::2], k[..., ::2]), dim=-1)
    q_rot = torch.reshape(q_rot, q.shape[:-1] + (q.shape[-1] // 2, 2)) * torch.stack((cos, sin),
                                                                                     dim=-1)
    k_rot = torch.reshape(k_rot, k.shape[:-1] + (k.shape[-1] // 2, 2)) * torch.stack((cos, sin),
                                                                                     dim=-1)
    q_rot = torch.reshape(q_rot, q.shape)
    k_rot = torch.reshape(k_rot, k.shape)
    return q_rot, k_rot


def get_sinusoidal_embeddings(n_positions, dim):
    position = torch.arange(n_positions, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    sinusoidal_emb = torch.zeros((n_positions, dim))
    sinusoidal_emb[:, 0::2] = torch.sin(position * div_term)
    sinusoidal_emb[:, 1::2] = torch.cos(position * div_term)
    return sinusoidal_emb


class NGPTBlock(nn.Module):
    def __init__(self, n_embd, n_head, base_scale):
        super().__init__()
        self.n_head = n_head
        self.key = nn.Linear(n_embd, n_embd, bias=False)
        self.query = nn.Linear(n_embd, n_embd, bias=False)
        self.value = nn.Linear(n_embd, n_embd, bias=False)
        self.att_c_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.c_fc = nn.Linear(n_embd, 2 * 4 * n_embd, bias=False)
        self.silu = nn.SiLU()
        self.mlp_c_proj = nn.Linear(4 * n_embd, n_embd, bias=False)
        self.attn_alpha_init_value, self.attn_alpha_init_scaling = 0.05, base_scale
        self.attn_alpha = nn.Parameter(self.attn_alpha_init_scaling * torch.ones(n_embd))
        self.mlp_alpha_init_value, self.mlp_alpha_init_scaling = 0.05, base_scale
        self.mlp_alpha = nn.Parameter(self.mlp_alpha_init_scaling * torch.ones(n_embd))
        self.sqk_init_value, self.sqk_init_scaling = 1.0, base_scale
        self.sqk = nn.Parameter(self.sqk_init_scaling * torch.ones(n_embd))
        self.suv_init_value, self.suv_init_scaling = 1.0, 1.0
        self.suv = nn.Parameter(self.suv_init_scaling * torch.ones(2 * 4 * n_embd))

    def forward(self, h):
        B, T, C = h.size()
        hin = h
        q, k, v = self.query(hin), self.key(hin), self.value(hin)
        q = q.view(B, T, self.n_head, C // self.n_head)
        k = k.view(B, T, self.n_head, C // self.n_head)
        v = v.view(B, T, self.n_head, C // self.n_head)
        sinusoidal_pos = get_sinusoidal_embeddings(T, C // self.n_head)
        q, k = ngpt_rotary(q.transpose(2, 1), k.transpose(2, 1), sinusoidal_pos)
        q, k = q.transpose(2, 1), k.transpose(2, 1)
        sqk = (self.sqk * (self.sqk_init_value / self.sqk_init_scaling)).view(
            1, 1, self.n_head, C // self.n_head)
        q = sqk * justnorm(q)
        k = sqk * justnorm(k)
        sqrt_head_dim = (C / self.n_head) ** 0.5
        softmax_scale = sqrt_head_dim
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), attn_mask=None, dropout_p=0.0,
                                           is_causal=True, scale=softmax_scale)
        y = y.transpose(2, 1).contiguous().view(B, T, C)
        h_att = self.att_c_proj(y)
        lr = self.attn_alpha * (self.attn_alpha_init_value / self.attn_alpha_init_scaling)
        lr = torch.abs(lr)
        A_norm = justnorm(h)
        B_norm = justnorm(h_att)
        res = A_norm + lr * (B_norm - A_norm)
        h = justnorm(res)
        hin = h
        uv = self.c_fc(hin)
        suv = self.suv * ((self.suv_init_value / self.suv_init_scaling) * (C ** 0.5))
        uv = suv * uv
        u, v = torch.chunk(uv, 2, dim=-1)
        x_mlp = u * self.silu(v)
        h_mlp = self.mlp_c_proj(x_mlp)
        lr = self.mlp_alpha * (self.mlp_alpha_init_value / self.mlp_alpha_init_scaling)
        lr = torch.abs(lr)
        A_norm = justnorm(h)
        B_norm = justnorm(h_mlp)
        res = A_norm + lr * (B_norm - A_norm)
        return justnorm(res)


class NGPT(nn.Module):
    def __init__(self, vocab=100, n_embd=64, n_head=4, n_layer=2):
        super().__init__()
        self.base_scale = 1.0 / n_embd ** 0.5
        self.wte = nn.Embedding(vocab, n_embd)
        self.h = nn.ModuleList(NGPTBlock(n_embd, n_head, self.base_scale) for _ in range(n_layer))
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.sz_init_value, self.sz_init_scaling = 1.00, self.base_scale
        self.sz = nn.Parameter(self.sz_init_scaling * torch.ones(vocab))

    def forward(self, idx):
        x = self.wte(idx)
        for block in self.h:
            x = block(x)
        sz = self.sz * (self.sz_init_value / self.sz_init_scaling)
        return sz * self.lm_head(x)


def ngpt():
    torch.manual_seed(0)
    m = NGPT()
    with torch.no_grad():  # normalize_matrices(): the embedding rows and weights on the sphere
        m.wte.weight.copy_(justnorm(m.wte.weight, 1))
        m.lm_head.weight.copy_(justnorm(m.lm_head.weight, 1))
        for b in m.h:
            for lin in (b.query, b.key, b.value, b.c_fc):
                lin.weight.copy_(justnorm(lin.weight, 1))
            for lin in (b.att_c_proj, b.mlp_c_proj):
                lin.weight.copy_(justnorm(lin.weight, 0))
    return m.eval()


# --- RWKV-v6 "Finch" by hand (RWKV-LM's RWKV-v6 model, the WKV as a loop over time) ---------


class RWKV6TimeMix(nn.Module):
    def __init__(self, n_embd, n_head, layer_id, n_layer, lora=8, decay_lora=16):
        super().__init__()
        self.n_head, self.head_size = n_head, n_embd // n_head
        r01 = layer_id / max(n_layer - 1, 1)
        r1a0 = 1.0 - layer_id / n_layer
        ddd = torch.arange(n_embd).float().view(1, 1, n_embd) / n_embd
        self.time_maa_x = nn.Parameter(1.0 - torch.pow(ddd, r1a0))
        self.time_maa_w = nn.Parameter(1.0 - torch.pow(ddd, r1a0))
        self.time_maa_k = nn.Parameter(1.0 - torch.pow(ddd, r1a0))
        self.time_maa_v = nn.Parameter(1.0 - (torch.pow(ddd, r1a0) + 0.3 * r01))
        self.time_maa_r = nn.Parameter(1.0 - torch.pow(ddd, 0.5 * r1a0))
        self.time_maa_g = nn.Parameter(1.0 - torch.pow(ddd, 0.5 * r1a0))
        self.time_maa_w1 = nn.Parameter(torch.zeros(n_embd, lora * 5).uniform_(-1e-1, 1e-1))
        self.time_maa_w2 = nn.Parameter(torch.zeros(5, lora, n_embd).uniform_(-1e-1, 1e-1))
        decay_speed = torch.tensor([-6 + 5 * (n / (n_embd - 1)) ** (0.7 + 1.3 * r01)
                                    for n in range(n_embd)])
        self.time_decay = nn.Parameter(decay_speed.reshape(1, 1, n_embd))
        self.time_decay_w1 = nn.Parameter(torch.zeros(n_embd, decay_lora).uniform_(-1e-1, 1e-1))
        self.time_decay_w2 = nn.Parameter(torch.zeros(decay_lora, n_embd).uniform_(-1e-1, 1e-1))
        tmp = torch.tensor([r01 * (1 - n / (n_embd - 1)) + ((n + 1) % 3 - 1) * 0.1
                            for n in range(n_embd)])
        self.time_faaaa = nn.Parameter(tmp.reshape(n_head, self.head_size))
        self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
        self.receptance = nn.Linear(n_embd, n_embd, bias=False)
        self.key = nn.Linear(n_embd, n_embd, bias=False)
        self.value = nn.Linear(n_embd, n_embd, bias=False)
        self.output = nn.Linear(n_embd, n_embd, bias=False)
        self.gate = nn.Linear(n_embd, n_embd, bias=False)
        self.ln_x = nn.GroupNorm(n_head, n_embd, eps=(1e-5) * (8 ** 2))

    def jit_func(self, x):
        B, T, _C = x.size()
        xx = self.time_shift(x) - x
        xxx = x + xx * self.time_maa_x
        xxx = torch.tanh(xxx @ self.time_maa_w1).view(B * T, 5, -1).transpose(0, 1)
        xxx = torch.bmm(xxx, self.time_maa_w2).view(5, B, T, -1)
        mw, mk, mv, mr, mg = xxx.unbind(dim=0)
        xw = x + xx * (self.time_maa_w + mw)
        xk = x + xx * (self.time_maa_k + mk)
        xv = x + xx * (self.time_maa_v + mv)
        xr = x + xx * (self.time_maa_r + mr)
        xg = x + xx * (self.time_maa_g + mg)
        r, k, v = self.receptance(xr), self.key(xk), self.value(xv)
        g = F.silu(self.gate(xg))
        ww = torch.tanh(xw @ self.time_decay_w1) @ self.time_decay_w2
        w = self.time_decay + ww
        return r, k, v, g, w

    def wkv(self, r, k, v, w):
        """RUN_CUDA_RWKV6 as the recurrence it computes: per head a (N, N) state."""
        B, T, C = r.shape
        H, N = self.n_head, self.head_size
        w = torch.exp(-torch.exp(w.float()))  # (B, T, C) decay in (0, 1)
        u = self.time_faaaa.view(1, H, N, 1)
        state = torch.zeros(B, H, N, N)
        outs = []
        for t in range(T):
            kt = k[:, t].view(B, H, N, 1)
            vt = v[:, t].view(B, H, 1, N)
            rt = r[:, t].view(B, H, 1, N)
            at = kt @ vt  # (B, H, N, N)
            outs.append((rt @ (u * at + state)).view(B, C))
            state = at + w[:, t].view(B, H, N, 1) * state
        return torch.stack(outs, dim=1)

    def jit_func_2(self, x, g):
        B, T, C = x.size()
        x = x.view(B * T, C)
        x = self.ln_x(x).view(B, T, C)
        return self.output(x * g)

    def forward(self, x):
        r, k, v, g, w = self.jit_func(x)
        return self.jit_func_2(self.wkv(r, k, v, w), g)


class RWKV6ChannelMix(nn.Module):
    def __init__(self, n_embd, layer_id, n_layer):
        super().__init__()
        self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
        ddd = torch.arange(n_embd).float().view(1, 1, n_embd) / n_embd
        r1a0 = 1.0 - layer_id / n_layer
        self.time_maa_k = nn.Parameter(1.0 - torch.pow(ddd, r1a0))
        self.time_maa_r = nn.Parameter(1.0 - torch.pow(ddd, r1a0))
        self.key = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.receptance = nn.Linear(n_embd, n_embd, bias=False)
        self.value = nn.Linear(3 * n_embd, n_embd, bias=False)

    def forward(self, x):
        xx = self.time_shift(x) - x
        xk = x + xx * self.time_maa_k
        xr = x + xx * self.time_maa_r
        k = torch.relu(self.key(xk)) ** 2
        kv = self.value(k)
        return torch.sigmoid(self.receptance(xr)) * kv


class RWKV6Block(nn.Module):
    def __init__(self, n_embd, n_head, layer_id, n_layer):
        super().__init__()
        self.layer_id = layer_id
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(n_embd)
        self.att = RWKV6TimeMix(n_embd, n_head, layer_id, n_layer)
        self.ffn = RWKV6ChannelMix(n_embd, layer_id, n_layer)

    def forward(self, x):
        if self.layer_id == 0:
            x = self.ln0(x)
        x = x + self.att(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class RWKV6(nn.Module):
    def __init__(self, vocab=100, n_embd=32, n_head=2, n_layer=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, n_embd)
        self.blocks = nn.ModuleList(RWKV6Block(n_embd, n_head, i, n_layer)
                                    for i in range(n_layer))
        self.ln_out = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab, bias=False)

    def forward(self, idx):
        x = self.emb(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_out(x))


def rwkv6():
    torch.manual_seed(0)
    return _gain(RWKV6(), 2.0)


# --- xLSTM's mLSTM (NX-AI/xlstm, mlstm/backends.py parallel_stabilized_simple, mlstm/layer.py)


def parallel_stabilized_simple(queries, keys, values, igate_preact, fgate_preact,
                               lower_triangular_matrix=None, stabilize_rowwise=True, eps=1e-6):
    B, NH, S, DH = queries.shape
    _dtype, _device = queries.dtype, queries.device
    log_fgates = F.logsigmoid(fgate_preact)  # (B, NH, S, 1)
    if lower_triangular_matrix is None or S < lower_triangular_matrix.size(-1):
        ltr = torch.tril(torch.ones((S, S), dtype=torch.bool, device=_device))
    else:
        ltr = lower_triangular_matrix
    log_fgates_cumsum = torch.cat([torch.zeros((B, NH, 1, 1), dtype=_dtype, device=_device),
                                   torch.cumsum(log_fgates, dim=-2)], dim=-2)  # (B, NH, S+1, 1)
    rep_log_fgates_cumsum = log_fgates_cumsum.repeat(1, 1, 1, S + 1)
    _log_fg_matrix = rep_log_fgates_cumsum - rep_log_fgates_cumsum.transpose(-2, -1)
    log_fg_matrix = torch.where(ltr, _log_fg_matrix[:, :, 1:, 1:], -float("inf"))
    log_D_matrix = log_fg_matrix + igate_preact.transpose(-2, -1)  # (B, NH, S, S)
    if stabilize_rowwise:
        max_log_D, _ = torch.max(log_D_matrix, dim=-1, keepdim=True)
    else:
        max_log_D = torch.max(log_D_matrix.view(B, NH, -1), dim=-1, keepdim=True)[0].unsqueeze(-1)
    log_D_matrix_stabilized = log_D_matrix - max_log_D
    D_matrix = torch.exp(log_D_matrix_stabilized)
    keys_scaled = keys / math.sqrt(DH)
    qk_matrix = queries @ keys_scaled.transpose(-2, -1)
    C_matrix = qk_matrix * D_matrix
    normalizer = torch.maximum(C_matrix.sum(dim=-1, keepdim=True).abs(), torch.exp(-max_log_D))
    C_matrix_normalized = C_matrix / (normalizer + eps)
    return C_matrix_normalized @ values


class CausalConv1d(nn.Module):
    def __init__(self, feature_dim, kernel_size=4):
        super().__init__()
        self.pad = kernel_size - 1
        self.conv = nn.Conv1d(feature_dim, feature_dim, kernel_size, padding=self.pad,
                              groups=feature_dim)

    def forward(self, x):  # (B, T, F)
        y = self.conv(x.transpose(2, 1))
        return y[:, :, : -self.pad].transpose(2, 1)


class LinearHeadwiseExpand(nn.Module):
    def __init__(self, in_features, num_heads):
        super().__init__()
        self.num_heads = num_heads
        d = in_features // num_heads
        self.weight = nn.Parameter(torch.empty(num_heads, d, d).normal_(0, (2 / 5 / d) ** 0.5))

    def forward(self, x):
        shape = x.shape
        x = x.view(*shape[:-1], self.num_heads, -1)
        x = torch.einsum("...hd,hod->...ho", x, self.weight)
        return x.reshape(*shape[:-1], -1)


class MultiHeadLayerNorm(nn.Module):
    def __init__(self, ndim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.eps = eps

    def forward(self, input):  # (B, NH, S, DH)
        B, NH, S, DH = input.shape
        gn_in_1 = input.transpose(1, 2)  # (B, S, NH, DH)
        gn_in_2 = gn_in_1.reshape(B * S, NH * DH)
        out = F.group_norm(gn_in_2, num_groups=NH, weight=self.weight, bias=None, eps=self.eps)
        return out.view(B, S, NH, DH).transpose(1, 2)


def recurrent_step_stabilized_simple(c_state, n_state, m_state, q, k, v, igate_preact,
                                     fgate_preact, eps=1e-6):
    """xLSTM's mlstm/backends.py recurrent step: q, k, v (B, NH, 1, DH), gates (B, NH, 1, 1),
    states C (B, NH, DH, DH), n (B, NH, DH, 1), m (B, NH, 1, 1)."""
    DH = q.shape[-1]
    q, k, v = (q.squeeze_(2).unsqueeze(-1), k.squeeze_(2).unsqueeze(-1),
               v.squeeze_(2).unsqueeze(-1))
    log_fg_act = F.logsigmoid(fgate_preact)
    m_state_new = torch.max(log_fg_act + m_state, igate_preact)
    fg_act = torch.exp(log_fg_act + m_state - m_state_new)
    ig_act = torch.exp(igate_preact - m_state_new)
    k_scaled = k / math.sqrt(DH)
    c_state_new = fg_act * c_state + ig_act * (k_scaled @ v.transpose(-1, -2))
    n_state_new = fg_act * n_state + ig_act * k_scaled
    h_num = q.transpose(-1, -2) @ c_state_new
    qn_dotproduct = q.transpose(-1, -2) @ n_state_new
    max_val = torch.exp(-m_state_new)
    h_denom = torch.maximum(qn_dotproduct.abs(), max_val) + eps
    h = h_num / h_denom
    return h, (c_state_new, n_state_new, m_state_new)


class MLSTMCell(nn.Module):
    def __init__(self, inner, num_heads, context_length, recurrent=False):
        super().__init__()
        self.num_heads, self.recurrent = num_heads, recurrent
        self.igate = nn.Linear(3 * inner, num_heads)
        self.fgate = nn.Linear(3 * inner, num_heads)
        self.outnorm = MultiHeadLayerNorm(inner)
        self.register_buffer("causal_mask", torch.tril(torch.ones(context_length, context_length,
                                                                  dtype=torch.bool)),
                             persistent=False)
        with torch.no_grad():  # xLSTM's init: forget gate bias linspace(3, 6)
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, num_heads))
            self.igate.bias.normal_(0.0, 0.1)

    def forward(self, q, k, v):
        B, S, _ = q.shape
        if_gate_input = torch.cat([q, k, v], dim=-1)
        q = q.view(B, S, self.num_heads, -1).transpose(1, 2)
        k = k.view(B, S, self.num_heads, -1).transpose(1, 2)
        v = v.view(B, S, self.num_heads, -1).transpose(1, 2)
        igate_preact = self.igate(if_gate_input).transpose(-1, -2).unsqueeze(-1)
        fgate_preact = self.fgate(if_gate_input).transpose(-1, -2).unsqueeze(-1)
        if self.recurrent:  # the step kernel over the positions, from zero states
            dh = q.shape[-1]
            c = torch.zeros(B, self.num_heads, dh, dh)
            n = torch.zeros(B, self.num_heads, dh, 1)
            m = torch.zeros(B, self.num_heads, 1, 1)
            hs = []
            for t in range(S):
                h, (c, n, m) = recurrent_step_stabilized_simple(
                    c, n, m, q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1],
                    igate_preact[:, :, t:t + 1], fgate_preact[:, :, t:t + 1])
                hs.append(h)
            h_state = torch.cat(hs, dim=-2)  # (B, NH, S, DH)
        else:
            h_state = parallel_stabilized_simple(q, k, v, igate_preact, fgate_preact,
                                                 lower_triangular_matrix=self.causal_mask)
        h_state_norm = self.outnorm(h_state)
        return h_state_norm.transpose(1, 2).reshape(B, S, -1)


class MLSTMLayer(nn.Module):
    def __init__(self, embedding_dim, num_heads=2, proj_factor=2.0, context_length=64,
                 recurrent=False):
        super().__init__()
        inner = int(proj_factor * embedding_dim)
        self.proj_up = nn.Linear(embedding_dim, 2 * inner, bias=False)
        self.q_proj = LinearHeadwiseExpand(inner, num_heads * 2)
        self.k_proj = LinearHeadwiseExpand(inner, num_heads * 2)
        self.v_proj = LinearHeadwiseExpand(inner, num_heads * 2)
        self.conv1d = CausalConv1d(inner, 4)
        self.conv_act_fn = nn.SiLU()
        self.mlstm_cell = MLSTMCell(inner, num_heads, context_length, recurrent)
        self.ogate_act_fn = nn.SiLU()
        self.learnable_skip = nn.Parameter(torch.ones(inner))
        self.proj_down = nn.Linear(inner, embedding_dim, bias=False)

    def forward(self, x):
        x_inner = self.proj_up(x)
        x_mlstm, z = torch.split(x_inner, split_size_or_sections=x_inner.shape[-1] // 2, dim=-1)
        x_mlstm_conv = self.conv1d(x_mlstm)
        x_mlstm_conv_act = self.conv_act_fn(x_mlstm_conv)
        q = self.q_proj(x_mlstm_conv_act)
        k = self.k_proj(x_mlstm_conv_act)
        v = self.v_proj(x_mlstm)
        h_tilde_state = self.mlstm_cell(q=q, k=k, v=v)
        h_tilde_state_skip = h_tilde_state + (self.learnable_skip * x_mlstm_conv_act)
        h_state = h_tilde_state_skip * self.ogate_act_fn(z)
        return self.proj_down(h_state)


class XLSTMLM(nn.Module):
    def __init__(self, vocab=100, d=48, n=2, recurrent=False):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d)
        self.norms = nn.ModuleList(nn.LayerNorm(d, bias=False) for _ in range(n))
        self.blocks = nn.ModuleList(MLSTMLayer(d, recurrent=recurrent) for _ in range(n))
        self.post_blocks_norm = nn.LayerNorm(d, bias=False)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        x = self.token_embedding(idx)
        for norm, block in zip(self.norms, self.blocks, strict=True):
            x = x + block(norm(x))
        return self.lm_head(self.post_blocks_norm(x))


def mlstm():
    torch.manual_seed(0)
    return _gain(XLSTMLM(), 1.5)


def mlstm_recurrent():
    torch.manual_seed(0)
    return _gain(XLSTMLM(recurrent=True), 1.5)


# --- Mamba-2's SSD in its minimal chunked form (state-spaces/mamba, ssd_minimal.py) ----------


def segsum(x):
    """More stable segment sum calculation: exp(segsum(A)) is the 1-SS mask."""
    T = x.size(-1)
    x = repeat(x, "... d -> ... d e", e=T)
    mask = torch.tril(torch.ones(T, T, device=x.device, dtype=torch.bool), diagonal=-1)
    x = x.masked_fill(~mask, 0)
    x_segsum = torch.cumsum(x, dim=-2)
    mask = torch.tril(torch.ones(T, T, device=x.device, dtype=torch.bool), diagonal=0)
    return x_segsum.masked_fill(~mask, -torch.inf)


def ssd_minimal_discrete(X, A, B, C, block_len, initial_states=None):
    """X (batch, length, n_heads, d_head), A (batch, length, n_heads), B and C (batch, length,
    n_heads, d_state); returns Y (batch, length, n_heads, d_head)."""
    X, A, B, C = [rearrange(x, "b (c l) ... -> b c l ...", l=block_len) for x in (X, A, B, C)]
    A = rearrange(A, "b c l h -> b h c l")
    A_cumsum = torch.cumsum(A, dim=-1)
    # 1. intra-chunk (diagonal blocks)
    L = torch.exp(segsum(A))
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, L, X)
    # 2. the state of each chunk
    decay_states = torch.exp(A_cumsum[:, :, :, -1:] - A_cumsum)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_states, X)
    # 3. inter-chunk recurrence
    if initial_states is None:
        initial_states = torch.zeros_like(states[:, :1])
    states = torch.cat([initial_states, states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[:, :, :, -1], (1, 0))))
    new_states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states, final_state = new_states[:, :-1], new_states[:, -1]
    # 4. state -> output per chunk
    state_decay_out = torch.exp(A_cumsum)
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, state_decay_out)
    Y = rearrange(Y_diag + Y_off, "b c l h p -> b (c l) h p")
    return Y, final_state


class GatedRMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x, z):
        x = x * F.silu(z)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Mamba2Mixer(nn.Module):
    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, headdim=16, chunk_size=8):
        super().__init__()
        self.d_inner = expand * d_model
        self.d_state, self.headdim, self.chunk_size = d_state, headdim, chunk_size
        self.nheads = self.d_inner // headdim
        d_in_proj = 2 * self.d_inner + 2 * d_state + self.nheads
        self.in_proj = nn.Linear(d_model, d_in_proj, bias=False)
        conv_dim = self.d_inner + 2 * d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1)
        dt = torch.exp(torch.rand(self.nheads) * (math.log(0.1) - math.log(0.001))
                       + math.log(0.001))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = GatedRMSNorm(self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, u):
        _b, seqlen, _ = u.shape
        zxbcdt = self.in_proj(u)
        A = -torch.exp(self.A_log)
        z, xBC, dt = torch.split(
            zxbcdt, [self.d_inner, self.d_inner + 2 * self.d_state, self.nheads], dim=-1)
        dt = F.softplus(dt + self.dt_bias)
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2)).transpose(1, 2)[:, :seqlen])
        x, B, C = torch.split(xBC, [self.d_inner, self.d_state, self.d_state], dim=-1)
        x = rearrange(x, "b l (h p) -> b l h p", p=self.headdim)
        B = repeat(B, "b l n -> b l h n", h=self.nheads)  # ngroups 1
        C = repeat(C, "b l n -> b l h n", h=self.nheads)
        pad = (-seqlen) % self.chunk_size  # as transformers' torch_forward: pad to chunks
        y, _ = ssd_minimal_discrete(*(F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))
                                      for t in (x * dt.unsqueeze(-1), A * dt, B, C)),
                                    self.chunk_size)
        y = y[:, :seqlen] + x * self.D.unsqueeze(-1)
        y = rearrange(y, "b l h p -> b l (h p)")
        return self.out_proj(self.norm(y, z))


class Mamba2LM(nn.Module):
    def __init__(self, vocab=100, d=32, n=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Mamba2Mixer(d) for _ in range(n))
        self.norms = nn.ModuleList(RMSNorm(d) for _ in range(n))
        self.norm_f = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.embedding.weight

    def forward(self, input_ids):
        x = self.embedding(input_ids)
        for norm, layer in zip(self.norms, self.layers, strict=True):
            x = x + layer(norm(x))
        return self.lm_head(self.norm_f(x))


def mamba2_ssd():
    torch.manual_seed(0)
    return _gain(Mamba2LM(), 1.5)


# --- ALBERT by hand (google-research/albert's modeling, as HF's AlbertModel lays it out) ------


class AlbertLayer(nn.Module):
    def __init__(self, hidden, heads, inter):
        super().__init__()
        self.heads, self.hd = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.attention_layer_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.ffn = nn.Linear(hidden, inter)
        self.ffn_output = nn.Linear(inter, hidden)
        self.full_layer_layer_norm = nn.LayerNorm(hidden, eps=1e-12)

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.heads, self.hd)
        return x.view(new_x_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        q = self.transpose_for_scores(self.query(hidden_states))
        k = self.transpose_for_scores(self.key(hidden_states))
        v = self.transpose_for_scores(self.value(hidden_states))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hd)
        scores = scores + attention_mask
        probs = nn.functional.softmax(scores, dim=-1)
        context = torch.matmul(probs, v).transpose(2, 1).flatten(2)
        attention_output = self.attention_layer_norm(hidden_states + self.dense(context))
        ffn_output = self.ffn_output(gelu_new(self.ffn(attention_output)))
        return self.full_layer_layer_norm(ffn_output + attention_output)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


class AlbertClassifier(nn.Module):
    def __init__(self, vocab=120, embedding_size=16, hidden=64, heads=4, inter=128,
                 num_hidden_layers=4, max_pos=64, classes=3, pad=0):
        super().__init__()
        self.pad, self.num_hidden_layers = pad, num_hidden_layers
        self.word_embeddings = nn.Embedding(vocab, embedding_size, padding_idx=pad)
        self.position_embeddings = nn.Embedding(max_pos, embedding_size)
        self.token_type_embeddings = nn.Embedding(2, embedding_size)
        self.LayerNorm = nn.LayerNorm(embedding_size, eps=1e-12)
        self.embedding_hidden_mapping_in = nn.Linear(embedding_size, hidden)
        self.albert_layers = nn.ModuleList([AlbertLayer(hidden, heads, inter)])  # one group
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, classes)
        self.register_buffer("position_ids", torch.arange(max_pos).expand((1, -1)),
                             persistent=False)

    def forward(self, input_ids):
        _B, T = input_ids.shape
        attention_mask = (input_ids != self.pad).long()
        token_type_ids = torch.zeros_like(input_ids)
        emb = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
               + self.position_embeddings(self.position_ids[:, :T]))
        emb = self.LayerNorm(emb)
        ext = attention_mask[:, None, None, :].to(emb.dtype)
        ext = (1.0 - ext) * torch.finfo(emb.dtype).min
        hidden_states = self.embedding_hidden_mapping_in(emb)
        for i in range(self.num_hidden_layers):  # every layer reads the same weights
            group_idx = int(i / (self.num_hidden_layers / len(self.albert_layers)))
            hidden_states = self.albert_layers[group_idx](hidden_states, ext)
        pooled = torch.tanh(self.pooler(hidden_states[:, 0]))
        return self.classifier(pooled)


def albert():
    torch.manual_seed(0)
    return _gain(AlbertClassifier(), 1.5)


def albert_ids():
    rng = __import__("numpy").random.default_rng(0)
    x = rng.integers(1, 120, (16, 24))
    for i, n in enumerate(rng.integers(12, 25, 16)):
        x[i, n:] = 0  # right padding
    return x


# --- StreamingLLM-style attention sinks + a sliding window (mit-han-lab's mask, llama layers)


def sink_window_mask(T, n_sink, window, dtype=torch.float32):
    """Each query sees the first n_sink tokens and the last `window` tokens up to itself."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    keep = (j <= i) & ((i - j < window) | (j < n_sink))
    return torch.zeros(T, T, dtype=dtype).masked_fill(~keep, float("-inf"))


class SinkAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class SinkBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = SinkAttention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 3 * d, bias=False), nn.SiLU(),
                                 nn.Linear(3 * d, d, bias=False))
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.n1(x), cos, sin, mask)
        return x + self.mlp(self.n2(x))


class StreamingLM(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, n=2, n_sink=4, window=8, max_len=64):
        super().__init__()
        self.n_sink, self.window = n_sink, window
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(SinkBlock(d, heads) for _ in range(n))
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        hd = d // heads
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        emb = torch.outer(torch.arange(max_len).float(), inv)
        emb = torch.cat((emb, emb), -1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, ids):
        T = ids.shape[1]
        mask = sink_window_mask(T, self.n_sink, self.window)
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        return self.head(self.norm(x))


def streaming_llm():
    torch.manual_seed(0)
    return _gain(StreamingLM(), 1.5)


# --- MEGA (fairseq's mega: MultiHeadEMA by FFT, MovingAverageGatedAttention) -----------------


class MultiHeadEMA(nn.Module):
    def __init__(self, embed_dim, ndim=2, bidirectional=False):
        super().__init__()
        self.embed_dim, self.ndim, self.bidirectional = embed_dim, ndim, bidirectional
        self.scale = math.sqrt(1.0 / ndim)
        self.delta = nn.Parameter(torch.Tensor(embed_dim, ndim, 1))
        self.alpha = nn.Parameter(torch.Tensor(embed_dim, ndim, 1))
        self.beta = nn.Parameter(torch.Tensor(embed_dim, ndim, 1))
        self.gamma = nn.Parameter(torch.Tensor(embed_dim, ndim))
        self.omega = nn.Parameter(torch.Tensor(embed_dim))
        with torch.no_grad():
            nn.init.normal_(self.delta, mean=0.0, std=0.2)
            nn.init.normal_(self.alpha, mean=0.0, std=0.2)
            val = torch.ones(ndim, 1)
            if ndim > 1:
                idx = torch.tensor(list(range(1, ndim, 2)))
                val.index_fill_(0, idx, -1.0)
            self.beta.normal_(mean=0.0, std=0.02).add_(val)
            nn.init.normal_(self.gamma, mean=0.0, std=1.0)
            nn.init.normal_(self.omega, mean=0.0, std=1.0)

    def _calc_coeffs(self):
        p = torch.sigmoid(self.delta)
        alpha = torch.sigmoid(self.alpha)
        q = 1.0 - p * alpha
        return p, q

    def _compute_kernel(self, length):
        p, q = self._calc_coeffs()
        vander = torch.arange(length).to(p).view(1, 1, length) * torch.log(q)  # D x N x L
        kernel = (p * self.beta) * torch.exp(vander)
        return torch.einsum("dnl,dn->dl", kernel, self.gamma * self.scale)

    def forward(self, x):  # x: (L, B, D), fairseq's time-first layout
        seq_len, _bsz, _embed_dim = x.size()
        residual = x * self.omega
        x = x.permute(1, 2, 0)  # B x D x L
        k = self._compute_kernel(seq_len)
        fft_len = seq_len
        s = 0
        k_f = torch.fft.rfft(k.float(), n=2 * fft_len)
        x_f = torch.fft.rfft(x.float(), n=2 * fft_len)
        out = torch.fft.irfft(x_f * k_f, n=2 * fft_len)[..., s: s + seq_len]
        out = out.type_as(x)
        out = out.permute(2, 0, 1)  # B x D x L -> L x B x D
        return F.silu(out + residual)


class MovingAverageGatedAttention(nn.Module):
    def __init__(self, embed_dim, zdim, hdim, ndim, max_len=64):
        super().__init__()
        self.embed_dim, self.hdim, self.zdim = embed_dim, hdim, zdim
        self.scaling = zdim ** -0.5
        self.move = MultiHeadEMA(embed_dim, ndim=ndim)
        self.v_proj = nn.Linear(embed_dim, hdim)
        self.mx_proj = nn.Linear(embed_dim, zdim + hdim + 2 * embed_dim)
        self.h_proj = nn.Linear(hdim, embed_dim)
        self.gamma = nn.Parameter(torch.Tensor(2, zdim))
        self.beta = nn.Parameter(torch.Tensor(2, zdim))
        self.norm = nn.LayerNorm(embed_dim)
        self.rel_pos_bias = nn.Parameter(torch.Tensor(2 * max_len - 1))
        self.max_len = max_len
        with torch.no_grad():
            nn.init.normal_(self.gamma, mean=0.0, std=0.02)
            nn.init.constant_(self.beta, 0.0)
            nn.init.normal_(self.rel_pos_bias, mean=0.0, std=0.02)

    def simple_rel_pos(self, seq_len):  # fairseq's SimpleRelativePositionalBias
        b = self.rel_pos_bias[(self.max_len - seq_len):(self.max_len + seq_len - 1)]
        t = F.pad(b, (0, seq_len))
        t = torch.tile(t, (seq_len,))
        t = t[:-seq_len]
        t = t.view(seq_len, 3 * seq_len - 2)
        r = (2 * seq_len - 1) // 2
        start, end = r, t.size(1) - r
        return t[:, start:end]

    def forward(self, x):  # (L, B, D)
        seq_len, _bsz, _embed_dim = x.size()
        residual = x
        x = self.norm(x)  # prenorm
        v = F.silu(self.v_proj(x))
        mx = self.move(x)
        base = self.mx_proj(mx)
        u, zr, hx = torch.split(base, [self.embed_dim, self.zdim + self.hdim, self.embed_dim],
                                dim=-1)
        u = torch.sigmoid(u)
        z, r = torch.split(F.silu(zr), [self.zdim, self.hdim], dim=-1)
        z = z.unsqueeze(2) * self.gamma + self.beta
        q, k = torch.unbind(z, dim=2)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # B x L x *
        q = q * self.scaling
        qk = torch.bmm(q, k.transpose(1, 2)) + self.simple_rel_pos(seq_len)
        causal = torch.triu(torch.full((seq_len, seq_len), float("-inf")), 1)
        attn_weights = F.softmax(qk + causal, dim=-1).type_as(qk)
        h = torch.bmm(attn_weights, v).transpose(0, 1)  # L x B x hdim
        h = self.h_proj(h * r)
        h = F.silu(hx + h)
        return residual + torch.addcmul(residual, u, h - residual) - residual


class MegaLM(nn.Module):
    def __init__(self, vocab=100, d=32, zdim=16, hdim=64, ndim=4, n=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(MovingAverageGatedAttention(d, zdim, hdim, ndim)
                                    for _ in range(n))
        self.final_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.embed(ids).transpose(0, 1)  # time first
        for layer in self.layers:
            x = layer(x)
        return self.head(self.final_norm(x)).transpose(0, 1)


def mega():
    torch.manual_seed(0)
    return _gain(MegaLM(), 1.5)


# --- Hyena (HazyResearch safari, hyena-dna's standalone_hyenadna.py) -------------------------


def fftconv(u, k, D):
    seqlen = u.shape[-1]
    fft_size = 2 * seqlen
    k_f = torch.fft.rfft(k, n=fft_size) / fft_size
    u_f = torch.fft.rfft(u.to(dtype=k.dtype), n=fft_size)
    if len(u.shape) > 3:
        k_f = k_f.unsqueeze(1)
    y = torch.fft.irfft(u_f * k_f, n=fft_size, norm="forward")[..., :seqlen]
    out = y + u * D.unsqueeze(-1)
    return out.to(dtype=u.dtype)


class Sin(nn.Module):
    def __init__(self, dim, w=10):
        super().__init__()
        self.freq = nn.Parameter(w * torch.ones(1, dim))

    def forward(self, x):
        return torch.sin(self.freq * x)


class PositionalEmbedding(nn.Module):
    def __init__(self, emb_dim, seq_len):
        super().__init__()
        self.seq_len = seq_len
        t = torch.linspace(0, 1, self.seq_len)[None, :, None]  # 1, L, 1
        bands = (emb_dim - 1) // 2
        t_rescaled = torch.linspace(0, seq_len - 1, seq_len)[None, :, None]
        w = 2 * math.pi * t_rescaled / seq_len  # 1, L, 1
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]
        z = torch.exp(-1j * f * w)
        z = torch.cat([t, z.real, z.imag], dim=-1)
        self.register_buffer("z", z, persistent=False)
        self.register_buffer("t", t, persistent=False)

    def forward(self, L):
        return self.z[:, :L], self.t[:, :L]


class ExponentialModulation(nn.Module):
    def __init__(self, d_model, fast_decay_pct=0.3, slow_decay_pct=1.5, target=1e-2,
                 shift=0.0):
        super().__init__()
        self.shift = shift
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        deltas = torch.linspace(min_decay, max_decay, d_model)[None, None]
        self.register_buffer("deltas", deltas, persistent=False)

    def forward(self, t, x):
        decay = torch.exp(-t * self.deltas.abs())
        return x * (decay + self.shift)


class HyenaFilter(nn.Module):
    def __init__(self, d_model, emb_dim=3, order=16, seq_len=64, w=1):
        super().__init__()
        self.d_model = d_model
        self.bias = nn.Parameter(torch.randn(d_model))
        act = Sin(dim=order, w=w)
        self.pos_emb = PositionalEmbedding(emb_dim, seq_len)
        self.implicit_filter = nn.Sequential(
            nn.Linear(emb_dim, order), act, nn.Linear(order, order), act,
            nn.Linear(order, d_model, bias=False))
        self.modulation = ExponentialModulation(d_model)

    def filter(self, L):
        z, t = self.pos_emb(L)
        h = self.implicit_filter(z)
        return self.modulation(t, h)

    def forward(self, x, L, k=None, bias=None):
        if k is None:
            k = self.filter(L)
        k = k[0] if type(k) is tuple else k
        return fftconv(x, k, bias)


class HyenaOperator(nn.Module):
    def __init__(self, d_model, l_max=64, order=2, filter_order=16):
        super().__init__()
        self.d_model, self.l_max, self.order = d_model, l_max, order
        inner_width = d_model * (order + 1)
        self.in_proj = nn.Linear(d_model, inner_width)
        self.out_proj = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(inner_width, inner_width, 3, padding=2,
                                      groups=inner_width)
        self.filter_fn = HyenaFilter(d_model * (order - 1), order=filter_order, seq_len=l_max)

    def forward(self, u):
        L = u.size(-2)
        l_filter = min(L, self.l_max)
        u = self.in_proj(u)
        u = rearrange(u, "b l d -> b d l")
        uc = self.short_filter(u)[..., :l_filter]
        *x, v = uc.split(self.d_model, dim=1)
        k = self.filter_fn.filter(l_filter)[0]
        k = rearrange(k, "l (o d) -> o d l", o=self.order - 1)
        bias = rearrange(self.filter_fn.bias, "(o d) -> o d", o=self.order - 1)
        for o, x_i in enumerate(reversed(x[1:])):
            v = v * x_i
            v = self.filter_fn(v, l_filter, k=k[o], bias=bias[o])
        y = rearrange(v * x[0], "b d l -> b l d")
        return self.out_proj(y)


class HyenaLM(nn.Module):
    def __init__(self, vocab=100, d=32, n=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.mixers = nn.ModuleList(HyenaOperator(d) for _ in range(n))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(),
                                                nn.Linear(4 * d, d)) for _ in range(n))
        self.norm1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(n))
        self.norm2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(n))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for mixer, mlp, n1, n2 in zip(self.mixers, self.mlps, self.norm1, self.norm2,
                                      strict=True):
            x = x + mixer(n1(x))
            x = x + mlp(n2(x))
        return self.head(self.ln_f(x))


def hyena():
    torch.manual_seed(0)
    return _gain(HyenaLM(), 1.5)


P = (3, 14, 15, 9, 26)

NETWORKS = (
    Network("llama3", "Meta's Llama 3 reference (RoPE theta 5e5 with apply_scaling's rescaled "
            "frequencies, torch.polar / view_as_complex, repeat_kv by expand + reshape with one "
            "KV head, hstack'ed cache-offset mask, ffn_dim_multiplier)", "llama3",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("gemma2", "gemma_pytorch's Gemma 2 (embedding x sqrt(hidden), RMSNorm x (1 + w), "
            "tanh-GELU GeGLU, attention and final logit soft-capping tanh(x / c) c, four norms a "
            "layer, sliding-window layers by triu * tril, chunked complex RoPE, tied logits)",
            "gemma2", ids(100, 8, 32), prompt=P, tokens=8),
    Network("qwen2", "Qwen2 by hand (q / k / v biases, GQA by expand + reshape, RoPE by inv_freq "
            "@ position_ids and rotate_half, SDPA with a finfo.min triu mask, nn.RMSNorm, tied "
            "head)", "qwen2", ids(100, 8, 32), prompt=P, tokens=8),
    Network("deepseek_mla", "DeepSeek-V2's multi-head latent attention (low-rank q and kv with "
            "RMSNorms, a decoupled rope key shared by the heads, interleaved-to-half rope, q and "
            "k assembled in new_empty by slice assignment)", "deepseek_mla", ids(100, 8, 32),
            prompt=P, tokens=8),
    Network("diff_transformer", "Microsoft's Differential Transformer (two softmax maps per "
            "head, lambda = exp(q1.k1) - exp(q2.k2) + lambda_init, nan_to_num, per-head RMSNorm, "
            "interleaved rotary)", "diff_transformer", ids(100, 8, 32), prompt=P, tokens=8),
    Network("ngpt", "NVIDIA's nGPT (hidden vectors L2-normalised after every block, eigen "
            "learning rates |alpha|, s_qk on normalised q / k, SDPA scale sqrt(d), s_uv, s_z "
            "logits)", "ngpt", ids(100, 8, 32), prompt=P, tokens=8),
    Network("rwkv6", "RWKV-v6 by hand (ZeroPad2d token shift, data-dependent lerp by a 5-way "
            "LoRA and bmm, decay exp(-exp(w)) by a LoRA, per-head (N, N) state as a loop over "
            "time, GroupNorm of the heads, silu gate)", "rwkv6", ids(100, 8, 32), prompt=P,
            tokens=8),
    Network("mlstm", "xLSTM's mLSTM (parallel_stabilized_simple: cumsum of log-sigmoid forget "
            "gates, exponential input gate, row max stabiliser; causal conv, headwise q / k / "
            "v, group-norm of the heads, learnable skip)", "mlstm", ids(100, 8, 32), prompt=P,
            tokens=8),
    Network("mlstm_recurrent", "the same xLSTM mLSTM with its cell run by xLSTM's "
            "recurrent_step_stabilized_simple over the positions (max stabiliser state m, "
            "matrix memory C, normaliser n, squeeze_ / maximum / exp)", "mlstm_recurrent",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("mamba2_ssd", "Mamba-2's ssd_minimal (segsum by repeat + cumsum + tril masks, "
            "exp, four einsums over chunks of 8, inter-chunk recurrence), gated RMSNorm, tied "
            "head", "mamba2_ssd", ids(100, 8, 32), prompt=P, tokens=8),
    Network("albert", "ALBERT by hand (factorised 16-wide embedding mapped to 64, one layer's "
            "weights shared by 4 layers, finfo.min padding mask, gelu_new, tanh pooler)",
            "albert", albert_ids),
    Network("streaming_llm", "StreamingLLM-style attention: 4 sink tokens plus a window of 8 "
            "(one boolean mask by arange comparisons into masked_fill(-inf)), rotate_half RoPE, "
            "SDPA attn_mask", "streaming_llm", ids(100, 8, 32), prompt=P, tokens=8),
    Network("mega", "fairseq's MEGA (time-first; multi-head damped EMA kernel convolved by "
            "rfft / irfft, single-head gated attention with a simple relative bias by tile, "
            "addcmul update)", "mega", ids(100, 8, 32), prompt=P, tokens=8),
    Network("hyena", "Hyena (safari's HyenaOperator: implicit filter MLP with Sin activations "
            "over complex-exp positional features, exponential modulation, fftconv by rfft / "
            "irfft norm='forward', short depthwise conv)", "hyena", ids(100, 8, 32), prompt=P,
            tokens=8),
)

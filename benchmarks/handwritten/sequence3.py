"""Language / sequence models written by hand, the third round, each the way a well-known
codebase writes it: GPT-J (interleaved partial rotary by rotate_every_two, parallel block),
Falcon-7B (multi-query fused query_key_value, parallel block, SDPA), Phi-2 (partial rotary,
gelu_new, dense head with bias), OPT (learned positions offset by 2, post-LN option), BLOOM
(ALiBi by baddbmm, embedding LayerNorm), Mistral's reference MoE (top-2, softmax over the top-k,
index_add_ of experts), RetNet retention (decay mask, parallel form, GroupNorm), Katharopoulos'
linear attention (elu + 1, causal cumsum), a causal gMLP (spatial gating unit), a Whisper-style
decoder cross-attending a fixed encoder output, DeBERTa's disentangled attention (c2p / p2c by
gather), a Longformer-style banded attention with a global token, Transformer-XL's relative
attention (rel_shift, r_w_bias / r_r_bias, a memory of zeros) and an S4D long convolution
(Vandermonde kernel, depthwise conv1d). Small, random weights; ids (batch, T) in, logits out."""

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


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


# --- GPT-J (modeling_gptj.py): interleaved partial rotary, parallel attention + MLP ---------


def create_sinusoidal_positions(num_pos, dim):
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2) / dim))
    sinusoid_inp = torch.einsum("i , j -> i j", torch.arange(num_pos).float(), inv_freq).float()
    return torch.cat((torch.sin(sinusoid_inp), torch.cos(sinusoid_inp)), dim=1)


def rotate_every_two(x):
    x1 = x[:, :, :, ::2]
    x2 = x[:, :, :, 1::2]
    x = torch.stack((-x2, x1), dim=-1)
    return x.flatten(-2)  # in einsum notation: rearrange(x, '... d j -> ... (d j)')


def apply_rotary_pos_emb_gptj(tensor, sin, cos):
    sin = torch.repeat_interleave(sin[:, :, None, :], 2, 3)
    cos = torch.repeat_interleave(cos[:, :, None, :], 2, 3)
    return (tensor * cos) + (rotate_every_two(tensor) * sin)


class GPTJAttention(nn.Module):
    def __init__(self, d, heads, rotary_dim, max_pos=64):
        super().__init__()
        self.h, self.hd, self.rotary_dim = heads, d // heads, rotary_dim
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.out_proj = nn.Linear(d, d, bias=False)
        self.register_buffer("embed_positions", create_sinusoidal_positions(max_pos, rotary_dim),
                             persistent=False)
        self.register_buffer("bias", torch.tril(torch.ones((max_pos, max_pos), dtype=torch.bool))
                             .view(1, 1, max_pos, max_pos), persistent=False)

    def _split_heads(self, x):
        return x.view(x.size()[:-1] + (self.h, self.hd))  # (B, T, H, hd)

    def forward(self, x, position_ids):
        B, T, D = x.shape
        q, k, v = (self._split_heads(self.q_proj(x)), self._split_heads(self.k_proj(x)),
                   self._split_heads(self.v_proj(x)).permute(0, 2, 1, 3))
        sincos = self.embed_positions[position_ids]
        sin, cos = torch.split(sincos, sincos.shape[-1] // 2, dim=-1)
        k_rot, k_pass = k[:, :, :, : self.rotary_dim], k[:, :, :, self.rotary_dim:]
        q_rot, q_pass = q[:, :, :, : self.rotary_dim], q[:, :, :, self.rotary_dim:]
        k = torch.cat([apply_rotary_pos_emb_gptj(k_rot, sin, cos), k_pass], dim=-1)
        q = torch.cat([apply_rotary_pos_emb_gptj(q_rot, sin, cos), q_pass], dim=-1)
        k, q = k.permute(0, 2, 1, 3), q.permute(0, 2, 1, 3)
        w = torch.matmul(q.to(torch.float32), k.to(torch.float32).transpose(-1, -2))
        causal = self.bias[:, :, :T, :T]
        w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
        w = w / math.sqrt(self.hd)
        w = nn.functional.softmax(w, dim=-1)
        out = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous().view(B, T, D)
        return self.out_proj(out)


class GPTJBlock(nn.Module):
    def __init__(self, d, heads, rotary_dim):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = GPTJAttention(d, heads, rotary_dim)
        self.fc_in, self.fc_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, position_ids):
        residual = x
        x = self.ln_1(x)
        attn = self.attn(x, position_ids)
        ff = self.fc_out(gelu_new(self.fc_in(x)))
        return attn + ff + residual


class GPTJ(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, n=2, rotary_dim=8):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList(GPTJBlock(d, heads, rotary_dim) for _ in range(n))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab)

    def forward(self, input_ids):
        T = input_ids.shape[-1]
        position_ids = torch.arange(0, T, dtype=torch.long).unsqueeze(0)
        x = self.wte(input_ids)
        for block in self.h:
            x = block(x, position_ids)
        return self.lm_head(self.ln_f(x)).to(torch.float32)


def gptj():
    torch.manual_seed(0)
    return _gain(GPTJ(), 2.0)


# --- Falcon-7B (modeling_falcon.py): multi-query fused qkv, rotary, parallel attn, SDPA -------


class FalconRotary(nn.Module):
    def __init__(self, dim, base=10000):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, q, k, T):
        t = torch.arange(T, dtype=self.inv_freq.dtype)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None, :, :], emb.sin()[None, None, :, :]
        return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


class FalconAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.query_key_value = nn.Linear(d, d + 2 * self.hd, bias=False)  # multi_query
        self.dense = nn.Linear(d, d, bias=False)
        self.rotary = FalconRotary(self.hd)

    def _split_heads(self, fused):
        B, T, _ = fused.shape
        fused = fused.view(B, T, self.h + 2, self.hd)
        return fused[..., :-2, :], fused[..., [-2], :], fused[..., [-1], :]

    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = self._split_heads(self.query_key_value(x))
        q = q.transpose(1, 2).reshape(B, self.h, T, self.hd)
        k = k.transpose(1, 2).reshape(B, 1, T, self.hd)
        v = v.transpose(1, 2).reshape(B, 1, T, self.hd)
        q, k = self.rotary(q, k, T)
        out = F.scaled_dot_product_attention(q, k.expand(B, self.h, T, self.hd),
                                             v.expand(B, self.h, T, self.hd), is_causal=True)
        out = out.view(B, self.h, T, self.hd).permute(0, 2, 1, 3).reshape(B, T, -1)
        return self.dense(out)


class FalconBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(d)
        self.self_attention = FalconAttention(d, heads)
        self.mlp = nn.ModuleDict({"dense_h_to_4h": nn.Linear(d, 4 * d, bias=False),
                                  "act": nn.GELU(),
                                  "dense_4h_to_h": nn.Linear(4 * d, d, bias=False)})

    def forward(self, x):
        residual = x
        ln = self.input_layernorm(x)
        attn = self.self_attention(ln)
        m = self.mlp
        mlp = m.dense_4h_to_h(m.act(m.dense_h_to_4h(ln)))
        return mlp + attn + residual  # parallel_attn: MLP reads the same LayerNorm output


class Falcon(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, n=2):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d)
        self.h = nn.ModuleList(FalconBlock(d, heads) for _ in range(n))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.word_embeddings.weight

    def forward(self, input_ids):
        x = self.word_embeddings(input_ids)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def falcon():
    torch.manual_seed(0)
    return _gain(Falcon(), 2.0)


# --- Phi-2 (modeling_phi.py): partial rotary (rotate_half on the first 40 %), gelu_new, dense
# head with bias, parallel attention + MLP after one LayerNorm, q / k LayerNorm off ------------


class PhiAttention(nn.Module):
    def __init__(self, d, heads, partial_rotary_factor=0.4):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.rd = int(partial_rotary_factor * self.hd)
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d, d) for _ in range(3))
        self.dense = nn.Linear(d, d)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, self.rd, 2, dtype=torch.int64).float()
                                    / self.rd))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x, position_ids, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        inv = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        freqs = (inv @ position_ids[:, None, :].float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().unsqueeze(1), emb.sin().unsqueeze(1)
        q_rot, q_pass = q[..., : self.rd], q[..., self.rd:]
        k_rot, k_pass = k[..., : self.rd], k[..., self.rd:]
        q_rot = (q_rot * cos) + (rotate_half(q_rot) * sin)
        k_rot = (k_rot * cos) + (rotate_half(k_rot) * sin)
        q, k = torch.cat((q_rot, q_pass), dim=-1), torch.cat((k_rot, k_pass), dim=-1)
        w = torch.matmul(q.to(torch.float32), k.to(torch.float32).transpose(2, 3))
        w = w / math.sqrt(self.hd) + mask
        w = nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(v.dtype)
        out = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(B, T, -1)
        return self.dense(out)


class PhiLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(d)
        self.self_attn = PhiAttention(d, heads)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, position_ids, mask):
        residual = x
        x = self.input_layernorm(x)
        attn = self.self_attn(x, position_ids, mask)
        ff = self.fc2(gelu_new(self.fc1(x)))
        return attn + ff + residual


class Phi2(nn.Module):
    def __init__(self, vocab=100, d=80, heads=4, n=2):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(PhiLayer(d, heads) for _ in range(n))
        self.final_layernorm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=True)

    def forward(self, input_ids):
        B, T = input_ids.shape
        position_ids = torch.arange(T).unsqueeze(0).expand(B, T)
        mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)[None, None]
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, position_ids, mask)
        return self.lm_head(self.final_layernorm(x))


def phi2():
    torch.manual_seed(0)
    return _gain(Phi2(), 2.0)


# --- OPT (modeling_opt.py): learned positions offset by 2 from cumsum(attention_mask), post-LN
# (do_layer_norm_before=False, OPT-350m) and a project_out to a smaller word_embed_proj_dim ----


class OPTLearnedPositionalEmbedding(nn.Embedding):
    def __init__(self, num_embeddings, embedding_dim):
        self.offset = 2  # OPT's position ids start at 2 (fairseq's padding_idx + 1)
        super().__init__(num_embeddings + self.offset, embedding_dim)

    def forward(self, attention_mask):
        attention_mask = attention_mask.long()
        positions = (torch.cumsum(attention_mask, dim=1).type_as(attention_mask)
                     * attention_mask).long() - 1
        return super().forward(positions + self.offset)


class OPTLayer(nn.Module):
    def __init__(self, d, heads, ffn, do_layer_norm_before):
        super().__init__()
        self.h, self.hd, self.scaling = heads, d // heads, (d // heads) ** -0.5
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.self_attn_layer_norm, self.final_layer_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.pre = do_layer_norm_before

    def attn(self, x, mask):
        B, T, D = x.shape
        q = (self.q_proj(x) * self.scaling).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, -1, self.h, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, -1, self.h, self.hd).transpose(1, 2)
        w = torch.matmul(q, k.transpose(2, 3)) + mask
        w = torch.max(w, torch.tensor(torch.finfo(w.dtype).min))
        w = nn.functional.softmax(w, dim=-1)
        return self.out_proj(torch.matmul(w, v).transpose(1, 2).reshape(B, T, D))

    def forward(self, x, mask):
        residual = x
        if self.pre:
            x = self.self_attn_layer_norm(x)
        x = residual + self.attn(x, mask)
        if not self.pre:
            x = self.self_attn_layer_norm(x)
        residual = x
        if self.pre:
            x = self.final_layer_norm(x)
        x = residual + self.fc2(F.relu(self.fc1(x)))
        if not self.pre:
            x = self.final_layer_norm(x)
        return x


class OPT(nn.Module):
    def __init__(self, vocab=100, d=64, proj=48, heads=4, ffn=128, n=2, max_pos=64,
                 do_layer_norm_before=False):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, proj, padding_idx=1)
        self.embed_positions = OPTLearnedPositionalEmbedding(max_pos, d)
        self.project_in = nn.Linear(proj, d, bias=False)
        self.project_out = nn.Linear(d, proj, bias=False)
        self.layers = nn.ModuleList(OPTLayer(d, heads, ffn, do_layer_norm_before)
                                    for _ in range(n))
        self.lm_head = nn.Linear(proj, vocab, bias=False)
        self.lm_head.weight = self.embed_tokens.weight

    def forward(self, input_ids, attention_mask=None):
        B, T = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones(B, T, dtype=torch.bool)
        causal = torch.full((T, T), torch.finfo(torch.float32).min)
        causal = causal.masked_fill(torch.arange(T) < (torch.arange(T) + 1).view(T, 1), 0.0)
        mask = causal[None, None].expand(B, 1, T, T)
        x = self.project_in(self.embed_tokens(input_ids)) + self.embed_positions(attention_mask)
        for layer in self.layers:
            x = layer(x, mask)
        return self.lm_head(self.project_out(x)).contiguous()


def opt():
    torch.manual_seed(0)
    return _gain(OPT(), 2.0)


# --- BLOOM (modeling_bloom.py): ALiBi built from the attention mask's cumsum, baddbmm with
# beta=1 / alpha=1/sqrt(hd), word_embeddings_layernorm, interleaved fused qkv, bloom_gelu -----


def build_alibi_tensor(attention_mask, num_heads, dtype):
    batch_size, seq_length = attention_mask.shape
    closest_power_of_2 = 2 ** math.floor(math.log2(num_heads))
    base = torch.tensor(2 ** (-(2 ** -(math.log2(closest_power_of_2) - 3))), dtype=torch.float32)
    powers = torch.arange(1, 1 + closest_power_of_2, dtype=torch.int32)
    slopes = torch.pow(base, powers)
    arange_tensor = ((attention_mask.cumsum(dim=-1) - 1) * attention_mask)[:, None, :]
    alibi = slopes[..., None] * arange_tensor
    return alibi.reshape(batch_size * num_heads, 1, seq_length).to(dtype)


def bloom_gelu_forward(x):
    return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))


class BloomAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.inv_norm_factor = 1.0 / math.sqrt(self.hd)
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)

    def forward(self, x, residual, alibi, causal_mask):
        B, T, _ = x.shape
        fused = self.query_key_value(x).view(B, T, self.h, 3, self.hd)
        q = fused[..., 0, :].transpose(1, 2).reshape(B * self.h, T, self.hd)
        k = fused[..., 1, :].permute(0, 2, 3, 1).reshape(B * self.h, self.hd, T)
        v = fused[..., 2, :].transpose(1, 2).reshape(B * self.h, T, self.hd)
        scores = alibi.baddbmm(batch1=q, batch2=k, beta=1.0, alpha=self.inv_norm_factor)
        scores = scores.view(B, self.h, T, T).masked_fill(causal_mask, torch.finfo(x.dtype).min)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(x.dtype)
        ctx = torch.bmm(probs.view(B * self.h, T, T), v)
        ctx = ctx.view(B, self.h, T, self.hd).permute(0, 2, 1, 3).reshape(B, T, -1)
        return self.dense(ctx) + residual


class BloomBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(d)
        self.self_attention = BloomAttention(d, heads)
        self.post_attention_layernorm = nn.LayerNorm(d)
        self.dense_h_to_4h, self.dense_4h_to_h = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, alibi, causal_mask):
        ln = self.input_layernorm(x)
        # apply_residual_connection_post_ln=False: the residual is the block's input
        x = self.self_attention(ln, x, alibi, causal_mask)
        ln = self.post_attention_layernorm(x)
        return self.dense_4h_to_h(bloom_gelu_forward(self.dense_h_to_4h(ln))) + x


class Bloom(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, n=2):
        super().__init__()
        self.h = heads
        self.word_embeddings = nn.Embedding(vocab, d)
        self.word_embeddings_layernorm = nn.LayerNorm(d)
        self.blocks = nn.ModuleList(BloomBlock(d, heads) for _ in range(n))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.word_embeddings.weight

    def forward(self, input_ids):
        B, T = input_ids.shape
        attention_mask = torch.ones(B, T)
        alibi = build_alibi_tensor(attention_mask, self.h, torch.float32)
        causal_mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)[None, None]
        x = self.word_embeddings_layernorm(self.word_embeddings(input_ids))
        for block in self.blocks:
            x = block(x, alibi, causal_mask)
        return self.lm_head(self.ln_f(x))


def bloom():
    torch.manual_seed(0)
    return _gain(Bloom(), 2.0)


# --- Mistral's reference MoE (mistral-src moe.py) inside a Mixtral-style decoder: top-2 of the
# gate logits, softmax over the top-k, experts applied to torch.where-selected rows, index_add_


class MoeExpert(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MoeLayer(nn.Module):
    def __init__(self, d, hidden, num_experts=4, num_experts_per_tok=2):
        super().__init__()
        self.experts = nn.ModuleList(MoeExpert(d, hidden) for _ in range(num_experts))
        self.gate = nn.Linear(d, num_experts, bias=False)
        self.k = num_experts_per_tok

    def forward(self, x):
        shape = x.shape
        inputs = x.reshape(-1, shape[-1])
        gate_logits = self.gate(inputs)
        weights, selected_experts = torch.topk(gate_logits, self.k)
        weights = F.softmax(weights, dim=1, dtype=torch.float).to(inputs.dtype)
        results = torch.zeros_like(inputs)
        for i, expert in enumerate(self.experts):
            batch_idx, nth_expert = torch.where(selected_experts == i)
            results.index_add_(0, batch_idx,
                               weights[batch_idx, nth_expert, None] * expert(inputs[batch_idx]))
        return results.view(shape)


class MixtralBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.attention_norm, self.ffn_norm = nn.RMSNorm(d, eps=1e-5), nn.RMSNorm(d, eps=1e-5)
        self.wqkv = nn.Linear(d, 3 * d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.feed_forward = MoeLayer(d, 2 * d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.wqkv(self.attention_norm(x)).view(B, T, 3, self.h, self.hd).unbind(2)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                             v.transpose(1, 2), is_causal=True)
        h = x + self.wo(out.transpose(1, 2).reshape(B, T, D))
        return h + self.feed_forward(self.ffn_norm(h))


class Mixtral(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, n=2, max_pos=64):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_pos, d)
        self.layers = nn.ModuleList(MixtralBlock(d, heads) for _ in range(n))
        self.norm = nn.RMSNorm(d, eps=1e-5)
        self.output = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.tok_embeddings(input_ids) + self.pos(torch.arange(input_ids.shape[1]))
        for layer in self.layers:
            x = layer(x)
        return self.output(self.norm(x)).float()


def mixtral_moe():
    torch.manual_seed(0)
    return _gain(Mixtral(), 2.0)


# --- RetNet retention (torchscale retnet): per-head decay gamma, parallel form Q K^T * D with
# the decay mask normalised by its row sums, GroupNorm over heads, swish gate -----------------


class MultiScaleRetention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.kd, self.vd = heads, d // heads, 2 * d // heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, 2 * d, bias=False)
        self.g_proj = nn.Linear(d, 2 * d, bias=False)
        self.out_proj = nn.Linear(2 * d, d, bias=False)
        self.group_norm = nn.GroupNorm(heads, 2 * d, affine=False)
        decay = torch.log(1 - 2 ** (-5 - torch.arange(heads, dtype=torch.float)))
        self.register_buffer("decay", decay, persistent=False)
        angle = 1.0 / (10000 ** torch.linspace(0, 1, self.kd // 2))
        self.register_buffer("angle", angle.unsqueeze(-1).repeat(1, 2).flatten(), persistent=False)

    def forward(self, x):
        B, T, _ = x.shape
        index = torch.arange(T).to(self.decay)
        sin, cos = torch.sin(index[:, None] * self.angle[None, :]), torch.cos(
            index[:, None] * self.angle[None, :])
        mask = torch.tril(torch.ones(T, T)).to(self.decay)
        mask = torch.masked_fill(index[:, None] - index[None, :], ~mask.bool(), float("inf"))
        mask = torch.exp(mask * self.decay[:, None, None])
        mask = torch.nan_to_num(mask)
        mask = mask / mask.sum(dim=-1, keepdim=True).sqrt()
        q = self.q_proj(x).view(B, T, self.h, self.kd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.h, self.kd).transpose(1, 2) * self.kd ** -0.5
        v = self.v_proj(x).view(B, T, self.h, self.vd).transpose(1, 2)
        qr = q * cos + rotate_half(q) * sin
        kr = k * cos + rotate_half(k) * sin
        qk = (qr @ kr.transpose(-1, -2)) * mask
        qk = qk / qk.detach().abs().sum(dim=-1, keepdim=True).clamp(min=1)
        out = (qk @ v).transpose(1, 2).reshape(B * T, -1)
        out = self.group_norm(out).reshape(B, T, -1)
        return self.out_proj(F.silu(self.g_proj(x)) * out)


class RetNetLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.retention_layer_norm, self.final_layer_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.retention = MultiScaleRetention(d, heads)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        x = x + self.retention(self.retention_layer_norm(x))
        return x + self.ffn(self.final_layer_norm(x))


class RetNet(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, n=2):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(RetNetLayer(d, heads) for _ in range(n))
        self.layer_norm = nn.LayerNorm(d)
        self.output_projection = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.embed_tokens(input_ids) * math.sqrt(self.embed_tokens.embedding_dim)
        for layer in self.layers:
            x = layer(x)
        return self.output_projection(self.layer_norm(x))


def retnet():
    torch.manual_seed(0)
    return _gain(RetNet(), 1.5)


# --- Katharopoulos et al. linear attention (fast-transformers' CausalLinearAttention written
# with cumsum): phi = elu + 1, running sums of phi(k) v^T and phi(k) -------------------------


def elu_feature_map(x):
    return F.elu(x) + 1


class CausalLinearAttention(nn.Module):
    def __init__(self, d, heads, eps=1e-6):
        super().__init__()
        self.h, self.hd, self.eps = heads, d // heads, eps
        self.query, self.key, self.value = (nn.Linear(d, d) for _ in range(3))
        self.out = nn.Linear(d, d)

    def forward(self, x):
        B, T, D = x.shape
        Q = elu_feature_map(self.query(x).view(B, T, self.h, self.hd))
        K = elu_feature_map(self.key(x).view(B, T, self.h, self.hd))
        V = self.value(x).view(B, T, self.h, self.hd)
        KV = torch.einsum("nlhd,nlhm->nlhdm", K, V).cumsum(1)
        Z = 1 / (torch.einsum("nlhd,nlhd->nlh", Q, K.cumsum(1)) + self.eps)
        out = torch.einsum("nlhd,nlhdm,nlh->nlhm", Q, KV, Z)
        return self.out(out.reshape(B, T, D))


class LinearTransformer(nn.Module):
    def __init__(self, vocab=100, d=64, heads=4, n=2, max_pos=64):
        super().__init__()
        self.emb, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_pos, d)
        self.attn = nn.ModuleList(CausalLinearAttention(d, heads) for _ in range(n))
        self.norm1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(n))
        self.norm2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(n))
        self.ff = nn.ModuleList(nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(),
                                              nn.Linear(2 * d, d)) for _ in range(n))
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.emb(ids) + self.pos.weight[: ids.shape[1]]
        for attn, n1, n2, ff in zip(self.attn, self.norm1, self.norm2, self.ff, strict=True):
            x = n1(x + attn(x))  # fast-transformers' post-norm TransformerEncoderLayer
            x = n2(x + ff(x))
        return self.head(x)


def linear_attention():
    torch.manual_seed(0)
    return _gain(LinearTransformer(), 1.5)


# --- a causal gMLP (Liu et al., lucidrains' g-mlp-pytorch): spatial gating unit whose token
# mixing weight is a (n, n) matrix sliced to T and masked to its lower triangle --------------


class SpatialGatingUnit(nn.Module):
    def __init__(self, dim_ff, seq_len):
        super().__init__()
        self.norm = nn.LayerNorm(dim_ff // 2)
        init_eps = 1e-3 / seq_len
        self.weight = nn.Parameter(torch.zeros(seq_len, seq_len).uniform_(-init_eps, init_eps)
                                   + torch.randn(seq_len, seq_len) * 0.3 / math.sqrt(seq_len))
        self.bias = nn.Parameter(torch.ones(seq_len))

    def forward(self, x):
        n = x.shape[1]
        res, gate = x.chunk(2, dim=-1)
        gate = self.norm(gate)
        weight, bias = self.weight[:n, :n], self.bias[:n]
        mask = torch.ones(weight.shape[:2]).triu_(1).bool()
        weight = weight.masked_fill(mask, 0.0)
        gate = torch.einsum("b n d, m n -> b m d", gate, weight)
        gate = gate + bias[None, :, None]
        return gate * res


class GMLPBlock(nn.Module):
    def __init__(self, d, dim_ff, seq_len):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.proj_in = nn.Linear(d, dim_ff)
        self.sgu = SpatialGatingUnit(dim_ff, seq_len)
        self.proj_out = nn.Linear(dim_ff // 2, d)

    def forward(self, x):
        return x + self.proj_out(self.sgu(F.gelu(self.proj_in(self.norm(x)))))


class GMLP(nn.Module):
    def __init__(self, vocab=100, d=48, dim_ff=192, seq_len=48, n=2):
        super().__init__()
        self.to_embed = nn.Embedding(vocab, d)
        self.layers = nn.Sequential(*(GMLPBlock(d, dim_ff, seq_len) for _ in range(n)))
        self.to_logits = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, vocab))

    def forward(self, x):
        return self.to_logits(self.layers(self.to_embed(x)))


def gmlp():
    torch.manual_seed(0)
    return _gain(GMLP(), 1.5)


# --- a Whisper-style decoder (openai/whisper model.py) cross-attending a fixed encoder output:
# learned positional_embedding sliced by offset, Linear key without bias, causal mask buffer of
# -inf triu, tied logits x @ token_embedding.weight.T ----------------------------------------


class WhisperMHA(nn.Module):
    def __init__(self, n_state, n_head):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x, xa=None, mask=None):
        q = self.query(x)
        k = self.key(x if xa is None else xa)
        v = self.value(x if xa is None else xa)
        _n_batch, n_ctx, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.view(*q.shape[:2], self.n_head, -1).permute(0, 2, 1, 3) * scale
        k = k.view(*k.shape[:2], self.n_head, -1).permute(0, 2, 3, 1) * scale
        v = v.view(*v.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        qk = q @ k
        if mask is not None:
            qk = qk + mask[:n_ctx, :n_ctx]
        w = F.softmax(qk.float(), dim=-1).to(q.dtype)
        return self.out((w @ v).permute(0, 2, 1, 3).flatten(start_dim=2))


class WhisperBlock(nn.Module):
    def __init__(self, n_state, n_head):
        super().__init__()
        self.attn, self.attn_ln = WhisperMHA(n_state, n_head), nn.LayerNorm(n_state)
        self.cross_attn, self.cross_attn_ln = WhisperMHA(n_state, n_head), nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(),
                                 nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x, xa, mask):
        x = x + self.attn(self.attn_ln(x), mask=mask)
        x = x + self.cross_attn(self.cross_attn_ln(x), xa)
        return x + self.mlp(self.mlp_ln(x))


class WhisperDecoder(nn.Module):
    """The decoder of whisper/model.py; the encoder's output for one fixed audio clip is a buffer
    (a user transcribing one clip with a frozen encoder run once)."""

    def __init__(self, n_vocab=100, n_ctx=48, n_state=64, n_head=4, n_layer=2, n_audio=24):
        super().__init__()
        self.token_embedding = nn.Embedding(n_vocab, n_state)
        self.positional_embedding = nn.Parameter(torch.randn(n_ctx, n_state) * 0.3)
        self.blocks = nn.ModuleList(WhisperBlock(n_state, n_head) for _ in range(n_layer))
        self.ln = nn.LayerNorm(n_state)
        self.register_buffer("mask", torch.empty(n_ctx, n_ctx).fill_(-math.inf).triu_(1),
                             persistent=False)
        self.register_buffer("audio_features", torch.randn(1, n_audio, n_state))

    def forward(self, x, offset=0):
        xa = self.audio_features.expand(x.shape[0], -1, -1)
        x = self.token_embedding(x) + self.positional_embedding[offset: offset + x.shape[-1]]
        for block in self.blocks:
            x = block(x, xa, self.mask)
        x = self.ln(x)
        return (x @ torch.transpose(self.token_embedding.weight.to(x.dtype), 0, 1)).float()


def whisper_decoder():
    torch.manual_seed(0)
    return _gain(WhisperDecoder(), 2.0)


# --- DeBERTa's disentangled attention (DeBERTa/deberta/disentangled_attention.py): relative
# positions clamped to +-k, c2p and p2c scores by torch.gather over a shared rel embedding ----


def build_relative_position(q, k):
    q_ids, k_ids = torch.arange(q), torch.arange(k)
    rel = q_ids[:, None] - k_ids.view(1, -1).repeat(q, 1)
    return rel[:q, :].unsqueeze(0)  # (1, q, k)


class DisentangledSelfAttention(nn.Module):
    def __init__(self, d, heads, max_rel):
        super().__init__()
        self.h, self.hd, self.span = heads, d // heads, max_rel
        self.in_proj = nn.Linear(d, 3 * d, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        self.pos_proj = nn.Linear(d, d, bias=False)
        self.pos_q_proj = nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def transpose_for_scores(self, x):
        return x.view(x.size()[:-1] + (self.h, -1)).permute(0, 2, 1, 3)

    def forward(self, x, attention_mask, relative_pos, rel_embeddings):
        qp = self.in_proj(x)
        q, k, v = self.transpose_for_scores(qp).chunk(3, dim=-1)
        q = q + self.transpose_for_scores(self.q_bias[None, None, :])
        v = v + self.transpose_for_scores(self.v_bias[None, None, :])
        scale = math.sqrt(q.size(-1) * 3)  # c2c + c2p + p2c
        q = q / scale
        scores = torch.matmul(q, k.transpose(-1, -2))
        att_span = self.span
        rel_embeddings = rel_embeddings[self.span - att_span: self.span + att_span, :].unsqueeze(0)
        pos_key = self.transpose_for_scores(self.pos_proj(rel_embeddings))
        pos_query = self.transpose_for_scores(self.pos_q_proj(rel_embeddings)) / scale
        # content -> position
        c2p = torch.matmul(q, pos_key.transpose(-1, -2))
        c2p_pos = torch.clamp(relative_pos + att_span, 0, att_span * 2 - 1)
        c2p = torch.gather(c2p, dim=-1,
                           index=c2p_pos.unsqueeze(1).expand(q.size(0), q.size(1), q.size(2),
                                                              relative_pos.size(-1)))
        # position -> content
        p2c_pos = torch.clamp(-relative_pos + att_span, 0, att_span * 2 - 1)
        p2c = torch.matmul(k, pos_query.transpose(-1, -2))
        p2c = torch.gather(p2c, dim=-1,
                           index=p2c_pos.unsqueeze(1).expand(k.size(0), k.size(1), k.size(2),
                                                              relative_pos.size(-2)))
        scores = scores + c2p + p2c.transpose(-1, -2)
        rmask = ~(attention_mask.bool())
        scores = scores.masked_fill(rmask, torch.finfo(scores.dtype).min)
        probs = F.softmax(scores, -1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return self.out(ctx.view(ctx.size()[:-2] + (-1,)))


class DebertaLayer(nn.Module):
    def __init__(self, d, heads, max_rel):
        super().__init__()
        self.attention = DisentangledSelfAttention(d, heads, max_rel)
        self.attn_norm, self.out_norm = nn.LayerNorm(d, eps=1e-7), nn.LayerNorm(d, eps=1e-7)
        self.intermediate, self.output = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, mask, rel_pos, rel_emb):
        x = self.attn_norm(x + self.attention(x, mask, rel_pos, rel_emb))
        return self.out_norm(x + self.output(F.gelu(self.intermediate(x))))


class DebertaClassifier(nn.Module):
    def __init__(self, vocab=120, d=64, heads=4, n=2, max_rel=8, classes=5, pad=0):
        super().__init__()
        self.pad, self.max_rel = pad, max_rel
        self.word_embeddings = nn.Embedding(vocab, d, padding_idx=pad)
        self.emb_norm = nn.LayerNorm(d, eps=1e-7)
        self.rel_embeddings = nn.Embedding(2 * max_rel, d)
        self.layers = nn.ModuleList(DebertaLayer(d, heads, max_rel) for _ in range(n))
        self.pooler = nn.Linear(d, d)
        self.classifier = nn.Linear(d, classes)

    def forward(self, input_ids):
        attention_mask = (input_ids != self.pad).long()
        x = self.emb_norm(self.word_embeddings(input_ids))
        x = x * attention_mask.unsqueeze(-1).to(x)
        ext = attention_mask.unsqueeze(1).unsqueeze(2)
        ext = ext * ext.squeeze(-2).unsqueeze(-1)  # get_attention_mask: (B, 1, T, T)
        T = input_ids.shape[1]
        rel_pos = build_relative_position(T, T)
        for layer in self.layers:
            x = layer(x, ext, rel_pos, self.rel_embeddings.weight)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # ContextPooler over [CLS]
        return self.classifier(pooled)


def deberta():
    torch.manual_seed(0)
    return _gain(DebertaClassifier(), 1.5)


# --- a Longformer-style encoder: banded local attention (|i - j| <= w) built as a full mask,
# plus global attention of the [CLS] token to and from every position -----------------------


class LocalGlobalAttention(nn.Module):
    def __init__(self, d, heads, window):
        super().__init__()
        self.h, self.hd, self.w = heads, d // heads, window
        self.query, self.key, self.value = (nn.Linear(d, d) for _ in range(3))
        self.query_global, self.key_global, self.value_global = (nn.Linear(d, d)
                                                                 for _ in range(3))
        self.output = nn.Linear(d, d)

    def forward(self, x):
        B, T, D = x.shape
        i = torch.arange(T)
        band = (i[:, None] - i[None, :]).abs() <= self.w
        is_global = torch.zeros(T, dtype=torch.bool)
        is_global[0] = True
        allowed = band | is_global[None, :]  # every token sees [CLS]
        q = self.query(x).view(B, T, self.h, self.hd).transpose(1, 2) / math.sqrt(self.hd)
        k = self.key(x).view(B, T, self.h, self.hd).transpose(1, 2)
        v = self.value(x).view(B, T, self.h, self.hd).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)).masked_fill(~allowed, -10000.0)
        local = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        # [CLS] attends to every token with its own projections
        qg = self.query_global(x[:, :1]).view(B, 1, self.h, self.hd).transpose(1, 2)
        kg = self.key_global(x).view(B, T, self.h, self.hd).transpose(1, 2)
        vg = self.value_global(x).view(B, T, self.h, self.hd).transpose(1, 2)
        g = ((qg @ kg.transpose(-1, -2)) / math.sqrt(self.hd)).softmax(-1) @ vg
        out = torch.cat([g.transpose(1, 2).reshape(B, 1, D), local[:, 1:]], dim=1)
        return self.output(out)


class Longformer(nn.Module):
    def __init__(self, vocab=120, d=64, heads=4, n=2, window=3, max_pos=64, classes=4):
        super().__init__()
        self.word, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_pos, d)
        self.norm = nn.LayerNorm(d)
        self.attn = nn.ModuleList(LocalGlobalAttention(d, heads, window) for _ in range(n))
        self.ln1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(n))
        self.ffn = nn.ModuleList(nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(),
                                               nn.Linear(4 * d, d)) for _ in range(n))
        self.ln2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(n))
        self.dense, self.out_proj = nn.Linear(d, d), nn.Linear(d, classes)

    def forward(self, input_ids):
        T = input_ids.shape[1]
        x = self.norm(self.word(input_ids) + self.pos(torch.arange(T)[None]))
        for attn, ln1, ffn, ln2 in zip(self.attn, self.ln1, self.ffn, self.ln2, strict=True):
            x = ln1(x + attn(x))
            x = ln2(x + ffn(x))
        return self.out_proj(torch.tanh(self.dense(x[:, 0, :])))  # classification head


def longformer():
    torch.manual_seed(0)
    return _gain(Longformer(), 1.5)


# --- Transformer-XL (kimiyoung/transformer-xl mem_transformer.py): RelPartialLearnable
# attention, sinusoidal R over klen positions, r_w_bias / r_r_bias, _rel_shift by zero pad,
# a memory of zeros (the first segment) concatenated before the keys -----------------------


class PositionalEmbeddingXL(nn.Module):
    def __init__(self, demb):
        super().__init__()
        inv_freq = 1 / (10000 ** (torch.arange(0.0, demb, 2.0) / demb))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, pos_seq):
        sinusoid_inp = torch.ger(pos_seq, self.inv_freq)
        return torch.cat([sinusoid_inp.sin(), sinusoid_inp.cos()], dim=-1)[:, None, :]


class RelPartialLearnableMultiHeadAttn(nn.Module):
    def __init__(self, n_head, d_model, d_head):
        super().__init__()
        self.n_head, self.d_head, self.scale = n_head, d_head, 1 / (d_head ** 0.5)
        self.qkv_net = nn.Linear(d_model, 3 * n_head * d_head, bias=False)
        self.r_net = nn.Linear(d_model, n_head * d_head, bias=False)
        self.o_net = nn.Linear(n_head * d_head, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model)

    @staticmethod
    def _rel_shift(x):
        zero_pad = torch.zeros((x.size(0), 1, *x.size()[2:]), dtype=x.dtype)
        x_padded = torch.cat([zero_pad, x], dim=1)
        x_padded = x_padded.view(x.size(1) + 1, x.size(0), *x.size()[2:])
        return x_padded[1:].view_as(x)

    def forward(self, w, r, r_w_bias, r_r_bias, attn_mask, mems):
        qlen, rlen, bsz = w.size(0), r.size(0), w.size(1)
        cat = torch.cat([mems, w], 0)
        w_heads = self.qkv_net(cat)
        r_head_k = self.r_net(r)
        w_head_q, w_head_k, w_head_v = torch.chunk(w_heads, 3, dim=-1)
        w_head_q = w_head_q[-qlen:]
        klen = w_head_k.size(0)
        w_head_q = w_head_q.view(qlen, bsz, self.n_head, self.d_head)
        w_head_k = w_head_k.view(klen, bsz, self.n_head, self.d_head)
        w_head_v = w_head_v.view(klen, bsz, self.n_head, self.d_head)
        r_head_k = r_head_k.view(rlen, self.n_head, self.d_head)
        AC = torch.einsum("ibnd,jbnd->ijbn", (w_head_q + r_w_bias, w_head_k))
        BD = torch.einsum("ibnd,jnd->ijbn", (w_head_q + r_r_bias, r_head_k))
        BD = self._rel_shift(BD)
        attn_score = (AC + BD) * self.scale
        attn_score = attn_score.float().masked_fill(attn_mask[:, :, :, None], -float("inf"))
        attn_prob = F.softmax(attn_score, dim=1)
        attn_vec = torch.einsum("ijbn,jbnd->ibnd", (attn_prob, w_head_v))
        attn_vec = attn_vec.contiguous().view(qlen, bsz, self.n_head * self.d_head)
        return self.layer_norm(w + self.o_net(attn_vec))  # post-LN


class RelPartialLearnableDecoderLayer(nn.Module):
    def __init__(self, n_head, d_model, d_head, d_inner):
        super().__init__()
        self.dec_attn = RelPartialLearnableMultiHeadAttn(n_head, d_model, d_head)
        self.CoreNet = nn.Sequential(nn.Linear(d_model, d_inner), nn.ReLU(inplace=True),
                                     nn.Linear(d_inner, d_model))
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x, r, r_w_bias, r_r_bias, mask, mems):
        x = self.dec_attn(x, r, r_w_bias, r_r_bias, mask, mems)
        return self.layer_norm(x + self.CoreNet(x))


class MemTransformerLM(nn.Module):
    def __init__(self, n_token=100, n_layer=2, n_head=4, d_model=64, d_head=16, d_inner=128,
                 mem_len=4):
        super().__init__()
        self.d_model, self.n_layer, self.mem_len = d_model, n_layer, mem_len
        self.word_emb = nn.Embedding(n_token, d_model)
        self.pos_emb = PositionalEmbeddingXL(d_model)
        self.r_w_bias = nn.Parameter(torch.randn(n_head, d_head) * 0.1)
        self.r_r_bias = nn.Parameter(torch.randn(n_head, d_head) * 0.1)
        self.layers = nn.ModuleList(RelPartialLearnableDecoderLayer(n_head, d_model, d_head,
                                                                    d_inner)
                                    for _ in range(n_layer))
        self.out_layer = nn.Linear(d_model, n_token)

    def init_mems(self, bsz):
        return [torch.zeros(self.mem_len, bsz, self.d_model) for _ in range(self.n_layer)]

    def forward(self, data):  # data (B, T): the user's batch-first ids, transposed below
        data = data.t()
        qlen, bsz = data.size()
        mems = self.init_mems(bsz)
        word_emb = self.word_emb(data) * math.sqrt(self.d_model)
        mlen = mems[0].size(0)
        klen = mlen + qlen
        dec_attn_mask = torch.triu(word_emb.new_ones(qlen, klen), diagonal=1 + mlen).bool()
        dec_attn_mask = dec_attn_mask[:, :, None]
        pos_seq = torch.arange(klen - 1, -1, -1.0)
        pos_emb = self.pos_emb(pos_seq)
        core_out = word_emb
        for i, layer in enumerate(self.layers):
            core_out = layer(core_out, pos_emb, self.r_w_bias, self.r_r_bias, dec_attn_mask,
                             mems[i])
        return self.out_layer(core_out).transpose(0, 1)


def transformer_xl():
    torch.manual_seed(0)
    return _gain(MemTransformerLM(), 1.5)


# --- an S4D long convolution (state-spaces/s4 s4d.py, Hyena's FFT conv written as a causal
# depthwise conv1d): the kernel K = C . (exp(dt A) - 1) / A . exp(dt A l) generated from
# diagonal complex parameters, then conv1d over the left-padded sequence, + D skip, GELU, GLU


class S4DKernel(nn.Module):
    def __init__(self, d_model, N=16, dt_min=0.001, dt_max=0.1):
        super().__init__()
        H = d_model
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        C = torch.randn(H, N // 2, dtype=torch.cfloat)
        self.C = nn.Parameter(torch.view_as_real(C))
        self.register_buffer("log_dt", log_dt)
        self.register_buffer("log_A_real", torch.log(0.5 * torch.ones(H, N // 2)))
        self.register_buffer("A_imag", math.pi * torch.arange(N // 2).repeat(H, 1))

    def forward(self, L):
        dt = torch.exp(self.log_dt)
        C = torch.view_as_complex(self.C)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag
        dtA = A * dt.unsqueeze(-1)
        K = dtA.unsqueeze(-1) * torch.arange(L)
        C = C * (torch.exp(dtA) - 1.0) / A
        return 2 * torch.einsum("hn, hnl -> hl", C, torch.exp(K)).real


class S4DConv(nn.Module):
    def __init__(self, d_model, max_len):
        super().__init__()
        self.h, self.max_len = d_model, max_len
        self.D = nn.Parameter(torch.randn(d_model))
        self.kernel = S4DKernel(d_model)
        self.output_linear = nn.Sequential(nn.Conv1d(d_model, 2 * d_model, kernel_size=1),
                                           nn.GLU(dim=-2))

    def forward(self, u):  # (B, H, L)
        L = u.size(-1)
        k = self.kernel(L)  # (H, L)
        y = F.conv1d(F.pad(u, (L - 1, 0)), k.flip(-1).unsqueeze(1), groups=self.h)
        y = y + u * self.D.unsqueeze(-1)
        return self.output_linear(F.gelu(y))


class S4DModel(nn.Module):
    def __init__(self, vocab=100, d=48, n=2, max_len=64):
        super().__init__()
        self.encoder = nn.Embedding(vocab, d)
        self.s4_layers = nn.ModuleList(S4DConv(d, max_len) for _ in range(n))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(n))
        self.decoder = nn.Linear(d, vocab)

    def forward(self, x):
        x = self.encoder(x).transpose(-1, -2)  # (B, H, L)
        for layer, norm in zip(self.s4_layers, self.norms, strict=True):
            z = norm(x.transpose(-1, -2)).transpose(-1, -2)  # prenorm
            x = layer(z) + x
        return self.decoder(x.transpose(-1, -2))


def s4d():
    torch.manual_seed(0)
    return _gain(S4DModel(), 1.0)


P = (3, 14, 15, 9, 26)

NETWORKS = (
    Network("gptj", "GPT-J by hand (interleaved partial rotary by rotate_every_two and "
            "repeat_interleave'd sin / cos, torch.where(bias, w, finfo.min), parallel block)",
            "gptj", ids(100, 8, 32), prompt=P, tokens=8),
    Network("falcon", "Falcon-7B by hand (multi-query fused query_key_value sliced [-2] / [-1], "
            "rotate_half rotary, expand'ed KV into SDPA is_causal, parallel block, tied head)",
            "falcon", ids(100, 8, 32), prompt=P, tokens=8),
    Network("phi2", "Phi-2 by hand (partial rotary 40 % by inv_freq @ position_ids, gelu_new, "
            "parallel attention + MLP, lm_head with bias, finfo.min triu mask)", "phi2",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("opt", "OPT-350m by hand (learned positions offset 2 from cumsum(attention_mask), "
            "post-LN, project_in / project_out, torch.max(w, finfo.min), tied head)", "opt",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("bloom", "BLOOM by hand (ALiBi from the mask's cumsum via baddbmm beta=1 alpha=1/"
            "sqrt(hd), word_embeddings_layernorm, (h, 3, hd) fused qkv, bool triu masked_fill)",
            "bloom", ids(100, 8, 32), prompt=P, tokens=8),
    Network("mixtral_moe", "Mistral's reference MoE in a decoder (top-2 of the gate logits, "
            "softmax over the top-k, torch.where rows per expert, index_add_, nn.RMSNorm)",
            "mixtral_moe", ids(100, 8, 32), prompt=P, tokens=8),
    Network("retnet", "RetNet retention by hand (per-head decay mask exp(n - m) * log gamma, "
            "parallel form, row normalisation, xpos-free rotary, GroupNorm, swish gate)",
            "retnet", ids(100, 8, 32), prompt=P, tokens=8),
    Network("linear_attention", "Katharopoulos linear attention (elu + 1 feature map, causal "
            "cumsum of phi(k) v^T and phi(k) by einsum, post-norm)", "linear_attention",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("gmlp", "a causal gMLP (lucidrains' g-mlp: spatial gating unit, (n, n) weight "
            "sliced to T and triu-masked, einsum over tokens)", "gmlp", ids(100, 8, 32),
            prompt=P, tokens=8),
    Network("whisper_decoder", "openai/whisper's TextDecoder (cross-attention to a fixed "
            "encoder output buffer, q and k scaled by hd^-0.25, -inf triu mask buffer, tied "
            "logits)", "whisper_decoder", ids(100, 8, 32), prompt=P, tokens=8),
    Network("deberta", "DeBERTa's disentangled attention by hand (relative positions clamped "
            "to +-8, c2p / p2c by torch.gather, q / v biases, [CLS] pooler classifier)",
            "deberta", ids(120, 16, 24)),
    Network("longformer", "a Longformer-style classifier (banded |i - j| <= 3 mask plus a "
            "global [CLS] with its own q / k / v projections, post-LN)", "longformer",
            ids(120, 16, 32)),
    Network("transformer_xl", "Transformer-XL's MemTransformerLM (sequence-first, "
            "RelPartialLearnable attention, _rel_shift by zero pad + view, memory of zeros)",
            "transformer_xl", ids(100, 8, 32), prompt=P, tokens=8),
    Network("s4d", "an S4D long convolution (complex Vandermonde kernel from view_as_complex "
            "parameters, causal depthwise conv1d, D skip, GLU)", "s4d", ids(100, 8, 32),
            prompt=P, tokens=8),
)

"""Networks no one here wrote (ninth round, transformer-heavy), each the way its reference code
writes it: the Funnel Transformer (queries mean-pooled by avg_pool2d ceil_mode with the [CLS]
kept apart, repeat_interleave upsampling), DeepMind's Perceiver IO as lucidrains writes it
(latents cross-attend to the tokens, output queries cross-attend to the latents), the
Nystromformer (landmarks by segment means, the Newton-Schulz iterative pseudo-inverse, a
depthwise conv skip on the values), Google's FNet (fftn over tokens and hidden, real part),
Apple's sigmoid attention (sigmoid(qk + b), b = -log n), Primer-EZ (squared ReLU, depthwise
causal convs after the q / k / v projections), FLASH's gated attention unit (lucidrains: shared
q / k by OffsetScale, relu^2 attention over n, T5 buckets in forward), Meta's CoPE (contextual
positions by a reversed cumsum of sigmoid gates, gathered interpolation), the Forgetting
Transformer (cumsum of log forget gates as an attention bias), facebookresearch's ToMe
(bipartite soft matching, scatter_reduce merging, proportional attention), lucidrains' Soft MoE
(slot dispatch / combine softmaxes), Microsoft's CvT (depthwise conv-BN projections of q / k / v,
the class token split off), yuqinie98's PatchTST (RevIN, unfold patches, BatchNorm encoder,
residual attention scores), Blealtan's efficient-kan (B-spline bases by Cox-de Boor in forward)
and vgsatorras' EGNN (edge / coordinate / node models, scatter_add_ aggregation). Small, random
weights."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import einsum, nn

from benchmarks.handwritten import Network, floats, ids
from benchmarks.handwritten.vision import _randomize_bn

# --- transformers' modeling_funnel.py (FunnelAttentionStructure.pool_tensor, upsample), with
# absolute positions in place of the relative-shift attention: pooling of the queries only ---


def pool_tensor(tensor, mode="mean", stride=2, separate_cls=True, truncate_seq=True):
    if separate_cls:
        suffix = tensor[:, :-1] if truncate_seq else tensor
        tensor = torch.cat([tensor[:, :1], suffix], dim=1)
    tensor = tensor[:, None, :, :]
    stride = (stride, 1)
    if mode == "mean":
        tensor = F.avg_pool2d(tensor, stride, stride=stride, ceil_mode=True)
    elif mode == "max":
        tensor = F.max_pool2d(tensor, stride, stride=stride, ceil_mode=True)
    return tensor[:, 0]


def upsample(x, stride, target_len, separate_cls=True, truncate_seq=True):
    if stride == 1:
        return x
    if separate_cls:
        cls = x[:, :1]
        x = x[:, 1:]
    output = torch.repeat_interleave(x, repeats=stride, dim=1)
    if separate_cls:
        if truncate_seq:
            output = F.pad(output, (0, 0, 0, stride - 1, 0, 0))
        output = output[:, : target_len - 1]
        output = torch.cat([cls, output], dim=1)
    else:
        output = output[:, :target_len]
    return output


class FunnelAttention(nn.Module):
    def __init__(self, d_model, n_head, d_head):
        super().__init__()
        self.n_head, self.d_head = n_head, d_head
        self.q_head = nn.Linear(d_model, n_head * d_head, bias=False)
        self.k_head = nn.Linear(d_model, n_head * d_head)
        self.v_head = nn.Linear(d_model, n_head * d_head)
        self.post_proj = nn.Linear(n_head * d_head, d_model)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-9)
        self.scale = 1.0 / (d_head ** 0.5)

    def forward(self, query, key, value):
        batch_size, seq_len, _ = query.shape
        context_len = key.shape[1]
        n_head, d_head = self.n_head, self.d_head
        q_head = self.q_head(query).view(batch_size, seq_len, n_head, d_head)
        k_head = self.k_head(key).view(batch_size, context_len, n_head, d_head)
        v_head = self.v_head(value).view(batch_size, context_len, n_head, d_head)
        q_head = q_head * self.scale
        attn_score = torch.einsum("bind,bjnd->bnij", q_head, k_head)
        attn_prob = torch.softmax(attn_score, dim=-1, dtype=torch.float)
        attn_vec = torch.einsum("bnij,bjnd->bind", attn_prob, v_head)
        attn_out = self.post_proj(attn_vec.reshape(batch_size, seq_len, n_head * d_head))
        return self.layer_norm(query + attn_out)


class FunnelLayer(nn.Module):
    def __init__(self, d_model, n_head, d_head, d_inner):
        super().__init__()
        self.attention = FunnelAttention(d_model, n_head, d_head)
        self.linear_1 = nn.Linear(d_model, d_inner)
        self.linear_2 = nn.Linear(d_inner, d_model)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-9)

    def forward(self, query, key, value):
        h = self.attention(query, key, value)
        return self.layer_norm(h + self.linear_2(F.gelu(self.linear_1(h))))


class FunnelForTokenClassification(nn.Module):
    """block_sizes (2, 2, 2): the first layer of blocks 2 and 3 pools its queries (pool_q_only);
    a 2-layer decoder on the upsampled last block plus the first block's output."""

    def __init__(self, vocab=100, d_model=32, n_head=4, d_head=8, d_inner=64, block_sizes=(2, 2, 2),
                 num_labels=5, max_len=64):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d_model)
        self.position_embeddings = nn.Embedding(max_len, d_model)
        self.emb_norm = nn.LayerNorm(d_model, eps=1e-9)
        self.blocks = nn.ModuleList([nn.ModuleList([FunnelLayer(d_model, n_head, d_head, d_inner)
                                                    for _ in range(size)])
                                     for size in block_sizes])
        self.decoder = nn.ModuleList([FunnelLayer(d_model, n_head, d_head, d_inner)
                                      for _ in range(2)])
        self.classifier = nn.Linear(d_model, num_labels)

    def forward(self, input_ids):
        seq_len = input_ids.shape[1]
        pos = torch.arange(seq_len, device=input_ids.device)
        hidden = self.emb_norm(self.word_embeddings(input_ids) + self.position_embeddings(pos))
        first_block_hidden = None
        for block_index, block in enumerate(self.blocks):
            for layer_index, layer in enumerate(block):
                pooling_flag = block_index > 0 and layer_index == 0
                if pooling_flag:
                    query = pool_tensor(hidden)
                    hidden = layer(query, hidden, hidden)
                else:
                    hidden = layer(hidden, hidden, hidden)
            if block_index == 0:
                first_block_hidden = hidden
        stride = 2 ** (len(self.blocks) - 1)
        hidden = upsample(hidden, stride, seq_len) + first_block_hidden
        for layer in self.decoder:
            hidden = layer(hidden, hidden, hidden)
        return self.classifier(hidden)


def funnel():
    torch.manual_seed(0)
    return FunnelForTokenClassification().eval()


# --- lucidrains/perceiver-pytorch perceiver_io.py (PerceiverIO, PerceiverLM) ---


class PreNorm(nn.Module):
    def __init__(self, dim, fn, context_dim=None):
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None

    def forward(self, x, **kwargs):
        x = self.norm(x)
        if self.norm_context is not None:
            context = kwargs["context"]
            kwargs.update(context=self.norm_context(context))
        return self.fn(x, **kwargs)


class GEGLU(nn.Module):
    def forward(self, x):
        x, gates = x.chunk(2, dim=-1)
        return x * F.gelu(gates)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mult * 2), GEGLU(),
                                 nn.Linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class PerceiverAttention(nn.Module):
    def __init__(self, query_dim, context_dim=None, heads=8, dim_head=64):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = query_dim if context_dim is None else context_dim
        self.scale = dim_head ** -0.5
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(context_dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, query_dim)

    def forward(self, x, context=None, mask=None):
        h = self.heads
        q = self.to_q(x)
        context = x if context is None else context
        k, v = self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> (b h) n d", h=h) for t in (q, k, v))
        sim = einsum("b i d, b j d -> b i j", q, k) * self.scale
        attn = sim.softmax(dim=-1)
        out = einsum("b i j, b j d -> b i d", attn, v)
        out = rearrange(out, "(b h) n d -> b n (h d)", h=h)
        return self.to_out(out)


class PerceiverIO(nn.Module):
    def __init__(self, *, depth, dim, queries_dim, logits_dim=None, num_latents=16,
                 latent_dim=32, cross_heads=1, latent_heads=4, cross_dim_head=16,
                 latent_dim_head=8, decoder_ff=False):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim))
        self.cross_attend_blocks = nn.ModuleList([
            PreNorm(latent_dim, PerceiverAttention(latent_dim, dim, heads=cross_heads,
                                                   dim_head=cross_dim_head), context_dim=dim),
            PreNorm(latent_dim, FeedForward(latent_dim)),
        ])
        self.layers = nn.ModuleList([nn.ModuleList([
            PreNorm(latent_dim, PerceiverAttention(latent_dim, heads=latent_heads,
                                                   dim_head=latent_dim_head)),
            PreNorm(latent_dim, FeedForward(latent_dim)),
        ]) for _ in range(depth)])
        self.decoder_cross_attn = PreNorm(
            queries_dim, PerceiverAttention(queries_dim, latent_dim, heads=cross_heads,
                                            dim_head=cross_dim_head), context_dim=latent_dim)
        self.decoder_ff = PreNorm(queries_dim, FeedForward(queries_dim)) if decoder_ff else None
        self.to_logits = nn.Linear(queries_dim, logits_dim) if logits_dim else nn.Identity()

    def forward(self, data, mask=None, queries=None):
        b, *_ = data.shape
        x = repeat(self.latents, "n d -> b n d", b=b)
        cross_attn, cross_ff = self.cross_attend_blocks
        x = cross_attn(x, context=data, mask=mask) + x
        x = cross_ff(x) + x
        for self_attn, self_ff in self.layers:
            x = self_attn(x) + x
            x = self_ff(x) + x
        if queries is None:
            return x
        if queries.ndim == 2:
            queries = repeat(queries, "n d -> b n d", b=b)
        latents = self.decoder_cross_attn(queries, context=x)
        if self.decoder_ff is not None:
            latents = latents + self.decoder_ff(latents)
        return self.to_logits(latents)


class PerceiverLM(nn.Module):
    def __init__(self, *, dim, num_tokens, max_seq_len, **kwargs):
        super().__init__()
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = nn.Embedding(max_seq_len, dim)
        self.perceiver_io = PerceiverIO(dim=dim, queries_dim=dim, logits_dim=num_tokens, **kwargs)

    def forward(self, x, mask=None):
        n, device = x.shape[1], x.device
        x = self.token_emb(x)
        pos_emb = self.pos_emb(torch.arange(n, device=device))
        pos_emb = rearrange(pos_emb, "n d -> () n d")
        x = x + pos_emb
        return self.perceiver_io(x, mask=mask, queries=x)


def perceiver_io():
    torch.manual_seed(0)
    return PerceiverLM(dim=32, num_tokens=100, max_seq_len=64, depth=2,
                       decoder_ff=True).eval()


# --- mlpen/Nystromformer (code/attention_nystrom.py, as transformers' modeling_nystromformer
# writes it: iterative_inv's "original" init by the max column sum) ---


class NystromAttention(nn.Module):
    def __init__(self, dim, num_head, num_landmarks, seq_len, conv_kernel_size=5,
                 init_option="original"):
        super().__init__()
        self.init_option = init_option
        self.head_dim = dim // num_head
        self.num_head = num_head
        self.num_landmarks = num_landmarks
        self.seq_len = seq_len
        self.W_q = nn.Linear(dim, dim)
        self.W_k = nn.Linear(dim, dim)
        self.W_v = nn.Linear(dim, dim)
        self.ff = nn.Linear(dim, dim)
        self.conv = nn.Conv2d(in_channels=num_head, out_channels=num_head,
                              kernel_size=(conv_kernel_size, 1),
                              padding=(conv_kernel_size // 2, 0), bias=False, groups=num_head)

    def split_heads(self, X):
        X = X.reshape(X.size(0), X.size(1), self.num_head, self.head_dim)
        return X.transpose(1, 2)

    def combine_heads(self, X):
        X = X.transpose(1, 2)
        return X.reshape(X.size(0), X.size(1), self.num_head * self.head_dim)

    def iterative_inv(self, mat, n_iter=6):
        Id = torch.eye(mat.size(-1), device=mat.device)
        K = mat
        if self.init_option == "original":
            V = 1 / torch.max(torch.sum(K, dim=-2)) * K.transpose(-1, -2)
        else:
            V = 1 / torch.max(torch.sum(K, dim=-2), dim=-1).values[:, :, None, None] \
                * K.transpose(-1, -2)
        for _ in range(n_iter):
            KV = torch.matmul(K, V)
            V = torch.matmul(0.25 * V, 13 * Id - torch.matmul(KV, 15 * Id - torch.matmul(
                KV, 7 * Id - KV)))
        return V

    def forward(self, X, mask):
        Q = self.split_heads(self.W_q(X))
        K = self.split_heads(self.W_k(X))
        V = self.split_heads(self.W_v(X))
        Q = Q * mask[:, None, :, None] / math.sqrt(math.sqrt(self.head_dim))
        K = K * mask[:, None, :, None] / math.sqrt(math.sqrt(self.head_dim))
        Q_landmarks = Q.reshape(-1, self.num_head, self.num_landmarks,
                                self.seq_len // self.num_landmarks, self.head_dim).mean(dim=-2)
        K_landmarks = K.reshape(-1, self.num_head, self.num_landmarks,
                                self.seq_len // self.num_landmarks, self.head_dim).mean(dim=-2)
        kernel_1 = F.softmax(torch.matmul(Q, K_landmarks.transpose(-1, -2)), dim=-1)
        kernel_2 = F.softmax(torch.matmul(Q_landmarks, K_landmarks.transpose(-1, -2)), dim=-1)
        kernel_3 = F.softmax(torch.matmul(Q_landmarks, K.transpose(-1, -2))
                             - 1e9 * (1 - mask[:, None, None, :]), dim=-1)
        attn = torch.matmul(torch.matmul(kernel_1, self.iterative_inv(kernel_2)),
                            torch.matmul(kernel_3, V))
        attn += self.conv(V * mask[:, None, :, None])
        return self.ff(self.combine_heads(attn))


class NystromBlock(nn.Module):
    def __init__(self, dim, num_head, num_landmarks, seq_len, init_option):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.mha = NystromAttention(dim, num_head, num_landmarks, seq_len,
                                    init_option=init_option)
        self.norm2 = nn.LayerNorm(dim)
        self.mlpblock = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, X, mask):
        X = self.mha(self.norm1(X), mask) + X
        return self.mlpblock(self.norm2(X)) + X


class NystromformerClassifier(nn.Module):
    """The LRA model layout: embeddings, pre-LN blocks, a mean-pooled classifier."""

    def __init__(self, vocab=100, dim=32, num_head=4, num_landmarks=4, seq_len=32, layers=2,
                 num_classes=4, init_option="original"):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(seq_len, dim)
        self.blocks = nn.ModuleList([NystromBlock(dim, num_head, num_landmarks, seq_len,
                                                  init_option) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.mlpblock = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, num_classes))

    def forward(self, input_ids):
        mask = torch.ones_like(input_ids, dtype=torch.float)
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        X = self.word_embeddings(input_ids) + self.position_embeddings(pos)[None]
        for block in self.blocks:
            X = block(X, mask)
        X = self.norm(X) * mask[:, :, None]
        return self.mlpblock(X.sum(dim=1) / mask.sum(dim=1, keepdim=True))


def nystromformer():
    torch.manual_seed(0)
    return NystromformerClassifier().eval()


def nystromformer_lra():
    torch.manual_seed(0)
    return NystromformerClassifier(init_option="per_sample").eval()


# --- google-research/f_net as transformers' modeling_fnet.py writes it ---


class FNetBasicFourierTransform(nn.Module):
    def forward(self, hidden_states):
        return torch.fft.fftn(hidden_states, dim=(1, 2)).real


class FNetLayer(nn.Module):
    def __init__(self, hidden, intermediate):
        super().__init__()
        self.fourier = FNetBasicFourierTransform()
        self.mixing_layer_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.output_layer_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, hidden_states):
        fourier_output = self.mixing_layer_norm(self.fourier(hidden_states) + hidden_states)
        intermediate = F.gelu(self.intermediate(fourier_output), approximate="tanh")
        return self.output_layer_norm(self.output(intermediate) + fourier_output)


class FNetForSequenceClassification(nn.Module):
    def __init__(self, vocab=100, hidden=32, intermediate=64, layers=3, max_len=64,
                 num_labels=3):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_len, hidden)
        self.token_type_embeddings = nn.Embedding(4, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        self.projection = nn.Linear(hidden, hidden)
        self.layer = nn.ModuleList([FNetLayer(hidden, intermediate) for _ in range(layers)])
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, input_ids):
        seq_length = input_ids.shape[1]
        position_ids = torch.arange(seq_length, device=input_ids.device).unsqueeze(0)
        token_type_ids = torch.zeros(input_ids.shape, dtype=torch.long, device=input_ids.device)
        emb = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
               + self.position_embeddings(position_ids))
        hidden = self.projection(self.LayerNorm(emb))
        for layer in self.layer:
            hidden = layer(hidden)
        pooled = torch.tanh(self.pooler(hidden[:, 0]))
        return self.classifier(pooled)


def fnet():
    torch.manual_seed(0)
    return FNetForSequenceClassification().eval()


# --- decoder parts shared by the LM rows below: rotate_half RoPE as Llama / GPT-NeoX write it ---


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope(q, k, base=10000.0):
    T, d = q.shape[-2], q.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float) / d))
    freqs = torch.outer(torch.arange(T, dtype=torch.float), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class LM(nn.Module):
    """Token embedding, pre-norm blocks of (attention, MLP) built by ``block``, final norm, head."""

    def __init__(self, block, vocab=100, dim=32, layers=2):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList([block() for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens):
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.output(self.norm(h))


# --- apple/ml-sigmoid-attention: softmax replaced by sigmoid(q k^T / sqrt(d) + b), b = -log(n)
# for the context length n, RoPE; causal by -inf before the sigmoid ---


class SigmoidAttention(nn.Module):
    def __init__(self, dim, n_heads, max_seq_len):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.wqkv = nn.Linear(dim, 3 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        self.sigmoid_bias = -math.log(max_seq_len)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.wqkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, k)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim) + self.sigmoid_bias
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        out = torch.sigmoid(scores) @ v
        return self.wo(out.transpose(1, 2).reshape(B, T, C))


class SigmoidBlock(nn.Module):
    def __init__(self, dim=32, n_heads=4, max_seq_len=64):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = SigmoidAttention(dim, n_heads, max_seq_len)
        self.ffn_norm = nn.LayerNorm(dim)
        self.feed_forward = SwiGLU(dim, 64)

    def forward(self, x):
        x = x + self.attention(self.attention_norm(x))
        return x + self.feed_forward(self.ffn_norm(x))


def sigmoid_attn():
    torch.manual_seed(0)
    return LM(SigmoidBlock).eval()


# --- Primer-EZ (So et al. 2021): squared ReLU in the MLP and Multi-DConv-Head Attention, a
# width-3 causal depthwise conv over the positions after each of the q / k / v projections ---


class DConv(nn.Module):
    def __init__(self, dim, kernel_size=3):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel_size, groups=dim, padding=kernel_size - 1)

    def forward(self, x):  # (B, T, C)
        return self.conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)


class PrimerBlock(nn.Module):
    def __init__(self, dim=32, n_heads=4):
        super().__init__()
        self.n_heads = n_heads
        self.ln_1 = nn.LayerNorm(dim)
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.q_dconv, self.k_dconv, self.v_dconv = (DConv(dim) for _ in range(3))
        self.c_proj = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.proj = nn.Linear(4 * dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        h = self.ln_1(x)
        q = self.q_dconv(self.q(h))
        k = self.k_dconv(self.k(h))
        v = self.v_dconv(self.v(h))
        q, k, v = (t.view(B, T, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.proj(F.relu(self.fc(self.ln_2(x))) ** 2)


class PrimerLM(nn.Module):
    def __init__(self, vocab=100, dim=32, layers=2, max_len=64):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(max_len, dim)
        self.h = nn.ModuleList([PrimerBlock(dim) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.t()


def primer():
    torch.manual_seed(0)
    return PrimerLM().eval()


# --- lucidrains/FLASH-pytorch flash_pytorch.py (GAU, OffsetScale, ReLUSquared,
# T5RelativePositionBias), causal ---


class T5RelativePositionBias(nn.Module):
    def __init__(self, scale, causal=False, num_buckets=32, max_distance=128):
        super().__init__()
        self.scale = scale
        self.causal = causal
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, 1)

    @staticmethod
    def _relative_position_bucket(relative_position, causal=True, num_buckets=32,
                                  max_distance=128):
        ret = 0
        n = -relative_position
        if not causal:
            num_buckets //= 2
            ret += (n < 0).long() * num_buckets
            n = torch.abs(n)
        else:
            n = torch.max(n, torch.zeros_like(n))
        max_exact = num_buckets // 2
        is_small = n < max_exact
        val_if_large = max_exact + (
            torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)).long()
        val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
        ret += torch.where(is_small, n, val_if_large)
        return ret

    def forward(self, x):
        i, j, device = *x.shape[-2:], x.device
        q_pos = torch.arange(i, dtype=torch.long, device=device)
        k_pos = torch.arange(j, dtype=torch.long, device=device)
        rel_pos = rearrange(k_pos, "j -> 1 j") - rearrange(q_pos, "i -> i 1")
        rp_bucket = self._relative_position_bucket(rel_pos, causal=self.causal,
                                                   num_buckets=self.num_buckets,
                                                   max_distance=self.max_distance)
        values = self.relative_attention_bias(rp_bucket)
        bias = rearrange(values, "i j 1 -> i j")
        return bias * self.scale


class OffsetScale(nn.Module):
    def __init__(self, dim, heads=1):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(heads, dim))
        self.beta = nn.Parameter(torch.zeros(heads, dim))
        nn.init.normal_(self.gamma, std=0.02)

    def forward(self, x):
        out = einsum("... d, h d -> ... h d", x, self.gamma) + self.beta
        return out.unbind(dim=-2)


class ReLUSquared(nn.Module):
    def forward(self, x):
        return F.relu(x) ** 2


class GAU(nn.Module):
    def __init__(self, *, dim, query_key_dim=16, expansion_factor=2.0, causal=True):
        super().__init__()
        hidden_dim = int(expansion_factor * dim)
        self.norm = nn.LayerNorm(dim)
        self.causal = causal
        self.attn_fn = ReLUSquared()
        self.rel_pos_bias = T5RelativePositionBias(scale=dim ** 0.5, causal=causal)
        self.to_hidden = nn.Sequential(nn.Linear(dim, hidden_dim * 2), nn.SiLU())
        self.to_qk = nn.Sequential(nn.Linear(dim, query_key_dim), nn.SiLU())
        self.offsetscale = OffsetScale(query_key_dim, heads=2)
        self.to_out = nn.Linear(hidden_dim, dim)

    def forward(self, x):
        seq_len, device = x.shape[-2], x.device
        normed_x = self.norm(x)
        v, gate = self.to_hidden(normed_x).chunk(2, dim=-1)
        qk = self.to_qk(normed_x)
        q, k = self.offsetscale(qk)
        sim = einsum("b i d, b j d -> b i j", q, k)
        sim = sim + self.rel_pos_bias(sim)
        attn = self.attn_fn(sim / seq_len)
        if self.causal:
            causal_mask = torch.ones((seq_len, seq_len), dtype=torch.bool, device=device).triu(1)
            attn = attn.masked_fill(causal_mask, 0.0)
        out = einsum("b i j, b j d -> b i d", attn, v)
        out = out * gate
        return self.to_out(out) + x


class GAUTransformer(nn.Module):
    def __init__(self, num_tokens=100, dim=32, depth=3, max_len=64):
        super().__init__()
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.abs_pos_emb = nn.Embedding(max_len, dim)
        self.layers = nn.ModuleList([GAU(dim=dim) for _ in range(depth)])
        self.to_logits = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_tokens))

    def forward(self, x):
        x = self.token_emb(x)
        x = x + self.abs_pos_emb(torch.arange(x.shape[1], device=x.device))
        for gau in self.layers:
            x = gau(x)
        return self.to_logits(x)


def flash_gau():
    torch.manual_seed(0)
    model = GAUTransformer()
    with torch.no_grad():  # trained-looking: OffsetScale's gamma ~ 1, a position bias ~ 0.1
        for gau in model.layers:
            gau.offsetscale.gamma.normal_(1.0, 0.3)
            gau.rel_pos_bias.relative_attention_bias.weight.normal_(0.0, 0.02)
    return model.eval()


# --- Golovneva et al. 2024, Contextual Position Encoding (the paper's Figure code: CoPE and
# SelfAttn), in a decoder of 2 heads per layer ---


class CoPE(nn.Module):
    def __init__(self, npos_max, head_dim):
        super().__init__()
        self.npos_max = npos_max
        self.pos_emb = nn.parameter.Parameter(torch.zeros(1, head_dim, npos_max))

    def forward(self, query, attn_logits):
        gates = torch.sigmoid(attn_logits)
        pos = gates.flip(-1).cumsum(dim=-1).flip(-1)
        pos = pos.clamp(max=self.npos_max - 1)
        pos_ceil = pos.ceil().long()
        pos_floor = pos.floor().long()
        logits_int = torch.matmul(query, self.pos_emb)
        logits_ceil = logits_int.gather(-1, pos_ceil)
        logits_floor = logits_int.gather(-1, pos_floor)
        w = pos - pos_floor
        return logits_ceil * w + logits_floor * (1 - w)


class CoPESelfAttn(nn.Module):
    def __init__(self, npos_max, head_dim):
        super().__init__()
        self.cope = CoPE(npos_max, head_dim)
        self.head_dim = head_dim

    def forward(self, query, key, val, mask):
        attn_logits = torch.bmm(query, key.transpose(-1, -2))
        attn_logits = attn_logits / math.sqrt(self.head_dim)
        attn_logits += mask.log()
        attn_logits += self.cope(query, attn_logits)
        attn = torch.softmax(attn_logits, dim=-1)
        return torch.bmm(attn, val)


class CoPEBlock(nn.Module):
    def __init__(self, dim=32, n_heads=2, npos_max=8):
        super().__init__()
        self.n_heads = n_heads
        self.ln_1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn = CoPESelfAttn(npos_max, dim // n_heads)
        self.proj = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=-1)
        # heads folded into the batch: the paper's bmm works on batch x seq_len x head_dim
        q, k, v = (t.view(B, T, self.n_heads, -1).transpose(1, 2).reshape(B * self.n_heads, T, -1)
                   for t in (q, k, v))
        mask = torch.tril(torch.ones(T, T, device=x.device))
        y = self.attn(q, k, v, mask).view(B, self.n_heads, T, -1).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.mlp(self.ln_2(x))


def cope():
    torch.manual_seed(0)
    model = LM(CoPEBlock)
    with torch.no_grad():
        for block in model.layers:
            block.attn.cope.pos_emb.normal_(0.0, 0.5)
    return model.eval()


# --- zhixuan-lin/forgetting-transformer: forgetting_attention's reference (log forget gates
# by logsigmoid of a per-head projection, their cumsum as the decay bias L_i - L_j) ---


def forgetting_attention_ref(q, k, v, log_fgate, sm_scale):
    T = q.shape[-2]
    log_lambda = torch.cumsum(log_fgate, dim=-1)  # (B, H, T)
    decay_bias = log_lambda[..., :, None] - log_lambda[..., None, :]
    s = torch.matmul(q, k.transpose(-1, -2)) * sm_scale
    s = s + decay_bias
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.matmul(p, v)


class ForgettingAttentionLayer(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.fgate_proj = nn.Linear(dim, num_heads, bias=True)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, hidden_states):
        q, k, v = (rearrange(p(hidden_states), "b t (h d) -> b h t d", h=self.num_heads)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        fgate_logit = self.fgate_proj(hidden_states)
        fgate_logit = rearrange(fgate_logit, "b t h -> b h t")
        log_fgate = F.logsigmoid(fgate_logit.float())
        o = forgetting_attention_ref(q, k, v, log_fgate, self.head_dim ** -0.5)
        return self.o_proj(rearrange(o, "b h t d -> b t (h d)"))


class FoxBlock(nn.Module):
    def __init__(self, dim=32, num_heads=4):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = ForgettingAttentionLayer(dim, num_heads)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = SwiGLU(dim, 64)

    def forward(self, x):
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


def fox():
    torch.manual_seed(0)
    model = LM(FoxBlock)
    with torch.no_grad():  # the paper's fgate bias init: forget gates near 0.9 - 0.99
        for block in model.layers:
            block.attn.fgate_proj.bias.uniform_(2.0, 4.0)
    return model.eval()


# --- facebookresearch/ToMe (tome/merge.py bipartite_soft_matching, merge_wavg;
# tome/patch/timm.py ToMeBlock, ToMeAttention with proportional attention) on a small ViT ---


def bipartite_soft_matching(metric, r, class_token=False):
    protected = 1 if class_token else 0
    t = metric.shape[1]
    r = min(r, (t - protected) // 2)
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[..., ::2, :], metric[..., 1::2, :]
        scores = a @ b.transpose(-1, -2)
        if class_token:
            scores[..., 0, :] = -math.inf
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
        unm_idx = edge_idx[..., r:, :]
        src_idx = edge_idx[..., :r, :]
        dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)
        if class_token:
            unm_idx = unm_idx.sort(dim=1)[0]

    def merge(x, mode="mean"):
        src, dst = x[..., ::2, :], x[..., 1::2, :]
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
        dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
        return torch.cat([unm, dst], dim=1)

    return merge


def merge_wavg(merge, x, size=None):
    if size is None:
        size = torch.ones_like(x[..., 0, None])
    x = merge(x * size, mode="sum")
    size = merge(size, mode="sum")
    return x / size, size


class ToMeAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, size=None):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(
            2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if size is not None:
            attn = attn + size.log()[:, None, None, :, 0]
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x), k.mean(1)


class ToMeBlock(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ToMeAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, tome_info):
        attn_size = tome_info["size"] if tome_info["prop_attn"] else None
        x_attn, metric = self.attn(self.norm1(x), attn_size)
        x = x + x_attn
        r = tome_info["r"].pop(0)
        if r > 0:
            merge = bipartite_soft_matching(metric, r, tome_info["class_token"])
            x, tome_info["size"] = merge_wavg(merge, x, tome_info["size"])
        return x + self.mlp(self.norm2(x))


class ToMeViT(nn.Module):
    def __init__(self, img=32, patch=4, dim=32, depth=4, heads=4, num_classes=10, r=8):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([ToMeBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.r = r

    def forward(self, x):
        tome_info = {"r": [self.r] * len(self.blocks), "size": None, "class_token": True,
                     "prop_attn": True}
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x, tome_info)
        return self.head(self.norm(x)[:, 0])


def tome_vit():
    torch.manual_seed(0)
    return ToMeViT().eval()


# --- lucidrains/soft-moe-pytorch (SoftMoE: RMSNorm'd tokens and slot embeddings, dispatch
# softmax over the tokens, combine softmax over all slots, one FeedForward per expert) in a ViT ---


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class SoftMoE(nn.Module):
    def __init__(self, dim, num_experts=4, num_slots=2, expert_mult=2):
        super().__init__()
        self.norm = RMSNorm(dim)
        self.slot_norm = RMSNorm(dim)
        self.slot_embeds = nn.Parameter(torch.randn(num_experts, num_slots, dim))
        self.experts = nn.ModuleList([nn.Sequential(nn.Linear(dim, dim * expert_mult), nn.GELU(),
                                                    nn.Linear(dim * expert_mult, dim))
                                      for _ in range(num_experts)])

    def forward(self, x):
        x = self.norm(x)
        slot_embeds = self.slot_norm(self.slot_embeds)
        logits = einsum("b n d, e s d -> b n e s", x, slot_embeds)
        dispatch_weights = logits.softmax(dim=1)
        combine_weights = rearrange(logits, "b n e s -> b n (e s)")
        combine_weights = combine_weights.softmax(dim=-1)
        slots = einsum("b n d, b n e s -> b e s d", x, dispatch_weights)
        out = torch.stack([expert(slots[:, i]) for i, expert in enumerate(self.experts)], dim=1)
        out = rearrange(out, " b e s d -> b (e s) d")
        return einsum("b s d, b n s -> b n d", out, combine_weights)


class SoftMoEBlock(nn.Module):
    def __init__(self, dim, heads, moe):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = SoftMoE(dim) if moe else nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.ff(self.norm2(x))


class SoftMoEViT(nn.Module):
    """The Soft MoE paper's layout: MoE in the second half of the blocks, mean-pooled head."""

    def __init__(self, img=32, patch=4, dim=32, depth=4, heads=4, num_classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[SoftMoEBlock(dim, heads, i >= depth // 2)
                                      for i in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        return self.head(self.norm(self.blocks(x)).mean(dim=1))


def soft_moe():
    torch.manual_seed(0)
    return SoftMoEViT().eval()


# --- microsoft/CvT lib/models/cls_cvt.py (ConvEmbed, Attention with conv projections, the class
# token split off before and cat'ed back after) ---


class ConvEmbed(nn.Module):
    def __init__(self, patch_size, in_chans, embed_dim, stride, padding):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride, padding)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        x = self.proj(x)
        _, _, H, W = x.shape
        x = rearrange(x, "b c h w -> b (h w) c")
        x = self.norm(x)
        return rearrange(x, "b (h w) c -> b c h w", h=H, w=W)


class CvTAttention(nn.Module):
    def __init__(self, dim_in, dim_out, num_heads, with_cls_token, kernel_size=3, stride_kv=2,
                 stride_q=1, padding_kv=1, padding_q=1):
        super().__init__()
        self.stride_kv, self.stride_q = stride_kv, stride_q
        self.dim = dim_out
        self.num_heads = num_heads
        self.scale = dim_out ** -0.5
        self.with_cls_token = with_cls_token
        self.conv_proj_q = self._build_projection(dim_in, kernel_size, padding_q, stride_q)
        self.conv_proj_k = self._build_projection(dim_in, kernel_size, padding_kv, stride_kv)
        self.conv_proj_v = self._build_projection(dim_in, kernel_size, padding_kv, stride_kv)
        self.proj_q = nn.Linear(dim_in, dim_out)
        self.proj_k = nn.Linear(dim_in, dim_out)
        self.proj_v = nn.Linear(dim_in, dim_out)
        self.proj = nn.Linear(dim_out, dim_out)

    def _build_projection(self, dim_in, kernel_size, padding, stride):
        from collections import OrderedDict
        return nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(dim_in, dim_in, kernel_size=kernel_size, padding=padding,
                               stride=stride, bias=False, groups=dim_in)),
            ("bn", nn.BatchNorm2d(dim_in)),
        ]))

    def forward_conv(self, x, h, w):
        if self.with_cls_token:
            cls_token, x = torch.split(x, [1, h * w], 1)
        x = rearrange(x, "b (h w) c -> b c h w", h=h, w=w)
        q = rearrange(self.conv_proj_q(x), "b c h w -> b (h w) c")
        k = rearrange(self.conv_proj_k(x), "b c h w -> b (h w) c")
        v = rearrange(self.conv_proj_v(x), "b c h w -> b (h w) c")
        if self.with_cls_token:
            q = torch.cat((cls_token, q), dim=1)
            k = torch.cat((cls_token, k), dim=1)
            v = torch.cat((cls_token, v), dim=1)
        return q, k, v

    def forward(self, x, h, w):
        q, k, v = self.forward_conv(x, h, w)
        q = rearrange(self.proj_q(q), "b t (h d) -> b h t d", h=self.num_heads)
        k = rearrange(self.proj_k(k), "b t (h d) -> b h t d", h=self.num_heads)
        v = rearrange(self.proj_v(v), "b t (h d) -> b h t d", h=self.num_heads)
        attn_score = torch.einsum("bhlk,bhtk->bhlt", [q, k]) * self.scale
        attn = F.softmax(attn_score, dim=-1)
        x = torch.einsum("bhlt,bhtv->bhlv", [attn, v])
        x = rearrange(x, "b h t d -> b t (h d)")
        return self.proj(x)


class CvTBlock(nn.Module):
    def __init__(self, dim, num_heads, with_cls_token):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CvTAttention(dim, dim, num_heads, with_cls_token)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, h, w):
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x))


class CvTStage(nn.Module):
    def __init__(self, in_chans, dim, depth, heads, patch, stride, padding, cls_token):
        super().__init__()
        self.patch_embed = ConvEmbed(patch, in_chans, dim, stride, padding)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if cls_token else None
        self.blocks = nn.ModuleList([CvTBlock(dim, heads, cls_token) for _ in range(depth)])

    def forward(self, x):
        x = self.patch_embed(x)
        B, _, H, W = x.size()
        x = rearrange(x, "b c h w -> b (h w) c")
        cls_tokens = None
        if self.cls_token is not None:
            cls_tokens = self.cls_token.expand(B, -1, -1)
            x = torch.cat((cls_tokens, x), dim=1)
        for blk in self.blocks:
            x = blk(x, H, W)
        if self.cls_token is not None:
            cls_tokens, x = torch.split(x, [1, H * W], 1)
        x = rearrange(x, "b (h w) c -> b c h w", h=H, w=W)
        return x, cls_tokens


class ConvolutionalVisionTransformer(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stages = nn.ModuleList([
            CvTStage(3, 16, 1, 1, patch=7, stride=4, padding=2, cls_token=False),
            CvTStage(16, 32, 2, 2, patch=3, stride=2, padding=1, cls_token=True),
        ])
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        for stage in self.stages:
            x, cls_tokens = stage(x)
        x = self.norm(cls_tokens)
        return self.head(torch.squeeze(x, dim=1))


def cvt():
    torch.manual_seed(0)
    return _randomize_bn(ConvolutionalVisionTransformer())


# --- yuqinie98/PatchTST PatchTST_supervised (RevIN, PatchTST_backbone: ReplicationPad1d end
# padding, unfold patches, TSTiEncoder with BatchNorm by Transpose, residual attention scores
# carried between layers, Flatten_Head) ---


class RevIN(nn.Module):
    def __init__(self, num_features, eps=1e-5, affine=True):
        super().__init__()
        self.eps = eps
        self.affine_weight = nn.Parameter(torch.ones(num_features))
        self.affine_bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x, mode):
        if mode == "norm":
            dim2reduce = tuple(range(1, x.ndim - 1))
            self.mean = torch.mean(x, dim=dim2reduce, keepdim=True).detach()
            self.stdev = torch.sqrt(torch.var(x, dim=dim2reduce, keepdim=True, unbiased=False)
                                    + self.eps).detach()
            x = (x - self.mean) / self.stdev
            return x * self.affine_weight + self.affine_bias
        x = (x - self.affine_bias) / (self.affine_weight + self.eps * self.eps)
        return x * self.stdev + self.mean


class Transpose(nn.Module):
    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.transpose(*self.dims)


class ScaledDotProductAttention(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor((d_model // n_heads) ** -0.5), requires_grad=False)

    def forward(self, q, k, v, prev=None):
        attn_scores = torch.matmul(q, k) * self.scale
        if prev is not None:
            attn_scores = attn_scores + prev
        attn_weights = F.softmax(attn_scores, dim=-1)
        return torch.matmul(attn_weights, v), attn_weights, attn_scores


class TSTMultiheadAttention(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads, self.d_k = n_heads, d_model // n_heads
        self.W_Q = nn.Linear(d_model, d_model)
        self.W_K = nn.Linear(d_model, d_model)
        self.W_V = nn.Linear(d_model, d_model)
        self.sdp_attn = ScaledDotProductAttention(d_model, n_heads)
        self.to_out = nn.Linear(d_model, d_model)

    def forward(self, Q, prev=None):
        bs = Q.size(0)
        q_s = self.W_Q(Q).view(bs, -1, self.n_heads, self.d_k).transpose(1, 2)
        k_s = self.W_K(Q).view(bs, -1, self.n_heads, self.d_k).permute(0, 2, 3, 1)
        v_s = self.W_V(Q).view(bs, -1, self.n_heads, self.d_k).transpose(1, 2)
        output, attn_weights, attn_scores = self.sdp_attn(q_s, k_s, v_s, prev=prev)
        output = output.transpose(1, 2).contiguous().view(bs, -1, self.n_heads * self.d_k)
        return self.to_out(output), attn_weights, attn_scores


class TSTEncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.self_attn = TSTMultiheadAttention(d_model, n_heads)
        self.norm_attn = nn.Sequential(Transpose(1, 2), nn.BatchNorm1d(d_model), Transpose(1, 2))
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.norm_ffn = nn.Sequential(Transpose(1, 2), nn.BatchNorm1d(d_model), Transpose(1, 2))

    def forward(self, src, prev=None):
        src2, _attn, scores = self.self_attn(src, prev)
        src = self.norm_attn(src + src2)
        src = self.norm_ffn(src + self.ff(src))
        return src, scores


class PatchTST(nn.Module):
    def __init__(self, c_in=4, context_window=48, target_window=12, patch_len=8, stride=4,
                 d_model=32, n_heads=4, d_ff=64, n_layers=2):
        super().__init__()
        self.revin_layer = RevIN(c_in)
        self.patch_len, self.stride = patch_len, stride
        patch_num = int((context_window - patch_len) / stride + 1) + 1
        self.padding_patch_layer = nn.ReplicationPad1d((0, stride))
        self.W_P = nn.Linear(patch_len, d_model)
        self.W_pos = nn.Parameter(torch.empty(patch_num, d_model).uniform_(-0.02, 0.02))
        self.layers = nn.ModuleList([TSTEncoderLayer(d_model, n_heads, d_ff)
                                     for _ in range(n_layers)])
        self.head_flatten = nn.Flatten(start_dim=-2)
        self.head_linear = nn.Linear(d_model * patch_num, target_window)

    def forward(self, x):  # x: [Batch, Input length, Channel]
        z = self.revin_layer(x, "norm")
        z = z.permute(0, 2, 1)
        z = self.padding_patch_layer(z)
        z = z.unfold(dimension=-1, size=self.patch_len, step=self.stride)
        z = z.permute(0, 1, 3, 2)  # z: [bs x nvars x patch_len x patch_num]
        n_vars = z.shape[1]
        x = z.permute(0, 1, 3, 2)
        x = self.W_P(x)
        u = torch.reshape(x, (x.shape[0] * x.shape[1], x.shape[2], x.shape[3]))
        output = u + self.W_pos
        scores = None
        for mod in self.layers:
            output, scores = mod(output, prev=scores)
        z = torch.reshape(output, (-1, n_vars, output.shape[-2], output.shape[-1]))
        z = z.permute(0, 1, 3, 2)  # [bs x nvars x d_model x patch_num]
        z = self.head_linear(self.head_flatten(z))
        z = z.permute(0, 2, 1)
        return self.revin_layer(z, "denorm")


def patchtst():
    torch.manual_seed(0)
    return _randomize_bn(PatchTST())


def _series(batch=8, length=48, channels=4, seed=0):
    """Sinusoids of random periods, phases and offsets plus noise: (B, L, C) as PatchTST reads."""
    def make():
        rng = np.random.default_rng(seed)
        t = np.arange(length)[None, :, None]
        period = rng.uniform(6, 20, (batch, 1, channels))
        phase = rng.uniform(0, 2 * np.pi, (batch, 1, channels))
        x = (rng.uniform(-2, 2, (batch, 1, channels)) + np.sin(2 * np.pi * t / period + phase)
             + 0.1 * rng.standard_normal((batch, length, channels)))
        return x.astype(np.float32)
    return make


# --- Blealtan/efficient-kan src/efficient_kan/kan.py (KANLinear, KAN) ---


class KANLinear(nn.Module):
    def __init__(self, in_features, out_features, grid_size=5, spline_order=3,
                 scale_spline=1.0, base_activation=nn.SiLU, grid_range=(-1, 1)):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.grid_size, self.spline_order = grid_size, spline_order
        h = (grid_range[1] - grid_range[0]) / grid_size
        grid = ((torch.arange(-spline_order, grid_size + spline_order + 1) * h + grid_range[0])
                .expand(in_features, -1).contiguous())
        self.register_buffer("grid", grid)
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(
            torch.randn(out_features, in_features, grid_size + spline_order) * 0.1)
        self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features))
        self.base_activation = base_activation()
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5) * scale_spline)

    def b_splines(self, x):
        grid = self.grid
        x = x.unsqueeze(-1)
        bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)
        for k in range(1, self.spline_order + 1):
            bases = (
                (x - grid[:, : -(k + 1)]) / (grid[:, k:-1] - grid[:, : -(k + 1)]) * bases[:, :, :-1]
            ) + (
                (grid[:, k + 1:] - x) / (grid[:, k + 1:] - grid[:, 1:(-k)]) * bases[:, :, 1:]
            )
        return bases.contiguous()

    @property
    def scaled_spline_weight(self):
        return self.spline_weight * self.spline_scaler.unsqueeze(-1)

    def forward(self, x):
        original_shape = x.shape
        x = x.reshape(-1, self.in_features)
        base_output = F.linear(self.base_activation(x), self.base_weight)
        spline_output = F.linear(self.b_splines(x).view(x.size(0), -1),
                                 self.scaled_spline_weight.view(self.out_features, -1))
        output = base_output + spline_output
        return output.reshape(*original_shape[:-1], self.out_features)


class KAN(nn.Module):
    def __init__(self, layers_hidden):
        super().__init__()
        self.layers = nn.ModuleList([KANLinear(i, o) for i, o in
                                     zip(layers_hidden, layers_hidden[1:])])  # noqa: RUF007

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def kan():
    torch.manual_seed(0)
    return KAN([16, 32, 10]).eval()


def _unit_box(batch=32, feats=16, seed=0):
    """Inputs inside the spline grid's range [-1, 1), as the efficient-kan MNIST example's."""
    return lambda: np.random.default_rng(seed).uniform(-1, 1, (batch, feats)).astype(np.float32)


# --- vgsatorras/egnn models/egnn_clean/egnn_clean.py (E_GCL, EGNN, unsorted_segment_sum,
# get_edges_batch), nodes of the batch flattened as its QM9 loop does ---


def unsorted_segment_sum(data, segment_ids, num_segments):
    result = data.new_full((num_segments, data.size(1)), 0)
    segment_ids = segment_ids.unsqueeze(-1).expand(-1, data.size(1))
    result.scatter_add_(0, segment_ids, data)
    return result


def unsorted_segment_mean(data, segment_ids, num_segments):
    result = data.new_full((num_segments, data.size(1)), 0)
    count = data.new_full((num_segments, data.size(1)), 0)
    segment_ids = segment_ids.unsqueeze(-1).expand(-1, data.size(1))
    result.scatter_add_(0, segment_ids, data)
    count.scatter_add_(0, segment_ids, torch.ones_like(data))
    return result / count.clamp(min=1)


class E_GCL(nn.Module):
    def __init__(self, input_nf, output_nf, hidden_nf, act_fn=nn.SiLU()):  # noqa: B008 (the reference signature)
        super().__init__()
        self.edge_mlp = nn.Sequential(nn.Linear(input_nf * 2 + 1, hidden_nf), act_fn,
                                      nn.Linear(hidden_nf, hidden_nf), act_fn)
        self.node_mlp = nn.Sequential(nn.Linear(hidden_nf + input_nf, hidden_nf), act_fn,
                                      nn.Linear(hidden_nf, output_nf))
        layer = nn.Linear(hidden_nf, 1, bias=False)
        torch.nn.init.xavier_uniform_(layer.weight, gain=0.001)
        self.coord_mlp = nn.Sequential(nn.Linear(hidden_nf, hidden_nf), act_fn, layer)

    def edge_model(self, source, target, radial):
        return self.edge_mlp(torch.cat([source, target, radial], dim=1))

    def node_model(self, x, edge_index, edge_attr):
        row, _ = edge_index
        agg = unsorted_segment_sum(edge_attr, row, num_segments=x.size(0))
        agg = torch.cat([x, agg], dim=1)
        return x + self.node_mlp(agg)

    def coord_model(self, coord, edge_index, coord_diff, edge_feat):
        row, _ = edge_index
        trans = coord_diff * self.coord_mlp(edge_feat)
        return coord + unsorted_segment_mean(trans, row, num_segments=coord.size(0))

    def coord2radial(self, edge_index, coord):
        row, col = edge_index
        coord_diff = coord[row] - coord[col]
        radial = torch.sum(coord_diff ** 2, 1).unsqueeze(1)
        return radial, coord_diff

    def forward(self, h, edge_index, coord):
        row, col = edge_index
        radial, coord_diff = self.coord2radial(edge_index, coord)
        edge_feat = self.edge_model(h[row], h[col], radial)
        coord = self.coord_model(coord, edge_index, coord_diff, edge_feat)
        h = self.node_model(h, edge_index, edge_feat)
        return h, coord


class EGNNRegressor(nn.Module):
    """EGNN(in_node_nf, hidden_nf, out_node_nf, n_layers=4) on fully connected graphs of
    n_nodes, then a sum over each graph's nodes into a property MLP (the QM9 model's readout)."""

    def __init__(self, in_node_nf=5, hidden_nf=32, n_layers=3, n_nodes=6):
        super().__init__()
        self.embedding_in = nn.Linear(in_node_nf, hidden_nf)
        self.gcls = nn.ModuleList([E_GCL(hidden_nf, hidden_nf, hidden_nf)
                                   for _ in range(n_layers)])
        self.graph_dec = nn.Sequential(nn.Linear(hidden_nf, hidden_nf), nn.SiLU(),
                                       nn.Linear(hidden_nf, 1))
        rows = [i for i in range(n_nodes) for j in range(n_nodes) if i != j]
        cols = [j for i in range(n_nodes) for j in range(n_nodes) if i != j]
        self.register_buffer("rows", torch.tensor(rows))
        self.register_buffer("cols", torch.tensor(cols))
        self.n_nodes = n_nodes

    def get_edges_batch(self, batch_size):
        offsets = torch.arange(batch_size, device=self.rows.device)[:, None] * self.n_nodes
        return [(self.rows[None] + offsets).reshape(-1), (self.cols[None] + offsets).reshape(-1)]

    def forward(self, h, x):
        batch_size, n_nodes, _ = h.shape
        edges = self.get_edges_batch(batch_size)
        h = h.view(batch_size * n_nodes, -1)
        x = x.view(batch_size * n_nodes, -1)
        h = self.embedding_in(h)
        for gcl in self.gcls:
            h, x = gcl(h, edges, x)
        h = h.view(-1, n_nodes, h.size(1)).sum(dim=1)
        return self.graph_dec(h).squeeze(1)


def egnn():
    torch.manual_seed(0)
    return EGNNRegressor().eval()


def _molecules(batch=8, nodes=6, feats=5, seed=0):
    """One-hot atom types (5 kinds) and 3-D coordinates about 1.5 apart."""
    def make():
        rng = np.random.default_rng(seed)
        h = np.eye(feats, dtype=np.float32)[rng.integers(0, feats, (batch, nodes))]
        x = (rng.standard_normal((batch, nodes, 3)) * 1.5).astype(np.float32)
        return {"h": h, "x": x}
    return make


P = (5, 17, 42, 8, 63, 2)

NETWORKS = (
    Network("funnel", "transformers' Funnel Transformer layout (pool_tensor: [CLS] kept apart "
            "by cat, avg_pool2d (2, 1) ceil_mode of the queries only at the first layer of "
            "blocks 2 and 3; upsample by repeat_interleave, F.pad, crop, cat [CLS], plus the "
            "first block's output; post-LN einsum attention), per-token logits",
            "funnel", ids(100, 4, 16)),
    Network("perceiver_io", "lucidrains' PerceiverIO / PerceiverLM (16 latents repeat'ed over "
            "the batch cross-attend to the embedded tokens, latent self-attention, the token "
            "embeddings as output queries cross-attending to the latents; einops (b h) heads, "
            "GEGLU), per-token logits", "perceiver_io", ids(100, 4, 32)),
    Network("nystromformer", "mlpen's Nystromformer (Q, K scaled by d^-1/4 and a ones mask, "
            "landmarks by reshape + mean over 8-token segments, three softmax kernels, "
            "iterative_inv: 6 Newton-Schulz steps from 1 / max(column sums) * K^T, a (5, 1) "
            "depthwise Conv2d skip on V), mean-pooled classifier", "nystromformer",
            ids(100, 4, 32)),
    Network("nystromformer_lra", "the same Nystromformer with mlpen's other iterative_inv init "
            "(1 / torch.max(K.sum(-2), dim=-1).values per sample and head, as its LRA code "
            "writes it)", "nystromformer_lra", ids(100, 4, 32)),
    Network("fnet", "transformers' FNet (FNetBasicFourierTransform: torch.fft.fftn over dims "
            "(1, 2), .real; post-LN mixing, gelu_new FF, token-type zeros embedding, "
            "projection, tanh pooler on [CLS])", "fnet", ids(100, 4, 16)),
    Network("sigmoid_attn", "Apple's sigmoid attention (sigmoid(q k^T / sqrt(d) + b) with "
            "b = -log(64), -inf causal fill before the sigmoid, no normalisation; RoPE by "
            "rotate_half, fused wqkv split, SwiGLU)", "sigmoid_attn", ids(100, 8, 32),
            prompt=P, tokens=8),
    Network("primer", "Primer-EZ (So et al.: width-3 causal depthwise Conv1d after each of the "
            "q / k / v projections by transpose + crop, SDPA is_causal, squared ReLU MLP by "
            "F.relu(x) ** 2, tied head)", "primer", ids(100, 8, 32), prompt=P, tokens=8),
    Network("flash_gau", "lucidrains' FLASH-pytorch GAU (SiLU to_hidden chunk into v / gate, "
            "shared qk by OffsetScale einsum + unbind, T5RelativePositionBias buckets built in "
            "forward, relu(sim / n) ** 2 attention, triu masked_fill 0, out * gate, residual)",
            "flash_gau", ids(100, 8, 32), prompt=P, tokens=8),
    Network("cope", "Golovneva et al.'s CoPE (sigmoid gates of the masked logits, positions by "
            "flip / cumsum / flip, clamp to 7, q @ pos_emb gathered at ceil and floor, linear "
            "interpolation; mask.log() causal mask; heads folded into a bmm batch)", "cope",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("fox", "the Forgetting Transformer (zhixuan-lin: per-head forget gate logits by "
            "a Linear, F.logsigmoid, cumsum over time, decay bias L_i - L_j added to the "
            "scores, einops heads, tril masked_fill -inf; SwiGLU)", "fox", ids(100, 8, 32),
            prompt=P, tokens=8),
    Network("tome_vit", "facebookresearch's ToMe on a ViT (bipartite_soft_matching under "
            "no_grad: a / b tokens by ::2 / 1::2, cosine scores, max, argsort, gather; "
            "merge_wavg by scatter_reduce sum of size-weighted tokens; proportional attention "
            "+ size.log(); r = 8 per block)", "tome_vit", floats(4, 3, 32, 32)),
    Network("soft_moe", "lucidrains' soft-moe-pytorch SoftMoE in the second half of a ViT "
            "(RMSNorm'd tokens and slot embeddings, einsum logits b n e s, dispatch softmax "
            "over tokens, combine softmax over all slots, one GELU FFN per expert on its "
            "slots)", "soft_moe", floats(4, 3, 32, 32)),
    Network("cvt", "microsoft's CvT (ConvEmbed conv + LayerNorm by rearrange; conv projections "
            "depthwise 3x3 + BatchNorm2d for q, stride 2 for k / v; class token torch.split "
            "off and cat'ed back; einsum bhlk,bhtk attention), class-token head", "cvt",
            floats(4, 3, 32, 32)),
    Network("patchtst", "yuqinie98's PatchTST (RevIN norm / denorm, ReplicationPad1d end "
            "padding, unfold patches of 8 by 4, channel independence by reshape, BatchNorm1d "
            "between Transposes, residual attention scores handed to the next layer, "
            "Flatten_Head)", "patchtst", _series()),
    Network("kan", "Blealtan's efficient-kan (KANLinear: SiLU base branch plus B-spline bases "
            "by Cox-de Boor recursion in forward from (x >= grid) & (x < grid) masks, "
            "spline weights scaled by spline_scaler) 16-32-10", "kan", _unit_box()),
    Network("egnn", "vgsatorras' EGNN forward(h, x) (E_GCL: coord[row] - coord[col], radial, "
            "edge MLP on cat, coordinate update by unsorted_segment_mean, node update by "
            "scatter_add_; fully connected edges with per-graph offsets), sum readout",
            "egnn", _molecules()),
)

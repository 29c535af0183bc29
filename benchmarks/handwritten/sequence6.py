"""Language / sequence / time-series / tabular models written by hand, the sixth round, each the
way a well-known codebase writes it: flash-linear-attention's naive reference code for Gated
Linear Attention (the step loop writing ``o[:, :, i]``) and DeltaNet (the delta rule's state
correction ``v - (S * k).sum(-2)``), Google DeepMind's RecurrentGemma / Griffin (RG-LRU with
``rnn_scan`` as a loop, a temporal Conv1D as shifted windows, local multi-query attention,
logit soft-capping), NX-AI's xLSTM sLSTM (exponential gates with a stabilizer state, block-
diagonal recurrent weights), lucidrains' minGRU (Heinsen's log-space parallel scan by cumsum and
logcumsumexp), HazyResearch's Based (a Taylor feature map into causal linear attention by
cumsum, sliding-window attention, short convolutions), juho-lee's Set Transformer (heads
concatenated along the batch, ISAB / PMA), torchtsmixer's TSMixer, a TiDE encoder-decoder of
two inputs, DeepCTR-torch's DCN-v2 cross network and DIN attention over a behaviour sequence,
pmixer's SASRec, Medusa heads on a small GPT, a mixture-of-depths router and TabNet's
sparsemax. Small, random weights."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.handwritten import Network, floats, ids


def _gain(m, g):
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.mul_(g)
    return m.eval()


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class SwiGLU(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class PreNormLM(nn.Module):
    """fla's ForCausalLM layout: embeddings, blocks of (norm, mixer, norm, SwiGLU), norm,
    lm_head."""

    def __init__(self, mixer, vocab=100, d=32, n=2):
        super().__init__()
        self.embeddings = nn.Embedding(vocab, d)
        self.attn_norms = nn.ModuleList(RMSNorm(d) for _ in range(n))
        self.mixers = nn.ModuleList(mixer(d) for _ in range(n))
        self.mlp_norms = nn.ModuleList(RMSNorm(d) for _ in range(n))
        self.mlps = nn.ModuleList(SwiGLU(d, 2 * d) for _ in range(n))
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.embeddings(input_ids)
        for an, mixer, mn, mlp in zip(self.attn_norms, self.mixers, self.mlp_norms, self.mlps,
                                      strict=True):
            x = x + mixer(an(x))
            x = x + mlp(mn(x))
        return self.lm_head(self.norm(x))


# --- flash-linear-attention's GLA (fla/layers/gla.py, fla/ops/gla/naive.py) ------------------


def naive_recurrent_gla(q, k, v, gk):
    """fla/ops/gla/naive.py: per head a (K, V) state decayed by exp(gk) each step."""
    dtype = q.dtype
    q, k, v, gk = (t.transpose(1, 2).float() for t in (q, k, v, gk))
    B, H, T, K = q.shape
    V = v.shape[-1]
    o = torch.zeros_like(v)
    scale = K ** -0.5
    h = q.new_zeros(B, H, K, V, dtype=torch.float32)
    for i in range(T):
        q_i = q[:, :, i] * scale
        k_i = k[:, :, i]
        v_i = v[:, :, i]
        gk_i = gk[:, :, i].exp()
        kv_i = k_i[..., None] * v_i[..., None, :]
        h = h * gk_i[..., None] + kv_i
        o[:, :, i] = (q_i[..., None] * h).sum(-2)
    return o.transpose(1, 2).to(dtype)


def naive_chunk_gla(q, k, v, gk, chunk_size=8):
    """The chunked form (fla's tests' reference): within a chunk the cumulative log decay,
    between chunks the (K, V) state."""
    q, k, v, gk = (t.transpose(1, 2).float() for t in (q, k, v, gk))
    B, H, T, K = q.shape
    V = v.shape[-1]
    C = chunk_size
    q, k, v, gk = (t.reshape(B, H, T // C, C, t.shape[-1]) for t in (q, k, v, gk))
    q = q * K ** -0.5
    gk = gk.cumsum(-2)
    mask = torch.triu(torch.ones(C, C, dtype=torch.bool), diagonal=1)
    S = q.new_zeros(B, H, K, V)
    o = torch.zeros_like(v)
    for i in range(T // C):
        q_i, k_i, v_i, gk_i = q[:, :, i], k[:, :, i], v[:, :, i], gk[:, :, i]
        o_inter = (q_i * gk_i.exp()) @ S
        A = (q_i[..., :, None, :] * k_i[..., None, :, :]
             * (gk_i[..., :, None, :] - gk_i[..., None, :, :]).exp()).sum(-1)
        A = A.masked_fill(mask, 0)
        o[:, :, i] = o_inter + A @ v_i
        S = (S * gk_i[:, :, -1, :, None].exp()
             + (k_i * (gk_i[:, :, -1:] - gk_i).exp()).transpose(-1, -2) @ v_i)
    return o.reshape(B, H, T, V).transpose(1, 2)


class GatedLinearAttention(nn.Module):
    def __init__(self, d, num_heads=2, expand_k=0.5, expand_v=1.0, gate_low_rank_dim=8,
                 gate_logit_normalizer=16, chunked=False):
        super().__init__()
        self.num_heads, self.chunked = num_heads, chunked
        self.key_dim, self.value_dim = int(d * expand_k), int(d * expand_v)
        self.q_proj = nn.Linear(d, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d, self.value_dim, bias=False)
        self.g_proj = nn.Linear(d, self.value_dim, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(d, gate_low_rank_dim, bias=False),
                                     nn.Linear(gate_low_rank_dim, self.key_dim, bias=True))
        self.o_proj = nn.Linear(self.value_dim, d, bias=False)
        self.g_norm = RMSNorm(self.value_dim // num_heads, eps=1e-5)
        self.gate_logit_normalizer = gate_logit_normalizer

    def forward(self, hidden_states):
        B, T, _ = hidden_states.shape
        H = self.num_heads
        q = self.q_proj(hidden_states).view(B, T, H, -1)
        k = self.k_proj(hidden_states).view(B, T, H, -1)
        v = self.v_proj(hidden_states).view(B, T, H, -1)
        gk = self.gk_proj(hidden_states).view(B, T, H, -1)
        gk = F.logsigmoid(gk) / self.gate_logit_normalizer
        o = (naive_chunk_gla if self.chunked else naive_recurrent_gla)(q, k, v, gk)
        g = self.g_proj(hidden_states).view(B, T, H, -1)
        o = self.g_norm(o) * F.silu(g)  # FusedRMSNormGated
        return self.o_proj(o.reshape(B, T, -1))


def gla():
    torch.manual_seed(0)
    return _gain(PreNormLM(GatedLinearAttention), 1.5)


def gla_chunk():
    torch.manual_seed(0)
    return _gain(PreNormLM(lambda d: GatedLinearAttention(d, chunked=True)), 1.5)


# --- flash-linear-attention's DeltaNet (fla/layers/delta_net.py, ops/delta_rule/naive.py) -----


def delta_rule_recurrence(q, k, v, beta):
    b, h, l, d_k = q.shape
    d_v = v.shape[-1]
    o = torch.zeros_like(v)
    S = torch.zeros(b, h, d_k, d_v).to(v)
    q = q * (d_k ** -0.5)
    if beta.ndim < v.ndim:
        beta = beta[..., None]
    for i in range(l):
        _k = k[:, :, i]
        _q = q[:, :, i]
        _v = v[:, :, i].clone()
        beta_i = beta[:, :, i]
        _v = _v - (S.clone() * _k[..., None]).sum(-2)
        _v = _v * beta_i
        S = S.clone() + _k.unsqueeze(-1) * _v.unsqueeze(-2)
        o[:, :, i] = torch.einsum("bhd,bhdm->bhm", _q, S)
    return o, S


class ShortConvolution(nn.Conv1d):
    """fla/modules/convolution.py: a causal depthwise conv over (B, T, D) with SiLU."""

    def __init__(self, hidden_size, kernel_size=4):
        super().__init__(hidden_size, hidden_size, kernel_size, groups=hidden_size,
                         padding=kernel_size - 1, bias=False)

    def forward(self, x):
        T = x.shape[1]
        y = super().forward(x.transpose(1, 2))[..., :T]
        return F.silu(y).transpose(1, 2)


class DeltaNetLayer(nn.Module):
    def __init__(self, d, num_heads=2):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.b_proj = nn.Linear(d, num_heads, bias=False)
        self.q_conv1d = ShortConvolution(d)
        self.k_conv1d = ShortConvolution(d)
        self.v_conv1d = ShortConvolution(d)
        self.o_norm = RMSNorm(d // num_heads, eps=1e-5)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, hidden_states):
        B, T, _ = hidden_states.shape
        H = self.num_heads
        q = self.q_conv1d(self.q_proj(hidden_states))
        k = self.k_conv1d(self.k_proj(hidden_states))
        v = self.v_conv1d(self.v_proj(hidden_states))
        q, k, v = (t.view(B, T, H, -1).transpose(1, 2) for t in (q, k, v))
        q, k = F.normalize(q, p=2, dim=-1), F.normalize(k, p=2, dim=-1)  # qk_norm='l2'
        beta = self.b_proj(hidden_states).sigmoid().transpose(1, 2)  # (B, H, T)
        o, _ = delta_rule_recurrence(q, k, v, beta)
        o = self.o_norm(o.transpose(1, 2))
        return self.o_proj(o.reshape(B, T, -1))


def deltanet():
    torch.manual_seed(0)
    return _gain(PreNormLM(DeltaNetLayer), 1.5)


# --- Google DeepMind's RecurrentGemma / Griffin (recurrentgemma/torch/layers.py, modules.py) --


def rnn_scan(x, a, h0=None):
    """recurrentgemma/torch/layers.py rnn_scan, the loop branch."""
    h_t = h0
    y = torch.zeros_like(x)
    if h_t is None:
        h_t = torch.zeros(x[:, 0].shape, dtype=torch.float32)
    for t in range(x.shape[1]):
        h_t = a[:, t].type(torch.float32) * h_t + x[:, t].type(torch.float32)
        h_t = h_t.type(x.dtype)
        y[:, t] = h_t
    return y, h_t


class BlockDiagonalLinear(nn.Module):
    def __init__(self, width, num_blocks):
        super().__init__()
        self.num_blocks, self.block_width = num_blocks, width // num_blocks
        self.w = nn.Parameter(torch.randn(num_blocks, self.block_width, self.block_width)
                              / math.sqrt(self.block_width))
        self.b = nn.Parameter(torch.zeros(num_blocks, self.block_width))

    def forward(self, x):
        x = x.reshape(*x.shape[:-1], self.num_blocks, self.block_width)  # einops "... (h i)"
        y = torch.einsum("... h i, h i j -> ... h j", x, self.w) + self.b
        return y.reshape(*y.shape[:-2], -1)


class RGLRU(nn.Module):
    def __init__(self, width, num_heads):
        super().__init__()
        self.a_param = nn.Parameter(torch.log(torch.expm1(  # rnn_param_init(0.9, 0.999)
            -torch.log(torch.empty(width).uniform_(0.9 ** 2, 0.999 ** 2)) / 2 / 8)))
        self.input_gate = BlockDiagonalLinear(width, num_heads)
        self.a_gate = BlockDiagonalLinear(width, num_heads)

    def forward(self, x, segment_pos):
        reset = (segment_pos == 0)[:, :, None]
        gate_x = torch.sigmoid(self.input_gate(x))
        gate_a = torch.sigmoid(self.a_gate(x))
        log_a = -8.0 * gate_a * F.softplus(self.a_param)
        a = torch.exp(log_a)
        a_square = torch.exp(2 * log_a)
        gated_x = x * gate_x
        multiplier = torch.sqrt(1 - a_square)  # SqrtBoundDerivative in the forward
        multiplier = reset + ~reset * multiplier
        normalized_x = gated_x * multiplier.type(x.dtype)
        y, _ = rnn_scan(normalized_x, a)
        return y


class Conv1D(nn.Module):
    """recurrentgemma's Conv1D: the causal temporal conv written as shifted windows times
    the taps of w (temporal_width, width)."""

    def __init__(self, width, temporal_width=4):
        super().__init__()
        self.temporal_width = temporal_width
        self.w = nn.Parameter(torch.randn(temporal_width, width) / math.sqrt(temporal_width))
        self.b = nn.Parameter(torch.zeros(width))

    def forward(self, x):
        T = x.shape[1]
        conv_out = torch.zeros_like(x)
        for shift in range(self.temporal_width):
            x_window = x[:, :T - shift]
            x_window = F.pad(x_window, (0, 0, shift, 0))  # pad_time
            conv_out = conv_out + x_window * self.w[self.temporal_width - shift - 1]
        return conv_out + self.b


class RecurrentBlock(nn.Module):
    def __init__(self, width, num_heads, lru_width=None):
        super().__init__()
        lru_width = lru_width or width
        self.linear_y = nn.Linear(width, lru_width)
        self.linear_x = nn.Linear(width, lru_width)
        self.linear_out = nn.Linear(lru_width, width)
        self.conv_1d = Conv1D(lru_width)
        self.rg_lru = RGLRU(lru_width, num_heads)

    def forward(self, x, segment_pos):
        y = F.gelu(self.linear_y(x), approximate="tanh")
        x = self.linear_x(x)
        x = self.conv_1d(x)
        x = self.rg_lru(x, segment_pos)
        return self.linear_out(x * y)


def apply_rope(inputs, positions, max_wavelength=10_000):
    """recurrentgemma's apply_rope: rotary on the first half of each head's dims."""
    x_rope, x = torch.chunk(inputs, 2, dim=-1)
    positions = positions.unsqueeze(-1).unsqueeze(-1)  # (B, T, 1, 1)
    freq_exponents = 2 * torch.arange(x_rope.shape[-1] // 2) / x_rope.shape[-1]
    timescale = max_wavelength ** freq_exponents
    inv_frequencies = 1.0 / timescale
    sinusoid_imp = positions * inv_frequencies
    sin, cos = torch.sin(sinusoid_imp), torch.cos(sinusoid_imp)
    first_half, second_half = torch.chunk(x_rope, 2, dim=-1)
    first_part = first_half * cos - second_half * sin
    second_part = second_half * cos + first_half * sin
    return torch.cat([first_part, second_part, x], dim=-1)


class LocalAttentionBlock(nn.Module):
    def __init__(self, width, num_heads, window_size):
        super().__init__()
        self.num_heads, self.head_dim, self.window_size = num_heads, width // num_heads, \
            window_size
        self.proj_q = nn.Linear(width, width, bias=False)
        self.proj_k = nn.Linear(width, self.head_dim, bias=False)  # multi-query
        self.proj_v = nn.Linear(width, self.head_dim, bias=False)
        self.proj_final = nn.Linear(width, width)

    def forward(self, x, segment_pos):
        B, T, _ = x.shape
        queries = self.proj_q(x).view(B, T, self.num_heads, self.head_dim)
        keys = self.proj_k(x).view(B, T, 1, self.head_dim)
        values = self.proj_v(x).view(B, T, 1, self.head_dim)
        queries = apply_rope(queries, segment_pos)
        keys = apply_rope(keys, segment_pos)
        logits = torch.einsum("btnh,bsnh->bnts", queries, keys) * self.head_dim ** -0.5
        t = torch.arange(T)
        mask = (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - self.window_size)
        masked_logits = torch.where(mask, logits, -2.3819763e38)
        probs = F.softmax(masked_logits, dim=-1).type(x.dtype)
        encoded = torch.einsum("bnts,bsnh->btnh", probs, values)
        return self.proj_final(encoded.reshape(B, T, -1))


class GriffinRMSNorm(nn.Module):
    def __init__(self, width, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.zeros(width))

    def forward(self, x):
        var = torch.mean(torch.square(x), dim=-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps) * (self.scale + 1)


class MLPBlock(nn.Module):
    def __init__(self, width, expanded_width):
        super().__init__()
        self.ffw_up = nn.ModuleList([nn.Linear(width, expanded_width) for _ in range(2)])
        self.ffw_down = nn.Linear(expanded_width, width)

    def forward(self, x):
        gate_value = F.gelu(self.ffw_up[0](x), approximate="tanh")
        return self.ffw_down(gate_value * self.ffw_up[1](x))


class ResidualBlock(nn.Module):
    def __init__(self, width, num_heads, kind, window_size):
        super().__init__()
        self.temporal_pre_norm = GriffinRMSNorm(width)
        self.temporal_block = (RecurrentBlock(width, num_heads) if kind == "recurrent"
                               else LocalAttentionBlock(width, num_heads, window_size))
        self.channel_pre_norm = GriffinRMSNorm(width)
        self.mlp_block = MLPBlock(width, 3 * width)

    def forward(self, x, segment_pos):
        raw_x = x
        x = self.temporal_block(self.temporal_pre_norm(raw_x), segment_pos)
        residual = x + raw_x
        return self.mlp_block(self.channel_pre_norm(residual)) + residual


class Griffin(nn.Module):
    def __init__(self, vocab=100, width=32, num_heads=2, pattern=("recurrent", "recurrent",
                                                                     "attention"),
                 window_size=8, logits_soft_cap=30.0):
        super().__init__()
        self.width, self.logits_soft_cap = width, logits_soft_cap
        self.embedder = nn.Parameter(torch.randn(vocab, width) / math.sqrt(width))
        self.blocks = nn.ModuleList(ResidualBlock(width, num_heads, kind, window_size)
                                    for kind in pattern)
        self.final_norm = GriffinRMSNorm(width)

    def forward(self, tokens):
        B, T = tokens.shape
        segment_pos = torch.arange(T).unsqueeze(0).expand(B, T)
        x = self.embedder[tokens] * math.sqrt(self.width)  # Embedder.encode
        for block in self.blocks:
            x = block(x, segment_pos)
        x = self.final_norm(x)
        logits = x @ self.embedder.T  # Embedder.decode
        c = self.logits_soft_cap
        return torch.tanh(logits / c) * c


def griffin():
    torch.manual_seed(0)
    return _gain(Griffin(), 1.5)


def hawk():
    torch.manual_seed(0)
    return _gain(Griffin(pattern=("recurrent", "recurrent")), 1.5)


# --- NX-AI's xLSTM sLSTM (xlstm/blocks/slstm/src/vanilla/slstm.py, slstm/layer.py) ---------


def slstm_forward_pointwise(Wx, Ry, b, states, first):
    """The vanilla backend's pointwise step: exponential input / forget gates stabilized by
    the state m (log space), normalizer state n. xLSTM branches on ``torch.all(n == 0.0)``
    (m = iraw at the first step from zero states); a data-dependent branch does not export,
    so the step index says it (n is 0 exactly at the first step)."""
    raw = Wx + Ry + b
    _y, c, n, m = torch.unbind(states.view(4, states.shape[1], -1), dim=0)
    iraw, fraw, zraw, oraw = torch.unbind(raw.view(raw.shape[0], 4, -1), dim=1)
    logfplusm = m + F.logsigmoid(fraw)
    mnew = iraw if first else torch.max(iraw, logfplusm)
    ogate = torch.sigmoid(oraw)
    igate = torch.exp(iraw - mnew)
    fgate = torch.exp(logfplusm - mnew)
    cnew = fgate * c + igate * torch.tanh(zraw)
    nnew = fgate * n + igate
    ynew = ogate * cnew / nnew
    return torch.stack((ynew, cnew, nnew, mnew), dim=0)


class SLSTMCell(nn.Module):
    def __init__(self, d, num_heads):
        super().__init__()
        self.d, self.num_heads, self.head_dim = d, num_heads, d // num_heads
        # recurrent kernel: per head (DH, 4 * DH), block-diagonal over the heads
        self.recurrent_kernel = nn.Parameter(
            torch.randn(num_heads, self.head_dim, 4 * self.head_dim) / math.sqrt(self.head_dim))
        self.bias = nn.Parameter(torch.zeros(4 * d))
        with torch.no_grad():  # forget-gate bias init: powerlaw_blockdependent ~ (3, 6)
            self.bias[d:2 * d] = torch.linspace(3.0, 6.0, d)

    def forward(self, Wx):
        """Wx (B, T, 4 * d) gate pre-activations ordered (i, f, z, o)."""
        B, T, _ = Wx.shape
        states = torch.zeros(4, B, self.d)  # y, c, n, m
        ys = []
        for t in range(T):
            y = states[0].view(B, self.num_heads, self.head_dim)
            Ry = torch.einsum("bhd,hdk->bhk", y, self.recurrent_kernel)
            Ry = Ry.view(B, self.num_heads, 4, self.head_dim).transpose(1, 2).reshape(B, -1)
            states = slstm_forward_pointwise(Wx[:, t], Ry, self.bias, states, t == 0)
            ys.append(states[0])
        return torch.stack(ys, dim=1)


class SLSTMLayer(nn.Module):
    """slstm/layer.py: causal conv feeding the i / f gates, headwise gate projections, the cell,
    a per-head GroupNorm; the block's gated FFN (proj factor 4/3, GELU)."""

    def __init__(self, d, num_heads=4, conv_kernel=4):
        super().__init__()
        self.num_heads = num_heads
        self.conv1d = nn.Conv1d(d, d, conv_kernel, groups=d, padding=conv_kernel - 1)
        self.fgate = nn.Linear(d, d, bias=False)
        self.igate = nn.Linear(d, d, bias=False)
        self.zgate = nn.Linear(d, d, bias=False)
        self.ogate = nn.Linear(d, d, bias=False)
        self.slstm_cell = SLSTMCell(d, num_heads)
        self.group_norm = nn.GroupNorm(num_heads, d)

    def forward(self, x):
        B, T, d = x.shape
        x_conv = F.silu(self.conv1d(x.transpose(1, 2))[..., :T].transpose(1, 2))
        i, f = self.igate(x_conv), self.fgate(x_conv)
        z, o = self.zgate(x), self.ogate(x)
        y = self.slstm_cell(torch.cat([i, f, z, o], dim=-1))
        y = self.group_norm(y.reshape(B * T, d)).view(B, T, d)
        return y


class GatedFeedForward(nn.Module):
    def __init__(self, d, proj_factor=4 / 3):
        super().__init__()
        up = int(math.ceil(proj_factor * d / 8) * 8)
        self.proj_up = nn.Linear(d, 2 * up, bias=False)
        self.proj_down = nn.Linear(up, d, bias=False)

    def forward(self, x):
        gate_preact, up_proj = self.proj_up(x).chunk(2, dim=-1)
        return self.proj_down(F.gelu(gate_preact) * up_proj)


class SLSTMLM(nn.Module):
    def __init__(self, vocab=100, d=32, n=2):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d)
        self.xlstm_norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(n))
        self.xlstms = nn.ModuleList(SLSTMLayer(d) for _ in range(n))
        self.ffn_norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(n))
        self.ffns = nn.ModuleList(GatedFeedForward(d) for _ in range(n))
        self.post_blocks_norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        x = self.token_embedding(idx)
        for xn, xl, fn, ff in zip(self.xlstm_norms, self.xlstms, self.ffn_norms, self.ffns,
                                  strict=True):
            x = x + xl(xn(x))
            x = x + ff(fn(x))
        return self.lm_head(self.post_blocks_norm(x))


def slstm():
    torch.manual_seed(0)
    return _gain(SLSTMLM(), 1.5)


# --- lucidrains' minGRU-pytorch (minGRU_pytorch/minGRU.py, minGRULM.py) ----------------------


def heinsen_associative_scan_log(log_coeffs, log_values):
    a_star = log_coeffs.cumsum(dim=1)
    log_h0_plus_b_star = (log_values - a_star).logcumsumexp(dim=1)
    log_h = a_star + log_h0_plus_b_star
    return log_h.exp()


def log_g(x):
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


class MinGRU(nn.Module):
    def __init__(self, dim, expansion_factor=1.5):
        super().__init__()
        dim_inner = int(dim * expansion_factor)
        self.to_hidden_and_gate = nn.Linear(dim, dim_inner * 2, bias=False)
        self.to_out = nn.Linear(dim_inner, dim, bias=False)

    def forward(self, x):
        hidden, gate = self.to_hidden_and_gate(x).chunk(2, dim=-1)
        log_coeffs = -F.softplus(gate)
        log_z = -F.softplus(-gate)
        log_tilde_h = log_g(hidden)
        log_values = log_z + log_tilde_h
        out = heinsen_associative_scan_log(log_coeffs, log_values)
        return self.to_out(out)


class CausalDepthWiseConv1d(nn.Module):
    def __init__(self, dim, kernel_size):
        super().__init__()
        self.kernel_size = kernel_size
        self.net = nn.Sequential(nn.Conv1d(dim, dim, kernel_size=kernel_size, groups=dim),
                                 nn.Conv1d(dim, dim, kernel_size=1))

    def forward(self, x):
        x = x.transpose(1, 2)  # b n d -> b d n
        x = F.pad(x, (self.kernel_size - 1, 0), value=0.0)
        x = self.net(x)
        return x.transpose(1, 2)


class MinGRULM(nn.Module):
    def __init__(self, num_tokens=100, dim=32, depth=2, ff_mult=4, conv_kernel_size=3):
        super().__init__()
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.layers = nn.ModuleList(nn.ModuleList([
            CausalDepthWiseConv1d(dim, conv_kernel_size), RMSNorm(dim), MinGRU(dim),
            RMSNorm(dim), nn.Sequential(nn.Linear(dim, dim * ff_mult), nn.GELU(),
                                        nn.Linear(dim * ff_mult, dim))])
            for _ in range(depth))
        self.norm = RMSNorm(dim)
        self.to_logits = nn.Linear(dim, num_tokens, bias=False)

    def forward(self, x):
        x = self.token_emb(x)
        for conv, norm, mingru, ff_norm, ff in self.layers:
            x = conv(x) + x
            x = mingru(norm(x)) + x
            x = ff(ff_norm(x)) + x
        return self.to_logits(self.norm(x))


def mingru():
    torch.manual_seed(0)
    return _gain(MinGRULM(), 1.5)


# --- HazyResearch's Based (based/models/mixers/linear_attention.py, mixers/convolution.py) ---


class TaylorExp(nn.Module):
    """based's feature map: 1, x / d^(1/4), (x x^T) / (sqrt(2) sqrt(d))."""

    def __init__(self, input_dim):
        super().__init__()
        self.input_dim = input_dim
        self.r2 = math.sqrt(2)
        self.rd = math.sqrt(input_dim)
        self.rrd = math.sqrt(self.rd)

    def forward(self, x):
        x2 = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(start_dim=-2) / self.r2
        return torch.cat([x[..., :1] ** 0, x / self.rrd, x2 / self.rd], dim=-1)


class LinearAttention(nn.Module):
    def __init__(self, d_model, feature_dim=8, num_key_value_heads=2, num_heads=2, eps=1e-12):
        super().__init__()
        self.feature_dim, self.num_heads, self.num_key_value_heads = feature_dim, num_heads, \
            num_key_value_heads
        self.head_dim = d_model // num_key_value_heads
        self.eps = eps
        self.feature_map = TaylorExp(feature_dim)
        self.proj_q = nn.Linear(d_model, feature_dim * num_heads, bias=False)
        self.proj_k = nn.Linear(d_model, feature_dim * num_heads, bias=False)
        self.proj_v = nn.Linear(d_model, num_key_value_heads * self.head_dim, bias=False)
        self.out_proj = nn.Linear(num_heads * self.head_dim, d_model, bias=False)

    def forward(self, hidden_states):
        b, l, _ = hidden_states.size()
        q = self.proj_q(hidden_states).view(b, l, self.num_heads, self.feature_dim)
        k = self.proj_k(hidden_states).view(b, l, self.num_key_value_heads, self.feature_dim)
        v = self.proj_v(hidden_states).view(b, l, self.num_key_value_heads, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = self.feature_map(q), self.feature_map(k)
        q, k, v = q.unsqueeze(-2), k.unsqueeze(-2), v.unsqueeze(-1)
        # parallel_forward, causal
        y = ((q * (k * v).cumsum(dim=2)).sum(dim=-1)
             / ((q * k.cumsum(dim=2)).sum(dim=-1) + self.eps))
        y = y.transpose(1, 2).reshape(b, l, -1)
        return self.out_proj(y)


class SlidingWindowAttention(nn.Module):
    def __init__(self, d_model, num_heads=2, window_size=8):
        super().__init__()
        self.num_heads, self.window_size = num_heads, window_size
        self.Wqkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x):
        B, T, D = x.shape
        qkv = self.Wqkv(x).view(B, T, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        i = torch.arange(T)
        allowed = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < self.window_size)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class BaseConv(nn.Module):
    """based's BaseConv: a linear branch gating a short causal depthwise conv."""

    def __init__(self, d_model, l_max, kernel_size=3):
        super().__init__()
        self.l_max = l_max
        self.in_linear = nn.Linear(d_model, d_model)
        self.out_linear = nn.Linear(d_model, d_model)
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size - 1,
                              groups=d_model)

    def forward(self, u):
        L = u.shape[1]
        u_conv = self.conv(u.transpose(1, 2))[..., :L].transpose(1, 2)
        return self.out_linear(self.in_linear(u) * u_conv)


class BasedLM(nn.Module):
    def __init__(self, vocab=100, d=32, pattern=("conv", "linear", "swa", "linear")):
        super().__init__()
        self.embeddings = nn.Embedding(vocab, d)
        mk = {"conv": lambda: BaseConv(d, 32), "linear": lambda: LinearAttention(d),
              "swa": lambda: SlidingWindowAttention(d)}
        self.mixers = nn.ModuleList(mk[p]() for p in pattern)
        self.norm1 = nn.ModuleList(nn.LayerNorm(d) for _ in pattern)
        self.norm2 = nn.ModuleList(nn.LayerNorm(d) for _ in pattern)
        self.mlps = nn.ModuleList(SwiGLU(d, 2 * d) for _ in pattern)
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.embeddings(input_ids)
        for mixer, n1, n2, mlp in zip(self.mixers, self.norm1, self.norm2, self.mlps,
                                      strict=True):
            x = x + mixer(n1(x))
            x = x + mlp(n2(x))
        return self.lm_head(self.ln_f(x))


def based():
    torch.manual_seed(0)
    return _gain(BasedLM(), 1.0)


# --- juho-lee's Set Transformer (set_transformer/modules.py, models.py) ---------------------


class MAB(nn.Module):
    def __init__(self, dim_Q, dim_K, dim_V, num_heads, ln=False):
        super().__init__()
        self.dim_V, self.num_heads = dim_V, num_heads
        self.fc_q = nn.Linear(dim_Q, dim_V)
        self.fc_k = nn.Linear(dim_K, dim_V)
        self.fc_v = nn.Linear(dim_K, dim_V)
        if ln:
            self.ln0 = nn.LayerNorm(dim_V)
            self.ln1 = nn.LayerNorm(dim_V)
        self.fc_o = nn.Linear(dim_V, dim_V)

    def forward(self, Q, K):
        Q = self.fc_q(Q)
        K, V = self.fc_k(K), self.fc_v(K)
        dim_split = self.dim_V // self.num_heads
        Q_ = torch.cat(Q.split(dim_split, 2), 0)
        K_ = torch.cat(K.split(dim_split, 2), 0)
        V_ = torch.cat(V.split(dim_split, 2), 0)
        A = torch.softmax(Q_.bmm(K_.transpose(1, 2)) / math.sqrt(self.dim_V), 2)
        O = torch.cat((Q_ + A.bmm(V_)).split(Q.size(0), 0), 2)
        O = O if getattr(self, "ln0", None) is None else self.ln0(O)
        O = O + F.relu(self.fc_o(O))
        O = O if getattr(self, "ln1", None) is None else self.ln1(O)
        return O


class SAB(nn.Module):
    def __init__(self, dim_in, dim_out, num_heads, ln=False):
        super().__init__()
        self.mab = MAB(dim_in, dim_in, dim_out, num_heads, ln=ln)

    def forward(self, X):
        return self.mab(X, X)


class ISAB(nn.Module):
    def __init__(self, dim_in, dim_out, num_heads, num_inds, ln=False):
        super().__init__()
        self.I = nn.Parameter(torch.Tensor(1, num_inds, dim_out))
        nn.init.xavier_uniform_(self.I)
        self.mab0 = MAB(dim_out, dim_in, dim_out, num_heads, ln=ln)
        self.mab1 = MAB(dim_in, dim_out, dim_out, num_heads, ln=ln)

    def forward(self, X):
        H = self.mab0(self.I.repeat(X.size(0), 1, 1), X)
        return self.mab1(X, H)


class PMA(nn.Module):
    def __init__(self, dim, num_heads, num_seeds, ln=False):
        super().__init__()
        self.S = nn.Parameter(torch.Tensor(1, num_seeds, dim))
        nn.init.xavier_uniform_(self.S)
        self.mab = MAB(dim, dim, dim, num_heads, ln=ln)

    def forward(self, X):
        return self.mab(self.S.repeat(X.size(0), 1, 1), X)


class SetTransformer(nn.Module):
    def __init__(self, dim_input=3, num_outputs=2, dim_output=5, num_inds=8, dim_hidden=32,
                 num_heads=4, ln=True):
        super().__init__()
        self.enc = nn.Sequential(ISAB(dim_input, dim_hidden, num_heads, num_inds, ln=ln),
                                 ISAB(dim_hidden, dim_hidden, num_heads, num_inds, ln=ln))
        self.dec = nn.Sequential(PMA(dim_hidden, num_heads, num_outputs, ln=ln),
                                 SAB(dim_hidden, dim_hidden, num_heads, ln=ln),
                                 SAB(dim_hidden, dim_hidden, num_heads, ln=ln),
                                 nn.Linear(dim_hidden, dim_output))

    def forward(self, X):
        return self.dec(self.enc(X))


def set_transformer():
    torch.manual_seed(0)
    return SetTransformer().eval()


# --- torchtsmixer's TSMixer (ditschuk/pytorch-tsmixer, torchtsmixer/layers.py) ----------------


class TimeBatchNorm2d(nn.BatchNorm1d):
    """A BatchNorm over every (time, feature) cell: (B, T, C) viewed as (B, T * C, 1)."""

    def __init__(self, normalized_shape):
        num_time_steps, num_channels = normalized_shape
        super().__init__(num_channels * num_time_steps)
        self.num_time_steps, self.num_channels = num_time_steps, num_channels

    def forward(self, x):
        x = x.reshape(x.shape[0], -1, 1)
        x = super().forward(x)
        return x.reshape(x.shape[0], self.num_time_steps, self.num_channels)


class TimeMixing(nn.Module):
    def __init__(self, sequence_length, input_channels):
        super().__init__()
        self.norm = TimeBatchNorm2d((sequence_length, input_channels))
        self.fc1 = nn.Linear(sequence_length, sequence_length)

    def forward(self, x):
        x_temp = x.permute(0, 2, 1)  # feature_to_time
        x_temp = F.relu(self.fc1(x_temp))
        x_res = x_temp.permute(0, 2, 1)  # time_to_feature
        return self.norm(x + x_res)


class FeatureMixing(nn.Module):
    def __init__(self, sequence_length, input_channels, output_channels, ff_dim):
        super().__init__()
        self.norm_before = TimeBatchNorm2d((sequence_length, input_channels))
        self.norm_after = TimeBatchNorm2d((sequence_length, output_channels))
        self.fc1 = nn.Linear(input_channels, ff_dim)
        self.fc2 = nn.Linear(ff_dim, output_channels)
        self.projection = (nn.Linear(input_channels, output_channels)
                           if input_channels != output_channels else nn.Identity())

    def forward(self, x):
        x_proj = self.projection(x)
        x = self.norm_before(x)
        x = self.fc2(F.relu(self.fc1(x)))
        return self.norm_after(x_proj + x)


class TSMixer(nn.Module):
    def __init__(self, sequence_length=32, prediction_length=8, input_channels=6,
                 output_channels=6, num_blocks=2, ff_dim=32):
        super().__init__()
        self.mixers = nn.ModuleList(nn.ModuleList([
            TimeMixing(sequence_length, input_channels),
            FeatureMixing(sequence_length, input_channels, input_channels, ff_dim)])
            for _ in range(num_blocks))
        self.temporal_projection = nn.Linear(sequence_length, prediction_length)
        self.output = nn.Linear(input_channels, output_channels)

    def forward(self, x_hist):
        # RevIN-free: instance normalisation as google-research's tsmixer does it
        mean = x_hist.mean(dim=1, keepdim=True)
        std = torch.sqrt(x_hist.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
        x = (x_hist - mean) / std
        for time_mixing, feature_mixing in self.mixers:
            x = feature_mixing(time_mixing(x))
        x = self.temporal_projection(x.swapaxes(1, 2)).swapaxes(1, 2)
        return self.output(x) * std + mean


def _randomise_bn(m):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.normal_(0, 0.1, generator=g)
                mod.running_var.uniform_(0.5, 1.5, generator=g)
                mod.weight.uniform_(0.8, 1.2, generator=g)
    return m.eval()


def tsmixer():
    torch.manual_seed(0)
    return _randomise_bn(TSMixer())


# --- TiDE (Das et al. 2023; the PyTorch layout of darts' / neuralforecast's TiDE) -------------


class TideResBlock(nn.Module):
    def __init__(self, input_dim, output_dim, hidden_size, use_layer_norm=True):
        super().__init__()
        self.dense = nn.Sequential(nn.Linear(input_dim, hidden_size), nn.ReLU(),
                                   nn.Linear(hidden_size, output_dim), nn.Dropout(0.1))
        self.skip = nn.Linear(input_dim, output_dim)
        self.layer_norm = nn.LayerNorm(output_dim) if use_layer_norm else None

    def forward(self, x):
        x = self.dense(x) + self.skip(x)
        return self.layer_norm(x) if self.layer_norm is not None else x


class TiDE(nn.Module):
    """Past target (B, L) and dynamic covariates over lookback + horizon (B, L + H, r): the
    covariates projected per step to r~, flattened with the past into a dense encoder and
    decoder, per-step temporal decoding with the step's projected covariates, and a linear
    residual of the lookback."""

    def __init__(self, L=32, H=8, r=3, r_tilde=2, hidden=32, p=4, n_enc=2, n_dec=1):
        super().__init__()
        self.L, self.H, self.p = L, H, p
        self.feature_projection = TideResBlock(r, r_tilde, hidden)
        enc_in = L + (L + H) * r_tilde
        self.encoders = nn.Sequential(TideResBlock(enc_in, hidden, hidden),
                                      *[TideResBlock(hidden, hidden, hidden)
                                        for _ in range(n_enc - 1)])
        self.decoders = nn.Sequential(*[TideResBlock(hidden, hidden, hidden)
                                        for _ in range(n_dec - 1)],
                                      TideResBlock(hidden, p * H, hidden))
        self.temporal_decoder = TideResBlock(p + r_tilde, 1, hidden, use_layer_norm=False)
        self.lookback_skip = nn.Linear(L, H)

    def forward(self, x, covariates):
        B = x.shape[0]
        proj = self.feature_projection(covariates)  # (B, L + H, r~)
        e = torch.cat([x, proj.reshape(B, -1)], dim=-1)
        g = self.decoders(self.encoders(e)).view(B, self.H, self.p)
        d = torch.cat([g, proj[:, self.L:]], dim=-1)
        y = self.temporal_decoder(d).squeeze(-1)
        return y + self.lookback_skip(x)


def tide():
    torch.manual_seed(0)
    return TiDE().eval()


def _tide_inputs():
    f = _series(32, 40, 1)
    r = np.random.default_rng(3)
    return {"x": f()[:, :32, 0], "covariates": r.standard_normal((32, 40, 3)).astype(np.float32)}


def _series(batch, length, channels, seed=0):
    """A smooth multichannel series (sines of random periods + noise), batch first."""
    def make():
        r = np.random.default_rng(seed)
        t = np.arange(length)[None, :, None]
        period = r.uniform(6, 24, (batch, 1, channels))
        phase = r.uniform(0, 2 * np.pi, (batch, 1, channels))
        level = r.normal(0, 2, (batch, 1, channels))
        x = level + np.sin(2 * np.pi * t / period + phase) + 0.1 * r.standard_normal(
            (batch, length, channels))
        return x.astype(np.float32)
    return make


# --- DeepCTR-torch's DCN-v2 (deepctr_torch/models/dcn.py, layers/interaction.py CrossNet) -----


class CrossNet(nn.Module):
    """parameterization='matrix': x_(l+1) = x_0 * (W_l x_l + b_l) + x_l on (B, D, 1)."""

    def __init__(self, in_features, layer_num=3):
        super().__init__()
        self.layer_num = layer_num
        self.kernels = nn.Parameter(torch.Tensor(layer_num, in_features, in_features))
        self.bias = nn.Parameter(torch.Tensor(layer_num, in_features, 1))
        for i in range(layer_num):
            nn.init.xavier_normal_(self.kernels[i])
        nn.init.zeros_(self.bias)

    def forward(self, inputs):
        x_0 = inputs.unsqueeze(2)
        x_l = x_0
        for i in range(self.layer_num):
            xl_w = torch.matmul(self.kernels[i], x_l)  # W * xi  (bs, in_features, 1)
            dot_ = xl_w + self.bias[i]  # W * xi + b
            x_l = x_0 * dot_ + x_l  # x0 · (W * xi + b) + xl
        return torch.squeeze(x_l, dim=2)


class DCNv2(nn.Module):
    def __init__(self, vocab_sizes=(50, 30, 40, 20), embedding_dim=8, n_dense=5,
                 hidden=(64, 32)):
        super().__init__()
        self.embedding_dict = nn.ModuleList(nn.Embedding(v, embedding_dim)
                                            for v in vocab_sizes)
        d = len(vocab_sizes) * embedding_dim + n_dense
        self.crossnet = CrossNet(d)
        layers, prev = [], d
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.BatchNorm1d(h), nn.ReLU()]
            prev = h
        self.dnn = nn.Sequential(*layers)
        self.dnn_linear = nn.Linear(d + prev, 1, bias=False)

    def forward(self, sparse, dense):
        sparse_embedding_list = [emb(sparse[:, i:i + 1]) for i, emb in
                                 enumerate(self.embedding_dict)]
        dnn_input = torch.cat([torch.flatten(torch.cat(sparse_embedding_list, dim=-1),
                                             start_dim=1), dense], dim=-1)
        deep_out = self.dnn(dnn_input)
        cross_out = self.crossnet(dnn_input)
        stack_out = torch.cat((cross_out, deep_out), dim=-1)
        return torch.sigmoid(self.dnn_linear(stack_out))


def dcn_v2():
    torch.manual_seed(0)
    m = DCNv2()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _ctr_inputs():
    r = np.random.default_rng(0)
    sparse = np.stack([r.integers(0, v, 64) for v in (50, 30, 40, 20)], axis=1)
    return {"sparse": sparse.astype(np.int64),
            "dense": r.standard_normal((64, 5)).astype(np.float32)}


# --- DeepCTR-torch's DIN (deepctr_torch/models/din.py, layers/sequence.py, activation.py) ----


class Dice(nn.Module):
    """DeepCTR's Dice on (B, T, H): BatchNorm over the hidden units by transposes."""

    def __init__(self, emb_size, epsilon=1e-8):
        super().__init__()
        self.bn = nn.BatchNorm1d(emb_size, eps=epsilon)
        self.sigmoid = nn.Sigmoid()
        self.alpha = nn.Parameter(torch.zeros((emb_size, 1)))

    def forward(self, x):
        x = torch.transpose(x, 1, 2)
        x_p = self.sigmoid(self.bn(x))
        out = self.alpha * (1 - x_p) * x + x_p * x
        return torch.transpose(out, 1, 2)


class LocalActivationUnit(nn.Module):
    def __init__(self, hidden_units=(32, 16), embedding_dim=8):
        super().__init__()
        layers, prev = [], 4 * embedding_dim
        for h in hidden_units:
            layers += [nn.Linear(prev, h), Dice(h)]
            prev = h
        self.dnn = nn.Sequential(*layers)
        self.dense = nn.Linear(prev, 1)

    def forward(self, query, user_behavior):
        user_behavior_len = user_behavior.size(1)
        queries = query.expand(-1, user_behavior_len, -1)
        attention_input = torch.cat([queries, user_behavior, queries - user_behavior,
                                     queries * user_behavior], dim=-1)
        attention_output = self.dnn(attention_input)
        return self.dense(attention_output)  # (B, T, 1)


class AttentionSequencePoolingLayer(nn.Module):
    def __init__(self, embedding_dim=8):
        super().__init__()
        self.local_att = LocalActivationUnit(embedding_dim=embedding_dim)

    def forward(self, query, keys, keys_masks):
        attention_score = self.local_att(query, keys)  # (B, T, 1)
        outputs = torch.transpose(attention_score, 1, 2)  # (B, 1, T)
        paddings = torch.zeros_like(outputs)
        outputs = torch.where(keys_masks.unsqueeze(1), outputs, paddings)  # weight_normalization
        return torch.matmul(outputs, keys)  # (B, 1, E)


class DIN(nn.Module):
    def __init__(self, n_items=200, n_cats=20, embedding_dim=8, dnn=(64, 32)):
        super().__init__()
        self.item_emb = nn.Embedding(n_items, embedding_dim, padding_idx=0)
        self.cat_emb = nn.Embedding(n_cats, embedding_dim, padding_idx=0)
        self.attention = AttentionSequencePoolingLayer(2 * embedding_dim)
        layers, prev = [], 4 * embedding_dim
        for h in dnn:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        self.dnn = nn.Sequential(*layers)
        self.dnn_linear = nn.Linear(prev, 1, bias=False)

    def forward(self, target_item, hist_item, hist_cat):
        target_cat = target_item % 20  # the item's category by a fixed rule
        query = torch.cat([self.item_emb(target_item), self.cat_emb(target_cat)], dim=-1)
        keys = torch.cat([self.item_emb(hist_item), self.cat_emb(hist_cat)], dim=-1)
        keys_masks = hist_item != 0
        hist = self.attention(query, keys, keys_masks)
        dnn_input = torch.cat([query.squeeze(1), hist.squeeze(1)], dim=-1)
        return torch.sigmoid(self.dnn_linear(self.dnn(dnn_input)))


def din():
    torch.manual_seed(0)
    m = DIN()
    with torch.no_grad():
        m.dnn_linear.weight.mul_(20.0)  # a trained CTR head: click logits spread over (-3, 3)
        for mod in m.modules():
            if isinstance(mod, Dice):
                mod.alpha.uniform_(-0.5, 0.5)
                mod.bn.running_mean.normal_(0, 0.1)
    return m.eval()


def _din_inputs():
    r = np.random.default_rng(0)
    B, T = 32, 12
    lengths = r.integers(3, T + 1, B)
    mask = np.arange(T)[None] < lengths[:, None]
    hist = r.integers(1, 200, (B, T)) * mask
    return {"target_item": r.integers(1, 200, (B, 1)).astype(np.int64),
            "hist_item": hist.astype(np.int64),
            "hist_cat": ((hist % 20) * mask).astype(np.int64)}


# --- pmixer's SASRec.pytorch (model.py) ------------------------------------------------------


class PointWiseFeedForward(nn.Module):
    def __init__(self, hidden_units):
        super().__init__()
        self.conv1 = nn.Conv1d(hidden_units, hidden_units, kernel_size=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv1d(hidden_units, hidden_units, kernel_size=1)

    def forward(self, inputs):
        outputs = self.conv2(self.relu(self.conv1(inputs.transpose(-1, -2))))
        outputs = outputs.transpose(-1, -2)
        outputs += inputs
        return outputs


class SASRec(nn.Module):
    def __init__(self, item_num=300, hidden_units=32, num_blocks=2, num_heads=2, maxlen=16):
        super().__init__()
        self.item_emb = nn.Embedding(item_num + 1, hidden_units, padding_idx=0)
        self.pos_emb = nn.Embedding(maxlen + 1, hidden_units, padding_idx=0)
        self.attention_layernorms = nn.ModuleList()
        self.attention_layers = nn.ModuleList()
        self.forward_layernorms = nn.ModuleList()
        self.forward_layers = nn.ModuleList()
        self.last_layernorm = nn.LayerNorm(hidden_units, eps=1e-8)
        for _ in range(num_blocks):
            self.attention_layernorms.append(nn.LayerNorm(hidden_units, eps=1e-8))
            self.attention_layers.append(nn.MultiheadAttention(hidden_units, num_heads))
            self.forward_layernorms.append(nn.LayerNorm(hidden_units, eps=1e-8))
            self.forward_layers.append(PointWiseFeedForward(hidden_units))

    def log2feats(self, log_seqs):
        seqs = self.item_emb(log_seqs)
        seqs *= self.item_emb.embedding_dim ** 0.5
        poss = torch.arange(1, log_seqs.shape[1] + 1).unsqueeze(0).repeat(log_seqs.shape[0], 1)
        poss *= (log_seqs != 0)
        seqs += self.pos_emb(poss)
        tl = seqs.shape[1]
        attention_mask = ~torch.tril(torch.ones((tl, tl), dtype=torch.bool))
        for i in range(len(self.attention_layers)):
            seqs = torch.transpose(seqs, 0, 1)
            Q = self.attention_layernorms[i](seqs)
            mha_outputs, _ = self.attention_layers[i](Q, seqs, seqs, attn_mask=attention_mask)
            seqs = Q + mha_outputs
            seqs = torch.transpose(seqs, 0, 1)
            seqs = self.forward_layernorms[i](seqs)
            seqs = self.forward_layers[i](seqs)
        return self.last_layernorm(seqs)

    def forward(self, log_seqs):
        """predict() against every item: the last position's features times the item table."""
        log_feats = self.log2feats(log_seqs)
        final_feat = log_feats[:, -1, :]
        return final_feat.matmul(self.item_emb.weight.T)


def sasrec():
    torch.manual_seed(0)
    return SASRec().eval()


def _sessions():
    r = np.random.default_rng(0)
    B, T = 32, 16
    lengths = r.integers(4, T + 1, B)
    mask = np.arange(T)[None] >= (T - lengths)[:, None]  # left-padded, as SASRec pads
    return (r.integers(1, 301, (B, T)) * mask).astype(np.int64)


# --- Medusa heads (FasterDecoding/Medusa, medusa/model/medusa_model.py) on a small GPT -------


class ResBlock(nn.Module):
    """Medusa's ResBlock: x + SiLU(Linear(x)), the linear initialised to zero."""

    def __init__(self, hidden_size):
        super().__init__()
        self.linear = nn.Linear(hidden_size, hidden_size)
        self.act = nn.SiLU()

    def forward(self, x):
        return x + self.act(self.linear(x))


class GPTBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.heads = heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * d, d))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp(self.ln_2(x))


class MedusaGPT(nn.Module):
    """A GPT-2-style base model and Medusa's heads: each head a ResBlock and a Linear to the
    vocabulary on the base model's last hidden states, the logits stacked along a new first
    axis (medusa_logits: (heads, B, T, V)) and the base model's own logits returned beside."""

    def __init__(self, vocab=100, d=32, heads=2, n=2, medusa_num_heads=3,
                 medusa_num_layers=1):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(32, d)
        self.h = nn.ModuleList(GPTBlock(d, heads) for _ in range(n))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.medusa = medusa_num_heads
        self.medusa_head = nn.ModuleList(
            nn.Sequential(*([ResBlock(d)] * medusa_num_layers), nn.Linear(d, vocab, bias=False))
            for _ in range(medusa_num_heads))

    def forward(self, input_ids):
        T = input_ids.shape[1]
        x = self.wte(input_ids) + self.wpe(torch.arange(T))
        for block in self.h:
            x = block(x)
        hidden_states = self.ln_f(x)
        orig = self.lm_head(hidden_states)
        medusa_logits = []
        for i in range(self.medusa):
            medusa_logits.append(self.medusa_head[i](hidden_states))
        return torch.stack(medusa_logits, dim=0), orig


def medusa():
    torch.manual_seed(0)
    m = MedusaGPT()
    with torch.no_grad():  # trained heads: Medusa zero-initialises the ResBlock linears
        for head in m.medusa_head:
            head[0].linear.weight.mul_(0.5)
    return _gain(m, 1.5)


# --- a mixture-of-depths router (Raposo et al. 2024, the common PyTorch write-up) ------------


class MoDBlock(nn.Module):
    """Per sequence the top-k tokens by a router's weight go through the block (attention +
    MLP, their output scaled by the router weight), the rest skip it: torch.topk over the
    tokens, gather of the chosen rows, scatter_add back."""

    def __init__(self, d, heads, capacity=0.5):
        super().__init__()
        self.router = nn.Linear(d, 1, bias=False)
        self.block = GPTBlock(d, heads)
        self.capacity = capacity

    def forward(self, x):
        _, T, D = x.shape
        k = int(self.capacity * T)
        router_logits = self.router(x).squeeze(-1)  # (B, T)
        weights, selected = torch.topk(router_logits, k, dim=1, sorted=False)
        selected, order = torch.sort(selected, dim=1)  # keep causal order
        weights = torch.gather(weights, 1, order)
        idx = selected.unsqueeze(-1).expand(-1, -1, D)
        chosen = torch.gather(x, 1, idx)
        processed = (self.block(chosen) - chosen) * weights.unsqueeze(-1)
        return x.scatter_add(1, idx, processed)


class MoDLM(nn.Module):
    def __init__(self, vocab=100, d=32, heads=2, n=2):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(32, d)
        self.h = nn.ModuleList(m for _ in range(n) for m in (GPTBlock(d, heads),
                                                             MoDBlock(d, heads)))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        T = input_ids.shape[1]
        x = self.wte(input_ids) + self.wpe(torch.arange(T))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def mixture_of_depths():
    torch.manual_seed(0)
    return _gain(MoDLM(), 1.5)


# --- dreamquark-ai's pytorch-tabnet (pytorch_tabnet/tab_network.py, sparsemax.py) ------------


class SparsemaxFunction(torch.autograd.Function):
    """pytorch_tabnet/sparsemax.py: the sort-based threshold tau."""

    @staticmethod
    def forward(ctx, input, dim=-1):
        ctx.dim = dim
        max_val, _ = input.max(dim=dim, keepdim=True)
        input = input - max_val
        tau, supp_size = SparsemaxFunction._threshold_and_support(input, dim=dim)
        output = torch.clamp(input - tau, min=0)
        ctx.save_for_backward(supp_size, output)
        return output

    @staticmethod
    def _threshold_and_support(input, dim=-1):
        input_srt, _ = torch.sort(input, descending=True, dim=dim)
        input_cumsum = input_srt.cumsum(dim) - 1
        d = input.size(dim)
        rhos = torch.arange(1, d + 1, dtype=input.dtype).view(1, -1)
        support = rhos * input_srt > input_cumsum
        support_size = support.sum(dim=dim).unsqueeze(dim)
        tau = input_cumsum.gather(dim, support_size - 1)
        tau /= support_size.to(input.dtype)
        return tau, support_size


class Sparsemax(nn.Module):
    def forward(self, input):
        return SparsemaxFunction.apply(input, -1)


class GBN(nn.Module):
    """Ghost batch norm: in eval a BatchNorm1d (the chunks of the virtual batch)."""

    def __init__(self, input_dim, momentum=0.02):
        super().__init__()
        self.bn = nn.BatchNorm1d(input_dim, momentum=momentum)

    def forward(self, x):
        return self.bn(x)


class GLULayer(nn.Module):
    def __init__(self, input_dim, output_dim, fc=None):
        super().__init__()
        self.output_dim = output_dim
        self.fc = fc if fc is not None else nn.Linear(input_dim, 2 * output_dim, bias=False)
        self.bn = GBN(2 * output_dim)

    def forward(self, x):
        x = self.bn(self.fc(x))
        return torch.mul(x[:, :self.output_dim], torch.sigmoid(x[:, self.output_dim:]))


class GLUBlock(nn.Module):
    def __init__(self, input_dim, output_dim, n_glu=2, first=False, shared_layers=None):
        super().__init__()
        self.first = first
        fcs = shared_layers if shared_layers is not None else [None] * n_glu
        self.glu_layers = nn.ModuleList()
        for i in range(n_glu):
            self.glu_layers.append(GLULayer(input_dim if i == 0 else output_dim, output_dim,
                                            fc=fcs[i]))

    def forward(self, x):
        scale = torch.sqrt(torch.FloatTensor([0.5]))
        if self.first:
            x = self.glu_layers[0](x)
            layers_left = range(1, len(self.glu_layers))
        else:
            layers_left = range(len(self.glu_layers))
        for glu_id in layers_left:
            x = torch.add(x, self.glu_layers[glu_id](x))
            x = x * scale
        return x


class FeatTransformer(nn.Module):
    def __init__(self, input_dim, output_dim, shared_layers):
        super().__init__()
        self.shared = GLUBlock(input_dim, output_dim, first=True, shared_layers=shared_layers)
        self.specifics = GLUBlock(output_dim, output_dim)

    def forward(self, x):
        return self.specifics(self.shared(x))


class AttentiveTransformer(nn.Module):
    def __init__(self, input_dim, group_dim):
        super().__init__()
        self.fc = nn.Linear(input_dim, group_dim, bias=False)
        self.bn = GBN(group_dim)
        self.selector = Sparsemax()

    def forward(self, priors, processed_feat):
        x = self.bn(self.fc(processed_feat))
        x = torch.mul(x, priors)
        return self.selector(x)


class TabNet(nn.Module):
    def __init__(self, input_dim=12, output_dim=3, n_d=8, n_a=8, n_steps=3, gamma=1.3):
        super().__init__()
        self.n_d, self.n_steps, self.gamma = n_d, n_steps, gamma
        self.initial_bn = nn.BatchNorm1d(input_dim, momentum=0.01)
        shared = nn.ModuleList([nn.Linear(input_dim, 2 * (n_d + n_a), bias=False),
                                nn.Linear(n_d + n_a, 2 * (n_d + n_a), bias=False)])
        self.initial_splitter = FeatTransformer(input_dim, n_d + n_a, shared)
        self.feat_transformers = nn.ModuleList(FeatTransformer(input_dim, n_d + n_a, shared)
                                               for _ in range(n_steps))
        self.att_transformers = nn.ModuleList(AttentiveTransformer(n_a, input_dim)
                                              for _ in range(n_steps))
        self.final_mapping = nn.Linear(n_d, output_dim, bias=False)

    def forward(self, x):
        res = 0
        x = self.initial_bn(x)
        prior = torch.ones(x.shape)
        att = self.initial_splitter(x)[:, self.n_d:]
        for step in range(self.n_steps):
            M = self.att_transformers[step](prior, att)
            prior = torch.mul(self.gamma - M, prior)
            masked_x = torch.mul(M, x)
            out = self.feat_transformers[step](masked_x)
            d = F.relu(out[:, :self.n_d])
            res = torch.add(res, d)
            att = out[:, self.n_d:]
        return self.final_mapping(res)


def tabnet():
    torch.manual_seed(0)
    m = TabNet()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.normal_(0, 0.1, generator=g)
                mod.running_var.uniform_(0.5, 1.5, generator=g)
    return _gain(m, 1.5)


P = (3, 14, 15, 9, 26)

NETWORKS = (
    Network("gla", "flash-linear-attention's GLA (low-rank gk_proj, logsigmoid / 16 decay, "
            "naive_recurrent_gla: a step loop writing o[:, :, i], RMS-normed SiLU output gate)",
            "gla", ids(100, 8, 32), prompt=P, tokens=8),
    Network("gla_chunk", "the same GLA in its chunked naive form (cumsum of the log decay "
            "within chunks of 8, intra-chunk exp(gk_i - gk_j) scores masked by triu, "
            "inter-chunk (K, V) state)", "gla_chunk", ids(100, 8, 32), prompt=P, tokens=8),
    Network("deltanet", "flash-linear-attention's DeltaNet (short causal convs with SiLU, "
            "L2-normed q / k, sigmoid beta, delta_rule_recurrence: v - (S * k).sum(-2) "
            "written into S by a loop, einsum read-out)", "deltanet", ids(100, 8, 32),
            prompt=P, tokens=8),
    Network("griffin", "RecurrentGemma's Griffin (RG-LRU: block-diagonal gates, "
            "a = exp(-8 softplus(a) sigmoid), sqrt(1 - a^2) with a bool reset, rnn_scan loop; "
            "Conv1D as shifted windows; local MQA with half-dim rope; soft-capped tied "
            "logits)", "griffin", ids(100, 8, 32), prompt=P, tokens=8),
    Network("slstm", "xLSTM's sLSTM (NX-AI vanilla backend: exponential gates stabilized by "
            "max(i, log f + m), m = i at the first step (its torch.all(n == 0) branch by the "
            "step index), normalizer state, block-diagonal recurrent kernel by einsum, states "
            "stacked / unbound each step, per-head GroupNorm, gated GELU FFN)", "slstm",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("mingru", "lucidrains' minGRU LM (Heinsen's log-space parallel scan: cumsum of "
            "-softplus(gate), logcumsumexp, exp; log_g by torch.where; causal depthwise conv "
            "by F.pad)", "mingru", ids(100, 8, 32), prompt=P, tokens=8),
    Network("based", "HazyResearch's Based (TaylorExp feature map with x[..., :1] ** 0, "
            "causal linear attention by cumsum of k * v outer products over 73 features, "
            "sliding-window SDPA with a bool mask, BaseConv gated short conv)", "based",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("hawk", "Hawk: the same RecurrentGemma stack with recurrent blocks only",
            "hawk", ids(100, 8, 32), prompt=P, tokens=8),
    Network("set_transformer", "juho-lee's Set Transformer (MAB heads cat'ed along the batch "
            "by split / cat, bmm softmax, O + relu(fc_o(O)) with LayerNorms; two ISABs of 8 "
            "inducing points, PMA of 2 seeds, two SABs) over sets of 24 3-D points",
            "set_transformer", floats(32, 24, 3)),
    Network("tsmixer", "torchtsmixer's TSMixer (TimeBatchNorm2d: a BatchNorm1d over (B, T * C, "
            "1), time mixing by a Linear over permuted steps, feature mixing MLP with a "
            "projection, temporal projection by swapaxes; instance normalisation by mean / "
            "var)", "tsmixer", _series(32, 32, 6)),
    Network("tide", "TiDE (darts / neuralforecast layout): forward(x, covariates) - per-step "
            "covariate projection ResBlocks, dense encoder / decoder over the flattened "
            "lookback and covariates, temporal decoder per horizon step, linear lookback "
            "skip", "tide", _tide_inputs),
    Network("dcn_v2", "DeepCTR-torch's DCN-v2 forward(sparse, dense): per-field Embeddings of "
            "sparse[:, i:i + 1], CrossNet 'matrix' x0 * (W @ xl + b) + xl on (B, D, 1), "
            "parallel BatchNorm MLP, sigmoid", "dcn_v2", _ctr_inputs),
    Network("din", "DeepCTR-torch's DIN forward(target_item, hist_item, hist_cat): "
            "LocalActivationUnit MLP on [q, k, q - k, q * k] with Dice (BatchNorm1d by "
            "transposes), torch.where(hist != 0) masked scores, matmul pooling",
            "din", _din_inputs),
    Network("sasrec", "pmixer's SASRec (item embedding * sqrt(d), position ids arange * "
            "(seq != 0), ~tril bool attn_mask into sequence-first nn.MultiheadAttention, "
            "Conv1d point-wise FFN with +=, last position @ item_emb.weight.T)", "sasrec",
            _sessions),
    Network("medusa", "FasterDecoding's Medusa heads (ResBlock x + SiLU(Linear(x)) and a "
            "vocabulary Linear per head) on a GPT-2-style base, torch.stack(medusa_logits, "
            "dim=0) of (heads, B, T, V) returned beside the base logits: --output 0",
            "medusa", ids(100, 8, 32), output="0"),
    Network("medusa_base", "the same Medusa model's base logits (--output 1), generated",
            "medusa", ids(100, 8, 32), prompt=P, tokens=8, output="1"),
    Network("mixture_of_depths", "a mixture-of-depths GPT (Raposo et al.: router Linear, "
            "torch.topk of half the tokens, sort to keep causal order, gather, block output "
            "scaled by the router weight, scatter_add back), every other block",
            "mixture_of_depths", ids(100, 8, 32), prompt=P, tokens=8),
    Network("tabnet", "dreamquark-ai's pytorch-tabnet (sort-based sparsemax attentive "
            "transformer, prior *= gamma - M, shared + step GLU blocks scaled by sqrt(0.5), "
            "ghost BatchNorm in eval)", "tabnet", floats(64, 12)),
)

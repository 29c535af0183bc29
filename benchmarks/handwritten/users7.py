"""Transformer / LLM / sequence networks written by hand, the seventh round, each the way a
well-known codebase writes it: BlinkDL's RWKV-7 (the generalized delta rule
``state * w + state @ a @ b + v @ k`` as a loop), the minLSTM of "Were RNNs All We Needed?"
(log-space parallel scan with an initial state), TTT-Linear (a layer-norm-fused inner gradient
step of a per-sequence linear model written in the forward), thuml's TimesNet with fixed
periods (1-D to 2-D folding, an Inception block, periods weighted by rfft amplitudes),
FEDformer's Fourier block (complex weights on fixed modes, rfft / irfft), Crossformer's
two-stage attention (cross-time, then cross-dimension through a router), SegRNN (segment GRU,
parallel multi-step decoding), BERT4Rec (the BERT4Rec-VAE-Pytorch layout), Vision Mamba
(a middle class token, bidirectional selective scans over the patches), CaiT (talking heads,
LayerScale, class attention), EfficientFormer (Meta4D pooling then Meta3D attention), an
OLMo-2 decoder (QK-norm over the whole width, norms after the sublayers), lucidrains'
Hourglass transformer (shift, mean-pool shortening, repeat upsampling), a Perceiver AR and a
DeepSeekMoE decoder (shared experts beside fine-grained routed ones, run densely). Small,
random weights."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
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


# --- BlinkDL's RWKV-7 "Goose" (RWKV-LM/RWKV-v7/rwkv_v7_demo.py, its RWKV7_OP reference) ------

HEAD_SIZE = 16


def RWKV7_OP(r, w, k, v, a, b):
    B, T, C = r.size()
    H = C // HEAD_SIZE
    N = HEAD_SIZE
    r = r.view(B, T, H, N).float()
    k = k.view(B, T, H, N).float()
    v = v.view(B, T, H, N).float()
    a = a.view(B, T, H, N).float()
    b = b.view(B, T, H, N).float()
    w = torch.exp(-torch.exp(w.view(B, T, H, N).float()))
    out = torch.zeros((B, T, H, N), dtype=torch.float)
    state = torch.zeros((B, H, N, N), dtype=torch.float)
    for t in range(T):
        kk = k[:, t, :].view(B, H, 1, N)
        rr = r[:, t, :].view(B, H, N, 1)
        vv = v[:, t, :].view(B, H, N, 1)
        aa = a[:, t, :].view(B, H, N, 1)
        bb = b[:, t, :].view(B, H, 1, N)
        state = state * w[:, t, :, None, :] + state @ aa @ bb + vv @ kk
        out[:, t, :] = (state @ rr).view(B, H, N)
    return out.view(B, T, C)


class RWKV7TimeMix(nn.Module):
    def __init__(self, C, layer_id, lora=8):
        super().__init__()
        self.layer_id = layer_id
        self.n_head = C // HEAD_SIZE
        g = torch.Generator().manual_seed(layer_id)
        ratio = 1 - layer_id / 2
        ddd = torch.arange(C) / C
        for name, p in (("x_r", 0.2), ("x_w", 0.9), ("x_k", 0.7), ("x_v", 0.7), ("x_a", 0.9),
                        ("x_g", 0.2)):
            setattr(self, name, nn.Parameter((1 - ddd ** (p * ratio)).view(1, 1, C)))
        self.w0 = nn.Parameter(-6 + 5 * (torch.arange(C) / (C - 1)) ** 0.9 + 0.5)
        self.w1 = nn.Parameter(0.1 * torch.randn(C, lora, generator=g))
        self.w2 = nn.Parameter(0.1 * torch.randn(lora, C, generator=g))
        self.a0 = nn.Parameter(torch.zeros(1, 1, C))
        self.a1 = nn.Parameter(0.1 * torch.randn(C, lora, generator=g))
        self.a2 = nn.Parameter(0.1 * torch.randn(lora, C, generator=g))
        self.v0 = nn.Parameter(torch.ones(1, 1, C))
        self.v1 = nn.Parameter(0.1 * torch.randn(C, lora, generator=g))
        self.v2 = nn.Parameter(0.1 * torch.randn(lora, C, generator=g))
        self.g1 = nn.Parameter(0.1 * torch.randn(C, lora, generator=g))
        self.g2 = nn.Parameter(0.1 * torch.randn(lora, C, generator=g))
        self.k_k = nn.Parameter(torch.ones(1, 1, C) * 0.85)
        self.k_a = nn.Parameter(torch.ones(1, 1, C))
        self.r_k = nn.Parameter(0.1 * torch.randn(self.n_head, HEAD_SIZE, generator=g))
        self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(self.n_head, C, eps=64e-5)

    def forward(self, x, v_first):
        B, T, C = x.size()
        H = self.n_head
        xx = self.time_shift(x) - x
        xr = x + xx * self.x_r
        xw = x + xx * self.x_w
        xk = x + xx * self.x_k
        xv = x + xx * self.x_v
        xa = x + xx * self.x_a
        xg = x + xx * self.x_g
        r = self.receptance(xr)
        w = -F.softplus(-(self.w0 + torch.tanh(xw @ self.w1) @ self.w2)) - 0.5
        k = self.key(xk)
        v = self.value(xv)
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = k * self.k_k
        kk = F.normalize(kk.view(B, T, H, -1), dim=-1, p=2.0).view(B, T, C)
        k = k * (1 + (a - 1) * self.k_a)
        x = RWKV7_OP(r, w, k, v, -kk, kk * a)
        x = self.ln_x(x.view(B * T, C)).view(B, T, C)
        x = x + ((r.view(B, T, H, -1) * k.view(B, T, H, -1) * self.r_k).sum(dim=-1, keepdim=True)
                 * v.view(B, T, H, -1)).view(B, T, C)
        x = self.output(x * g)
        return x, v_first


class RWKV7ChannelMix(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
        self.x_k = nn.Parameter(torch.full((1, 1, C), 0.5))
        self.key = nn.Linear(C, C * 4, bias=False)
        self.value = nn.Linear(C * 4, C, bias=False)

    def forward(self, x):
        xx = self.time_shift(x) - x
        k = x + xx * self.x_k
        k = torch.relu(self.key(k)) ** 2
        return self.value(k)


class RWKV7Block(nn.Module):
    def __init__(self, C, layer_id):
        super().__init__()
        self.layer_id = layer_id
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = RWKV7TimeMix(C, layer_id)
        self.ffn = RWKV7ChannelMix(C)

    def forward(self, x, v_first):
        if self.layer_id == 0:
            x = self.ln0(x)
        x_attn, v_first = self.att(self.ln1(x), v_first)
        x = x + x_attn
        x = x + self.ffn(self.ln2(x))
        return x, v_first


class RWKV7(nn.Module):
    def __init__(self, vocab=100, C=32, n_layer=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, C)
        self.blocks = nn.ModuleList(RWKV7Block(C, i) for i in range(n_layer))
        self.ln_out = nn.LayerNorm(C)
        self.head = nn.Linear(C, vocab, bias=False)

    def forward(self, idx):
        x = self.emb(idx)
        v_first = torch.empty_like(x)
        for block in self.blocks:
            x, v_first = block(x, v_first)
        return self.head(self.ln_out(x))


def rwkv7():
    torch.manual_seed(0)
    return _gain(RWKV7(), 1.5)


# --- minLSTM (Feng et al., "Were RNNs All We Needed?", appendix: log-space parallel mode) ----


def log_g(x):
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


def parallel_scan_log(log_coeffs, log_values):
    # log_coeffs: (B, T, D), log_values: (B, T + 1, D)
    a_star = F.pad(torch.cumsum(log_coeffs, dim=1), (0, 0, 1, 0))
    log_h0_plus_b_star = torch.logcumsumexp(log_values - a_star, dim=1)
    log_h = a_star + log_h0_plus_b_star
    return torch.exp(log_h)[:, 1:]


class MinLSTM(nn.Module):
    def __init__(self, d, expansion=2):
        super().__init__()
        self.hidden = d * expansion
        self.linear_f = nn.Linear(d, self.hidden)
        self.linear_i = nn.Linear(d, self.hidden)
        self.linear_h = nn.Linear(d, self.hidden)
        self.h0 = nn.Parameter(torch.zeros(1, 1, self.hidden))
        self.out = nn.Linear(self.hidden, d, bias=False)

    def forward(self, x):
        B = x.shape[0]
        diff = F.softplus(-self.linear_f(x)) - F.softplus(-self.linear_i(x))
        log_f = -F.softplus(diff)
        log_i = -F.softplus(-diff)
        log_h_0 = log_g(self.h0.expand(B, 1, -1))
        log_tilde_h = log_g(self.linear_h(x))
        h = parallel_scan_log(log_f, torch.cat([log_h_0, log_i + log_tilde_h], dim=1))
        return self.out(h)


class MinLSTMLM(nn.Module):
    """A pre-LN residual stack of minLSTM layers with a causal depthwise conv, as lucidrains'
    minGRU-pytorch LM lays its blocks out (conv, norm, RNN, norm, feed-forward)."""

    def __init__(self, vocab=100, d=32, n=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.convs = nn.ModuleList(nn.Conv1d(d, d, 3, groups=d) for _ in range(n))
        self.norms1 = nn.ModuleList(RMSNorm(d) for _ in range(n))
        self.rnns = nn.ModuleList(MinLSTM(d) for _ in range(n))
        self.norms2 = nn.ModuleList(RMSNorm(d) for _ in range(n))
        self.ffs = nn.ModuleList(nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(),
                                               nn.Linear(4 * d, d)) for _ in range(n))
        self.norm = RMSNorm(d)
        self.to_logits = nn.Linear(d, vocab, bias=False)

    def forward(self, x):
        x = self.emb(x)
        for conv, n1, rnn, n2, ff in zip(self.convs, self.norms1, self.rnns, self.norms2,
                                         self.ffs, strict=True):
            x = x + conv(F.pad(x.transpose(1, 2), (2, 0))).transpose(1, 2)
            x = x + rnn(n1(x))
            x = x + ff(n2(x))
        return self.to_logits(self.norm(x))


def minlstm():
    torch.manual_seed(0)
    return _gain(MinLSTMLM(), 1.5)


# --- TTT-Linear (test-time-training/ttt-lm-pytorch: ln_fused_l2_bwd, mini-batch of 1) --------


def ln_fwd(x, gamma, beta, eps=1e-6):
    mu = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    std = torch.sqrt(var + eps)
    return gamma * ((x - mu) / std) + beta


def ln_fused_l2_bwd(x, l2_target, gamma, beta, eps=1e-6):
    D = x.shape[-1]
    mu = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    std = torch.sqrt(var + eps)
    x_hat = (x - mu) / std
    y = gamma * x_hat + beta
    grad_output = y - l2_target
    grad_x_hat = grad_output * gamma
    z = (1.0 / D) * (D * grad_x_hat - grad_x_hat.sum(dim=-1, keepdim=True)
                     - x_hat * (grad_x_hat * x_hat).sum(dim=-1, keepdim=True)) / std
    return z


class TTTLinear(nn.Module):
    def __init__(self, d, num_heads=2, base_lr=1.0):
        super().__init__()
        self.H = num_heads
        self.hd = d // num_heads
        self.base_lr = base_lr
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.learnable_ttt_lr = nn.Linear(d, num_heads)
        self.W1 = nn.Parameter(torch.normal(0, 0.02, size=(num_heads, self.hd, self.hd)))
        self.b1 = nn.Parameter(torch.zeros(num_heads, 1, self.hd))
        self.ttt_norm_weight = nn.Parameter(torch.ones(num_heads, 1, self.hd))
        self.ttt_norm_bias = nn.Parameter(torch.zeros(num_heads, 1, self.hd))
        self.post_norm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, hidden_states):
        B, L, _ = hidden_states.shape
        H, hd = self.H, self.hd
        XQ = self.q_proj(hidden_states).view(B, L, H, hd).transpose(1, 2)
        XK = self.k_proj(hidden_states).view(B, L, H, hd).transpose(1, 2)
        XV = self.v_proj(hidden_states).view(B, L, H, hd).transpose(1, 2)
        eta = self.base_lr * torch.sigmoid(self.learnable_ttt_lr(hidden_states)) / hd
        eta = eta.transpose(1, 2)  # (B, H, L)
        W1 = self.W1.unsqueeze(0).expand(B, -1, -1, -1)
        b1 = self.b1.unsqueeze(0).expand(B, -1, -1, -1)
        ln_w, ln_b = self.ttt_norm_weight, self.ttt_norm_bias
        outs = []
        for i in range(L):
            xq = XQ[:, :, i:i + 1]  # (B, H, 1, hd)
            xk = XK[:, :, i:i + 1]
            reconstruction_target = XV[:, :, i:i + 1] - xk
            Z1 = xk @ W1 + b1
            grad_l_wrt_Z1 = ln_fused_l2_bwd(Z1, reconstruction_target, ln_w, ln_b)
            lr = eta[:, :, i, None, None]
            W1 = W1 - lr * xk.transpose(-1, -2) @ grad_l_wrt_Z1
            b1 = b1 - lr * grad_l_wrt_Z1
            Z1_bar = xq @ W1 + b1
            outs.append(xq + ln_fwd(Z1_bar, ln_w, ln_b))
        out = torch.cat(outs, dim=2).transpose(1, 2).reshape(B, L, -1)
        return self.o_proj(self.post_norm(out))


class SwiGLU(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class PreNormLM(nn.Module):
    """A Llama-style stack around a sequence mixer: (RMSNorm, mixer, RMSNorm, SwiGLU) blocks."""

    def __init__(self, mixer, vocab=100, d=32, n=2):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.seq_norms = nn.ModuleList(RMSNorm(d) for _ in range(n))
        self.mixers = nn.ModuleList(mixer(d) for _ in range(n))
        self.ffn_norms = nn.ModuleList(RMSNorm(d) for _ in range(n))
        self.mlps = nn.ModuleList(SwiGLU(d, 2 * d) for _ in range(n))
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.embed_tokens(input_ids)
        for sn, mixer, fn, mlp in zip(self.seq_norms, self.mixers, self.ffn_norms, self.mlps,
                                      strict=True):
            x = x + mixer(sn(x))
            x = x + mlp(fn(x))
        return self.lm_head(self.norm(x))


def ttt_linear():
    torch.manual_seed(0)
    return _gain(PreNormLM(TTTLinear), 1.5)


# --- thuml's TimesNet (Time-Series-Library models/TimesNet.py) with fixed periods ------------


class Inception_Block_V1(nn.Module):
    def __init__(self, in_channels, out_channels, num_kernels=3):
        super().__init__()
        self.kernels = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 2 * i + 1, padding=i)
                                     for i in range(num_kernels))

    def forward(self, x):
        res_list = [k(x) for k in self.kernels]
        return torch.stack(res_list, dim=-1).mean(-1)


class TimesBlock(nn.Module):
    def __init__(self, seq_len, pred_len, d_model, d_ff, periods=(8, 4)):
        super().__init__()
        self.seq_len, self.pred_len = seq_len, pred_len
        self.periods = periods
        self.conv = nn.Sequential(Inception_Block_V1(d_model, d_ff), nn.GELU(),
                                  Inception_Block_V1(d_ff, d_model))

    def forward(self, x):
        B, T, N = x.size()
        xf = torch.fft.rfft(x, dim=1)
        amplitude = abs(xf).mean(-1)  # (B, T // 2 + 1)
        res = []
        for period in self.periods:
            length = T if T % period == 0 else (T // period + 1) * period
            out = x if length == T else torch.cat(
                [x, torch.zeros([B, length - T, N], device=x.device)], dim=1)
            out = out.reshape(B, length // period, period, N).permute(0, 3, 1, 2).contiguous()
            out = self.conv(out)
            out = out.permute(0, 2, 3, 1).reshape(B, -1, N)
            res.append(out[:, :T, :])
        res = torch.stack(res, dim=-1)
        weight = amplitude[:, [T // p for p in self.periods]]  # the fixed periods' frequencies
        period_weight = F.softmax(weight, dim=1)
        period_weight = period_weight.unsqueeze(1).unsqueeze(1).repeat(1, T, N, 1)
        res = torch.sum(res * period_weight, -1)
        return res + x


class TimesNet(nn.Module):
    def __init__(self, enc_in=4, seq_len=32, pred_len=8, d_model=16, d_ff=16, e_layers=2):
        super().__init__()
        self.seq_len, self.pred_len = seq_len, pred_len
        self.token_conv = nn.Conv1d(enc_in, d_model, 3, padding=1, padding_mode="circular",
                                    bias=False)
        pe = torch.zeros(seq_len + pred_len, d_model)
        position = torch.arange(0, seq_len + pred_len).float().unsqueeze(1)
        div_term = (torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)).exp()
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))
        self.predict_linear = nn.Linear(seq_len, pred_len + seq_len)
        self.model = nn.ModuleList(TimesBlock(seq_len, pred_len, d_model, d_ff)
                                   for _ in range(e_layers))
        self.layer_norm = nn.LayerNorm(d_model)
        self.projection = nn.Linear(d_model, enc_in, bias=True)

    def forward(self, x_enc):
        means = x_enc.mean(1, keepdim=True).detach()
        x_enc = x_enc - means
        stdev = torch.sqrt(torch.var(x_enc, dim=1, keepdim=True, unbiased=False) + 1e-5)
        x_enc /= stdev
        enc_out = self.token_conv(x_enc.permute(0, 2, 1)).transpose(1, 2)
        enc_out = self.predict_linear(enc_out.permute(0, 2, 1)).permute(0, 2, 1)
        enc_out = enc_out + self.pe[:, :enc_out.size(1)]
        for layer in self.model:
            enc_out = self.layer_norm(layer(enc_out))
        dec_out = self.projection(enc_out)
        dec_out = dec_out * stdev[:, 0, :].unsqueeze(1).repeat(1, self.pred_len + self.seq_len, 1)
        dec_out = dec_out + means[:, 0, :].unsqueeze(1).repeat(1, self.pred_len + self.seq_len, 1)
        return dec_out[:, -self.pred_len:, :]


def timesnet():
    torch.manual_seed(0)
    return _gain(TimesNet(), 1.0)


def _series(batch, length, channels, seed=0):
    """A smooth multichannel series (sines of random periods + noise), batch first."""
    def make():
        r = np.random.default_rng(seed)
        t = np.arange(length)[None, :, None]
        period = r.uniform(4, 16, (batch, 1, channels))
        phase = r.uniform(0, 2 * np.pi, (batch, 1, channels))
        level = r.normal(0, 2, (batch, 1, channels))
        x = level + np.sin(2 * np.pi * t / period + phase) + 0.1 * r.standard_normal(
            (batch, length, channels))
        return x.astype(np.float32)
    return make


# --- FEDformer's Fourier block (MAZiqing/FEDformer layers/FourierCorrelation.py) -------------


class FourierBlock(nn.Module):
    def __init__(self, in_channels, out_channels, seq_len, modes=4, heads=4):
        super().__init__()
        self.index = list(range(min(modes, seq_len // 2)))  # mode_select_method='lowest'
        self.scale = 1 / (in_channels * out_channels)
        self.weights1 = nn.Parameter(self.scale * torch.rand(
            heads, in_channels // heads, out_channels // heads, len(self.index),
            dtype=torch.cfloat))

    def compl_mul1d(self, input, weights):
        # (batch, in_channel, x ), (in_channel, out_channel, x) -> (batch, out_channel, x)
        return torch.einsum("bhi,hio->bho", input, weights)

    def forward(self, q):
        B, L, H, E = q.shape
        x = q.permute(0, 2, 3, 1)
        x_ft = torch.fft.rfft(x, dim=-1)
        out_ft = torch.zeros(B, H, E, L // 2 + 1, device=x.device, dtype=torch.cfloat)
        for wi, i in enumerate(self.index):
            out_ft[:, :, :, wi] = self.compl_mul1d(x_ft[:, :, :, i], self.weights1[:, :, :, wi])
        return torch.fft.irfft(out_ft, n=x.size(-1))


class series_decomp(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.kernel_size = kernel_size
        self.avg = nn.AvgPool1d(kernel_size=kernel_size, stride=1, padding=0)

    def forward(self, x):
        front = x[:, 0:1, :].repeat(1, (self.kernel_size - 1) // 2, 1)
        end = x[:, -1:, :].repeat(1, (self.kernel_size - 1) // 2, 1)
        xp = torch.cat([front, x, end], dim=1)
        moving_mean = self.avg(xp.permute(0, 2, 1)).permute(0, 2, 1)
        return x - moving_mean, moving_mean


class AutoCorrelationLayer(nn.Module):
    def __init__(self, correlation, d_model, n_heads):
        super().__init__()
        self.inner_correlation = correlation
        self.query_projection = nn.Linear(d_model, d_model)
        self.out_projection = nn.Linear(d_model, d_model)
        self.n_heads = n_heads

    def forward(self, x):
        B, L, _ = x.shape
        queries = self.query_projection(x).view(B, L, self.n_heads, -1)
        out = self.inner_correlation(queries)  # (B, H, E, L)
        out = out.permute(0, 3, 1, 2).reshape(B, L, -1)
        return self.out_projection(out)


class FEDEncoderLayer(nn.Module):
    def __init__(self, d_model, seq_len, heads=4, moving_avg=5):
        super().__init__()
        self.attention = AutoCorrelationLayer(
            FourierBlock(d_model, d_model, seq_len, heads=heads), d_model, heads)
        self.conv1 = nn.Conv1d(d_model, 2 * d_model, 1, bias=False)
        self.conv2 = nn.Conv1d(2 * d_model, d_model, 1, bias=False)
        self.decomp1 = series_decomp(moving_avg)
        self.decomp2 = series_decomp(moving_avg)

    def forward(self, x):
        x = x + self.attention(x)
        x, _ = self.decomp1(x)
        y = F.gelu(self.conv1(x.transpose(-1, 1)))
        y = self.conv2(y).transpose(-1, 1)
        res, _ = self.decomp2(x + y)
        return res


class FEDformerEncoder(nn.Module):
    def __init__(self, enc_in=4, seq_len=32, pred_len=8, d_model=16, layers=2):
        super().__init__()
        self.pred_len = pred_len
        self.decomp = series_decomp(5)
        self.token_conv = nn.Conv1d(enc_in, d_model, 3, padding=1, padding_mode="circular",
                                    bias=False)
        self.layers = nn.ModuleList(FEDEncoderLayer(d_model, seq_len) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.seasonal_head = nn.Linear(seq_len, pred_len)
        self.trend_head = nn.Linear(seq_len, pred_len)
        self.projection = nn.Linear(d_model, enc_in)

    def forward(self, x_enc):
        seasonal, trend = self.decomp(x_enc)
        x = self.token_conv(seasonal.permute(0, 2, 1)).transpose(1, 2)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        x = x - torch.mean(x, dim=1).unsqueeze(1).repeat(1, x.shape[1], 1)  # my_Layernorm
        seasonal_out = self.projection(self.seasonal_head(x.transpose(1, 2)).transpose(1, 2))
        trend_out = self.trend_head(trend.transpose(1, 2)).transpose(1, 2)
        return seasonal_out + trend_out


def fedformer():
    torch.manual_seed(0)
    return _gain(FEDformerEncoder(), 1.0)


# --- Thinklab-SJTU's Crossformer (cross_models/attn.py: TwoStageAttentionLayer) --------------


class AttentionLayer(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.query_projection = nn.Linear(d_model, d_model)
        self.key_projection = nn.Linear(d_model, d_model)
        self.value_projection = nn.Linear(d_model, d_model)
        self.out_projection = nn.Linear(d_model, d_model)
        self.n_heads = n_heads

    def forward(self, queries, keys, values):
        B, L, _ = queries.shape
        _, S, _ = keys.shape
        H = self.n_heads
        queries = self.query_projection(queries).view(B, L, H, -1)
        keys = self.key_projection(keys).view(B, S, H, -1)
        values = self.value_projection(values).view(B, S, H, -1)
        scale = 1.0 / math.sqrt(queries.shape[-1])
        scores = torch.einsum("blhe,bshe->bhls", queries, keys)
        A = torch.softmax(scale * scores, dim=-1)
        V = torch.einsum("bhls,bshd->blhd", A, values).contiguous()
        return self.out_projection(V.view(B, L, -1))


class TwoStageAttentionLayer(nn.Module):
    def __init__(self, seg_num, factor, d_model, n_heads, d_ff=None):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.time_attention = AttentionLayer(d_model, n_heads)
        self.dim_sender = AttentionLayer(d_model, n_heads)
        self.dim_receiver = AttentionLayer(d_model, n_heads)
        self.router = nn.Parameter(torch.randn(seg_num, factor, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.norm4 = nn.LayerNorm(d_model)
        self.MLP1 = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.MLP2 = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x):
        batch = x.shape[0]
        time_in = rearrange(x, "b ts_d seg_num d_model -> (b ts_d) seg_num d_model")
        time_enc = self.time_attention(time_in, time_in, time_in)
        dim_in = time_in + time_enc
        dim_in = self.norm1(dim_in)
        dim_in = dim_in + self.MLP1(dim_in)
        dim_in = self.norm2(dim_in)
        dim_send = rearrange(dim_in, "(b ts_d) seg_num d_model -> (b seg_num) ts_d d_model",
                             b=batch)
        batch_router = repeat(self.router, "seg_num factor d_model -> (repeat seg_num) factor "
                              "d_model", repeat=batch)
        dim_buffer = self.dim_sender(batch_router, dim_send, dim_send)
        dim_receive = self.dim_receiver(dim_send, dim_buffer, dim_buffer)
        dim_enc = dim_send + dim_receive
        dim_enc = self.norm3(dim_enc)
        dim_enc = dim_enc + self.MLP2(dim_enc)
        dim_enc = self.norm4(dim_enc)
        return rearrange(dim_enc, "(b seg_num) ts_d d_model -> b ts_d seg_num d_model", b=batch)


class Crossformer(nn.Module):
    def __init__(self, data_dim=6, in_len=32, out_len=8, seg_len=4, d_model=16, n_heads=2,
                 factor=3, layers=2):
        super().__init__()
        self.seg_len = seg_len
        self.out_len = out_len
        seg_num = in_len // seg_len
        self.linear = nn.Linear(seg_len, d_model)  # DSW_embedding
        self.enc_pos_embedding = nn.Parameter(torch.randn(1, data_dim, seg_num, d_model))
        self.pre_norm = nn.LayerNorm(d_model)
        self.blocks = nn.ModuleList(TwoStageAttentionLayer(seg_num, factor, d_model, n_heads)
                                    for _ in range(layers))
        self.head = nn.Linear(seg_num * d_model, out_len)

    def forward(self, x_seq):
        batch, _ts_len, ts_dim = x_seq.shape
        x_segment = rearrange(x_seq, "b (seg_num seg_len) d -> (b d seg_num) seg_len",
                              seg_len=self.seg_len)
        x_embed = self.linear(x_segment)
        x_embed = rearrange(x_embed, "(b d seg_num) d_model -> b d seg_num d_model",
                            b=batch, d=ts_dim)
        x = self.pre_norm(x_embed + self.enc_pos_embedding)
        for block in self.blocks:
            x = block(x)
        y = self.head(rearrange(x, "b d seg_num d_model -> b d (seg_num d_model)"))
        return rearrange(y, "b d out_len -> b out_len d")


def crossformer():
    torch.manual_seed(0)
    return _gain(Crossformer(), 1.0)


# --- lss-1138's SegRNN (models/SegRNN.py: segment-wise GRU, PMF decoding) --------------------


class SegRNN(nn.Module):
    def __init__(self, enc_in=6, seq_len=32, pred_len=8, seg_len=4, d_model=32):
        super().__init__()
        self.enc_in, self.seq_len, self.pred_len, self.seg_len = enc_in, seq_len, pred_len, seg_len
        self.d_model = d_model
        self.seg_num_x = seq_len // seg_len
        self.seg_num_y = pred_len // seg_len
        self.valueEmbedding = nn.Sequential(nn.Linear(seg_len, d_model), nn.ReLU())
        self.rnn = nn.GRU(input_size=d_model, hidden_size=d_model, num_layers=1, bias=True,
                          batch_first=True, bidirectional=False)
        self.pos_emb = nn.Parameter(torch.randn(self.seg_num_y, d_model // 2))
        self.channel_emb = nn.Parameter(torch.randn(enc_in, d_model // 2))
        self.predict = nn.Sequential(nn.Dropout(0.1), nn.Linear(d_model, seg_len))

    def forward(self, x):
        batch_size = x.size(0)
        seq_last = x[:, -1:, :].detach()
        x = (x - seq_last).permute(0, 2, 1)  # b,c,s
        x = self.valueEmbedding(x.reshape(-1, self.seg_num_x, self.seg_len))
        _, hn = self.rnn(x)  # bc,n,d  1,bc,d
        pos_emb = torch.cat([
            self.pos_emb.unsqueeze(0).repeat(self.enc_in, 1, 1),
            self.channel_emb.unsqueeze(1).repeat(1, self.seg_num_y, 1),
        ], dim=-1).view(-1, 1, self.d_model).repeat(batch_size, 1, 1)
        _, hy = self.rnn(pos_emb, hn.repeat(1, 1, self.seg_num_y).view(1, -1, self.d_model))
        y = self.predict(hy).view(-1, self.enc_in, self.pred_len)
        return y.permute(0, 2, 1) + seq_last


def segrnn():
    torch.manual_seed(0)
    return _gain(SegRNN(), 1.0)


# --- BERT4Rec (jaywonchung/BERT4Rec-VAE-Pytorch: models/bert_modules) -------------------------


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class LayerNorm(nn.Module):
    def __init__(self, features, eps=1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class Attention(nn.Module):
    def forward(self, query, key, value, mask=None):
        scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.size(-1))
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        p_attn = F.softmax(scores, dim=-1)
        return torch.matmul(p_attn, value), p_attn


class MultiHeadedAttention(nn.Module):
    def __init__(self, h, d_model):
        super().__init__()
        self.d_k = d_model // h
        self.h = h
        self.linear_layers = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(3)])
        self.output_linear = nn.Linear(d_model, d_model)
        self.attention = Attention()

    def forward(self, query, key, value, mask=None):
        batch_size = query.size(0)
        query, key, value = [lin(x).view(batch_size, -1, self.h, self.d_k).transpose(1, 2)
                             for lin, x in zip(self.linear_layers, (query, key, value),
                                               strict=True)]
        x, _attn = self.attention(query, key, value, mask=mask)
        x = x.transpose(1, 2).contiguous().view(batch_size, -1, self.h * self.d_k)
        return self.output_linear(x)


class SublayerConnection(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.norm = LayerNorm(size)

    def forward(self, x, sublayer):
        return x + sublayer(self.norm(x))


class TransformerBlock(nn.Module):
    def __init__(self, hidden, attn_heads, feed_forward_hidden):
        super().__init__()
        self.attention = MultiHeadedAttention(h=attn_heads, d_model=hidden)
        self.w_1 = nn.Linear(hidden, feed_forward_hidden)
        self.w_2 = nn.Linear(feed_forward_hidden, hidden)
        self.activation = GELU()
        self.input_sublayer = SublayerConnection(hidden)
        self.output_sublayer = SublayerConnection(hidden)

    def forward(self, x, mask):
        x = self.input_sublayer(x, lambda _x: self.attention.forward(_x, _x, _x, mask=mask))
        x = self.output_sublayer(x, lambda _x: self.w_2(self.activation(self.w_1(_x))))
        return x


class BERT4Rec(nn.Module):
    def __init__(self, num_items=200, max_len=16, hidden=32, heads=2, n_layers=2):
        super().__init__()
        vocab_size = num_items + 2  # padding 0, mask token num_items + 1
        self.token = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.position = nn.Embedding(max_len, hidden)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(hidden, heads, hidden * 4) for _ in range(n_layers)])
        self.out = nn.Linear(hidden, num_items + 1)

    def forward(self, x):
        mask = (x > 0).unsqueeze(1).repeat(1, x.size(1), 1).unsqueeze(1)
        batch_size = x.size(0)
        h = self.token(x) + self.position.weight.unsqueeze(0).repeat(batch_size, 1, 1)
        for transformer in self.transformer_blocks:
            h = transformer.forward(h, mask)
        return self.out(h)


def bert4rec():
    torch.manual_seed(0)
    return _gain(BERT4Rec(), 1.5)


def _cloze():
    """Left-padded item sessions (0 = padding) with the last item replaced by the mask token
    (num_items + 1 = 201), as BERT4Rec's evaluation feeds them."""
    r = np.random.default_rng(0)
    B, T = 32, 16
    lengths = r.integers(4, T + 1, B)
    real = np.arange(T)[None] >= (T - lengths)[:, None]
    x = r.integers(1, 201, (B, T)) * real
    x[:, -1] = 201
    return x.astype(np.int64)


# --- hustvl's Vision Mamba (Vim: models_mamba.py, a middle class token, bimamba v2) ----------


def selective_scan_ref(u, delta, A, B, C, D, z, delta_bias):
    """mamba_ssm/ops/selective_scan_interface.py selective_scan_ref (real A, B / C per
    position, delta_softplus=True)."""
    delta = F.softplus(delta + delta_bias[..., None])
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        y = torch.einsum("bdn,bn->bd", x, C[:, :, i])
        ys.append(y)
    y = torch.stack(ys, dim=2)
    out = y + u * rearrange(D, "d -> d 1")
    return out * F.silu(z)


class ScanBranch(nn.Module):
    def __init__(self, d_inner, d_state, dt_rank, d_conv=4):
        super().__init__()
        self.d_state, self.dt_rank = d_state, dt_rank
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        A = repeat(torch.arange(1, d_state + 1, dtype=torch.float32), "n -> d n", d=d_inner)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))

    def forward(self, x, z):
        L = x.shape[-1]
        x = F.silu(self.conv1d(x)[..., :L])
        x_dbl = self.x_proj(rearrange(x, "b d l -> (b l) d"))
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = self.dt_proj.weight @ dt.t()
        dt = rearrange(dt, "d (b l) -> b d l", l=L)
        B = rearrange(B, "(b l) dstate -> b dstate l", l=L).contiguous()
        C = rearrange(C, "(b l) dstate -> b dstate l", l=L).contiguous()
        A = -torch.exp(self.A_log.float())
        return selective_scan_ref(x, dt, A, B, C, self.D.float(), z, self.dt_proj.bias.float())


class BiMamba(nn.Module):
    def __init__(self, d_model, d_state=8, expand=2):
        super().__init__()
        self.d_inner = expand * d_model
        dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=False)
        self.fwd = ScanBranch(self.d_inner, d_state, dt_rank)
        self.bwd = ScanBranch(self.d_inner, d_state, dt_rank)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, hidden_states):
        xz = rearrange(self.in_proj(hidden_states), "b l d -> b d l")
        x, z = xz.chunk(2, dim=1)
        out = self.fwd(x, z)
        out_b = self.bwd(x.flip([-1]), z.flip([-1]))
        return self.out_proj(rearrange(out + out_b.flip([-1]), "b d l -> b l d") / 2)


class VimBlock(nn.Module):
    """Vim's Block: fused add + RMSNorm (residual kept in fp32), then the mixer."""

    def __init__(self, dim):
        super().__init__()
        self.mixer = BiMamba(dim)
        self.norm = RMSNorm(dim, eps=1e-5)

    def forward(self, hidden_states, residual=None):
        residual = hidden_states if residual is None else residual + hidden_states
        hidden_states = self.norm(residual)
        return self.mixer(hidden_states), residual


class VisionMamba(nn.Module):
    def __init__(self, img_size=16, patch_size=4, embed_dim=32, depth=2, num_classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim).normal_(std=0.02))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim).normal_(std=0.02))
        self.layers = nn.ModuleList(VimBlock(embed_dim) for _ in range(depth))
        self.norm_f = RMSNorm(embed_dim, eps=1e-5)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        B, M, _ = x.shape
        cls_token = self.cls_token.expand(B, -1, -1)
        token_position = M // 2  # use_middle_cls_token
        x = torch.cat((x[:, :token_position, :], cls_token, x[:, token_position:, :]), dim=1)
        x = x + self.pos_embed
        residual = None
        hidden_states = x
        for layer in self.layers:
            hidden_states, residual = layer(hidden_states, residual)
        residual = residual + hidden_states
        hidden_states = self.norm_f(residual)
        return self.head(hidden_states[:, token_position, :])


def vim():
    torch.manual_seed(0)
    return _gain(VisionMamba(), 1.0)


# --- facebookresearch/deit's CaiT (cait_models.py) --------------------------------------------


class TalkingHeadAttn(nn.Module):
    def __init__(self, dim, num_heads=4):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_l = nn.Linear(num_heads, num_heads)
        self.proj_w = nn.Linear(num_heads, num_heads)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(
            2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        attn = attn.softmax(dim=-1)
        attn = self.proj_w(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Class_Attention(nn.Module):
    def __init__(self, dim, num_heads=4):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        H = self.num_heads
        q = self.q(x[:, 0]).unsqueeze(1).reshape(B, 1, H, C // H).permute(0, 2, 1, 3)
        k = self.k(x).reshape(B, N, H, C // H).permute(0, 2, 1, 3)
        q = q * self.scale
        v = self.v(x).reshape(B, N, H, C // H).permute(0, 2, 1, 3)
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x_cls = (attn @ v).transpose(1, 2).reshape(B, 1, C)
        return self.proj(x_cls)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class LayerScale_Block(nn.Module):
    def __init__(self, dim, attn, init_values=0.1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
        self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class LayerScale_Block_CA(LayerScale_Block):
    def forward(self, x, x_cls):
        u = torch.cat((x_cls, x), dim=1)
        x_cls = x_cls + self.gamma_1 * self.attn(self.norm1(u))
        return x_cls + self.gamma_2 * self.mlp(self.norm2(x_cls))


class CaiT(nn.Module):
    def __init__(self, img_size=16, patch_size=4, dim=32, depth=3, depth_token_only=2,
                 num_classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim).normal_(std=0.02))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, dim).normal_(std=0.02))
        self.blocks = nn.ModuleList(LayerScale_Block(dim, TalkingHeadAttn(dim))
                                    for _ in range(depth))
        self.blocks_token_only = nn.ModuleList(LayerScale_Block_CA(dim, Class_Attention(dim))
                                               for _ in range(depth_token_only))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        B = x.shape[0]
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls_tokens = self.cls_token.expand(B, -1, -1)
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        for blk in self.blocks_token_only:
            cls_tokens = blk(x, cls_tokens)
        x = torch.cat((cls_tokens, x), dim=1)
        x = self.norm(x)
        return self.head(x[:, 0])


def cait():
    torch.manual_seed(0)
    return _gain(CaiT(), 1.0)


# --- snap-research's EfficientFormer (V1: Meta4D pooling blocks, a Flat, Meta3D attention) ---


class EFAttention(nn.Module):
    def __init__(self, dim, key_dim=8, num_heads=4, attn_ratio=2, resolution=4):
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.qkv = nn.Linear(dim, self.dh + self.nh_kd * 2)
        self.proj = nn.Linear(self.dh, dim)
        points = [(i, j) for i in range(resolution) for j in range(resolution)]
        attention_offsets, idxs = {}, []
        for p1 in points:
            for p2 in points:
                offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                if offset not in attention_offsets:
                    attention_offsets[offset] = len(attention_offsets)
                idxs.append(attention_offsets[offset])
        self.attention_biases = nn.Parameter(0.1 * torch.randn(num_heads, len(attention_offsets)))
        self.register_buffer("attention_bias_idxs",
                             torch.LongTensor(idxs).view(len(points), len(points)))

    def forward(self, x):
        B, N, _C = x.shape
        qkv = self.qkv(x)
        q, k, v = qkv.reshape(B, N, self.num_heads, -1).permute(0, 2, 1, 3).split(
            [self.key_dim, self.key_dim, self.d], dim=3)
        attn = (q @ k.transpose(-2, -1)) * self.scale \
            + self.attention_biases[:, self.attention_bias_idxs]
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, self.dh)
        return self.proj(x)


class Meta4D(nn.Module):
    def __init__(self, dim, pool_size=3, mlp_ratio=4, layer_scale_init_value=1e-1):
        super().__init__()
        self.token_mixer = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2,
                                        count_include_pad=False)
        hidden = dim * mlp_ratio
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.BatchNorm2d(hidden), nn.GELU(),
                                 nn.Conv2d(hidden, dim, 1), nn.BatchNorm2d(dim))
        self.layer_scale_1 = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x):
        x = x + self.layer_scale_1.unsqueeze(-1).unsqueeze(-1) * (self.token_mixer(x) - x)
        return x + self.layer_scale_2.unsqueeze(-1).unsqueeze(-1) * self.mlp(x)


class Meta3D(nn.Module):
    def __init__(self, dim, mlp_ratio=4, layer_scale_init_value=1e-1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mixer = EFAttention(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.layer_scale_1 = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x):
        x = x + self.layer_scale_1.unsqueeze(0).unsqueeze(0) * self.token_mixer(self.norm1(x))
        return x + self.layer_scale_2.unsqueeze(0).unsqueeze(0) * self.mlp(self.norm2(x))


class EfficientFormer(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.stage1 = nn.Sequential(Meta4D(16), Meta4D(16))
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32))  # Embedding
        self.stage2 = Meta4D(32)
        self.meta3d = nn.ModuleList([Meta3D(32), Meta3D(32)])
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, num_classes)
        self.dist_head = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        x = x.flatten(2).transpose(1, 2)  # Flat
        for blk in self.meta3d:
            x = blk(x)
        x = self.norm(x)
        return (self.head(x.mean(-2)) + self.dist_head(x.mean(-2))) / 2


def efficientformer():
    torch.manual_seed(0)
    m = EfficientFormer()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return _gain(m, 1.0)


# --- allenai's OLMo-2 by hand (olmo/model.py: QK-norm over the width, norms after sublayers) --


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    def __init__(self, dim, theta=500000.0):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, q, k):
        T = q.shape[-2]
        seq = torch.arange(T, dtype=torch.float)
        freqs = torch.einsum("i , j -> i j", seq, self.inv_freq)
        positions = torch.cat((freqs, freqs), dim=-1)
        sin, cos = positions.sin()[None, None], positions.cos()[None, None]
        return (q * cos + rotate_half(q) * sin), (k * cos + rotate_half(k) * sin)


class OLMo2Block(nn.Module):
    def __init__(self, d, n_heads=4):
        super().__init__()
        self.n_heads = n_heads
        self.att_proj = nn.Linear(d, 3 * d, bias=False)
        self.q_norm = RMSNorm(d, eps=1e-6)
        self.k_norm = RMSNorm(d, eps=1e-6)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.attn_norm = RMSNorm(d, eps=1e-6)
        self.ff_proj = nn.Linear(d, 2 * 2 * d, bias=False)
        self.ff_out = nn.Linear(2 * d, d, bias=False)
        self.ff_norm = RMSNorm(d, eps=1e-6)
        self.rotary_emb = RotaryEmbedding(d // n_heads)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.att_proj(x).split(C, dim=-1)
        q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        k = k.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        v = v.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        q, k = self.rotary_emb(q, k)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.attn_out(att.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x):
        x = x + self.attn_norm(self.attention(x))
        h = self.ff_proj(x)
        h, gate = h.chunk(2, dim=-1)  # SwiGLU: act(gate) * x
        return x + self.ff_norm(self.ff_out(F.silu(gate) * h))


class OLMo2(nn.Module):
    def __init__(self, vocab=100, d=32, n=2):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(OLMo2Block(d) for _ in range(n))
        self.ln_f = RMSNorm(d, eps=1e-6)
        self.ff_out = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.wte(input_ids)
        for block in self.blocks:
            x = block(x)
        return self.ff_out(self.ln_f(x))


def olmo2():
    torch.manual_seed(0)
    return _gain(OLMo2(), 1.5)


# --- lucidrains' hourglass-transformer-pytorch (causal, naive shortening by mean pooling) ----


class CausalAttention(nn.Module):
    def __init__(self, dim, heads=2):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x):
        x = self.norm(x)
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        q = q * self.scale
        sim = torch.einsum("b h i d, b h j d -> b h i j", q, k)
        i, j = sim.shape[-2:]
        mask = torch.ones(i, j, dtype=torch.bool).triu(j - i + 1)
        sim = sim.masked_fill(mask, -torch.finfo(sim.dtype).max)
        attn = sim.softmax(dim=-1)
        out = torch.einsum("b h i j, b h j d -> b h i d", attn, v)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(),
                                 nn.Linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self, dim, depth):
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleList([CausalAttention(dim), FeedForward(dim)])
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


def pad_to_multiple(tensor, multiple, dim=-1, value=0):
    seq_len = tensor.shape[dim]
    m = seq_len / multiple
    if m.is_integer():
        return tensor
    remainder = math.ceil(m) * multiple - seq_len
    pad_offset = (0,) * (-1 - dim) * 2
    return F.pad(tensor, (*pad_offset, 0, remainder), value=value)


class HourglassTransformer(nn.Module):
    def __init__(self, dim, shorten_factor=2, depth=(1, 1, 1)):
        super().__init__()
        pre, valley, post = depth
        self.shorten_factor = shorten_factor
        self.pre_transformer = Transformer(dim, pre)
        self.valley_transformer = Transformer(dim, valley)
        self.post_transformer = Transformer(dim, post)

    def forward(self, x):
        s, n = self.shorten_factor, x.shape[-2]
        x = self.pre_transformer(x)
        x = pad_to_multiple(x, s, dim=-2)
        x_residual = x.clone()
        shift = s - 1
        x = F.pad(x, (0, 0, shift, -shift), value=0.0)
        downsampled = reduce(x, "b (n s) d -> b n d", "mean", s=s)
        x = self.valley_transformer(downsampled)
        x = repeat(x, "b n d -> b (n s) d", s=s)
        x = x + x_residual
        x = x[:, :n]
        return self.post_transformer(x)


class HourglassTransformerLM(nn.Module):
    def __init__(self, num_tokens=100, dim=32, max_seq_len=64):
        super().__init__()
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = nn.Embedding(max_seq_len, dim)
        self.transformer = HourglassTransformer(dim)
        self.to_logits = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_tokens))

    def forward(self, x):
        n = x.shape[1]
        x = self.token_emb(x)
        x = x + rearrange(self.pos_emb(torch.arange(n)), "n d -> () n d")
        return self.to_logits(self.transformer(x))


def hourglass():
    torch.manual_seed(0)
    return _gain(HourglassTransformerLM(), 1.5)


# --- Perceiver AR (lucidrains' perceiver-ar-pytorch: causal cross-attention of the last
# positions to the prefix, then self-attention over those latents) ----------------------------


class CausalPrefixAttention(nn.Module):
    def __init__(self, dim, heads=2):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.context_norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, dim * 2, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)

    def forward(self, x, context):
        x = self.norm(x)
        context = self.context_norm(context)
        context = torch.cat((context, x), dim=-2)  # the prefix, then the latents themselves
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        q = q * self.scale
        sim = torch.einsum("b h i d, b h j d -> b h i j", q, k)
        i, j = sim.shape[-2:]
        causal_mask = torch.ones((i, j), dtype=torch.bool).triu(j - i + 1)
        sim = sim.masked_fill(causal_mask, -torch.finfo(sim.dtype).max)
        attn = sim.softmax(dim=-1)
        out = torch.einsum("b h i j, b h j d -> b h i d", attn, v)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class PerceiverAR(nn.Module):
    def __init__(self, num_tokens=100, dim=32, depth=2, max_seq_len=32, cross_attn_seq_len=8):
        super().__init__()
        self.cross_attn_seq_len = cross_attn_seq_len
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = nn.Embedding(max_seq_len, dim)
        self.cross_attn = CausalPrefixAttention(dim)
        self.cross_ff = FeedForward(dim)
        self.layers = nn.ModuleList(nn.ModuleList([CausalAttention(dim), FeedForward(dim)])
                                    for _ in range(depth))
        self.to_logits = nn.Linear(dim, num_tokens, bias=False)

    def forward(self, x):
        n = x.shape[1]
        x = self.token_emb(x)
        x = x + self.pos_emb(torch.arange(n))
        prefix, x = x[:, :self.cross_attn_seq_len], x[:, self.cross_attn_seq_len:]
        x = self.cross_attn(x, prefix) + x
        x = self.cross_ff(x) + x
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.to_logits(x)


def perceiver_ar():
    torch.manual_seed(0)
    return _gain(PerceiverAR(), 1.5)


# --- DeepSeekMoE (deepseek-ai/DeepSeek-MoE modeling: shared experts + fine-grained routed
# experts, softmax gate, top-k), the routed experts run densely through a scattered gate ----


class MLP(nn.Module):
    """DeepseekMLP: gate_proj / up_proj / down_proj, act_fn = ACT2FN[hidden_act]."""

    def __init__(self, d, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class DeepseekMoE(nn.Module):
    def __init__(self, d, n_routed=8, top_k=2, n_shared=2, moe_hidden=16):
        super().__init__()
        self.top_k = top_k
        self.experts = nn.ModuleList(MLP(d, moe_hidden) for _ in range(n_routed))
        self.gate = nn.Linear(d, n_routed, bias=False)
        self.shared_experts = MLP(d, moe_hidden * n_shared)

    def forward(self, hidden_states):
        identity = hidden_states
        bsz, seq_len, h = hidden_states.shape
        x = hidden_states.view(-1, h)
        scores = self.gate(x).softmax(dim=-1)
        topk_weight, topk_idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        combine = torch.zeros_like(scores).scatter(1, topk_idx, topk_weight)  # (N, E)
        expert_out = torch.stack([e(x) for e in self.experts], dim=1)  # (N, E, h)
        y = (combine.unsqueeze(-1) * expert_out).sum(dim=1).view(bsz, seq_len, h)
        return y + self.shared_experts(identity)


class DeepseekAttention(nn.Module):
    def __init__(self, d, n_heads=4):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.rotary_emb = RotaryEmbedding(d // n_heads, theta=10000.0)

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_heads
        q = self.q_proj(x).view(B, T, H, -1).transpose(1, 2)
        k = self.k_proj(x).view(B, T, H, -1).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, -1).transpose(1, 2)
        q, k = self.rotary_emb(q, k)
        mask = torch.full((T, T), torch.finfo(x.dtype).min).triu(1)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(att.transpose(1, 2).reshape(B, T, C))


class DeepseekMoELM(nn.Module):
    """first_k_dense_replace=1: the first layer's MLP dense, the next a DeepseekMoE."""

    def __init__(self, vocab=100, d=32, n=2):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.input_layernorms = nn.ModuleList(RMSNorm(d) for _ in range(n))
        self.attns = nn.ModuleList(DeepseekAttention(d) for _ in range(n))
        self.post_attention_layernorms = nn.ModuleList(RMSNorm(d) for _ in range(n))
        self.mlps = nn.ModuleList([MLP(d, 64)] + [DeepseekMoE(d) for _ in range(n - 1)])
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.embed_tokens(input_ids)
        for ln1, attn, ln2, mlp in zip(self.input_layernorms, self.attns,
                                       self.post_attention_layernorms, self.mlps, strict=True):
            x = x + attn(ln1(x))
            x = x + mlp(ln2(x))
        return self.lm_head(self.norm(x))


def deepseek_moe():
    torch.manual_seed(0)
    return _gain(DeepseekMoELM(), 1.5)


P = (3, 14, 15, 9, 26)

NETWORKS = (
    Network("rwkv7", "BlinkDL's RWKV-7 (RWKV7_OP reference: state * w + state @ a @ b + v @ k "
            "as a loop over time, w = exp(-exp(-softplus(-.) - 0.5)) by LoRAs, v_first "
            "residual mix, L2-normed kk, GroupNorm ln_x, r * k * r_k bonus, ZeroPad2d shift)",
            "rwkv7", ids(100, 8, 32), prompt=P, tokens=8),
    Network("minlstm", "Feng et al.'s minLSTM (f / i normalised in log space by softplus "
            "differences, log_g, parallel_scan_log with a learned h0: cumsum + logcumsumexp) "
            "in a pre-RMSNorm LM with causal depthwise convs by F.pad", "minlstm",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("ttt_linear", "TTT-Linear (ttt-lm-pytorch: per token, Z = k W + b, "
            "ln_fused_l2_bwd gradient against v - k, W -= eta k^T grad with a learned sigmoid "
            "eta, output q + LN(q W + b)) in a Llama-style stack", "ttt_linear",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("timesnet", "thuml's TimesNet with fixed periods 8 / 4 (1-D to 2-D fold by "
            "reshape / permute, Inception_Block_V1 of 3 Conv2d stacked and meaned, periods "
            "weighted by softmax of the rfft amplitudes abs(xf).mean(-1) at their frequencies, "
            "circular-pad token conv, instance normalisation)", "timesnet", _series(32, 32, 4)),
    Network("fedformer", "FEDformer's encoder (FourierBlock: rfft, complex cfloat weights on "
            "the 4 lowest modes by a complex einsum written into a zeros cfloat buffer, irfft; "
            "series_decomp by repeat + AvgPool1d; seasonal / trend heads)", "fedformer",
            _series(32, 32, 4)),
    Network("crossformer", "Thinklab-SJTU's Crossformer (DSW segment embedding by einops, "
            "TwoStageAttentionLayer: cross-time attention over (b ts_d) then cross-dimension "
            "through a learned router repeated over the batch, einsum attention)",
            "crossformer", _series(32, 32, 6)),
    Network("segrnn", "lss-1138's SegRNN (last-value normalisation, segments of 4 embedded by "
            "Linear + ReLU into nn.GRU, parallel multi-step decoding: position and channel "
            "embeddings cat'ed as one-step inputs with hn repeated as the initial state)",
            "segrnn", _series(32, 32, 6)),
    Network("bert4rec", "BERT4Rec (BERT4Rec-VAE-Pytorch: (x > 0) mask repeated into (B, 1, T, "
            "T), masked_fill(mask == 0, -1e9), LayerNorm by x.std (unbiased) + eps, tanh GELU "
            "class, SublayerConnection lambdas, learned positions by weight.repeat) on left-"
            "padded sessions ending in the mask token", "bert4rec", _cloze),
    Network("vim", "hustvl's Vision Mamba (middle class token cat'ed at M // 2, bimamba v2: "
            "a forward and a flip'ped backward selective_scan_ref loop with their own conv / "
            "x_proj / dt_proj, averaged; fused add + RMSNorm residual)", "vim",
            floats(16, 3, 16, 16)),
    Network("cait", "facebookresearch's CaiT (talking-heads attention: Linear over the heads "
            "before and after softmax by permute, LayerScale gamma, class-attention blocks "
            "with the class token as the only query, cat'ed back before the norm)", "cait",
            floats(16, 3, 16, 16)),
    Network("efficientformer", "snap-research's EfficientFormer (Meta4D: layer-scaled "
            "AvgPool2d(count_include_pad=False) - x and a BN conv MLP; Flat; Meta3D attention "
            "with attention_biases[:, idxs] and split q / k / v; head + dist_head averaged)",
            "efficientformer", floats(16, 3, 32, 32)),
    Network("olmo2", "allenai's OLMo-2 by hand (fused att_proj split, q / k RMSNorm over the "
            "whole width before the heads, rotate_half RoPE theta 5e5, SDPA is_causal, norms "
            "after attention and MLP inside the residual, ff_proj chunk SwiGLU)", "olmo2",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("hourglass", "lucidrains' Hourglass transformer (pad_to_multiple, shift right by "
            "F.pad(x, (0, 0, 1, -1)), einops reduce mean-pool shortening by 2, valley "
            "transformer, repeat upsampling + residual, triu masked_fill(-finfo.max))",
            "hourglass", ids(100, 8, 32), prompt=P, tokens=8),
    Network("perceiver_ar", "Perceiver AR (lucidrains' perceiver-ar-pytorch: the last 24 of 32 "
            "positions cross-attend to the 8-token prefix and themselves with a triu(j - i + "
            "1) mask, then causal self-attention over those latents; logits for them only)",
            "perceiver_ar", ids(100, 8, 32)),
    Network("deepseek_moe", "DeepSeekMoE by hand (first layer dense, then 2 shared experts "
            "beside 8 fine-grained routed ones: softmax gate, topk(2, sorted=False), weights "
            "scatter'ed into a dense (N, E) combine over all experts' stacked outputs)",
            "deepseek_moe", ids(100, 8, 32), prompt=P, tokens=8),
)

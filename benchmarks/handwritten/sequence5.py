"""Language / sequence / time-series / tabular models written by hand, the fifth round, each the
way a well-known codebase writes it: ElementAI's N-BEATS (flipped residual stacks, trend and
seasonality bases as fixed einsums), cure-lab's DLinear (moving average by replicate padding
with repeat + cat into AvgPool1d, per-channel Linears written into a zeros tensor), locuslab's
TCN word model (weight_norm causal dilated Conv1d + Chomp1d), laiguokun's LSTNet (Conv2d over
the window, GRU, skip-GRU over the batch-folded periods, autoregressive highway), thuml's
iTransformer (variates as tokens, instance normalisation and de-normalisation), Yandex rtdl's
FT-Transformer (per-feature tokenizer, CLS token appended last, ReGLU, last layer queries the
CLS only), lucidrains' TabTransformer (column offsets by F.pad + cumsum, einops attention),
lucidrains' Linformer (keys and values projected along the sequence), lucidrains' Performer
(FAVOR+ softmax kernel with a fixed orthogonal projection, amax stabiliser), Zhang et al.'s
character CNN (F.one_hot input, Conv1d k7 / MaxPool1d(3) stack), the PyTorch seq2seq tutorial's
GRU encoder-decoder with Bahdanau attention unrolled with teacher forcing, a Universal
Transformer (one layer applied N times with timing and step signals), BitNet b1.58 (BitLinear
with per-token absmax activation and absmean ternary weight fake quantization through the
straight-through x + (q - x).detach()) and Salesforce's QRNN (ForgetMult as a loop over time).
Small, random weights."""

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from benchmarks.handwritten import Network, floats, ids


def _gain(m, g):
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.mul_(g)
    return m.eval()


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


# --- ElementAI's N-BEATS (models/nbeats.py): generic, trend and seasonality blocks ---------


class NBeatsBlock(nn.Module):
    def __init__(self, input_size, theta_size, basis_function, layers, layer_size):
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Linear(input_size, layer_size)]
            + [nn.Linear(layer_size, layer_size) for _ in range(layers - 1)])
        self.basis_parameters = nn.Linear(layer_size, theta_size)
        self.basis_function = basis_function

    def forward(self, x):
        block_input = x
        for layer in self.layers:
            block_input = torch.relu(layer(block_input))
        basis_parameters = self.basis_parameters(block_input)
        return self.basis_function(basis_parameters)


class NBeats(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.blocks = blocks

    def forward(self, x):
        residuals = x.flip(dims=(1,))
        forecast = x[:, -1:]
        for block in self.blocks:
            backcast, block_forecast = block(residuals)
            residuals = residuals - backcast
            forecast = forecast + block_forecast
        return forecast


class GenericBasis(nn.Module):
    def __init__(self, backcast_size, forecast_size):
        super().__init__()
        self.backcast_size, self.forecast_size = backcast_size, forecast_size

    def forward(self, theta):
        return theta[:, :self.backcast_size], theta[:, -self.forecast_size:]


class TrendBasis(nn.Module):
    def __init__(self, degree_of_polynomial, backcast_size, forecast_size):
        super().__init__()
        self.polynomial_size = degree_of_polynomial + 1
        self.backcast_time = nn.Parameter(torch.tensor(np.concatenate(
            [np.power(np.arange(backcast_size, dtype=float) / backcast_size, i)[None, :]
             for i in range(self.polynomial_size)]), dtype=torch.float32), requires_grad=False)
        self.forecast_time = nn.Parameter(torch.tensor(np.concatenate(
            [np.power(np.arange(forecast_size, dtype=float) / forecast_size, i)[None, :]
             for i in range(self.polynomial_size)]), dtype=torch.float32), requires_grad=False)

    def forward(self, theta):
        backcast = torch.einsum("bp,pt->bt", theta[:, self.polynomial_size:], self.backcast_time)
        forecast = torch.einsum("bp,pt->bt", theta[:, :self.polynomial_size], self.forecast_time)
        return backcast, forecast


class SeasonalityBasis(nn.Module):
    def __init__(self, harmonics, backcast_size, forecast_size):
        super().__init__()
        self.frequency = np.append(np.zeros(1, dtype=np.float32),
                                   np.arange(harmonics, harmonics / 2 * forecast_size,
                                             dtype=np.float32) / harmonics)[None, :]
        backcast_grid = -2 * np.pi * (
            np.arange(backcast_size, dtype=np.float32)[:, None] / forecast_size) * self.frequency
        forecast_grid = 2 * np.pi * (
            np.arange(forecast_size, dtype=np.float32)[:, None] / forecast_size) * self.frequency
        as_param = lambda a: nn.Parameter(torch.tensor(a, dtype=torch.float32),
                                          requires_grad=False)
        self.backcast_cos_template = as_param(np.transpose(np.cos(backcast_grid)))
        self.backcast_sin_template = as_param(np.transpose(np.sin(backcast_grid)))
        self.forecast_cos_template = as_param(np.transpose(np.cos(forecast_grid)))
        self.forecast_sin_template = as_param(np.transpose(np.sin(forecast_grid)))

    def forward(self, theta):
        params_per_harmonic = theta.shape[1] // 4
        backcast_harmonics_cos = torch.einsum("bp,pt->bt", theta[:, 2 * params_per_harmonic:
                                              3 * params_per_harmonic],
                                              self.backcast_cos_template)
        backcast_harmonics_sin = torch.einsum("bp,pt->bt", theta[:, 3 * params_per_harmonic:],
                                              self.backcast_sin_template)
        backcast = backcast_harmonics_sin + backcast_harmonics_cos
        forecast_harmonics_cos = torch.einsum("bp,pt->bt", theta[:, :params_per_harmonic],
                                              self.forecast_cos_template)
        forecast_harmonics_sin = torch.einsum("bp,pt->bt", theta[:, params_per_harmonic:
                                              2 * params_per_harmonic],
                                              self.forecast_sin_template)
        forecast = forecast_harmonics_sin + forecast_harmonics_cos
        return backcast, forecast


def nbeats():
    """The interpretable configuration (a trend stack, a seasonality stack) plus one generic
    block: lookback 24, horizon 8."""
    torch.manual_seed(0)
    L, H, width = 24, 8, 64
    trend = TrendBasis(3, L, H)
    season = SeasonalityBasis(2, L, H)
    blocks = nn.ModuleList(
        [NBeatsBlock(L, 2 * 4, trend, 3, width) for _ in range(2)]
        + [NBeatsBlock(L, 4 * int(np.ceil(2 / 2 * H) - (2 - 1)), season, 3, width)
           for _ in range(2)]
        + [NBeatsBlock(L, L + H, GenericBasis(L, H), 3, width)])
    return NBeats(blocks).eval()


def _lookback():
    f = _series(32, 24, 1)
    return lambda: f()[:, :, 0]


# --- cure-lab's LTSF-Linear DLinear (models/DLinear.py), individual=True --------------------


class MovingAvg(nn.Module):
    def __init__(self, kernel_size, stride):
        super().__init__()
        self.kernel_size = kernel_size
        self.avg = nn.AvgPool1d(kernel_size=kernel_size, stride=stride, padding=0)

    def forward(self, x):
        front = x[:, 0:1, :].repeat(1, (self.kernel_size - 1) // 2, 1)
        end = x[:, -1:, :].repeat(1, (self.kernel_size - 1) // 2, 1)
        x = torch.cat([front, x, end], dim=1)
        x = self.avg(x.permute(0, 2, 1))
        return x.permute(0, 2, 1)


class SeriesDecomp(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.moving_avg = MovingAvg(kernel_size, stride=1)

    def forward(self, x):
        moving_mean = self.moving_avg(x)
        res = x - moving_mean
        return res, moving_mean


class DLinear(nn.Module):
    def __init__(self, seq_len=48, pred_len=12, enc_in=4, kernel_size=25, individual=True):
        super().__init__()
        self.seq_len, self.pred_len, self.channels = seq_len, pred_len, enc_in
        self.decompsition = SeriesDecomp(kernel_size)
        self.individual = individual
        if individual:
            self.Linear_Seasonal = nn.ModuleList(nn.Linear(seq_len, pred_len)
                                                 for _ in range(enc_in))
            self.Linear_Trend = nn.ModuleList(nn.Linear(seq_len, pred_len) for _ in range(enc_in))
        else:
            self.Linear_Seasonal = nn.Linear(seq_len, pred_len)
            self.Linear_Trend = nn.Linear(seq_len, pred_len)

    def forward(self, x):  # (batch, seq_len, channels)
        seasonal_init, trend_init = self.decompsition(x)
        seasonal_init, trend_init = seasonal_init.permute(0, 2, 1), trend_init.permute(0, 2, 1)
        if self.individual:
            seasonal_output = torch.zeros([seasonal_init.size(0), seasonal_init.size(1),
                                           self.pred_len], dtype=seasonal_init.dtype)
            trend_output = torch.zeros([trend_init.size(0), trend_init.size(1), self.pred_len],
                                       dtype=trend_init.dtype)
            for i in range(self.channels):
                seasonal_output[:, i, :] = self.Linear_Seasonal[i](seasonal_init[:, i, :])
                trend_output[:, i, :] = self.Linear_Trend[i](trend_init[:, i, :])
        else:
            seasonal_output = self.Linear_Seasonal(seasonal_init)
            trend_output = self.Linear_Trend(trend_init)
        x = seasonal_output + trend_output
        return x.permute(0, 2, 1)  # (batch, pred_len, channels)


def dlinear():
    torch.manual_seed(0)
    return DLinear().eval()


# --- locuslab's TCN (TCN/tcn.py, word_cnn/model.py): weight_norm causal dilated convs ------


class Chomp1d(nn.Module):
    def __init__(self, chomp_size):
        super().__init__()
        self.chomp_size = chomp_size

    def forward(self, x):
        return x[:, :, :-self.chomp_size].contiguous()


class TemporalBlock(nn.Module):
    def __init__(self, n_inputs, n_outputs, kernel_size, stride, dilation, padding, dropout=0.2):
        super().__init__()
        wn = nn.utils.weight_norm
        self.conv1 = wn(nn.Conv1d(n_inputs, n_outputs, kernel_size, stride=stride,
                                  padding=padding, dilation=dilation))
        self.chomp1 = Chomp1d(padding)
        self.relu1 = nn.ReLU()
        self.dropout1 = nn.Dropout(dropout)
        self.conv2 = wn(nn.Conv1d(n_outputs, n_outputs, kernel_size, stride=stride,
                                  padding=padding, dilation=dilation))
        self.chomp2 = Chomp1d(padding)
        self.relu2 = nn.ReLU()
        self.dropout2 = nn.Dropout(dropout)
        self.net = nn.Sequential(self.conv1, self.chomp1, self.relu1, self.dropout1,
                                 self.conv2, self.chomp2, self.relu2, self.dropout2)
        self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None
        self.relu = nn.ReLU()
        self.conv1.weight.data.normal_(0, 0.01)
        self.conv2.weight.data.normal_(0, 0.01)
        if self.downsample is not None:
            self.downsample.weight.data.normal_(0, 0.01)

    def forward(self, x):
        out = self.net(x)
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


class TemporalConvNet(nn.Module):
    def __init__(self, num_inputs, num_channels, kernel_size=2, dropout=0.2):
        super().__init__()
        layers = []
        for i in range(len(num_channels)):
            dilation_size = 2 ** i
            in_channels = num_inputs if i == 0 else num_channels[i - 1]
            out_channels = num_channels[i]
            layers += [TemporalBlock(in_channels, out_channels, kernel_size, stride=1,
                                     dilation=dilation_size,
                                     padding=(kernel_size - 1) * dilation_size, dropout=dropout)]
        self.network = nn.Sequential(*layers)

    def forward(self, x):
        return self.network(x)


class TCNWord(nn.Module):
    """word_cnn/model.py's TCN: embedding, TCN over (B, C, T), decoder tied to the encoder."""

    def __init__(self, input_size=32, output_size=100, num_channels=(48, 48, 32), kernel_size=3):
        super().__init__()
        self.encoder = nn.Embedding(output_size, input_size)
        self.tcn = TemporalConvNet(input_size, list(num_channels), kernel_size)
        self.decoder = nn.Linear(num_channels[-1], output_size)
        self.decoder.weight = self.encoder.weight
        self.drop = nn.Dropout(0.1)
        self.encoder.weight.data.normal_(0, 0.3)
        self.decoder.bias.data.fill_(0)

    def forward(self, input):
        emb = self.drop(self.encoder(input))
        y = self.tcn(emb.transpose(1, 2)).transpose(1, 2)
        return self.decoder(y).contiguous()


def tcn():
    torch.manual_seed(0)
    return TCNWord().eval()


# --- laiguokun's LSTNet (models/LSTNet.py): CNN, GRU, skip-GRU, highway ---------------------


class LSTNet(nn.Module):
    def __init__(self, window=24, m=8, hidRNN=32, hidCNN=32, hidSkip=8, CNN_kernel=6, skip=4,
                 highway_window=6):
        super().__init__()
        self.P, self.m = window, m
        self.hidR, self.hidC, self.hidS = hidRNN, hidCNN, hidSkip
        self.Ck, self.skip = CNN_kernel, skip
        self.pt = (self.P - self.Ck) // self.skip
        self.hw = highway_window
        self.conv1 = nn.Conv2d(1, self.hidC, kernel_size=(self.Ck, self.m))
        self.GRU1 = nn.GRU(self.hidC, self.hidR)
        self.dropout = nn.Dropout(p=0.2)
        self.GRUskip = nn.GRU(self.hidC, self.hidS)
        self.linear1 = nn.Linear(self.hidR + self.skip * self.hidS, self.m)
        self.highway = nn.Linear(self.hw, 1)
        self.output = torch.sigmoid

    def forward(self, x):
        batch_size = x.size(0)
        # CNN
        c = x.view(-1, 1, self.P, self.m)
        c = F.relu(self.conv1(c))
        c = self.dropout(c)
        c = torch.squeeze(c, 3)
        # RNN
        r = c.permute(2, 0, 1).contiguous()
        _, r = self.GRU1(r)
        r = self.dropout(torch.squeeze(r, 0))
        # skip-rnn
        s = c[:, :, int(-self.pt * self.skip):].contiguous()
        s = s.view(batch_size, self.hidC, self.pt, self.skip)
        s = s.permute(2, 0, 3, 1).contiguous()
        s = s.view(self.pt, batch_size * self.skip, self.hidC)
        _, s = self.GRUskip(s)
        s = s.view(batch_size, self.skip * self.hidS)
        s = self.dropout(s)
        r = torch.cat((r, s), 1)
        res = self.linear1(r)
        # highway
        z = x[:, -self.hw:, :]
        z = z.permute(0, 2, 1).contiguous().view(-1, self.hw)
        z = self.highway(z)
        z = z.view(-1, self.m)
        res = res + z
        return self.output(res)


def lstnet():
    torch.manual_seed(0)
    return LSTNet().eval()


# --- thuml's iTransformer (model/iTransformer.py, layers/*): variates as tokens ------------


class FullAttention(nn.Module):
    def forward(self, queries, keys, values):
        _B, _L, _H, E = queries.shape
        scale = 1.0 / math.sqrt(E)
        scores = torch.einsum("blhe,bshe->bhls", queries, keys)
        A = torch.softmax(scale * scores, dim=-1)
        V = torch.einsum("bhls,bshd->blhd", A, values)
        return V.contiguous()


class AttentionLayer(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        d_keys = d_model // n_heads
        self.inner_attention = FullAttention()
        self.query_projection = nn.Linear(d_model, d_keys * n_heads)
        self.key_projection = nn.Linear(d_model, d_keys * n_heads)
        self.value_projection = nn.Linear(d_model, d_keys * n_heads)
        self.out_projection = nn.Linear(d_keys * n_heads, d_model)
        self.n_heads = n_heads

    def forward(self, queries, keys, values):
        B, L, _ = queries.shape
        _, S, _ = keys.shape
        H = self.n_heads
        queries = self.query_projection(queries).view(B, L, H, -1)
        keys = self.key_projection(keys).view(B, S, H, -1)
        values = self.value_projection(values).view(B, S, H, -1)
        out = self.inner_attention(queries, keys, values)
        out = out.view(B, L, -1)
        return self.out_projection(out)


class ITransEncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.attention = AttentionLayer(d_model, n_heads)
        self.conv1 = nn.Conv1d(in_channels=d_model, out_channels=d_ff, kernel_size=1)
        self.conv2 = nn.Conv1d(in_channels=d_ff, out_channels=d_model, kernel_size=1)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(0.1)
        self.activation = F.gelu

    def forward(self, x):
        x = x + self.dropout(self.attention(x, x, x))
        y = x = self.norm1(x)
        y = self.dropout(self.activation(self.conv1(y.transpose(-1, 1))))
        y = self.dropout(self.conv2(y).transpose(-1, 1))
        return self.norm2(x + y)


class ITransformer(nn.Module):
    def __init__(self, seq_len=48, pred_len=12, d_model=64, n_heads=4, d_ff=128, e_layers=2):
        super().__init__()
        self.seq_len, self.pred_len = seq_len, pred_len
        self.value_embedding = nn.Linear(seq_len, d_model)
        self.dropout = nn.Dropout(0.1)
        self.layers = nn.ModuleList(ITransEncoderLayer(d_model, n_heads, d_ff)
                                    for _ in range(e_layers))
        self.norm = nn.LayerNorm(d_model)
        self.projector = nn.Linear(d_model, pred_len, bias=True)

    def forward(self, x_enc):
        means = x_enc.mean(1, keepdim=True).detach()
        x_enc = x_enc - means
        stdev = torch.sqrt(torch.var(x_enc, dim=1, keepdim=True, unbiased=False) + 1e-5)
        x_enc /= stdev
        _, _, N = x_enc.shape
        enc_out = self.dropout(self.value_embedding(x_enc.permute(0, 2, 1)))
        for layer in self.layers:
            enc_out = layer(enc_out)
        enc_out = self.norm(enc_out)
        dec_out = self.projector(enc_out).permute(0, 2, 1)[:, :, :N]
        dec_out = dec_out * (stdev[:, 0, :].unsqueeze(1).repeat(1, self.pred_len, 1))
        dec_out = dec_out + (means[:, 0, :].unsqueeze(1).repeat(1, self.pred_len, 1))
        return dec_out


def itransformer():
    torch.manual_seed(0)
    return ITransformer().eval()


# --- Yandex rtdl's FT-Transformer (rtdl/modules.py) -----------------------------------------


class NumericalFeatureTokenizer(nn.Module):
    def __init__(self, n_features, d_token):
        super().__init__()
        s = d_token ** -0.5
        self.weight = nn.Parameter(torch.empty(n_features, d_token).uniform_(-s, s))
        self.bias = nn.Parameter(torch.empty(n_features, d_token).uniform_(-s, s))

    def forward(self, x):
        x = self.weight[None] * x[..., None]
        return x + self.bias[None]


class CLSToken(nn.Module):
    def __init__(self, d_token):
        super().__init__()
        s = d_token ** -0.5
        self.weight = nn.Parameter(torch.empty(d_token).uniform_(-s, s))

    def expand(self, *leading_dimensions):
        if not leading_dimensions:
            return self.weight
        new_dims = (1,) * (len(leading_dimensions) - 1)
        return self.weight.view(*new_dims, -1).expand(*leading_dimensions, -1)

    def forward(self, x):
        return torch.cat([x, self.expand(len(x), 1)], dim=1)


class RtdlMultiheadAttention(nn.Module):
    def __init__(self, d_token, n_heads):
        super().__init__()
        self.W_q = nn.Linear(d_token, d_token)
        self.W_k = nn.Linear(d_token, d_token)
        self.W_v = nn.Linear(d_token, d_token)
        self.W_out = nn.Linear(d_token, d_token)
        self.n_heads = n_heads

    def _reshape(self, x):
        batch_size, n_tokens, d = x.shape
        d_head = d // self.n_heads
        return (x.reshape(batch_size, n_tokens, self.n_heads, d_head).transpose(1, 2)
                .reshape(batch_size * self.n_heads, n_tokens, d_head))

    def forward(self, x_q, x_kv):
        q, k, v = self.W_q(x_q), self.W_k(x_kv), self.W_v(x_kv)
        batch_size = len(q)
        d_head_key = k.shape[-1] // self.n_heads
        d_head_value = v.shape[-1] // self.n_heads
        n_q_tokens = q.shape[1]
        q, k, v = self._reshape(q), self._reshape(k), self._reshape(v)
        attention_logits = q @ k.transpose(1, 2) / math.sqrt(d_head_key)
        attention_probs = F.softmax(attention_logits, dim=-1)
        x = attention_probs @ v
        x = (x.reshape(batch_size, self.n_heads, n_q_tokens, d_head_value).transpose(1, 2)
             .reshape(batch_size, n_q_tokens, self.n_heads * d_head_value))
        return self.W_out(x)


class ReGLU(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=-1)
        return a * F.relu(b)


class FTTransformer(nn.Module):
    """rtdl's Transformer with prenormalization: the first layer has no attention norm, the
    last layer's attention queries the CLS token only (last_layer_query_idx=[-1])."""

    def __init__(self, n_features=10, d_token=64, n_blocks=3, n_heads=8, d_ffn=86, d_out=3):
        super().__init__()
        self.tokenizer = NumericalFeatureTokenizer(n_features, d_token)
        self.cls_token = CLSToken(d_token)
        self.blocks = nn.ModuleList()
        for i in range(n_blocks):
            layer = nn.ModuleDict({
                "attention": RtdlMultiheadAttention(d_token, n_heads),
                "ffn": nn.Sequential(nn.Linear(d_token, d_ffn * 2), ReGLU(),
                                     nn.Linear(d_ffn, d_token)),
                "ffn_normalization": nn.LayerNorm(d_token),
            })
            if i:
                layer["attention_normalization"] = nn.LayerNorm(d_token)
            self.blocks.append(layer)
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, d_out))

    def forward(self, x_num):
        x = self.cls_token(self.tokenizer(x_num))
        for layer_idx, layer in enumerate(self.blocks):
            query_idx = [-1] if layer_idx + 1 == len(self.blocks) else None
            x_residual = x
            if "attention_normalization" in layer:
                x_residual = layer["attention_normalization"](x_residual)
            x_residual = layer["attention"](
                x_residual if query_idx is None else x_residual[:, query_idx], x_residual)
            if query_idx is not None:
                x = x[:, query_idx]
            x = x + x_residual
            x_residual = layer["ffn"](layer["ffn_normalization"](x))
            x = x + x_residual
        return self.head(x[:, -1])


def ft_transformer():
    torch.manual_seed(0)
    return FTTransformer().eval()


# --- lucidrains' tab-transformer-pytorch (categorical columns only) --------------------------


class TabAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=16):
        super().__init__()
        inner_dim = dim_head * heads
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)
        self.to_out = nn.Linear(inner_dim, dim)

    def forward(self, x):
        h = self.heads
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=h) for t in (q, k, v))
        sim = torch.einsum("b h i d, b h j d -> b h i j", q, k) * self.scale
        attn = sim.softmax(dim=-1)
        out = torch.einsum("b h i j, b h j d -> b h i d", attn, v)
        out = rearrange(out, "b h n d -> b n (h d)", h=h)
        return self.to_out(out), attn


class GEGLU(nn.Module):
    def forward(self, x):
        x, gates = x.chunk(2, dim=-1)
        return x * F.gelu(gates)


class TabTransformer(nn.Module):
    def __init__(self, categories=(10, 5, 6, 5, 8), dim=32, depth=3, heads=4, dim_head=16,
                 dim_out=1, mlp_hidden_mults=(4, 2), num_special_tokens=2):
        super().__init__()
        self.num_categories = len(categories)
        self.num_unique_categories = sum(categories)
        total_tokens = self.num_unique_categories + num_special_tokens
        categories_offset = F.pad(torch.tensor(list(categories)), (1, 0),
                                  value=num_special_tokens)
        categories_offset = categories_offset.cumsum(dim=-1)[:-1]
        self.register_buffer("categories_offset", categories_offset)
        self.embeds = nn.Embedding(total_tokens, dim)
        self.layers = nn.ModuleList(nn.ModuleList([
            nn.Sequential(nn.LayerNorm(dim)), TabAttention(dim, heads, dim_head),
            nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * 4 * 2), GEGLU(),
                          nn.Linear(dim * 4, dim))]) for _ in range(depth))
        input_size = dim * self.num_categories
        hidden = [input_size * t for t in mlp_hidden_mults]
        dims = [input_size, *hidden, dim_out]
        mlp = []
        for ind, (dim_in, d_out) in enumerate(itertools.pairwise(dims)):
            mlp.append(nn.Linear(dim_in, d_out))
            if ind < len(dims) - 2:
                mlp.append(nn.ReLU())
        self.mlp = nn.Sequential(*mlp)

    def forward(self, x_categ):
        x_categ = x_categ + self.categories_offset
        x = self.embeds(x_categ)
        for norm, attn, ff in self.layers:
            out, _ = attn(norm(x))
            x = x + out
            x = ff(x) + x
        flat_categ = x.flatten(1)
        return self.mlp(flat_categ)


def tab_transformer():
    torch.manual_seed(0)
    return TabTransformer().eval()


def _categ():
    def make():
        r = np.random.default_rng(0)
        return np.stack([r.integers(0, h, 32) for h in (10, 5, 6, 5, 8)], axis=1)
    return make


# --- lucidrains' linformer (linformer/linformer.py) ------------------------------------------


def init_(tensor):
    dim = tensor.shape[-1]
    std = 1 / math.sqrt(dim)
    tensor.uniform_(-std, std)
    return tensor


class LinformerSelfAttention(nn.Module):
    def __init__(self, dim, seq_len, k=8, heads=4, dim_head=None, share_kv=False):
        super().__init__()
        self.seq_len, self.k, self.heads = seq_len, k, heads
        dim_head = dim_head or dim // heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(dim, dim_head * heads, bias=False)
        kv_dim = dim_head * heads
        self.to_k = nn.Linear(dim, kv_dim, bias=False)
        self.proj_k = nn.Parameter(init_(torch.zeros(seq_len, k)))
        self.share_kv = share_kv
        if not share_kv:
            self.to_v = nn.Linear(dim, kv_dim, bias=False)
            self.proj_v = nn.Parameter(init_(torch.zeros(seq_len, k)))
        self.to_out = nn.Linear(dim_head * heads, dim)

    def forward(self, x):
        b, n, _d, d_h, h, k = *x.shape, self.dim_head, self.heads, self.k
        queries = self.to_q(x)
        proj_seq_len = lambda args: torch.einsum("bnd,nk->bkd", *args)
        keys = self.to_k(x)
        values = self.to_v(x) if not self.share_kv else keys
        kv_projs = (self.proj_k, self.proj_v if not self.share_kv else self.proj_k)
        if n < self.seq_len:
            kv_projs = (t[:n] for t in kv_projs)
        keys, values = map(proj_seq_len, zip((keys, values), kv_projs, strict=True))
        queries = queries.reshape(b, n, h, -1).transpose(1, 2)
        merge_key_values = lambda t: t.reshape(b, k, -1, d_h).transpose(1, 2).expand(
            -1, h, -1, -1)
        keys, values = map(merge_key_values, (keys, values))
        dots = torch.einsum("bhnd,bhkd->bhnk", queries, keys) * (d_h ** -0.5)
        attn = dots.softmax(dim=-1)
        out = torch.einsum("bhnk,bhkd->bhnd", attn, values)
        out = out.transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.fn, self.norm = fn, nn.LayerNorm(dim)

    def forward(self, x, **kwargs):
        return self.fn(self.norm(x), **kwargs)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4, glu=False):
        super().__init__()
        self.glu = glu
        self.w1 = nn.Linear(dim, dim * mult * (2 if glu else 1))
        self.act = nn.GELU()
        self.w2 = nn.Linear(dim * mult, dim)

    def forward(self, x):
        if not self.glu:
            x = self.act(self.w1(x))
        else:
            x, v = self.w1(x).chunk(2, dim=-1)
            x = self.act(x) * v
        return self.w2(x)


class LinformerClassifier(nn.Module):
    def __init__(self, vocab=120, dim=64, seq_len=32, depth=2, k=8, heads=4, classes=4):
        super().__init__()
        self.token_emb = nn.Embedding(vocab, dim)
        self.pos_emb = nn.Embedding(seq_len, dim)
        self.layers = nn.ModuleList(nn.ModuleList([
            PreNorm(dim, LinformerSelfAttention(dim, seq_len, k, heads)),
            PreNorm(dim, FeedForward(dim))]) for _ in range(depth))
        self.to_logits = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, classes))

    def forward(self, x):
        x = self.token_emb(x)
        x = self.pos_emb(torch.arange(x.shape[1], device=x.device)) + x
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.to_logits(x.mean(dim=1))


def linformer():
    torch.manual_seed(0)
    return _gain(LinformerClassifier(), 2.0)


# --- lucidrains' performer-pytorch: FAVOR+ with a fixed orthogonal projection ---------------


def orthogonal_matrix_chunk(cols):
    unstructured_block = torch.randn((cols, cols))
    q, _r = torch.linalg.qr(unstructured_block.cpu(), mode="reduced")
    return q.t()


def gaussian_orthogonal_random_matrix(nb_rows, nb_columns):
    nb_full_blocks = int(nb_rows / nb_columns)
    block_list = [orthogonal_matrix_chunk(nb_columns) for _ in range(nb_full_blocks)]
    remaining_rows = nb_rows - nb_full_blocks * nb_columns
    if remaining_rows > 0:
        block_list.append(orthogonal_matrix_chunk(nb_columns)[:remaining_rows])
    final_matrix = torch.cat(block_list)
    multiplier = torch.randn((nb_rows, nb_columns)).norm(dim=1)
    return torch.diag(multiplier) @ final_matrix


def softmax_kernel(data, *, projection_matrix, is_query, normalize_data=True, eps=1e-4):
    b, h, *_ = data.shape
    data_normalizer = (data.shape[-1] ** -0.25) if normalize_data else 1.0
    ratio = projection_matrix.shape[0] ** -0.5
    projection = projection_matrix.unsqueeze(0).unsqueeze(0).expand(b, h, -1, -1)
    projection = projection.type_as(data)
    data_dash = torch.einsum("...id,...jd->...ij", (data_normalizer * data), projection)
    diag_data = data ** 2
    diag_data = torch.sum(diag_data, dim=-1)
    diag_data = (diag_data / 2.0) * (data_normalizer ** 2)
    diag_data = diag_data.unsqueeze(dim=-1)
    if is_query:
        data_dash = ratio * (torch.exp(data_dash - diag_data - torch.amax(
            data_dash, dim=-1, keepdim=True).detach()) + eps)
    else:
        data_dash = ratio * (torch.exp(data_dash - diag_data - torch.amax(
            data_dash, dim=(-1, -2), keepdim=True).detach()) + eps)
    return data_dash.type_as(data)


def linear_attention(q, k, v):
    k_cumsum = k.sum(dim=-2)
    D_inv = 1.0 / torch.einsum("...nd,...d->...n", q, k_cumsum.type_as(q))
    context = torch.einsum("...nd,...ne->...de", k, v)
    return torch.einsum("...de,...nd,...n->...ne", context, q, D_inv)


class FastAttention(nn.Module):
    def __init__(self, dim_heads, nb_features=32):
        super().__init__()
        self.register_buffer("projection_matrix",
                             gaussian_orthogonal_random_matrix(nb_features, dim_heads))

    def forward(self, q, k, v):
        q = softmax_kernel(q, is_query=True, projection_matrix=self.projection_matrix)
        k = softmax_kernel(k, is_query=False, projection_matrix=self.projection_matrix)
        return linear_attention(q, k, v)


class PerformerAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=16, nb_features=32):
        super().__init__()
        inner_dim = dim_head * heads
        self.fast_attention = FastAttention(dim_head, nb_features)
        self.heads = heads
        self.to_q = nn.Linear(dim, inner_dim)
        self.to_k = nn.Linear(dim, inner_dim)
        self.to_v = nn.Linear(dim, inner_dim)
        self.to_out = nn.Linear(inner_dim, dim)

    def forward(self, x):
        h = self.heads
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=h) for t in (q, k, v))
        out = self.fast_attention(q, k, v)
        out = rearrange(out, "b h n d -> b n (h d)")
        return self.to_out(out)


class PerformerClassifier(nn.Module):
    def __init__(self, vocab=120, dim=64, max_seq_len=32, depth=2, heads=4, classes=4):
        super().__init__()
        self.token_emb = nn.Embedding(vocab, dim)
        self.pos_emb = nn.Embedding(max_seq_len, dim)
        self.layers = nn.ModuleList(nn.ModuleList([
            PreNorm(dim, PerformerAttention(dim, heads)),
            PreNorm(dim, FeedForward(dim, glu=True))]) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.to_out = nn.Linear(dim, classes)

    def forward(self, x):
        _b, n = x.shape
        x = self.token_emb(x)
        x = x + self.pos_emb(torch.arange(n, device=x.device))
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.to_out(self.norm(x)[:, 0])


def performer():
    torch.manual_seed(0)
    return PerformerClassifier().eval()


# --- Zhang, Zhao & LeCun's character-level CNN (ahmedbesbes/character-based-cnn) -----------


class CharacterLevelCNN(nn.Module):
    def __init__(self, number_of_characters=70, max_length=128, n_conv=32, n_fc=64,
                 number_of_classes=4):
        super().__init__()
        self.number_of_characters = number_of_characters
        self.conv1 = nn.Sequential(nn.Conv1d(number_of_characters, n_conv, kernel_size=7),
                                   nn.ReLU(), nn.MaxPool1d(3))
        self.conv2 = nn.Sequential(nn.Conv1d(n_conv, n_conv, kernel_size=7), nn.ReLU(),
                                   nn.MaxPool1d(3))
        self.conv3 = nn.Sequential(nn.Conv1d(n_conv, n_conv, kernel_size=3), nn.ReLU())
        self.conv4 = nn.Sequential(nn.Conv1d(n_conv, n_conv, kernel_size=3), nn.ReLU())
        self.conv5 = nn.Sequential(nn.Conv1d(n_conv, n_conv, kernel_size=3), nn.ReLU())
        self.conv6 = nn.Sequential(nn.Conv1d(n_conv, n_conv, kernel_size=3), nn.ReLU(),
                                   nn.MaxPool1d(3))
        dimension = self._get_conv_output((1, number_of_characters, max_length))
        self.fc1 = nn.Sequential(nn.Linear(dimension, n_fc), nn.ReLU(), nn.Dropout(0.5))
        self.fc2 = nn.Sequential(nn.Linear(n_fc, n_fc), nn.ReLU(), nn.Dropout(0.5))
        self.fc3 = nn.Linear(n_fc, number_of_classes)
        self._create_weights(mean=0.0, std=0.05)

    def _create_weights(self, mean=0.0, std=0.05):
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                module.weight.data.normal_(mean, std)

    def _get_conv_output(self, shape):
        x = torch.rand(shape)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6):
            x = conv(x)
        return x.view(x.size(0), -1).size(1)

    def forward(self, ids):
        x = F.one_hot(ids, self.number_of_characters).float().transpose(1, 2)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6):
            x = conv(x)
        x = x.view(x.size(0), -1)
        return self.fc3(self.fc2(self.fc1(x)))


def char_cnn():
    torch.manual_seed(0)
    return _gain(CharacterLevelCNN(), 1.5)


# --- PyTorch's "NLP From Scratch: seq2seq with attention" tutorial (GRU + Bahdanau) ---------


class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size, dropout_p=0.1):
        super().__init__()
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, input):
        embedded = self.dropout(self.embedding(input))
        output, hidden = self.gru(embedded)
        return output, hidden


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.Wa = nn.Linear(hidden_size, hidden_size)
        self.Ua = nn.Linear(hidden_size, hidden_size)
        self.Va = nn.Linear(hidden_size, 1)

    def forward(self, query, keys):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
        scores = scores.squeeze(2).unsqueeze(1)
        weights = F.softmax(scores, dim=-1)
        context = torch.bmm(weights, keys)
        return context, weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size, dropout_p=0.1):
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, encoder_outputs, encoder_hidden, target_tensor):
        """Teacher forcing over every position of target_tensor (its first id the SOS)."""
        decoder_hidden = encoder_hidden
        decoder_outputs = []
        for i in range(target_tensor.size(1)):
            decoder_input = target_tensor[:, i].unsqueeze(1)
            decoder_output, decoder_hidden, _ = self.forward_step(
                decoder_input, decoder_hidden, encoder_outputs)
            decoder_outputs.append(decoder_output)
        decoder_outputs = torch.cat(decoder_outputs, dim=1)
        return F.log_softmax(decoder_outputs, dim=-1)

    def forward_step(self, input, hidden, encoder_outputs):
        embedded = self.dropout(self.embedding(input))
        query = hidden.permute(1, 0, 2)
        context, attn_weights = self.attention(query, encoder_outputs)
        input_gru = torch.cat((embedded, context), dim=2)
        output, hidden = self.gru(input_gru, hidden)
        output = self.out(output)
        return output, hidden, attn_weights


class GRUSeq2Seq(nn.Module):
    """[source | target] ids in one tensor; log-probabilities over the target positions."""

    def __init__(self, vocab=60, hidden=48, s=10):
        super().__init__()
        self.s = s
        self.encoder = EncoderRNN(vocab, hidden)
        self.decoder = AttnDecoderRNN(hidden, vocab)

    def forward(self, ids):
        encoder_outputs, encoder_hidden = self.encoder(ids[:, :self.s])
        return self.decoder(encoder_outputs, encoder_hidden, ids[:, self.s:])


def gru_bahdanau():
    torch.manual_seed(0)
    return _gain(GRUSeq2Seq(), 2.0)


# --- a Universal Transformer (andreamad8/Universal-Transformer-Pytorch), decoder, no ACT ----


def _gen_timing_signal(length, channels, min_timescale=1.0, max_timescale=1.0e4):
    position = np.arange(length)
    num_timescales = channels // 2
    log_timescale_increment = (math.log(float(max_timescale) / float(min_timescale))
                               / (float(num_timescales) - 1))
    inv_timescales = min_timescale * np.exp(
        np.arange(num_timescales).astype(float) * -log_timescale_increment)
    scaled_time = np.expand_dims(position, 1) * np.expand_dims(inv_timescales, 0)
    signal = np.concatenate([np.sin(scaled_time), np.cos(scaled_time)], axis=1)
    signal = np.pad(signal, [[0, 0], [0, channels % 2]], "constant", constant_values=[0.0, 0.0])
    signal = signal.reshape([1, length, channels])
    return torch.from_numpy(signal).type(torch.FloatTensor)


def _gen_bias_mask(max_length):
    np_mask = np.triu(np.full([max_length, max_length], -np.inf), 1)
    torch_mask = torch.from_numpy(np_mask).type(torch.FloatTensor)
    return torch_mask.unsqueeze(0).unsqueeze(1)


class UTMultiHeadAttention(nn.Module):
    def __init__(self, hidden_size, num_heads, bias_mask):
        super().__init__()
        self.num_heads = num_heads
        self.query_scale = (hidden_size // num_heads) ** -0.5
        self.register_buffer("bias_mask", bias_mask)
        self.query_linear = nn.Linear(hidden_size, hidden_size, bias=False)
        self.key_linear = nn.Linear(hidden_size, hidden_size, bias=False)
        self.value_linear = nn.Linear(hidden_size, hidden_size, bias=False)
        self.output_linear = nn.Linear(hidden_size, hidden_size, bias=False)

    def _split_heads(self, x):
        shape = x.shape
        return x.view(shape[0], shape[1], self.num_heads,
                      shape[2] // self.num_heads).permute(0, 2, 1, 3)

    def _merge_heads(self, x):
        shape = x.shape
        return x.permute(0, 2, 1, 3).contiguous().view(shape[0], shape[2],
                                                       shape[3] * self.num_heads)

    def forward(self, queries, keys, values):
        queries = self._split_heads(self.query_linear(queries)) * self.query_scale
        keys = self._split_heads(self.key_linear(keys))
        values = self._split_heads(self.value_linear(values))
        logits = torch.matmul(queries, keys.permute(0, 1, 3, 2))
        logits += self.bias_mask[:, :, :logits.shape[-2], :logits.shape[-1]].type_as(logits)
        weights = nn.functional.softmax(logits, dim=-1)
        contexts = self._merge_heads(torch.matmul(weights, values))
        return self.output_linear(contexts)


class PositionwiseFeedForward(nn.Module):
    """The repo's 'll' layer config: two Linear layers with ReLU between."""

    def __init__(self, hidden, filter_size):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(hidden, filter_size),
                                     nn.Linear(filter_size, hidden)])
        self.relu = nn.ReLU()

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.relu(x)
        return x


class UTDecoderLayer(nn.Module):
    def __init__(self, hidden, heads, filter_size, bias_mask):
        super().__init__()
        self.multi_head_attention = UTMultiHeadAttention(hidden, heads, bias_mask)
        self.positionwise_feed_forward = PositionwiseFeedForward(hidden, filter_size)
        self.layer_norm_mha = nn.LayerNorm(hidden)
        self.layer_norm_ffn = nn.LayerNorm(hidden)

    def forward(self, x):
        x_norm = self.layer_norm_mha(x)
        x = x + self.multi_head_attention(x_norm, x_norm, x_norm)
        x_norm = self.layer_norm_ffn(x)
        return x + self.positionwise_feed_forward(x_norm)


class UniversalTransformerLM(nn.Module):
    def __init__(self, vocab=100, hidden=64, num_layers=4, heads=4, filter_size=128,
                 max_length=64):
        super().__init__()
        self.num_layers = num_layers
        self.embedding = nn.Embedding(vocab, hidden)
        self.embedding_proj = nn.Linear(hidden, hidden, bias=False)
        self.register_buffer("timing_signal", _gen_timing_signal(max_length, hidden))
        self.register_buffer("position_signal", _gen_timing_signal(num_layers, hidden))
        self.dec = UTDecoderLayer(hidden, heads, filter_size, _gen_bias_mask(max_length))
        self.layer_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids):
        x = self.embedding_proj(self.embedding(ids))
        for layer in range(self.num_layers):
            x += self.timing_signal[:, :ids.shape[1], :].type_as(x.data)
            x += self.position_signal[:, layer, :].unsqueeze(1).repeat(
                1, ids.shape[1], 1).type_as(x.data)
            x = self.dec(x)
        return self.out(self.layer_norm(x))


def universal_transformer():
    torch.manual_seed(0)
    return _gain(UniversalTransformerLM(), 2.0)


# --- BitNet b1.58 ("The Era of 1-bit LLMs: Training Tips, Code and FAQ"): BitLinear -------


def activation_quant(x):
    """Per-token quantization to 8 bits (absmax)."""
    scale = 127.0 / x.abs().max(dim=-1, keepdim=True).values.clamp_(min=1e-5)
    return (x * scale).round().clamp_(-128, 127) / scale


def weight_quant(w):
    """Per-tensor ternary quantization (absmean) to {-1, 0, 1}."""
    scale = 1.0 / w.abs().mean().clamp_(min=1e-5)
    return (w * scale).round().clamp_(-1, 1) / scale


class SimpleRMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.scale, self.eps = dim ** -0.5, eps

    def forward(self, x):
        return F.normalize(x, dim=-1, eps=self.eps) / self.scale


class BitLinear(nn.Linear):
    def __init__(self, in_features, out_features, bias=False):
        super().__init__(in_features, out_features, bias=bias)
        self.norm = SimpleRMSNorm(in_features)

    def forward(self, x):
        w = self.weight
        x_norm = self.norm(x)
        x_quant = x_norm + (activation_quant(x_norm) - x_norm).detach()
        w_quant = w + (weight_quant(w) - w).detach()
        return F.linear(x_quant, w_quant)


class BitBlock(nn.Module):
    def __init__(self, d, heads, hidden):
        super().__init__()
        self.heads = heads
        self.qkv = BitLinear(d, 3 * d)
        self.o = BitLinear(d, d)
        self.gate_up = BitLinear(d, 2 * hidden)
        self.down = BitLinear(hidden, d)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(B, T, C))
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


def _rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class BitNetLM(nn.Module):
    """A Llama-shaped decoder whose every projection is a BitLinear (the FAQ's recipe: the norm
    inside BitLinear, no norm before the blocks); the embedding and head stay full precision."""

    def __init__(self, vocab=100, d=64, heads=4, hidden=128, n=2, max_len=64):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(BitBlock(d, heads, hidden) for _ in range(n))
        self.norm = nn.RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        hd = d // heads
        inv_freq = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.outer(torch.arange(max_len).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.emb(ids)
        cos, sin = self.cos[:T], self.sin[:T]
        for blk in self.blocks:
            x = blk(x, cos, sin)
        return self.head(self.norm(x))


def bitnet158():
    torch.manual_seed(0)
    return _gain(BitNetLM(), 2.0)


# --- Salesforce's pytorch-qrnn (torchqrnn/qrnn.py, forget_mult.py CPU path) -----------------


class CPUForgetMult(nn.Module):
    def forward(self, f, x, hidden_init=None):
        result = []
        forgets = f.split(1, dim=0)
        prev_h = hidden_init
        for i, h in enumerate((f * x).split(1, dim=0)):
            if prev_h is not None:
                h = h + (1 - forgets[i]) * prev_h
            h = h.view(h.size()[1:])
            result.append(h)
            prev_h = h
        return torch.stack(result)


class QRNNLayer(nn.Module):
    def __init__(self, input_size, hidden_size, window=2, output_gate=True):
        super().__init__()
        self.window, self.hidden_size = window, hidden_size
        self.input_size, self.output_gate = input_size, output_gate
        self.linear = nn.Linear(self.window * self.input_size,
                                3 * self.hidden_size if self.output_gate else 2 * hidden_size)

    def forward(self, X, hidden=None):
        seq_len, batch_size, _ = X.size()
        source = None
        if self.window == 1:
            source = X
        elif self.window == 2:
            Xm1 = [X[:1, :, :] * 0]
            if len(X) > 1:
                Xm1.append(X[:-1, :, :])
            Xm1 = torch.cat(Xm1, 0)
            source = torch.cat([X, Xm1], 2)
        Y = self.linear(source)
        if self.output_gate:
            Y = Y.view(seq_len, batch_size, 3 * self.hidden_size)
            Z, F_, O = Y.chunk(3, dim=2)
        else:
            Y = Y.view(seq_len, batch_size, 2 * self.hidden_size)
            Z, F_ = Y.chunk(2, dim=2)
        Z = torch.tanh(Z)
        F_ = torch.sigmoid(F_)
        C = CPUForgetMult()(F_, Z, hidden)
        H = torch.sigmoid(O) * C if self.output_gate else C
        return H, C[-1:, :, :]


class QRNNLM(nn.Module):
    """salesforce/awd-lstm-lm's model with rnn_type='QRNN': sequence-first, tied decoder."""

    def __init__(self, ntoken=100, ninp=48, nhid=64, nlayers=3):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnns = nn.ModuleList(
            QRNNLayer(ninp if layer == 0 else nhid, nhid if layer != nlayers - 1 else ninp,
                      window=2 if layer == 0 else 1, output_gate=True)
            for layer in range(nlayers))
        self.decoder = nn.Linear(ninp, ntoken)
        self.decoder.weight = self.encoder.weight

    def forward(self, ids):
        raw_output = self.encoder(ids.t())
        for rnn in self.rnns:
            raw_output, _ = rnn(raw_output)
        return self.decoder(raw_output).transpose(0, 1)


def qrnn():
    torch.manual_seed(0)
    return _gain(QRNNLM(), 2.0)


P = (3, 14, 15, 9, 26)
S2S = (5, 17, 33, 2, 9, 40, 41, 42, 43, 44)

NETWORKS = (
    Network("nbeats", "ElementAI's N-BEATS (x.flip'ped residual stacks, trend polynomial and "
            "seasonality cos / sin bases as fixed einsums, backcast subtracted, forecast "
            "summed) over a 24-step lookback", "nbeats", _lookback()),
    Network("dlinear", "cure-lab's DLinear (moving average by repeat + cat replicate padding "
            "into AvgPool1d(25), per-channel Linears written into torch.zeros by slice "
            "assignment)", "dlinear", _series(32, 48, 4)),
    Network("tcn", "locuslab's TCN word model (weight_norm dilated Conv1d + Chomp1d causal "
            "trim, 1x1 downsample residual, decoder tied to the embedding)", "tcn",
            ids(100, 8, 32), prompt=P, tokens=8),
    Network("lstnet", "laiguokun's LSTNet (Conv2d over the window, nn.GRU, skip-GRU over "
            "periods folded into the batch by view / permute, autoregressive highway, "
            "sigmoid)", "lstnet", _series(32, 24, 8)),
    Network("itransformer", "thuml's iTransformer (variates as tokens, mean / var instance "
            "normalisation and de-normalisation by repeat, einsum attention, Conv1d k1 "
            "FFN)", "itransformer", _series(32, 48, 6)),
    Network("ft_transformer", "Yandex rtdl's FT-Transformer (x[..., None] * W + b feature "
            "tokenizer, CLS token cat'ed last, ReGLU, last layer queries x[:, [-1]] only)",
            "ft_transformer", floats(64, 10)),
    Network("tab_transformer", "lucidrains' TabTransformer (column offsets by F.pad + cumsum "
            "into one table, einops attention, GEGLU, flattened columns into an MLP)",
            "tab_transformer", _categ()),
    Network("linformer", "lucidrains' Linformer (keys and values projected along the "
            "sequence by einsum bnd,nk->bkd, expand'ed over heads), mean-pooled classifier",
            "linformer", ids(120, 16, 32)),
    Network("performer", "lucidrains' Performer (FAVOR+ softmax kernel: exp of a fixed "
            "orthogonal random projection minus |x|^2 / 2 and amax, non-causal linear "
            "attention by einsums)", "performer", ids(120, 16, 32)),
    Network("char_cnn", "Zhang et al.'s character-level CNN (F.one_hot(ids).float() as Conv1d "
            "channels, k7 / k3 convs, MaxPool1d(3), 3 FC)", "char_cnn", ids(70, 16, 128)),
    Network("gru_bahdanau", "PyTorch's seq2seq tutorial (GRU encoder, AttnDecoderRNN with "
            "Bahdanau attention Va(tanh(Wa q + Ua k)) + bmm, unrolled with teacher forcing) "
            "behind a [source | target] input", "gru_bahdanau", ids(60, 8, 16), prompt=S2S,
            tokens=5, decoder_start=(1,)),
    Network("universal_transformer", "a Universal Transformer (andreamad8's: one pre-LN "
            "decoder layer applied 4 times, timing signal and step signal added before each, "
            "-inf triu bias buffer)", "universal_transformer", ids(100, 8, 32), prompt=P,
            tokens=8),
    Network("bitnet158", "BitNet b1.58 by the FAQ's BitLinear (F.normalize RMS norm, per-token "
            "absmax round / clamp activations, absmean ternary weights, both through "
            "x + (q - x).detach()), rotate_half RoPE, SDPA", "bitnet158", ids(100, 8, 32),
            prompt=P, tokens=8),
    Network("qrnn", "Salesforce's QRNN in awd-lstm-lm (window-2 shifted input by cat, "
            "tanh / sigmoid gates, ForgetMult as a split / loop / stack over time, tied "
            "decoder)", "qrnn", ids(100, 8, 32), prompt=P, tokens=8),
)

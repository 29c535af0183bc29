"""Audio and other signal networks written by hand (third round), each the way its reference
code writes it: OpenAI Whisper's audio encoder (its fp16-safe LayerNorm / Linear / Conv1d
subclasses, two Conv1d + GELU, a sinusoids buffer, pre-LN blocks with the q and k scaled by
d ** -0.25), a WaveNet (r9y9's gated tanh * sigmoid residual blocks on left-padded dilated
Conv1d, skip sums scaled by sqrt(1 / n)), Kipf's GCN on a fixed normalized adjacency (a
dense matmul with a buffer, log_softmax over classes) and nerf-pytorch's NeRF MLP (the
positional embedder's list of sin / cos lambdas, the skip concat, view-direction branch).
Small, random weights."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.handwritten import Network, floats

# --- Whisper's AudioEncoder (openai/whisper whisper/model.py, the non-SDPA path) ---


class LayerNorm(nn.LayerNorm):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


class Linear(nn.Linear):
    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.to(x.dtype),
                        None if self.bias is None else self.bias.to(x.dtype))


class Conv1d(nn.Conv1d):
    def _conv_forward(self, x, weight, bias):
        return super()._conv_forward(x, weight.to(x.dtype),
                                     None if bias is None else bias.to(x.dtype))


def sinusoids(length, channels, max_timescale=10000):
    """Returns sinusoids for positional embedding"""
    assert channels % 2 == 0
    log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, np.newaxis] * inv_timescales[np.newaxis, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = Linear(n_state, n_state)
        self.key = Linear(n_state, n_state, bias=False)
        self.value = Linear(n_state, n_state)
        self.out = Linear(n_state, n_state)

    def forward(self, x: Tensor):
        q = self.query(x)
        k = self.key(x)
        v = self.value(x)
        wv, qk = self.qkv_attention(q, k, v)
        return self.out(wv), qk

    def qkv_attention(self, q, k, v):
        _, _, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.view(*q.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        k = k.view(*k.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        v = v.view(*v.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        qk = (q * scale) @ (k * scale).transpose(-1, -2)
        qk = qk.float()
        w = F.softmax(qk, dim=-1).to(q.dtype)
        out = (w @ v).permute(0, 2, 1, 3).flatten(start_dim=2)
        qk = qk.detach()
        return out, qk


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = LayerNorm(n_state)
        n_mlp = n_state * 4
        self.mlp = nn.Sequential(Linear(n_state, n_mlp), nn.GELU(), Linear(n_mlp, n_state))
        self.mlp_ln = LayerNorm(n_state)

    def forward(self, x: Tensor):
        x = x + self.attn(self.attn_ln(x))[0]
        x = x + self.mlp(self.mlp_ln(x))
        return x


class AudioEncoder(nn.Module):
    def __init__(self, n_mels=16, n_ctx=16, n_state=64, n_head=4, n_layer=2):
        super().__init__()
        self.conv1 = Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_ctx, n_state))
        self.blocks = nn.ModuleList([ResidualAttentionBlock(n_state, n_head)
                                     for _ in range(n_layer)])
        self.ln_post = LayerNorm(n_state)

    def forward(self, x: Tensor):
        """x : torch.Tensor, shape = (batch_size, n_mels, n_ctx)"""
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = x.permute(0, 2, 1)
        assert x.shape[1:] == self.positional_embedding.shape, "incorrect audio shape"
        x = (x + self.positional_embedding).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        x = self.ln_post(x)
        return x


def whisper_encoder():
    torch.manual_seed(0)
    return AudioEncoder().eval()


# --- WaveNet (r9y9/wavenet_vocoder: ResidualConv1dGLU, causal padding, skip sums) ---


class CausalConv1d(nn.Conv1d):
    """A Conv1d padded on the left only (wavenet_vocoder pads both sides and drops the
    right; F.pad on the left is what most rewrites do)."""

    def __init__(self, in_channels, out_channels, kernel_size, dilation=1, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, **kwargs)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.left, 0)))


class ResidualConv1dGLU(nn.Module):
    def __init__(self, residual_channels, gate_channels, kernel_size, skip_out_channels,
                 dilation=1):
        super().__init__()
        self.conv = CausalConv1d(residual_channels, gate_channels, kernel_size, dilation)
        gate_out_channels = gate_channels // 2
        self.conv1x1_out = nn.Conv1d(gate_out_channels, residual_channels, 1)
        self.conv1x1_skip = nn.Conv1d(gate_out_channels, skip_out_channels, 1)

    def forward(self, x):
        residual = x
        x = self.conv(x)
        splitdim = 1
        a, b = x.split(x.size(splitdim) // 2, dim=splitdim)
        x = torch.tanh(a) * torch.sigmoid(b)
        s = self.conv1x1_skip(x)
        x = self.conv1x1_out(x)
        x = (x + residual) * math.sqrt(0.5)
        return x, s


class WaveNet(nn.Module):
    def __init__(self, out_channels=32, layers=8, stacks=2, residual_channels=32,
                 gate_channels=64, skip_out_channels=32, kernel_size=2):
        super().__init__()
        layers_per_stack = layers // stacks
        self.first_conv = nn.Conv1d(1, residual_channels, 1)
        self.conv_layers = nn.ModuleList(
            ResidualConv1dGLU(residual_channels, gate_channels, kernel_size,
                              skip_out_channels, dilation=2 ** (layer % layers_per_stack))
            for layer in range(layers))
        self.last_conv_layers = nn.ModuleList([
            nn.ReLU(inplace=True), nn.Conv1d(skip_out_channels, skip_out_channels, 1),
            nn.ReLU(inplace=True), nn.Conv1d(skip_out_channels, out_channels, 1)])

    def forward(self, x):
        x = self.first_conv(x)
        skips = 0
        for f in self.conv_layers:
            x, h = f(x)
            skips += h
        skips *= math.sqrt(1.0 / len(self.conv_layers))
        x = skips
        for f in self.last_conv_layers:
            x = f(x)
        return F.softmax(x, dim=1)


def wavenet():
    torch.manual_seed(0)
    return WaveNet().eval()


# --- GCN (tkipf/pygcn: GraphConvolution, dense normalized adjacency) ---


def _ring_adjacency(n, extra=((0, 5), (2, 9), (3, 12))):
    """A fixed graph: a ring plus a few chords, normalized as pygcn's utils do
    (row-normalized A + I)."""
    a = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        a[i, (i + 1) % n] = a[(i + 1) % n, i] = 1
    for i, j in extra:
        a[i, j] = a[j, i] = 1
    a = a + np.eye(n, dtype=np.float32)
    return torch.from_numpy(a / a.sum(1, keepdims=True))


class GraphConvolution(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.FloatTensor(in_features, out_features))
        self.bias = nn.Parameter(torch.FloatTensor(out_features)) if bias else None
        stdv = 1. / math.sqrt(self.weight.size(1))
        self.weight.data.uniform_(-stdv, stdv)
        if self.bias is not None:
            self.bias.data.uniform_(-stdv, stdv)

    def forward(self, input, adj):
        support = torch.matmul(input, self.weight)
        output = torch.matmul(adj, support)
        return output + self.bias if self.bias is not None else output


class GCN(nn.Module):
    def __init__(self, nfeat=16, nhid=32, nclass=4, nodes=16, dropout=0.5):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass)
        self.dropout = dropout
        self.register_buffer("adj", _ring_adjacency(nodes))

    def forward(self, x):
        x = F.relu(self.gc1(x, self.adj))
        x = F.dropout(x, self.dropout, training=self.training)
        x = self.gc2(x, self.adj)
        return F.log_softmax(x, dim=-1)


def gcn():
    torch.manual_seed(0)
    return GCN().eval()


# --- NeRF (yenchenlin/nerf-pytorch run_nerf_helpers.py: Embedder, NeRF) ---


class Embedder:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.create_embedding_fn()

    def create_embedding_fn(self):
        embed_fns = []
        d = self.kwargs["input_dims"]
        out_dim = 0
        if self.kwargs["include_input"]:
            embed_fns.append(lambda x: x)
            out_dim += d
        max_freq = self.kwargs["max_freq_log2"]
        N_freqs = self.kwargs["num_freqs"]
        freq_bands = 2. ** torch.linspace(0., max_freq, steps=N_freqs)
        for freq in freq_bands:
            for p_fn in self.kwargs["periodic_fns"]:
                embed_fns.append(lambda x, p_fn=p_fn, freq=freq: p_fn(x * freq))
                out_dim += d
        self.embed_fns = embed_fns
        self.out_dim = out_dim

    def embed(self, inputs):
        return torch.cat([fn(inputs) for fn in self.embed_fns], -1)


def get_embedder(multires):
    embedder_obj = Embedder(include_input=True, input_dims=3, max_freq_log2=multires - 1,
                            num_freqs=multires, log_sampling=True,
                            periodic_fns=[torch.sin, torch.cos])
    return (lambda x, eo=embedder_obj: eo.embed(x)), embedder_obj.out_dim


class NeRF(nn.Module):
    def __init__(self, D=8, W=64, input_ch=3, input_ch_views=3, output_ch=4, skips=(4,),
                 use_viewdirs=True):
        super().__init__()
        self.D, self.W = D, W
        self.input_ch, self.input_ch_views = input_ch, input_ch_views
        self.skips = list(skips)
        self.use_viewdirs = use_viewdirs
        self.pts_linears = nn.ModuleList(
            [nn.Linear(input_ch, W)] + [nn.Linear(W, W) if i not in self.skips
                                        else nn.Linear(W + input_ch, W) for i in range(D - 1)])
        self.views_linears = nn.ModuleList([nn.Linear(input_ch_views + W, W // 2)])
        if use_viewdirs:
            self.feature_linear = nn.Linear(W, W)
            self.alpha_linear = nn.Linear(W, 1)
            self.rgb_linear = nn.Linear(W // 2, 3)
        else:
            self.output_linear = nn.Linear(W, output_ch)

    def forward(self, x):
        input_pts, input_views = torch.split(x, [self.input_ch, self.input_ch_views], dim=-1)
        h = input_pts
        for i, _ in enumerate(self.pts_linears):
            h = self.pts_linears[i](h)
            h = F.relu(h)
            if i in self.skips:
                h = torch.cat([input_pts, h], -1)
        if self.use_viewdirs:
            alpha = self.alpha_linear(h)
            feature = self.feature_linear(h)
            h = torch.cat([feature, input_views], -1)
            for i, _ in enumerate(self.views_linears):
                h = self.views_linears[i](h)
                h = F.relu(h)
            rgb = self.rgb_linear(h)
            outputs = torch.cat([rgb, alpha], -1)
        else:
            outputs = self.output_linear(h)
        return outputs


class NeRFWithEmbedding(nn.Module):
    """run_nerf.py's run_network: embed points and view directions, then the MLP."""

    def __init__(self, multires=6, multires_views=2):
        super().__init__()
        self.embed_fn, input_ch = get_embedder(multires)
        self.embeddirs_fn, input_ch_views = get_embedder(multires_views)
        self.model = NeRF(input_ch=input_ch, input_ch_views=input_ch_views)

    def forward(self, rays):
        inputs, viewdirs = rays[..., :3], rays[..., 3:]  # render() normalized the directions
        embedded = self.embed_fn(inputs)
        embedded_dirs = self.embeddirs_fn(viewdirs)
        return self.model(torch.cat([embedded, embedded_dirs], -1))


def nerf():
    torch.manual_seed(0)
    return NeRFWithEmbedding().eval()


def _rays(n=256, seed=0):
    """Points in the unit cube and (unnormalized) view directions, (n, 6) float32."""
    def make():
        g = np.random.default_rng(seed)
        pts = g.uniform(-1, 1, (n, 3))
        dirs = g.standard_normal((n, 3))
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)  # as render() gives them
        return np.concatenate([pts, dirs], -1).astype(np.float32)
    return make


NETWORKS = (
    Network("whisper_encoder", "OpenAI Whisper's AudioEncoder (fp16-safe LayerNorm / Linear / "
            "Conv1d subclasses, two Conv1d + GELU, sinusoids buffer, q and k scaled by "
            "d ** -0.25, returns (out, qk) in each block) over (B, 16, 32) log-mels",
            "whisper_encoder", floats(16, 16, 32)),
    Network("wavenet", "r9y9's WaveNet (left-padded dilated Conv1d, split into tanh * sigmoid, "
            "residual * sqrt(0.5), skips += h, softmax over classes)", "wavenet",
            floats(16, 1, 128)),
    Network("gcn", "Kipf's pygcn GCN (x @ W then adj @ support on a fixed row-normalized "
            "adjacency buffer, log_softmax) over 16 nodes", "gcn", floats(32, 16, 16)),
    Network("nerf", "nerf-pytorch's NeRF (Embedder's sin / cos lambdas over 2 ** linspace "
            "frequencies, skip concat at layer 4, view branch) on points and unit view "
            "directions", "nerf", _rays()),
)

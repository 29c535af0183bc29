"""Vision, audio and diffusion networks written by hand (fourth round), each the way its
reference code writes it: openai/guided-diffusion's UNet (sinusoidal timestep embedding,
scale-shift-norm ResBlocks, QKVAttentionLegacy on a conv1d qkv, GroupNorm32 in fp32),
facebookresearch's DiT (adaLN-Zero modulation, unpatchify by einsum), OpenAI CLIP's visual
transformer (class embedding, ln_pre, QuickGELU, sequence-first nn.MultiheadAttention),
Segment Anything's image encoder (padded window partition, decomposed relative positions,
LayerNorm2d neck), Swin V2 (cosine attention, clamped logit scale, continuous position bias
MLP), LeViT (attention biases gathered by an index buffer, Linear + BatchNorm1d, hardswish),
PVT v2 (spatial-reduction attention, DWConv in the FFN), RepVGG in its train form (3x3 + 1x1
+ identity BatchNorm branches), ConvNeXt V2 (GRN), wav2vec2's feature encoder (GroupNorm(C, C)
first conv, weight-normed positional conv), Demucs (GLU, ConvTranspose1d, centre-trimmed
skips), SIREN (sin(30 x) MLP) and StyleGAN2's modulated convolution (a weight computed from
the style, grouped over the batch). Small, random weights; diffusion models at one fixed
timestep / class (the command line feeds one input)."""

import itertools
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.handwritten import Network, floats
from benchmarks.handwritten.vision import _randomize_bn

# --- guided-diffusion's UNetModel (openai/guided-diffusion unet.py, nn.py) ---


class GroupNorm32(nn.GroupNorm):
    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def normalization(channels):
    return GroupNorm32(8, channels)


def timestep_embedding(timesteps, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half,
                                                           dtype=torch.float32) / half
                      ).to(device=timesteps.device)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class TimestepEmbedSequential(nn.Sequential):
    def forward(self, x, emb):
        for layer in self:
            if isinstance(layer, GDResBlock):
                x = layer(x, emb)
            else:
                x = layer(x)
        return x


class GDResBlock(nn.Module):
    def __init__(self, channels, emb_channels, out_channels=None, use_scale_shift_norm=True):
        super().__init__()
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(),
                                       nn.Conv2d(channels, self.out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * self.out_channels if use_scale_shift_norm
                                 else self.out_channels))
        self.out_layers = nn.Sequential(normalization(self.out_channels), nn.SiLU(),
                                        nn.Dropout(p=0.0),
                                        nn.Conv2d(self.out_channels, self.out_channels, 3,
                                                  padding=1))
        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)
        while len(emb_out.shape) < len(h.shape):
            emb_out = emb_out[..., None]
        if self.use_scale_shift_norm:
            out_norm, out_rest = self.out_layers[0], self.out_layers[1:]
            scale, shift = torch.chunk(emb_out, 2, dim=1)
            h = out_norm(h) * (1 + scale) + shift
            h = out_rest(h)
        else:
            h = h + emb_out
            h = self.out_layers(h)
        return self.skip_connection(x) + h


class QKVAttentionLegacy(nn.Module):
    def __init__(self, n_heads):
        super().__init__()
        self.n_heads = n_heads

    def forward(self, qkv):
        bs, width, length = qkv.shape
        assert width % (3 * self.n_heads) == 0
        ch = width // (3 * self.n_heads)
        q, k, v = qkv.reshape(bs * self.n_heads, ch * 3, length).split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        a = torch.einsum("bts,bcs->bct", weight, v)
        return a.reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    def __init__(self, channels, num_heads=2):
        super().__init__()
        self.channels = channels
        self.num_heads = num_heads
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.attention = QKVAttentionLegacy(self.num_heads)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        h = self.attention(qkv)
        h = self.proj_out(h)
        return (x + h).reshape(b, c, *spatial)


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x)


class GuidedUNet(nn.Module):
    """model_channels 32, channel_mult (1, 2), one res block a level, attention at 8x8."""

    def __init__(self, in_channels=3, model_channels=32, out_channels=6, timestep=500):
        super().__init__()
        self.model_channels = model_channels
        self.timestep = timestep
        ted = model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(model_channels, ted), nn.SiLU(),
                                        nn.Linear(ted, ted))
        mc = model_channels
        self.input_blocks = nn.ModuleList([
            TimestepEmbedSequential(nn.Conv2d(in_channels, mc, 3, padding=1)),
            TimestepEmbedSequential(GDResBlock(mc, ted)),
            TimestepEmbedSequential(Downsample(mc)),
            TimestepEmbedSequential(GDResBlock(mc, ted, 2 * mc), AttentionBlock(2 * mc)),
        ])
        self.middle_block = TimestepEmbedSequential(GDResBlock(2 * mc, ted),
                                                    AttentionBlock(2 * mc),
                                                    GDResBlock(2 * mc, ted))
        self.output_blocks = nn.ModuleList([
            TimestepEmbedSequential(GDResBlock(4 * mc, ted, 2 * mc), AttentionBlock(2 * mc)),
            TimestepEmbedSequential(GDResBlock(3 * mc, ted, 2 * mc), AttentionBlock(2 * mc),
                                    Upsample(2 * mc)),
            TimestepEmbedSequential(GDResBlock(3 * mc, ted, mc)),
            TimestepEmbedSequential(GDResBlock(2 * mc, ted, mc)),
        ])
        self.out = nn.Sequential(normalization(mc), nn.SiLU(),
                                 nn.Conv2d(mc, out_channels, 3, padding=1))

    def forward(self, x):
        timesteps = torch.full((x.shape[0],), self.timestep, dtype=torch.long)
        hs = []
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        h = x.type(torch.float32)
        for module in self.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = torch.cat([h, hs.pop()], dim=1)
            h = module(h, emb)
        h = h.type(x.dtype)
        return self.out(h)


def guided_unet():
    torch.manual_seed(0)
    return GuidedUNet().eval()


# --- DiT (facebookresearch/DiT models.py) ---


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size, bias=True),
                                 nn.SiLU(), nn.Linear(hidden_size, hidden_size, bias=True))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half,
                                                               dtype=torch.float32) / half
                          ).to(device=t.device)
        args = t[:, None].float() * freqs[None]
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        return embedding

    def forward(self, t):
        t_freq = self.timestep_embedding(t, self.frequency_embedding_size)
        return self.mlp(t_freq)


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, hidden_size, dropout_prob=0.1):
        super().__init__()
        use_cfg_embedding = dropout_prob > 0
        self.embedding_table = nn.Embedding(num_classes + use_cfg_embedding, hidden_size)
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def forward(self, labels, train, force_drop_ids=None):
        return self.embedding_table(labels)


class DiTMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DiTAttention(nn.Module):
    """timm's Attention: fused qkv, reshape / permute / unbind, F.scaled_dot_product_attention."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class DiTBlock(nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = DiTAttention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = DiTMlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(),
                                              nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x, c):
        (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp,
         gate_mlp) = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    def __init__(self, hidden_size, patch_size, out_channels):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(),
                                              nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        x = modulate(self.norm_final(x), shift, scale)
        return self.linear(x)


def get_2d_sincos_pos_embed(embed_dim, grid_size):
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])

    def one(d, pos):
        omega = np.arange(d // 2, dtype=np.float64) / (d / 2.0)
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one(embed_dim // 2, grid[0]), one(embed_dim // 2, grid[1])], axis=1)


class DiT(nn.Module):
    def __init__(self, input_size=16, patch_size=2, in_channels=4, hidden_size=64, depth=2,
                 num_heads=4, num_classes=10, learn_sigma=True, timestep=250, label=3):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.patch_size = patch_size
        self.num_heads = num_heads
        self.timestep = timestep
        self.label = label
        self.x_embedder = nn.Conv2d(in_channels, hidden_size, patch_size, patch_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size)
        num_patches = (input_size // patch_size) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, hidden_size),
                                      requires_grad=False)
        self.pos_embed.data.copy_(torch.from_numpy(get_2d_sincos_pos_embed(
            hidden_size, int(num_patches ** 0.5))).float().unsqueeze(0))
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)

    def unpatchify(self, x):
        c = self.out_channels
        p = self.patch_size
        h = w = int(x.shape[1] ** 0.5)
        assert h * w == x.shape[1]
        x = x.reshape(shape=(x.shape[0], h, w, p, p, c))
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(shape=(x.shape[0], c, h * p, h * p))

    def forward(self, x):
        t = torch.full((x.shape[0],), self.timestep, dtype=torch.long)
        y = torch.full((x.shape[0],), self.label, dtype=torch.long)
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        t = self.t_embedder(t)
        y = self.y_embedder(y, self.training)
        c = t + y
        for block in self.blocks:
            x = block(x, c)
        x = self.final_layer(x, c)
        return self.unpatchify(x)


def dit():
    # adaLN-Zero zero-initialises the modulation and the final layer; these are "trained"
    # (random) weights, so every branch contributes
    torch.manual_seed(0)
    return DiT().eval()


# --- OpenAI CLIP's VisionTransformer (openai/CLIP clip/model.py) ---


class CLIPLayerNorm(nn.LayerNorm):
    """Subclass torch's LayerNorm to handle fp16."""

    def forward(self, x):
        orig_type = x.dtype
        ret = super().forward(x.type(torch.float32))
        return ret.type(orig_type)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model, n_head, attn_mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = CLIPLayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d_model, d_model * 4)),
                                              ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(d_model * 4, d_model))]))
        self.ln_2 = CLIPLayerNorm(d_model)
        self.attn_mask = attn_mask

    def attention(self, x):
        self.attn_mask = (self.attn_mask.to(dtype=x.dtype, device=x.device)
                          if self.attn_mask is not None else None)
        return self.attn(x, x, x, need_weights=False, attn_mask=self.attn_mask)[0]

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CLIPTransformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads)
                                         for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class CLIPVisionTransformer(nn.Module):
    def __init__(self, input_resolution=32, patch_size=4, width=64, layers=2, heads=4,
                 output_dim=32):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = CLIPLayerNorm(width)
        self.transformer = CLIPTransformer(width, layers, heads)
        self.ln_post = CLIPLayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        x = x.permute(0, 2, 1)
        x = torch.cat([self.class_embedding.to(x.dtype) + torch.zeros(
            x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device), x], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        x = x.permute(1, 0, 2)  # NLD -> LND
        x = self.transformer(x)
        x = x.permute(1, 0, 2)  # LND -> NLD
        x = self.ln_post(x[:, 0, :])
        if self.proj is not None:
            x = x @ self.proj
        return x


def clip_vit():
    torch.manual_seed(0)
    return CLIPVisionTransformer().eval()


# --- Segment Anything's ImageEncoderViT (facebookresearch/segment-anything image_encoder.py) ---


class LayerNorm2d(nn.Module):
    def __init__(self, num_channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLPBlock(nn.Module):
    def __init__(self, embedding_dim, mlp_dim, act=nn.GELU):
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x):
        return self.lin2(self.act(self.lin1(x)))


def window_partition(x, window_size):
    B, H, W, C = x.shape
    pad_h = (window_size - H % window_size) % window_size
    pad_w = (window_size - W % window_size) % window_size
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // window_size, window_size, Wp // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, C)
    return windows, (Hp, Wp)


def window_unpartition(windows, window_size, pad_hw, hw):
    Hp, Wp = pad_hw
    H, W = hw
    B = windows.shape[0] // (Hp * Wp // window_size // window_size)
    x = windows.view(B, Hp // window_size, Wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, Hp, Wp, -1)
    if Hp > H or Wp > W:
        x = x[:, :H, :W, :].contiguous()
    return x


def get_rel_pos(q_size, k_size, rel_pos):
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != max_rel_dist:
        rel_pos_resized = F.interpolate(
            rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=max_rel_dist,
            mode="linear")
        rel_pos_resized = rel_pos_resized.reshape(-1, max_rel_dist).permute(1, 0)
    else:
        rel_pos_resized = rel_pos
    q_coords = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    relative_coords = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos_resized[relative_coords.long()]


def add_decomposed_rel_pos(attn, q, rel_pos_h, rel_pos_w, q_size, k_size):
    q_h, q_w = q_size
    k_h, k_w = k_size
    Rh = get_rel_pos(q_h, k_h, rel_pos_h)
    Rw = get_rel_pos(q_w, k_w, rel_pos_w)
    B, _, dim = q.shape
    r_q = q.reshape(B, q_h, q_w, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, Rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, Rw)
    attn = (attn.view(B, q_h, q_w, k_h, k_w) + rel_h[:, :, :, :, None]
            + rel_w[:, :, :, None, :]).view(B, q_h * q_w, k_h * k_w)
    return attn


class SAMAttention(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=True, use_rel_pos=False, input_size=None):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if self.use_rel_pos:
            # zero-initialised in SAM; "trained" here
            self.rel_pos_h = nn.Parameter(0.2 * torch.randn(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(0.2 * torch.randn(2 * input_size[1] - 1, head_dim))

    def forward(self, x):
        B, H, W, _ = x.shape
        qkv = self.qkv(x).reshape(B, H * W, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * self.num_heads, H * W, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.use_rel_pos:
            attn = add_decomposed_rel_pos(attn, q, self.rel_pos_h, self.rel_pos_w, (H, W),
                                          (H, W))
        attn = attn.softmax(dim=-1)
        x = (attn @ v).view(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W,
                                                                                       -1)
        return self.proj(x)


class SAMBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, window_size=0, input_size=None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SAMAttention(dim, num_heads, use_rel_pos=True,
                                 input_size=input_size if window_size == 0
                                 else (window_size, window_size))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))
        self.window_size = window_size

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
        x = self.attn(x)
        if self.window_size > 0:
            x = window_unpartition(x, self.window_size, pad_hw, (H, W))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class SAMPatchEmbed(nn.Module):
    def __init__(self, kernel_size=(4, 4), stride=(4, 4), in_chans=3, embed_dim=48):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel_size, stride=stride)

    def forward(self, x):
        x = self.proj(x)
        return x.permute(0, 2, 3, 1)  # B C H W -> B H W C


class ImageEncoderViT(nn.Module):
    """img 32, patch 4 (8 x 8 tokens), windows of 3 (padded to 9 x 9), block 1 global."""

    def __init__(self, img_size=32, patch_size=4, embed_dim=48, depth=2, num_heads=4,
                 out_chans=32, window_size=3, global_attn_indexes=(1,)):
        super().__init__()
        self.patch_embed = SAMPatchEmbed((patch_size, patch_size), (patch_size, patch_size), 3,
                                         embed_dim)
        self.pos_embed = nn.Parameter(0.1 * torch.randn(1, img_size // patch_size,
                                                        img_size // patch_size, embed_dim))
        self.blocks = nn.ModuleList()
        for i in range(depth):
            self.blocks.append(SAMBlock(
                embed_dim, num_heads, window_size=window_size if i not in global_attn_indexes
                else 0, input_size=(img_size // patch_size, img_size // patch_size)))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False), LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans))

    def forward(self, x):
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))


def sam_encoder():
    torch.manual_seed(0)
    return ImageEncoderViT().eval()


# --- Swin Transformer V2 (microsoft/Swin-Transformer swin_transformer_v2.py) ---


def sw_window_partition(x, window_size):
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, C)


def sw_window_reverse(windows, window_size, H, W):
    B = int(windows.shape[0] / (H * W / window_size / window_size))
    x = windows.view(B, H // window_size, W // window_size, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


class WindowAttentionV2(nn.Module):
    def __init__(self, dim, window_size, num_heads, qkv_bias=True):
        super().__init__()
        self.dim = dim
        self.window_size = window_size  # Wh, Ww
        self.num_heads = num_heads
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((num_heads, 1, 1))))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 64, bias=True), nn.ReLU(inplace=True),
                                     nn.Linear(64, num_heads, bias=False))
        relative_coords_h = torch.arange(-(self.window_size[0] - 1), self.window_size[0],
                                         dtype=torch.float32)
        relative_coords_w = torch.arange(-(self.window_size[1] - 1), self.window_size[1],
                                         dtype=torch.float32)
        relative_coords_table = torch.stack(torch.meshgrid(
            [relative_coords_h, relative_coords_w], indexing="ij")).permute(
            1, 2, 0).contiguous().unsqueeze(0)  # 1, 2*Wh-1, 2*Ww-1, 2
        relative_coords_table[:, :, :, 0] /= (self.window_size[0] - 1)
        relative_coords_table[:, :, :, 1] /= (self.window_size[1] - 1)
        relative_coords_table *= 8
        relative_coords_table = torch.sign(relative_coords_table) * torch.log2(
            torch.abs(relative_coords_table) + 1.0) / np.log2(8)
        self.register_buffer("relative_coords_table", relative_coords_table)
        coords_h = torch.arange(self.window_size[0])
        coords_w = torch.arange(self.window_size[1])
        coords = torch.stack(torch.meshgrid([coords_h, coords_w], indexing="ij"))
        coords_flatten = torch.flatten(coords, 1)
        relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]
        relative_coords = relative_coords.permute(1, 2, 0).contiguous()
        relative_coords[:, :, 0] += self.window_size[0] - 1
        relative_coords[:, :, 1] += self.window_size[1] - 1
        relative_coords[:, :, 0] *= 2 * self.window_size[1] - 1
        relative_position_index = relative_coords.sum(-1)
        self.register_buffer("relative_position_index", relative_position_index)
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(0.02 * torch.randn(dim))
            self.v_bias = nn.Parameter(0.02 * torch.randn(dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.proj = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x, mask=None):
        B_, N, C = x.shape
        qkv_bias = None
        if self.q_bias is not None:
            qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias, requires_grad=False),
                                  self.v_bias))
        qkv = F.linear(input=x, weight=self.qkv.weight, bias=qkv_bias)
        qkv = qkv.reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1))
        logit_scale = torch.clamp(self.logit_scale,
                                  max=torch.log(torch.tensor(1. / 0.01))).exp()
        attn = attn * logit_scale
        relative_position_bias_table = self.cpb_mlp(self.relative_coords_table).view(
            -1, self.num_heads)
        relative_position_bias = relative_position_bias_table[
            self.relative_position_index.view(-1)].view(
            self.window_size[0] * self.window_size[1],
            self.window_size[0] * self.window_size[1], -1)
        relative_position_bias = relative_position_bias.permute(2, 0, 1).contiguous()
        relative_position_bias = 16 * torch.sigmoid(relative_position_bias)
        attn = attn + relative_position_bias.unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.softmax(attn)
        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj(x)


class SwinV2Block(nn.Module):
    def __init__(self, dim, input_resolution, num_heads, window_size=4, shift_size=0,
                 mlp_ratio=4.0):
        super().__init__()
        self.input_resolution = input_resolution
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttentionV2(dim, (window_size, window_size), num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(),
                                 nn.Linear(int(dim * mlp_ratio), dim))
        if self.shift_size > 0:
            H, W = self.input_resolution
            img_mask = torch.zeros((1, H, W, 1))
            h_slices = (slice(0, -self.window_size), slice(-self.window_size, -self.shift_size),
                        slice(-self.shift_size, None))
            w_slices = (slice(0, -self.window_size), slice(-self.window_size, -self.shift_size),
                        slice(-self.shift_size, None))
            cnt = 0
            for h in h_slices:
                for w in w_slices:
                    img_mask[:, h, w, :] = cnt
                    cnt += 1
            mask_windows = sw_window_partition(img_mask, self.window_size)
            mask_windows = mask_windows.view(-1, self.window_size * self.window_size)
            attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
            attn_mask = attn_mask.masked_fill(attn_mask != 0, (-100.0)).masked_fill(
                attn_mask == 0, 0.0)
        else:
            attn_mask = None
        self.register_buffer("attn_mask", attn_mask)

    def forward(self, x):
        H, W = self.input_resolution
        B, _, C = x.shape
        shortcut = x
        x = x.view(B, H, W, C)
        if self.shift_size > 0:
            shifted_x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        else:
            shifted_x = x
        x_windows = sw_window_partition(shifted_x, self.window_size)
        x_windows = x_windows.view(-1, self.window_size * self.window_size, C)
        attn_windows = self.attn(x_windows, mask=self.attn_mask)
        attn_windows = attn_windows.view(-1, self.window_size, self.window_size, C)
        shifted_x = sw_window_reverse(attn_windows, self.window_size, H, W)
        if self.shift_size > 0:
            x = torch.roll(shifted_x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        else:
            x = shifted_x
        x = x.view(B, H * W, C)
        x = shortcut + self.norm1(x)  # res-post-norm
        return x + self.norm2(self.mlp(x))


class SwinV2(nn.Module):
    def __init__(self, img_size=32, patch_size=4, embed_dim=48, num_heads=4, num_classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, patch_size)
        self.patch_norm = nn.LayerNorm(embed_dim)
        res = (img_size // patch_size, img_size // patch_size)
        self.blocks = nn.ModuleList([SwinV2Block(embed_dim, res, num_heads, 4, 0),
                                     SwinV2Block(embed_dim, res, num_heads, 4, 2)])
        self.norm = nn.LayerNorm(embed_dim)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = self.patch_norm(x)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        x = self.avgpool(x.transpose(1, 2))
        x = torch.flatten(x, 1)
        return self.head(x)


def swinv2():
    torch.manual_seed(0)
    return SwinV2().eval()


# --- LeViT (facebookresearch/LeViT levit.py) ---


class Linear_BN(nn.Sequential):
    def __init__(self, a, b, bn_weight_init=1):
        super().__init__()
        self.add_module("c", nn.Linear(a, b, bias=False))
        bn = nn.BatchNorm1d(b)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.constant_(bn.bias, 0)
        self.add_module("bn", bn)

    def forward(self, x):
        l, bn = self._modules.values()
        x = l(x)
        return bn(x.flatten(0, 1)).reshape_as(x)


class Conv2d_BN(nn.Sequential):
    def __init__(self, a, b, ks=1, stride=1, pad=0):
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))


class LeViTResidual(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return x + self.m(x)


class LeViTAttention(nn.Module):
    def __init__(self, dim, key_dim, num_heads=8, attn_ratio=4, activation=nn.Hardswish,
                 resolution=4):
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.nh_kd = nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = int(attn_ratio * key_dim) * num_heads
        self.attn_ratio = attn_ratio
        h = self.dh + nh_kd * 2
        self.qkv = Linear_BN(dim, h)
        self.proj = nn.Sequential(activation(), Linear_BN(self.dh, dim, bn_weight_init=0))
        points = list(itertools.product(range(resolution), range(resolution)))
        N = len(points)
        attention_offsets = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                if offset not in attention_offsets:
                    attention_offsets[offset] = len(attention_offsets)
                idxs.append(attention_offsets[offset])
        self.attention_biases = nn.Parameter(torch.randn(num_heads, len(attention_offsets)))
        self.register_buffer("attention_bias_idxs", torch.LongTensor(idxs).view(N, N))

    def forward(self, x):  # x (B,N,C)
        B, N, _ = x.shape
        qkv = self.qkv(x)
        q, k, v = qkv.view(B, N, self.num_heads, -1).split([self.key_dim, self.key_dim, self.d],
                                                           dim=3)
        q = q.permute(0, 2, 1, 3)
        k = k.permute(0, 2, 1, 3)
        v = v.permute(0, 2, 1, 3)
        attn = ((q @ k.transpose(-2, -1)) * self.scale
                + self.attention_biases[:, self.attention_bias_idxs])
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, self.dh)
        return self.proj(x)


class LeViT(nn.Module):
    def __init__(self, img_size=32, embed_dim=64, key_dim=16, num_heads=4, num_classes=10):
        super().__init__()
        act = nn.Hardswish
        self.patch_embed = nn.Sequential(Conv2d_BN(3, embed_dim // 4, 3, 2, 1), act(),
                                         Conv2d_BN(embed_dim // 4, embed_dim // 2, 3, 2, 1),
                                         act(), Conv2d_BN(embed_dim // 2, embed_dim, 3, 2, 1))
        resolution = img_size // 8
        blocks = []
        for _ in range(2):
            blocks.append(LeViTResidual(LeViTAttention(embed_dim, key_dim, num_heads,
                                                       attn_ratio=2, activation=act,
                                                       resolution=resolution)))
            h = embed_dim * 2
            blocks.append(LeViTResidual(nn.Sequential(Linear_BN(embed_dim, h), act(),
                                                      Linear_BN(h, embed_dim,
                                                                bn_weight_init=0))))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm1d(embed_dim), nn.Linear(embed_dim, num_classes))
        self.head_dist = nn.Sequential(nn.BatchNorm1d(embed_dim),
                                       nn.Linear(embed_dim, num_classes))

    def forward(self, x):
        x = self.patch_embed(x)
        x = x.flatten(2).transpose(1, 2)
        x = self.blocks(x)
        x = x.mean(1)
        x = self.head(x), self.head_dist(x)
        return (x[0] + x[1]) / 2  # inference: mean of the two heads


def levit():
    torch.manual_seed(0)
    model = LeViT()
    with torch.no_grad():  # bn_weight_init=0 zeroes branches: trained weights do not
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.fill_(1.0)
    return _randomize_bn(model)


# --- PVT v2 (whai362/PVT pvt_v2.py) ---


class PVTDWConv(nn.Module):
    def __init__(self, dim=768):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x, H, W):
        B, _, C = x.shape
        x = x.transpose(1, 2).view(B, C, H, W)
        x = self.dwconv(x)
        return x.flatten(2).transpose(1, 2)


class PVTMlp(nn.Module):
    def __init__(self, in_features, hidden_features, linear=False):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.dwconv = PVTDWConv(hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.linear = linear
        if self.linear:
            self.relu = nn.ReLU(inplace=True)

    def forward(self, x, H, W):
        x = self.fc1(x)
        if self.linear:
            x = self.relu(x)
        x = self.dwconv(x, H, W)
        x = self.act(x)
        return self.fc2(x)


class PVTAttention(nn.Module):
    def __init__(self, dim, num_heads=8, sr_ratio=1, linear=False):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.linear = linear
        self.sr_ratio = sr_ratio
        if not linear:
            if sr_ratio > 1:
                self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
                self.norm = nn.LayerNorm(dim)
        else:
            self.pool = nn.AdaptiveAvgPool2d(7)
            self.sr = nn.Conv2d(dim, dim, kernel_size=1, stride=1)
            self.norm = nn.LayerNorm(dim)
            self.act = nn.GELU()

    def forward(self, x, H, W):
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        if not self.linear:
            if self.sr_ratio > 1:
                x_ = x.permute(0, 2, 1).reshape(B, C, H, W)
                x_ = self.sr(x_).reshape(B, C, -1).permute(0, 2, 1)
                x_ = self.norm(x_)
                kv = self.kv(x_).reshape(B, -1, 2, self.num_heads,
                                         C // self.num_heads).permute(2, 0, 3, 1, 4)
            else:
                kv = self.kv(x).reshape(B, -1, 2, self.num_heads,
                                        C // self.num_heads).permute(2, 0, 3, 1, 4)
        else:
            x_ = x.permute(0, 2, 1).reshape(B, C, H, W)
            x_ = self.sr(self.pool(x_)).reshape(B, C, -1).permute(0, 2, 1)
            x_ = self.norm(x_)
            x_ = self.act(x_)
            kv = self.kv(x_).reshape(B, -1, 2, self.num_heads,
                                     C // self.num_heads).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class PVTBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, sr_ratio=1, linear=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = PVTAttention(dim, num_heads, sr_ratio, linear)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = PVTMlp(dim, int(dim * mlp_ratio), linear)

    def forward(self, x, H, W):
        x = x + self.attn(self.norm1(x), H, W)
        return x + self.mlp(self.norm2(x), H, W)


class OverlapPatchEmbed(nn.Module):
    def __init__(self, patch_size=7, stride=4, in_chans=3, embed_dim=768):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride,
                              padding=(patch_size // 2, patch_size // 2))
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        x = self.proj(x)
        _, _, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = self.norm(x)
        return x, H, W


class PVTv2(nn.Module):
    """Two stages: sr_ratio 2 then the linear (pooled to 7x7) spatial reduction."""

    def __init__(self, embed_dims=(32, 64), num_heads=(1, 2), mlp_ratios=(8, 4),
                 sr_ratios=(2, 1), num_classes=10):
        super().__init__()
        self.num_stages = len(embed_dims)
        for i in range(self.num_stages):
            patch_embed = OverlapPatchEmbed(7 if i == 0 else 3, 4 if i == 0 else 2,
                                            3 if i == 0 else embed_dims[i - 1], embed_dims[i])
            block = nn.ModuleList([PVTBlock(embed_dims[i], num_heads[i], mlp_ratios[i],
                                            sr_ratios[i], linear=(i == 1))])
            norm = nn.LayerNorm(embed_dims[i], eps=1e-6)
            setattr(self, f"patch_embed{i + 1}", patch_embed)
            setattr(self, f"block{i + 1}", block)
            setattr(self, f"norm{i + 1}", norm)
        self.head = nn.Linear(embed_dims[-1], num_classes)

    def forward_features(self, x):
        B = x.shape[0]
        for i in range(self.num_stages):
            patch_embed = getattr(self, f"patch_embed{i + 1}")
            block = getattr(self, f"block{i + 1}")
            norm = getattr(self, f"norm{i + 1}")
            x, H, W = patch_embed(x)
            for blk in block:
                x = blk(x, H, W)
            x = norm(x)
            if i != self.num_stages - 1:
                x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
        return x.mean(dim=1)

    def forward(self, x):
        return self.head(self.forward_features(x))


def pvtv2():
    torch.manual_seed(0)
    return PVTv2().eval()


# --- RepVGG in its train form (DingXiaoH/RepVGG repvgg.py) ---


def conv_bn(in_channels, out_channels, kernel_size, stride, padding, groups=1):
    result = nn.Sequential()
    result.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                        padding, groups=groups, bias=False))
    result.add_module("bn", nn.BatchNorm2d(out_channels))
    return result


class RepVGGBlock(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1,
                 groups=1, use_se=False):
        super().__init__()
        self.nonlinearity = nn.ReLU()
        self.se = nn.Identity()
        self.rbr_identity = (nn.BatchNorm2d(in_channels)
                             if out_channels == in_channels and stride == 1 else None)
        self.rbr_dense = conv_bn(in_channels, out_channels, kernel_size, stride, padding,
                                 groups)
        self.rbr_1x1 = conv_bn(in_channels, out_channels, 1, stride, padding - kernel_size // 2,
                               groups)

    def forward(self, inputs):
        if hasattr(self, "rbr_reparam"):
            return self.nonlinearity(self.se(self.rbr_reparam(inputs)))
        id_out = 0 if self.rbr_identity is None else self.rbr_identity(inputs)
        return self.nonlinearity(self.se(self.rbr_dense(inputs) + self.rbr_1x1(inputs)
                                         + id_out))


class RepVGG(nn.Module):
    def __init__(self, num_blocks=(1, 2, 2), width=(16, 32, 64), num_classes=10):
        super().__init__()
        self.in_planes = width[0]
        self.stage0 = RepVGGBlock(3, self.in_planes, 3, 2, 1)
        self.cur_layer_idx = 1
        self.stage1 = self._make_stage(width[0], num_blocks[0], 2)
        self.stage2 = self._make_stage(width[1], num_blocks[1], 2)
        self.stage3 = self._make_stage(width[2], num_blocks[2], 2)
        self.gap = nn.AdaptiveAvgPool2d(output_size=1)
        self.linear = nn.Linear(width[2], num_classes)

    def _make_stage(self, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        blocks = []
        for s in strides:
            blocks.append(RepVGGBlock(self.in_planes, planes, 3, s, 1))
            self.in_planes = planes
            self.cur_layer_idx += 1
        return nn.ModuleList(blocks)

    def forward(self, x):
        out = self.stage0(x)
        for stage in (self.stage1, self.stage2, self.stage3):
            for block in stage:
                out = block(out)
        out = self.gap(out)
        out = out.view(out.size(0), -1)
        return self.linear(out)


def repvgg():
    torch.manual_seed(0)
    return _randomize_bn(RepVGG())


# --- ConvNeXt V2 (facebookresearch/ConvNeXt-V2 models/convnextv2.py, utils.py) ---


class CNLayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-6, data_format="channels_last"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
        self.data_format = data_format
        self.normalized_shape = (normalized_shape, )

    def forward(self, x):
        if self.data_format == "channels_last":
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        # zero-initialised in ConvNeXt V2; "trained" here
        self.gamma = nn.Parameter(0.5 * torch.randn(1, 1, 1, dim))
        self.beta = nn.Parameter(0.1 * torch.randn(1, 1, 1, dim))

    def forward(self, x):
        Gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        Nx = Gx / (Gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * Nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = CNLayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.drop_path = nn.Identity()

    def forward(self, x):
        input = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        x = self.norm(x)
        x = self.pwconv1(x)
        x = self.act(x)
        x = self.grn(x)
        x = self.pwconv2(x)
        x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        return input + self.drop_path(x)


class ConvNeXtV2(nn.Module):
    def __init__(self, in_chans=3, num_classes=10, depths=(1, 1, 1), dims=(24, 48, 96)):
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4),
                             CNLayerNorm(dims[0], eps=1e-6, data_format="channels_first"))
        self.downsample_layers.append(stem)
        for i in range(len(dims) - 1):
            self.downsample_layers.append(nn.Sequential(
                CNLayerNorm(dims[i], eps=1e-6, data_format="channels_first"),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2)))
        self.stages = nn.ModuleList([nn.Sequential(*[ConvNeXtV2Block(dims[i])
                                                     for _ in range(depths[i])])
                                     for i in range(len(dims))])
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x):
        for i in range(len(self.stages)):
            x = self.downsample_layers[i](x)
            x = self.stages[i](x)
        x = self.norm(x.mean([-2, -1]))
        return self.head(x)


def convnextv2():
    torch.manual_seed(0)
    return ConvNeXtV2().eval()


# --- wav2vec 2.0's feature encoder + positional conv (fairseq wav2vec2.py) ---


class Fp32GroupNorm(nn.GroupNorm):
    def forward(self, input):
        output = F.group_norm(input.float(), self.num_groups,
                              self.weight.float() if self.weight is not None else None,
                              self.bias.float() if self.bias is not None else None, self.eps)
        return output.type_as(input)


class TransposeLast(nn.Module):
    def forward(self, x):
        return x.transpose(-2, -1)


class ConvFeatureExtractionModel(nn.Module):
    def __init__(self, conv_layers, mode="default", conv_bias=False):
        super().__init__()

        def block(n_in, n_out, k, stride, is_group_norm=False):
            def make_conv():
                conv = nn.Conv1d(n_in, n_out, k, stride=stride, bias=conv_bias)
                nn.init.kaiming_normal_(conv.weight)
                return conv

            if is_group_norm:
                return nn.Sequential(make_conv(), nn.Dropout(p=0.0),
                                     Fp32GroupNorm(n_out, n_out, affine=True), nn.GELU())
            return nn.Sequential(make_conv(), nn.Dropout(p=0.0), nn.GELU())

        in_d = 1
        self.conv_layers = nn.ModuleList()
        for i, (dim, k, stride) in enumerate(conv_layers):
            self.conv_layers.append(block(in_d, dim, k, stride,
                                          is_group_norm=mode == "default" and i == 0))
            in_d = dim

    def forward(self, x):
        x = x.unsqueeze(1)  # BxT -> BxCxT
        for conv in self.conv_layers:
            x = conv(x)
        return x


class SamePad(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x):
        if self.remove > 0:
            x = x[:, :, : -self.remove]
        return x


class Wav2Vec2Encoder(nn.Module):
    """Feature encoder (C=64, strides 5, 2, 2, 2: 1600 samples -> 79 frames), feature
    projection, weight-normed positional conv (k=16, 8 groups), one post-LN transformer layer,
    mean-pooled utterance head."""

    def __init__(self, dim=64, embed=48, pos_k=16, pos_groups=8, num_classes=10):
        super().__init__()
        self.feature_extractor = ConvFeatureExtractionModel(
            [(dim, 10, 5), (dim, 3, 2), (dim, 3, 2), (dim, 2, 2)])
        self.layer_norm = nn.LayerNorm(dim)
        self.post_extract_proj = nn.Linear(dim, embed)
        self.pos_conv = nn.Conv1d(embed, embed, kernel_size=pos_k, padding=pos_k // 2,
                                  groups=pos_groups)
        std = math.sqrt((4 * (1.0 - 0.0)) / (pos_k * embed))
        nn.init.normal_(self.pos_conv.weight, mean=0, std=std)
        nn.init.constant_(self.pos_conv.bias, 0)
        self.pos_conv = nn.utils.weight_norm(self.pos_conv, name="weight", dim=2)
        self.pos_conv = nn.Sequential(self.pos_conv, SamePad(pos_k), nn.GELU())
        self.enc_layer_norm = nn.LayerNorm(embed)
        self.self_attn = nn.MultiheadAttention(embed, 4, batch_first=False)
        self.self_attn_layer_norm = nn.LayerNorm(embed)
        self.fc1 = nn.Linear(embed, 4 * embed)
        self.fc2 = nn.Linear(4 * embed, embed)
        self.final_layer_norm = nn.LayerNorm(embed)
        self.head = nn.Linear(embed, num_classes)

    def forward(self, source):
        features = self.feature_extractor(source)
        features = features.transpose(1, 2)
        features = self.layer_norm(features)
        x = self.post_extract_proj(features)
        x_conv = self.pos_conv(x.transpose(1, 2))
        x_conv = x_conv.transpose(1, 2)
        x = x + x_conv
        x = self.enc_layer_norm(x)
        x = x.transpose(0, 1)  # B x T x C -> T x B x C
        residual = x
        x, _ = self.self_attn(query=x, key=x, value=x, need_weights=False)
        x = self.self_attn_layer_norm(residual + x)
        residual = x
        x = self.fc2(F.gelu(self.fc1(x)))
        x = self.final_layer_norm(residual + x)
        x = x.transpose(0, 1)
        return self.head(x.mean(1))


def wav2vec2():
    torch.manual_seed(0)
    return Wav2Vec2Encoder().eval()


# --- Demucs v1/v2 (facebookresearch/demucs demucs/model.py) ---


def center_trim(tensor, reference):
    if hasattr(reference, "size"):
        reference = reference.size(-1)
    delta = tensor.size(-1) - reference
    if delta < 0:
        raise ValueError(f"tensor must be larger than reference. Delta is {delta}.")
    if delta:
        tensor = tensor[..., delta // 2:-(delta - delta // 2)]
    return tensor


class Demucs(nn.Module):
    """depth 3, channels 16, growth 2, kernel 8, stride 4, context 3, glu, no LSTM; one stem
    pair (2 sources x 1 channel)."""

    def __init__(self, sources=2, audio_channels=1, channels=16, depth=3, kernel_size=8,
                 stride=4, growth=2.0, context=3):
        super().__init__()
        self.audio_channels = audio_channels
        self.sources = sources
        self.kernel_size = kernel_size
        self.context = context
        self.stride = stride
        self.depth = depth
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        activation = nn.GLU(dim=1)
        ch_scale = 2
        in_channels = audio_channels
        for index in range(depth):
            encode = [nn.Conv1d(in_channels, channels, kernel_size, stride), nn.ReLU(),
                      nn.Conv1d(channels, ch_scale * channels, 1), activation]
            self.encoder.append(nn.Sequential(*encode))
            decode = []
            out_channels = in_channels if index > 0 else sources * audio_channels
            decode += [nn.Conv1d(channels, ch_scale * channels, context), activation,
                       nn.ConvTranspose1d(channels, out_channels, kernel_size, stride)]
            if index > 0:
                decode.append(nn.ReLU())
            self.decoder.insert(0, nn.Sequential(*decode))
            in_channels = channels
            channels = int(growth * channels)

    def valid_length(self, length):
        for _ in range(self.depth):
            length = math.ceil((length - self.kernel_size) / self.stride) + 1
            length = max(1, length)
            length += self.context - 1
        for _ in range(self.depth):
            length = (length - 1) * self.stride + self.kernel_size
        return int(length)

    def forward(self, mix):
        x = mix
        mono = mix.mean(dim=1, keepdim=True)
        mean = mono.mean(dim=-1, keepdim=True)
        std = mono.std(dim=-1, keepdim=True)
        x = (x - mean) / (1e-5 + std)
        delta = self.valid_length(x.shape[-1]) - x.shape[-1]
        x = F.pad(x, (delta // 2, delta - delta // 2))
        saved = []
        for encode in self.encoder:
            x = encode(x)
            saved.append(x)
        for decode in self.decoder:
            skip = center_trim(saved.pop(-1), x)
            x = x + skip
            x = decode(x)
        x = center_trim(x, mix)
        x = x * std + mean
        return x.view(x.size(0), self.sources, self.audio_channels, x.size(-1))


def demucs():
    torch.manual_seed(0)
    return Demucs().eval()


# --- SIREN (vsitzmann/siren modules.py / explore_siren.ipynb) ---


class SineLayer(nn.Module):
    def __init__(self, in_features, out_features, bias=True, is_first=False, omega_0=30):
        super().__init__()
        self.omega_0 = omega_0
        self.is_first = is_first
        self.in_features = in_features
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        with torch.no_grad():
            if self.is_first:
                self.linear.weight.uniform_(-1 / self.in_features, 1 / self.in_features)
            else:
                self.linear.weight.uniform_(-np.sqrt(6 / self.in_features) / self.omega_0,
                                            np.sqrt(6 / self.in_features) / self.omega_0)

    def forward(self, input):
        return torch.sin(self.omega_0 * self.linear(input))


class Siren(nn.Module):
    def __init__(self, in_features=2, hidden_features=64, hidden_layers=2, out_features=3,
                 outermost_linear=True, first_omega_0=30, hidden_omega_0=30.):
        super().__init__()
        self.net = [SineLayer(in_features, hidden_features, is_first=True,
                              omega_0=first_omega_0)]
        for _ in range(hidden_layers):
            self.net.append(SineLayer(hidden_features, hidden_features, is_first=False,
                                      omega_0=hidden_omega_0))
        if outermost_linear:
            final_linear = nn.Linear(hidden_features, out_features)
            with torch.no_grad():
                final_linear.weight.uniform_(-np.sqrt(6 / hidden_features) / hidden_omega_0,
                                             np.sqrt(6 / hidden_features) / hidden_omega_0)
            self.net.append(final_linear)
        else:
            self.net.append(SineLayer(hidden_features, out_features, is_first=False,
                                      omega_0=hidden_omega_0))
        self.net = nn.Sequential(*self.net)

    def forward(self, coords):
        return self.net(coords)


def siren():
    torch.manual_seed(0)
    return Siren().eval()


def _coords(n=1024, seed=0):
    """Pixel coordinates in [-1, 1]^2 (the image-fitting example's mgrid), shuffled."""
    def make():
        side = math.isqrt(n)
        t = np.linspace(-1, 1, side, dtype=np.float32)
        grid = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
        return grid[np.random.default_rng(seed).permutation(len(grid))]
    return make


# --- StyleGAN2's modulated conv (rosinality/stylegan2-pytorch model.py, fused form) ---


class EqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, bias=True, bias_init=0, lr_mul=1, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init)) if bias else None
        self.activation = activation
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, input):
        if self.activation:
            out = F.linear(input, self.weight * self.scale)
            return F.leaky_relu(out + self.bias * self.lr_mul, 0.2) * math.sqrt(2)
        return F.linear(input, self.weight * self.scale, bias=self.bias * self.lr_mul)


class ModulatedConv2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, demodulate=True):
        super().__init__()
        self.eps = 1e-8
        self.kernel_size = kernel_size
        self.in_channel = in_channel
        self.out_channel = out_channel
        fan_in = in_channel * kernel_size ** 2
        self.scale = 1 / math.sqrt(fan_in)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size,
                                               kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate

    def forward(self, input, style):
        batch, in_channel, height, width = input.shape
        style = self.modulation(style).view(batch, 1, in_channel, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        weight = weight.view(batch * self.out_channel, in_channel, self.kernel_size,
                             self.kernel_size)
        input = input.view(1, batch * in_channel, height, width)
        out = F.conv2d(input, weight, padding=self.padding, groups=batch)
        _, _, height, width = out.shape
        return out.view(batch, self.out_channel, height, width)


class StyledConv(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim)
        self.noise_strength = nn.Parameter(torch.zeros(1))  # NoiseInjection, noise off
        self.bias = nn.Parameter(0.1 * torch.randn(1, out_channel, 1, 1))

    def forward(self, input, style):
        out = self.conv(input, style)
        return F.leaky_relu(out + self.bias, 0.2) * math.sqrt(2)  # FusedLeakyReLU


class ToRGB(nn.Module):
    def __init__(self, in_channel, style_dim):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, input, style, skip=None):
        out = self.conv(input, style) + self.bias
        if skip is not None:
            out = out + F.interpolate(skip, scale_factor=2, mode="nearest")
        return out


class PixelNorm(nn.Module):
    def forward(self, input):
        return input * torch.rsqrt(torch.mean(input ** 2, dim=1, keepdim=True) + 1e-8)


class StyleGAN2Generator(nn.Module):
    """Mapping net (PixelNorm, EqualLinear lr_mul 0.01 with fused leaky ReLU) and a 4 -> 8
    synthesis net: ConstantInput, StyledConvs, nearest upsample (upfirdn's blur left out),
    ToRGB skips; z in, image out."""

    def __init__(self, style_dim=32, n_mlp=2, channel=32):
        super().__init__()
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=0.01,
                                                              activation="fused_lrelu")
                                                  for _ in range(n_mlp)])
        self.input = nn.Parameter(torch.randn(1, channel, 4, 4))
        self.conv1 = StyledConv(channel, channel, 3, style_dim)
        self.to_rgb1 = ToRGB(channel, style_dim)
        self.conv_up = StyledConv(channel, channel, 3, style_dim)
        self.conv2 = StyledConv(channel, channel, 3, style_dim)
        self.to_rgb2 = ToRGB(channel, style_dim)

    def forward(self, z):
        latent = self.style(z)
        out = self.input.repeat(z.shape[0], 1, 1, 1)
        out = self.conv1(out, latent)
        skip = self.to_rgb1(out, latent)
        out = F.interpolate(out, scale_factor=2, mode="nearest")
        out = self.conv_up(out, latent)
        out = self.conv2(out, latent)
        return self.to_rgb2(out, latent, skip)


def stylegan2():
    torch.manual_seed(0)
    return StyleGAN2Generator().eval()


NETWORKS = (
    Network("guided_unet", "openai/guided-diffusion's UNetModel (timestep_embedding cos|sin, "
            "ResBlocks with scale-shift norm by chunk, QKVAttentionLegacy on a Conv1d qkv by "
            "einsum, GroupNorm32 through float(), skip cat from a list.pop()) at t=500",
            "guided_unet", floats(8, 3, 16, 16)),
    Network("dit", "facebookresearch's DiT (patchify conv, sin-cos pos_embed from numpy, "
            "timestep + label embedding, adaLN-Zero modulate x * (1 + scale) + shift from "
            "chunk(6), SDPA, unpatchify by einsum nhwpqc->nchpwq) at t=250, class 3",
            "dit", floats(8, 4, 16, 16)),
    Network("clip_vit", "OpenAI CLIP's VisionTransformer (class_embedding + zeros cat, ln_pre, "
            "fp32 LayerNorm subclass, QuickGELU, sequence-first nn.MultiheadAttention, "
            "ln_post on x[:, 0] @ proj)", "clip_vit", floats(16, 3, 32, 32)),
    Network("sam_encoder", "Segment Anything's ImageEncoderViT (B H W C tokens, window_partition "
            "with F.pad to 9x9, decomposed rel pos by get_rel_pos index + einsum, a global "
            "block, LayerNorm2d neck)", "sam_encoder", floats(8, 3, 32, 32)),
    Network("swinv2", "Swin V2 (cosine attention by F.normalize, logit scale clamped to "
            "log(100) then exp, continuous position bias MLP on a log-spaced table, 16 * "
            "sigmoid, res-post-norm, shifted window mask)", "swinv2", floats(16, 3, 32, 32)),
    Network("levit", "facebookresearch's LeViT (attention_biases[:, attention_bias_idxs], "
            "Linear_BN by flatten(0, 1) BatchNorm1d, hardswish, split q / k / v, "
            "distillation head averaged)", "levit", floats(16, 3, 32, 32)),
    Network("pvtv2", "PVT v2 (overlapping patch embed, spatial-reduction attention by a "
            "strided conv + LayerNorm, linear SRA by AdaptiveAvgPool2d(7) + GELU, DWConv in "
            "the FFN)", "pvtv2", floats(16, 3, 32, 32)),
    Network("repvgg", "DingXiaoH's RepVGG in its train form (3x3 conv-BN + 1x1 conv-BN + "
            "identity BN summed, ReLU)", "repvgg", floats(16, 3, 32, 32)),
    Network("convnextv2", "ConvNeXt V2 (GRN: torch.norm over H, W / its channel mean, "
            "channels-last LayerNorm by F.layer_norm, channels-first by hand)", "convnextv2",
            floats(16, 3, 32, 32)),
    Network("wav2vec2", "fairseq's wav2vec 2.0 (conv feature encoder with Fp32GroupNorm(C, C) "
            "first, weight_norm'd grouped positional Conv1d + SamePad, post-LN layer, "
            "sequence-first nn.MultiheadAttention) on 1600 samples", "wav2vec2",
            floats(16, 1600)),
    Network("demucs", "facebookresearch's Demucs (mono std normalisation, Conv1d k8 s4 + ReLU "
            "+ 1x1 GLU encoder, ConvTranspose1d decoder, center_trim skips, valid_length pad)",
            "demucs", floats(8, 1, 1024)),
    Network("siren", "vsitzmann's SIREN (sin(30 * Linear) layers with the uniform init, "
            "outermost linear) on 2-D pixel coordinates", "siren", _coords()),
    Network("stylegan2", "rosinality's StyleGAN2 generator (PixelNorm mapping with lr_mul "
            "EqualLinear, modulated + demodulated weight from the style, conv2d with "
            "groups=batch, ToRGB skips) from z", "stylegan2", floats(8, 32)),
)

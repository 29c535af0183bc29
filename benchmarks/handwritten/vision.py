"""Vision networks written by hand: a Swin-style model (window attention with shifted windows
by ``torch.roll``, as the Swin paper's reference code writes it)."""

import torch
from torch import nn

from benchmarks.handwritten import Network, floats


def window_partition(x, w):
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, C)

def window_reverse(x, w, B, H, W):
    C = x.shape[-1]
    x = x.view(B, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, H, W, C)

class WindowAttn(nn.Module):
    def __init__(self, dim, heads, w):
        super().__init__()
        self.h, self.w = heads, w
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.randn(heads, w * w, w * w) * 0.1)
    def forward(self, x):
        Bw, N, C = x.shape
        qkv = self.qkv(x).reshape(Bw, N, 3, self.h, C // self.h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (q * (C // self.h) ** -0.5) @ k.transpose(-2, -1) + self.bias
        a = a.softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(Bw, N, C))

class SwinBlock(nn.Module):
    def __init__(self, dim, heads, w, shift):
        super().__init__()
        self.w, self.shift = w, shift
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttn(dim, heads, w)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
    def forward(self, x):
        B, H, W, _ = x.shape
        s = self.n1(x)
        if self.shift:
            s = torch.roll(s, (-self.shift, -self.shift), (1, 2))
        s = window_reverse(self.attn(window_partition(s, self.w)), self.w, B, H, W)
        if self.shift:
            s = torch.roll(s, (self.shift, self.shift), (1, 2))
        x = x + s
        return x + self.mlp(self.n2(x))

class MiniSwin(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(1, 32, 2, 2)
        self.blocks = nn.Sequential(SwinBlock(32, 2, 4, 0), SwinBlock(32, 2, 4, 2))
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 10)
    def forward(self, x):
        x = self.embed(x).permute(0, 2, 3, 1)
        x = self.blocks(x)
        return self.head(self.norm(x).mean((1, 2)))

def swin():
    torch.manual_seed(0)
    return MiniSwin().eval()


NETWORKS = (
    Network("swin", "a Swin-style model (window partition by views, torch.roll shifts, "
            "mean((1, 2)) head)", "swin", floats(64, 1, 8, 8)),
)

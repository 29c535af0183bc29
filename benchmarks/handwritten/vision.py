"""Vision networks written by hand, each the way its paper's reference code or a well-known
repository writes it: a Swin-style model (window attention with shifted windows by
``torch.roll``), an MLP-Mixer, ViTs on ``nn.TransformerEncoder``, a U-Net, an EfficientNet-B0-style
MBConv stack, ResNeXt, MobileViT, DeepLabv3's ASPP, an FPN with a RetinaNet head, ConvNeXt, MaxViT,
HRNet, PointNet, ShuffleNetV2, a YOLOv5, CBAM, DenseNet and SegFormer."""

import math

import numpy as np
import torch
import torch.nn.functional as F
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


# --- MLP-Mixer and ViTs on nn.TransformerEncoder (ported from session 13's torchtf.py) ---

class Mixer(nn.Module):
    """MLP-Mixer: token mixing by a linear over the patches (transpose), channel mixing."""
    def __init__(self, n=16, d=32):
        super().__init__()
        self.patch = nn.Conv2d(1, d, 2, 2)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "n1": nn.LayerNorm(d), "tok": nn.Sequential(nn.Linear(n, 64), nn.GELU(),
                                                        nn.Linear(64, n)),
            "n2": nn.LayerNorm(d), "ch": nn.Sequential(nn.Linear(d, 64), nn.GELU(),
                                                       nn.Linear(64, d)),
        }) for _ in range(2))
        self.head = nn.Linear(d, 10)
    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)   # (B, 16, d)
        for b in self.blocks:
            x = x + b["tok"](b["n1"](x).transpose(1, 2)).transpose(1, 2)
            x = x + b["ch"](b["n2"](x))
        return self.head(x.mean(1))

class TorchViT(nn.Module):
    """nn.TransformerEncoder (norm_first, GELU) with a class token and learned positions."""
    def __init__(self, d=32):
        super().__init__()
        self.patch = nn.Conv2d(1, d, 2, 2)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 17, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.1, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 10)
    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.enc(x)[:, 0])

class TorchPostLN(TorchViT):
    def __init__(self, d=32):
        super().__init__(d)
        # post-LN relu: eligible for PyTorch's fast path
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2)

def mixer():
    torch.manual_seed(0)
    return Mixer().eval()

def vit():
    torch.manual_seed(0)
    return TorchViT().eval()

def postln():
    torch.manual_seed(0)
    return TorchPostLN().eval()


def _randomize_bn(model):
    """Trained-looking BatchNorm statistics (fresh ones are the identity)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return model.eval()


# --- U-Net (milesial/Pytorch-UNet's unet_parts.py) ---

class DoubleConv(nn.Module):
    """(convolution => [BN] => ReLU) * 2"""
    def __init__(self, in_channels, out_channels, mid_channels=None):
        super().__init__()
        if not mid_channels:
            mid_channels = out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
    def forward(self, x):
        return self.double_conv(x)

class Down(nn.Module):
    """Downscaling with maxpool then double conv"""
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))
    def forward(self, x):
        return self.maxpool_conv(x)

class Up(nn.Module):
    """Upscaling then double conv"""
    def __init__(self, in_channels, out_channels, bilinear=True):
        super().__init__()
        # if bilinear, use the normal convolutions to reduce the number of channels
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)
    def forward(self, x1, x2):
        x1 = self.up(x1)
        # input is CHW
        diffY = x2.size()[2] - x1.size()[2]
        diffX = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [diffX // 2, diffX - diffX // 2, diffY // 2, diffY - diffY // 2])
        x = torch.cat([x2, x1], dim=1)
        return self.conv(x)

class UNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=2, bilinear=False, c=8):
        super().__init__()
        factor = 2 if bilinear else 1
        self.inc = DoubleConv(n_channels, c)
        self.down1 = Down(c, 2 * c)
        self.down2 = Down(2 * c, 4 * c)
        self.down3 = Down(4 * c, 8 * c // factor)
        self.up1 = Up(8 * c, 4 * c // factor, bilinear)
        self.up2 = Up(4 * c, 2 * c // factor, bilinear)
        self.up3 = Up(2 * c, c, bilinear)
        self.outc = nn.Conv2d(c, n_classes, kernel_size=1)
    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x = self.up1(x4, x3)
        x = self.up2(x, x2)
        x = self.up3(x, x1)
        return self.outc(x)

def unet():
    torch.manual_seed(0)
    return _randomize_bn(UNet(bilinear=False))

def unet_bilinear():
    torch.manual_seed(0)
    return _randomize_bn(UNet(bilinear=True))


# --- EfficientNet-B0-style MBConv stack (torchvision's efficientnet.py, written out) ---

class StochasticDepth(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p
    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty([x.shape[0], 1, 1, 1], dtype=x.dtype, device=x.device)
        noise = noise.bernoulli_(survival).div_(survival)
        return x * noise

class SqueezeExcitation(nn.Module):
    def __init__(self, input_channels, squeeze_channels):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.SiLU()
        self.scale_activation = nn.Sigmoid()
    def forward(self, x):
        scale = self.avgpool(x)
        scale = self.fc2(self.activation(self.fc1(scale)))
        return self.scale_activation(scale) * x

def conv_bn_act(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)

class MBConv(nn.Module):
    def __init__(self, expand_ratio, kernel, stride, cin, cout, sd_prob):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        layers = []
        expanded = cin * expand_ratio
        if expanded != cin:
            layers.append(conv_bn_act(cin, expanded, 1))
        layers.append(conv_bn_act(expanded, expanded, kernel, stride, groups=expanded))
        layers.append(SqueezeExcitation(expanded, max(1, cin // 4)))
        layers.append(conv_bn_act(expanded, cout, 1, act=False))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(sd_prob)
    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += x
        return result

class EfficientNet(nn.Module):
    # (expand_ratio, kernel, stride, in, out, layers): B0's first four stages, narrowed
    setting = ((1, 3, 1, 16, 8, 1), (6, 3, 2, 8, 12, 2), (6, 5, 2, 12, 20, 2), (6, 3, 2, 20, 40, 1))
    def __init__(self, num_classes=10, stochastic_depth_prob=0.2):
        super().__init__()
        layers = [conv_bn_act(3, 16, 3, stride=2)]
        total = sum(s[-1] for s in self.setting)
        block_id = 0
        for e, k, s, cin, cout, n in self.setting:
            stage = []
            for i in range(n):
                sd_prob = stochastic_depth_prob * float(block_id) / total
                stage.append(MBConv(e, k, s if i == 0 else 1, cin if i == 0 else cout, cout,
                                    sd_prob))
                block_id += 1
            layers.append(nn.Sequential(*stage))
        layers.append(conv_bn_act(40, 160, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True),
                                        nn.Linear(160, num_classes))
    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)

def efficientnet():
    torch.manual_seed(0)
    return _randomize_bn(EfficientNet())


# --- ResNeXt (torchvision's resnet.py Bottleneck with groups and width_per_group) ---

class Bottleneck(nn.Module):
    expansion = 4
    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out

class ResNeXt(nn.Module):
    def __init__(self, layers=(1, 1, 1), groups=8, width_per_group=16, num_classes=10):
        super().__init__()
        self.inplanes, self.groups, self.base_width = 16, groups, width_per_group
        self.conv1 = nn.Conv2d(3, 16, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(8, layers[0])
        self.layer2 = self._make_layer(16, layers[1], stride=2)
        self.layer3 = self._make_layer(32, layers[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32 * Bottleneck.expansion, num_classes)
    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, self.groups,
                             self.base_width)]
        self.inplanes = planes * Bottleneck.expansion
        for _ in range(1, blocks):
            layers.append(Bottleneck(self.inplanes, planes, groups=self.groups,
                                     base_width=self.base_width))
        return nn.Sequential(*layers)
    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)

def resnext():
    torch.manual_seed(0)
    return _randomize_bn(ResNeXt())


# --- MobileViT block (apple/ml-cvnets' mobilevit_block.py unfolding / folding) ---

class PreNormAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.heads = heads
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.scaling = (dim // heads) ** -0.5
    def forward(self, x):
        b_sz, n_patches, _ = x.shape
        qkv = self.qkv_proj(self.norm(x)).reshape(b_sz, n_patches, 3, self.heads, -1)
        qkv = qkv.transpose(1, 3).contiguous()
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        query = query * self.scaling
        key = key.transpose(-1, -2)
        attn = torch.matmul(query, key)
        attn = torch.softmax(attn, dim=-1)
        out = torch.matmul(attn, value)
        out = out.transpose(1, 2).reshape(b_sz, n_patches, -1)
        return x + self.out_proj(out)

class TransformerEncoder(nn.Module):
    def __init__(self, dim, heads, ffn_dim):
        super().__init__()
        self.attn = PreNormAttention(dim, heads)
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, ffn_dim), nn.SiLU(),
                                 nn.Linear(ffn_dim, dim))
    def forward(self, x):
        x = self.attn(x)
        return x + self.ffn(x)

class MobileViTBlock(nn.Module):
    def __init__(self, in_channels, transformer_dim, ffn_dim, n_blocks=2, patch_h=2, patch_w=2):
        super().__init__()
        self.local_rep = nn.Sequential(conv_bn_act(in_channels, in_channels, 3),
                                       nn.Conv2d(in_channels, transformer_dim, 1, bias=False))
        self.global_rep = nn.Sequential(
            *[TransformerEncoder(transformer_dim, 4, ffn_dim) for _ in range(n_blocks)],
            nn.LayerNorm(transformer_dim))
        self.conv_proj = conv_bn_act(transformer_dim, in_channels, 1)
        self.fusion = conv_bn_act(2 * in_channels, in_channels, 3)
        self.patch_h, self.patch_w = patch_h, patch_w
        self.patch_area = patch_h * patch_w

    def unfolding(self, feature_map):
        patch_w, patch_h = self.patch_w, self.patch_h
        patch_area = int(patch_w * patch_h)
        batch_size, in_channels, orig_h, orig_w = feature_map.shape
        new_h = int(math.ceil(orig_h / self.patch_h) * self.patch_h)
        new_w = int(math.ceil(orig_w / self.patch_w) * self.patch_w)
        interpolate = False
        if new_w != orig_w or new_h != orig_h:
            feature_map = F.interpolate(feature_map, size=(new_h, new_w), mode="bilinear",
                                        align_corners=False)
            interpolate = True
        num_patch_w = new_w // patch_w
        num_patch_h = new_h // patch_h
        num_patches = num_patch_h * num_patch_w
        # [B, C, H, W] -> [B * C * n_h, p_h, n_w, p_w]
        reshaped_fm = feature_map.reshape(batch_size * in_channels * num_patch_h, patch_h,
                                          num_patch_w, patch_w)
        # [B * C * n_h, p_h, n_w, p_w] -> [B * C * n_h, n_w, p_h, p_w]
        transposed_fm = reshaped_fm.transpose(1, 2)
        # [B * C * n_h, n_w, p_h, p_w] -> [B, C, N, P]
        reshaped_fm = transposed_fm.reshape(batch_size, in_channels, num_patches, patch_area)
        # [B, C, N, P] -> [B, P, N, C]
        transposed_fm = reshaped_fm.transpose(1, 3)
        # [B, P, N, C] -> [BP, N, C]
        patches = transposed_fm.reshape(batch_size * patch_area, num_patches, -1)
        info_dict = {"orig_size": (orig_h, orig_w), "batch_size": batch_size,
                     "interpolate": interpolate, "total_patches": num_patches,
                     "num_patches_w": num_patch_w, "num_patches_h": num_patch_h}
        return patches, info_dict

    def folding(self, patches, info_dict):
        n_dim = patches.dim()
        assert n_dim == 3, f"Tensor should be of shape BPxNxC. Got: {patches.shape}"
        # [BP, N, C] --> [B, P, N, C]
        patches = patches.contiguous().view(info_dict["batch_size"], self.patch_area,
                                            info_dict["total_patches"], -1)
        batch_size, _, _, channels = patches.size()
        num_patch_h = info_dict["num_patches_h"]
        num_patch_w = info_dict["num_patches_w"]
        # [B, P, N, C] --> [B, C, N, P]
        patches = patches.transpose(1, 3)
        # [B, C, N, P] --> [B*C*n_h, n_w, p_h, p_w]
        feature_map = patches.reshape(batch_size * channels * num_patch_h, num_patch_w,
                                      self.patch_h, self.patch_w)
        # [B*C*n_h, n_w, p_h, p_w] --> [B*C*n_h, p_h, n_w, p_w]
        feature_map = feature_map.transpose(1, 2)
        # [B*C*n_h, p_h, n_w, p_w] --> [B, C, H, W]
        feature_map = feature_map.reshape(batch_size, channels, num_patch_h * self.patch_h,
                                          num_patch_w * self.patch_w)
        if info_dict["interpolate"]:
            feature_map = F.interpolate(feature_map, size=info_dict["orig_size"],
                                        mode="bilinear", align_corners=False)
        return feature_map

    def forward(self, x):
        res = x
        fm = self.local_rep(x)
        patches, info_dict = self.unfolding(fm)
        patches = self.global_rep(patches)
        fm = self.folding(patches, info_dict)
        fm = self.conv_proj(fm)
        return self.fusion(torch.cat((res, fm), dim=1))

class MobileViT(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv_1 = conv_bn_act(3, 16, 3, stride=2)
        self.layer_1 = MBConv(2, 3, 1, 16, 16, 0.0)
        self.layer_2 = MBConv(2, 3, 2, 16, 24, 0.0)
        self.layer_3 = MobileViTBlock(24, 32, 64)
        self.conv_1x1_exp = conv_bn_act(24, 64, 1)
        self.classifier = nn.Linear(64, num_classes)
    def forward(self, x):
        x = self.layer_3(self.layer_2(self.layer_1(self.conv_1(x))))
        x = self.conv_1x1_exp(x)
        return self.classifier(torch.mean(x, dim=[-2, -1]))

def mobilevit():
    torch.manual_seed(0)
    return _randomize_bn(MobileViT())


# --- DeepLabv3 with an ASPP head (torchvision's deeplabv3.py) ---

class ASPPConv(nn.Sequential):
    def __init__(self, in_channels, out_channels, dilation):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU())

class ASPPPooling(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU())
    def forward(self, x):
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

class ASPP(nn.Module):
    def __init__(self, in_channels, atrous_rates, out_channels=32):
        super().__init__()
        modules = [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                 nn.BatchNorm2d(out_channels), nn.ReLU())]
        for rate in tuple(atrous_rates):
            modules.append(ASPPConv(in_channels, out_channels, rate))
        modules.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(modules)
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Dropout(0.5))
    def forward(self, x):
        _res = []
        for conv in self.convs:
            _res.append(conv(x))
        res = torch.cat(_res, dim=1)
        return self.project(res)

class DeepLabV3(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        # output stride 8: a strided stem, then dilated convs keep the resolution
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 48, 3, 2, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(inplace=True),
            nn.Conv2d(48, 48, 3, 1, 2, dilation=2, bias=False), nn.BatchNorm2d(48),
            nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(
            ASPP(48, [2, 4, 6]),
            nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, num_classes, 1))
    def forward(self, x):
        input_shape = x.shape[-2:]
        features = self.backbone(x)
        x = self.classifier(features)
        return F.interpolate(x, size=input_shape, mode="bilinear", align_corners=False)

def deeplab():
    torch.manual_seed(0)
    return _randomize_bn(DeepLabV3())


# --- FPN + RetinaNet-style head (torchvision's feature_pyramid_network.py / retinanet.py) ---

class FPN(nn.Module):
    def __init__(self, in_channels_list, out_channels):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                          for _ in in_channels_list)
    def forward(self, x):
        last_inner = self.inner_blocks[-1](x[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(x) - 2, -1, -1):
            inner_lateral = self.inner_blocks[idx](x[idx])
            feat_shape = inner_lateral.shape[-2:]
            inner_top_down = F.interpolate(last_inner, size=feat_shape, mode="nearest")
            last_inner = inner_lateral + inner_top_down
            results.insert(0, self.layer_blocks[idx](last_inner))
        return results

class RetinaHead(nn.Module):
    def __init__(self, in_channels, num_anchors, num_classes):
        super().__init__()
        self.num_classes = num_classes
        cls, box = [], []
        for _ in range(2):
            cls += [nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU()]
            box += [nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU()]
        self.cls_conv, self.bbox_conv = nn.Sequential(*cls), nn.Sequential(*box)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        self.bbox_reg = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
    def forward(self, x):
        all_cls, all_box = [], []
        for features in x:
            cls_logits = self.cls_logits(self.cls_conv(features))
            N, _, H, W = cls_logits.shape
            cls_logits = cls_logits.view(N, -1, self.num_classes, H, W)
            cls_logits = cls_logits.permute(0, 3, 4, 1, 2)
            all_cls.append(cls_logits.reshape(N, -1, self.num_classes))
            bbox = self.bbox_reg(self.bbox_conv(features))
            bbox = bbox.view(N, -1, 4, H, W).permute(0, 3, 4, 1, 2)
            all_box.append(bbox.reshape(N, -1, 4))
        return torch.cat(all_cls, dim=1), torch.cat(all_box, dim=1)

class RetinaNet(nn.Module):
    def __init__(self, num_classes=5, num_anchors=3):
        super().__init__()
        def stage(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))
        self.c2 = nn.Sequential(stage(3, 8), stage(8, 16))
        self.c3, self.c4, self.c5 = stage(16, 24), stage(24, 32), stage(32, 48)
        self.fpn = FPN([24, 32, 48], 16)
        self.head = RetinaHead(16, num_anchors, num_classes)
    def forward(self, images):
        c3 = self.c3(self.c2(images))
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        cls, box = self.head(self.fpn([c3, c4, c5]))
        return torch.cat([cls.sigmoid(), box], dim=-1)

def fpn():
    torch.manual_seed(0)
    return _randomize_bn(RetinaNet())


# --- ConvNeXt (facebookresearch/ConvNeXt's models/convnext.py) ---

class LayerNorm(nn.Module):
    r""" LayerNorm that supports two data formats: channels_last (default) or channels_first."""
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
        x = self.weight[:, None, None] * x + self.bias[:, None, None]
        return x

class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, drop_path=0., layer_scale_init_value=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim),
                                  requires_grad=True) if layer_scale_init_value > 0 else None
        self.drop_path = nn.Identity()
    def forward(self, x):
        input = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        x = self.norm(x)
        x = self.pwconv1(x)
        x = self.act(x)
        x = self.pwconv2(x)
        if self.gamma is not None:
            x = self.gamma * x
        x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        x = input + self.drop_path(x)
        return x

class ConvNeXt(nn.Module):
    def __init__(self, in_chans=3, num_classes=10, depths=(1, 1, 2), dims=(16, 32, 48)):
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(
            nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4),
            LayerNorm(dims[0], eps=1e-6, data_format="channels_first")))
        for i in range(len(dims) - 1):
            self.downsample_layers.append(nn.Sequential(
                LayerNorm(dims[i], eps=1e-6, data_format="channels_first"),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2)))
        self.stages = nn.ModuleList(nn.Sequential(*[ConvNeXtBlock(dims[i]) for _ in range(d)])
                                    for i, d in enumerate(depths))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
    def forward(self, x):
        for i in range(len(self.stages)):
            x = self.downsample_layers[i](x)
            x = self.stages[i](x)
        return self.head(self.norm(x.mean([-2, -1])))

def convnext():
    torch.manual_seed(0)
    m = ConvNeXt()
    with torch.no_grad():  # a trained model's layer scale is far from its 1e-6 init
        for blk in m.modules():
            if isinstance(blk, ConvNeXtBlock):
                blk.gamma.uniform_(0.2, 1.0)
    return m.eval()


# --- MaxViT (torchvision's maxvit.py: MBConv, block attention, grid attention) ---

def _get_relative_position_index(height, width):
    coords = torch.stack(torch.meshgrid([torch.arange(height), torch.arange(width)],
                                        indexing="ij"))
    coords_flat = torch.flatten(coords, 1)
    relative_coords = coords_flat[:, :, None] - coords_flat[:, None, :]
    relative_coords = relative_coords.permute(1, 2, 0).contiguous()
    relative_coords[:, :, 0] += height - 1
    relative_coords[:, :, 1] += width - 1
    relative_coords[:, :, 0] *= 2 * width - 1
    return relative_coords.sum(-1)

class MaxVitMBConv(nn.Module):
    def __init__(self, in_channels, out_channels, expansion_ratio=4, squeeze_ratio=0.25):
        super().__init__()
        mid = int(out_channels * expansion_ratio)
        sqz = int(out_channels * squeeze_ratio)
        self.layers = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.GELU(),
            nn.Conv2d(mid, mid, 3, 1, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.GELU(),
            SqueezeExcitation(mid, sqz),
            nn.Conv2d(mid, out_channels, 1, bias=True))
    def forward(self, x):
        return x + self.layers(x)

class RelativePositionalMultiHeadAttention(nn.Module):
    def __init__(self, feat_dim, head_dim, max_seq_len):
        super().__init__()
        self.n_heads = feat_dim // head_dim
        self.head_dim = head_dim
        self.size = int(math.sqrt(max_seq_len))
        self.max_seq_len = max_seq_len
        self.to_qkv = nn.Linear(feat_dim, self.n_heads * self.head_dim * 3)
        self.scale_factor = feat_dim**-0.5
        self.merge = nn.Linear(self.head_dim * self.n_heads, feat_dim)
        self.relative_position_bias_table = nn.parameter.Parameter(
            torch.empty(((2 * self.size - 1) * (2 * self.size - 1), self.n_heads),
                        dtype=torch.float32))
        self.register_buffer("relative_position_index",
                             _get_relative_position_index(self.size, self.size))
        torch.nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
    def get_relative_positional_bias(self):
        bias_index = self.relative_position_index.view(-1)
        relative_bias = self.relative_position_bias_table[bias_index].view(
            self.max_seq_len, self.max_seq_len, -1)
        relative_bias = relative_bias.permute(2, 0, 1).contiguous()
        return relative_bias.unsqueeze(0)
    def forward(self, x):
        B, G, P, D = x.shape
        H, DH = self.n_heads, self.head_dim
        qkv = self.to_qkv(x)
        q, k, v = torch.chunk(qkv, 3, dim=-1)
        q = q.reshape(B, G, P, H, DH).permute(0, 1, 3, 2, 4)
        k = k.reshape(B, G, P, H, DH).permute(0, 1, 3, 2, 4)
        v = v.reshape(B, G, P, H, DH).permute(0, 1, 3, 2, 4)
        k = k * self.scale_factor
        dot_prod = torch.einsum("B G H I D, B G H J D -> B G H I J", q, k)
        pos_bias = self.get_relative_positional_bias()
        dot_prod = F.softmax(dot_prod + pos_bias, dim=-1)
        out = torch.einsum("B G H I J, B G H J D -> B G H I D", dot_prod, v)
        out = out.permute(0, 1, 3, 2, 4).reshape(B, G, P, D)
        return self.merge(out)

class SwapAxes(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b
    def forward(self, x):
        return torch.swapaxes(x, self.a, self.b)

class WindowPartition(nn.Module):
    def forward(self, x, p):
        B, C, H, W = x.shape
        P = p
        # chunk up H and W dimensions
        x = x.reshape(B, C, H // P, P, W // P, P)
        x = x.permute(0, 2, 4, 3, 5, 1)
        # colapse P * P dimension
        return x.reshape(B, (H // P) * (W // P), P * P, C)

class WindowDepartition(nn.Module):
    def forward(self, x, p, h_partitions, w_partitions):
        B, _, _, C = x.shape
        P = p
        HP, WP = h_partitions, w_partitions
        x = x.reshape(B, HP, WP, P, P, C)
        x = x.permute(0, 5, 1, 3, 2, 4)
        return x.reshape(B, C, HP * P, WP * P)

class PartitionAttentionLayer(nn.Module):
    def __init__(self, in_channels, head_dim, partition_size, partition_type, grid_size,
                 mlp_ratio=2):
        super().__init__()
        self.n_partitions = grid_size[0] // partition_size
        self.grid_size = grid_size
        if partition_type == "window":
            self.p, self.g = partition_size, self.n_partitions
        else:
            self.p, self.g = self.n_partitions, partition_size
        self.partition_op = WindowPartition()
        self.departition_op = WindowDepartition()
        self.partition_swap = SwapAxes(-2, -3) if partition_type == "grid" else nn.Identity()
        self.departition_swap = SwapAxes(-2, -3) if partition_type == "grid" else nn.Identity()
        self.attn_layer = nn.Sequential(
            nn.LayerNorm(in_channels),
            RelativePositionalMultiHeadAttention(in_channels, head_dim, partition_size**2),
            nn.Dropout(0.0))
        self.mlp_layer = nn.Sequential(
            nn.LayerNorm(in_channels), nn.Linear(in_channels, in_channels * mlp_ratio),
            nn.GELU(), nn.Linear(in_channels * mlp_ratio, in_channels), nn.Dropout(0.0))
    def forward(self, x):
        gh, gw = self.grid_size[0] // self.p, self.grid_size[1] // self.p
        x = self.partition_op(x, self.p)
        x = self.partition_swap(x)
        x = x + self.attn_layer(x)
        x = x + self.mlp_layer(x)
        x = self.departition_swap(x)
        return self.departition_op(x, self.p, gh, gw)

class MaxViT(nn.Module):
    def __init__(self, num_classes=10, dim=32, partition_size=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 3, 2, 1, bias=False), nn.BatchNorm2d(dim),
                                  nn.GELU(), nn.Conv2d(dim, dim, 3, 2, 1))
        grid = (8, 8)
        self.layers = nn.Sequential(
            MaxVitMBConv(dim, dim),
            PartitionAttentionLayer(dim, 16, partition_size, "window", grid),
            PartitionAttentionLayer(dim, 16, partition_size, "grid", grid))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(dim),
                                        nn.Linear(dim, dim), nn.Tanh(),
                                        nn.Linear(dim, num_classes, bias=False))
    def forward(self, x):
        return self.classifier(self.layers(self.stem(x)))

def maxvit():
    torch.manual_seed(0)
    return _randomize_bn(MaxViT())


# --- HRNet (HRNet-Semantic-Segmentation's seg_hrnet.py: branches, fuse layers, V2 head) ---

class BasicBlock(nn.Module):
    expansion = 1
    def __init__(self, inplanes, planes):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + residual
        return self.relu(out)

class HighResolutionModule(nn.Module):
    def __init__(self, num_channels):
        super().__init__()
        self.num_branches = len(num_channels)
        self.num_inchannels = list(num_channels)
        self.branches = nn.ModuleList(BasicBlock(c, c) for c in num_channels)
        self.fuse_layers = self._make_fuse_layers()
        self.relu = nn.ReLU(inplace=False)
    def _make_fuse_layers(self):
        num_branches = self.num_branches
        num_inchannels = self.num_inchannels
        fuse_layers = []
        for i in range(num_branches):
            fuse_layer = []
            for j in range(num_branches):
                if j > i:
                    fuse_layer.append(nn.Sequential(
                        nn.Conv2d(num_inchannels[j], num_inchannels[i], 1, 1, 0, bias=False),
                        nn.BatchNorm2d(num_inchannels[i])))
                elif j == i:
                    fuse_layer.append(None)
                else:
                    conv3x3s = []
                    for k in range(i - j):
                        if k == i - j - 1:
                            num_outchannels_conv3x3 = num_inchannels[i]
                            conv3x3s.append(nn.Sequential(
                                nn.Conv2d(num_inchannels[j], num_outchannels_conv3x3, 3, 2, 1,
                                          bias=False),
                                nn.BatchNorm2d(num_outchannels_conv3x3)))
                        else:
                            num_outchannels_conv3x3 = num_inchannels[j]
                            conv3x3s.append(nn.Sequential(
                                nn.Conv2d(num_inchannels[j], num_outchannels_conv3x3, 3, 2, 1,
                                          bias=False),
                                nn.BatchNorm2d(num_outchannels_conv3x3),
                                nn.ReLU(inplace=False)))
                    fuse_layer.append(nn.Sequential(*conv3x3s))
            fuse_layers.append(nn.ModuleList(fuse_layer))
        return nn.ModuleList(fuse_layers)
    def forward(self, x):
        for i in range(self.num_branches):
            x[i] = self.branches[i](x[i])
        x_fuse = []
        for i in range(len(self.fuse_layers)):
            y = x[0] if i == 0 else self.fuse_layers[i][0](x[0])
            for j in range(1, self.num_branches):
                if i == j:
                    y = y + x[j]
                elif j > i:
                    width_output = x[i].shape[-1]
                    height_output = x[i].shape[-2]
                    y = y + F.interpolate(self.fuse_layers[i][j](x[j]),
                                          size=[height_output, width_output],
                                          mode="bilinear", align_corners=True)
                else:
                    y = y + self.fuse_layers[i][j](x[j])
            x_fuse.append(self.relu(y))
        return x_fuse

class HRNet(nn.Module):
    def __init__(self, num_classes=4, c=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        self.transition = nn.ModuleList([
            nn.Sequential(nn.Conv2d(16, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c),
                          nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 4 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(4 * c),
                          nn.ReLU())])
        self.stage = nn.Sequential(HighResolutionModule([c, 2 * c, 4 * c]),
                                   HighResolutionModule([c, 2 * c, 4 * c]))
        last_inp_channels = 7 * c
        self.last_layer = nn.Sequential(
            nn.Conv2d(last_inp_channels, last_inp_channels, 1), nn.BatchNorm2d(last_inp_channels),
            nn.ReLU(inplace=False), nn.Conv2d(last_inp_channels, num_classes, 1))
    def forward(self, x):
        x = self.stem(x)
        x_list = [t(x) for t in self.transition]
        x = self.stage(x_list)
        x0_h, x0_w = x[0].size(2), x[0].size(3)
        x1 = F.interpolate(x[1], size=(x0_h, x0_w), mode="bilinear", align_corners=True)
        x2 = F.interpolate(x[2], size=(x0_h, x0_w), mode="bilinear", align_corners=True)
        x = torch.cat([x[0], x1, x2], 1)
        return self.last_layer(x)

def hrnet():
    torch.manual_seed(0)
    return _randomize_bn(HRNet())


# --- PointNet classifier (fxia22/pointnet.pytorch's model.py, with the input T-Net) ---

class STN3d(nn.Module):
    def __init__(self, c=(16, 32, 64), fc=(32, 16)):
        super().__init__()
        self.width = c[2]
        self.conv1 = torch.nn.Conv1d(3, c[0], 1)
        self.conv2 = torch.nn.Conv1d(c[0], c[1], 1)
        self.conv3 = torch.nn.Conv1d(c[1], c[2], 1)
        self.fc1 = nn.Linear(c[2], fc[0])
        self.fc2 = nn.Linear(fc[0], fc[1])
        self.fc3 = nn.Linear(fc[1], 9)
        self.relu = nn.ReLU()
        self.bn1, self.bn2, self.bn3 = (nn.BatchNorm1d(n) for n in c)
        self.bn4, self.bn5 = nn.BatchNorm1d(fc[0]), nn.BatchNorm1d(fc[1])
    def forward(self, x):
        batchsize = x.size()[0]
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = torch.max(x, 2, keepdim=True)[0]
        x = x.view(-1, self.width)
        x = F.relu(self.bn4(self.fc1(x)))
        x = F.relu(self.bn5(self.fc2(x)))
        x = self.fc3(x)
        iden = torch.from_numpy(np.array([1, 0, 0, 0, 1, 0, 0, 0, 1]).astype(np.float32))
        iden = iden.view(1, 9).repeat(batchsize, 1)
        if x.is_cuda:
            iden = iden.cuda()
        x = x + iden
        x = x.view(-1, 3, 3)
        return x

class PointNetfeat(nn.Module):
    def __init__(self, c=(16, 32, 64)):
        super().__init__()
        self.width = c[2]
        self.stn = STN3d()
        self.conv1 = torch.nn.Conv1d(3, c[0], 1)
        self.conv2 = torch.nn.Conv1d(c[0], c[1], 1)
        self.conv3 = torch.nn.Conv1d(c[1], c[2], 1)
        self.bn1, self.bn2, self.bn3 = (nn.BatchNorm1d(n) for n in c)
    def forward(self, x):
        trans = self.stn(x)
        x = x.transpose(2, 1)
        x = torch.bmm(x, trans)
        x = x.transpose(2, 1)
        x = F.relu(self.bn1(self.conv1(x)))
        trans_feat = None
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        x = torch.max(x, 2, keepdim=True)[0]
        x = x.view(-1, self.width)
        return x, trans, trans_feat

class PointNetCls(nn.Module):
    def __init__(self, k=8):
        super().__init__()
        self.feat = PointNetfeat()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 16)
        self.fc3 = nn.Linear(16, k)
        self.dropout = nn.Dropout(p=0.3)
        self.bn1 = nn.BatchNorm1d(32)
        self.bn2 = nn.BatchNorm1d(16)
        self.relu = nn.ReLU()
    def forward(self, x):
        x, trans, trans_feat = self.feat(x)
        x = F.relu(self.bn1(self.fc1(x)))
        x = F.relu(self.bn2(self.dropout(self.fc2(x))))
        x = self.fc3(x)
        return F.log_softmax(x, dim=1), trans, trans_feat

def pointnet():
    torch.manual_seed(0)
    return _randomize_bn(PointNetCls())


# --- ShuffleNetV2 (torchvision's shufflenetv2.py: channel_shuffle by view/transpose/view) ---

def channel_shuffle(x, groups):
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    # reshape
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    # flatten
    x = x.view(batchsize, num_channels, height, width)
    return x

class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride):
        super().__init__()
        self.stride = stride
        branch_features = oup // 2
        if self.stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, 1, bias=False), nn.BatchNorm2d(branch_features),
                nn.ReLU(inplace=True))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if (self.stride > 1) else branch_features, branch_features, 1,
                      bias=False),
            nn.BatchNorm2d(branch_features), nn.ReLU(inplace=True),
            nn.Conv2d(branch_features, branch_features, 3, stride, 1, groups=branch_features,
                      bias=False),
            nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, 1, bias=False),
            nn.BatchNorm2d(branch_features), nn.ReLU(inplace=True))
    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        out = channel_shuffle(out, 2)
        return out

class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stage2 = nn.Sequential(InvertedResidual(16, 32, 2), InvertedResidual(32, 32, 1))
        self.stage3 = nn.Sequential(InvertedResidual(32, 64, 2), InvertedResidual(64, 64, 1))
        self.conv5 = nn.Sequential(nn.Conv2d(64, 128, 1, bias=False), nn.BatchNorm2d(128),
                                   nn.ReLU(inplace=True))
        self.fc = nn.Linear(128, num_classes)
    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.stage3(self.stage2(x))
        x = self.conv5(x)
        x = x.mean([2, 3])  # globalpool
        return self.fc(x)

def shufflenet():
    torch.manual_seed(0)
    return _randomize_bn(ShuffleNetV2())


# --- YOLOv5-style (ultralytics' common.py: Focus, C3, SPPF, nearest upsample + cat, Detect) ---

def autopad(k, p=None):
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p

class Conv(nn.Module):
    # Standard convolution with args(ch_in, ch_out, kernel, stride, padding, groups)
    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p), groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU() if act is True else (act if isinstance(act, nn.Module)
                                                  else nn.Identity())
    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

class Focus(nn.Module):
    # Focus wh information into c-space
    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, act=True):
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, s, p, g, act=act)
    def forward(self, x):  # x(b,c,w,h) -> y(b,4c,w/2,h/2)
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2],
                                    x[..., 1::2, 1::2]), 1))

class YoloBottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2
    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))

class C3(nn.Module):
    # CSP Bottleneck with 3 convolutions
    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(YoloBottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))
    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))

class SPPF(nn.Module):
    # Spatial Pyramid Pooling - Fast (SPPF) layer for YOLOv5 by Glenn Jocher
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))

class Detect(nn.Module):
    def __init__(self, nc=3, ch=(), na=3):
        super().__init__()
        self.nc, self.no, self.na = nc, nc + 5, na
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
    def forward(self, x):
        z = []
        for i in range(len(x)):
            x[i] = self.m[i](x[i])
            bs, _, ny, nx = x[i].shape
            x[i] = x[i].view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            z.append(x[i].sigmoid().view(bs, -1, self.no))
        return torch.cat(z, 1)

class YOLOv5(nn.Module):
    def __init__(self, nc=3):
        super().__init__()
        self.focus = Focus(3, 16, 3)
        self.down1, self.c3_1 = Conv(16, 32, 3, 2), C3(32, 32)
        self.down2, self.c3_2 = Conv(32, 64, 3, 2), C3(64, 64)
        self.sppf = SPPF(64, 64)
        self.lat = Conv(64, 32, 1, 1)
        self.up = nn.Upsample(None, 2, "nearest")
        self.c3_3 = C3(64, 32, shortcut=False)
        self.detect = Detect(nc, (32, 64))
    def forward(self, x):
        p3 = self.c3_1(self.down1(self.focus(x)))
        p4 = self.sppf(self.c3_2(self.down2(p3)))
        h = self.lat(p4)
        p3 = self.c3_3(torch.cat([self.up(h), p3], 1))
        return self.detect([p3, p4])

def yolov5():
    torch.manual_seed(0)
    return _randomize_bn(YOLOv5())


# --- CBAM in a ResNet basic block (Jongchan/attention-module's cbam.py) ---

class ChannelGate(nn.Module):
    def __init__(self, gate_channels, reduction_ratio=4):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(gate_channels,
                                                         gate_channels // reduction_ratio),
                                 nn.ReLU(), nn.Linear(gate_channels // reduction_ratio,
                                                      gate_channels))
    def forward(self, x):
        avg_pool = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        max_pool = F.max_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        channel_att_sum = self.mlp(avg_pool) + self.mlp(max_pool)
        scale = torch.sigmoid(channel_att_sum).unsqueeze(2).unsqueeze(3).expand_as(x)
        return x * scale

class ChannelPool(nn.Module):
    def forward(self, x):
        return torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)

class SpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        kernel_size = 7
        self.compress = ChannelPool()
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, kernel_size, 1, (kernel_size - 1) // 2,
                                               bias=False), nn.BatchNorm2d(1))
    def forward(self, x):
        x_compress = self.compress(x)
        x_out = self.spatial(x_compress)
        scale = torch.sigmoid(x_out)  # broadcasting
        return x * scale

class CBAMBlock(nn.Module):
    def __init__(self, planes):
        super().__init__()
        self.conv1 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.channel_gate, self.spatial_gate = ChannelGate(planes), SpatialGate()
    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.spatial_gate(self.channel_gate(out))
        out += residual
        return self.relu(out)

class CBAMNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        self.layer = nn.Sequential(CBAMBlock(16), CBAMBlock(16))
        self.fc = nn.Linear(16, num_classes)
    def forward(self, x):
        x = self.layer(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1)
        return self.fc(x)

def cbam():
    torch.manual_seed(0)
    return _randomize_bn(CBAMNet())


# --- DenseNet (torchvision's densenet.py: BN-ReLU-conv pre-activation on concatenated maps) ---

class DenseLayer(nn.Module):
    def __init__(self, num_input_features, growth_rate, bn_size):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
    def forward(self, input):
        prev_features = [input] if isinstance(input, torch.Tensor) else input
        concated_features = torch.cat(prev_features, 1)
        bottleneck_output = self.conv1(self.relu1(self.norm1(concated_features)))
        return self.conv2(self.relu2(self.norm2(bottleneck_output)))

class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers, num_input_features, bn_size, growth_rate):
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size)
            self.add_module(f"denselayer{i + 1}", layer)
    def forward(self, init_features):
        features = [init_features]
        for layer in self.values():
            new_features = layer(features)
            features.append(new_features)
        return torch.cat(features, 1)

class Transition(nn.Sequential):
    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, 1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

class DenseNet(nn.Module):
    def __init__(self, growth_rate=8, block_config=(3, 3), num_init_features=16, bn_size=2,
                 num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, num_init_features, 3, 1, 1, bias=False),
            nn.BatchNorm2d(num_init_features), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}",
                                     DenseBlock(num_layers, num_features, bn_size, growth_rate))
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}",
                                         Transition(num_features, num_features // 2))
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
    def forward(self, x):
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        return self.classifier(out)

def densenet():
    torch.manual_seed(0)
    return _randomize_bn(DenseNet())


# --- SegFormer (NVlabs' mix_transformer.py MiT stages + SegFormerHead) ---

class OverlapPatchEmbed(nn.Module):
    def __init__(self, patch_size=7, stride=4, in_chans=3, embed_dim=32):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride,
                              padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)
    def forward(self, x):
        x = self.proj(x)
        _, _, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = self.norm(x)
        return x, H, W

class EfficientAttention(nn.Module):
    def __init__(self, dim, num_heads=1, sr_ratio=1):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)
    def forward(self, x, H, W):
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            x_ = x.permute(0, 2, 1).reshape(B, C, H, W)
            x_ = self.sr(x_).reshape(B, C, -1).permute(0, 2, 1)
            x_ = self.norm(x_)
            kv = self.kv(x_).reshape(B, -1, 2, self.num_heads,
                                     C // self.num_heads).permute(2, 0, 3, 1, 4)
        else:
            kv = self.kv(x).reshape(B, -1, 2, self.num_heads,
                                    C // self.num_heads).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)

class DWConv(nn.Module):
    def __init__(self, dim=768):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)
    def forward(self, x, H, W):
        B, _, C = x.shape
        x = x.transpose(1, 2).view(B, C, H, W)
        x = self.dwconv(x)
        x = x.flatten(2).transpose(1, 2)
        return x

class MixFFN(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.dwconv = DWConv(hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
    def forward(self, x, H, W):
        x = self.fc1(x)
        x = self.act(self.dwconv(x, H, W))
        return self.fc2(x)

class MiTBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, sr_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientAttention(dim, num_heads=num_heads, sr_ratio=sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio))
    def forward(self, x, H, W):
        x = x + self.attn(self.norm1(x), H, W)
        x = x + self.mlp(self.norm2(x), H, W)
        return x

class SegFormer(nn.Module):
    def __init__(self, num_classes=4, dims=(16, 32), heads=(1, 2), srs=(4, 2), embed_dim=32):
        super().__init__()
        self.patch_embed1 = OverlapPatchEmbed(7, 4, 3, dims[0])
        self.patch_embed2 = OverlapPatchEmbed(3, 2, dims[0], dims[1])
        self.block1 = nn.ModuleList([MiTBlock(dims[0], heads[0], 2, srs[0])])
        self.block2 = nn.ModuleList([MiTBlock(dims[1], heads[1], 2, srs[1])])
        self.norm1, self.norm2 = nn.LayerNorm(dims[0]), nn.LayerNorm(dims[1])
        self.linear_c1, self.linear_c2 = nn.Linear(dims[0], embed_dim), nn.Linear(dims[1],
                                                                                  embed_dim)
        self.linear_fuse = nn.Sequential(nn.Conv2d(2 * embed_dim, embed_dim, 1, bias=False),
                                         nn.BatchNorm2d(embed_dim), nn.ReLU(inplace=True))
        self.linear_pred = nn.Conv2d(embed_dim, num_classes, kernel_size=1)
    def forward(self, x):
        B = x.shape[0]
        outs = []
        for embed, blocks, norm in ((self.patch_embed1, self.block1, self.norm1),
                                    (self.patch_embed2, self.block2, self.norm2)):
            x, H, W = embed(x)
            for blk in blocks:
                x = blk(x, H, W)
            x = norm(x)
            x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        c1, c2 = outs
        n = c2.shape[0]
        _c2 = self.linear_c2(c2.flatten(2).transpose(1, 2)).permute(0, 2, 1).reshape(
            n, -1, c2.shape[2], c2.shape[3])
        _c2 = F.interpolate(_c2, size=c1.size()[2:], mode="bilinear", align_corners=False)
        _c1 = self.linear_c1(c1.flatten(2).transpose(1, 2)).permute(0, 2, 1).reshape(
            n, -1, c1.shape[2], c1.shape[3])
        _c = self.linear_fuse(torch.cat([_c2, _c1], dim=1))
        return self.linear_pred(_c)

def segformer():
    torch.manual_seed(0)
    return _randomize_bn(SegFormer())


NETWORKS = (
    Network("swin", "a Swin-style model (window partition by views, torch.roll shifts, "
            "mean((1, 2)) head)", "swin", floats(64, 1, 8, 8)),
    Network("mixer", "an MLP-Mixer (token mixing by a Linear over the transposed patches)",
            "mixer", floats(64, 1, 8, 8)),
    Network("vit", "a ViT on nn.TransformerEncoder (norm_first, GELU, class token)", "vit",
            floats(64, 1, 8, 8)),
    Network("postln", "a ViT on nn.TransformerEncoder's post-LN ReLU layer (PyTorch's fast "
            "path)", "postln", floats(64, 1, 8, 8)),
    Network("unet", "milesial/Pytorch-UNet's U-Net (ConvTranspose2d up, F.pad, skip torch.cat)",
            "unet", floats(16, 3, 16, 16)),
    Network("unet_bilinear", "the same U-Net with nn.Upsample(bilinear, align_corners=True)",
            "unet_bilinear", floats(16, 3, 16, 16)),
    Network("efficientnet", "EfficientNet-B0-style MBConv stack (torchvision's: SE, SiLU, "
            "stochastic depth in eval)", "efficientnet", floats(16, 3, 32, 32)),
    Network("resnext", "ResNeXt bottlenecks (torchvision's resnet.py, groups=8)", "resnext",
            floats(16, 3, 32, 32)),
    Network("mobilevit", "MobileViT block (ml-cvnets' unfolding/folding by reshape+transpose)",
            "mobilevit", floats(16, 3, 32, 32)),
    Network("deeplab", "DeepLabv3 ASPP head (torchvision's: dilated convs, image pooling + "
            "bilinear interpolate)", "deeplab", floats(16, 3, 32, 32)),
    Network("fpn", "FPN + RetinaNet head (torchvision's: lateral 1x1, nearest top-down add, "
            "per-level permute/reshape/cat)", "fpn", floats(16, 3, 64, 64)),
    Network("convnext", "ConvNeXt (facebookresearch's: dw 7x7, channels_first LayerNorm by "
            "hand, layer scale)", "convnext", floats(16, 3, 32, 32)),
    Network("maxvit", "MaxViT block (torchvision's: MBConv, window and grid attention with "
            "relative position bias, einsum)", "maxvit", floats(16, 3, 32, 32)),
    Network("hrnet", "HRNet (seg_hrnet.py's fuse layers: strided convs down, bilinear up; "
            "V2 head)", "hrnet", floats(16, 3, 32, 32)),
    Network("pointnet", "PointNet classifier (fxia22's: T-Net + bmm, Conv1d shared MLP, max "
            "over points; (log-probs, trans, None) returned: --output 0)", "pointnet",
            floats(32, 3, 64), output="0"),
    Network("shufflenet", "ShuffleNetV2 (torchvision's: chunk, cat, channel_shuffle by "
            "view/transpose/view)", "shufflenet", floats(16, 3, 32, 32)),
    Network("yolov5", "YOLOv5-style (ultralytics' Focus strided slices, C3, SPPF, nearest "
            "upsample + cat, Detect's view/permute/sigmoid)", "yolov5", floats(16, 3, 64, 64)),
    Network("cbam", "CBAM in ResNet blocks (attention-module's: avg/max pool MLP gate, channel "
            "max + mean pooled spatial gate)", "cbam", floats(16, 3, 32, 32)),
    Network("densenet", "DenseNet (torchvision's: BN-ReLU-conv on torch.cat of every earlier "
            "map, transitions)", "densenet", floats(16, 3, 32, 32)),
    Network("segformer", "SegFormer (NVlabs' MiT: overlapped patch embed, spatial-reduction "
            "attention, Mix-FFN's depthwise conv on tokens viewed as a map, all-MLP head)",
            "segformer", floats(16, 3, 32, 32)),
)

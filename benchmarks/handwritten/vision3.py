"""Vision networks written by hand (third round), each the way its reference code writes it:
torchvision's MobileNetV3 (hardswish / hardsigmoid SE, ``_make_divisible``) and RegNetY, Huawei's
GhostNet (cheap depthwise ops, concat then slice), ultralytics' YOLOv8 (C2f's chunk + list,
SPPF, the decoupled head with DFL's softmax over 16 bins and a fixed arange conv, anchors built
in forward), facebookresearch's DETR (sine position embeddings from a mask, learned object
queries, ``nn.MultiheadAttention``), the latent-diffusion VAE decoder (GroupNorm, swish,
mid-block attention by bmm, nearest upsample), EDSR and ESPCN (PixelShuffle), Res2Net
(split, hierarchical adds, cat), PoolFormer (avg-pool minus identity, GroupNorm(1)) and gMLP
(the spatial gating unit). Small, random weights."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.handwritten import Network, floats
from benchmarks.handwritten.vision import _randomize_bn

# --- MobileNetV3 (torchvision/models/mobilenetv3.py) ---


def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class SqueezeExcitation(nn.Module):
    def __init__(self, input_channels, squeeze_channels, activation=nn.ReLU,
                 scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input):
        scale = self.avgpool(input)
        scale = self.fc1(scale)
        scale = self.activation(scale)
        scale = self.fc2(scale)
        return self.scale_activation(scale)

    def forward(self, input):
        scale = self._scale(input)
        return scale * input


class Conv2dNormActivation(nn.Sequential):
    def __init__(self, cin, cout, kernel_size=3, stride=1, groups=1, activation_layer=nn.ReLU):
        layers = [nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2,
                            groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)


class InvertedResidualConfig:
    def __init__(self, input_channels, kernel, expanded_channels, out_channels, use_se,
                 activation, stride, width_mult=1.0):
        self.input_channels = _make_divisible(input_channels * width_mult, 8)
        self.kernel = kernel
        self.expanded_channels = _make_divisible(expanded_channels * width_mult, 8)
        self.out_channels = _make_divisible(out_channels * width_mult, 8)
        self.use_se = use_se
        self.use_hs = activation == "HS"
        self.stride = stride


class MV3InvertedResidual(nn.Module):
    def __init__(self, cnf):
        super().__init__()
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        layers = []
        activation_layer = nn.Hardswish if cnf.use_hs else nn.ReLU
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(Conv2dNormActivation(cnf.input_channels, cnf.expanded_channels, 1,
                                               activation_layer=activation_layer))
        layers.append(Conv2dNormActivation(cnf.expanded_channels, cnf.expanded_channels,
                                           cnf.kernel, cnf.stride, cnf.expanded_channels,
                                           activation_layer=activation_layer))
        if cnf.use_se:
            squeeze_channels = _make_divisible(cnf.expanded_channels // 4, 8)
            layers.append(SqueezeExcitation(cnf.expanded_channels, squeeze_channels,
                                            scale_activation=nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(cnf.expanded_channels, cnf.out_channels, 1,
                                           activation_layer=None))
        self.block = nn.Sequential(*layers)

    def forward(self, input):
        result = self.block(input)
        if self.use_res_connect:
            result += input
        return result


class MobileNetV3(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        setting = [InvertedResidualConfig(16, 3, 16, 16, True, "RE", 2),
                   InvertedResidualConfig(16, 3, 72, 24, False, "RE", 2),
                   InvertedResidualConfig(24, 3, 88, 24, False, "RE", 1),
                   InvertedResidualConfig(24, 5, 96, 40, True, "HS", 2),
                   InvertedResidualConfig(40, 5, 120, 40, True, "HS", 1)]
        layers = [Conv2dNormActivation(3, 16, 3, 2, activation_layer=nn.Hardswish)]
        layers += [MV3InvertedResidual(c) for c in setting]
        lastconv = 6 * setting[-1].out_channels
        layers.append(Conv2dNormActivation(setting[-1].out_channels, lastconv, 1,
                                           activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(lastconv, 128), nn.Hardswish(inplace=True),
                                        nn.Dropout(p=0.2, inplace=True),
                                        nn.Linear(128, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def mobilenetv3():
    torch.manual_seed(0)
    return _randomize_bn(MobileNetV3())


# --- RegNetY (torchvision/models/regnet.py: SimpleStemIN, ResBottleneckBlock with SE) ---


class BottleneckTransform(nn.Sequential):
    def __init__(self, width_in, width_out, stride, group_width, bottleneck_multiplier,
                 se_ratio):
        w_b = round(width_out * bottleneck_multiplier)
        g = w_b // group_width
        layers = {"a": Conv2dNormActivation(width_in, w_b, 1),
                  "b": Conv2dNormActivation(w_b, w_b, 3, stride, groups=g)}
        if se_ratio:
            width_se_out = round(se_ratio * width_in)
            layers["se"] = SqueezeExcitation(w_b, width_se_out)
        layers["c"] = Conv2dNormActivation(w_b, width_out, 1, activation_layer=None)
        super().__init__()
        for name, m in layers.items():
            self.add_module(name, m)


class ResBottleneckBlock(nn.Module):
    def __init__(self, width_in, width_out, stride, group_width=8, bottleneck_multiplier=1.0,
                 se_ratio=0.25):
        super().__init__()
        self.proj = None
        if width_in != width_out or stride != 1:
            self.proj = Conv2dNormActivation(width_in, width_out, 1, stride,
                                             activation_layer=None)
        self.f = BottleneckTransform(width_in, width_out, stride, group_width,
                                     bottleneck_multiplier, se_ratio)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x):
        if self.proj is not None:
            x = self.proj(x) + self.f(x)
        else:
            x = x + self.f(x)
        return self.activation(x)


class RegNetY(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = Conv2dNormActivation(3, 16, 3, 2)
        self.trunk_output = nn.Sequential(
            ResBottleneckBlock(16, 24, 2), ResBottleneckBlock(24, 24, 1),
            ResBottleneckBlock(24, 56, 2), ResBottleneckBlock(56, 56, 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(56, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.trunk_output(x)
        x = self.avgpool(x)
        x = x.flatten(start_dim=1)
        return self.fc(x)


def regnety():
    torch.manual_seed(0)
    return _randomize_bn(RegNetY())


# --- GhostNet (huawei-noah/Efficient-AI-Backbones ghostnet_pytorch/ghostnet.py) ---


def hard_sigmoid(x, inplace: bool = False):
    if inplace:
        return x.add_(3.).clamp_(0., 6.).div_(6.)
    else:
        return F.relu6(x + 3.) / 6.


class SqueezeExcite(nn.Module):
    def __init__(self, in_chs, se_ratio=0.25, reduced_base_chs=None, act_layer=nn.ReLU,
                 gate_fn=hard_sigmoid, divisor=4):
        super().__init__()
        self.gate_fn = gate_fn
        reduced_chs = _make_divisible((reduced_base_chs or in_chs) * se_ratio, divisor)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(in_chs, reduced_chs, 1, bias=True)
        self.act1 = act_layer(inplace=True)
        self.conv_expand = nn.Conv2d(reduced_chs, in_chs, 1, bias=True)

    def forward(self, x):
        x_se = self.avg_pool(x)
        x_se = self.conv_reduce(x_se)
        x_se = self.act1(x_se)
        x_se = self.conv_expand(x_se)
        x = x * self.gate_fn(x_se)
        return x


class GhostModule(nn.Module):
    def __init__(self, inp, oup, kernel_size=1, ratio=2, dw_size=3, stride=1, relu=True):
        super().__init__()
        self.oup = oup
        init_channels = math.ceil(oup / ratio)
        new_channels = init_channels * (ratio - 1)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(inp, init_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_channels),
            nn.ReLU(inplace=True) if relu else nn.Sequential())
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_channels, new_channels, dw_size, 1, dw_size // 2,
                      groups=init_channels, bias=False),
            nn.BatchNorm2d(new_channels),
            nn.ReLU(inplace=True) if relu else nn.Sequential())

    def forward(self, x):
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        out = torch.cat([x1, x2], dim=1)
        return out[:, :self.oup, :, :]


class GhostBottleneck(nn.Module):
    def __init__(self, in_chs, mid_chs, out_chs, dw_kernel_size=3, stride=1, se_ratio=0.):
        super().__init__()
        has_se = se_ratio is not None and se_ratio > 0.
        self.stride = stride
        self.ghost1 = GhostModule(in_chs, mid_chs, relu=True)
        if self.stride > 1:
            self.conv_dw = nn.Conv2d(mid_chs, mid_chs, dw_kernel_size, stride=stride,
                                     padding=(dw_kernel_size - 1) // 2, groups=mid_chs,
                                     bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_chs)
        self.se = SqueezeExcite(mid_chs, se_ratio=se_ratio) if has_se else None
        self.ghost2 = GhostModule(mid_chs, out_chs, relu=False)
        if in_chs == out_chs and self.stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_chs, in_chs, dw_kernel_size, stride=stride,
                          padding=(dw_kernel_size - 1) // 2, groups=in_chs, bias=False),
                nn.BatchNorm2d(in_chs),
                nn.Conv2d(in_chs, out_chs, 1, stride=1, padding=0, bias=False),
                nn.BatchNorm2d(out_chs))

    def forward(self, x):
        residual = x
        x = self.ghost1(x)
        if self.stride > 1:
            x = self.conv_dw(x)
            x = self.bn_dw(x)
        if self.se is not None:
            x = self.se(x)
        x = self.ghost2(x)
        x += self.shortcut(residual)
        return x


class GhostNet(nn.Module):
    def __init__(self, num_classes=10, width=1.0):
        super().__init__()
        cfgs = [[3, 16, 16, 0, 1], [3, 48, 24, 0, 2], [3, 72, 24, 0, 1],
                [5, 72, 40, 0.25, 2], [5, 120, 40, 0.25, 1]]
        output_channel = _make_divisible(16 * width, 4)
        self.conv_stem = nn.Conv2d(3, output_channel, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(output_channel)
        self.act1 = nn.ReLU(inplace=True)
        input_channel = output_channel
        stages = []
        for k, exp_size, c, se_ratio, s in cfgs:
            output_channel = _make_divisible(c * width, 4)
            hidden_channel = _make_divisible(exp_size * width, 4)
            stages.append(GhostBottleneck(input_channel, hidden_channel, output_channel, k, s,
                                          se_ratio=se_ratio))
            input_channel = output_channel
        self.blocks = nn.Sequential(*stages)
        self.global_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.conv_head = nn.Conv2d(input_channel, 128, 1, 1, 0, bias=True)
        self.act2 = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        x = self.global_pool(x)
        x = self.act2(self.conv_head(x))
        x = x.view(x.size(0), -1)
        return self.classifier(x)


def ghostnet():
    torch.manual_seed(0)
    return _randomize_bn(GhostNet())


# --- YOLOv8 (ultralytics/nn/modules: Conv, C2f, SPPF, Detect with DFL, make_anchors) ---


def autopad(k, p=None, d=1):
    if d > 1:
        k = d * (k - 1) + 1 if isinstance(k, int) else [d * (x - 1) + 1 for x in k]
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


class Conv(nn.Module):
    default_act = nn.SiLU()

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = (self.default_act if act is True
                    else act if isinstance(act, nn.Module) else nn.Identity())

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class V8Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, g=1, k=(3, 3), e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=False, g=1, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(V8Bottleneck(self.c, self.c, shortcut, g, k=((3, 3), (3, 3)),
                                            e=1.0) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class V8SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    def __init__(self, c1=16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        x = torch.arange(c1, dtype=torch.float)
        self.conv.weight.data[:] = nn.Parameter(x.view(1, c1, 1, 1))
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape  # batch, channels, anchors
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(feats, strides, grid_cell_offset=0.5):
    anchor_points, stride_tensor = [], []
    dtype, device = feats[0].dtype, feats[0].device
    for i, stride in enumerate(strides):
        _, _, h, w = feats[i].shape
        sx = torch.arange(end=w, device=device, dtype=dtype) + grid_cell_offset
        sy = torch.arange(end=h, device=device, dtype=dtype) + grid_cell_offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        anchor_points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_tensor.append(torch.full((h * w, 1), stride, dtype=dtype, device=device))
    return torch.cat(anchor_points), torch.cat(stride_tensor)


def dist2bbox(distance, anchor_points, xywh=True, dim=-1):
    lt, rb = distance.chunk(2, dim)
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    if xywh:
        c_xy = (x1y1 + x2y2) / 2
        wh = x2y2 - x1y1
        return torch.cat((c_xy, wh), dim)
    return torch.cat((x1y1, x2y2), dim)


class V8Detect(nn.Module):
    def __init__(self, nc=4, ch=(), stride=(8.0, 16.0)):
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = 16
        self.no = nc + self.reg_max * 4
        self.stride = torch.tensor(stride)
        c2, c3 = max((16, ch[0] // 4, self.reg_max * 4)), max(ch[0], min(self.nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3),
                                               nn.Conv2d(c2, 4 * self.reg_max, 1)) for x in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3),
                                               nn.Conv2d(c3, self.nc, 1)) for x in ch)
        self.dfl = DFL(self.reg_max)

    def forward(self, x):
        shape = x[0].shape  # BCHW
        for i in range(self.nl):
            x[i] = torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1)
        anchors, strides = (a.transpose(0, 1) for a in make_anchors(x, self.stride, 0.5))
        x_cat = torch.cat([xi.view(shape[0], self.no, -1) for xi in x], 2)
        box, cls = x_cat.split((self.reg_max * 4, self.nc), 1)
        dbox = dist2bbox(self.dfl(box), anchors.unsqueeze(0), xywh=True, dim=1) * strides
        return torch.cat((dbox, cls.sigmoid()), 1)


class YOLOv8(nn.Module):
    def __init__(self, nc=4):
        super().__init__()
        self.b0 = Conv(3, 16, 3, 2)
        self.b1, self.b2 = Conv(16, 32, 3, 2), C2f(32, 32, 1, True)
        self.b3, self.b4 = Conv(32, 64, 3, 2), C2f(64, 64, 1, True)
        self.b5, self.b6 = Conv(64, 64, 3, 2), C2f(64, 64, 1, True)
        self.sppf = V8SPPF(64, 64)
        self.up = nn.Upsample(None, 2, "nearest")
        self.h1 = C2f(128, 64, 1)
        self.detect = V8Detect(nc, (64, 64))

    def forward(self, x):
        p3 = self.b4(self.b3(self.b2(self.b1(self.b0(x)))))
        p4 = self.sppf(self.b6(self.b5(p3)))
        p3 = self.h1(torch.cat([self.up(p4), p3], 1))
        return self.detect([p3, p4])


def yolov8():
    torch.manual_seed(0)
    return _randomize_bn(YOLOv8())


# --- DETR (facebookresearch/detr: backbone, PositionEmbeddingSine, transformer, heads) ---


class PositionEmbeddingSine(nn.Module):
    def __init__(self, num_pos_feats=64, temperature=10000, normalize=True):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi

    def forward(self, x, mask):
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()),
                            dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()),
                            dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class TransformerEncoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=128):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.activation = F.relu

    def with_pos_embed(self, tensor, pos):
        return tensor if pos is None else tensor + pos

    def forward(self, src, pos=None):
        q = k = self.with_pos_embed(src, pos)
        src2 = self.self_attn(q, k, value=src)[0]
        src = self.norm1(src + src2)
        src2 = self.linear2(self.activation(self.linear1(src)))
        return self.norm2(src + src2)


class TransformerDecoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=128):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.activation = F.relu

    def with_pos_embed(self, tensor, pos):
        return tensor if pos is None else tensor + pos

    def forward(self, tgt, memory, pos=None, query_pos=None):
        q = k = self.with_pos_embed(tgt, query_pos)
        tgt2 = self.self_attn(q, k, value=tgt)[0]
        tgt = self.norm1(tgt + tgt2)
        tgt2 = self.multihead_attn(query=self.with_pos_embed(tgt, query_pos),
                                   key=self.with_pos_embed(memory, pos), value=memory)[0]
        tgt = self.norm2(tgt + tgt2)
        tgt2 = self.linear2(self.activation(self.linear1(tgt)))
        return self.norm3(tgt + tgt2)


class DETRTransformer(nn.Module):
    def __init__(self, d_model=64, nhead=4, layers=2):
        super().__init__()
        self.encoder = nn.ModuleList(TransformerEncoderLayer(d_model, nhead)
                                     for _ in range(layers))
        self.decoder = nn.ModuleList(TransformerDecoderLayer(d_model, nhead)
                                     for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, src, query_embed, pos_embed):
        bs = src.shape[0]
        src = src.flatten(2).permute(2, 0, 1)
        pos_embed = pos_embed.flatten(2).permute(2, 0, 1)
        query_embed = query_embed.unsqueeze(1).repeat(1, bs, 1)
        tgt = torch.zeros_like(query_embed)
        memory = src
        for layer in self.encoder:
            memory = layer(memory, pos=pos_embed)
        out = tgt
        for layer in self.decoder:
            out = layer(out, memory, pos=pos_embed, query_pos=query_embed)
        return self.norm(out).transpose(0, 1)


class MLP(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k)
                                    for n, k in zip([input_dim] + h, h + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x


class DETR(nn.Module):
    def __init__(self, num_classes=5, num_queries=10, hidden_dim=64):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, 7, 2, 3, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(32, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.position_embedding = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        self.input_proj = nn.Conv2d(64, hidden_dim, kernel_size=1)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.transformer = DETRTransformer(hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)

    def forward(self, samples):
        src = self.backbone(samples)
        mask = torch.zeros(src.shape[0], src.shape[2], src.shape[3], dtype=torch.bool,
                           device=src.device)
        pos = self.position_embedding(src, mask)
        hs = self.transformer(self.input_proj(src), self.query_embed.weight, pos)
        outputs_class = self.class_embed(hs)
        outputs_coord = self.bbox_embed(hs).sigmoid()
        return {"pred_logits": outputs_class, "pred_boxes": outputs_coord}


def detr():
    torch.manual_seed(0)
    return _randomize_bn(DETR())


# --- latent-diffusion VAE decoder (CompVis ldm/modules/diffusionmodules/model.py) ---


def nonlinearity(x):
    return x * torch.sigmoid(x)  # swish


def Normalize(in_channels, num_groups=32):
    return nn.GroupNorm(num_groups=num_groups, num_channels=in_channels, eps=1e-6, affine=True)


class Upsample(nn.Module):
    def __init__(self, in_channels, with_conv):
        super().__init__()
        self.with_conv = with_conv
        if self.with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, 3, 1, 1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.with_conv:
            x = self.conv(x)
        return x


class ResnetBlock(nn.Module):
    def __init__(self, *, in_channels, out_channels=None):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if self.in_channels != self.out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x):
        h = x
        h = nonlinearity(self.norm1(h))
        h = self.conv1(h)
        h = nonlinearity(self.norm2(h))
        h = self.conv2(self.dropout(h))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.norm = Normalize(in_channels)
        self.q = nn.Conv2d(in_channels, in_channels, 1)
        self.k = nn.Conv2d(in_channels, in_channels, 1)
        self.v = nn.Conv2d(in_channels, in_channels, 1)
        self.proj_out = nn.Conv2d(in_channels, in_channels, 1)

    def forward(self, x):
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, h, w = q.shape
        q = q.reshape(b, c, h * w)
        q = q.permute(0, 2, 1)  # b,hw,c
        k = k.reshape(b, c, h * w)  # b,c,hw
        w_ = torch.bmm(q, k)  # b,hw,hw
        w_ = w_ * (int(c) ** (-0.5))
        w_ = torch.nn.functional.softmax(w_, dim=2)
        v = v.reshape(b, c, h * w)
        w_ = w_.permute(0, 2, 1)
        h_ = torch.bmm(v, w_)
        h_ = h_.reshape(b, c, h, w)
        return x + self.proj_out(h_)


class VAEDecoder(nn.Module):
    def __init__(self, ch=32, out_ch=3, ch_mult=(1, 2), num_res_blocks=1, z_channels=4):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(in_channels=block_in)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(in_channels=block_in)
        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block = nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(self.num_res_blocks + 1):
                block.append(ResnetBlock(in_channels=block_in, out_channels=block_out))
                block_in = block_out
            up = nn.Module()
            up.block = block
            if i_level != 0:
                up.upsample = Upsample(block_in, True)
            self.up.insert(0, up)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_1(h)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h)
        for i_level in reversed(range(self.num_resolutions)):
            for i_block in range(self.num_res_blocks + 1):
                h = self.up[i_level].block[i_block](h)
            if i_level != 0:
                h = self.up[i_level].upsample(h)
        h = nonlinearity(self.norm_out(h))
        return self.conv_out(h)


def _randomize_gn(model):
    """Trained-looking GroupNorm affine parameters (fresh ones are 1 and 0)."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.copy_(torch.rand(m.num_channels, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.rand(m.num_channels, generator=g) * 0.2 - 0.1)
    return model.eval()


def vae_decoder():
    torch.manual_seed(0)
    return _randomize_gn(VAEDecoder())


# --- EDSR (sanghyun-son/EDSR-PyTorch: MeanShift, ResBlock with res_scale, Upsampler) and
# ESPCN (yjn870/ESPCN-pytorch) ---


class MeanShift(nn.Conv2d):
    def __init__(self, rgb_range, rgb_mean=(0.4488, 0.4371, 0.4040), rgb_std=(1.0, 1.0, 1.0),
                 sign=-1):
        super().__init__(3, 3, kernel_size=1)
        std = torch.Tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.Tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


def default_conv(in_channels, out_channels, kernel_size, bias=True):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size // 2),
                     bias=bias)


class ResBlock(nn.Module):
    def __init__(self, conv, n_feats, kernel_size, bias=True, act=None, res_scale=1):
        super().__init__()
        act = nn.ReLU(True) if act is None else act
        m = []
        for i in range(2):
            m.append(conv(n_feats, n_feats, kernel_size, bias=bias))
            if i == 0:
                m.append(act)
        self.body = nn.Sequential(*m)
        self.res_scale = res_scale

    def forward(self, x):
        res = self.body(x).mul(self.res_scale)
        res += x
        return res


class Upsampler(nn.Sequential):
    def __init__(self, conv, scale, n_feats, bias=True):
        m = []
        if (scale & (scale - 1)) == 0:  # scale = 2^n
            for _ in range(int(math.log2(scale))):
                m.append(conv(n_feats, 4 * n_feats, 3, bias))
                m.append(nn.PixelShuffle(2))
        elif scale == 3:
            m.append(conv(n_feats, 9 * n_feats, 3, bias))
            m.append(nn.PixelShuffle(3))
        super().__init__(*m)


class EDSR(nn.Module):
    def __init__(self, n_resblocks=4, n_feats=32, scale=2, rgb_range=255, conv=default_conv):
        super().__init__()
        kernel_size = 3
        act = nn.ReLU(True)
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(conv(3, n_feats, kernel_size))
        m_body = [ResBlock(conv, n_feats, kernel_size, act=act, res_scale=0.1)
                  for _ in range(n_resblocks)]
        m_body.append(conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*m_body)
        self.tail = nn.Sequential(Upsampler(conv, scale, n_feats),
                                  conv(n_feats, 3, kernel_size))

    def forward(self, x):
        x = self.sub_mean(x)
        x = self.head(x)
        res = self.body(x)
        res += x
        x = self.tail(res)
        return self.add_mean(x)


def edsr():
    torch.manual_seed(0)
    return EDSR().eval()


class ESPCN(nn.Module):
    def __init__(self, scale_factor=3, num_channels=1):
        super().__init__()
        self.first_part = nn.Sequential(
            nn.Conv2d(num_channels, 64, kernel_size=5, padding=5 // 2), nn.Tanh(),
            nn.Conv2d(64, 32, kernel_size=3, padding=3 // 2), nn.Tanh())
        self.last_part = nn.Sequential(
            nn.Conv2d(32, num_channels * (scale_factor ** 2), kernel_size=3, padding=3 // 2),
            nn.PixelShuffle(scale_factor))

    def forward(self, x):
        x = self.first_part(x)
        return self.last_part(x)


def espcn():
    torch.manual_seed(0)
    return ESPCN().eval()


# --- Res2Net (Res2Net/Res2Net-PretrainedModels res2net.py: Bottle2neck) ---


class Bottle2neck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, baseWidth=26, scale=4,
                 stype="normal"):
        super().__init__()
        width = math.floor(planes * (baseWidth / 64.0))
        self.conv1 = nn.Conv2d(inplanes, width * scale, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.nums = 1 if scale == 1 else scale - 1
        if stype == "stage":
            self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, stride, 1, bias=False)
                                   for _ in range(self.nums))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(self.nums))
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stype = stype
        self.scale = scale
        self.width = width

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        spx = torch.split(out, self.width, 1)
        for i in range(self.nums):
            if i == 0 or self.stype == "stage":
                sp = spx[i]
            else:
                sp = sp + spx[i]
            sp = self.convs[i](sp)
            sp = self.relu(self.bns[i](sp))
            if i == 0:
                out = sp
            else:
                out = torch.cat((out, sp), 1)
        if self.scale != 1 and self.stype == "normal":
            out = torch.cat((out, spx[self.nums]), 1)
        elif self.scale != 1 and self.stype == "stage":
            out = torch.cat((out, self.pool(spx[self.nums])), 1)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class Res2Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(
            Bottle2neck(32, 16, 1, nn.Sequential(nn.Conv2d(32, 64, 1, bias=False),
                                                 nn.BatchNorm2d(64)), stype="stage"),
            Bottle2neck(64, 16))
        self.layer2 = nn.Sequential(
            Bottle2neck(64, 32, 2, nn.Sequential(nn.Conv2d(64, 128, 1, 2, bias=False),
                                                 nn.BatchNorm2d(128)), stype="stage"),
            Bottle2neck(128, 32))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = self.avgpool(x)
        return self.fc(x.view(x.size(0), -1))


def res2net():
    torch.manual_seed(0)
    return _randomize_bn(Res2Net())


# --- PoolFormer (sail-sg/poolformer models/poolformer.py) ---


class PatchEmbed(nn.Module):
    def __init__(self, patch_size=16, stride=16, padding=0, in_chans=3, embed_dim=768):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride, padding)
        self.norm = nn.Identity()

    def forward(self, x):
        return self.norm(self.proj(x))


class GroupNorm(nn.GroupNorm):
    """Group Normalization with 1 group. Input: tensor in shape [B, C, H, W]"""

    def __init__(self, num_channels, **kwargs):
        super().__init__(1, num_channels, **kwargs)


class Pooling(nn.Module):
    def __init__(self, pool_size=3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2,
                                 count_include_pad=False)

    def forward(self, x):
        return self.pool(x) - x


class PFMlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_features, in_features, 1)
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class PoolFormerBlock(nn.Module):
    def __init__(self, dim, pool_size=3, mlp_ratio=4., layer_scale_init_value=1e-5):
        super().__init__()
        self.norm1 = GroupNorm(dim)
        self.token_mixer = Pooling(pool_size=pool_size)
        self.norm2 = GroupNorm(dim)
        self.mlp = PFMlp(dim, int(dim * mlp_ratio))
        self.drop_path = nn.Identity()
        self.layer_scale_1 = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x):
        x = x + self.drop_path(self.layer_scale_1.unsqueeze(-1).unsqueeze(-1)
                               * self.token_mixer(self.norm1(x)))
        x = x + self.drop_path(self.layer_scale_2.unsqueeze(-1).unsqueeze(-1)
                               * self.mlp(self.norm2(x)))
        return x


class PoolFormer(nn.Module):
    def __init__(self, layers=(1, 1), embed_dims=(32, 64), num_classes=10):
        super().__init__()
        self.patch_embed = PatchEmbed(7, 4, 2, 3, embed_dims[0])
        network = []
        for i in range(len(layers)):
            network.append(nn.Sequential(*(PoolFormerBlock(embed_dims[i])
                                           for _ in range(layers[i]))))
            if i < len(layers) - 1:
                network.append(PatchEmbed(3, 2, 1, embed_dims[i], embed_dims[i + 1]))
        self.network = nn.ModuleList(network)
        self.norm = GroupNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)

    def forward(self, x):
        x = self.patch_embed(x)
        for block in self.network:
            x = block(x)
        x = self.norm(x)
        return self.head(x.mean([-2, -1]))


def poolformer():
    torch.manual_seed(0)
    model = _randomize_gn(PoolFormer())
    with torch.no_grad():  # trained layer scales are far from their 1e-5 init
        for m in model.modules():
            if isinstance(m, PoolFormerBlock):
                m.layer_scale_1.uniform_(0.2, 1.0)
                m.layer_scale_2.uniform_(0.2, 1.0)
    return model


# --- gMLP (lucidrains/g-mlp-pytorch: SpatialGatingUnit with a causal-free Conv1d over tokens) ---


class SpatialGatingUnit(nn.Module):
    def __init__(self, dim, dim_seq, init_eps=1e-3):
        super().__init__()
        dim_out = dim // 2
        self.norm = nn.LayerNorm(dim_out)
        self.proj = nn.Conv1d(dim_seq, dim_seq, 1)
        init_eps /= dim_seq
        nn.init.uniform_(self.proj.weight, -init_eps, init_eps)
        nn.init.constant_(self.proj.bias, 1.)

    def forward(self, x):
        res, gate = x.chunk(2, dim=-1)
        gate = self.norm(gate)
        gate = self.proj(gate)
        return gate * res


class gMLPBlock(nn.Module):
    def __init__(self, *, dim, dim_ff, seq_len):
        super().__init__()
        self.proj_in = nn.Sequential(nn.Linear(dim, dim_ff), nn.GELU())
        self.sgu = SpatialGatingUnit(dim_ff, seq_len)
        self.proj_out = nn.Linear(dim_ff // 2, dim)

    def forward(self, x):
        x = self.proj_in(x)
        x = self.sgu(x)
        return self.proj_out(x)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, **kwargs):
        return self.fn(self.norm(x), **kwargs)


class gMLPVision(nn.Module):
    def __init__(self, image_size=32, patch_size=4, num_classes=10, dim=64, depth=2,
                 ff_mult=4, channels=3):
        super().__init__()
        self.p = patch_size
        num_patches = (image_size // patch_size) ** 2
        self.to_patch_embed = nn.Linear(channels * patch_size ** 2, dim)
        self.layers = nn.ModuleList(
            Residual(PreNorm(dim, gMLPBlock(dim=dim, dim_ff=dim * ff_mult, seq_len=num_patches)))
            for _ in range(depth))
        self.to_logits = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

    def forward(self, img):
        # einops' Rearrange('b c (h p1) (w p2) -> b (h w) (c p1 p2)') written with views
        b, c, hh, ww = img.shape
        p = self.p
        x = img.view(b, c, hh // p, p, ww // p, p).permute(0, 2, 4, 1, 3, 5)
        x = self.to_patch_embed(x.reshape(b, (hh // p) * (ww // p), c * p * p))
        x = nn.Sequential(*self.layers)(x)
        return self.to_logits(x.mean(dim=1))


def gmlp():
    torch.manual_seed(0)
    model = gMLPVision().eval()
    with torch.no_grad():  # trained spatial weights are not the near-identity init
        for m in model.modules():
            if isinstance(m, SpatialGatingUnit):
                m.proj.weight.normal_(0, 0.1)
    return model


# --- EfficientNetV2 (torchvision/models/efficientnet.py: FusedMBConv, MBConv, StochasticDepth) ---


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: the identity in eval."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, input):
        if not self.training or self.p == 0.0:
            return input
        size = [input.shape[0]] + [1] * (input.ndim - 1) if self.mode == "row" else [1] * input.ndim
        noise = torch.empty(size, dtype=input.dtype, device=input.device)
        noise = noise.bernoulli_(1.0 - self.p).div_(1.0 - self.p)
        return input * noise


class FusedMBConv(nn.Module):
    def __init__(self, cin, cout, expand_ratio, kernel, stride, sd_prob):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        layers = []
        expanded = _make_divisible(cin * expand_ratio, 8)
        if expanded != cin:
            layers += [Conv2dNormActivation(cin, expanded, kernel, stride,
                                            activation_layer=nn.SiLU),
                       Conv2dNormActivation(expanded, cout, 1, activation_layer=None)]
        else:
            layers.append(Conv2dNormActivation(cin, cout, kernel, stride,
                                               activation_layer=nn.SiLU))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(sd_prob, "row")

    def forward(self, input):
        result = self.block(input)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += input
        return result


class V2MBConv(nn.Module):
    def __init__(self, cin, cout, expand_ratio, kernel, stride, sd_prob):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        expanded = _make_divisible(cin * expand_ratio, 8)
        squeeze = max(1, cin // 4)
        self.block = nn.Sequential(
            Conv2dNormActivation(cin, expanded, 1, activation_layer=nn.SiLU),
            Conv2dNormActivation(expanded, expanded, kernel, stride, expanded,
                                 activation_layer=nn.SiLU),
            SqueezeExcitation(expanded, squeeze, activation=nn.SiLU),
            Conv2dNormActivation(expanded, cout, 1, activation_layer=None))
        self.stochastic_depth = StochasticDepth(sd_prob, "row")

    def forward(self, input):
        result = self.block(input)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += input
        return result


class EfficientNetV2(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        cfg = [(FusedMBConv, 1, 3, 1, 16, 16), (FusedMBConv, 4, 3, 2, 16, 32),
               (FusedMBConv, 4, 3, 1, 32, 32), (V2MBConv, 4, 3, 2, 32, 48),
               (V2MBConv, 4, 3, 1, 48, 48)]
        layers = [Conv2dNormActivation(3, 16, 3, 2, activation_layer=nn.SiLU)]
        for i, (block, e, k, s, cin, cout) in enumerate(cfg):
            layers.append(block(cin, cout, e, k, s, 0.2 * i / len(cfg)))
        layers.append(Conv2dNormActivation(48, 128, 1, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True),
                                        nn.Linear(128, num_classes))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def efficientnetv2():
    torch.manual_seed(0)
    return _randomize_bn(EfficientNetV2())


# --- Real-ESRGAN's x2 RRDBNet (xinntao/BasicSR basicsr/archs/rrdbnet_arch.py) ---


def pixel_unshuffle(x, scale):
    """BasicSR's own pixel unshuffle (reshape / permute), as rrdbnet_arch imports it."""
    b, c, hh, hw = x.size()
    out_channel = c * (scale**2)
    h = hh // scale
    w = hw // scale
    x_view = x.view(b, c, h, scale, w, scale)
    return x_view.permute(0, 1, 3, 5, 2, 4).reshape(b, out_channel, h, w)


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat=64, num_grow_ch=32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat, num_grow_ch=32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        out = self.rdb1(x)
        out = self.rdb2(out)
        out = self.rdb3(out)
        return out * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, num_in_ch=3, num_out_ch=3, scale=2, num_feat=16, num_block=1,
                 num_grow_ch=8):
        super().__init__()
        self.scale = scale
        if scale == 2:
            num_in_ch = num_in_ch * 4
        elif scale == 1:
            num_in_ch = num_in_ch * 16
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        if self.scale == 2:
            feat = pixel_unshuffle(x, scale=2)
        elif self.scale == 1:
            feat = pixel_unshuffle(x, scale=4)
        else:
            feat = x
        feat = self.conv_first(feat)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def rrdbnet():
    torch.manual_seed(0)
    return RRDBNet().eval()


# --- ConvMixer (locuslab/convmixer: the tweet-sized Sequential of Residual depthwise convs) ---


class ConvResidual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


def ConvMixer(dim, depth, kernel_size=9, patch_size=7, n_classes=1000):
    return nn.Sequential(
        nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size),
        nn.GELU(),
        nn.BatchNorm2d(dim),
        *[nn.Sequential(
            ConvResidual(nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"),
                nn.GELU(),
                nn.BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, kernel_size=1),
            nn.GELU(),
            nn.BatchNorm2d(dim)) for _ in range(depth)],
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(dim, n_classes))


def convmixer():
    torch.manual_seed(0)
    return _randomize_bn(ConvMixer(64, 3, kernel_size=5, patch_size=4, n_classes=10))


NETWORKS = (
    Network("mobilenetv3", "torchvision's MobileNetV3 (hardswish, SE with hardsigmoid and "
            "_make_divisible, in-place residual +=)", "mobilenetv3", floats(16, 3, 32, 32)),
    Network("regnety", "torchvision's RegNetY (SimpleStemIN, group-width bottlenecks with SE, "
            "projection shortcut)", "regnety", floats(16, 3, 32, 32)),
    Network("ghostnet", "Huawei's GhostNet (primary + cheap depthwise conv, cat then slice to "
            "oup, relu6 hard_sigmoid SE, x += shortcut)", "ghostnet", floats(16, 3, 32, 32)),
    Network("yolov8", "ultralytics' YOLOv8 (C2f chunk + list extend, SPPF, decoupled head, DFL "
            "softmax over 16 bins into a fixed arange conv, anchors by meshgrid in forward)",
            "yolov8", floats(16, 3, 64, 64)),
    Network("detr", "facebookresearch's DETR (sine position embedding by cumsum of a mask, "
            "learned queries repeated over the batch, nn.MultiheadAttention, dict output)",
            "detr", floats(16, 3, 64, 64), output="pred_logits"),
    Network("vae_decoder", "latent diffusion's VAE decoder (GroupNorm(32), swish, mid-block "
            "attention by bmm, nearest F.interpolate up)", "vae_decoder", floats(8, 4, 8, 8)),
    Network("edsr", "EDSR-PyTorch's EDSR x2 (MeanShift 1x1 convs, res_scale 0.1 blocks, "
            "PixelShuffle upsampler)", "edsr", floats(8, 3, 16, 16)),
    Network("espcn", "ESPCN x3 (tanh convs, PixelShuffle(3)) on a luma channel", "espcn",
            floats(8, 1, 16, 16)),
    Network("res2net", "Res2Net's Bottle2neck (torch.split by width, hierarchical sp + spx[i], "
            "cat, stage AvgPool2d)", "res2net", floats(16, 3, 32, 32)),
    Network("poolformer", "sail-sg's PoolFormer (AvgPool2d count_include_pad=False minus x, "
            "GroupNorm(1), layer scale by unsqueeze)", "poolformer", floats(16, 3, 32, 32)),
    Network("gmlp_vision", "lucidrains' gMLP for images (spatial gating unit: chunk, "
            "LayerNorm, Conv1d over tokens, gate * res)", "gmlp", floats(16, 3, 32, 32)),
    Network("efficientnetv2", "torchvision's EfficientNetV2 (FusedMBConv's single 3x3 expand, "
            "MBConv with SiLU SE, StochasticDepth identity in eval, result += input)",
            "efficientnetv2", floats(16, 3, 32, 32)),
    Network("rrdbnet", "Real-ESRGAN x2's RRDBNet (BasicSR: pixel_unshuffle by view / permute, "
            "dense blocks cat-ing every earlier map, x5 * 0.2 + x, LeakyReLU, nearest x2 twice)",
            "rrdbnet", floats(8, 3, 16, 16)),
    Network("convmixer", "locuslab's ConvMixer (patch conv, GELU before BatchNorm, depthwise "
            "padding='same' residual, 1x1 mixing)", "convmixer", floats(16, 3, 32, 32)),
)

"""Networks no one here wrote (eighth round), each the way its reference code writes it:
timm's NF-ResNet (ScaledStdConv2d: weight standardization by F.batch_norm of the weight in every
forward, gamma-scaled GELU, alpha / beta residual scaling, SkipInit gain), apple's MobileOne (its
train form: k conv-BN branches, a 1x1 scale branch and a BN identity summed; and the
reparameterized eval form), huawei-noah's GhostNetV2 (DFC attention: avg-pooled horizontal /
vertical depthwise convs, a sigmoid gate upsampled by nearest interpolation), zhanghang1989's
ResNeSt (split attention with the radix softmax rSoftMax), the SK-Net selective kernel (branches
stacked on a new axis, softmax over it), VAN's large kernel attention (a dilated 7x7 depthwise
conv), d-li14's involution (RedNet: kernels generated per pixel, nn.Unfold), ndrplz's ConvLSTM
(a conv cell looped over frames, a 5-D input), PyG's DenseGINConv on runtime dense adjacencies and
node masks, DeepCTR-Torch's xDeepFM (the CIN: einsum outer products and Conv1d), yluo42's DPRNN
(half-overlapping segmentation, intra / inter chunk BiLSTMs, overlap-add), timm's CondConv (per
sample expert kernels mixed by routing weights, the batch folded into a grouped conv), an AFT-full
causal decoder (rish-16/aft-pytorch) and OpenAI's Sparse Transformer (attention_impl with
get_attn_mask's local and strided masks). Small, random weights."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.handwritten import Network, floats, ids
from benchmarks.handwritten.vision import _randomize_bn
from benchmarks.handwritten.vision6 import _jitter_params

# --- timm: models/nfnet.py, layers/std_conv.py (NF-ResNet) ---


class ScaledStdConv2d(nn.Conv2d):
    """timm's ScaledStdConv2d: the weight standardized per output channel in every forward."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None,
                 dilation=1, groups=1, bias=True, gamma=1.0, eps=1e-6, gain_init=1.0):
        if padding is None:
            padding = ((stride - 1) + dilation * (kernel_size - 1)) // 2
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.gain = nn.Parameter(torch.full((self.out_channels, 1, 1, 1), gain_init))
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.eps = eps

    def forward(self, x):
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None,
            weight=(self.gain * self.scale).view(-1),
            training=True, momentum=0., eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class GammaAct(nn.Module):
    """timm's act_with_gamma: GELU times its NF gamma (1.7015043497085693)."""

    def __init__(self, gamma=1.7015043497085693):
        super().__init__()
        self.gamma = gamma

    def forward(self, x):
        return F.gelu(x).mul_(self.gamma)


class DownsampleAvg(nn.Module):
    def __init__(self, in_chs, out_chs, stride=1):
        super().__init__()
        self.pool = (nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
                     if stride > 1 else nn.Identity())
        self.conv = ScaledStdConv2d(in_chs, out_chs, 1, stride=1, gamma=1.7015043497085693)

    def forward(self, x):
        return self.conv(self.pool(x))


class NfSE(nn.Module):
    """timm's SEModule with an attention gain of 2 (NF nets' `attn_gain`)."""

    def __init__(self, channels, rd_ratio=0.25):
        super().__init__()
        rd = max(1, int(channels * rd_ratio))
        self.fc1 = nn.Conv2d(channels, rd, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, 1)

    def forward(self, x):
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.fc2(self.act(self.fc1(x_se)))
        return x * x_se.sigmoid() * 2.0


class NormFreeBlock(nn.Module):
    def __init__(self, in_chs, out_chs, stride=1, alpha=0.2, beta=1.0, group_size=8):
        super().__init__()
        mid_chs = out_chs // 2
        groups = mid_chs // group_size
        self.alpha = alpha
        self.beta = beta
        self.downsample = (DownsampleAvg(in_chs, out_chs, stride)
                           if in_chs != out_chs or stride != 1 else None)
        self.act1 = GammaAct()
        self.conv1 = ScaledStdConv2d(in_chs, mid_chs, 1)
        self.act2 = GammaAct()
        self.conv2 = ScaledStdConv2d(mid_chs, mid_chs, 3, stride=stride, groups=groups)
        self.act2b = GammaAct()
        self.conv2b = ScaledStdConv2d(mid_chs, mid_chs, 3, groups=groups)
        self.act3 = GammaAct()
        self.conv3 = ScaledStdConv2d(mid_chs, out_chs, 1, gain_init=1.0)
        self.attn_last = NfSE(out_chs)
        self.drop_path = nn.Identity()
        self.skipinit_gain = nn.Parameter(torch.tensor(0.))

    def forward(self, x):
        out = self.act1(x) * self.beta
        shortcut = x
        if self.downsample is not None:
            shortcut = self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.act2(out))
        out = self.conv2b(self.act2b(out))
        out = self.conv3(self.act3(out))
        out = self.attn_last(out)
        out = self.drop_path(out)
        out.mul_(self.skipinit_gain)
        return out * self.alpha + shortcut


class NFNet(nn.Module):
    """NFNet-F0's layout at small widths: a 4-conv deep stem, stages of NormFreeBlocks with
    expected-variance betas, a final 1x1 conv, global pooling and a classifier."""

    def __init__(self, widths=(32, 64), depths=(1, 2), num_classes=10, alpha=0.2):
        super().__init__()
        act = GammaAct
        self.stem = nn.Sequential(
            ScaledStdConv2d(3, 8, 3, stride=2), act(), ScaledStdConv2d(8, 16, 3), act(),
            ScaledStdConv2d(16, 16, 3), act(), ScaledStdConv2d(16, 32, 3, stride=2))
        blocks = []
        prev, expected_var = 32, 1.0
        for i, (w, d) in enumerate(zip(widths, depths)):
            for j in range(d):
                beta = 1. / expected_var ** 0.5
                blocks.append(NormFreeBlock(prev, w, stride=2 if i > 0 and j == 0 else 1,
                                            alpha=alpha, beta=beta))
                expected_var = 1. if j == 0 else expected_var + alpha ** 2
                expected_var += alpha ** 2
                prev = w
        self.stages = nn.Sequential(*blocks)
        self.final_conv = ScaledStdConv2d(prev, 2 * prev, 1)
        self.final_act = act()
        self.fc = nn.Linear(2 * prev, num_classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        x = self.final_act(self.final_conv(x))
        return self.fc(x.mean((2, 3)))


def nfnet():
    torch.manual_seed(0)
    model = NFNet()
    with torch.no_grad():  # a trained SkipInit gain is not its zero init
        for m in model.modules():
            if isinstance(m, NormFreeBlock):
                m.skipinit_gain.fill_(0.5 + 0.5 * torch.rand(()).item())
    return _jitter_params(model, {"gain"}, 0.1)


# --- apple/ml-mobileone (mobileone.py) ---


class MobileOneSE(nn.Module):
    def __init__(self, in_channels, rd_ratio=0.0625):
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, max(1, int(in_channels * rd_ratio)), 1, bias=True)
        self.expand = nn.Conv2d(max(1, int(in_channels * rd_ratio)), in_channels, 1, bias=True)

    def forward(self, inputs):
        _, c, h, w = inputs.size()
        x = F.avg_pool2d(inputs, kernel_size=[h, w])
        x = self.reduce(x)
        x = F.relu(x)
        x = self.expand(x)
        x = torch.sigmoid(x)
        x = x.view(-1, c, 1, 1)
        return inputs * x


class MobileOneBlock(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1,
                 inference_mode=False, use_se=False, num_conv_branches=1):
        super().__init__()
        self.inference_mode = inference_mode
        self.groups = groups
        self.stride = stride
        self.kernel_size = kernel_size
        self.padding = padding
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_conv_branches = num_conv_branches
        self.se = MobileOneSE(out_channels) if use_se else nn.Identity()
        self.activation = nn.ReLU()
        if inference_mode:
            self.reparam_conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                          padding, groups=groups, bias=True)
        else:
            self.rbr_skip = (nn.BatchNorm2d(in_channels)
                             if out_channels == in_channels and stride == 1 else None)
            self.rbr_conv = nn.ModuleList([self._conv_bn(kernel_size, padding)
                                           for _ in range(num_conv_branches)])
            self.rbr_scale = self._conv_bn(1, 0) if kernel_size > 1 else None

    def forward(self, x):
        if self.inference_mode:
            return self.activation(self.se(self.reparam_conv(x)))
        identity_out = 0
        if self.rbr_skip is not None:
            identity_out = self.rbr_skip(x)
        scale_out = 0
        if self.rbr_scale is not None:
            scale_out = self.rbr_scale(x)
        out = scale_out + identity_out
        for ix in range(self.num_conv_branches):
            out += self.rbr_conv[ix](x)
        return self.activation(self.se(out))

    def reparameterize(self):
        if self.inference_mode:
            return
        kernel, bias = self._get_kernel_bias()
        self.reparam_conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size,
                                      self.stride, self.padding, groups=self.groups, bias=True)
        self.reparam_conv.weight.data = kernel
        self.reparam_conv.bias.data = bias
        for para in self.parameters():
            para.detach_()
        self.__delattr__("rbr_conv")
        self.__delattr__("rbr_scale")
        if hasattr(self, "rbr_skip"):
            self.__delattr__("rbr_skip")
        self.inference_mode = True

    def _get_kernel_bias(self):
        kernel_scale, bias_scale = 0, 0
        if self.rbr_scale is not None:
            kernel_scale, bias_scale = self._fuse_bn_tensor(self.rbr_scale)
            pad = self.kernel_size // 2
            kernel_scale = F.pad(kernel_scale, [pad, pad, pad, pad])
        kernel_identity, bias_identity = 0, 0
        if self.rbr_skip is not None:
            kernel_identity, bias_identity = self._fuse_bn_tensor(self.rbr_skip)
        kernel_conv, bias_conv = 0, 0
        for ix in range(self.num_conv_branches):
            _kernel, _bias = self._fuse_bn_tensor(self.rbr_conv[ix])
            kernel_conv += _kernel
            bias_conv += _bias
        return (kernel_conv + kernel_scale + kernel_identity,
                bias_conv + bias_scale + bias_identity)

    def _fuse_bn_tensor(self, branch):
        if isinstance(branch, nn.Sequential):
            kernel = branch.conv.weight
            running_mean, running_var = branch.bn.running_mean, branch.bn.running_var
            gamma, beta, eps = branch.bn.weight, branch.bn.bias, branch.bn.eps
        else:
            input_dim = self.in_channels // self.groups
            kernel_value = torch.zeros((self.in_channels, input_dim, self.kernel_size,
                                        self.kernel_size), dtype=branch.weight.dtype)
            for i in range(self.in_channels):
                kernel_value[i, i % input_dim, self.kernel_size // 2, self.kernel_size // 2] = 1
            kernel = kernel_value
            running_mean, running_var = branch.running_mean, branch.running_var
            gamma, beta, eps = branch.weight, branch.bias, branch.eps
        std = (running_var + eps).sqrt()
        t = (gamma / std).reshape(-1, 1, 1, 1)
        return kernel * t, beta - running_mean * gamma / std

    def _conv_bn(self, kernel_size, padding):
        mod_list = nn.Sequential()
        mod_list.add_module("conv", nn.Conv2d(self.in_channels, self.out_channels, kernel_size,
                                              self.stride, padding, groups=self.groups,
                                              bias=False))
        mod_list.add_module("bn", nn.BatchNorm2d(self.out_channels))
        return mod_list


class MobileOne(nn.Module):
    def __init__(self, num_blocks_per_stage=(1, 2, 2), widths=(16, 32, 64), num_classes=10,
                 inference_mode=False, use_se=True, num_conv_branches=4):
        super().__init__()
        self.inference_mode = inference_mode
        self.use_se = use_se
        self.num_conv_branches = num_conv_branches
        self.in_planes = 16
        self.stage0 = MobileOneBlock(3, self.in_planes, 3, stride=2, padding=1,
                                     inference_mode=inference_mode)
        self.cur_layer_idx = 0
        self.stage1 = self._make_stage(widths[0], num_blocks_per_stage[0], 0)
        self.stage2 = self._make_stage(widths[1], num_blocks_per_stage[1], 0)
        self.stage3 = self._make_stage(widths[2], num_blocks_per_stage[2],
                                       num_blocks_per_stage[2] if use_se else 0)
        self.gap = nn.AdaptiveAvgPool2d(output_size=1)
        self.linear = nn.Linear(widths[2], num_classes)

    def _make_stage(self, planes, num_blocks, num_se_blocks):
        strides = [2] + [1] * (num_blocks - 1)
        blocks = []
        for ix, stride in enumerate(strides):
            use_se = ix >= (num_blocks - num_se_blocks)
            blocks.append(MobileOneBlock(self.in_planes, self.in_planes, 3, stride=stride,
                                         padding=1, groups=self.in_planes,
                                         inference_mode=self.inference_mode, use_se=use_se,
                                         num_conv_branches=self.num_conv_branches))
            blocks.append(MobileOneBlock(self.in_planes, planes, 1, stride=1, padding=0,
                                         inference_mode=self.inference_mode, use_se=use_se,
                                         num_conv_branches=self.num_conv_branches))
            self.in_planes = planes
            self.cur_layer_idx += 1
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.stage0(x)
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.gap(x)
        x = x.view(x.size(0), -1)
        return self.linear(x)


def reparameterize_model(model):
    """ml-mobileone's reparameterize_model: every block's branches folded into one conv."""
    import copy
    model = copy.deepcopy(model)
    for module in model.modules():
        if hasattr(module, "reparameterize"):
            module.reparameterize()
    return model


def mobileone():
    torch.manual_seed(0)
    return _randomize_bn(MobileOne())


def mobileone_reparam():
    return reparameterize_model(mobileone()).eval()


# --- huawei-noah/Efficient-AI-Backbones (ghostnetv2_pytorch/model/ghostnetv2_torch.py) ---


def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def hard_sigmoid(x, inplace: bool = False):
    if inplace:
        return x.add_(3.).clamp_(0., 6.).div_(6.)
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
        return x * self.gate_fn(x_se)


class GhostModuleV2(nn.Module):
    def __init__(self, inp, oup, kernel_size=1, ratio=2, dw_size=3, stride=1, relu=True,
                 mode=None):
        super().__init__()
        self.mode = mode
        self.gate_fn = nn.Sigmoid()
        self.oup = oup
        init_channels = math.ceil(oup / ratio)
        new_channels = init_channels * (ratio - 1)
        act = (lambda: nn.ReLU(inplace=True)) if relu else nn.Identity
        self.primary_conv = nn.Sequential(
            nn.Conv2d(inp, init_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_channels), act())
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_channels, new_channels, dw_size, 1, dw_size // 2,
                      groups=init_channels, bias=False),
            nn.BatchNorm2d(new_channels), act())
        if self.mode == "attn":
            self.short_conv = nn.Sequential(
                nn.Conv2d(inp, oup, kernel_size, stride, kernel_size // 2, bias=False),
                nn.BatchNorm2d(oup),
                nn.Conv2d(oup, oup, kernel_size=(1, 5), stride=1, padding=(0, 2), groups=oup,
                          bias=False),
                nn.BatchNorm2d(oup),
                nn.Conv2d(oup, oup, kernel_size=(5, 1), stride=1, padding=(2, 0), groups=oup,
                          bias=False),
                nn.BatchNorm2d(oup))

    def forward(self, x):
        if self.mode in ["original"]:
            x1 = self.primary_conv(x)
            x2 = self.cheap_operation(x1)
            out = torch.cat([x1, x2], dim=1)
            return out[:, :self.oup, :, :]
        res = self.short_conv(F.avg_pool2d(x, kernel_size=2, stride=2))
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        out = torch.cat([x1, x2], dim=1)
        return out[:, :self.oup, :, :] * F.interpolate(
            self.gate_fn(res), size=(out.shape[-2], out.shape[-1]), mode="nearest")


class GhostBottleneckV2(nn.Module):
    def __init__(self, in_chs, mid_chs, out_chs, dw_kernel_size=3, stride=1, se_ratio=0.,
                 layer_id=None):
        super().__init__()
        has_se = se_ratio is not None and se_ratio > 0.
        self.stride = stride
        mode = "original" if layer_id <= 1 else "attn"
        self.ghost1 = GhostModuleV2(in_chs, mid_chs, relu=True, mode=mode)
        if self.stride > 1:
            self.conv_dw = nn.Conv2d(mid_chs, mid_chs, dw_kernel_size, stride=stride,
                                     padding=(dw_kernel_size - 1) // 2, groups=mid_chs,
                                     bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_chs)
        self.se = SqueezeExcite(mid_chs, se_ratio=se_ratio) if has_se else None
        self.ghost2 = GhostModuleV2(mid_chs, out_chs, relu=False, mode="original")
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


class GhostNetV2(nn.Module):
    # k, t (expansion), c, SE ratio, stride
    cfgs = (((3, 16, 16, 0, 1),), ((3, 48, 24, 0, 2),), ((3, 72, 24, 0, 1),),
            ((5, 72, 40, 0.25, 2),), ((5, 120, 40, 0.25, 1),))

    def __init__(self, num_classes=10, width=1.0):
        super().__init__()
        output_channel = _make_divisible(16 * width, 4)
        self.conv_stem = nn.Conv2d(3, output_channel, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(output_channel)
        self.act1 = nn.ReLU(inplace=True)
        input_channel = output_channel
        stages = []
        layer_id = 0
        for cfg in self.cfgs:
            layers = []
            for k, exp_size, c, se_ratio, s in cfg:
                output_channel = _make_divisible(c * width, 4)
                hidden_channel = _make_divisible(exp_size * width, 4)
                layers.append(GhostBottleneckV2(input_channel, hidden_channel, output_channel,
                                                k, s, se_ratio=se_ratio, layer_id=layer_id))
                input_channel = output_channel
                layer_id += 1
            stages.append(nn.Sequential(*layers))
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


def ghostnetv2():
    torch.manual_seed(0)
    return _randomize_bn(GhostNetV2())


# --- zhanghang1989/ResNeSt (resnest/torch/models/splat.py, resnet.py) ---


class rSoftMax(nn.Module):
    def __init__(self, radix, cardinality):
        super().__init__()
        self.radix = radix
        self.cardinality = cardinality

    def forward(self, x):
        batch = x.size(0)
        if self.radix > 1:
            x = x.view(batch, self.cardinality, self.radix, -1).transpose(1, 2)
            x = F.softmax(x, dim=1)
            x = x.reshape(batch, -1)
        else:
            x = torch.sigmoid(x)
        return x


class SplAtConv2d(nn.Module):
    def __init__(self, in_channels, channels, kernel_size, stride=(1, 1), padding=(0, 0),
                 dilation=(1, 1), groups=1, bias=True, radix=2, reduction_factor=4):
        super().__init__()
        inter_channels = max(in_channels * radix // reduction_factor, 32)
        self.radix = radix
        self.cardinality = groups
        self.channels = channels
        self.conv = nn.Conv2d(in_channels, channels * radix, kernel_size, stride, padding,
                              dilation, groups=groups * radix, bias=bias)
        self.bn0 = nn.BatchNorm2d(channels * radix)
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(channels, inter_channels, 1, groups=self.cardinality)
        self.bn1 = nn.BatchNorm2d(inter_channels)
        self.fc2 = nn.Conv2d(inter_channels, channels * radix, 1, groups=self.cardinality)
        self.rsoftmax = rSoftMax(radix, groups)

    def forward(self, x):
        x = self.conv(x)
        x = self.bn0(x)
        x = self.relu(x)
        batch, rchannel = x.shape[:2]
        if self.radix > 1:
            splited = torch.split(x, rchannel // self.radix, dim=1)
            gap = sum(splited)
        else:
            gap = x
        gap = F.adaptive_avg_pool2d(gap, 1)
        gap = self.fc1(gap)
        gap = self.bn1(gap)
        gap = self.relu(gap)
        atten = self.fc2(gap)
        atten = self.rsoftmax(atten).view(batch, -1, 1, 1)
        if self.radix > 1:
            attens = torch.split(atten, rchannel // self.radix, dim=1)
            out = sum([att * split for (att, split) in zip(attens, splited)])
        else:
            out = atten * x
        return out.contiguous()


class ResNeStBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, radix=2, cardinality=2,
                 bottleneck_width=64, avd=True, avd_first=False):
        super().__init__()
        group_width = int(planes * (bottleneck_width / 64.)) * cardinality
        self.conv1 = nn.Conv2d(inplanes, group_width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(group_width)
        self.radix = radix
        self.avd = avd and (stride > 1)
        self.avd_first = avd_first
        if self.avd:
            self.avd_layer = nn.AvgPool2d(3, stride, padding=1)
            stride = 1
        self.conv2 = SplAtConv2d(group_width, group_width, kernel_size=3, stride=stride,
                                 padding=1, groups=cardinality, bias=False, radix=radix)
        self.conv3 = nn.Conv2d(group_width, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        if self.avd and self.avd_first:
            out = self.avd_layer(out)
        out = self.conv2(out)
        if self.avd and not self.avd_first:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class ResNeSt(nn.Module):
    def __init__(self, layers=(1, 1, 1), stem_width=8, num_classes=10):
        super().__init__()
        self.inplanes = stem_width * 2
        self.conv1 = nn.Sequential(  # deep stem
            nn.Conv2d(3, stem_width, 3, 2, 1, bias=False), nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width * 2, 3, 1, 1, bias=False))
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(8, layers[0])
        self.layer2 = self._make_layer(16, layers[1], stride=2)
        self.layer3 = self._make_layer(32, layers[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32 * 4, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            down_layers = []  # avg_down
            if stride != 1:
                down_layers.append(nn.AvgPool2d(kernel_size=stride, stride=stride,
                                                ceil_mode=True, count_include_pad=False))
            else:
                down_layers.append(nn.AvgPool2d(kernel_size=1, stride=1, ceil_mode=True,
                                                count_include_pad=False))
            down_layers.append(nn.Conv2d(self.inplanes, planes * 4, 1, 1, bias=False))
            down_layers.append(nn.BatchNorm2d(planes * 4))
            downsample = nn.Sequential(*down_layers)
        layers = [ResNeStBottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        for _ in range(1, blocks):
            layers.append(ResNeStBottleneck(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnest():
    torch.manual_seed(0)
    return _randomize_bn(ResNeSt())


# --- SK-Net (ResearchingDexter/SKNet_pytorch, sknet.py) ---


class SKConv(nn.Module):
    def __init__(self, features, M=2, G=8, r=2, stride=1, L=16):
        super().__init__()
        d = max(int(features / r), L)
        self.M = M
        self.features = features
        self.convs = nn.ModuleList([
            nn.Sequential(nn.Conv2d(features, features, kernel_size=3 + i * 2, stride=stride,
                                    padding=1 + i, groups=G),
                          nn.BatchNorm2d(features), nn.ReLU(inplace=False))
            for i in range(M)])
        self.fc = nn.Linear(features, d)
        self.fcs = nn.ModuleList([nn.Linear(d, features) for _ in range(M)])
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        for i, conv in enumerate(self.convs):
            fea = conv(x).unsqueeze_(dim=1)
            if i == 0:
                feas = fea
            else:
                feas = torch.cat([feas, fea], dim=1)
        fea_U = torch.sum(feas, dim=1)
        fea_s = fea_U.mean(-1).mean(-1)
        fea_z = self.fc(fea_s)
        for i, fc in enumerate(self.fcs):
            vector = fc(fea_z).unsqueeze_(dim=1)
            if i == 0:
                attention_vectors = vector
            else:
                attention_vectors = torch.cat([attention_vectors, vector], dim=1)
        attention_vectors = self.softmax(attention_vectors)
        attention_vectors = attention_vectors.unsqueeze(-1).unsqueeze(-1)
        return (feas * attention_vectors).sum(dim=1)


class SKUnit(nn.Module):
    def __init__(self, in_features, out_features, M=2, G=8, r=2, mid_features=None, stride=1):
        super().__init__()
        mid_features = mid_features or out_features // 2
        self.feas = nn.Sequential(
            nn.Conv2d(in_features, mid_features, 1, stride=1), nn.BatchNorm2d(mid_features),
            SKConv(mid_features, M, G, r, stride=stride), nn.BatchNorm2d(mid_features),
            nn.Conv2d(mid_features, out_features, 1, stride=1), nn.BatchNorm2d(out_features))
        if in_features == out_features and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_features, out_features, 1, stride=stride),
                nn.BatchNorm2d(out_features))

    def forward(self, x):
        return F.relu(self.feas(x) + self.shortcut(x))


class SKNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.basic_conv = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False),
                                        nn.BatchNorm2d(16), nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.stage_1 = nn.Sequential(SKUnit(16, 32, mid_features=16), nn.ReLU(),
                                     SKUnit(32, 32, mid_features=16), nn.ReLU())
        self.stage_2 = nn.Sequential(SKUnit(32, 64, stride=2, mid_features=32), nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        fea = self.maxpool(self.basic_conv(x))
        fea = self.stage_2(self.stage_1(fea))
        fea = self.gap(fea)
        fea = torch.squeeze(fea)
        return self.classifier(fea)


def sknet():
    torch.manual_seed(0)
    return _randomize_bn(SKNet())


# --- Visual-Attention-Network/VAN-Classification (models/van.py) ---


class DWConv(nn.Module):
    def __init__(self, dim=768):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x):
        return self.dwconv(x)


class VanMlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1)
        self.dwconv = DWConv(hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_features, in_features, 1)
        self.drop = nn.Dropout(0.)

    def forward(self, x):
        x = self.fc1(x)
        x = self.dwconv(x)
        x = self.act(x)
        x = self.drop(x)
        x = self.fc2(x)
        return self.drop(x)


class LKA(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, stride=1, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        u = x.clone()
        attn = self.conv0(x)
        attn = self.conv_spatial(attn)
        attn = self.conv1(attn)
        return u * attn


class VanAttention(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.proj_1 = nn.Conv2d(d_model, d_model, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LKA(d_model)
        self.proj_2 = nn.Conv2d(d_model, d_model, 1)

    def forward(self, x):
        shorcut = x.clone()
        x = self.proj_1(x)
        x = self.activation(x)
        x = self.spatial_gating_unit(x)
        x = self.proj_2(x)
        return x + shorcut


class VanBlock(nn.Module):
    def __init__(self, dim, mlp_ratio=4.):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = VanAttention(dim)
        self.drop_path = nn.Identity()
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = VanMlp(dim, int(dim * mlp_ratio))
        layer_scale_init_value = 1e-2
        self.layer_scale_1 = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x):
        x = x + self.drop_path(self.layer_scale_1.unsqueeze(-1).unsqueeze(-1)
                               * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2.unsqueeze(-1).unsqueeze(-1)
                                  * self.mlp(self.norm2(x)))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, patch_size=7, stride=4, in_chans=3, embed_dim=768):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride,
                              padding=patch_size // 2)
        self.norm = nn.BatchNorm2d(embed_dim)

    def forward(self, x):
        x = self.proj(x)
        _, _, H, W = x.shape
        x = self.norm(x)
        return x, H, W


class VAN(nn.Module):
    def __init__(self, num_classes=10, embed_dims=(16, 32, 64), mlp_ratios=(4, 4, 4),
                 depths=(1, 1, 2)):
        super().__init__()
        self.depths = depths
        self.num_stages = len(depths)
        for i in range(self.num_stages):
            patch_embed = OverlapPatchEmbed(patch_size=7 if i == 0 else 3,
                                            stride=4 if i == 0 else 2,
                                            in_chans=3 if i == 0 else embed_dims[i - 1],
                                            embed_dim=embed_dims[i])
            block = nn.ModuleList([VanBlock(embed_dims[i], mlp_ratios[i])
                                   for _ in range(depths[i])])
            norm = nn.LayerNorm(embed_dims[i])
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
                x = blk(x)
            x = x.flatten(2).transpose(1, 2)
            x = norm(x)
            if i != self.num_stages - 1:
                x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
        return x.mean(dim=1)

    def forward(self, x):
        return self.head(self.forward_features(x))


def van():
    torch.manual_seed(0)
    model = _jitter_params(VAN(), {"layer_scale_1", "layer_scale_2"}, 0.3)
    return _randomize_bn(model)


# --- d-li14/involution (cls/mmcls/models/utils/involution_naive.py, RedNet) ---


class ConvModule(nn.Sequential):
    """mmcv's ConvModule as involution uses it: conv, then BN and ReLU when configured."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, norm=True, act=True):
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                            kernel_size // 2, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class involution(nn.Module):
    def __init__(self, channels, kernel_size, stride):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.channels = channels
        reduction_ratio = 4
        self.group_channels = 16
        self.groups = self.channels // self.group_channels
        self.conv1 = ConvModule(channels, channels // reduction_ratio, 1)
        self.conv2 = ConvModule(channels // reduction_ratio, kernel_size ** 2 * self.groups, 1,
                                norm=False, act=False)
        if stride > 1:
            self.avgpool = nn.AvgPool2d(stride, stride)
        self.unfold = nn.Unfold(kernel_size, 1, (kernel_size - 1) // 2, stride)

    def forward(self, x):
        weight = self.conv2(self.conv1(x if self.stride == 1 else self.avgpool(x)))
        b, _, h, w = weight.shape
        weight = weight.view(b, self.groups, self.kernel_size ** 2, h, w).unsqueeze(2)
        out = self.unfold(x).view(b, self.groups, self.group_channels, self.kernel_size ** 2,
                                  h, w)
        out = (weight * out).sum(dim=3).view(b, self.channels, h, w)
        return out


class RedNetBottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        mid = out_channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = involution(mid, 7, stride)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride,
                                                      bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class RedNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            involution(16, 3, 1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = RedNetBottleneck(32, 64)
        self.layer2 = RedNetBottleneck(64, 128, stride=2)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.maxpool(self.stem(x))
        x = self.layer2(self.layer1(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def involution_rednet():
    torch.manual_seed(0)
    return _randomize_bn(RedNet())


# --- ndrplz/ConvLSTM_pytorch (convlstm.py) ---


class ConvLSTMCell(nn.Module):
    def __init__(self, input_dim, hidden_dim, kernel_size, bias):
        super().__init__()
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.kernel_size = kernel_size
        self.padding = kernel_size[0] // 2, kernel_size[1] // 2
        self.bias = bias
        self.conv = nn.Conv2d(in_channels=self.input_dim + self.hidden_dim,
                              out_channels=4 * self.hidden_dim, kernel_size=self.kernel_size,
                              padding=self.padding, bias=self.bias)

    def forward(self, input_tensor, cur_state):
        h_cur, c_cur = cur_state
        combined = torch.cat([input_tensor, h_cur], dim=1)
        combined_conv = self.conv(combined)
        cc_i, cc_f, cc_o, cc_g = torch.split(combined_conv, self.hidden_dim, dim=1)
        i = torch.sigmoid(cc_i)
        f = torch.sigmoid(cc_f)
        o = torch.sigmoid(cc_o)
        g = torch.tanh(cc_g)
        c_next = f * c_cur + i * g
        h_next = o * torch.tanh(c_next)
        return h_next, c_next

    def init_hidden(self, batch_size, image_size):
        height, width = image_size
        return (torch.zeros(batch_size, self.hidden_dim, height, width,
                            device=self.conv.weight.device),
                torch.zeros(batch_size, self.hidden_dim, height, width,
                            device=self.conv.weight.device))


class ConvLSTM(nn.Module):
    def __init__(self, input_dim, hidden_dim, kernel_size, num_layers, batch_first=False,
                 bias=True, return_all_layers=False):
        super().__init__()
        kernel_size = [kernel_size] * num_layers
        hidden_dim = [hidden_dim] * num_layers if not isinstance(hidden_dim, list) else hidden_dim
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.return_all_layers = return_all_layers
        self.cell_list = nn.ModuleList([
            ConvLSTMCell(input_dim if i == 0 else hidden_dim[i - 1], hidden_dim[i],
                         kernel_size[i], bias) for i in range(num_layers)])

    def forward(self, input_tensor, hidden_state=None):
        if not self.batch_first:
            input_tensor = input_tensor.permute(1, 0, 2, 3, 4)
        b, _, _, h, w = input_tensor.size()
        hidden_state = [cell.init_hidden(b, (h, w)) for cell in self.cell_list]
        layer_output_list = []
        last_state_list = []
        seq_len = input_tensor.size(1)
        cur_layer_input = input_tensor
        for layer_idx in range(self.num_layers):
            h, c = hidden_state[layer_idx]
            output_inner = []
            for t in range(seq_len):
                h, c = self.cell_list[layer_idx](input_tensor=cur_layer_input[:, t, :, :, :],
                                                 cur_state=[h, c])
                output_inner.append(h)
            layer_output = torch.stack(output_inner, dim=1)
            cur_layer_input = layer_output
            layer_output_list.append(layer_output)
            last_state_list.append([h, c])
        if not self.return_all_layers:
            layer_output_list = layer_output_list[-1:]
            last_state_list = last_state_list[-1:]
        return layer_output_list, last_state_list


class NowcastConvLSTM(nn.Module):
    """A next-frame predictor over (B, T, C, H, W) frames: two ConvLSTM layers, the last hidden
    state through a 1x1 conv head."""

    def __init__(self):
        super().__init__()
        self.convlstm = ConvLSTM(2, [8, 8], (3, 3), 2, batch_first=True)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        _, last_states = self.convlstm(x)
        return self.head(last_states[0][0])


def convlstm():
    torch.manual_seed(0)
    return NowcastConvLSTM().eval()


# --- pyg-team/pytorch_geometric (nn/dense/dense_gin_conv.py), dense-batched graphs ---


class DenseGINConv(nn.Module):
    def __init__(self, nn_, eps=0.0, train_eps=True):
        super().__init__()
        self.nn = nn_
        self.initial_eps = eps
        self.eps = nn.Parameter(torch.tensor([eps])) if train_eps else torch.tensor([eps])

    def forward(self, x, adj, mask=None, add_loop=True):
        x = x.unsqueeze(0) if x.dim() == 2 else x
        adj = adj.unsqueeze(0) if adj.dim() == 2 else adj
        B, N, _ = adj.size()
        out = torch.matmul(adj, x)
        if add_loop:
            out = (1 + self.eps) * x + out
        out = self.nn(out)
        if mask is not None:
            out = out * mask.view(B, N, 1).to(x.dtype)
        return out


class DenseGIN(nn.Module):
    """A GIN graph classifier over to_dense_batch / to_dense_adj inputs: three DenseGINConv
    layers, a masked sum readout of every layer (the GIN paper's jumping knowledge)."""

    def __init__(self, in_channels=8, hidden=32, num_classes=4, layers=3):
        super().__init__()
        self.convs = nn.ModuleList()
        for i in range(layers):
            mlp = nn.Sequential(nn.Linear(in_channels if i == 0 else hidden, hidden), nn.ReLU(),
                                nn.Linear(hidden, hidden), nn.ReLU())
            self.convs.append(DenseGINConv(mlp, train_eps=True))
        self.lin1 = nn.Linear(layers * hidden, hidden)
        self.lin2 = nn.Linear(hidden, num_classes)

    def forward(self, x, adj, mask):
        xs = []
        for conv in self.convs:
            x = conv(x, adj, mask)
            xs.append(x.sum(dim=1))
        x = torch.cat(xs, dim=-1)
        x = F.relu(self.lin1(x))
        x = F.dropout(x, p=0.5, training=self.training)
        return F.log_softmax(self.lin2(x), dim=-1)


def gin():
    torch.manual_seed(0)
    model = DenseGIN()
    with torch.no_grad():
        for conv in model.convs:
            conv.eps.fill_(0.1)
    return model.eval()


def _gin_inputs(batch=8, nodes=12, feats=8, seed=0):
    """to_dense_batch / to_dense_adj of random graphs of 6 to 12 nodes: node features, a
    symmetric 0/1 adjacency without self loops, a 0/1 node mask (padding rows zero)."""
    def make():
        rng = np.random.default_rng(seed)
        x = np.zeros((batch, nodes, feats), np.float32)
        adj = np.zeros((batch, nodes, nodes), np.float32)
        mask = np.zeros((batch, nodes), np.float32)
        for b in range(batch):
            n = int(rng.integers(6, nodes + 1))
            x[b, :n] = rng.standard_normal((n, feats))
            a = (rng.random((n, n)) < 0.3).astype(np.float32)
            a = np.triu(a, 1)
            adj[b, :n, :n] = a + a.T
            mask[b, :n] = 1.0
        return {"x": x, "adj": adj, "mask": mask}
    return make


# --- shenweichen/DeepCTR-Torch (deepctr_torch/layers/interaction.py CIN, models/xdeepfm.py) ---


class CIN(nn.Module):
    def __init__(self, field_size, layer_size=(16, 16), activation="relu", split_half=True):
        super().__init__()
        self.layer_size = layer_size
        self.field_nums = [field_size]
        self.split_half = split_half
        self.activation = nn.ReLU() if activation == "relu" else None
        self.conv1ds = nn.ModuleList()
        for i, size in enumerate(self.layer_size):
            self.conv1ds.append(nn.Conv1d(self.field_nums[-1] * self.field_nums[0], size, 1))
            if self.split_half:
                self.field_nums.append(size // 2)
            else:
                self.field_nums.append(size)

    def forward(self, inputs):
        batch_size = inputs.shape[0]
        dim = inputs.shape[-1]
        hidden_nn_layers = [inputs]
        final_result = []
        for i, size in enumerate(self.layer_size):
            x = torch.einsum("bhd,bmd->bhmd", hidden_nn_layers[-1], hidden_nn_layers[0])
            x = x.reshape(batch_size, hidden_nn_layers[-1].shape[1] * hidden_nn_layers[0].shape[1],
                          dim)
            x = self.conv1ds[i](x)
            curr_out = x if self.activation is None else self.activation(x)
            if self.split_half:
                if i != len(self.layer_size) - 1:
                    next_hidden, direct_connect = torch.split(curr_out, 2 * [size // 2], 1)
                else:
                    direct_connect = curr_out
                    next_hidden = 0
            else:
                direct_connect = curr_out
                next_hidden = curr_out
            final_result.append(direct_connect)
            hidden_nn_layers.append(next_hidden)
        result = torch.cat(final_result, dim=1)
        return torch.sum(result, -1)


class XDeepFM(nn.Module):
    """DeepCTR-Torch's xDeepFM over F sparse fields: per-field embeddings of X[:, i:i + 1],
    a linear part of 1-wide embeddings, the CIN and a DNN on the flattened embeddings, summed
    into a sigmoid."""

    def __init__(self, vocab=(20, 30, 12, 40, 16, 25), dim=8, dnn_hidden=(32, 32)):
        super().__init__()
        self.vocab = vocab
        self.embedding_dict = nn.ModuleDict({f"C{i}": nn.Embedding(v, dim)
                                             for i, v in enumerate(vocab)})
        self.linear_embedding_dict = nn.ModuleDict({f"C{i}": nn.Embedding(v, 1)
                                                    for i, v in enumerate(vocab)})
        self.cin = CIN(len(vocab))
        self.cin_linear = nn.Linear(sum(self.cin.field_nums[1:-1]) + self.cin.layer_size[-1], 1,
                                    bias=False)
        layers = []
        prev = len(vocab) * dim
        for h in dnn_hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        self.dnn = nn.Sequential(*layers)
        self.dnn_linear = nn.Linear(prev, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros((1,)))

    def forward(self, X):
        sparse_embedding_list = [self.embedding_dict[f"C{i}"](X[:, i:i + 1].long())
                                 for i in range(len(self.vocab))]
        linear_list = [self.linear_embedding_dict[f"C{i}"](X[:, i:i + 1].long())
                       for i in range(len(self.vocab))]
        linear_logit = torch.sum(torch.cat(linear_list, dim=-1), dim=-1, keepdim=False)
        linear_logit = linear_logit + self.bias
        cin_input = torch.cat(sparse_embedding_list, dim=1)
        cin_output = self.cin(cin_input)
        cin_logit = self.cin_linear(cin_output)
        dnn_input = torch.flatten(cin_input, start_dim=1)
        dnn_output = self.dnn(dnn_input)
        dnn_logit = self.dnn_linear(dnn_output)
        final_logit = linear_logit + dnn_logit + cin_logit
        return torch.sigmoid(final_logit)


def xdeepfm():
    torch.manual_seed(0)
    return XDeepFM().eval()


def _xdeepfm_inputs(batch=32, seed=0):
    vocab = (20, 30, 12, 40, 16, 25)
    return lambda: np.stack([np.random.default_rng(seed + i).integers(0, v, batch)
                             for i, v in enumerate(vocab)], axis=1)


# --- yluo42/TAC (utility/models.py: DPRNN, DPRNN_base; utility/sdr.py's DPRNN_TasNet) ---


class SingleRNN(nn.Module):
    def __init__(self, rnn_type, input_size, hidden_size, dropout=0, bidirectional=False):
        super().__init__()
        self.rnn_type = rnn_type
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_direction = int(bidirectional) + 1
        self.rnn = getattr(nn, rnn_type)(input_size, hidden_size, 1, dropout=dropout,
                                         batch_first=True, bidirectional=bidirectional)
        self.proj = nn.Linear(hidden_size * self.num_direction, input_size)

    def forward(self, input):
        output = input
        rnn_output, _ = self.rnn(output)
        rnn_output = self.proj(rnn_output.contiguous().view(-1, rnn_output.shape[2])
                               ).view(output.shape)
        return rnn_output


class DPRNN(nn.Module):
    def __init__(self, rnn_type, input_size, hidden_size, output_size, dropout=0, num_layers=1,
                 bidirectional=True):
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size = hidden_size
        self.row_rnn = nn.ModuleList([])
        self.col_rnn = nn.ModuleList([])
        self.row_norm = nn.ModuleList([])
        self.col_norm = nn.ModuleList([])
        for _ in range(num_layers):
            self.row_rnn.append(SingleRNN(rnn_type, input_size, hidden_size, dropout,
                                          bidirectional=True))
            self.col_rnn.append(SingleRNN(rnn_type, input_size, hidden_size, dropout,
                                          bidirectional=bidirectional))
            self.row_norm.append(nn.GroupNorm(1, input_size, eps=1e-8))
            self.col_norm.append(nn.GroupNorm(1, input_size, eps=1e-8))
        self.output = nn.Sequential(nn.PReLU(), nn.Conv2d(input_size, output_size, 1))

    def forward(self, input):
        batch_size, _, dim1, dim2 = input.shape
        output = input
        for i in range(len(self.row_rnn)):
            row_input = output.permute(0, 3, 2, 1).contiguous().view(batch_size * dim2, dim1, -1)
            row_output = self.row_rnn[i](row_input)
            row_output = row_output.view(batch_size, dim2, dim1, -1).permute(0, 3, 2, 1
                                                                              ).contiguous()
            row_output = self.row_norm[i](row_output)
            output = output + row_output
            col_input = output.permute(0, 2, 3, 1).contiguous().view(batch_size * dim1, dim2, -1)
            col_output = self.col_rnn[i](col_input)
            col_output = col_output.view(batch_size, dim1, dim2, -1).permute(0, 3, 1, 2
                                                                              ).contiguous()
            col_output = self.col_norm[i](col_output)
            output = output + col_output
        return self.output(output)


class DPRNNTasNet(nn.Module):
    def __init__(self, enc_dim=16, feature_dim=16, hidden_dim=16, layer=2, segment_size=8,
                 nspk=2, win_len=8):
        super().__init__()
        self.enc_dim = enc_dim
        self.feature_dim = feature_dim
        self.segment_size = segment_size
        self.num_spk = nspk
        self.window = win_len
        self.stride = self.window // 2
        self.encoder = nn.Conv1d(1, self.enc_dim, self.window, stride=self.stride, bias=False)
        self.BN = nn.Conv1d(self.enc_dim, self.feature_dim, 1, bias=False)
        self.DPRNN = DPRNN("LSTM", self.feature_dim, hidden_dim, self.feature_dim * nspk,
                           num_layers=layer)
        self.output = nn.Sequential(nn.Conv1d(self.feature_dim, self.enc_dim, 1), nn.Tanh())
        self.output_gate = nn.Sequential(nn.Conv1d(self.feature_dim, self.enc_dim, 1),
                                         nn.Sigmoid())
        self.decoder = nn.ConvTranspose1d(self.enc_dim, 1, self.window, bias=False,
                                          stride=self.stride)

    def pad_signal(self, input):
        if input.dim() == 2:
            input = input.unsqueeze(1)
        batch_size = input.size(0)
        nsample = input.size(2)
        rest = self.window - (self.stride + nsample % self.window) % self.window
        if rest > 0:
            pad = torch.zeros(batch_size, 1, rest).type(input.type())
            input = torch.cat([input, pad], 2)
        pad_aux = torch.zeros(batch_size, 1, self.stride).type(input.type())
        input = torch.cat([pad_aux, input, pad_aux], 2)
        return input, rest

    def pad_segment(self, input, segment_size):
        batch_size, dim, seq_len = input.shape
        segment_stride = segment_size // 2
        rest = segment_size - (segment_stride + seq_len % segment_size) % segment_size
        if rest > 0:
            pad = torch.zeros(batch_size, dim, rest).type(input.type())
            input = torch.cat([input, pad], 2)
        pad_aux = torch.zeros(batch_size, dim, segment_stride).type(input.type())
        input = torch.cat([pad_aux, input, pad_aux], 2)
        return input, rest

    def split_feature(self, input, segment_size):
        input, rest = self.pad_segment(input, segment_size)
        batch_size, dim, _ = input.shape
        segment_stride = segment_size // 2
        segments1 = input[:, :, :-segment_stride].contiguous().view(batch_size, dim, -1,
                                                                    segment_size)
        segments2 = input[:, :, segment_stride:].contiguous().view(batch_size, dim, -1,
                                                                   segment_size)
        segments = torch.cat([segments1, segments2], 3).view(batch_size, dim, -1,
                                                             segment_size).transpose(2, 3)
        return segments.contiguous(), rest

    def merge_feature(self, input, rest):
        batch_size, dim, segment_size, _ = input.shape
        segment_stride = segment_size // 2
        input = input.transpose(2, 3).contiguous().view(batch_size, dim, -1, segment_size * 2)
        input1 = input[:, :, :, :segment_size].contiguous().view(batch_size, dim, -1
                                                                 )[:, :, segment_stride:]
        input2 = input[:, :, :, segment_size:].contiguous().view(batch_size, dim, -1
                                                                 )[:, :, :-segment_stride]
        output = input1 + input2
        if rest > 0:
            output = output[:, :, :-rest]
        return output.contiguous()

    def forward(self, input):
        output, rest = self.pad_signal(input)
        batch_size = output.size(0)
        enc_output = self.encoder(output)
        enc_feature = self.BN(enc_output)
        enc_segments, enc_rest = self.split_feature(enc_feature, self.segment_size)
        output = self.DPRNN(enc_segments).view(batch_size * self.num_spk, self.feature_dim,
                                               self.segment_size, -1)
        output = self.merge_feature(output, enc_rest)
        output = self.output(output) * self.output_gate(output)
        output = output.view(batch_size, self.num_spk, self.enc_dim, -1)
        masks = torch.sigmoid(output)
        masked_output = enc_output.unsqueeze(1) * masks
        output = self.decoder(masked_output.view(batch_size * self.num_spk, self.enc_dim, -1))
        output = output[:, :, self.stride:-(rest + self.stride)].contiguous()
        return output.view(batch_size, self.num_spk, -1)


def dprnn():
    torch.manual_seed(0)
    return DPRNNTasNet().eval()


# --- timm (layers/cond_conv2d.py; efficientnet_cc's CondConvResidual) ---


class CondConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1,
                 groups=1, bias=False, num_experts=4):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (kernel_size, kernel_size)
        self.stride = stride
        self.padding = padding
        self.dilation = 1
        self.groups = groups
        self.num_experts = num_experts
        self.weight_shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        weight_num_param = 1
        for wd in self.weight_shape:
            weight_num_param *= wd
        self.weight = nn.Parameter(torch.empty(self.num_experts, weight_num_param))
        self.bias = nn.Parameter(torch.empty(self.num_experts, out_channels)) if bias else None
        bound = 1 / math.sqrt(in_channels // groups * kernel_size * kernel_size)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x, routing_weights):
        B, C, H, W = x.shape
        weight = torch.matmul(routing_weights, self.weight)
        new_weight_shape = (B * self.out_channels, self.in_channels // self.groups
                            ) + self.kernel_size
        weight = weight.view(new_weight_shape)
        bias = None
        if self.bias is not None:
            bias = torch.matmul(routing_weights, self.bias)
            bias = bias.view(B * self.out_channels)
        x = x.reshape(1, B * C, H, W)
        out = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation,
                       groups=self.groups * B)
        out = out.permute([1, 0, 2, 3]).view(B, self.out_channels, out.shape[-2],
                                             out.shape[-1])
        return out


class CondConvResidual(nn.Module):
    """timm's CondConvResidual (an inverted residual whose pw / dw / pwl convs are CondConv2d,
    routed by a sigmoid of a linear of the pooled input)."""

    def __init__(self, in_chs, out_chs, exp_ratio=4, num_experts=4, stride=1):
        super().__init__()
        mid = in_chs * exp_ratio
        self.has_skip = stride == 1 and in_chs == out_chs
        self.routing_fn = nn.Linear(in_chs, num_experts)
        self.conv_pw = CondConv2d(in_chs, mid, 1, padding=0, num_experts=num_experts)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv_dw = CondConv2d(mid, mid, 3, stride=stride, padding=1, groups=mid,
                                  num_experts=num_experts)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv_pwl = CondConv2d(mid, out_chs, 1, padding=0, num_experts=num_experts)
        self.bn3 = nn.BatchNorm2d(out_chs)

    def forward(self, x):
        shortcut = x
        pooled_inputs = F.adaptive_avg_pool2d(x, 1).flatten(1)
        routing_weights = torch.sigmoid(self.routing_fn(pooled_inputs))
        x = F.silu(self.bn1(self.conv_pw(x, routing_weights)))
        x = F.silu(self.bn2(self.conv_dw(x, routing_weights)))
        x = self.bn3(self.conv_pwl(x, routing_weights))
        if self.has_skip:
            x = x + shortcut
        return x


class CondConvNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(CondConvResidual(16, 16), CondConvResidual(16, 24, stride=2))
        self.conv_head = nn.Conv2d(24, 64, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.silu(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        x = F.silu(self.bn2(self.conv_head(x)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


def condconv():
    torch.manual_seed(0)
    return _randomize_bn(CondConvNet())


# --- rish-16/aft-pytorch (aft_pytorch/aft_pytorch.py AFTFull), made causal as the paper's
# autoregressive AFT (weights over t' <= t) ---


class AFTFull(nn.Module):
    def __init__(self, max_seqlen, dim, hidden_dim=64):
        super().__init__()
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.to_q = nn.Linear(dim, hidden_dim)
        self.to_k = nn.Linear(dim, hidden_dim)
        self.to_v = nn.Linear(dim, hidden_dim)
        self.project = nn.Linear(hidden_dim, dim)
        self.wbias = nn.Parameter(torch.Tensor(max_seqlen, max_seqlen))
        nn.init.xavier_uniform_(self.wbias)
        self.register_buffer("causal", torch.tril(torch.ones(max_seqlen, max_seqlen)))

    def forward(self, x):
        B, T, _ = x.shape
        Q = self.to_q(x).view(B, T, self.hidden_dim)
        K = self.to_k(x).view(B, T, self.hidden_dim)
        V = self.to_v(x).view(B, T, self.hidden_dim)
        temp_wbias = (torch.exp(self.wbias[:T, :T]) * self.causal[:T, :T]).unsqueeze(0)
        Q_sig = torch.sigmoid(Q)
        temp = temp_wbias @ torch.mul(torch.exp(K), V)
        weighted = temp / (temp_wbias @ torch.exp(K))
        Yt = torch.mul(Q_sig, weighted)
        Yt = Yt.view(B, T, self.hidden_dim)
        return self.project(Yt)


class AFTBlock(nn.Module):
    def __init__(self, max_seqlen, dim, hidden_dim):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = AFTFull(max_seqlen, dim, hidden_dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class AFTLM(nn.Module):
    def __init__(self, vocab=100, dim=32, hidden_dim=32, layers=2, max_seqlen=64):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, dim)
        self.pos_emb = nn.Parameter(torch.randn(1, max_seqlen, dim) * 0.02)
        self.blocks = nn.Sequential(*[AFTBlock(max_seqlen, dim, hidden_dim)
                                      for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.tok_emb(idx) + self.pos_emb[:, :T, :]
        x = self.blocks(x)
        return self.head(self.ln_f(x))


def aft():
    torch.manual_seed(0)
    return AFTLM().eval()


# --- openai/sparse_attention (attention.py: get_attn_mask, attention_impl) in PyTorch ---


def get_attn_mask(n, attn_mode, local_attn_ctx=None):
    if attn_mode == "all":
        b = torch.tril(torch.ones([n, n]))
    elif attn_mode == "local":
        bandwidth = local_attn_ctx
        ctx = min(n - 1, bandwidth - 1)
        b = torch.tril(torch.ones([n, n])) - torch.tril(torch.ones([n, n]), -ctx - 1)
    elif attn_mode == "strided":
        stride = local_attn_ctx
        x = torch.reshape(torch.arange(n, dtype=torch.int32), [n, 1])
        y = torch.transpose(x, 0, 1)
        z = torch.zeros([n, n], dtype=torch.int32)
        q = z + x
        k = z + y
        c1 = q >= k
        c2 = torch.eq(torch.remainder(q - k, stride), 0)
        c3 = torch.logical_and(c1, c2)
        b = c3.float()
    else:
        raise ValueError("Not yet implemented")
    return torch.reshape(b, [1, 1, n, n])


def split_heads(x, n):
    return x.view(x.shape[0], x.shape[1], n, x.shape[2] // n).permute(0, 2, 1, 3)


def merge_heads(x):
    x = x.permute(0, 2, 1, 3)
    return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])


def attention_impl(q, k, v, heads, attn_mode, local_attn_ctx=None):
    q = split_heads(q, heads)
    k = split_heads(k, heads)
    v = split_heads(v, heads)
    n_timesteps = k.shape[2]
    mask = get_attn_mask(n_timesteps, attn_mode, local_attn_ctx).float()
    w = torch.matmul(q, k.transpose(-2, -1))
    scale_amount = 1.0 / np.sqrt(q.shape[-1])
    w = w * scale_amount
    w = w * mask + -1e9 * (1 - mask)
    w = F.softmax(w, dim=-1)
    a = torch.matmul(w, v)
    return merge_heads(a)


class SparseBlock(nn.Module):
    def __init__(self, dim, heads, attn_mode, local_attn_ctx):
        super().__init__()
        self.heads = heads
        self.attn_mode = attn_mode
        self.local_attn_ctx = local_attn_ctx
        self.ln_1 = nn.LayerNorm(dim)
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        q, k, v = self.c_attn(self.ln_1(x)).split(x.shape[-1], dim=2)
        a = attention_impl(q, k, v, self.heads, self.attn_mode, self.local_attn_ctx)
        x = x + self.c_proj(a)
        return x + self.mlp(self.ln_2(x))


class SparseTransformerLM(nn.Module):
    """Layers alternating the paper's factorized patterns: 'local' (the previous 4 positions)
    and 'strided' (every 4th earlier position), stride = sqrt(n)-style local_attn_ctx 4."""

    def __init__(self, vocab=100, dim=32, heads=4, layers=4, max_seqlen=64, local_attn_ctx=4):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(max_seqlen, dim)
        self.h = nn.ModuleList([SparseBlock(dim, heads, "local" if i % 2 == 0 else "strided",
                                            local_attn_ctx) for i in range(layers)])
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.t()


def sparse_transformer():
    torch.manual_seed(0)
    return SparseTransformerLM().eval()


P = (5, 17, 42, 8, 63, 2)

NETWORKS = (
    Network("nfnet", "timm's NF-ResNet / NFNet layout (ScaledStdConv2d: the weight standardized "
            "by F.batch_norm(training=True) of the weight each forward, times gain * fan-in^-0.5; "
            "gamma-scaled GELU; x * beta pre-activation and out * alpha + shortcut; SkipInit "
            "gain by out.mul_; SE with gain 2; DownsampleAvg ceil_mode pool)", "nfnet",
            floats(4, 3, 32, 32)),
    Network("mobileone", "apple/ml-mobileone's MobileOne in its train form (4 conv-BN branches, a "
            "1x1 conv-BN scale branch and a BN identity summed by out +=; depthwise then "
            "pointwise blocks; SE by avg_pool2d over [h, w])", "mobileone",
            floats(4, 3, 32, 32)),
    Network("mobileone_reparam", "the same MobileOne after reparameterize_model (branches folded "
            "into one conv each, the deployed form)", "mobileone_reparam",
            floats(4, 3, 32, 32)),
    Network("ghostnetv2", "huawei-noah's GhostNetV2 (GhostModuleV2 'attn': DFC attention by "
            "avg_pool2d 2, a 1x1 conv, (1, 5) and (5, 1) depthwise convs, sigmoid, "
            "F.interpolate nearest to the ghost output's size; cat + slice [:, :oup]; SE with "
            "hard_sigmoid)", "ghostnetv2", floats(4, 3, 32, 32)),
    Network("resnest", "zhanghang1989's ResNeSt (SplAtConv2d: radix-2 grouped conv, "
            "torch.split + Python sum, grouped fc1 / fc2, rSoftMax view(batch, card, radix, -1)"
            ".transpose(1, 2) softmax over the radix; deep stem, avd pooling, avg_down shortcut)",
            "resnest", floats(4, 3, 32, 32)),
    Network("sknet", "SK-Net's selective kernel (ResearchingDexter/SKNet_pytorch: 3x3 and 5x5 "
            "grouped branches unsqueeze_'d and cat'ed on a new axis 1 of (B, M, C, H, W), sum, "
            ".mean(-1).mean(-1), per-branch fcs, softmax over the branches, weighted sum)",
            "sknet", floats(4, 3, 32, 32)),
    Network("van", "Visual-Attention-Network's VAN (LKA: 5x5 depthwise, 7x7 depthwise dilation "
            "3, 1x1, u * attn; BatchNorm pre-norms, layer scales by unsqueeze(-1), "
            "OverlapPatchEmbed, flatten(2).transpose + LayerNorm + reshape back per stage)",
            "van", floats(4, 3, 32, 32)),
    Network("involution", "d-li14's involution in a RedNet (kernels generated per pixel by "
            "1x1 convs, nn.Unfold(7) of the input viewed (b, groups, 16, 49, h, w), product "
            "summed over the kernel window; AvgPool2d before the kernel at stride 2)",
            "involution_rednet", floats(4, 3, 32, 32)),
    Network("convlstm", "ndrplz's ConvLSTM (conv cell over cat([x_t, h]), torch.split into "
            "i, f, o, g, zeros init_hidden, loops over 6 frames of a 5-D (B, T, C, H, W) input "
            "and 2 layers, torch.stack of the outputs), last hidden state to a 1x1 conv head",
            "convlstm", floats(4, 6, 2, 16, 16)),
    Network("gin", "PyG's DenseGINConv in a GIN classifier forward(x, adj, mask): runtime "
            "to_dense_adj adjacencies (adj @ x + (1 + eps) x, MLP), node mask by "
            "mask.view(B, N, 1), sum readout of every layer cat'ed, log_softmax",
            "gin", _gin_inputs()),
    Network("xdeepfm", "DeepCTR-Torch's xDeepFM (per-field Embeddings of X[:, i:i + 1].long(), "
            "1-wide linear embeddings summed, CIN: einsum('bhd,bmd->bhmd') outer products "
            "reshaped into Conv1d k1, split_half, sum over the embedding; DNN on the flattened "
            "embeddings; sigmoid)", "xdeepfm", _xdeepfm_inputs()),
    Network("dprnn", "yluo42's DPRNN-TasNet (Conv1d encoder, pad_signal / pad_segment by "
            "torch.zeros + cat, half-overlapping segments by view + cat + transpose, row and "
            "column BiLSTMs over (B * dim2, dim1, N) with GroupNorm(1), overlap-add "
            "merge_feature, tanh * sigmoid mask, ConvTranspose1d decoder and crop)",
            "dprnn", floats(4, 256)),
    Network("condconv", "timm's CondConv2d in CondConvResidual blocks (routing weights by "
            "sigmoid of a linear of the pooled input; per-sample kernels routing @ experts, "
            "x.reshape(1, B * C, H, W) through F.conv2d(groups=groups * B), permute back)",
            "condconv", floats(4, 3, 32, 32)),
    Network("aft", "an AFT-full causal LM (rish-16/aft-pytorch's AFTFull: exp(wbias[:T, :T]) "
            "position biases, tril-masked, @ (exp(K) * V) over @ exp(K), sigmoid(Q) gate; "
            "pre-LN blocks, learned positions)", "aft", ids(100, 8, 32), prompt=P, tokens=8),
    Network("sparse_transformer", "OpenAI's Sparse Transformer attention_impl (get_attn_mask "
            "'local' band and 'strided' (q - k) % 4 == 0 masks from arange, w * mask + -1e9 * "
            "(1 - mask), split / merge heads) in alternating layers, tied head",
            "sparse_transformer", ids(100, 8, 32), prompt=P, tokens=8),
)

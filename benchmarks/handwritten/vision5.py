"""Vision, video, 3-D and audio networks written by hand (fifth round), each the way its reference
code writes it: wolny/pytorch-3dunet's 3-D U-Net (Conv3d + GroupNorm, MaxPool3d, its default
nearest upsampling or ConvTranspose3d, joined by cat), torchvision's R(2+1)D video block (Conv3d
(1, 3, 3) then (3, 1, 1), BatchNorm3d, AdaptiveAvgPool3d), torchvision's Inception v3 blocks
(BasicConv2d with eps 0.001, factorized 1x7 / 7x1 convs, avg_pool2d(3, 1, 1) branches),
torchvision's SqueezeNet 1.1 (Fire modules, ceil_mode max pools, a conv classifier), Xception's
separable convs with strided 1x1 shortcuts, PSPNet's pyramid pooling (adaptive pools to 1, 2, 3,
6 then bilinear align_corners upsampling), CenterNet's heads and its max-pool NMS, pix2pix's
recursive U-Net generator (LeakyReLU, InstanceNorm2d, ConvTranspose2d, Tanh), EfficientViT's
ReLU linear attention (LiteMLA: a ones-padded value), MobileViT v2's separable self-attention,
ResMLP's Affine layers, a capsule network (squash, three routing iterations), HiFi-GAN's
generator (weight_norm ConvTranspose1d, multi-receptive-field ResBlocks), Conv-TasNet (gLN, a
dilated depthwise TCN with PReLU, sigmoid masks) and a CRNN (CNN, bidirectional LSTM,
log_softmax). Small, random weights."""

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.handwritten import Network, floats
from benchmarks.handwritten.vision import _randomize_bn

# --- wolny/pytorch-3dunet (unet3d/buildingblocks.py: SingleConv 'gcr', Encoder, Decoder) ---


class SingleConv3d(nn.Sequential):
    def __init__(self, cin, cout, groups=4):
        super().__init__()
        self.add_module("groupnorm", nn.GroupNorm(num_groups=min(groups, cin), num_channels=cin))
        self.add_module("conv", nn.Conv3d(cin, cout, 3, padding=1, bias=False))
        self.add_module("ReLU", nn.ReLU(inplace=True))


class DoubleConv3d(nn.Sequential):
    def __init__(self, cin, cout, encoder):
        super().__init__()
        if encoder:
            c1 = max(cout // 2, cin)
            c1_in, c1_out, c2_in, c2_out = cin, c1, c1, cout
        else:
            c1_in, c1_out, c2_in, c2_out = cin, cout, cout, cout
        self.add_module("SingleConv1", SingleConv3d(c1_in, c1_out))
        self.add_module("SingleConv2", SingleConv3d(c2_in, c2_out))


class Encoder3d(nn.Module):
    def __init__(self, cin, cout, apply_pooling=True):
        super().__init__()
        self.pooling = nn.MaxPool3d(kernel_size=2) if apply_pooling else None
        self.basic_module = DoubleConv3d(cin, cout, encoder=True)

    def forward(self, x):
        if self.pooling is not None:
            x = self.pooling(x)
        return self.basic_module(x)


class InterpolateUpsampling(nn.Module):
    """pytorch-3dunet's default upsampling of a DoubleConv UNet3D: nearest, to the skip's size."""

    def __init__(self, mode="nearest"):
        super().__init__()
        self.mode = mode

    def forward(self, encoder_features, x):
        output_size = encoder_features.size()[2:]
        return F.interpolate(x, size=output_size, mode=self.mode)


class Decoder3d(nn.Module):
    def __init__(self, cin, cout, upsample="default"):
        super().__init__()
        if upsample == "deconv":
            self.upsampling = nn.ConvTranspose3d(cin, cin, kernel_size=3, stride=2, padding=1,
                                                 output_padding=1)
        else:  # 'default' for DoubleConv: nearest interpolation, features concatenated
            self.upsampling = InterpolateUpsampling()
        self.deconv = upsample == "deconv"
        self.basic_module = DoubleConv3d(cin + cout, cout, encoder=False)

    def forward(self, encoder_features, x):
        x = self.upsampling(x) if self.deconv else self.upsampling(encoder_features, x)
        x = torch.cat((encoder_features, x), dim=1)
        return self.basic_module(x)


class UNet3D(nn.Module):
    def __init__(self, cin=1, cout=2, f_maps=(8, 16, 32), upsample="default"):
        super().__init__()
        self.encoders = nn.ModuleList(
            [Encoder3d(cin if i == 0 else f_maps[i - 1], f, apply_pooling=i > 0)
             for i, f in enumerate(f_maps)])
        rev = list(reversed(f_maps))
        self.decoders = nn.ModuleList([Decoder3d(rev[i], rev[i + 1], upsample)
                                       for i in range(len(rev) - 1)])
        self.final_conv = nn.Conv3d(f_maps[0], cout, 1)
        self.final_activation = nn.Softmax(dim=1)

    def forward(self, x):
        encoders_features = []
        for encoder in self.encoders:
            x = encoder(x)
            encoders_features.insert(0, x)
        encoders_features = encoders_features[1:]
        for decoder, encoder_features in zip(self.decoders, encoders_features, strict=True):
            x = decoder(encoder_features, x)
        x = self.final_conv(x)
        return self.final_activation(x)


def unet3d():
    torch.manual_seed(0)
    return UNet3D().eval()


def unet3d_deconv():
    torch.manual_seed(0)
    return UNet3D(upsample="deconv").eval()


# --- torchvision.models.video.resnet: R(2+1)D (Conv2Plus1D, BasicBlock, R2Plus1dStem) ---


class Conv2Plus1D(nn.Sequential):
    def __init__(self, in_planes, out_planes, midplanes, stride=1, padding=1):
        super().__init__(
            nn.Conv3d(in_planes, midplanes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                      padding=(0, padding, padding), bias=False),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(midplanes, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1),
                      padding=(padding, 0, 0), bias=False),
        )


class VideoBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        midplanes = (inplanes * planes * 3 * 3 * 3) // (inplanes * 3 * 3 + 3 * planes)
        super().__init__()
        self.conv1 = nn.Sequential(Conv2Plus1D(inplanes, planes, midplanes, stride),
                                   nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes, midplanes),
                                   nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x
        out = self.conv1(x)
        out = self.conv2(out)
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class R2Plus1D(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, 12, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3),
                      bias=False),
            nn.BatchNorm3d(12), nn.ReLU(inplace=True),
            nn.Conv3d(12, 16, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0),
                      bias=False),
            nn.BatchNorm3d(16), nn.ReLU(inplace=True))
        self.layer1 = VideoBasicBlock(16, 16)
        down = nn.Sequential(nn.Conv3d(16, 32, kernel_size=1, stride=2, bias=False),
                             nn.BatchNorm3d(32))
        self.layer2 = VideoBasicBlock(16, 32, stride=2, downsample=down)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.avgpool(x)
        x = x.flatten(1)
        return self.fc(x)


def r2plus1d():
    torch.manual_seed(0)
    return _randomize_bn(R2Plus1D())


# --- torchvision.models.inception (BasicConv2d, InceptionA, InceptionB, InceptionC) ---


class BasicConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        x = self.conv(x)
        x = self.bn(x)
        return F.relu(x, inplace=True)


class InceptionA(nn.Module):
    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 12, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(12, 16, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 16, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(16, 24, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(24, 24, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def _forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_1(x)
        branch5x5 = self.branch5x5_2(branch5x5)
        branch3x3dbl = self.branch3x3dbl_1(x)
        branch3x3dbl = self.branch3x3dbl_2(branch3x3dbl)
        branch3x3dbl = self.branch3x3dbl_3(branch3x3dbl)
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)
        return [branch1x1, branch5x5, branch3x3dbl, branch_pool]

    def forward(self, x):
        return torch.cat(self._forward(x), 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 32, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 16, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(16, 24, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(24, 24, kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 24, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 24, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 24, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 24, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b = self.branch7x7dbl_1(x)
        b = self.branch7x7dbl_2(b)
        b = self.branch7x7dbl_3(b)
        b = self.branch7x7dbl_4(b)
        b = self.branch7x7dbl_5(b)
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch7x7, b, branch_pool], 1)


class InceptionV3Small(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 16, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(16, 16, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(16, 24, kernel_size=3, padding=1)
        self.Mixed_5b = InceptionA(24, pool_features=8)
        self.Mixed_6a = InceptionB(64)
        self.Mixed_6b = InceptionC(120, channels_7x7=16)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.5)
        self.fc = nn.Linear(96, num_classes)

    def _transform_input(self, x):
        x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((x_ch0, x_ch1, x_ch2), 1)

    def forward(self, x):
        x = self._transform_input(x)
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Mixed_5b(x)
        x = self.Mixed_6a(x)
        x = self.Mixed_6b(x)
        x = self.avgpool(x)
        x = self.dropout(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def inception_v3():
    torch.manual_seed(0)
    return _randomize_bn(InceptionV3Small())


# --- torchvision.models.squeezenet (Fire, SqueezeNet 1.1) ---


class Fire(nn.Module):
    def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes):
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)),
             self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(32, 8, 32, 32),
            Fire(64, 8, 32, 32),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 48, 48),
            Fire(96, 16, 48, 48),
        )
        final_conv = nn.Conv2d(96, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.5), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)


def squeezenet():
    torch.manual_seed(0)
    return SqueezeNet().eval()


# --- Xception (Cadene's pretrainedmodels xception.py: SeparableConv2d, Block) ---


class SeparableConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=0,
                 dilation=1, bias=False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding, dilation,
                               groups=in_channels, bias=bias)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, 1, 0, 1, 1, bias=bias)

    def forward(self, x):
        x = self.conv1(x)
        return self.pointwise(x)


class XceptionBlock(nn.Module):
    def __init__(self, in_filters, out_filters, reps, strides=1, start_with_relu=True,
                 grow_first=True):
        super().__init__()
        if out_filters != in_filters or strides != 1:
            self.skip = nn.Conv2d(in_filters, out_filters, 1, stride=strides, bias=False)
            self.skipbn = nn.BatchNorm2d(out_filters)
        else:
            self.skip = None
        rep = []
        filters = in_filters
        if grow_first:
            rep.append(nn.ReLU(inplace=True))
            rep.append(SeparableConv2d(in_filters, out_filters, 3, stride=1, padding=1))
            rep.append(nn.BatchNorm2d(out_filters))
            filters = out_filters
        for _ in range(reps - 1):
            rep.append(nn.ReLU(inplace=True))
            rep.append(SeparableConv2d(filters, filters, 3, stride=1, padding=1))
            rep.append(nn.BatchNorm2d(filters))
        if not grow_first:
            rep.append(nn.ReLU(inplace=True))
            rep.append(SeparableConv2d(in_filters, out_filters, 3, stride=1, padding=1))
            rep.append(nn.BatchNorm2d(out_filters))
        if not start_with_relu:
            rep = rep[1:]
        else:
            rep[0] = nn.ReLU(inplace=False)
        if strides != 1:
            rep.append(nn.MaxPool2d(3, strides, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, inp):
        x = self.rep(inp)
        if self.skip is not None:
            skip = self.skip(inp)
            skip = self.skipbn(skip)
        else:
            skip = inp
        x += skip
        return x


class Xception(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(16, 32, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU(inplace=True)
        self.block1 = XceptionBlock(32, 48, 2, 2, start_with_relu=False, grow_first=True)
        self.block2 = XceptionBlock(48, 64, 2, 2, start_with_relu=True, grow_first=True)
        self.block3 = XceptionBlock(64, 64, 3, 1, start_with_relu=True, grow_first=True)
        self.block12 = XceptionBlock(64, 96, 2, 2, start_with_relu=True, grow_first=False)
        self.conv3 = SeparableConv2d(96, 128, 3, 1, 1)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.last_linear = nn.Linear(128, num_classes)

    def features(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.block1(x)
        x = self.block2(x)
        x = self.block3(x)
        x = self.block12(x)
        return self.relu3(self.bn3(self.conv3(x)))

    def logits(self, features):
        x = F.adaptive_avg_pool2d(features, (1, 1))
        x = x.view(x.size(0), -1)
        return self.last_linear(x)

    def forward(self, x):
        return self.logits(self.features(x))


def xception():
    torch.manual_seed(0)
    return _randomize_bn(Xception())


# --- PSPNet (hszhao/semseg pspnet.py: PPM) on a small dilated backbone ---


class PPM(nn.Module):
    def __init__(self, in_dim, reduction_dim, bins):
        super().__init__()
        self.features = nn.ModuleList([
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_dim, reduction_dim, 1, bias=False),
                          nn.BatchNorm2d(reduction_dim), nn.ReLU(inplace=True))
            for b in bins])

    def forward(self, x):
        x_size = x.size()
        out = [x]
        for f in self.features:
            out.append(F.interpolate(f(x), x_size[2:], mode="bilinear", align_corners=True))
        return torch.cat(out, 1)


class PSPNet(nn.Module):
    def __init__(self, bins=(1, 2, 3, 6), classes=5, zoom_factor=4):
        super().__init__()
        self.zoom_factor = zoom_factor

        def cbr(cin, cout, stride=1, dilation=1):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.layer0 = nn.Sequential(cbr(3, 16, 2), cbr(16, 16), nn.MaxPool2d(3, 2, 1))
        self.layer3 = nn.Sequential(cbr(16, 32), cbr(32, 32, dilation=2))
        self.layer4 = nn.Sequential(cbr(32, 48, dilation=4))
        fea_dim = 48
        self.ppm = PPM(fea_dim, fea_dim // len(bins), bins)
        self.cls = nn.Sequential(
            nn.Conv2d(fea_dim * 2, 32, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.Dropout2d(p=0.1),
            nn.Conv2d(32, classes, kernel_size=1))

    def forward(self, x):
        x_size = x.size()
        h = int((x_size[2] - 1) / 8 * self.zoom_factor + 1)
        w = int((x_size[3] - 1) / 8 * self.zoom_factor + 1)
        x = self.layer0(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.ppm(x)
        x = self.cls(x)
        if self.zoom_factor != 1:
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)
        return x


def pspnet():
    torch.manual_seed(0)
    return _randomize_bn(PSPNet())


# --- CenterNet (xingyizhou/CenterNet: a ResNet-ish body, deconv up, heads; _nms of the heat) ---


class CenterNet(nn.Module):
    def __init__(self, classes=4, head_conv=32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 48, 3, 2, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(inplace=True))
        self.deconv_layers = nn.Sequential(
            nn.ConvTranspose2d(48, 32, 4, 2, 1, output_padding=0, bias=False),
            nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        self.heads = {"hm": classes, "wh": 2, "reg": 2}
        for head, n in self.heads.items():
            fc = nn.Sequential(nn.Conv2d(32, head_conv, 3, padding=1, bias=True),
                               nn.ReLU(inplace=True), nn.Conv2d(head_conv, n, 1, bias=True))
            if "hm" in head:
                fc[-1].bias.data.fill_(-2.19)
            self.__setattr__(head, fc)

    @staticmethod
    def _nms(heat, kernel=3):
        pad = (kernel - 1) // 2
        hmax = F.max_pool2d(heat, (kernel, kernel), stride=1, padding=pad)
        keep = (hmax == heat).float()
        return heat * keep

    def forward(self, x):
        x = self.body(x)
        x = self.deconv_layers(x)
        ret = {head: self.__getattr__(head)(x) for head in self.heads}
        hm = self._nms(ret["hm"].sigmoid_())
        return torch.cat([hm, ret["wh"], ret["reg"]], dim=1)


def centernet():
    torch.manual_seed(0)
    return _randomize_bn(CenterNet())


# --- pix2pix (junyanz/pytorch-CycleGAN-and-pix2pix networks.py: UnetSkipConnectionBlock) ---


class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False,
                 innermost=False, norm_layer=nn.InstanceNorm2d, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        use_bias = norm_layer == nn.InstanceNorm2d
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1,
                             bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                        padding=1)
            down = [downconv]
            up = [uprelu, upconv, nn.Tanh()]
            model = down + [submodule] + up
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1,
                                        bias=use_bias)
            down = [downrelu, downconv]
            up = [uprelu, upconv, upnorm]
            model = down + up
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                        padding=1, bias=use_bias)
            down = [downrelu, downconv, downnorm]
            up = [uprelu, upconv, upnorm]
            model = down + [submodule] + up + ([nn.Dropout(0.5)] if use_dropout else [])
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, num_downs=5, ngf=8):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=True)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block,
                                             outermost=True)

    def forward(self, input):
        return self.model(input)


def pix2pix():
    torch.manual_seed(0)
    return UnetGenerator().eval()


# --- EfficientViT (mit-han-lab/efficientvit: LiteMLA, ReLU linear attention) ---


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k=1, stride=1, groups=1, use_bias=False, norm=True, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=use_bias)
        self.norm = nn.BatchNorm2d(cout) if norm else None
        self.act = act

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class LiteMLA(nn.Module):
    def __init__(self, in_channels, out_channels, dim=8, scales=(5,), eps=1.0e-15):
        super().__init__()
        self.eps = eps
        heads = in_channels // dim
        total_dim = heads * dim
        self.dim = dim
        self.qkv = ConvLayer(in_channels, 3 * total_dim, 1, norm=False)
        self.aggreg = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(3 * total_dim, 3 * total_dim, scale, padding=scale // 2,
                          groups=3 * total_dim, bias=False),
                nn.Conv2d(3 * total_dim, 3 * total_dim, 1, groups=3 * heads, bias=False))
            for scale in scales])
        self.kernel_func = nn.ReLU(inplace=False)
        self.proj = ConvLayer(total_dim * (1 + len(scales)), out_channels, 1)

    def relu_linear_att(self, qkv):
        B, _, H, W = list(qkv.size())
        qkv = torch.reshape(qkv, (B, -1, 3 * self.dim, H * W))
        qkv = torch.transpose(qkv, -1, -2)
        q, k, v = (qkv[..., 0:self.dim], qkv[..., self.dim:2 * self.dim],
                   qkv[..., 2 * self.dim:])
        q = self.kernel_func(q)
        k = self.kernel_func(k)
        trans_k = k.transpose(-1, -2)
        v = F.pad(v, (0, 1), mode="constant", value=1)
        kv = torch.matmul(trans_k, v)
        out = torch.matmul(q, kv)
        out = out[..., :-1] / (out[..., -1:] + self.eps)
        out = torch.transpose(out, -1, -2)
        return torch.reshape(out, (B, -1, H, W))

    def forward(self, x):
        qkv = self.qkv(x)
        multi_scale_qkv = [qkv]
        for op in self.aggreg:
            multi_scale_qkv.append(op(qkv))
        multi_scale_qkv = torch.cat(multi_scale_qkv, dim=1)
        out = self.relu_linear_att(multi_scale_qkv)
        return self.proj(out)


class MBConv(nn.Module):
    def __init__(self, cin, cout, expand=4):
        super().__init__()
        mid = cin * expand
        self.inverted_conv = ConvLayer(cin, mid, 1, use_bias=True, norm=False,
                                       act=nn.Hardswish())
        self.depth_conv = ConvLayer(mid, mid, 3, groups=mid, use_bias=True, norm=False,
                                    act=nn.Hardswish())
        self.point_conv = ConvLayer(mid, cout, 1)

    def forward(self, x):
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class EfficientViTBlock(nn.Module):
    def __init__(self, c, dim=8):
        super().__init__()
        self.context_module = LiteMLA(c, c, dim=dim)
        self.local_module = MBConv(c, c)

    def forward(self, x):
        x = self.context_module(x) + x
        return self.local_module(x) + x


class EfficientViT(nn.Module):
    def __init__(self, num_classes=10, c=32):
        super().__init__()
        self.stem = ConvLayer(3, 16, 3, stride=2, act=nn.Hardswish())
        self.down = MBConv(16, c)
        self.pool = nn.AvgPool2d(2)
        self.blocks = nn.Sequential(EfficientViTBlock(c), EfficientViTBlock(c))
        self.head = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.pool(self.down(x))
        x = self.blocks(x)
        x = torch.mean(x, dim=(2, 3))
        return self.head(x)


def efficientvit():
    torch.manual_seed(0)
    return _randomize_bn(EfficientViT())


# --- MobileViT v2 (apple/ml-cvnets: LinearSelfAttention, unfolding by reshape as timm) ---


class LinearSelfAttention(nn.Module):
    def __init__(self, embed_dim):
        super().__init__()
        self.embed_dim = embed_dim
        self.qkv_proj = nn.Conv2d(embed_dim, 1 + 2 * embed_dim, 1, bias=True)
        self.out_proj = nn.Conv2d(embed_dim, embed_dim, 1, bias=True)

    def forward(self, x):
        # x: [B, C, P, N]
        qkv = self.qkv_proj(x)
        query, key, value = qkv.split([1, self.embed_dim, self.embed_dim], dim=1)
        context_scores = F.softmax(query, dim=-1)
        context_vector = key * context_scores
        context_vector = context_vector.sum(dim=-1, keepdim=True)
        out = F.relu(value) * context_vector.expand_as(value)
        return self.out_proj(out)


class LinearTransformerBlock(nn.Module):
    def __init__(self, embed_dim, ffn_dim):
        super().__init__()
        self.pre_norm_attn = nn.Sequential(nn.GroupNorm(1, embed_dim),
                                           LinearSelfAttention(embed_dim))
        self.pre_norm_ffn = nn.Sequential(
            nn.GroupNorm(1, embed_dim), nn.Conv2d(embed_dim, ffn_dim, 1), nn.SiLU(),
            nn.Conv2d(ffn_dim, embed_dim, 1))

    def forward(self, x):
        x = x + self.pre_norm_attn(x)
        return x + self.pre_norm_ffn(x)


class MobileVitV2Block(nn.Module):
    def __init__(self, cin, d, patch=2):
        super().__init__()
        self.patch_h = self.patch_w = patch
        self.conv_kxk = nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                                      nn.BatchNorm2d(cin), nn.SiLU())
        self.conv_1x1 = nn.Conv2d(cin, d, 1, bias=False)
        self.transformer = nn.Sequential(LinearTransformerBlock(d, 2 * d),
                                         LinearTransformerBlock(d, 2 * d), nn.GroupNorm(1, d))
        self.conv_proj = nn.Sequential(nn.Conv2d(d, cin, 1, bias=False), nn.BatchNorm2d(cin))

    def forward(self, x):
        B, C, H, W = x.shape
        ph, pw = self.patch_h, self.patch_w
        nh, nw = H // ph, W // pw
        x = self.conv_kxk(x)
        x = self.conv_1x1(x)
        C = x.shape[1]
        x = x.reshape(B, C, nh, ph, nw, pw).permute(0, 1, 3, 5, 2, 4)
        x = x.reshape(B, C, -1, nh * nw)
        x = self.transformer(x)
        x = x.reshape(B, C, ph, pw, nh, nw).permute(0, 1, 4, 2, 5, 3)
        x = x.reshape(B, C, nh * ph, nw * pw)
        return self.conv_proj(x)


class MobileViTV2(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.SiLU())
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32),
                                  nn.SiLU())
        self.mvit = MobileVitV2Block(32, 24)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.mvit(self.down(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))


def mobilevitv2():
    torch.manual_seed(0)
    return _randomize_bn(MobileViTV2())


# --- ResMLP (facebookresearch/deit resmlp_models.py: Affine, layers_scale_mlp_blocks) ---


class Affine(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return self.alpha * x + self.beta


class ResMLPBlock(nn.Module):
    def __init__(self, dim, num_patches, init_values=1e-1):
        super().__init__()
        self.norm1 = Affine(dim)
        self.attn = nn.Linear(num_patches, num_patches)
        self.norm2 = Affine(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma_1 = nn.Parameter(init_values * torch.ones(dim), requires_grad=True)
        self.gamma_2 = nn.Parameter(init_values * torch.ones(dim), requires_grad=True)

    def forward(self, x):
        x = x + self.gamma_1 * self.attn(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class ResMLP(nn.Module):
    def __init__(self, img_size=32, patch_size=8, dim=48, depth=3, num_classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch_size, patch_size)
        num_patches = (img_size // patch_size) ** 2
        self.blocks = nn.ModuleList([ResMLPBlock(dim, num_patches) for _ in range(depth)])
        self.norm = Affine(dim)
        self.head = nn.Linear(dim, num_classes)
        g = torch.Generator().manual_seed(2)
        with torch.no_grad():  # trained-looking affines
            for m in self.modules():
                if isinstance(m, Affine):
                    m.alpha.copy_(torch.rand(dim, generator=g) * 0.5 + 0.75)
                    m.beta.copy_(torch.rand(dim, generator=g) * 0.2 - 0.1)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        x = x.mean(dim=1).reshape(x.shape[0], 1, -1)
        return self.head(x[:, 0])


def resmlp():
    torch.manual_seed(0)
    return ResMLP().eval()


# --- Capsule network (gram-ai/capsule-networks: squash, dynamic routing) ---


def squash(tensor, dim=-1):
    squared_norm = (tensor ** 2).sum(dim=dim, keepdim=True)
    scale = squared_norm / (1 + squared_norm)
    return scale * tensor / torch.sqrt(squared_norm)


class CapsNet(nn.Module):
    def __init__(self, num_classes=5, prim_caps=8, prim_dim=8, out_dim=8, routing=3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=5, stride=1)
        self.primary = nn.Conv2d(32, prim_caps * prim_dim, kernel_size=5, stride=2)
        self.prim_caps, self.prim_dim = prim_caps, prim_dim
        self.num_iterations = routing
        n_route = prim_caps * 4 * 4
        self.route_weights = nn.Parameter(torch.randn(num_classes, n_route, prim_dim,
                                                            out_dim))

    def forward(self, x):
        x = F.relu(self.conv1(x), inplace=True)
        u = self.primary(x)  # (B, caps * dim, 4, 4)
        B = u.size(0)
        u = u.view(B, self.prim_caps, self.prim_dim, -1).permute(0, 1, 3, 2)
        u = squash(u.reshape(B, -1, self.prim_dim))  # (B, routes, dim)
        priors = u[None, :, :, None, :] @ self.route_weights[:, None, :, :, :]
        logits = torch.zeros(*priors.size(), device=x.device)
        for i in range(self.num_iterations):
            probs = F.softmax(logits, dim=2)
            outputs = squash((probs * priors).sum(dim=2, keepdim=True))
            if i != self.num_iterations - 1:
                delta_logits = (priors * outputs).sum(dim=-1, keepdim=True)
                logits = logits + delta_logits
        outputs = outputs.squeeze(2).squeeze(2).transpose(0, 1)  # (B, classes, out_dim)
        return (outputs ** 2).sum(dim=-1) ** 0.5


def capsnet():
    torch.manual_seed(0)
    return CapsNet().eval()


# --- HiFi-GAN (jik876/hifi-gan models.py: Generator, ResBlock1, weight_norm) ---

LRELU_SLOPE = 0.1


def get_padding(kernel_size, dilation=1):
    return int((kernel_size * dilation - dilation) / 2)


def init_weights(m, mean=0.0, std=0.01):
    if m.__class__.__name__.find("Conv") != -1:
        m.weight.data.normal_(mean, std)


class ResBlock1(nn.Module):
    def __init__(self, channels, kernel_size=3, dilation=(1, 3, 5)):
        super().__init__()
        wn = nn.utils.weight_norm
        self.convs1 = nn.ModuleList([
            wn(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                         padding=get_padding(kernel_size, d))) for d in dilation])
        self.convs2 = nn.ModuleList([
            wn(nn.Conv1d(channels, channels, kernel_size, 1, dilation=1,
                         padding=get_padding(kernel_size, 1))) for _ in dilation])

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = F.leaky_relu(x, LRELU_SLOPE)
            xt = c1(xt)
            xt = F.leaky_relu(xt, LRELU_SLOPE)
            xt = c2(xt)
            x = xt + x
        return x


class HiFiGAN(nn.Module):
    def __init__(self, n_mels=16, ch=32, rates=(4, 4), kernels=(8, 8),
                 rb_kernels=(3, 7), rb_dilations=((1, 3, 5), (1, 3, 5))):
        super().__init__()
        wn = nn.utils.weight_norm
        self.num_kernels = len(rb_kernels)
        self.num_upsamples = len(rates)
        self.conv_pre = wn(nn.Conv1d(n_mels, ch, 7, 1, padding=3))
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(rates, kernels, strict=True)):
            self.ups.append(wn(nn.ConvTranspose1d(ch // (2 ** i), ch // (2 ** (i + 1)), k, u,
                                                  padding=(k - u) // 2)))
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            c = ch // (2 ** (i + 1))
            for k, d in zip(rb_kernels, rb_dilations, strict=True):
                self.resblocks.append(ResBlock1(c, k, d))
        self.conv_post = wn(nn.Conv1d(c, 1, 7, 1, padding=3))
        self.ups.apply(lambda m: init_weights(m, std=0.1))
        self.conv_post.apply(lambda m: init_weights(m, std=0.1))

    def forward(self, x):
        x = self.conv_pre(x)
        for i in range(self.num_upsamples):
            x = F.leaky_relu(x, LRELU_SLOPE)
            x = self.ups[i](x)
            xs = None
            for j in range(self.num_kernels):
                if xs is None:
                    xs = self.resblocks[i * self.num_kernels + j](x)
                else:
                    xs += self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        x = F.leaky_relu(x)
        x = self.conv_post(x)
        return torch.tanh(x)


def hifigan():
    torch.manual_seed(0)
    return HiFiGAN().eval()


# --- Conv-TasNet (kaituoxu/Conv-TasNet conv_tasnet.py: gLN, TemporalBlock, masks) ---

EPS = 1e-8


class GlobalLayerNorm(nn.Module):
    def __init__(self, channel_size):
        super().__init__()
        self.gamma = nn.Parameter(torch.Tensor(1, channel_size, 1))
        self.beta = nn.Parameter(torch.Tensor(1, channel_size, 1))
        self.gamma.data.fill_(1)
        self.beta.data.zero_()

    def forward(self, y):
        mean = y.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        var = (torch.pow(y - mean, 2)).mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        return self.gamma * (y - mean) / torch.pow(var + EPS, 0.5) + self.beta


class ChannelwiseLayerNorm(nn.Module):
    def __init__(self, channel_size):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channel_size, 1))
        self.beta = nn.Parameter(torch.zeros(1, channel_size, 1))

    def forward(self, y):
        mean = torch.mean(y, dim=1, keepdim=True)
        var = torch.var(y, dim=1, keepdim=True, unbiased=False)
        return self.gamma * (y - mean) / torch.pow(var + EPS, 0.5) + self.beta


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, cin, cout, kernel_size, dilation):
        super().__init__()
        padding = (kernel_size - 1) * dilation // 2
        self.net = nn.Sequential(
            nn.Conv1d(cin, cin, kernel_size, 1, padding, dilation, groups=cin, bias=False),
            nn.PReLU(), GlobalLayerNorm(cin), nn.Conv1d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.net(x)


class TemporalBlock(nn.Module):
    def __init__(self, cin, cout, kernel_size, dilation):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.PReLU(),
                                 GlobalLayerNorm(cout),
                                 DepthwiseSeparableConv(cout, cin, kernel_size, dilation))

    def forward(self, x):
        return self.net(x) + x


class ConvTasNet(nn.Module):
    def __init__(self, N=32, L=16, B=16, H=32, P=3, X=3, R=1, C=2):
        super().__init__()
        self.N, self.L, self.C = N, L, C
        self.conv1d_U = nn.Conv1d(1, N, kernel_size=L, stride=L // 2, bias=False)
        blocks = [TemporalBlock(B, H, P, 2 ** x) for _ in range(R) for x in range(X)]
        self.network = nn.Sequential(ChannelwiseLayerNorm(N), nn.Conv1d(N, B, 1, bias=False),
                                     nn.Sequential(*blocks), nn.Conv1d(B, C * N, 1, bias=False))
        self.basis_signals = nn.Linear(N, L, bias=False)

    def forward(self, mixture):
        mixture = torch.unsqueeze(mixture, 1)  # [M, 1, T]
        mixture_w = F.relu(self.conv1d_U(mixture))  # [M, N, K]
        M, N, K = mixture_w.size()
        score = self.network(mixture_w).view(M, self.C, N, K)
        est_mask = torch.sigmoid(score)
        source_w = torch.unsqueeze(mixture_w, 1) * est_mask  # [M, C, N, K]
        source_w = torch.transpose(source_w, 2, 3)  # [M, C, K, N]
        est_source = self.basis_signals(source_w)  # [M, C, K, L]
        # overlap_and_add with hop L // 2: the two halves of each frame, shifted
        half = self.L // 2
        first, second = est_source[..., :half], est_source[..., half:]
        first = F.pad(first, (0, 0, 0, 1))
        second = F.pad(second, (0, 0, 1, 0))
        return (first + second).reshape(M, self.C, -1)


def convtasnet():
    torch.manual_seed(0)
    return ConvTasNet().eval()


# --- CRNN (meijieru/crnn.pytorch: conv stack, BidirectionalLSTM, log_softmax over classes) ---


class BidirectionalLSTM(nn.Module):
    def __init__(self, n_in, n_hidden, n_out):
        super().__init__()
        self.rnn = nn.LSTM(n_in, n_hidden, bidirectional=True)
        self.embedding = nn.Linear(n_hidden * 2, n_out)

    def forward(self, x):
        recurrent, _ = self.rnn(x)
        T, b, h = recurrent.size()
        t_rec = recurrent.view(T * b, h)
        output = self.embedding(t_rec)
        return output.view(T, b, -1)


class CRNN(nn.Module):
    def __init__(self, nc=1, nclass=11, nh=16):
        super().__init__()
        ks, ps, ss, nm = [3, 3, 3, 3], [1, 1, 1, 1], [1, 1, 1, 1], [16, 32, 32, 32]
        cnn = nn.Sequential()

        def conv_relu(i, batch_normalization=False):
            n_in = nc if i == 0 else nm[i - 1]
            cnn.add_module(f"conv{i}", nn.Conv2d(n_in, nm[i], ks[i], ss[i], ps[i]))
            if batch_normalization:
                cnn.add_module(f"batchnorm{i}", nn.BatchNorm2d(nm[i]))
            cnn.add_module(f"relu{i}", nn.ReLU(True))

        conv_relu(0)
        cnn.add_module("pooling0", nn.MaxPool2d(2, 2))  # 16 x 32
        conv_relu(1)
        cnn.add_module("pooling1", nn.MaxPool2d(2, 2))  # 8 x 16
        conv_relu(2, True)
        cnn.add_module("pooling2", nn.MaxPool2d((2, 2), (2, 1), (0, 1)))  # 4 x 17
        conv_relu(3, True)
        cnn.add_module("pooling3", nn.MaxPool2d((4, 1), (4, 1)))  # 1 x 17
        self.cnn = cnn
        self.rnn = nn.Sequential(BidirectionalLSTM(nm[-1], nh, nh),
                                 BidirectionalLSTM(nh, nh, nclass))

    def forward(self, x):
        conv = self.cnn(x)
        _b, _c, h, _w = conv.size()
        assert h == 1, "the height of conv must be 1"
        conv = conv.squeeze(2)
        conv = conv.permute(2, 0, 1)  # [w, b, c]
        output = self.rnn(conv)
        output = F.log_softmax(output, dim=2)
        return output.permute(1, 0, 2)  # batch first for the command line


def crnn():
    torch.manual_seed(0)
    return _randomize_bn(CRNN())


NETWORKS = (
    Network("unet3d", "wolny/pytorch-3dunet's UNet3D (GroupNorm-Conv3d-ReLU 'gcr' SingleConvs, "
            "MaxPool3d, its default nearest F.interpolate to the skip's size, cat with the "
            "encoder features from a list, final Softmax over classes) on 8^3 volumes", "unet3d",
            floats(4, 1, 8, 8, 8)),
    Network("unet3d_deconv", "the same UNet3D with upsample='deconv' (ConvTranspose3d k3 s2 "
            "output_padding 1)", "unet3d_deconv", floats(4, 1, 8, 8, 8)),
    Network("r2plus1d", "torchvision's R(2+1)D video ResNet (Conv2Plus1D: Conv3d (1,3,3) + "
            "BatchNorm3d + ReLU + Conv3d (3,1,1), strided 1x1x1 downsample, in-place residual "
            "add, AdaptiveAvgPool3d)", "r2plus1d", floats(4, 3, 4, 16, 16)),
    Network("inception_v3", "torchvision's Inception v3 (transform_input by channel, "
            "BasicConv2d eps 0.001, InceptionA/B/C: 5x5, double 3x3, factorized 1x7 / 7x1, "
            "avg_pool2d(3, 1, 1) and max-pool branches concatenated)", "inception_v3",
            floats(8, 3, 40, 40)),
    Network("squeezenet", "torchvision's SqueezeNet 1.1 (Fire: squeeze 1x1, expand 1x1 | 3x3 "
            "cat, MaxPool2d ceil_mode=True, conv classifier + AdaptiveAvgPool2d + flatten)",
            "squeezenet", floats(8, 3, 32, 32)),
    Network("xception", "Cadene's Xception (SeparableConv2d depthwise + pointwise, blocks with "
            "strided 1x1 conv-BN skips, MaxPool2d(3, 2, 1), in-place x += skip, grow_first "
            "False)", "xception", floats(8, 3, 32, 32)),
    Network("pspnet", "hszhao/semseg's PSPNet (dilated convs, PPM: AdaptiveAvgPool2d to 1, 2, "
            "3, 6, conv-BN-ReLU, bilinear align_corners upsampling, cat; zoom_factor upsample)",
            "pspnet", floats(8, 3, 33, 33)),
    Network("centernet", "xingyizhou's CenterNet (deconv up, hm / wh / reg heads, sigmoid_, "
            "_nms by max_pool2d(3, 1, 1) == heat), heads concatenated", "centernet",
            floats(8, 3, 32, 32)),
    Network("pix2pix", "junyanz's pix2pix UnetGenerator (recursive UnetSkipConnectionBlock: "
            "Conv2d k4 s2, LeakyReLU(0.2), InstanceNorm2d, ConvTranspose2d, cat skips, Tanh)",
            "pix2pix", floats(8, 3, 32, 32)),
    Network("efficientvit", "mit-han-lab's EfficientViT (LiteMLA: multi-scale qkv by grouped "
            "5x5 convs, ReLU linear attention with F.pad(v, value=1) and out[..., :-1] / "
            "(out[..., -1:] + eps), MBConv hardswish)", "efficientvit", floats(8, 3, 32, 32)),
    Network("mobilevitv2", "apple ml-cvnets' MobileViT v2 (LinearSelfAttention: qkv split "
            "[1, d, d], softmax over patches, context sum, relu(value) * expand_as, "
            "GroupNorm(1) pre-norms, unfolding by reshape/permute)", "mobilevitv2",
            floats(8, 3, 32, 32)),
    Network("resmlp", "facebookresearch's ResMLP (Affine alpha * x + beta, cross-patch Linear "
            "on transposed tokens, layer scale gamma, GELU MLP)", "resmlp",
            floats(8, 3, 32, 32)),
    Network("capsnet", "gram-ai's capsule network (primary capsules by conv, squash, priors by "
            "broadcast matmul with route weights, three dynamic-routing iterations of "
            "softmax + squash, class lengths)", "capsnet", floats(8, 1, 16, 16)),
    Network("hifigan", "jik876's HiFi-GAN generator (weight_norm Conv1d / ConvTranspose1d "
            "upsampling, leaky_relu 0.1, ResBlock1 multi-receptive-field fusion averaged, "
            "tanh) from a mel spectrogram", "hifigan", floats(4, 16, 16)),
    Network("convtasnet", "kaituoxu's Conv-TasNet (Conv1d encoder, cLN, TCN of 1x1 conv + "
            "PReLU + gLN + dilated depthwise conv, sigmoid masks, basis Linear decoder, "
            "overlap-add by halves)", "convtasnet", floats(4, 256)),
    Network("crnn", "meijieru's CRNN (conv-ReLU stack with (2, 1) pools to height 1, "
            "sequence-first BidirectionalLSTM x 2, log_softmax over classes)", "crnn",
            floats(8, 1, 32, 64)),
)

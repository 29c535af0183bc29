"""Vision, graph, point-cloud and audio networks written by hand (sixth round), each the way its
reference code writes it: davidtvs/PyTorch-ENet (asymmetric 5x1 / 1x5 convs, PReLU, max pooling
with return_indices and MaxUnpool2d, zero channel padding by torch.zeros + cat), Tramac's
Fast-SCNN (learning to downsample, linear bottlenecks, pyramid pooling, feature fusion),
4uiiurz1's UNet++ (nested skips, bilinear align_corners upsampling), LeeJunHyun's Attention U-Net
(additive attention gates), swz30's Restormer (MDTA: transposed attention, softmax over channels x
channels; GDFN gated depthwise feed-forward; hand-written LayerNorm over einops to_3d / to_4d),
megvii's NAFNet (LayerNorm2d as a torch.autograd.Function, SimpleGate, simplified channel
attention, PixelShuffle decoders), rosinality's VQ-VAE (encoder and codebook quantizer: distances,
argmax, F.embedding, straight-through), tianzhi0549's FCOS head (GroupNorm towers, Scale modules,
exp of the scaled box regression, centerness), Megvii's YOLOX (Focus space-to-depth slicing, CSP,
SPP, decoupled heads, grid decoding written in place), IBM's CrossViT (two patch sizes, cross
attention from one branch's CLS token), Meituan's Twins-SVT (locally grouped attention, global
sub-sampled attention, a PEG position conv), pyGAT's graph attention and a mean-aggregator
GraphSAGE on a constant adjacency, yanx27's PointNet++ set abstraction (index_points by fancy
indexing with constant sampling / grouping indices), WangYueFW's DGCNN (edge conv on the k-NN
it computes by topk), TaoRuijie's ECAPA-TDNN (SE-Res2Net blocks, attentive statistics pooling),
qiuqiangkong's PANNs CNN14 (log-mel in, bn0 over mel bins, max + mean pooling), NVIDIA's
Tacotron 2 postnet and a Deep Complex U-Net for speech enhancement (complex convs as pairs of real
convs on real / imaginary parts, a bounded complex ratio mask) and DCCRN's complex U-Net (the
parts as the two halves of the channels). Small, random weights."""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from benchmarks.handwritten import Network, floats
from benchmarks.handwritten.vision import _randomize_bn

# --- davidtvs/PyTorch-ENet (models/enet.py) ---


class InitialBlock(nn.Module):
    def __init__(self, in_channels, out_channels, bias=False, relu=True):
        super().__init__()
        activation = nn.ReLU if relu else nn.PReLU
        self.main_branch = nn.Conv2d(in_channels, out_channels - 3, kernel_size=3, stride=2,
                                     padding=1, bias=bias)
        self.ext_branch = nn.MaxPool2d(3, stride=2, padding=1)
        self.batch_norm = nn.BatchNorm2d(out_channels)
        self.out_activation = activation()

    def forward(self, x):
        main = self.main_branch(x)
        ext = self.ext_branch(x)
        out = torch.cat((main, ext), 1)
        out = self.batch_norm(out)
        return self.out_activation(out)


class RegularBottleneck(nn.Module):
    def __init__(self, channels, internal_ratio=4, kernel_size=3, padding=0, dilation=1,
                 asymmetric=False, dropout_prob=0, bias=False, relu=True):
        super().__init__()
        internal_channels = channels // internal_ratio
        activation = nn.ReLU if relu else nn.PReLU
        self.ext_conv1 = nn.Sequential(
            nn.Conv2d(channels, internal_channels, kernel_size=1, stride=1, bias=bias),
            nn.BatchNorm2d(internal_channels), activation())
        if asymmetric:
            self.ext_conv2 = nn.Sequential(
                nn.Conv2d(internal_channels, internal_channels, kernel_size=(kernel_size, 1),
                          stride=1, padding=(padding, 0), dilation=dilation, bias=bias),
                nn.BatchNorm2d(internal_channels), activation(),
                nn.Conv2d(internal_channels, internal_channels, kernel_size=(1, kernel_size),
                          stride=1, padding=(0, padding), dilation=dilation, bias=bias),
                nn.BatchNorm2d(internal_channels), activation())
        else:
            self.ext_conv2 = nn.Sequential(
                nn.Conv2d(internal_channels, internal_channels, kernel_size=kernel_size,
                          stride=1, padding=padding, dilation=dilation, bias=bias),
                nn.BatchNorm2d(internal_channels), activation())
        self.ext_conv3 = nn.Sequential(
            nn.Conv2d(internal_channels, channels, kernel_size=1, stride=1, bias=bias),
            nn.BatchNorm2d(channels), activation())
        self.ext_regul = nn.Dropout2d(p=dropout_prob)
        self.out_activation = activation()

    def forward(self, x):
        main = x
        ext = self.ext_conv1(x)
        ext = self.ext_conv2(ext)
        ext = self.ext_conv3(ext)
        ext = self.ext_regul(ext)
        out = main + ext
        return self.out_activation(out)


class DownsamplingBottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, internal_ratio=4, return_indices=False,
                 dropout_prob=0, bias=False, relu=True):
        super().__init__()
        self.return_indices = return_indices
        internal_channels = in_channels // internal_ratio
        activation = nn.ReLU if relu else nn.PReLU
        self.main_max1 = nn.MaxPool2d(2, stride=2, return_indices=return_indices)
        self.ext_conv1 = nn.Sequential(
            nn.Conv2d(in_channels, internal_channels, kernel_size=2, stride=2, bias=bias),
            nn.BatchNorm2d(internal_channels), activation())
        self.ext_conv2 = nn.Sequential(
            nn.Conv2d(internal_channels, internal_channels, kernel_size=3, stride=1, padding=1,
                      bias=bias),
            nn.BatchNorm2d(internal_channels), activation())
        self.ext_conv3 = nn.Sequential(
            nn.Conv2d(internal_channels, out_channels, kernel_size=1, stride=1, bias=bias),
            nn.BatchNorm2d(out_channels), activation())
        self.ext_regul = nn.Dropout2d(p=dropout_prob)
        self.out_activation = activation()

    def forward(self, x):
        if self.return_indices:
            main, max_indices = self.main_max1(x)
        else:
            main = self.main_max1(x)
        ext = self.ext_conv1(x)
        ext = self.ext_conv2(ext)
        ext = self.ext_conv3(ext)
        ext = self.ext_regul(ext)
        n, ch_ext, h, w = ext.size()
        ch_main = main.size()[1]
        padding = torch.zeros(n, ch_ext - ch_main, h, w)
        if main.is_cuda:
            padding = padding.cuda()
        main = torch.cat((main, padding), 1)
        out = main + ext
        return self.out_activation(out), max_indices


class UpsamplingBottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, internal_ratio=4, dropout_prob=0, bias=False,
                 relu=True):
        super().__init__()
        internal_channels = in_channels // internal_ratio
        activation = nn.ReLU if relu else nn.PReLU
        self.main_conv1 = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias),
            nn.BatchNorm2d(out_channels))
        self.main_unpool1 = nn.MaxUnpool2d(kernel_size=2)
        self.ext_conv1 = nn.Sequential(
            nn.Conv2d(in_channels, internal_channels, kernel_size=1, bias=bias),
            nn.BatchNorm2d(internal_channels), activation())
        self.ext_tconv1 = nn.ConvTranspose2d(internal_channels, internal_channels, kernel_size=2,
                                             stride=2, bias=bias)
        self.ext_tconv1_bnorm = nn.BatchNorm2d(internal_channels)
        self.ext_tconv1_activation = activation()
        self.ext_conv2 = nn.Sequential(
            nn.Conv2d(internal_channels, out_channels, kernel_size=1, bias=bias),
            nn.BatchNorm2d(out_channels))
        self.ext_regul = nn.Dropout2d(p=dropout_prob)
        self.out_activation = activation()

    def forward(self, x, max_indices, output_size):
        main = self.main_conv1(x)
        main = self.main_unpool1(main, max_indices, output_size=output_size)
        ext = self.ext_conv1(x)
        ext = self.ext_tconv1(ext, output_size=output_size)
        ext = self.ext_tconv1_bnorm(ext)
        ext = self.ext_tconv1_activation(ext)
        ext = self.ext_conv2(ext)
        ext = self.ext_regul(ext)
        out = main + ext
        return self.out_activation(out)


class ENet(nn.Module):
    """ENet with stages 1, 2 (regular, dilated, asymmetric 5x5) and the decoder stages 4, 5."""

    def __init__(self, num_classes=4, encoder_relu=False, decoder_relu=True):
        super().__init__()
        self.initial_block = InitialBlock(3, 16, relu=encoder_relu)
        self.downsample1_0 = DownsamplingBottleneck(16, 32, return_indices=True,
                                                    dropout_prob=0.01, relu=encoder_relu)
        self.regular1_1 = RegularBottleneck(32, padding=1, dropout_prob=0.01, relu=encoder_relu)
        self.downsample2_0 = DownsamplingBottleneck(32, 64, return_indices=True,
                                                    dropout_prob=0.1, relu=encoder_relu)
        self.regular2_1 = RegularBottleneck(64, padding=1, dropout_prob=0.1, relu=encoder_relu)
        self.dilated2_2 = RegularBottleneck(64, dilation=2, padding=2, dropout_prob=0.1,
                                            relu=encoder_relu)
        self.asymmetric2_3 = RegularBottleneck(64, kernel_size=5, padding=2, asymmetric=True,
                                               dropout_prob=0.1, relu=encoder_relu)
        self.dilated2_4 = RegularBottleneck(64, dilation=4, padding=4, dropout_prob=0.1,
                                            relu=encoder_relu)
        self.upsample4_0 = UpsamplingBottleneck(64, 32, dropout_prob=0.1, relu=decoder_relu)
        self.regular4_1 = RegularBottleneck(32, padding=1, dropout_prob=0.1, relu=decoder_relu)
        self.upsample5_0 = UpsamplingBottleneck(32, 16, dropout_prob=0.1, relu=decoder_relu)
        self.regular5_1 = RegularBottleneck(16, padding=1, dropout_prob=0.1, relu=decoder_relu)
        self.transposed_conv = nn.ConvTranspose2d(16, num_classes, kernel_size=3, stride=2,
                                                  padding=1, bias=False)

    def forward(self, x):
        input_size = x.size()
        x = self.initial_block(x)
        stage1_input_size = x.size()
        x, max_indices1_0 = self.downsample1_0(x)
        x = self.regular1_1(x)
        stage2_input_size = x.size()
        x, max_indices2_0 = self.downsample2_0(x)
        x = self.regular2_1(x)
        x = self.dilated2_2(x)
        x = self.asymmetric2_3(x)
        x = self.dilated2_4(x)
        x = self.upsample4_0(x, max_indices2_0, output_size=stage2_input_size)
        x = self.regular4_1(x)
        x = self.upsample5_0(x, max_indices1_0, output_size=stage1_input_size)
        x = self.regular5_1(x)
        x = self.transposed_conv(x, output_size=input_size)
        return x


def enet():
    torch.manual_seed(0)
    return _randomize_bn(ENet())


# --- Tramac/Fast-SCNN-pytorch (models/fast_scnn.py) ---


class _ConvBNReLU(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(True))

    def forward(self, x):
        return self.conv(x)


class _DSConv(nn.Module):
    def __init__(self, dw_channels, out_channels, stride=1):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(dw_channels, dw_channels, 3, stride, 1, groups=dw_channels, bias=False),
            nn.BatchNorm2d(dw_channels), nn.ReLU(True),
            nn.Conv2d(dw_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(True))

    def forward(self, x):
        return self.conv(x)


class _DWConv(nn.Module):
    def __init__(self, dw_channels, out_channels, stride=1):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(dw_channels, out_channels, 3, stride, 1, groups=dw_channels, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(True))

    def forward(self, x):
        return self.conv(x)


class LinearBottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, t=6, stride=2):
        super().__init__()
        self.use_shortcut = stride == 1 and in_channels == out_channels
        self.block = nn.Sequential(
            _ConvBNReLU(in_channels, in_channels * t, 1),
            _DWConv(in_channels * t, in_channels * t, stride),
            nn.Conv2d(in_channels * t, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.block(x)
        if self.use_shortcut:
            out = x + out
        return out


class PyramidPooling(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        inter_channels = int(in_channels / 4)
        self.conv1 = _ConvBNReLU(in_channels, inter_channels, 1)
        self.conv2 = _ConvBNReLU(in_channels, inter_channels, 1)
        self.conv3 = _ConvBNReLU(in_channels, inter_channels, 1)
        self.conv4 = _ConvBNReLU(in_channels, inter_channels, 1)
        self.out = _ConvBNReLU(in_channels * 2, out_channels, 1)

    def pool(self, x, size):
        avgpool = nn.AdaptiveAvgPool2d(size)
        return avgpool(x)

    def upsample(self, x, size):
        return F.interpolate(x, size, mode="bilinear", align_corners=True)

    def forward(self, x):
        size = x.size()[2:]
        feat1 = self.upsample(self.conv1(self.pool(x, 1)), size)
        feat2 = self.upsample(self.conv2(self.pool(x, 2)), size)
        feat3 = self.upsample(self.conv3(self.pool(x, 3)), size)
        feat4 = self.upsample(self.conv4(self.pool(x, 6)), size)
        x = torch.cat([x, feat1, feat2, feat3, feat4], dim=1)
        return self.out(x)


class FastSCNN(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.learning_to_downsample = nn.Sequential(
            _ConvBNReLU(3, 16, 3, 2), _DSConv(16, 24, 2), _DSConv(24, 32, 2))
        self.bottleneck1 = nn.Sequential(LinearBottleneck(32, 32, 6, 2),
                                         LinearBottleneck(32, 32, 6, 1))
        self.bottleneck2 = nn.Sequential(LinearBottleneck(32, 48, 6, 2),
                                         LinearBottleneck(48, 48, 6, 1))
        self.bottleneck3 = LinearBottleneck(48, 64, 6, 1)
        self.ppm = PyramidPooling(64, 64)
        self.dwconv = _DWConv(64, 64, 1)
        self.conv_lower_res = nn.Sequential(nn.Conv2d(64, 64, 1), nn.BatchNorm2d(64))
        self.conv_higher_res = nn.Sequential(nn.Conv2d(32, 64, 1), nn.BatchNorm2d(64))
        self.classifier = nn.Sequential(_DSConv(64, 64, 1), _DSConv(64, 64, 1),
                                        nn.Dropout(0.1), nn.Conv2d(64, num_classes, 1))

    def forward(self, x):
        size = x.size()[2:]
        higher_res_features = self.learning_to_downsample(x)
        x = self.bottleneck3(self.bottleneck2(self.bottleneck1(higher_res_features)))
        lower_res_feature = self.ppm(x)
        # FeatureFusionModule: scale_factor=4 upsampling of the low-resolution branch
        lower = F.interpolate(lower_res_feature, scale_factor=4, mode="bilinear",
                              align_corners=True)
        lower = self.conv_lower_res(self.dwconv(lower))
        higher = self.conv_higher_res(higher_res_features)
        x = F.relu(higher + lower)
        x = self.classifier(x)
        return F.interpolate(x, size, mode="bilinear", align_corners=True)


def fast_scnn():
    torch.manual_seed(0)
    return _randomize_bn(FastSCNN())


# --- 4uiiurz1/pytorch-nested-unet (archs.py: VGGBlock, NestedUNet) ---


class VGGBlock(nn.Module):
    def __init__(self, in_channels, middle_channels, out_channels):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, middle_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(middle_channels)
        self.conv2 = nn.Conv2d(middle_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


class NestedUNet(nn.Module):
    def __init__(self, num_classes=2, input_channels=3, deep_supervision=True):
        super().__init__()
        nb_filter = [8, 16, 32, 64]
        self.deep_supervision = deep_supervision
        self.pool = nn.MaxPool2d(2, 2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv0_0 = VGGBlock(input_channels, nb_filter[0], nb_filter[0])
        self.conv1_0 = VGGBlock(nb_filter[0], nb_filter[1], nb_filter[1])
        self.conv2_0 = VGGBlock(nb_filter[1], nb_filter[2], nb_filter[2])
        self.conv3_0 = VGGBlock(nb_filter[2], nb_filter[3], nb_filter[3])
        self.conv0_1 = VGGBlock(nb_filter[0] + nb_filter[1], nb_filter[0], nb_filter[0])
        self.conv1_1 = VGGBlock(nb_filter[1] + nb_filter[2], nb_filter[1], nb_filter[1])
        self.conv2_1 = VGGBlock(nb_filter[2] + nb_filter[3], nb_filter[2], nb_filter[2])
        self.conv0_2 = VGGBlock(nb_filter[0] * 2 + nb_filter[1], nb_filter[0], nb_filter[0])
        self.conv1_2 = VGGBlock(nb_filter[1] * 2 + nb_filter[2], nb_filter[1], nb_filter[1])
        self.conv0_3 = VGGBlock(nb_filter[0] * 3 + nb_filter[1], nb_filter[0], nb_filter[0])
        if self.deep_supervision:
            self.final1 = nn.Conv2d(nb_filter[0], num_classes, kernel_size=1)
            self.final2 = nn.Conv2d(nb_filter[0], num_classes, kernel_size=1)
            self.final3 = nn.Conv2d(nb_filter[0], num_classes, kernel_size=1)
        else:
            self.final = nn.Conv2d(nb_filter[0], num_classes, kernel_size=1)

    def forward(self, input):
        x0_0 = self.conv0_0(input)
        x1_0 = self.conv1_0(self.pool(x0_0))
        x0_1 = self.conv0_1(torch.cat([x0_0, self.up(x1_0)], 1))
        x2_0 = self.conv2_0(self.pool(x1_0))
        x1_1 = self.conv1_1(torch.cat([x1_0, self.up(x2_0)], 1))
        x0_2 = self.conv0_2(torch.cat([x0_0, x0_1, self.up(x1_1)], 1))
        x3_0 = self.conv3_0(self.pool(x2_0))
        x2_1 = self.conv2_1(torch.cat([x2_0, self.up(x3_0)], 1))
        x1_2 = self.conv1_2(torch.cat([x1_0, x1_1, self.up(x2_1)], 1))
        x0_3 = self.conv0_3(torch.cat([x0_0, x0_1, x0_2, self.up(x1_2)], 1))
        if self.deep_supervision:
            output1 = self.final1(x0_1)
            output2 = self.final2(x0_2)
            output3 = self.final3(x0_3)
            return [output1, output2, output3]
        return self.final(x0_3)


def unetpp():
    torch.manual_seed(0)
    return _randomize_bn(NestedUNet())


# --- LeeJunHyun/Image_Segmentation (network.py: AttU_Net) ---


class conv_block(nn.Module):
    def __init__(self, ch_in, ch_out):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(ch_in, ch_out, kernel_size=3, stride=1, padding=1, bias=True),
            nn.BatchNorm2d(ch_out), nn.ReLU(inplace=True),
            nn.Conv2d(ch_out, ch_out, kernel_size=3, stride=1, padding=1, bias=True),
            nn.BatchNorm2d(ch_out), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.conv(x)


class up_conv(nn.Module):
    def __init__(self, ch_in, ch_out):
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(ch_in, ch_out, kernel_size=3, stride=1, padding=1, bias=True),
            nn.BatchNorm2d(ch_out), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.up(x)


class Attention_block(nn.Module):
    def __init__(self, F_g, F_l, F_int):
        super().__init__()
        self.W_g = nn.Sequential(nn.Conv2d(F_g, F_int, kernel_size=1, stride=1, padding=0,
                                           bias=True), nn.BatchNorm2d(F_int))
        self.W_x = nn.Sequential(nn.Conv2d(F_l, F_int, kernel_size=1, stride=1, padding=0,
                                           bias=True), nn.BatchNorm2d(F_int))
        self.psi = nn.Sequential(nn.Conv2d(F_int, 1, kernel_size=1, stride=1, padding=0,
                                           bias=True), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g, x):
        g1 = self.W_g(g)
        x1 = self.W_x(x)
        psi = self.relu(g1 + x1)
        psi = self.psi(psi)
        return x * psi


class AttU_Net(nn.Module):
    def __init__(self, img_ch=3, output_ch=1):
        super().__init__()
        self.Maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.Conv1 = conv_block(ch_in=img_ch, ch_out=8)
        self.Conv2 = conv_block(ch_in=8, ch_out=16)
        self.Conv3 = conv_block(ch_in=16, ch_out=32)
        self.Up3 = up_conv(ch_in=32, ch_out=16)
        self.Att3 = Attention_block(F_g=16, F_l=16, F_int=8)
        self.Up_conv3 = conv_block(ch_in=32, ch_out=16)
        self.Up2 = up_conv(ch_in=16, ch_out=8)
        self.Att2 = Attention_block(F_g=8, F_l=8, F_int=4)
        self.Up_conv2 = conv_block(ch_in=16, ch_out=8)
        self.Conv_1x1 = nn.Conv2d(8, output_ch, kernel_size=1, stride=1, padding=0)

    def forward(self, x):
        x1 = self.Conv1(x)
        x2 = self.Maxpool(x1)
        x2 = self.Conv2(x2)
        x3 = self.Maxpool(x2)
        x3 = self.Conv3(x3)
        d3 = self.Up3(x3)
        x2 = self.Att3(g=d3, x=x2)
        d3 = torch.cat((x2, d3), dim=1)
        d3 = self.Up_conv3(d3)
        d2 = self.Up2(d3)
        x1 = self.Att2(g=d2, x=x1)
        d2 = torch.cat((x1, d2), dim=1)
        d2 = self.Up_conv2(d2)
        return self.Conv_1x1(d2)


def attention_unet():
    torch.manual_seed(0)
    return _randomize_bn(AttU_Net())


# --- swz30/Restormer (basicsr/models/archs/restormer_arch.py) ---


def to_3d(x):
    return rearrange(x, "b c h w -> b (h w) c")


def to_4d(x, h, w):
    return rearrange(x, "b (h w) c -> b c h w", h=h, w=w)


class WithBias_LayerNorm(nn.Module):
    def __init__(self, normalized_shape):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        normalized_shape = torch.Size(normalized_shape)
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.normalized_shape = normalized_shape

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        sigma = x.var(-1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(sigma + 1e-5) * self.weight + self.bias


class RLayerNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.body = WithBias_LayerNorm(dim)

    def forward(self, x):
        h, w = x.shape[-2:]
        return to_4d(self.body(to_3d(x)), h, w)


class GDFN(nn.Module):
    def __init__(self, dim, ffn_expansion_factor, bias):
        super().__init__()
        hidden_features = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden_features * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden_features * 2, hidden_features * 2, kernel_size=3,
                                stride=1, padding=1, groups=hidden_features * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden_features, dim, kernel_size=1, bias=bias)

    def forward(self, x):
        x = self.project_in(x)
        x1, x2 = self.dwconv(x).chunk(2, dim=1)
        x = F.gelu(x1) * x2
        return self.project_out(x)


class MDTA(nn.Module):
    def __init__(self, dim, num_heads, bias):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, stride=1, padding=1,
                                    groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x):
        _b, _c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x))
        q, k, v = qkv.chunk(3, dim=1)
        q = rearrange(q, "b (head c) h w -> b head c (h w)", head=self.num_heads)
        k = rearrange(k, "b (head c) h w -> b head c (h w)", head=self.num_heads)
        v = rearrange(v, "b (head c) h w -> b head c (h w)", head=self.num_heads)
        q = torch.nn.functional.normalize(q, dim=-1)
        k = torch.nn.functional.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1)
        out = attn @ v
        out = rearrange(out, "b head c (h w) -> b (head c) h w", head=self.num_heads, h=h, w=w)
        return self.project_out(out)


class RestormerBlock(nn.Module):
    def __init__(self, dim, num_heads, ffn_expansion_factor=2.66, bias=False):
        super().__init__()
        self.norm1 = RLayerNorm(dim)
        self.attn = MDTA(dim, num_heads, bias)
        self.norm2 = RLayerNorm(dim)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class Restormer(nn.Module):
    """Two levels: PixelUnshuffle downsampling, PixelShuffle upsampling, cat + 1x1 reduction."""

    def __init__(self, inp_channels=3, out_channels=3, dim=8, heads=(1, 2)):
        super().__init__()
        self.patch_embed = nn.Conv2d(inp_channels, dim, kernel_size=3, stride=1, padding=1,
                                     bias=False)
        self.encoder_level1 = RestormerBlock(dim, heads[0])
        self.down1_2 = nn.Sequential(nn.Conv2d(dim, dim // 2, kernel_size=3, stride=1,
                                               padding=1, bias=False), nn.PixelUnshuffle(2))
        self.latent = RestormerBlock(dim * 2, heads[1])
        self.up2_1 = nn.Sequential(nn.Conv2d(dim * 2, dim * 4, kernel_size=3, stride=1,
                                             padding=1, bias=False), nn.PixelShuffle(2))
        self.reduce_chan_level1 = nn.Conv2d(dim * 2, dim * 2, kernel_size=1, bias=False)
        self.decoder_level1 = RestormerBlock(dim * 2, heads[0])
        self.refinement = RestormerBlock(dim * 2, heads[0])
        self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, stride=1, padding=1,
                                bias=False)

    def forward(self, inp_img):
        inp_enc_level1 = self.patch_embed(inp_img)
        out_enc_level1 = self.encoder_level1(inp_enc_level1)
        latent = self.latent(self.down1_2(out_enc_level1))
        inp_dec_level1 = self.up2_1(latent)
        inp_dec_level1 = torch.cat([inp_dec_level1, out_enc_level1], 1)
        out_dec_level1 = self.decoder_level1(self.reduce_chan_level1(inp_dec_level1))
        out_dec_level1 = self.refinement(out_dec_level1)
        return self.output(out_dec_level1) + inp_img


def _jitter_params(model, names, scale=0.5, seed=2, types=None):
    """Trained-looking values for parameters a fresh model sets to 0 / 1 (layer scales,
    temperatures, norm affines): those named in ``names`` (of modules of ``types``, if given)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if types is not None and not isinstance(m, types):
                continue
            for n, p in m.named_parameters(recurse=False):
                if n in names:
                    p.add_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def restormer():
    torch.manual_seed(0)
    model = _jitter_params(Restormer(), {"temperature"}, 0.2)
    return _jitter_params(model, {"weight", "bias"}, 0.2, types=WithBias_LayerNorm)


# --- megvii-research/NAFNet (basicsr/models/archs/NAFNet_arch.py, arch_util.py) ---


class LayerNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        ctx.eps = eps
        _N, C, _H, _W = x.size()
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + eps).sqrt()
        ctx.save_for_backward(y, var, weight)
        y = weight.view(1, C, 1, 1) * y + bias.view(1, C, 1, 1)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        eps = ctx.eps
        _N, C, _H, _W = grad_output.size()
        y, var, weight = ctx.saved_variables
        g = grad_output * weight.view(1, C, 1, 1)
        mean_g = g.mean(dim=1, keepdim=True)
        mean_gy = (g * y).mean(dim=1, keepdim=True)
        gx = 1. / torch.sqrt(var + eps) * (g - y * mean_gy - mean_g)
        return (gx, (grad_output * y).sum(dim=3).sum(dim=2).sum(dim=0),
                grad_output.sum(dim=3).sum(dim=2).sum(dim=0), None)


class LayerNorm2d(nn.Module):
    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.register_parameter("weight", nn.Parameter(torch.ones(channels)))
        self.register_parameter("bias", nn.Parameter(torch.zeros(channels)))
        self.eps = eps

    def forward(self, x):
        return LayerNormFunction.apply(x, self.weight, self.bias, self.eps)


class SimpleGate(nn.Module):
    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return x1 * x2


class NAFBlock(nn.Module):
    def __init__(self, c, DW_Expand=2, FFN_Expand=2, drop_out_rate=0.):
        super().__init__()
        dw_channel = c * DW_Expand
        self.conv1 = nn.Conv2d(c, dw_channel, 1, padding=0, stride=1, groups=1, bias=True)
        self.conv2 = nn.Conv2d(dw_channel, dw_channel, 3, padding=1, stride=1,
                               groups=dw_channel, bias=True)
        self.conv3 = nn.Conv2d(dw_channel // 2, c, 1, padding=0, stride=1, groups=1, bias=True)
        self.sca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dw_channel // 2, dw_channel // 2, 1, padding=0, stride=1, groups=1,
                      bias=True))
        self.sg = SimpleGate()
        ffn_channel = FFN_Expand * c
        self.conv4 = nn.Conv2d(c, ffn_channel, 1, padding=0, stride=1, groups=1, bias=True)
        self.conv5 = nn.Conv2d(ffn_channel // 2, c, 1, padding=0, stride=1, groups=1, bias=True)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0. else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0. else nn.Identity()
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)), requires_grad=True)
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)), requires_grad=True)

    def forward(self, inp):
        x = inp
        x = self.norm1(x)
        x = self.conv1(x)
        x = self.conv2(x)
        x = self.sg(x)
        x = x * self.sca(x)
        x = self.conv3(x)
        x = self.dropout1(x)
        y = inp + x * self.beta
        x = self.conv4(self.norm2(y))
        x = self.sg(x)
        x = self.conv5(x)
        x = self.dropout2(x)
        return y + x * self.gamma


class NAFNet(nn.Module):
    def __init__(self, img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=(1, 1),
                 dec_blk_nums=(1, 1)):
        super().__init__()
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1, stride=1, groups=1, bias=True)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1, stride=1, groups=1, bias=True)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.middle_blks = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan = chan * 2
        self.middle_blks = nn.Sequential(*[NAFBlock(chan) for _ in range(middle_blk_num)])
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False),
                                          nn.PixelShuffle(2)))
            chan = chan // 2
            self.decoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
        self.padder_size = 2 ** len(self.encoders)

    def forward(self, inp):
        _B, _C, H, W = inp.shape
        inp = self.check_image_size(inp)
        x = self.intro(inp)
        encs = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            encs.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, enc_skip in zip(self.decoders, self.ups, encs[::-1]):
            x = up(x)
            x = x + enc_skip
            x = decoder(x)
        x = self.ending(x)
        x = x + inp
        return x[:, :, :H, :W]

    def check_image_size(self, x):
        _, _, h, w = x.size()
        mod_pad_h = (self.padder_size - h % self.padder_size) % self.padder_size
        mod_pad_w = (self.padder_size - w % self.padder_size) % self.padder_size
        return F.pad(x, (0, mod_pad_w, 0, mod_pad_h))


def nafnet():
    torch.manual_seed(0)
    model = _jitter_params(NAFNet(), {"beta", "gamma"}, 0.3)
    return _jitter_params(model, {"weight", "bias"}, 0.3, types=LayerNorm2d)


# --- rosinality/vq-vae-2-pytorch (vqvae.py: Quantize, ResBlock, Encoder) ---


class Quantize(nn.Module):
    def __init__(self, dim, n_embed, decay=0.99, eps=1e-5):
        super().__init__()
        self.dim = dim
        self.n_embed = n_embed
        self.decay = decay
        self.eps = eps
        embed = torch.randn(dim, n_embed)
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.zeros(n_embed))
        self.register_buffer("embed_avg", embed.clone())

    def forward(self, input):
        flatten = input.reshape(-1, self.dim)
        dist = (flatten.pow(2).sum(1, keepdim=True) - 2 * flatten @ self.embed
                + self.embed.pow(2).sum(0, keepdim=True))
        _, embed_ind = (-dist).max(1)
        embed_ind = embed_ind.view(*input.shape[:-1])
        quantize = self.embed_code(embed_ind)
        diff = (quantize.detach() - input).pow(2).mean()
        quantize = input + (quantize - input).detach()
        return quantize, diff, embed_ind

    def embed_code(self, embed_id):
        return F.embedding(embed_id, self.embed.transpose(0, 1))


class VQResBlock(nn.Module):
    def __init__(self, in_channel, channel):
        super().__init__()
        self.conv = nn.Sequential(nn.ReLU(), nn.Conv2d(in_channel, channel, 3, padding=1),
                                  nn.ReLU(inplace=True), nn.Conv2d(channel, in_channel, 1))

    def forward(self, input):
        out = self.conv(input)
        out += input
        return out


class VQVAEEncoder(nn.Module):
    """The bottom encoder (stride 4) and its quantizer: quantize_conv to the codebook's dim,
    permute to channels last, nearest code, back to channels first."""

    def __init__(self, in_channel=3, channel=32, n_res_block=2, n_res_channel=8, embed_dim=8,
                 n_embed=32):
        super().__init__()
        blocks = [nn.Conv2d(in_channel, channel // 2, 4, stride=2, padding=1),
                  nn.ReLU(inplace=True),
                  nn.Conv2d(channel // 2, channel, 4, stride=2, padding=1),
                  nn.ReLU(inplace=True),
                  nn.Conv2d(channel, channel, 3, padding=1)]
        for _ in range(n_res_block):
            blocks.append(VQResBlock(channel, n_res_channel))
        blocks.append(nn.ReLU(inplace=True))
        self.enc_b = nn.Sequential(*blocks)
        self.quantize_conv_b = nn.Conv2d(channel, embed_dim, 1)
        self.quantize_b = Quantize(embed_dim, n_embed)

    def forward(self, input):
        enc_b = self.enc_b(input)
        quant_b = self.quantize_conv_b(enc_b).permute(0, 2, 3, 1)
        quant_b, diff_b, id_b = self.quantize_b(quant_b)
        quant_b = quant_b.permute(0, 3, 1, 2)
        return quant_b, diff_b.unsqueeze(0), id_b


def vqvae():
    torch.manual_seed(0)
    return VQVAEEncoder().eval()


# --- tianzhi0549/FCOS (fcos_core/modeling/rpn/fcos/fcos.py: FCOSHead, layers/scale.py) ---


class Scale(nn.Module):
    def __init__(self, init_value=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.FloatTensor([init_value]))

    def forward(self, input):
        return input * self.scale


class FCOSHead(nn.Module):
    def __init__(self, in_channels=32, num_classes=5, num_convs=2, levels=3, groups=16):
        super().__init__()
        cls_tower, bbox_tower = [], []
        for _ in range(num_convs):
            cls_tower += [nn.Conv2d(in_channels, in_channels, 3, 1, 1),
                          nn.GroupNorm(groups, in_channels), nn.ReLU()]
            bbox_tower += [nn.Conv2d(in_channels, in_channels, 3, 1, 1),
                           nn.GroupNorm(groups, in_channels), nn.ReLU()]
        self.add_module("cls_tower", nn.Sequential(*cls_tower))
        self.add_module("bbox_tower", nn.Sequential(*bbox_tower))
        self.cls_logits = nn.Conv2d(in_channels, num_classes - 1, 3, 1, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4, 3, 1, 1)
        self.centerness = nn.Conv2d(in_channels, 1, 3, 1, 1)
        self.scales = nn.ModuleList([Scale(init_value=1.0 + 0.2 * i) for i in range(levels)])

    def forward(self, x):
        logits, bbox_reg, centerness = [], [], []
        for l, feature in enumerate(x):
            cls_tower = self.cls_tower(feature)
            box_tower = self.bbox_tower(feature)
            logits.append(self.cls_logits(cls_tower))
            centerness.append(self.centerness(cls_tower))
            bbox_pred = self.scales[l](self.bbox_pred(box_tower))
            bbox_reg.append(torch.exp(bbox_pred))
        return logits, bbox_reg, centerness


class FCOS(nn.Module):
    """A small strided backbone + FPN (1x1 laterals, nearest top-down, 3x3 outputs) feeding the
    shared FCOS head; the per-level outputs flattened and concatenated as its post-processor
    reads them (sigmoid scores times sigmoid centerness, boxes)."""

    def __init__(self, c=32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c // 2, 3, 2, 1), nn.BatchNorm2d(c // 2),
                                  nn.ReLU())
        self.c3 = nn.Sequential(nn.Conv2d(c // 2, c, 3, 2, 1), nn.BatchNorm2d(c), nn.ReLU())
        self.c4 = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1), nn.BatchNorm2d(c), nn.ReLU())
        self.c5 = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1), nn.BatchNorm2d(c), nn.ReLU())
        self.inner = nn.ModuleList([nn.Conv2d(c, c, 1) for _ in range(3)])
        self.layer = nn.ModuleList([nn.Conv2d(c, c, 3, 1, 1) for _ in range(3)])
        self.head = FCOSHead(c)

    def forward(self, x):
        c3 = self.c3(self.stem(x))
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        last = self.inner[2](c5)
        results = [self.layer[2](last)]
        for feat, inner, layer in ((c4, self.inner[1], self.layer[1]),
                                   (c3, self.inner[0], self.layer[0])):
            top_down = F.interpolate(last, scale_factor=2, mode="nearest")
            last = inner(feat) + top_down
            results.insert(0, layer(last))
        logits, bbox_reg, centerness = self.head(results)
        out = []
        for lg, bb, ct in zip(logits, bbox_reg, centerness):
            n = lg.shape[0]
            scores = (lg.sigmoid() * ct.sigmoid()).reshape(n, lg.shape[1], -1)
            boxes = bb.reshape(n, 4, -1)
            out.append(torch.cat([boxes, scores], 1))
        return torch.cat(out, 2).permute(0, 2, 1)


def fcos():
    torch.manual_seed(0)
    return _jitter_params(_randomize_bn(FCOS()), {"weight", "bias"}, 0.2, seed=3,
                          types=nn.GroupNorm)


# --- Megvii-BaseDetection/YOLOX (yolox/models: network_blocks.py, darknet.py, yolo_head.py) ---


class BaseConv(nn.Module):
    def __init__(self, in_channels, out_channels, ksize, stride, groups=1, bias=False,
                 act="silu"):
        super().__init__()
        pad = (ksize - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=ksize, stride=stride,
                              padding=pad, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Focus(nn.Module):
    def __init__(self, in_channels, out_channels, ksize=1, stride=1, act="silu"):
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize, stride, act=act)

    def forward(self, x):
        patch_top_left = x[..., ::2, ::2]
        patch_top_right = x[..., ::2, 1::2]
        patch_bot_left = x[..., 1::2, ::2]
        patch_bot_right = x[..., 1::2, 1::2]
        x = torch.cat((patch_top_left, patch_bot_left, patch_top_right, patch_bot_right), dim=1)
        return self.conv(x)


class Bottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, shortcut=True, expansion=0.5):
        super().__init__()
        hidden_channels = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden_channels, 1, stride=1)
        self.conv2 = BaseConv(hidden_channels, out_channels, 3, stride=1)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        if self.use_add:
            y = y + x
        return y


class CSPLayer(nn.Module):
    def __init__(self, in_channels, out_channels, n=1, shortcut=True, expansion=0.5):
        super().__init__()
        hidden_channels = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden_channels, 1, stride=1)
        self.conv2 = BaseConv(in_channels, hidden_channels, 1, stride=1)
        self.conv3 = BaseConv(2 * hidden_channels, out_channels, 1, stride=1)
        self.m = nn.Sequential(*[Bottleneck(hidden_channels, hidden_channels, shortcut, 1.0)
                                 for _ in range(n)])

    def forward(self, x):
        x_1 = self.m(self.conv1(x))
        x_2 = self.conv2(x)
        return self.conv3(torch.cat((x_1, x_2), dim=1))


class SPPBottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_sizes=(5, 9, 13)):
        super().__init__()
        hidden_channels = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden_channels, 1, stride=1)
        self.m = nn.ModuleList([nn.MaxPool2d(kernel_size=ks, stride=1, padding=ks // 2)
                                for ks in kernel_sizes])
        self.conv2 = BaseConv(hidden_channels * (len(kernel_sizes) + 1), out_channels, 1, 1)

    def forward(self, x):
        x = self.conv1(x)
        x = torch.cat([x] + [m(x) for m in self.m], dim=1)
        return self.conv2(x)


class YOLOX(nn.Module):
    """CSPDarknet (Focus stem, dark2..dark4 with SPP) and YOLOXHead on strides 8 and 16:
    decoupled cls / reg branches, obj and cls sigmoids, decode_outputs in inference."""

    def __init__(self, num_classes=3, w=16):
        super().__init__()
        self.stem = Focus(3, w, ksize=3)
        self.dark2 = nn.Sequential(BaseConv(w, w * 2, 3, 2), CSPLayer(w * 2, w * 2))
        self.dark3 = nn.Sequential(BaseConv(w * 2, w * 4, 3, 2), CSPLayer(w * 4, w * 4))
        self.dark4 = nn.Sequential(BaseConv(w * 4, w * 4, 3, 2), SPPBottleneck(w * 4, w * 4),
                                   CSPLayer(w * 4, w * 4, shortcut=False))
        self.num_classes = num_classes
        self.strides = [8, 16]
        self.stems, self.cls_convs, self.reg_convs = (nn.ModuleList() for _ in range(3))
        self.cls_preds, self.reg_preds, self.obj_preds = (nn.ModuleList() for _ in range(3))
        hw = w * 2
        for _ in self.strides:
            self.stems.append(BaseConv(w * 4, hw, 1, 1))
            self.cls_convs.append(nn.Sequential(BaseConv(hw, hw, 3, 1), BaseConv(hw, hw, 3, 1)))
            self.reg_convs.append(nn.Sequential(BaseConv(hw, hw, 3, 1), BaseConv(hw, hw, 3, 1)))
            self.cls_preds.append(nn.Conv2d(hw, num_classes, 1))
            self.reg_preds.append(nn.Conv2d(hw, 4, 1))
            self.obj_preds.append(nn.Conv2d(hw, 1, 1))
        self.decode_in_inference = True

    def forward(self, x):
        x = self.stem(x)
        x3 = self.dark3(self.dark2(x))
        x4 = self.dark4(x3)
        outputs = []
        self.hw = []
        for k, (cls_conv, reg_conv, stride_this_level, xin) in enumerate(
                zip(self.cls_convs, self.reg_convs, self.strides, (x3, x4))):
            x = self.stems[k](xin)
            cls_output = self.cls_preds[k](cls_conv(x))
            reg_feat = reg_conv(x)
            reg_output = self.reg_preds[k](reg_feat)
            obj_output = self.obj_preds[k](reg_feat)
            output = torch.cat([reg_output, obj_output.sigmoid(), cls_output.sigmoid()], 1)
            outputs.append(output)
        self.hw = [x.shape[-2:] for x in outputs]
        outputs = torch.cat([x.flatten(start_dim=2) for x in outputs], dim=2).permute(0, 2, 1)
        return self.decode_outputs(outputs, dtype=x.type())

    def decode_outputs(self, outputs, dtype):
        grids = []
        strides = []
        for (hsize, wsize), stride in zip(self.hw, self.strides):
            yv, xv = torch.meshgrid([torch.arange(hsize), torch.arange(wsize)], indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, -1, 2)
            grids.append(grid)
            shape = grid.shape[:2]
            strides.append(torch.full((*shape, 1), stride))
        grids = torch.cat(grids, dim=1).type(dtype)
        strides = torch.cat(strides, dim=1).type(dtype)
        outputs = torch.cat([
            (outputs[..., 0:2] + grids) * strides,
            torch.exp(outputs[..., 2:4]) * strides,
            outputs[..., 4:]
        ], dim=-1)
        return outputs


def yolox():
    torch.manual_seed(0)
    return _randomize_bn(YOLOX())


# --- IBM/CrossViT (models/crossvit.py: PatchEmbed, CrossAttention, MultiScaleBlock) ---


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim, num_heads=2, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CrossAttention(nn.Module):
    def __init__(self, dim, num_heads=2, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.wq = nn.Linear(dim, dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, dim, bias=qkv_bias)
        self.wv = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q = self.wq(x[:, 0:1, ...]).reshape(B, 1, self.num_heads, C // self.num_heads)
        q = q.permute(0, 2, 1, 3)
        k = self.wk(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        v = self.wv(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, 1, C)
        return self.proj(x)


class CrossAttentionBlock(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = CrossAttention(dim, num_heads)

    def forward(self, x):
        return x[:, 0:1, ...] + self.attn(self.norm1(x))


class MultiScaleBlock(nn.Module):
    def __init__(self, dim, depth, num_heads):
        super().__init__()
        num_branches = len(dim)
        self.num_branches = num_branches
        self.blocks = nn.ModuleList([
            nn.Sequential(*[Block(dim[d], num_heads[d]) for _ in range(depth[d])])
            for d in range(num_branches)])
        self.projs = nn.ModuleList([
            nn.Sequential(nn.LayerNorm(dim[d]), nn.GELU(),
                          nn.Linear(dim[d], dim[(d + 1) % num_branches]))
            for d in range(num_branches)])
        self.fusion = nn.ModuleList([
            CrossAttentionBlock(dim[(d + 1) % num_branches], num_heads[(d + 1) % num_branches])
            for d in range(num_branches)])
        self.revert_projs = nn.ModuleList([
            nn.Sequential(nn.LayerNorm(dim[(d + 1) % num_branches]), nn.GELU(),
                          nn.Linear(dim[(d + 1) % num_branches], dim[d]))
            for d in range(num_branches)])

    def forward(self, x):
        outs_b = [block(x_) for x_, block in zip(x, self.blocks)]
        proj_cls_token = [proj(x[:, 0:1]) for x, proj in zip(outs_b, self.projs)]
        outs = []
        for i in range(self.num_branches):
            tmp = torch.cat((proj_cls_token[i], outs_b[(i + 1) % self.num_branches][:, 1:, ...]),
                            dim=1)
            tmp = self.fusion[i](tmp)
            reverted_proj_cls_token = self.revert_projs[i](tmp[:, 0:1, ...])
            tmp = torch.cat((reverted_proj_cls_token, outs_b[i][:, 1:, ...]), dim=1)
            outs.append(tmp)
        return outs


class CrossViT(nn.Module):
    def __init__(self, img_size=(24, 16), patch_size=(6, 4), num_classes=10, embed_dim=(32, 48),
                 depth=((1, 2), (1, 2)), num_heads=(2, 2)):
        super().__init__()
        self.num_branches = len(patch_size)
        self.img_size = img_size
        self.patch_embed = nn.ModuleList([
            nn.Conv2d(3, d, kernel_size=p, stride=p) for p, d in zip(patch_size, embed_dim)])
        num_patches = [(s // p) ** 2 for s, p in zip(img_size, patch_size)]
        self.pos_embed = nn.ParameterList([
            nn.Parameter(0.02 * torch.randn(1, 1 + num_patches[i], embed_dim[i]))
            for i in range(self.num_branches)])
        self.cls_token = nn.ParameterList([
            nn.Parameter(0.02 * torch.randn(1, 1, embed_dim[i]))
            for i in range(self.num_branches)])
        self.blocks = nn.ModuleList([MultiScaleBlock(embed_dim, d, num_heads) for d in depth])
        self.norm = nn.ModuleList([nn.LayerNorm(embed_dim[i], eps=1e-6)
                                   for i in range(self.num_branches)])
        self.head = nn.ModuleList([nn.Linear(embed_dim[i], num_classes)
                                   for i in range(self.num_branches)])

    def forward_features(self, x):
        B, _C, H, _W = x.shape
        xs = []
        for i in range(self.num_branches):
            x_ = torch.nn.functional.interpolate(x, size=(self.img_size[i], self.img_size[i]),
                                                 mode="bicubic") if H != self.img_size[i] else x
            tmp = self.patch_embed[i](x_).flatten(2).transpose(1, 2)
            cls_tokens = self.cls_token[i].expand(B, -1, -1)
            tmp = torch.cat((cls_tokens, tmp), dim=1)
            tmp = tmp + self.pos_embed[i]
            xs.append(tmp)
        for blk in self.blocks:
            xs = blk(xs)
        xs = [self.norm[i](x) for i, x in enumerate(xs)]
        return [x[:, 0] for x in xs]

    def forward(self, x):
        xs = self.forward_features(x)
        ce_logits = [self.head[i](x) for i, x in enumerate(xs)]
        return torch.mean(torch.stack(ce_logits, dim=0), dim=0)


def crossvit():
    torch.manual_seed(0)
    return CrossViT().eval()


# --- Meituan-AutoML/Twins (gvt.py: LocallyGroupedAttn, GlobalSubSampleAttn, PosCNN) ---


class LocallyGroupedAttn(nn.Module):
    def __init__(self, dim, num_heads=2, ws=4):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.ws = ws

    def forward(self, x, H, W):
        B, N, C = x.shape
        x = x.view(B, H, W, C)
        pad_l = pad_t = 0
        pad_r = (self.ws - W % self.ws) % self.ws
        pad_b = (self.ws - H % self.ws) % self.ws
        x = F.pad(x, (0, 0, pad_l, pad_r, pad_t, pad_b))
        _, Hp, Wp, _ = x.shape
        _h, _w = Hp // self.ws, Wp // self.ws
        x = x.reshape(B, _h, self.ws, _w, self.ws, C).transpose(2, 3)
        qkv = self.qkv(x).reshape(B, _h * _w, self.ws * self.ws, 3, self.num_heads,
                                  C // self.num_heads).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        attn = (attn @ v).transpose(2, 3).reshape(B, _h, _w, self.ws, self.ws, C)
        x = attn.transpose(2, 3).reshape(B, _h * self.ws, _w * self.ws, C)
        if pad_r > 0 or pad_b > 0:
            x = x[:, :H, :W, :].contiguous()
        x = x.reshape(B, N, C)
        return self.proj(x)


class GlobalSubSampleAttn(nn.Module):
    def __init__(self, dim, num_heads=2, sr_ratio=2):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=True)
        self.kv = nn.Linear(dim, dim * 2, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, H, W):
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        x_ = x.permute(0, 2, 1).reshape(B, C, H, W)
        x_ = self.sr(x_).reshape(B, C, -1).permute(0, 2, 1)
        x_ = self.norm(x_)
        kv = self.kv(x_).reshape(B, -1, 2, self.num_heads,
                                 C // self.num_heads).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class TwinsBlock(nn.Module):
    def __init__(self, dim, num_heads, local):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = LocallyGroupedAttn(dim, num_heads) if local else \
            GlobalSubSampleAttn(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * 2)

    def forward(self, x, H, W):
        x = x + self.attn(self.norm1(x), H, W)
        return x + self.mlp(self.norm2(x))


class PosCNN(nn.Module):
    def __init__(self, in_chans, embed_dim=768, s=1):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_chans, embed_dim, 3, s, 1, bias=True,
                                            groups=embed_dim))
        self.s = s

    def forward(self, x, H, W):
        B, _N, C = x.shape
        feat_token = x
        cnn_feat = feat_token.transpose(1, 2).view(B, C, H, W)
        if self.s == 1:
            x = self.proj(cnn_feat) + cnn_feat
        else:
            x = self.proj(cnn_feat)
        return x.flatten(2).transpose(1, 2)


class TwinsSVT(nn.Module):
    """One stage of Twins-SVT (patch embed by a strided conv + LayerNorm; LSA, PEG, GSA, LSA,
    GSA), then a stride-2 stage of LSA + GSA, LayerNorm, mean over tokens, classifier.
    Windows of 4 over 10 x 10 tokens: the locally grouped attention pads to 12 x 12."""

    def __init__(self, dims=(16, 32), num_classes=10):
        super().__init__()
        self.patch1 = nn.Conv2d(3, dims[0], 4, 4)
        self.norm1 = nn.LayerNorm(dims[0])
        self.stage1 = nn.ModuleList([TwinsBlock(dims[0], 2, local=i % 2 == 0) for i in range(4)])
        self.pos1 = PosCNN(dims[0], dims[0])
        self.patch2 = nn.Conv2d(dims[0], dims[1], 2, 2)
        self.norm2 = nn.LayerNorm(dims[1])
        self.stage2 = nn.ModuleList([TwinsBlock(dims[1], 2, local=i % 2 == 0) for i in range(2)])
        self.pos2 = PosCNN(dims[1], dims[1])
        self.norm = nn.LayerNorm(dims[1])
        self.head = nn.Linear(dims[1], num_classes)

    def forward(self, x):
        B = x.shape[0]
        for patch, norm, blocks, pos in ((self.patch1, self.norm1, self.stage1, self.pos1),
                                         (self.patch2, self.norm2, self.stage2, self.pos2)):
            x = patch(x)
            H, W = x.shape[-2:]
            x = norm(x.flatten(2).transpose(1, 2))
            for j, blk in enumerate(blocks):
                x = blk(x, H, W)
                if j == 0:
                    x = pos(x, H, W)
            x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
        x = self.norm(x.flatten(2).transpose(1, 2))
        return self.head(x.mean(dim=1))


def twins_svt():
    torch.manual_seed(0)
    return TwinsSVT().eval()


# --- Diego999/pyGAT (layers.py: GraphAttentionLayer) and a mean-aggregator GraphSAGE ---


def _grid_adjacency(side):
    """A side x side 4-neighbour grid graph with self loops (0/1)."""
    n = side * side
    adj = torch.eye(n)
    for i in range(n):
        r, c = divmod(i, side)
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < side and 0 <= cc < side:
                adj[i, rr * side + cc] = 1.0
    return adj


class GraphAttentionLayer(nn.Module):
    def __init__(self, in_features, out_features, dropout, alpha, concat=True):
        super().__init__()
        self.dropout = dropout
        self.in_features = in_features
        self.out_features = out_features
        self.alpha = alpha
        self.concat = concat
        self.W = nn.Parameter(torch.empty(size=(in_features, out_features)))
        nn.init.xavier_uniform_(self.W.data, gain=1.414)
        self.a = nn.Parameter(torch.empty(size=(2 * out_features, 1)))
        nn.init.xavier_uniform_(self.a.data, gain=1.414)
        self.leakyrelu = nn.LeakyReLU(self.alpha)

    def forward(self, h, adj):
        Wh = torch.matmul(h, self.W)
        e = self._prepare_attentional_mechanism_input(Wh)
        zero_vec = -9e15 * torch.ones_like(e)
        attention = torch.where(adj > 0, e, zero_vec)
        attention = F.softmax(attention, dim=-1)
        attention = F.dropout(attention, self.dropout, training=self.training)
        h_prime = torch.matmul(attention, Wh)
        if self.concat:
            return F.elu(h_prime)
        return h_prime

    def _prepare_attentional_mechanism_input(self, Wh):
        Wh1 = torch.matmul(Wh, self.a[:self.out_features, :])
        Wh2 = torch.matmul(Wh, self.a[self.out_features:, :])
        e = Wh1 + Wh2.transpose(-1, -2)
        return self.leakyrelu(e)


class GAT(nn.Module):
    def __init__(self, nfeat=8, nhid=8, nclass=4, dropout=0.6, alpha=0.2, nheads=4, side=4):
        super().__init__()
        self.dropout = dropout
        self.attentions = [GraphAttentionLayer(nfeat, nhid, dropout=dropout, alpha=alpha,
                                               concat=True) for _ in range(nheads)]
        for i, attention in enumerate(self.attentions):
            self.add_module(f"attention_{i}", attention)
        self.out_att = GraphAttentionLayer(nhid * nheads, nclass, dropout=dropout, alpha=alpha,
                                           concat=False)
        self.register_buffer("adj", _grid_adjacency(side))

    def forward(self, x):
        adj = self.adj
        x = F.dropout(x, self.dropout, training=self.training)
        x = torch.cat([att(x, adj) for att in self.attentions], dim=-1)
        x = F.dropout(x, self.dropout, training=self.training)
        x = F.elu(self.out_att(x, adj))
        return F.log_softmax(x, dim=-1)


def gat():
    torch.manual_seed(0)
    return GAT().eval()


class SAGEConv(nn.Module):
    """PyG's SAGEConv with aggr='mean' written densely: lin_l(mean of neighbours) + lin_r(x),
    optional L2 normalization of the output."""

    def __init__(self, in_channels, out_channels, normalize=False):
        super().__init__()
        self.lin_l = nn.Linear(in_channels, out_channels, bias=True)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)
        self.normalize = normalize

    def forward(self, x, adj):
        deg = adj.sum(dim=-1, keepdim=True).clamp(min=1)
        aggr = torch.matmul(adj, x) / deg
        out = self.lin_l(aggr) + self.lin_r(x)
        if self.normalize:
            out = F.normalize(out, p=2.0, dim=-1)
        return out


class GraphSAGE(nn.Module):
    def __init__(self, nfeat=8, nhid=16, nclass=4, side=4):
        super().__init__()
        self.conv1 = SAGEConv(nfeat, nhid, normalize=True)
        self.conv2 = SAGEConv(nhid, nhid)
        self.lin = nn.Linear(nhid, nclass)
        adj = _grid_adjacency(side)
        self.register_buffer("adj", adj - torch.eye(side * side))  # no self loops

    def forward(self, x):
        x = F.relu(self.conv1(x, self.adj))
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.conv2(x, self.adj))
        return F.log_softmax(self.lin(x), dim=-1)


def graphsage():
    torch.manual_seed(0)
    return GraphSAGE().eval()


# --- yanx27/Pointnet_Pointnet2_pytorch (models/pointnet2_utils.py) ---


def index_points(points, idx):
    device = points.device
    B = points.shape[0]
    view_shape = list(idx.shape)
    view_shape[1:] = [1] * (len(view_shape) - 1)
    repeat_shape = list(idx.shape)
    repeat_shape[0] = 1
    batch_indices = torch.arange(B, dtype=torch.long).to(device).view(view_shape).repeat(
        repeat_shape)
    return points[batch_indices, idx, :]


class PointNetSetAbstraction(nn.Module):
    """sample_and_group with its farthest-point sampling and ball query replaced by constant
    indices (a fixed sampling of a fixed-size cloud, as a deployed model precomputes them)."""

    def __init__(self, npoint, nsample, in_channel, mlp, n_in, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.npoint = npoint
        self.nsample = nsample
        self.register_buffer("fps_idx", torch.randperm(n_in, generator=g)[:npoint])
        self.register_buffer("group_idx", torch.randint(0, n_in, (npoint, nsample),
                                                         generator=g))
        self.mlp_convs = nn.ModuleList()
        self.mlp_bns = nn.ModuleList()
        last_channel = in_channel
        for out_channel in mlp:
            self.mlp_convs.append(nn.Conv2d(last_channel, out_channel, 1))
            self.mlp_bns.append(nn.BatchNorm2d(out_channel))
            last_channel = out_channel

    def forward(self, xyz, points):
        xyz = xyz.permute(0, 2, 1)
        if points is not None:
            points = points.permute(0, 2, 1)
        B, _N, C = xyz.shape
        S = self.npoint
        fps_idx = self.fps_idx.unsqueeze(0).repeat(B, 1)
        new_xyz = index_points(xyz, fps_idx)
        idx = self.group_idx.unsqueeze(0).repeat(B, 1, 1)
        grouped_xyz = index_points(xyz, idx)
        grouped_xyz_norm = grouped_xyz - new_xyz.view(B, S, 1, C)
        if points is not None:
            grouped_points = index_points(points, idx)
            new_points = torch.cat([grouped_xyz_norm, grouped_points], dim=-1)
        else:
            new_points = grouped_xyz_norm
        new_points = new_points.permute(0, 3, 2, 1)  # [B, C+D, nsample, npoint]
        for i, conv in enumerate(self.mlp_convs):
            bn = self.mlp_bns[i]
            new_points = F.relu(bn(conv(new_points)))
        new_points = torch.max(new_points, 2)[0]
        new_xyz = new_xyz.permute(0, 2, 1)
        return new_xyz, new_points


class PointNet2Cls(nn.Module):
    def __init__(self, num_class=5, n=64):
        super().__init__()
        self.sa1 = PointNetSetAbstraction(16, 8, 3, [16, 16, 32], n, seed=1)
        self.sa2 = PointNetSetAbstraction(4, 8, 32 + 3, [32, 32, 64], 16, seed=2)
        self.fc1 = nn.Linear(64 + 3, 32)
        self.bn1 = nn.BatchNorm1d(32)
        self.drop1 = nn.Dropout(0.4)
        self.fc3 = nn.Linear(32, num_class)

    def forward(self, xyz):
        B, _, _ = xyz.shape
        l1_xyz, l1_points = self.sa1(xyz, None)
        l2_xyz, l2_points = self.sa2(l1_xyz, l1_points)
        # group_all: every remaining point in one group, xyz kept un-centred
        x = torch.cat([l2_xyz, l2_points], dim=1).max(dim=2)[0].view(B, 64 + 3)
        x = self.drop1(F.relu(self.bn1(self.fc1(x))))
        x = self.fc3(x)
        return F.log_softmax(x, -1)


def pointnet2():
    torch.manual_seed(0)
    return _randomize_bn(PointNet2Cls())


# --- WangYueFW/dgcnn (pytorch/model.py: knn, get_graph_feature, DGCNN) ---


def knn(x, k):
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    xx = torch.sum(x ** 2, dim=1, keepdim=True)
    pairwise_distance = -xx - inner - xx.transpose(2, 1)
    idx = pairwise_distance.topk(k=k, dim=-1)[1]  # (batch_size, num_points, k)
    return idx


def get_graph_feature(x, k=20, idx=None):
    batch_size = x.size(0)
    num_points = x.size(2)
    x = x.view(batch_size, -1, num_points)
    if idx is None:
        idx = knn(x, k=k)
    device = x.device
    idx_base = torch.arange(0, batch_size, device=device).view(-1, 1, 1) * num_points
    idx = idx + idx_base
    idx = idx.view(-1)
    _, num_dims, _ = x.size()
    x = x.transpose(2, 1).contiguous()
    feature = x.view(batch_size * num_points, -1)[idx, :]
    feature = feature.view(batch_size, num_points, k, num_dims)
    x = x.view(batch_size, num_points, 1, num_dims).repeat(1, 1, k, 1)
    feature = torch.cat((feature - x, x), dim=3).permute(0, 3, 1, 2).contiguous()
    return feature


class DGCNN(nn.Module):
    def __init__(self, k=4, emb_dims=64, output_channels=5):
        super().__init__()
        self.k = k
        self.bn1 = nn.BatchNorm2d(16)
        self.bn2 = nn.BatchNorm2d(16)
        self.bn3 = nn.BatchNorm1d(emb_dims)
        self.bn4 = nn.BatchNorm1d(32)
        self.conv1 = nn.Sequential(nn.Conv2d(6, 16, kernel_size=1, bias=False), self.bn1,
                                   nn.LeakyReLU(negative_slope=0.2))
        self.conv2 = nn.Sequential(nn.Conv2d(16 * 2, 16, kernel_size=1, bias=False), self.bn2,
                                   nn.LeakyReLU(negative_slope=0.2))
        self.conv3 = nn.Sequential(nn.Conv1d(32, emb_dims, kernel_size=1, bias=False), self.bn3,
                                   nn.LeakyReLU(negative_slope=0.2))
        self.linear1 = nn.Linear(emb_dims * 2, 32, bias=False)
        self.dp1 = nn.Dropout(p=0.5)
        self.linear2 = nn.Linear(32, output_channels)

    def forward(self, x):
        batch_size = x.size(0)
        x = get_graph_feature(x, k=self.k)
        x = self.conv1(x)
        x1 = x.max(dim=-1, keepdim=False)[0]
        x = get_graph_feature(x1, k=self.k)
        x = self.conv2(x)
        x2 = x.max(dim=-1, keepdim=False)[0]
        x = torch.cat((x1, x2), dim=1)
        x = self.conv3(x)
        x1 = F.adaptive_max_pool1d(x, 1).view(batch_size, -1)
        x2 = F.adaptive_avg_pool1d(x, 1).view(batch_size, -1)
        x = torch.cat((x1, x2), 1)
        x = F.leaky_relu(self.bn4(self.linear1(x)), negative_slope=0.2)
        x = self.dp1(x)
        return self.linear2(x)


def dgcnn():
    torch.manual_seed(0)
    return _randomize_bn(DGCNN())


# --- TaoRuijie/ECAPA-TDNN (model.py: SEModule, Bottle2neck, ECAPA_TDNN) on fbank input ---


class SEModule(nn.Module):
    def __init__(self, channels, bottleneck=16):
        super().__init__()
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Conv1d(channels, bottleneck, kernel_size=1, padding=0), nn.ReLU(),
            nn.Conv1d(bottleneck, channels, kernel_size=1, padding=0), nn.Sigmoid())

    def forward(self, input):
        x = self.se(input)
        return input * x


class Bottle2neck(nn.Module):
    def __init__(self, inplanes, planes, kernel_size=None, dilation=None, scale=4):
        super().__init__()
        width = int(planes / scale)
        self.conv1 = nn.Conv1d(inplanes, width * scale, kernel_size=1)
        self.bn1 = nn.BatchNorm1d(width * scale)
        self.nums = scale - 1
        num_pad = (kernel_size // 2) * dilation
        self.convs = nn.ModuleList([nn.Conv1d(width, width, kernel_size=kernel_size,
                                              dilation=dilation, padding=num_pad)
                                    for _ in range(self.nums)])
        self.bns = nn.ModuleList([nn.BatchNorm1d(width) for _ in range(self.nums)])
        self.conv3 = nn.Conv1d(width * scale, planes, kernel_size=1)
        self.bn3 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU()
        self.width = width
        self.se = SEModule(planes)

    def forward(self, x):
        residual = x
        out = self.conv1(x)
        out = self.relu(out)
        out = self.bn1(out)
        spx = torch.split(out, self.width, 1)
        for i in range(self.nums):
            if i == 0:
                sp = spx[i]
            else:
                sp = sp + spx[i]
            sp = self.convs[i](sp)
            sp = self.relu(sp)
            sp = self.bns[i](sp)
            if i == 0:
                out = sp
            else:
                out = torch.cat((out, sp), 1)
        out = torch.cat((out, spx[self.nums]), 1)
        out = self.conv3(out)
        out = self.relu(out)
        out = self.bn3(out)
        out = self.se(out)
        out += residual
        return out


class ECAPA_TDNN(nn.Module):
    def __init__(self, C=32, n_mels=24, emb=16):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, C, kernel_size=5, stride=1, padding=2)
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm1d(C)
        self.layer1 = Bottle2neck(C, C, kernel_size=3, dilation=2, scale=4)
        self.layer2 = Bottle2neck(C, C, kernel_size=3, dilation=3, scale=4)
        self.layer3 = Bottle2neck(C, C, kernel_size=3, dilation=4, scale=4)
        self.layer4 = nn.Conv1d(3 * C, 48, kernel_size=1)
        self.attention = nn.Sequential(
            nn.Conv1d(48 * 3, 16, kernel_size=1), nn.ReLU(), nn.BatchNorm1d(16), nn.Tanh(),
            nn.Conv1d(16, 48, kernel_size=1), nn.Softmax(dim=2))
        self.bn5 = nn.BatchNorm1d(96)
        self.fc6 = nn.Linear(96, emb)
        self.bn6 = nn.BatchNorm1d(emb)

    def forward(self, x):
        x = x.transpose(1, 2)  # (B, T, n_mels) fbank frames -> (B, n_mels, T)
        x = x - torch.mean(x, dim=-1, keepdim=True)
        x = self.conv1(x)
        x = self.relu(x)
        x = self.bn1(x)
        x1 = self.layer1(x)
        x2 = self.layer2(x + x1)
        x3 = self.layer3(x + x1 + x2)
        x = self.layer4(torch.cat((x1, x2, x3), dim=1))
        x = self.relu(x)
        t = x.size()[-1]
        global_x = torch.cat((x, torch.mean(x, dim=2, keepdim=True).repeat(1, 1, t),
                              torch.sqrt(torch.var(x, dim=2, keepdim=True).clamp(
                                  min=1e-4)).repeat(1, 1, t)), dim=1)
        w = self.attention(global_x)
        mu = torch.sum(x * w, dim=2)
        sg = torch.sqrt((torch.sum((x ** 2) * w, dim=2) - mu ** 2).clamp(min=1e-4))
        x = torch.cat((mu, sg), 1)
        x = self.bn5(x)
        x = self.fc6(x)
        return self.bn6(x)


def ecapa_tdnn():
    torch.manual_seed(0)
    return _randomize_bn(ECAPA_TDNN())


# --- qiuqiangkong/audioset_tagging_cnn (pytorch/models.py: ConvBlock, Cnn14) ---


class ConvBlock(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(3, 3), stride=(1, 1),
                               padding=(1, 1), bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=(3, 3), stride=(1, 1),
                               padding=(1, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, input, pool_size=(2, 2), pool_type="avg"):
        x = input
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        if pool_type == "max":
            x = F.max_pool2d(x, kernel_size=pool_size)
        elif pool_type == "avg":
            x = F.avg_pool2d(x, kernel_size=pool_size)
        elif pool_type == "avg+max":
            x1 = F.avg_pool2d(x, kernel_size=pool_size)
            x2 = F.max_pool2d(x, kernel_size=pool_size)
            x = x1 + x2
        return x


class Cnn14(nn.Module):
    """Cnn14 with four ConvBlocks (of six) at an eighth of the widths, on log-mel input
    (batch, 1, time_steps, mel_bins): the spectrogram and log-mel extractors and SpecAugment
    are the training front end."""

    def __init__(self, mel_bins=32, classes_num=10):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(mel_bins)
        self.conv_block1 = ConvBlock(1, 8)
        self.conv_block2 = ConvBlock(8, 16)
        self.conv_block3 = ConvBlock(16, 32)
        self.conv_block4 = ConvBlock(32, 64)
        self.fc1 = nn.Linear(64, 64, bias=True)
        self.fc_audioset = nn.Linear(64, classes_num, bias=True)

    def forward(self, input):
        x = input
        x = x.transpose(1, 3)
        x = self.bn0(x)
        x = x.transpose(1, 3)
        x = self.conv_block1(x, pool_size=(2, 2), pool_type="avg")
        x = F.dropout(x, p=0.2, training=self.training)
        x = self.conv_block2(x, pool_size=(2, 2), pool_type="avg")
        x = F.dropout(x, p=0.2, training=self.training)
        x = self.conv_block3(x, pool_size=(2, 2), pool_type="avg")
        x = F.dropout(x, p=0.2, training=self.training)
        x = self.conv_block4(x, pool_size=(1, 1), pool_type="avg")
        x = F.dropout(x, p=0.2, training=self.training)
        x = torch.mean(x, dim=3)
        (x1, _) = torch.max(x, dim=2)
        x2 = torch.mean(x, dim=2)
        x = x1 + x2
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu_(self.fc1(x))
        embedding = F.dropout(x, p=0.5, training=self.training)
        clipwise_output = torch.sigmoid(self.fc_audioset(x))
        return {"clipwise_output": clipwise_output, "embedding": embedding}


def cnn14():
    torch.manual_seed(0)
    return _randomize_bn(Cnn14())


# --- NVIDIA/tacotron2 (model.py: Postnet; layers.py: ConvNorm) ---


class ConvNorm(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=None,
                 dilation=1, bias=True, w_init_gain="linear"):
        super().__init__()
        if padding is None:
            assert kernel_size % 2 == 1
            padding = int(dilation * (kernel_size - 1) / 2)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              padding=padding, dilation=dilation, bias=bias)
        nn.init.xavier_uniform_(self.conv.weight, gain=nn.init.calculate_gain(w_init_gain))

    def forward(self, signal):
        return self.conv(signal)


class Postnet(nn.Module):
    def __init__(self, n_mel_channels=20, postnet_embedding_dim=32, postnet_kernel_size=5,
                 postnet_n_convolutions=5):
        super().__init__()
        self.convolutions = nn.ModuleList()
        self.convolutions.append(nn.Sequential(
            ConvNorm(n_mel_channels, postnet_embedding_dim, kernel_size=postnet_kernel_size,
                     stride=1, padding=int((postnet_kernel_size - 1) / 2), dilation=1,
                     w_init_gain="tanh"),
            nn.BatchNorm1d(postnet_embedding_dim)))
        for _ in range(1, postnet_n_convolutions - 1):
            self.convolutions.append(nn.Sequential(
                ConvNorm(postnet_embedding_dim, postnet_embedding_dim,
                         kernel_size=postnet_kernel_size, stride=1,
                         padding=int((postnet_kernel_size - 1) / 2), dilation=1,
                         w_init_gain="tanh"),
                nn.BatchNorm1d(postnet_embedding_dim)))
        self.convolutions.append(nn.Sequential(
            ConvNorm(postnet_embedding_dim, n_mel_channels, kernel_size=postnet_kernel_size,
                     stride=1, padding=int((postnet_kernel_size - 1) / 2), dilation=1,
                     w_init_gain="linear"),
            nn.BatchNorm1d(n_mel_channels)))

    def forward(self, x):
        for i in range(len(self.convolutions) - 1):
            x = F.dropout(torch.tanh(self.convolutions[i](x)), 0.5, self.training)
        x = F.dropout(self.convolutions[-1](x), 0.5, self.training)
        return x


class MelRefiner(nn.Module):
    """Tacotron 2's inference tail: mel_outputs_postnet = mel_outputs + postnet(mel_outputs)."""

    def __init__(self):
        super().__init__()
        self.postnet = Postnet()

    def forward(self, mel_outputs):
        mel_outputs_postnet = self.postnet(mel_outputs)
        return mel_outputs + mel_outputs_postnet


def tacotron2_postnet():
    torch.manual_seed(0)
    return _randomize_bn(MelRefiner())


# --- sweetcocoa/DeepComplexUNetPytorch (DCUnet: complex_nn.py, unet.py) ---


class ComplexConv2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, **kwargs):
        super().__init__()
        self.conv_re = nn.Conv2d(in_channel, out_channel, kernel_size, stride=stride,
                                 padding=padding, **kwargs)
        self.conv_im = nn.Conv2d(in_channel, out_channel, kernel_size, stride=stride,
                                 padding=padding, **kwargs)

    def forward(self, x):  # shape of x : [batch, channel, axis1, axis2, 2]
        real = self.conv_re(x[..., 0]) - self.conv_im(x[..., 1])
        imaginary = self.conv_re(x[..., 1]) + self.conv_im(x[..., 0])
        return torch.stack((real, imaginary), dim=-1)


class ComplexConvTranspose2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0,
                 output_padding=0):
        super().__init__()
        self.tconv_re = nn.ConvTranspose2d(in_channel, out_channel, kernel_size, stride=stride,
                                           padding=padding, output_padding=output_padding)
        self.tconv_im = nn.ConvTranspose2d(in_channel, out_channel, kernel_size, stride=stride,
                                           padding=padding, output_padding=output_padding)

    def forward(self, x):
        real = self.tconv_re(x[..., 0]) - self.tconv_im(x[..., 1])
        imaginary = self.tconv_re(x[..., 1]) + self.tconv_im(x[..., 0])
        return torch.stack((real, imaginary), dim=-1)


class ComplexBatchNorm2d(nn.Module):
    """The repository's naive complex BN: a BatchNorm2d per real / imaginary part."""

    def __init__(self, num_features):
        super().__init__()
        self.bn_re = nn.BatchNorm2d(num_features)
        self.bn_im = nn.BatchNorm2d(num_features)

    def forward(self, x):
        real = self.bn_re(x[..., 0])
        imag = self.bn_im(x[..., 1])
        return torch.stack((real, imag), dim=-1)


class CEncoder(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding):
        super().__init__()
        self.conv = ComplexConv2d(in_channels, out_channels, kernel_size, stride=stride,
                                  padding=padding)
        self.bn = ComplexBatchNorm2d(out_channels)
        self.relu = nn.LeakyReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class CDecoder(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, last=False):
        super().__init__()
        self.transconv = ComplexConvTranspose2d(in_channels, out_channels, kernel_size,
                                                stride=stride, padding=padding)
        self.bn = ComplexBatchNorm2d(out_channels)
        self.relu = nn.LeakyReLU(inplace=True)
        self.last = last

    def forward(self, x):
        x = self.transconv(x)
        if self.last:
            return x
        return self.relu(self.bn(x))


def pad2d_as(x1, x2):
    # Pad x1 to have same size with x2; inputs are (B, C, F, T, 2)
    diffF = x2.size()[2] - x1.size()[2]
    diffT = x2.size()[3] - x1.size()[3]
    x = F.pad(x1, (0, 0, 0, diffT, 0, diffF))  # pad the last (complex) dim by 0
    return x


def padded_cat(x1, x2, dim):
    x1 = pad2d_as(x1, x2)
    return torch.cat([x1, x2], dim=dim)


class DCUnet(nn.Module):
    """DCUnet-10 at a quarter of the widths on a (batch, 1, freq, time, 2) complex spectrogram;
    the 'bounded' tanh mask: magnitude tanh(|m|), phase m / |m|, applied by complex product."""

    def __init__(self):
        super().__init__()
        self.encoders = nn.ModuleList([
            CEncoder(1, 8, (7, 5), (2, 2), (3, 2)),
            CEncoder(8, 16, (5, 3), (2, 2), (2, 1)),
            CEncoder(16, 16, (5, 3), (2, 2), (2, 1))])
        self.decoders = nn.ModuleList([
            CDecoder(16, 16, (5, 3), (2, 2), (2, 1)),
            CDecoder(32, 8, (5, 3), (2, 2), (2, 1)),
            CDecoder(16, 1, (7, 5), (2, 2), (3, 2), last=True)])

    def forward(self, x):
        xs = []
        p = x
        for enc in self.encoders:
            xs.append(p)
            p = enc(p)
        for i, dec in enumerate(self.decoders):
            p = dec(p)
            if i == len(self.decoders) - 1:
                break
            p = padded_cat(p, xs[len(self.decoders) - 1 - i], dim=1)
        mask = pad2d_as(p, x)
        mask_real, mask_imag = mask[..., 0], mask[..., 1]
        mask_mag = torch.sqrt(mask_real ** 2 + mask_imag ** 2 + 1e-8)
        mask_phase_real = mask_real / mask_mag
        mask_phase_imag = mask_imag / mask_mag
        mask_mag = torch.tanh(mask_mag)
        mr = mask_mag * mask_phase_real
        mi = mask_mag * mask_phase_imag
        xr, xi = x[..., 0], x[..., 1]
        return torch.stack((xr * mr - xi * mi, xr * mi + xi * mr), dim=-1)


def dcunet():
    torch.manual_seed(0)
    return _randomize_bn(DCUnet())


# --- huyanxin/DeepComplexCRN (complexnn.py: ComplexConv2d, ComplexConvTranspose2d on real /
# imaginary halves of the channels) as a complex U-Net with a bounded ratio mask ---


class ComplexConv2dC(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=(1, 1), stride=(1, 1),
                 padding=(0, 0)):
        super().__init__()
        self.real_conv = nn.Conv2d(in_channels // 2, out_channels // 2, kernel_size, stride,
                                   padding)
        self.imag_conv = nn.Conv2d(in_channels // 2, out_channels // 2, kernel_size, stride,
                                   padding)

    def forward(self, inputs):
        real, imag = torch.chunk(inputs, 2, 1)
        real2real = self.real_conv(real)
        imag2imag = self.imag_conv(imag)
        real2imag = self.imag_conv(real)
        imag2real = self.real_conv(imag)
        real = real2real - imag2imag
        imag = real2imag + imag2real
        return torch.cat([real, imag], 1)


class ComplexConvTranspose2dC(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=(1, 1), stride=(1, 1),
                 padding=(0, 0), output_padding=(0, 0)):
        super().__init__()
        self.real_conv = nn.ConvTranspose2d(in_channels // 2, out_channels // 2, kernel_size,
                                            stride, padding, output_padding)
        self.imag_conv = nn.ConvTranspose2d(in_channels // 2, out_channels // 2, kernel_size,
                                            stride, padding, output_padding)

    def forward(self, inputs):
        real, imag = torch.chunk(inputs, 2, 1)
        real2real = self.real_conv(real)
        imag2imag = self.imag_conv(imag)
        real2imag = self.imag_conv(real)
        imag2real = self.real_conv(imag)
        return torch.cat([real2real - imag2imag, real2imag + imag2real], 1)


class DCCRNUnet(nn.Module):
    """DCCRN's complex encoder / decoder (ComplexConv2d, BatchNorm2d over both halves, PReLU;
    decoders read cat(x, skip) and ComplexConvTranspose2d k(5, 2) s(2, 1) p(2, 0), the last
    output_padding (1, 0), the first time frame cut as DCCRN does with [..., 1:]) and its 'E'
    mask: tanh of the magnitude, the phase as the ratio m / |m| (cos, sin), a complex product
    with the input spectrum."""

    def __init__(self, ch=(2, 8, 16)):
        super().__init__()
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(len(ch) - 1):
            self.encoder.append(nn.Sequential(
                ComplexConv2dC(ch[i], ch[i + 1], (5, 2), (2, 1), (2, 1)),
                nn.BatchNorm2d(ch[i + 1]), nn.PReLU()))
        for i in range(len(ch) - 1, 0, -1):
            last = i == 1
            layers = [ComplexConvTranspose2dC(ch[i] * 2, ch[i - 1], (5, 2), (2, 1), (2, 0),
                                              (1, 0))]
            if not last:
                layers += [nn.BatchNorm2d(ch[i - 1]), nn.PReLU()]
            self.decoder.append(nn.Sequential(*layers))

    def forward(self, specs):  # (B, 2, F, T): real and imaginary spectra as channels
        out = specs
        encoder_out = []
        for layer in self.encoder:
            out = layer(out)[..., :-1]  # the causal time pad's extra frame
            encoder_out.append(out)
        for idx, layer in enumerate(self.decoder):
            out = torch.cat([out, encoder_out[-1 - idx]], 1)
            out = layer(out)
            out = out[..., 1:]
        mask_real, mask_imag = out[:, 0:1], out[:, 1:2]
        mask_mags = (mask_real ** 2 + mask_imag ** 2 + 1e-8) ** 0.5
        real_phase = mask_real / mask_mags
        imag_phase = mask_imag / mask_mags
        mask_mags = torch.tanh(mask_mags)
        spec_real, spec_imag = specs[:, 0:1], specs[:, 1:2]
        real = mask_mags * (spec_real * real_phase - spec_imag * imag_phase)
        imag = mask_mags * (spec_real * imag_phase + spec_imag * real_phase)
        return torch.cat([real, imag], 1)


def dccrn():
    torch.manual_seed(0)
    return _randomize_bn(DCCRNUnet())


NETWORKS = (
    Network("enet", "davidtvs/PyTorch-ENet's ENet (InitialBlock conv | max-pool cat, PReLU "
            "encoder, asymmetric 5x1 / 1x5 and dilated bottlenecks, MaxPool2d return_indices "
            "+ MaxUnpool2d decoder, torch.zeros channel padding, ConvTranspose2d output_size)",
            "enet", floats(4, 3, 32, 32)),
    Network("fast_scnn", "Tramac's Fast-SCNN (learning-to-downsample DSConvs, linear "
            "bottlenecks t=6, pyramid pooling 1/2/3/6 bilinear align_corners, feature fusion "
            "scale_factor=4)", "fast_scnn", floats(4, 3, 64, 64)),
    Network("unetpp", "4uiiurz1's NestedUNet (UNet++: VGGBlocks, nested dense skips by cat, "
            "Upsample bilinear align_corners, deep supervision: a list of 3 outputs, --output 2)",
            "unetpp", floats(4, 3, 32, 32), output="2"),
    Network("attention_unet", "LeeJunHyun's AttU_Net (additive attention gates: W_g g + W_x x, "
            "ReLU, psi 1x1 conv + BN + sigmoid, x * psi; nearest Upsample up_conv)",
            "attention_unet", floats(4, 3, 32, 32)),
    Network("restormer", "swz30's Restormer (MDTA: depthwise qkv, einops heads, F.normalize, "
            "softmax over channels x channels with a per-head temperature; GDFN gelu gate; "
            "hand-written LayerNorm via to_3d / to_4d; PixelUnshuffle / PixelShuffle)",
            "restormer", floats(4, 3, 16, 16)),
    Network("nafnet", "megvii's NAFNet (LayerNorm2d as a torch.autograd.Function, SimpleGate "
            "chunk product, simplified channel attention, beta / gamma scales, PixelShuffle "
            "ups, F.pad to a multiple of 4 and crop)", "nafnet", floats(4, 3, 18, 18)),
    Network("vqvae", "rosinality's VQ-VAE-2 bottom encoder + Quantize (distances by "
            "pow / matmul, (-dist).max(1) indices, F.embedding of the codebook, "
            "straight-through input + (q - input).detach(); --output 0)", "vqvae",
            floats(4, 3, 16, 16), output="0"),
    Network("fcos", "tianzhi0549's FCOS (backbone + FPN nearest top-down, shared head: "
            "GroupNorm towers, Scale modules, exp(scale(bbox_pred)), centerness; scores "
            "sigmoid * sigmoid, levels flattened and cat)", "fcos", floats(4, 3, 32, 32)),
    Network("yolox", "Megvii's YOLOX (Focus space-to-depth slicing x[..., ::2, ::2], CSPLayer, "
            "SPPBottleneck max-pools 5/9/13, decoupled head, decode_outputs: meshgrid grids, "
            "exp(wh) * strides)", "yolox", floats(4, 3, 32, 32)),
    Network("crossvit", "IBM's CrossViT (two branches of patch 6 / 4 on 24 / 16 px: bicubic "
            "resize, CLS tokens projected across branches, cross attention with a CLS-only "
            "query, logits averaged)", "crossvit", floats(4, 3, 24, 24)),
    Network("twins_svt", "Meituan's Twins-SVT (locally grouped attention over 4 x 4 windows "
            "with F.pad, global sub-sampled attention by a strided conv + LayerNorm, PosCNN "
            "depthwise PEG)", "twins_svt", floats(4, 3, 40, 40)),
    Network("gat", "pyGAT's GAT (4 heads: Wh = h @ W, e = leakyrelu(Wh a1 + (Wh a2)^T), "
            "torch.where(adj > 0, e, -9e15), softmax, elu; constant 4x4 grid adjacency)",
            "gat", floats(8, 16, 8)),
    Network("graphsage", "a mean-aggregator GraphSAGE as PyG's SAGEConv writes it (adj @ x / "
            "degree, lin_l + lin_r, F.normalize) on a constant grid adjacency", "graphsage",
            floats(8, 16, 8)),
    Network("pointnet2", "yanx27's PointNet++ SSG classifier (index_points by "
            "points[batch_indices, idx, :] with constant FPS / ball-query indices, centring, "
            "Conv2d MLPs, max over the group)", "pointnet2", floats(8, 3, 64)),
    Network("dgcnn", "WangYueFW's DGCNN (knn by pairwise distances and topk, idx + idx_base "
            "gather from x.view(B * N, -1), edge features cat(f - x, x), max over k, "
            "adaptive max + avg pools)", "dgcnn", floats(4, 3, 32)),
    Network("ecapa_tdnn", "TaoRuijie's ECAPA-TDNN on fbank frames (SE-Res2Net Bottle2neck: "
            "torch.split, per-scale dilated conv, cat; attentive statistics pooling with "
            "global mean / std context, softmax over time, sqrt(clamp))", "ecapa_tdnn",
            floats(4, 40, 24)),
    Network("cnn14", "qiuqiangkong's PANNs Cnn14 (log-mel in, bn0 by transpose(1, 3), "
            "ConvBlocks with avg_pool2d, mean over mel, max + mean over time, sigmoid; a dict "
            "output: --output clipwise_output)", "cnn14", floats(4, 1, 32, 32),
            output="clipwise_output"),
    Network("tacotron2_postnet", "NVIDIA's Tacotron 2 Postnet (5 ConvNorm Conv1d k5 + "
            "BatchNorm1d, tanh, dropout) added to the decoder's mel frames", "tacotron2_postnet",
            floats(4, 20, 32)),
    Network("dcunet", "sweetcocoa's Deep Complex U-Net (complex convs / transposed convs as "
            "real pairs over x[..., 0] / x[..., 1], torch.stack, F.pad to the skip, bounded "
            "tanh mask: |m| by sqrt, phase m / |m|, complex product with the input)", "dcunet",
            floats(4, 1, 32, 16, 2)),
    Network("dccrn", "huyanxin's DCCRN complex U-Net (ComplexConv2d / ComplexConvTranspose2d "
            "on the real / imaginary halves of the channels by torch.chunk, BatchNorm2d, PReLU, "
            "causal time crops [..., :-1] / [..., 1:], bounded 'E' mask: tanh|m| * m / |m| "
            "times the spectrum)", "dccrn", floats(4, 2, 32, 16)),
)

"""Capture of every supported op: the QGraph ops and attrs, and the float executor equals torch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, run_float
from tests.quant.opcheck import float_matches


class Fn(nn.Module):
    """A module computing f(x) (for functional forms)."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32) * 2


def _ops(graph):
    return [n.op for n in graph.nodes]


CASES = {
    # name: (module, input shape, expected ops)
    "depthwise": (nn.Conv2d(4, 4, 3, padding=1, groups=4), (2, 4, 7, 7), ["conv2d"]),
    "grouped": (nn.Conv2d(4, 6, 3, groups=2, bias=False), (2, 4, 7, 7), ["conv2d"]),
    "dilated_rect": (nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(2, 1), dilation=(2, 1)),
                     (2, 3, 9, 8), ["conv2d"]),
    "same": (Fn(lambda x: F.conv2d(x, torch.ones(2, 3, 4, 4) / 9, padding="same")),
             (2, 3, 7, 6), ["conv2d"]),
    "valid": (Fn(lambda x: F.conv2d(x, torch.ones(2, 3, 3, 3) / 9, padding="valid")),
              (2, 3, 7, 6), ["conv2d"]),
    "conv1d": (nn.Conv1d(3, 5, 3, stride=2, padding=1), (2, 3, 11), ["conv2d"]),
    "conv1d_same_dil": (nn.Conv1d(3, 5, 3, padding="same", dilation=2, groups=1),
                        (2, 3, 11), ["conv2d"]),
    "maxpool_pad": (nn.MaxPool2d(3, 2, padding=1), (2, 3, 8, 8), ["maxpool2d"]),
    "maxpool_ceil": (nn.MaxPool2d(3, 2, ceil_mode=True), (2, 3, 8, 9), ["maxpool2d"]),
    "maxpool_rect": (nn.MaxPool2d((2, 3), (2, 1)), (2, 3, 8, 9), ["maxpool2d"]),
    "avgpool": (nn.AvgPool2d(2), (2, 3, 8, 8), ["avgpool2d"]),
    "avgpool_pad": (nn.AvgPool2d(3, 2, padding=1), (2, 3, 8, 8), ["avgpool2d"]),
    "avgpool_override": (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, divisor_override=5),
                         (2, 3, 8, 8), ["avgpool2d"]),
    # a divisor per window: the interior-divisor pool times a per-position constant
    "avgpool_exclude_pad": (nn.AvgPool2d(3, 2, padding=1, count_include_pad=False),
                            (2, 3, 8, 8), ["avgpool2d", "constant", "mul"]),
    "avgpool_ceil": (nn.AvgPool2d(3, 2, ceil_mode=True), (2, 3, 8, 8),
                     ["avgpool2d", "constant", "mul"]),
    "avgpool_rect_both": (nn.AvgPool2d((3, 2), (2, 3), padding=1, ceil_mode=True,
                                       count_include_pad=False), (2, 3, 9, 10),
                          ["avgpool2d", "constant", "mul"]),
    "avgpool1d_both": (nn.AvgPool1d(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
                       (2, 3, 10), ["avgpool2d", "constant", "mul"]),
    "poolformer_mixer": (Fn(lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False) - x),
                         (2, 3, 7, 6), ["avgpool2d", "constant", "mul", "lut", "add"]),
    "adaptive": (nn.AdaptiveAvgPool2d((2, 4)), (2, 3, 8, 8), ["avgpool2d"]),
    # PoolFormer's layer scale: the per-channel constant first, a depthwise 1x1 conv
    "channel_scale_first": (Fn(lambda x: torch.tensor([0.5, -1.0, 2.0])[:, None, None] * x),
                            (2, 3, 4, 4), ["conv2d"]),
    "gap": (nn.AdaptiveAvgPool2d(1), (2, 3, 8, 8), ["avgpool2d"]),
    "mean": (Fn(lambda x: x.mean((2, 3))), (2, 3, 5, 4), ["avgpool2d", "reshape"]),
    "mean_keepdim": (Fn(lambda x: x.mean((-1, -2), keepdim=True)), (2, 3, 5, 4), ["avgpool2d"]),
    "maxpool1d": (nn.MaxPool1d(3, 2, padding=1), (2, 3, 11), ["maxpool2d"]),
    "avgpool1d": (nn.AvgPool1d(2), (2, 3, 10), ["avgpool2d"]),
    "adaptive1d": (nn.AdaptiveAvgPool1d(1), (2, 3, 10), ["avgpool2d"]),
    "mean1d": (Fn(lambda x: x.mean(-1)), (2, 3, 10), ["avgpool2d", "reshape"]),
    "relu6": (nn.ReLU6(), (2, 3, 4, 4), ["lut"]),
    "hardtanh": (nn.Hardtanh(-1.0, 2.0), (2, 3, 4, 4), ["lut"]),
    "clamp_min": (Fn(lambda x: x.clamp(min=-0.5)), (2, 3, 4, 4), ["lut"]),
    "hardswish": (nn.Hardswish(inplace=True), (2, 3, 4, 4), ["lut"]),
    "hardsigmoid": (nn.Hardsigmoid(), (2, 3, 4, 4), ["lut"]),
    "silu": (nn.SiLU(inplace=True), (2, 3, 4, 4), ["lut"]),
    "sigmoid": (nn.Sigmoid(), (2, 3, 4, 4), ["lut"]),
    "tanh": (nn.Tanh(), (2, 3, 4, 4), ["lut"]),
    "gelu": (nn.GELU(), (2, 3, 4, 4), ["lut"]),
    "gelu_tanh": (nn.GELU(approximate="tanh"), (2, 3, 4, 4), ["lut"]),
    "leaky_relu": (nn.LeakyReLU(0.2, inplace=True), (2, 3, 4, 4), ["lut"]),
    "softplus": (nn.Softplus(beta=2.0), (2, 3, 4, 4), ["lut"]),  # ZoeDepth's bin regressors
    "elu": (nn.ELU(0.7), (2, 3, 4, 4), ["lut"]),
    "scalar_affine": (Fn(lambda x: (x * 2.0 + 1.0) / 4.0 - 0.5), (2, 3), ["lut"] * 4),
    "rsub": (Fn(lambda x: 1.0 - x), (2, 3), ["lut"]),
    "trivial_scalar": (Fn(lambda x: torch.relu(x * 1.0 + 0)), (2, 3), ["relu"]),
    "mul_same": (Fn(lambda x: x * torch.relu(x)), (2, 3, 4, 4), ["relu", "mul"]),
    "mul_bcast": (Fn(lambda x: x * x.mean((2, 3), keepdim=True)), (2, 3, 4, 4),
                  ["avgpool2d", "mul"]),
    "mul_bcast_left": (Fn(lambda x: x.mean((2, 3), keepdim=True) * x), (2, 3, 4, 4),
                       ["avgpool2d", "mul"]),
    "add_bcast": (Fn(lambda x: x + x.amax((2, 3), keepdim=True).detach() * 0
                     + x.mean((2, 3), keepdim=True)), None, None),
    "cat": (Fn(lambda x: torch.cat([x, torch.relu(x)], 1)), (2, 3, 4, 4),
            ["relu", "lut", "lut", "concat"]),
    # a constant of the image's whole shape (ControlNet's fixed conditioning image): a constant
    # node and the op of two tensors; concatenated too (UNet1DModel's time channels over L)
    "add_image_constant": (Fn(lambda x: x + torch.arange(48.0).view(1, 3, 4, 4) / 10),
                           (2, 3, 4, 4), ["constant", "add"]),
    "div_image_constant": (Fn(lambda x: x / (torch.arange(48.0).view(3, 4, 4) + 1)),
                           (2, 3, 4, 4), ["constant", "mul"]),
    "cat_constant": (Fn(lambda x: torch.cat([torch.ones(len(x), 2, 4, 4), x], 1)),
                     (2, 3, 4, 4), ["constant", "lut", "lut", "concat"]),
    "cat_constant_1d": (Fn(lambda x: torch.cat([x, torch.arange(2.0).view(1, 2, 1).expand(
        len(x), 2, 5)], 1)), (2, 3, 5), ["constant", "lut", "lut", "concat"]),
    "cat_vec": (Fn(lambda x: torch.cat([torch.tanh(x), torch.sigmoid(x)], -1)), (2, 3),
                ["lut", "lut", "concat"]),
    "nearest": (nn.Upsample(scale_factor=2), (2, 3, 4, 5), ["upsample_nearest"]),
    "nearest_rect": (Fn(lambda x: F.interpolate(x, size=(8, 15))), (2, 3, 4, 5),
                     ["upsample_nearest"]),
    "bilinear": (nn.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4, 5),
                 ["upsample_bilinear"]),
    "se_view": (Fn(lambda x: x.mean((2, 3)).view(-1, 3, 1, 1) * x), (2, 3, 4, 4),
                ["avgpool2d", "reshape", "reshape", "mul"]),
    # view_as reads only the other tensor's shape (Beam's gate viewed as the attention output)
    "se_view_as": (Fn(lambda x: x.mean((2, 3)).view_as(torch.zeros(2, 3, 1, 1)) * x),
                   (2, 3, 4, 4), ["avgpool2d", "reshape", "reshape", "mul"]),
    "unsqueeze": (Fn(lambda x: x.mean((2, 3))[:, :, None, None] + x), (2, 3, 4, 4),
                  ["avgpool2d", "reshape", "reshape", "add"]),
    "squeeze_flatten": (Fn(lambda x: F.adaptive_avg_pool2d(x, 1).squeeze(-1).squeeze(-1)),
                        (2, 3, 4, 4), ["avgpool2d", "reshape"]),
    # torch's channels-last view (N, 1, 1, C) is the NHWC memory as it is (sequence mode)
    "permute_noop": (Fn(lambda x: F.adaptive_avg_pool2d(x, 1).permute(0, 2, 3, 1).flatten(1)),
                     (2, 3, 4, 4), ["avgpool2d", "reshape"]),
    "identities": (Fn(lambda x: F.dropout(x.clone().contiguous().detach(), 0.5, False)
                      .to(torch.float32)), (2, 3), []),
    # nn.Dropout(inplace=True) in eval (HF MobileNetV1/V2's and MobileViT's classifiers)
    "dropout_inplace": (nn.Sequential(nn.Conv2d(3, 4, 1), nn.Dropout(0.2, inplace=True),
                                      nn.Flatten(), nn.Linear(4 * 16, 5)), (2, 3, 4, 4),
                        ["conv2d", "flatten", "linear"]),
    # a bilinear resize to the same size (Segformer's first stage in its decode head)
    "bilinear_same_size": (nn.Sequential(nn.Conv2d(3, 4, 1), nn.Upsample(size=(4, 5),
                                                                          mode="bilinear")),
                           (2, 3, 4, 5), ["conv2d"]),
}
CASES.pop("add_bcast")  # amax is not supported; kept out of the table


@pytest.mark.parametrize("name", list(CASES))
def test_capture_matches_torch(name):
    module, shape, ops = CASES[name]
    torch.manual_seed(0)
    module = module.eval()
    graph = float_matches(module, _x(*shape))
    assert _ops(graph) == ops


def test_conv_attrs_are_tuples():
    g = capture(nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                          groups=1).eval(), torch.zeros(1, 3, 8, 8))
    assert g.nodes[0].attrs == {"stride": (2, 1), "padding": (1, 0, 1, 0), "dilation": (1, 2),
                                "groups": 1}
    g = capture(nn.Conv2d(4, 8, 3, groups=4).eval(), torch.zeros(1, 4, 8, 8))
    assert g.nodes[0].params["weight"].shape == (8, 3, 3, 1)  # (OC, KH, KW, IC // groups)


def test_same_padding_puts_the_odd_pixel_bottom_right():
    g = capture(Fn(lambda x: F.conv2d(x, torch.ones(1, 1, 4, 2), padding="same")),
                torch.zeros(1, 1, 6, 6))
    assert g.nodes[0].attrs["padding"] == (1, 0, 2, 1)


def test_conv1d_is_a_height_one_conv_with_ncl_input():
    g = capture(nn.Conv1d(3, 5, 3, stride=2, padding=1, dilation=1).eval(),
                torch.zeros(1, 3, 11))
    n = g.nodes[0]
    assert g.input_layout == "NCL" and g.shapes["input"] == (1, 11, 3)
    assert g.shapes[n.output] == (1, 6, 5) and g.torch_input_shape() == (3, 11)
    assert n.attrs == {"stride": (1, 2), "padding": (0, 1, 0, 1), "dilation": (1, 1),
                       "groups": 1}
    assert n.params["weight"].shape == (5, 1, 3, 3)


def test_ceil_mode_is_extra_bottom_right_padding():
    g = capture(nn.MaxPool2d(3, 2, padding=1, ceil_mode=True).eval(), torch.zeros(1, 1, 8, 9))
    # torch: out = ceil((8 + 2 - 3) / 2) + 1 = 5 rows, 5 cols: the last window reaches row 10
    assert g.nodes[0].attrs == {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1, 2, 1)}
    assert g.shapes[g.output] == (5, 5, 1)


def test_pool_and_clamp_attrs():
    g = capture(nn.AvgPool2d(3, 2, padding=1).eval(), torch.zeros(1, 1, 8, 8))
    assert g.nodes[0].attrs == {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1, 1, 1),
                                "divisor": 9}
    g = capture(nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU6()).eval(), torch.zeros(1, 1, 4, 4))
    assert [(n.op, dict(n.attrs)) for n in g.nodes][1] == ("clamp", {"min": 0.0, "max": 6.0})
    g = capture(nn.Hardtanh(-2, 3).eval(), torch.zeros(1, 4))  # no producer: a table
    assert g.nodes[0].attrs == {"fn": "hardtanh", "fn_args": {"min_val": -2.0, "max_val": 3.0}}


def test_poolformer_pool_divides_border_pixels_by_their_window():
    # AvgPool2d(3, 1, 1, count_include_pad=False) on 4x5: corners average 4 pixels, edges 6
    g = capture(nn.AvgPool2d(3, 1, 1, count_include_pad=False).eval(), torch.zeros(1, 2, 4, 5))
    pool, const, mul = g.nodes
    assert pool.attrs["divisor"] == 9 and mul.inputs == (pool.output, const.output)
    want = np.full((4, 5), 1.0)
    want[[0, -1], :] = want[:, [0, -1]] = 9 / 6
    want[[0, 0, -1, -1], [0, -1, 0, -1]] = 9 / 4
    np.testing.assert_allclose(const.params["value"], np.repeat(want[..., None], 2, -1))


def test_sub_of_two_activations_adds_a_negating_table():
    g = capture(Fn(lambda x: torch.tanh(x) - x).eval(), torch.zeros(1, 3, 4, 4))
    tanh, neg, add = g.nodes
    assert neg.inputs == ("input",) and neg.attrs["fn_args"] == {"scale": -1.0, "offset": 0.0}
    assert add.op == "add" and add.inputs == (tanh.output, neg.output)


def test_gelu_and_leaky_relu_carry_their_arguments():
    g = capture(nn.Sequential(nn.GELU("tanh"), nn.LeakyReLU(0.3)).eval(), torch.zeros(1, 4))
    assert [dict(n.attrs) for n in g.nodes] == [
        {"fn": "gelu", "fn_args": {"approximate": "tanh"}},
        {"fn": "leaky_relu", "fn_args": {"negative_slope": 0.3}}]


def test_broadcast_operand_is_second():
    g = capture(CASES["mul_bcast_left"][0].eval(), torch.zeros(1, 3, 4, 4))
    mul = g.nodes[-1]
    assert g.shapes[mul.inputs[0]] == (4, 4, 3) and g.shapes[mul.inputs[1]] == (1, 1, 3)


def test_concat_of_requantizers_needs_no_requant_nodes():
    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(2, 3, 1), nn.Conv2d(2, 4, 1)

        def forward(self, x):
            return torch.cat([torch.relu(self.a(x)), self.b(x)], 1) * 1.5

    g = capture(Cat().eval(), torch.zeros(1, 2, 4, 4))
    assert _ops(g) == ["conv2d", "relu", "conv2d", "concat", "lut"]


@pytest.mark.parametrize("model, shape, reason", [
    (nn.AdaptiveAvgPool2d((1, 3)), (1, 1, 2, 400), "windows of more than 127 pixels"),
    (Fn(lambda x: F.interpolate(x, scale_factor=0.5, mode="bicubic", antialias=True)),
     (1, 1, 4, 4), "antialias=True"),
    # along H of activations is a concat of permuted images (test_image_views), with a
    # constant part too (test_cat_spatial_constant); a part that differs between samples not
    (Fn(lambda x: torch.cat([x, torch.arange(64.0).view(2, 2, 4, 4)], 2)), (2, 2, 4, 4),
     "differs between samples"),
    # RAFT's two frames through one encoder (torchvision's raft_small): samples never join
    (nn.Sequential(Fn(lambda x: torch.cat([x[:, :2], x[:, 2:]], 0)), nn.Conv2d(2, 2, 1)),
     (1, 4, 4, 4), r"cat along the batch axis \(dim 0\) of a rank-4 tensor: each sample runs"),
    (Fn(lambda x: x * torch.arange(32.0).view(1, 2, 4, 4)), (1, 1, 4, 4),
     "broadcasts the activation"),  # a constant widening the image (a per-pixel one: CASES)
    (Fn(lambda x: x + torch.arange(32.0).view(2, 1, 4, 4)), (2, 1, 4, 4),
     "differs between samples"),
    (Fn(lambda x: x.mean(1)), (1, 2, 4, 4), "only over all spatial"),
    # over the channels with keepdim it runs (tests/quant/test_channel_reductions.py)
    (Fn(lambda x: x * x.mean((1, 2), keepdim=True)), (1, 2, 4, 4), "only over all spatial"),
    (Fn(lambda x: F.elu(x) + F.selu(x)), (1, 4), "selu"),
])
def test_unsupported_forms_say_why(model, shape, reason):
    with pytest.raises(UnsupportedOpError, match=reason):
        capture(model.eval(), torch.zeros(shape))


def test_a_vector_viewed_as_a_sequence_is_held_in_torchs_layout():
    """A vector viewed as (4, 8) was refused (an image model's channels-last view would read it
    as (8, 4)); it now enters sequence mode (lowering_seq.from_vector), torch's layout."""
    x = torch.randn(2, 2, 4, 4)
    g = capture(Fn(lambda x: x.flatten(1).view(x.shape[0], 4, 8)).eval(), x[:1])
    assert g.output_layout == "torch" and g.shapes[g.output] == (4, 8)
    y = run_float(g, g.to_internal(x.numpy()))
    np.testing.assert_array_equal(y.reshape(2, 4, 8), x.flatten(1).view(2, 4, 8).numpy())


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_layers_are_captured_unrolled(cell):
    """They were refused in one line; quant.lstm unrolls them (tests/quant/test_lstm.py)."""
    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cell(4, 4, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    g = capture(Seq().eval(), torch.zeros(1, 3, 4))
    assert g.shapes[g.output] == (3, 4) and [n for n in g.nodes if n.op == "concat"]


def test_non_persistent_buffers_capture():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.register_buffer("offset", torch.zeros(4), persistent=False)

        def forward(self, x):
            return self.fc(x + self.offset.sum())

    x = _x(5, 4)
    graph = float_matches(Scaled().eval(), x)
    assert "linear" in _ops(graph)


def test_saved_exported_program_quantizes(tmp_path):
    from qasic.models.user import user_trained_model
    from qasic.quant import QuantConfig, quantize, run_dequantized
    from qasic.quant.evaluate import cosine

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    x = _x(64, 1, 6, 6)
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.from_numpy(x[:1]),)), str(path))
    loaded = torch.export.load(str(path))
    g = quantize(loaded, torch.from_numpy(x[:1]), x, QuantConfig(8))
    assert cosine(run_dequantized(g, x), net(torch.from_numpy(x)).detach().numpy()) > 0.999
    np.savez(tmp_path / "data.npz", calibration=x)
    model = user_trained_model(str(path), str(tmp_path / "data.npz"))  # its module(): no eval()
    g2 = quantize(model.module, model.example_input, model.calibration, QuantConfig(8))
    assert [n.op for n in g2.nodes] == [n.op for n in g.nodes]


class Aliases(nn.Module):
    """torch.multiply / subtract / divide export as aten.multiply etc. (ConvBERT's
    ``torch.multiply(key_conv, query)``): the same ops as * - /."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        y = torch.multiply(self.a(x), self.b(x))
        return torch.divide(torch.subtract(y, 0.5), 2.0)


def test_multiply_subtract_divide_are_mul_sub_div():
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    model = Aliases().eval()
    g = capture(model, torch.from_numpy(x))
    assert [n.op for n in g.nodes] == ["linear", "linear", "mul", "lut"]
    want = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), want, rtol=1e-5, atol=1e-5)

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, run_float


def _float_out(graph, module, x):
    with torch.no_grad():
        want = module(torch.from_numpy(x)).double().numpy()
    return run_float(graph, graph.to_internal(x)), want


def _randomize_bn(module):
    """Non-trivial running statistics and affine parameters, so folding has work to do."""
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(torch.randn(n, generator=gen))
    return module.eval()


def test_bn_folding_equals_the_float_module():
    torch.manual_seed(0)
    module = _randomize_bn(nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 4 * 4, 6), nn.BatchNorm1d(6),
    ))
    x = np.random.default_rng(0).normal(size=(5, 3, 8, 8)).astype(np.float32)
    graph = capture(module, torch.from_numpy(x[:1]))
    assert [n.op for n in graph.nodes] == ["conv2d", "relu", "flatten", "linear"]
    got, want = _float_out(graph, module, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_captured_cnn_equals_torch(digits_cnn, cnn_fgraph):
    got, want = _float_out(cnn_fgraph, digits_cnn.module, digits_cnn.test_inputs)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_cnn_graph_structure(cnn_fgraph):
    g = cnn_fgraph
    assert [(n.name, n.op) for n in g.nodes] == [
        ("conv1", "conv2d"), ("relu1", "relu"), ("conv2", "conv2d"), ("relu2", "relu"),
        ("pool", "maxpool2d"), ("flatten", "flatten"), ("fc", "linear"),
    ]
    assert g.shapes["input"] == (8, 8, 1) and g.shapes["conv2"] == (8, 8, 32)
    assert g.shapes["pool"] == (4, 4, 32) and g.shapes["flatten"] == (512,)
    assert g.node("conv2").params["weight"].shape == (32, 3, 3, 16)  # (OC, KH, KW, IC)
    assert g.node("fc").params["weight"].shape == (10, 512)          # as in torch
    assert g.nodes[0].attrs == {"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1),
                                "groups": 1}


@pytest.mark.filterwarnings("ignore::FutureWarning")  # inside torch's run_decompositions
def test_decomposed_export_captures_the_same_graph(digits_cnn, cnn_fgraph):
    ep = torch.export.export(digits_cnn.module, (digits_cnn.example_input,)).run_decompositions()
    graph = capture(ep, digits_cnn.example_input)
    assert [n.op for n in graph.nodes] == [n.op for n in cnn_fgraph.nodes]
    got, want = _float_out(graph, digits_cnn.module, digits_cnn.test_inputs[:1])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


class Cumprod(nn.Module):  # (cumsum is captured in sequence models: Mamba-2's chunked scan)
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.cumprod(self.fc(x), dim=1)


class CumsumModule(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


def test_unsupported_function_names_node_target_and_supported_ops():
    with pytest.raises(UnsupportedOpError) as e:
        capture(Cumprod(), torch.zeros(1, 4))
    msg = str(e.value)
    assert msg.startswith("node 'cumprod': op aten.cumprod.default is not supported; ")
    assert msg.endswith("; supported ops: `qasic ops` lists them, one form per line")
    assert "\n" not in msg and len(msg) < 200


def test_a_batch_norm_with_no_layer_before_it_is_a_depthwise_conv_or_a_diagonal_linear():
    img = capture(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4)).eval(), torch.zeros(1, 4, 3, 3))
    vec = capture(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(4)).eval(), torch.zeros(1, 4))
    conv, lin = img.nodes[-1], vec.nodes[-1]
    assert (conv.op, conv.attrs["groups"], conv.params["weight"].shape) == ("conv2d", 4,
                                                                           (4, 1, 1, 1))
    assert lin.op == "linear" and np.count_nonzero(lin.params["weight"]) == 4


def test_unsupported_module_names_its_path():
    model = nn.Sequential(nn.Linear(4, 4), CumsumModule())
    with pytest.raises(UnsupportedOpError, match=r"node 'cumsum' \(module 1.cumsum\): op "
                                                 r"aten.cumsum"):
        capture(model, torch.zeros(1, 4))


@pytest.mark.parametrize("model, shape, reason", [
    (nn.Sequential(nn.Conv2d(4, 4, 3), nn.MaxPool2d(2, dilation=2)), (1, 4, 8, 8), "dilation"),
])
def test_unsupported_configurations(model, shape, reason):
    with pytest.raises(UnsupportedOpError, match=reason):
        capture(model.eval(), torch.zeros(shape))


def test_conv_keyword_arguments_and_no_bias():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 2, 3, 3))

        def forward(self, x):
            return torch.nn.functional.conv2d(x, self.w, stride=2, padding=1)

    model = Functional().eval()
    x = np.random.default_rng(0).normal(size=(2, 2, 8, 8)).astype(np.float32)
    graph = capture(model, torch.from_numpy(x[:1]))
    assert graph.nodes[0].attrs == {"stride": (2, 2), "padding": (1, 1, 1, 1),
                                    "dilation": (1, 1), "groups": 1}
    got, want = _float_out(graph, model, x)
    np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, rtol=1e-4, atol=1e-4)


class CachesInForward(nn.Module):
    """Adds a bias that a submodule caches in its forward, as x-transformers' ALiBi registers
    its bias as a buffer: under export the cache is a fake tensor."""

    class Cache(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("bias", None, persistent=False)

        def forward(self, n):
            if self.bias is None:
                self.register_buffer("bias", torch.arange(float(n)), persistent=False)
            return self.bias

    def __init__(self):
        super().__init__()
        self.fc, self.cache = nn.Linear(4, 4), self.Cache()

    def forward(self, x):
        return self.fc(x) + self.cache(x.shape[-1])


def test_tensors_a_module_caches_while_traced_are_put_back():
    """Before: the model kept the trace's fake tensor and its float run after capture failed
    ('.numpy() is not supported for tensor subclasses')."""
    model, x = CachesInForward().eval(), np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    graph = capture(model, torch.from_numpy(x))
    assert model.cache.bias is None and "bias" in model.cache._buffers
    got, want = _float_out(graph, model, x)  # the model runs after capture, in eager mode
    assert type(model.cache.bias) is torch.Tensor
    np.testing.assert_allclose(got, want, atol=1e-6)


class TokenGrid(torch.nn.Module):
    """A (batch, H, W) grid of token ids (aMUSEd's UVit2DModel, MaskGIT): embedded, mixed."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.e, self.l = torch.nn.Embedding(16, 8), torch.nn.Linear(8, 3)

    def forward(self, ids):
        return self.l(self.e(ids)).flatten(1, 2)


def test_a_grid_of_token_ids_runs_bit_exact_and_other_shapes_are_named():
    import qasic
    from qasic.errors import InputError

    ids = np.random.default_rng(0).integers(0, 16, (4, 4, 5))
    r = qasic.evaluate(TokenGrid().eval(), ids, calibration=ids)
    assert r["bit_exact"] and r["cosine"] > 0.999
    graph = capture(TokenGrid().eval(), torch.from_numpy(ids[:2]))
    assert graph.shapes[graph.input] == (4, 5)
    from qasic.quant import QuantConfig, quantize

    q = quantize(graph, None, ids, QuantConfig(8))
    with pytest.raises(InputError, match=r"shape \(4, 20\) do not fit .*expected \(batch, 4, 5\)"):
        q.quantize_input(ids.reshape(4, 20))


class _ToDevice(nn.Module):
    """Qwen2-Audio's encoder: a Conv1d net whose activations are moved ``.to(device)`` (and, with
    ``half``, to float16 as well)."""

    def __init__(self, half: bool = False):
        super().__init__()
        self.conv, self.half = nn.Conv1d(3, 8, 3, padding=1), half

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return y.to(x.device, torch.float16 if self.half else torch.float32)


def test_a_move_to_the_same_device_and_dtype_is_the_value_itself():
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(2, 3, 12)).astype(np.float32)
    graph = capture(_ToDevice().eval(), torch.from_numpy(x))
    assert [n.op for n in graph.nodes] == ["conv2d", "relu"]  # the move is no node
    with pytest.raises(UnsupportedOpError, match="a cast to torch.float16; the model must stay "
                                                 "in torch.float32"):
        capture(_ToDevice(half=True).eval(), torch.from_numpy(x))


class _Uniform(nn.Module):
    """PatchTST's scaler without missing values: a Conv1d net's activations times a constant
    of one value everywhere (its all-observed mask; here 0.5), shaped like them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)) * torch.full((1, 8, 12), 0.5)


def test_a_constant_of_one_value_everywhere_is_a_scalar():
    torch.manual_seed(0)
    module = _Uniform().eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 12)).astype(np.float32)
    graph = capture(module, torch.from_numpy(x))
    assert [n.op for n in graph.nodes] == ["conv2d", "relu", "lut"]
    got, want = _float_out(graph, module, x)  # got channels-last: (2, 1, 12, 8)
    np.testing.assert_allclose(got.reshape(2, 12, 8).transpose(0, 2, 1), want, atol=1e-5)


class _DivByChannels(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)
        self.register_buffer("k", torch.tensor(k).reshape(1, 3, 1, 1))

    def forward(self, x):
        return self.conv(x) / self.k


def test_division_by_a_per_channel_constant_folds_and_a_zero_channel_is_refused():
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 4)).astype(np.float32)
    model = _DivByChannels([1.0, 2.0, 4.0]).eval()
    got, want = _float_out(capture(model, torch.from_numpy(x)), model, x)
    np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(UnsupportedOpError, match="0 in channel 1"):
        capture(_DivByChannels([1.0, 0.0, 4.0]).eval(), torch.from_numpy(x))


class _AlongWidth(nn.Module):
    """A (4,) constant added to a (N, 4, H, 4) map: torch broadcasts it along the width, which
    has as many entries as the channels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x) + torch.arange(4.0)


def test_a_constant_along_the_width_is_not_taken_for_one_per_channel():
    torch.manual_seed(0)
    module = _AlongWidth().eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
    graph = capture(module, torch.from_numpy(x))
    assert [n.op for n in graph.nodes] == ["conv2d", "constant", "add"]
    got, want = _float_out(graph, module, x)
    np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, atol=1e-5)

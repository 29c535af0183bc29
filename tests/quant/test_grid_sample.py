"""F.grid_sample at locations the model computes (quant.grid_sample): a linear (distance to each
pixel) and a kernel table per axis, their product and a matmul with the map. The float graph
equals torch, the quantized model simulates bit-exact to the golden reference close to torch;
multi-scale deformable attention (transformers' pure-PyTorch MultiScaleDeformableAttention)
runs as it is; what is not built is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.arch.config import default_arch
from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, capture, quantize, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.grid_sample import weights

S, D, C, SIDE = 16, 8, 6, 4  # 16 tokens: a 4x4 map of C channels, sampled at 16 locations


class GridNet(nn.Module):
    """(batch, 16, D) -> a 4x4 map of C channels sampled at a grid each token predicts (tanh
    times ``reach``: beyond [-1, 1], so padding matters) -> (batch, 16, D)."""

    def __init__(self, mode: str = "bilinear", padding: str = "zeros", align: bool = False,
                 reach: float = 1.2, grid: torch.Tensor | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.value, self.where, self.out = nn.Linear(D, C), nn.Linear(D, 2), nn.Linear(C, D)
        self.mode, self.padding, self.align, self.reach = mode, padding, align, reach
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        v = self.value(x).transpose(1, 2).reshape(b, C, SIDE, SIDE)
        g = self.grid if self.grid is not None else (
            self.reach * torch.tanh(self.where(x))).view(b, SIDE, SIDE, 2)
        y = F.grid_sample(v, g, mode=self.mode, padding_mode=self.padding,
                          align_corners=self.align)
        return self.out(y.flatten(2).transpose(1, 2))


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, S, D)).astype(np.float32)


def _float_matches(net: nn.Module, x: np.ndarray):
    g = capture(net.eval(), torch.from_numpy(x[:1]))
    with torch.no_grad():
        want = net(torch.from_numpy(x)).double().numpy()
    got = run_float(g, g.to_internal(x)).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    return g


def _simulated(net: nn.Module, cal: np.ndarray, x: np.ndarray) -> float:
    """Golden reference == simulator (asserted); the cosine to torch."""
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional

    g = quantize(net.eval(), torch.from_numpy(cal[:1]), cal, QuantConfig())
    codes = g.quantize_input(x)
    want = reference.run(g, codes)
    got = run_functional(compile_graph(g, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with torch.no_grad():
        f = net(torch.from_numpy(x)).numpy()
    return cosine(g.dequantize_output(want).reshape(f.shape), f)


@pytest.mark.parametrize(("mode", "padding", "align"), [
    ("bilinear", "zeros", False), ("bilinear", "zeros", True), ("bilinear", "border", False),
    ("bilinear", "border", True), ("nearest", "zeros", False)])
def test_float_graph_equals_torch(mode, padding, align):
    g = _float_matches(GridNet(mode, padding, align), _x(3))
    ops = [n.op for n in g.nodes]
    assert ops.count("matmul") == 1 and ops.count("mul") == 1
    kernels = [n.attrs["fn"] for n in g.nodes if n.name.endswith("_kernel")]
    assert kernels == ["hat" if mode == "bilinear" else "box"] * 2


def test_weights_are_torch_bilinear_sampling():
    """The float definition (quant.grid_sample.weights) times a map is torch's grid_sample."""
    torch.manual_seed(2)
    v, grid = torch.randn(1, 3, 5, 7), 1.3 * torch.rand(1, 4, 6, 2) * 2 - 1.3
    for padding in ("zeros", "border"):
        for align in (False, True):
            want = F.grid_sample(v, grid, padding_mode=padding, align_corners=align)[0]
            w = weights(grid[0].numpy(), 5, 7, "bilinear", padding, align)  # (4, 6, 35)
            got = np.einsum("hwp,cp->chw", w, v[0].reshape(3, 35).numpy())
            np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


@pytest.mark.parametrize(("mode", "padding", "align", "floor"), [
    ("bilinear", "zeros", False, 0.995), ("bilinear", "border", True, 0.995),
    ("nearest", "zeros", False, 0.97)])
def test_quantized_simulates_bit_exact_close_to_torch(mode, padding, align, floor):
    """W8A8: simulator == golden reference; cosine to torch (measured bilinear 0.9997,
    nearest 0.988: a location near a pixel boundary may round to the other pixel)."""
    c = _simulated(GridNet(mode, padding, align), _x(32), _x(4, seed=1))
    assert c > floor, c


def test_distances_and_weights_have_fixed_encodings():
    """The distances are codes of [-1, 1] (the tent's support), the kernel values of [0, 1],
    the weights the matmul's symmetric operand of [-1, 1]: whatever the calibration saw."""
    g = quantize(GridNet(), torch.from_numpy(_x(1)), _x(8), QuantConfig())
    t = {n.name.rsplit(".", 1)[-1]: g.tensors[n.output] for n in g.nodes
         if n.name.startswith("grid_sampler")}
    assert (t["x_dist"].scale, t["x_dist"].zero_point) == (1 / 127, 0)
    assert (t["y_kernel"].scale, t["y_kernel"].zero_point) == (1 / 255, -128)
    assert (t["weights"].scale, t["weights"].zero_point) == (1 / 127, 0)


def test_constant_grid_is_one_linear():
    """A constant grid (a fixed resampling): one linear of the flattened pixels."""
    grid = torch.rand(1, SIDE, SIDE, 2) * 2 - 1
    net = GridNet(grid=grid)
    g = _float_matches(net, _x(1))
    assert not any(n.op in ("matmul", "lut") for n in g.nodes)
    assert any(n.name.endswith(".resampled") for n in g.nodes)


class HeadGrids(nn.Module):
    """A constant grid per head (a deformable decoder's first layer: its learned queries'
    locations), the batch folded into the heads as transformers folds it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.value, self.out = nn.Linear(D, C), nn.Linear(C // 2, D)
        self.register_buffer("grid", torch.rand(2, SIDE, SIDE, 2) * 2.2 - 1.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        v = self.value(x).transpose(1, 2).reshape(b * 2, C // 2, SIDE, SIDE)
        y = F.grid_sample(v, self.grid.repeat(b, 1, 1, 1), align_corners=False)
        return self.out(y.view(b, 2, C // 2, S).sum(1).transpose(1, 2))


def test_constant_grid_per_head_is_a_matmul_by_constant_weights():
    net = HeadGrids().eval()
    g = _float_matches(net, _x(3))
    ops = {n.op for n in g.nodes if n.name.startswith("grid_sampler")}
    assert {"constant", "matmul"} <= ops and "lut" not in ops, ops
    weights_node = next(n for n in g.nodes if n.op == "constant")
    assert weights_node.params["value"].shape == (2, S, S)  # per head: 16 locations x 16 pixels
    assert _simulated(net, _x(32), _x(4, seed=1)) > 0.999


@pytest.mark.parametrize(("kw", "says"), [
    ({"padding": "reflection"}, "padding_mode='reflection'"),
    ({"mode": "bicubic"}, "mode='bicubic'"),
])
def test_what_is_not_built_is_refused_in_one_line(kw, says):
    with pytest.raises(UnsupportedOpError) as e:
        capture(GridNet(**kw).eval(), torch.from_numpy(_x(1)))
    assert says in str(e.value) and "grid_sampler" in str(e.value) and "\n" not in str(e.value)


HEADS, LEVELS, POINTS, SHAPES = 2, 2, 2, [(4, 4), (2, 2)]
Q = 20  # 16 + 4 tokens of the two levels, each a query


class Deformable(nn.Module):
    """Multi-scale deformable attention as Deformable DETR's encoder calls it: values, sampling
    offsets around reference points and softmaxed weights from the tokens, transformers'
    MultiScaleDeformableAttention (its pure-PyTorch path) between them."""

    def __init__(self):
        super().__init__()
        modeling = pytest.importorskip("transformers.models.deformable_detr."
                                       "modeling_deformable_detr")
        torch.manual_seed(0)
        self.value, self.out = nn.Linear(D, D), nn.Linear(D, D)
        self.offsets = nn.Linear(D, HEADS * LEVELS * POINTS * 2)
        self.attn = nn.Linear(D, HEADS * LEVELS * POINTS)
        self.msda = modeling.MultiScaleDeformableAttention()
        self.register_buffer("ref", torch.rand(1, Q, 1, LEVELS, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        v = self.value(x).view(b, Q, HEADS, D // HEADS)
        loc = self.ref + 0.3 * torch.tanh(self.offsets(x)).view(b, Q, HEADS, LEVELS, POINTS, 2)
        a = torch.softmax(self.attn(x).view(b, Q, HEADS, LEVELS * POINTS), -1)
        o = self.msda(v, None, SHAPES, None, loc, a.view(b, Q, HEADS, LEVELS, POINTS), 64)
        return self.out(o)


def test_multi_scale_deformable_attention_simulates_bit_exact():
    """Float graph == torch; W8A8 simulator == golden reference, cosine 0.9997 measured.
    One grid sample per level: 2 weight matmuls."""
    net = Deformable().eval()
    rng = np.random.default_rng(0)
    cal, x = (rng.standard_normal((n, Q, D)).astype(np.float32) for n in (32, 4))
    g = _float_matches(net, x)
    assert sum(n.name.endswith(".sampled") for n in g.nodes) == LEVELS
    assert _simulated(net, cal, x) > 0.998


class Warp(nn.Module):
    """A conv net warping its features by a flow it predicts (optical-flow warping, a spatial
    transformer's sampling): grid = base + flow.permute(0, 2, 3, 1), an image model's map."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.feat, self.flow = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 2, 3, padding=1)
        self.out = nn.Conv2d(4, 4, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 6), torch.linspace(-1, 1, 6), indexing="ij")
        self.register_buffer("base", torch.stack((xs, ys), -1)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.base + 0.3 * torch.tanh(self.flow(x)).permute(0, 2, 3, 1)
        return self.out(F.grid_sample(self.feat(x), grid, align_corners=True))


def test_flow_warp_of_an_image_model_simulates_bit_exact():
    """The map stays an image (H, W, C): the weights (Hg Wg, H W) times its pixels (H W, C);
    float graph == torch, golden == simulator, cosine 0.9997 measured."""
    c = _float_matches_and_bit_exact(Warp(), 6)
    assert c > 0.998, c


class CorrLookup(nn.Module):
    """RAFT's CorrBlock: the all-pairs correlation of two feature maps viewed as one map per
    pixel folded into the batch, (batch * H * W, 1, H, W), a context conv (image mode again),
    the maps sampled at a 3x3 window around each pixel (RAFT's first lookup: a constant grid),
    the samples viewed back as channels for a conv."""

    def __init__(self, side: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.f1, self.f2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)
        self.ctx, self.out = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(9, 4, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side),
                                indexing="ij")
        self.register_buffer("base", torch.stack((xs, ys), -1)[None])
        d = torch.linspace(-2 / (side - 1), 2 / (side - 1), 3)
        dy, dx = torch.meshgrid(d, d, indexing="ij")
        self.register_buffer("delta", torch.stack((dx, dy), -1)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        a, c = self.f1(x), self.f2(x)
        corr = torch.matmul(a.view(b, 4, h * w).transpose(1, 2), c.view(b, 4, h * w)) / 2.0
        corr = corr.reshape(b * h * w, 1, h, w)
        ctx = torch.relu(self.ctx(x))
        grid = self.base.expand(b, h, w, 2).reshape(b * h * w, 1, 1, 2) + self.delta
        s = F.grid_sample(corr, grid, align_corners=True)  # (batch * H * W, 1, 3, 3)
        return self.out(s.view(b, h, w, 9).permute(0, 3, 1, 2)) + ctx


def test_correlation_maps_folded_into_the_batch_simulate_bit_exact():
    """RAFT's lookup in an image model back in image mode: the maps (batch * H * W, 1, H, W)
    are in torch's order (made in sequence mode), sampled there, and the model goes on in
    sequence mode until the conv; float graph == torch, golden == simulator."""
    c = _float_matches_and_bit_exact(CorrLookup(), 4)
    assert c > 0.99, c


def _float_matches_and_bit_exact(net: nn.Module, side: int) -> float:
    """``net`` on 3 random (3, side, side) images: the float graph equals torch, and the
    simulator equals the golden reference on the quantized graph (16 calibration images).
    Returns the golden output's cosine to torch's."""
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional
    from tests.quant.opcheck import to_torch_layout

    net = net.eval()
    rng = np.random.default_rng(0)
    cal, x = (rng.standard_normal((n, 3, side, side)).astype(np.float32) for n in (16, 3))
    g = capture(net, torch.from_numpy(x[:1]))
    with torch.no_grad():
        want = net(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(to_torch_layout(run_float(g, g.to_internal(x)), want), want,
                               atol=1e-5)
    q = quantize(net, torch.from_numpy(cal[:1]), cal, QuantConfig())
    codes = q.quantize_input(x)
    ref = reference.run(q, codes)
    got = run_functional(compile_graph(q, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(ref.shape), ref)
    return cosine(to_torch_layout(q.dequantize_output(ref), want), want)

"""``F.grid_sample`` at locations the model computes, as ops the accelerator already runs.

Bilinear sampling is a weighted sum over the map's pixels with the tent kernel:

    out[c, q] = sum_p  hat(x_q - px) hat(y_q - py)  V[c, p]        hat(u) = max(0, 1 - |u|)

x_q, y_q are the query's location in pixels (align_corners=False: x = ((g + 1) W - 1) / 2,
True: x = (g + 1) (W - 1) / 2, g the grid's normalized coordinate); zero padding is the pixels
outside the map not existing. x_q is a function of one activation (the grid's code), so for a
map of H x W pixels (a sequence model's per-sample grid (..., Hg, Wg, 2), map (..., C, H, W);
an image model's map (H, W, C) at a grid made channels last, a flow warp's base +
flow.permute(0, 2, 3, 1): out (Hg Wg, C) = w @ pixels (H W, C), an image again):

    ux = linear(grid)     (..., Hg, Wg, HW)  ux[p] = a g_x + b - px   (weights (a, 0), bias b - px)
    uy = linear(grid)     (..., Hg, Wg, HW)  uy[p] = a g_y + b - py
    tx = lut hat(ux), ty = lut hat(uy)       the tent, one 2^B-entry table of a code
    w  = mul(tx, ty)      (..., Hg Wg, HW)   the bilinear weight of every pixel
    out = matmul(V, w, transpose_b)  (..., C, Hg Wg)   the map as the dynamic operand

``ux``/``uy`` have the fixed encoding of [-1, 1] (``encodings.FIXED_CODES``: the tent's support;
beyond it the codes saturate where the tent is 0), ``tx``/``ty`` of [0, 1], ``w`` the matmul's
symmetric one of [-1, 1]. ``nearest`` takes the box ``|u| < 1/2`` instead of the tent;
``border`` padding first clamps the location to the map: a linear to [0, 1] units of each
axis (``<node>.unit``) and a clamp table (``<node>.clamped``). Reflection padding and bicubic
interpolation are refused. Cost per map: 2 Hg Wg H W (the two K=2 linears) + Hg Wg H W (the
product) + C Hg Wg H W MACs (the matmul), dense over every pixel: the locations are not known
when the program is compiled.

A constant grid is a fixed resampling: the same weights, computed here in float, as one linear
over the map's flattened pixels (one grid for every map), or a matmul by a ``constant`` node
(one grid per map: a deformable decoder's first layer, whose queries are learned constants).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from qasic.quant import lowering_seq
from qasic.quant.encodings import FIXED_CODES
from qasic.quant.lowering import Act, _act

MODES = {0: "bilinear", 1: "nearest", 2: "bicubic"}
PADDINGS = {0: "zeros", 1: "border", 2: "reflection"}
# the kernel of each mode: the lut's function of the distance to a pixel, in pixels
KERNELS = {"bilinear": "hat", "nearest": "box"}
UNIT = (1.0 / 127, 0, 8)                # [-1, 1]: the kernels' support, int8 symmetric
WEIGHT = (1.0 / 255, -128, 8)           # [0, 1]: a kernel's value
PRODUCT = (1.0 / 127, 0, 8)             # [0, 1] as the matmul's symmetric operand
CLAMPED = (1.0 / 255, -128, 8)          # [0, 1]: a border-clamped location in axis units


def sample(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.grid_sampler / grid_sampler_2d(x, grid, interpolation, padding, align_corners)."""
    x, grid = args[0], args[1]
    mode, padding = MODES.get(int(args[2]), str(args[2])), PADDINGS.get(int(args[3]), "?")
    align = bool(args[4])
    if mode not in KERNELS:
        b.fail(node, f"grid_sample mode={mode!r}; only 'bilinear' and 'nearest' are built "
                     "(bicubic reads 4x4 pixels: a kernel over two pixels each way)")
    if padding not in ("zeros", "border"):
        b.fail(node, f"grid_sample padding_mode={padding!r}; only 'zeros' and 'border' are "
                     "built")
    if isinstance(x, torch.Tensor):
        b.fail(node, "grid_sample of a constant map at computed locations is not built; "
                     "the map must be an activation")
    x = _act(b, node, x, "grid_sample input")
    if not b.sequence and len(b.shapes[x.name]) == 3:
        return _image(b, node, x, grid, mode, padding, align)
    # else torch's order, in an image model too: maps folded into the batch with other axes,
    # made in sequence mode (RAFT's correlation volume, (batch * H * W, 1, H, W)); the model
    # goes on in sequence mode, whose views know the folded batch
    b.sequence = True
    sx = b.shapes[x.name]
    h, w = int(sx[-2]), int(sx[-1])
    if isinstance(grid, torch.Tensor):
        return _fixed(b, node, x, grid, mode, padding, align)
    grid = _act(b, node, grid, "grid_sample grid")
    sg = b.shapes[grid.name]
    if len(sx) < 3 or len(sg) != len(sx) or sg[-1] != 2 or sg[:-3] != sx[:-3]:
        b.fail(node, f"grid_sample of a map of per-sample shape {sx} at a grid of {sg}; "
                     "the grid must be (..., H_out, W_out, 2) with the map's leading axes")
    wt = _weights(b, node, grid, h, w, mode, padding, align)
    q = int(np.prod(sg[-3:-1]))
    wt = lowering_seq.reshaped(b, node, wt, sg[:-3] + (q, h * w), suffix=".rows")
    v = lowering_seq.reshaped(b, node, x, sx[:-2] + (h * w,), suffix=".pixels")
    from qasic.quant.lowering_transformer import matmul_node  # it imports this module

    out = matmul_node(b, node, v, wt, True, 1.0, suffix=".sampled")
    return lowering_seq.reshaped(b, node, out, sx[:-2] + tuple(sg[-3:-1]))


def _weights(b: Any, node: Any, grid: Act, h: int, w: int, mode: str, padding: str,
             align: bool) -> Act:
    """The sampling weights (..., Hg, Wg, H W) of an activation grid (..., Hg, Wg, 2)."""
    if padding == "border":
        grid = _clamped(b, node, grid, h, w, align)
        ax, bx, ay, by = w - 1, 0.0, h - 1, 0.0
    else:
        (ax, ay), (bx, by) = _axes(h, w, align)
    py, px = np.divmod(np.arange(h * w), w)
    kernel = KERNELS[mode]
    rows = b.shapes[grid.name][:-1] + (h * w,)
    tx = _kernel(b, node, grid, np.array([ax, 0.0]), bx - px, kernel, rows, ".x")
    ty = _kernel(b, node, grid, np.array([0.0, ay]), by - py, kernel, rows, ".y")
    return b.add(node, "mul", (tx.name, ty.name), {FIXED_CODES: PRODUCT}, shape=rows,
                 suffix=".weights")


def _image(b: Any, node: Any, x: Act, grid: Any, mode: str, padding: str, align: bool) -> Act:
    """An image model's map (H, W, C) (a flow warp, a spatial transformer) at a grid made in
    sequence mode (..., Hg, Wg, 2) (the channels-last view of a predicted flow plus a base
    grid): out (Hg Wg, C) = w (Hg Wg, H W) @ the map's pixels (H W, C), an image again."""
    h, w, c = b.shapes[x.name]
    src = b.env.get(node.args[1].name)
    if isinstance(grid, torch.Tensor) or not isinstance(src, Act) \
            or not b.made_in.get(node.args[1].name) or len(b.shapes[src.name]) != 3 \
            or b.shapes[src.name][-1] != 2:
        b.fail(node, "grid_sample of an image model's map at a grid that is not an activation "
                     "(batch, H_out, W_out, 2) made channels last (e.g. base + "
                     "flow.permute(0, 2, 3, 1)); a constant grid: F.interpolate for a resize")
    hg, wg, _ = b.shapes[src.name]
    wt = _weights(b, node, src, h, w, mode, padding, align)
    wt = lowering_seq.reshaped(b, node, wt, (hg * wg, h * w), suffix=".rows")
    v = lowering_seq.reshaped(b, node, x, (h * w, c), suffix=".pixels")
    from qasic.quant.lowering_transformer import matmul_node  # it imports this module

    out = matmul_node(b, node, wt, v, False, 1.0, suffix=".sampled")
    return lowering_seq.reshaped(b, node, out, (hg, wg, c))


def _axes(h: int, w: int, align: bool) -> tuple[tuple[float, float], tuple[float, float]]:
    """((a_x, a_y), (b_x, b_y)): pixel = a g + b on each axis (torch's unnormalize)."""
    if align:
        return ((w - 1) / 2, (h - 1) / 2), ((w - 1) / 2, (h - 1) / 2)
    return (w / 2, h / 2), ((w - 1) / 2, (h - 1) / 2)


def _unit_axes(h: int, w: int, align: bool) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per axis: the location in units of the map's extent (0 the first
    pixel's centre, 1 the last's)."""
    (ax, ay), (bx, by) = _axes(h, w, align)
    span = np.array([w - 1, h - 1], np.float64)
    one = span > 0  # a map one pixel wide: that pixel's centre, 0
    return (np.where(one, np.array([ax, ay]) / np.maximum(span, 1), 0.0),
            np.where(one, np.array([bx, by]) / np.maximum(span, 1), 0.0))


def _clamped(b: Any, node: Any, grid: Act, h: int, w: int, align: bool) -> Act:
    """Border padding: the location clamped to the map, in [0, 1] units of each axis."""
    scale, offset = _unit_axes(h, w, align)
    unit = b.add(node, "linear", (grid.name,), {}, {"weight": np.diag(scale), "bias": offset},
                 shape=b.shapes[grid.name], suffix=".unit")
    return b.add(node, "lut", (unit.name,), {"fn": "hardtanh", "fn_args": {
        "min_val": 0.0, "max_val": 1.0}, FIXED_CODES: CLAMPED}, shape=b.shapes[grid.name],
        suffix=".clamped")


def _kernel(b: Any, node: Any, grid: Act, a: np.ndarray, bias: np.ndarray, kernel: str,
            rows: tuple, tag: str) -> Act:
    """The kernel's value at every pixel of one axis: linear (distance in pixels) + lut."""
    weight = np.repeat(a[None, :], len(bias), axis=0)
    u = b.add(node, "linear", (grid.name,), {FIXED_CODES: UNIT},
              {"weight": weight, "bias": np.asarray(bias, np.float64)}, shape=rows,
              suffix=tag + "_dist")
    return b.add(node, "lut", (u.name,), {"fn": kernel, FIXED_CODES: WEIGHT}, shape=rows,
                 suffix=tag + "_kernel")


def weights(grid: np.ndarray, h: int, w: int, mode: str, padding: str,
            align: bool) -> np.ndarray:
    """The sampling weights (..., H_out, W_out, H W) of a float grid (..., H_out, W_out, 2):
    the same kernels in float (a constant grid's resampling; the tests' definition)."""
    g = np.asarray(grid, np.float64)
    (ax, ay), (bx, by) = _axes(h, w, align)
    x, y = ax * g[..., 0] + bx, ay * g[..., 1] + by
    if padding == "border":
        x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    from qasic.quant.functions import FUNCTIONS

    f = FUNCTIONS[KERNELS[mode]]
    py, px = np.divmod(np.arange(h * w), w)
    return f(x[..., None] - px) * f(y[..., None] - py)


def _fixed(b: Any, node: Any, x: Act, grid: torch.Tensor, mode: str, padding: str,
           align: bool) -> Act:
    """A constant grid (the same for every sample: a decoder's first layer samples at its
    learned queries' locations): one grid for all maps is a linear of the flattened pixels;
    one per map (per head: the batch folded into the heads) a matmul with those weights as a
    ``constant`` node."""
    sx = b.shapes[x.name]
    lead, (h, w) = tuple(sx[:-3]), sx[-2:]
    g = grid.detach().to(torch.float64).numpy()
    n = int(np.prod(lead))
    v = lowering_seq.reshaped(b, node, x, sx[:-2] + (h * w,), suffix=".pixels")
    if g.shape[0] == 1:
        wts = weights(g[0], h, w, mode, padding, align).reshape(-1, h * w)
        out = b.add(node, "linear", (v.name,), {}, {"weight": wts, "bias": np.zeros(len(wts))},
                    shape=sx[:-2] + (len(wts),), suffix=".resampled")
        return lowering_seq.reshaped(b, node, out, sx[:-2] + tuple(g.shape[1:3]))
    per = g.reshape((-1, n) + g.shape[1:])
    if g.shape[0] % n or not (per == per[:1]).all():
        b.fail(node, f"grid_sample at a constant grid of {g.shape[0]} maps for maps of "
                     f"per-sample shape {sx}; give one grid, or one per map, the same for "
                     "every sample")
    wts = weights(per[0], h, w, mode, padding, align)  # (n, Hg, Wg, HW)
    wts = wts.reshape(lead + (-1, h * w))
    const = b.add(node, "constant", (), {}, {"value": wts}, shape=wts.shape, suffix=".weights")
    from qasic.quant.lowering_transformer import matmul_node  # it imports this module

    out = matmul_node(b, node, v, const, True, 1.0, suffix=".resampled")
    return lowering_seq.reshaped(b, node, out, sx[:-2] + tuple(g.shape[1:3]))

"""benchmarks/minilm_error_study.py: gamma migration is exact in float and moves only the norms
that linears alone read; the per-channel INT8 fake-quantizer; the per-token fake-quantizers and
the axis each GEMM operand's dynamic scale reduces over; the MX block-scaled fake-quantizers."""

import numpy as np
import torch

from benchmarks.minilm_error_study import (
    categories,
    gemm_operands,
    migrate_gamma,
    mx_block,
    per_channel_int8,
    per_row,
    upstream,
)
from qasic.quant import capture, run_float
from qasic.quant.calibrate import prepare
from qasic.quant.encodings import split_norm_residuals
from tests.quant.test_wide_codes import PostLN, _ids
from tests.quant.transformer_nets import TokenModel


def post_ln_graph():
    torch.manual_seed(5)
    model = PostLN().eval()
    with torch.no_grad():  # LayerNorm starts at gamma 1, beta 0: give it something to move
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.2, 3.0)
                m.bias.normal_(0.0, 0.5)
    ids = _ids(8)
    return split_norm_residuals(prepare(capture(model, torch.from_numpy(ids[:2])))), ids


def test_gamma_migration_is_exact_in_float_and_moves_the_gemm_side_norms_only():
    graph, ids = post_ln_graph()
    moved = migrate_gamma(graph)
    x = graph.to_internal(ids)
    np.testing.assert_allclose(run_float(moved, x), run_float(graph, x), rtol=0, atol=1e-9)
    changed = {n.name for n, m in zip(graph.nodes, moved.nodes, strict=True)
               if any(not np.array_equal(n.params[k], m.params[k]) for k in n.params)}
    gemm_norms = set(categories(graph)["norm -> GEMM"])
    readers = {u.name for t in gemm_norms for u in graph.users(t)}
    # every norm but the residual copies is read by linears only (the last one by the head)
    assert gemm_norms and all(graph.node(t).op == "norm" for t in gemm_norms)
    assert changed == gemm_norms | readers
    for t in gemm_norms:
        assert np.all(moved.node(t).params["gamma"] == 1) and not moved.node(t).params["beta"].any()
    for n in moved.nodes:
        if n.op == "norm" and n.attrs.get("residual_copy"):
            assert n.name not in changed


def test_per_channel_int8_uses_each_channels_range():
    v = np.stack([np.linspace(-1, 1, 256), np.linspace(0, 100, 256)], axis=-1)
    q = per_channel_int8(v)(v)
    assert np.abs(q - v)[:, 0].max() <= 1 / 255 + 1e-12
    assert np.abs(q - v)[:, 1].max() <= 50 / 255 + 1e-12


def test_per_row_fake_quantizers_scale_each_row_by_its_own_values():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((3, 4, 16)) * np.array([0.01, 1.0, 300.0])[:, None, None]
    a = np.abs(v).max(axis=-1, keepdims=True)
    assert np.all(np.abs(per_row("int8")(v) - v) <= a / 254 * (1 + 1e-9))
    lo, hi = np.minimum(v.min(-1, keepdims=True), 0), np.maximum(v.max(-1, keepdims=True), 0)
    assert np.all(np.abs(per_row("int8_asym")(v) - v) <= (hi - lo) / 510 * (1 + 1e-9))
    col = np.abs(per_row("int8", axis=-2)(v) - v) / np.abs(v).max(axis=-2, keepdims=True)
    assert col.max() <= 1 / 254 * (1 + 1e-9)
    f = per_row("fp8")(v)
    np.testing.assert_allclose(np.abs(f).max(axis=-1), a[..., 0], rtol=1e-12)  # absmax -> 448
    assert np.all(np.abs(f - v) <= np.abs(v) / 16 + a / 448 * 2.0**-9)  # 3 mantissa bits
    p = np.array([[0.0, 0.25, 0.75], [0.5, 0.5, 0.0]])  # >= 0: unsigned, exact zero, max exact
    np.testing.assert_allclose(per_row("int8_asym")(p)[:, [0, 2]], p[:, [0, 2]], atol=1e-15)
    assert not per_row("int8")(np.zeros((2, 3))).any()
    w = np.array([[0.3, 250.0], [-0.7, -300.0]])  # a static channel factor evens the row out
    assert np.abs(per_row("int8")(w) - w)[:, 0].max() > 0.25
    eq = per_row("int8_asym", channel=np.array([1.0, 400.0]))(w)
    assert np.all(np.abs(eq - w) <= np.array([1.0, 400.0]) * 1.75 / 510 * (1 + 1e-9))


def test_gemm_operands_scale_along_the_contraction_axis():
    torch.manual_seed(0)
    graph = capture(TokenModel(depth=1, pad=0).eval(), torch.from_numpy(_ids(2, 16)))
    ops = gemm_operands(graph)
    assert sorted(r for r, _ in ops.values()) == ["GELU", "K", "LN", "LN", "LN", "P", "Q", "V",
                                                  "context"]
    # q, k, v come through reshape + permute from their linears; the context from P·V
    assert [graph.node(u).op for u in upstream(graph, "blocks.0.attn.transpose_2")] == [
        "reshape", "linear"]
    for n in graph.nodes:
        if n.op == "matmul":
            a, b = (ops[i] for i in n.inputs)
            assert a[1] == -1 and b == (("K", -1) if n.attrs.get("transpose_b") else ("V", -2))


def test_mx_blocks_share_a_power_of_two_scale_along_the_contraction_axis():
    rng = np.random.default_rng(2)
    v = rng.standard_normal((3, 70))  # blocks 0..31, 32..63 and a short one, 64..69
    v[0, 40] = 1000.0  # one outlier coarsens its own block only
    q = mx_block("mxint8", -1)(v)
    for lo, hi in ((0, 32), (32, 64), (64, 70)):
        b = v[:, lo:hi]
        step = 2.0 ** np.floor(np.log2(np.abs(b).max(axis=1, keepdims=True))) / 64
        assert np.all(np.abs(q[:, lo:hi] - b) <= step / 2 * (1 + 1e-12))
        assert np.all(np.abs(np.round(q[:, lo:hi] / step) - q[:, lo:hi] / step) < 1e-9)
    assert np.abs(q[0, :32] - v[0, :32]).max() < 0.05  # untouched by the outlier at 40
    assert np.abs(q[0, 32:64] - v[0, 32:64]).max() > 1.0
    np.testing.assert_array_equal(mx_block("mxint8", -2)(v.T), q.T)  # blocks along axis -2
    f = mx_block("mxfp8", -1)(v)
    a = np.abs(v[:, :32]).max(axis=1, keepdims=True)
    assert np.all(np.abs(f[:, :32] - v[:, :32]) <= np.abs(v[:, :32]) / 16 + a * 2.0**-15)
    assert not mx_block("mxint8", -1)(np.zeros((2, 5))).any()


def test_float16_rounding_matches_torch():
    from benchmarks.minilm_error_study import round_bf16, round_fp16

    rng = np.random.default_rng(3)
    v = np.concatenate([rng.normal(0, 3, 4000), rng.normal(0, 1e-3, 1000),
                        [0.0, -0.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 65504.0, 1e-8]])
    t = torch.from_numpy(v.astype(np.float32))
    np.testing.assert_array_equal(round_bf16(v), t.to(torch.bfloat16).double().numpy())
    np.testing.assert_array_equal(round_fp16(v), t.to(torch.float16).double().numpy())
    # the ties: 1 + 2^-8 is halfway between bfloat16 neighbours 1 and 1 + 2^-7 (even: 1)
    assert round_bf16(np.array([1.0 + 2 ** -8]))[0] == 1.0

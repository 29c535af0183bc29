"""benchmarks/minilm_error_study.py: gamma migration is exact in float and moves only the norms
that linears alone read; the per-channel INT8 fake-quantizer."""

import numpy as np
import torch

from benchmarks.minilm_error_study import categories, migrate_gamma, per_channel_int8
from qasic.quant import capture, run_float
from qasic.quant.calibrate import prepare
from qasic.quant.encodings import split_norm_residuals
from tests.quant.test_wide_codes import PostLN, _ids


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

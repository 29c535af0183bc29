"""quant.recurrent_scan: transformers' Mamba2 scan in its recurrent form computes what the
chunked form computes (float32 rounding apart), with grouped B and C and a clamped time step,
and the original scan function is put back after the block (the float model is unchanged)."""

from __future__ import annotations

import pytest
import torch

from qasic.quant.recurrent_scan import found, recurrent

transformers = pytest.importorskip("transformers")
modeling = pytest.importorskip("transformers.models.mamba2.modeling_mamba2")


def _mamba2(**extra) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.Mamba2Config(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, state_size=8, expand=2,
        conv_kernel=4, num_heads=8, head_dim=8, chunk_size=4, **extra)
    return transformers.Mamba2Model(config).eval()


@pytest.mark.parametrize("extra", [{"n_groups": 1},
                                   {"n_groups": 2, "time_step_limit": (0.0, 0.05)}])
def test_recurrent_form_equals_the_chunked_scan(extra):
    """12 ids (3 chunks of 4), 2 layers; 2 groups of B and C (4 heads each) and a time step
    clamped to 0.05 (below most of softplus's values: the clamp acts). Measured: max |diff|
    1e-6 of outputs up to 3.4."""
    model = _mamba2(**extra)
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    original = modeling.mamba2_scan_forward
    with torch.no_grad():
        want = model(input_ids=ids, use_cache=False).last_hidden_state
        with recurrent(model):
            assert modeling.mamba2_scan_forward is not original
            got = model(input_ids=ids, use_cache=False).last_hidden_state
    assert modeling.mamba2_scan_forward is original
    assert want.abs().max() > 1.0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_only_the_models_own_scan_modules_are_swapped():
    """One Python module found for a Mamba2 model (its mixers' and blocks' module), none for a
    model without a Mamba2 scan."""
    assert found(_mamba2(n_groups=1)) == [(modeling, "mamba2_scan_forward")]
    assert found(torch.nn.Linear(2, 2)) == []

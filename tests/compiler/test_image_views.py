"""MobileViT-style patch unfolding and folding (tests.quant.test_image_views.Patches: the image
permuted to torch's layout, per-sample permutes of the patches, and back at the conv or pool)
compiles and simulates bit-exact against the golden reference, its permutes as data moves."""

from __future__ import annotations

import pytest

from qasic.evaluation import evaluate
from tests.quant.test_image_views import Patches, _x


@pytest.mark.parametrize("tail, patch", [("conv", (2, 2)), ("pool", (4, 3))])
def test_patch_unfolding_and_folding_are_bit_exact(tail, patch):
    x = _x(2, 8, 12)
    record = evaluate(Patches(ph=patch[0], pw=patch[1], tail=tail).eval(), x, calibration=x)
    assert record["bit_exact"]
    assert record["cosine"] > 0.999, record["cosine"]
    kinds = [layer["kind"] for layer in record["layers"]]
    assert kinds.count("permute") == 6, kinds

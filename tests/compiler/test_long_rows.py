"""A permute whose output rows are longer than half the output scratchpad (BasicUNet 3-D's
32,768-code rows of its (D H W, C) map moved to torch's (C, D H W)) moves each row in pieces:
bit-exact against the golden reference, on a small scratchpad, codes gathered or rows kept."""

from __future__ import annotations

import pytest

from qasic.quant.graph import TensorQ
from tests.archs import small_arch
from tests.compiler.test_transformer import check, layer, ops_of
from tests.compiler.transformers import Builder


@pytest.mark.parametrize("shape, perm, pieces", [
    ((45, 3), (1, 0), 3 * 2),         # 3 rows of 45 gathered codes, halves of 32 bytes
    ((3, 40, 2), (2, 0, 1), 2 * 4),   # (120, 2) transposed: 2 rows of 120
    ((3, 2, 40), (1, 0, 2), 6 * 2)])  # 6 kept rows of 40 bytes
def test_a_permute_of_rows_longer_than_a_half_moves_them_in_pieces(shape, perm, pieces):
    b = Builder("long_rows")
    x = b.codes("x", shape, TensorQ(0.05, 1))
    p, _ = check(b.graph(b.permute("t", x, perm)), small_arch(output_sram_bytes=64))
    assert set(ops_of(p, "t")) <= {"LOAD", "SYNC", "STORE", "END"}
    assert ops_of(p, "t")["STORE"] == ops_of(p, "t")["LOAD"] == pieces  # a step a piece
    assert layer(p, "t")["kind"] == "permute"

"""Generation where a model's channels happen to number its positions C: a per-token state
spread over C channels (a (C, 1) linear of ones, a matmul by a constant of C equal rows) is not
a per-key value over the C keys. Two rules of quant/decode took it for one (Doge's per-key mask
expanded over the queries; RetNet's row sums cut to the prompt) and refused the Mamba2 mixers
of NemotronH, GraniteMoeHybrid and Glm5Next in generation; the survey found it."""

import pytest

from benchmarks.family_survey import run_one


@pytest.mark.parametrize("name", ["GraniteMoeHybridModel@mamba", "DogeModel"])
def test_generation_tells_a_spread_state_from_per_key_values(name):
    rec = run_one(name)
    assert rec["status"] == "ok" and rec["bit_exact"]
    assert rec["generate"] == "exact", rec["generate"]

"""The fuzz test (issue 11): seeded blind and structure-aware mutations of the compiled
digits_cnn and digits_mlp programs and of the default arch TOML each end in a clean one-line
rejection or a correct run (benchmarks.fuzz; ``python -m benchmarks.fuzz`` runs 10,000)."""

from __future__ import annotations

import pytest

from benchmarks.fuzz import fuzz, subjects
from benchmarks.mutators import ARCH_MUTATORS, PROGRAM_MUTATORS, Parts

CASES = 300


@pytest.fixture(scope="module")
def subs():
    return subjects()


def test_sections_round_trip(subs):
    for s in subs:
        assert Parts.of(s.blob).blob() == s.blob


def test_every_case_is_a_clean_rejection_or_a_correct_run(subs):
    r = fuzz(CASES, seed=11, subs=subs)
    assert r["failures"] == []
    assert (r["crashes"], r["wrong"], r["hangs"]) == (0, 0, 0)
    assert r["clean_rejections"] + r["correct_runs"] == CASES
    assert min(r["clean_rejections"], r["correct_runs"]) > CASES // 5  # both ends exercised
    ran = {name.rstrip("+") for name in r["per_mutator"]}
    assert ran == set(PROGRAM_MUTATORS) | set(ARCH_MUTATORS)
    for name, (_, kind, _) in PROGRAM_MUTATORS.items():
        if kind == "neutral":  # ran, and matched the unmutated outputs (else "wrong")
            assert r["per_mutator"][name] == {"correct": sum(r["per_mutator"][name].values())}

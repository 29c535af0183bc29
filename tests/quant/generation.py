"""The check every generating decoder's test makes: on the simulator (a prefill program, then
one decode program per step) the model generates what the golden reference generates."""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_generates_like_the_golden_reference(full: Any, ids: np.ndarray, steps: int) -> Any:
    """``full`` (a QGraph) generates ``steps`` tokens after the prompt ``ids`` on the simulator
    (the default arch): the tokens equal the golden reference's, and not all one, and every
    step's output codes equal its. Returns the session (its programs and costs)."""
    from qasic.arch.config import default_arch
    from qasic.generate import Session, golden_tokens

    session = Session(full, len(ids), default_arch())
    got, rows = session.generate(ids, steps)
    want, ref_rows = golden_tokens(full, ids, steps)
    assert got == want and len(set(want)) > 1
    for a, b in zip(rows, ref_rows, strict=True):
        np.testing.assert_array_equal(a, b)
    return session

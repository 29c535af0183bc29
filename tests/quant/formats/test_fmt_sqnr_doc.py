"""docs/formats.md is generated; the checked-in copy is a golden snapshot.

Regenerate with ``QASIC_UPDATE_GOLDEN=1 pytest tests/quant/formats`` or
``python -m qasic.quant.formats.sqnr --write docs/formats.md``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from qasic.quant.formats.doc import render_doc
from qasic.quant.formats.sqnr import DOC_PATH, main, measure_all, sqnr_db


@pytest.fixture(scope="module")
def rows():
    return measure_all()


@pytest.fixture(scope="module")
def gaussian(rows):
    return {(r.name, r.clip): r.sqnr_db[0] for r in rows}


def test_checked_in_doc_is_generated(rows):
    text = render_doc(rows)
    if os.environ.get("QASIC_UPDATE_GOLDEN") == "1":
        DOC_PATH.write_text(text)
    assert DOC_PATH.exists(), f"{DOC_PATH} is missing; run python -m qasic.quant.formats.sqnr"
    assert DOC_PATH.read_text() == text, (
        f"{DOC_PATH} is stale; regenerate it with QASIC_UPDATE_GOLDEN=1 or "
        "python -m qasic.quant.formats.sqnr --write docs/formats.md")


def test_sqnr_orderings(gaussian):
    g = {name: db for (name, clip), db in gaussian.items() if clip == "minmax"}
    assert g["int8"] > g["int6"] > g["int4"] > g["int3"] > g["int2"]
    assert g["fp8_e4m3"] > g["fp8_e5m2"] > g["fp4_e2m1"]
    assert g["fp6_e2m3"] > g["fp6_e3m2"]
    assert g["int4_g32"] > g["int4_g128"] > g["int4"]
    assert g["nf4"] > g["int4"]
    assert gaussian[("int2", "mse")] > g["int2"] + 3
    # the textbook ~6 dB per bit of a uniform quantizer
    assert 5.5 < (g["int8"] - g["int4"]) / 4 < 6.5


def test_sqnr_db():
    x = np.array([1.0, -2.0])
    assert sqnr_db(x, x) == np.inf
    assert sqnr_db(x, x * 0.9) == pytest.approx(20.0)


def test_cli_prints_the_doc(capsys, rows, monkeypatch):
    monkeypatch.setattr("qasic.quant.formats.sqnr.measure_all", lambda: rows)
    assert main([]) == 0
    assert capsys.readouterr().out == render_doc(rows)

"""The order `make test` hands files to its two workers (tests/conftest.py SLOW_FIRST)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import SLOW_FIRST

ROOT = Path(__file__).resolve().parents[1]


def test_every_slow_first_file_exists_once():
    """A renamed file would silently drop out of the order."""
    missing = [p for p in SLOW_FIRST if not (ROOT / p).is_file()]
    assert not missing, f"tests/conftest.py SLOW_FIRST names files that do not exist: {missing}"
    assert len(set(SLOW_FIRST)) == len(SLOW_FIRST)


def test_make_test_keeps_the_order():
    """pytest-xdist sorts --dist loadfile's files by test count unless told not to, which would
    schedule the few-test, slowest RTL files last."""
    line = next(ln for ln in (ROOT / "Makefile").read_text().splitlines() if "-m pytest" in ln)
    assert re.search(r"-n 2 --dist loadfile\b", line) and "--no-loadscope-reorder" in line, line

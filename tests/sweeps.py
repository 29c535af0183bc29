"""Small sweeps for the sweep tests: digits_mlp on a few inputs, built as the CLI builds them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qasic.arch.config import default_arch
from qasic.sweepaxes import arch_axis, quant_choices
from qasic.sweepspace import SweepSpace


def space(models=("digits_mlp",), arrays="8x8,16x16", bits="8,4", limit=20, **axes) -> SweepSpace:
    """``axes``: more arch axes by flag name without dashes (pe_bits="fit,8x4")."""
    base = default_arch()
    arch = [arch_axis("--arrays", arrays, base)]
    arch += [arch_axis("--" + flag.replace("_", "-"), text, base) for flag, text in axes.items()]
    return SweepSpace(tuple(models), 0, limit, base, tuple(arch), tuple(quant_choices(bits)))


def stored(db: Path) -> list[tuple]:
    """Every stored row, every column, in hash order: what 'identical rows' compares."""
    with sqlite3.connect(db) as c:
        return c.execute("SELECT * FROM points ORDER BY config_hash").fetchall()

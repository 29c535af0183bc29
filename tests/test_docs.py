"""The project stands alone: its docs cite their sources, and nothing points outside the checkout.

docs/energy.md lists every row of the energy table (name and value) with its citation.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENERGY_DOC = ROOT / "docs" / "energy.md"
ENERGY_TABLE = ROOT / "arch" / "energy_45nm.toml"
# Built from parts so this file does not match itself.
OUTSIDE_REFS = ("../" + "shared", "shared" + "/reference")
SKIP_DIRS = {".ci", ".git", ".venv", ".ruff_cache", ".cache", "out", "__pycache__"}


def tracked_files() -> list[Path]:
    """The files git tracks (a checkout without git: every file outside SKIP_DIRS)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]
    return [ROOT / n for n in names
            if not SKIP_DIRS & set(Path(n).parts[:-1]) and not n.endswith(".egg-info")
            and ".egg-info/" not in n]


def test_no_tracked_file_points_outside_the_project():
    hits = []
    for path in tracked_files():
        if not path.is_file():  # deleted in the working tree
            continue
        text = path.read_bytes()
        hits += [f"{path.relative_to(ROOT)}: {ref}" for ref in OUTSIDE_REFS
                 if ref.encode() in text]
    assert not hits, ("files cite sources outside the project; cite docs/energy.md or the "
                      "primary source instead:\n" + "\n".join(hits))


def test_energy_doc_lists_every_table_row_with_its_value():
    doc = ENERGY_DOC.read_text().splitlines()
    rows = tomllib.loads(ENERGY_TABLE.read_text())
    missing = [f"{name} = {row['value']}" for name, row in rows.items()
               if not any(f"`{name}`" in line and f"| {row['value']} |" in line for line in doc)]
    assert not missing, (f"docs/energy.md has no table line `name` | value | for: {missing}; "
                         "add the row with its unit and citation")

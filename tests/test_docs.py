"""The project stands alone: its docs cite their sources, and nothing points outside the checkout.

docs/energy.md lists every row of the energy table (name and value) with its citation.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

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


# --- The survey's pages (docs/survey.md, the README's headlines) and the markdown links --------

README = ROOT / "README.md"
SURVEY_DOC = ROOT / "docs" / "survey.md"
SURVEY_JSON = ROOT / "benchmarks" / "results" / "family_survey.json"
SUMMARY_CMD = ("python -m benchmarks.family_survey --summary "
               "benchmarks/results/family_survey.json")
README_SURVEY_SECTION = "## Models no one here wrote"
SURVEY_SECTION = "## The family survey"
REFUSED_SECTION = "## Refused in one line"
RECIPE_SECTION = "## Try your own model"


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level (lines
    in code blocks are not headings)."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading) + 1
    in_code = False
    for i in range(start, len(lines)):
        in_code ^= lines[i].startswith("```")
        if not in_code and re.match(rf"#{{1,{level}}} ", lines[i]):
            return "\n".join(lines[start:i])
    return "\n".join(lines[start:])


def _survey_records() -> list[dict]:
    return json.loads(SURVEY_JSON.read_text())["records"]


def test_survey_table_is_the_summary_of_the_survey_json():
    """docs/survey.md's by-family table under the --summary command is what that command prints
    now."""
    from benchmarks.family_survey import family_table

    section = _section(SURVEY_DOC.read_text(), SURVEY_SECTION)
    after = section[section.index(SUMMARY_CMD):]
    table = "\n".join(line for line in after.splitlines()[1:]
                      if line.startswith("|") or not line.strip()).strip()
    table = table.split("\n\n")[0]
    want = family_table(_survey_records())
    assert table == want, ("docs/survey.md's by-family table is not the survey's summary: run `"
                           + SUMMARY_CMD + "` and paste its output:\n" + want)


@pytest.mark.parametrize("doc, heading", [(README, README_SURVEY_SECTION),
                                          (SURVEY_DOC, SURVEY_SECTION)], ids=["README", "survey"])
def test_survey_headline_counts_match_the_survey_json(doc: Path, heading: str):
    """The bold headline in the README's summary and in docs/survey.md counts the record."""
    recs = _survey_records()
    section = " ".join(_section(doc.read_text(), heading).split())
    m = re.search(r"\*\*(\d+) run bit-exact, (\d+) are refused in one line, (\d+) crash; (\d+) of "
                  r"the (\d+) that generate", section)
    assert m, f"{doc.name}'s survey section lost its headline '**N run bit-exact, M are refused'"
    gen = [r["generate"] for r in recs if r.get("generate")]
    want = (sum(r["status"] == "ok" and bool(r["bit_exact"]) for r in recs),
            sum(r["status"] == "refused" for r in recs),
            sum(r["status"] in ("crash", "timeout") for r in recs),
            sum(g == "exact" for g in gen), len(gen))
    assert tuple(int(g) for g in m.groups()) == want, (
        f"{doc.name}'s headline says {m.group(0)}; family_survey.json has {want}: update it")


THIRD_PARTY_JSON = ROOT / "benchmarks" / "results" / "third_party.json"


@pytest.mark.parametrize("doc, heading", [(README, README_SURVEY_SECTION),
                                          (SURVEY_DOC, "## Other libraries")],
                         ids=["README", "survey"])
def test_third_party_headline_counts_match_the_third_party_json(doc: Path, heading: str):
    """The bold third-party headline ("**N of M bit-exact**; **G of the L causal LMs generate**
    ..., K with a KV cache, R by recomputing") counts benchmarks/results/third_party.json, as
    ``python -m benchmarks.third_party --summary`` does."""
    from benchmarks.third_party import summary

    section = " ".join(_section(doc.read_text(), heading).split())
    m = re.search(r"\*\*(\d+) of (\d+) bit-exact\*\*; \*\*(\d+) of the (\d+) causal LMs "
                  r"generate\*\* token for token like the golden reference, (\d+) with a KV "
                  r"cache, (\d+) by recomputing", section)
    assert m, f"{doc.name} lost its third-party headline '**N of M bit-exact**; **G of the L ...'"
    want = tuple(int(n) for n in re.findall(r"\d+", summary(
        json.loads(THIRD_PARTY_JSON.read_text())["records"])))
    assert tuple(int(g) for g in m.groups()) == want, (
        f"{doc.name}'s third-party headline says {m.group(0)}; third_party.json has {want}: run "
        "`python -m benchmarks.third_party --summary benchmarks/results/third_party.json`")


def test_survey_refused_table_names_every_refused_row_and_no_running_one():
    """Every refused, unavailable or generation-refused row is named (`Name`) under docs/survey.md's
    "Refused in one line", and no row named there runs and generates in full."""
    recs = {r["name"]: r for r in _survey_records()}
    section = _section(SURVEY_DOC.read_text(), REFUSED_SECTION)
    named = set(re.findall(r"`([A-Za-z0-9_@.]+)`", section)) & set(recs)

    def not_running(r: dict) -> bool:
        return (r["status"] != "ok" or not r["bit_exact"]
                or (r.get("generate") or "").startswith("refused"))

    missing = sorted(n for n, r in recs.items() if not_running(r) and n not in named)
    running = sorted(n for n in named if not not_running(recs[n]))
    assert not missing, f"docs/survey.md's refused table lacks these refused rows: {missing}"
    assert not running, f"docs/survey.md's refused table names rows that now run: {running}; remove"


FAMILIES_DOC = ROOT / "docs" / "families.md"
COSINES_SECTION = "## Reading the cosines"


def _cosine_rows(section: str) -> dict[str, str]:
    """Each table row's names (`Name`, first cell) with their cosines (second cell, in order)."""
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = re.findall(r"`([A-Za-z0-9_@.]+)`", cells[0]) if line.startswith("| `") else []
        values = [v.strip() for v in cells[1].split(",")] if names else []
        assert len(names) == len(values), f"docs/families.md: {line[:80]}: a cosine per name"
        rows.update(zip(names, values))
    return rows


def test_families_cosine_table_lists_every_bit_exact_row_below_0_99_with_its_cosine():
    """docs/families.md's "Reading the cosines" names every bit-exact survey row under 0.99 with
    the record's cosine (4 decimals), and its sentence counts the rows as the record does."""
    import statistics

    recs = [r for r in _survey_records() if r["status"] == "ok" and r["bit_exact"]]
    section = _section(FAMILIES_DOC.read_text(), COSINES_SECTION)
    table = _cosine_rows(section)
    low = {r["name"]: f"{r['cosine']:.4f}" for r in recs if r["cosine"] < 0.99}
    missing = sorted(set(low) - set(table))
    wrong = {n: (table[n], v) for n, v in low.items() if n in table and table[n] != v}
    above = sorted(n for n in table if n not in low)
    assert not missing, f"docs/families.md's cosine table lacks these rows under 0.99: {missing}"
    assert not wrong, f"docs/families.md's cosines (table, record) differ: {wrong}"
    assert not above, f"docs/families.md's cosine table names rows not under 0.99: {above}"
    m = re.search(r"Of\s+the\s+(\d+)\s+bit-exact\s+rows,\s+the\s+median\s+is\s+(0\.\d{4})\s+and\s+"
                  r"(\d+)\s+are\s+0\.99\s+or\s+more", section)
    assert m, "docs/families.md lost 'Of the N bit-exact rows, the median is C and M are 0.99'"
    median = statistics.median(r["cosine"] for r in recs)
    want = (str(len(recs)), f"{median:.4f}", str(len(recs) - len(low)))
    assert m.groups() == want, f"docs/families.md says {m.group(0)}; the record: {want}"


ZOO_JSON = ROOT / "benchmarks" / "results" / "vision_zoo.json"
ZOO_DOC = ROOT / "docs" / "vision_zoo.md"
ZOO_CMD = "python -m benchmarks.vision_zoo --markdown benchmarks/results/vision_zoo.json"


def test_vision_zoo_tables_in_docs_and_readme_are_the_record():
    """docs/vision_zoo.md's summary and every-row tables, docs/survey.md's summary table, the
    headline in both survey.md and the README, and the doc's "Not yet run" line are what
    ``--markdown`` prints from the record."""
    from benchmarks import vision_zoo

    doc = json.loads(ZOO_JSON.read_text())
    zoo, survey = ZOO_DOC.read_text(), SURVEY_DOC.read_text()
    fix = f"run `{ZOO_CMD}` and paste its tables"
    assert vision_zoo.summary_table(doc) in zoo, f"docs/vision_zoo.md's summary is stale: {fix}"
    assert vision_zoo.summary_table(doc) in survey, f"docs/survey.md's zoo table is stale: {fix}"
    assert vision_zoo.row_table(doc) in zoo, f"docs/vision_zoo.md's every-row table is stale: {fix}"
    for page in (README, SURVEY_DOC):
        assert " ".join(vision_zoo.headline(doc).split()) in " ".join(page.read_text().split()), (
            f"{page.name}'s vision zoo headline is not: {vision_zoo.headline(doc)}")
    pending = [n for n in vision_zoo.MODELS if n not in {r["name"] for r in doc["records"]}]
    m = re.search(r"Not yet run \(.*?\): (.*)\.", zoo)
    named = re.findall(r"`([\w.]+)`", m.group(1)) if m else []
    assert named == pending, f"docs/vision_zoo.md's 'Not yet run' names {named}; not run: {pending}"


def test_vision_zoo_summary_counts_each_status_once():
    """The summary's columns partition the rows run: a status counted in no column or two would
    make the table lie while still matching itself."""
    from benchmarks import vision_zoo

    def rec(name, status, exact=None):
        return {"name": name, "status": status, "bit_exact": exact, "cosine": 0.9 if exact
                is not None else None, "cycles": 1, "error": None if exact is not None else "x"}

    names = list(vision_zoo.MODELS)
    doc = {"records": [rec(names[0], "ok", True), rec(names[1], "ok", False),
                       rec(names[2], "refused"), rec("tv_s3d", "timeout"),
                       rec("tv_raft_small", "build"), rec("timm_csatv2", "crash")]}
    last = vision_zoo.summary_table(doc).splitlines()[-1]
    assert last == f"| **all** | {len(names)} | 6 | 1 | 1 | 1 | 2 |"
    assert "| torchvision optical flow | 1 | 1 | 0 | 0 | 1 | 0 |" in vision_zoo.summary_table(doc)
    assert vision_zoo.headline(doc).startswith("**1 of the 6 rows run so far are bit-exact**: "
                                               "2 of them evaluate")


def test_user_model_recipe_builds_a_model_from_ids_to_logits():
    """The factory in docs/survey.md's "Try your own model" runs: int64 ids (1, 16) -> logits
    (1, 16, vocab)."""
    import torch

    section = _section(SURVEY_DOC.read_text(), RECIPE_SECTION)
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code, "docs/survey.md's 'Try your own model' lost its python factory"
    scope: dict = {}
    exec(compile(code.group(1), "docs/survey.md:my_lm.py", "exec"), scope)  # noqa: S102
    model = scope["make"]().eval()
    with torch.no_grad():
        out = model(torch.randint(0, 300, (1, 16)))
    assert tuple(out.shape) == (1, 16, 300)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in path.read_text().splitlines():
        in_code ^= line.startswith("```")
        m = None if in_code else re.match(r"#{1,6} (.*)", line)
        if m:
            s = _slug(m.group(1))
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "code", text)
    return re.findall(r"\[[^\]\n]+\]\(([^)\s]+)\)", text)


def test_markdown_links_to_files_and_sections_resolve():
    """README.md and docs/*.md: every relative link names a file that exists and, with #anchor,
    a heading of that file."""
    bad = []
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for link in _links(doc):
            if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
                continue
            target, _, anchor = link.partition("#")
            path = (doc.parent / target).resolve() if target else doc
            if not path.exists():
                bad.append(f"{doc.relative_to(ROOT)}: {link} (no file {target})")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                bad.append(f"{doc.relative_to(ROOT)}: {link} (no heading #{anchor})")
    assert not bad, "links that do not resolve; fix the link or the heading:\n" + "\n".join(bad)

"""docs/isa.md is generated from the table; the checked-in copy is a golden snapshot.

Regenerate with ``QASIC_UPDATE_GOLDEN=1 pytest tests/isa/test_doc.py`` (or
``python -m qasic.isa.doc --write``) after changing the table.
"""

from __future__ import annotations

import os

from qasic.isa.doc import DOC_PATH, render_isa_doc, write
from qasic.isa.table import HEADER, OPCODES


def test_checked_in_isa_doc_is_generated_from_the_table():
    text = render_isa_doc()
    if os.environ.get("QASIC_UPDATE_GOLDEN") == "1":
        write(DOC_PATH)
    assert DOC_PATH.exists(), f"{DOC_PATH} is missing; run python -m qasic.isa.doc --write"
    assert DOC_PATH.read_text() == text, (
        f"{DOC_PATH} is stale; regenerate it with QASIC_UPDATE_GOLDEN=1 or "
        "python -m qasic.isa.doc --write")


def test_doc_names_every_opcode_and_field_with_its_bits_and_type():
    text = render_isa_doc()
    for op in OPCODES:
        assert f"## {op.name}\n\nCode {op.code} (`{op.code:#x}`), queue `{op.queue}`." in text
        assert op.doc in text
        for f in op.fields:
            kind = "enum" if f.enum or f is HEADER[0] else "token flag" if f in HEADER else \
                "signed" if f.signed else "unsigned"
            assert f"| `{f.name}` | {f.hi}:{f.lo} | {f.width} | {kind}" in text, f.name
    assert "enum: 0=`input`, 1=`weight`, 2=`acc`, 3=`output`, 4=`param`" in text


def test_doc_includes_the_token_protocol():
    text = render_isa_doc()
    assert "## Dependency-token protocol" in text
    assert "load(s)    pops compute->load" in text

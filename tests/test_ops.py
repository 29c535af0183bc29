"""The op registry joins every layer's table: no op or instruction may miss a row."""

from __future__ import annotations

from pathlib import Path

from qasic import ops
from qasic.quant.graph import OPS

DOC = Path(__file__).resolve().parent.parent / "docs" / "ops.md"


def test_every_op_has_a_reference_a_float_executor_and_a_lowering():
    assert ops.missing() == []
    assert {r.op for r in ops.rows()} == set(OPS)


def test_every_lowered_op_names_the_instructions_that_run_it():
    for r in ops.rows():
        if r.lowered:
            assert set(r.instructions) <= {i for k in ops.KERNEL_KINDS.values() for i in k[0]}
        else:
            assert r.op in ops.NOT_LOWERED


def test_the_doc_section_is_generated_from_the_registry():
    assert DOC.read_text().split(ops.MARKER)[1] == ops.markdown().split(ops.MARKER)[1]

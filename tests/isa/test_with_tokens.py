"""Instr.with_tokens (compiler.schedule's token flags) equals dataclasses.replace of the flags
without checking the operand fields again, and refuses a name that is no token flag."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qasic.errors import ProgramFormatError
from qasic.isa.encoding import TOKEN_FLAGS, Instr


def test_with_tokens_equals_replace_and_keeps_the_fields():
    i = Instr("LOAD", {"mem": "input", "planes": 1})
    for flag in TOKEN_FLAGS:
        got = i.with_tokens(**{flag: True})
        assert got == replace(i, **{flag: True}) and got.args == i.args and got is not i
        assert getattr(got, flag) is True and not getattr(i, flag)
    both = i.with_tokens(pop_prev=True, push_next=True)
    assert both == replace(i, pop_prev=True, push_next=True)


def test_with_tokens_refuses_a_name_that_is_no_flag():
    with pytest.raises(ProgramFormatError, match=r"^LOAD: no token flag \['planes'\]"):
        Instr("LOAD").with_tokens(planes=2)

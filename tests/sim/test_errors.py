"""Errors are interface: bad programs name the instruction, bad inputs are InputError."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import InputError, ProgramFormatError
from qasic.isa.encoding import assemble
from qasic.isa.program import Program, Region
from qasic.sim.machine import Machine
from qasic.sim.run import simulate
from tests.graphs import cnn_graph, random_codes

ARCH = default_arch()
REGIONS = (Region("x", 0, 1024, "input", (1, 1, 1024, 0)),
           Region("constants", 1024, 0, "constants"))


def run(text: str) -> None:
    instrs = tuple(assemble(text))
    Machine(Program(instrs, (0,) * len(instrs), b"", REGIONS), ARCH, batch=1).run()


@pytest.fixture(scope="module")
def program() -> Program:
    return compile_graph(cnn_graph(), ARCH)


@pytest.mark.parametrize("text, message", [
    ((f"SYNC\nLOAD mem=input sram_addr={ARCH.input_sram_bytes - 8} planes=1 rows=1 "
      "row_bytes=16\nEND"),
     (rf"instruction 1 \(LOAD\): destination range \[{ARCH.input_sram_bytes - 8}, "
     rf"{ARCH.input_sram_bytes + 8}\) is outside the {ARCH.input_sram_bytes}-byte memory")),
    ("LOAD mem=output dram_addr=1020 planes=1 rows=2 row_bytes=4 dram_stride=4\nEND",
     r"instruction 0 \(LOAD\): source range \[1020, 1028\) is outside the 1024-byte memory"),
    ("SYNC\nSYNC\nSTORE mem=param sram_addr=4000 planes=1 rows=1 row_bytes=200\nEND",
     r"instruction 2 \(STORE\): source range \[4000, 4200\)"),
    (f"GEMM inp_addr={ARCH.input_sram_bytes - 4} lines=1 rows=1 k=16 n=16 wbits=8\nEND",
     r"instruction 0 \(GEMM\): input range"),
    (f"GEMM wgt_addr={ARCH.weight_sram_bytes - 16} lines=1 rows=1 k=16 n=16 wbits=8\nEND",
     r"instruction 0 \(GEMM\): weight range"),
    ("GEMM lines=1 rows=64 k=16 n=16 acc_addr=4090 wbits=8\nEND",
     r"instruction 0 \(GEMM\): acc range"),
    ("GEMM lines=1 rows=1 k=17 n=16 wbits=8\nEND", (r"instruction 0 \(GEMM\): lines=1 x "
                                                   r"rows=1 = 1 vectors, k=17 .* exceed "
                                          r"the array \(16x16")),
    ("GEMM lines=1 rows=65 k=1 n=1 wbits=8\nEND", r"instruction 0 \(GEMM\).*exceed"),
    ("GEMM lines=5 rows=13 k=1 n=1 wbits=8\nEND", r"instruction 0 \(GEMM\).*= 65 vectors.*exceed"),
    ("POST rows=64 n=16 out_addr=8000 out_stride=16\nEND", r"instruction 0 \(POST\): output"),
    ("POST rows=1 n=16 param_addr=4000\nEND", r"instruction 0 \(POST\): param range"),
    ("POOL h=8 w=8 c=32 kh=2 kw=2 sh=2 sw=2 src_pix_stride=32 src_addr=7000\nEND",
     r"instruction 0 \(POOL\): source range"),
    ("POOL h=2 w=2 c=1 kh=3 kw=1 sh=1 sw=1\nEND", (r"instruction 0 \(POOL\): window 3x1 "
                                                  r"stride 1x1 does not fit a 2x2 source")),
    ("POOL h=8 w=8 c=8 kh=2 kw=2 sh=2 sw=2 mode=avg param_addr=4090\nEND",
     r"instruction 0 \(POOL\): param range"),
    ("LUT count=8 table_addr=4000\nEND", r"instruction 0 \(LUT\): table range"),
    ("POST rows=1 n=1 lut=1 lut_addr=4000\nEND", r"instruction 0 \(POST\): table range"),
    ("ADD count=64 bcast=8 b_addr=8190\nEND", r"instruction 0 \(ADD\): b_addr range"),
    ("ADD count=100 dst_addr=8150\nEND", r"instruction 0 \(ADD\): dst_addr range"),
    ("LOAD mem=acc planes=1 rows=1 row_bytes=4\nEND",
     r"instruction 0 \(LOAD\): the accumulator is not DMA-addressable"),
])
def test_out_of_range_access_names_the_instruction_and_op(text, message):
    with pytest.raises(ProgramFormatError, match=message):
        run(text)


def test_wrong_input_shape_is_an_input_error(program):
    with pytest.raises(InputError, match=r"input of shape \(2, 1, 7, 7\) does not fit program "
                                         r"synthetic_cnn: expected \(batch, 1, 8, 8\) \(NCHW\)"):
        simulate(program, ARCH, np.zeros((2, 1, 7, 7)))
    with pytest.raises(InputError, match=r"input of shape \(2, 64\) does not fit"):
        simulate(program, ARCH, np.zeros((2, 64)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_input_is_an_input_error(program, bad):
    x = np.zeros((3, 1, 8, 8))
    x[1, 0, 2, 3] = bad
    with pytest.raises(InputError, match="NaN or inf"):
        simulate(program, ARCH, x)


@pytest.mark.parametrize("codes, message", [
    (np.zeros((2, 8, 8), dtype=np.int64), r"codes of shape \(2, 8, 8\) do not fit"),
    (np.zeros((2, 1, 8, 8), dtype=np.int64), r"codes of shape \(2, 1, 8, 8\) do not fit"),
    (np.full((2, 8, 8, 1), 200), r"span \[200, 200\], outside the 8-bit input range"),
    (np.zeros((2, 8, 8, 1)) + 0.5, "must be integers"),
])
def test_bad_integer_codes_are_input_errors(program, codes, message):
    with pytest.raises(InputError, match=message):
        simulate(program, ARCH, codes=codes)


def test_program_for_another_arch_is_an_input_error(program):
    other = dataclasses.replace(ARCH, name="other")
    with pytest.raises(InputError, match="compiled for arch 'default-16x16' with name = "
                       "'default-16x16', not 'other'"):
        simulate(program, other, codes=random_codes(cnn_graph(), 1))


def test_program_for_another_arch_is_refused():
    import dataclasses

    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.errors import InputError
    from qasic.sim import simulate
    from tests.graphs import cnn_graph, random_codes

    arch = default_arch()
    g = cnn_graph()
    program = compile_graph(g, arch)
    other = dataclasses.replace(arch, dram_bytes_per_cycle=16)
    with pytest.raises(InputError, match="dram_bytes_per_cycle = 8, not 16"):
        simulate(program, other, codes=random_codes(g, 2))


def test_simulate_refuses_a_program_with_a_missing_token():
    """A schedule the parallel queues could reorder is an error, not a silent difference."""
    import dataclasses

    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.errors import ProgramFormatError
    from qasic.sim import simulate
    from tests.compiler.checks import without_load_tokens
    from tests.graphs import cnn_graph, random_codes

    arch = dataclasses.replace(default_arch(), dram_latency_cycles=0)
    g = cnn_graph()
    p = compile_graph(g, arch)
    broken = without_load_tokens(p, "conv2")
    with pytest.raises(ProgramFormatError,
                       match=r"instruction \d+ \(\w+\): (RAW|WAR|WAW) on \w+ \[\d+, \d+\) "
                             r"against instruction \d+ .* a token is missing"):
        simulate(broken, arch, codes=random_codes(g, 2))
    simulate(p, arch, codes=random_codes(g, 2))  # the compiler's own schedule passes

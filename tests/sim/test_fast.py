"""The fast functional path (qasic.sim.fast) leaves every memory exactly as the per-instruction
machine does: DRAM, every scratchpad and the accumulator, byte for byte, on the built-in models
and the transformer test graphs (also softmaxes with constant attention patterns), at INT8, packed
INT4, FP8 activations and block-scaled weights."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.program import Program, Region
from qasic.quant import reference
from qasic.sim import fast
from qasic.sim.machine import Machine
from qasic.sim.run import run_functional
from tests.archs import small_arch
from tests.compiler.test_transformer import PER_HEAD, codes_for, pattern_graph, window
from tests.compiler.transformers import attention_block
from tests.graphs import (
    blocked_graph,
    cnn_graph,
    fp8_graph,
    random_codes,
    residual_graph,
    with_act_bits,
    with_fp8,
)

ARCH = default_arch()
WIDE = dataclasses.replace(ARCH, acc_bits=48)
FP8_ARCH = dataclasses.replace(ARCH, input_bits=5, input_shift_bits=4, acc_bits=48)
SMALL = small_arch(array_rows=8, array_cols=8, gemm_max_rows=16, input_sram_bytes=2048,
                   weight_sram_bytes=2048, acc_sram_bytes=2048, output_sram_bytes=1024,
                   param_sram_bytes=1024)


def machines(program: Program, arch, codes: np.ndarray,
             fresh: bool = False) -> tuple[Machine, Machine]:
    """(exact, fast): the same program run on the same codes by each path (``fresh``: the fast
    path as run_functional runs it, scratchpads proven equal across the batch shared)."""
    out = []
    for run in (Machine.run, lambda m: fast.run(m, fresh=fresh)):
        m = Machine(program, arch, len(codes))
        m.write_region(program.meta["input"]["tensor"], codes)
        run(m)
        out.append(m)
    return out[0], out[1]


def assert_same_state(program: Program, arch, codes: np.ndarray, fresh: bool = False) -> None:
    exact, quick = machines(program, arch, codes, fresh)
    np.testing.assert_array_equal(quick.dram, exact.dram)
    np.testing.assert_array_equal(quick.acc, exact.acc)
    for name, mem in exact.mem.items():
        np.testing.assert_array_equal(quick.mem[name], mem, err_msg=name)


GRAPHS = {
    "int8": (lambda: cnn_graph(), ARCH),
    "int4-weights": (lambda: cnn_graph(seed=1, wbits=(4, 4, 4)), ARCH),
    "int4-packed": (lambda: with_act_bits(cnn_graph(), 4), ARCH),
    "int3-packed": (lambda: with_act_bits(residual_graph(), 3), ARCH),
    "fp8": (fp8_graph, FP8_ARCH),
    "fp8-residual": (lambda: with_fp8(residual_graph()), FP8_ARCH),
    "mx-shift-lut": (lambda: blocked_graph("shift", 32, lut=True), WIDE),
    "block-mul": (lambda: blocked_graph("mul", 64, lut=True), WIDE),
    "block-mulzp": (lambda: blocked_graph("mulzp", 16, lut=False), WIDE),
    "int8-small-array": (lambda: cnn_graph(), SMALL),
}


@cache
def compiled(name: str):
    make, arch = GRAPHS[name]
    g = make()
    return g, compile_graph(g, arch), arch


@pytest.mark.parametrize("fresh", [False, True], ids=["compared", "proven"])
@pytest.mark.parametrize("name", GRAPHS)
def test_fast_path_leaves_every_memory_as_the_machine(name, fresh):
    """Also with the weight and param scratchpads proven equal across the batch: one row
    shared by every element (each then reads as the machine's own)."""
    g, p, arch = compiled(name)
    assert fast.batch_uniform(p) == 1  # constants only
    assert_same_state(p, arch, random_codes(g, 5), fresh)


@pytest.mark.parametrize("name", ["int8", "fp8", "mx-shift-lut"])
def test_fast_path_equals_the_reference(name):
    g, p, arch = compiled(name)
    x = random_codes(g, 7)
    np.testing.assert_array_equal(run_functional(p, arch, x), reference.run(g, x))


@pytest.mark.parametrize("arch", [ARCH, SMALL], ids=["default", "8x8"])
@pytest.mark.parametrize("bits, masked", [(8, False), (4, False), (8, True)])
def test_attention_block_leaves_every_memory_as_the_machine(bits, masked, arch):
    """Dynamic weights (b of q k^T and p v differs per batch element), gathers, softmax,
    norms. Its weight scratchpad takes bytes its STOREs wrote: not proven equal across the
    batch (the fast path compares them per fold)."""
    g = attention_block(bits=bits, masked=masked)
    p = compile_graph(g, arch)
    assert fast.batch_uniform(p) == 0
    assert_same_state(p, arch, codes_for(g, 3, seed=5), fresh=True)


@pytest.mark.parametrize("valid", ["window", "per_head"])
@pytest.mark.parametrize("arch", [ARCH, SMALL], ids=["default", "8x8"])
def test_a_constant_attention_pattern_runs_as_on_the_machine(valid, arch):
    """A softmax's constant pattern (sliding window; one pattern per head): its rows loaded as
    DRAM constants, one masked SOFTMAX a step (mask_stride); both paths equal the
    reference."""
    v = {"window": window(6, 10, 3), "per_head": PER_HEAD}[valid]
    g = pattern_graph(v)
    p = compile_graph(g, arch)
    x = codes_for(g, 3, seed=5)
    assert_same_state(p, arch, x, fresh=True)
    want = reference.run(g, x)
    for mode in ("fast", "exact"):
        np.testing.assert_array_equal(run_functional(p, arch, x, mode=mode), want)


@pytest.mark.parametrize("model", ["digits_cnn", "digits_mlp", "mnist_cnn", "mnist_deep"])
def test_built_in_models_leave_every_memory_as_the_machine(model):
    from qasic.flow import quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig
    from qasic.sim.run import input_codes

    t = get_model(model)
    for cfg in (QuantConfig(), QuantConfig(weight_bits=4, activation_bits=4)):
        p = compile_graph(quantize_model(t, cfg), ARCH)
        assert_same_state(p, ARCH, input_codes(p, t.test_inputs[:4]))


def lut_program(entry: int) -> Program:
    """One 2-bit LUT GEMM whose decode table's entry 0 is ``entry`` (loaded from DRAM)."""
    table = np.array([entry, 1 << 8, 2 << 8, 3 << 8], dtype="<u4").tobytes()
    regions = (Region("constants", 0, 64, "constants"),)
    instrs = (Instr("LOAD", {"mem": "param", "rows": 1, "row_bytes": 16, "planes": 1}),
              Instr("GEMM", {"lines": 1, "rows": 2, "k": 4, "n": 4, "wbits": 2, "lut": 1,
                             "afmt": "int8"}),
              Instr("END"))
    return Program(instrs, (0,) * 3, table + bytes(48), regions)


def test_a_bad_decode_table_fails_as_on_the_machine():
    p = lut_program(40)  # shift field 40 > 31
    errors = []
    for run in (Machine.run, fast.run):
        with pytest.raises(ProgramFormatError) as e:
            run(Machine(p, ARCH, 2))
        errors.append(str(e.value))
    assert errors[0] == errors[1]
    assert "decode-table entry 0" in errors[0]


def test_a_decoded_fold_after_the_machine_checked_its_table():
    p = lut_program(5 << 8)
    exact, quick = Machine(p, ARCH, 2), Machine(p, ARCH, 2)
    for m in (exact, quick):
        m.mem["input"][:] = np.arange(exact.mem["input"].shape[1]) % 7
    exact.run()
    fast.run(quick)
    np.testing.assert_array_equal(quick.acc, exact.acc)
    assert np.any(exact.acc != 0)


def test_a_load_of_the_input_into_the_weights_is_not_proven_shared():
    """The input region differs per batch element: a LOAD of it into the weight scratchpad
    (or of bytes a STORE wrote) makes the weights per element."""
    regions = (Region("constants", 0, 64, "constants"), Region("x", 64, 16, "input"))
    meta = {"input": {"tensor": "x"}}
    load = {"mem": "weight", "rows": 1, "row_bytes": 16, "planes": 1}
    for dram_addr, proven in ((0, 1), (64, 0), (56, 0)):
        p = Program((Instr("LOAD", dict(load, dram_addr=dram_addr)), Instr("END")), (0, 0),
                    bytes(64), regions, meta)
        assert fast.batch_uniform(p) == proven, dram_addr
    stored = Program((Instr("STORE", {"mem": "output", "rows": 1, "row_bytes": 4, "planes": 1,
                                      "dram_addr": 8}),
                      Instr("LOAD", load), Instr("END")), (0, 0, 0), bytes(64), regions, meta)
    assert fast.batch_uniform(stored) == 0


@pytest.mark.parametrize("fmt, bfmt, ofmt", [
    ("int8", "int8", "int8"), ("int4", "int4", "int4"), ("int2", "int8", "int16"),
    ("fp8_e4m3", "fp8_e4m3", "fp8_e4m3"), ("int8", "fp8_e4m3", "int8"),
    ("int16", "int8", "int16")])
@pytest.mark.parametrize("bcast", [0, 1, 6])
def test_large_adds_leave_the_output_as_the_machine(fmt, bfmt, ofmt, bcast):
    """ADDs of at least fastkernels.ADD_TABLE_MIN elements rescale operands of at most 8 bits
    by tables of their 256 codes (one requant per element instead of three; int16 operands
    keep the machine's arithmetic): random operand bytes, random multipliers, every format."""
    from qasic.isa.table import encoding_bits
    from qasic.quant.fixedpoint import quantize_multiplier
    from qasic.sim import fastkernels as FK

    count = FK.ADD_TABLE_MIN + 37
    regions = (Region("constants", 0, 64, "constants"),)
    p = Program((Instr("ADD", {"a_addr": 0, "b_addr": 2048, "dst_addr": 4096, "count": count,
                               "bcast": bcast, "param_addr": 48, "fmt": fmt, "bfmt": bfmt,
                               "ofmt": ofmt}), Instr("END")), (0, 0), bytes(64), regions)
    bits = encoding_bits(ofmt)
    lo, hi = ((-0x7E, 0x7E) if ofmt.startswith("fp") else (-(1 << (bits - 1)),
                                                              (1 << (bits - 1)) - 1))
    words = [3, -2, 1, *quantize_multiplier(0.4), *quantize_multiplier(0.7),
             *quantize_multiplier(2.0 ** -20 * 1.3), lo, hi]
    ms = []
    for run in (Machine.run, fast.run):
        m = Machine(p, ARCH, 2)
        m.mem["output"][:] = np.random.default_rng(bcast).integers(0, 256, m.mem["output"].shape)
        m.mem["param"][:, 48:48 + 44] = np.frombuffer(np.array(words, "<i4").tobytes(), np.uint8)
        run(m)
        ms.append(m)
    np.testing.assert_array_equal(ms[1].mem["output"], ms[0].mem["output"])
    assert len(np.unique(ms[0].mem["output"][:, 4096:4096 + count])) > 2


@pytest.mark.parametrize("bits, masked", [(8, False), (8, True)])
def test_gemms_proven_shared_read_equal_weights_in_every_element(bits, masked):
    """fast.proven_shared, per GEMM where batch_uniform fails for the program (attention loads
    the K and V it stored): at every proven GEMM the machine holds the same weight and param
    bytes in every batch element; the GEMMs of K and V are not proven, and their bytes differ."""
    from qasic.isa import access
    from qasic.sim.fastfields import program_fields

    g = attention_block(bits=bits, masked=masked)
    p = compile_graph(g, ARCH)
    proven = fast.proven_shared(p)
    gemms = [i for i, ins in enumerate(p.instrs) if ins.op == "GEMM"]
    acc = access.table(program_fields(p).groups)
    spans = {i: [(access.MEMORIES[k], lo, hi) for k, lo, hi in zip(
        acc.mem[acc.instr == i], acc.lo[acc.instr == i], acc.hi[acc.instr == i], strict=True)
        if access.MEMORIES[k] in fast.SHARED_MEMS] for i in gemms}
    equal: dict[int, bool] = {}

    def look(i, ins, m):
        if ins.op == "GEMM":
            equal[i] = all((m.mem[name][:, lo:hi] == m.mem[name][:1, lo:hi]).all()
                           for name, lo, hi in spans[i])
    m = Machine(p, ARCH, 3)
    m.write_region(p.meta["input"]["tensor"], codes_for(g, 3, seed=5))
    m.run(look)
    assert 0 < proven[gemms].sum() < len(gemms)
    assert all(equal[i] for i in gemms if proven[i])
    assert not all(equal[i] for i in gemms if not proven[i])
    assert not any(proven[i] for i, ins in enumerate(p.instrs) if ins.op != "GEMM")


@pytest.mark.parametrize("name", GRAPHS)
def test_batch_one_leaves_every_memory_as_the_machine(name):
    """Batch 1: INT8 GEMMs read the float32 mirrors of the scratchpads (fastkernels._mirror),
    the other formats decode per fold."""
    g, p, arch = compiled(name)
    assert_same_state(p, arch, random_codes(g, 1, seed=3))
    assert_same_state(p, arch, random_codes(g, 1, seed=4), fresh=True)


# (lines, rows, inp_stride, inp_line_stride, k, n): one strided matrix, a line per call, one
# row per line, a stride below k (decoded per fold instead), a single vector
MIRRORED = [(1, 8, 16, 0, 16, 16), (3, 4, 20, 80, 16, 12), (2, 5, 24, 200, 13, 16),
            (6, 1, 0, 40, 16, 16), (2, 3, 8, 64, 16, 16), (1, 1, 0, 0, 7, 5)]


def mirrored_program(shapes, gather: bool) -> Program:
    """Random INT8 input and weight bytes loaded from DRAM; each GEMM of ``shapes`` in turn
    (the first writes, the rest accumulate into the same tile), with a LOAD rewriting part
    of the input between GEMMs and (``gather``) a GATHER, which the machine runs, overwriting
    input bytes before the last GEMM."""
    rng = np.random.default_rng(7)
    consts = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    idx = np.array([2, 0], dtype="<i4").tobytes()
    regions = (Region("constants", 0, 4096 + 8, "constants"),)
    load = {"rows": 1, "planes": 1, "dram_stride": 0, "sram_stride": 0}
    instrs = [Instr("LOAD", dict(load, mem="input", row_bytes=1024, dram_addr=0)),
              Instr("LOAD", dict(load, mem="weight", row_bytes=2048, dram_addr=1024))]
    for j, (lines, rows, stride, line, k, n) in enumerate(shapes):
        instrs.append(Instr("GEMM", {"lines": lines, "rows": rows, "inp_stride": stride,
                                     "inp_line_stride": line, "inp_addr": 8 * j, "k": k,
                                     "n": n, "wgt_addr": 256 * j, "acc_addr": 0,
                                     "accumulate": int(j > 0), "wbits": 8, "afmt": "int8"}))
        instrs.append(Instr("LOAD", dict(load, mem="input", row_bytes=40, sram_addr=16 * j,
                                         dram_addr=3072 + 40 * j)))
        if gather and j == len(shapes) - 2:
            instrs.append(Instr("GATHER", {"mem": "input", "idx_addr": 4096, "count": 2,
                                           "table_addr": 2048, "table_stride": 32, "vocab": 8,
                                           "row_bytes": 32, "sram_addr": 24,
                                           "sram_stride": 32}))
    instrs.append(Instr("END"))
    return Program(tuple(instrs), (0,) * len(instrs), consts + idx, regions)


@pytest.mark.parametrize("gather", [False, True], ids=["loads", "gather"])
@pytest.mark.parametrize("shape", range(len(MIRRORED)))
def test_gemms_on_the_mirrors_leave_every_memory_as_the_machine(shape, gather):
    """Every row layout the mirrored sgemm reads (strides, lines, single rows; a stride below
    k takes the decode path), the mirrors kept by LOADs between GEMMs and rebuilt after an
    instruction the machine runs: accumulator and scratchpads equal to the machine's."""
    shapes = [MIRRORED[shape], *MIRRORED[:shape], *MIRRORED[shape + 1:]]
    p = mirrored_program(shapes, gather)
    exact, quick = (Machine(p, WIDE, 1) for _ in range(2))
    exact.run()
    fast.run(quick)
    np.testing.assert_array_equal(quick.acc, exact.acc)
    assert np.any(exact.acc != 0)
    for name, mem in exact.mem.items():
        np.testing.assert_array_equal(quick.mem[name], mem, err_msg=name)

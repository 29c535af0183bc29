"""The GEMM unit (rtl.gemm_unit) against the simulator's kernel, sim.kernels.gemm.

Random GEMM instructions over every afmt, wbits 2..8, lut 0/1, every bscale mode, wtrans 0/1 and
accumulate 0/1 run on the unit with behavioural scratchpads (Python answering its ports: read
data the cycle after ``en``, lanes past a memory's end read 0). The accumulator scratchpad after
each instruction must equal the kernel's, and busy/done must follow the contract with
busy = done = ``timing.gemm_unit_cycles``. The fast tier runs in Amaranth's simulator; one
cocotb test runs the same cases on Verilator (rtl/tb_gemm.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from qasic.arch.config import ArchConfig, default_arch
from qasic.isa import lut as lut_entries
from qasic.isa.encoding import Instr, encode
from qasic.isa.packing import gemm_weight_span, pack_bits
from qasic.isa.table import (
    ACT_ENCODINGS,
    BSCALE_MODES,
    encoding_bits,
    encoding_bytes,
    encoding_is_fp,
)
from qasic.quant.actformat import levels, max_code
from qasic.rtl.cocotb_runner import VERILATOR_ARGS, arch_key
from qasic.rtl.gemm_unit import GemmUnit
from qasic.rtl.harness import FAST_BUILD
from qasic.rtl.packing import operand_misfit, wrap
from qasic.rtl.ports import sram_elements
from qasic.rtl.timing import gemm_prologue_cycles, gemm_unit_cycles
from qasic.rtl.tools import build_lock, ensure_verilator, verilator_make
from qasic.sim import kernels
from qasic.sim.machine import _act_table

MEMS = ("input", "weight", "param")
REGION = 1024          # operands are placed in the first REGION elements of each memory
FP8_LEVELS = levels("fp8_e4m3")
ARCH = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, gemm_max_rows=16,
                           weight_bits=10)
# Shift-add weights with shifts up to 31: decode-table levels up to 15 << 31 (entries whose
# own shift field is nonzero, like FP8 E5M2's).
WIDE_ARCH = dataclasses.replace(ARCH, weight_bits=5, weight_shift_bits=5, acc_bits=48)
# Shift-add PEs on both sides (the fp8_digits design point's 5-bit significands and 4-bit
# shifts) and a 40-bit accumulator in 5-byte words.
SHIFT_ARCH = dataclasses.replace(ARCH, input_bits=5, input_shift_bits=4, weight_bits=5,
                                 weight_shift_bits=4, acc_bits=40)


@dataclass
class Case:
    """One GEMM instruction and the scratchpads it runs on."""

    instr: Instr
    mem: dict          # name -> uint8 array (input, weight, param)
    acc: np.ndarray    # int64 accumulator words (acc_bits-wide values)

    def expected(self, arch: ArchConfig) -> np.ndarray:
        """The accumulator after the instruction, by sim.kernels.gemm."""
        ins, acc = self.instr, self.acc.copy()[None]
        s_addr, w_addr, _ = gemm_weight_span(ins)
        kernels.gemm(self.mem["input"][None], ins["inp_addr"], ins["inp_stride"], ins["lines"],
                     ins["inp_line_stride"], self.mem["weight"][None], w_addr, acc,
                     ins["acc_addr"], ins["rows"], ins["k"], ins["n"], ins["accumulate"],
                     ins["wbits"], arch.acc_bits, ins["lut"], self.mem["param"][None],
                     ins["lut_addr"], BSCALE_MODES.index(ins["bscale"]), s_addr or 0,
                     encoding_is_fp(ins["afmt"]), _act_table(ins["afmt"]),
                     encoding_bits(ins["afmt"]),
                     ins["wtrans"])
        return acc[0]

    def cycles(self, arch: ArchConfig) -> int:
        ins = self.instr
        pre = gemm_prologue_cycles(arch.array_cols, ins["n"], ins["wbits"], ins["lut"],
                                   ins["wtrans"], int(ins["bscale"] == "mulzp"))
        return gemm_unit_cycles(arch.array_rows, arch.array_cols, ins["lines"] * ins["rows"],
                                pre)


def afmts(arch: ArchConfig) -> tuple[str, ...]:
    """The input encodings whose every code fits the arch's activation operand."""
    out = []
    for e in ACT_ENCODINGS:
        if encoding_bits(e) > 8:
            continue
        bits = encoding_bits(e)
        values = levels(e) if encoding_is_fp(e) else np.arange(-(1 << (bits - 1)),
                                                               1 << (bits - 1))
        if operand_misfit(values, arch.input_bits, arch.input_shift_bits) is None:
            out.append(e)
    return tuple(out)


def _fits(values, arch: ArchConfig) -> bool:
    return operand_misfit(values, arch.weight_bits, arch.weight_shift_bits) is None


def random_case(rng, arch: ArchConfig, **fixed) -> Case:
    """A random GEMM whose weights (decoded, zero points subtracted) fit the arch's PEs.

    ``fixed`` pins fields (afmt, wbits, lut, bscale, wtrans, accumulate, k, n, lines, rows)."""
    r, c, m = arch.array_rows, arch.array_cols, arch.gemm_max_rows
    pick = {
        "afmt": str(rng.choice(afmts(arch))),
        "wbits": int(rng.integers(2, 9)), "lut": int(rng.integers(0, 2)),
        "bscale": str(rng.choice(BSCALE_MODES)), "wtrans": int(rng.integers(0, 2)),
        "accumulate": int(rng.integers(0, 2)),
        "k": int(rng.integers(1, r + 1)), "n": int(rng.integers(1, c + 1)),
        "lines": int(rng.integers(1, 4)),
    }
    pick.update(fixed)
    pick.setdefault("rows", int(rng.integers(1, m // pick["lines"] + 1)))
    if not pick["lut"]:  # plain codes enter the PEs as they are (isa.limits)
        pick["wbits"] = min(pick["wbits"], arch.weight_bits)
    n, wbits, t = pick["n"], pick["wbits"], pick["lines"] * pick["rows"]
    mem = {name: rng.integers(0, 256, size=sram_elements(arch)[name][0]).astype(np.uint8)
           for name in MEMS}
    codes = _random_weights(rng, arch, pick)
    table, zp = codes.table, codes.zp
    codes = codes.codes
    scales = rng.integers(0, 256, size=n)
    if pick["bscale"] == "shift":  # mostly shifts that keep bits, some past acc_bits
        scales = np.where(rng.random(n) < 0.8, rng.integers(0, 12, size=n), scales)
    args = dict(pick, inp_addr=int(rng.integers(0, REGION // 2)),
                inp_stride=int(rng.integers(0, 12)), inp_line_stride=int(rng.integers(0, 64)),
                wgt_addr=int(rng.integers(0, REGION // 2)),
                acc_addr=int(rng.integers(0, sram_elements(arch)["acc"][0] - t * n + 1)),
                lut_addr=int(rng.integers(0, REGION // 2)))
    ins = Instr("GEMM", args)
    s_addr, w_addr, _ = gemm_weight_span(ins)
    blob = pack_bits(codes.T if pick["wtrans"] else codes, wbits)
    mem["weight"][w_addr:w_addr + len(blob)] = np.frombuffer(blob, np.uint8)
    if s_addr is not None:
        mem["weight"][s_addr:s_addr + n] = scales
        if pick["bscale"] == "mulzp":
            mem["weight"][s_addr + n:s_addr + 2 * n] = zp & 0xFF
    if pick["lut"]:
        entries = lut_entries.encode(table).astype("<u4").view(np.uint8)
        mem["param"][args["lut_addr"]:args["lut_addr"] + len(entries)] = entries
    _fill_inputs(rng, mem["input"], ins)
    words = sram_elements(arch)["acc"][0]
    acc = wrap(rng.integers(-(1 << 62), 1 << 62, size=words), arch.acc_bits)
    return Case(ins, mem, acc)


@dataclass
class Weights:
    codes: np.ndarray        # k x n signed wbits codes
    table: np.ndarray | None  # 2^wbits levels (lut = 1)
    zp: np.ndarray           # n zero points (0 unless mulzp)


def _random_weights(rng, arch: ArchConfig, pick: dict) -> Weights:
    """Codes drawn per column among those whose weight (level minus zero point) fits the PEs."""
    k, n, wbits = pick["k"], pick["n"], pick["wbits"]
    every = np.arange(-(1 << (wbits - 1)), 1 << (wbits - 1))
    for _ in range(100):
        table = _random_table(rng, arch, wbits) if pick["lut"] else None
        zp = rng.integers(-8, 8, size=n) if pick["bscale"] == "mulzp" else np.zeros(n, int)
        level = table[every & ((1 << wbits) - 1)] if pick["lut"] else every
        allowed = [every[[_fits([v - z], arch) for v in level]] for z in zp]
        if all(len(a) for a in allowed):
            codes = np.stack([rng.choice(a, size=k) for a in allowed], axis=1)
            return Weights(codes, table, zp)
    raise AssertionError(f"no weights fit {arch.name} for {pick}")


def _random_table(rng, arch: ArchConfig, wbits: int) -> np.ndarray:
    """2^wbits levels: FP8 E4M3 levels on shift-add PEs, else integers of the weight width."""
    size = 1 << wbits
    if arch.weight_shift_bits >= 5:  # levels past 24 bits: table entries with shifts
        return rng.integers(-15, 16, size=size) << rng.integers(0, 32, size=size)
    if arch.weight_shift_bits:
        return FP8_LEVELS[rng.integers(0, 256, size=size)].astype(np.int64)
    half = 1 << (arch.weight_bits - 2)
    return rng.integers(-half, half, size=size)


def _fill_inputs(rng, mem: np.ndarray, ins: Instr) -> None:
    """Random codes of afmt at every vector (FP8: any byte but E4M3's NaN codes)."""
    enc, k = ins["afmt"], ins["k"]
    for line in range(ins["lines"]):
        for row in range(ins["rows"]):
            at = ins["inp_addr"] + line * ins["inp_line_stride"] + row * ins["inp_stride"]
            if encoding_is_fp(enc):
                codes = rng.integers(0, 256, size=k)
                codes = np.where((codes & 0x7F) > max_code(enc), codes - 1, codes)
                mem[at:at + k] = codes
            else:
                bits = encoding_bits(enc)
                blob = pack_bits(rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=k),
                                 bits)
                assert len(blob) == encoding_bytes(k, enc)
                mem[at:at + len(blob)] = np.frombuffer(blob, np.uint8)  # overlaps: last wins


# -- Amaranth's simulator -------------------------------------------------------------------


def run_amaranth(arch: ArchConfig, cases: list[Case]) -> list[tuple[np.ndarray, int]]:
    """Run ``cases`` back to back (each starts in the cycle busy falls) on a fresh unit; return
    per case the accumulator words and the measured (busy, done) durations checked equal."""
    dut = GemmUnit(arch)
    results = []

    async def bench(ctx):
        words = sram_elements(arch)["acc"][0]
        state = {"mem": None, "acc": None, "pending": {}}
        ports = {"input": dut.inp, "weight": dut.wgt, "param": dut.par, "acc": dut.acc_rd}

        def service():
            """One cycle of the scratchpads: answer last cycle's reads, take this cycle's."""
            for name, port in ports.items():
                if name in state["pending"]:
                    ctx.set(port.data, state["pending"].pop(name))
            for name, port in ports.items():
                if ctx.get(port.en):
                    store = state["acc"] if name == "acc" else state["mem"][name]
                    state["pending"][name] = _lanes(store, ctx.get(port.addr), len(port.data),
                                                    len(port.data[0]))
            if ctx.get(dut.acc_wr.en):
                base, mask = ctx.get(dut.acc_wr.addr), ctx.get(dut.acc_wr.mask)
                for j in range(len(dut.acc_wr.data)):
                    if mask >> j & 1:
                        assert base + j < words, f"acc write past the end: word {base + j}"
                        raw = int(ctx.get(dut.acc_wr.data[j]))
                        value = int(wrap(np.array([raw]), arch.acc_bits)[0])
                        assert raw == value & ((1 << 8 * arch.acc_word_bytes) - 1), \
                            f"acc word {base + j} = {raw:#x} is not sign-extended"
                        state["acc"][base + j] = value

        for case in cases:
            state["mem"], state["acc"] = case.mem, case.acc.copy()
            ctx.set(dut.ctl.instr, encode(case.instr))
            ctx.set(dut.ctl.start, 1)
            assert not ctx.get(dut.ctl.busy)
            service()
            await ctx.tick()
            ctx.set(dut.ctl.start, 0)
            ctx.set(dut.ctl.instr, 0)  # sampled at start only
            done_at, cycle = None, 1
            while ctx.get(dut.ctl.busy):
                service()
                if ctx.get(dut.ctl.done):
                    assert done_at is None, "done high twice"
                    done_at = cycle
                assert cycle < 4000, "no end of busy"
                await ctx.tick()
                cycle += 1
            assert not ctx.get(dut.ctl.done)
            assert done_at is not None, "busy fell without done"
            service()  # the last cycle's writes land before the next instruction
            assert done_at + 1 == cycle, f"done in cycle {done_at}, busy fell in {cycle}"
            assert not ctx.get(dut.ctl.error)
            results.append((state["acc"].copy(), cycle))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


def _lanes(store: np.ndarray, addr: int, lanes: int, bits: int) -> list[int]:
    """``lanes`` elements from ``addr`` (0 past the end), as unsigned ``bits``-wide values."""
    out = [int(v) & ((1 << bits) - 1) for v in store[addr:addr + lanes]]
    return out + [0] * (lanes - len(out))


def check(arch: ArchConfig, cases: list[Case], results) -> None:
    for i, (case, (acc, cycles)) in enumerate(zip(cases, results)):
        want = case.expected(arch)
        bad = np.flatnonzero(acc != want)
        assert not bad.size, (f"case {i} {dict(case.instr.args)}: acc word {bad[0]} = "
                              f"{acc[bad[0]]}, kernel {want[bad[0]]}")
        assert cycles == case.cycles(arch), f"case {i} {dict(case.instr.args)}"


# -- the cases: every value of every field, and the extremes ---------------------------------

AXES = ("afmt", "wbits", "lut", "bscale", "wtrans", "accumulate")


def feature_cases(rng, arch: ArchConfig, per_value: int = 1) -> list[Case]:
    """``per_value`` random cases for each value of each field (the others random), every
    (lut, wtrans, bscale) combination once, and the largest and smallest tiles."""
    values = {"afmt": afmts(arch), "wbits": range(2, 9), "lut": (0, 1), "bscale": BSCALE_MODES,
              "wtrans": (0, 1), "accumulate": (0, 1)}
    cases = [random_case(rng, arch, **{axis: v}) for axis in AXES for v in values[axis]
             for _ in range(per_value)]
    cases += [random_case(rng, arch, lut=lut, wtrans=wtrans, bscale=b)
              for lut in (0, 1) for wtrans in (0, 1) for b in BSCALE_MODES]
    r, c, m = arch.array_rows, arch.array_cols, arch.gemm_max_rows
    cases += [random_case(rng, arch, k=r, n=c, lines=1, rows=m, wbits=8, lut=1, wtrans=1,
                          bscale="mulzp", accumulate=1),
              random_case(rng, arch, k=r, n=c, lines=m, rows=1, wtrans=0),
              random_case(rng, arch, k=1, n=1, lines=1, rows=1, wtrans=1),
              random_case(rng, arch, k=1, n=1, lines=1, rows=1, lut=0, bscale="none")]
    return cases


def small_arch(rows: int, cols: int, **fields) -> ArchConfig:
    return dataclasses.replace(ARCH, array_rows=rows, array_cols=cols, **fields)


@pytest.mark.parametrize("arch", [ARCH, SHIFT_ARCH], ids=["int", "shift_add"])
def test_every_feature(arch):
    """Every afmt, wbits, lut, bscale, wtrans and accumulate, back to back on one unit."""
    cases = feature_cases(np.random.default_rng(7), arch)
    assert {c.instr["afmt"] for c in cases} == set(afmts(arch))
    check(arch, cases, run_amaranth(arch, cases))


@pytest.mark.parametrize("rows,cols", [(3, 5), (5, 2), (1, 1)])
def test_non_square_arrays(rows, cols):
    """Weight rows narrower or wider than the transposer's stored rows; the 1x1 array reads its
    block scales in the cycle they are first needed."""
    arch = small_arch(rows, cols, gemm_max_rows=6)
    rng = np.random.default_rng(rows * 10 + cols)
    cases = [random_case(rng, arch, wtrans=w, bscale=b) for w in (0, 1) for b in BSCALE_MODES]
    check(arch, cases, run_amaranth(arch, cases))


def test_wide_table_levels():
    """Table entries sig << sh with sh > 0 (levels past 24 bits) reach the PEs exactly."""
    rng = np.random.default_rng(5)
    cases = [random_case(rng, WIDE_ARCH, lut=1, wbits=w, bscale=b)
             for w in (2, 3, 4) for b in ("none", "mulzp")]
    tables = [c.mem["param"][c.instr["lut_addr"]:][:4 << c.instr["wbits"]] for c in cases]
    assert max(lut_entries.shifts(t.view("<u4")).max() for t in tables) > 0
    check(WIDE_ARCH, cases, run_amaranth(WIDE_ARCH, cases))


@pytest.mark.parametrize(("fmt", "bits", "shift"), [("fp8_e4m3", 19, 0), ("fp8_e3m4", 12, 0),
                                                    ("fp8_e3m4", 6, 3)])
def test_fp8_levels(fmt, bits, shift):
    """Without input shift bits an FP8 code enters as its whole level (E4M3 19 bits, E3M4 12);
    with them as its significand and shift (E3M4: 6-bit significands, shifts 0..6)."""
    arch = dataclasses.replace(ARCH, input_bits=bits, input_shift_bits=shift, acc_bits=48)
    assert fmt in afmts(arch)
    assert fmt not in afmts(dataclasses.replace(arch, input_bits=bits - 1))
    rng = np.random.default_rng(9)
    cases = [random_case(rng, arch, afmt=fmt, wtrans=w) for w in (0, 1)]
    check(arch, cases, run_amaranth(arch, cases))


# Compiled digits_cnn programs on the 4x4 array: plain INT8, MXFP4 weights (decode table, shift
# block scales) and FP8 weights and activations (shift-add PEs, arch_for's design points).
POINTS = {"w8a8": {}, "mxfp4": {"weight_format": "mxfp4"},
          "fp8": {"weight_format": "fp8_e4m3", "activation_format": "fp8_e4m3"},
          "fp8_e3m4": {"weight_format": "fp8_e4m3", "activation_format": "fp8_e3m4"}}


def program_cases(config: dict, count: int) -> tuple[ArchConfig, list[Case], list[np.ndarray]]:
    """``count`` GEMMs spread over a compiled program run on one test digit: each with the
    scratchpads the machine held before it, and the machine's accumulator after it."""
    from qasic.compiler import compile_graph
    from qasic.flow import arch_for, quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig
    from qasic.sim.machine import Machine
    from qasic.sim.run import input_codes

    trained = get_model("digits_cnn")
    graph = quantize_model(trained, QuantConfig(**config))
    arch = arch_for(graph, dataclasses.replace(default_arch(), array_rows=4, array_cols=4,
                                               gemm_max_rows=16))
    program = compile_graph(graph, arch)
    gemms = [i for i, ins in enumerate(program.instrs) if ins.op == "GEMM"]
    picked = set(np.array(gemms)[np.linspace(0, len(gemms) - 1, count).astype(int)].tolist())
    cases, after = [], []

    def hook(i, ins, machine):
        if i - 1 in picked:
            after.append(machine.acc[0].copy())
        if i in picked:
            cases.append(Case(ins, {name: machine.mem[name][0].copy() for name in MEMS},
                              machine.acc[0].copy()))

    machine = Machine(program, arch, 1)
    machine.write_region(program.meta["input"]["tensor"],
                         input_codes(program, np.asarray(trained.test_inputs[:1])))
    machine.run(hook)
    assert len(cases) == len(after) == count
    return arch, cases, after


@pytest.mark.parametrize("point", POINTS)
def test_compiled_program_gemms(point):
    """GEMMs of a real program (its strides, im2col lines, accumulation chains) on the unit
    equal the machine's accumulator after each."""
    arch, cases, after = program_cases(POINTS[point], 4)
    assert all(not np.array_equal(c.acc, want) for c, want in zip(cases, after))
    results = run_amaranth(arch, cases)
    check(arch, cases, results)
    for (acc, _), want in zip(results, after):
        np.testing.assert_array_equal(acc, want)


def test_afmt_is_the_only_input_difference():
    """The same bytes streamed as int4 and as int8 give different (each correct) results."""
    rng = np.random.default_rng(3)
    a = random_case(rng, ARCH, afmt="int8", k=4, n=4, lines=2, rows=3, accumulate=0)
    b = Case(Instr("GEMM", dict(a.instr.args, afmt="int4")), a.mem, a.acc)
    results = run_amaranth(ARCH, [a, b])
    check(ARCH, [a, b], results)
    assert not np.array_equal(results[0][0], results[1][0])


def test_cycle_formula_cases():
    """busy = done = pre + 2R + C + T - 1 with the prologue of each feature."""
    r, c = 4, 4
    assert gemm_unit_cycles(r, c, 10, 0) == 2 * r + c + 10 - 1
    assert gemm_prologue_cycles(c, 3, 8, 1, 0, 0) == 64       # 256 entries, 4 per read
    assert gemm_prologue_cycles(c, 3, 2, 1, 0, 0) == 1        # 4 entries
    assert gemm_prologue_cycles(c, 3, 2, 0, 0, 1) == 1        # the zero-point row
    assert gemm_prologue_cycles(c, 3, 2, 0, 1, 1) == 4        # ... then 3 stored rows
    assert gemm_prologue_cycles(c, 3, 2, 1, 1, 0) == 3        # table beside stored rows
    assert gemm_prologue_cycles(c, 3, 8, 0, 0, 0) == 0
    # the simulator applies it to columns of fields
    fields = [np.array(v) for v in ([3, 3, 4], [8, 2, 5], [1, 0, 1], [0, 1, 1], [0, 1, 1])]
    np.testing.assert_array_equal(gemm_prologue_cycles(c, *fields), [64, 4, 8])


# -- Verilator (cocotb): the same cases on the generated Verilog ----------------------------

TOP = "gemm_unit"
TB_MODULE = "qasic.rtl.tb_gemm"


def build_unit(arch: ArchConfig, build_dir: Path) -> Path:
    """Verilate GemmUnit(arch) once per arch and Verilog (a hash stamp); return sim_build.
    Unoptimized C++ (the harnesses' FAST_BUILD): the cases run a few thousand cycles, so the
    build is all the time."""
    from cocotb_tools.runner import get_runner

    root = Path(build_dir) / f"gemm_unit_{arch_key(arch)}"
    root.mkdir(parents=True, exist_ok=True)
    source = verilog.convert(GemmUnit(arch), name=TOP, emit_src=False)
    v_path, sim_dir, stamp = root / f"{TOP}.v", root / "sim_build", root / "sim_build.sha256"
    digest = hashlib.sha256(source.encode()).hexdigest()
    with build_lock(root):  # the build directory is shared by the pytest-xdist workers
        if not (stamp.exists() and stamp.read_text() == digest and (sim_dir / TOP).exists()):
            v_path.write_text(source)
            with verilator_make(ensure_verilator(), FAST_BUILD, build_dir):
                get_runner("verilator").build(sources=[v_path], hdl_toplevel=TOP,
                                              build_dir=sim_dir, build_args=VERILATOR_ARGS,
                                              always=True, log_file=root / "build.log")
            stamp.write_text(digest)
    return sim_dir


def run_verilator(arch: ArchConfig, cases: list[Case], sim_dir: Path) -> list[tuple]:
    """Run ``cases`` under cocotb (rtl/tb_gemm.py); per case (acc words, busy, done)."""
    from cocotb_tools.runner import get_results, get_runner

    run_dir = Path(tempfile.mkdtemp(prefix="gemm-", dir=sim_dir.parent))
    arrays = {}
    for i, case in enumerate(cases):
        arrays[f"instr_{i}"] = np.frombuffer(encode(case.instr).to_bytes(32, "little"), np.uint8)
        arrays.update({f"{name}_{i}": case.mem[name] for name in MEMS})
        arrays[f"acc_{i}"] = case.acc
    np.savez(run_dir / "cases.npz", acc_bits=arch.acc_bits, count=len(cases), **arrays)
    xml = run_dir / "results.xml"
    get_runner("verilator").test(
        test_module=TB_MODULE, hdl_toplevel=TOP, hdl_toplevel_lang="verilog", build_dir=sim_dir,
        test_dir=run_dir, results_xml=str(xml), log_file=run_dir / "sim.log",
        extra_env={"QASIC_GEMM_CASES": str(run_dir / "cases.npz"),
                   "QASIC_GEMM_RESULTS": str(run_dir / "results.npz")})
    assert get_results(xml)[1] == 0, f"cocotb testbench failed; log: {run_dir / 'sim.log'}"
    with np.load(run_dir / "results.npz") as res:
        out = [(res[f"acc_{i}"], int(res["busy"][i]), int(res["done"][i]))
               for i in range(len(cases))]
    shutil.rmtree(run_dir)
    return out


@pytest.mark.rtl
@pytest.mark.parametrize("arch", [ARCH, SHIFT_ARCH], ids=["int", "shift_add"])
def test_verilator_every_feature(arch, rtl_build_dir):
    """The Amaranth tier's feature cases on Verilator: accumulators exact, busy = done =
    gemm_unit_cycles (the queue starts the next one a cycle after busy falls)."""
    cases = feature_cases(np.random.default_rng(11), arch, per_value=2)
    results = run_verilator(arch, cases, build_unit(arch, rtl_build_dir))
    check(arch, cases, [(acc, busy) for acc, busy, _ in results])
    assert all(busy == done for _, busy, done in results)

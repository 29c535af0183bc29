"""The op registry: one row per QGraph op kind, joining what each layer of the stack does with it.

Each layer keeps its own table (capture: ``quant.handlers.HANDLERS``; integer semantics:
``quant.reference``; float executor: ``quant.fgraph``; calibration: ``quant.calibrate``;
lowering: ``compiler.fuse.PATTERNS`` and the kernel kinds; execution: the simulator's
instructions, their timing (``sim.timing.duration``) and energy (``sim.energy.EnergyModel``)).
This module only joins them, so a new op is a row in each table and this registry shows where
one is missing (``missing``; tests/test_ops.py holds every op to it). ``python -m qasic.ops
--write`` regenerates the "How each op runs" section of docs/ops.md.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

# kernel kind -> (instructions it emits, the unit that runs it); compiler.fuse documents kinds
KERNEL_KINDS = {
    "gemm": (("LOAD", "GEMM", "POST", "POOL", "STORE"),
             "systolic array + post-processing unit (requantize, clamp, table)"),
    "pool": (("LOAD", "POOL", "STORE"), "vector unit"),
    "ew": (("LOAD", "ADD", "STORE"), "vector unit"),
    "lut": (("LOAD", "LUT", "STORE"), "vector unit (2^B-byte table)"),
    "copy": (("LOAD", "LUT", "STORE"), "DMA (one store per phase) + vector unit"),
    "bilinear": (("LOAD", "GEMM", "POST", "STORE"),
                 "systolic array: one depthwise 2x2 conv per output phase"),
    "matmul": (("LOAD", "GEMM", "POST", "STORE"),
               ("systolic array: the second operand loaded as dynamic weights per head "
                "(wtrans for B^T) + post-processing unit")),
    "softmax": (("LOAD", "SOFTMAX", "STORE"), "vector unit (exp table, one divide per row)"),
    "norm": (("LOAD", "NORM", "POST", "STORE"),
             "vector unit (integer square root, one divide per row) + post-processing unit"),
    "gather": (("GATHER", "SYNC", "STORE"), "DMA: table rows gathered by int32 index"),
    "permute": (("LOAD", "SYNC", "STORE"), "DMA: strided copies"),
    "cache": (("LOAD", "SYNC", "STORE", "SCATTER"),
              "DMA: rows into a KV cache (STORE in a prefill, SCATTER at the step's position)"),
    "window": (("GATHER", "SYNC", "STORE"),
               "DMA: a state's rows from the step's position (a token conv's window)"),
    "const": ((), "none: the codes live in the constants region"),
    "state": ((), ("none: a state region a prefill or the last step wrote (cross-attention "
                   "keys and values, the source's padding mask, a selective scan's h)")),
    "concat": ((), "none: inputs are views of the output buffer"),
    "alias": ((), "none: the same bytes, another shape"),
    "slice": ((), "none: channels of the input's pixels, a view of its buffer"),
}
# ops the golden reference defines but the compiler does not lower yet, and why
NOT_LOWERED: dict[str, str] = {}
# ops the compiler rewrites, before fusion, into a chain of other ops' kernels: op -> (the
# patterns the links of the chain fuse into, in order; where the rewrite is)
EXPANDED: dict[str, tuple[tuple[tuple[str, ...], ...], str]] = {
    "topk_mask": ((("linear", "lut"), ("linear", "lut")),
                  "compiler.topk: pair differences, then a rank count"),
    "resize": ((("permute",), ("linear",), ("permute",), ("reshape",), ("constant",),
                ("matmul",), ("reshape",)),
               ("compiler.resize: along W a linear of constant weights, along H a matmul by a "
                "constant")),
}
# ops that only graph passes create (never captured from torch, so no float executor)
GRAPH_ONLY = {"cache_write": "qasic.quant.decode: the KV-cache writes of generation",
              "cache_read": ("qasic.quant.decode: an encoder-decoder's cross-attention caches "
                             "in a decode step; a recurrence's states, Mamba's h "
                             "(qasic.quant.recurrence)"),
              "cache_window": ("qasic.quant.decode_conv: a token convolution's window of inputs "
                               "in a decode step")}


# the smallest valid operands of an instruction (for the timing and energy probe)
_SMALLEST = {"LOAD": {"planes": 1, "rows": 1, "row_bytes": 1},
             "STORE": {"planes": 1, "rows": 1, "row_bytes": 1},
             "GEMM": {"lines": 1, "rows": 1, "k": 1, "n": 1, "wbits": 8},
             "POST": {"rows": 1, "n": 1},
             "POOL": {"h": 1, "w": 1, "c": 1, "kh": 1, "kw": 1, "sh": 1, "sw": 1},
             "ADD": {"count": 1}, "LUT": {"count": 1},
             "GATHER": {"count": 1, "vocab": 1, "row_bytes": 1},
             "SCATTER": {"count": 1, "vocab": 1, "row_bytes": 1},
             "SOFTMAX": {"rows": 1, "len": 1}, "NORM": {"rows": 1, "len": 1, "chunk": 1}}


@dataclass(frozen=True)
class OpRow:
    op: str
    params: tuple[str, ...]        # what the QNode carries (quant.graph.OPS)
    reference: str                 # the golden reference function
    float_fn: str                  # the float executor's function
    shares_input_encoding: bool    # calibration: output keeps the input's TensorQ
    kinds: tuple[str, ...]         # kernel kinds it runs in (first: alone; then fused)
    instructions: tuple[str, ...]  # instructions of those kernels

    @property
    def lowered(self) -> bool:
        return bool(self.kinds)


def rows() -> list[OpRow]:
    from qasic.compiler.fuse import PATTERNS
    from qasic.quant import fgraph, reference
    from qasic.quant.calibrate import SHARES_INPUT
    from qasic.quant.graph import OPS

    out = []
    for op, params in OPS.items():
        if op in EXPANDED:  # the kinds of its chain, in order; every instruction they emit
            kind_of = dict(PATTERNS)
            kinds = tuple(dict.fromkeys(kind_of[link] for link in EXPANDED[op][0]))
            instrs = tuple(dict.fromkeys(i for k in kinds for i in KERNEL_KINDS[k][0]))
        else:
            kinds = tuple(dict.fromkeys(kind for pattern, kind in sorted(
                PATTERNS, key=lambda p: (len(p[0]), p[0])) if op in pattern))
            instrs = KERNEL_KINDS[kinds[0]][0] if kinds else ()  # when it runs alone
        out.append(OpRow(op, tuple(params), _name(reference._OPS, op), _name(fgraph._OPS, op),
                         op in SHARES_INPUT, kinds, instrs))
    return out


def _name(table: dict, op: str) -> str:
    fn = table.get(op)
    if fn is None:
        return ""
    name = getattr(fn, "__name__", "<lambda>")
    return name if name != "<lambda>" else f'_OPS["{op}"]'


def missing() -> list[str]:
    """Every gap: an op without a reference, a float executor or a lowering (unless listed in
    NOT_LOWERED), and every instruction a kernel kind names that the ISA, the simulator, the
    timing model or the energy model lacks."""
    from qasic.arch.config import default_arch
    from qasic.isa.encoding import Instr
    from qasic.isa.table import BY_NAME
    from qasic.sim.energy import EnergyModel
    from qasic.sim.machine import _EXEC
    from qasic.sim.timing import duration

    arch, gaps = default_arch(), []
    for r in rows():
        if not r.reference:
            gaps.append(f"{r.op}: no golden reference function")
        if not r.float_fn and r.op not in GRAPH_ONLY:
            gaps.append(f"{r.op}: no float executor")
        if not r.lowered and r.op not in NOT_LOWERED:
            gaps.append(f"{r.op}: no compiler pattern")
    for name in sorted({i for k in KERNEL_KINDS.values() for i in k[0]}):
        if name not in BY_NAME or name not in _EXEC:
            gaps.append(f"{name}: not in the ISA table or the simulator")
            continue
        try:
            ins = Instr(name, _SMALLEST.get(name, {}))
            duration(ins, arch)
            EnergyModel(arch).instr(ins)
        except Exception as e:  # noqa: BLE001  (a missing branch shows as any error)
            gaps.append(f"{name}: timing or energy fails: {e}")
    return gaps


def markdown() -> str:
    lines = ["## How each op runs", "",
             ("Generated by `python -m qasic.ops --write` from `qasic/ops.py`, which joins the "
             "tables of each layer; do not edit."), "",
             ("| op | golden reference | kernel kinds (alone, then fused into) | instructions "
             "(alone) | unit |"),
             "|---|---|---|---|---|"]
    for r in rows():
        if r.op in EXPANDED:
            units = "; ".join(dict.fromkeys(KERNEL_KINDS[k][1] for k in r.kinds
                                            if KERNEL_KINDS[k][0]))
            lines.append(f"| `{r.op}` | `reference.{r.reference}` | {', '.join(r.kinds)} "
                         f"(rewritten into {', '.join(' + '.join(p) for p in EXPANDED[r.op][0])}: "
                         f"{EXPANDED[r.op][1]}) | {', '.join(r.instructions)} | {units} |")
        elif r.lowered:
            unit = KERNEL_KINDS[r.kinds[0]][1]
            lines.append(f"| `{r.op}` | `reference.{r.reference}` | {', '.join(r.kinds)} | "
                         f"{', '.join(r.instructions) or 'none'} | {unit} |")
        else:
            lines.append(f"| `{r.op}` | `reference.{r.reference}` | not lowered | – | "
                         f"{NOT_LOWERED.get(r.op, '')} |")
    lines += ["", ("Timing of every instruction: `sim/timing.py` (closed forms); energy: "
              "`sim/energy.py` with the cited rows of `arch/energy_45nm.toml` "
              "(see docs/energy.md)."), ""]
    return "\n".join(lines)


MARKER = "## How each op runs"


def write(path: Path) -> None:
    text = path.read_text()
    head = text.split(MARKER)[0].rstrip() + "\n\n"
    path.write_text(head + markdown())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the op registry")
    ap.add_argument("--write", action="store_true", help="regenerate docs/ops.md's section")
    args = ap.parse_args(argv)
    path = Path(__file__).resolve().parent.parent / "docs" / "ops.md"
    if args.write:
        write(path)
        print(f"wrote {path}")
    else:
        print(markdown())
    gaps = missing()
    for g in gaps:
        print(f"missing: {g}")
    return 1 if gaps else 0


if __name__ == "__main__":
    raise SystemExit(main())

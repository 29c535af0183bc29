"""Verilog out: the systolic core for an ArchConfig, plus a JSON description of its ports."""

from __future__ import annotations

import json
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape, ValueCastable
from amaranth.lib import data, enum, wiring

from qasic.arch.config import ArchConfig
from qasic.rtl.systolic import SystolicCore

TOP = "qasic_core"
# The arch fields the Verilog depends on (the build cache key names each of them).
ARCH_KEYS = ("array_rows", "array_cols", "input_bits", "input_shift_bits", "weight_bits",
             "weight_shift_bits", "acc_bits", "gemm_max_rows")


def generate_verilog(arch: ArchConfig, out_dir: str | Path) -> list[Path]:
    """Write ``out_dir/qasic_core.v`` and ``out_dir/qasic_core.json``; return both paths.

    The output is deterministic for a given arch (no source locations), so it can be diffed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    core = SystolicCore(arch)
    v_path, json_path = out_dir / f"{TOP}.v", out_dir / f"{TOP}.json"
    v_path.write_text(verilog.convert(core, name=TOP, emit_src=False))
    json_path.write_text(json.dumps(describe(core), indent=2) + "\n")
    return [v_path, json_path]


def describe(core: SystolicCore) -> dict:
    """Top-level module name, array parameters, cycle formula and ports of ``core``."""
    return {
        "top": TOP,
        "params": {key: getattr(core.arch, key) for key in ARCH_KEYS},
        "fold_cycles": "2*array_rows + array_cols + T - 2 (start high in cycle s -> done in s+N)",
        "clock": "clk (rising edge)",
        "reset": "rst (synchronous, active high)",
        "ports": [_port(path, member, value) for path, member, value
                  in core.signature.flatten(core)],
    }


def _port(path, member, value) -> dict:
    port = {
        "name": "__".join(map(str, path)),
        "dir": "in" if member.flow == wiring.In else "out",
        "width": len(value.as_value() if isinstance(value, ValueCastable) else value),
    }
    shape = member.shape
    if isinstance(shape, data.ArrayLayout):
        # Element j of a row sits at bits [j*elem_bits, (j+1)*elem_bits).
        elem = shape.elem_shape
        port["elements"] = shape.length
        port["elem_bits"] = Shape.cast(elem).width
        if isinstance(elem, data.StructLayout):  # a shift-add operand: value = sig << sh
            port["elem_fields"] = {name: _field(f) for name, f in elem}
        else:
            port["elem_signed"] = Shape.cast(elem).signed  # two's complement if true
    elif isinstance(shape, enum.EnumType):
        port["values"] = {m.name: m.value for m in shape}
    return port


def _field(field: data.Field) -> dict:
    shape = Shape.cast(field.shape)
    return {"offset": field.offset, "bits": shape.width, "signed": shape.signed}

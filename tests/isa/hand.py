"""Hand-assembled programs with the metadata a verified program needs (qasic.isa.schema)."""

from __future__ import annotations

from qasic.arch.config import ArchConfig
from qasic.isa.encoding import assemble
from qasic.isa.program import Program, Region


def io(region: Region) -> dict:
    h, w, c, _ = region.shape
    return {"tensor": region.name, "shape": [h, w, c], "scale": 1.0, "zero_point": 0,
            "bits": region.bits, "fmt": "int"}


def meta(arch: ArchConfig, regions: tuple[Region, ...], layers: int = 1) -> dict:
    """Schema-complete metadata: the first input and output regions are the model's tensors."""
    first = {kind: next(r for r in regions if r.kind == kind) for kind in ("input", "output")}
    return {"model": "hand", "arch": arch.name, "arch_config": arch.to_dict(),
            "input": io(first["input"]), "output": io(first["output"]), "input_layout": None,
            "layers": [{"name": f"layer{k}", "kind": "hand", "ops": [], "macs": 0}
                       for k in range(layers)]}


def hand_program(text: str, arch: ArchConfig, regions: tuple[Region, ...],
                 constants: bytes = b"") -> Program:
    instrs = tuple(assemble(text))
    return Program(instrs, (0,) * len(instrs), constants, regions, meta(arch, regions))

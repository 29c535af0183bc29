"""isa: the one-table instruction set, its encodings and the program file format."""

from qasic.isa.encoding import Instr, assemble, decode, disassemble, encode
from qasic.isa.program import Program, Region, from_bytes, load, save, to_bytes
from qasic.isa.table import MEMS, OPCODES, QUEUES

__all__ = [
           "MEMS",
           "OPCODES",
           "QUEUES",
           "Instr",
           "Program",
           "Region",
           "assemble",
           "decode",
           "disassemble",
           "encode",
           "from_bytes",
           "load",
           "save",
           "to_bytes",
]

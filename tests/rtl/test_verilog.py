"""Verilog generation: files, determinism, and the port description."""

from __future__ import annotations

import dataclasses
import json

from qasic.arch.config import default_arch
from qasic.rtl import generate_verilog


def small_arch():
    return dataclasses.replace(default_arch(), array_rows=3, array_cols=5, gemm_max_rows=16,
                               weight_bits=4)


def test_writes_verilog_and_port_description(tmp_path):
    v_path, json_path = generate_verilog(small_arch(), tmp_path)
    assert (v_path.name, json_path.name) == ("qasic_core.v", "qasic_core.json")
    text = v_path.read_text()
    assert "module qasic_core(" in text and str(tmp_path) not in text
    desc = json.loads(json_path.read_text())
    assert desc["params"]["array_rows"] == 3 and desc["params"]["weight_bits"] == 4
    ports = {p["name"]: p for p in desc["ports"]}
    assert ports["weights__data"] == {"name": "weights__data", "dir": "in", "width": 20,
                                      "elements": 5, "elem_bits": 4, "elem_signed": True}
    assert ports["scale"] == {"name": "scale", "dir": "in", "width": 40, "elements": 5,
                              "elem_bits": 8, "elem_signed": False}
    assert ports["scale_mode"] == {"name": "scale_mode", "dir": "in", "width": 2,
                                   "values": {"none": 0, "shift": 1, "mul": 2, "mulzp": 3}}
    assert ports["outputs__data"]["width"] == 5 * 32 and ports["outputs__data"]["dir"] == "out"
    assert ports["inputs__addr"]["width"] == 4 and ports["rows"]["width"] == 5
    for name in ("start", "busy", "done", "outputs__addr", "inputs__en", "weights__en", "scale",
                 "scale_mode"):
        assert name in ports
        assert f" {name}" in text


def test_output_is_deterministic(tmp_path):
    first = generate_verilog(small_arch(), tmp_path / "a")
    second = generate_verilog(small_arch(), tmp_path / "b")
    for x, y in zip(first, second):
        assert x.read_bytes() == y.read_bytes()


def test_shift_add_operands_are_described_as_pairs(tmp_path):
    arch = dataclasses.replace(small_arch(), weight_bits=5, weight_shift_bits=4, input_bits=6,
                               input_shift_bits=2)
    desc = json.loads(generate_verilog(arch, tmp_path)[1].read_text())
    assert desc["params"]["weight_shift_bits"] == 4 and desc["params"]["input_shift_bits"] == 2
    ports = {p["name"]: p for p in desc["ports"]}
    assert ports["weights__data"] == {
        "name": "weights__data", "dir": "in", "width": 5 * 9, "elements": 5, "elem_bits": 9,
        "elem_fields": {"sig": {"offset": 0, "bits": 5, "signed": True},
                        "sh": {"offset": 5, "bits": 4, "signed": False}}}
    assert ports["inputs__data"]["width"] == 3 * 8
    assert ports["inputs__data"]["elem_fields"]["sh"] == {"offset": 6, "bits": 2, "signed": False}

"""A realistic results.json for digits_cnn on the default 16x16 array.

Numbers follow the shape of a real sweep: conv2 dominates MACs and energy, DRAM dominates energy at
8 bits, W2A8 is dominated by W4A4, and the accuracy drop grows as bits shrink.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

LAYER_MACS = {"conv1": 9216, "conv2": 73728, "fc": 5120}
LAYER_SHARE = {"conv1": 0.15, "conv2": 0.70, "fc": 0.15}  # of cycles, energy and DRAM traffic
PARTS = {"mac": 0.20, "sram": 0.30, "dram": 0.40, "other": 0.05, "leakage": 0.05}  # of energy
CLOCK_MHZ = 500.0

# name, weight bits per layer, activation bits, accuracy, cycles, energy total in pJ
POINTS = [
    ("W8A8", (8, 8, 8), 8, 0.978, 2400, 240_000.0),
    ("W6A8", (6, 6, 6), 8, 0.976, 2300, 200_000.0),
    ("W8-4-4A8", (8, 4, 4), 8, 0.975, 2200, 170_000.0),
    ("W4A8", (4, 4, 4), 8, 0.972, 2100, 150_000.0),
    ("W4A4", (4, 4, 4), 4, 0.955, 1900, 95_000.0),
    ("W2A8", (2, 2, 2), 8, 0.800, 2000, 120_000.0),
    ("W2A2", (2, 2, 2), 2, 0.350, 1800, 40_000.0),
]
FRONT = ["W2A2", "W4A4", "W4A8", "W8-4-4A8", "W6A8", "W8A8"]  # by increasing energy

ARCH = {
    "name": "default-16x16", "array_rows": 16, "array_cols": 16, "dataflow": "weight_stationary",
    "input_bits": 8, "weight_bits": 8, "acc_bits": 32, "gemm_max_rows": 64,
    "input_sram_bytes": 16384, "weight_sram_bytes": 16384, "acc_sram_bytes": 16384,
    "output_sram_bytes": 8192, "param_sram_bytes": 4096, "dram_bytes_per_cycle": 8,
    "dram_latency_cycles": 64, "clock_mhz": 500.0, "tech_node_nm": 45,
    "energy_table": "energy_45nm.toml",
}

SOURCES = [
    {"name": "mac_mult_pj_per_bit2", "value": 0.0031,
     "unit": "pJ per (activation bit x weight bit)",
     "source": "Horowitz, Computing's energy problem, ISSCC 2014"},
    {"name": "sram_pj_per_bit_8kib", "value": 0.2, "unit": "pJ per bit read or written, 8 KiB bank",
     "source": "CACTI-7 via Bit Fusion (ISCA 2018) <45 nm>"},
    {"name": "dram_pj_per_bit", "value": 8.0, "unit": "pJ per bit transferred",
     "source": "LPDDR4, Accelergy CACTI-DRAM plug-in: 512 pJ per 64-bit access"},
]


def energy(total: float) -> dict:
    return {"total": total, **{part: total * share for part, share in PARTS.items()}}


def layers(cycles: int, total_pj: float, dram_bytes: int) -> list[dict]:
    return [{"name": name, "kernels": 1 if name == "fc" else 2, "cycles": round(cycles * share),
             "macs": LAYER_MACS[name], "dram_bytes": round(dram_bytes * share),
             "energy_pj": energy(total_pj * share)} for name, share in LAYER_SHARE.items()]


def point(name: str, wbits: tuple, abits: int, acc: float, cycles: int, total: float) -> dict:
    dram_bytes = round(total * PARTS["dram"] / 64)  # 8 pJ per bit = 64 pJ per byte
    weight_bits = dict(zip(LAYER_MACS, wbits, strict=True))
    # the array is built for the widest weights: its area grows with the PE's bit product
    area = {"array": 0.004 * abits * max(wbits), "scratchpads": 0.6, "control": 0.02}
    return {"name": name, "weight_bits": weight_bits, "activation_bits": abits, "accuracy": acc,
            "cycles": cycles, "latency_us": cycles / CLOCK_MHZ, "macs": sum(LAYER_MACS.values()),
            "dram_bytes": dram_bytes, "energy_pj": energy(total), "bit_exact": True,
            "layers": layers(cycles, total, dram_bytes),
            "pe_bits": {"activation": abits, "weight": max(wbits), "activation_shift": 0,
                        "weight_shift": 0, "accumulator": 32},
            "area_mm2": sum(area.values()), "area_parts_mm2": area}


def queue(name: str, busy: int) -> dict:
    return {"queue": name, "busy_rtl": busy, "busy_sim": busy}


def make_results() -> dict:
    return {
        "model": "digits_cnn", "fp32_accuracy": 0.978, "arch": dict(ARCH),
        "points": [point(*row) for row in POINTS], "chosen_point": "W4A8",
        "rtl": {"verified": True, "samples": 16, "outputs_equal": True, "cycles_rtl": 8016,
                "cycles_sim": 8016, "cycle_error": 0.0,
                "method": "The whole program on the accelerator's Verilog (Verilator via cocotb), "
                          "DRAM to DRAM; outputs compared bit for bit with the simulator.",
                "queues": [queue("load", 1200), queue("compute", 7000), queue("store", 300)]},
        "energy_sources": [dict(s) for s in SOURCES],
    }


@pytest.fixture
def results() -> dict:
    """A fresh copy per test, so tests may mutate it."""
    return make_results()


@pytest.fixture(scope="session")
def make() -> Callable[[], dict]:
    """The factory itself, for module-scoped fixtures that render once."""
    return make_results

"""Architecture variants for compiler and simulator tests: small arrays and scratchpads force
multiple m-, n- and k-tiles, several GEMMs per step and DMA splits."""

from __future__ import annotations

import dataclasses

from qasic.arch.config import ArchConfig, default_arch


def small_arch(**overrides) -> ArchConfig:
    """4x4 array, 8-row GEMMs, scratchpads a few tiles deep (still enough for tests.graphs)."""
    base = {"array_rows": 4, "array_cols": 4, "gemm_max_rows": 8, "input_sram_bytes": 6144,
                "weight_sram_bytes": 4096, "acc_sram_bytes": 256, "output_sram_bytes": 256,
                "param_sram_bytes": 128}
    return dataclasses.replace(default_arch(), **{**base, **overrides})


def archs() -> dict[str, ArchConfig]:
    return {
        "default": default_arch(),
        "4x4": small_arch(),
        "8x4-fast-dram": small_arch(array_rows=8, dram_latency_cycles=0,
                                    dram_bytes_per_cycle=64, output_sram_bytes=512),
        "4x8": small_arch(array_cols=8, gemm_max_rows=5, acc_sram_bytes=1024,
                          weight_sram_bytes=8192, output_sram_bytes=1024, param_sram_bytes=256),
    }

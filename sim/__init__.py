"""sim: decode in Python, compute in Numba, closed-form timing, cited energy."""

from qasic.sim.run import SimResult, input_codes, simulate

__all__ = ["SimResult", "input_codes", "simulate"]

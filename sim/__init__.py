"""sim: decode in Python, compute in Numba, closed-form timing, cited energy."""

# first: the kernels' on-disk cache is keyed on every repository file they import
from qasic.sim import numba_cache  # noqa: F401
from qasic.sim.run import SimResult, input_codes, simulate

__all__ = ["SimResult", "input_codes", "simulate"]

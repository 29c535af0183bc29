"""A stand-in runner for benchmarks.third_party.run_isolated's tests: ``--one NAME`` touches
~300 MiB and holds it 2 s, then ends as NAME says, writing no result (``sigkill``: killed, as
the kernel's out-of-memory killer kills; ``exit``: exit code 3, printing nothing)."""

import os
import signal
import sys
import time

import numpy as np

if __name__ == "__main__":
    how = sys.argv[sys.argv.index("--one") + 1]
    held = np.ones(300 * 2**20 // 8)  # written: resident
    time.sleep(2)  # seen by the parent's poll of VmHWM (every 0.2 s)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(3)

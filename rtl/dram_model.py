"""A cocotb AXI4 slave backed by a numpy byte array: the DRAM of the arch's ``[dram]``.

``DramModel(dut, prefix, memory, latency).start()`` serves the master port whose Verilog names
are ``<prefix>__araddr``, ``<prefix>__rdata``, ... (``rtl.axi.axi_master``); several models may
share one ``memory`` (the load and the store unit's ports). Each port moves one beat per cycle on
R and one on W, INCR bursts of ``2**arsize`` = bus-width beats, responses in order.

Latency (``dram.latency_cycles`` = L >= 2), in clock cycles, cycle t being the one that ends
with the rising edge where a handshake is sampled:

* read: a burst whose AR handshake is in cycle t has beat j valid on R in cycle t + L - 1 + j
  (later only if R is still busy with earlier beats); the master stores it at that cycle's edge
  and uses it from cycle t + L + j: L cycles from request to use;
* write: W beats are written to ``memory`` (bytes with ``wstrb`` set) as they are accepted; the B
  response of a burst is valid in cycle t + L - 1, t the cycle of its last W beat.

AR, AW and W are always ready; R and B wait for ``rready`` / ``bready``. With ``stall`` = p > 0
(a test of the master's handshakes, not of timing) each of AR, AW, W is not ready, and each due R
beat and B response is held back, in a cycle with probability p. The model drives at falling
clock edges (half a cycle from the rising edge the design samples on) and samples the master
once that time step has settled (``ReadOnly``). A burst
outside ``memory``, a ``*size`` other than the bus width or a burst type other than INCR fails
the test with a message naming the port and address (``errors`` keeps them too). ``memory`` may
be replaced between runs; ``await drain()`` waits until every accepted request is answered.
"""

from __future__ import annotations

from collections import deque

import numpy as np

BURST_INCR = 1


class DramModel:
    def __init__(self, dut, prefix: str, memory: np.ndarray, latency: int, clock=None,
                 stall: float = 0.0, seed: int = 0) -> None:
        if memory.dtype != np.uint8 or memory.ndim != 1:
            raise ValueError(f"DramModel {prefix}: memory must be a 1-D uint8 array, not "
                             f"{memory.dtype} {memory.shape}")
        if latency < 2:
            raise ValueError(f"DramModel {prefix}: latency = {latency}; dram.latency_cycles must "
                             f"be >= 2 for the RTL DMA")
        self.dut, self.prefix, self.memory, self.latency = dut, prefix, memory, latency
        self._handles: dict = {}  # signal name -> cocotb handle
        self.clock = clock if clock is not None else dut.clk
        self.bytes = len(self.sig("rdata")) // 8
        self.errors: list[str] = []
        self.cycle = 0
        self._reads: deque = deque()     # (word address, beats left, next beat's cycle)
        self._aw: deque = deque()        # (word address, beats)
        self._w_at = 0                   # beats of the head AW burst already written
        self._b: deque = deque()         # cycles their B responses become valid
        self.beats = {"r": 0, "w": 0}
        self.stall, self._rng = stall, np.random.default_rng(seed)
        self._driven: dict[str, int] = {}  # the value last written to each input of the port

    def idle(self) -> bool:
        """No read beat, write burst or B response is outstanding."""
        return not (self._reads or self._aw or self._b or self._w_at)

    async def drain(self, limit: int = 1_000_000) -> None:
        """Wait until ``idle`` (every accepted request answered); fail after ``limit`` cycles."""
        from cocotb.triggers import FallingEdge
        for _ in range(limit):
            if self.idle():
                return
            await FallingEdge(self.clock)
        self._fail(f"still busy after {limit} cycles of drain()")

    def sig(self, name: str):
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = getattr(self.dut, f"{self.prefix}__{name}")
        return handle

    def _drive(self, name: str, value: int) -> None:
        """Write ``value`` to the port's input ``name`` unless it holds it already (only this
        model drives it): cocotb schedules every write, and most would change nothing."""
        if self._driven.get(name) != value:
            self.sig(name).value = value
            self._driven[name] = value

    def start(self):
        import cocotb
        for name in ("arready", "awready", "wready"):
            self._drive(name, 1)
        for name in ("rvalid", "bvalid", "rlast", "rresp", "bresp", "rdata"):
            self._drive(name, 0)
        return cocotb.start_soon(self._run())

    def _fail(self, msg: str) -> None:
        msg = f"DRAM model {self.prefix}, cycle {self.cycle}: {msg}"
        self.errors.append(msg)
        raise AssertionError(msg)

    def _burst(self, ch: str) -> tuple[int, int]:
        addr, beats = int(self.sig(f"{ch}addr").value), int(self.sig(f"{ch}len").value) + 1
        size, burst = int(self.sig(f"{ch}size").value), int(self.sig(f"{ch}burst").value)
        if 1 << size != self.bytes or burst != BURST_INCR:
            self._fail(f"{ch.upper()} burst at {addr:#x} has {ch}size {size} and {ch}burst "
                       f"{burst}; the model serves INCR bursts of {self.bytes}-byte beats")
        if addr % self.bytes or addr + beats * self.bytes > len(self.memory):
            self._fail(f"{ch.upper()} burst of {beats} beats at {addr:#x} leaves the "
                       f"{len(self.memory)}-byte memory or is not beat-aligned")
        return addr // self.bytes, beats

    async def _run(self) -> None:
        from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge
        from cocotb.utils import get_sim_time

        b, rng, p = self.bytes, self._rng, self.stall
        await FallingEdge(self.clock)
        t0 = get_sim_time(unit="ps")
        await FallingEdge(self.clock)
        period, base = get_sim_time(unit="ps") - t0, self.cycle + 2 - 1
        wake = [RisingEdge(self.sig(name)) for name in ("arvalid", "awvalid", "wvalid")]
        started = False
        while True:
            if started:
                await FallingEdge(self.clock)
            started = True
            # cycles from simulation time: the model sleeps through idle stretches
            t = self.cycle = int(base + (get_sim_time(unit="ps") - t0) // period)
            # drive this cycle's readies, R and B ...
            ready = {ch: int(not p or rng.random() >= p) for ch in ("ar", "aw", "w")}
            for ch, v in ready.items():
                self._drive(f"{ch}ready", v)
            rvalid = bool(self._reads) and self._reads[0][2] <= t and (not p or rng.random() >= p)
            self._drive("rvalid", int(rvalid))
            if rvalid:
                word, left, _ = self._reads[0]
                self._drive("rdata", int.from_bytes(
                    self.memory[word * b:(word + 1) * b].tobytes(), "little"))
                self._drive("rlast", int(left == 1))
            bvalid = bool(self._b) and self._b[0] <= t and (not p or rng.random() >= p)
            self._drive("bvalid", int(bvalid))
            # ... then sample the master once everything has settled
            await ReadOnly()
            if rvalid and int(self.sig("rready").value):
                self.beats["r"] += 1
                if left == 1:
                    self._reads.popleft()
                else:
                    self._reads[0] = [word + 1, left - 1, t + 1]
            if bvalid and int(self.sig("bready").value):
                self._b.popleft()
            if ready["ar"] and int(self.sig("arvalid").value):
                first, beats = self._burst("ar")
                self._reads.append([first, beats, t + self.latency - 1])
            if ready["aw"] and int(self.sig("awvalid").value):
                self._aw.append(self._burst("aw"))
            if ready["w"] and int(self.sig("wvalid").value):
                self._write_beat(t)
            if not p and self.idle() and not any(
                    int(self.sig(n).value) for n in ("arvalid", "awvalid", "wvalid")):
                # nothing outstanding, no request, R and B low: sleep until a request rises
                # (the loop then takes the falling edge of the cycle it rose in)
                await First(*wake)

    def _write_beat(self, t: int) -> None:
        if not self._aw:
            self._fail("a W beat arrived before its AW burst (the model needs AW first)")
        word, beats = self._aw[0]
        b, at = self.bytes, word + self._w_at
        data = int(self.sig("wdata").value).to_bytes(b, "little")
        strb = int(self.sig("wstrb").value)
        row = self.memory[at * b:(at + 1) * b]
        for i in range(b):
            if strb >> i & 1:
                row[i] = data[i]
        self.beats["w"] += 1
        self._w_at += 1
        last = int(self.sig("wlast").value)
        if last != (self._w_at == beats):
            self._fail(f"wlast = {last} on beat {self._w_at} of a {beats}-beat burst at "
                       f"{word * b:#x}")
        if self._w_at == beats:
            self._aw.popleft()
            self._w_at = 0
            self._b.append(t + self.latency - 1)

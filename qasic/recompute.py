"""Recompute decoding: generation without a KV cache, as transformers' ``use_cache=False``.

``qasic generate`` decodes with a KV cache (qasic.generate.Session: a prefill program, then a
decode-step program over the caches in DRAM) when qasic.quant.decode can plan the step. When it
refuses the model in one line (local attention whose keys are windows mixed along the
positions, a chunked scan, a memory of its own), every step runs the full program instead (the
model over all C positions) on the sequence so far right-padded with id 0, and reads its last
real token's row: the golden reference's definition of generation (qasic.generate.golden_tokens),
so the tokens and every step's logit codes equal it bit for bit. Each token costs a whole
program run; there is no cache (``kv_cache_bytes`` 0). An encoder-decoder recomputes the same
way, its encoder rerun every token on the source ([source | target] ids, or a float source's
codes): also one whose target ids are embedded a position at a time, which has no decode step
(``positions``).

Right-padding is harmless for a causal model only: a decoder-only model that is not (its logits
at a position change with the ids after it) is refused, by one probe of the golden reference:
random ids up to the prompt's length, then zeros or random ids (a check, not a proof).

``decode``: ``auto`` (a KV cache when it can be planned, else recompute), ``kv_cache`` (the
planner's refusal is the answer) or ``recompute`` (always; no plan is tried).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from qasic.errors import ConfigError, InputError, UnsupportedOpError

DECODES = ("auto", "kv_cache", "recompute")


def session(full: Any, prompt: int, arch: Any, progress: Any = None, decode: str = "auto"):
    """The session that generates from ``full`` after ``prompt`` tokens: a KV-cache Session, or
    a Recompute (``decode``: see the module). ``auto`` says on ``progress`` why it recomputes;
    a model the planner refuses that is not causal gets the planner's refusal followed by the
    causality probe's."""
    from qasic.generate import Session

    if decode not in DECODES:
        raise ConfigError(f"--decode {decode}: give one of {', '.join(DECODES)}")
    if decode == "recompute":
        return Recompute(full, prompt, arch, progress)
    try:
        return Session(full, prompt, arch, progress)
    except UnsupportedOpError as e:
        if decode == "kv_cache":
            raise
        refusal = str(e).splitlines()[0]
        try:
            recompute = Recompute(full, prompt, arch, progress, refusal)
        except NotCausalError as nc:  # the planner's line first, then why not recompute
            raise UnsupportedOpError(f"{refusal}; nor can it recompute without a KV cache: "
                                     f"{nc}") from None
    if progress:
        progress(f"decoding recomputes the whole sequence for each token (no KV cache): "
                 f"{refusal}")
    return recompute


class NotCausalError(UnsupportedOpError):
    """A model whose logits at a position depend on the ids after it."""


class Recompute:
    """Generation by running the full program once per token (no caches)."""

    decode_mode = "recompute"

    def __init__(self, full: Any, prompt: int, arch: Any, progress: Any = None,
                 refusal: str | None = None):
        """``prompt``: the target's first tokens (a causal LM's prompt); ``refusal``: the KV
        cache planner's line that chose this (None: asked for)."""
        from qasic.quant.lastrow import last_selects

        self.full, self.prompt, self.arch, self.progress = full, prompt, arch, progress
        self.refusal = refusal
        self.c = positions(full)
        self.last = bool(last_selects(full, self.c))  # one logits row: the last position's
        if not 1 <= prompt <= self.c:
            raise UnsupportedOpError(f"a prompt of {prompt} tokens does not fit model "
                                     f"{full.name}'s {self.c} positions")
        if int(np.prod(full.shapes[full.input])) == self.c:  # a decoder-only model
            _check_causal(full, prompt, self.c, self.last)
        self.compile_s, self._programs = 0.0, {}
        self.program = self._program(prompt - 1)  # the first token's (costs: every step's)

    def _program(self, p: int) -> Any:
        """The program whose logits row is position ``p``'s: the full model's (a model of the
        last position's logits: with its selection moved to ``p``, as golden_tokens runs it)."""
        from qasic.compiler import compile_graph
        from qasic.quant.lastrow import at_position

        key = p if self.last else None
        if key not in self._programs:
            t0 = time.perf_counter()
            graph = at_position(self.full, p, self.c) if self.last else self.full
            self._programs[key] = compile_graph(graph, self.arch)
            self.compile_s += time.perf_counter() - t0
        return self._programs[key]

    def generate(self, ids: np.ndarray, tokens: int) -> tuple[list[int], list[np.ndarray]]:
        """Greedy tokens and each step's logit codes, as Session.generate (``ids``: an
        encoder-decoder's source ids or codes, then the target's first ids)."""
        from qasic.isa.program import input_specs

        need = sum(int(np.prod(r["shape"])) for r in input_specs(self.program.meta)) \
            - self.c + self.prompt
        ids = np.asarray(ids)
        if ids.shape != (need,):
            raise InputError(f"ids of shape {ids.shape}: the prefill of {self.full.name} takes "
                             f"({need},) ids")
        if tokens < 1 or self.prompt + tokens - 1 > self.c:
            raise InputError(f"{tokens} new tokens after a prompt of {self.prompt}: model "
                             f"{self.full.name} has {self.c} positions, so "
                             f"1..{self.c - self.prompt + 1} new tokens")
        s = len(ids) - self.prompt
        seq, out, rows = [int(i) for i in ids[s:]], [], []
        for _ in range(tokens):
            row = self._row(self._padded(ids[:s], seq), len(seq) - 1)
            out.append(self._pick(row))
            rows.append(row)
            seq.append(out[-1])
            if self.progress:
                self.progress(f"recomputed token {len(out)}/{tokens}")
        return out, rows

    def _padded(self, source: np.ndarray, seq: list[int]) -> np.ndarray:
        x = np.zeros(len(source) + self.c, np.int64)
        x[:len(source)], x[len(source):len(source) + len(seq)] = source, seq
        return x

    def _row(self, x: np.ndarray, p: int) -> np.ndarray:
        """Position ``p``'s logit codes of the program run on input ``x`` (one sample)."""
        from qasic.isa.program import input_specs
        from qasic.sim.run import simulate

        program = self._program(p)
        specs = input_specs(program.meta)
        codes = x[None] if len(specs) > 1 else x.reshape(1, *specs[0]["shape"])
        out = simulate(program, self.arch, codes=codes).outputs[0]
        rows = out.reshape(-1, int(self.full.shapes[self.full.output][-1]))
        return rows[-1] if self.last else rows[p]

    def _pick(self, codes: np.ndarray) -> int:
        from qasic.sim.run import io_encoding

        return int(np.argmax(io_encoding(self.program.meta["output"]).decode(codes)))

    def costs(self) -> dict:
        """Session.costs' keys: a token costs one full program run; no caches."""
        from qasic.generate import _LAYER_KEYS, encoder_cycles
        from qasic.quant.decode import encoder_tensors
        from qasic.sim.run import program_costs

        run = program_costs(self.program, self.arch)
        stepped = _stepped_target(self.full) is not None
        enc = stepped or encoder_tensors(self.full)  # (a stepped target: none to tell apart)
        return {"prefill_cycles": run.cycles,
                "encoder_cycles": encoder_cycles(self.full, self.program, run.layers)
                if enc and not stepped else None,
                "prefill_energy_pj": dict(run.energy_pj),
                "decode_cycles_per_token": run.cycles,
                "energy_pj_per_token": dict(run.energy_pj),
                "decode_dram_bytes_per_token": run.dram_bytes,
                "kv_cache_bytes": 0, "cross_cache_bytes": 0 if enc else None,
                "tokens_per_s": self.arch.clock_mhz * 1e6 / run.cycles if run.cycles else None,
                "decode_layers": [{k: la[k] for k in _LAYER_KEYS} for la in run.layers]}


def positions(full: Any) -> int:
    """C, as qasic.quant.decode.positions, which refuses (for a decode step) an encoder-decoder
    whose target ids are embedded one at a time (the seq2seq tutorial's decoder loop over the
    target, teacher-forced); recomputing needs only C, its target's positions."""
    from qasic.quant.decode import positions as planned

    try:
        return planned(full)
    except UnsupportedOpError:
        c = _stepped_target(full)
        if c is None:
            raise
        return c


def _stepped_target(graph: Any) -> int | None:
    """The target positions of ids [source | target] whose source one embedding reads (rows
    0..S-1) and whose target an embedding per position (S, S + 1, ...); else None."""
    if len(graph.inputs) > 1 or graph.input_layout != "tokens":
        return None
    parts = sorted((int(n.attrs["offset"]), int(graph.shapes[n.output][0]))
                   for n in graph.nodes if n.op == "embedding" and n.inputs == (graph.input,)
                   and "offset" in n.attrs and np.ndim(n.params["table"]) == 2)
    total = int(np.prod(graph.shapes[graph.input]))
    if len(parts) < 3 or parts[0][0] != 0 or any(r != 1 for _, r in parts[1:]):
        return None
    if [o for o, _ in parts[1:]] != list(range(parts[0][1], total)):
        return None
    return total - parts[0][1]


def _check_causal(full: Any, prompt: int, c: int, last: bool) -> None:
    """Refuse a model whose golden logits at position ``prompt - 1`` of random ids change when
    the ids after it do (zeros, as generation pads, or random ones): right-padding would change
    its tokens."""
    from qasic.quant import reference
    from qasic.quant.lastrow import at_position

    if prompt >= c:
        return
    rng, p = np.random.default_rng(0), prompt - 1
    padded = np.zeros((2, c), np.int64)
    padded[:, :prompt] = rng.integers(0, _id_rows(full), prompt)
    padded[1, prompt:] = rng.integers(0, _id_rows(full), c - prompt)
    graph = at_position(full, p, c) if last else full
    rows = reference.run(graph, padded).reshape(2, -1, int(full.shapes[full.output][-1]))
    at = -1 if last else p
    if not np.array_equal(rows[0, at], rows[1, at]):
        raise NotCausalError(f"model {full.name} is not causal: its logits at position {p} "
                             "change with the ids after it; generation (with a KV cache or by "
                             "recomputation) needs a causal language model")


def _id_rows(graph: Any) -> int:
    """The rows of the tables the token ids index (their range); 2 when none is found."""
    from qasic.quant.decode import ids_input

    ids = ids_input(graph)
    rows = [len(n.params["table"]) for n in graph.nodes
            if n.op == "embedding" and n.inputs == (ids,) and np.ndim(n.params["table"]) == 2]
    return min(rows, default=2)

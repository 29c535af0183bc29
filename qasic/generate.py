"""``generate``: greedy text generation on the simulated accelerator, with a KV cache in DRAM.

The quantized model (``full``, its QGraph over all C positions) is cut into two programs
(qasic.quant.decode): a prefill over the P prompt tokens, which also writes every layer's keys
and values into the KV caches (``state`` regions: DRAM that keeps its bytes between runs), and a
decode step that takes (token id, position p), appends its K and V rows at row p (SCATTER) and
attends over the cache (keys after p masked). The session runs the prefill once, then one
decode step per new token on the same DRAM.

The golden reference is the full model itself: the greedy token after t tokens is the argmax of
``reference.run(full, ...)`` at position t - 1 (the sequence right-padded to C: causal attention
makes the padding irrelevant). ``matches_reference`` holds when every generated token and every
step's logit codes equal the reference's.

Costs are per program and data-independent: ``prefill_cycles``, ``decode_cycles_per_token``,
``energy_pj_per_token`` (the decode step's breakdown), ``kv_cache_bytes`` (the caches' DRAM) and
``tokens_per_s`` at the arch clock. The decode step reads the whole cache (C rows) every token:
the cycles and DRAM bytes of a step do not shrink with p (one program serves every position).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from qasic.api import ArchLike, as_arch
from qasic.errors import ConfigError, InputError

Progress = Callable[[str], None]


def generate(model: Any = "tiny_gpt", prompt: str = "", tokens: int = 16, *,
             config: Any = None, arch: ArchLike = "default",
             progress: Progress | None = None) -> dict:
    """Generate ``tokens`` tokens after ``prompt`` with the quantized ``model`` (a built-in
    language model name or its TextModel) on the simulator; returns the record that
    ``qasic generate --json`` prints."""
    from qasic.flow import quantize_model
    from qasic.quant import QuantConfig

    trained = _language_model(model, progress)
    full = quantize_model(trained, config if config is not None else QuantConfig())
    return generate_quantized(trained, full, prompt, tokens, arch=arch, progress=progress)


def generate_quantized(trained: Any, full: Any, prompt: str, tokens: int, *,
                       arch: ArchLike = "default", progress: Progress | None = None) -> dict:
    """``generate`` with the model already quantized (``full``: its QGraph over all its
    positions)."""
    from qasic.models.tiny_gpt import decode, encode

    trained = _language_model(trained, progress)
    ids = encode(prompt)
    c = int(full.shapes[full.input][0])
    _check_request(ids, tokens, c, _vocab(full))
    target = as_arch(arch)
    session = Session(full, len(ids), target, progress)
    t0 = time.perf_counter()
    got, rows = session.generate(ids, tokens)
    simulate_s = time.perf_counter() - t0
    want, ref_rows = golden_tokens(full, ids, tokens)
    fp32 = _float_tokens(trained.module, ids, tokens)
    costs = session.costs()
    return {"model": trained.name, "arch": target.name, "prompt": prompt,
            "prompt_tokens": len(ids), "tokens": [int(t) for t in got],
            "text": decode(got), "fp32_text": decode(fp32),
            "matches_reference": bool(np.array_equal(got, want)
                                      and all(np.array_equal(a, b)
                                              for a, b in zip(rows, ref_rows, strict=True))),
            "fp32_agreement": float(np.mean(np.asarray(got) == np.asarray(fp32))),
            **costs, "compile_s": session.compile_s, "simulate_s": simulate_s}


def check_request(trained: Any, prompt: str, tokens: int) -> None:
    """Refuse a request before any quantization: an empty prompt, no tokens, or more tokens than
    the model's positions (its example input's length)."""
    from qasic.models.tiny_gpt import encode

    trained = _language_model(trained, None)
    _check_request(encode(prompt), tokens, int(trained.example_input.shape[-1]), 1 << 30)


def _language_model(model: Any, progress: Progress | None) -> Any:
    from qasic.models.textmodels import TextModel

    if isinstance(model, str):
        from qasic.models import get_model

        model = get_model(model, progress=progress)
    if not isinstance(model, TextModel) or model.task != "language_model":
        name = getattr(model, "name", type(model).__name__)
        raise ConfigError(f"model {name} is not a language model; qasic generate takes a "
                          "built-in language model (tiny_gpt)")
    return model


def _check_request(ids: np.ndarray, tokens: int, positions: int, vocab: int) -> None:
    if len(ids) == 0:
        raise InputError("the prompt tokenizes to nothing; give at least one character")
    if tokens < 1:
        raise InputError(f"--tokens {tokens}: generate at least one token")
    if len(ids) + tokens > positions:
        raise InputError(f"a prompt of {len(ids)} tokens plus {tokens} new ones is "
                         f"{len(ids) + tokens} tokens, longer than the model's {positions} "
                         "positions; shorten the prompt or generate fewer tokens")
    if ids.min() < 0 or ids.max() >= vocab:
        raise InputError(f"token id {int(ids.max())} is outside the vocabulary of {vocab}")


def _vocab(full: Any) -> int:
    """Rows of the token embedding table (the ids the model takes)."""
    for n in full.nodes:
        if n.op == "embedding" and n.inputs == (full.input,) and np.ndim(n.params["table"]) == 2:
            return int(np.shape(n.params["table"])[0])
    raise ConfigError(f"model {full.name} has no token embedding; qasic generate takes a "
                      "language model over token ids")


class Session:
    """A prefill program and a decode-step program over one DRAM (the KV caches carry over)."""

    def __init__(self, full: Any, prompt: int, arch: Any, progress: Progress | None = None):
        from qasic.compiler import compile_graph
        from qasic.isa.verify import verify
        from qasic.quant.decode import decode_graph, prefill_graph

        self.full, self.arch, self.progress = full, arch, progress
        t0 = time.perf_counter()
        self.prefill = compile_graph(prefill_graph(full, prompt), arch)
        self.decode = compile_graph(decode_graph(full), arch)
        self.compile_s = time.perf_counter() - t0
        for program in (self.prefill, self.decode):  # the machine runs verified programs only
            verify(program)
        self.states = _states(self.prefill)
        if self.states != _states(self.decode):
            raise ConfigError("the prefill and decode programs place the KV caches differently; "
                              "this is a compiler bug, please report it")

    def generate(self, ids: np.ndarray, tokens: int) -> tuple[list[int], list[np.ndarray]]:
        """Greedy tokens and each step's logit codes (the row that picked it)."""
        from qasic.sim import fast  # the fast path: bit-exact with Machine.run (tests/sim)
        from qasic.sim.machine import Machine

        pre = Machine(self.prefill, self.arch, 1)
        pre.write_region(self.prefill.meta["input"]["tensor"], ids[None].reshape(1, 1, -1, 1))
        fast.run(pre)
        row = pre.read_region(self.prefill.meta["output"]["tensor"]).reshape(len(ids), -1)[-1]
        out, rows = [self._pick(row)], [row]
        step = Machine(self.decode, self.arch, 1)
        for r in self.states:  # the caches the prefill wrote
            step.dram[:, r.addr:r.addr + r.size] = pre.dram[:, r.addr:r.addr + r.size]
        for p in range(len(ids), len(ids) + tokens - 1):
            step.write_region(self.decode.meta["input"]["tensor"],
                              np.array([[out[-1], p]]).reshape(1, 1, 2, 1))
            fast.run(step)
            row = step.read_region(self.decode.meta["output"]["tensor"]).reshape(-1)
            out.append(self._pick(row))
            rows.append(row)
            if self.progress:
                self.progress(f"decoded token {len(out)}/{tokens}")
        return out, rows

    def _pick(self, codes: np.ndarray) -> int:
        from qasic.sim.run import io_encoding

        return int(np.argmax(io_encoding(self.decode.meta["output"]).decode(codes)))

    def costs(self) -> dict:
        from qasic.sim.run import _stats
        from qasic.sim.timing import schedule

        pre = _stats(self.prefill, self.arch, np.zeros(0), schedule(self.prefill, self.arch))
        dec = _stats(self.decode, self.arch, np.zeros(0), schedule(self.decode, self.arch))
        mhz = self.arch.clock_mhz
        return {"prefill_cycles": pre.cycles, "prefill_energy_pj": pre.energy_pj,
                "decode_cycles_per_token": dec.cycles,
                "energy_pj_per_token": dec.energy_pj,
                "decode_dram_bytes_per_token": dec.dram_bytes,
                "kv_cache_bytes": int(sum(r.size for r in self.states)),
                "tokens_per_s": mhz * 1e6 / dec.cycles if dec.cycles else None,
                "decode_layers": [{k: la[k] for k in _LAYER_KEYS} for la in dec.layers]}


_LAYER_KEYS = ("name", "kind", "ops", "weight_bits", "cycles", "macs", "dram_bytes", "energy_pj")


def summary(record: dict) -> str:
    """The record as a few lines (``qasic generate`` without --json)."""
    e = record["energy_pj_per_token"]
    same = "yes" if record["matches_reference"] else "NO"
    return "\n".join([
        f"{record['prompt']}{record['text']}",
        "",
        (f"{record['model']} on {record['arch']}: {len(record['tokens'])} tokens after a "
        f"{record['prompt_tokens']}-token prompt; equal to the golden reference: {same}; "
        f"{record['fp32_agreement']:.0%} of tokens equal fp32's"),
        (f"prefill {record['prefill_cycles']} cycles; decode {record['decode_cycles_per_token']} "
        f"cycles/token ({record['tokens_per_s']:.0f} tokens/s), {e['total'] / 1e3:.1f} "
        f"nJ/token (mac {e['mac'] / 1e3:.1f}, sram {e['sram'] / 1e3:.1f}, dram "
        f"{e['dram'] / 1e3:.1f}, other {e['other'] / 1e3:.1f})"),
        (f"KV cache {record['kv_cache_bytes']} bytes; a decode step moves "
        f"{record['decode_dram_bytes_per_token']} DRAM bytes")])


def _states(program: Any) -> tuple:
    return tuple(r for r in program.regions if r.kind == "state")


def golden_tokens(full: Any, ids: np.ndarray, tokens: int) -> tuple[list[int], list[np.ndarray]]:
    """The greedy tokens of the golden reference of the full model, and each step's logit codes
    (the sequence right-padded with id 0 to the model's positions)."""
    from qasic.quant import reference
    from qasic.sim.run import io_encoding

    c = int(full.shapes[full.input][0])
    enc = io_encoding({"scale": full.tensors[full.output].scale,
                       "zero_point": full.tensors[full.output].zero_point,
                       "bits": full.tensors[full.output].bits,
                       "fmt": full.tensors[full.output].fmt})
    seq, rows = [int(i) for i in ids], []
    for _ in range(tokens):
        x = np.zeros((1, c), np.int64)
        x[0, :len(seq)] = seq
        row = reference.run(full, x)[0, len(seq) - 1]
        rows.append(row)
        seq.append(int(np.argmax(enc.decode(row))))
    return seq[len(ids):], rows


def _float_tokens(module: Any, ids: np.ndarray, tokens: int) -> list[int]:
    from qasic.models.tiny_gpt import generate as float_generate

    return [int(t) for t in float_generate(module, ids, tokens)]

"""The design space of `qasic sweep`: architecture axes x quantization choices x models.

A design point is everything its result depends on: the model (name, training seed, inputs
simulated), every architecture field, whether the PEs are fitted to the quantized weights, the
full quantization config and the energy table's bytes. ``DesignPoint.config_hash`` is the SHA-256
of that config's canonical JSON: the key a sweep store files the point's row under, so a rerun
finds the points it has already.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from qasic.arch.config import DEFAULT_PATH, ArchConfig

# Bumped when a stored row would change meaning for the same config (invalidates old stores' keys).
CONFIG_VERSION = 1
PE_FIELDS = ("input_bits", "weight_bits", "input_shift_bits", "weight_shift_bits")
SRAM_FIELDS = ("input_sram_bytes", "weight_sram_bytes", "acc_sram_bytes", "output_sram_bytes",
               "param_sram_bytes")
# QuantConfig settings added after stores were written -> the default they were added with: left
# out of a config there (QuantChoice.config), so older stores keep their keys
ADDED_DEFAULTS = {"recurrence_bits": 16}
# settings added later whose former behaviour was another setting's value -> that setting: left
# out where they are equal (softmax outputs were at activation_bits before softmax_bits), so a
# store's points keep their keys wherever the new setting changes nothing
ADDED_AS = {"softmax_bits": "activation_bits"}


@dataclass(frozen=True)
class ArchValue:
    """One value of an architecture axis: its label in the arch name and the fields it sets."""

    label: str
    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class ArchAxis:
    flag: str
    values: tuple[ArchValue, ...]


@dataclass(frozen=True)
class WeightChoice:
    """INT weights of ``bits``, a weight ``format``, or a ``policy``'s bits within ``budget``."""

    bits: int | None = None
    format: str | None = None
    policy: str | None = None
    budget: str | None = None

    @property
    def label(self) -> str:
        if self.policy:
            return f"{self.policy}@{self.budget}"
        return self.format or f"W{self.bits}"


@dataclass(frozen=True)
class ActChoice:
    format: str = "int"
    bits: int = 8

    @property
    def label(self) -> str:
        return f"A{self.bits}" if self.format == "int" else self.format


@dataclass(frozen=True)
class QuantChoice:
    weights: WeightChoice
    acts: ActChoice
    # other QuantConfig settings of this point (--quant-set softmax_bits=4,8), in flag order
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """'W4/A8', or 'W4/A4 softmax_bits=6' with settings."""
        return " ".join([f"{self.weights.label}/{self.acts.label}",
                         *(f"{k}={v}" for k, v in self.settings)])

    def activation_config(self):
        """The QuantConfig of the activations and settings (weights at their defaults)."""
        from qasic.quant import QuantConfig

        return QuantConfig(activation_bits=self.acts.bits, activation_format=self.acts.format,
                           **dict(self.settings))

    def quant_config(self, weight_bits: int | dict[str, int] | None = None):
        """The QuantConfig of this choice; a policy's ``weight_bits`` once it has chosen them."""
        w = self.weights
        bits = weight_bits if weight_bits is not None else (w.bits or 8)
        return dataclasses.replace(self.activation_config(), weight_bits=bits,
                                   weight_format=w.format)

    def config(self) -> dict[str, Any]:
        """Every quantization setting (a policy point: its policy, budget and candidates). A
        setting that is None (off) is left out, so a setting added later with a None default
        leaves the configs, and so the stored points, of older sweeps as they were.
        norm_input_bits (None, the activation width, before 2026-12-05; 16 since) is in every
        new config: a store's older points keep their rows, and rerun under the new keys. A
        setting added later with another default is left out at that default (ADDED_DEFAULTS),
        as a None one: recurrence_bits widens only recurrences, none of the sweeps' models.
        embedding_bits (8 before 2026-12-06, 16 since) is in every new config, as
        norm_input_bits: a token model's results changed with it. softmax_bits (8 since
        2026-12-07; activation_bits before) is in a config whose activations are narrower
        (ADDED_AS)."""
        cfg = dataclasses.asdict(self.quant_config())
        if self.weights.policy:
            from qasic.quant.sensitivity import CANDIDATE_BITS

            cfg |= {"weight_bits": None, "policy": self.weights.policy,
                    "budget": self.weights.budget, "candidate_bits": list(CANDIDATE_BITS)}
        return {k: v for k, v in cfg.items()
                if v is not None and (k, v) not in ADDED_DEFAULTS.items()
                and (k not in ADDED_AS or v != cfg.get(ADDED_AS[k]))}


@dataclass(frozen=True)
class DesignPoint:
    model: str
    seed: int
    limit: int                                 # inputs simulated: the first `limit` (0: all)
    arch_name: str
    arch_fields: tuple[tuple[str, Any], ...]   # every ArchConfig field, unvalidated
    fit_pe: bool          # PEs sized to the quantized model (qasic.flow.arch_for), else as given
    quant: QuantChoice
    output: int | str | None = None  # --output: the one output of a tuple/dict model (N|KEY)

    def arch(self) -> ArchConfig:
        """The architecture (ConfigError, naming the key, if the combination is impossible)."""
        return ArchConfig(**dict(self.arch_fields))

    def config(self) -> dict[str, Any]:
        arch = dict(self.arch_fields)
        model = {"name": self.model, "seed": self.seed, "limit": self.limit}
        if self.output is not None:  # a point without --output keeps the hash it had
            model["output"] = self.output
        return {"version": CONFIG_VERSION, "model": model,
                "arch": arch, "fit_pe": self.fit_pe, "quant": self.quant.config(),
                "energy_table_sha256": _file_sha256(arch["energy_table"])}

    @cached_property
    def canonical_config(self) -> str:
        return canonical_json(self.config())

    @cached_property
    def config_hash(self) -> str:
        return hashlib.sha256(self.canonical_config.encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, integral floats as ints (500.0 and 500 are one clock)."""
    return json.dumps(_canon(value), sort_keys=True, separators=(",", ":"))


def _canon(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    return value


def _file_sha256(energy_table: str) -> str | None:
    path = DEFAULT_PATH.parent / energy_table
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@dataclass(frozen=True)
class SweepSpace:
    models: tuple[str, ...]
    seed: int
    limit: int
    base: ArchConfig
    arch_axes: tuple[ArchAxis, ...]
    quants: tuple[QuantChoice, ...]
    output: int | str | None = None  # --output N|KEY (qasic.models.outputs), every model's

    def points(self) -> list[DesignPoint]:
        """Every point: models, then architectures (axes in order), then quantizations."""
        prefix = self.base.name.split("-")[0]
        base = self.base.to_dict()
        points = []
        for model in self.models:
            for combo in itertools.product(*(a.values for a in self.arch_axes)):
                values = dict(base)
                for v in combo:
                    values |= dict(v.fields)
                name = "-".join([prefix, *(v.label for v in combo if v.label)])
                values["name"] = name
                fit = not any(k in PE_FIELDS for v in combo for k, _ in v.fields)
                points += [DesignPoint(model, self.seed, self.limit, name,
                                       tuple(values.items()), fit, q, self.output)
                           for q in self.quants]
        return points

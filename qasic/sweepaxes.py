"""The command line's sweep axes, parsed: architecture axes (--arrays, --pe-bits, --sram-scale,
--dram-bw, --clock-mhz, --set KEY=V1,V2) and quantization choices (--bits, --formats, --act-bits,
--act-formats, --policies x --budgets, --quant-set KEY=V1,V2). Bad text is one line naming the
flag and what to give; each architecture value is checked on the base arch alone, so a typo
fails before anything runs (a combination of good values that no arch can have becomes an
infeasible point instead).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from qasic.arch.config import ArchConfig, toml_key
from qasic.errors import ConfigError
from qasic.sweepspace import SRAM_FIELDS, ActChoice, ArchAxis, ArchValue, QuantChoice, WeightChoice

# --- parsing the command line's axes --------------------------------------------------------


def split_list(flag: str, text: str, parse: Callable[[str], Any], hint: str) -> list[Any]:
    """'a,b,c' -> [parse(a), ...]; one line naming the flag and ``hint`` on a bad item."""
    try:
        items = [parse(part.strip()) for part in text.split(",")]
    except ValueError:
        items = []
    if not items:
        raise ConfigError(f"{flag} {text!r}: give {hint}")
    return items


def _pair(text: str) -> tuple[int, int]:
    a, b = (int(v) for v in text.lower().split("x"))  # ValueError unless exactly two ints
    return a, b


def _positive(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(text)
    return value


def parse_arrays(text: str) -> list[tuple[int, int]]:
    """'8x8,16x16' -> [(8, 8), (16, 16)]."""
    return split_list("--arrays", text, _pair, "ROWSxCOLS pairs like 8x8,16x16")


def arch_axis(flag: str, text: str, base: ArchConfig) -> ArchAxis:
    """An architecture axis from its flag's text; each value is checked on ``base`` alone."""
    return _checked(flag, text, _AXES[flag](text, base), base)


def _checked(flag: str, text: str, values: list[ArchValue], base: ArchConfig) -> ArchAxis:
    for v in values:
        try:
            dataclasses.replace(base, **dict(v.fields))
        except ConfigError as e:
            raise ConfigError(f"{flag} {text!r}: {e}") from None
    return ArchAxis(flag, tuple(values))


def _arrays(text: str, base: ArchConfig) -> list[ArchValue]:
    return [ArchValue(f"{r}x{c}", (("array_rows", r), ("array_cols", c)))
            for r, c in parse_arrays(text)]


def _pe_bits(text: str, base: ArchConfig) -> list[ArchValue]:
    def one(item: str) -> ArchValue:
        if item == "fit":
            return ArchValue("", ())
        a, w = _pair(item)
        return ArchValue(f"a{a}w{w}", (("input_bits", a), ("weight_bits", w)))

    return split_list("--pe-bits", text, one, "fit or INPUTxWEIGHT bit pairs like fit,8x8,8x4")


def _sram_scale(text: str, base: ArchConfig) -> list[ArchValue]:
    """Every scratchpad of ``base`` times a factor (whole bytes, rounded down)."""
    def one(item: str) -> ArchValue:
        s = _positive(item)
        return ArchValue(f"sram{s:g}x", tuple((f, int(s * getattr(base, f)))
                                              for f in SRAM_FIELDS))

    return split_list("--sram-scale", text, one, "positive factors like 0.5,1,2")


def _dram_bw(text: str, base: ArchConfig) -> list[ArchValue]:
    return [ArchValue(f"bw{b}", (("dram_bytes_per_cycle", b),))
            for b in split_list("--dram-bw", text, int, "bytes per cycle like 4,8,16")]


def _clock(text: str, base: ArchConfig) -> list[ArchValue]:
    return [ArchValue(f"{m:g}mhz", (("clock_mhz", m),))
            for m in split_list("--clock-mhz", text, _positive, "MHz like 250,500,1000")]


_AXES: dict[str, Callable[[str, ArchConfig], list[ArchValue]]] = {
    "--arrays": _arrays, "--pe-bits": _pe_bits, "--sram-scale": _sram_scale,
    "--dram-bw": _dram_bw, "--clock-mhz": _clock,
}
_BY_KEY = {toml_key(f.name): f for f in fields(ArchConfig) if f.name != "name"}


def set_axis(text: str, base: ArchConfig) -> ArchAxis:
    """``--set KEY=V1,V2``: an axis over any arch TOML key (``dram.latency_cycles=32,64``)."""
    key, _, values = text.partition("=")
    field = _BY_KEY.get(key.strip())
    if field is None:
        raise ConfigError(f"--set {text!r}: give KEY=V1,V2 with KEY an arch TOML key (e.g. "
                          f"dram.latency_cycles=32,64; keys: {', '.join(_BY_KEY)})")
    cast = {"str": str, "float": float}.get(field.type, int)
    try:
        items = [cast(v.strip()) for v in values.split(",")] if values.strip() else []
    except ValueError:
        items = []
    if not items:
        raise ConfigError(f"--set {text!r}: give {field.type} values after {key.strip()}=, "
                          "separated by commas")
    tail = key.strip().rpartition(".")[2]
    return _checked("--set", text, [ArchValue(f"{tail}{v:g}" if cast is float else f"{tail}{v}",
                                              ((field.name, v),)) for v in items], base)


def quant_choices(bits: str | None = None, formats: str | None = None,
                  act_bits: str | None = None, act_formats: str | None = None,
                  policies: str | None = None, budgets: str | None = None,
                  settings: Sequence[str] = ()) -> list[QuantChoice]:
    """Weight choices x activation choices x each ``settings`` axis (--quant-set KEY=V1,V2).
    INT weights of ``bits`` unless only formats or policies are asked for (default 8,4,3,2);
    INT activations of ``act_bits`` unless only ``act_formats`` are (default 8). Each is a
    valid QuantConfig (checked here)."""
    weights = []
    if bits is not None or (formats is None and policies is None):
        weights += [WeightChoice(bits=b) for b in
                    split_list("--bits", bits or "8,4,3,2", int, "widths like 8,4,2")]
    if formats is not None:
        weights += [WeightChoice(format=f) for f in split_list("--formats", formats, _word,
                                                              "formats like mxfp4,fp8_e4m3")]
    weights += _policy_choices(policies, budgets)
    acts = []
    if act_bits is not None or act_formats is None:
        acts += [ActChoice("int", b) for b in
                 split_list("--act-bits", act_bits or "8", int, "widths like 8,4")]
    if act_formats is not None:
        acts += [ActChoice(f, 8) for f in split_list("--act-formats", act_formats, _word,
                                                     "formats like fp8_e4m3,fp8_e3m4")]
    axes = [quant_set_axis(text) for text in settings]
    choices = [QuantChoice(w, a, combo) for w in weights for a in acts
               for combo in itertools.product(*axes)]
    for c in choices:
        c.quant_config()  # an unknown format or a width out of range fails here, in one line
    return choices


# QuantConfig settings that are axes of their own (--bits, --formats, --act-bits, --act-formats)
_AXIS_SETTINGS = ("weight_bits", "weight_format", "activation_bits", "activation_format")


def quant_set_axis(text: str) -> list[tuple[str, Any]]:
    """``--quant-set KEY=V1,V2``: an axis over any other QuantConfig setting, e.g.
    ``softmax_bits=4,8`` or ``observer``'s ``activation_observer=minmax,histogram`` (``none``:
    None where the setting allows it)."""
    from qasic.quant import QuantConfig

    settings = {f.name: str(f.type) for f in fields(QuantConfig) if f.name not in _AXIS_SETTINGS}
    key, _, values = (part.strip() for part in text.partition("="))
    if key not in settings:
        hint = ("it is an axis of its own: --bits, --formats, --act-bits, --act-formats"
                if key in _AXIS_SETTINGS else f"settings: {', '.join(settings)}")
        raise ConfigError(f"--quant-set {text!r}: give KEY=V1,V2 with KEY a QuantConfig "
                          f"setting; {hint}")
    kind = settings[key]
    try:
        items = [_setting(v.strip(), kind) for v in values.split(",")] if values else []
    except ValueError:
        items = []
    if not items:
        raise ConfigError(f"--quant-set {text!r}: give {kind} values after {key}=, separated "
                          "by commas")
    return [(key, v) for v in dict.fromkeys(items)]


def _setting(text: str, kind: str) -> Any:
    """A --quant-set value as the setting's annotated type says (ValueError if it is none)."""
    if text.lower() == "none" and "None" in kind:
        return None
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    for name, cast in (("int", int), ("float", float)):
        if name in kind:
            try:
                return cast(text)
            except ValueError:
                pass
    if "str" in kind and text:
        return text
    raise ValueError(text)


def _word(text: str) -> str:
    if not text:
        raise ValueError(text)
    return text


def _policy_choices(policies: str | None, budgets: str | None) -> list[WeightChoice]:
    if (policies is None) != (budgets is None):
        raise ConfigError("--policies and --budgets go together: e.g. --policies hawq,lim "
                          "--budgets avg_bits=3,avg_bits=4")
    if policies is None:
        return []
    from qasic.policies import POLICIES, parse_budget  # scikit-learn and SciPy: 1.6 s to import

    names = split_list("--policies", policies, _word, f"policies from {', '.join(POLICIES)}")
    for name in names:
        if name not in POLICIES:
            raise ConfigError(f"--policies {policies!r}: {name!r} is unknown; allowed "
                              f"{', '.join(POLICIES)}")
    given = split_list("--budgets", budgets, _word, "budgets like avg_bits=3,avg_bits=4")
    for b in given:
        parse_budget(b)  # one line naming the bad budget
    return [WeightChoice(policy=p, budget=b) for p in names for b in given]

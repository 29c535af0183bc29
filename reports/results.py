"""The ``results.json`` contract: its schema as data, validation, loading, and derived choices.

Validation runs before any plotting so that a malformed file fails with one message naming the key
(``results.json: points[2] lacks 'accuracy'``) instead of a KeyError deep inside matplotlib.
Extra keys are allowed: the demo may add fields before the report learns to show them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qasic.errors import InputError
from qasic.reports.pareto import pareto_front

ENERGY_KEY = "energy_pj.total"  # x of the Pareto front, pJ per inference
ACCURACY_KEY = "accuracy"  # y of the Pareto front, fraction in [0, 1]
ENERGY_PARTS = ("mac", "sram", "dram", "other", "leakage")
AREA_PARTS = ("array", "scratchpads", "control")  # area_parts_mm2, mm² (qasic.rtl.area)

_NUM = (int, float)
# key -> expected type; a nested record or list of records is checked by its own spec below.
_TOP = {"model": str, "fp32_accuracy": _NUM, "arch": dict, "points": list, "rtl": dict,
        "energy_sources": list}
_ARCH = {"name": str}
_ENERGY = {"total": _NUM, **{part: _NUM for part in ENERGY_PARTS}}
_POINT = {"name": str, "weight_bits": dict, "activation_bits": int, "accuracy": _NUM,
          "cycles": _NUM, "latency_us": _NUM, "macs": _NUM, "dram_bytes": _NUM, "energy_pj": dict,
          "bit_exact": bool, "layers": list, "pe_bits": dict, "area_mm2": _NUM,
          "area_parts_mm2": dict}
_PE_BITS = {"activation": int, "weight": int}
_LAYER = {"name": str, "kernels": int, "cycles": _NUM, "macs": _NUM, "dram_bytes": _NUM,
          "energy_pj": dict}
_RTL = {"verified": bool, "method": str, "samples": int, "outputs_equal": bool,
        "cycles_rtl": _NUM, "cycles_sim": _NUM, "cycle_error": _NUM, "queues": list}
_QUEUE = {"queue": str, "busy_rtl": _NUM, "busy_sim": _NUM}
_SOURCE = {"name": str, "value": _NUM, "unit": str, "source": str}

_TYPE_NAMES = {str: "a string", int: "an integer", _NUM: "a number", bool: "true or false",
               dict: "an object", list: "a list"}


def load_results(path: str | Path) -> dict:
    """Read and validate a ``results.json`` file."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; run `qasic demo` to write results.json") from None
    except (OSError, UnicodeDecodeError) as e:  # a directory, a binary file
        raise InputError(f"{path} cannot be read as results.json ({type(e).__name__}); give the "
                         "results.json `qasic demo` writes") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON: {e}") from None
    return validate_results(results)


def validate_results(results: Any) -> dict:
    """Return ``results`` if it meets the contract; else raise InputError naming the key."""
    _check_record(results, _TOP, "")
    _check_record(results["arch"], _ARCH, "arch")
    _check_fraction(results["fp32_accuracy"], "fp32_accuracy")
    if not results["points"]:
        raise InputError("results.json: points is empty; the report needs at least one point")
    for i, point in enumerate(results["points"]):
        validate_point(point, f"points[{i}]")
    _check_unique_names(results["points"])
    _check_chosen(results)
    _check_record(results["rtl"], _RTL, "rtl")
    _check_list(results["rtl"]["queues"], _QUEUE, "rtl.queues")
    _check_list(results["energy_sources"], _SOURCE, "energy_sources")
    return results


def validate_point(point: Any, path: str = "point") -> dict:
    """Check one design point and its layers; ``path`` names it in messages."""
    _check_record(point, _POINT, path)
    _check_fraction(point["accuracy"], f"{path}.accuracy")
    _check_energy(point["energy_pj"], f"{path}.energy_pj")
    _check_record(point["pe_bits"], _PE_BITS, f"{path}.pe_bits")
    _check_area(point, path)
    for layer_name, bits in point["weight_bits"].items():
        _check_type(bits, int, f"{path}.weight_bits.{layer_name}")
    _check_list(point["layers"], _LAYER, f"{path}.layers")
    for j, layer in enumerate(point["layers"]):
        _check_energy(layer["energy_pj"], f"{path}.layers[{j}].energy_pj")
    return point


def chosen_point(results: Mapping[str, Any]) -> dict:
    """The point named by ``chosen_point``; if absent, the most accurate point on the Pareto front.

    Among equally accurate front points the cheapest wins (the front is ordered by energy).
    """
    points = results["points"]
    name = results.get("chosen_point")
    if name is not None:
        return next(p for p in points if p["name"] == name)
    front = pareto_front(points, ENERGY_KEY, ACCURACY_KEY)
    return points[max(front, key=lambda i: points[i][ACCURACY_KEY])]


def _where(path: str) -> str:
    return f"results.json: {path}" if path else "results.json"


def _check_record(record: Any, spec: Mapping[str, Any], path: str) -> None:
    if not isinstance(record, dict):
        raise InputError(f"{_where(path)} must be an object, got {_short(record)}")
    for key, want in spec.items():
        if key not in record:
            raise InputError(f"{_where(path)} lacks {key!r}")
        _check_type(record[key], want, f"{path}.{key}" if path else key)


def _check_list(records: list, spec: Mapping[str, Any], path: str) -> None:
    for i, record in enumerate(records):
        _check_record(record, spec, f"{path}[{i}]")


def _check_type(value: Any, want: Any, path: str) -> None:
    # bool is an int in Python, but `true` where a count belongs is a bug in the writer.
    wrong_bool = isinstance(value, bool) and want is not bool
    if wrong_bool or not isinstance(value, want):
        raise InputError(f"{_where(path)} = {_short(value)} must be {_TYPE_NAMES[want]}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{_where(path)} = {value} must be finite")


def _check_fraction(value: float, path: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{_where(path)} = {value} must be a fraction in [0, 1], not a percentage")


def _check_energy(energy: Any, path: str) -> None:
    _check_record(energy, _ENERGY, path)
    for key in _ENERGY:
        if energy[key] < 0:
            raise InputError(f"{_where(path)}.{key} = {energy[key]} must be >= 0 pJ")


def _check_area(point: Mapping[str, Any], path: str) -> None:
    parts = point["area_parts_mm2"]
    _check_record(parts, dict.fromkeys(AREA_PARTS, _NUM), f"{path}.area_parts_mm2")
    for key in ("area_mm2", *(f"area_parts_mm2.{p}" for p in AREA_PARTS)):
        value = parts[key.split(".")[1]] if "." in key else point[key]
        if value < 0:
            raise InputError(f"{_where(path)}.{key} = {value} must be >= 0 mm²")
    if not math.isclose(sum(parts.values()), point["area_mm2"], rel_tol=1e-6):
        raise InputError(f"{_where(path)}.area_mm2 = {point['area_mm2']} is not the sum of "
                         f"area_parts_mm2 ({sum(parts.values())}); write both from one model")


def _check_unique_names(points: list[dict]) -> None:
    first: dict[str, int] = {}
    for i, point in enumerate(points):
        j = first.setdefault(point["name"], i)
        if j != i:
            raise InputError(f"results.json: points[{i}].name {point['name']!r} repeats "
                             f"points[{j}]; point names must be unique")


def _check_chosen(results: Mapping[str, Any]) -> None:
    name = results.get("chosen_point")
    names = [p["name"] for p in results["points"]]
    if name is not None and name not in names:
        raise InputError(f"results.json: chosen_point {_short(name)} is not a point name; "
                         f"use one of {', '.join(names)} or omit it")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

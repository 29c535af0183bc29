"""QuantConfig: a small frozen, validated description of how to quantize a model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from qasic.errors import ConfigError
from qasic.isa.table import ACT_FORMATS
from qasic.quant.intops import norm_max_bits
from qasic.quant.observers import ACTIVATION_OBSERVERS, OUTPUT_OBSERVERS, WEIGHT_SCALERS

BITS_RANGE = (2, 8)
NORM_INPUT_BITS = (2, 16)   # norm inputs may be wider (intops.norm_rows is exact in int64)
DEFAULT_NORM_INPUT_BITS = 16  # a 16-bit residual stream (I-BERT keeps it wide too; llm_study.md)
WIDE_BITS = (2, 16)         # norm_residual_bits, output_bits, recurrence_bits: int16 codes
EMBEDDING_BITS = (8, 16)    # embedding_bits: the activation encoding, or int16 codes
DEFAULT_WEIGHT_BITS = 8     # layers a per-layer dict does not name
AUTO_MSE_MAX_BITS = 4       # weight_clipping="auto": MSE clipping at <= 4 bits, max-abs above
CLIPPINGS = ("auto", *WEIGHT_SCALERS)
WEIGHT_ROUNDINGS = ("nearest", "gptq", "gptq_fisher")


@dataclass(frozen=True)
class QuantConfig:
    """``weight_bits``: one width for every layer, or {layer name: bits} (unnamed layers get
    DEFAULT_WEIGHT_BITS). Activations are asymmetric per tensor, weights symmetric per output
    channel. ``percentile`` is used by the 'percentile' observer (two-sided, in percent)."""

    weight_bits: int | Mapping[str, int] = 8
    activation_bits: int = 8
    activation_observer: str = "minmax"
    percentile: float = 99.99
    weight_clipping: str = "auto"
    # None: INT weights of weight_bits. A format name (or {layer: name}) from
    # qasic.quant.formats, e.g. "fp4_e2m1", "fp8_e4m3", "nf4_pc"; it sets that layer's bits.
    weight_format: str | Mapping[str, str] | None = None
    # "int" (asymmetric INT of activation_bits) or an FP8 format of isa.table.ACT_FORMATS,
    # "fp8_e4m3" or "fp8_e3m4" (per-tensor scale x FP8 code; qasic.quant.actformat)
    activation_format: str = "int"
    # the graph output's range: "minmax", or "top" (classifier scores: the part of the range
    # below every calibration vector's median may clip, for a finer step where argmax is
    # decided; observers.top_range), or "fisher" (the 'histogram' range of the logits with
    # each value weighted by the squared gradient of the cross-entropy at the fp32 top-1,
    # (softmax - onehot)^2: the scores that compete for the top weigh, the rest may clip)
    output_observer: str = "minmax"
    # empirical bias correction (qasic.quant.biascorr): each conv2d/linear bias absorbs the mean
    # output shift that quantization causes on the calibration batch
    bias_correction: bool = False
    # INT width of the tensors a LayerNorm/RMSNorm/GroupNorm reads (a transformer's residual
    # sums), None: activation_bits. Outlier channels stretch these ranges (BERT's FFN outputs
    # reach 200 where most values are +-3): all-MiniLM-L6-v2's embedding cosine is 0.92 with
    # FP8 activations and 8-bit norm inputs, 0.997 with 16 (qasic.quant.encodings). 16, the
    # default and the widest, means as wide as each such tensor can be (norm_bits_for); a
    # narrower width that a norm cannot take is refused
    norm_input_bits: int | None = DEFAULT_NORM_INPUT_BITS
    # activation equalization (qasic.quant.equalize): channels of a tensor rescaled to share
    # one per-tensor scale, the factors moved into the per-channel weights around it
    equalize: bool = False
    # equalization strength towards full (groups = 1) consumers: s_c = (m_c / r)^alpha, alpha
    # in [0, 1] (0.5: SmoothQuant's), or "search": per component the strength whose quantized
    # consumers lose least on the calibration batch (equalize.search_alpha). None: 0.5 (None,
    # so sweeps stored before this setting keep their configs)
    equalize_alpha: float | str | None = None
    # how INT weights round to their codes: "nearest", or "gptq" (qasic.quant.gptq: each
    # layer's codes chosen to keep its output on the calibration batch), or "gptq_fisher" (the
    # same with each output position weighted by the fp32 loss's squared gradient; classifiers)
    weight_rounding: str = "nearest"
    # INT width of a second copy of each LayerNorm/RMSNorm output that feeds a residual add (a
    # post-LN transformer's residual stream, BERT), the other readers (the next GEMMs) keeping
    # the activation encoding; None: no copy. all-MiniLM-L6-v2's 13 LayerNorm outputs are about
    # half its FP8 error (docs/llm_study.md); 9..16 bits are stored as int16 codes
    norm_residual_bits: int | None = None
    # INT width of the graph output (the last layer's POST writes it; 9..16 bits: int16
    # codes, e.g. a classifier's logits), None: the activation encoding
    output_bits: int | None = None
    # INT width of a recurrence's tensors (one encoding at every position: quant.recurrence;
    # one that starts from 0: recurrence.widened) that the accelerator can store as int16 (an
    # add's or a matmul's output read only by adds and norms: encodings.int16_storable; the
    # others keep activation_bits),
    # None: activation_bits. The gated delta rule's output o_t = q_t^T decay_t + (q_t . beta_t
    # k_t) delta_t sums two such terms, whose 8-bit steps were set by the largest position's
    # (docs/ops.md: Qwen3-Next's survey row 0.785 -> 0.86)
    recurrence_bits: int | None = 16
    # INT width of embedding rows where every reader takes int16 codes (adds and norms: the
    # first terms of a transformer's residual stream): an embedding lookup's (the table's
    # codes, the GATHER's output) and a constant's (a learned position table;
    # encodings.int16_rows). 16 (the default) stores them as int16 codes (twice the table
    # bytes), 8 keeps the activation encoding (8-bit INT or FP8, the width of before).
    # Qwen3-Next's survey row 0.869 -> 0.902, Qwen3.5's 0.955 -> 0.975 (docs/llm_study.md)
    embedding_bits: int = 16
    # INT width of softmax outputs (probabilities p = code / qmax, zero point 0:
    # intops.softmax_encoding), 2..8; None: activation_bits. 8 (the default) keeps them 8-bit
    # when activations are narrower: at 4 bits the step is 1/7, and a softmax over n > 14 keys
    # whose probabilities sit near 1/n writes mostly code 0 (YOLOv8's DFL head, 16 bins: its
    # box distances' cosine 0.06 at A4; attention rows over many keys alike). Their readers
    # (a matmul's, a conv's input) read 8-bit codes, twice a 4-bit tensor's bytes
    softmax_bits: int | None = 8

    def __post_init__(self) -> None:
        if _is_int(self.weight_bits):
            _check_bits("weight_bits", self.weight_bits)
        else:  # a read-only copy: later edits to the caller's dict must not leak in
            per_layer = _as_dict(self.weight_bits)
            for name, bits in per_layer.items():
                _check_bits(f"weight_bits[{name!r}]", bits)
            object.__setattr__(self, "weight_bits", MappingProxyType(per_layer))
        _check_bits("activation_bits", self.activation_bits)
        if self.norm_input_bits is not None:
            _check_bits("norm_input_bits", self.norm_input_bits, NORM_INPUT_BITS)
        if self.softmax_bits is not None:
            _check_bits("softmax_bits", self.softmax_bits)
        for key in ("norm_residual_bits", "output_bits", "recurrence_bits"):
            if getattr(self, key) is not None:
                _check_bits(key, getattr(self, key), WIDE_BITS)
        if not _is_int(self.embedding_bits) or self.embedding_bits not in EMBEDDING_BITS:
            raise ConfigError(f"embedding_bits = {self.embedding_bits!r} must be 8 (the "
                              "activation encoding) or 16 (int16 codes)")
        _check_choice("activation_observer", self.activation_observer, ACTIVATION_OBSERVERS)
        _check_choice("output_observer", self.output_observer, OUTPUT_OBSERVERS)
        for key in ("bias_correction", "equalize"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} = {getattr(self, key)!r} must be True or False")
        _check_alpha(self.equalize_alpha)
        _check_choice("weight_rounding", self.weight_rounding, WEIGHT_ROUNDINGS)
        _check_choice("weight_clipping", self.weight_clipping, CLIPPINGS)
        _check_choice("activation_format", self.activation_format, ACT_FORMATS)
        if self.activation_format != "int" and self.activation_bits != 8:
            raise ConfigError(f"activation_format = {self.activation_format!r} has 8 bits; "
                              f"activation_bits = {self.activation_bits} applies to 'int' only")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile = {self.percentile} must be in (50, 100]")
        if isinstance(self.weight_format, Mapping):
            object.__setattr__(self, "weight_format", MappingProxyType(dict(self.weight_format)))
        for name in self._format_names():
            _hardware_format(name)  # an unknown or unsupported format fails here

    @property
    def norm_bits(self) -> int:
        """INT width of normalization inputs."""
        return self.activation_bits if self.norm_input_bits is None else self.norm_input_bits

    @property
    def softmax_width(self) -> int:
        """INT width of softmax outputs: softmax_bits, or activation_bits when None."""
        return self.activation_bits if self.softmax_bits is None else self.softmax_bits

    def norm_bits_for(self, length: int, int16: bool = True) -> int:
        """INT width of a tensor a norm over rows of ``length`` values reads: ``norm_bits``.
        The widest setting, 16 (the default), means as wide as the accelerator takes it: 16
        bits where the NORM instruction's int64 sums take int16 codes (rows of at most 1023
        values, ``intops.norm_max_bits``) and the tensor can be stored as int16 (``int16``:
        encodings.int16_storable), else activation_bits. A narrower width that cannot be is
        refused: by quantize_transformer.norm (the sums), by the compiler (int16 codes)."""
        bits = self.norm_bits
        if bits != NORM_INPUT_BITS[1] or (int16 and norm_max_bits(length) >= bits):
            return bits
        return self.activation_bits

    @property
    def named_layers(self) -> tuple[str, ...]:
        """Layers the per-layer dicts name (empty for uniform settings)."""
        bits = () if _is_int(self.weight_bits) else tuple(self.weight_bits)
        fmts = tuple(self.weight_format) if isinstance(self.weight_format, Mapping) else ()
        return tuple(dict.fromkeys(bits + fmts))

    def format_for(self, layer: str) -> str | None:
        if isinstance(self.weight_format, Mapping):
            return self.weight_format.get(layer)
        return self.weight_format

    def _format_names(self) -> tuple[str, ...]:
        if isinstance(self.weight_format, Mapping):
            return tuple(self.weight_format.values())
        return () if self.weight_format is None else (self.weight_format,)

    def bits_for(self, layer: str) -> int:
        fmt = self.format_for(layer)
        if fmt is not None:
            return _hardware_format(fmt).element.bits
        if _is_int(self.weight_bits):
            return int(self.weight_bits)
        return int(self.weight_bits.get(layer, DEFAULT_WEIGHT_BITS))

    def clipping_for(self, bits: int) -> str:
        if self.weight_clipping != "auto":
            return self.weight_clipping
        return "mse" if bits <= AUTO_MSE_MAX_BITS else "minmax"


def _hardware_format(name: object):
    from qasic.quant.weights import hardware_format

    if not isinstance(name, str):
        raise ConfigError(f"weight_format = {name!r} must be a format name like 'fp4_e2m1'")
    return hardware_format(name)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _as_dict(v: object) -> dict[str, int]:
    if not isinstance(v, Mapping):
        raise ConfigError(f"weight_bits = {v!r} must be an int in 2..8 or a dict layer -> bits")
    return dict(v)


def _check_bits(key: str, v: object, allowed: tuple[int, int] = BITS_RANGE) -> None:
    lo, hi = allowed
    if not _is_int(v) or not lo <= v <= hi:
        raise ConfigError(f"{key} = {v!r} is out of range: allowed integers {lo}..{hi}")


def _check_alpha(v: object) -> None:
    if v is None or v == "search":
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ConfigError(f"equalize_alpha = {v!r} must be a number in [0, 1] or 'search'")


def _check_choice(key: str, v: object, allowed: tuple[str, ...]) -> None:
    if v not in allowed:
        raise ConfigError(f"{key} = {v!r} is unknown: allowed {', '.join(map(repr, allowed))}")

"""The ISA: the one table every other view of the instruction set derives from.

Encoder, decoder, assembler, disassembler, the Amaranth instruction layouts and docs/isa.md are all
generated from ``OPCODES``. No other file holds an opcode number or a bit position.

Every instruction is one 256-bit little-endian word. Bits 0..7 are the header: the opcode and four
dependency-token flags (VTA-style). Three queues execute in order and in parallel: ``load``
(DRAM -> scratchpad), ``compute`` (array and post-processing) and ``store`` (scratchpad -> DRAM).
Tokens flow through four FIFOs: load->compute, compute->load, compute->store, store->compute.
``pop_*`` waits for (and consumes) a token before the instruction starts; ``push_*`` sends one when
it completes. "prev"/"next" are the neighbouring queues in the order load, compute, store.
"""

from __future__ import annotations

from dataclasses import dataclass

WORD_BITS = 256
WORD_BYTES = WORD_BITS // 8
QUEUES = ("load", "compute", "store")
# Scratchpads a DMA can name. Order = encoding of the ``mem`` field.
MEMS = ("input", "weight", "acc", "output", "param")
# GEMM block-scale modes. Order = encoding of the ``bscale`` field.
BSCALE_MODES = ("none", "shift", "mul", "mulzp")
BSCALE_BYTES = 1  # one unsigned scale byte per output column per block
# POOL modes and ADD ops. Order = encoding of the ``mode`` / ``op`` field.
POOL_MODES = ("max", "avg")
EW_OPS = ("add", "mul")
# Activation formats: "int" (two's-complement integer codes) and 8-bit minifloats (one code per
# byte, sign-magnitude, multiplied as its exact fixed-point level: value / the format's smallest
# subnormal, qasic.quant.actformat): "fp8_e4m3" (OCP FP8 E4M3: levels value x 2^9, max 448) and
# "fp8_e3m4" (MX-style E3M4, bias 3, no inf/NaN: levels value x 2^6, max 31; Kuzmin et al. 2022
# found fewer exponent bits best for post-training quantization). Any minifloat of
# qasic.quant.formats with 8 bits is one more name here.
ACT_FORMATS = ("int", "fp8_e4m3", "fp8_e3m4")
# How activation codes are stored in the scratchpads and DRAM: intB = B-bit two's-complement codes
# packed little-endian like weight rows (a pixel's channels fill whole bytes), fp8_* = one
# code per byte, int16 = two bytes per code, little-endian (the residual stream feeding a norm:
# QuantConfig.norm_input_bits, a norm output kept wide for its residual add, a model's output;
# only ADD and NORM read it, ADD and POST write it). Order = encoding of every ``*fmt`` field:
# int8..int2 = 0..6, fp8_e4m3 = 7, int16 = 8, then the later FP formats in ACT_FORMATS order
# (appended, so existing encodings keep their numbers).
ACT_ENCODINGS = (tuple(f"int{b}" for b in range(8, 1, -1)) + ACT_FORMATS[1:2] + ("int16",)
                 + ACT_FORMATS[2:])
FMT_BITS = 4  # width of every encoding field


def encoding_bits(encoding: str) -> int:
    """Bits per stored activation code of an ACT_ENCODINGS name."""
    return int(encoding[3:]) if encoding.startswith("int") else 8


def encoding_is_fp(encoding: str) -> bool:
    """True for a floating-point encoding (codes decode to fixed-point levels)."""
    return not encoding.startswith("int")


def encoding_bytes(codes: int, encoding: str) -> int:
    """Bytes that ``codes`` consecutive codes of ``encoding`` occupy (rows start on bytes)."""
    return (codes * encoding_bits(encoding) + 7) // 8


@dataclass(frozen=True)
class Field:
    name: str
    lo: int
    width: int
    doc: str
    enum: tuple[str, ...] | None = None   # symbolic values, encoded as their index
    signed: bool = False

    @property
    def hi(self) -> int:
        return self.lo + self.width - 1

    def fits(self, value: int) -> bool:
        if self.signed:
            return -(1 << (self.width - 1)) <= value < (1 << (self.width - 1))
        return 0 <= value < (1 << self.width)


@dataclass(frozen=True)
class Opcode:
    name: str
    code: int
    queue: str
    doc: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}; fields: "
                       f"{', '.join(f.name for f in self.fields)}")


HEADER = (
    Field("opcode", 0, 4, "operation code"),
    Field("pop_prev", 4, 1, "wait for a token from the previous queue"),
    Field("pop_next", 5, 1, "wait for a token from the next queue"),
    Field("push_prev", 6, 1, "send a token to the previous queue on completion"),
    Field("push_next", 7, 1, "send a token to the next queue on completion"),
)
HEADER_BITS = 8


def _layout(*spec: tuple) -> tuple[Field, ...]:
    """Place (name, width, doc[, enum|signed]) fields one after another above the header."""
    out, lo = list(HEADER), HEADER_BITS
    for name, width, doc, *extra in spec:
        enum = extra[0] if extra and isinstance(extra[0], tuple) else None
        signed = bool(extra and extra[0] is True)
        out.append(Field(name, lo, width, doc, enum=enum, signed=signed))
        lo += width
    return tuple(out)


_DMA = (
    ("mem", 3, "scratchpad", MEMS),
    ("fill", 1, ("LOAD only: 1 writes fill_byte to every scratchpad byte instead of reading "
                 "DRAM (padding borders; no DRAM traffic)")),
    ("fill_byte", 8, "the byte a fill writes (a code's packed bit pattern)"),
    ("dram_addr", 36, "DRAM byte address of the first row"),
    ("dram_stride", 24, "bytes between rows in DRAM"),
    ("sram_addr", 24, "scratchpad byte address of the first row"),
    ("sram_stride", 24, "bytes between rows in the scratchpad"),
    ("rows", 16, "rows per plane"),
    ("row_bytes", 20, "bytes per row"),
    ("planes", 16, "planes of rows (>= 1)"),
    ("dram_plane_stride", 32, "bytes between planes in DRAM"),
    ("sram_plane_stride", 24, "bytes between planes in the scratchpad"),
)
# GATHER / SCATTER: DMA rows of a DRAM table by int32 indices read from DRAM
_INDEXED = (
    ("mem", 3, "scratchpad", MEMS),
    ("idx_addr", 36, "DRAM byte address of the int32 indices"),
    ("count", 16, "rows to move"),
    ("table_addr", 36, "DRAM byte address of table row 0"),
    ("table_stride", 24, "bytes between table rows"),
    ("vocab", 24, "rows in the table"),
    ("row_bytes", 20, "bytes per row"),
    ("sram_addr", 24, "scratchpad byte address of the first row"),
    ("sram_stride", 24, "bytes between rows in the scratchpad"),
)
_DMA_DOC = ("3-D strided copy: planes x rows x row_bytes; byte j of row r of plane p is at "
            "addr + p*plane_stride + r*stride + j on each side. A copy of 0 rows, planes or "
            "bytes does nothing.")

OPCODES: tuple[Opcode, ...] = (
    Opcode("LOAD", 1, "load", "DRAM -> scratchpad. " + _DMA_DOC, _layout(*_DMA)),
    Opcode("STORE", 2, "store", "scratchpad -> DRAM (fill must be 0). " + _DMA_DOC,
           _layout(*_DMA)),
    Opcode(
        "GEMM", 3, "compute",
        "One fold on the array: acc[t, n] (+)= sum_k inp[t, k] * wgt[k, n] for T = lines x rows "
        "streamed vectors t = l*rows + r (T <= array.gemm_max_rows), k <= array rows, n <= array "
        "cols. Vector (l, r) is the k codes at inp_addr + l*inp_line_stride + r*inp_stride (so "
        "a conv streams output pixels straight out of an input band: on-chip im2col). "
        "wgt: k rows of n "
        "weight codes packed at wbits bits (row = ceil(n*wbits/8) bytes, little-endian bit "
        "order); with lut = 0 a code is the signed weight, with lut = 1 it indexes a table of "
        "2^wbits 32-bit little-endian entries at param lut_addr, each the fixed-point weight "
        "sig << sh: bits 31..8 the signed significand sig, bits 7..0 the unsigned shift sh "
        "(<= 31; 0 whenever the weight fits 24 bits), so FP8 E5M2's 33-bit levels fit too (how "
        "FP, NF4 and codebook formats reach the integer array). acc: dense tile of T x n "
        "accumulators at word acc_addr (vector t at word acc_addr + t*n), each acc_bits wide "
        "(wrapping), one arch.acc_word_bytes word of the accumulator scratchpad. "
        "Block-scaled formats (MX, per-group INT, NF4): with bscale != none an n-byte row of "
        "unsigned per-column block scales s sits at wgt_addr and the k weight rows follow at "
        "wgt_addr + n; the fold's partial sums enter the accumulator as partial << s[n] "
        "(shift: MX power-of-two scales) or partial * s[n] (mul: 8-bit group scales), wrapped "
        "to acc_bits (a shift of acc_bits or more gives 0). mulzp (asymmetric INT groups): as "
        "mul, with a second n-byte row of signed per-column zero points z after the scales and "
        "the weights at wgt_addr + 2n; the array multiplies code - z[n] (subtracted as the "
        "weights load). A fold never spans two blocks. "
        "afmt: how input codes are stored (intB: B-bit codes packed, a vector of k codes is "
        "ceil(k*B/8) bytes; fp8_*: one FP8 code per byte, multiplied as its fixed-point "
        "level, value / the format's smallest subnormal: x 2^9 for E4M3, x 2^6 for E3M4).",
        _layout(
            ("inp_addr", 24, "input scratchpad byte address of vector (0, 0)"),
            ("inp_stride", 20, "bytes between vectors of a line"),
            ("lines", 12, "lines of vectors (>= 1)"),
            ("inp_line_stride", 24, "bytes between lines"),
            ("rows", 16, "vectors per line"),
            ("wgt_addr", 24, "weight scratchpad byte address"),
            ("acc_addr", 20, "accumulator scratchpad word address"),
            ("k", 9, "reduction length of this fold"),
            ("n", 9, "output columns of this fold"),
            ("accumulate", 1, "1: add to acc; 0: overwrite"),
            ("wbits", 4, "weight code bits (2..8)"),
            ("lut", 1, "1: decode codes through the table at lut_addr"),
            ("lut_addr", 24, "param scratchpad byte address of the decode table"),
            ("bscale", 2, "block scale of this fold's partial sums", BSCALE_MODES),
            ("afmt", FMT_BITS, "encoding of the input codes", ACT_ENCODINGS),
            ("wtrans", 1, ("1: the weight tile is stored transposed, n rows of k codes (row = "
                           "ceil(k*wbits/8) bytes); the array loads it through a transposer "
                           "(Gemmini's b_transpose): K^T of attention scores")),
        ),
    ),
    Opcode(
        "POST", 4, "compute",
        "Post-process an accumulator tile into codes: out = clamp(requant(acc + bias[n], "
        "mult[n], shift[n]) + out_zp, lo, hi). Per channel at param_addr + 16*n: bias (int64: "
        "FP8 x FP8 accumulators have 36 fraction bits), mult and shift (int32). "
        "ofmt = fp8_*: the exact (acc + bias[n]) * M, in units of the output's FP8 level "
        "(value x 2^9 for E4M3, x 2^6 for E3M4), clamped to the levels of the FP8 codes lo and "
        "hi, rounded once to the nearest FP8 code (ties to even, saturating): requant keeps a "
        "guard and a sticky bit (qasic.quant.fixedpoint.requantize_fine); out_zp is 0. "
        "lut = 1: the code c is then replaced by the byte at param lut_addr + (c mod 2^B) (B the "
        "code bits of ofmt): a fused function of one activation (qasic.quant.reference lut). "
        "ofmt = int16 (a residual stream or a model's output kept wide) has no table (lut = 0).",
        _layout(
            ("acc_addr", 20, "accumulator word address of a dense rows x n tile"),
            ("param_addr", 24, "param scratchpad byte address"),
            ("out_addr", 24, "output scratchpad byte address"),
            ("out_stride", 20, "bytes between output rows"),
            ("rows", 16, "rows of the tile"),
            ("n", 12, "channels of the tile"),
            ("out_zp", 16, "output zero point (16 bits: int16 codes)", True),
            ("lo", 16, "clamp low (ReLU: the zero point; FP8: a code in the low byte)", True),
            ("hi", 16, "clamp high (FP8: a code in the low byte)", True),
            ("ofmt", FMT_BITS, "encoding of the output codes (packed like afmt)", ACT_ENCODINGS),
            ("lut", 1, "1: map each output code through the byte table at lut_addr"),
            ("lut_addr", 24, "param scratchpad byte address of the 2^B-byte table"),
        ),
    ),
    Opcode(
        "POOL", 5, "compute",
        "Pooling in the output scratchpad: an h x w source of c channels (pixel (y, x) at "
        "src_addr + (y*w + x)*src_pix_stride, channels packed at fmt) -> oh x ow results, "
        "oh = (h-kh)//sh + 1, ow = (w-kw)//sw + 1, result p at dst_addr + p*dst_pix_stride. "
        "Padding is already in the source (the compiler fills borders). max: the largest code "
        "of each kh x kw window by value (FP8 by value), then max with lo. avg: s = sum of "
        "v(x) over the window (v = x - zi, or an FP8 code's level), y = clamp(requant(s, q, "
        "shift) + zo, lo, hi) with 6 int32 at param_addr: zi, zo, q, shift, lo, hi (FP8: "
        "encoded like POST).",
        _layout(
            ("src_addr", 24, "output scratchpad byte address of the source"),
            ("dst_addr", 24, "output scratchpad byte address of the result"),
            ("h", 12, "source height"),
            ("w", 12, "source width"),
            ("c", 12, "channels"),
            ("src_pix_stride", 20, "bytes between source pixels"),
            ("dst_pix_stride", 20, "bytes between result pixels"),
            ("kh", 8, "window height"),
            ("kw", 8, "window width"),
            ("sh", 8, "vertical stride"),
            ("sw", 8, "horizontal stride"),
            ("mode", 1, "max or average", POOL_MODES),
            ("lo", 8, "max: floor applied to every result", True),
            ("fmt", FMT_BITS, "encoding of the codes (strides in bytes)", ACT_ENCODINGS),
            ("param_addr", 24, "avg: param scratchpad byte address of its 6 words"),
        ),
    ),
    Opcode(
        "ADD", 6, "compute",
        "Elementwise op of two code vectors in the output scratchpad (reference.add / "
        "reference.mul semantics); params: 11 int32 at param_addr: za, zb, zo, qa, sa, qb, sb, "
        "qo, so, lo, hi. add: y = clamp(requant(requant(v(a) << 20, qa, sa) + requant(v(b) << "
        "20, qb, sb), qo, so) + zo, lo, hi); mul: y = clamp(requant(v(a) * v(b), qo, so) + zo, "
        "lo, hi) (qa..sb unused). v(x) = x - z for INT codes (a at fmt, b at bfmt, each its own "
        "width), an FP8 code's level for FP8; the result is written at ofmt (an INT result "
        "clamped to lo, hi: int16 holds a residual sum; an FP8 one encoded like POST, from the "
        "last requant's exact value). bcast = 0: b holds count codes; "
        "bcast = c > 0: b holds c codes and element i uses b[i mod c] (a per-channel vector "
        "broadcast over H, W).",
        _layout(
            ("a_addr", 24, "first operand byte address"),
            ("b_addr", 24, "second operand byte address"),
            ("dst_addr", 24, "result byte address"),
            ("count", 24, "elements"),
            ("bcast", 16, "0, or the length of b repeated along a"),
            ("op", 1, "add or multiply", EW_OPS),
            ("param_addr", 24, "param scratchpad byte address"),
            ("fmt", FMT_BITS, "encoding of a (count codes, packed)", ACT_ENCODINGS),
            ("bfmt", FMT_BITS, "encoding of b", ACT_ENCODINGS),
            ("ofmt", FMT_BITS, "encoding of the result", ACT_ENCODINGS),
        ),
    ),
    Opcode(
        "LUT", 9, "compute",
        "Table lookup in the output scratchpad: count codes at src_addr (packed at fmt) -> "
        "count codes at dst_addr (packed at ofmt), y = byte at param table_addr + (x mod 2^B), "
        "B the code bits of fmt. Any function of one B-bit activation (Hardswish, SiLU, GELU, "
        "a change of scale) is exactly such a table.",
        _layout(
            ("src_addr", 24, "source byte address"),
            ("dst_addr", 24, "result byte address"),
            ("count", 24, "elements"),
            ("table_addr", 24, "param scratchpad byte address of the 2^B-byte table"),
            ("fmt", FMT_BITS, "encoding of the source codes", ACT_ENCODINGS),
            ("ofmt", FMT_BITS, "encoding of the result codes", ACT_ENCODINGS),
        ),
    ),
    Opcode(
        "GATHER", 10, "load",
        "DRAM -> scratchpad by index (embedding lookups): for i < count, idx = the int32 "
        "little-endian word at DRAM idx_addr + 4i; row idx of a table (row_bytes bytes at "
        "table_addr + idx*table_stride) is copied to sram_addr + i*sram_stride. An index "
        "outside [0, vocab) stops the machine with an error (never a wild read).",
        _layout(*_INDEXED),
    ),
    Opcode(
        "SCATTER", 13, "store",
        "Scratchpad -> DRAM by index (a KV-cache append at a runtime position): for i < count, "
        "idx = the int32 little-endian word at DRAM idx_addr + 4i; row i (row_bytes bytes at "
        "sram_addr + i*sram_stride) is copied to table row idx (table_addr + idx*table_stride), "
        "in order (a repeated index: the last row wins). An index outside [0, vocab) stops the "
        "machine with an error (never a wild write).",
        _layout(*_INDEXED),
    ),
    Opcode(
        "SOFTMAX", 11, "compute",
        "Row softmax in the output scratchpad (qasic.quant.intops.softmax_rows): row r "
        "(r < rows) holds len INT codes at src_addr + r*src_stride (packed at fmt); key j "
        "takes part unless causal and j > q_pos + r, or masked and the byte at mask_addr + "
        "r*mask_stride + j is 0 (mask_stride = 0: one mask for every row, a key mask; = len: "
        "a mask row per row, a constant pattern such as a sliding window). With sunk, a sink key "
        "of code sink joins each row's max and sum (no result). e = table[max - x] "
        "(2^B int32 entries at param table_addr, B the code bits of fmt), R = floor(2^32 / "
        "sum e) (one divide per row), y = (e*R*qmax + 2^31) >> 32 with qmax = 2^(Bo-1) - 1 "
        "(Bo = qbits, or the code bits of ofmt when qbits = 0), written at dst_addr + "
        "r*dst_stride.",
        _layout(
            ("src_addr", 24, "output scratchpad byte address of row 0"),
            ("src_stride", 20, "bytes between source rows"),
            ("dst_addr", 24, "output scratchpad byte address of result row 0"),
            ("dst_stride", 20, "bytes between result rows"),
            ("rows", 16, "rows"),
            ("len", 16, "codes per row (keys)"),
            ("table_addr", 24, "param scratchpad byte address of the exp table"),
            ("causal", 1, "1: mask keys after each row's position"),
            ("q_pos", 16, ("causal: position of row 0 (key j is visible to row r iff "
                          "j <= q_pos + r)")),
            ("masked", 1, "1: also mask keys whose mask byte is 0"),
            ("mask_addr", 24, "output scratchpad byte address of row 0's len mask bytes"),
            ("fmt", FMT_BITS, "encoding of the source codes (INT)", ACT_ENCODINGS),
            ("ofmt", FMT_BITS, "encoding of the result codes (INT)", ACT_ENCODINGS),
            # last, in bits that were reserved: a version-8 file without it decodes unchanged
            ("mask_stride", 20, "bytes between the mask rows of successive rows (0: one mask)"),
            # then, also in bits that were reserved: a file without them decodes unchanged
            ("sunk", 1, ("1: every row has one more key of code sink, which takes part in the "
                         "max and the sum and has no result (an attention sink, GPT-OSS)")),
            ("sink", 16, "the sink's INT code (sunk = 1)", True),
            # then, also in bits that were reserved: a file without it decodes unchanged
            ("qbits", 4, ("the result codes' bits when narrower than ofmt's (a 2..7-bit tensor "
                          "stored a byte per code: its rows do not pack into whole bytes); "
                          "0: ofmt's")),
        ),
    ),
    Opcode(
        "NORM", 12, "compute",
        "Row normalization (LayerNorm with center = 1, RMSNorm with 0; "
        "qasic.quant.intops.norm_rows): row r (r < rows) holds len INT codes at input "
        "scratchpad src_addr + r*src_stride (packed at fmt); v = x - zp; the normalized "
        "fixed-point values t (|t| <= 2^20) go to accumulator words in chunks of chunk "
        "channels: channel i of row r at word acc_addr + (i // chunk)*rows*chunk + r*chunk + "
        "(i mod chunk), so each chunk is a dense rows x chunk tile for POST (the per-channel "
        "gamma, beta and output requantization). eps: the int64 at param eps_addr. One integer "
        "square root and one divide per row.",
        _layout(
            ("src_addr", 24, "input scratchpad byte address of row 0"),
            ("src_stride", 20, "bytes between rows"),
            ("rows", 16, "rows"),
            ("len", 13, "channels per row (<= 4096)"),
            ("chunk", 12, "channels per accumulator tile (POST's n)"),
            ("acc_addr", 20, "accumulator scratchpad word address"),
            ("center", 1, "1: subtract the mean (LayerNorm); 0: RMSNorm"),
            ("zp", 16, "input zero point (16 bits: int16 codes)", True),
            ("eps_addr", 24, "param scratchpad byte address of the int64 epsilon"),
            ("fmt", FMT_BITS, "encoding of the source codes (INT)", ACT_ENCODINGS),
        ),
    ),
    Opcode("SYNC", 7, "compute", "No operation; carries tokens between kernels.", _layout()),
    Opcode("END", 8, "compute", "Last instruction: the program ends when every queue drains.",
           _layout()),
)

# Parameter blocks in the param scratchpad, as the POST and ADD rows above describe them.
POST_PARAMS = (("bias", 8), ("multiplier", 4), ("shift", 4))  # (name, bytes) per channel
POST_PARAM_BYTES_PER_CHANNEL = sum(b for _, b in POST_PARAMS)
POST_PARAM_DTYPE = [(name, f"<i{b}") for name, b in POST_PARAMS]  # numpy record, little-endian
ADD_PARAM_WORDS = ("za", "zb", "zo", "qa", "sa", "qb", "sb", "qo", "so", "lo", "hi")
ADD_PARAM_BYTES = 4 * len(ADD_PARAM_WORDS)
POOL_PARAM_WORDS = ("zi", "zo", "q", "shift", "lo", "hi")  # avg mode
POOL_PARAM_BYTES = 4 * len(POOL_PARAM_WORDS)
LUT_TABLE_ENTRY_BYTES = 1  # POST lut / LUT: one output code byte per input code

# A GEMM decode-table entry (one per code): a 32-bit word holding the level sig << sh, with the
# shift in the low LUT_SHIFT_BITS bits and the signed significand above (qasic.isa.lut encodes
# and decodes it). Shifts stop at LUT_MAX_SHIFT (the widest shift-add PE's, qasic.arch.pe): a
# level is below 2**54, an int64 everywhere it is decoded.
LUT_ENTRY_BYTES = 4
LUT_SHIFT_BITS = 8
LUT_SIG_BITS = 8 * LUT_ENTRY_BYTES - LUT_SHIFT_BITS
LUT_MAX_SHIFT = 31

BY_NAME = {op.name: op for op in OPCODES}
BY_CODE = {op.code: op for op in OPCODES}


def check_table(opcodes: tuple[Opcode, ...] = OPCODES) -> None:
    """Raise ValueError if opcodes repeat, fields overlap or a field leaves the word."""
    codes = [op.code for op in opcodes]
    if len(set(codes)) != len(codes) or len({op.name for op in opcodes}) != len(codes):
        raise ValueError("ISA table: opcode numbers and names must be unique")
    for op in opcodes:
        if not 0 < op.code < (1 << HEADER[0].width):
            raise ValueError(f"ISA table: {op.name} code {op.code} does not fit the opcode field")
        if op.queue not in QUEUES:
            raise ValueError(f"ISA table: {op.name} queue {op.queue!r} not in {QUEUES}")
        used = 0
        for f in op.fields:
            mask = ((1 << f.width) - 1) << f.lo
            if f.width <= 0 or f.hi >= WORD_BITS:
                raise ValueError(f"ISA table: {op.name}.{f.name} leaves the {WORD_BITS}-bit word")
            if used & mask:
                raise ValueError(f"ISA table: {op.name}.{f.name} overlaps another field")
            used |= mask


check_table()

"""Transformer ops compiled and simulated bit for bit against the golden reference: linear
layers on sequences, the matmul of two activations (dynamic weights, B^T by wtrans), softmax
(causal, masked), LayerNorm and RMSNorm, embeddings (GATHER), permutes (strided DMA copies; head
splits and merges as views: test_transformer_views.py), and a whole pre-LN attention block with
a GELU MLP, on the default arch, an 8x8 arch and gemmini_like; plus what the kernels emit and
the refusals."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from qasic.arch.config import default_arch, load_arch
from qasic.compiler import compile_graph
from qasic.compiler.moves import canonical
from qasic.errors import ConfigError, UnsupportedOpError
from qasic.quant import reference
from qasic.quant.graph import TensorQ
from qasic.sim import simulate
from tests.archs import small_arch
from tests.compiler.checks import hazards, token_fifos
from tests.compiler.transformers import Builder, attention_block, code_range, sym

ARCHS = {
    "default": default_arch(),
    "8x8": small_arch(array_rows=8, array_cols=8, gemm_max_rows=16, input_sram_bytes=2048,
                      weight_sram_bytes=2048, acc_sram_bytes=2048, output_sram_bytes=1024,
                      param_sram_bytes=1024),
    "gemmini_like": load_arch("gemmini_like"),
}


def codes_for(graph, batch: int, seed: int) -> np.ndarray:
    """Random inputs: token ids below every table's vocabulary, or codes over the range."""
    rng = np.random.default_rng(seed)
    tq = graph.tensors[graph.input]
    if tq.bits == 32:
        vocab = min(len(n.params["table"]) for n in graph.nodes
                    if n.op == "embedding" and n.inputs == (graph.input,))
        return rng.integers(0, vocab, (batch, *graph.input_shape))
    return rng.integers(*code_range(tq), (batch, *graph.input_shape))


def check(graph, arch, batch: int = 3, seed: int = 7):
    """Compile, simulate ``batch`` random inputs, compare codes with the golden reference.
    Returns (program, simulation result)."""
    p = compile_graph(graph, arch)
    codes = codes_for(graph, batch, seed)
    r = simulate(p, arch, codes=codes)
    ref = reference.run(graph, codes)
    assert np.array_equal(r.outputs, ref)
    assert len(np.unique(ref)) > 2  # not a saturated, constant output
    return p, r


def layer(p, name: str) -> dict:
    return next(info for info in p.layers if info["name"] == name)


def ops_of(p, name: str) -> Counter:
    k = next(i for i, info in enumerate(p.layers) if info["name"] == name)
    return Counter(ins.op for ins, lid in zip(p.instrs, p.layer_ids, strict=True) if lid == k)


# ---- linear on a sequence --------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_linear_on_a_sequence_is_a_1x1_conv_over_its_tokens(arch):
    b = Builder("seq_linear")
    x = b.codes("x", (12, 20), TensorQ(0.05, 7))
    h = b.linear("fc1", x, 36, TensorQ(0.07, -30), gelu=TensorQ(0.05, -100))
    y = b.linear("fc2", h, 20, TensorQ(0.06, 2), wbits=4)
    p, _ = check(b.graph(y), ARCHS[arch])
    fc1 = layer(p, "fc1")
    assert (fc1["kind"], fc1["ops"], fc1["m"], fc1["k"], fc1["n"]) == \
        ("gemm", ["linear", "lut"], 12, 20, 36)


# ---- matmul of two activations ---------------------------------------------------------------

def matmul_graph(transpose_b: bool, bits: int = 8, b_bits: int | None = None, heads: int = 3,
                 s: int = 20):
    """x (H, S, S) codes; b = linear(x): (H, S, S) used as B^T, or (H, S, 18) used as B."""
    g = Builder(f"matmul_t{int(transpose_b)}_{bits}")
    x = g.codes("x", (heads, s, s), sym(0.05, bits))
    w = g.linear("b", x, s if transpose_b else 18, sym(0.06, b_bits or bits))
    y = g.matmul("mm", x, w, TensorQ(0.1, 3), transpose_b=transpose_b)
    return g.graph(y)


@pytest.mark.parametrize("arch", ["default", "8x8"])
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_of_two_activations_is_bit_exact(transpose_b, bits, arch):
    """Three heads, K = 20 > array rows and N = 18 or 20 > array cols on both arches."""
    p, r = check(matmul_graph(transpose_b, bits), ARCHS[arch])
    mm = layer(p, "mm")
    assert (mm["kind"], mm["heads"], mm["m"], mm["k"]) == ("matmul", 3, 60, 20)
    gemms = [ins for ins, lid in zip(p.instrs, p.layer_ids, strict=True)
             if ins.op == "GEMM" and p.layers[lid]["name"] == "mm"]
    assert {ins["wtrans"] for ins in gemms} == {int(transpose_b)}
    assert {ins["wbits"] for ins in gemms} == {bits}
    sim = next(la for la in r.layers if la["name"] == "mm")
    assert sim["dram_bytes"] == mm["mapped_dram_bytes"]  # the mapper's model is exact


def test_matmul_of_int8_by_int4_codes():
    check(matmul_graph(True, bits=8, b_bits=4), ARCHS["8x8"])


# FP8 operands: shift-add PEs take FP8 levels on both sides (as qasic --fit-arch chooses):
# E4M3 5-bit significands shifted 0..15, E3M4 6-bit ones shifted 0..7
FP8_ARCHS = {"fp8_e4m3": dataclasses.replace(default_arch(), input_bits=5, input_shift_bits=4,
                                             weight_bits=5, weight_shift_bits=4, acc_bits=48),
             "fp8_e3m4": dataclasses.replace(default_arch(), input_bits=6, input_shift_bits=3,
                                             weight_bits=6, weight_shift_bits=3, acc_bits=48)}


@pytest.mark.parametrize("fmt", list(FP8_ARCHS))
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_of_fp8_activations_decodes_b_through_the_levels_table(transpose_b, fmt):
    g = Builder("fp8_matmul")
    fp8 = TensorQ(0.05, 0, 8, fmt)
    x = g.codes("x", (2, 20, 20), fp8)
    w = g.linear("b", x, 20 if transpose_b else 18, TensorQ(0.06, 0, 8, fmt), wbits=4)
    p, _ = check(g.graph(g.matmul("mm", x, w, TensorQ(0.1, 0, 8, fmt), transpose_b)),
                 FP8_ARCHS[fmt])
    gemms = [ins for ins, lid in zip(p.instrs, p.layer_ids, strict=True)
             if ins.op == "GEMM" and p.layers[lid]["name"] == "mm"]
    assert {(ins["lut"], ins["afmt"]) for ins in gemms} == {(1, fmt)}


def test_a_head_sized_b_loads_once_per_head_when_it_fits():
    p, _ = check(matmul_graph(True), ARCHS["default"])
    mm = layer(p, "mm")
    assert mm["mapped_dram_bytes"] == mm["compulsory_dram_bytes"]


# ---- softmax ---------------------------------------------------------------------------------

def softmax_graph(shape=(3, 6, 10), causal=True, bits=8, out_bits=8):
    b = Builder("softmax")
    x = b.codes("x", shape, TensorQ(0.08, -9 if bits == 8 else -3, bits))
    return b.graph(b.softmax("sm", x, causal=causal, bits=out_bits))


# one row of 10 keys (10 + 10 bytes) per 32-byte half: every row a step of its own
TINY_OUTPUT = small_arch(output_sram_bytes=64, param_sram_bytes=1024)


@pytest.mark.parametrize("arch", ["default", "8x8", "tiny-output"])
@pytest.mark.parametrize("causal", [True, False])
def test_softmax_is_bit_exact_causal_or_not(causal, arch):
    target = TINY_OUTPUT if arch == "tiny-output" else ARCHS[arch]
    p, _ = check(softmax_graph(causal=causal), target)
    ops = ops_of(p, "sm")
    if arch == "tiny-output":
        assert ops["SOFTMAX"] == 18  # 3 heads x 6 queries, one row per step
        q_pos = [ins["q_pos"] for ins in p.instrs if ins.op == "SOFTMAX"]
        assert q_pos == (list(range(4, 10)) * 3 if causal else [0] * 18)  # T - S + query
    elif arch == "default":
        assert ops["SOFTMAX"] == (3 if causal else 1)  # a causal step stays in one head


@pytest.mark.parametrize("graph", ["causal", "window"])
def test_uneven_steps_inside_a_head_keep_their_results_apart(graph):
    """64 and 70 queries in steps of 21 (pattern rows) or 29 (causal) rows: a head's last step
    is shorter, so the next step in its half must not load where the short step's results are
    still being stored (results and pattern rows sit at fixed offsets of the half)."""
    g = softmax_graph((4, 70, 70), causal=True) if graph == "causal" \
        else pattern_graph(window(64, 64, 8), (4, 64, 64))
    p, _ = check(g, ARCHS["default"], batch=2)
    rows = [ins["rows"] for ins in p.instrs if ins.op == "SOFTMAX"]
    assert rows == ([29, 29, 12] * 4 if graph == "causal" else [21, 21, 21, 1] * 4)


def test_a_window_costs_one_softmax_a_step_and_few_cycles_more_than_causal():
    """(4, 64, 64), an 8-key window: one SOFTMAX per step, row r masked by its own pattern row
    (mask_stride = 64). Steps of 21 rows (the pattern rows share the half) against causal's 32:
    16 SOFTMAX, 13,814 cycles against causal's 8 and 12,714 (one per pattern row: 256 and
    18,854)."""
    arch = ARCHS["default"]
    p, r = check(pattern_graph(window(64, 64, 8), (4, 64, 64)), arch, batch=2)
    pc, rc = check(softmax_graph((4, 64, 64), causal=True), arch, batch=2)
    sm = [ins for ins in p.instrs if ins.op == "SOFTMAX"]
    assert len(sm) == 16 and all(ins["masked"] and ins["mask_stride"] == 64 for ins in sm[:3])
    assert sum(ins.op == "SOFTMAX" for ins in pc.instrs) == 8
    assert (r.cycles, rc.cycles) == (13814, 12714)


def test_softmax_of_int4_scores_to_int4_probabilities():
    check(softmax_graph(causal=True, bits=4, out_bits=4), ARCHS["8x8"])


@pytest.mark.parametrize("bits,keys", [(6, 17), (4, 9), (5, 9), (6, 16)])
def test_narrow_probabilities_in_a_byte_per_code_take_their_own_range(bits, keys):
    """Rows of 17 6-bit (9 4-bit, 9 5-bit) codes do not pack into whole bytes, so the tensor
    is stored a byte per code (compiler.memory.storage_bits); SOFTMAX's qbits scales the
    results to the tensor's own range (2^(bits-1) - 1), not int8's (a ViT's 17 tokens at
    A6 scored 0.92 cosine, every probability 4x too large, before qbits). 16 6-bit keys pack
    (qbits 0)."""
    p, _ = check(softmax_graph((2, 5, keys), causal=False, bits=bits, out_bits=bits),
                 ARCHS["default"])
    sm = [ins for ins in p.instrs if ins.op == "SOFTMAX"]
    packs = keys * bits % 8 == 0
    assert {ins["ofmt"] for ins in sm} == {f"int{bits}" if packs else "int8"}
    assert {ins["qbits"] for ins in sm} == {0 if packs else bits}


def window(s: int, t: int, width: int) -> np.ndarray:
    """(1, S, T): query i (at position T - S + i) sees the ``width`` keys up to itself."""
    pos = np.arange(t - s, t)[:, None]
    return ((np.arange(t) <= pos) & (np.arange(t) > pos - width))[None].astype(np.uint8)


def pattern_graph(valid: np.ndarray, shape=(3, 6, 10)):
    b = Builder("pattern_softmax")
    x = b.codes("x", shape, TensorQ(0.08, -9))
    return b.graph(b.softmax("sm", x, valid=valid))


BLOCKS = np.kron(np.eye(2), np.ones((3, 5)))[None].astype(np.uint8)  # 2 blocks of 3x5
# per head: a sliding window of 3 (6 distinct rows), the first 7 keys for every query (one
# run), the two blocks (two runs)
PER_HEAD = np.concatenate([window(6, 10, 3), np.ones((1, 6, 10)) * (np.arange(10) < 7),
                           BLOCKS]).astype(np.uint8)


@pytest.mark.parametrize("arch", ["default", "8x8", "tiny-output"])
@pytest.mark.parametrize("valid", ["window", "per_head", "blocks"])
def test_softmax_with_a_constant_pattern_is_bit_exact(valid, arch):
    """A constant pattern (qasic.quant.masks) is a DRAM constant loaded a step's rows at a
    time; one SOFTMAX per step, row r masked by pattern row r (mask_stride = T), or by the
    step's one row when its rows are all equal (mask_stride = 0)."""
    target = small_arch(output_sram_bytes=96, param_sram_bytes=1024) \
        if arch == "tiny-output" else ARCHS[arch]
    v = {"window": window(6, 10, 3), "per_head": PER_HEAD, "blocks": BLOCKS}[valid]
    p, r = check(pattern_graph(v), target)
    assert not r.outputs[:, np.broadcast_to(v, (3, 6, 10)) == 0].any()  # masked keys: 0
    ops = ops_of(p, "sm")
    masks = [ins["masked"] for ins in p.instrs if ins.op == "SOFTMAX"]
    assert all(masks) and sum(ins["rows"] for ins in p.instrs if ins.op == "SOFTMAX") == 18
    if arch == "default":  # every head one step, one SOFTMAX a step
        assert ops["SOFTMAX"] == 3
        strides = [ins["mask_stride"] for ins in p.instrs if ins.op == "SOFTMAX"]
        # per head: the window, the first 7 keys for every query (one row), the blocks
        assert strides == {"window": [10] * 3, "per_head": [10, 0, 10],
                           "blocks": [10] * 3}[valid]
    assert layer(p, "sm")["compulsory_dram_bytes"] == 2 * 180 + 1024 + v.size  # x, y, exp


def test_a_pattern_and_a_key_mask_together_are_refused():
    g = masked_softmax_graph()
    sm = g.node("sm")
    g = dataclasses.replace(g, nodes=tuple(dataclasses.replace(
        n, params={**n.params, "valid": window(12, 12, 4)}) if n.name == "sm" else n
        for n in g.nodes))
    with pytest.raises(UnsupportedOpError, match="softmax sm: a key mask and a constant "
                                                 "pattern"):
        compile_graph(g, ARCHS["default"])
    assert sm.inputs[1] == "mask"


def masked_softmax_graph(s=12, heads=2, vocab=30, causal=False):
    """Scores gathered from a table by the ids, split into heads; the key mask gathered from a
    1-D table (every 5th id is padding)."""
    b = Builder("masked_softmax")
    ids = b.ids("ids", s, vocab)
    rows = b.embedding("rows", ids, b.random_table(vocab, heads * s, TensorQ(0.1, 4)),
                       TensorQ(0.1, 4))
    scores = b.heads("scores", b.reshape("flat", rows, (s, heads * s)), heads)
    mask = b.embedding("mask", ids, (np.arange(vocab) % 5 != 0).astype(np.int64),
                       TensorQ(1.0, 0))
    return b.graph(b.softmax("sm", scores, causal=causal, mask=mask))


@pytest.mark.parametrize("arch", ["default", "8x8", "tiny-output"])
@pytest.mark.parametrize("causal", [False, True])
def test_masked_softmax_is_bit_exact(causal, arch):
    target = small_arch(output_sram_bytes=128, param_sram_bytes=1024) \
        if arch == "tiny-output" else ARCHS[arch]
    p, _ = check(masked_softmax_graph(causal=causal), target, batch=4)
    assert ops_of(p, "mask")["GATHER"] >= 1
    # the softmax reads the split heads as a strided view of the gathered rows: no copy
    assert [info["kind"] for info in p.layers] == ["gather", "gather", "softmax"]


# ---- LayerNorm / RMSNorm ---------------------------------------------------------------------

def norm_graph(center: bool, d: int = 40, s: int = 9, out_bits: int = 8):
    b = Builder("norm")
    x = b.codes("x", (s, d), TensorQ(0.05, 11))
    return b.graph(b.norm("ln", x, TensorQ(0.04, -3, out_bits), center=center))


@pytest.mark.parametrize("arch", ["default", "8x8", "small-params"])
@pytest.mark.parametrize("center", [True, False])
def test_norm_is_bit_exact(center, arch):
    """D = 40 > array cols (chunks of 10, 8 or 4); a 256-byte param scratchpad holds 7 channels a
    half, so the parameters come in groups of 4 on a 4x4 arch, reloaded per row tile."""
    target = small_arch(param_sram_bytes=256) if arch == "small-params" else ARCHS[arch]
    graph = norm_graph(center)
    assert (graph.node("ln").params["multiplier"] < 0).any()  # negative gammas
    p, _ = check(graph, target)
    ops = ops_of(p, "ln")
    chunk = {"default": 10, "8x8": 8, "small-params": 4}[arch]
    assert ops["POST"] == 40 // chunk * ops["NORM"]
    if arch == "small-params":  # every step reloads a group of parameters
        assert ops["LOAD"] == 9 * 10 + ops["NORM"]


def test_norm_to_int4_codes():
    check(norm_graph(True, out_bits=4), ARCHS["8x8"])


# ---- embeddings and permutes -----------------------------------------------------------------

@pytest.mark.parametrize("arch", ["default", "8x8", "tiny-output"])
def test_embeddings_gather_rows_by_token_id(arch):
    """Token rows of packed INT4 codes, position rows by constant ids, added, then a linear."""
    target = small_arch(output_sram_bytes=64) if arch == "tiny-output" else ARCHS[arch]
    b = Builder("embed")
    ids = b.ids("ids", 11, 40)
    int4 = TensorQ(0.1, 0, 4)
    tok = b.embedding("tok", ids, b.random_table(40, 12, int4), int4)
    pos = b.embedding("pos", b.constant("pos_ids", np.arange(11), TensorQ(1.0, 0, 32)),
                      b.random_table(11, 12, int4), int4)
    both = b.add("sum", tok, pos, TensorQ(0.15, 0, 4))
    p, _ = check(b.graph(b.linear("fc", both, 10, TensorQ(0.1, 0))), target)
    assert [info["kind"] for info in p.layers] == ["gather", "gather", "ew", "gemm"]
    for name in ("tok", "pos"):
        assert ops_of(p, name)["GATHER"] == (1 if arch != "tiny-output" else 3)  # 5 rows a half
        assert layer(p, name)["compulsory_dram_bytes"] == 11 * 4 + 2 * 11 * 6


def test_a_constant_added_to_a_sequence_reads_the_constants_region():
    """A ViT-style learned position embedding: a constant (S, D) added to the tokens."""
    b = Builder("const_add")
    x = b.codes("x", (6, 10), TensorQ(0.05, 2))
    pe = b.constant("pe", b.rng.integers(-128, 128, (6, 10)), TensorQ(0.04, -3))
    y = b.add("y", x, b.reshape("pe2", pe, (6, 10)), TensorQ(0.08, 0))
    p, _ = check(b.graph(y), ARCHS["8x8"])
    assert [info["kind"] for info in p.layers] == ["ew"]
    const = next(r for r in p.regions if r.kind == "constants")
    loads = [ins for ins in p.instrs if ins.op == "LOAD" and ins["mem"] == "output"]
    assert any(const.addr <= ins["dram_addr"] < const.addr + const.size for ins in loads)


@pytest.mark.parametrize("arch", ["default", "tiny-output"])
def test_mask_table_gathers_one_byte_per_id(arch):
    target = small_arch(output_sram_bytes=8) if arch == "tiny-output" else ARCHS[arch]
    b = Builder("mask")
    ids = b.ids("ids", 13, 40)
    g = b.graph(b.embedding("mask", ids, b.rng.integers(0, 3, 40), TensorQ(1.0, 0)))
    p, _ = check(g, target)
    gathers = [ins for ins in p.instrs if ins.op == "GATHER"]
    assert {ins["row_bytes"] for ins in gathers} == {1}
    assert sum(ins["count"] for ins in gathers) == 13


@pytest.mark.parametrize("arch", ["default", "8x8", "tiny-output"])
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("end", ["split", "merge"])
def test_head_split_and_merge_at_the_graphs_ends_are_strided_copies(end, bits, arch):
    """The graph's input and output are dense buffers of their own, so a permute producing
    the output or reading the input stays a copy kernel."""
    target = small_arch(output_sram_bytes=64) if arch == "tiny-output" else ARCHS[arch]
    b = Builder("heads")
    if end == "split":
        x = b.codes("x", (7, 24), TensorQ(0.05, 1, bits))
        y = b.heads("split", b.linear("fc", x, 24, TensorQ(0.05, 2, bits)), 3)  # (3, 7, 8)
        name = "split"
    else:
        x = b.codes("x", (3, 7, 8), TensorQ(0.05, 1, bits))
        y = b.linear("fc", b.merge("merged", x), 8, TensorQ(0.05, 2, bits))  # (7, 8)
        name = "merged.merge"
    p, _ = check(b.graph(y), target)
    assert sorted(info["kind"] for info in p.layers) == ["gemm", "permute"]
    assert set(ops_of(p, name)) <= {"LOAD", "SYNC", "STORE", "END"}
    assert layer(p, name)["compulsory_dram_bytes"] == 2 * 7 * 24 * bits // 8


@pytest.mark.parametrize("perm", [(0, 2, 1), (2, 1, 0), (1, 2, 0)])
def test_permutes_that_move_the_last_axis_copy_byte_codes(perm):
    b = Builder("transpose")
    x = b.codes("x", (3, 5, 6), TensorQ(0.05, 1))
    check(b.graph(b.permute("t", x, perm)), small_arch(output_sram_bytes=64))


def test_a_sequence_transposes():
    b = Builder("transpose2d")
    x = b.codes("x", (5, 9), TensorQ(0.05, 1))
    check(b.graph(b.permute("t", x, (1, 0))), ARCHS["default"])


# ---- a whole attention block -----------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_attention_block_is_bit_exact(arch):
    p, _ = check(attention_block(), ARCHS[arch], batch=4)
    kinds = Counter(info["kind"] for info in p.layers)
    assert kinds == {"gemm": 6, "matmul": 2, "gather": 2, "norm": 2, "ew": 3, "softmax": 1}
    assert layer(p, "fc1")["ops"] == ["linear", "lut"]  # GELU fused into the POST


@pytest.mark.parametrize("arch", ["default", "8x8"])
def test_attention_block_of_int4_activations_is_bit_exact(arch):
    """Packed INT4 codes through gathers, permutes, both matmuls, softmax and norms."""
    p, _ = check(attention_block(bits=4), ARCHS[arch], batch=4)
    assert {r.bits for r in p.regions if r.kind == "activation"} == {4}


@pytest.mark.parametrize("arch", ["default", "8x8"])
def test_attention_block_with_a_padding_mask_is_bit_exact(arch):
    check(attention_block(s=12, masked=True, seed=3), ARCHS[arch], batch=4)


def test_attention_block_dram_is_near_compulsory_on_gemmini_like():
    p, r = check(attention_block(s=16, d=64, heads=4, mlp=128), ARCHS["gemmini_like"])
    compulsory = sum(info["compulsory_dram_bytes"] for info in p.layers)
    assert compulsory <= r.dram_bytes <= 1.05 * compulsory
    for la, info in zip(r.layers, p.layers, strict=True):
        assert la["dram_bytes"] >= info["compulsory_dram_bytes"] > 0, info["name"]


# ---- what each kernel emits ------------------------------------------------------------------

def test_each_transformer_kernel_emits_its_instructions():
    p = compile_graph(attention_block(masked=True), ARCHS["default"])
    want = {"gather": {"GATHER", "SYNC", "STORE"}, "permute": {"LOAD", "SYNC", "STORE"},
            "matmul": {"LOAD", "GEMM", "POST", "STORE"},
            "softmax": {"LOAD", "SOFTMAX", "STORE"}, "norm": {"LOAD", "NORM", "POST", "STORE"}}
    for info in p.layers:
        if info["kind"] in want:
            assert set(ops_of(p, info["name"])) - {"SYNC", "END"} <= want[info["kind"]], \
                info["name"]
    sm = [ins for ins in p.instrs if ins.op == "SOFTMAX"]
    assert all(ins["causal"] and ins["masked"] for ins in sm)
    assert [ins["q_pos"] for ins in sm] == [0] * 4  # S = T: one step per head from query 0
    assert token_fifos(p) == Counter()  # every push popped, lag-1 kernels included
    assert hazards(p, ARCHS["default"]) == []


# ---- refusals --------------------------------------------------------------------------------

def test_a_matmul_operand_with_a_zero_point_is_refused():
    b = Builder("asym")
    x = b.codes("x", (2, 4, 8), TensorQ(0.05, 3))
    g = b.graph(b.matmul("mm", x, x, sym(0.1), transpose_b=True))
    with pytest.raises(UnsupportedOpError, match=r"^matmul mm: operand x has zero point 3; the "
                                                 r"array multiplies two activations as symmetric"):
        compile_graph(g, default_arch())


def test_a_norm_needs_22_bit_accumulators():
    arch = dataclasses.replace(default_arch(), acc_bits=21)
    with pytest.raises(ConfigError, match=r"array.acc_bits = 21 can overflow in layer ln .*"
                                          r"raise array.acc_bits to at least 22"):
        compile_graph(norm_graph(True), arch)


def test_a_softmax_row_must_fit_half_the_output_scratchpad():
    arch = small_arch(output_sram_bytes=32, param_sram_bytes=1024)
    with pytest.raises(ConfigError, match=r"sram.output_bytes is too small for layer sm: one "
                                          r"row of 10 keys .*raise sram.output_bytes"):
        compile_graph(softmax_graph(), arch)


def test_packed_codes_a_permute_moves_code_by_code_are_stored_a_byte_each():
    b = Builder("t4")
    x = b.codes("x", (4, 6), TensorQ(0.05, 1, 4))
    y = b.linear("fc", x, 6, TensorQ(0.05, 0, 4))
    p, _ = check(b.graph(b.permute("t", y, (1, 0))), default_arch())
    assert next(r for r in p.regions if r.name == "t").bits == 8


def test_a_permute_of_four_independent_axes_is_refused():
    b = Builder("p4")
    x = b.codes("x", (2, 3, 4, 5), TensorQ(0.05, 1))
    with pytest.raises(UnsupportedOpError, match=r"^permute t: perm \(1, 0, 3, 2\) of a 4-D "
                                                 r"tensor moves 4 axes; qasic permutes 2-D and "
                                                 r"3-D"):
        compile_graph(b.graph(b.permute("t", x, (1, 0, 3, 2))), default_arch())


@pytest.mark.parametrize("shape, perm, want", [
    ((2, 3, 2, 4), (1, 0, 2, 3), ((2, 3, 8), (1, 0, 2))),
    ((2, 4, 2, 4, 8), (0, 2, 1, 3, 4), ((2, 4, 2, 32), (0, 2, 1, 3))),  # Swin's windows
    ((1, 6, 1, 5), (3, 2, 1, 0), ((6, 5), (1, 0))),
    ((3, 4, 5), (0, 1, 2), ((60,), (0,))),
])
def test_canonical_permutes_drop_size_1_axes_and_merge_neighbours(shape, perm, want):
    assert canonical(shape, perm) == want


@pytest.mark.parametrize("shape, perm, bits", [
    ((2, 3, 2, 4), (1, 0, 2, 3), 8),
    ((2, 4, 2, 4, 8), (0, 2, 1, 3, 4), 8),   # Swin's window partition: 2 blocks of 3-D
    ((2, 2, 4, 4, 8), (0, 2, 1, 3, 4), 4),   # and its reverse, packed INT4
    ((2, 3, 4, 5), (0, 2, 1, 3), 8),
    ((2, 3, 4, 5), (0, 1, 3, 2), 8),         # the last axis moves: code by code
])
def test_permutes_of_more_axes_run_on_their_canonical_axes(shape, perm, bits):
    b = Builder("p5")
    x = b.codes("x", shape, TensorQ(0.05, 1, bits))
    check(b.graph(b.permute("t", x, perm)), ARCHS["8x8"])


def test_softmax_and_matmul_of_windows_by_heads_are_bit_exact():
    """Per-sample (windows, heads, S, T) tensors: the leading axes are rows' blocks (before,
    a 4-D tensor was one vector: a softmax over every code)."""
    b = Builder("windows")
    x = b.codes("x", (2, 3, 6, 8), sym(0.1))
    scores = b.matmul("qk", x, x, sym(0.08), transpose_b=True)
    p, _ = check(b.graph(b.softmax("sm", scores, valid=window(6, 6, 3))), ARCHS["8x8"])
    assert [info["kind"] for info in p.layers] == ["matmul", "softmax"]


@pytest.mark.parametrize("arch", ["default", "8x8"])
def test_swin_window_attention_is_bit_exact(arch):
    """Captured from torch (tests/quant: roll, a pad of nothing, windows x heads, a bias per
    window and head): compiled and simulated bit for bit."""
    from tests.quant.test_ops_transformer import CASES, _seq
    from tests.quant.transformer_nets import check as captured

    _, q, _ = captured(CASES["windows"][0], _seq())
    p, _ = check(q, ARCHS[arch])
    kinds = Counter(info["kind"] for info in p.layers)
    assert kinds["permute"] == 2 and kinds["softmax"] == 1

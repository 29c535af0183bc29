"""16-bit residual sums (QuantConfig.norm_input_bits = 16) on the accelerator: an ADD writes
int16 codes, ADD and NORM read them, bit-exact against the golden reference; a norm's residual
copy and a linear's output (QuantConfig.norm_residual_bits, output_bits) are int16 codes POST
writes; permutes move them (2 bytes a code) and concats hold them (views the adds write); every
other kernel refuses them with one line."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from qasic.compiler import compile_graph
from qasic.errors import UnsupportedOpError
from qasic.quant.graph import QNode, TensorQ
from tests.compiler.test_transformer import ARCHS, check, layer, ops_of
from tests.compiler.transformers import Builder

FP8 = "fp8_e4m3"


def wide(scale: float, zp: int = 0) -> TensorQ:
    return TensorQ(scale, zp, 16)


def act(scale: float, zp: int, fmt: str) -> TensorQ:
    return TensorQ(scale, zp) if fmt == "int" else TensorQ(scale / 64, 0, 8, fmt)


def post_ln_block(fmt: str = "int", s: int = 9, d: int = 40, mlp: int = 48, seed: int = 0):
    """BERT's post-LN layer on codes: x -> linear -> (x + .) at 16 bits -> LayerNorm -> linear
    -> (h + .) at 16 bits -> RMSNorm; a residual zero point far outside int8."""
    b = Builder("post_ln", seed)
    x = b.codes("x", (s, d), act(0.05, 3, fmt))
    o = b.linear("proj", x, d, act(0.06, -1, fmt))
    r1 = b.add("res1", x, o, wide(0.0004, 9000))
    h = b.norm("ln1", r1, act(0.05, 1, fmt))
    f = b.linear("fc", h, mlp, act(0.07, 2, fmt))
    f2 = b.linear("fc2", f, d, act(0.06, 0, fmt))
    r2 = b.add("res2", h, f2, wide(0.0005, -300))
    return b.graph(b.norm("ln2", r2, TensorQ(0.05, 0), center=False))


def pre_ln_stream(s: int = 7, d: int = 24, seed: int = 1):
    """A pre-LN residual stream kept at 16 bits: the second add reads an int16 operand."""
    b = Builder("pre_ln", seed)
    x = b.codes("x", (s, d), TensorQ(0.05, -4))
    o = b.linear("proj", x, d, TensorQ(0.06, 1))
    r1 = b.add("res1", x, o, wide(0.0003, 5))
    h = b.norm("ln1", r1, TensorQ(0.05, 0))
    f = b.linear("fc", h, d, TensorQ(0.07, -2))
    r2 = b.add("res2", r1, f, wide(0.0004, -7))
    return b.graph(b.norm("ln2", r2, TensorQ(0.04, 2)))


@pytest.mark.parametrize("arch", ["default", "8x8"])
@pytest.mark.parametrize("fmt", ["int", FP8])
def test_post_ln_residual_sums_at_16_bits_are_bit_exact(fmt, arch):
    target = ARCHS[arch]
    if fmt == FP8:  # the array multiplies FP8 levels as shifted 5-bit significands
        target = dataclasses.replace(target, input_bits=5, input_shift_bits=4, acc_bits=48)
    p, _ = check(post_ln_block(fmt), target, batch=3)
    adds = [ins for ins in p.instrs if ins.op == "ADD"]
    enc = "int8" if fmt == "int" else FP8
    assert {(i["fmt"], i["bfmt"], i["ofmt"]) for i in adds} == {(enc, enc, "int16")}
    assert {i["fmt"] for i in p.instrs if i.op == "NORM"} == {"int16"}
    assert {i["zp"] for i in p.instrs if i.op == "NORM"} == {9000, -300}
    assert {r.bits for r in p.regions if r.name in ("res1", "res2")} == {16}
    assert layer(p, "res1")["kind"] == "ew"


def post_ln_wide_norms(fmt: str = "int", s: int = 9, d: int = 40, mlp: int = 48):
    """post_ln_block with each LayerNorm written twice (QuantConfig.norm_residual_bits): an
    8-bit/FP8 output for the next linear and an int16 one for the residual add; the head
    linear writes int16 codes (QuantConfig.output_bits)."""
    b = Builder("post_ln_wide", 3)
    x = b.codes("x", (s, d), act(0.05, 3, fmt))
    o = b.linear("proj", x, d, act(0.06, -1, fmt))
    r1 = b.add("res1", x, o, wide(0.0004, 9000))
    h = b.norm("ln1", r1, act(0.05, 1, fmt))
    h_wide = b.norm("ln1.residual", r1, wide(0.0002, -700))
    f = b.linear("fc", h, mlp, act(0.07, 2, fmt))
    f2 = b.linear("fc2", f, d, act(0.06, 0, fmt))
    r2 = b.add("res2", h_wide, f2, wide(0.0005, -300))
    y = b.norm("ln2", r2, act(0.05, 0, fmt))
    return b.graph(b.linear("head", y, 24, wide(0.0005, 123)))


@pytest.mark.parametrize("fmt", ["int", FP8])
def test_post_writes_a_norms_residual_copy_and_the_output_at_16_bits(fmt):
    target = ARCHS["default"]
    if fmt == FP8:
        target = dataclasses.replace(target, input_bits=5, input_shift_bits=4, acc_bits=48)
    p, r = check(post_ln_wide_norms(fmt), target, batch=3)
    posts = Counter(i["ofmt"] for i, lid in zip(p.instrs, p.layer_ids, strict=True)
                    if i.op == "POST" and p.layers[lid]["name"] in ("ln1.residual", "head"))
    assert set(posts) == {"int16"}
    enc = "int8" if fmt == "int" else FP8
    assert {i["ofmt"] for i, lid in zip(p.instrs, p.layer_ids, strict=True)
            if i.op == "POST" and p.layers[lid]["name"] == "ln1"} == {enc}
    assert {(i["fmt"], i["bfmt"]) for i, lid in zip(p.instrs, p.layer_ids, strict=True)
            if i.op == "ADD" and p.layers[lid]["name"] == "res2"} == {("int16", enc)}
    assert np.abs(r.outputs).max() > 127  # the output uses the 16-bit range


@pytest.mark.parametrize("s, d", [(7, 24), (3, 8), (12, 40)])
def test_an_int16_operand_of_an_add_is_bit_exact(s, d):
    p, _ = check(pre_ln_stream(s, d), ARCHS["8x8"], batch=2)
    res2 = [i for i, lid in zip(p.instrs, p.layer_ids, strict=True)
            if i.op == "ADD" and p.layers[lid]["name"] == "res2"]
    assert {(i["fmt"], i["bfmt"], i["ofmt"]) for i in res2} == {("int16", "int8", "int16")}
    assert ops_of(p, "res2")["ADD"] == len(res2) >= 1


def test_an_int16_add_tiles_a_tiny_output_scratchpad():
    """A pixel of the add takes 40 x (1 + 1 + 2) bytes: a 256-byte half holds one."""
    from tests.archs import small_arch

    arch = small_arch(array_rows=8, array_cols=8, gemm_max_rows=16, input_sram_bytes=2048,
                      weight_sram_bytes=2048, acc_sram_bytes=2048, output_sram_bytes=512,
                      param_sram_bytes=1024)
    p, _ = check(post_ln_block(), arch, batch=2)
    assert Counter(ins.op for ins in p.instrs)["ADD"] > 2


def test_a_gemm_reading_int16_codes_is_refused_with_one_line():
    b = Builder("refuse")
    x = b.codes("x", (5, 16), TensorQ(0.05, 0))
    o = b.linear("proj", x, 16, TensorQ(0.06, 0))
    r = b.add("res", x, o, wide(0.0004))
    graph = b.graph(b.linear("after", r, 16, TensorQ(0.05, 0)))
    with pytest.raises(UnsupportedOpError, match=r"^layer after \(gemm\) reads the 16-bit codes "
                                                 r"of res; on the accelerator adds, norms, "
                                                 r"matmuls and convs/linears without a fused "
                                                 r"table or pool and embedding lookups write "
                                                 r"them, only adds and norms read them and "
                                                 r"permutes move them; use norm_input_bits, "
                                                 r"norm_residual_bits, output_bits and "
                                                 r"recurrence_bits <= 8, embedding_bits 8$"):
        compile_graph(graph, ARCHS["default"])


def test_a_norm_input_of_12_bits_is_stored_as_int16():
    b = Builder("twelve")
    x = b.codes("x", (6, 16), TensorQ(0.05, 0))
    o = b.linear("proj", x, 16, TensorQ(0.06, 0))
    r = b.add("res", x, o, TensorQ(0.006, 100, 12))
    p, _ = check(b.graph(b.norm("ln", r, TensorQ(0.05, 0))), ARCHS["default"], batch=2)
    assert {i["fmt"] for i in p.instrs if i.op == "NORM"} == {"int16"}


@pytest.mark.parametrize("fmt", ["int", FP8])
def test_a_captured_pre_ln_model_with_16_bit_norm_inputs_is_bit_exact(fmt):
    """torch -> QuantConfig(norm_input_bits=16) -> compile -> simulate == golden reference."""
    import numpy as np
    import torch

    from qasic.quant import QuantConfig, reference
    from qasic.sim import simulate
    from tests.quant.test_ops_transformer import _ids
    from tests.quant.transformer_nets import TokenModel
    from tests.quant.transformer_nets import check as quant_check

    torch.manual_seed(1)
    cfg = QuantConfig(8, activation_format=fmt, norm_input_bits=16)
    _, graph, _ = quant_check(TokenModel(depth=2).eval(), _ids(128, 16), cfg)
    arch = ARCHS["default"] if fmt == "int" else dataclasses.replace(
        ARCHS["default"], input_bits=8, input_shift_bits=4, acc_bits=48)
    p = compile_graph(graph, arch)
    x = _ids(4, 16, seed=3)
    assert np.array_equal(simulate(p, arch, codes=x).outputs, reference.run(graph, x))
    enc = "int8" if fmt == "int" else FP8
    # the token and position rows are int16 too (QuantConfig.embedding_bits 16, the default)
    assert {(i["fmt"], i["bfmt"], i["ofmt"]) for i in p.instrs if i.op == "ADD"} == {
        ("int16", "int16", "int16"), ("int16", enc, "int16")}


def _kernel_loads(p, name: str) -> list:
    k = next(i for i, info in enumerate(p.layers) if info["name"] == name)
    return [ins for ins, lid in zip(p.instrs, p.layer_ids, strict=True)
            if lid == k and ins.op == "LOAD"]


@pytest.mark.parametrize("perm", [(2, 1, 0), (0, 2, 1)])
def test_int16_codes_pass_through_a_permute_bit_exactly(perm):
    """A residual sum at 16 bits, split into (6, 2, 8) and permuted before a norm: a
    permutation that moves the last axis copies code by code, 2 bytes a code (with the leading
    axis kept: one block per position)."""
    b = Builder("wide_permute", 2)
    x = b.codes("x", (6, 16), TensorQ(0.05, 0))
    r = b.add("res", x, b.linear("proj", x, 16, TensorQ(0.06, 0)), wide(0.0004, 300))
    moved = b.permute("moved", b.reshape("split", r, (6, 2, 8)), perm)
    p, _ = check(b.graph(b.norm("ln", moved, TensorQ(0.05, 0))), ARCHS["default"], batch=2)
    assert layer(p, "moved")["kind"] == "permute"
    assert {i["row_bytes"] for i in _kernel_loads(p, "moved")} == {2}
    assert {i["fmt"] for i in p.instrs if i.op == "NORM"} == {"int16"}


def test_int16_adds_written_into_a_concat_then_permuted_are_bit_exact():
    """The chain of the gated delta rule's output (quant.recurrent_scan): per position an add
    writes a (heads, dv, 1) column of the concat at 16 bits, the (heads, dv, C) concat is
    permuted to (C, heads, dv) code by code and read by a norm over dv."""
    b = Builder("wide_concat", 3)
    x = b.codes("x", (4, 8, 1), TensorQ(0.05, 0))
    cols = [b.add(f"o{t}", x, b.lut(f"g{t}", x, fn, TensorQ(0.03, t)), wide(0.0003, -20))
            for t, fn in enumerate(("gelu", "silu", "tanh"))]
    cat = b._add(QNode("cat", "concat", tuple(cols), "cat"), wide(0.0003, -20), (4, 8, 3))
    rows = b.reshape("rows", b.permute("moved", cat, (2, 0, 1)), (12, 8))
    p, _ = check(b.graph(b.norm("ln", rows, TensorQ(0.05, 0))), ARCHS["default"], batch=2)
    kinds = {info["name"]: info["kind"] for info in p.layers}
    assert [kinds[t] for t in (*cols, "moved")] == ["ew", "ew", "ew", "permute"]
    assert "copy" not in kinds.values() and "cat" not in kinds  # the adds store into its buffer
    assert {i["row_bytes"] for i in _kernel_loads(p, "moved")} == {2}
    assert {i["fmt"] for i in p.instrs if i.op == "NORM"} == {"int16"}


def _posts(p, name: str) -> set:
    return {i["ofmt"] for i, lid in zip(p.instrs, p.layer_ids, strict=True)
            if i.op == "POST" and p.layers[lid]["name"] == name}


@pytest.mark.parametrize("arch", ["default", "8x8"])
def test_matmuls_of_two_activations_write_int16_codes_that_an_add_reads(arch):
    """The gated delta rule's output at one position (quant.recurrent_scan, QuantConfig.
    recurrence_bits): o = q^T S + delta (q . beta k), two matmuls of two activations whose
    POSTs write int16 codes, the add reading both (a column of 8 values, read by a norm)."""
    b = Builder("wide_matmul", 4)
    x = b.codes("x", (4, 1, 8), TensorQ(0.05, 0))
    k = b.reshape("kcol", b.linear("k", x, 8, TensorQ(0.06, 0)), (4, 8, 1))
    s = b.matmul("state", k, b.linear("v", x, 8, TensorQ(0.07, 0)), TensorQ(0.04, 0))
    qs = b.reshape("qs_col", b.matmul("qs", b.linear("q", x, 8, TensorQ(0.05, 0)), s,
                                      wide(0.0002, -300)), (4, 8, 1))
    delta = b.reshape("delta", b.linear("d", x, 8, TensorQ(0.06, 0)), (4, 8, 1))
    own = b.matmul("own", delta, b.linear("qk", x, 1, TensorQ(0.03, 0)), wide(0.0001, 50))
    o = b.add("o", qs, own, wide(0.0003, 20))
    p, _ = check(b.graph(b.norm("ln", b.reshape("rows", o, (4, 8)), TensorQ(0.05, 0))),
                 ARCHS[arch], batch=2)
    assert (layer(p, "qs")["kind"], layer(p, "own")["kind"]) == ("matmul", "matmul")
    assert _posts(p, "qs") == _posts(p, "own") == {"int16"}
    assert _posts(p, "state") == {"int8"}
    assert {(i["fmt"], i["bfmt"], i["ofmt"]) for i in p.instrs if i.op == "ADD"} == {
        ("int16", "int16", "int16")}


def test_a_matmul_reading_int16_codes_is_refused_with_one_line():
    b = Builder("refuse_matmul")
    x = b.codes("x", (4, 8), TensorQ(0.05, 0))
    a = b.matmul("a", x, b.reshape("xt", x, (8, 4)), wide(0.0004))
    with pytest.raises(UnsupportedOpError, match=r"^layer b \(matmul\) reads the 16-bit codes "
                                                 r"of a; on the accelerator"):
        compile_graph(b.graph(b.matmul("b", a, x, TensorQ(0.05, 0))), ARCHS["default"])

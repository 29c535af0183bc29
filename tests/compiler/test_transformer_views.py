"""Head split and merge as strided views (compiler.views): Buffers with a row stride, the DMAs
that walk them, and attention blocks with no permute copy left (fewer instructions, exactly the
copies' DRAM bytes saved), bit-exact against the golden reference."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from qasic.compiler import compile_graph, pipeline
from qasic.compiler.dma import band_loads, pixel_loads, pixel_stores, raster_runs, tile_stores
from qasic.compiler.memory import Buffer, heads_view
from qasic.quant.graph import TensorQ
from qasic.sim import simulate
from tests.archs import small_arch
from tests.compiler.checks import hazards, token_fifos
from tests.compiler.test_transformer import ARCHS, check, codes_for, layer
from tests.compiler.transformers import Builder, attention_block

# ---- Buffer: a row stride ---------------------------------------------------------------------


def test_a_buffer_rows_are_w_pixels_apart_unless_a_stride_is_given():
    dense = Buffer("x", 64, 3, 5, 4, 4)
    assert (dense.stride, dense.size, dense.dense, dense.raster) == (20, 60, True, True)
    assert dense.pixel_addr(2, 1, 3) == 64 + 2 * 20 + 1 * 4 + 3
    spaced = Buffer("y", 0, 3, 5, 4, 4, stride=32)  # rows 32 bytes apart: 12 bytes of gap
    assert (spaced.pixel_addr(2, 1), spaced.size, spaced.dense, spaced.raster) == \
        (68, 2 * 32 + 5 * 4, False, False)


def test_heads_of_the_first_tokens_of_a_cache_are_a_strided_view():
    """A (C, D) = (10, 12) cache as a 1 x C image; its first T = 6 tokens as (H, T, dh) =
    (3, 6, 4): head h is row h (stride dh bytes), token s its pixel (D bytes apart)."""
    cache = Buffer("cache", 1024, 1, 10, 12, 12)
    view = heads_view(dataclasses.replace(cache, w=6), 3, "k_heads")
    assert (view.h, view.w, view.c, view.pix, view.stride) == (3, 6, 4, 12, 4)
    assert all(view.pixel_addr(h, s, ch) == 1024 + s * 12 + h * 4 + ch
               for h in range(3) for s in range(6) for ch in range(4))
    assert view.payload == 6 * 12 and view.size == 6 * 12  # its bytes: the first T tokens
    assert view.transposed("t").transposed("k_heads") == view
    packed = Buffer("p", 0, 1, 10, 12, 6, encoding="int4")  # 4-bit codes: dh = 4 is 2 bytes
    assert heads_view(packed, 3, "h").pixel_addr(2, 1) == 6 + 2 * 2
    with pytest.raises(ValueError, match=r"^buffer p: 1 x 10 x 12 at 4 bits does not split into "
                                         r"4 whole-byte pixels per token$"):
        heads_view(packed, 4, "h")  # dh = 3 codes of 4 bits


def test_raster_runs_cut_a_span_into_a_row_part_whole_rows_and_a_row_part():
    assert raster_runs(5, 3, 14) == [(0, 3, 2, 1), (1, 0, 5, 2), (3, 0, 2, 1)]
    assert raster_runs(5, 0, 10) == [(0, 0, 5, 2)]
    assert raster_runs(5, 6, 2) == [(1, 1, 2, 1)]


def run_dma(instrs, dram: np.ndarray, sram: np.ndarray) -> None:
    """Apply LOADs (DRAM -> scratchpad) and STOREs (scratchpad -> DRAM) as the ISA defines them."""
    for ins in instrs:
        a = ins.args
        for p in range(a["planes"]):
            for r in range(a["rows"]):
                d = a["dram_addr"] + p * a["dram_plane_stride"] + r * a["dram_stride"]
                s = a["sram_addr"] + p * a["sram_plane_stride"] + r * a["sram_stride"]
                n = a["row_bytes"]
                if ins.op == "LOAD":
                    sram[s:s + n] = dram[d:d + n]
                else:
                    dram[d:d + n] = sram[s:s + n]


@pytest.fixture
def cache():
    """A (C, D) = (10, 12) int8 sequence at address 64 of a 256-byte DRAM, its bytes, and its
    first 7 tokens' heads (3, 7, 4) as a view."""
    buf = Buffer("cache", 64, 1, 10, 12, 12)
    dram = np.zeros(256, np.uint8)
    codes = np.arange(120, dtype=np.uint8).reshape(10, 12)
    dram[64:184] = codes.ravel()
    heads = codes[:7].reshape(7, 3, 4).transpose(1, 0, 2)  # (H, T, dh)
    return heads_view(dataclasses.replace(buf, w=7), 3, "kh"), dram, heads


@pytest.mark.parametrize("p0,count,c0,ct", [(0, 21, 0, 4), (5, 9, 1, 2), (3, 2, 0, 4)])
def test_pixel_loads_and_stores_walk_a_heads_view(cache, p0, count, c0, ct):
    view, dram, heads = cache
    want = heads.reshape(21, 4)[p0:p0 + count, c0:c0 + ct]
    sram = np.zeros(128, np.uint8)
    run_dma(pixel_loads(view, "output", 0, p0, count, c0, ct), dram, sram)
    assert np.array_equal(sram[:count * ct].reshape(count, ct), want)
    back = np.full_like(dram, 255)  # no code is 255: the bytes a store leaves alone
    run_dma(pixel_stores(view, 0, p0, count, c0, ct), back, sram)
    written = back != 255
    assert written.sum() == count * ct and np.array_equal(back[written], dram[written])


def test_band_loads_and_tile_stores_walk_a_heads_view(cache):
    """Rows 1-2 x tokens 2-5 of the heads: a 2 x 4 band, stored back in place."""
    view, dram, heads = cache
    sram = np.zeros(64, np.uint8)
    run_dma(band_loads(view, "input", 0, 0, 4, 1, 2, 2, 4, 0), dram, sram)
    assert np.array_equal(sram[:32].reshape(2, 4, 4), heads[1:3, 2:6])
    back = np.full_like(dram, 255)
    run_dma(tile_stores(view, 0, 1, 2, 2, 4, 0, 4), back, sram)
    written = back != 255
    assert written.sum() == 32 and np.array_equal(back[written], dram[written])


# ---- head split and merge as views -----------------------------------------------------------

@pytest.mark.parametrize("arch", ["default", "8x8", "tiny-output"])
@pytest.mark.parametrize("bits", [8, 4])
def test_head_split_and_merge_around_a_linear_are_views(bits, arch):
    """The linear reads its heads (3, 7, 8) straight out of x (7, 24) and stores them into the
    merged (7, 24): one kernel, strided DMAs of D bytes between tokens. Mapped DRAM bytes
    first, the views add none: every operand moves once (the default energy objective re-reads
    x on tiny-output, for 739 instead of 1,263 cycles and 95 instead of 119 nJ)."""
    target = small_arch(output_sram_bytes=64) if arch == "tiny-output" else ARCHS[arch]
    target = dataclasses.replace(target, mapper_objective="dram")
    b = Builder("heads")
    x = b.codes("x", (7, 24), TensorQ(0.05, 1, bits))
    y = b.linear("fc", b.heads("split", x, 3), 8, TensorQ(0.05, 2, bits))  # per head
    p, r = check(b.graph(b.merge("merged", y)), target)
    assert [info["kind"] for info in p.layers] == ["gemm"]
    band_and_tile = [(i["dram_stride"], i["dram_plane_stride"]) for i in p.instrs
                     if i.op in ("LOAD", "STORE") and i["mem"] in ("input", "output")]
    assert set(band_and_tile) == {(24 * bits // 8, 8 * bits // 8)}  # tokens D, heads dh apart
    assert r.dram_bytes == layer(p, "fc")["compulsory_dram_bytes"]


def unfolded(graph, arch, monkeypatch):
    """The program compiled with every permute a copy kernel (as before compiler.views)."""
    with monkeypatch.context() as m:
        m.setattr(pipeline, "fold_permutes", lambda graph, kernels: tuple(kernels))
        return compile_graph(graph, arch)


BLOCKS = {"default": ("default", {}), "gemmini_like": ("gemmini_like", {}),
          "gemmini_like-s16-d64": ("gemmini_like", {"s": 16, "d": 64, "heads": 4, "mlp": 128}),
          "default-int4": ("default", {"bits": 4})}


@pytest.mark.parametrize("case", BLOCKS)
def test_an_attention_block_has_no_permute_copies(case, monkeypatch):
    """q, k and v are read per head where their linears stored them, and P V stores each head
    into its columns of the merged context: the four copies (each reads and writes S x D codes)
    are gone, and with them exactly their DRAM bytes."""
    arch_name, kw = BLOCKS[case]
    arch, graph = ARCHS[arch_name], attention_block(**kw)
    s, d, bits = kw.get("s", 8), kw.get("d", 32), kw.get("bits", 8)
    codes = codes_for(graph, 2, 7)
    before, after = unfolded(graph, arch, monkeypatch), compile_graph(graph, arch)
    r0, r1 = simulate(before, arch, codes=codes), simulate(after, arch, codes=codes)
    assert np.array_equal(r0.outputs, r1.outputs)
    copies = 4 * 2 * s * d * bits // 8
    assert Counter(i["kind"] for i in before.layers)["permute"] == 4
    assert "permute" not in {i["kind"] for i in after.layers}
    assert sum(i["compulsory_dram_bytes"] for i in before.layers if i["kind"] == "permute") \
        == copies
    assert r0.dram_bytes - r1.dram_bytes == copies
    assert sum(i["compulsory_dram_bytes"] for i in before.layers) \
        - sum(i["compulsory_dram_bytes"] for i in after.layers) == copies
    assert len(after.instrs) < len(before.instrs) and r1.cycles < r0.cycles
    for la, info in zip(r1.layers, after.layers, strict=True):
        if info["kind"] == "matmul":  # strided operands: the mapper's model stays exact
            assert la["dram_bytes"] == info["mapped_dram_bytes"], info["name"]
    assert token_fifos(after) == Counter()
    assert hazards(after, arch) == []


def test_views_of_packed_int4_heads_keep_them_packed():
    p, _ = check(attention_block(bits=4), ARCHS["8x8"], batch=4)
    assert "permute" not in {info["kind"] for info in p.layers}
    assert {r.bits for r in p.regions if r.kind == "activation"} == {4}


def test_heads_whose_int4_codes_do_not_fill_bytes_are_views_of_byte_codes(monkeypatch):
    """dh = 3 codes of 4 bits: the reshape (S, D) -> (S, H, dh) already stored q, k, v and the
    context a byte a code with the copies; as views they keep exactly that storage."""
    graph = attention_block(d=12, heads=4, mlp=16, bits=4)
    p, _ = check(graph, ARCHS["default"], batch=4)
    assert "permute" not in {info["kind"] for info in p.layers}
    bits = {r.name: r.bits for r in p.regions if r.kind == "activation"}
    assert {bits[t] for t in ("q", "k", "v", "ctx.merge")} == {8}
    assert bits["embed"] == 4
    copied = unfolded(graph, ARCHS["default"], monkeypatch)
    assert {r.name: r.bits for r in copied.regions if r.name in bits} == bits


def test_a_permute_that_a_reader_cannot_take_as_a_view_stays_a_copy(monkeypatch):
    """A split read by a merge (a permute reads dense buffers only) and a merge read by a
    reshape: both copies, still bit-exact. The round trip composes to a reshape, which
    compiler.aliases finds (no permute at all); without that pass both stay copies."""
    b = Builder("roundtrip")
    x = b.codes("x", (6, 16), TensorQ(0.05, 1))
    h = b.linear("fc", x, 16, TensorQ(0.05, 2))
    y = b.linear("out", b.merge("merged", b.heads("split", h, 4)), 16, TensorQ(0.05, 0))
    p, _ = check(b.graph(y), ARCHS["default"])
    assert [info["kind"] for info in p.layers] == ["gemm", "gemm"]
    monkeypatch.setattr("qasic.compiler.pipeline.simplify_moves", lambda g: g)
    p, _ = check(b.graph(y), ARCHS["default"])
    assert [info["kind"] for info in p.layers] == ["gemm", "permute", "permute", "gemm"]


@pytest.mark.parametrize("arch", ["default", "tiny-output"])
def test_a_permute_copy_stores_whole_rows_into_a_concatenation_view(arch):
    """A head permute (S, H, dh) -> (H, S, dh) that cannot fold (its input is the graph's) and
    whose output is one part of a concatenation over the last axis (MiniCPM3's per-head keys
    next to their rotary part, read from a decode step's cache): each output row of dh codes
    is stored at its pixel of the (H, S, 2 dh) concatenation, pix 2 dh bytes apart."""
    from qasic.quant.graph import QNode

    target = small_arch(output_sram_bytes=64) if arch == "tiny-output" else ARCHS[arch]
    b = Builder("permute_into_concat")
    tq = TensorQ(0.05, 1)
    heads = b.permute("heads", b.codes("x", (6, 4, 8), tq), (1, 0, 2))  # (4, 6, 8)
    other = b.linear("other", heads, 8, tq)
    cat = b._add(QNode("cat", "concat", (heads, other), "cat"), tq, (4, 6, 16))
    p, _ = check(b.graph(b.linear("out", cat, 8, TensorQ(0.05, 0))), target)
    assert [info["kind"] for info in p.layers] == ["permute", "gemm", "gemm"]
    k = next(i for i, info in enumerate(p.layers) if info["name"] == "heads")
    stores = [ins for ins, lid in zip(p.instrs, p.layer_ids, strict=True)
              if lid == k and ins.op == "STORE"]
    assert stores and {(i["row_bytes"], i["dram_stride"]) for i in stores} == {(8, 16)}

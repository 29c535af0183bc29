"""Whole programs on the whole accelerator: digits_cnn DRAM to DRAM under cocotb + Verilator.

Each design point of the issue (benchmarks.rtl_run.POINTS and FITTED) runs 4 test samples:
the RTL's outputs must equal the golden reference's and the simulator's on every sample, and its
cycles the timing model's within 1% (the aim, met today, is 0). Two Verilator builds: every point
but W4A8-fitted shares an array whose PEs cover all of them; a 4x4 array and small scratchpads
keep the builds small enough for CI (16x16 runs: python -m benchmarks.rtl_run --array 16x16).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks.rtl_run import FITTED, POINTS, run_point, small_arch

# Each sample reruns the whole program (~42k cycles at ~10k cycles/s): 16 a point were ~320 s of
# CI's RTL time. 4 run every instruction as 16 do and still show cycles independent of the data;
# python -m benchmarks.rtl_run runs 16 (benchmarks/results/rtl_run.json).
SAMPLES = 4


@pytest.mark.rtl
@pytest.mark.parametrize("point", [*POINTS, *FITTED])
def test_whole_program_is_bit_exact_and_cycle_matched(point, rtl_build_dir):
    result, arch = run_point(point, small_arch(), SAMPLES, rtl_build_dir)
    assert result.samples == SAMPLES
    assert result.reference_equal, f"{point}: RTL outputs differ from the golden reference"
    assert np.array_equal(result.outputs, result.sim_outputs)
    assert result.outputs_equal
    assert result.cycle_error <= 0.01, (
        f"{point} on {arch.name}: RTL {result.cycles_rtl} cycles, simulator "
        f"{result.cycles_sim}")
    assert len(set(result.sample_cycles)) == 1  # timing never depends on data
    for q, busy in result.busy_rtl.items():
        assert abs(busy - result.busy_sim[q]) <= 0.01 * max(result.busy_sim[q], 1), q


def test_a_program_beyond_the_build_is_refused_before_simulation():
    """One line naming the instruction and the field; no Verilator run."""
    from benchmarks.rtl_run import graph, point_arch
    from qasic.compiler import compile_graph
    from qasic.rtl.limits import RtlLimitError, check_runnable

    arch = point_arch("w8a8", small_arch())
    program = compile_graph(graph("w8a8"), arch)
    with pytest.raises(RtlLimitError, match=r"^instruction \d+ \(GEMM\): this RTL build has no "
                                            r"unit for GEMM; it runs "):
        check_runnable(program, arch, ops=("LOAD", "STORE", "POST", "SYNC", "END"))
    with pytest.raises(RtlLimitError, match=r"has \d+ load-queue instructions; the RTL.s program "
                                            r"memory holds 8 per queue"):
        check_runnable(program, arch, depth=8)
    # the last STORE: reading the input scratchpad there races no later LOAD into it (the
    # verifier would refuse that first, with its own message)
    store = max(i for i, ins in enumerate(program.instrs) if ins.op == "STORE")
    bad = dataclasses.replace(program.instrs[store],
                              args={**program.instrs[store].args, "mem": "input"})
    instrs = (*program.instrs[:store], bad, *program.instrs[store + 1:])
    with pytest.raises(RtlLimitError, match=rf"^instruction {store} \(STORE\): STORE mem = input: "
                                            r"the RTL DMA moves STORE data only"):
        check_runnable(dataclasses.replace(program, instrs=instrs), arch)


def test_qasic_verilog_writes_the_whole_accelerator(tmp_path):
    """`qasic verilog` emits the accelerator of the arch (small here: elaboration takes seconds)
    with a JSON naming its units and ports."""
    import json

    from qasic.cli import main

    toml = tmp_path / "small.toml"
    toml.write_text('name = "tiny"\n[array]\nrows = 2\ncols = 2\ngemm_max_rows = 8\n'
                    '[sram]\ninput_bytes = 512\nweight_bytes = 512\nacc_bytes = 512\n'
                    'output_bytes = 512\nparam_bytes = 512\n')
    assert main(["verilog", "--arch", str(toml), "--out", str(tmp_path / "v")]) == 0
    described = json.loads((tmp_path / "v" / "qasic_accel.json").read_text())
    assert described["arch"] == "tiny"
    assert {"dma_load", "gemm", "post", "vector", "softmax", "norm", "dma_store"} \
        <= set(described["units"])
    names = {p["name"] for p in described["ports"]}
    assert {"prog_data", "run", "finished", "cycles", "m_axi_load__araddr",
            "m_axi_store__wdata"} <= names
    assert "module qasic_accel" in (tmp_path / "v" / "qasic_accel.v").read_text()


@pytest.mark.rtl
@pytest.mark.parametrize("embedding_bits", [8, 16])
def test_a_transformer_block_runs_whole_on_the_rtl(rtl_build_dir, embedding_bits):
    """Embeddings by GATHER, LayerNorm (NORM), Q/K/V, Q.K^T through the transposer, a causal and
    padding-masked SOFTMAX, P.V, residual ADDs and the MLP: bit-exact, every instruction issued in
    the timing model's cycle (traced), on the shared 4x4 build. At 16 embedding bits the GATHER
    copies rows of int16 codes (2 bytes a code: the DMA moves bytes) that an ADD reads."""
    from benchmarks.rtl_run import point_arch
    from qasic.compiler import compile_graph
    from qasic.quant import reference
    from qasic.rtl.run import rtl_run
    from qasic.sim.timing import schedule
    from tests.compiler.transformers import attention_block

    arch = point_arch("w8a8", small_arch())
    graph = attention_block(masked=True, embedding_bits=embedding_bits)
    program = compile_graph(graph, arch)
    assert {"GATHER", "NORM", "SOFTMAX", "ADD"} <= {ins.op for ins in program.instrs}
    assert max(ins["row_bytes"] for ins in program.instrs if ins.op == "GATHER") \
        == 32 * embedding_bits // 8
    assert any(ins.op == "GEMM" and ins["wtrans"] for ins in program.instrs)
    codes = np.random.default_rng(0).integers(0, 50, size=(4, *program.meta["input"]["shape"]))
    result = rtl_run(program, arch, codes, rtl_build_dir, reference=reference.run(graph, codes),
                     trace=True)
    assert result.outputs_equal and result.reference_equal
    timing = schedule(program, arch)
    np.testing.assert_array_equal(result.starts, timing.start)
    assert result.cycles_rtl == result.cycles_sim == timing.total


@pytest.mark.rtl
def test_a_constant_attention_pattern_runs_on_the_rtl(rtl_build_dir):
    """A sliding window of 3 keys and a pattern per head over (3, 6, 10) scores: one SOFTMAX a
    step, row r masked by pattern row r (mask_stride 10, 0 where a head's rows are equal):
    bit-exact and in the timing model's cycles, on the shared 4x4 build."""
    from benchmarks.rtl_run import point_arch
    from qasic.compiler import compile_graph
    from qasic.quant import reference
    from qasic.rtl.run import rtl_run
    from qasic.sim.timing import schedule
    from tests.compiler.test_transformer import PER_HEAD, codes_for, pattern_graph, window

    arch = point_arch("w8a8", small_arch())
    for valid in (window(6, 10, 3), PER_HEAD):
        graph = pattern_graph(valid)
        program = compile_graph(graph, arch)
        assert {ins["mask_stride"] for ins in program.instrs if ins.op == "SOFTMAX"} \
            == ({10} if len(valid) == 1 else {0, 10})
        codes = codes_for(graph, 3, seed=5)
        result = rtl_run(program, arch, codes, rtl_build_dir,
                         reference=reference.run(graph, codes))
        assert result.outputs_equal and result.reference_equal
        assert result.cycles_rtl == result.cycles_sim == schedule(program, arch).total


@pytest.mark.rtl
def test_a_resize_runs_on_the_rtl(rtl_build_dir):
    """A bicubic resize with align_corners (3x4 -> 5x7 after a conv): the permutes, the GEMM
    along W and the matmul by the constant R_h with its zero-point bias (qasic.compiler.resize),
    bit-exact and in the timing model's cycles on the shared 4x4 build (measured 1,396)."""
    import torch

    from benchmarks.rtl_run import point_arch
    from qasic.compiler import compile_graph
    from qasic.quant import QuantConfig, quantize, reference
    from qasic.rtl.run import rtl_run
    from qasic.sim.run import input_codes
    from qasic.sim.timing import schedule
    from tests.compiler.test_resize import ConvResize

    arch = point_arch("w8a8", small_arch())
    torch.manual_seed(0)
    x = torch.randn(8, 3, 3, 4)
    model = ConvResize({"size": (5, 7), "mode": "bicubic", "align_corners": True}).eval()
    graph = quantize(model, (x[:1],), x.numpy(), QuantConfig())
    program = compile_graph(graph, arch)
    assert [layer["kind"] for layer in program.layers] == ["gemm", "permute", "gemm", "permute",
                                                           "matmul"]
    codes = input_codes(program, x.numpy()[:2])
    result = rtl_run(program, arch, codes, rtl_build_dir, reference=reference.run(graph, codes))
    assert result.outputs_equal and result.reference_equal
    assert result.cycles_rtl == result.cycles_sim == schedule(program, arch).total


@pytest.mark.rtl
def test_a_router_mask_and_channel_views_run_on_the_rtl(rtl_build_dir):
    """Two op kinds the hand-written networks reach only in traced prefixes on the RTL
    (benchmarks.rtl_handwritten: Mixtral's router, YOLOv8's C2f), run whole: a top-2 of 4
    experts mask over codes with ties (compiler.topk: two GEMMs with tables) and ultralytics'
    C2f, whose chunk(2, 1) parts are ``channels`` views of the conv's pixels (strided loads, a
    copy kernel where a part is the output): bit-exact with the simulator and the golden
    reference, in the timing model's cycles, on the shared 4x4 build."""
    import torch

    from benchmarks.rtl_run import point_arch
    from qasic.compiler import compile_graph
    from qasic.quant import QuantConfig, quantize, reference
    from qasic.rtl.run import rtl_run
    from qasic.sim.run import input_codes
    from qasic.sim.timing import schedule
    from tests.quant.test_channel_views import C2f, _images
    from tests.quant.test_moe import _mask_graph

    arch = point_arch("w8a8", small_arch())
    mask = _mask_graph(4, 2, 6)
    x = _images()
    views = [quantize(C2f(out_part=part).eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
             for part in (False, True)]
    rng = np.random.default_rng(3)
    for graph in (mask, *views):
        program = compile_graph(graph, arch)
        if graph is mask:
            codes = rng.integers(-2, 3, size=(2, 6, 4))  # ties: the lower expert wins
        else:
            assert any(n.op == "channels" for n in graph.nodes)
            codes = input_codes(program, x[:2])
        want = reference.run(graph, codes)
        result = rtl_run(program, arch, codes, rtl_build_dir, reference=want)
        assert result.outputs_equal and result.reference_equal, graph.name
        assert result.cycles_rtl == result.cycles_sim == schedule(program, arch).total
        if graph is mask:
            assert (result.outputs.sum(-1) == 2).all()


@pytest.mark.rtl
def test_qasic_rtl_run_checks_a_program_file_against_the_graph_it_carries(
        rtl_build_dir, tmp_path, capsys):
    """The command as a user runs it: a program file alone (its embedded graph is the golden
    reference), the W8A8 point's shared build; then a file whose graph disagrees fails."""
    import json

    from benchmarks.rtl_run import graph, point_arch
    from qasic.cli import main
    from qasic.compiler import compile_graph
    from qasic.isa.program import save
    from qasic.quant.graphio import embed

    g = graph("w8a8")
    program = compile_graph(g, point_arch("w8a8", small_arch()))
    path = save(embed(program, g), tmp_path / "w8a8.qasic")
    assert main(["rtl-run", str(path), "--limit", "2", "--json",
                 "--build-dir", str(rtl_build_dir)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["samples"] == 2 and record["outputs_equal"] is True
    assert record["reference_equal"] is True and record["simulator_equal"] is True
    assert record["cycle_error"] == 0

    fc = g.node("fc")
    params = {**fc.params, "bias": fc.params["bias"] + 5000}
    bad = dataclasses.replace(g, nodes=tuple(dataclasses.replace(n, params=params)
                                             if n is fc else n for n in g.nodes))
    save(embed(program, bad), path)
    assert main(["rtl-run", str(path), "--limit", "1", "--build-dir", str(rtl_build_dir)]) == 1
    assert "DIFFERENT" in capsys.readouterr().out


@pytest.mark.rtl
def test_another_built_in_model_runs_whole_and_a_longer_one_as_a_traced_prefix(rtl_build_dir):
    """digits_mlp (W8A8) whole on CI's 4x4 build: bit-exact, every instruction issued in the
    timing model's cycle. mnist_cnn has more compute instructions than the build's program
    memory holds: a prefix run loads each queue's first PROGRAM_DEPTH and traces up to where the
    model says the first unloaded one would issue; every instruction before it issues in the
    model's cycle (benchmarks.rtl_models runs every built-in model this way)."""
    from benchmarks.rtl_run import point_arch
    from qasic.compiler import compile_graph
    from qasic.flow import quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig, reference
    from qasic.rtl.limits import PROGRAM_DEPTH
    from qasic.rtl.run import rtl_prefix, rtl_run
    from qasic.sim.run import input_codes
    from qasic.sim.timing import schedule

    arch = point_arch("w8a8", small_arch())
    mlp = get_model("digits_mlp")
    graph = quantize_model(mlp, QuantConfig())
    program = compile_graph(graph, arch)
    codes = input_codes(program, mlp.test_inputs[:4])
    result = rtl_run(program, arch, codes, rtl_build_dir, reference=reference.run(graph, codes),
                     trace=True)
    assert result.outputs_equal and result.reference_equal
    np.testing.assert_array_equal(result.starts, schedule(program, arch).start)
    assert result.cycles_rtl == result.cycles_sim

    cnn = get_model("mnist_cnn")
    program = compile_graph(quantize_model(cnn, QuantConfig()), arch)
    assert max(sum(ins.queue == q for ins in program.instrs) for q in ("load", "compute")) \
        > PROGRAM_DEPTH
    prefix = rtl_prefix(program, arch, input_codes(program, cnn.test_inputs[:1]),
                        rtl_build_dir, max_cycles=200_000)
    assert prefix.loaded < prefix.instructions and prefix.horizon < prefix.cycles_sim
    assert prefix.max_start_difference == 0
    assert prefix.compared.sum() > prefix.instructions // 2


def _decode_step_on_the_rtl(model, c: int, rtl_build_dir):
    """Two samples: a prefill of 2 ids and steps up to position c - 2 on the golden reference,
    then one decode step on the RTL from the states they left: sample 0 at the last position,
    sample 1 at position 2 with another token (a step reads and writes where p says)."""
    import torch

    from benchmarks.rtl_run import point_arch
    from qasic.compiler import compile_graph
    from qasic.quant import QuantConfig, quantize, reference
    from qasic.quant.decode import decode_graph, prefill_graph
    from qasic.rtl.run import rtl_run

    arch = point_arch("w8a8", small_arch())
    ids = np.random.default_rng(0).integers(0, 16, (8, c))
    full = quantize(model.eval(), (torch.from_numpy(ids[:1]),), ids, QuantConfig())
    step, state = decode_graph(full), {}
    reference.run(prefill_graph(full, 2), ids[:2, :2], state=state)
    for p in range(2, c - 1):
        reference.run(step, np.stack([ids[:2, p], [p, p]], axis=1), state=state)
    program = compile_graph(step, arch)
    x = np.array([[ids[0, c - 1], c - 1], [7, 2]])
    before = {k: v.copy() for k, v in state.items()}
    want = reference.run(step, x, state=state)
    result = rtl_run(program, arch, x, rtl_build_dir, reference=want, states=before)
    assert result.outputs_equal and result.reference_equal
    assert sorted(result.states) == sorted(state)
    for name, codes in state.items():  # the states the step wrote, as the reference did
        np.testing.assert_array_equal(result.states[name].reshape(codes.shape), codes)
    assert result.cycles_rtl == result.cycles_sim
    return program


@pytest.mark.rtl
def test_decode_steps_of_a_short_convolution_and_a_selective_scan_run_on_the_rtl(rtl_build_dir):
    """Generation's recurrent states on the RTL, bit-exact with the simulator and the golden
    reference on the step's logits and on the states it leaves, in the timing model's cycles:
    LFM2's token convolution (its row SCATTERed into the padded window cache at 2 + p, the
    window of 3 rows GATHERed from row p: quant.decode_conv) and Mamba's scan (h_(p-1) read
    from its state, h_p stored whole over it: quant.recurrence)."""
    import torch

    from tests.rtl.decode_nets import ShortConv, TinyMamba

    torch.manual_seed(0)
    conv = _decode_step_on_the_rtl(ShortConv(), 6, rtl_build_dir)
    assert [ins.op for ins in conv.instrs].count("SCATTER") == 1
    assert [ins.op for ins in conv.instrs].count("GATHER") == 2  # the token's row, the window
    _decode_step_on_the_rtl(TinyMamba(), 4, rtl_build_dir)

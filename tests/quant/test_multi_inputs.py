"""Models of several input tensors (qasic.quant.graph_inputs): captured with one graph input per
forward parameter, their batch packed; float graph == torch, golden reference == simulator,
close to the float model; a runtime attention mask masks the padded keys on the accelerator;
a program file of two input regions round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import InputError
from qasic.isa.program import from_bytes, input_specs, to_bytes
from qasic.models.packed import PackedInputs
from qasic.quant import QuantConfig, capture, graph_inputs, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.graphio import embed, embedded
from qasic.quant.quantize import quantize_graph
from qasic.sim.run import input_codes, run_functional


class DenseSparse(nn.Module):
    """DLRM's two inputs: float dense features and int64 sparse ids (one per table)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bot = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 8))
        self.emb = nn.ModuleList(nn.EmbeddingBag(n, 8, mode="sum") for n in (30, 20))
        self.top = nn.Linear(24, 3)

    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        ly = [e(ids[:, i:i + 1]) for i, e in enumerate(self.emb)]
        return self.top(torch.cat([self.bot(dense), *ly], dim=1))


class FiLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.cond, self.out = nn.Linear(6, 16), nn.Linear(3, 32), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        g, b = self.cond(c).chunk(2, dim=-1)
        return self.out(torch.relu(self.inp(x) * (1 + g) + b))


def _dense_sparse(n: int = 16):
    r = np.random.default_rng(0)
    parts = [r.standard_normal((n, 5)), np.stack([r.integers(0, 30, n), r.integers(0, 20, n)], 1)]
    return PackedInputs(DenseSparse().eval(), ("dense", "ids"), ((5,), (2,)), (False, True)), parts


def _film(n: int = 16):
    r = np.random.default_rng(1)
    parts = [r.standard_normal((n, 6)), r.standard_normal((n, 3))]
    return PackedInputs(FiLM().eval(), ("x", "c"), ((6,), (3,)), (False, False)), parts


def _run(model, parts):
    x = graph_inputs.pack(parts)
    fg = capture(model, torch.from_numpy(x[:1]), "multi")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    qg = quantize_graph(fg, x, QuantConfig())
    codes = qg.quantize_input(x)
    return x, fg, qg, codes, want


@pytest.mark.parametrize("make", [_dense_sparse, _film], ids=["float+ids", "float+float"])
def test_two_inputs_golden_equals_simulator_close_to_float(make):
    x, fg, qg, codes, want = _run(*make())
    assert fg.inputs == ("input", f"input.{make()[0].params[1]}")
    assert np.abs(run_float(fg, x) - want).max() < 1e-5  # the float graph is torch's
    gold = reference.run(qg, codes)
    prog = compile_graph(qg, default_arch())
    assert [s["tensor"] for s in input_specs(prog.meta)] == list(qg.inputs)
    assert np.array_equal(input_codes(prog, x), codes)  # the host packs as the graph does
    got = run_functional(prog, default_arch(), codes)
    assert np.array_equal(got.reshape(gold.shape), gold)
    assert cosine(qg.dequantize_output(gold), want) > 0.999


def test_program_with_two_input_regions_round_trips():
    _, _, qg, codes, _ = _run(*_dense_sparse(4))
    prog = embed(compile_graph(qg, default_arch()), qg)
    back = from_bytes(to_bytes(prog))
    regions = [r for r in back.regions if r.kind == "input"]
    assert [r.name for r in regions] == ["input", "input.ids"]
    assert regions[0].addr + regions[0].size <= regions[1].addr  # apart
    assert back.meta["inputs"][1]["layout"] == "tokens" and back.meta["inputs"][1]["bits"] == 32
    g = embedded(back)
    assert g.inputs == qg.inputs and g.input_layouts == ("sequence", "tokens")
    assert np.array_equal(reference.run(g, codes), reference.run(qg, codes))
    got = run_functional(back, default_arch(), codes)
    assert np.array_equal(got.reshape(-1), reference.run(qg, codes).reshape(-1))


def test_a_batch_not_packed_for_the_inputs_is_one_line():
    _, _, qg, _, _ = _run(*_dense_sparse(4))
    with pytest.raises(InputError, match=r"not its 2 inputs packed \(batch, 7\): input \(5,\), "
                                         r"input.ids \(2,\)"):
        qg.quantize_input(np.zeros((2, 6)))
    bad = graph_inputs.pack([np.zeros((1, 5)), np.array([[31, 0]])])
    with pytest.raises(InputError, match="input input.ids: token id 31 is outside"):
        qg.quantize_input(bad)


class Bert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        transformers = pytest.importorskip("transformers")
        torch.manual_seed(0)
        cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32,
                                      max_position_embeddings=16, attn_implementation="eager")
        self.bert = transformers.BertModel(cfg, add_pooling_layer=False)

    def forward(self, input_ids, attention_mask):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def test_runtime_attention_mask_hides_the_padded_keys():
    """BertModel(input_ids, attention_mask) with real padding: the mask is a graph input read by
    the softmax (its bits through a 0/1 table); the golden reference equals the simulator, and
    the non-padded positions' outputs do not depend on the padded ids, as in torch."""
    s, n = 8, 6
    r = np.random.default_rng(0)
    lengths = np.array([8, 5, 3, 8, 6, 4])
    mask = (np.arange(s)[None] < lengths[:, None]).astype(np.int64)
    ids = r.integers(1, 50, (n, s)) * mask
    model = PackedInputs(Bert().eval(), ("input_ids", "attention_mask"), ((s,), (s,)),
                         (True, True))
    x, fg, qg, codes, want = _run(model, [ids, mask])
    assert np.abs(run_float(fg, x) - want).max() < 1e-4
    readers = [nd for nd in qg.nodes if "input.attention_mask" in nd.inputs]
    assert readers and all(nd.op == "embedding" and len(nd.params["table"]) == 2
                           for nd in readers)
    gold = reference.run(qg, codes)
    got = run_functional(compile_graph(qg, default_arch()), default_arch(), codes)
    assert np.array_equal(got.reshape(gold.shape), gold)
    assert cosine(qg.dequantize_output(gold), want) > 0.995
    other = ids + (1 - mask) * r.integers(1, 50, (n, s))  # other ids at the padded positions
    x2 = graph_inputs.pack([other, mask])
    gold2 = reference.run(qg, qg.quantize_input(x2))
    with torch.no_grad():
        want2 = model(torch.from_numpy(x2)).numpy()
    keep = mask.astype(bool)
    assert np.abs(want2[keep] - want[keep]).max() < 1e-5  # torch: padding hidden
    assert np.array_equal(gold2[keep], gold[keep])  # qasic: bit for bit
    assert not np.array_equal(gold2[~keep], gold[~keep])  # (the padded rows did change)
    with pytest.raises(InputError, match="input.attention_mask: token id 2 is outside"):
        qg.quantize_input(graph_inputs.pack([ids, mask * 2]))


def test_the_rtl_dram_image_holds_every_input_region():
    """rtl-run's DRAM images (rtl.run.dram_images) hold each input's codes in its own region,
    as the simulator writes them."""
    from qasic.rtl.run import dram_images
    from qasic.sim.machine import Machine

    _, _, qg, codes, _ = _run(*_dense_sparse(3))
    prog = compile_graph(qg, default_arch())
    images = dram_images(prog, default_arch(), codes)
    m = Machine(prog, default_arch(), len(codes))
    m.dram[:] = images
    parts = graph_inputs.split(qg, codes)
    for name in qg.inputs:
        got = m.read_region(name).reshape(parts[name].shape)
        assert np.array_equal(got, parts[name]), name


def test_the_python_api_takes_a_dict_of_inputs():
    """qasic.evaluate(module, {param: batch}, calibration={param: batch}): packed in the
    forward's order whatever the dict's, bit-exact."""
    import qasic

    r = np.random.default_rng(2)
    batch = {"ids": np.stack([r.integers(0, 30, 6), r.integers(0, 20, 6)], 1),
             "dense": r.standard_normal((6, 5)).astype(np.float32)}
    rec = qasic.evaluate(DenseSparse().eval(), batch, calibration=batch)
    assert rec["bit_exact"] and rec["samples"] == 6 and rec["cosine"] > 0.999
    with pytest.raises(InputError, match=r"input 'dense': shape \(6, 4\); expected \(batch, 5\)"):
        qasic.evaluate(DenseSparse().eval(), {**batch, "dense": batch["dense"][:, :4]},
                       calibration=batch)

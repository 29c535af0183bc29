"""Mixtures of experts (qasic.quant.moe): top-k routing in integers, run densely.

The golden reference's ``topk_mask`` against torch's top-k on integer codes with ties; its
compiled form (compiler.topk: two GEMMs with tables) against the reference, bit for bit; tiny
Mixtral, Qwen2-MoE and OLMoE models (4 experts, top 2) simulated bit-exact with the golden
reference, which follows the float model; DeepSeek-V3's group-limited routing and PhiMoE's
sparsemixer each generating on the simulator equal to the golden reference (their dense forms
against transformers' routers: tests/quant/test_routers.py); a router with another rule
refused in one line."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from benchmarks import family_survey
from qasic.arch.config import default_arch
from qasic.compiler import compile_graph, topk
from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, reference
from qasic.quant.graph import QGraph, QNode, TensorQ
from qasic.quant.intops import topk_rank
from qasic.sim import simulate
from tests.quant.test_hf_llm import VOCAB, D, H, Logits, _ids

transformers = pytest.importorskip("transformers")
E, K = 4, 2  # experts, experts per token


def _mask_graph(e: int, k: int, rows: int, zero_point: int = 0) -> QGraph:
    x = TensorQ(0.1, zero_point, 8)
    node = QNode("route", "topk_mask", ("x",), "m", {"k": k})
    return QGraph("topk", "x", "m", (node,), {"x": x, "m": TensorQ(1.0, 0, 8)},
                  {"x": (rows, e), "m": (rows, e)}, input_layout="sequence")


def _reference_mask(codes: np.ndarray, k: int, zero_point: int = 0) -> np.ndarray:
    g = _mask_graph(codes.shape[-1], k, codes.shape[1], zero_point)
    return reference.run(g, codes)


@pytest.mark.parametrize("e", [2, 4, 8, 16, 60])
def test_topk_mask_selects_torch_topk_values_and_breaks_ties_to_the_lower_index(e):
    """On codes drawn from 5 values (ties everywhere): the selected codes are torch.topk's
    values, and the selected experts are a stable descending sort's first k (the lower index
    wins a tie; torch.topk's own indices among equal values vary, so they are not the spec).
    With distinct codes the experts are torch.topk's."""
    rng = np.random.default_rng(e)
    for k in sorted({1, 2, e // 2, e - 1, e} - {0}):
        codes = rng.integers(-2, 3, size=(3, 7, e))
        got = _reference_mask(codes, k)
        assert set(np.unique(got)) <= {0, 1} and (got.sum(-1) == k).all()
        t = torch.from_numpy(codes).double()
        values = torch.topk(t, k, dim=-1).values.sort(-1).values
        picked = torch.from_numpy(np.sort(np.where(got == 1, codes, 10**6), -1)[..., :k])
        assert torch.equal(picked.double(), values)
        stable = torch.sort(-t, dim=-1, stable=True).indices[..., :k]
        want = torch.zeros_like(t).scatter_(-1, stable, 1.0).numpy()
        np.testing.assert_array_equal(got, want)
        distinct = np.stack([rng.permutation(256)[:e] - 128 for _ in range(21)]).reshape(3, 7, e)
        want = torch.zeros(3, 7, e).scatter_(
            -1, torch.topk(torch.from_numpy(distinct).double(), k).indices, 1.0).numpy()
        np.testing.assert_array_equal(_reference_mask(distinct, k), want)


def test_topk_rank_counts_the_elements_that_beat_each():
    assert topk_rank(np.array([1, 3, 3, 1, 3, 0])).tolist() == [3, 0, 1, 4, 2, 5]


@pytest.mark.parametrize(("e", "k", "zp"), [(4, 2, 0), (8, 1, -17), (8, 7, 5), (150, 3, 0)])
def test_the_compiled_topk_mask_is_the_reference_bit_for_bit(e, k, zp):
    """compiler.topk's chain (the differences clamp to int8 and keep their sign; the rank
    saturates at 127, past any k) on the simulator against the reference's definition, on
    extreme codes (-128 against 127: differences of 255) and ties. Structure: two GEMM layers
    (each linear fused with its table), E (E - 1) pair columns."""
    rng = np.random.default_rng(e + k)
    codes = rng.choice([-128, -127, 0, 1, 2, 126, 127], size=(4, 5, e))
    g = _mask_graph(e, k, 5, zp)
    arch = default_arch()
    program = compile_graph(g, arch)
    got = simulate(program, arch, codes=codes).outputs
    np.testing.assert_array_equal(np.asarray(got).reshape(codes.shape), reference.run(g, codes))
    expanded = topk.expand(g)
    assert [n.op for n in expanded.nodes] == ["linear", "lut", "linear", "lut"]
    assert expanded.shapes["route.diff"] == (5, e * (e - 1))
    assert [layer["kind"] for layer in program.layers] == ["gemm", "gemm"]


def test_renormalized_routing_reads_its_row_mask_step_by_step_on_a_small_arch():
    """The routing weights of a renormalizing router: a softmax whose second input is the
    top-k mask of its own scores (a row mask of the scores' shape). On a 256-byte output
    scratchpad a step holds 5 rows (in, out and mask bytes), so 40 tokens take 8 SOFTMAX steps,
    each reading its own mask rows (mask_stride = E); bit for bit the reference, whose rows sum
    to 1 over exactly their k experts."""
    from qasic.quant import intops
    from tests.archs import small_arch

    e, k, rows = 8, 2, 40
    x = TensorQ(0.05, 3, 8)
    scale, zp = intops.softmax_encoding(8)
    nodes = (QNode("route", "topk_mask", ("x",), "m", {"k": k}),
             QNode("weights", "softmax", ("x", "m"), "w", {"causal": False},
                   {"table": intops.exp_table(x.scale, x.bits)}))
    g = QGraph("routing", "x", "w", nodes, {"x": x, "m": TensorQ(1.0, 0, 8),
                                            "w": TensorQ(scale, zp, 8)},
               {t: (rows, e) for t in ("x", "m", "w")}, input_layout="sequence")
    codes = np.random.default_rng(1).integers(-128, 128, size=(3, rows, e))
    codes[0, :, :4] = 7  # ties
    arch = small_arch(param_sram_bytes=2048)
    program = compile_graph(g, arch)
    soft = [i for i in program.instrs if i.op == "SOFTMAX"]
    assert len(soft) == 8 and all(i.args["mask_stride"] == e and i.args["masked"] for i in soft)
    want = reference.run(g, codes)
    got = simulate(program, arch, codes=codes).outputs
    np.testing.assert_array_equal(np.asarray(got).reshape(want.shape), want)
    picked = reference.run(g, codes, keep=True)["m"]
    assert ((want > 0) <= (picked == 1)).all() and (want.sum(-1) > 120).all()


def test_topk_mask_of_more_than_127_is_refused_in_one_line():
    g = _mask_graph(200, 128, 2)
    with pytest.raises(UnsupportedOpError) as e:
        compile_graph(g, default_arch())
    assert str(e.value) == ("topk_mask route: top-128 of 200 int codes; it compares INT codes, "
                            "k in 1..127")


def _moe(name: str, layers: int = 2, **extra):
    t = transformers
    torch.manual_seed(0)
    experts = {"Mixtral": {"num_local_experts": E}, "Qwen2Moe": {
        "num_experts": E, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64},
        "Olmoe": {"num_experts": E, "pad_token_id": 1, "eos_token_id": 2},
        "GraniteMoe": {"num_local_experts": E},
        "GraniteMoeShared": {"num_local_experts": E, "shared_intermediate_size": 64},
        "GraniteMoeHybrid": {"num_local_experts": E, "shared_intermediate_size": 64,
                             "layer_types": ["attention"] * layers},  # no Mamba layer
        "HunYuanMoEV1": {"num_experts": E, "num_local_experts": E, "moe_topk": K,
                         "head_dim": 16},
        "MiniMax": {"num_local_experts": E, "head_dim": 16},
        "Phimoe": {"num_local_experts": E},
        "GptOss": {"num_local_experts": E, "head_dim": 16},
        # attention layers only (Mamba's: tests/quant/test_ssm.py), each with experts
        "Jamba": {"num_experts": E, "expert_layer_period": 1, "expert_layer_offset": 0,
                  "attn_layer_period": 1, "attn_layer_offset": 0,
                  "use_mamba_kernels": False}}[name]
    config = getattr(t, f"{name}Config")(
        vocab_size=VOCAB, hidden_size=D, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=H, num_key_value_heads=2, num_experts_per_tok=K,
        **experts, **extra)
    return t.AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize(("name", "inter", "normalized", "cosine"), [
    ("Mixtral", 128, True, 0.999), ("Qwen2Moe", 32, False, 0.999), ("Olmoe", 128, False, 0.999),
    ("GraniteMoe", 128, True, 0.999), ("GraniteMoeShared", 128, True, 0.995),
    ("GraniteMoeHybrid", 128, True, 0.995),
    ("HunYuanMoEV1", 128, True, 0.999), ("MiniMax", 128, True, 0.999),
    ("Jamba", 128, False, 0.999)])
def test_mixtures_of_experts_run_densely_and_bit_exact(name, inter, normalized, cosine):
    """Per layer: the router linear, one topk_mask (k = 2), the routing weights (Mixtral,
    GraniteMoE (its router is the block's ``router``: the softmax of the top k's logits),
    HunYuan-MoE (its router matrix is a Linear ``wg``) and MiniMax renormalize: a softmax with
    the mask as its row mask; Qwen2-MoE, OLMoE and Jamba do not: softmax times the mask),
    every expert on every token (gate and up linears of E I features, down of E I inputs). The
    golden reference follows the float model (cosine > 0.999; GraniteMoeShared and GraniteMoeHybrid
    (attention layers only) > 0.995: the survey measured 0.9954 and 0.9971, their shared MLP's
    product adds a rounding) and the simulator equals it bit for bit."""
    import qasic

    model = _moe(name)
    x = _ids(8)
    graph = qasic.quant.capture(Logits(model), torch.from_numpy(x[:2]))
    masks = [n for n in graph.nodes if n.op == "topk_mask"]
    assert len(masks) == 2 and all(n.attrs["k"] == K for n in masks)
    assert all(graph.shapes[n.output] == (16, E) for n in masks)
    wide = [n for n in graph.nodes if n.op == "linear"
            and n.params["weight"].shape == (E * inter, D)]
    assert len(wide) == 2 * 2  # gate and up, per layer
    downs = [n for n in graph.nodes if n.op == "linear"
             and n.params["weight"].shape == (D, E * inter)]
    assert len(downs) == 2
    routed = [n for n in graph.nodes if n.op == "softmax" and len(n.inputs) == 2
              and n.inputs[1] in {m.output for m in masks}]
    assert len(routed) == (2 if normalized else 0)
    record = qasic.evaluate(Logits(model), x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > cosine, record["cosine"]


def test_a_router_without_norm_topk_prob_is_probed_for_renormalization():
    """Mixtral's router renormalizes its top-k weights, Jamba's leaves them (its docstring);
    neither has norm_topk_prob: the rule follows the router's own forward on a probe."""
    from qasic.quant import routers

    assert routers.renormalizes(_moe("Mixtral", layers=1).model.layers[0].mlp.gate)
    assert not routers.renormalizes(_moe("Jamba", layers=1).model.layers[0].feed_forward.router)


def test_a_router_with_another_rule_is_refused_in_one_line():
    """Mixtral's router always renormalizes; told not to, the dense form (which reads
    norm_topk_prob) no longer equals the block's forward: refused, naming the block."""
    from qasic.quant import capture

    model = _moe("Mixtral", layers=1)
    model.model.layers[0].mlp.gate.norm_topk_prob = False
    with pytest.raises(UnsupportedOpError) as e:
        capture(Logits(model), torch.from_numpy(_ids(2)))
    msg = str(e.value)
    assert msg.startswith("mixture-of-experts block model.model.layers.0.mlp "
                          "(MixtralSparseMoeBlock): its dense form (softmax top-k (Mixtral, "
                          "Qwen2-/Qwen3-MoE, OLMoE), top 2) differs from its own forward by up to ")
    assert msg.endswith("; its router or experts follow another rule") and "\n" not in msg


def _glm(**extra):
    t = transformers
    torch.manual_seed(0)
    config = t.Glm4MoeConfig(
        vocab_size=VOCAB, hidden_size=D, intermediate_size=128,
        num_attention_heads=H, num_key_value_heads=2, max_position_embeddings=64,
        moe_intermediate_size=32, first_k_dense_replace=0,
        **{"n_routed_experts": E, "num_experts_per_tok": K, "n_group": 1, "topk_group": 1,
           "num_hidden_layers": 2, **extra})
    model = t.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # a drawn selection bias (HF: zeros), so that it matters
        for layer in model.model.layers:
            layer.mlp.gate.e_score_correction_bias.normal_(0.0, 0.05)
    return model


def test_sigmoid_routers_with_a_selection_bias_run_densely_and_bit_exact():
    """GLM-4-MoE's (DeepSeek-V3's) router: the top k of sigmoid(logits) + a selection bias,
    weights the k sigmoid scores over their sum times routed_scaling_factor, computed as the
    masked softmax of log sigmoid(logits) (no divide). Per layer one topk_mask; bit-exact,
    cosine > 0.999."""
    import qasic

    model, x = _glm(), _ids(8)
    graph = qasic.quant.capture(Logits(model), torch.from_numpy(x[:2]))
    masks = [n for n in graph.nodes if n.op == "topk_mask"]
    assert len(masks) == 2
    routed = [n for n in graph.nodes if n.op == "softmax" and len(n.inputs) == 2]
    assert [n.inputs[1] for n in routed] == [m.output for m in masks]
    record = qasic.evaluate(Logits(model), x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_a_selection_bias_on_the_probabilities_runs_densely_and_bit_exact():
    """ERNIE-4.5-MoE's router: the top k of softmax(logits) + a selection bias (its
    moe_statics, drawn here: HF's are zeros), weights the k probabilities over their sum (the
    masked softmax of the logits). Per layer one topk_mask reading the biased probabilities and
    one masked softmax reading the logits; bit-exact, cosine > 0.995 (the selection compares
    softmax codes, steps of 1/127)."""
    import qasic

    t = transformers
    torch.manual_seed(0)
    config = t.Ernie4_5_MoeConfig(
        vocab_size=VOCAB, hidden_size=D, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=H, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
        moe_num_experts=E, moe_k=K, moe_intermediate_size=32, moe_layer_start_index=0)
    model = t.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.gate.moe_statics.e_score_correction_bias.normal_(0.0, 0.1)
    x = _ids(8)
    graph = qasic.quant.capture(Logits(model), torch.from_numpy(x[:2]))
    masks = [n for n in graph.nodes if n.op == "topk_mask"]
    assert len(masks) == 2 and all(n.attrs["k"] == K for n in masks)
    routed = [n for n in graph.nodes if n.op == "softmax" and len(n.inputs) == 2]
    assert [n.inputs[1] for n in routed] == [m.output for m in masks]
    record = qasic.evaluate(Logits(model), x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.995, record["cosine"]


def _dbrx(**ffn):
    t = transformers
    torch.manual_seed(0)
    config = t.DbrxConfig(
        vocab_size=VOCAB, d_model=D, n_heads=H, n_layers=2, max_seq_len=64,
        attn_config={"kv_n_heads": 2, "clip_qkv": 8.0, "rope_theta": 10000.0},
        ffn_config={"ffn_hidden_size": 32, "moe_num_experts": E, "moe_top_k": K, **ffn})
    model = t.AutoModelForCausalLM.from_config(config).eval()
    # the family survey's weights (every layer at unit gain): cosine 0.9990. HF's own init
    # scores 0.937, and 0.973 with only the router and the experts at unit gain (measured, not
    # investigated further: DBRX's other layers stay at normal(0.02))
    torch.manual_seed(0)
    return family_survey.reinit(model)


def test_dbrx_blocks_run_densely_and_bit_exact():
    """DBRX's block has its own shape (a router Linear giving logits only, the top k and its
    1-norm renormalization on the block, 2-D expert stacks w1, v1, w2 (E I, D)): per layer
    one topk_mask and a masked softmax, gate and up linears of E I features, a down of E I
    inputs; bit-exact, cosine > 0.998."""
    import qasic

    model, x = _dbrx(), _ids(8)
    graph = qasic.quant.capture(Logits(model), torch.from_numpy(x[:2]))
    masks = [n for n in graph.nodes if n.op == "topk_mask"]
    assert len(masks) == 2 and all(n.attrs["k"] == K for n in masks)
    routed = [n for n in graph.nodes if n.op == "softmax" and len(n.inputs) == 2]
    assert [n.inputs[1] for n in routed] == [m.output for m in masks]
    ffn = [n for n in graph.nodes if n.op == "linear" and ".ffn." in n.name]  # Wqkv: (128, D)
    wide = [n for n in ffn if n.params["weight"].shape == (E * 32, D)]
    downs = [n for n in ffn if n.params["weight"].shape == (D, E * 32)]
    assert len(wide) == 2 * 2 and len(downs) == 2
    record = qasic.evaluate(Logits(model), x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.998, record["cosine"]


def test_dbrx_weights_normalized_by_another_norm_are_refused_in_one_line():
    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(Logits(_dbrx(moe_normalize_expert_weights=2.0)), torch.from_numpy(_ids(2)))
    assert str(e.value) == (
        "mixture-of-experts block model.transformer.blocks.0.ffn (DbrxFFN): its top-k weights "
        "are divided by their 2-norm; supported: the 1-norm (a renormalized softmax) or none")


def _generates_exactly(model: torch.nn.Module) -> tuple[QGraph, float]:
    """The model quantized (16 positions), its prompt of 3 ids then 5 tokens generated on the
    simulator (prefill and decode programs) equal to the golden reference's, every step's logit
    codes too; (the graph, the golden reference's cosine to the float logits)."""
    from qasic.generate import Session, golden_tokens
    from qasic.quant.quantize import quantize

    x = _ids(8)
    full = quantize(Logits(model), (torch.from_numpy(x[:1]),), x, QuantConfig())
    ids = np.array([22, 260, 83])
    got, rows = Session(full, len(ids), default_arch()).generate(ids, 5)
    want, ref_rows = golden_tokens(full, ids, 5)
    assert got == want and len(set(want)) > 1
    for a, b in zip(rows, ref_rows, strict=True):
        np.testing.assert_array_equal(a, b)
    with torch.no_grad():
        ref = Logits(model)(torch.from_numpy(x[:2])).numpy().ravel()
    out = full.tensors[full.output]
    q = (reference.run(full, x[:2]).astype(np.float64) - out.zero_point).ravel() * out.scale
    return full, float(q @ ref / np.linalg.norm(q) / np.linalg.norm(ref))


def test_group_limited_routing_runs_densely_bit_exact_and_generates_exactly():
    """GLM-4-MoE with DeepSeek-V3's group-limited routing (8 experts in 2 groups of 4, the best
    group kept, top 2): per layer a topk_mask(., 2) over each group's 4 choices, one over the 2
    group scores (k = 1), one over the 8 experts (k = 2) feeding the masked softmax; the
    simulator's prefill and decode steps equal the golden reference, which follows the float
    model (cosine > 0.999; measured 0.99975)."""
    model = _glm(n_routed_experts=8, n_group=2, topk_group=1, num_hidden_layers=1)
    full, cosine = _generates_exactly(model)
    masks = [n for n in full.nodes if n.op == "topk_mask"]
    assert [(full.shapes[n.inputs[0]][1:], n.attrs["k"]) for n in masks] == [
        ((2, 4), 2), ((2,), 1), ((8,), 2)]
    routed = [n for n in full.nodes if n.op == "softmax" and len(n.inputs) == 2]
    assert [n.inputs[1] for n in routed] == [masks[-1].output]
    assert cosine > 0.999, cosine


def test_routers_that_select_more_experts_than_their_kept_groups_hold_are_refused():
    """Top 3 experts from 1 kept group of 2 (transformers would take some of the -inf masked
    ones): no dense rule, refused in one line naming the router, its groups and the rules."""
    from qasic.quant import capture

    model = _glm(n_routed_experts=8, n_group=4, topk_group=1, num_experts_per_tok=3,
                 num_hidden_layers=1)
    with pytest.raises(UnsupportedOpError) as e:
        capture(Logits(model), torch.from_numpy(_ids(2)))
    assert str(e.value).startswith(
        "mixture-of-experts block model.model.layers.0.mlp (Glm4MoeMoE): its router "
        "Glm4MoeTopkRouter (tensors e_score_correction_bias, weight, 4 expert groups, top 1) "
        "has no dense rule; supported: softmax top-k")
    assert "\n" not in str(e.value)


def test_phimoe_runs_densely_bit_exact_and_generates_exactly():
    """PhiMoE (one layer, 4 experts): its 2 picks are topk_mask(., 1) and topk_mask(., 2);
    each pick's near set a 0/1 table (codes 0/1: a softmax row mask reads code != 0) feeding a
    masked softmax, with more than the pick for some tokens; the simulator's prefill and
    decode steps equal the golden reference, which follows the float model (cosine > 0.999;
    measured 0.99940)."""
    from qasic.quant.encodings import INTEGER_CODES

    full, cosine = _generates_exactly(_moe("Phimoe", layers=1))
    masks = [n for n in full.nodes if n.op == "topk_mask"]
    assert [n.attrs["k"] for n in masks] == [1, 2]
    routed = [n for n in full.nodes if n.op == "softmax" and len(n.inputs) == 2]
    producers = {n.output: n for n in full.nodes}
    near = [producers[n.inputs[1]] for n in routed]
    assert len(routed) == 2 and all(n.op == "lut" and n.attrs[INTEGER_CODES] == 8 for n in near)
    assert all(full.tensors[n.output] == TensorQ(1.0, 0, 8) for n in near)
    codes = reference.run(full, _ids(8), keep=True)
    for n in near:  # each pick's near set is the pick alone for some tokens, more for others
        sizes = set(codes[n.output].sum(-1).ravel().tolist())
        assert 1 in sizes and max(sizes) > 1, sizes
    assert cosine > 0.999, cosine


class _Block(torch.nn.Module):
    """A routed block alone: its output without the router's scores."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x)[0]


def _gpt_oss_block(limit: float) -> torch.nn.Module:
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP

    torch.manual_seed(0)
    config = transformers.GptOssConfig(
        hidden_size=D, intermediate_size=32, num_local_experts=E, num_experts_per_tok=K,
        swiglu_limit=limit)
    block = GptOssMLP(config).eval()
    with torch.no_grad():  # HF's router and biases start at zero; drawn so that they matter
        for p in block.parameters():
            p.normal_(0.0, 0.3)
    return _Block(block).eval()


def test_gpt_oss_blocks_run_densely_and_bit_exact():
    """GPT-OSS's block (its router biased; gate and up interleaved in gate_up_proj, biased and
    clamped, at limit 2 so that the clamps bind; the GLU (up + 1) gate sigmoid(alpha gate); a
    biased down_proj): its dense form equals its own forward, and captured it is one
    topk_mask, a masked softmax, gate and up linears of E I features (each clamped), a down
    of E I inputs plus the down biases weighted by the routing (a linear of E inputs);
    bit-exact, cosine > 0.998 (measured 0.9990)."""
    import qasic
    from qasic.quant import moe

    model = _gpt_oss_block(limit=2.0)
    block = model.block
    x = np.random.default_rng(0).normal(size=(8, 8, D)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x))
        with moe.dense(block):
            got = model(torch.from_numpy(x))
        gate_up = torch.from_numpy(x) @ block.experts.gate_up_proj[0]
    assert (gate_up.abs() > 2.0).float().mean() > 0.1  # the clamps bind
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    graph = qasic.quant.capture(model, torch.from_numpy(x[:2]))
    masks = [n for n in graph.nodes if n.op == "topk_mask"]
    assert len(masks) == 1 and masks[0].attrs["k"] == K
    routed = [n for n in graph.nodes if n.op == "softmax" and len(n.inputs) == 2]
    assert [n.inputs[1] for n in routed] == [masks[0].output]
    shapes = sorted(n.params["weight"].shape for n in graph.nodes if n.op == "linear")
    assert shapes == sorted([(E, D), (E * 32, D), (E * 32, D), (D, E * 32), (D, E),
                             (E * 32, E)])
    assert sum(n.op == "clamp" for n in graph.nodes) == 2
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.998, record["cosine"]


def test_routed_blocks_in_another_shape_are_refused_in_one_line():
    """An ``experts`` module beside an int top_k in none of the shapes run densely (here a
    GPT-OSS block whose experts lost their clamp limit and their has_gate flag: with the flag
    the expert interface's shape would still run them): refused naming the block, before
    torch.export meets its top-k."""
    from qasic.quant import capture

    model = _gpt_oss_block(limit=7.0)
    del model.block.experts.limit, model.block.experts.has_gate
    with pytest.raises(UnsupportedOpError) as e:
        capture(model, torch.zeros(1, 4, D))
    msg = str(e.value)
    assert msg == (
        "mixture-of-experts block block (GptOssMLP): in none of the 16 shapes run densely "
        "(Llama 4's, Mixtral's stacked experts, LongCat-Flash's, ZAYA's, Gemma 4's, DBRX's, "
        "GPT-OSS's, Inkling's, Ergo's, MuSE Spark's, Switch Transformers', transformers' expert "
        "interface, listed SwiGLU experts, DeepSeek-MoE's DeepseekMoE, JetMoE's MLP, JetMoE's "
        "mixture of attention experts; each shape's modules and names: docs/ops.md, \"Mixtures "
        "of experts\"); its top-k routing is data dependent")


L4_VOCAB, L4_S = 100, 12


def _llama4(vocab: int = L4_VOCAB, **extra):
    """Llama 4's text model, tiny: hidden 32, 2 layers of 2 heads (head_dim 16), in each a
    block of 2 experts (top 1: Llama 4's) and a shared one. Layer 0 is roped (complex-valued
    RoPE), q/k normed, with chunked attention (chunks of 4 tokens); layer 1 has no RoPE
    (no_rope_layer_interval 2: HF's default 4 puts the first at layer 3), full causal attention
    and temperature tuning (floor_scale 4: at HF's 8192 the scale is 1 below 8,191 tokens)."""
    t = transformers
    torch.manual_seed(0)
    config = t.Llama4TextConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=32, intermediate_size_mlp=64,
        num_attention_heads=2, num_key_value_heads=2, head_dim=16, num_local_experts=2,
        num_experts_per_tok=1, max_position_embeddings=64,
        **{"num_hidden_layers": 2, "no_rope_layer_interval": 2, "attention_chunk_size": 4,
           "floor_scale": 4, **extra})
    return t.Llama4ForCausalLM(config).eval()


def _l4_ids(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, L4_VOCAB, (batch, L4_S))


def test_llama4_runs_densely_and_bit_exact():
    """Llama 4 (it crashed in HF's block: the router was replaced as Mixtral's). Per layer the
    router linear, one topk_mask (k = 1), the scores sigmoid(logits) times the mask (no routing
    softmax), every expert's gate and up of the unscaled input (E I = 64 features) each times
    the scores repeated over the expert's columns (a linear of E inputs), one down of E I
    inputs; the shared expert beside. Layer 0's complex RoPE is GPT-J's (a +-1 linear and two
    products by constants per q and k), its softmax reads the chunked causal mask as a
    constant; layer 1's is causal after its queries are scaled by the temperature (a constant
    by position: 1 below position 3, 1 + 0.1 ln(1 + floor((p + 1) / 4)) from it). The float
    graph follows torch to 1e-5, the golden reference follows it (cosine > 0.999) and the
    simulator equals the reference."""
    import qasic
    from tests.quant.transformer_nets import check

    model, x = _llama4(), _l4_ids()
    graph, _, cosine = check(Logits(model), x, float_atol=1e-5)
    assert cosine > 0.999, cosine
    masks = [n for n in graph.nodes if n.op == "topk_mask"]
    assert len(masks) == 2 and all(n.attrs["k"] == 1 for n in masks)
    assert not any(n.op == "softmax" and len(n.inputs) == 2 for n in graph.nodes)
    shapes = Counter(n.params["weight"].shape for n in graph.nodes if n.op == "linear")
    assert shapes[(64, 32)] == 4 and shapes[(32, 64)] == 2 and shapes[(64, 2)] == 2
    assert shapes[(16, 16)] == 2  # layer 0's rotations of q and k
    soft = [n for n in graph.nodes if n.op == "softmax"]
    chunked = np.tril(np.kron(np.eye(3), np.ones((4, 4))))  # (12, 12): causal within chunks
    np.testing.assert_array_equal(soft[0].params["valid"][0], chunked)
    assert not soft[0].attrs["causal"] and soft[1].attrs["causal"]
    consts = {n.output: n.params["value"] for n in graph.nodes if n.op == "constant"}
    temp = [consts[n.inputs[1]] for n in graph.nodes if n.op == "mul"
            and n.inputs[1] in consts and ".layers.1." in n.name]
    want = 1 + 0.1 * np.log1p(np.floor((np.arange(L4_S) + 1) / 4))
    assert len(temp) == 1 and np.allclose(temp[0][:, 0, 0], want) and len(set(want)) == 4
    record = qasic.evaluate(Logits(model), x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_llama4s_chunks_and_temperature_change_the_output():
    """The test config exercises what it claims: without chunking (HF's default chunk, 8,192)
    or without temperature tuning the float model's logits move by more than 0.1 and 1e-4,
    beyond the 1e-5 to which the float graph follows torch above."""
    x = torch.from_numpy(_l4_ids())
    model = _llama4()
    with torch.no_grad():
        want = Logits(model)(x)
        for extra, moved in (({"attention_chunk_size": 8192}, 0.1),
                             ({"attn_temperature_tuning": False}, 1e-4)):
            other = _llama4(**extra)
            other.load_state_dict(model.state_dict())
            assert float((Logits(other)(x) - want).abs().max()) > moved, extra


def test_llama4s_dense_experts_add_exactly_zero_for_the_experts_a_token_did_not_pick():
    """An expert reads its input times the token's score, 0 where the token did not pick it, and
    has no bias: in the golden reference its GLU output (the down linear's input) is exactly
    the zero point in every column of every expert outside the token's top k, so the dense form
    adds nothing a sparse dispatch would not."""
    from qasic.quant.quantize import quantize

    x = _l4_ids()
    full = quantize(Logits(_llama4()), (torch.from_numpy(x[:1]),), x, QuantConfig())
    codes = reference.run(full, x, keep=True)
    masks = [n.output for n in full.nodes if n.op == "topk_mask"]
    glu = [n.inputs[0] for n in full.nodes if n.op == "linear"
           and n.params["weight"].shape == (32, 64)]
    assert len(masks) == len(glu) == 2
    for m, h in zip(masks, glu, strict=True):
        unpicked = np.repeat(codes[m] == 0, 32, axis=-1)  # (N, S, E I): expert e's 32 columns
        assert unpicked.any() and (~unpicked).any()
        assert (codes[h][unpicked] == full.tensors[h].zero_point).all()
        assert (codes[h][~unpicked] != full.tensors[h].zero_point).any()


def test_a_llama4_router_with_a_bias_is_refused_in_one_line():
    from qasic.quant import capture

    model = _llama4(num_hidden_layers=1)
    router = model.model.layers[0].feed_forward.router
    router.bias = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(UnsupportedOpError) as e:
        capture(Logits(model), torch.from_numpy(_l4_ids(2)))
    assert str(e.value) == ("mixture-of-experts block model.model.layers.0.feed_forward "
                            "(Llama4TextMoe): its router Llama4Router has tensors bias, weight; "
                            "supported: Llama 4's, a weight alone")


# the moe lane (session 13): the family survey's rows of the layouts added, smaller
_SURVEY_MOE = {
    # experts wider than the block (pre_expert_proj to 48), each expert's output normalized
    # by the experts' own norm module, a sigmoid router's output_multiplier
    "MuseSparkTextModel": ({"moe_hidden_size": 48}, "MuSE Spark's", 0.999),
    # 2 identity experts beside the 4 routed (the survey's: 256 by default); its one layer
    # (num_hidden_layers 2: two attention and MLP sublayers, the MoE a shortcut)
    "LongcatFlashModel": ({"zero_expert_num": 2}, "LongCat-Flash's", 0.995),
    # Gemma 4's decoder layer holding its router and experts (26B-A4B's form), one layer
    "Gemma4TextModel@moe": ({"num_hidden_layers": 1}, "Gemma 4's", 0.999),
}


@pytest.mark.parametrize("name", sorted(_SURVEY_MOE))
def test_the_survey_decoders_new_layouts_run_bit_exact_and_generate_exactly(name, monkeypatch):
    """MuSE Spark, LongCat-Flash and Gemma 4's MoE (the survey's rows, smaller): each block's
    layout the expected one, a topk_mask per block, the simulator bit-exact with the golden
    reference (cosine to the float model > 0.999; LongCat's > 0.995, measured 0.9968) and the
    survey's generate check exact: a prefill and decode steps on the simulator, every token and
    every step's output codes the golden reference's."""
    import qasic
    from qasic.quant import capture, moe

    family, config, kw, model_kw, kind, size = family_survey.MODELS[name]
    extra, expect, cosine = _SURVEY_MOE[name]
    monkeypatch.setitem(family_survey.MODELS, name,
                        (family, config, kw | extra, model_kw, kind, size))
    model, x, _ = family_survey.build(name)
    blocks = moe.blocks(model)
    assert blocks and all(expect in moe.layout(b).name for _, b in blocks)
    graph = capture(model, torch.from_numpy(x[:1]))
    masks = [n for n in graph.nodes if n.op == "topk_mask"]
    assert len(masks) == len(blocks) and all(n.attrs["k"] == 2 for n in masks)
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > cosine, record["cosine"]
    assert family_survey.generation(model, x)["generate"] == "exact"

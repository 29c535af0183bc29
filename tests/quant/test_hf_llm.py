"""The Llama family of transformers and its cousins from tiny configs (hidden 64, 2 layers, 4
heads, vocab 300, 16 tokens): Llama, Qwen2 and Mistral (RMSNorm written out between casts, RoPE,
grouped-query attention, SwiGLU), Gemma (RMSNorm of (1 + weight), one K/V head, GELU-tanh
gating, embedding * sqrt(D)), Phi (partial RoPE, LayerNorm, parallel attention and MLP),
GPT-NeoX (fused QKV chunked along the last axis) and GPT-J (partial RoPE on interleaved channel
pairs: rotate_every_two's stack and flatten). Each captures with its float graph following
torch, quantizes, compiles and simulates bit-exact (``qasic.evaluate``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.quant.transformer_nets import check

transformers = pytest.importorskip("transformers")
VOCAB, S, H, D = 300, 16, 4, 64


def _family(name: str):
    torch.manual_seed(0)
    t = transformers
    common = {"vocab_size": VOCAB, "hidden_size": D, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": H, "max_position_embeddings": 64}
    make = {
        "llama": lambda: t.LlamaForCausalLM(t.LlamaConfig(**common, num_key_value_heads=2)),
        "qwen2": lambda: t.Qwen2ForCausalLM(t.Qwen2Config(**common, num_key_value_heads=2)),
        "mistral": lambda: t.MistralForCausalLM(t.MistralConfig(**common,
                                                                num_key_value_heads=2)),
        "gemma": lambda: t.GemmaForCausalLM(t.GemmaConfig(**common, num_key_value_heads=1,
                                                          head_dim=16)),
        "phi": lambda: t.PhiForCausalLM(t.PhiConfig(**common)),
        "gptneox": lambda: t.GPTNeoXForCausalLM(t.GPTNeoXConfig(**common)),
        "gptj": lambda: t.GPTJForCausalLM(t.GPTJConfig(vocab_size=VOCAB, n_embd=D, n_layer=2,
                                                       n_head=H, rotary_dim=8, n_inner=128,
                                                       n_positions=64)),
        "codegen": lambda: t.CodeGenForCausalLM(t.CodeGenConfig(
            vocab_size=VOCAB, n_embd=D, n_layer=2, n_head=H, rotary_dim=8, n_inner=128,
            n_positions=64)),
        "cohere": lambda: t.CohereForCausalLM(t.CohereConfig(**common, num_key_value_heads=2)),
        "t5enc": lambda: t.T5EncoderModel(t.T5Config(vocab_size=VOCAB, d_model=D, d_kv=16,
                                                     d_ff=128, num_layers=2, num_heads=H)),
    }
    return make[name]().eval()


class Logits(nn.Module):
    """ids -> the LM head's logits, or T5's encoder states (check compares tensors)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        if isinstance(self.model, transformers.T5EncoderModel):
            return self.model(input_ids=ids).last_hidden_state
        return self.model(input_ids=ids, use_cache=False).logits


def _check(name: str, x: np.ndarray):
    return check(Logits(_family(name)), x, float_atol=2e-4)


def _ids(batch: int = 24) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, S))


def _consts(graph) -> dict:
    return {n.output: n.params["value"] for n in graph.nodes if n.op == "constant"}


def _rope(graph) -> tuple[list, list]:
    """(products by a constant table, rotate_half linears) of the graph."""
    consts = _consts(graph)
    products = [n for n in graph.nodes if n.op == "mul" and n.inputs[1] in consts
                and consts[n.inputs[1]].ndim == 3]
    rotations = [n for n in graph.nodes if n.op == "linear" and n.name.split(".")[-1]
                 .startswith(("cat", "stack"))]
    return products, rotations


# measured cosine of the golden reference to torch (24 samples) / of qasic.evaluate (2)
COSINE = {"llama": (0.9995, 0.9995), "qwen2": (0.9994, 0.9994), "mistral": (0.9995, 0.9995),
          "gemma": (0.9995, 0.9995), "phi": (0.9995, 0.9995), "gptneox": (0.9995, 0.9995),
          "gptj": (0.9994, 0.9994), "t5enc": (0.9996, 0.9996)}
ROTARY = {"llama", "qwen2", "mistral", "gemma", "phi", "gptneox", "gptj"}


@pytest.mark.parametrize("name", list(COSINE))
def test_llm_family_captures_and_runs_bit_exact(name):
    import qasic

    model = _family(name)
    x = _ids()
    graph, _, cos = check(Logits(model), x, float_atol=2e-4)
    assert cos > 0.99, cos
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]
    products, rotations = _rope(graph)
    if name not in ROTARY:
        assert not products and not rotations
        return
    # per layer, q and k: q * cos and rotate_half(q) * sin, each by its constant table
    assert len(products) == 2 * 2 * 2 and len(rotations) == 2 * 2
    for r in rotations:  # a signed permutation of each head's rotated channels
        w = r.params["weight"]
        assert set(np.unique(w)) <= {-1.0, 0.0, 1.0} and (np.abs(w).sum(1) == 1).all()
        negated = (w.min(1) == -1).tolist()  # rotate_half: the first half; GPT-J's
        n = w.shape[0]                       # rotate_every_two: the even channels
        assert negated == ([k % 2 == 0 for k in range(n)] if name == "gptj" else
                           [k < n // 2 for k in range(n)])


@pytest.mark.parametrize("name", ["llama", "gemma"])
def test_rms_norms_between_casts_are_norm_nodes(name):
    graph, _, _ = _check(name, _ids(4))
    norms = [n for n in graph.nodes if n.op == "norm"]
    assert len(norms) == 2 * 2 + 1 and not any(n.attrs["center"] for n in norms)
    layer = next(n for n in norms if n.name.startswith("model.model.layers.0.input_layernorm"))
    model = _family(name)
    w = model.model.layers[0].input_layernorm.weight.detach().double().numpy()
    # Gemma scales by (1 + weight)
    np.testing.assert_allclose(layer.params["gamma"], w + (name == "gemma"), rtol=1e-6)
    assert "mean" not in {n.op for n in graph.nodes}


def test_grouped_query_heads_and_swiglu():
    graph, _, _ = _check("llama", _ids(4))
    consts = _consts(graph)
    # repeat_kv: each of the 2 K/V heads read twice (a column of ones per head), for K and V
    repeats = [n for n in graph.nodes if n.op == "matmul" and n.inputs[0] in consts
               and n.name.split(".")[-1].startswith("expand")]
    assert len(repeats) == 2 * 2
    assert all(consts[n.inputs[0]].tolist() == [[[1.0], [1.0]]] * 2 for n in repeats)
    # SwiGLU: down(silu(gate(x)) * up(x)), a product of two activations
    prods = [n for n in graph.nodes if n.op == "mul" and not set(n.inputs) & set(consts)]
    assert [n.name.rsplit("_", 1)[0] for n in prods] == ["model.model.layers.0.mlp.mul",
                                                         "model.model.layers.1.mlp.mul"]
    gate = {n.output: n for n in graph.nodes}[prods[0].inputs[0]]
    assert gate.op == "lut" and gate.attrs["fn"] == "silu"



@pytest.mark.parametrize("name", ["falcon", "phi3"])
def test_falcon_and_phi3_capture_bit_exact(name):
    """Falcon's multi-query split of the fused QKV into unequal head groups (each part its own
    shape; crashed before), Phi-3's fully rotated heads (an empty pass-through slice, dropped by
    the cat; crashed before)."""
    import qasic

    t = transformers
    torch.manual_seed(0)
    config = {"falcon": lambda: t.FalconConfig(vocab_size=VOCAB, hidden_size=D,
                                               num_hidden_layers=1, num_attention_heads=H,
                                               max_position_embeddings=64),
              "phi3": lambda: t.Phi3Config(vocab_size=VOCAB, hidden_size=D, intermediate_size=128,
                                           num_hidden_layers=1, num_attention_heads=H,
                                           num_key_value_heads=2, max_position_embeddings=64,
                                           pad_token_id=0, bos_token_id=1, eos_token_id=2)}[name]()
    model = t.AutoModelForCausalLM.from_config(config).eval()
    x = _ids(8)
    _, _, cos = check(Logits(model), x, float_atol=2e-4)
    assert cos > 0.99, cos
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]


def test_codegen_rotates_interleaved_rows_of_its_fused_qkv():
    """CodeGen's qkv_proj is one linear viewed as (S, mp_num = 4, 3 D / 4) and split into q, v,
    k; rotate_every_two stacks the interleaved halves of each head's first rotary_dim = 8
    features: per layer, for q and for k, one linear of the selected, interleaved and signed
    rows of the split's linear (refused before: the pieces were no column selections of one
    activation). Bit-exact."""
    import qasic

    model = _family("codegen")
    x = _ids()
    graph, _, cos = check(Logits(model), x, float_atol=2e-4)
    assert cos > 0.99, cos
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]
    nodes = {n.output: n for n in graph.nodes}
    rots = [n for n in graph.nodes if n.op == "linear" and n.name.split(".")[-2]
            .startswith("stack") and n.name.endswith(".rows")]
    assert len(rots) == 2 * 2
    for r in rots:  # of the (S, 4, 48) view of qkv_proj: per head, row 2k the negated
        view = nodes[r.inputs[0]]  # feature 2k + 1 of its rotary dims, row 2k + 1 feature 2k
        assert view.op == "reshape" and nodes[view.inputs[0]].name.endswith("qkv_proj")
        w = r.params["weight"]
        assert w.shape == (8, 48) and set(np.unique(w)) == {-1.0, 0.0, 1.0}
        assert (np.abs(w).sum(1) == 1).all() and (w.min(1) == -1).tolist() == [True, False] * 4
        picked = np.abs(w).argmax(1)
        assert (picked[0::2] == picked[1::2] + 1).all() and picked.max() < 48
    products, _ = _rope(graph)  # q * cos and rotate_every_two(q) * sin, for q and k
    assert len(products) == 2 * 2 * 2


def test_cohere_layer_norms_written_out_are_centered_norms():
    """Cohere's LayerNorm without bias, written out ((x - mean) * rsqrt(mean((x - mean)^2) +
    eps) * weight; refused before: the second x - mean was not the value the statistic
    squared): per layer one centered norm (attention and MLP run in parallel off it), and the
    final one; no channel mean left. Bit-exact."""
    import qasic

    model, x = _family("cohere"), _ids()
    graph, _, cos = check(Logits(model), x, float_atol=2e-4)
    assert cos > 0.99, cos
    norms = [n for n in graph.nodes if n.op == "norm"]
    assert len(norms) == 2 + 1 and all(n.attrs["center"] for n in norms)
    assert not [n for n in graph.nodes if n.op == "linear" and n.params["weight"].shape[0] == 1]
    w = model.model.layers[0].input_layernorm.weight.detach().double().numpy()
    np.testing.assert_allclose(norms[0].params["gamma"], w, rtol=1e-6)
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]


def test_minicpm3_key_states_filled_in_place_are_a_concat():
    """MiniCPM3's latent attention fills its key states in place (``new_empty``, then copy_ of
    the heads' non-rotary part and the shared rotary part into slices of the last axis; the
    copies were dropped as dead code, then refused): per layer one concat. Bit-exact."""
    import qasic

    t = transformers
    torch.manual_seed(0)
    model = t.MiniCPM3ForCausalLM(t.MiniCPM3Config(
        vocab_size=VOCAB, hidden_size=D, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=H, num_key_value_heads=H, max_position_embeddings=64,
        kv_lora_rank=16, q_lora_rank=32, qk_nope_head_dim=8, qk_rope_head_dim=8,
        v_head_dim=16)).eval()
    x = _ids(8)
    graph, _, cos = check(Logits(model), x, float_atol=2e-4)
    assert cos > 0.99, cos
    filled = [n for n in graph.nodes if n.name.endswith(".filled")]
    assert len(filled) == 2 and all(n.op == "concat" for n in filled)
    assert all(graph.shapes[n.output] == (H, S, 16) for n in filled)
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]


def _windowed(name: str, window: int):
    """GPT-Neo (a global and a local layer) and Gemma-2 (a sliding and a full layer) with a
    window of ``window`` keys (16 or more: a causal mask over the 16 tokens)."""
    t = transformers
    torch.manual_seed(0)
    if name == "gptneo":
        return t.GPTNeoForCausalLM(t.GPTNeoConfig(
            vocab_size=VOCAB, hidden_size=D, num_layers=2, num_heads=H, intermediate_size=128,
            attention_types=[[["global", "local"], 1]], max_position_embeddings=64,
            window_size=window)).eval()
    return t.Gemma2ForCausalLM(t.Gemma2Config(
        vocab_size=VOCAB, hidden_size=D, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=H, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
        sliding_window=window)).eval()


@pytest.mark.parametrize("name", ["gptneo", "gemma2"])
def test_sliding_window_attention_is_one_softmax_a_head(name):
    """The window is a constant pattern whose 16 rows all differ; on the default arch a head's
    16 rows are one step: one SOFTMAX a head, row r masked by pattern row r (mask_stride = 16;
    before mask_stride, one SOFTMAX a row: 64 in the windowed layer). Bit-exact, and the
    windowed model costs at most 0.1 % more cycles than the causal one (32 cycles measured)."""
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.quant import reference
    from qasic.sim import simulate

    arch, x, cycles = default_arch(), _ids(8), []
    for window in (True, False):
        _, q, cos = check(Logits(_windowed(name, 8 if window else 64)), x, float_atol=2e-4)
        assert cos > 0.99, cos
        p = compile_graph(q, arch)
        codes = q.quantize_input(x[:2])
        r = simulate(p, arch, codes=codes)
        assert np.array_equal(r.outputs, reference.run(q, codes))
        cycles.append(r.cycles)
        patterns = [n.name for n in q.nodes if n.op == "softmax" and "valid" in n.params]
        assert len(patterns) == (1 if window else 0)
        for k, info in enumerate(p.layers):
            sm = [ins for ins, lid in zip(p.instrs, p.layer_ids, strict=True)
                  if lid == k and ins.op == "SOFTMAX"]
            if info["name"] in patterns:
                assert len(sm) == H and {ins["mask_stride"] for ins in sm} == {S}, info["name"]
            elif sm:
                assert len(sm) == H and all(ins["causal"] for ins in sm), info["name"]
    assert cycles[1] < cycles[0] <= cycles[1] * 1.001, cycles

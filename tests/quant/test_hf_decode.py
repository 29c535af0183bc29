"""Generation of the transformers decoder families (quant.decode): the prefill and decode steps of
Llama (rotary embedding after the head permute, grouped-query heads as a head-repeat matmul),
Phi (partial rotary: halves concatenated), Gemma (one K/V head: the head permute captured as a
reshape), GPTBigCode (multi-query keys through an unsqueeze), BLOOM (an ALiBi bias (heads, C, C)
on the scores), Mistral with a sliding window, Qwen3 (q/k norms before the head permute) and
Gemma-3 (per-head q/k norms after it: moved in front too), DiffLlama (a constant head selection
over the tokens after attention), MiniCPM3 (keys concatenated from two caches) and the mixtures
of experts Mixtral and Qwen2-MoE (routing per token: topk_mask and the router's softmax run on
the step's token) and Llama 4 (chunked attention: its own mask rows; a query temperature by
position) and MiniMax (lightning attention in one block: K/V caches and a decay row by position)
and RecurrentGemma (the RG-LRU's state, its conv's window, a local attention's K/V) reproduce the
full model's codes bit for bit; Llama, DiffLlama, MiniCPM3, Mixtral, Llama 4, MiniMax and
RecurrentGemma generate on the simulator equal to the golden reference."""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, reference
from qasic.quant.decode import (
    cache_tensors,
    decode_graph,
    key_scores,
    prefill_graph,
    token_major,
)
from qasic.quant.evaluate import cosine
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference
from tests.quant.test_hf_llm import VOCAB, D, H, Logits, _family

transformers = pytest.importorskip("transformers")
C = 16


def _model(name: str):
    if name in ("llama", "phi", "gemma"):
        return Logits(_family(name))  # the configs of test_hf_llm
    if name in ("mixtral", "qwen2_moe"):  # the configs of test_moe (4 experts, top 2)
        from tests.quant.test_moe import _moe

        # initializer_range 0.3: at the default 0.02 Mixtral's greedy tokens repeat one id
        return Logits(_moe({"mixtral": "Mixtral", "qwen2_moe": "Qwen2Moe"}[name],
                           initializer_range=0.3))
    if name == "llama4":  # the config of test_moe (chunked attention, a layer without RoPE)
        from tests.quant.test_moe import _llama4

        return Logits(_llama4(vocab=VOCAB))
    torch.manual_seed(0)
    t = transformers
    common = {"vocab_size": VOCAB, "hidden_size": D, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": H, "max_position_embeddings": 64}
    make = {
        "gpt_bigcode": lambda: t.GPTBigCodeForCausalLM(t.GPTBigCodeConfig(
            vocab_size=VOCAB, n_embd=D, n_layer=2, n_head=H, n_positions=64)),
        "bloom": lambda: t.BloomForCausalLM(t.BloomConfig(vocab_size=VOCAB, hidden_size=D,
                                                          n_layer=2, n_head=H)),
        "mistral@window6": lambda: t.MistralForCausalLM(t.MistralConfig(
            **common, num_key_value_heads=2, sliding_window=6)),
        "qwen3": lambda: t.Qwen3ForCausalLM(t.Qwen3Config(**common, num_key_value_heads=2,
                                                          head_dim=16)),
        "gemma3": lambda: t.Gemma3ForCausalLM(t.Gemma3TextConfig(
            **common, num_key_value_heads=1, head_dim=16, pad_token_id=0)),
        "diffllama": lambda: t.DiffLlamaForCausalLM(t.DiffLlamaConfig(
            **common, num_key_value_heads=2)),
        # initializer_range 0.3: at the default 0.02 its greedy tokens only repeat the last one
        "minicpm3": lambda: t.MiniCPM3ForCausalLM(t.MiniCPM3Config(
            **common, num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=32,
            qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16, initializer_range=0.3)),
        # DeepSeek-V3.2: MiniCPM3's latent attention with a sparse attention indexer, which
        # on C <= index_topk keys keeps them all (quant.alltopk); 4 index heads of 16
        "deepseek_v32": lambda: t.DeepseekV32ForCausalLM(t.DeepseekV32Config(
            **common, num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=32,
            qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16, index_n_heads=4,
            index_head_dim=16, first_k_dense_replace=2, pad_token_id=0,
            initializer_range=0.3)),
        # a short convolution layer (kernel 3), then an attention layer; at the default
        # initializer_range its greedy tokens only repeat the last one
        "lfm2": lambda: t.Lfm2ForCausalLM(t.Lfm2Config(
            **common, num_key_value_heads=2, layer_types=["conv", "full_attention"],
            block_ff_dim=128, initializer_range=0.3)),
        # the family survey's Mamba (inner 64, a state of 8, a conv of 4); at the default
        # initializer_range its greedy tokens only repeat the last one
        "mamba": lambda: t.MambaForCausalLM(t.MambaConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, state_size=8, expand=2,
            conv_kernel=4, time_step_rank=4, use_mambapy=False, initializer_range=0.3)),
        # Mamba2 (its scan captured recurrently: quant.recurrent_scan), 8 heads of 8 channels,
        # a state of 8, a conv of 4; at the default initializer_range its tokens repeat
        "mamba2": lambda: t.Mamba2ForCausalLM(t.Mamba2Config(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, state_size=8, expand=2,
            conv_kernel=4, num_heads=8, head_dim=8, n_groups=1, chunk_size=4,
            initializer_range=0.3)),
        # RecurrentGemma (its RG-LRU captured as quant.rglru writes it): a recurrent block (2
        # heads of 16 channels, a conv of 4), then a local attention one (a window of 8)
        "recurrent_gemma": lambda: t.RecurrentGemmaForCausalLM(t.RecurrentGemmaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, lru_width=32,
            attention_window_size=8, conv1d_width=4, block_types=["recurrent", "attention"])),
        # a gated delta rule layer (captured per token: quant.recurrent_scan; 4 value heads
        # of 8, 2 key heads of 8, a conv of 4), then an attention layer; dense MLPs
        "qwen3_next": lambda: t.Qwen3NextForCausalLM(t.Qwen3NextConfig(
            **common | {"hidden_size": 32, "intermediate_size": 64}, num_key_value_heads=2,
            head_dim=16,
            layer_types=["linear_attention", "full_attention"], linear_num_value_heads=4,
            linear_num_key_heads=2, linear_key_head_dim=8, linear_value_head_dim=8,
            mlp_only_layers=[0, 1], pad_token_id=0, initializer_range=0.3)),
        # a full attention layer, then a lightning (linear) attention one in one block of C
        # positions, or that one alone in 4 blocks of 4 (``@block4``); 2 heads of 16, 2
        # experts, top 1
        **{name: functools.partial(lambda block, kinds: t.MiniMaxForCausalLM(t.MiniMaxConfig(
            **common | {"hidden_size": 32, "intermediate_size": 32, "num_attention_heads": 2,
                        "num_hidden_layers": len(kinds)},
            num_key_value_heads=1, head_dim=16, num_local_experts=2, num_experts_per_tok=1,
            block_size=block, layer_types=kinds, initializer_range=0.3)), block, kinds)
           for name, block, kinds in (
               ("minimax", 256, ["full_attention", "linear_attention"]),
               ("minimax@block4", 4, ["linear_attention"]))},
        # xLSTM's mLSTM (captured per token in its stabilized recurrence: quant.mlstm), 4 heads
        # (keys of 4, values of 8); its gate linears drawn at random (transformers sets them to 0)
        "xlstm": lambda: _random_gates(t.xLSTMForCausalLM(t.xLSTMConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_heads=4))),
    }
    return Logits(make[name]().eval())


def _random_gates(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gate_preact.weight" in name:
                p.normal_(0.0, 0.5)
    return model


@functools.cache  # quantized once per model for the whole file (graphs are immutable)
def _full(name: str):
    calib = np.random.default_rng(0).integers(0, VOCAB, (8, C))
    return quantize(_model(name), (torch.from_numpy(calib[:1]),), calib, QuantConfig())


@pytest.mark.parametrize("name", ["llama", "phi", "gemma", "gpt_bigcode", "bloom",
                                  "mistral@window6", "qwen3", "gemma3", "diffllama",
                                  "minicpm3", "deepseek_v32", "mixtral", "qwen2_moe",
                                  "llama4", "lfm2", "mamba", "mamba2", "minimax",
                                  "recurrent_gemma", "xlstm", "qwen3_next"])
def test_prefill_then_decode_steps_equal_the_full_model(name):
    full = _full(name)
    seq = np.random.default_rng(1).integers(0, VOCAB, (2, C))
    want = reference.run(full, seq)
    state: dict = {}
    got = reference.run(prefill_graph(full, 5), seq[:, :5], state=state)
    np.testing.assert_array_equal(got, want[:, :5])
    step = decode_graph(full)
    for p in range(5, C):
        row = reference.run(step, np.stack([seq[:, p], np.full(2, p)], axis=1), state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"{name}, position {p}")


def test_token_major_moves_llamas_rotary_below_the_head_permute():
    """The roped keys become a token-major (C, kv heads, d) cache; the graph's codes do not
    change (the permutes only move them)."""
    full = _full("llama")
    tm = token_major(full)
    seq = np.random.default_rng(2).integers(0, VOCAB, (2, C))
    np.testing.assert_array_equal(reference.run(tm, seq), reference.run(full, seq))
    caches = cache_tensors(tm)
    assert len(caches) == 4  # k and v of two layers
    assert sorted(tm.shapes[t] for t in caches) == [(C, 2, 16)] * 2 + [(C, 32)] * 2
    with pytest.raises(Exception, match="does not come from \\(tokens, features\\) tensors"):
        cache_tensors(full)  # the roped keys are (kv heads, C, d) before the pass
    roped = [n for n in tm.nodes if n.op == "mul" and n.name.endswith(".tm")]
    assert roped and all(tm.shapes[n.output][0] == C for n in roped)
    # in each of the 2 layers, q and k each move cos-mul, rotate_half linear, sin-mul, add
    # (and the 2 constant tables): the moves reach every layer, not just the first
    for layer in (0, 1):
        moved = Counter(n.op for n in tm.nodes if n.name.endswith(".tm")
                        and f".layers.{layer}." in n.name)
        assert moved == {"mul": 4, "linear": 2, "add": 2, "constant": 4}, (layer, moved)
    assert token_major(tm).nodes == tm.nodes  # a fixed point: nothing left to move


def test_minicpm3s_keys_are_two_caches_concatenated_in_each_decode_step():
    """MiniCPM3's keys concatenate per-head keys (C, heads, 8) with one roped key (C, 8)
    broadcast to the heads: both are caches (the broadcast and the concatenation run on the
    whole caches in a decode step), next to the values (C, heads, 16); 2 layers. Phi's
    partial rotary keys are concatenated token-major (C, heads, d): one cache, as before."""
    tm = token_major(_full("minicpm3"))
    assert sorted(tm.shapes[t] for t in cache_tensors(tm)) == \
        [(C, 4, 8)] * 2 + [(C, 4, 16)] * 2 + [(C, 8)] * 2
    phi = token_major(_full("phi"))
    caches = cache_tensors(phi)
    keys = [t for t in caches if next(n for n in phi.nodes if n.output == t).op == "concat"]
    assert len(caches) == 4 and len(keys) == 2  # k and v of 2 layers; the keys concatenated


def test_diffllamas_head_selection_over_the_tokens_is_sliced_not_gathered():
    """DiffLlama splits each token's attention output into two head groups by a constant
    matmul (C, 2, 4) @ (C, 4, 2d): the same selection at every position, so a decode step takes
    its first row (1, 2, 4); only the rotary tables and the causal mask are gathered by p."""
    step = decode_graph(_full("diffllama"))
    rows = {n.name: step.shapes[n.output] for n in step.nodes if n.op == "constant"
            and n.name.endswith(".at_p")}
    assert len(rows) == 4 and set(rows.values()) == {(1, 2, 4)}  # 2 per layer
    gathered = [n.name for n in step.nodes if n.op == "embedding" and n.name != step.nodes[0].name]
    assert len(gathered) == 9 and "decode.mask" in gathered  # cos, sin of q and k per layer
    assert not any("chunk" in g for g in gathered)


def test_a_routers_softmax_runs_on_the_steps_token_and_attentions_read_the_caches():
    """Mixtral, 2 layers: the softmaxes over an attention's keys (key_scores) are the 2 causal
    ones; the 2 routing softmaxes (over the 4 experts, masked by their topk_mask) are not. In a
    decode step the attention softmaxes read the causal mask row over all C keys; each routing
    softmax reads its step's (1, 4) top-k mask, computed from the step's token alone."""
    full = token_major(_full("mixtral"))
    soft = [n for n in full.nodes if n.op == "softmax"]
    scores = key_scores(full)
    attention = [n.name for n in soft if n.output in scores]
    assert len(soft) == 4 and len(attention) == 2
    assert all(n.attrs.get("causal") for n in soft if n.name in attention)
    assert all(n.op == "topk_mask" for n in full.nodes for m in soft if m.name not in attention
               and n.output == m.inputs[1])
    step = decode_graph(full)
    by_name = {n.output: n for n in step.nodes}
    for n in step.nodes:
        if n.op != "softmax":
            continue
        mask = n.inputs[1]
        if n.name in attention:
            assert mask == "decode.mask.keys" and step.shapes[n.inputs[0]][-2:] == (1, C)
        else:
            assert by_name[mask].op == "topk_mask" and step.shapes[mask] == (1, 4)
            assert step.shapes[n.inputs[0]] == (1, 4)


@pytest.mark.parametrize("name", ["llama", "diffllama", "minicpm3", "mixtral", "llama4", "lfm2",
                                  "mamba", "mamba2", "minimax", "recurrent_gemma", "xlstm",
                                  "qwen3_next"])
def test_generation_on_the_simulator_equals_the_golden_reference(name):
    session = assert_generates_like_the_golden_reference(_full(name), np.array([22, 260, 83]), 5)
    scatters = {"llama": 4, "diffllama": 6, "minicpm3": 6, "mixtral": 4, "llama4": 4,
                "lfm2": 3, "mamba": 2, "mamba2": 2, "minimax": 4,
                "recurrent_gemma": 3, "xlstm": 0, "qwen3_next": 3}[name]
    # a cache each (DiffLlama: K and the two head groups of V, which chunk(2, dim=1) splits
    # into two linears (lowering_seq.feature_part); LFM2 and Qwen3-Next: a conv's window, K,
    # V; Mamba, Mamba2: each layer's conv window; the scan states are stored whole, as xLSTM's
    # two; MiniMax: K and V of its full and its lightning attention; RecurrentGemma: its conv's
    # window, K, V)
    assert [i.op for i in session.decode.instrs].count("SCATTER") == scatters


def test_llama4s_chunked_mask_and_temperature_are_rows_gathered_by_position():
    """Llama 4 (the config of test_moe), 2 layers: in a decode step layer 0's softmax reads row
    p of its chunked causal mask (keys of p's chunk of 4 up to p), layer 1's row p of the causal
    one; layer 1's query temperature and layer 0's rotary tables are rows gathered by p too; each
    layer's routing (topk_mask) runs on the step's token alone."""
    step = decode_graph(_full("llama4"))
    by_out = {n.output: n for n in step.nodes}
    soft = [n for n in step.nodes if n.op == "softmax"]
    tables = [by_out[by_out[n.inputs[1]].inputs[0]].params["table"] for n in soft]
    np.testing.assert_array_equal(tables[0], np.tril(np.kron(np.eye(4), np.ones((4, 4)))))
    np.testing.assert_array_equal(tables[1], np.tril(np.ones((C, C))))
    rows = [n.name for n in step.nodes if n.op == "embedding"
            and n.attrs.get("index_is") == "position" and n.name.endswith(".at_p.row")]
    assert sum(".layers.0." in r for r in rows) == 4 and sum(".layers.1." in r for r in rows) == 1
    assert [step.shapes[n.output] for n in step.nodes if n.op == "topk_mask"] == [(1, 2)] * 2


def test_an_xlstm_decode_step_reads_and_writes_its_running_max_and_memory_whole():
    """Per block, the mLSTM's two states (quant.mlstm): the running max m (4 heads x 1) and S =
    [C | n] (4 heads x 9 x 4), each read from DRAM whole, as one row per head, and written
    back."""
    step = decode_graph(_full("xlstm"))
    reads = [n.attrs["state"] for n in step.nodes if n.op == "cache_read"]
    writes = [n.output for n in step.nodes if n.op == "cache_write" and len(n.inputs) == 1]
    assert reads == writes and [step.shapes[r] for r in reads] == [(4, 1), (4, 36)] * 2


def test_lfm2s_short_conv_decodes_on_a_window_of_its_last_3_inputs():
    """LFM2's short convolution (kernel 3, causal): its input is a padded cache (2 + C rows, the
    first 2 the zero point's code); a prompt of 1 token leaves the padding then its row; a
    decode step writes row 2 + p and its conv reads rows p..p+2 (one cache_window) with no
    padding; the conv padded on both sides and cut to its first C outputs is the causal conv
    (quant.chomp): no slice left."""
    full = _full("lfm2")
    state: dict = {}
    reference.run(prefill_graph(full, 1), np.array([[7]]), state=state)
    (name, cache), = [(k, v) for k, v in state.items() if ".conv." in k]
    zp = full.tensors[name.removeprefix("cache.")].zero_point
    assert cache.shape == (1, C + 2, 64) and zp != 0
    assert (cache[0, :2] == zp).all() and (cache[0, 2] != zp).any() and not cache[0, 3:].any()
    step = decode_graph(full)
    windows = [n for n in step.nodes if n.op == "cache_window"]
    assert [(n.inputs[0], n.attrs["rows"], step.shapes[n.output]) for n in windows] == \
        [(name, 3, (3, 64))]
    write = next(n for n in step.nodes if n.op == "cache_write" and n.output == name)
    assert write.attrs["base"] == 2 and step.shapes[name] == (C + 2, 64)
    conv = next(n for n in step.nodes if n.op == "conv2d")
    assert conv.attrs["padding"] == (0, 0, 0, 0) and step.shapes[conv.output] == (1, 1, 64)
    assert not [n for n in step.nodes if "slice" in n.name and ".conv." in n.name]


@pytest.mark.parametrize("name, h, rows", [("mamba", (64, 8), (64, 8)),
                                           ("mamba2", (8, 8, 8), (8, 64))])
def test_mambas_decode_step_reads_and_writes_each_layers_state(name, h, rows):
    """Mamba, 2 layers (inner 64, a state of 8): a decode step runs one position of each scan
    (position 1's nodes: one decay, one state add, one y) on h read from its state
    (cache_read, (64, 8), into a tensor of its own: ``<state>.prev``) and writes h_p over it
    (cache_write without a position: the whole state); the prefill of P tokens runs P
    positions and writes h_(P-1). Mamba2 (8 heads of 8 channels, a state of 8): the scan
    quant.recurrence finds in its recurrent capture has h (8, 8, 8), stored as rows (8, 64)
    and viewed back for the decay; its outputs read the decays, so its last position has no
    state (nothing reads h_(C-1))."""
    from qasic.quant import recurrence

    full = _full(name)
    plans = recurrence.plans(full, C)
    assert [len(p.tails) for p in plans] == [C, C]
    hs = [p.states[0] for p in plans if len(p.states) == 1]
    assert [len(s) for s in hs] == [C - (name == "mamba2")] * 2
    assert {full.shapes[t] for s in hs for t in s} == {h}
    step = decode_graph(full)
    writes = [n.output for n in step.nodes if n.op == "cache_write" and len(n.inputs) == 1]
    reads = [n.attrs["state"] for n in step.nodes if n.op == "cache_read"]
    prevs = [n.output for n in step.nodes if n.op == "cache_read"]
    assert len(reads) == 2 and reads == writes and prevs == [f"{w}.prev" for w in writes]
    assert all(step.shapes[t] == rows for t in reads + prevs)
    by_out = {n.output: n for n in step.nodes}
    h_prev = {p if len(h) == 2 else next(n.output for n in step.nodes if n.inputs == (p,))
              for p in prevs}  # h_(p-1), or its view back to h's shape
    decays = [n for n in step.nodes if n.op == "mul" and set(n.inputs) & h_prev]
    assert len(decays) == 2 and all(step.shapes[n.output] == h for n in decays)
    assert all(by_out[t].op == "reshape" for t in h_prev - set(prevs))
    state: dict = {}
    seq = np.random.default_rng(3).integers(0, VOCAB, (1, 4))
    full_states = reference.run(full, np.pad(seq, ((0, 0), (0, C - 4))), keep=True)
    reference.run(prefill_graph(full, 4), seq, state=state)
    for s, r in zip(hs, reads, strict=True):
        np.testing.assert_array_equal(state[r], full_states[s[3]].reshape(1, *rows))


def test_minimaxs_lightning_attention_in_one_block_decodes_with_kv_caches():
    """MiniMax's lightning attention in one block of the C positions is ((Q K^T) * D) V with
    a constant decay D (heads, C, C), zero above the diagonal (and Q's product with the
    initial state, a constant 0): a decode step reads the whole K and V caches and row p of D
    (a gather by p), like a softmax attention's mask; its full-attention layer caches K and V
    too. Over 4 blocks of 4 the state K^T V carried between blocks (each block its own
    encodings) is refused in one line."""
    step = decode_graph(_full("minimax"))
    assert [n.op for n in step.nodes].count("cache_write") == 4  # K and V of 2 layers
    scores, = [n.output for n in step.nodes if n.op == "matmul" and n.attrs.get("transpose_b")
               and ".layers.1." in n.name]  # q_p K^T over the whole key cache
    decay, = [n for n in step.nodes if n.op == "mul" and scores in n.inputs]
    assert step.shapes[scores] == step.shapes[decay.output] == (2, 1, C)
    row = next(t for t in decay.inputs if t != scores)  # D's row p: gathered by the position
    assert row.endswith(".at_p") and step.shapes[row] == (2, 1, C)
    with pytest.raises(UnsupportedOpError, match=r"^matmul \S+matmul_6: its second operand is "
                       r"linear attention's state \S+matmul_3 \(K\^T V summed .* at least "
                       r"the 16 positions$"):
        decode_graph(_full("minimax@block4"))


def test_qwen3_nexts_gated_delta_rule_decodes_with_its_state():
    """Qwen3-Next's gated delta rule (4 value heads, keys and values of 8), captured per token:
    quant.recurrence finds one recurrence over the C positions with one state, S_t (4, 8, 8),
    that position t + 1 reads through its decay alone (a mul; nothing reads S_(C-1)); every
    position's S_t, decay and output share one encoding (position 0's too: it runs position
    1's nodes on S_(-1) = 0). A decode step reads S_(p-1) from its state (rows (4, 64)), viewed
    back for the decay, and writes S_p over it; the prefill of P tokens writes S_(P-1), the
    full model's codes."""
    from qasic.quant import recurrence

    full = _full("qwen3_next")
    (plan,) = recurrence.plans(full, C)
    (states,) = plan.states
    assert len(states) == C - 1 and {full.shapes[s] for s in states} == {(4, 8, 8)}
    assert len({full.tensors[s] for s in states}) == 1
    decays = [[n for n in full.nodes if s in n.inputs] for s in states]
    assert [[(n.op, plan.position[n.name]) for n in r] for r in decays] == \
        [[("mul", t + 1)] for t in range(C - 1)]
    assert len({full.tensors[r[0].output] for r in decays}) == 1
    tails = {full.tensors[t] for t in plan.tails}
    assert len(tails) == 1 and len(plan.tails) == C
    step = decode_graph(full)
    reads = [n for n in step.nodes if n.op == "cache_read"]
    writes = [n.output for n in step.nodes if n.op == "cache_write" and len(n.inputs) == 1]
    assert [n.attrs["state"] for n in reads] == writes == [plan.state(0)]
    assert step.shapes[writes[0]] == (4, 64)
    state: dict = {}
    seq = np.random.default_rng(3).integers(0, VOCAB, (1, 4))
    kept = reference.run(full, np.pad(seq, ((0, 0), (0, C - 4))), keep=True)
    reference.run(prefill_graph(full, 4), seq, state=state)
    np.testing.assert_array_equal(state[writes[0]], kept[states[3]].reshape(1, 4, 64))


def _full_at(name: str, bits: int):
    calib = np.random.default_rng(0).integers(0, VOCAB, (8, C))
    return quantize(_model(name), (torch.from_numpy(calib[:1]),), calib,
                    QuantConfig(activation_bits=bits))


def test_a_conv_window_generates_exactly_at_four_bit_activations():
    """LFM2's conv window at A4: a step's token is a (D, 1) column of the channels-first conv
    input (a code per byte) and a depthwise conv's input keeps a code per byte, while the cache
    is packed 4-bit: the step's row is re-stored by an identity depthwise conv before its
    cache_write, the window by an identity conv of 2-channel groups before the conv
    (quant.decode_conv). Both were refused; now the simulator generates what the golden
    reference does; the logits keep a cosine of 0.61 to float's."""
    import qasic

    full = _full_at("lfm2", 4)
    session = assert_generates_like_the_golden_reference(full, np.array([22, 260, 83]), 5)
    assert [i.op for i in session.decode.instrs].count("SCATTER") == 3
    ids = np.random.default_rng(0).integers(0, VOCAB, (4, C))
    out = qasic.evaluate(_model("lfm2"), ids, calibration=ids,
                         config=QuantConfig(activation_bits=4))
    assert out["bit_exact"] and out["cosine"] > 0.5, out["cosine"]  # 0.61: 4-bit codes


def test_a_kv_cache_of_a_concat_off_whole_bytes_is_stored_a_byte_per_code_and_generates():
    """DeepSeek's k = cat(k_nope, k_pe) at 3-bit activations: a channel offset of 3-bit codes
    off whole bytes, so the concat (the cache's rows) keeps a byte per code, in the prefill as
    in a step (the same concat makes both). Its cache was packed 3-bit and refused them; now a
    cache is stored as the rows written into it (compiler.memory._same_storage), the caches of
    whole-byte rows (v, the split ones) stay packed, and generation is the golden reference's."""
    full = _full_at("deepseek_v32", 3)
    session = assert_generates_like_the_golden_reference(full, np.array([22, 260, 83]), 4)
    # the concats' caches a byte per code, the others packed
    assert {(".cat_" in r.name, r.bits) for r in session.states} == {(True, 8), (False, 3)}


@pytest.mark.parametrize("name, bits", [("recurrent_gemma", 4), ("qwen3_next", 4)])
def test_a_scan_state_below_8_bits_generates_exactly(name, bits):
    """RecurrentGemma's RG-LRU state h and Qwen3-Next's gated delta state S below 8 bits: the
    prefill writes the state of its last position, a column of the positions' concat (a code
    per byte), a decode step writes a row that packs. Both were refused (a byte-per-code row
    into a packed cache); a recurrence's state and the rows written into it now keep a byte per
    code in every program (compiler.memory.scan_tensors), so the state's bytes mean the same
    to the prefill and to each step: the simulator generates what the golden reference does."""
    full = _full_at(name, bits)
    session = assert_generates_like_the_golden_reference(full, np.array([22, 260, 83]), 4)
    step = decode_graph(full)
    scans = [n.output for n in step.nodes if n.attrs.get("scan_state")]
    assert scans and {step.tensors[s].bits for s in scans} == {bits}
    assert {r.bits for r in session.states if r.name in scans} == {8}  # a byte per code
    ids = np.random.default_rng(0).integers(0, VOCAB, (4, C))
    quant = full.dequantize_output(reference.run(full, full.quantize_input(ids)))
    with torch.no_grad():
        fp32 = _model(name).eval()(torch.from_numpy(ids)).numpy()
    # 0.905 and 0.175: the gated delta rule's 4-bit state S (its decay's and its update's
    # codes, every position's one encoding) loses most of Qwen3-Next's logits at A4
    assert cosine(quant.ravel(), fp32.ravel()) > {"recurrent_gemma": 0.85, "qwen3_next": 0.1}[name]

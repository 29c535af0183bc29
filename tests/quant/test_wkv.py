"""quant.wkv: RWKV-4's WKV written with one difference per use computes what transformers'
``rwkv_linear_attention_cpu`` computes (float32 rounding apart), also with keys whose exp
overflows float32 (the running maximum keeps every exp <= 1); transformers' RWKV (token shift,
WKV, squared-ReLU channel mixing with a sigmoid receptance), hidden 32, 2 layers, compiles and
simulates bit-exact against the golden reference. Its generation: tests/quant/test_recurrence.py.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, reference
from qasic.quant.quantize import quantize
from qasic.quant.wkv import wkv
from tests.quant.test_hf_llm import Logits

transformers = pytest.importorskip("transformers")
modeling = pytest.importorskip("transformers.models.rwkv.modeling_rwkv")
VOCAB, C = 100, 8


def _rwkv() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.RwkvConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                     attention_hidden_size=32, intermediate_size=64,
                                     context_length=64)
    return Logits(transformers.RwkvForCausalLM(config).eval()).eval()


@functools.cache  # quantized once for this file and test_recurrence (graphs are immutable)
def rwkv_full():
    calib = np.random.default_rng(0).integers(0, VOCAB, (8, C))
    return quantize(_rwkv(), (torch.from_numpy(calib[:1]),), calib, QuantConfig())


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_wkv_equals_transformers_recurrence(scale):
    """2 sequences of 8 tokens, 32 channels, random decays and bonuses; keys of size 100
    (exp overflows float32: only the running maximum computes it)."""
    g = torch.Generator().manual_seed(0)
    decay, first = torch.randn(32, generator=g), torch.randn(32, generator=g)
    key = scale * torch.randn(2, C, 32, generator=g)
    value = torch.randn(2, C, 32, generator=g)
    want, _ = modeling.rwkv_linear_attention_cpu(decay, first, key, value)
    got, state = wkv(decay, first, key, value)
    assert state is None and torch.isinf(torch.exp(key)).any() == (scale > 1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_wkv_with_a_state_is_refused_in_one_line():
    x = torch.zeros(1, 2, 4)
    with pytest.raises(UnsupportedOpError) as e:
        wkv(torch.zeros(4), torch.zeros(4), x, x, return_state=True)
    assert str(e.value) == ("RWKV's WKV with a state (use_cache): qasic captures it without one "
                            "and carries the state itself in generation")


def test_rwkv_runs_bit_exact_on_the_simulator():
    """The golden reference's codes equal the simulator's; against fp32 on 2 new sequences
    (transformers' init, calibrated on 8 others), measured: cosine 0.9940 of the logits."""
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.quant.evaluate import cosine
    from qasic.sim import input_codes, simulate

    full, arch = rwkv_full(), default_arch()
    x = np.random.default_rng(1).integers(0, VOCAB, (2, C))
    program = compile_graph(full, arch)
    codes = input_codes(program, x)
    sim = simulate(program, arch, codes=codes)
    golden = reference.run(full, full.quantize_input(x))
    np.testing.assert_array_equal(sim.outputs, golden)
    with torch.no_grad():
        want = _rwkv()(torch.from_numpy(x)).numpy()
    assert cosine(full.dequantize_output(golden), want) > 0.99

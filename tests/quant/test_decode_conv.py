"""A token convolution's window in generation (quant.decode_conv) and the ``cache_window`` op of the
golden reference, on hand-made nodes: the window's rows by position (out of range refused), the
slice of a conv's outputs on fewer positions, and the one-line refusals of a linear that mixes
positions and of a conv over the tokens that is not causal."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from qasic.errors import InputError, UnsupportedOpError
from qasic.quant import decode_conv, reference
from qasic.quant.graph import QNode

C = 6


def test_cache_window_reads_rows_p_to_p_plus_k_of_each_sample():
    cache = np.arange(2 * (C + 2) * 3).reshape(2, C + 2, 3)
    node = QNode("w", "cache_window", ("cache.x", "step"), "w", {"index": 1, "rows": 3})
    step = np.array([[5, 0], [9, 4]])
    got = reference.run_node(None, node, [cache, step])
    np.testing.assert_array_equal(got, np.stack([cache[0, 0:3], cache[1, 4:7]]))
    with pytest.raises(InputError, match="window of 3 rows at position 6 is outside the 8 rows"):
        reference.run_node(None, node, [cache, np.array([[1, 6], [1, 0]])])


def _slice(weight: np.ndarray, bias=0, multiplier=1 << 30) -> QNode:
    out = weight.shape[0]
    return QNode("s", "linear", ("x",), "s", {}, {
        "weight": weight, "bias": np.full(out, bias), "multiplier": np.full(out, multiplier),
        "shift": np.ones(out, np.int64)})


def test_a_slice_of_the_positions_keeps_its_first_rows_and_columns():
    """LFM2's slice of the first C of C + 2 conv outputs: 127 on the diagonal, on P positions its
    (P, P) corner (a decode step: the 1x1 one)."""
    w = np.hstack([127 * np.eye(C, dtype=np.int64), np.zeros((C, 2), np.int64)])
    n = decode_conv.slice_linear(_slice(w), C, 4)
    assert n.params["weight"].tolist() == (127 * np.eye(4, dtype=np.int64)).tolist()
    assert [np.shape(n.params[k]) for k in ("bias", "multiplier", "shift")] == [(4,)] * 3
    assert decode_conv.slice_linear(_slice(w), C, 1).params["weight"].tolist() == [[127]]


@pytest.mark.parametrize("weight", [
    np.tril(np.ones((C, C), np.int64)),                       # a cumulative sum: mixes tokens
    np.hstack([np.zeros((C, 1), np.int64), np.eye(C, dtype=np.int64)]),  # shifted by one
    np.diag(np.arange(1, C + 1)),                             # a weight per position
])
def test_a_linear_that_mixes_or_reweights_positions_is_refused(weight):
    with pytest.raises(UnsupportedOpError, match=r"^s: a linear over the token positions "
                                                 r"\(weight .*\) that is not a slice of the "
                                                 r"first 6; it mixes tokens"):
        decode_conv.slice_linear(_slice(weight), C, 1)


@pytest.mark.parametrize("padding", [(0, 1, 0, 2), (0, 1, 0, 1), (0, 2, 0, 0)])
def test_a_token_conv_is_found_when_causal_and_refused_otherwise(padding):
    """Kernel 3 along the tokens: padded 2 on the left it is causal (the window of the last 3
    inputs); padded 1 it would read the next token: refused in one line."""
    conv = QNode("conv", "conv2d", ("image",), "conv",
                 {"stride": (1, 1), "dilation": (1, 1), "groups": 4, "padding": padding},
                 {"weight": np.ones((4, 1, 3, 1), np.int64), "bias": np.zeros(4, np.int64),
                  "multiplier": np.ones(4, np.int64), "shift": np.zeros(4, np.int64)})
    graph = SimpleNamespace(nodes=(conv,), shapes={"image": (1, C, 4), "rows": (C, 4)})
    tokens = {"image": (1, 1)}
    if padding[1] == 2:
        assert decode_conv.token_convs(graph, C, tokens, lambda t: ["rows"]) == \
            {"conv": ("rows", 3)}
        return
    with pytest.raises(UnsupportedOpError, match=r"^conv: a conv2d over the token positions "
                                                 r"\(input \(1, 6, 4\), kernel 1x3, padding "
                                                 r".*\) that is not a causal conv1d"):
        decode_conv.token_convs(graph, C, tokens, lambda t: ["rows"])


def _shift_graph(value: np.ndarray) -> SimpleNamespace:
    """matmul(S, x) of a constant S (C, C) (codes, zero point 0) by x (C, 4) over the tokens."""
    nodes = (QNode("S", "constant", (), "S", {}, {"value": value}),
             QNode("mix", "matmul", ("S", "x"), "mix", {"transpose_b": False},
                   {"multiplier": np.array([1 << 30]), "shift": np.array([1])}))
    return SimpleNamespace(nodes=nodes, shapes={"S": (C, C), "x": (C, 4), "mix": (C, 4)},
                           tensors={"S": SimpleNamespace(values=lambda q: np.asarray(q))})


@pytest.mark.parametrize("value, k", [
    (127 * np.eye(C, k=-1, dtype=np.int64), 2),             # x-transformers' shift by one
    (127 * np.eye(C, k=-2, dtype=np.int64), 3),             # by two: a window of 3
    (3 * np.eye(C, dtype=np.int64) + 5 * np.eye(C, k=-1, dtype=np.int64), 2),  # two taps
    (np.eye(C, k=1, dtype=np.int64), 0),                    # the next token: not causal
    (np.diag(np.arange(1, C + 1)), 0),                      # a weight per position
    (np.eye(C, k=-1, dtype=np.int64)[::-1], 0),             # not a band
    (np.eye(C, dtype=np.int64) * (np.arange(C) < C - 1), 0),  # the last token reads nothing
])
def test_a_token_shift_is_a_band_below_the_diagonal_read_through_a_window(value, k):
    """A band of K diagonals, each one value, is a window of K tokens; any other mix of the
    positions is not listed (quant.decode refuses it in one line)."""
    graph, tokens = _shift_graph(value), {"x": (0, 1)}
    got = decode_conv.token_shifts(graph, C, tokens, lambda t: [t])
    assert got == ({"mix": ("x", k)} if k else {})
    if k:  # the step's row: the last row's band, the window's oldest token first
        nodes, shapes, tensors = [], {"cache.x": (C + k - 1, 4)}, {"cache.x": None, "S": None}
        step = decode_conv.shift_window(graph.nodes[1], graph.nodes[0], k, "cache.x", "step",
                                        nodes, shapes, tensors)
        assert step.inputs == ("S.window", "mix.window")
        assert nodes[0].params["value"].tolist() == [value[-1, -k:].tolist()]
        assert nodes[1].op == "cache_window" and nodes[1].attrs == {"index": 1, "rows": k}


@pytest.mark.parametrize("bits", [4, 3])
def test_a_token_shift_generates_exactly_at_narrow_activations(bits):
    """The prefill's padded rows of a token shift's cache are one depthwise 1x1 conv (weight 1,
    K - 1 zero-point rows on the left), token-major like the state: at 2..7 bits they pack as
    the state does (a linear between two permutes stored them a byte per code and the
    cache_write of the 4-bit state refused them). Prefill + decode steps on the simulator
    equal the golden reference's; the float model's output is still close at A4."""
    import torch

    import qasic
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize
    from tests.quant.generation import assert_generates_like_the_golden_reference

    xt = pytest.importorskip("x_transformers")
    torch.manual_seed(0)
    model = xt.TransformerWrapper(num_tokens=64, max_seq_len=12, attn_layers=xt.Decoder(
        dim=32, depth=1, heads=2, attn_dim_head=16, shift_tokens=1)).eval()
    ids = np.random.default_rng(0).integers(0, 64, (4, 12))
    config = QuantConfig(activation_bits=bits)
    full = quantize(model, (torch.from_numpy(ids[:1]),), ids, config)
    assert_generates_like_the_golden_reference(full, ids[0, :5], 4)
    out = qasic.evaluate(model, ids, calibration=ids, config=config)
    assert out["bit_exact"] and out["cosine"] > (0.8 if bits == 4 else 0.5), out["cosine"]


def test_cache_window_reads_from_a_fixed_offset_past_p():
    """attrs offset: rows p + offset .. p + offset + K (a narrower window of a state padded for
    a wider one); out of range refused."""
    cache = np.arange(2 * (C + 3) * 3).reshape(2, C + 3, 3)
    node = QNode("w", "cache_window", ("cache.x", "step"), "w",
                 {"index": 1, "rows": 2, "offset": 2})
    got = reference.run_node(None, node, [cache, np.array([[5, 0], [9, 3]])])
    np.testing.assert_array_equal(got, np.stack([cache[0, 2:4], cache[1, 5:7]]))
    with pytest.raises(InputError, match="window of 2 rows at position 8 is outside the 9"):
        reference.run_node(None, node, [cache, np.array([[1, 6], [1, 0]])])


def test_shifted_windows_of_one_tensor_generate_exactly():
    """RecurrentGemma's Conv1D: sum over shifts s of F.pad(x[:, :T - s], (0, 0, s, 0)) * w_s,
    token shifts of 2, 3 and 4 rows of one tensor (refused: "generation caches one window per
    tensor"): one state padded for the widest, the narrower windows read from an offset.
    Golden == simulator for the whole model (cosine > 0.999); prefill + decode steps equal the
    golden reference's."""
    import torch
    import torch.nn.functional as F

    import qasic
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize
    from tests.quant.generation import assert_generates_like_the_golden_reference

    class ShiftConvLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb, self.head = torch.nn.Embedding(40, 16), torch.nn.Linear(16, 40)
            self.w = torch.nn.Parameter(torch.randn(4, 16) / 2)

        def forward(self, ids):
            x = self.emb(ids)
            t, out = x.shape[1], torch.zeros_like(x)
            for s in range(4):
                out = out + F.pad(x[:, :t - s], (0, 0, s, 0)) * self.w[3 - s]
            return self.head(x + torch.tanh(out))

    ids = np.random.default_rng(0).integers(0, 40, (8, C + 2))
    out = qasic.evaluate(ShiftConvLM().eval(), ids, calibration=ids)
    assert out["bit_exact"] and out["cosine"] > 0.999, out["cosine"]
    full = quantize(ShiftConvLM().eval(), (torch.from_numpy(ids[:1]),), ids, QuantConfig())
    assert_generates_like_the_golden_reference(full, ids[0, :3], 4)

"""A runtime attention mask (an int 0/1 input) used through views and products of itself
before a cast (DeBERTa's ``embeddings * mask.unsqueeze(2).to(dtype)`` and ``get_attention_mask``,
``m[:, None, None, :] * m[:, None, :, None]`` then ``.bool()``): the cast's value is the padding
mask of the input's bits, viewed as the model viewed it (qasic.quant.masks.from_mask_input).
Float graph == torch, golden reference == simulator, the unpadded positions close to torch and
independent of the padded ids."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.models.packed import PackedInputs
from qasic.quant import QuantConfig, capture, graph_inputs, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.quantize import quantize_graph
from tests.quant.transformer_nets import simulated_output

S, N, V = 8, 6, 40


class MaskedMixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(V, 16)
        self.qkv, self.out = nn.Linear(16, 48), nn.Linear(16, 8)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids) * mask.unsqueeze(2).to(torch.float32)  # padded rows zeroed
        ext = mask.unsqueeze(1).unsqueeze(2)  # (B, 1, 1, S), int
        keep = (ext * ext.squeeze(-2).unsqueeze(-1)).bool()  # (B, 1, S, S): query x key
        q, k, v = self.qkv(h).unsqueeze(1).chunk(3, dim=-1)
        scores = (q @ k.transpose(-1, -2) / 4).masked_fill(~keep, torch.finfo(torch.float32).min)
        return self.out((scores.softmax(-1) @ v).squeeze(1))


def test_a_mask_viewed_and_multiplied_before_its_cast_runs_bit_exact():
    r = np.random.default_rng(0)
    lengths = np.array([8, 5, 3, 8, 6, 4])
    mask = (np.arange(S)[None] < lengths[:, None]).astype(np.int64)
    ids = r.integers(1, V, (N, S)) * mask
    model = PackedInputs(MaskedMixer().eval(), ("ids", "mask"), ((S,), (S,)), (True, True))
    x = graph_inputs.pack([ids, mask])
    fg = capture(model, torch.from_numpy(x[:1]), "mixer")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    keep = mask.astype(bool)
    # the float graph is torch's on the unpadded queries (a padded query's row, every key
    # masked, attends the unpadded keys: read by no unpadded token)
    assert np.abs(run_float(fg, x)[keep] - want[keep]).max() < 1e-4
    qg = quantize_graph(fg, x, QuantConfig())
    readers = [nd for nd in qg.nodes if "input.mask" in nd.inputs]
    assert readers and all(nd.op == "embedding" for nd in readers)  # the bits, at run time
    gold = simulated_output(qg, x)
    assert cosine(qg.dequantize_output(gold)[keep], want[keep]) > 0.995
    other = ids + (1 - mask) * r.integers(1, V, (N, S))  # other ids at the padded positions
    gold2 = reference.run(qg, qg.quantize_input(graph_inputs.pack([other, mask])))
    assert np.array_equal(gold2[keep], gold[keep])


PAD = 1


class TwoIdsPositions(nn.Module):
    """fairseq's sinusoidal positions (M2M100, NLLB) of both id inputs of an encoder-decoder:
    ``table.index_select(0, pos.view(-1))``, pos from each input's own padding."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.lin = nn.Embedding(V, 16), nn.Linear(16, 8)
        self.register_buffer("table", torch.randn(S + PAD + 1, 16))

    def pos(self, ids: torch.Tensor) -> torch.Tensor:
        m = ids.ne(PAD).int()
        p = (torch.cumsum(m, dim=1).type_as(m) * m).long() + PAD
        return self.table.index_select(0, p.view(-1)).view(ids.shape[0], ids.shape[1], -1)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        a = self.emb(src) + self.pos(src)
        return self.lin(self.emb(tgt) + self.pos(tgt) + a.mean(1, keepdim=True))


def test_positions_from_the_second_inputs_padding_read_that_input():
    """The decoder's positions count its own ids' padding (a PosValue of the second input):
    the bits come from that input, not the first (whose length differs: 8 and 5 ids)."""
    r = np.random.default_rng(1)
    t = 5
    src = r.integers(2, V, (N, S))
    tgt = r.integers(2, V, (N, t))
    src[1, 6:], tgt[2, 3:], tgt[4, 4:] = PAD, PAD, PAD
    model = PackedInputs(TwoIdsPositions().eval(), ("src", "tgt"), ((S,), (t,)), (True, True))
    x = graph_inputs.pack([src, tgt])
    fg = capture(model, torch.from_numpy(x[:1]), "positions")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(run_float(fg, x) - want).max() < 1e-4
    qg = quantize_graph(fg, x, QuantConfig())
    gold = simulated_output(qg, x)
    assert cosine(qg.dequantize_output(gold), want) > 0.995


class WindowedPadded(nn.Module):
    """ModernBERT's local layers on a padded batch: a sliding window (|i - j| <= 2) and the
    runtime padding mask at once, as an additive sdpa mask of both."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.qkv, self.out = nn.Embedding(V, 16), nn.Linear(16, 48), nn.Linear(16, 8)
        i = torch.arange(S)
        self.register_buffer("window", (i[:, None] - i[None, :]).abs() <= 2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.emb(ids)).view(ids.shape[0], S, 2, 24).transpose(1, 2).chunk(
            3, dim=-1)
        keep = mask.to(torch.bool)[:, None, None, :] & self.window
        bias = torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(o.transpose(1, 2).reshape(ids.shape[0], S, 16))


def test_a_padding_mask_and_a_sliding_window_at_once_are_one_row_mask():
    """Both masks: the softmax reads one row mask, the key mask's bits (from the mask input,
    at run time) in every row times the window (masks.row_mask)."""
    r = np.random.default_rng(2)
    lengths = np.array([8, 5, 3, 8, 6, 4])
    mask = (np.arange(S)[None] < lengths[:, None]).astype(np.int64)
    ids = r.integers(1, V, (N, S)) * mask
    model = PackedInputs(WindowedPadded().eval(), ("ids", "mask"), ((S,), (S,)), (True, True))
    x = graph_inputs.pack([ids, mask])
    fg = capture(model, torch.from_numpy(x[:1]), "windowed")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    keep = mask.astype(bool)
    assert np.abs(run_float(fg, x)[keep] - want[keep]).max() < 1e-4
    qg = quantize_graph(fg, x, QuantConfig())
    (soft,) = [nd for nd in qg.nodes if nd.op == "softmax"]
    assert "valid" not in soft.params and len(soft.inputs) == 2  # one row mask, no pattern
    gold = simulated_output(qg, x)
    assert cosine(qg.dequantize_output(gold)[keep], want[keep]) > 0.995
    other = ids + (1 - mask) * r.integers(1, V, (N, S))  # other ids at the padded positions
    gold2 = reference.run(qg, qg.quantize_input(graph_inputs.pack([other, mask])))
    assert np.array_equal(gold2[keep], gold[keep])


class FairseqAttention(nn.Module):
    """fairseq's MultiheadAttention (FSMT's): scores (B * H, T, S) viewed (B, H, T, S), the
    key padding mask ``ids.eq(pad)[:, None, None, :]`` filled in, viewed back (B * H, T, S):
    the mask's tensors are expanded, so the view back crashed (masks.moved)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.qkv, self.out = nn.Embedding(V, 16), nn.Linear(16, 48), nn.Linear(16, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, s = ids.shape
        q, k, v = self.qkv(self.emb(ids)).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, s, 2, 8).transpose(1, 2).reshape(b * 2, s, 8) for t in (q, k, v))
        w = torch.bmm(q, k.transpose(1, 2)).view(b, 2, s, s)
        w = w.masked_fill(ids.eq(PAD)[:, None, None, :], float("-inf")).view(b * 2, s, s)
        o = torch.bmm(w.softmax(-1), v).view(b, 2, s, 8).transpose(1, 2).reshape(b, s, 16)
        return self.out(o)


def test_masked_scores_viewed_back_after_the_fill_run_bit_exact():
    r = np.random.default_rng(3)
    ids = r.integers(2, V, (N, S))
    ids[1, 5:], ids[4, 2:] = PAD, PAD
    model = FairseqAttention().eval()
    fg = capture(model, torch.from_numpy(ids[:1]), "fairseq")
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()
    assert np.abs(run_float(fg, ids) - want).max() < 1e-4
    qg = quantize_graph(fg, ids, QuantConfig())
    gold = simulated_output(qg, ids)
    assert cosine(qg.dequantize_output(gold), want) > 0.995


class LocalBlocks(nn.Module):
    """LongT5's local attention on a padded batch (transformers' LongT5EncoderModel): the int
    mask padded and split into blocks, three blocks concatenated, logical_and of the query and
    key blocks; each score element reads its own key's bit, padded blocks none."""

    def __init__(self) -> None:
        super().__init__()
        import pytest

        t = pytest.importorskip("transformers")
        torch.manual_seed(0)
        self.enc = t.LongT5EncoderModel(t.LongT5Config(
            vocab_size=V, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
            local_radius=2, encoder_attention_type="local"))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.enc(input_ids=ids, attention_mask=mask).last_hidden_state


def test_local_attention_blocks_of_a_padded_batch_read_each_keys_bit():
    r = np.random.default_rng(4)
    lengths = np.array([8, 5, 3, 8, 6, 7])
    mask = (np.arange(S)[None] < lengths[:, None]).astype(np.int64)
    ids = r.integers(1, V, (N, S)) * mask
    model = PackedInputs(LocalBlocks().eval(), ("ids", "mask"), ((S,), (S,)), (True, True))
    x = graph_inputs.pack([ids, mask])
    fg = capture(model, torch.from_numpy(x[:1]), "local_blocks")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    keep = mask.astype(bool)
    assert np.abs(run_float(fg, x)[keep] - want[keep]).max() < 1e-4
    qg = quantize_graph(fg, x, QuantConfig())
    gold = simulated_output(qg, x)
    assert cosine(qg.dequantize_output(gold)[keep], want[keep]) > 0.99
    other = ids + (1 - mask) * r.integers(1, V, (N, S))
    gold2 = reference.run(qg, qg.quantize_input(graph_inputs.pack([other, mask])))
    assert np.array_equal(gold2[keep], gold[keep])

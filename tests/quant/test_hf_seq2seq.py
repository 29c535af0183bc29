"""Encoder-decoders (T5, BART ForConditionalGeneration) from one input holding the source and the
target ids: each is a contiguous slice of the ids, read by its embedding as the rows' ``offset``
(quant.lowering.IdSlice); the models run bit-exact on the simulator. A slice of the ids that
anything but an embedding reads is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError

transformers = pytest.importorskip("transformers")
VOCAB, SRC, TGT = 300, 10, 6


class SourceTarget(torch.nn.Module):
    """ids (batch, SRC + TGT) -> the decoder's logits (batch, TGT, vocab)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids[:, :SRC], decoder_input_ids=ids[:, SRC:]).logits


def _model(name: str) -> torch.nn.Module:
    t = transformers
    torch.manual_seed(0)
    make = {
        "t5": lambda: t.T5ForConditionalGeneration(t.T5Config(
            vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2)),
        "bart": lambda: t.BartForConditionalGeneration(t.BartConfig(
            vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
            decoder_ffn_dim=64, max_position_embeddings=64)),
    }
    return SourceTarget(make[name]().eval())


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_source_and_target_are_embeddings_of_slices_of_the_ids_and_run_bit_exact(name):
    import qasic
    from qasic.quant import capture

    model = _model(name)
    x = np.random.default_rng(0).integers(3, VOCAB, (8, SRC + TGT))
    graph = capture(model, torch.from_numpy(x[:2]))
    tokens = [n for n in graph.nodes if n.op == "embedding" and n.inputs == (graph.input,)]
    assert [(n.attrs.get("offset"), graph.shapes[n.output][0]) for n in tokens] == \
        [(0, SRC), (SRC, TGT)]
    assert graph.shapes[graph.output] == (TGT, VOCAB)
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_a_slice_of_the_ids_read_by_another_op_is_refused_in_one_line():
    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 8)

        def forward(self, ids):
            return self.emb(ids[:, :4]) * (ids[:, 4:] > 2).unsqueeze(-1)

    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(Masked().eval(), torch.randint(3, VOCAB, (1, 8)))
    assert "is a slice of the token ids (ids 4..7); only an embedding reads one" in str(e.value)
    assert "\n" not in str(e.value)


def test_generation_of_an_encoder_decoder_is_refused_in_one_line():
    """Not yet decoded token by token (the encoder's output would be a prefill-only cache):
    refused before any graph is cut, naming the target's embedding and its ids."""
    from qasic.quant import QuantConfig
    from qasic.quant.decode import decode_graph, prefill_graph
    from qasic.quant.quantize import quantize

    x = np.random.default_rng(0).integers(3, VOCAB, (4, SRC + TGT))
    full = quantize(_model("bart"), (torch.from_numpy(x[:1]),), x, QuantConfig())
    for cut in (lambda: prefill_graph(full, 3), lambda: decode_graph(full)):
        with pytest.raises(UnsupportedOpError) as e:
            cut()
        assert str(e.value).endswith(
            f"embeds ids 0..{SRC - 1} of model {full.name}'s {SRC + TGT} (an encoder-decoder's "
            "source or target); generation runs decoder-only models")

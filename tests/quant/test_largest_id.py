"""Pooling at the largest token id (``h[arange(B), ids.argmax(-1)]``: OWL-ViT, X-CLIP, OpenCLIP,
CLIP's legacy eos; qasic.quant.largest_id): the one-hot of the first token of the largest id,
computed from the ids on the accelerator. The digit tables compare any two ids exactly; the
selected row equals torch's argmax on crafted ids (ties, the largest id repeated as padding, a
largest id that is not the eos, ids differing in the low digit alone, all ids equal); float
graph == torch, golden reference == simulator; what still refuses says so in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, capture, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.largest_id import DIGIT, MAX_VOCAB, digits
from qasic.quant.quantize import quantize_graph
from tests.quant.transformer_nets import simulated_output

CLIP_VOCAB, CLIP_T = 49408, 77


class LargestId(nn.Module):
    """OWL-ViT's / X-CLIP's / HF CLIP's legacy pooling at the largest id."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.mix, self.out = nn.Embedding(vocab, 8), nn.Linear(8, 8), nn.Linear(8, 5)
        self.owl = vocab < CLIP_VOCAB  # OWL-ViT's form: the index cast to the device after

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.mix(self.emb(ids)))
        pick = ids.to(torch.int).argmax(dim=-1).to(h.device) if self.owl else \
            ids.to(dtype=torch.int, device=h.device).argmax(dim=-1)  # HF CLIP's
        return self.out(h[torch.arange(h.shape[0]), pick])


def test_the_digit_tables_give_every_difference_of_two_ids_in_int8_codes():
    for vocab, width in ((2, 4), (300, 4), (32385, 6), (32386, 8), (CLIP_VOCAB, 10),
                         (1 << 16, 12), (MAX_VOCAB, 36)):
        p, q = digits(vocab)
        assert p.shape == q.shape == (vocab, width), vocab
        assert np.abs(p).max() <= DIGIT and np.abs(q).max() <= DIGIT
        r = np.random.default_rng(vocab)
        i = np.concatenate([[0, vocab - 1, vocab - 1], r.integers(0, vocab, 2000)])
        j = np.concatenate([[vocab - 1, 0, vocab - 1], r.integers(0, vocab, 2000)])
        assert np.array_equal((p[i] * q[j]).sum(1), j - i), vocab


def _crafted(vocab: int, t: int) -> np.ndarray:
    """Rows covering every case of the module doc, the largest id of each placed by hand."""
    r = np.random.default_rng(1)
    top, eos = vocab - 1, vocab - 1
    ids = r.integers(0, vocab // 2, (10, t))
    ids[0, 5] = top                      # one largest id inside
    ids[1, [3, 9]] = top                 # twice: the first
    ids[2, 4:] = eos                     # the eos repeated as padding (HF CLIP's tokenizer)
    ids[3, 0] = eos                      # at the first token
    ids[4, t - 1] = vocab // 2 + 7       # at the last token, not the eos
    ids[5] = 3 * DIGIT + 40              # all equal: the first
    hi = (vocab // 2 // DIGIT + 2) * DIGIT  # a multiple of the digit above the random ids
    ids[6, [2, 7]] = (hi + 9, hi + 11)   # the low digit alone differs
    ids[7, [1, 6]] = (hi - 1, hi)        # the high digit decides (low 126 against 0)
    ids[8, [2, 3, 8]] = (vocab // 2 + 1, vocab // 2 + 1, vocab // 2)  # a tie, then lower
    # ids[9]: random
    return ids


@pytest.mark.parametrize("vocab,t", [(1000, 12), (CLIP_VOCAB, CLIP_T), (1000, 255)])
def test_the_selected_row_is_torchs_argmax_and_the_simulator_is_bit_exact(vocab, t):
    ids = _crafted(vocab, t)
    model = LargestId(vocab).eval()
    fg = capture(model, torch.from_numpy(ids[:1]), "largest_id")
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()
    assert np.abs(run_float(fg, ids) - want).max() < 1e-5
    qg = quantize_graph(fg, ids, QuantConfig())
    gold = simulated_output(qg, ids)  # golden reference == simulator
    assert cosine(qg.dequantize_output(gold), want) > 0.99
    env = reference.run(qg, qg.quantize_input(ids), keep=True)
    name = next(k for k in env if k.endswith(".onehot"))
    onehot = qg.tensors[name].decode(env[name]).reshape(len(ids), t)
    assert np.array_equal(onehot, np.eye(t)[torch.from_numpy(ids).argmax(-1)])
    assert list(torch.from_numpy(ids).argmax(-1)[:9]) == [5, 3, 4, 0, t - 1, 0, 7, 6, 2]


class Refused(LargestId):
    def __init__(self, vocab: int, form: str) -> None:
        super().__init__(vocab)
        self.form = form

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.mix(self.emb(ids)))
        pick = ids.argmax(dim=0) if self.form == "batch" else ids.argmin(dim=-1) \
            if self.form == "argmin" else ids.argmax(dim=-1)
        if self.form == "read":  # the index read as a number
            return self.out(h[:, 0]) * pick.unsqueeze(-1)
        return self.out(h[torch.arange(h.shape[0]), pick])


@pytest.mark.parametrize("vocab,t,form,start", [
    (50, 256, "tokens", "node 'argmax': the largest token id of 256 tokens; at most 255"),
    (50, 8, "batch", "node 'argmax': an argmax of the token ids [1, 8] (dim 0"),
    (MAX_VOCAB + 1, 8, "tokens",
     f"node 'index': the largest token id of a vocabulary of {MAX_VOCAB + 1} ids; at most"),
    (50, 8, "argmin", "node 'argmin': aten.argmin selects by value"),
    (50, 8, "read", ("node 'unsqueeze': aten.unsqueeze.default of a token index computed "
                     "from the ids (an argmax over the tokens); it runs only as the row index")),
])
def test_what_still_refuses_says_so_in_one_line(vocab, t, form, start):
    with pytest.raises(UnsupportedOpError) as e:
        capture(Refused(vocab, form).eval(), torch.zeros(1, t, dtype=torch.long))
    msg = str(e.value)
    assert msg.startswith(start), msg
    assert "\n" not in msg

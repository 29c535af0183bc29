"""A seq2seq decoder unrolled with teacher forcing over [source | target] ids (the PyTorch
seq2seq tutorial's AttnDecoderRNN: ``target[:, i].unsqueeze(1)`` embedded at step i): one
position of the target's slice of the ids, viewed per sample, is one id of each sample that the
embedding reads (quant.lowering_seq select / reshape of an IdSlice; before: 'select input is a
slice of the token ids ... only an embedding reads one'). Golden reference == simulator at
small shapes, the float graph follows torch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from tests.quant.transformer_nets import check

V, H, S, T = 20, 8, 4, 3


class GRUSeq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.src_emb, self.tgt_emb = nn.Embedding(V, H), nn.Embedding(V, H)
        self.encoder = nn.GRU(H, H, batch_first=True)
        self.decoder = nn.GRU(2 * H, H, batch_first=True)
        self.wa, self.ua, self.va = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, 1)
        self.out = nn.Linear(H, V)

    def forward(self, ids):
        keys, hidden = self.encoder(self.src_emb(ids[:, :S]))
        target, outs = ids[:, S:], []
        for i in range(target.size(1)):
            embedded = self.tgt_emb(target[:, i].unsqueeze(1))
            query = hidden.permute(1, 0, 2)
            scores = self.va(torch.tanh(self.wa(query) + self.ua(keys)))
            weights = F.softmax(scores.squeeze(2).unsqueeze(1), dim=-1)
            context = torch.bmm(weights, keys)
            output, hidden = self.decoder(torch.cat((embedded, context), dim=2), hidden)
            outs.append(self.out(output))
        return F.log_softmax(torch.cat(outs, dim=1), dim=-1)


def test_a_teacher_forced_gru_decoder_runs_bit_exact():
    ids = np.random.default_rng(0).integers(0, V, (8, S + T))
    _, _, cos = check(GRUSeq2Seq(), ids)
    r = qasic.evaluate(GRUSeq2Seq().eval(), ids, calibration=ids)
    assert r["bit_exact"] and cos > 0.999 and r["cosine"] > 0.999, (cos, r["cosine"])

"""A linear of rows merged from the leading axes and viewed back (crnn.pytorch's
BidirectionalLSTM: ``self.embedding(x.view(T * b, h)).view(T, b, -1)``) is rewritten before
capture as the linear over the last axis (qasic.quant.merged_rows): the walk no longer refuses
its output as mixing samples; bit-exact through the golden reference and the simulator, close
to float."""

from __future__ import annotations

import numpy as np
import torch
from torch import fx, nn

import qasic
from qasic.quant.merged_rows import decompose


class SeqFirstHead(nn.Module):
    """A conv column reader, a sequence-first bidirectional LSTM, the merged-rows projection,
    log_softmax over the classes."""

    def __init__(self, classes: int = 5, hidden: int = 6):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.MaxPool2d((4, 1))
        self.rnn = nn.LSTM(8, hidden, bidirectional=True)
        self.embedding = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        conv = self.pool(torch.relu(self.conv(x))).squeeze(2).permute(2, 0, 1)  # (T, b, C)
        recurrent, _ = self.rnn(conv)
        t, b, h = recurrent.size()
        out = self.embedding(recurrent.view(t * b, h)).view(t, b, -1)
        return torch.log_softmax(out, dim=2).permute(1, 0, 2)


def test_merged_rows_linear_is_the_last_axis_linear_and_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((8, 1, 4, 6)).astype(np.float32)
    model = SeqFirstHead().eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    new = decompose(ep.graph_module.graph)
    lin = [n for n in new.nodes if n.target is torch.ops.aten.linear.default]
    assert len(lin) == 1 and lin[0].meta["val"].dim() == 3, lin
    gm = fx.GraphModule(ep.graph_module, new)  # the rewritten graph computes torch's values
    params = [p.detach() for p in (*ep.state_dict.values(), *ep.constants.values())]
    xt = torch.from_numpy(x[:1])
    torch.testing.assert_close(gm(*params, xt)[0], model(xt), rtol=1e-5, atol=1e-5)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class ViewedTwice(nn.Module):
    """The merged rows also read elsewhere: not the pattern, left as written."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        rows = x.view(-1, 4)
        return self.fc(rows).view(2, 3, 3), rows.sum()


def test_only_the_exact_chain_is_rewritten():
    ep = torch.export.export(ViewedTwice(), (torch.randn(2, 3, 4),))
    graph = ep.graph_module.graph
    assert decompose(graph) is graph

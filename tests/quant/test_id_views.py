"""An embedding of a reshaped view of the token ids (qasic.quant.id_views), as hierarchical byte
models write it: MEGABYTE pads the ids to a multiple of its patch length
(``F.pad(ids, (0, remainder))``, remainder 0 here) and reshapes them to (batch, patches,
patch) before each stage's embedding. Refused before ("an embedding of computed indices"); now
the embedding reads the ids and its rows take the view: float == torch, golden reference ==
simulator, close to float."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant import capture, run_float
from tests.quant.opcheck import quantized, torch_out
from tests.quant.transformer_nets import simulated_output


class PatchedBytes(nn.Module):
    """MEGABYTE's two stages at small sizes: the ids padded by nothing and viewed as patches;
    a global embedding per patch (its tokens' rows concatenated) and a local one per byte."""

    def __init__(self, vocab: int = 32, d: int = 8, patch: int = 4) -> None:
        super().__init__()
        self.patch = patch
        self.local, self.glob = nn.Embedding(vocab, d), nn.Embedding(vocab, d)
        self.proj = nn.Linear(patch * d, d)
        self.out = nn.Linear(d, vocab)

    def forward(self, ids):
        b, n = ids.shape
        ids = F.pad(ids, (0, -n % self.patch))
        ids = ids.reshape(b, -1, self.patch)
        patches = self.proj(self.glob(ids).reshape(b, ids.shape[1], -1))  # (b, P, d)
        local = self.local(ids)  # (b, P, patch, d)
        return self.out(local + patches.unsqueeze(2)).reshape(b, n, -1)


def _ids(n: int = 4, seq: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 32, (n, seq)).astype(np.int64)


def test_an_embedding_of_the_ids_reshaped_to_patches_runs_bit_exact():
    torch.manual_seed(0)
    m, x = PatchedBytes().eval(), _ids()
    g = capture(m, torch.from_numpy(x[:1]))
    embeds = [n for n in g.nodes if n.op == "embedding"]
    assert len(embeds) == 2 and all(n.inputs == (g.input,) for n in embeds)
    want = torch_out(m, x)
    np.testing.assert_allclose(run_float(g, g.to_internal(x)).reshape(want.shape), want,
                               rtol=1e-4, atol=1e-5)
    q = quantized(m, x)
    got = q.dequantize_output(simulated_output(q, x)).ravel()
    want = want.ravel()
    assert np.dot(got, want) / np.linalg.norm(got) / np.linalg.norm(want) > 0.99

"""mambapy's MambaBlock with config.pscan=True (an in-place Blelloch scan in an
autograd.Function) is refused in one line naming the module and the setting that runs
(pscan=False); with pscan=False nothing is refused by name (qasic.quant.known_modules)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import known_modules


class MambaBlock(torch.nn.Module):  # mambapy's name and the attributes the row reads
    def __init__(self, pscan: bool):
        super().__init__()
        self.config = SimpleNamespace(pscan=pscan, use_cuda=False)

    def selective_scan_seq(self, x):
        return x


def test_mambapys_parallel_scan_is_refused_in_one_line_naming_the_setting():
    net = torch.nn.Sequential(MambaBlock(pscan=True))
    with pytest.raises(UnsupportedOpError) as e:
        known_modules.check(net)
    msg = str(e.value)
    assert msg.startswith("module '0' (MambaBlock): mambapy's parallel scan") and "\n" not in msg
    assert "set pscan=False in its config" in msg
    known_modules.check(torch.nn.Sequential(MambaBlock(pscan=False)))  # no refusal

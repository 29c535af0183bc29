"""The ATen op -> lowering handler table: the layers and shape ops (qasic.quant.lowering) and the
pools, activations and elementwise ops (qasic.quant.lowering_ops)."""

from __future__ import annotations

from qasic.quant import lowering, lowering_ops

HANDLERS = {**lowering.HANDLERS, **lowering_ops.HANDLERS}
SUPPORTED = lowering.SUPPORTED + lowering_ops.SUPPORTED

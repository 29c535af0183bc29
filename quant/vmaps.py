"""torch.vmap regions of constants folded at capture.

transformers builds an attention mask with ``torch.vmap`` over the query and key indices when
a model passes its own mask function (``or_mask_function`` / ``and_mask_function``:
Unlimited-OCR's prefill overlay). torch.export keeps the region as functorch calls:
``_vmap_increment_nesting`` (a new vmap level), ``_add_batch_dim`` of the index ranges, the
mask function's ops (a tensor indexed by a batched index: ``flat_apply`` of torch._dynamo's
``ModIndex``, its function and argument tree specs two ``get_attr`` nodes), ``_remove_batch_dim``
and ``_vmap_decrement_nesting``. On constants (index ranges, no activation) capture folds
every op by running it; the nesting calls return nothing read, so they are run for their
effect (``RUN``), and a ``flat_apply``'s tree specs are plain values (``is_spec``). A vmap
over activations stops at its first batched op, refused in one line as an unsupported op;
``levels`` then pops the levels the walk pushed, so the process's functorch state is as
before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import fx
from torch._functorch import predispatch

# run though nothing reads their value: they open and close a vmap level
RUN = (predispatch._vmap_increment_nesting, predispatch._vmap_decrement_nesting)


def runs(node: fx.Node) -> bool:
    """Whether ``node`` opens or closes a vmap level."""
    return node.op == "call_function" and node.target in RUN


def is_spec(node: fx.Node) -> bool:
    """Whether get_attr ``node`` is read only as a ``flat_apply``'s function or argument
    tree spec (a pytree TreeSpec, not a subgraph)."""
    return bool(node.users) and all(
        u.target is torch.ops.higher_order.flat_apply and node in u.args[:2] for u in node.users)


@contextlib.contextmanager
def levels() -> Iterator[None]:
    """On exit, the vmap levels opened inside and not closed (a refusal between) closed."""
    depth = torch._C._functorch.maybe_current_level()
    try:
        yield
    finally:
        while (level := torch._C._functorch.maybe_current_level()) is not None and (
                depth is None or level > depth):
            torch._C._functorch._vmap_decrement_nesting()

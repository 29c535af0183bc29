"""Wrapper higher-order ops inlined before capture.

``torch.export`` keeps a region under a context manager as a call of a higher-order op on a
subgraph (a ``get_attr`` of a GraphModule): ``torch.autocast(..., enabled=False)`` (x-transformers
computes its rotary embedding so) becomes ``wrap_with_autocast``, ``torch.no_grad()`` /
``torch.enable_grad()`` ``wrap_with_set_grad_enabled``. These only run their subgraph under a
mode, so the walk sees the subgraph's nodes in place of the call, its outputs for the call's
``getitem``s. The mode is dropped: gradients do not exist at inference, and autocast disabled
(``enabled=False``) computes in the model's own dtype. An enabled autocast computes its region
in another float dtype (torch.export records bfloat16 values): the cast back to the model's
dtype after it is then refused in one line by capture ("the model must stay in
torch.bfloat16"), as any change of dtype is.

One row per wrapper: where its subgraph and operands sit in the call's arguments. Any other
higher-order op (``cond``, ``while_loop``, ``map``, ``scan``, ``flex_attention``, ...) is left
to capture, which refuses it in one line.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import fx

_HOP = torch.ops.higher_order

# a wrapper's own keywords (not the subgraph's): torch.utils.checkpoint's options, hints
_OPTIONS = frozenset({"use_reentrant", "preserve_rng_state", "context_fn", "determinism_check",
                      "debug", "hints"})


def _plain(graph: Any, operands: Any, kwargs: dict) -> tuple[Any, tuple] | None:
    """(subgraph, operands), or None when the subgraph also takes keywords (not inlined)."""
    return None if set(kwargs) - _OPTIONS else (graph, tuple(operands))


# wrapper -> ((args, kwargs) -> (subgraph, operands) or None); the signatures of torch 2.13's
# torch/_higher_order_ops
WRAPPERS: dict[Any, Callable[[tuple, dict], tuple[Any, tuple] | None]] = {
    # (device_type, dtype, enabled, cache_enabled, graph, *operands)
    _HOP.wrap_with_autocast: lambda a, k: _plain(a[4], a[5:], k),
    # (enabled, graph, *operands)
    _HOP.wrap_with_set_grad_enabled: lambda a, k: _plain(a[1], a[2:], k),
    # (graph, *operands): torch._higher_order_ops.wrap, activation checkpoints
    _HOP.wrap: lambda a, k: _plain(a[0], a[1:], k),
    _HOP.tag_activation_checkpoint: lambda a, k: _plain(a[0], a[1:], k),
    _HOP.wrap_activation_checkpoint: lambda a, k: _plain(a[0], a[1:], k),
    # (graph, identifier, *operands): torch.compiler.nested_compile_region
    _HOP.invoke_subgraph: lambda a, k: _plain(a[0], a[2:], k),
    # (graph, operands, the subgraph's keywords, hints): torch._higher_order_ops.hints_wrap
    _HOP.hints_wrapper: lambda a, k: None if a[2] else _plain(a[0], a[1], k),
}


def inline(module: fx.GraphModule) -> fx.Graph:
    """``module.graph`` itself when it calls no wrapper, else a copy with every wrapper call
    (nested ones too) replaced by its subgraph's nodes."""
    if not any(_wrapper(n) for n in module.graph.nodes):
        return module.graph
    new = fx.Graph()
    _copy(new, module)
    return new


def _wrapper(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target in WRAPPERS \
        and WRAPPERS[node.target](node.args, node.kwargs) is not None


def _copy(new: fx.Graph, owner: fx.GraphModule, env: dict[fx.Node, Any] | None = None) -> tuple:
    """Copy ``owner``'s graph into ``new``. ``env`` maps a subgraph's placeholders to their
    values, and its outputs' values are returned; without it (the top graph) placeholders and
    output are copied too."""
    top, env = env is None, env or {}
    for node in owner.graph.nodes:
        if node.op == "output" and not top:
            return tuple(_mapped(node.args[0], env))
        if node in env or node.op == "get_attr" and all(map(_wrapper, node.users)):
            continue  # a subgraph's placeholder; a wrapper's subgraph
        if _wrapper(node):
            env[node] = _call(new, owner, node, env)
        elif node.target is operator.getitem and isinstance(env.get(node.args[0]), tuple):
            env[node] = env[node.args[0]][node.args[1]]
        else:
            env[node] = new.node_copy(node, lambda n: env[n])
    return ()


def _call(new: fx.Graph, owner: fx.GraphModule, node: fx.Node, env: dict) -> tuple:
    """The values of wrapper call ``node``'s outputs, its subgraph's nodes copied into ``new``."""
    graph, operands = WRAPPERS[node.target](node.args, node.kwargs)
    sub = getattr(owner, graph.target)
    inner = [n for n in sub.graph.nodes if n.op == "placeholder"]
    return _copy(new, sub, dict(zip(inner, _mapped(operands, env), strict=True)))


def _mapped(tree: Any, env: dict) -> Any:
    return fx.node.map_arg(tree, lambda n: env[n])

"""A transformers model's KV cache is no output: with ``config.use_cache`` off (capture turns it
off, qasic keeps its own KV caches), a ``past_key_values`` passed in is still returned by the
Llama family (``BaseModelOutputWithPast(..., past_key_values=past_key_values)``). PEFT's prefix
tuning passes one, its virtual tokens' keys and values (``PeftModelForCausalLM.forward``:
``kwargs["past_key_values"] = self.get_prompt(batch_size)``), and torch.export cannot flatten
the DynamicCache returned. While tracing, each transformers model inside the traced one returns
its output with ``past_key_values`` None (a forward hook); the attention still reads the cache's
prefix inside the trace. The export check compares the eager output without it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def without_cache(out: Any) -> Any:
    """``out`` with no ``past_key_values`` when it is a transformers ModelOutput (the eager and
    the exported outputs compared alike: quant.export_check)."""
    if getattr(out, "past_key_values", None) is not None and hasattr(out, "to_tuple"):
        out.past_key_values = None
    return out


def _dropped(module: Any, args: Any, out: Any) -> Any:
    return without_cache(out)


@contextlib.contextmanager
def no_cache_output(model: Any) -> Iterator[None]:
    """Forward hooks dropping ``past_key_values`` from the outputs of ``model``'s transformers
    models whose ``config.use_cache`` is off, removed after."""
    hooks = [m.register_forward_hook(_dropped) for m in _cache_off(model)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def _cache_off(model: Any) -> list:
    modules = model.modules() if hasattr(model, "modules") else ()
    return [m for m in modules if type(m).__module__.startswith("transformers.")
            and hasattr(m, "config") and getattr(m.config, "use_cache", True) is False
            and hasattr(m, "get_input_embeddings")]

"""A transformers model's KV cache is no output: with ``config.use_cache`` off (capture turns it
off, qasic keeps its own KV caches), a cache passed in is still returned by the Llama family
(``BaseModelOutputWithPast(..., past_key_values=past_key_values)``, the field ``cache`` in
transformers 5.2x). PEFT's prefix tuning passes one, its virtual tokens' keys and values
(``PeftModelForCausalLM.forward``: ``kwargs["past_key_values"] = self.get_prompt(batch)``), and
torch.export cannot flatten the DynamicCache returned. While tracing, each transformers model
inside the traced one returns its output without the cache (a forward hook); the attention
still reads the cache's prefix inside the trace. The export check compares the eager output
without it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

CACHE_KEYS = ("past_key_values", "cache")


def without_cache(out: Any) -> Any:
    """``out`` without its cache when it is a transformers ModelOutput holding one (the eager
    and the exported outputs compared alike: quant.export_check); ``out`` otherwise."""
    if not hasattr(out, "to_tuple") or not any(k in CACHE_KEYS for k in out):
        return out
    # a new one: a ModelOutput keeps a key set to None (__setattr__) and refuses __delitem__
    return type(out)(**{k: v for k, v in out.items() if k not in CACHE_KEYS})


def _dropped(module: Any, args: Any, out: Any) -> Any:
    return without_cache(out)


@contextlib.contextmanager
def no_cache_output(model: Any) -> Iterator[None]:
    """Forward hooks dropping the cache from the outputs of ``model``'s transformers models
    (any cache: qasic's own KV caches serve generation), removed after."""
    hooks = [m.register_forward_hook(_dropped) for m in _cache_off(model)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def _cache_off(model: Any) -> list:
    modules = model.modules() if hasattr(model, "modules") else ()
    return [m for m in modules if type(m).__module__.startswith("transformers.")
            and hasattr(m, "get_input_embeddings")]

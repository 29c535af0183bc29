"""The survey's diffusers rows (benchmarks/family_survey.py, family ``diffusion``): U-Nets, VAEs,
diffusion transformers and ControlNet built tiny from their constructors' keywords.

Each takes one tensor: the noisy sample (``latent``: float (2, 4, size, size); ``image``: (2, 3,
size, size)); everything else a call needs is a constant the wrapper holds (a fixed timestep 10,
class 3, a seeded text context (1, 5, ``cross_attention_dim``) expanded over the batch, SDXL's
pooled text (1, 8) and time ids (8 size, 8 size, 0, 0, 8 size, 8 size), aMUSEd's micro
conditions (8 size, 8 size, 0, 0, 6),
ControlNet's conditioning image (1, 3, 2 size, 2 size)), as a sampler's one step at one
conditioning is. The wrapper returns the model's ``sample`` (a VAE: decode(encode(x).mode());
ControlNet: its mid-block residual). CALLS holds one wrapper per call form (a row's model
keyword ``call``); the other model keywords are the class's constructor's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

T, LABEL, TOKENS = 10, 3, 5  # the fixed timestep, class label and text tokens
POOLED = 8  # SDXL's pooled text embedding (its time_ids: original size, crop, target size)


def _unet(s: Any, x: Any) -> Any:
    return s.m(x, T).sample


def _unet_class(s: Any, x: Any) -> Any:
    return s.m(x, T, class_labels=s.label.expand(len(x))).sample


def _unet_text(s: Any, x: Any) -> Any:
    return s.m(x, T, encoder_hidden_states=s.context.expand(len(x), -1, -1)).sample


def _unet_sdxl(s: Any, x: Any) -> Any:  # SDXL's pooled text and size/crop micro-conditions
    n = len(x)
    return s.m(x, T, encoder_hidden_states=s.context.expand(n, -1, -1),
               added_cond_kwargs={"text_embeds": s.pooled.expand(n, -1),
                                  "time_ids": s.time_ids.expand(n, -1)}).sample


def _uvit(s: Any, x: Any) -> Any:  # aMUSEd's: a (batch, H, W) grid of VQ token ids
    n = len(x)
    return s.m(x, encoder_hidden_states=s.context.expand(n, -1, -1),
               pooled_text_emb=s.pooled.expand(n, -1), micro_conds=s.micro.expand(n, -1))


def _vae(s: Any, x: Any) -> Any:
    return s.m.decode(s.m.encode(x).latent_dist.mode()).sample


def _tiny_vae(s: Any, x: Any) -> Any:
    return s.m.decode(s.m.encode(x).latents).sample


def _vq(s: Any, x: Any) -> Any:
    return s.m(x).sample


def _vq_decoder(s: Any, x: Any) -> Any:  # the codebook's argmin is refused (docs/ops.md)
    return s.m.decode(x, force_not_quantize=True).sample


def _dit(s: Any, x: Any) -> Any:
    return s.m(x, timestep=s.t.expand(len(x)), class_labels=s.label.expand(len(x))).sample


def _pixart(s: Any, x: Any) -> Any:
    return s.m(x, encoder_hidden_states=s.context.expand(len(x), -1, -1),
               timestep=s.t.expand(len(x)),
               added_cond_kwargs={"resolution": None, "aspect_ratio": None}).sample


def _sd3(s: Any, x: Any) -> Any:  # MMDiT: joint attention over the image and text tokens
    n = len(x)
    return s.m(x, encoder_hidden_states=s.context.expand(n, -1, -1),
               pooled_projections=s.pooled.expand(n, -1), timestep=s.t.expand(n)).sample


def _flux(s: Any, x: Any) -> Any:  # packed latents (batch, H W, C); RoPE over (0, row, col)
    import torch

    n, hw = len(x), x.shape[1]
    side = round(hw ** 0.5)
    rows = torch.arange(hw) // side
    img_ids = torch.stack([torch.zeros(hw), rows.float(), (torch.arange(hw) % side).float()], 1)
    return s.m(x, encoder_hidden_states=s.context.expand(n, -1, -1),
               pooled_projections=s.pooled.expand(n, -1), timestep=s.t.expand(n) / 20.0,
               img_ids=img_ids, txt_ids=torch.zeros(TOKENS, 3)).sample


def _transformer(s: Any, x: Any) -> Any:
    return s.m(x, encoder_hidden_states=s.context.expand(len(x), -1, -1)).sample


def _controlnet(s: Any, x: Any) -> Any:
    _, mid = s.m(x, T, encoder_hidden_states=s.context.expand(len(x), -1, -1),
                 controlnet_cond=s.cond.expand(len(x), -1, -1, -1), return_dict=False)
    return mid


CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "unet": _unet, "unet_class": _unet_class, "unet_text": _unet_text, "unet_sdxl": _unet_sdxl,
    "uvit": _uvit, "vae": _vae, "tiny_vae": _tiny_vae, "vq": _vq, "vq_decoder": _vq_decoder,
    "dit": _dit, "pixart": _pixart, "sd3": _sd3, "flux": _flux, "transformer": _transformer,
    "controlnet": _controlnet}


def model_class(name: str) -> Any:
    """The diffusers class ``name`` (before any '@'), or None when it is not installed."""
    try:
        import diffusers
    except ImportError:
        return None
    return getattr(diffusers, name.split("@")[0], None)


def build(cls: Any, kw: dict, call: str, size: int, reinit: Callable[[Any], Any]) -> Any:
    """The wrapped model: ``cls(**kw)`` re-initialized by ``reinit`` (the survey's), taking
    the sample and calling it as CALLS[call] with the constants the module doc lists."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = reinit(cls(**kw).eval())
    # PixArt's captions are projected to its attention's width: their own channels
    width = next((kw[k] for k in ("caption_channels", "cross_attention_dim",
                                  "encoder_hidden_size", "joint_attention_dim") if kw.get(k)), 1)
    context = torch.randn(1, TOKENS, width)
    pooled = kw.get("cond_embed_dim") or kw.get("pooled_projection_dim") or POOLED
    fn = CALLS[call]

    class Wrapped(nn.Module):
        """One tensor in (the noisy sample), the model's sample out."""

        def __init__(self):
            super().__init__()
            self.m = model
            self.register_buffer("t", torch.tensor([T]))
            self.register_buffer("label", torch.tensor([LABEL]))
            self.register_buffer("context", context)
            self.register_buffer("cond", torch.randn(1, 3, 2 * size, 2 * size))
            self.register_buffer("pooled", torch.randn(1, pooled))
            self.register_buffer("micro", torch.tensor([[8.0 * size] * 2 + [0.0] * 2 + [6.0]]))
            self.register_buffer("time_ids", torch.tensor([[8.0 * size] * 2 + [0.0] * 2
                                                           + [8.0 * size] * 2]))

        def forward(self, x):
            return fn(self, x)

    Wrapped.__name__ = cls.__name__
    return Wrapped().eval()

"""diffusers' models, tiny, at a fixed timestep and conditioning (benchmarks/diffusion.py's
call forms): a text-conditioned U-Net (cross-attention to a constant context: constant K/V
nodes), a DiT (adaLN-Zero from constant timestep and class embeddings, the unpatchify einsum a
permute), ControlNet's constant conditioning image, a Fourier-embedded timestep; each bit-exact
through qasic.evaluate or its golden reference near torch. VQModel's quantizer is refused in one
line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import qasic
from benchmarks import diffusion
from qasic.quant.evaluate import cosine
from tests.quant.opcheck import float_matches, quantized, reference_cosine, reference_out

diffusers = pytest.importorskip("diffusers")


def _reinit(m):
    return m


def _model(cls: str, kw: dict, call: str, size: int = 8):
    return diffusion.build(getattr(diffusers, cls), kw, call, size, _reinit)


def _x(c: int, size: int, batch: int = 2) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, c, size, size)).astype(np.float32)


UNET_TEXT = {"sample_size": 4, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
             "block_out_channels": (8,), "norm_num_groups": 4, "cross_attention_dim": 8,
             "attention_head_dim": 4, "down_block_types": ("CrossAttnDownBlock2D",),
             "up_block_types": ("CrossAttnUpBlock2D",)}


def test_a_text_conditioned_unet_reads_its_context_as_constant_keys_and_values():
    """Before: 'attention input must be an activation, not a constant' at attn2."""
    x = _x(4, 4)
    m = _model("UNet2DConditionModel", UNET_TEXT, "unet_text")
    graph = quantized(m, x)
    kv = [n for n in graph.nodes if n.op == "constant" and n.name.endswith((".k", ".v"))]
    # attn2 of the down, mid and two up transformers: K and V each, (heads, tokens, head
    # size) (diffusers' attention_head_dim 4 is the U-Net's head count: 4 heads of 2)
    assert len(kv) == 2 * 4 and all(graph.shapes[n.output] == (4, 5, 2) for n in kv)
    got, want = reference_out(graph, x), m(torch.from_numpy(x)).detach().numpy()
    assert cosine(got, want) > 0.999  # measured 0.9997 (bit-exact: the survey's row)


DIT = {"num_attention_heads": 2, "attention_head_dim": 4, "in_channels": 4, "out_channels": 4,
       "num_layers": 1, "sample_size": 4, "patch_size": 2, "norm_num_groups": 4}


@pytest.mark.parametrize("cls, kw, call", [
    ("DiTTransformer2DModel", DIT | {"num_embeds_ada_norm": 10}, "dit"),
    # cross-attention to its constant caption: constant K/V
    ("PixArtTransformer2DModel", DIT | {"cross_attention_dim": 8, "caption_channels": 6},
     "pixart")])
def test_diffusion_transformers_run_bit_exact(cls, kw, call):
    x = _x(4, 4)
    r = qasic.evaluate(_model(cls, kw, call, 4), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # measured 0.9999


def test_controlnet_with_a_constant_conditioning_image_follows_torch():
    kw = {k: v for k, v in UNET_TEXT.items()
          if k not in ("up_block_types", "out_channels", "sample_size")}
    m = _model("ControlNetModel", kw | {"conditioning_embedding_out_channels": (8,)},
               "controlnet", 4)
    for z in (m.m.controlnet_mid_block, *m.m.controlnet_down_blocks,
              m.m.controlnet_cond_embedding.conv_out):  # zero-initialized: made to matter
        torch.nn.init.normal_(z.weight, std=0.3)
    x = _x(4, 8, 4)
    graph = float_matches(m, x)
    assert any(n.op == "constant" and n.name.endswith(".value") for n in graph.nodes)
    assert reference_cosine(m, x) > 0.99  # measured 0.997


def test_a_fourier_timestep_divides_the_sample_as_a_scalar():
    kw = {"sample_size": 8, "in_channels": 3, "out_channels": 3, "layers_per_block": 1,
          "block_out_channels": (8,), "norm_num_groups": 4, "down_block_types": ("DownBlock2D",),
          "up_block_types": ("UpBlock2D",), "time_embedding_type": "fourier"}
    m, x = _model("UNet2DModel", kw, "unet"), _x(3, 8, 4)
    last = float_matches(m, x).nodes[-1]  # sample / timesteps after conv_out
    assert last.op == "lut" and last.attrs["fn_args"]["scale"] == pytest.approx(0.1)
    assert reference_cosine(m, x) > 0.99  # measured 0.998


def test_a_vq_models_codebook_search_by_cdist_is_a_top1_lookup():
    """argmin(cdist(z, E)) then the embedding: the top-1 of 2 z.e - ||e||^2 times the
    codebook (qasic.quant.cdist_scores); no cdist left."""
    kw = {"block_out_channels": (8,), "norm_num_groups": 4, "latent_channels": 4,
          "down_block_types": ("DownEncoderBlock2D",), "up_block_types": ("UpDecoderBlock2D",),
          "num_vq_embeddings": 8, "vq_embed_dim": 4}
    graph = float_matches(_model("VQModel", kw, "vq"), _x(3, 8))
    assert sum(n.op == "topk_mask" for n in graph.nodes) == 1


class _Fir(torch.nn.Module):
    """A conv, then diffusers' FIR resampler ``block`` (upfirdn2d: each channel a one-channel
    image folded into the batch, qasic.quant.image_stacks), then a conv."""

    def __init__(self, block):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.block, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), block, \
            torch.nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.b(self.block(self.a(x)))


@pytest.mark.parametrize(("block", "kw"), [
    ("FirDownsample2D", {"use_conv": False}), ("FirDownsample2D", {"use_conv": True}),
    ("FirUpsample2D", {"use_conv": False})])
def test_fir_up_and_downsampling_run_bit_exact(block, kw):
    """Score-SDE U-Nets' FIR filters (SkipDownBlock2D, AttnSkipUpBlock2D, ResnetBlock2D with
    kernel='fir'): the fixed 4x4 filter of every channel a depthwise conv."""
    from diffusers.models import downsampling, upsampling

    cls = getattr(downsampling, block, None) or getattr(upsampling, block)
    m = _Fir(cls(8, out_channels=8, **kw)).eval()
    x = _x(3, 8, 4)
    record = qasic.evaluate(m, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]


def test_a_fir_upsampling_conv_of_a_partial_phase_row_runs_bit_exact():
    """FirUpsample2D(use_conv=True): its stride-2 transposed 3x3 conv has 17 rows of 9 phase
    rows (no whole number of phases): the phases' rows cropped (qasic.quant.lowering_convt).
    Before: refused ('output height 17, not a multiple of its stride 2')."""
    from diffusers.models.upsampling import FirUpsample2D

    m = _Fir(FirUpsample2D(8, out_channels=8, use_conv=True)).eval()
    x = _x(3, 8)
    record = qasic.evaluate(m, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]



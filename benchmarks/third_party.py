"""Networks of other libraries, as their users build them: does each capture, quantize, compile
and simulate bit-exact? A check that qasic runs code its authors never read.

    python -m benchmarks.third_party --install            # the pinned packages, --no-deps
    python -m benchmarks.third_party --out out/third_party [--only NAME,...] [--timeout S]
    python -m benchmarks.third_party --summary benchmarks/results/third_party.json

The libraries (LIBRARIES, pinned) are pure PyTorch and go to ``.cache/third_party`` with
``pip install --no-deps --target``, with the pure-Python dependencies the venv lacks
(DEPENDENCIES: beartype, hyper-connections, jaxtyping, ...): lucidrains' ``vit-pytorch`` (the
vision transformers of 30 papers, one file each), Project MONAI (medical imaging: 2-D and 3-D
U-Nets, SegResNet, UNETR, SwinUNETR, DenseNet, EfficientNet, VNet, autoencoders), Lightning AI's
``litgpt`` (one GPT class, each LLM family a Config), ``torchtune`` (TransformerDecoders from its
component builders, a LoRA one too) and lucidrains' language models and layers (PaLM, MEGABYTE,
local attention, GateLoop, Hourglass, Mega, recurrent-memory and block-recurrent transformers,
CoLT5, Taylor-series linear attention, ST-MoE, Soft MoE). Stand-ins satisfy imports the networks
never use: ``vit_pytorch``'s package init imports its DINO and ES-ViT trainers, which import
``torchvision.transforms`` (its wheels pull CUDA); ``litgpt``'s imports its LLM API and trainers
(``lightning``) and ``model.py`` a checkpoint converter; ``torchtune``'s and its model families'
import its datasets, tokenizers and ``torchao``'s NF4 tensors (QLoRA's). Each network's own
modules are imported from the package as installed.

Transformers in other libraries' layouts (TRANSFORMERS; their libraries and dependencies a
block of LIBRARIES and DEPENDENCIES of their own): OpenCLIP's text and image towers from a
config dict, X-CLIP's, lucidrains' Performer (FAVOR+), Linformer, Perceiver and PerceiverIO,
Nystromformer, chunked and flash attention in plain PyTorch, linear-attention, Sinkhorn,
routing and Reformer transformers, the Conformer block, Microsoft ``torchscale``'s RetNet and
Transformer decoders, and BlinkDL's ``rwkv`` package (RWKV-4, 5, 6) on a random checkpoint;
OpenCLIP's package init imports ``torchvision.ops`` and torchscale ``timm``: the vision zoo's.

The libraries users wrap transformers in (ADAPTERS, built by benchmarks.third_party_adapters;
their libraries and accelerate a block of LIBRARIES and DEPENDENCIES): sentence-transformers'
SentenceTransformer (all-MiniLM-L6-v2's folder, and built from modules) and PEFT's adapters on
tiny Llama, GPT-2, BERT and ViT models.

Every network (MODELS: the library, a builder of a small configuration, the input: a float
shape, ``Ids(vocab, seq, causal)``, int64 token ids (batch, seq) in [0, vocab), or
``Features(vocab, seq, output)``, a tokenizer's {input_ids, attention_mask} with padded tails fed
as the forward's one dict and evaluated at output ``output``) is built from
``torch.manual_seed(0)`` with its library's own initialization, and run through
``qasic.evaluate(model, x, calibration=x)`` (W8A8, the default arch) on 4 random inputs, each
in its own subprocess with a time limit. Records: ``status`` ``ok`` (``bit_exact``,
``cosine`` to fp32, ``cycles``), ``refused`` (qasic's one line), ``crash`` (any other
exception: a bug), ``build`` (the library refused its configuration), ``timeout`` or
``unavailable`` (the library is not installed). A causal LM (``Ids(..., causal=True)``) also
generates after its evaluation, as benchmarks.family_survey's decoders do
(``family_survey.generation``: a prefill of 6 tokens, 8 decode steps on the simulator):
``generate`` is ``exact`` (every token and every step's logit codes equal the golden
reference's; ``decode_cycles`` per token; ``decode``: ``kv_cache``, or ``recompute`` where no
decode step can be planned, the whole model per token: qasic.recompute), ``differs``, or
``refused: <qasic's line>`` (or ``crash: ...``). A network returning a tuple is evaluated on its
first output. Results: ``third_party.json``; ``summary`` (``--summary``) counts them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import third_party_adapters as ta

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / ".cache" / "third_party"
LIBRARIES = {"vit_pytorch": "vit-pytorch==1.26.14", "monai": "monai==1.6.1",
             "litgpt": "litgpt==0.5.13", "torchtune": "torchtune==0.6.1",
             "palm_pytorch": "PaLM-pytorch==0.2.2",
             "MEGABYTE_pytorch": "MEGABYTE-pytorch==0.3.6",
             "local_attention": "local-attention==1.11.2",
             "gateloop_transformer": "gateloop-transformer==0.2.5",
             "hourglass_transformer_pytorch": "hourglass-transformer-pytorch==0.0.6",
             "simple_hierarchical_transformer": "simple-hierarchical-transformer==0.4.0",
             "mega_pytorch": "Mega-pytorch==0.1.0",
             "recurrent_memory_transformer_pytorch": "recurrent-memory-transformer-pytorch==0.7.0",
             "block_recurrent_transformer_pytorch": "block-recurrent-transformer-pytorch==0.4.4",
             "colt5_attention": "CoLT5-attention==0.11.2",
             "taylor_series_linear_attention": "taylor-series-linear-attention==0.2.0",
             "st_moe_pytorch": "st-moe-pytorch==0.1.8",
             "soft_moe_pytorch": "soft-moe-pytorch==0.1.9",
             "segmentation_models_pytorch": "segmentation-models-pytorch==0.6.0"}
# pure-Python dependencies of those that the venv lacks (installed beside them, --no-deps)
DEPENDENCIES = ("beartype==0.23.1", "hyper-connections==0.4.11", "jaxtyping==0.3.11",
                "wadler-lindig==0.1.8", "rotary-embedding-torch==0.9.1")
# transformers in other libraries' layouts (lane tfx), their pure-Python dependencies after
LIBRARIES |= {"open_clip": "open-clip-torch==3.3.0", "x_clip": "x-clip==0.14.4",
              "performer_pytorch": "performer-pytorch==1.1.4", "linformer": "linformer==0.2.3",
              "perceiver_pytorch": "perceiver-pytorch==0.11.0",
              "nystrom_attention": "nystrom-attention==0.0.14",
              "memory_efficient_attention_pytorch": "memory-efficient-attention-pytorch==0.1.6",
              "linear_attention_transformer": "linear-attention-transformer==0.19.1",
              "sinkhorn_transformer": "sinkhorn-transformer==0.11.4",
              "routing_transformer": "routing-transformer==1.6.1", "rwkv": "rwkv==0.8.32",
              "conformer": "conformer==0.3.2", "reformer_pytorch": "reformer-pytorch==1.4.4",
              "torchscale": "torchscale==0.3.0"}
DEPENDENCIES += ("ftfy==6.3.1", "wcwidth==0.9.5", "product-key-memory==0.3.0",
                 "axial-positional-embedding==0.3.12", "mixture-of-experts==0.2.3",
                 "fairscale==0.4.13")
# the libraries users wrap transformers in (lane adapters): sentence-transformers and PEFT
LIBRARIES |= {"sentence_transformers": "sentence-transformers==6.3.0", "peft": "peft==0.22.0"}
DEPENDENCIES += ("accelerate==1.16.0",)
TIMEOUT = 600.0
SCHEMA = "third_party/1"

VIT = {"image_size": 32, "patch_size": 8, "num_classes": 10, "dim": 32, "depth": 2,
       "heads": 2, "mlp_dim": 64}
VOL = {"image_size": 32, "image_patch_size": 8, "frames": 4, "frame_patch_size": 2,
       "num_classes": 10, "dim": 32, "heads": 2, "mlp_dim": 64}


def _vit(module: str, cls: str, **kw) -> Callable[[], object]:
    def build():
        import importlib

        with _torchvision_stand_in():
            return getattr(importlib.import_module(f"vit_pytorch.{module}"), cls)(**kw)
    return build


def _monai(cls: str, **kw) -> Callable[[], object]:
    def build():
        from monai.networks import nets

        return getattr(nets, cls)(**kw)
    return build


def _unets(d: int) -> dict:
    """MONAI's U-Nets and encoders in ``d`` spatial dimensions (name suffix ``3d`` for 3-D)."""
    s = "3d" if d == 3 else ""
    img = (1, 16, 16, 16) if d == 3 else (1, 32, 32)
    big = (1, 32, 32, 32) if d == 3 else (1, 64, 64)
    size = img[1:]
    return {
        f"monai_unet{s}": ("monai", _monai("UNet", spatial_dims=d, in_channels=1,
                                           out_channels=2, channels=(8, 16, 32),
                                           strides=(2, 2), num_res_units=2), img),
        f"monai_basicunet{s}": ("monai", _monai("BasicUNet", spatial_dims=d, in_channels=1,
                                                out_channels=2,
                                                features=(8, 8, 16, 16, 32, 8)), big),
        f"monai_segresnet{s}": ("monai", _monai("SegResNet", spatial_dims=d, init_filters=8,
                                                in_channels=1, out_channels=2,
                                                blocks_down=(1, 1, 1), blocks_up=(1, 1)), img),
        f"monai_unetr{s}": ("monai", _monai("UNETR", in_channels=1, out_channels=2,
                                            img_size=size, feature_size=8, hidden_size=48,
                                            mlp_dim=96, num_heads=2, spatial_dims=d), img),
        f"monai_attentionunet{s}": ("monai", _monai("AttentionUnet", spatial_dims=d,
                                                    in_channels=1, out_channels=2,
                                                    channels=(8, 16, 32), strides=(2, 2)), img),
        f"monai_dynunet{s}": ("monai", _monai("DynUNet", spatial_dims=d, in_channels=1,
                                              out_channels=2, kernel_size=(3, 3, 3),
                                              strides=(1, 2, 2), upsample_kernel_size=(2, 2),
                                              filters=(8, 16, 32)), img),
        f"monai_densenet121{s}": ("monai", _monai("DenseNet121", spatial_dims=d, in_channels=1,
                                                  out_channels=3, init_features=8,
                                                  growth_rate=8), big),
        f"monai_resnet18{s}": ("monai", _monai("resnet18", spatial_dims=d, n_input_channels=1,
                                               num_classes=3), img),
        f"monai_vit{s}": ("monai", _monai("ViT", in_channels=1, img_size=size,
                                          patch_size=(8,) * d, hidden_size=48, mlp_dim=96,
                                          num_layers=2, num_heads=2, spatial_dims=d,
                                          classification=True, num_classes=3), img),
        f"monai_autoencoder{s}": ("monai", _monai("AutoEncoder", spatial_dims=d, in_channels=1,
                                                  out_channels=1, channels=(8, 16, 32),
                                                  strides=(2, 2, 2)), img),
    }


@dataclass(frozen=True)
class Ids:
    """An input of token ids, int64 (batch, ``seq``) in [0, ``vocab``), in place of a float
    shape; ``causal``: a causal LM, which also generates (the record's ``generate``)."""

    vocab: int
    seq: int = 16
    causal: bool = True


@dataclass(frozen=True)
class Features:
    """Tokenizer features in place of a float shape: a dict {``input_ids`` int64 (batch,
    ``seq``) in [5, ``vocab``), ``attention_mask`` 0/1 with each sample's tail padded (ids 0
    there)}, fed to the forward as one dict (a SentenceTransformer's); evaluated on the
    output ``output``."""

    vocab: int
    seq: int = 16
    output: str = "sentence_embedding"


VOCAB = 64
LM = Ids(VOCAB)
# litgpt: every layout a Config of its own at one tiny size (the per-layer lists cut to 2 layers)
TINY = {"n_layer": 2, "n_embd": 32, "n_head": 4, "head_size": 8, "intermediate_size": 64,
        "moe_intermediate_size": 32, "block_size": 16, "vocab_size": VOCAB,
        "padded_vocab_size": VOCAB}
PER_LAYER = ("sliding_window_indices", "rope_indices")


def _lib(module: str, attr: str, **kw) -> Callable[[], object]:
    """``module.attr(**kw)`` of an installed library."""
    def build():
        import importlib

        return getattr(importlib.import_module(module), attr)(**kw)
    return build


@contextlib.contextmanager
def _litgpt_stand_in() -> Iterator[None]:
    """litgpt's networks without its package init (``litgpt/__init__`` imports its LLM API,
    trainers and loggers, which import ``lightning``: not installed) and with a stand-in for
    ``litgpt.scripts.convert_hf_checkpoint`` (``model.py`` imports its ``qkv_reassemble``,
    which only converts a legacy checkpoint's fused QKV when one is loaded: never here)."""
    root = TARGET / "litgpt"
    names = ("litgpt", "litgpt.scripts", "litgpt.scripts.convert_hf_checkpoint")
    saved = {k: sys.modules.get(k) for k in names}
    pkg, scripts = types.ModuleType("litgpt"), types.ModuleType("litgpt.scripts")
    pkg.__path__, scripts.__path__ = [str(root)], [str(root / "scripts")]
    convert = types.ModuleType("litgpt.scripts.convert_hf_checkpoint")

    def qkv_reassemble(*a, **k):
        raise RuntimeError("litgpt.scripts.convert_hf_checkpoint is a stand-in here")

    convert.qkv_reassemble = qkv_reassemble
    if saved["litgpt"] is None:  # kept after: litgpt's Config finds its classes in litgpt.model
        sys.modules.update(dict(zip(names, (pkg, scripts, convert), strict=True)))
    yield


def _litgpt(name: str, **overrides) -> Callable[[], object]:
    """litgpt's ``GPT(Config.from_name(name, **TINY, **overrides))``."""
    def build():
        with _litgpt_stand_in():
            from litgpt.config import Config, name_to_config
            from litgpt.model import GPT

            base = name_to_config[name]
            cut = {k: base[k][:TINY["n_layer"]] for k in PER_LAYER if base.get(k)}
            config = Config.from_name(name, **(TINY | cut | overrides))
            model = GPT(config)
        return model
    return build


@contextlib.contextmanager
def _torchtune_stand_in() -> Iterator[None]:
    """torchtune's component builders without the package inits of ``torchtune``,
    ``torchtune.models`` and its families' (they import its recipes' datasets,
    tokenizers and ``torchao``'s training code: ``datasets``, ``tiktoken``, ``torchao`` are not
    installed) and, when ``torchao`` is absent, a stand-in ``torchao.dtypes.nf4tensor``
    (``torchtune.modules`` imports NF4Tensor, to_nf4 and linear_nf4 for QLoRA's 4-bit base
    weights: never built here, ``quantize_base`` stays False)."""
    root = TARGET / "torchtune"
    pkgs = {"torchtune": root, "torchtune.models": root / "models"} | {
        f"torchtune.models.{d.name}": d for d in (root / "models").iterdir()
        if (d / "__init__.py").is_file()}  # one family's builders import another's
    stubs = {}
    if importlib.util.find_spec("torchao") is None:
        nf4 = types.ModuleType("torchao.dtypes.nf4tensor")
        nf4.NF4Tensor = type("NF4Tensor", (), {})

        def absent(*a, **k):
            raise RuntimeError("torchao is a stand-in here: no NF4 (QLoRA) weights")

        nf4.to_nf4 = nf4.linear_nf4 = absent
        nf4.implements = lambda *a, **k: (lambda f: f)
        stubs = {"torchao": types.ModuleType("torchao"),
                 "torchao.dtypes": types.ModuleType("torchao.dtypes"),
                 "torchao.dtypes.nf4tensor": nf4}
    for name, path in pkgs.items():  # kept after, as imported packages are
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
            sys.modules[name].__path__ = [str(path)]
    sys.modules.update(stubs)
    try:
        yield
    finally:  # removed: other code asks whether torchao is installed
        for k in stubs:
            sys.modules.pop(k, None)


def _torchtune(family: str, builder: str = "", **kw) -> Callable[[], object]:
    """torchtune's ``torchtune.models.<family>._component_builders.<builder>(**kw)``, a
    TransformerDecoder at a tiny size."""
    def build():
        import importlib

        with _torchtune_stand_in():
            module = importlib.import_module(f"torchtune.models.{family}._component_builders")
            return getattr(module, builder or family)(**kw)
    return build


TUNE = {"vocab_size": VOCAB, "num_layers": 2, "num_heads": 4, "embed_dim": 32,
        "max_seq_len": 16}


def _st_moe():
    """st-moe-pytorch's block: its MoE (4 experts, top-2 gating) between two feedforwards."""
    from st_moe_pytorch import MoE, SparseMoEBlock

    return SparseMoEBlock(MoE(dim=32, num_experts=4, gating_top_n=2), add_ff_before=True,
                          add_ff_after=True)


# transformers in other libraries' layouts (lane tfx): OpenCLIP's towers, lucidrains'
# efficient-attention models (FAVOR+, Linformer, Perceiver, Nystrom, chunked, linear, Sinkhorn,
# k-means routing), X-CLIP
def _method(build: Callable[[], object], name: str, **kw) -> Callable[[], object]:
    """A module whose forward is ``build()``'s method ``name`` (OpenCLIP's ``encode_text``)."""
    def wrapped():
        import torch

        class Method(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = build()

            def forward(self, x):
                return getattr(self.model, name)(x, **kw)

        return Method()
    return wrapped


def _open_clip(**text) -> Callable[[], object]:
    """OpenCLIP's CLIP at a tiny size from its config dicts, no pretrained weights: a ViT image
    tower (8-pixel patches, 32x32) and the causal text transformer (``text``: its config's
    overrides; pooling at the largest id by default)."""
    def build():
        with _real_torchvision():
            from open_clip.model import CLIP

            return CLIP(embed_dim=32, vision_cfg={"image_size": 32, "patch_size": 8,
                                                  "width": 32, "layers": 2, "head_width": 16,
                                                  "mlp_ratio": 2.0},
                        text_cfg={"context_length": 16, "vocab_size": VOCAB, "width": 32,
                                  "heads": 2, "layers": 2, "mlp_ratio": 2.0} | text)
    return build


@contextlib.contextmanager
def _real_torchvision() -> Iterator[None]:
    """The vision zoo's torchvision (open_clip's package init imports torchvision.ops)."""
    from benchmarks.vision_zoo import real_torchvision

    with real_torchvision():
        yield


def _x_clip(tower: str) -> Callable[[], object]:
    """X-CLIP's text (CLS token) or visual transformer at a tiny size."""
    def build():
        with _real_torchvision():
            from x_clip import CLIP

            clip = CLIP(dim_text=32, dim_image=32, dim_latent=32, num_text_tokens=VOCAB,
                        text_enc_depth=2, text_seq_len=16, text_heads=2, text_dim_head=16,
                        visual_enc_depth=2, visual_heads=2, visual_dim_head=16,
                        visual_image_size=32, visual_patch_size=8)
        return getattr(clip, tower)
    return build


def _rwkv_weights(version: str, layers: int = 2, dim: int = 32, heads: int = 2) -> dict:
    """A random checkpoint of BlinkDL's RWKV ``version`` (4, 5.2 or 6) as its ``rwkv`` package
    reads one (the names and shapes of RWKV-LM's state dict, the version told by its keys)."""
    import torch

    n, ffn, lora = dim // heads, 2 * dim, 8
    mix = ("time_mix_k", "time_mix_v", "time_mix_r", "time_mix_g")[:3 if version == "4" else 4]
    if version == "6":
        mix = tuple(f"time_maa_{c}" for c in "xwkvrg")
    att = {f"att.{k}": (1, 1, dim) for k in mix} | {
        f"att.{k}.weight": (dim, dim) for k in ("key", "value", "receptance", "output")}
    if version != "4":  # the group norm and gate keys first: they tell the version
        att = {"att.ln_x.weight": (dim,), "att.ln_x.bias": (dim,),
               "att.gate.weight": (dim, dim)} | att | {"att.time_decay": (heads, n),
                                                        "att.time_faaaa": (heads, n)}
    else:
        att |= {"att.time_decay": (dim,), "att.time_first": (dim,)}
    if version == "6":
        att |= {"att.time_maa_w1": (dim, 5 * lora), "att.time_maa_w2": (5, lora, dim),
                "att.time_decay_w1": (dim, lora), "att.time_decay_w2": (lora, dim),
                "att.time_decay": (1, 1, dim)}
    maa = "time_maa" if version == "6" else "time_mix"
    block = att | {f"ffn.{maa}_k": (1, 1, dim), f"ffn.{maa}_r": (1, 1, dim),
                   "ffn.key.weight": (ffn, dim), "ffn.value.weight": (dim, ffn),
                   "ffn.receptance.weight": (dim, dim)} | {
        f"ln{i}.{p}": (dim,) for i in (1, 2) for p in ("weight", "bias")}
    shapes = {"emb.weight": (VOCAB, dim), "blocks.0.ln0.weight": (dim,),
              "blocks.0.ln0.bias": (dim,)} | {
        f"blocks.{i}.{k}": v for i in range(layers) for k, v in block.items()} | {
        "ln_out.weight": (dim,), "ln_out.bias": (dim,), "head.weight": (VOCAB, dim)}

    def init(name: str, shape: tuple) -> torch.Tensor:
        if "time_m" in name:  # token-shift mixes in [0, 1]
            return torch.rand(shape)
        if name.endswith(("ln0.weight", "ln1.weight", "ln2.weight", "ln_x.weight", "t.weight")):
            return 1 + 0.1 * torch.randn(shape)
        return torch.randn(shape) / (shape[-1] ** 0.5 if len(shape) > 1 else 2)
    return {k: init(k, v) for k, v in shapes.items()}


def _rwkv(version: str) -> Callable[[], object]:
    """BlinkDL's ``rwkv`` package (RWKV_JIT_ON=0, no CUDA kernel, strategy ``cpu fp32``) on a
    random checkpoint of ``version`` written to a temporary file, as a (batch, T) -> (batch, T,
    vocab) LM. The package runs one unbatched (T, C) sequence; v4's sequence functions
    broadcast over a batch axis between time and features, given the (T, batch) ids and a
    zero state with a batch axis (its WKV's max exponent at -1e30, the package's). v5 and v6
    split heads with ``.view(T, H, N)``: a Python loop over the samples."""
    def build():
        import torch

        os.environ["RWKV_JIT_ON"], os.environ["RWKV_CUDA_ON"] = "0", "0"
        from rwkv.model import RWKV

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rwkv.pth"
            torch.save(_rwkv_weights(version), path)
            with contextlib.redirect_stdout(None):
                rwkv = RWKV(str(path), "cpu fp32", verbose=False)

        class RWKVLM(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.rwkv = rwkv

            def forward(self, ids):
                if version != "4":
                    return torch.stack([self.rwkv(r, None, full_output=True)[0] for r in ids])
                args, b = self.rwkv.args, ids.shape[0]
                zero = (torch.zeros(b, args.n_embd),) + tuple(
                    torch.zeros(b, args.n_att) - (1e30 if i == 2 else 0) for i in range(3)) + (
                    torch.zeros(b, args.n_embd),)
                state = [s for _ in range(args.n_layer) for s in zero]
                return self.rwkv(ids.t(), state, full_output=True)[0].transpose(0, 1)
        return RWKVLM()
    return build


def _torchscale(arch: str, **kw) -> Callable[[], object]:
    """Microsoft's torchscale: its ``RetNetDecoder`` (``retnet``) or ``Decoder`` (``decoder``)
    from its config at a tiny size, with a token embedding and an output projection (imports
    fairscale and timm: the vision zoo's)."""
    def build():
        import importlib

        import torch

        with _real_torchvision():
            config = importlib.import_module("torchscale.architecture.config")
            module = importlib.import_module(f"torchscale.architecture.{arch}")
        cls = {"retnet": ("RetNetConfig", "RetNetDecoder"), "decoder": ("DecoderConfig",
                                                                       "Decoder")}[arch]
        args = getattr(config, cls[0])(vocab_size=VOCAB, decoder_embed_dim=32,
                                       decoder_ffn_embed_dim=64, decoder_layers=2, **kw)
        return getattr(module, cls[1])(args, embed_tokens=torch.nn.Embedding(VOCAB, 32))
    return build


SEQ = Ids(VOCAB, causal=False)  # a bidirectional encoder on token ids
TRANSFORMERS: dict[str, tuple[str, Callable[[], object], tuple[int, ...] | Ids]] = {
    "clip_text": ("open_clip", _method(_open_clip(), "encode_text"), SEQ),
    "clip_text_eos": ("open_clip", _method(_open_clip(pool_type="eos", eos_id=VOCAB - 1),
                                           "encode_text"), SEQ),
    "clip_text_last": ("open_clip", _method(_open_clip(pool_type="last", no_causal_mask=True),
                                            "encode_text"), SEQ),  # SigLIP's text tower
    "clip_image": ("open_clip", _method(_open_clip(), "encode_image"), (3, 32, 32)),
    "x_clip_text": ("x_clip", _x_clip("text_transformer"), SEQ),
    "x_clip_image": ("x_clip", _x_clip("visual_transformer"), (3, 32, 32)),
    "performer_lm": ("performer_pytorch", _lib("performer_pytorch", "PerformerLM",
                                               num_tokens=VOCAB, max_seq_len=16, dim=32,
                                               depth=2, heads=2, dim_head=16, causal=True,
                                               nb_features=16), LM),
    "performer_encoder": ("performer_pytorch", _lib("performer_pytorch", "PerformerLM",
                                                    num_tokens=VOCAB, max_seq_len=16, dim=32,
                                                    depth=2, heads=2, dim_head=16,
                                                    nb_features=16), SEQ),
    "linformer_lm": ("linformer", _lib("linformer", "LinformerLM", num_tokens=VOCAB, dim=32,
                                       seq_len=16, depth=2, k=8, heads=2), SEQ),
    "perceiver": ("perceiver_pytorch", _lib("perceiver_pytorch", "Perceiver", num_freq_bands=4,
                                            depth=2, max_freq=10.0, input_channels=3,
                                            input_axis=2, num_latents=8, latent_dim=32,
                                            latent_heads=2, cross_dim_head=16,
                                            latent_dim_head=16, num_classes=10), (16, 16, 3)),
    "perceiver_lm": ("perceiver_pytorch", _lib("perceiver_pytorch", "PerceiverLM", dim=32,
                                               num_tokens=VOCAB, max_seq_len=16, depth=2,
                                               num_latents=8, latent_dim=32, latent_heads=2,
                                               cross_dim_head=16, latent_dim_head=16), SEQ),
    "nystromformer": ("nystrom_attention", _lib("nystrom_attention", "Nystromformer", dim=32,
                                                depth=2, dim_head=16, heads=2,
                                                num_landmarks=4,
                                                attn_values_residual_conv_kernel=3), (16, 32)),
    "memory_efficient_attn": ("memory_efficient_attention_pytorch", _lib(
        "memory_efficient_attention_pytorch", "Attention", dim=32, heads=2, dim_head=16,
        causal=True, memory_efficient=True, q_bucket_size=4, k_bucket_size=4), (16, 32)),
    "flash_attn_reference": ("memory_efficient_attention_pytorch", _lib(
        "memory_efficient_attention_pytorch", "FlashAttention", dim=32, heads=2, dim_head=16,
        causal=True, q_bucket_size=4, k_bucket_size=4), (16, 32)),
    "linear_attention_lm": ("linear_attention_transformer", _lib(
        "linear_attention_transformer", "LinearAttentionTransformerLM", num_tokens=VOCAB,
        dim=32, depth=2, max_seq_len=16, heads=2, dim_head=16, causal=True), LM),
    "linear_attention_local_lm": ("linear_attention_transformer", _lib(
        "linear_attention_transformer", "LinearAttentionTransformerLM", num_tokens=VOCAB,
        dim=32, depth=2, max_seq_len=16, heads=2, dim_head=16, causal=True,
        n_local_attn_heads=1, local_attn_window_size=4), LM),
    "sinkhorn_lm": ("sinkhorn_transformer", _lib(
        "sinkhorn_transformer", "SinkhornTransformerLM", num_tokens=VOCAB, dim=32,
        max_seq_len=16, depth=2, heads=2, dim_head=16, bucket_size=4, causal=True), LM),
    "routing_lm": ("routing_transformer", _lib(
        "routing_transformer", "RoutingTransformerLM", num_tokens=VOCAB, dim=32, depth=2,
        max_seq_len=16, heads=2, dim_head=16, window_size=4, causal=True), LM),
    "conformer_block": ("conformer", _lib("conformer", "ConformerBlock", dim=32, dim_head=16,
                                          heads=2, ff_mult=2, conv_expansion_factor=2,
                                          conv_kernel_size=7), (16, 32)),
    "reformer_lm": ("reformer_pytorch", _lib("reformer_pytorch", "ReformerLM", num_tokens=VOCAB,
                                             dim=32, depth=2, max_seq_len=16, heads=2,
                                             bucket_size=4, n_hashes=2, causal=True), LM),
    "torchscale_retnet": ("torchscale", _torchscale("retnet", decoder_value_embed_dim=64,
                                                    decoder_retention_heads=2), LM),
    "torchscale_decoder": ("torchscale", _torchscale("decoder", decoder_attention_heads=2), LM),
    "rwkv4": ("rwkv", _rwkv("4"), LM),
    "rwkv5": ("rwkv", _rwkv("5.2"), LM),
    "rwkv6": ("rwkv", _rwkv("6"), LM),
}

# the libraries users wrap transformers in (lane adapters): SentenceTransformer from the real
# all-MiniLM-L6-v2 folder and from modules; PEFT adapters on tiny Llama, GPT-2, BERT and ViT
ST = Features(ta.WORDS)
LORA = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.1}
PROMPT = {"num_virtual_tokens": 4}
ADAPTERS: dict[str, tuple[str, Callable[[], object], tuple[int, ...] | Ids | Features]] = {
    "st_minilm": ("sentence_transformers", ta.minilm_sentence_transformer, Features(30522)),
    "st_mean": ("sentence_transformers", ta.sentence_transformer("mean"), ST),
    "st_cls": ("sentence_transformers", ta.sentence_transformer("cls"), ST),
    "st_max": ("sentence_transformers", ta.sentence_transformer("max"), ST),
    "st_dense": ("sentence_transformers", ta.sentence_transformer("mean", dense=16), ST),
    "peft_lora_llama": ("peft", ta.peft("llama", "Lora", **LORA), LM),
    "peft_lora_merged_llama": ("peft", ta.peft("llama", "Lora", merge=True, **LORA), LM),
    "peft_dora_llama": ("peft", ta.peft("llama", "Lora", use_dora=True, **LORA), LM),
    "peft_loha_llama": ("peft", ta.peft("llama", "LoHa", r=4, alpha=8), LM),
    "peft_lokr_llama": ("peft", ta.peft("llama", "LoKr", r=4, alpha=8), LM),
    "peft_ia3_llama": ("peft", ta.peft("llama", "IA3", target_modules=["k_proj", "v_proj",
                                                                        "down_proj"],
                                       feedforward_modules=["down_proj"]), LM),
    "peft_adalora_llama": ("peft", ta.peft("llama", "AdaLora", init_r=4, target_r=2), LM),
    "peft_vera_llama": ("peft", ta.peft("llama", "Vera", r=8), LM),
    "peft_prompt_tuning_llama": ("peft", ta.peft("llama", "PromptTuning", **PROMPT), LM),
    "peft_prefix_tuning_llama": ("peft", ta.peft("llama", "PrefixTuning", **PROMPT), LM),
    "peft_lora_gpt2": ("peft", ta.peft("gpt2", "Lora", fan_in_fan_out=True, **LORA), LM),
    "peft_prefix_tuning_gpt2": ("peft", ta.peft("gpt2", "PrefixTuning", **PROMPT), LM),
    "peft_lora_bert": ("peft", ta.peft("bert", "Lora", **LORA), SEQ),
    "peft_ia3_bert": ("peft", ta.peft("bert", "IA3", target_modules=["key", "value",
                                                                      "output.dense"],
                                      feedforward_modules=["output.dense"]), SEQ),
    "peft_lora_vit": ("peft", ta.peft("vit", "Lora", **LORA), (3, 32, 32)),
    "peft_loha_vit": ("peft", ta.peft("vit", "LoHa", r=4, alpha=8), (3, 32, 32)),
}


def _smp(arch: str, encoder: str, **kw) -> Callable[[], object]:
    """segmentation_models_pytorch's ``create_model(arch, encoder, encoder_weights=None)``,
    2 classes; its encoders need timm and torchvision (benchmarks.vision_zoo's packages)."""
    def build():
        from benchmarks.vision_zoo import real_torchvision

        with real_torchvision():
            import segmentation_models_pytorch as smp

            return smp.create_model(arch, encoder_name=encoder, encoder_weights=None,
                                    classes=2, **kw)
    return build


SMP = (3, 64, 64)
# segmentation_models_pytorch: each architecture over a spread of its encoders
SMP_ROWS = {
    "smp_unet_resnet18": _smp("Unet", "resnet18"),
    "smp_unet_scse_resnet34": _smp("Unet", "resnet34", decoder_attention_type="scse"),
    "smp_unet_bilinear_resnet18": _smp("Unet", "resnet18", decoder_interpolation="bilinear"),
    "smp_unet_efficientnet_b0": _smp("Unet", "efficientnet-b0"),
    "smp_unet_timm_efficientnet_b0": _smp("Unet", "timm-efficientnet-b0"),
    "smp_unet_mobilenet_v2": _smp("Unet", "mobilenet_v2"),
    "smp_unet_densenet121": _smp("Unet", "densenet121"),
    "smp_unet_vgg11_bn": _smp("Unet", "vgg11_bn"),
    "smp_unet_se_resnet50": _smp("Unet", "se_resnet50"),
    "smp_unet_mit_b0": _smp("Unet", "mit_b0"),
    "smp_unet_tu_convnext_atto": _smp("Unet", "tu-convnext_atto"),
    "smp_unet_tu_regnety_002": _smp("Unet", "tu-regnety_002"),
    "smp_unetplusplus_resnet18": _smp("UnetPlusPlus", "resnet18"),
    "smp_fpn_resnet34": _smp("FPN", "resnet34"),
    "smp_fpn_mit_b0": _smp("FPN", "mit_b0"),
    "smp_pspnet_resnet18": _smp("PSPNet", "resnet18"),
    "smp_deeplabv3_resnet18": _smp("DeepLabV3", "resnet18"),
    "smp_deeplabv3plus_resnet18": _smp("DeepLabV3Plus", "resnet18"),
    "smp_deeplabv3plus_mobilenet_v2": _smp("DeepLabV3Plus", "mobilenet_v2"),
    "smp_linknet_resnet18": _smp("Linknet", "resnet18"),
    "smp_pan_resnet18": _smp("PAN", "resnet18"),
    "smp_manet_resnet18": _smp("MAnet", "resnet18"),
    "smp_upernet_resnet18": _smp("UPerNet", "resnet18"),
    "smp_upernet_tu_convnext_atto": _smp("UPerNet", "tu-convnext_atto"),
    "smp_segformer_mit_b0": _smp("Segformer", "mit_b0"),
    "smp_unet_mobileone_s0": _smp("Unet", "mobileone_s0"),
    "smp_unet_dpn68": _smp("Unet", "dpn68"),
    "smp_linknet_tu_mobilenetv3": _smp("Linknet", "tu-mobilenetv3_small_100"),
    "smp_manet_mit_b0": _smp("MAnet", "mit_b0"),
    "smp_deeplabv3plus_tu_efficientnet_lite0": _smp("DeepLabV3Plus", "tu-efficientnet_lite0"),
    "smp_dpt_tu_vit_tiny": _smp("DPT", "tu-vit_tiny_patch16_224", img_size=64,
                                decoder_intermediate_channels=(32, 64, 128, 128),
                                decoder_fusion_channels=32),
}
# PAN's feature-pyramid attention pools its stride-16 map thrice more (a 128 x 128 input: 1 x 1)
SMP_SHAPES = {"smp_pan_resnet18": (3, 128, 128)}

MODELS: dict[str, tuple[str, Callable[[], object], tuple[int, ...] | Ids]] = {
    # lucidrains' vit-pytorch
    "vit": ("vit_pytorch", _vit("vit", "ViT", **VIT), (3, 32, 32)),
    "simple_vit": ("vit_pytorch", _vit("simple_vit", "SimpleViT", **VIT), (3, 32, 32)),
    "cait": ("vit_pytorch", _vit("cait", "CaiT", **VIT, cls_depth=1), (3, 32, 32)),
    "deepvit": ("vit_pytorch", _vit("deepvit", "DeepViT", **VIT), (3, 32, 32)),
    "t2t_vit": ("vit_pytorch", _vit("t2t", "T2TViT", image_size=32, num_classes=10, dim=32,
                                    depth=2, heads=2, mlp_dim=64,
                                    t2t_layers=((7, 4), (3, 2))), (3, 32, 32)),
    "cct": ("vit_pytorch", _vit("cct", "CCT", img_size=32, embedding_dim=32, n_conv_layers=1,
                                kernel_size=3, stride=2, padding=1, pooling_kernel_size=3,
                                pooling_stride=2, pooling_padding=1, num_layers=2, num_heads=2,
                                mlp_ratio=2.0, num_classes=10), (3, 32, 32)),
    "cross_vit": ("vit_pytorch", _vit("cross_vit", "CrossViT", image_size=32, num_classes=10,
                                      depth=1, sm_dim=32, sm_patch_size=8, sm_enc_depth=1,
                                      sm_enc_heads=2, sm_enc_mlp_dim=64, lg_dim=48,
                                      lg_patch_size=16, lg_enc_depth=1, lg_enc_heads=2,
                                      lg_enc_mlp_dim=64, cross_attn_depth=1,
                                      cross_attn_heads=2), (3, 32, 32)),
    "pit": ("vit_pytorch", _vit("pit", "PiT", image_size=32, patch_size=4, dim=32,
                                num_classes=10, depth=(1, 1), heads=2, mlp_dim=64),
            (3, 32, 32)),
    "levit": ("vit_pytorch", _vit("levit", "LeViT", image_size=64, num_classes=10, stages=2,
                                  dim=(32, 48), depth=1, heads=(2, 2), mlp_mult=2),
              (3, 64, 64)),
    "cvt": ("vit_pytorch", _vit("cvt", "CvT", num_classes=10, s1_emb_dim=16, s1_depth=1,
                                s2_emb_dim=32, s2_depth=1, s3_emb_dim=48, s3_depth=1,
                                s1_heads=1, s2_heads=2, s3_heads=2), (3, 32, 32)),
    "twins_svt": ("vit_pytorch", _vit("twins_svt", "TwinsSVT", num_classes=10, s1_emb_dim=16,
                                      s1_patch_size=4, s1_local_patch_size=4, s1_global_k=2,
                                      s1_depth=1, s2_emb_dim=32, s2_patch_size=2,
                                      s2_local_patch_size=2, s2_global_k=2, s2_depth=1,
                                      s3_emb_dim=32, s3_patch_size=2, s3_local_patch_size=2,
                                      s3_global_k=2, s3_depth=1, s4_emb_dim=32,
                                      s4_patch_size=1, s4_local_patch_size=1, s4_global_k=1,
                                      s4_depth=1), (3, 32, 32)),
    "crossformer": ("vit_pytorch", _vit("crossformer", "CrossFormer", num_classes=10,
                                        dim=(32, 64, 64, 64), depth=(1, 1, 1, 1),
                                        global_window_size=(2, 2, 1, 1), local_window_size=2),
                    (3, 64, 64)),
    "regionvit": ("vit_pytorch", _vit("regionvit", "RegionViT", dim=(16, 32, 48, 64),
                                      depth=(1, 1, 1, 1), window_size=2, num_classes=10,
                                      tokenize_local_3_conv=False, use_peg=False), (3, 64, 64)),
    "scalable_vit": ("vit_pytorch", _vit("scalable_vit", "ScalableViT", num_classes=10, dim=16,
                                         heads=(1, 2, 2, 2), depth=(1, 1, 1, 1),
                                         ssa_dim_key=(8, 8, 8, 8),
                                         reduction_factor=(4, 2, 1, 1),
                                         window_size=(4, 2, None, None)), (3, 64, 64)),
    "sep_vit": ("vit_pytorch", _vit("sep_vit", "SepViT", num_classes=10, dim=16, dim_head=8,
                                    heads=(1, 2), depth=(1, 1)), (3, 56, 56)),
    "max_vit": ("vit_pytorch", _vit("max_vit", "MaxViT", num_classes=10, dim_conv_stem=16,
                                    dim=16, dim_head=8, depth=(1, 1), window_size=2,
                                    mbconv_expansion_rate=2, mbconv_shrinkage_rate=0.25,
                                    dropout=0.0), (3, 32, 32)),
    "nest": ("vit_pytorch", _vit("nest", "NesT", image_size=32, patch_size=4, dim=16, heads=2,
                                 num_hierarchies=2, block_repeats=(1, 1), num_classes=10),
             (3, 32, 32)),
    "mobile_vit": ("vit_pytorch", _vit("mobile_vit", "MobileViT", image_size=(64, 64),
                                       dims=[32, 32, 32],
                                       channels=[8, 8, 16, 16, 24, 24, 32, 32, 40, 40, 64],
                                       num_classes=10), (3, 64, 64)),
    "parallel_vit": ("vit_pytorch", _vit("parallel_vit", "ViT", **VIT,
                                         num_parallel_branches=2), (3, 32, 32)),
    "vit_small_dataset": ("vit_pytorch", _vit("vit_for_small_dataset", "ViT", **VIT),
                          (3, 32, 32)),
    "simple_vit_qk_norm": ("vit_pytorch", _vit("simple_vit_with_qk_norm", "SimpleViT", **VIT),
                           (3, 32, 32)),
    "simple_vit_registers": ("vit_pytorch", _vit("simple_vit_with_register_tokens",
                                                 "SimpleViT", **VIT, num_register_tokens=4),
                             (3, 32, 32)),
    "simple_vit_value_residual": ("vit_pytorch", _vit("simple_vit_with_value_residual",
                                                      "SimpleViT", **VIT), (3, 32, 32)),
    "simple_vit_hyper": ("vit_pytorch", _vit("simple_vit_with_hyper_connections", "SimpleViT",
                                             **VIT, num_residual_streams=2), (3, 32, 32)),
    "simple_vit_fft": ("vit_pytorch", _vit("simple_vit_with_fft", "SimpleViT", **VIT,
                                           freq_patch_size=8), (3, 32, 32)),
    "normalized_vit": ("vit_pytorch", _vit("normalized_vit", "nViT", **VIT), (3, 32, 32)),
    "vit_1d": ("vit_pytorch", _vit("vit_1d", "ViT", seq_len=64, patch_size=8, num_classes=10,
                                   dim=32, depth=2, heads=2, mlp_dim=64, channels=3), (3, 64)),
    "simple_vit_3d": ("vit_pytorch", _vit("simple_vit_3d", "SimpleViT", **VOL, depth=2),
                      (3, 4, 32, 32)),
    "vit_3d": ("vit_pytorch", _vit("vit_3d", "ViT", **VOL, depth=2), (3, 4, 32, 32)),
    "vivit": ("vit_pytorch", _vit("vivit", "ViViT", **VOL, spatial_depth=1, temporal_depth=1,
                                  use_flash_attn=False), (3, 4, 32, 32)),
    "look_vit": ("vit_pytorch", _vit("look_vit", "LookViT", image_size=32, patch_size=8,
                                     num_classes=10, dim=32, depth=2, heads=2, mlp_factor=2,
                                     highres_patch_size=4), (3, 32, 32)),
    "ats_vit": ("vit_pytorch", _vit("ats_vit", "ViT", **VIT, max_tokens_per_depth=(8, 4)),
                (3, 32, 32)),
    "vit_5": ("vit_pytorch", _vit("vit_5", "ViT", **VIT), (3, 32, 32)),
    # Project MONAI
    **_unets(2), **_unets(3),
    "monai_swinunetr": ("monai", _monai("SwinUNETR", in_channels=1, out_channels=2,
                                        feature_size=12, depths=(1, 1, 1, 1),
                                        num_heads=(1, 1, 1, 1), spatial_dims=2), (1, 64, 64)),
    "monai_vnet": ("monai", _monai("VNet", spatial_dims=2, in_channels=1, out_channels=2),
                   (1, 64, 64)),
    "monai_highresnet": ("monai", _monai("HighResNet", spatial_dims=2, in_channels=1,
                                         out_channels=2), (1, 32, 32)),
    "monai_efficientnet_b0": ("monai", _monai("EfficientNetBN", model_name="efficientnet-b0",
                                              spatial_dims=2, in_channels=1, num_classes=3,
                                              pretrained=False), (1, 64, 64)),
    "monai_seresnet50": ("monai", _monai("SEResNet50", spatial_dims=2, in_channels=1,
                                         num_classes=3, layers=(1, 1, 1, 1)), (1, 32, 32)),
    "monai_flexibleunet": ("monai", _monai("FlexibleUNet", in_channels=1, out_channels=2,
                                           backbone="efficientnet-b0", pretrained=False,
                                           spatial_dims=2), (1, 64, 64)),
    "monai_regunet": ("monai", _monai("RegUNet", spatial_dims=2, in_channels=1,
                                      num_channel_initial=8, depth=2, out_channels=2),
                      (1, 32, 32)),
    "monai_varautoencoder": ("monai", _monai("VarAutoEncoder", spatial_dims=2,
                                             in_shape=(1, 32, 32), out_channels=1,
                                             latent_size=8, channels=(8, 16), strides=(2, 2)),
                             (1, 32, 32)),
    "monai_generator": ("monai", _monai("Generator", latent_shape=(8,), start_shape=(8, 4, 4),
                                        channels=(8, 4, 1), strides=(2, 2, 2)), (8,)),
    # litgpt (Lightning AI): one GPT class, each family a Config
    "litgpt_pythia": ("litgpt", _litgpt("pythia-14m"), LM),
    "litgpt_llama3": ("litgpt", _litgpt("Llama-3.2-1B", n_query_groups=2), LM),
    "litgpt_llama2": ("litgpt", _litgpt("Llama-2-7b-hf"), LM),
    "litgpt_smollm2": ("litgpt", _litgpt("SmolLM2-135M", n_query_groups=1), LM),
    "litgpt_phi2": ("litgpt", _litgpt("phi-2"), LM),
    "litgpt_phi3": ("litgpt", _litgpt("Phi-3-mini-4k-instruct"), LM),
    "litgpt_phi4_mini": ("litgpt", _litgpt("Phi-4-mini-instruct", n_query_groups=2), LM),
    "litgpt_gemma": ("litgpt", _litgpt("Gemma-2b", n_query_groups=1), LM),
    "litgpt_gemma2": ("litgpt", _litgpt("Gemma-2-2b", n_query_groups=2,
                                        sliding_window_size=8), LM),
    "litgpt_gemma3": ("litgpt", _litgpt("Gemma-3-1b-it", n_query_groups=1,
                                        sliding_window_size=8), LM),
    "litgpt_falcon": ("litgpt", _litgpt("falcon-7b", n_query_groups=1), LM),
    "litgpt_falcon3": ("litgpt", _litgpt("Falcon3-1B-Base", n_query_groups=2), LM),
    "litgpt_mistral": ("litgpt", _litgpt("Mistral-7B-v0.1", n_query_groups=2,
                                         sliding_window_size=8), LM),
    "litgpt_qwen2_5": ("litgpt", _litgpt("Qwen2.5-0.5B", n_query_groups=2), LM),
    "litgpt_qwen3": ("litgpt", _litgpt("Qwen3-0.6B", n_query_groups=2), LM),
    "litgpt_olmo": ("litgpt", _litgpt("OLMo-1B-hf"), LM),
    "litgpt_olmo2": ("litgpt", _litgpt("OLMo-2-1124-7B", n_query_groups=4), LM),
    "litgpt_stablelm": ("litgpt", _litgpt("stablelm-base-alpha-3b"), LM),
    "litgpt_mixtral": ("litgpt", _litgpt("Mixtral-8x7B-v0.1", n_query_groups=2, n_expert=4,
                                         n_expert_per_token=2), LM),
    "litgpt_qwen3_moe": ("litgpt", _litgpt("Qwen3-30B-A3B", n_query_groups=2, n_expert=4,
                                           n_expert_per_token=2), LM),
    # torchtune (PyTorch): its component builders, TransformerDecoder at a tiny size
    "torchtune_llama2": ("torchtune", _torchtune("llama2", **TUNE, num_kv_heads=4,
                                                 intermediate_dim=64), LM),
    "torchtune_llama3": ("torchtune", _torchtune("llama3", **TUNE, num_kv_heads=2,
                                                 intermediate_dim=64), LM),
    "torchtune_llama3_1": ("torchtune", _torchtune("llama3_1", **TUNE, num_kv_heads=2,
                                                   intermediate_dim=64), LM),
    "torchtune_qwen2": ("torchtune", _torchtune("qwen2", **TUNE, num_kv_heads=2,
                                                intermediate_dim=64,
                                                tie_word_embeddings=True), LM),
    "torchtune_gemma": ("torchtune", _torchtune("gemma", **TUNE, head_dim=8, num_kv_heads=1,
                                                intermediate_dim=64), LM),
    "torchtune_gemma2": ("torchtune", _torchtune("gemma2", **TUNE, head_dim=8, num_kv_heads=2,
                                                 intermediate_dim=64, sliding_window_size=8),
                         LM),
    "torchtune_phi3": ("torchtune", _torchtune("phi3", **TUNE, num_kv_heads=4,
                                               intermediate_dim=64), LM),
    "torchtune_mistral": ("torchtune", _torchtune("mistral", **TUNE, num_kv_heads=2,
                                                  intermediate_dim=64), LM),
    "torchtune_lora_llama3": ("torchtune", _torchtune(
        "llama3", "lora_llama3", lora_attn_modules=["q_proj", "v_proj"], apply_lora_to_mlp=True,
        **TUNE, num_kv_heads=2, intermediate_dim=64, lora_rank=4, lora_alpha=8.0), LM),
    # lucidrains' language models, one package each
    "palm": ("palm_pytorch", _lib("palm_pytorch", "PaLM", dim=32, num_tokens=VOCAB, depth=2,
                                  dim_head=8, heads=4), LM),
    "megabyte": ("MEGABYTE_pytorch", _lib("MEGABYTE_pytorch", "MEGABYTE", num_tokens=VOCAB,
                                          dim=(32, 16), depth=(1, 1), max_seq_len=(4, 4),
                                          dim_head=8, heads=2), LM),
    "local_transformer": ("local_attention", _lib("local_attention", "LocalTransformer",
                                                  num_tokens=VOCAB, max_seq_len=16, dim=32,
                                                  depth=2, local_attn_window_size=4,
                                                  dim_head=8, heads=2), LM),
    "gateloop": ("gateloop_transformer", _lib("gateloop_transformer", "Transformer", dim=32,
                                              num_tokens=VOCAB, depth=2, dim_head=8, heads=2,
                                              checkpoint_gate_looped_attn=False), LM),
    "gateloop_attention": ("gateloop_transformer", _lib(
        "gateloop_transformer", "Transformer", dim=32, num_tokens=VOCAB, depth=2, dim_head=8,
        heads=2, use_gate_looped_attn=False), LM),
    "hourglass": ("hourglass_transformer_pytorch", _lib(
        "hourglass_transformer_pytorch", "HourglassTransformerLM", num_tokens=VOCAB, dim=32,
        max_seq_len=16, depth=(1, 1, 1), shorten_factor=2, heads=2, dim_head=8), LM),
    "hierarchical": ("simple_hierarchical_transformer", _lib(
        "simple_hierarchical_transformer", "HierarchicalTransformer", num_tokens=VOCAB, dim=32,
        depth=2, seq_len=16, dim_head=8, heads=2, hierarchies=(1, 2), window_sizes=(4, 2)),
        LM),
    "mega": ("mega_pytorch", _lib("mega_pytorch", "Mega", dim=32, num_tokens=VOCAB, depth=2,
                                  ema_heads=4, attn_dim_qk=16, attn_dim_value=32), LM),
    "recurrent_memory": ("recurrent_memory_transformer_pytorch", _lib(
        "recurrent_memory_transformer_pytorch", "RecurrentMemoryTransformer", dim=32,
        num_tokens=VOCAB, depth=2, num_memory_tokens=4, seq_len=16, dim_head=8, heads=2,
        num_residual_streams=1), LM),
    "block_recurrent": ("block_recurrent_transformer_pytorch", _lib(
        "block_recurrent_transformer_pytorch", "BlockRecurrentTransformer", num_tokens=VOCAB,
        dim=32, depth=2, dim_head=8, heads=2, max_seq_len=16, block_width=8,
        num_state_vectors=4, recurrent_layers=(2,)), LM),
    # lucidrains' layers, on float (tokens, features)
    "colt5_block": ("colt5_attention", _lib(
        "colt5_attention", "ConditionalRoutedTransformerBlock", dim=32, light_dim_head=8,
        light_heads=2, light_window_size=4, heavy_dim_head=8, heavy_heads=2, light_ff_mult=2,
        heavy_ff_mult=2, num_heavy_attn_tokens_q=8, num_heavy_attn_tokens_kv=8,
        num_heavy_ff_tokens=8), (16, 32)),
    "taylor_linear_attn": ("taylor_series_linear_attention", _lib(
        "taylor_series_linear_attention", "TaylorSeriesLinearAttn", dim=32, dim_head=8,
        heads=2), (16, 32)),  # causal=True needs pytorch-fast-transformers' CUDA kernel
    "st_moe_block": ("st_moe_pytorch", _st_moe, (16, 32)),
    "soft_moe": ("soft_moe_pytorch", _lib("soft_moe_pytorch", "SoftMoE", dim=32, seq_len=16,
                                          num_experts=4), (16, 32)),
    **TRANSFORMERS,
    **ADAPTERS,
    **{name: ("segmentation_models_pytorch", build, SMP_SHAPES.get(name, SMP))
       for name, build in SMP_ROWS.items()},
}


def _importable() -> None:
    """The pinned packages on the path."""
    if TARGET.is_dir() and str(TARGET) not in sys.path:
        sys.path.insert(0, str(TARGET))


@contextlib.contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    """An empty ``torchvision.transforms`` while vit_pytorch's package init imports its
    trainers; removed after (other code asks whether torchvision is installed)."""
    stub = types.ModuleType("torchvision")
    stub.transforms = types.ModuleType("torchvision.transforms")
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.transforms")}
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = stub, stub.transforms
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def first_output(model):
    """A network returning a tuple, evaluated on its first output."""
    import torch

    class FirstOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)[0]

    return FirstOutput().eval()


def empty_record(name: str) -> dict:
    library = MODELS[name][0] if name in MODELS else None
    return {"name": name, "library": library, "status": None, "bit_exact": None,
            "cosine": None, "cycles": None, "error": None, "wall_s": None}


def run_one(name: str) -> dict:
    """Build ``name`` and evaluate it in this process: its record (never raises)."""
    import torch

    rec = empty_record(name)
    library, build, shape = MODELS[name]
    _importable()
    t0 = time.perf_counter()
    if importlib.util.find_spec(library) is None:
        return rec | {"status": "unavailable", "error": f"{library} is not installed: "
                                                        "python -m benchmarks.third_party "
                                                        "--install"}
    try:
        torch.manual_seed(0)
        model = build().eval()
        x = inputs(shape)
        with torch.no_grad():
            y = model({k: torch.from_numpy(v) for k, v in x.items()}
                      if isinstance(x, dict) else torch.from_numpy(x))
        if isinstance(y, (tuple, list)):
            model = first_output(model)
    except Exception as e:  # noqa: BLE001 - the library refused its configuration
        return rec | {"status": "build", "error": f"{type(e).__name__}: {str(e)[:300]}"}
    return evaluate_record(rec, model, x, shape) | {"wall_s": round(time.perf_counter() - t0, 2)}


def evaluate_record(rec: dict, model, x, shape: tuple[int, ...] | Ids) -> dict:
    """``rec`` with ``model``'s evaluation on ``x`` (and a causal LM's generation): ``ok``,
    ``refused`` (qasic's one line) or ``crash`` (never raises)."""
    from qasic.errors import QasicError

    stage = "evaluate"
    try:
        out = qasic_evaluate(model, x, getattr(shape, "output", None))
        rec |= {"status": "ok", "bit_exact": bool(out["bit_exact"]),
                "cosine": float(out["cosine"]), "cycles": int(out["cycles"])}
        if isinstance(shape, Ids) and shape.causal:
            from benchmarks.family_survey import generation

            stage = "generate"
            rec |= generation(model, x)
    except QasicError as e:
        rec |= {"status": "refused", "error": str(e).splitlines()[0][:500]}
    except Exception as e:  # noqa: BLE001 - every failure is a finding
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if str(ROOT) in f.filename]
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        rec |= {"status": "crash", "error": f"{type(e).__name__}: {str(e)[:300]}{where}"}
    if stage == "generate" and rec["status"] != "ok":  # evaluated; its generation failed
        rec |= {"status": "ok", "generate": f"{rec['status']}: {rec.pop('error')}",
                "error": None}
    return rec


def inputs(shape: tuple[int, ...] | Ids, batch: int = 4):
    """The evaluation's inputs: ``batch`` random float samples of ``shape``, or token ids."""
    import numpy as np

    rng = np.random.default_rng(0)
    if isinstance(shape, Features):  # lengths seq, seq - 3, ...: each sample's tail padded
        mask = (np.arange(shape.seq) < shape.seq - 3 * np.arange(batch)[:, None]).astype(np.int64)
        ids = rng.integers(5, shape.vocab, (batch, shape.seq)) * mask
        return {"input_ids": ids.astype(np.int64), "attention_mask": mask}
    if isinstance(shape, Ids):
        return rng.integers(0, shape.vocab, (batch, shape.seq)).astype(np.int64)
    return rng.standard_normal((batch, *shape)).astype(np.float32)


def qasic_evaluate(model, x, output: str | None = None):
    import qasic

    return qasic.evaluate(model, x, calibration=x, output=output)


def run_isolated(name: str, timeout: float = TIMEOUT, runner: str = "benchmarks.third_party",
                 blank: Callable[[str], dict] | None = None) -> dict:
    """``runner``'s ``run_one`` (``python -m runner --one name``) in a subprocess (its own
    process group) killed after ``timeout`` seconds; ``blank``: the runner's empty record."""
    blank = blank or empty_record
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "record.json"
        cmd = [sys.executable, "-m", runner, "--one", name, "--result", str(result)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, text=True)
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.append(proc.stdout.read()))
        reader.start()
        status, peak = _wait(proc, timeout)
        reader.join()
        if status is None:
            return blank(name) | {"status": "timeout",
                                         "error": f"no result within {timeout:g} s"}
        if result.exists():
            return json.loads(result.read_text())
        tail = [line for line in "".join(output).splitlines() if line.strip()][-1:]
        return blank(name) | {"status": "crash", "error": (tail or [_death(status, peak)])[0][:500]}


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int | None, float]:
    """Reap ``proc`` (its process group killed after ``timeout`` s): (its exit code, negative
    for a signal, or None on the timeout; its peak resident memory in GiB as last seen, 0 if
    never). The peak is the child's VmHWM, polled while it lives: wait4's ru_maxrss would carry
    this process's resident memory at the fork (exec keeps the high-water mark), so a 1 GiB test
    worker would report every child at >= 1 GiB."""
    deadline, peak = time.monotonic() + timeout, 0.0
    while True:
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, peak
        peak = max(peak, _high_water(proc.pid))
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, peak
        time.sleep(0.2)


def _high_water(pid: int) -> float:
    """Process ``pid``'s peak resident memory since its exec, GiB (VmHWM; 0 where unreadable)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kib = next((int(line.split()[1]) for line in text.splitlines()
                if line.startswith("VmHWM:")), 0)
    return kib / 2**20


def _death(code: int, peak_gib: float) -> str:
    """The one line of a subprocess that ended with no result and no output."""
    memory = f" at a peak resident memory of {peak_gib:.1f} GiB" if peak_gib else ""
    if code >= 0:
        return f"died (exit code {code}){memory}"
    sig = signal.Signals(-code).name
    why = " (the kernel's out-of-memory killer, unless someone killed it)" \
        if sig == "SIGKILL" else ""
    return f"killed by {sig}{why}{memory}"


def install() -> int:
    """The pinned packages into TARGET, without their dependencies."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(TARGET),
           *LIBRARIES.values(), *DEPENDENCIES]
    return subprocess.call(cmd)


def summary(records: Sequence[dict]) -> str:
    """Two lines: how many networks run bit-exact, and how the causal LMs that evaluated
    generate (a record before qasic.recompute, without ``decode``, decoded with a KV cache)."""
    ok = sum(r["status"] == "ok" and bool(r["bit_exact"]) for r in records)
    lms = [r for r in records if r.get("generate")]  # the causal LMs that evaluated
    exact = [r.get("decode", "kv_cache") for r in lms if r.get("generate") == "exact"]
    return (f"{ok} of {len(records)} bit-exact\n{len(exact)} of the {len(lms)} causal LMs "
            f"generate equal to the golden reference: {exact.count('kv_cache')} with a KV "
            f"cache, {exact.count('recompute')} by recomputation")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="directory for third_party.json")
    p.add_argument("--only", help="comma-separated names (default: all of MODELS)")
    p.add_argument("--timeout", type=float, default=TIMEOUT)
    p.add_argument("--install", action="store_true", help="pip install the pinned libraries")
    p.add_argument("--summary", type=Path, metavar="JSON",
                   help="print the counts of a stored run and exit")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.install:
        return install()
    if a.summary:
        print(summary(json.loads(a.summary.read_text())["records"]))
        return 0
    if a.one:
        a.result.write_text(json.dumps(run_one(a.one)))
        return 0
    names = chosen(p, a.only, MODELS, a.out)
    out = a.out / "third_party.json"
    records = run_rows(names, a.timeout, out, {"libraries": LIBRARIES})
    print(f"{summary(records)}\n{out}")
    return 0


def chosen(p: argparse.ArgumentParser, only: str | None, models: dict,
           out: Path | None) -> list[str]:
    """The rows ``--only`` names (default: all of ``models``), each a known one; ``--out`` given."""
    names = only.split(",") if only else list(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        p.error(f"unknown network(s) {', '.join(unknown)}; known: {', '.join(models)}")
    if out is None:
        p.error("give --out DIR")
    return names


def run_rows(names: Sequence[str], timeout: float, out: Path, header: dict,
             runner: str = "benchmarks.third_party",
             blank: Callable[[str], dict] | None = None) -> list[dict]:
    """Each row of ``names`` through ``run_isolated``, its line printed as it finishes and
    ``out`` (schema, commit, ``header``, records) rewritten after each, so a long run killed
    midway keeps the rows it finished."""
    from benchmarks.family_survey import commit

    schema = importlib.import_module(runner).SCHEMA
    head, changed = commit()
    out.parent.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    for i, name in enumerate(names, 1):
        rec = run_isolated(name, timeout, runner, blank) | {"commit": head}
        records.append(rec)
        print(f"[{i}/{len(names)}] {name}: {rec['status']} "
              f"{rec['bit_exact'] if rec['status'] == 'ok' else rec['error']}", flush=True)
        doc = {"schema": schema, "commit": head, "uncommitted_changes": changed, **header,
               "records": records}
        out.write_text(json.dumps(doc, indent=1) + "\n")
    return records


if __name__ == "__main__":
    sys.exit(main())

"""Networks of other libraries, as their users build them: does each capture, quantize, compile
and simulate bit-exact? A check that qasic runs code its authors never read.

    python -m benchmarks.third_party --install            # the pinned packages, --no-deps
    python -m benchmarks.third_party --out out/third_party [--only NAME,...] [--timeout S]

The libraries (LIBRARIES, pinned) are pure PyTorch and go to ``.cache/third_party`` with
``pip install --no-deps --target`` (their own dependencies are torch, numpy and einops, which
the venv has): lucidrains' ``vit-pytorch`` (the vision transformers of 30 papers, one file
each) and Project MONAI (``monai``, medical imaging: 2-D and 3-D U-Nets, SegResNet, UNETR,
SwinUNETR, DenseNet, EfficientNet, VNet, autoencoders). ``vit_pytorch``'s package init imports
its DINO and ES-ViT trainers, which import ``torchvision.transforms`` (torchvision cannot be
installed here: its wheels pull CUDA); a stand-in module satisfies that import, and no network
run here uses it.

Every network (MODELS: the library, a builder of a small configuration, the input shape) is
built from ``torch.manual_seed(0)`` with its library's own initialization, and run through
``qasic.evaluate(model, x, calibration=x)`` (W8A8, the default arch) on 4 random inputs, each
in its own subprocess with a time limit. Records: ``status`` ``ok`` (``bit_exact``,
``cosine`` to fp32, ``cycles``), ``refused`` (qasic's one line), ``crash`` (any other
exception: a bug), ``timeout`` or ``unavailable`` (the library is not installed). A network
returning a tuple is evaluated on its first output. Results: ``third_party.json``.
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
import time
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / ".cache" / "third_party"
LIBRARIES = {"vit_pytorch": "vit-pytorch==1.26.14", "monai": "monai==1.6.1"}
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


MODELS: dict[str, tuple[str, Callable[[], object], tuple[int, ...]]] = {
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
    import numpy as np
    import torch

    from qasic.errors import QasicError

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
        x = np.random.default_rng(0).standard_normal((4, *shape)).astype(np.float32)
        with torch.no_grad():
            y = model(torch.from_numpy(x))
        if isinstance(y, (tuple, list)):
            model = first_output(model)
    except Exception as e:  # noqa: BLE001 - the library refused its configuration
        return rec | {"status": "build", "error": f"{type(e).__name__}: {str(e)[:300]}"}
    try:
        out = qasic_evaluate(model, x)
        rec |= {"status": "ok", "bit_exact": bool(out["bit_exact"]),
                "cosine": float(out["cosine"]), "cycles": int(out["cycles"])}
    except QasicError as e:
        rec |= {"status": "refused", "error": str(e).splitlines()[0][:500]}
    except Exception as e:  # noqa: BLE001 - every failure is a finding
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if str(ROOT) in f.filename]
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        rec |= {"status": "crash", "error": f"{type(e).__name__}: {str(e)[:300]}{where}"}
    return rec | {"wall_s": round(time.perf_counter() - t0, 2)}


def qasic_evaluate(model, x):
    import qasic

    return qasic.evaluate(model, x, calibration=x)


def run_isolated(name: str, timeout: float = TIMEOUT) -> dict:
    """``run_one`` in a subprocess (its own process group) killed after ``timeout`` seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "record.json"
        cmd = [sys.executable, "-m", "benchmarks.third_party", "--one", name,
               "--result", str(result)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, text=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return empty_record(name) | {"status": "timeout",
                                         "error": f"no result within {timeout:g} s"}
        if result.exists():
            return json.loads(result.read_text())
        tail = [line for line in (output or "").splitlines() if line.strip()][-1:]
        return empty_record(name) | {"status": "crash", "error": (tail or ["died"])[0][:500]}


def install() -> int:
    """The pinned packages into TARGET, without their dependencies."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(TARGET),
           *LIBRARIES.values()]
    return subprocess.call(cmd)


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.family_survey import commit

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="directory for third_party.json")
    p.add_argument("--only", help="comma-separated names (default: all of MODELS)")
    p.add_argument("--timeout", type=float, default=TIMEOUT)
    p.add_argument("--install", action="store_true", help="pip install the pinned libraries")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.install:
        return install()
    if a.one:
        a.result.write_text(json.dumps(run_one(a.one)))
        return 0
    names = a.only.split(",") if a.only else list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown network(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    if a.out is None:
        p.error("give --out DIR")
    head, changed = commit()
    records = []
    for i, name in enumerate(names, 1):
        rec = run_isolated(name, a.timeout) | {"commit": head}
        records.append(rec)
        print(f"[{i}/{len(names)}] {name}: {rec['status']} "
              f"{rec['bit_exact'] if rec['status'] == 'ok' else rec['error']}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    doc = {"schema": SCHEMA, "commit": head, "uncommitted_changes": changed,
           "libraries": LIBRARIES, "records": records}
    (a.out / "third_party.json").write_text(json.dumps(doc, indent=1) + "\n")
    ok = sum(r["status"] == "ok" and r["bit_exact"] for r in records)
    print(f"{ok} of {len(records)} bit-exact; {a.out / 'third_party.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

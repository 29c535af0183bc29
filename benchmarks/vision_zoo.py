"""The vision zoos users try first, ``torchvision.models`` and ``timm``, and three CNN zoos
(``efficientnet_pytorch``, ``geffnet``, ``pytorchcv``: benchmarks.cnn_zoos): does the smallest
variant of each family capture, quantize, compile and simulate bit-exact?

    python -m benchmarks.vision_zoo --install            # the two pinned packages, --no-deps
    python -m benchmarks.vision_zoo --out out/vision_zoo [--only NAME,...] [--timeout S]
    python -m benchmarks.vision_zoo --markdown benchmarks/results/vision_zoo.json  # docs' tables

The packages (PACKAGES, pinned) go to ``.cache/vision_zoo`` with ``pip install --no-deps
--target``. PyPI's torchvision wheel is a CUDA build but its Python code runs on the venv's CPU
torch; only ``torchvision/_meta_registrations.py`` (fake kernels of its compiled ops, nms,
roi_align, ..., registered at import) needs ``libtorch_cuda``, so an empty module stands in for
it (``real_torchvision``; the compiled ops raise when called: a detection or optical-flow
network's postprocessing). This is the real torchvision, unlike benchmarks.third_party's
``_torchvision_stand_in`` (an empty ``torchvision.transforms`` for vit_pytorch's package init).

Rows (MODELS): the smallest variant of every ``torchvision.models`` family (classification,
segmentation, video, detection, optical flow) and one smallest model (fewest parameters) of each
``timm`` architecture family (a module of ``timm.models``), ``num_classes=10``, on small inputs
(64x64 images where the network allows; a transformer's ``img_size``/``image_size`` set to it),
batch 2. Weights: ``torch.manual_seed(0)``, then benchmarks.family_survey's ``reinit`` (norms
the identity, every Linear and conv N(0, 1/fan_in), biases 0: the libraries zero-initialise
residual branches' last norms and layer scales, which would leave blocks out of the output) and
``settle_batch_norms`` (each BatchNorm's running statistics those of its input in one eval
forward), so every layer reaches the output at O(1) and the cosine to fp32 measures them all.
Each row runs through ``qasic.evaluate(model, x, calibration=x)`` (W8A8, the default arch) in
its own subprocess with a time limit (benchmarks.third_party's ``run_isolated``). Records as
third_party.json's: ``status`` ``ok`` (``bit_exact``, ``cosine``, ``cycles``), ``refused``
(qasic's one line), ``crash`` (a bug), ``build`` (the library refused its configuration),
``timeout``, ``unavailable``. A network returning a dict (segmentation: ``out``), list or
tuple is evaluated on its first tensor. Results: ``vision_zoo.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import subprocess
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from benchmarks.cnn_zoos import CV_SEGMENTATION, EFFICIENTNET_PYTORCH, GEFFNET, PYTORCHCV
from benchmarks.third_party import chosen, evaluate_record, inputs, run_rows
from benchmarks.third_party import empty_record as _empty

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / ".cache" / "vision_zoo"
PACKAGES = {"torchvision": "torchvision==0.28.0", "timm": "timm==1.0.31",
            "efficientnet_pytorch": "efficientnet_pytorch==0.7.1", "geffnet": "geffnet==1.0.2",
            "pytorchcv": "pytorchcv==0.0.74"}
TIMEOUT = 600.0
SCHEMA = "vision_zoo/1"
BATCH = 2
IMG = (3, 64, 64)


@contextlib.contextmanager
def real_torchvision() -> Iterator[None]:
    """The installed torchvision importable on the CPU torch: an empty
    ``torchvision._meta_registrations`` before its first import (kept: imported packages are)."""
    if TARGET.is_dir() and str(TARGET) not in sys.path:
        sys.path.insert(0, str(TARGET))
    if "torchvision" not in sys.modules:
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations")
    yield


def _tv(name: str, **kw) -> Callable[[], object]:
    """``torchvision.models.get_model(name, weights=None, num_classes=10, **kw)``."""
    def build():
        with real_torchvision():
            from torchvision import models

            return models.get_model(name, weights=None, **({"num_classes": 10} | kw))
    return build


def _tv_backbone(name: str, **kw) -> Callable[[], object]:
    """A segmentation or detection network with no pretrained backbone."""
    return _tv(name, weights_backbone=None, **kw)


def _raft(name: str) -> Callable[[], object]:
    """RAFT on a (6, H, W) input: the two frames stacked on channels; its last flow."""
    def build():
        import torch

        with real_torchvision():
            from torchvision import models

            raft = models.get_model(name, weights=None)

        class Frames(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.raft = raft

            def forward(self, x):
                return self.raft(x[:, :3], x[:, 3:], num_flow_updates=2)[-1]

        return Frames()
    return build


def _maxvit_t(partition: int, side: int) -> Callable[[], object]:
    """maxvit_t's configuration (``torchvision.models.maxvit_t``: it fixes partitions of 7,
    224x224 only) with partitions of ``partition`` on ``side`` x ``side`` images."""
    def build():
        with real_torchvision():
            from torchvision.models.maxvit import MaxVit

        return MaxVit(input_size=(side, side), stem_channels=64,
                      block_channels=[64, 128, 256, 512], block_layers=[2, 2, 5, 2],
                      head_dim=32, stochastic_depth_prob=0.2, partition_size=partition,
                      num_classes=10)
    return build


def _mvit_v1_b(side: int, frames: int) -> Callable[[], object]:
    """mvit_v1_b's configuration on ``frames`` x ``side`` x ``side`` clips (the builder fixes
    16x224x224, whose 25,088 tokens capture cannot hold: quant.lowering_seq.MAX_SELECTOR): its
    own ``_mvit`` call with the clip size replaced (the position tables follow it)."""
    def build():
        with real_torchvision():
            from torchvision.models.video import mvit

        make = mvit._mvit
        mvit._mvit = lambda **kw: make(**kw | {"spatial_size": (side, side),
                                               "temporal_size": frames})
        try:
            return mvit.mvit_v1_b(weights=None, num_classes=10)
        finally:
            mvit._mvit = make
    return build


def _timm(name: str, size: int | None = 64, **kw) -> Callable[[], object]:
    """``timm.create_model(name, num_classes=10, **kw)``, with ``img_size=size`` when the
    network takes one (a transformer's position table and windows)."""
    def build():
        with real_torchvision():
            import timm

        kw_ = {"num_classes": 10} | kw
        if size is None:
            return timm.create_model(name, **kw_)
        try:
            return timm.create_model(name, img_size=size, **kw_)
        except TypeError as e:
            if "img_size" not in str(e):
                raise
            return timm.create_model(name, **kw_)
    return build


DET = {"min_size": 64, "max_size": 64}  # the detectors' resize to the input's own size
TORCHVISION: dict[str, tuple[Callable[[], object], tuple[int, ...]]] = {
    "alexnet": (_tv("alexnet"), IMG),
    "vgg11": (_tv("vgg11"), IMG),
    "resnet18": (_tv("resnet18"), IMG),
    "resnext50_32x4d": (_tv("resnext50_32x4d"), IMG),
    "wide_resnet50_2": (_tv("wide_resnet50_2"), IMG),
    "squeezenet1_1": (_tv("squeezenet1_1"), IMG),
    "densenet121": (_tv("densenet121"), IMG),
    "inception_v3": (_tv("inception_v3", aux_logits=False, init_weights=False), (3, 80, 80)),
    "googlenet": (_tv("googlenet", aux_logits=False, init_weights=False), IMG),
    "shufflenet_v2_x0_5": (_tv("shufflenet_v2_x0_5"), IMG),
    "mobilenet_v2": (_tv("mobilenet_v2"), IMG),
    "mobilenet_v3_small": (_tv("mobilenet_v3_small"), IMG),
    "mnasnet0_5": (_tv("mnasnet0_5"), IMG),
    "efficientnet_b0": (_tv("efficientnet_b0"), IMG),
    "efficientnet_v2_s": (_tv("efficientnet_v2_s"), IMG),
    "regnet_x_400mf": (_tv("regnet_x_400mf"), IMG),
    "regnet_y_400mf": (_tv("regnet_y_400mf"), IMG),
    "convnext_tiny": (_tv("convnext_tiny"), IMG),
    "vit_b_16": (_tv("vit_b_16", image_size=64), IMG),
    "swin_t": (_tv("swin_t"), IMG),
    "swin_v2_t": (_tv("swin_v2_t"), IMG),
    "maxvit_t": (_maxvit_t(2, 64), IMG),
    "fcn_resnet50": (_tv_backbone("fcn_resnet50"), IMG),
    "deeplabv3_mobilenet_v3_large": (_tv_backbone("deeplabv3_mobilenet_v3_large"), IMG),
    "lraspp_mobilenet_v3_large": (_tv_backbone("lraspp_mobilenet_v3_large"), IMG),
    "r3d_18": (_tv("r3d_18"), (3, 4, 32, 32)),
    "mc3_18": (_tv("mc3_18"), (3, 4, 32, 32)),
    "r2plus1d_18": (_tv("r2plus1d_18"), (3, 4, 32, 32)),
    "s3d": (_tv("s3d"), (3, 16, 224, 224)),
    "mvit_v1_b": (_mvit_v1_b(64, 4), (3, 4, 64, 64)),
    "swin3d_t": (_tv("swin3d_t"), (3, 4, 32, 32)),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (
        _tv_backbone("fasterrcnn_mobilenet_v3_large_320_fpn", **DET), IMG),
    "fcos_resnet50_fpn": (_tv_backbone("fcos_resnet50_fpn", **DET), IMG),
    "retinanet_resnet50_fpn": (_tv_backbone("retinanet_resnet50_fpn", **DET), IMG),
    "ssdlite320_mobilenet_v3_large": (_tv_backbone("ssdlite320_mobilenet_v3_large"), IMG),
    "maskrcnn_resnet50_fpn": (_tv_backbone("maskrcnn_resnet50_fpn", **DET), IMG),
    "keypointrcnn_resnet50_fpn": (_tv_backbone("keypointrcnn_resnet50_fpn", num_classes=2,
                                               **DET), IMG),
    "raft_small": (_raft("raft_small"), (6, 128, 128)),  # its pyramid: 16x16 features
}

# timm: a smallest model of each architecture family (a module of timm.models; two where the
# module holds two families users name apart), the families users reach for first
TIMM_SMALLEST = (
    "resnet10t", "resnetv2_18", "efficientnet_b0", "mobilenetv3_small_050",
    "mobilenetv4_conv_small", "convnext_atto", "convnextv2_atto", "regnetx_002",
    "vit_tiny_patch16_224", "deit_tiny_patch16_224", "beit_base_patch16_224", "levit_128s",
    "poolformer_s12", "coatnet_nano_rw_224", "maxvit_nano_rw_256", "efficientvit_b0",
    "efficientvit_m0", "fastvit_t8", "repvit_m0_9", "ghostnet_050", "ghostnetv2_100",
    "mobilevit_xxs", "edgenext_xx_small", "cait_xxs24_224", "xcit_nano_12_p16_224",
    "twins_svt_small", "pvt_v2_b0", "dla46_c", "hrnet_w18_small", "cs3darknet_s", "dpn48b",
    "tresnet_m", "nf_regnet_b0", "rexnet_100", "hgnetv2_b0", "inception_next_atto",
    "xception41", "densenet121", "vgg11", "res2net50_14w_8s", "skresnet18", "resnest14d",
    "selecsls42b", "tiny_vit_5m_224", "davit_tiny", "focalnet_tiny_srf", "gcvit_xxtiny",
    "hiera_tiny_224", "mambaout_femto", "mobileone_s0", "repvgg_a0", "lambda_resnet26t",
    "convit_tiny", "crossvit_tiny_240", "coat_lite_tiny", "efficientformer_l1",
    "efficientformerv2_s0", "fasternet_t0", "hardcorenas_a", "mixer_s32_224",
    "gmlp_ti16_224", "resmlp_12_224", "mvitv2_tiny", "nest_tiny", "pit_ti_224",
    "repghostnet_050", "legacy_seresnet18", "sequencer2d_s", "shvit_s1", "starnet_s050",
    "swiftformer_xs", "tnt_s_patch16_224", "visformer_tiny", "volo_d1_224",
    "ese_vovnet19b_dw", "vit_tiny_r_s16_p8_224", "vit_relpos_small_patch16_224",
    "swinv2_cr_tiny_224", "rdnet_tiny", "nextvit_small", "cspnext_tiny", "cpubone_nano",
    "efficientvim_m1", "lowformer_b0", "iformer_t", "lcnetv2_small", "inception_v3",
    "convmixer_768_32", "csatv2")
TIMM: dict[str, tuple[Callable[[], object], tuple[int, ...]]] = {
    name: (_timm(name), IMG) for name in TIMM_SMALLEST} | {
    # windows of 4 (7 divides no power-of-two grid), on the stages' 16, 8, 4, 2 tokens a side
    "swin_tiny_patch4_window7_224": (_timm("swin_tiny_patch4_window7_224", window_size=4), IMG),
    "swinv2_tiny_window8_256": (_timm("swinv2_tiny_window8_256", window_size=4), IMG),
    "eva02_tiny_patch14_224": (_timm("eva02_tiny_patch14_224", 56), (3, 56, 56)),
    # both branches' patches (12 and 16) tile 48
    "crossvit_tiny_240": (_timm("crossvit_tiny_240", 48, img_scale=(1.0, 1.0)), (3, 48, 48)),
    "inception_v3": (_timm("inception_v3"), (3, 80, 80)),  # 75 the least it takes
    # its last stage's attention biases are for 7x7 tokens: 224 only
    "efficientformer_l1": (_timm("efficientformer_l1", None), (3, 224, 224)),
}

MODELS: dict[str, tuple[str, Callable[[], object], tuple[int, ...]]] = {
    **{f"tv_{k}": ("torchvision", b, s) for k, b, s in
       ((k, *v) for k, v in TORCHVISION.items())},
    **{f"timm_{k}": ("timm", b, s) for k, b, s in ((k, *v) for k, v in TIMM.items())},
    **{f"{prefix}_{k}": (library, b, s)
       for prefix, library, table in (("ep", "efficientnet_pytorch", EFFICIENTNET_PYTORCH),
                                      ("gef", "geffnet", GEFFNET), ("cv", "pytorchcv", PYTORCHCV))
       for k, (b, s) in table.items()},
}


# torchvision.models' tasks other than classification (the families of the summary table)
TV_TASKS = {
    "segmentation": ("fcn_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"),
    "video": ("r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "swin3d_t"),
    "detection": ("fasterrcnn_mobilenet_v3_large_320_fpn", "fcos_resnet50_fpn",
                  "retinanet_resnet50_fpn", "ssdlite320_mobilenet_v3_large",
                  "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn"),
    "optical flow": ("raft_small",),
}
FAMILIES = ("torchvision classification", *(f"torchvision {t}" for t in TV_TASKS), "timm",
            "efficientnet_pytorch", "geffnet", "pytorchcv classification",
            "pytorchcv segmentation")
ERROR_CELL = 200  # characters of a refusal shown in the every-row table


def family(name: str) -> str:
    """The summary table's family of MODELS row ``name``."""
    library = MODELS[name][0]
    if library == "pytorchcv":
        seg = name[len("cv_"):] in CV_SEGMENTATION
        return f"pytorchcv {'segmentation' if seg else 'classification'}"
    if library != "torchvision":
        return library
    task = next((t for t, rows in TV_TASKS.items() if name[len("tv_"):] in rows),
                "classification")
    return f"torchvision {task}"


def summary_table(doc: dict) -> str:
    """docs/vision_zoo.md's and docs/survey.md's table: per family, the rows MODELS lists, run,
    bit-exact, refused, failed to build in the library, crashed or timed out."""
    recs = {r["name"]: r for r in doc["records"]}
    head = ("| family | rows listed | run | bit-exact | refused in one line | build (library) "
            "| crash or timeout |\n|---|---|---|---|---|---|---|")
    lines, total = [head], [0] * 6
    for fam in FAMILIES:
        run = [recs[n] for n in MODELS if family(n) == fam and n in recs]
        cells = [sum(family(n) == fam for n in MODELS), len(run),
                 sum(r["status"] == "ok" and r["bit_exact"] is True for r in run),
                 sum(r["status"] == "refused" for r in run),
                 sum(r["status"] == "build" for r in run),
                 sum(r["status"] in ("crash", "timeout") for r in run)]
        total = [t + c for t, c in zip(total, cells)]
        lines.append(f"| {fam} | " + " | ".join(map(str, cells)) + " |")
    lines.append("| **all** | " + " | ".join(map(str, total)) + " |")
    return "\n".join(lines)


def headline(doc: dict) -> str:
    """The sentence under the summary table (docs/survey.md) and in the README's headlines."""
    ok = [r for r in doc["records"] if r["status"] == "ok"]
    exact = [r for r in ok if r["bit_exact"] is True]
    cos = sorted(r["cosine"] for r in ok)
    median = (cos[(len(cos) - 1) // 2] + cos[len(cos) // 2]) / 2
    pending = [n for n in MODELS if n not in {r["name"] for r in doc["records"]}]
    every = "every one that evaluates" if len(exact) == len(ok) else \
        f"{len(ok)} of them evaluate"
    text = (f"**{len(exact)} of the {len(doc['records'])} rows{' run so far' if pending else ''} "
            "are bit-exact**: "
            f"{every} (cosine to fp32 median {median:.4f}, least {cos[0]:.4f})")
    return text + (f"; {len(pending)} listed row{'s are' if len(pending) != 1 else ' is'} not "
                   "yet run." if pending else ".")


def row_table(doc: dict) -> str:
    """docs/vision_zoo.md's every-row table, in MODELS order."""
    recs = {r["name"]: r for r in doc["records"]}
    lines = ["| row | input (per sample) | status | bit-exact | cosine | cycles | error |",
             "|---|---|---|---|---|---|---|"]
    for name in (n for n in MODELS if n in recs):
        r, shape = recs[name], MODELS[name][2]
        ok = r["status"] == "ok"
        cells = [f"`{name}`", "x".join(map(str, shape)), r["status"],
                 ("yes" if r["bit_exact"] else "no") if ok else "–",
                 f"{r['cosine']:.4f}" if ok else "–", f"{r['cycles']:,}" if ok else "–",
                 (r["error"] or "")[:ERROR_CELL].replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    """Everything docs/vision_zoo.md, docs/survey.md and the README take from the record."""
    return "\n\n".join((summary_table(doc), headline(doc), row_table(doc)))


def empty_record(name: str) -> dict:
    return _empty(name) | {"library": MODELS[name][0] if name in MODELS else None}


def tensor_output(model):
    """A network returning a dict (its ``out``, else first value), list or tuple, evaluated on
    its first tensor."""
    import torch

    def first(y):
        while not isinstance(y, torch.Tensor):
            y = (y.get("out", next(iter(y.values()))) if isinstance(y, dict) else y[0])
        return y

    class FirstTensor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            return first(self.model(x))

    return FirstTensor().eval()


def run_one(name: str) -> dict:
    """Build ``name`` and evaluate it in this process: its record (never raises)."""
    import torch

    from benchmarks.family_survey import reinit, settle_batch_norms

    rec = empty_record(name)
    library, build, shape = MODELS[name]
    if library in PACKAGES and TARGET.is_dir() and str(TARGET) not in sys.path:
        # (only then: on the path, torchvision is found by code that imports it without the
        # stand-in, e.g. transformers' image processors)
        sys.path.insert(0, str(TARGET))
    t0 = time.perf_counter()
    if importlib.util.find_spec(library) is None:
        return rec | {"status": "unavailable", "error": f"{library} is not installed: "
                                                        "python -m benchmarks.vision_zoo "
                                                        "--install"}
    try:
        torch.manual_seed(0)
        model = reinit(build().eval())
        x = inputs(shape, batch=BATCH)
        with torch.no_grad():
            settle_batch_norms(model, lambda: model(torch.from_numpy(x)))
            y = model(torch.from_numpy(x))
        if not isinstance(y, torch.Tensor):
            model = tensor_output(model)
    except Exception as e:  # noqa: BLE001 - the library refused its configuration
        return rec | {"status": "build", "error": build_error(e)}
    return evaluate_record(rec, model, x, shape) | {"wall_s": round(time.perf_counter() - t0, 2)}


def build_error(e: Exception) -> str:
    """The one line of a network that did not build or run in float: torchvision's message for
    its absent compiled ops (the wheel's ``_C``) named as what it is."""
    if "Couldn't load custom C++ ops" in str(e):
        ops = sorted({f.name for f in traceback.extract_tb(e.__traceback__)
                      if f.name[0] != "_" and f.filename.endswith(
                          ("boxes.py", "roi_align.py", "roi_pool.py", "deform_conv.py"))})
        return (f"torchvision's compiled ops ({', '.join(ops) or 'torchvision._C'}) are absent "
                "here (PyPI's CUDA wheel on the CPU torch): the float network itself does not "
                "run (its postprocessing), so qasic never sees it")
    return f"{type(e).__name__}: {str(e)[:300]}"


def install() -> int:
    """The pinned packages into TARGET, without their dependencies."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(TARGET),
           *PACKAGES.values()]
    return subprocess.call(cmd)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="directory for vision_zoo.json")
    p.add_argument("--only", help="comma-separated names (default: all of MODELS)")
    p.add_argument("--timeout", type=float, default=TIMEOUT)
    p.add_argument("--install", action="store_true", help="pip install the pinned packages")
    p.add_argument("--markdown", type=Path, metavar="JSON",
                   help="print the docs' tables of a vision_zoo.json and exit")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.install:
        return install()
    if a.markdown:
        print(markdown(json.loads(a.markdown.read_text())))
        return 0
    if a.one:
        a.result.write_text(json.dumps(run_one(a.one)))
        return 0
    names = chosen(p, a.only, MODELS, a.out)
    records = run_rows(names, a.timeout, a.out / "vision_zoo.json", {"packages": PACKAGES},
                       "benchmarks.vision_zoo", empty_record)
    ok = sum(r["status"] == "ok" and r["bit_exact"] for r in records)
    print(f"{ok} of {len(records)} bit-exact; {a.out / 'vision_zoo.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

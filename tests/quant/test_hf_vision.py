"""`transformers` vision models no one here wrote, built from tiny configs: HF's MobileNetV2
(TensorFlow-style 'same' padding as explicit zero pads), Swin (shifted windows: rolls, window
partitions, a relative position bias and the shifted-window mask), ConvNeXt (channels-first
LayerNorms and blocks of per-pixel linears between permutes to and from channels-last),
Segformer (stage outputs reshaped to (N, H, W, C) and permuted back to images for the next
stage's conv), ConvNeXt V2 (global response normalization from existing ops), LeViT
(BatchNorm1d of its linears), SigLIP (an attention-pooling head whose probe query is a
constant, the left operand of its scores) and UperNet (a semantic-segmentation head on a
ConvNeXt backbone: pyramid pooling to 1, 2, 3 and 6 cells, bilinear resizes of every size) and
Segformer's segmentation head (its stages resized to a quarter of the input), the depth
heads of DPT (CLS-token readouts) and GLPN (channel gates) and BEiT's segmentation head (a
feature pyramid of transposed convs on its tokens' maps) run bit-exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from benchmarks.family_survey import reinit
from qasic.quant import capture

transformers = pytest.importorskip("transformers")


class Hidden(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).last_hidden_state


def _images(n: int = 4, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)


def test_hf_mobilenet_v2_with_its_zero_pads_runs_bit_exact():
    torch.manual_seed(0)
    config = transformers.MobileNetV2Config(image_size=32, depth_multiplier=0.35)
    x = _images()
    r = qasic.evaluate(Hidden(transformers.MobileNetV2Model(config).eval()), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99


def test_hf_siglip_with_its_constant_probe_query_runs_bit_exact():
    torch.manual_seed(0)
    config = transformers.SiglipVisionConfig(image_size=32, patch_size=8, hidden_size=32,
                                             num_hidden_layers=2, num_attention_heads=2,
                                             intermediate_size=64)
    x = _images(2)
    r = qasic.evaluate(Hidden(transformers.SiglipVisionModel(config).eval()), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99  # measured 0.9996


def test_hf_swin_with_shifted_windows_and_a_position_bias_runs_bit_exact():
    """Two blocks per stage (the second shifts its windows by torch.roll and masks across the
    seams with -100), 16 x 16 then 8 x 8 tokens in 4 x 4 windows; HF initializes the relative
    position bias table to zeros, so it is drawn here (it must reach the scores)."""
    torch.manual_seed(0)
    config = transformers.SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2],
                                     num_heads=[2, 2], window_size=4, mlp_ratio=2.0)
    model = transformers.SwinModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "relative_position_bias_table" in name:
                p.normal_(0.0, 1.0)
    x = _images(2)
    r = qasic.evaluate(Hidden(model), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # 0.99953


def _segformer():
    return transformers.SegformerModel(transformers.SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
        patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2]))


def _convnext(cls: str):
    return getattr(transformers, f"{cls}Model")(getattr(transformers, f"{cls}Config")(
        num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], patch_size=4, image_size=32))


@pytest.mark.parametrize("make", [lambda: _convnext("ConvNext"), _segformer],
                         ids=["convnext", "segformer"])
def test_channels_last_stages_run_bit_exact_without_permutes(make):
    torch.manual_seed(0)
    model, x = Hidden(make().eval()), _images(2)
    nodes = {n.output: n for n in capture(model, torch.from_numpy(x)).nodes}
    convs = [n for n in nodes.values() if n.op == "conv2d"]
    assert len(convs) >= 4  # none reads a permute: the images are the channels-last tensors
    assert all(nodes[n.inputs[0]].op != "permute" for n in convs if n.inputs[0] in nodes)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # 0.99985 / 0.99981


def test_convnext_v2_global_response_norm_runs_bit_exact():
    """GRN's weight and bias start at zero (GRN is then the identity): random ones here."""
    torch.manual_seed(0)
    hf = _convnext("ConvNextV2").eval()
    g = torch.Generator().manual_seed(0)
    for name, p in hf.named_parameters():
        if ".grn." in name:
            p.data = torch.randn(p.shape, generator=g)
    x = _images(16)
    nodes = capture(Hidden(hf), torch.from_numpy(x[:2])).nodes
    norms = [n for n in nodes if ".grn.linalg_vector_norm" in n.name and n.op == "lut"]
    assert len(norms) == 2 * 2  # per stage: the x^2 and square root tables
    r = qasic.evaluate(Hidden(hf), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]               # 0.99978


def test_levit_batch_norms_of_linears_fold_and_it_runs_bit_exact():
    """LeViT: BatchNorm1d of each linear's (batch * S, D) output (one token at the last stage,
    flattened to (batch, D)), attention biases of zeros (dropped), subsampled queries."""
    torch.manual_seed(0)
    model = Hidden(transformers.LevitModel(transformers.LevitConfig(
        image_size=64, hidden_sizes=[32, 48, 64], num_attention_heads=[1, 2, 2],
        depths=[1, 1, 1], key_dim=[8, 8, 8])).eval())
    x = _images(2, 64)
    nodes = capture(model, torch.from_numpy(x)).nodes
    assert not any("batch_norm" in n.name for n in nodes)  # all folded into their layers
    r = qasic.evaluate(model, x, calibration=x)
    # random init leaves outputs of ~1e-8 (the survey's output_absmax): a weak cosine check
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]               # 0.9981


def test_mobilevit_unfolds_and_folds_its_patches_by_permutes_and_runs_bit_exact():
    """MobileViT views each feature map as (batch * C * h, 2, w, 2), transposes it into
    (batch * 4, patches, C) for its transformer and folds it back for a 1x1 conv: the image
    permuted to torch's (C, H, W), per-sample permutes in sequence mode, and permuted back at
    the conv; its last stage's 1x1 map is resized to one 2x2 patch and back (a bilinear
    halving: an avgpool2d of 2). HF's init leaves the output at exactly 0, so convs and
    linears are drawn at unit gain here."""
    torch.manual_seed(0)
    config = transformers.MobileViTConfig(image_size=32, patch_size=2, hidden_sizes=[16, 24, 32],
                                          neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
                                          num_attention_heads=2, mlp_ratio=2.0)
    model = transformers.MobileViTModel(config, expand_output=False).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, m.in_features ** -0.5)
    x = _images(2)
    g = capture(Hidden(model), torch.from_numpy(x[:1]))
    perms = [n.attrs["perm"] for n in g.nodes if n.op == "permute"]
    assert perms.count((2, 0, 1)) == perms.count((1, 2, 0)) == 3  # into and out of 3 blocks
    r = qasic.evaluate(Hidden(model), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.995, r["cosine"]  # 0.99698


def test_mobilevit_v2_linear_attention_runs_bit_exact():
    """MobileViTV2 unfolds each map into (batch, C, ph pw, patches) (sequence mode), runs 1x1
    convs on it (image mode) and a softmax over the patches of one query channel (sequence
    mode), and adds its residual stream across the two: each map read in the other mode is
    permuted once (qasic.quant.layouts). Before: 'softmax input of a 4-D activation in an image
    model'. Convs and norms drawn at unit gain as for MobileViT."""
    torch.manual_seed(0)
    config = transformers.MobileViTV2Config(image_size=64, patch_size=2, width_multiplier=0.25,
                                            mlp_ratio=2.0)
    model = transformers.MobileViTV2Model(config, expand_output=False).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                m.weight.fill_(1.0)
    x = _images(2, 64)
    g = capture(Hidden(model), torch.from_numpy(x))
    assert [n.op for n in g.nodes].count("softmax") == 9  # 2 + 4 + 3 attention layers
    assert sum(n.name.endswith(".image_layout") for n in g.nodes) == 3  # a residual a stage
    r = qasic.evaluate(Hidden(model), x, calibration=x)
    # measured 0.9744 (0.9615 with a selection linear after each whole qkv conv): the 8-bit
    # activations of its ~60 convs (in the survey's model its attention layers alone quantized
    # give 0.996, its second stage's 11 layers alone 0.983)
    assert r["bit_exact"] and r["cosine"] > 0.96, r["cosine"]


class SegLogits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).logits


def test_upernet_segmentation_head_runs_bit_exact():
    """UperNetForSemanticSegmentation on a tiny ConvNeXt at 64x64: its pyramid pooling module
    pools the 2x2 last stage to 1, 2, 3 and 6 cells (adaptive average pools to sizes that do
    not divide: resizes of mode area) and resizes each back bilinearly (align_corners False,
    from 1x1 and 3x3 too), the FPN resizes each level to the next, and the logits go to the
    input size (x4); qasic.quant.resize."""
    torch.manual_seed(0)
    backbone = transformers.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                                           out_features=["stage1", "stage2", "stage3",
                                                         "stage4"])
    config = transformers.UperNetConfig(backbone_config=backbone, hidden_size=16, num_labels=5,
                                        use_auxiliary_head=False, pool_scales=[1, 2, 3, 6])
    model = SegLogits(transformers.UperNetForSemanticSegmentation(config).eval())
    x = _images(4, 64)
    r = qasic.evaluate(model, x[2:], calibration=x, arch="default")
    assert r["bit_exact"] and r["cosine"] > 0.999  # measured 0.99963
    assert sum(la["kind"] == "matmul" for la in r["layers"]) == 7  # 7 resizes


class SegToInput(nn.Module):
    """Segformer's logits (1/4 of the input) resized to the input's size, as its users do."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y = self.model(pixel_values=x).logits
        return nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear",
                                         align_corners=False)


def test_segformer_segmentation_head_runs_bit_exact():
    """SegformerForSemanticSegmentation with four stages (1/4 .. 1/32 of 64x64): its all-MLP
    head resizes the stages at 1/16 and 1/32 to 1/4 (4x, 8x: resizes), 1/8 by 2x (the 2x2 phase
    kernel), and the logits go to the input size (4x)."""
    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[4, 2, 1, 1],
        hidden_sizes=[8, 16, 24, 32], patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2],
        num_attention_heads=[1, 1, 2, 2], mlp_ratios=[2, 2, 2, 2], decoder_hidden_size=16,
        num_labels=5)
    model = SegToInput(transformers.SegformerForSemanticSegmentation(config).eval())
    x = _images(4, 64)
    r = qasic.evaluate(model, x[2:], calibration=x, arch="default")
    assert r["bit_exact"] and r["cosine"] > 0.999  # measured 0.99943
    kinds = [la["kind"] for la in r["layers"]]
    assert kinds.count("bilinear") == 1 and kinds.count("permute") == 6  # 3 resizes, 2 each



class Depth(nn.Module):
    """The predicted depth less ``offset`` (GLPN's is max_depth * sigmoid: less the midpoint,
    the cosine sees its variation, not its mean). Weights drawn as the family survey's."""

    def __init__(self, model, offset: float = 0.0):
        super().__init__()
        self.model, self.offset = reinit(model), offset

    def forward(self, x):
        return self.model(pixel_values=x).predicted_depth - self.offset


def test_dpt_depth_head_reads_its_cls_tokens_after_an_image_stage_and_runs_bit_exact():
    """DPTForDepthEstimation: each reassemble stage takes the CLS token of its encoder layer
    (``hidden_state[:, 0]``) for its readout projection; the second one's is read after the
    first stage's convs (image mode) and goes back to sequence mode (qasic.quant.layouts).
    Before: 'node select_2 ...: op aten.select.int is supported in sequence models only'."""
    torch.manual_seed(0)
    config = transformers.DPTConfig(image_size=16, patch_size=4, hidden_size=16,
                                    num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=32, backbone_out_indices=[0, 1],
                                    neck_hidden_sizes=[8, 16], fusion_hidden_size=16,
                                    head_hidden_size=8, readout_type="project")
    model = Depth(transformers.DPTForDepthEstimation(config).eval())
    x = _images(4, 16)
    r = qasic.evaluate(model, x[2:], calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.995, r["cosine"]  # measured 0.99851


def test_glpn_depth_head_selects_its_attention_channels_and_runs_bit_exact():
    """GLPNForDepthEstimation: its selective feature fusion gates the local and global maps by
    the two channels of a sigmoid map (``attn[:, 0].unsqueeze(1)``): channel slices of the
    image (qasic.quant.keepdim), no permutes. Before: 'node select ...: op aten.select.int is
    supported in sequence models only', then four permutes of whole maps (sequence mode)."""
    torch.manual_seed(0)
    config = transformers.GLPNConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                                     hidden_sizes=[16, 32], patch_sizes=[7, 3], strides=[4, 2],
                                     num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                                     decoder_hidden_size=16)
    model = Depth(transformers.GLPNForDepthEstimation(config).eval(), config.max_depth / 2)
    x = _images(4, 32)
    g = capture(model, torch.from_numpy(x[:1]))
    fusion = [n.op for n in g.nodes if ".fusion." in n.name]
    # two channel selections, views of the sigmoid map (``channels``; 0/1 linears before)
    assert "permute" not in fusion and fusion.count("channels") == 2
    r = qasic.evaluate(model, x[2:], calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.995, r["cosine"]  # measured 0.99918


def test_beit_segmentation_head_upsamples_its_tokens_by_transposed_convs_and_runs_bit_exact():
    """BeitForSemanticSegmentation: the tokens of 4 layers, the class token sliced off
    (``x[:, 1:]``, in sequence mode each time), viewed as maps and put through BEiT's feature
    pyramid (ConvTranspose2d, BatchNorm, GELU, ConvTranspose2d; ConvTranspose2d; identity; max
    pool) into its UperNet head. Before: 'transposed convolution: only 1-D and 2-D ones in
    image models'."""
    torch.manual_seed(0)
    config = transformers.BeitConfig(image_size=16, patch_size=4, hidden_size=16,
                                     num_hidden_layers=4, num_attention_heads=2,
                                     intermediate_size=32, out_indices=[1, 2, 3, 4],
                                     pool_scales=[1, 2], use_auxiliary_head=False, num_labels=3)
    model = SegLogits(reinit(transformers.BeitForSemanticSegmentation(config).eval()))
    x = _images(4, 16)
    g = capture(model, torch.from_numpy(x[:1]))
    assert [g.shapes[n.output] for n in g.nodes if n.name.startswith("model.slice")
            and n.op == "matmul"] == [(16, 16)] * 4  # 16 of 17 tokens, in sequence mode
    fpn = [n for n in g.nodes if n.name.startswith("model.fpn")]
    assert [(n.name, g.shapes[n.output]) for n in fpn if n.op == "conv2d"] == [
        ("model.fpn.fpn1.conv_transpose1", (4, 4, 64)),  # BatchNorm folded, GELU after
        ("model.fpn.fpn1.conv_transpose2", (8, 8, 64)), ("model.fpn.fpn2", (4, 4, 64))]
    assert [n.op for n in fpn].count("maxpool2d") == 1
    assert all(n.name.endswith((".phases", ".rows")) for n in g.nodes if n.op == "permute"
               and not n.name.startswith("model.beit.layers"))  # pixel shuffles alone
    r = qasic.evaluate(model, x[2:], calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


@pytest.mark.parametrize("bits", [6, 4])
def test_a_vit_with_its_class_token_is_bit_exact_at_narrow_activations(bits):
    """17 tokens (16 patches and the class token): a 6-bit (4-bit) row of 17 codes does not
    pack into whole bytes, so the attention probabilities are stored a byte per code. Before
    SOFTMAX's qbits the simulator scaled them to int8's range (0.93 cosine at A6, not
    bit-exact) while the golden reference used the tensor's own; every vision transformer with
    a class token was affected (benchmarks.bit_survey)."""
    from benchmarks.family_survey import build
    from qasic.quant import QuantConfig

    model, x, _ = build("ViTModel")
    # softmax_bits None: probabilities at the activation width (8 bits by default since)
    out = qasic.evaluate(model, x, calibration=x,
                         config=QuantConfig(activation_bits=bits, softmax_bits=None))
    assert out["bit_exact"]
    assert out["cosine"] > {6: 0.99, 4: 0.85}[bits]  # measured 0.9947, 0.9076

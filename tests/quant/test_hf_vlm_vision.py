"""The vision towers of VLMs that pack a batch's images into one sequence with an integer
``grid_thw`` (Qwen2-VL, Qwen2.5-VL's windows, Qwen3-VL, GLM-4V), wrapped with one image of a
fixed 4x4 grid of patches per sample, the grid a constant of the wrapper
(qasic.quant.grid_towers: traced on one sample, the grid helpers run on constants, the packed
attention a block-diagonal mask); their patch embedding, a Conv3d whose kernel covers each cut
patch, is a linear (qasic.quant.patch_conv). Pixtral's tower, which loops over the images of
its batch, runs its one-image form. Towers that merge, resize or reorder each image's tokens
themselves (a conv over the image's map at sizes from ``grid_thw.tolist()``, a bilinear
downsampling, class tokens placed by ``index_put``) stay in sequence mode; a model that packs
its samples without a tower qasic knows is refused at its first product that mixes them.
Tiny configs: 2 blocks of hidden 32, 2 heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from benchmarks.family_survey import reinit
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, grid_towers

transformers = pytest.importorskip("transformers")
TOWER = {"depth": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
         "patch_size": 4, "spatial_merge_size": 2, "temporal_patch_size": 2,
         "out_hidden_size": 64, "num_position_embeddings": 16, "image_size": 16}
SIDE, FEATURES = 4, 3 * 2 * 4 * 4  # a 4x4 grid of patches of 2 frames x 3 x 4 x 4 pixels


class OneImage(nn.Module):
    """(batch, SIDE^2, FEATURES) patches, one image per sample -> its merged tokens (batch, 4,
    out). ``whole`` gives the batch one image of all its patches (the samples meet)."""

    def __init__(self, tower: nn.Module, whole: bool = False) -> None:
        super().__init__()
        self.tower, self.whole = tower, whole

    def forward(self, x):
        b, n, d = x.shape
        grid = [[1, SIDE * b, SIDE]] if self.whole else [[1, SIDE, SIDE]] * b
        out = self.tower(hidden_states=x.reshape(b * n, d), grid_thw=torch.tensor(grid))
        return out.pooler_output.reshape(b, -1, out.pooler_output.shape[-1])


def _tower(name: str, **extra) -> nn.Module:
    from transformers.models.qwen2_vl import modeling_qwen2_vl

    torch.manual_seed(0)
    if name == "Qwen2VisionTransformerPretrainedModel":
        config = transformers.Qwen2VLVisionConfig(**TOWER | {"embed_dim": 32, "hidden_size": 64,
                                                             "mlp_ratio": 2})
        return reinit(modeling_qwen2_vl.Qwen2VisionTransformerPretrainedModel(config).eval())
    cls = getattr(transformers, name)
    return reinit(cls(cls.config_class(**TOWER | extra)).eval())


def _patches(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, SIDE * SIDE, FEATURES)).astype(np.float32)


def _softmaxes(graph) -> list:
    return [n for n in graph.nodes if n.op == "softmax"]


@pytest.mark.parametrize("name", ["Qwen2VisionTransformerPretrainedModel", "Qwen3VLVisionModel",
                                  "Glm4vVisionModel"])
def test_a_grid_tower_with_one_image_per_sample_runs_bit_exact(name):
    model, x = OneImage(_tower(name)), _patches()
    graph = capture(model, torch.from_numpy(x))
    ops = [n.op for n in graph.nodes]
    assert "conv3d" not in ops and ops[0] == "linear"  # the patch embedding: a linear
    assert len(_softmaxes(graph)) == 2 and not any("valid" in n.params
                                                   for n in _softmaxes(graph))
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


def test_qwen2_5_vl_windows_are_a_constant_pattern_and_run_bit_exact():
    # windows of 8 pixels: each 2x2 merged token's 4 patches in block 0, full attention in 1
    tower = _tower("Qwen2_5_VisionTransformerPretrainedModel", window_size=8,
                   fullatt_block_indexes=[1])
    model, x = OneImage(tower), _patches()
    graph = capture(model, torch.from_numpy(x))
    windowed, full = _softmaxes(graph)
    pattern = np.asarray(windowed.params["valid"]) != 0
    assert pattern.shape[-2:] == (16, 16) and pattern.sum() == 16 * 4  # 4 keys per query
    assert "valid" not in full.params
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


def test_a_tower_whose_samples_meet_is_refused_in_one_line():
    model = OneImage(_tower("Qwen3VLVisionModel"), whole=True)
    with pytest.raises(UnsupportedOpError, match="Qwen3VLVisionModel .*packs the images") as e:
        capture(model, torch.from_numpy(_patches()))
    assert "\n" not in str(e.value)


def test_towers_are_found_by_their_grid_argument():
    model = OneImage(_tower("Qwen3VLVisionModel"))
    assert [n for n, _ in grid_towers.towers(model)] == ["tower"]
    assert grid_towers.towers(nn.Linear(2, 2)) == []


def test_pixtral_one_image_per_sample_runs_bit_exact_and_its_packed_output_is_refused():
    torch.manual_seed(0)
    config = transformers.PixtralVisionConfig(image_size=32, patch_size=8, hidden_size=32,
                                              intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=2, head_dim=16)
    pixtral = reinit(transformers.PixtralVisionModel(config).eval())
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with pytest.raises(UnsupportedOpError, match="does not hold them on axis 0"):
        capture(pixtral, torch.from_numpy(x))  # its output (1, 2 x 16, D): one sequence

    class PixtralVisionModel(nn.Module):  # a wrapper of the tower's name is not the tower
        def __init__(self) -> None:
            super().__init__()
            self.model = pixtral

        def forward(self, x):
            return self.model(pixel_values=x).last_hidden_state.reshape(x.shape[0], 16, 32)

    model = PixtralVisionModel()
    assert [n for n, _ in grid_towers.towers(model)] == ["model"]
    r = qasic.evaluate(model, x, calibration=x)  # its loop over the images: one image
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]
    assert "forward" not in vars(pixtral)  # its own forward put back


class PatchEmbed(nn.Module):
    """Cut patches (batch, N, 48) -> a Conv2d whose 4x4 kernel covers each -> a linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.proj = nn.Conv2d(3, 8, 4, 4), nn.Linear(8, 8)

    def forward(self, x):
        b, n, _ = x.shape
        y = self.conv(x.reshape(b * n, 3, 4, 4)).reshape(b, n, 8)
        return self.proj(y)[:, torch.tensor([3, 0, 2, 1])]


def test_a_conv_covering_its_cut_patches_is_a_linear_and_a_constant_index_a_selection():
    torch.manual_seed(0)
    model, x = PatchEmbed().eval(), np.random.default_rng(1).standard_normal((4, 4, 48))
    x = x.astype(np.float32)
    graph = capture(model, torch.from_numpy(x[:2]))
    ops = [n.op for n in graph.nodes]
    assert "conv2d" not in ops and ops.count("linear") == 2
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99


@pytest.mark.parametrize("name", ["Kimi_K25VisionModel", "LlavaOnevision15VisionModel"])
def test_survey_towers_with_a_scatter_or_a_class_token_run_bit_exact(name):
    # Kimi-K2.5 pools its merged tokens by index_add_ into zeros (a scatter selector);
    # LLaVA-OneVision-1.5 joins a class token to the patches and cuts it off (a cat and a
    # slice along the batch's axis of a one-sample trace: the sample's rows)
    from benchmarks.family_survey import build

    model, x, _ = build(name)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


@pytest.mark.parametrize("name", ["HunYuanVLVisionTransformer", "Cosmos3EdgeVisionModel",
                                  "Lfm3VlVisionModel", "VideoLlama3VisionModel",
                                  "Inkling2VisionModel"])
def test_towers_with_merger_convs_resizes_and_class_tokens_run_bit_exact(name):
    # HunYuan-VL: each image's merger conv at sizes from grid_thw.tolist(); Cosmos3-Edge: its
    # position table resized to the grid (a constant); LFM3-VL: a conv over each image's
    # tokens after a linear; VideoLLaMA3: its tokens bilinearly downsampled; Inkling-2: a
    # class token placed before each image's patches (index_put) and cut off (index)
    from benchmarks.family_survey import build

    model, x, _ = build(name)
    r = qasic.evaluate(model, x, calibration=x)  # simulator == golden reference
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class HandTower(nn.Module):
    """A packing tower as VLMs write one: (patches, 48) rows and a grid; a linear patch
    embedding, a class token placed before each image's patches (``index_put``), attention
    within each image (its part of the sequence, ``split`` by sizes from the grid), the class
    tokens cut off
    (a constant row index), then each image's tokens as a map (sizes from ``grid_thw.tolist()``)
    through a 2x2 merger conv (``spatial``) or a bilinear downsampling."""

    def __init__(self, merge: str) -> None:
        super().__init__()
        self.embed, self.out = nn.Linear(48, 16), nn.Linear(16, 16)
        self.cls = nn.Parameter(torch.randn(16))
        self.qkv = nn.Linear(16, 48)
        self.conv = nn.Conv2d(16, 16, 2, 2)
        self.merge = merge

    def attend(self, part):
        q, k, v = self.qkv(part).chunk(3, -1)
        return torch.softmax(q @ k.T / 4, -1) @ v

    def forward(self, pixel_values, grid_thw):
        n = pixel_values.shape[0]
        images = grid_thw.shape[0]
        index = torch.arange(n) + torch.repeat_interleave(
            torch.arange(1, images + 1), grid_thw.prod(-1))
        h = self.cls.repeat(n + images, 1)
        h[index] = self.embed(pixel_values)
        h = torch.cat([p + self.attend(p) for p in h.split((grid_thw.prod(-1) + 1).tolist())])
        h = h[index]
        maps = []
        for (_, rows, cols), part in zip(grid_thw.tolist(), h.split(grid_thw.prod(-1).tolist())):
            m = part.reshape(1, rows, cols, 16).permute(0, 3, 1, 2)
            m = self.conv(m) if self.merge == "conv" else nn.functional.interpolate(
                m, size=(rows // 2, cols // 2), mode="bilinear")
            maps.append(m.flatten(2).transpose(1, 2).reshape(-1, 16))
        return self.out(torch.cat(maps))


@pytest.mark.parametrize("merge", ["conv", "bilinear"])
def test_a_hand_written_packing_tower_runs_bit_exact(merge):
    torch.manual_seed(0)
    tower = HandTower(merge).eval()

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tower = tower

        def forward(self, x):
            b, n, d = x.shape
            out = self.tower(x.reshape(b * n, d), torch.tensor([[1, SIDE, SIDE]] * b))
            return out.reshape(b, -1, 16)

    model = Wrapper().eval()
    x = np.random.default_rng(0).standard_normal((2, SIDE * SIDE, 48)).astype(np.float32)
    graph = capture(model, torch.from_numpy(x))
    ops = [n.op for n in graph.nodes]
    assert ("conv2d" in ops) == (merge == "conv") and graph.input_layout != "NCL"
    assert graph.shapes[graph.output] == (4, 16)  # a 2x2 map of merged tokens per image
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


def test_a_model_packing_its_samples_unseen_is_refused_in_capture_in_one_line():
    # no tower qasic knows (no grid argument): traced at batch 2, its attention over the packed
    # (1, 2 x 4, D) sequence pairs the samples' rows
    class Packed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.out = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            b, n, d = x.shape
            h = self.lin(x).reshape(1, 1, b * n, d)
            a = nn.functional.scaled_dot_product_attention(h, h, h)
            return self.out(a.reshape(b, n, d))

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 4, 8)).astype(np.float32))
    with pytest.raises(UnsupportedOpError, match="packed into one sequence") as e:
        capture(Packed().eval(), x)
    assert "\n" not in str(e.value) and "scaled_dot_product_attention" in str(e.value)


def test_the_sample_check_runs_the_tower_three_times_in_eager():
    # the pair of the first two samples, the second alone, the first alone (its output reused
    # by the export check), then one trace: whatever the batch
    model = OneImage(_tower("Qwen3VLVisionModel"))
    calls = []
    model.tower.register_forward_pre_hook(lambda m, a, k: calls.append(1), with_kwargs=True)
    capture(model, torch.from_numpy(_patches(4)))
    assert len(calls) == 4

"""benchmarks/family_survey.py on one tiny model (BertModel): the harness builds it, runs it
through qasic.evaluate in a subprocess and writes a record with every key."""

import json

import pytest
import torch

from benchmarks import family_survey as fs

pytest.importorskip("transformers")


def test_one_model_gives_a_full_record(tmp_path):
    doc = fs.survey(["BertModel"], tmp_path, timeout=120, log=lambda m: None)
    assert json.loads((tmp_path / "family_survey.json").read_text()) == doc
    assert doc["schema"] == fs.SCHEMA and doc["records"]
    (rec,) = doc["records"]
    assert tuple(rec) == fs.RECORD_KEYS and rec["commit"] == doc["commit"]
    assert rec["name"] == "BertModel" and rec["status"] == "ok", rec["error"]
    assert rec["class"].endswith("BertModel") and rec["parameters"] > 0
    assert rec["bit_exact"] is True and rec["cosine"] > 0.99 and rec["cycles"] > 0
    assert rec["router_agreement"] is None  # no mixture of experts
    assert "BertModel" in fs.table(doc["records"])


def test_a_mixture_of_experts_records_the_router_agreement_of_the_graphs_it_evaluated():
    """``routing`` reads the graphs quantize_graph made while ``_graphs_seen`` was open (the
    float graph, the batch, the quantized graph): a tiny Mixtral's share of float picks kept
    (qasic.quant.router_agreement, tested there); a model without routed blocks None."""
    import numpy as np

    from qasic.quant import QuantConfig, moe
    from qasic.quant.quantize import quantize
    from qasic.quant.router_agreement import router_agreement
    from tests.quant.test_hf_llm import Logits, _ids
    from tests.quant.test_moe import _moe

    model, x = Logits(_moe("Mixtral", layers=1)), _ids(4)
    with fs._graphs_seen() as graphs:
        qg = quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig())
    fg, batch, seen = graphs
    assert seen is qg and np.array_equal(batch, x)
    share = fs.routing(model, graphs)
    assert share == router_agreement(fg, qg, x, [n for n, _ in moe.blocks(model)])
    assert 0.5 < share <= 1.0
    assert fs.routing(torch.nn.Linear(2, 2), graphs) is None


def test_a_missing_class_is_unavailable(monkeypatch):
    monkeypatch.setitem(fs.MODELS, "NoSuchModel", fs.MODELS["BertModel"])
    rec = fs.run_one("NoSuchModel")
    assert rec["status"] == "unavailable" and tuple(rec) == fs.RECORD_KEYS


def test_a_class_needing_a_package_not_installed_is_unavailable(monkeypatch):
    def build(name):  # transformers' requires_backends (DiNAT without natten, timm rows)
        raise ImportError("\nDinatModel requires the natten library but it was not found")
    monkeypatch.setattr(fs, "build", build)
    rec = fs.run_one("BertModel")
    assert (rec["status"], rec["stage"]) == ("unavailable", "build")
    assert rec["error"].startswith("DinatModel requires the natten library")


def test_video_rows_get_clips_and_a_backbone_its_deepest_map():
    assert fs.inputs("video", 32).shape == (fs.BATCH, fs.VIDEO_FRAMES, 3, 32, 32)
    model, x, _ = fs.build("HGNetV2Backbone")  # feature maps of stages 1 and 2: stage 2's
    assert tuple(model(torch.from_numpy(x)).shape) == (fs.BATCH, 64, 4, 4)


@pytest.mark.parametrize("name", ["MobileNetV1Model", "LevitModel", "DeiTModel"])
def test_the_reinit_keeps_outputs_of_order_one_and_is_deterministic(name):
    """HF's init left MobileNetV1's output at 7e-33 and LeViT's at 6e-9; the re-init's are
    O(1), the same on every build; DeiT's class and distillation tokens are drawn (HF: 0)."""
    import torch

    outs = []
    for _ in range(2):
        model, x, _ = fs.build(name)
        with torch.no_grad():
            outs.append(model(torch.from_numpy(x)).numpy())
    assert 0.5 < abs(outs[0]).max() < 20 and (outs[0] == outs[1]).all()
    if name == "DeiTModel":
        emb = model.model.embeddings
        assert 0.5 < float(emb.cls_token.std()) < 2 and 0.5 < float(emb.distillation_token.std())


def test_the_reinit_draws_routers_and_stacked_experts_at_unit_gain():
    """HF's normal(0.02) left Mixtral's experts 1/20 of a dense MLP (the cosine hid them): the
    router (E, D) and the stacked experts (E, out, in) are drawn with std 1 / sqrt(in)."""
    model, _, _ = fs.build("MixtralModel")
    block = model.model.layers[0].mlp
    for w in (block.gate.weight, block.experts.gate_up_proj, block.experts.down_proj):
        assert abs(float(w.detach().std()) * w.shape[-1] ** 0.5 - 1) < 0.05, w.shape
    mlp = fs.build("DbrxModel")[0].model.blocks[0].ffn.experts.mlp  # (E I, D) = (128, 64)
    for w, fan_in in ((mlp.w1, 64), (mlp.v1, 64), (mlp.w2, 32)):
        assert abs(float(w.detach().std()) * fan_in ** 0.5 - 1) < 0.1, w.shape


def test_a_decoder_also_generates_on_the_simulator_equal_to_the_reference(tmp_path):
    doc = fs.survey(["LlamaModel"], tmp_path, timeout=300, log=lambda m: None)
    (rec,) = doc["records"]
    assert rec["status"] == "ok" and rec["stage"] == "generate", rec["error"]
    assert rec["generate"] == "exact" and rec["decode_cycles"] > 0
    assert rec["decode"] == "kv_cache" and tuple(rec) == fs.RECORD_KEYS
    assert ("generate: 1 exact (0 by recomputation), 0 refused, 0 differ of 1 decoders"
            in fs.table(doc["records"]))


def test_a_task_head_runs_on_its_base_models_config(tmp_path):
    """``--heads``: BertForSequenceClassification on BertModel's config, its logits compared;
    written to head_survey.json, not family_survey.json."""
    assert fs.HEADS["BertForSequenceClassification"] == "BertModel"
    assert fs.spec("BertForSequenceClassification")[3] == {}  # no add_pooling_layer
    doc = fs.survey(["BertForSequenceClassification"], tmp_path, timeout=120,
                    log=lambda m: None, filename="head_survey.json")
    assert not (tmp_path / "family_survey.json").exists()
    assert json.loads((tmp_path / "head_survey.json").read_text()) == doc
    (rec,) = doc["records"]
    assert rec["status"] == "ok" and rec["bit_exact"] is True, rec["error"]
    assert rec["class"].endswith("BertForSequenceClassification") and rec["generate"] is None
    model, x, _ = fs.build("BertForSequenceClassification")
    assert tuple(model(__import__("torch").from_numpy(x)).shape) == (2, 2)  # (batch, labels)


def test_the_table_aligns_names_longer_than_twenty_characters():
    rec = {"status": "ok", "bit_exact": True, "cosine": 0.99, "cycles": 10, "wall_s": 1.0,
           "error_type": None, "error": None, "generate": None}
    rows = fs.table([{**rec, "name": "BertModel"},
                     {**rec, "name": "GraniteMoeHybridModel@mamba"}]).splitlines()
    assert len({row.index(" ok ") for row in rows[1:3]}) == 1
    assert rows[0].index("status") == rows[1].index(" ok ") + 1


def test_the_family_table_counts_each_status_and_generation_per_family():
    rec = {"status": "ok", "bit_exact": True, "generate": None}
    records = [{**rec, "family": "decoder", "generate": "exact"},
               {**rec, "family": "decoder", "generate": "refused: a dynamic mask"},
               {**rec, "family": "decoder", "status": "refused", "bit_exact": None},
               {**rec, "family": "vision", "bit_exact": False},
               {**rec, "family": "vision", "status": "timeout", "bit_exact": None}]
    rows = fs.family_table(records).splitlines()
    assert rows[2] == "| decoder | 3 | 2 | 1 | 0 | 0 | 1 of 2 |"
    assert rows[3] == "| vision | 2 | 0 | 0 | 0 | 1 | – |"  # ok but not bit-exact counts nowhere
    assert rows[4] == "| **all** | 5 | 2 | 1 | 0 | 1 | 1 of 2 |"


def test_a_row_of_another_library_builds_its_wrapper_around_its_layers():
    """x-transformers' rows: the layers class by its module path, its options, then the
    wrapper's; the tensor goes in alone and the logits come out (family other, generating)."""
    pytest.importorskip("x_transformers")
    import torch

    name = "TransformerWrapper@alibi"
    assert fs.spec(name)[:2] == ("other", "x_transformers.Decoder")
    assert fs.spec(name)[1] in fs.CAUSAL_LAYERS
    model, x, params = fs.build(name)
    layers = model.model.attn_layers
    assert type(layers).__name__ == "Decoder" and layers.causal and len(layers.layers) == 4
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    assert out.shape == (fs.BATCH, fs.SEQ_DEC, fs.VOCAB_DEC) and 0.5 < float(out.abs().max()) < 20
    assert params == sum(p.numel() for p in model.parameters())


def test_a_head_with_no_base_model_has_its_own_row():
    """UperNet, Depth Anything and VitPose have no base model in MODELS: their own rows
    (``_OWN``), a tiny ViT-like backbone given as a config dict."""
    import torch

    assert fs.HEADS["UperNetForSemanticSegmentation"] == ""
    family, config, kw, _, kind, size = fs.spec("UperNetForSemanticSegmentation")
    assert (family, config, kind, size) == ("vision", "UperNetConfig", "image", 32)
    assert kw["backbone_config"]["model_type"] == "beit"
    model, x, _ = fs.build("UperNetForSemanticSegmentation")
    assert tuple(model(torch.from_numpy(x)).shape) == (2, 2, 32, 32)  # logits at 32x32


def test_the_diffusion_rows_build_their_diffusers_classes_deterministically():
    """benchmarks/diffusion.py: each row's class exists in the installed diffusers; a DiT
    built twice gives the same O(1) sample of the latent's shape."""
    pytest.importorskip("diffusers")
    import torch

    rows = [n for n, row in fs.MODELS.items() if row[0] == "diffusion"]
    assert len(rows) == 26 and all(fs.model_class(n) is not None for n in rows)
    outs = []
    for _ in range(2):
        model, x, params = fs.build("DiTTransformer2DModel")
        with torch.no_grad():
            outs.append(model(torch.from_numpy(x)).numpy())
    assert x.shape == (2, 4, 8, 8) and outs[0].shape == x.shape and params > 0
    assert 0.5 < abs(outs[0]).max() < 20 and (outs[0] == outs[1]).all()


def test_a_partial_run_keeps_each_record_at_the_commit_it_ran_at(tmp_path, monkeypatch):
    import json

    old = {"schema": fs.SCHEMA, "commit": "aaaa", "records": [
        {"name": "BertModel", "status": "ok"}, {"name": "ViTModel", "status": "ok"}]}
    (tmp_path / "family_survey.json").write_text(json.dumps(old))
    monkeypatch.setattr(fs, "run_isolated", lambda name, timeout: {
        "name": name, "status": "refused", "error": "x", "wall_s": 0.0})
    monkeypatch.setattr(fs, "commit", lambda: ("bbbb", False))
    doc = fs.survey(["ViTModel"], tmp_path, log=lambda m: None)
    got = {r["name"]: (r["status"], r["commit"]) for r in doc["records"]}
    assert got == {"ViTModel": ("refused", "bbbb"), "BertModel": ("ok", "aaaa")}
    assert doc["commit"] == "bbbb"


def test_the_input_kinds_feed_what_a_class_takes_beside_its_pixels():
    """Siglip2's flattened patches come with a mask of ones and their square grid's shape;
    SegGPT's image is its own prompt image and prompt mask."""
    import torch

    x = torch.zeros(2, 16, 192)
    extra = fs._extra_inputs("patches", x)
    assert extra["spatial_shapes"].tolist() == [[4, 4], [4, 4]]
    mask = extra["pixel_attention_mask"]
    assert mask.shape == (2, 16) and bool(mask.all())
    image = torch.zeros(2, 3, 32, 32)
    assert all(v is image for v in fs._extra_inputs("image_prompt", image).values())
    model, x, _ = fs.build("Siglip2VisionModel")
    with torch.no_grad():
        assert x.shape == (2, 16, 192) and model(torch.from_numpy(x)).shape == (2, 16, 32)



def test_a_row_of_several_inputs_takes_each_under_its_forward_keyword():
    """Input kind ids_pad (BERT with a real padding mask): {input_ids, attention_mask}, sample
    b's last b * PAD_TAIL ids the pad id and its mask 0 there; the wrapper's forward names
    them in MULTI's order, so qasic.evaluate takes the dict as {forward parameter: batch}."""
    import inspect

    assert fs.spec("BertModel@pad")[4] == "ids_pad" and fs.MODELS["BertModel"][4] == "ids"
    model, x, _ = fs.build("BertModel@pad")
    assert list(x) == ["input_ids", "attention_mask"]
    assert list(inspect.signature(model.forward).parameters) == list(x)
    ids, mask = x["input_ids"], x["attention_mask"]
    assert mask[0].all() and mask[1].tolist() == [1] * (fs.SEQ_ENC - fs.PAD_TAIL) + [0] * 4
    assert (ids[1, -fs.PAD_TAIL:] == 0).all() and (ids[mask == 1] >= 3).all()  # Bert's pad 0
    assert tuple(fs.run_model(model, x).shape) == (fs.BATCH, fs.SEQ_ENC, 32)
    rec = fs.run_one("DistilBertModel@pad")
    assert rec["status"] == "ok" and rec["bit_exact"] is True, rec["error"]
    assert rec["input"] == "ids_pad" and rec["cosine"] > 0.99


def test_encoder_decoders_and_dual_encoders_return_one_tensor_a_sample():
    """ids_pair: encoder ids and DEC_IDS decoder ids, the decoder's last_hidden_state out; a
    dual encoder's text (ending in its eos) and image embeddings concatenated per sample."""
    model, x, _ = fs.build("T5Model")
    assert {k: v.shape for k, v in x.items()} == {
        "input_ids": (fs.BATCH, fs.SEQ_ENC), "decoder_input_ids": (fs.BATCH, fs.DEC_IDS)}
    assert tuple(fs.run_model(model, x).shape) == (fs.BATCH, fs.DEC_IDS, 32)
    model, x, _ = fs.build("CLIPModel")
    assert list(x) == ["input_ids", "pixel_values"] and (x["input_ids"][:, -1] == 99).all()
    out = fs.run_model(model, x)
    assert tuple(out.shape) == (fs.BATCH, 2 * 16)  # text_embeds | image_embeds, projected to 16
    norms = out.reshape(fs.BATCH, 2, 16).norm(dim=-1)  # each L2-normalized by CLIP
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_a_padded_rows_cosine_is_over_its_real_tokens():
    """ids_pad rows (BERT-like @pad): a padded position's output is no answer; the cosine is
    over the positions the attention mask keeps (DeBERTa@pad: 0.981 over all, 0.9996 real)."""
    import numpy as np

    x = fs.multi_inputs("ids_pad", 12)
    real = fs.REAL_TOKENS["ids_pad"](x)
    assert real.shape == (fs.BATCH, 12) and real[0].all() and real[1].sum() == 12 - fs.PAD_TAIL
    rng = np.random.default_rng(0)
    fp32 = rng.normal(size=(fs.BATCH, 12, 8))
    quant = fp32.copy()
    quant[~real] = -quant[~real]  # the padded positions' outputs opposite: no effect
    assert fs.real_cosine(quant, fp32, real) == pytest.approx(1.0)
    quant[0, 0] = 0.0  # a real token lost: counted
    assert fs.real_cosine(quant, fp32, real) < 0.999
    with pytest.raises(ValueError, match="no positions axis"):
        fs.real_cosine(quant[:, 0], fp32[:, 0], real)

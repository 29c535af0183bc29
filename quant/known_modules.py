"""Modules refused by name before capture, one row each: layers whose computation torch.export
would capture as something they are not.

Each row is a class name (as in the model's ``named_modules``) and the reason, in plain words
(or a function of the module giving the reason, None when its configuration is fine);
``check`` refuses the first such module in one line naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qasic.errors import UnsupportedOpError


def _nystrom_landmarks(module: Any) -> str | None:
    # transformers' modeling_nystromformer.py: NystromformerModel adds create_bidirectional_mask's
    # (batch, 1, S, S) mask to the (landmarks, S) scores of q_landmarks @ K^T (a padded batch
    # fails in transformers itself; an unpadded one runs only in eager, where the mask is None)
    if getattr(module, "num_landmarks", None) == getattr(module, "seq_len", None):
        return None
    return ("its landmark attention (num_landmarks < segment_means_seq_len) adds the (batch, 1, "
            "S, S) attention mask to (landmarks, S) scores, which fails when traced and in "
            "transformers for any padded batch; set num_landmarks = segment_means_seq_len "
            "(exact softmax attention)")


def _mambapy_pscan(module: Any) -> str | None:
    # mambapy's mamba.py / vim.py / jamba.py: selective_scan calls pscan (an in-place Blelloch
    # scan, A[..., 2::4] += ..., inside a torch.autograd.Function) whenever config.pscan, in
    # eval too; selective_scan_seq is the same recurrence, step by step
    config = getattr(module, "config", None)
    if getattr(config, "pscan", False) is not True or getattr(config, "use_cuda", False) \
            or not hasattr(module, "selective_scan_seq"):
        return None
    return ("mambapy's parallel scan (config.pscan=True: an in-place Blelloch scan in a "
            "torch.autograd.Function) writes activations in place, which a compiled program "
            "cannot follow; set pscan=False in its config (the sequential selective_scan_seq, "
            "the same function), which runs")


REFUSED: dict[str, str | Callable[[Any], str | None]] = {
    # transformers' modeling_mra.py: mra2_attention returns torch.zeros_like(query) when the
    # kernel is not loaded; get_block_idxes picks blocks by torch.topk of low-resolution scores
    "MraSelfAttention": (
        "MRA attention runs only in transformers' CUDA kernel (kernels-community/mra); "
        "without it transformers returns zeros for the attention (a model that is not MRA), "
        "and its blocks are chosen by a top-k of the scores (data-dependent routing)"),
    "NystromformerSelfAttention": _nystrom_landmarks,
    # transformers' modeling_vilt.py: ViltEmbeddings.visual_embed counts each image's valid
    # patches from pixel_mask (sums, nonzero, a Python loop over them) and orders the patches by
    # torch.multinomial, a random permutation on every call even with no padding
    "ViltEmbeddings": (
        "ViLT's visual_embed orders each image's patches at random on every forward "
        "(torch.multinomial over the valid patches pixel_mask counts, in a Python loop over "
        "their number) and no setting avoids it; a vision-language encoder that embeds its "
        "patches in order (BridgeTower, FLAVA, CLIPSeg's towers) runs"),
    # transformers' modeling_slanet.py / modeling_slanext.py (PaddleOCR's SLA head): a GRUCell
    # attention loop over at most max_text_length + 1 steps, each feeding back the argmax of the
    # step's structure scores as a one-hot, stopped when every table has emitted its end token
    **dict.fromkeys(("SLANetSLAHead", "SLANeXtSLAHead"), (
        "the table-structure head decodes greedily: each step feeds the argmax of the last "
        "step's scores back as a one-hot (a choice by value) and the loop stops when every "
        "table has emitted its end token (control flow on the values), and no setting avoids "
        "it; its backbone runs (SLANetBackbone, SLANeXtBackbone)")),
    # transformers' modeling_informer.py: InformerProbSparseAttention samples keys with
    # torch.randint in every forward and keeps the queries of a top-k of their sparsity measure
    "InformerProbSparseAttention": (
        "Informer's ProbSparse attention samples its keys at random in every forward "
        "(torch.randint) and attends from the queries a top-k of those samples picks; set "
        "attention_type='full' (InformerConfig) for full attention, which runs"),
    # transformers' modeling_timesfm.py (TimesFM 1.0): patched_pads marks the values equal
    # to config.pad_val, _timesfm_masked_mean_std picks the first patch with >= 3 unpadded
    # values by torch.argmax, _timesfm_shift_padded_seq rolls the position embeddings to the
    # first unpadded patch (argmax, then gather): both even for an all-zero padding input
    "TimesFmModel": (
        "TimesFM 1.0 marks every value of the series equal to its pad_val as padding, then "
        "takes its normalizing statistics from the first patch with at least 3 unpadded "
        "values and shifts its position embeddings to the first unpadded patch, both found "
        "by argmax over those marks (choices by value), and no setting avoids them; TimesFM "
        "2.5 (TimesFm2_5Model), which normalizes without them, runs"),
    # transformers' modeling_cpmant.py: segment = where(ids != 0, 2, 0), concatenated after
    # the prompt's; CpmAntSegmentPositionEmbedding's bucket is the relative position's where
    # query and key segments match, else query_segment * segment_types + key_segment; the
    # left-padding mask compares positions with the count of nonzero ids
    "CpmAntModel": (
        "CPM-Ant's position bias reads, per (query, key) pair, whether both ids are padding "
        "(its segment ids, ids != 0: a bias from two tokens' padding bits) and its padding "
        "mask counts the non-padding ids (left padding), and no setting avoids them; "
        "decoders whose bias is per position pair only (Llama, T5-style buckets) run"),
    **dict.fromkeys(("MambaBlock", "VMambaBlock"), _mambapy_pscan),
    # transformers' AutoformerAttention is not here: its auto-correlation runs over all delays
    # when its top-k keeps all of them, and is refused in one line otherwise, while capture
    # traces (qasic.quant.autocorrelation)
}


def check(model: Any) -> None:
    """Refuse ``model`` (an nn.Module) when one of its modules is in REFUSED."""
    named = getattr(model, "named_modules", None)
    if named is None:
        return
    for name, module in named():
        reason = REFUSED.get(type(module).__name__)
        reason = reason(module) if callable(reason) else reason
        if reason is not None:
            raise UnsupportedOpError(f"module {name!r} ({type(module).__name__}): {reason}; "
                                     "not supported")

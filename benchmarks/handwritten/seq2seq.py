"""Encoder-decoders as users write them for generation: a forward of two id inputs, the source
and the target (``forward(input_ids, decoder_input_ids)``, ``forward(src, tgt)``), returning the
target's logits; no [source | target] wrapper. T5, BART and Marian ForConditionalGeneration from
transformers configs (the padding mask computed from the source ids, as a user passes
``attention_mask``), PyTorch's translation tutorial (``nn.Transformer``, sequence-first,
``create_mask``) called from a batch-first forward of its two inputs, and a batch-first
``nn.Transformer`` with its own ``generate_square_subsequent_mask``. Small, random weights (the
weights scaled so that greedy tokens differ from step to step); qasic generate runs each: the
encoder once in the prefill, the cross-attention keys and values into DRAM states, a decode step
per token."""

import math

import numpy as np
import torch
import transformers
from torch import nn

from benchmarks.handwritten import Network
from benchmarks.handwritten.encoders import Seq2SeqTransformer, create_mask

VOCAB, SRC, TGT = 120, 12, 8


def pairs(source: str = "input_ids", target: str = "decoder_input_ids", batch: int = 8):
    """Calibration: source ids (batch, SRC) and target ids (batch, TGT), one array each, named
    after the forward's parameters."""
    def make():
        rng = np.random.default_rng(0)
        return {source: rng.integers(3, VOCAB, (batch, SRC)),
                target: rng.integers(3, VOCAB, (batch, TGT))}
    return make


def _scaled(model: nn.Module, gain: float) -> nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(gain)
    return model.eval()


class Generator(nn.Module):
    """A transformers encoder-decoder as forward(input_ids, decoder_input_ids) -> logits, its
    source's padding mask from the ids (``input_ids != pad``)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.pad = model, model.config.pad_token_id

    def forward(self, input_ids, decoder_input_ids):
        return self.model(input_ids=input_ids, attention_mask=input_ids.ne(self.pad),
                          decoder_input_ids=decoder_input_ids).logits


def t5_pair():
    torch.manual_seed(0)
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=48, d_kv=12, d_ff=96, num_layers=2,
                                num_heads=4, decoder_start_token_id=0)
    return Generator(_scaled(transformers.T5ForConditionalGeneration(cfg), 2.0)).eval()


def bart_pair():
    torch.manual_seed(0)
    cfg = transformers.BartConfig(
        vocab_size=VOCAB, d_model=48, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
        decoder_ffn_dim=96, max_position_embeddings=64)
    return Generator(_scaled(transformers.BartForConditionalGeneration(cfg), 4.0)).eval()


def marian_pair():
    torch.manual_seed(0)
    cfg = transformers.MarianConfig(  # sinusoidal positions, the pad id starts the target
        vocab_size=VOCAB, d_model=48, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
        decoder_ffn_dim=96, max_position_embeddings=64, pad_token_id=VOCAB - 1,
        decoder_start_token_id=VOCAB - 1)
    return Generator(_scaled(transformers.MarianMTModel(cfg), 4.0)).eval()


def t5_hf():
    """T5ForConditionalGeneration itself: forward(input_ids, attention_mask, decoder_input_ids),
    run with --output logits."""
    return t5_pair().model


def marian_hf():
    """MarianMTModel itself, as t5_hf."""
    return marian_pair().model


def masked(pad: int, batch: int = 8):
    """transformers' three inputs: source ids (half right-padded with ``pad``), their
    attention_mask (ids != pad), target ids."""
    def make():
        rng = np.random.default_rng(0)
        src = rng.integers(3, VOCAB - 1, (batch, SRC))
        src[:batch // 2, SRC - 3:] = pad
        return {"input_ids": src, "attention_mask": (src != pad).astype(np.int64),
                "decoder_input_ids": rng.integers(3, VOCAB - 1, (batch, TGT))}
    return make


class TutorialPair(nn.Module):
    """The translation tutorial's Seq2SeqTransformer and create_mask, called as its training
    loop calls them, from batch-first (src, tgt) ids."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, src, tgt):
        src, tgt = src.t(), tgt.t()
        src_mask, tgt_mask, src_padding_mask, tgt_padding_mask = create_mask(src, tgt)
        logits = self.model(src, tgt, src_mask, tgt_mask, src_padding_mask, tgt_padding_mask,
                            src_padding_mask)
        return logits.transpose(0, 1)


def tutorial_pair():
    torch.manual_seed(0)
    return TutorialPair(_scaled(Seq2SeqTransformer(2, 2, 48, 4, VOCAB, VOCAB,
                                                   dim_feedforward=96), 2.0)).eval()


class BatchFirstTranslator(nn.Module):
    """nn.Transformer(batch_first=True): sinusoidal positions, the causal mask from
    nn.Transformer.generate_square_subsequent_mask, the source's key padding mask for the
    encoder and the cross-attention."""

    def __init__(self, vocab=VOCAB, d=48, heads=4, layers=2, pad=1, maxlen=64):
        super().__init__()
        self.pad, self.d = pad, d
        self.src_emb, self.tgt_emb = nn.Embedding(vocab, d), nn.Embedding(vocab, d)
        pos = torch.arange(maxlen).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(maxlen, d)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe)
        self.transformer = nn.Transformer(d, heads, layers, layers, dim_feedforward=2 * d,
                                          dropout=0.1, batch_first=True)
        self.out = nn.Linear(d, vocab)

    def embed(self, emb, ids):
        return emb(ids) * math.sqrt(self.d) + self.pe[:ids.size(1)]

    def forward(self, src, tgt):
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
        src_pad = src == self.pad
        out = self.transformer(self.embed(self.src_emb, src), self.embed(self.tgt_emb, tgt),
                               tgt_mask=tgt_mask, src_key_padding_mask=src_pad,
                               memory_key_padding_mask=src_pad, tgt_is_causal=True)
        return self.out(out)


def batch_first_translator():
    torch.manual_seed(0)
    return _scaled(BatchFirstTranslator(), 1.5)


class Speech(nn.Module):
    """Whisper as forward(input_features, decoder_input_ids) -> logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_features, decoder_input_ids):
        return self.model(input_features=input_features,
                          decoder_input_ids=decoder_input_ids).logits


def whisper_pair():
    torch.manual_seed(0)
    cfg = transformers.WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=16, d_model=48, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
        decoder_ffn_dim=96, max_source_positions=16, max_target_positions=32,
        decoder_start_token_id=1, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return Speech(_scaled(transformers.WhisperForConditionalGeneration(cfg), 2.0)).eval()


def speech(batch: int = 8):
    """Calibration: log-mel-like features (batch, 16 mel bins, 32 frames), target ids."""
    def make():
        rng = np.random.default_rng(0)
        return {"input_features": rng.standard_normal((batch, 16, 32)).astype(np.float32),
                "decoder_input_ids": rng.integers(3, VOCAB, (batch, TGT))}
    return make


SOURCE = (5, 17, 33, 2, 9, 40, 41, 42, 43, 44, 45, 46)

NETWORKS = (
    Network("t5_pair", "T5 from a transformers config as forward(input_ids, "
            "decoder_input_ids), attention_mask=input_ids.ne(pad)", "t5_pair", pairs(),
            prompt=SOURCE, tokens=6, decoder_start=(0,)),
    Network("bart_pair", "BART from a transformers config as forward(input_ids, "
            "decoder_input_ids), attention_mask=input_ids.ne(pad)", "bart_pair", pairs(),
            prompt=SOURCE, tokens=6, decoder_start=(2,)),
    Network("marian_pair", "MarianMT from a transformers config (sinusoidal positions) as "
            "forward(input_ids, decoder_input_ids), attention_mask=input_ids.ne(pad)",
            "marian_pair", pairs(), prompt=SOURCE, tokens=6, decoder_start=(VOCAB - 1,)),
    Network("t5_hf", "T5ForConditionalGeneration itself: forward(input_ids, attention_mask, "
            "decoder_input_ids), --output logits, the mask the source's padding", "t5_hf",
            masked(0), prompt=SOURCE[:9], tokens=6, output="logits"),
    Network("marian_hf", "MarianMTModel itself: forward(input_ids, attention_mask, "
            "decoder_input_ids), --output logits, the mask the source's padding", "marian_hf",
            masked(VOCAB - 1), prompt=SOURCE[:9], tokens=6, output="logits"),
    Network("tutorial_pair", "PyTorch's translation tutorial (nn.Transformer, sequence-first, "
            "create_mask) called from a batch-first forward(src, tgt)", "tutorial_pair",
            pairs("src", "tgt"), prompt=SOURCE, tokens=6, decoder_start=(2,)),
    Network("batch_first_translator", "nn.Transformer(batch_first=True), "
            "generate_square_subsequent_mask, the source's key padding mask; forward(src, tgt)",
            "batch_first_translator", pairs("src", "tgt"), prompt=SOURCE, tokens=6,
            decoder_start=(2,)),
    Network("whisper_pair", "Whisper from a transformers config as forward(input_features, "
            "decoder_input_ids): log-mel features (16, 32) in", "whisper_pair", speech(),
            tokens=6, source_sample=0),
)

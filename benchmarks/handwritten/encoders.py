"""Encoders and encoder-decoders written by hand (or built from transformers configs in a
wrapper, as users do): BART and T5 behind a [source | target] wrapper, PyTorch's translation
tutorial (``nn.Transformer``), a BERT-style sentence classifier, a Perceiver (lucidrains'
perceiver-pytorch) and a T5-style encoder whose relative position buckets are written by hand.
Small, random weights; ids (batch, T) in."""

import math

import torch
import torch.nn.functional as F
import transformers
from einops import rearrange, repeat
from torch import nn

from benchmarks.handwritten import Network, ids

# --- BART and T5 from transformers configs: ids [source | target] in, target logits out ------


class Seq2Seq(nn.Module):
    """source ids and target ids in one tensor (batch, S + T): logits over the target."""

    def __init__(self, model, s):
        super().__init__()
        self.model, self.s = model, s

    def forward(self, ids):
        return self.model(input_ids=ids[:, :self.s], decoder_input_ids=ids[:, self.s:]).logits


def bart():
    torch.manual_seed(0)
    cfg = transformers.BartConfig(
        vocab_size=120, d_model=48, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
        decoder_ffn_dim=96, max_position_embeddings=64)
    return Seq2Seq(transformers.BartForConditionalGeneration(cfg).eval(), 12)


def t5():
    torch.manual_seed(0)
    cfg = transformers.T5Config(
        vocab_size=120, d_model=48, d_kv=12, d_ff=96, num_layers=2, num_decoder_layers=2,
        num_heads=4, decoder_start_token_id=0)
    return Seq2Seq(transformers.T5ForConditionalGeneration(cfg).eval(), 12)


# --- PyTorch's "Language Translation with nn.Transformer" tutorial (sequence-first) ----------

PAD_IDX = 1


class TutPositionalEncoding(nn.Module):
    def __init__(self, emb_size, dropout, maxlen=64):
        super().__init__()
        den = torch.exp(- torch.arange(0, emb_size, 2) * math.log(10000) / emb_size)
        pos = torch.arange(0, maxlen).reshape(maxlen, 1)
        pos_embedding = torch.zeros((maxlen, emb_size))
        pos_embedding[:, 0::2] = torch.sin(pos * den)
        pos_embedding[:, 1::2] = torch.cos(pos * den)
        pos_embedding = pos_embedding.unsqueeze(-2)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pos_embedding", pos_embedding)

    def forward(self, token_embedding):
        return self.dropout(token_embedding + self.pos_embedding[:token_embedding.size(0), :])


class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, emb_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_size)
        self.emb_size = emb_size

    def forward(self, tokens):
        return self.embedding(tokens.long()) * math.sqrt(self.emb_size)


class Seq2SeqTransformer(nn.Module):
    def __init__(self, num_encoder_layers, num_decoder_layers, emb_size, nhead, src_vocab_size,
                 tgt_vocab_size, dim_feedforward=512, dropout=0.1):
        super().__init__()
        self.transformer = nn.Transformer(
            d_model=emb_size, nhead=nhead, num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers, dim_feedforward=dim_feedforward,
            dropout=dropout)
        self.generator = nn.Linear(emb_size, tgt_vocab_size)
        self.src_tok_emb = TokenEmbedding(src_vocab_size, emb_size)
        self.tgt_tok_emb = TokenEmbedding(tgt_vocab_size, emb_size)
        self.positional_encoding = TutPositionalEncoding(emb_size, dropout=dropout)

    def forward(self, src, trg, src_mask, tgt_mask, src_padding_mask, tgt_padding_mask,
                memory_key_padding_mask):
        src_emb = self.positional_encoding(self.src_tok_emb(src))
        tgt_emb = self.positional_encoding(self.tgt_tok_emb(trg))
        outs = self.transformer(src_emb, tgt_emb, src_mask, tgt_mask, None, src_padding_mask,
                                tgt_padding_mask, memory_key_padding_mask)
        return self.generator(outs)


def generate_square_subsequent_mask(sz):
    mask = (torch.triu(torch.ones((sz, sz))) == 1).transpose(0, 1)
    return mask.float().masked_fill(mask == 0, float("-inf")).masked_fill(mask == 1, 0.0)


def create_mask(src, tgt):
    src_seq_len, tgt_seq_len = src.shape[0], tgt.shape[0]
    tgt_mask = generate_square_subsequent_mask(tgt_seq_len)
    src_mask = torch.zeros((src_seq_len, src_seq_len)).type(torch.bool)
    src_padding_mask = (src == PAD_IDX).transpose(0, 1)
    tgt_padding_mask = (tgt == PAD_IDX).transpose(0, 1)
    return src_mask, tgt_mask, src_padding_mask, tgt_padding_mask


class Translator(nn.Module):
    """The tutorial's model and create_mask behind one batch-first ids input [source | target]."""

    def __init__(self, model, s):
        super().__init__()
        self.model, self.s = model, s

    def forward(self, ids):
        src, tgt = ids[:, :self.s].t(), ids[:, self.s:].t()
        src_mask, tgt_mask, src_padding_mask, tgt_padding_mask = create_mask(src, tgt)
        logits = self.model(src, tgt, src_mask, tgt_mask, src_padding_mask, tgt_padding_mask,
                            src_padding_mask)
        return logits.transpose(0, 1)


def nn_transformer():
    torch.manual_seed(0)
    return Translator(Seq2SeqTransformer(2, 2, 48, 4, 120, 120, dim_feedforward=96).eval(), 12)


# --- a BERT-style sentence classifier by hand: word + position + token-type embeddings,
# post-LN layers, the additive padding mask, a tanh pooler over [CLS] --------------------------


class BertEmbeddings(nn.Module):
    def __init__(self, vocab, d, max_pos=64, type_vocab=2):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_pos, d)
        self.token_type_embeddings = nn.Embedding(type_vocab, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)
        self.dropout = nn.Dropout(0.1)
        self.register_buffer("position_ids", torch.arange(max_pos).expand((1, -1)),
                             persistent=False)

    def forward(self, input_ids, token_type_ids=None):
        seq_length = input_ids.size(1)
        position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:
            token_type_ids = torch.zeros(input_ids.size(), dtype=torch.long)
        embeddings = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
                      + self.position_embeddings(position_ids))
        return self.dropout(self.LayerNorm(embeddings))


class BertLayer(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_out, self.attn_norm = nn.Linear(d, d), nn.LayerNorm(d, eps=1e-12)
        self.intermediate, self.output = nn.Linear(d, ff), nn.Linear(ff, d)
        self.out_norm = nn.LayerNorm(d, eps=1e-12)

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.h, self.hd)
        return x.view(new_x_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        q = self.transpose_for_scores(self.query(hidden_states))
        k = self.transpose_for_scores(self.key(hidden_states))
        v = self.transpose_for_scores(self.value(hidden_states))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hd) + attention_mask
        probs = nn.functional.softmax(scores, dim=-1)
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        context = context.view(context.size()[:-2] + (self.h * self.hd,))
        h = self.attn_norm(self.attn_out(context) + hidden_states)
        return self.out_norm(self.output(F.gelu(self.intermediate(h))) + h)


class BertClassifier(nn.Module):
    def __init__(self, vocab=120, d=64, heads=4, ff=128, n=2, num_labels=3):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, d)
        self.layers = nn.ModuleList(BertLayer(d, heads, ff) for _ in range(n))
        self.pooler = nn.Linear(d, d)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(d, num_labels)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        if attention_mask is None:
            attention_mask = (input_ids != 0).long()
        extended = attention_mask[:, None, None, :].to(torch.float32)
        extended = (1.0 - extended) * -10000.0
        h = self.embeddings(input_ids, token_type_ids)
        for layer in self.layers:
            h = layer(h, extended)
        pooled = torch.tanh(self.pooler(h[:, 0]))
        return self.classifier(self.dropout(pooled))


def bert_classifier():
    torch.manual_seed(0)
    return BertClassifier().eval()


# --- lucidrains' perceiver-pytorch: latents cross-attend to the inputs, heads folded into the
# batch by einops, GEGLU feed-forwards, a mean over the latents ---------------------------------


class PreNorm(nn.Module):
    def __init__(self, dim, fn, context_dim=None):
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None

    def forward(self, x, **kwargs):
        x = self.norm(x)
        if self.norm_context is not None:
            kwargs.update(context=self.norm_context(kwargs["context"]))
        return self.fn(x, **kwargs)


class GEGLU(nn.Module):
    def forward(self, x):
        x, gates = x.chunk(2, dim=-1)
        return x * F.gelu(gates)


class PerceiverFF(nn.Module):
    def __init__(self, dim, mult=2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mult * 2), GEGLU(),
                                 nn.Linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class PerceiverAttention(nn.Module):
    def __init__(self, query_dim, context_dim=None, heads=4, dim_head=16):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = context_dim if context_dim is not None else query_dim
        self.scale = dim_head ** -0.5
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(context_dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, query_dim)

    def forward(self, x, context=None):
        h = self.heads
        q = self.to_q(x)
        context = context if context is not None else x
        k, v = self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> (b h) n d", h=h) for t in (q, k, v))
        sim = torch.einsum("b i d, b j d -> b i j", q, k) * self.scale
        attn = sim.softmax(dim=-1)
        out = torch.einsum("b i j, b j d -> b i d", attn, v)
        out = rearrange(out, "(b h) n d -> b n (h d)", h=h)
        return self.to_out(out)


class Perceiver(nn.Module):
    def __init__(self, vocab=120, input_dim=48, max_len=64, num_latents=16, latent_dim=64,
                 depth=2, self_per_cross=1, num_classes=5):
        super().__init__()
        self.token_emb = nn.Embedding(vocab, input_dim)
        self.pos_emb = nn.Embedding(max_len, input_dim)
        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim))
        self.layers = nn.ModuleList([])
        for _ in range(depth):
            self_attns = nn.ModuleList([nn.ModuleList([
                PreNorm(latent_dim, PerceiverAttention(latent_dim)),
                PreNorm(latent_dim, PerceiverFF(latent_dim))]) for _ in range(self_per_cross)])
            self.layers.append(nn.ModuleList([
                PreNorm(latent_dim, PerceiverAttention(latent_dim, input_dim, heads=1,
                                                       dim_head=64), context_dim=input_dim),
                PreNorm(latent_dim, PerceiverFF(latent_dim)),
                self_attns]))
        self.to_logits = nn.Sequential(nn.LayerNorm(latent_dim), nn.Linear(latent_dim,
                                                                           num_classes))

    def forward(self, input_ids):
        b, n = input_ids.shape
        data = self.token_emb(input_ids) + self.pos_emb(torch.arange(n))
        x = repeat(self.latents, "n d -> b n d", b=b)
        for cross_attn, cross_ff, self_attns in self.layers:
            x = cross_attn(x, context=data) + x
            x = cross_ff(x) + x
            for self_attn, self_ff in self_attns:
                x = self_attn(x) + x
                x = self_ff(x) + x
        return self.to_logits(x.mean(dim=1))  # Reduce('b n d -> b d', 'mean')


def perceiver():
    torch.manual_seed(0)
    return Perceiver().eval()


# --- a T5-style encoder by hand: relative position buckets (mesh-tensorflow's formula) into a
# learned per-head bias shared by the layers, RMS norm without mean, no score scaling ----------


def relative_position_bucket(relative_position, bidirectional=True, num_buckets=32,
                             max_distance=128):
    ret = 0
    n = -relative_position
    if bidirectional:
        num_buckets //= 2
        ret += (n < 0).long() * num_buckets
        n = torch.abs(n)
    else:
        n = torch.max(n, torch.zeros_like(n))
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)).long()
    val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
    ret += torch.where(is_small, n, val_if_large)
    return ret


class T5Norm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


class T5EncoderLayer(nn.Module):
    def __init__(self, d, heads, d_kv, d_ff):
        super().__init__()
        self.h, self.d_kv = heads, d_kv
        self.norm1, self.norm2 = T5Norm(d), T5Norm(d)
        self.q = nn.Linear(d, heads * d_kv, bias=False)
        self.k = nn.Linear(d, heads * d_kv, bias=False)
        self.v = nn.Linear(d, heads * d_kv, bias=False)
        self.o = nn.Linear(heads * d_kv, d, bias=False)
        self.wi = nn.Linear(d, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d, bias=False)

    def forward(self, x, position_bias):
        B, T, _ = x.shape
        y = self.norm1(x)
        q, k, v = (lin(y).view(B, T, self.h, self.d_kv).transpose(1, 2)
                   for lin in (self.q, self.k, self.v))
        scores = torch.matmul(q, k.transpose(3, 2)) + position_bias  # T5: no 1/sqrt(d) scaling
        attn = F.softmax(scores.float(), dim=-1).type_as(scores)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.o(out)
        return x + self.wo(F.relu(self.wi(self.norm2(x))))


class T5Encoder(nn.Module):
    def __init__(self, vocab=120, d=48, heads=4, d_kv=12, d_ff=96, n=2, num_buckets=32,
                 num_classes=4):
        super().__init__()
        self.num_buckets = num_buckets
        self.embed = nn.Embedding(vocab, d)
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)
        self.layers = nn.ModuleList(T5EncoderLayer(d, heads, d_kv, d_ff) for _ in range(n))
        self.final_layer_norm = T5Norm(d)
        self.head = nn.Linear(d, num_classes)

    def compute_bias(self, qlen, klen):
        context_position = torch.arange(qlen, dtype=torch.long)[:, None]
        memory_position = torch.arange(klen, dtype=torch.long)[None, :]
        relative_position = memory_position - context_position
        rp_bucket = relative_position_bucket(relative_position, bidirectional=True,
                                             num_buckets=self.num_buckets)
        values = self.relative_attention_bias(rp_bucket)  # (qlen, klen, heads)
        return values.permute([2, 0, 1]).unsqueeze(0)  # (1, heads, qlen, klen)

    def forward(self, input_ids):
        T = input_ids.shape[1]
        x = self.embed(input_ids)
        bias = self.compute_bias(T, T)
        for layer in self.layers:
            x = layer(x, bias)
        return self.head(self.final_layer_norm(x).mean(1))


def t5_encoder():
    torch.manual_seed(0)
    return T5Encoder().eval()


NETWORKS = (
    Network("bart", "BART from a transformers config behind a [source | target] wrapper",
            "bart", ids(120, 8, 20), prompt=(5, 17, 33, 2, 9, 40, 41, 42, 43, 44, 45, 46),
            tokens=6, decoder_start=(2,)),
    Network("t5", "T5 from a transformers config behind a [source | target] wrapper", "t5",
            ids(120, 8, 20), prompt=(5, 17, 33, 2, 9, 40, 41, 42, 43, 44, 45, 46), tokens=6,
            decoder_start=(0,)),
    Network("nn_transformer", "PyTorch's translation tutorial (nn.Transformer, sequence-first, "
            "create_mask: causal float mask, key padding masks of PAD_IDX)", "nn_transformer",
            ids(120, 8, 20), prompt=(5, 17, 33, 2, 9, 40, 41, 42, 43, 44, 45, 46), tokens=6,
            decoder_start=(2,)),
    Network("bert_classifier", "a BERT-style sentence classifier by hand (token-type embeddings, "
            "(1 - mask) * -10000 padding mask, post-LN, tanh pooler over [CLS])",
            "bert_classifier", ids(120, 16, 24)),
    Network("perceiver", "lucidrains' perceiver-pytorch (latents cross-attend to token "
            "embeddings, einops heads folded in the batch, GEGLU, mean over latents)",
            "perceiver", ids(120, 16, 32)),
    Network("t5_encoder", "a T5-style encoder by hand (relative position buckets by log / "
            "where / min into a per-head bias, RMS norm, unscaled scores), mean-pooled head",
            "t5_encoder", ids(120, 16, 24)),
)

"""The rewrites capture applies to an exported graph before walking it, as one table: a row
per rewrite, in the order they run, each naming the module that owns it and the forms it
turns into ones the walk lowers.

Each rewrite is a pure function of the fx graph (and the names of the user inputs, for those
that must tell an input from a constant); each leaves a graph it does not concern unchanged.
A new graph rewrite is a new row here, never another call nested in ``torch_export``; it
makes its copy of the graph with ``quant.fxnodes``: ``rewrite_matches`` (a matcher, and a
builder for each node matched) or ``rebuild`` (a replace for every node), not a loop of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import fx

from qasic.quant import (
    adaptive_max,
    addcmul,
    alltopk,
    any_reduce,
    batch_parts,
    cat_linear,
    channel_expand,
    channel_norm,
    channel_select,
    chomp,
    column_stack,
    column_tables,
    compare_pair,
    complex_rope,
    const_left,
    constant_rows,
    conv3d_factored,
    convt3d,
    cumsum_axis,
    einsum,
    embedding_bag,
    empty_cat,
    expert_conv,
    extremes,
    fftconv,
    fill_stack,
    flips,
    fourier,
    glu,
    hard_assign,
    heinsen_scan,
    id_views,
    keepdim,
    length_norm,
    logsoftmax,
    map_stack,
    masked_max,
    matrix_rope,
    merged_rows,
    min_reduce,
    modconv,
    movedim,
    multi_index,
    narrow,
    one_hot,
    pair_perm,
    pool3d,
    pool_pad,
    rel_shift,
    selects,
    spectral,
    stack_reduce,
    stack_select,
    table_index,
    token_gather,
    token_mix,
    topk_select,
    unfold,
    unit_norm,
    unpool,
    value_pad,
    variance,
    vector_norm,
    whole_copy,
    writeback,
    zero_cat,
    zero_product,
)


@dataclass(frozen=True)
class Rewrite:
    name: str
    does: str
    apply: Callable[[fx.Graph, set[str]], fx.Graph]  # (graph, user input names) -> graph


def _graph_only(fn: Callable[[fx.Graph], fx.Graph]) -> Callable[[fx.Graph, set[str]], fx.Graph]:
    return lambda graph, users: fn(graph)


REWRITES: tuple[Rewrite, ...] = (
    Rewrite("narrow", "narrow(x, dim, start, length) and an index_select by a constant "
            "arange(a, b) become the slice they are (Mega's conv1d_fft)",
            _graph_only(narrow.decompose)),
    Rewrite("batch_parts", "parts concatenated along the batch, run through per-sample ops "
            "and split back into the same parts, run each through its own copy of the ops "
            "(RAFT's feature encoder of both frames)", _graph_only(batch_parts.decompose)),
    Rewrite("column_tables", "a piecewise function of each element of an activation along a "
            "new last axis of constant tables shared by the channels (efficient-kan's B-spline "
            "bases from (x >= grid[:, :-1]) & (x < grid[:, 1:])) becomes the cat of its "
            "columns, each a chain of scalar ops of x (one table each)", column_tables.decompose),
    Rewrite("empty_cat", "parts of no elements dropped from a cat (segmentation_models_pytorch"
            "'s dummy stride-2 feature, torch.empty(B, 0, H, W), under a U-Net's skip)",
            _graph_only(empty_cat.decompose)),
    Rewrite("zero_cat", "zeros concatenated at the ends of an activation along its length, "
            "height or width become the zero pad they are (the TasNet family's pad_signal: "
            "cat([zeros, x, zeros], 2))", _graph_only(zero_cat.decompose)),
    Rewrite("channel_select", "an index_select of an image's channels by a constant index "
            "becomes the 1x1 conv by one-hot rows it is (pytorchcv's CondenseNet; after narrow)",
            channel_select.decompose),
    Rewrite("token_mix", "a constant (T, T) matrix times an activation's token axis, A @ x, "
            "becomes the linear over the positions between transposes (the Attention Free "
            "Transformer's exp(w_bias) @ (exp(K) * V): a causal one generates)",
            token_mix.decompose),
    Rewrite("writeback", "a slice updated in place becomes the cat it makes",
            _graph_only(writeback.decompose)),
    Rewrite("stack_select", "a stack read back by index (xLSTM's sLSTM states: stack((y, c, n, "
            "m)) then unbind) reads the operand itself, each keeping its own encoding",
            _graph_only(stack_select.decompose)),
    Rewrite("addcmul", "addcmul / addcdiv become their add and product / quotient (MEGA)",
            _graph_only(addcmul.decompose)),
    Rewrite("pool3d", "a global AdaptiveAvgPool3d becomes the mean of the flattened clip, "
            "a tiling MaxPool3d the frames' max_pool2d and a maximum over time (before extremes), "
            "a nearest 3-D upsampling repeats along each axis (a 3-D U-Net)",
            _graph_only(pool3d.decompose)),
    Rewrite("adaptive_max", "an adaptive max pool whose input sizes are multiples of its "
            "output sizes becomes the tiling max pool it is (a global one: pytorchcv's DPN "
            "head)", _graph_only(adaptive_max.decompose)),
    Rewrite("channel_expand", "a (1, H, W) map expanded over the channels and read only by "
            "add/sub/mul that broadcast it anyway becomes the map (pytorchcv's BAM gates)",
            _graph_only(channel_expand.decompose)),
    Rewrite("extremes", "a maximum / minimum of two activations becomes y + relu(x - y) "
            "(xLSTM's stabilizer)", extremes.decompose),
    Rewrite("stack_reduce", "a sum or mean over the axis a stack just made becomes the adds "
            "of its parts (MONAI's RegUNet: the sum of a stack of channel halves)",
            _graph_only(stack_reduce.decompose)),
    Rewrite("map_stack", "a stack of (N, C, H, W) maps on a new axis 1 becomes the concat of "
            "the maps unsqueezed there (timm's SelectiveKernel; after stack_reduce)",
            _graph_only(map_stack.decompose)),
    Rewrite("min_reduce", "a minimum over axes (amin, min.dim's values) becomes the negated "
            "maximum of the negation (PP-DocLayout V4's box widths)",
            _graph_only(min_reduce.decompose)),
    Rewrite("logsoftmax", "a log_softmax over the last axis becomes x - log(sum(exp(x)))",
            _graph_only(logsoftmax.decompose)),
    Rewrite("pool_pad", "a pad with -inf read only by max pools becomes the replicate pad it "
            "equals there (timm's MaxPool2dSame: TensorFlow's asymmetric 'same' padding; "
            "before value_pad)", _graph_only(pool_pad.decompose)),
    Rewrite("value_pad", "a constant pad with a non-zero value becomes the zero pad plus the "
            "constant of the padded positions (EfficientViT's ones column)",
            _graph_only(value_pad.decompose)),
    Rewrite("compare_pair", "a comparison of two float activations becomes their difference's "
            "with 0 (CenterNet's max-pool peaks, hmax == heat)",
            _graph_only(compare_pair.decompose)),
    Rewrite("convt3d", "a ConvTranspose3d becomes the Conv3d of its zero-stuffed input and "
            "flipped weight (a 3-D U-Net's upsampling; before conv3d_factored)",
            _graph_only(convt3d.decompose)),
    Rewrite("conv3d_factored", "a Conv3d of a spatial (1, kh, kw) or temporal (kt, 1, 1) "
            "kernel becomes the Conv2d of frames in the batch or of (T, H W) it is (R(2+1)D), "
            "any other the sum of its time taps' spatial convs (C3D)",
            _graph_only(conv3d_factored.decompose)),
    Rewrite("selects", "a selection of samples by a constant mask resolved", selects.decompose),
    Rewrite("constant_rows", "constant rows selected from a slice of the batch axis are that "
            "constant (TimeSformer's class tokens)", constant_rows.decompose),
    Rewrite("embedding_bag", "a bag lookup of fixed-size bags (EmbeddingBag of 2-D ids) becomes "
            "an embedding and a sum, mean or max over the bag",
            _graph_only(embedding_bag.decompose)),
    Rewrite("multi_index", "an index by constant indices on adjacent axes (DLRM's x[:, li, lj]) "
            "becomes one index over those axes merged", multi_index.decompose),
    Rewrite("flips", "a flip of per-sample axes becomes a product by the reversal matrix "
            "(N-BEATS's x.flip(dims=(1,)))", _graph_only(flips.decompose)),
    Rewrite("table_index", "a weight table indexed by ids, W[ids], becomes the embedding it is "
            "(RecurrentGemma's Embedder.encode)", table_index.decompose),
    Rewrite("one_hot", "F.one_hot(ids, n) becomes an embedding of eye(n) (a character CNN's "
            "input)", _graph_only(one_hot.decompose)),
    Rewrite("variance", "a var / std over axis 1 of (batch, T, C) becomes its means "
            "(thuml's instance normalisation over the time steps)",
            _graph_only(variance.decompose)),
    Rewrite("chomp", "a Conv1d padded on both sides and chomped on the right becomes the "
            "left-padded causal conv it is (locuslab's TCN)", _graph_only(chomp.decompose)),
    Rewrite("merged_rows", "a linear of rows merged from the leading axes and viewed back "
            "becomes the linear over the last axis (CRNN's sequence-first BidirectionalLSTM)",
            _graph_only(merged_rows.decompose)),
    Rewrite("fill_stack", "a buffer filled position by position (o = zeros_like(v); "
            "o[:, :, i] = step_i: fla's naive GLA and delta rule, RecurrentGemma's rnn_scan) "
            "becomes one concat over the last axis between transposes",
            _graph_only(fill_stack.decompose)),
    Rewrite("heinsen_scan", "Heinsen's log-space scan exp(cumsum(lc) + logcumsumexp(lv - "
            "cumsum(lc))) becomes the recurrence h_t = exp(lc_t) h_(t-1) + exp(lv_t) it is "
            "(minGRU / minLSTM)", _graph_only(heinsen_scan.decompose)),
    Rewrite("cumsum_axis", "a cumsum along a middle axis (Based's head-major running sums "
            "(k * v).cumsum(dim=2)) becomes the cumsum along axis 1 between permutes",
            _graph_only(cumsum_axis.decompose)),
    Rewrite("column_stack", "a cat of three or more columns along a middle axis (a hand-written "
            "recurrence's outputs: xLSTM's cat(hs, dim=-2)) becomes one concat over the last axis "
            "between transposes", _graph_only(column_stack.decompose)),
    Rewrite("rel_shift", "Transformer-XL's _rel_shift of relative scores einsum(q, r) (zero "
            "pad, view, drop a row, view back) becomes the einsum of r indexed per (query, key) "
            "(before einsum)", rel_shift.decompose),
    Rewrite("einsum", "an einsum of two operands becomes permutes, reshapes and a matmul",
            _graph_only(einsum.decompose)),
    Rewrite("unfold", "patch unfolds become views and permutes", _graph_only(unfold.decompose)),
    Rewrite("fourier", "FNet's Fourier transforms become matmuls",
            _graph_only(fourier.decompose)),
    Rewrite("fftconv", "a causal convolution by FFT of a constant kernel (S4's and Hyena's "
            "fftconv, MEGA's EMA) becomes the depthwise Conv1d it is", fftconv.decompose),
    Rewrite("pair_perm", "a permutation inside the last axis by view / transpose / reshape "
            "becomes an index of that axis (DeepSeek's rope pairs)",
            _graph_only(pair_perm.decompose)),
    Rewrite("complex_rope", "complex RoPE becomes real products",
            _graph_only(complex_rope.decompose)),
    Rewrite("keepdim", "x[:, i].unsqueeze(1) and reductions unsqueezed back become keepdim "
            "forms, a mean over one of H, W without keepdim the kept mean squeezed (PANNs' "
            "CNN14)", _graph_only(keepdim.decompose)),
    Rewrite("glu", "a GLU becomes its halves' product", _graph_only(glu.decompose)),
    Rewrite("alltopk", "a mask scattered from a top-k of every index is the constant it is",
            _graph_only(alltopk.decompose)),
    Rewrite("movedim", "movedim, swapaxes, swapdims and mT become permutes / transposes",
            _graph_only(movedim.decompose)),
    Rewrite("matrix_rope", "PE-Audio's 2x2 rotation matrices become RoPE's products",
            _graph_only(matrix_rope.decompose)),
    Rewrite("channel_norm", "a LayerNorm over (N, C, H, W)'s channels written out becomes "
            "F.layer_norm (ConvNeXt's, SAM's LayerNorm2d)", _graph_only(channel_norm.decompose)),
    Rewrite("expert_conv", "a conv of per-sample kernels mixed from constant experts, (r @ W)"
            ".view(B O, ...) grouped over the batch (timm's CondConv2d, Dynamic Convolution), "
            "becomes the experts' fixed-weight convs scaled by their routing weights and summed",
            expert_conv.decompose),
    Rewrite("modconv", "a modulated conv (a weight per sample from a style, one conv grouped "
            "over the batch: StyleGAN2's) becomes the activations scaled around a fixed-weight "
            "conv, its demodulation a linear of the squared styles", modconv.decompose),
    Rewrite("hard_assign", "a one-hot of an argmax becomes a top-1 mask, a straight-through "
            "sum its hard value (GroupViT), an embedding at an argmax / argmin the top-1 mask "
            "times the table (a VQ-VAE's nearest codebook entry; by torch.cdist the top-1 of "
            "2 x.e - ||e||^2)",
            _graph_only(hard_assign.decompose)),
    Rewrite("topk_select", "a gather of the rows a top-k picks becomes the matmul by the "
            "top-k's one-hot (two-stage detectors' query selection: RT-DETR, D-FINE)",
            _graph_only(topk_select.decompose)),
    Rewrite("unpool", "a max unpooling at a tiling max pool's indices becomes the top-1 mask "
            "of each window of the pool's input times the unpooled values (ENet, SegNet)",
            _graph_only(unpool.decompose)),
    Rewrite("vector_norm", "torch.linalg.norm over one axis becomes the vector norm it is "
            "(OWL-ViT's and OWLv2's normalized embeddings)", _graph_only(vector_norm.decompose)),
    Rewrite("length_norm", "t_i / sqrt(t_1^2 + ... + t_k^2 + eps) over a small group (a "
            "complex mask's phase m / |m|: DCUNet, DCCRN) becomes the parts of an rms_norm over "
            "the group; F.normalize over an axis but the last the permutes around F.normalize "
            "over the last axis (an image model's channels)", _graph_only(length_norm.decompose)),
    Rewrite("whole_copy", "a copy_ filling a new buffer whole (RF-DETR's proposals, the "
            "full-width slice export drops) or overwriting a computed value whole (MViTv2's "
            "relative positions added into its scores) becomes the value copied",
            _graph_only(whole_copy.decompose)),
    Rewrite("any_reduce", "torch.any of a boolean over axes becomes the max of its 0/1 values "
            "above 0.5 (PP-DocLayout V3's empty-mask test)", _graph_only(any_reduce.decompose)),
    Rewrite("id_views", "an embedding of a view of the token ids (reshaped, or padded by "
            "nothing) becomes the same view of the ids' embedding (MEGABYTE's patches)",
            id_views.decompose),
    Rewrite("const_left", "a constant matrix times an activation's transpose, W @ x.t(), "
            "becomes the transposed linear (x @ W^T)^T (mamba_ssm's and Vim's dt_proj)",
            const_left.decompose),
    Rewrite("zero_product", "a product by the number 0 becomes zeros_like (QRNN's shifted "
            "window padded by X[:1] * 0), a constant that reads no token position",
            _graph_only(zero_product.decompose)),
    Rewrite("unit_norm", "a layer_norm over one element becomes its bias (x - mean(x) = 0: "
            "CSATv2's LayerNorm(1) of its 1-channel attention tokens, whose attention is then "
            "one of constants)", _graph_only(unit_norm.decompose)),
    Rewrite("cat_linear", "a linear of constant rows concatenated with activations along a row "
            "axis becomes the concat of their linears (Transformer-XL's qkv_net(cat([mems, w]))"
            ": memory keys and values after the projection)", cat_linear.decompose),
    Rewrite("masked_max", "a max over the tokens of values the padding mask fills with -inf "
            "becomes the max of the values with the kept tokens' mean in the padded ones "
            "(sentence-transformers' max pooling)", _graph_only(masked_max.decompose)),
    Rewrite("token_gather", "a gather of each sample's row at one token index, i unsqueezed "
            "and expanded over the features, becomes x[arange(B), i] (sentence-transformers' "
            "CLS pooling at the mask's first token)", _graph_only(token_gather.decompose)),
    Rewrite("spectral", "a spectral layer with constant complex weights (FEDformer's Fourier "
            "block, FNO's SpectralConv, GFNet's global filter: rfft, kept modes times complex "
            "weights, irfft) becomes real matmuls on (re, im) pairs", spectral.decompose),
)


def rewritten(graph: fx.Graph, user_inputs: set[str]) -> fx.Graph:
    """``graph`` after every row of REWRITES, in order."""
    for rewrite in REWRITES:
        graph = rewrite.apply(graph, user_inputs)
        # a copy renames a placeholder shadowing a builtin (``input`` -> input_1): its new name
        user_inputs = user_inputs | {n.name for n in graph.nodes if n.op == "placeholder"
                                     and n.target in user_inputs}
    return graph

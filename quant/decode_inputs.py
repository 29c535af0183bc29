"""An encoder-decoder of two id inputs, ``forward(source ids, target ids)`` (T5, BART, Marian
ForConditionalGeneration wrapped as ``forward(input_ids, decoder_input_ids)``, the PyTorch
translation tutorial's ``forward(src, tgt)``), as the one input generation runs: ids
(1, S + T), [source | target].

A model of several inputs travels as one packed batch (qasic.quant.graph_inputs: each
sample's inputs flattened side by side, in the forward's order); for two id inputs (S,) and
(T,) that batch IS [source | target]. ``joined`` gives the TrainedModel whose module takes
those ids and calls the user's forward on their two slices (``Joined``), so capture sees
each slice read by its embedding (quant.lowering.IdSlice) and generation splits the graph
into the encoder and the decoder (quant.decode.seq2seq): the prefill runs the encoder once and
writes the cross-attention keys and values into states, each decode step reads them. The
quantized graph is the same computation on the same packed codes: its golden reference is the
model's.

A source padding mask the forward computes from its source ids (``input_ids.ne(pad)``) is
captured from the slice (quant.srcpad), so a source shorter than S runs right-padded. So is
transformers' own ``forward(input_ids, attention_mask, decoder_input_ids)`` (a
ForConditionalGeneration with ``--output logits``) when the data's mask is the source's
padding (``ids != pad_token_id`` in every sample: ``mask_of_pads``): ``Joined`` computes it
from the source ids. A float source and target ids (Whisper's ``forward(input_features,
decoder_input_ids)``: ``source_features``) stay two inputs (quant.decode.features_source). Any
other set of inputs is refused in one line naming them and the forms that run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from qasic.errors import ConfigError


class Joined(nn.Module):
    """``module(ids[:, :source], ids[:, source:])``: two id inputs behind one; with ``pad``,
    ``module(src, src.ne(pad).long(), tgt)``: a forward of (ids, padding mask, target ids),
    transformers' own ``forward(input_ids, attention_mask, decoder_input_ids)``, whose mask
    is the source's padding (``mask_of_pads``)."""

    def __init__(self, module: nn.Module, source: int, pad: int | None = None):
        super().__init__()
        self.module, self.source, self.pad = module, int(source), pad
        if hasattr(module, "config"):  # transformers' config stays where code looks for it
            self.config = module.config

    def forward(self, ids: torch.Tensor) -> Any:
        src, tgt = ids[:, :self.source], ids[:, self.source:]
        if self.pad is None:
            return self.module(src, tgt)
        return self.module(src, src.ne(self.pad).long(), tgt)


def joined(trained: Any) -> Any:
    """``trained`` (a TrainedModel) with its two id inputs joined into one (``Joined``);
    ``trained`` itself when its module takes one input. One line refuses other inputs."""
    from qasic.models.outputs import OutputOf
    from qasic.models.packed import PackedInputs

    module, output = trained.module, None
    if isinstance(module, OutputOf) and isinstance(module.module, PackedInputs):
        module, output = module.module, module.output
    if not isinstance(module, PackedInputs):
        return trained
    forms = ", ".join(f"{p} {'int ids' if i else 'floats'} {tuple(s)}"
                      for p, s, i in zip(module.params, module.shapes, module.ids, strict=True))
    if source_features(trained) is not None:
        return trained  # a float source and target ids: two inputs, as captured
    pad = mask_of_pads(trained, module)
    if len(module.params) != (2 if pad is None else 3) or not all(module.ids) \
            or any(len(s) != 1 for s in module.shapes):
        raise ConfigError(
            f"model {trained.name} takes {len(module.params)} inputs ({forms}); qasic generate "
            "runs a causal language model over one ids input or an encoder-decoder over two, "
            "forward(source ids (S,), target ids (T,)) returning the target's logits: wrap the "
            "model in such a forward (a padding mask computed inside from the source ids, "
            "input_ids.ne(pad)), or forward(float features, target ids) (Whisper's); a "
            "source's padding mask as the second of three inputs is the ids' (ids != the "
            "config's pad_token_id)")
    inner = module.module if output is None else OutputOf(module.module, output).eval()
    s = int(module.shapes[0][0])
    keep = np.r_[0:s, (s if pad is None else 2 * s):sum(int(m[0]) for m in module.shapes)]

    def ids(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.rint(np.asarray(a)[:, keep]).astype(np.int64)

    return dataclasses.replace(
        trained, module=Joined(inner, s, pad).eval(),
        example_input=torch.from_numpy(ids(trained.example_input.numpy())),
        calibration=ids(trained.calibration), test_inputs=ids(trained.test_inputs),
        validation_inputs=ids(trained.validation_inputs))


def mask_of_pads(trained: Any, module: Any) -> int | None:
    """The pad id of a forward of three id inputs (source ids (S,), their padding mask (S,),
    target ids (T,): transformers' ``input_ids, attention_mask, decoder_input_ids``) whose
    mask in every sample of the data is ``ids != pad`` (pad: the config's ``pad_token_id``),
    so generation computes it from the source ids; None for any other model."""
    from qasic.generate import config_id

    shapes = module.shapes
    if len(shapes) != 3 or not all(module.ids) or any(len(s) != 1 for s in shapes) \
            or shapes[0] != shapes[1]:
        return None
    pad = config_id(module.module, "pad_token_id")
    s = int(shapes[0][0])
    for x in (trained.calibration, trained.test_inputs, trained.validation_inputs):
        x = np.rint(np.asarray(x if x is not None else np.zeros((0, 2 * s)))).astype(np.int64)
        if pad is None or not np.array_equal(x[:, s:2 * s], x[:, :s] != pad):
            return None
    return pad


def target_rows(trained: Any, rows: int) -> None:
    """One line refuses a joined model whose logits have ``rows`` rows where its second input
    (the target) has another length: its inputs are not (source, target) in that order."""
    module = trained.module
    if not isinstance(module, Joined):
        return
    total = int(trained.example_input.shape[-1])
    if rows != total - module.source:
        raise ConfigError(
            f"model {trained.name} returns logits for {rows} positions, but its second input "
            f"holds {total - module.source} ids; qasic generate takes an encoder-decoder as "
            "forward(source ids, target ids), in that order, returning one logits row per "
            "target id")


def source_features(trained: Any) -> tuple[int, ...] | None:
    """The per-sample shape of an encoder-decoder's float source (Whisper's log-mel features
    (mel bins, frames)) when ``trained`` takes two inputs, that source then the target ids
    (T,); None for any other model. Such a model stays a model of two inputs: the prefill
    program takes the features' codes and the target's first ids (quant.decode.ids_input)."""
    from qasic.models.outputs import OutputOf
    from qasic.models.packed import PackedInputs

    module = trained.module
    if isinstance(module, OutputOf):
        module = module.module
    if not isinstance(module, PackedInputs) or len(module.params) != 2 \
            or module.ids != (False, True) or len(module.shapes[1]) != 1:
        return None
    return tuple(module.shapes[0])


def check_features(trained: Any, source: Any) -> np.ndarray:
    """``source`` as the float32 features the model's first input takes (its per-sample
    shape, finite values), else one line naming the shape it takes."""
    want = source_features(trained)
    x = np.asarray(source, dtype=np.float64)
    if x.shape == (1, *want):
        x = x[0]
    if x.shape != want:
        raise ConfigError(f"a source of shape {x.shape}; model {trained.name} takes float "
                          f"features {want} (its example input's: longer or shorter audio "
                          "needs the model captured with features of that many frames); pad "
                          "or cut the features to that shape")
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"the source features of model {trained.name} hold NaN or inf; "
                          "give finite features")
    return x.astype(np.float32)

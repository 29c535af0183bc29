"""Capture an nn.Module with ``torch.export`` and lower its ATen graph to an FGraph.

We walk the graph ``torch.export.export`` returns as is (no ``run_decompositions``), so ops keep
their high-level form (aten.conv2d, aten.linear, aten.batch_norm); the decomposed forms
(aten.convolution, addmm, _native_batch_norm_legit_no_training, max_pool2d_with_indices) are
accepted too, so a saved, decomposed ExportedProgram also captures. Ops whose inputs are all
constants (e.g. ``t`` of a weight) are evaluated at capture time; einsums of two operands are
rewritten first into permutes, reshapes and a matmul (qasic.quant.einsum), a channel selected
and unsqueezed back into a slice (qasic.quant.keepdim). Anything else raises
UnsupportedOpError naming the node, its target and the reason, and pointing to `qasic ops`
(the supported ops and forms, ``quant.handlers.SUPPORTED``).

Token and sequence models are captured in sequence mode (qasic.quant.lowering_seq): the graph
layout is torch's, elementwise chains stay symbolic until a table is needed
(qasic.quant.lowering_pointwise), padding masks are followed symbolically (qasic.quant.masks),
and affine tables fold into the layer before them and dead nodes go (qasic.quant.seqpasses).
"""

from __future__ import annotations

import contextlib
import logging
import operator
from typing import Any

import numpy as np
import torch
from torch import fx

from qasic.errors import InputError, UnsupportedOpError
from qasic.models.packed import PackedInputs
from qasic.quant import (
    capture_patches,
    channel_tokens,
    einsum,
    export_check,
    export_errors,
    fourier,
    grid_towers,
    idmaps,
    inplace,
    known_modules,
    lastpool,
    layouts,
    lengths,
    lowering_pad,
    lowering_seq,
    masks,
    positions,
    relshift,
    rewrites,
    row_masks,
    seqpasses,
    sinks,
    vmaps,
    wrappers,
)
from qasic.quant.calibrate import prepare
from qasic.quant.fgraph import FGraph, FNode
from qasic.quant.graph import TORCH, batch_layout
from qasic.quant.handlers import HANDLERS
from qasic.quant.lowering import Act, IdSlice, per_sample
from qasic.quant.lowering_pointwise import SYMBOLIC, Columns, Pointwise, materialize
from qasic.quant.lowering_transformer import POINTWISE_AWARE

PAD_READERS = lowering_pad.READERS | set(lowering_pad.HANDLERS)

INPUT = "input"  # the graph input's tensor name


def capture(model: Any, example_inputs: Any, name: str | None = None) -> FGraph:
    """Export ``model`` (an nn.Module, or an ExportedProgram) and lower it to a float graph."""
    params = model.params if isinstance(model, PackedInputs) else ()
    return _export(model, example_inputs,
                   lambda ep: _build(ep, name or type(model).__name__, params))


def _build(ep: torch.export.ExportedProgram, name: str, params: tuple[str, ...] = ()) -> FGraph:
    """``params``: the forward's parameter names of a model of several inputs (the input
    tensors are named after them: ``input.NAME`` after the first, ``input``)."""
    with vmaps.levels():  # a vmap region of constants runs its levels (qasic.quant.vmaps)
        return _Builder(ep, params).build(name)


def _as_args(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(example_inputs, (tuple, list)):
        args = tuple(example_inputs)
    else:
        args = (example_inputs,)
    if not args:
        raise InputError("the model needs at least one example input tensor; got none")
    out = []
    for x in args:
        if isinstance(x, np.ndarray):  # integer arrays are token ids
            dtype = np.int64 if np.issubdtype(x.dtype, np.integer) else np.float32
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
        if not isinstance(x, torch.Tensor):
            raise InputError(f"example input is a {type(x).__name__}; give a torch tensor or "
                             "array")
        out.append(x)
    return tuple(out)


def _export(model: Any, example_inputs: Any, build: Any) -> FGraph:
    """``build`` of ``model``'s exported program, after checking that it computes what the
    eager model does: a model ``build`` refuses is refused for its own reason first."""
    if isinstance(model, torch.export.ExportedProgram):
        return build(model)  # already captured; the example inputs are not needed
    args = _as_args(example_inputs)
    if isinstance(model, PackedInputs):  # several inputs, packed: export the user's module
        model, args = model.module, model.unpack(args[0])
    known_modules.check(model)
    was_training = _set_training(model, False)  # batch norm must use its running statistics
    was_caching = _set_use_cache(model, False)  # a transformers KV cache is no model output
    try:
        # a tower packing a batch's images: one sample (and the eager output on it)
        one, eager = grid_towers.trace_one(model, args[0]) if len(args) == 1 else (args, None)
        ones = (one,) if len(args) == 1 else one
        with capture_patches.applied(model, args):  # quant.capture_patches.PATCHES
            ep = _trace(model, ones, twice=eager is None)
        graph = build(ep)
        # the exported program must compute what the eager model does (quant.export_check):
        # compared outside the patches above, in the mode the capture set, the tensors a
        # forward caches put back after
        with capture_patches.tensors_kept(model):
            export_check.check(model, ep, _traced(ep, ones), eager)
        return graph
    finally:
        _set_training(model, was_training)
        _set_use_cache(model, was_caching)


@contextlib.contextmanager
def _quiet_fake_tensors() -> Any:
    """torch logs a failed fake-tensor kernel with its traceback (ERROR on stderr) before it
    raises: noise before qasic's one line, and after a batch-of-two trace that ``_trace``
    expects may fail. The exception itself still carries the message."""
    log = logging.getLogger("torch._subclasses.fake_tensor")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _trace(model: Any, args: tuple, twice: bool = True) -> torch.export.ExportedProgram:
    with _quiet_fake_tensors():
        return _trace_once(model, args, twice)


def _trace_once(model: Any, args: tuple, twice: bool) -> torch.export.ExportedProgram:
    try:
        if twice and args[0].dim() >= 2 and args[0].shape[0] == 1:
            # a batch of one leaves the batch axis ambiguous wherever a view merges or splits
            # axes of size 1 (a sequence model's heads): trace two samples when the model
            # allows it
            try:
                return torch.export.export(model, tuple(torch.cat([a, a]) for a in args))
            except Exception:  # noqa: BLE001, S110  (written for batch 1: trace it as given)
                pass
        return torch.export.export(model, args)
    except Exception as exc:  # torch raises many types: one line says what failed and where
        raise UnsupportedOpError(export_errors.explain(exc)) from exc


def _traced(ep: torch.export.ExportedProgram, args: tuple) -> tuple:
    """The example input ``ep`` was traced with: ``args``, or their batch of one doubled
    (_trace)."""
    user = [n for n in ep.graph.nodes if n.op == "placeholder"
            and n.name in ep.graph_signature.user_inputs]
    val = user[0].meta.get("val") if user else None
    if isinstance(val, torch.Tensor) and val.dim() and args[0].dim() \
            and val.shape[0] == 2 * args[0].shape[0]:
        return tuple(torch.cat([a, a]) for a in args)
    return args


def _set_use_cache(model: Any, mode: bool | None) -> bool | None:
    """A `transformers` model's ``config.use_cache`` set to ``mode``; returns the previous value
    (None: the model has no such flag, and nothing is set). With the cache on, GPT-2-style
    models return a DynamicCache, which torch.export cannot flatten; qasic keeps its own KV
    caches in DRAM (qasic generate)."""
    config = getattr(model, "config", None)
    if mode is None or not hasattr(config, "use_cache"):
        return None
    was = config.use_cache
    config.use_cache = mode
    return was


def _set_training(model: Any, mode: bool) -> bool:
    """model.train(mode); returns the previous mode. The module of a loaded .pt2
    (ExportedProgram.module()) refuses train()/eval(): its graph already fixed the mode."""
    was = model.training
    try:
        model.train(mode)
    except NotImplementedError:
        pass
    return was



def _live(graph: fx.Graph, writes: list[fx.Node] = ()) -> set[fx.Node]:
    """The nodes the graph's output and the in-place ``writes`` (qasic.quant.inplace's fills)
    depend on. The others are never captured: a value the model computes but does not return
    (Swin's stages build a (N, C, H, W) copy of each stage's output for
    ``output_hidden_states``) must not refuse the model or switch the capture's layout mode."""
    out = [n for n in graph.nodes if n.op == "output"] + list(writes)
    live, todo = set(out), list(out)
    while todo:
        for a in todo.pop().all_input_nodes:
            if a not in live:
                live.add(a)
                todo.append(a)
    return live

def _writes_into(node: fx.Node, live: set[fx.Node]) -> bool:
    """Whether ``node`` is an in-place op (copy_, index_put_, ...) whose written tensor is, or
    is a view of, a value the output depends on (a write the walk of live values would miss); a
    view also one part of a split, chunk or unbind (``getitem``: FlashAttention in plain
    PyTorch updates ``o.split(n, -2)``'s parts by mul_ / add_ / div_)."""
    schema = getattr(node.target, "_schema", None)
    if node.op != "call_function" or schema is None or not schema.is_mutable:
        return False
    seen = node.args[0] if node.args else None
    while isinstance(seen, fx.Node):
        if seen in live:
            return True
        part = seen.target is operator.getitem and isinstance(seen.args[0], fx.Node) \
            and _is_view(seen.args[0])
        seen = seen.args[0] if _is_view(seen) or part else None
    return False


def _is_view(node: fx.Node) -> bool:
    """Whether ``node``'s value aliases its first argument's (slice, view, select, ...)."""
    schema = getattr(node.target, "_schema", None)
    return node.op == "call_function" and schema is not None and bool(node.args) \
        and bool(schema.returns) and schema.returns[0].alias_info is not None


class _Builder:
    """Walks the exported graph once; ``env`` maps an fx node name to Act, constant or tuple."""

    def __init__(self, ep: torch.export.ExportedProgram, params: tuple[str, ...] = ()) -> None:
        self.ep = ep
        self.params = params  # the inputs' parameter names (torch.export may rename them)
        # the graph walked: the exported graph as torch ran it (the subgraphs of wrappers,
        # autocast and no_grad regions, inlined), after the rewrites of quant.rewrites.REWRITES
        self.inlined = wrappers.inline(ep.graph_module)
        self.graph = rewrites.rewritten(self.inlined, set(ep.graph_signature.user_inputs))
        self.env: dict[str, Any] = {}
        self.nodes: dict[str, FNode] = {}     # insertion order is execution order
        self.origin: dict[str, fx.Node] = {}  # tensor name -> fx node that produced it
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.used: set[str] = {INPUT}
        self.output: str | None = None
        self.output_layout: str | None = None  # how the graph holds torch's output
        self.input_rank = 0
        self.input_name = INPUT
        self.input_layouts: dict[str, str] = {}  # each input tensor's layout, in torch's order
        self.layout: str | None = None   # lowering_seq.TOKENS / SEQUENCE, or None (images)
        self.batch = 1                   # the example input's batch size
        self.luts: dict[str, Act] = {}   # fx node name -> the lut its pointwise chain became
        self.mask_nodes: dict[tuple, str] = {}  # mask predicate -> its key-mask tensor
        self.fills: dict[str, dict[str, Any]] = {}  # buffer -> copy_ node -> value written
        # fx node name -> (axis, inner) of the batch in its torch value when not outermost
        # (lowering_seq.digit)
        self.batch_axes: dict[str, tuple[int, int]] = {}
        self.current: fx.Node | None = None
        # sequence mode: torch's layout, sequence-mode handlers. From the input for token and
        # sequence models; an image model switches at its patches (lowering_seq.to_sequence)
        self.sequence = False
        self.left_sequence = False  # an image model that went to sequence mode and came back
        # fx node name -> the mode its value was made in; a read in the other mode converts
        # an image model's maps (qasic.quant.layouts), once per (tensor, mode, torch shape)
        self.made_in: dict[str, bool] = {}
        self.relayouts: dict[tuple, Act] = {}

    def build(self, name: str) -> FGraph:
        user = [n for n in self.ep.graph.nodes if n.op == "placeholder"
                and n.name in self.ep.graph_signature.user_inputs]
        self.layout = lowering_seq.input_layout(self.inlined, user[0]) if user else None
        if len(user) > 1 and self.layout is None:  # several inputs: torch's layout
            self.layout = lowering_seq.SEQUENCE
        self.sequence = self.layout is not None
        fills = [n for n in self.graph.nodes if inplace.fill_of(n) is not None]
        live = _live(self.graph, fills)
        # other in-place writes into values the output reads: run when they write constants
        # (Pixtral's block mask filled in place), refused when they meet an activation (_call);
        # to a fixpoint: a write's value may read a buffer another write fills (AFNO's second
        # layer reads the first's zero buffers), which the walk would read as zeros
        self.writes: set[str] = set()
        while more := {n.name for n in self.graph.nodes if n not in live
                       and n.name not in self.writes and _writes_into(n, live)}:
            self.writes |= more
            live = _live(self.graph, fills + [n for n in self.graph.nodes
                                              if n.name in self.writes])
        for node in self.graph.nodes:
            if node in live or node.op == "placeholder" or vmaps.runs(node):
                self._visit(node)
        nodes, output = list(self.nodes.values()), self.output
        if self.sequence or self.left_sequence:
            nodes, output = seqpasses.simplify(nodes, output, self.shapes)
        layout = self.layout or (
            "NCL" if len(self.shapes[INPUT]) == 3 and self.input_rank == 3 else "NCHW")
        inputs = tuple(self.input_layouts) if len(self.input_layouts) > 1 else ()

        def built(nodes: list, output: str) -> FGraph:
            kept = {INPUT, *inputs} | {n.output for n in nodes}
            return FGraph(name=name, input=INPUT, output=output, nodes=tuple(nodes),
                          shapes={t: s for t, s in self.shapes.items() if t in kept},
                          input_layout=layout, output_layout=self.output_layout,
                          inputs=inputs, input_layouts=tuple(self.input_layouts[t]
                                                             for t in inputs))

        graph = built(nodes, output)
        if self.sequence or self.left_sequence:
            linears = channel_tokens.token_slices_as_linears(graph)
            if linears is not graph:  # the selections compose with their readers again (a
                # rotary half's unbind and stack: one signed selection, which decode steps)
                graph = built(*seqpasses.simplify(list(linears.nodes), output, self.shapes))
        return prepare(graph)

    def _visit(self, node: fx.Node) -> None:
        self.current = node
        if node.op == "placeholder":
            self.env[node.name] = self._placeholder(node)
        elif node.op == "call_function":
            self.env[node.name] = self._call(node)
        elif node.op == "output":
            self.output = self._graph_output(node)
        elif node.op == "get_attr" and vmaps.is_spec(node):  # a flat_apply's tree spec
            self.env[node.name] = getattr(self.ep.graph_module, node.target)
        elif node.op == "get_attr" and node.users:  # a subgraph wrappers.inline did not inline
            ops = sorted({str(u.target) for u in node.users})
            self.fail(node, f"a subgraph of higher-order op {', '.join(ops)} (control flow or "
                            f"a kernel of its own); inlined are only the wrappers "
                            f"{', '.join(sorted(str(w) for w in wrappers.WRAPPERS))}")
        else:
            self.fail(node, f"fx op {node.op!r} is not supported")
        # a getitem's value is part of its tuple's, made with it
        source = node.args[0] if node.target is operator.getitem else node
        self.made_in[node.name] = self.made_in.get(source.name, self.sequence)

    def _placeholder(self, node: fx.Node) -> Any:
        sig = self.ep.graph_signature
        # the signature's name: a rewrite's copy of the graph renames a placeholder that
        # shadows a builtin (nn.Sequential's ``input`` becomes input_1), its target stays
        name = str(node.target)
        for table in (sig.inputs_to_parameters, sig.inputs_to_buffers):
            if name in table:  # non-persistent buffers live in ep.constants
                key = table[name]
                store = self.ep.state_dict if key in self.ep.state_dict else self.ep.constants
                return store[key].detach()
        if name in sig.inputs_to_lifted_tensor_constants:
            return self.ep.constants[sig.inputs_to_lifted_tensor_constants[name]]
        if name not in sig.user_inputs:
            raise InputError(f"placeholder {name} is no input of the model; inputs: "
                             f"{', '.join(sig.user_inputs)}")
        val = node.meta["val"]
        if not isinstance(val, torch.Tensor):
            raise InputError(f"the model's input {name} is a {type(val).__name__}, not a "
                             "tensor; give tensors only (bind the others in the factory)")
        index = sig.user_inputs.index(name)
        first = index == 0
        given = self.params[index] if index < len(self.params) else name
        tensor = INPUT if first else f"{INPUT}.{given}"
        if first:
            self.input_rank = val.dim()
            self.batch = int(val.shape[0]) if self.input_rank else 1
        ids = not val.dtype.is_floating_point
        if (ids or self.layout == lowering_seq.TOKENS and first) and val.dtype not in _ID_DTYPES:
            self.fail(node, f"token ids of dtype {val.dtype}; give int64 or int32")
        if not first and (not val.dim() or int(val.shape[0]) != self.batch):
            self.fail(node, f"input {name} of shape {tuple(val.shape)} has no batch axis of "
                            f"{self.batch} (the first input's); give each input batch first")
        self.input_layouts[tensor] = lowering_seq.TOKENS if ids else lowering_seq.SEQUENCE
        self.used.add(tensor)
        self.shapes[tensor] = self.per_sample(node)
        return Act(tensor)

    def is_ids(self, x: Any) -> bool:
        """Whether ``x`` is an input of token ids (the model's, or one of its inputs': an
        attention mask, a recommender's sparse ids)."""
        name = getattr(x, "name", None)
        if name == self.input_name:
            return self.layout == lowering_seq.TOKENS
        return self.input_layouts.get(name) == lowering_seq.TOKENS

    def _call(self, node: fx.Node) -> Any:
        layouts.enters_sequence(self, node)
        args = [self.value(a) for a in node.args]
        kwargs = {k: self.value(v) for k, v in node.kwargs.items()}
        if node.name in self.writes and (_has_act((args, kwargs)) or _has(
                (args, kwargs), (masks.KeyMask, positions.PosValue, lengths.Length))):
            self.fail(node, f"an in-place write ({node.target}) into a tensor the model reads "
                            "later, of activations (other than copies that fill a new buffer "
                            "along one axis, qasic.quant.inplace); build the tensor with "
                            "torch.cat")
        if lastpool.kept(node, args):  # a cast of a token index (OWL-ViT's .to(device))
            return args[0] if node.target in lastpool.CASTS else None
        if lastpool.misread(node, args, kwargs):
            self.fail(node, f"{node.target} of a token index computed from the ids (an argmax "
                            "over the tokens); it runs only as the row index of x[arange(batch), "
                            "index] (a one-hot selection)")
        if node.target is operator.getitem:
            if node.args[0].name in self.batch_axes:
                self.batch_axes[node.name] = self.batch_axes[node.args[0].name]
            return self._getitem(node, args)
        if _has((args, kwargs), sinks.VALUES):
            return sinks.apply(self, node, args, kwargs)
        if _has((args, kwargs), row_masks.VALUES):
            return row_masks.apply(self, node, args, kwargs)
        if _has((args, kwargs), relshift.PlaneMap):  # a relative shift's views (relshift)
            made = relshift.apply(self, node, args, kwargs)
            if made is not None:
                return made
        if not _has((args, kwargs), (positions.PosValue, lengths.Length)) \
                and idmaps.reads_ids(self, args, kwargs, node):  # tests of the ids, ids mapped
            return idmaps.apply(self, node, args, kwargs)
        if node.target in lowering_seq.LIKE_OPS:  # shapes and dtypes only, not values
            return lowering_seq.like(node, args, kwargs)
        if node.target in lowering_pad.WRITTEN_FOR and isinstance(args[0], lowering_pad.ZeroPad):
            args[0] = lowering_pad.written(self, node, args[0])
        if args and isinstance(args[0], lowering_pad.ZeroPad) and lowering_pad.passes(node):
            return args[0]
        if node.target not in PAD_READERS and _has((args, kwargs), lowering_pad.ZeroPad):
            args, kwargs = lowering_pad.write_out(self, node, (args, kwargs))  # pointwise too
        if node.target not in POINTWISE_AWARE:
            keep = node.target in PAD_READERS  # a zero pad folds into them
            args, kwargs = self._materialized(args, keep), self._materialized(kwargs, keep)
        if not _has_act((args, kwargs)):
            if _random(node):
                self.fail(node, f"random numbers drawn inside the model ({node.target}, e.g. "
                                "ViTMAE's random patch masking): capture would freeze one "
                                "draw; pass the draw in as a constant or remove it")
            if _has((args, kwargs), (masks.KeyMask, positions.PosValue, lengths.Length)):
                return masks.apply(self, node, args, kwargs)
            return node.target(*args, **kwargs)  # constant folding, e.g. t(weight)
        handler = HANDLERS.get(node.target)
        if handler is None:
            why = fourier.REFUSALS.get(node.target)
            self.fail(node, f"op {node.target} is not supported{f' ({why})' if why else ''}")
        self._inherit_batch_axis(node)
        if node.target in masks.MOVES and isinstance(args[0], masks.Masked):
            return masks.moved(self, node, args, kwargs, handler)
        return handler(self, node, args, kwargs)

    def _inherit_batch_axis(self, node: fx.Node) -> None:
        """An op keeps its first activation operand's batch axis when the rank is kept, or when
        its output's shape starts with the operand's (an embedding of sequence-first ids (T,
        batch) is (T, batch, D): PyTorch's word-language-model tutorial); the shape ops that
        move it set their own."""
        src = next((a for a in node.all_input_nodes if _has_act(self.env.get(a.name))), None)
        if src is None or src.name not in self.batch_axes:
            return
        if _rank(src) == _rank(node) or _rank(src) < _rank(node) and _shape(
                src) == _shape(node)[:_rank(src)]:
            self.batch_axes[node.name] = self.batch_axes[src.name]

    def _getitem(self, node: fx.Node, args: list) -> Any:
        value, index = args
        if value[index] is None and node.users:
            if node.args[0].target is torch.ops.aten.max_pool2d_with_indices.default:
                self.fail(node, f"output {index} of {node.args[0].target}: a max pool's "
                                "indices run only as the indices of a max_unpool2d to the "
                                "pool input's size, kernel == stride, no padding "
                                "(qasic.quant.unpool: ENet's, SegNet's)")
            self.fail(node, f"output {index} of {node.args[0].target} (e.g. pool indices or "
                            "batch statistics) is not supported")
        return value[index]

    def _materialized(self, tree: Any, keep_pad: bool = False) -> Any:
        """``tree`` with every pointwise chain made a lut node (``keep_pad``: zero pads kept
        for the op to fold)."""
        if isinstance(tree, (list, tuple)):
            return type(tree)(self._materialized(x, keep_pad) for x in tree)
        if isinstance(tree, dict):
            return {k: self._materialized(v, keep_pad) for k, v in tree.items()}
        if keep_pad and isinstance(tree, lowering_pad.ZeroPad):
            return tree
        return materialize(self, tree)

    def _graph_output(self, node: fx.Node) -> str:
        # a None among the outputs is no tensor: the loss of ``return logits, loss`` called
        # without targets (nanoGPT, minGPT, llama2.c's training forward)
        outs = [o for o in node.args[0] if o is not None]
        if len(outs) == 1:
            self.env[outs[0].name] = materialize(self, self.value(outs[0]))
            self.made_in[outs[0].name] = self.sequence  # in this mode's layout now
        if len(outs) != 1 or not isinstance(self.value(outs[0]), Act):
            self.fail(node, f"the model must return one activation tensor; it returns {len(outs)}"
                            + ("; pick the one to compile with --output N, its index from 0 "
                               "(Python: output=N)" if len(outs) > 1 else ""))
        self.output_layout = self._batch_first(outs[0]) or self._layout_of(outs[0])
        name = self.value(outs[0]).name
        if self.shapes[name] == ():  # one value a sample (a recommender's click probability,
            # ``.view(-1)``): held as (1,), a program's tensors having at least one axis
            name = self.add(outs[0], "reshape", (name,), {"shape": (1,)}, shape=(1,),
                            suffix=".per_sample").name
        return name

    def _batch_first(self, out: fx.Node) -> str | None:
        """The output layout of an output whose batch is not its outermost axis but an axis
        of its own (Medusa's stacked heads (H, batch, T, V), a time-major RNN's (L, batch,
        F), held in torch's layout): ``batch_layout`` of that axis, the graph computing each
        sample's; None for a batch-first output (or one traced with one sample, whose batch
        axis is not told from the others). Refuse one whose batch shares an axis with other
        factors (a sequence-first (L batch, F)), or is held as an image."""
        shape = tuple(int(d) for d in out.meta["val"].shape)
        if not shape or self.batch == 1 or lowering_seq.digit(self, out) == (
                0, shape[0] // self.batch):
            return None
        p, _ = lowering_seq.digit(self, out)
        if 1 <= p <= 9 and shape[p] == self.batch and self._layout_of(out) == TORCH:
            return batch_layout(p)
        raise UnsupportedOpError(
            f"node {out.name!r}: the model's output {tuple(shape)} holds the batch along axis "
            f"{lowering_seq.digit(self, out)[0]} (time-major or sequence-first, traced with "
            f"batch {self.batch}), not first; return it batch-first (e.g. .transpose(0, 1))")

    def _layout_of(self, node: fx.Node) -> str:
        """How the graph holds fx ``node``'s torch value: sequence mode keeps torch's layout
        (a channels-last (N, H, W, C) too); image mode holds (N, C, H, W) as (H, W, C) and
        (N, C, L) as (1, L, C) (qasic.quant.lowering.per_sample)."""
        if self.sequence:
            return TORCH
        return {4: "NCHW", 3: "NCL"}.get(_rank(node), TORCH)

    def value(self, a: Any) -> Any:
        if isinstance(a, fx.Node):
            v = self.env[a.name]
            if self.made_in.get(a.name, self.sequence) == self.sequence:
                return v
            return layouts.relayout(self, a, materialize(self, v) if isinstance(
                v, (Pointwise, Columns)) else v)
        if isinstance(a, (list, tuple)):
            return type(a)(self.value(x) for x in a)
        return a

    def add(self, node: fx.Node, op: str, inputs: tuple[str, ...], attrs: dict | None = None,
            params: dict | None = None, shape: tuple[int, ...] | None = None,
            name: str | None = None, suffix: str = "") -> Act:
        """Append one FNode for fx ``node``; its output tensor is named after the node (or
        ``name``), plus ``suffix``. Its shape is the fx node's unless ``shape`` is given (an fx
        node lowered to several)."""
        name = self._unique((name or node_name(node)) + suffix)
        self.nodes[name] = FNode(name, op, inputs, name, attrs or {}, params or {})
        self.origin[name] = node
        self.shapes[name] = self.per_sample(node) if shape is None else tuple(shape)
        return Act(name)

    def per_sample(self, node: fx.Node) -> tuple[int, ...]:
        """The fx node's per-sample shape in the graph layout."""
        return lowering_seq.per_sample(self, node) if self.sequence else per_sample(node)

    def sole_user(self, x: Act, node: fx.Node) -> bool:
        """Whether ``node`` is the only reader of activation ``x`` (through ops that pass it
        on unchanged)."""
        n = self.origin.get(x.name)
        while n is not None:  # checks that produce no value (a cast's metadata assert) and
            # reshape_as(y, n) (LeViT's BatchNorm1d view back) read not n's values
            users = [u for u in n.users if u.target not in _CHECKS and not _shape_of(u, n)]
            if len(users) != 1:
                return False
            if users[0] is node:
                return True
            n = users[0] if self.env.get(users[0].name) == x else None
        return False

    def replace(self, fnode: FNode) -> None:
        self.nodes[fnode.name] = fnode

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def fail(self, node: fx.Node, reason: str) -> None:
        where = node_name(node)
        raise UnsupportedOpError(
            f"node {node.name!r}{f' (module {where})' if where != node.name else ''}: {reason}"
            f"{einsum.made_by(node)}; " + SUPPORTED_HINT
        )


# the end of every capture refusal: the list itself (handlers.SUPPORTED, some 5,000
# characters) would bury the reason; `qasic ops` prints it, one form per line
SUPPORTED_HINT = "supported ops: `qasic ops` lists them, one form per line"


_ID_DTYPES = (torch.int64, torch.int32)
_CHECKS = (torch.ops.aten._assert_tensor_metadata.default,)


def _shape_of(user: fx.Node, n: fx.Node) -> bool:
    """Whether ``user`` reads only ``n``'s shape (n is the shape argument of a reshape_as)."""
    return user.target in _SHAPE_READERS and user.args[0] is not n


_SHAPE_READERS = (torch.ops.aten.reshape_as.default, torch.ops.aten.view_as.default,
                  torch.ops.aten.expand_as.default)


def _rank(node: fx.Node) -> int:
    return len(_shape(node)) if _first_val(node) is not None else -1


def _shape(node: fx.Node) -> tuple:
    """The shape of ``node``'s value, or of its first if it is a tuple (an op of several
    outputs: its getitems read them); () when it has none."""
    val = _first_val(node)
    return tuple(val.shape) if val is not None else ()


def _first_val(node: fx.Node) -> torch.Tensor | None:
    val = node.meta.get("val")
    val = val[0] if isinstance(val, (tuple, list)) and val else val
    return val if isinstance(val, torch.Tensor) else None


def _has(tree: Any, kinds: Any) -> bool:
    if isinstance(tree, kinds):
        return True
    if isinstance(tree, (list, tuple)):
        return any(_has(x, kinds) for x in tree)
    if isinstance(tree, dict):
        return any(_has(x, kinds) for x in tree.values())
    return False


def _random(node: fx.Node) -> bool:
    """An op that draws random numbers (torch's nondeterministic_seeded tag; dropout, which
    eval mode turns off, and attention with dropout_p 0 aside: MaskFormer's decoder attends
    among its learned queries, constants, in its first layer)."""
    tags = getattr(node.target, "tags", ())
    if torch.Tag.nondeterministic_seeded not in tags or "dropout" in str(node.target):
        return False
    at = _DROPOUT_ARG.get(node.target)
    return at is None or bool(node.args[at] if len(node.args) > at
                              else node.kwargs.get("dropout_p", 0.0))


# attention ops and the position of their dropout_p
_DROPOUT_ARG = {torch.ops.aten.scaled_dot_product_attention.default: 4,
                torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default: 3}


def _has_act(tree: Any) -> bool:
    """An activation, or a symbolic value made of one (a pointwise chain, masked scores)."""
    return _has(tree, (Act, IdSlice, masks.Masked, *sinks.VALUES, *row_masks.VALUES,
                       *SYMBOLIC))


def node_name(node: fx.Node) -> str:
    """A stable, readable name: the torch module path when a torch.nn layer made the op
    ('conv1', 'layer1.0.relu'), else the module path plus the fx name, else the fx name."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return node.name
    path, kind = list(stack.values())[-1]
    kind = kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
    if not path:
        return node.name
    return path if kind.startswith("torch.nn.modules.") else f"{path}.{node.name}"

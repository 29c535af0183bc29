"""Parts concatenated along the batch, run through per-sample ops and split back into the same
parts, rewritten before capture as each part run through its own copy of those ops:

    a, b = split(f(cat([x, y], 0)), [n_x, n_y], 0)   ->   a, b = f(x), f(y)

RAFT encodes both frames in one batch, ``fnet(torch.cat([image1, image2], dim=0))``, then
``torch.chunk(fmaps, 2, dim=0)``. qasic runs each sample alone and never joins samples, so a
cat along the batch is refused; when every op between the cat and the split acts on each
sample alone (``PER_SAMPLE``: convolutions, per-sample norms, batch norms on running
statistics, pools, pointwise ops, views that keep the batch leading), the two forms compute the
same values, and the copies share their weights (the constants are the same nodes). Any other
reader of the joined batch (an op off the list, the graph output, a split into other parts)
leaves the graph as it is (and the cat refused in one line)."""

from __future__ import annotations

import operator
from functools import partial
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, rebuild

aten = torch.ops.aten
SPLITS = {aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default}
# ops that compute each sample (each index of axis 0) from that sample alone, batch-free
# arguments given; pointwise ops (torch.Tag.pointwise) too
PER_SAMPLE = {aten.conv1d.default, aten.conv2d.default, aten.convolution.default,
              aten.instance_norm.default, aten.group_norm.default, aten.layer_norm.default,
              aten.max_pool2d.default, aten.max_pool2d_with_indices.default,
              aten.avg_pool2d.default, aten.adaptive_avg_pool2d.default,
              aten.upsample_bilinear2d.vec, aten.upsample_nearest2d.vec, aten.dropout.default,
              aten.clone.default, aten.contiguous.default, aten.alias.default,
              aten.detach.default, aten.detach_.default, aten._to_copy.default}
# batch norms: per sample only on running statistics (eval), the index of their training
# flag (True reads the batch's statistics), None when the op has none
BATCH_NORMS = {aten.batch_norm.default: 5,
               aten._native_batch_norm_legit_no_training.default: None}
# ops whose value is a tuple, its first the per-sample output (read through getitem)
TUPLES = {aten.max_pool2d_with_indices.default,
          aten._native_batch_norm_legit_no_training.default}
VIEWS = {aten.view.default, aten.reshape.default, aten._unsafe_view.default}


def _dim(node: fx.Node, index: int) -> int:
    first = node.args[0][0] if isinstance(node.args[0], (list, tuple)) else node.args[0]
    rank = first.meta["val"].dim()
    dim = node.args[index] if len(node.args) > index else node.kwargs.get("dim", 0)
    return int(dim) % rank


def _sizes(split: fx.Node) -> list[int] | None:
    """The sizes ``split`` cuts axis 0 into, else None."""
    if _dim(split, 2) != 0 or any(u.target is not operator.getitem for u in split.users):
        return None
    n = int(split.args[0].meta["val"].shape[0])
    if split.target is aten.split_with_sizes.default:
        return [int(s) for s in split.args[1]]
    k = int(split.args[1])
    if split.target is aten.chunk.default:
        k = -(-n // k)  # torch.chunk: chunks of ceil(n / chunks)
    return [min(k, n - i) for i in range(0, n, k)]


def _output(node: fx.Node):
    """``node``'s meta value; a TUPLES op's first (its output, then side values)."""
    val = node.meta.get("val")
    return val[0] if node.target in TUPLES and isinstance(val, (tuple, list)) else val


def _per_sample(node: fx.Node, total: int) -> bool:
    """Whether ``node`` computes each sample of its batch of ``total`` alone."""
    val = _output(node)
    if node.target is operator.getitem:
        return isinstance(val, torch.Tensor) and val.dim() > 0 and val.shape[0] == total
    if node.op != "call_function" or not isinstance(val, torch.Tensor) or val.dim() == 0 \
            or val.shape[0] != total:
        return False
    if node.target in VIEWS:
        return int(node.args[1][0]) in (total, -1) and -1 not in list(node.args[1])[1:]
    if node.target in BATCH_NORMS:
        training = BATCH_NORMS[node.target]
        return training is None or not node.args[training]
    return node.target in PER_SAMPLE or torch.Tag.pointwise in getattr(node.target, "tags", ())


def _joins(node: fx.Node, region: set[fx.Node], total: int) -> bool:
    """Whether ``node`` reads, besides the region's values, a tensor of the whole batch (whose
    parts a copy per part would have to select)."""
    rank = _output(node).dim()
    for a in node.all_input_nodes:
        val = a.meta.get("val")
        if a not in region and isinstance(val, torch.Tensor) and val.dim() == rank \
                and val.shape[0] == total and total != 1:
            return True
    return False


def _region(cat: fx.Node) -> tuple[list[fx.Node], list[fx.Node]] | None:
    """(the ops between batch-axis ``cat`` and its splits, the splits), when every path from
    the cat runs through per-sample ops to a split back into the cat's parts; else None."""
    parts = [int(p.meta["val"].shape[0]) for p in cat.args[0]]
    total = sum(parts)
    region, splits, todo = {cat}, [], [cat]
    while todo:
        for user in todo.pop().users:
            if user in region or user in splits:
                continue
            if user.target in SPLITS and _sizes(user) == parts:
                splits.append(user)
            elif _per_sample(user, total):
                region.add(user)
                todo.append(user)
            else:
                return None
    if not splits or any(_joins(n, region, total) for n in region if n is not cat):
        return None
    return [n for n in cat.graph.nodes if n in region and n is not cat], splits


def _cats(graph: fx.Graph) -> dict[fx.Node, tuple[list[fx.Node], list[fx.Node]]]:
    found = {}
    for node in graph.nodes:
        if node.target is aten.cat.default and len(node.args[0]) > 1 \
                and node.args[0][0].meta["val"].dim() > 1 and _dim(node, 1) == 0 \
                and (r := _region(node)) is not None:
            found[node] = r
    return found


def _meta(node: fx.Node) -> None:
    """``node``'s meta value recomputed from its arguments' (its batch is a part's)."""
    def val(a):
        if isinstance(a, fx.Node):
            return a.meta["val"]
        return type(a)(val(v) for v in a) if isinstance(a, (list, tuple)) else a
    node.meta["val"] = node.target(*val(node.args), **{k: val(v) for k, v in node.kwargs.items()})


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such cat, else a copy with each part run alone."""
    found = _cats(graph)
    if not found:
        return graph
    copies = {}  # region node -> its copies, one per part
    skip = {}  # split -> the part copies of its input
    for cat, (region, splits) in found.items():
        for node in region:
            copies[node] = cat
        for s in splits:
            skip[s] = cat
    per_part = {cat: [{} for _ in cat.args[0]] for cat in found}
    return rebuild(graph, partial(_replace, found, copies, skip, per_part))


def _replace(found: dict, copies: dict, skip: dict, per_part: dict, new: fx.Graph,
             node: fx.Node, env: dict) -> Any:
    if node in found:
        for i, part in enumerate(node.args[0]):
            per_part[node][i][node] = env[part]
        return DROP
    if node in copies:
        cat = copies[node]
        for part, part_env in zip(cat.args[0], per_part[cat], strict=True):
            y = new.node_copy(node, lambda n, e=part_env: e[n] if n in e else env[n])
            if node.target in VIEWS and int(node.args[1][0]) != -1:  # the part's batch
                y.args = (y.args[0], [int(part.meta["val"].shape[0]), *node.args[1][1:]])
            y.meta = dict(node.meta)
            _meta(y)
            part_env[node] = y
        return DROP
    if node in skip:
        return DROP
    if node.target is operator.getitem and node.args[0] in skip:
        cat = skip[node.args[0]]
        return per_part[cat][int(node.args[1])][node.args[0].args[0]]
    return None

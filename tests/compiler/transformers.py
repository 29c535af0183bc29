"""Hand-built transformer QGraphs with random integer parameters, for the compiler's tests.

``Builder`` adds one node at a time and runs the golden reference on a calibration batch as it
goes, so every requantizing node gets multipliers from its real accumulators (outputs spread
over the code range instead of saturating): what qasic.quant would do, without torch.
"""

from __future__ import annotations

import numpy as np

from qasic.quant import intops, reference
from qasic.quant.fixedpoint import quantize_multipliers
from qasic.quant.functions import apply
from qasic.quant.graph import QGraph, QNode, TensorQ

IDS = TensorQ(1.0, 0, 32)  # token ids (qasic.quant: input_layout "tokens")


def sym(scale: float = 0.05, bits: int = 8) -> TensorQ:
    return TensorQ(scale, 0, bits)


def code_range(tq: TensorQ) -> tuple[int, int]:
    """[lo, hi + 1) of random input codes: the INT range, every byte for FP8."""
    return (-128, 128) if tq.is_fp else (tq.qmin, tq.qmax + 1)


def _signed_multipliers(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q, s = quantize_multipliers(np.abs(m))
    return np.where(m < 0, -q, q), s


class Builder:
    """QGraph under construction; ``env`` holds every tensor's codes on a calibration batch."""

    def __init__(self, name: str, seed: int = 0, batch: int = 8) -> None:
        self.name, self.rng, self.batch = name, np.random.default_rng(seed), batch
        self.nodes: list[QNode] = []
        self.tensors: dict[str, TensorQ] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.env: dict[str, np.ndarray] = {}
        self.input = ""
        self.layout = "NHWC"

    # ---- graph inputs ------------------------------------------------------------------------
    def ids(self, name: str, s: int, vocab: int) -> str:
        """The int32 token ids (S,)."""
        self.input, self.layout = name, "tokens"
        self.tensors[name], self.shapes[name] = IDS, (s,)
        self.env[name] = self.rng.integers(0, vocab, (self.batch, s))
        return name

    def codes(self, name: str, shape: tuple[int, ...], tq: TensorQ) -> str:
        """A graph input of activation codes."""
        self.input = name
        self.tensors[name], self.shapes[name] = tq, tuple(shape)
        self.env[name] = self.rng.integers(*code_range(tq), (self.batch, *shape))
        return name

    # ---- nodes -------------------------------------------------------------------------------
    def _add(self, node: QNode, tq: TensorQ, shape: tuple[int, ...]) -> str:
        self.tensors[node.output], self.shapes[node.output] = tq, tuple(shape)
        graph = self.graph(node.output, nodes=(*self.nodes, node))
        if node.op == "constant":
            self.env[node.output] = reference.constant(graph, node, self.batch)
        else:
            self.env[node.output] = reference.run_node(graph, node,
                                                       [self.env[t] for t in node.inputs])
        self.nodes.append(node)
        return node.output

    def _target(self, tq: TensorQ) -> float:
        return 4096.0 if tq.is_fp else (tq.qmax - tq.qmin) / 6  # FP: levels, values ~8

    def linear(self, name: str, x: str, fout: int, tq: TensorQ, wbits: int = 8,
               gelu: TensorQ | None = None) -> str:
        """x (..., D) @ w.T + bias, requantized to ``tq`` (+ a GELU table to ``gelu``)."""
        fin = self.shapes[x][-1]
        lim = (1 << (wbits - 1)) - 1
        w = self.rng.integers(-lim, lim + 1, (fout, fin))
        bias = self.rng.integers(-500, 500, fout)
        acc = self.tensors[x].values(self.env[x]) @ w.T + bias
        spread = acc.reshape(-1, fout).std(axis=0) + 1.0
        q, s = quantize_multipliers(self._target(tq) / spread)
        shape = (*self.shapes[x][:-1], fout)
        out = self._add(QNode(name, "linear", (x,), name, {},
                              {"weight": w, "bias": bias, "multiplier": q, "shift": s},
                              wbits, f"int{wbits}"), tq, shape)
        return out if gelu is None else self.lut(f"{name}.gelu", out, "gelu", gelu)

    def lut(self, name: str, x: str, fn: str, tq: TensorQ) -> str:
        tin, bits = self.tensors[x], self.tensors[x].bits
        i = np.arange(1 << bits)
        codes = np.where(i >= 1 << (bits - 1), i - (1 << bits), i)
        table = tq.encode(apply(fn, tin.decode(np.clip(codes, tin.qmin, tin.qmax))))
        return self._add(QNode(name, "lut", (x,), name, {"fn": fn, "fn_args": {}},
                               {"table": table}), tq, self.shapes[x])

    def matmul(self, name: str, a: str, b: str, tq: TensorQ, transpose_b: bool = False) -> str:
        va, vb = (self.tensors[t].values(self.env[t]) for t in (a, b))
        acc = np.matmul(va, np.swapaxes(vb, -1, -2) if transpose_b else vb)
        q, s = quantize_multipliers(np.array([self._target(tq) / (acc.std() + 1.0)]))
        sa, sb = self.shapes[a], self.shapes[b]
        shape = (*sa[:-1], sb[-2] if transpose_b else sb[-1])
        return self._add(QNode(name, "matmul", (a, b), name, {"transpose_b": transpose_b},
                               {"multiplier": q, "shift": s}), tq, shape)

    def softmax(self, name: str, x: str, causal: bool = False, mask: str | None = None,
                bits: int = 8, valid: np.ndarray | None = None) -> str:
        """``valid``: a constant (P, S, T) 0/1 attention pattern (qasic.quant.masks)."""
        tin = self.tensors[x]
        table = intops.exp_table(tin.scale, tin.bits)
        tq = TensorQ(*intops.softmax_encoding(bits), bits)
        inputs = (x,) if mask is None else (x, mask)
        pattern = {} if valid is None else {"valid": np.asarray(valid, np.uint8)}
        return self._add(QNode(name, "softmax", inputs, name, {"causal": causal},
                               {"table": table, **pattern}), tq, self.shapes[x])

    def norm(self, name: str, x: str, tq: TensorQ, center: bool = True) -> str:
        """LayerNorm (center) or RMSNorm with random gammas of both signs and random betas."""
        tin, d = self.tensors[x], self.shapes[x][-1]
        gamma = self.rng.uniform(0.3, 1.5, d) * self.rng.choice([-1, 1], d)
        unit = (1 << intops.NORM_FRAC_BITS) / np.sqrt(d)  # t of a value one std from the mean
        q, s = _signed_multipliers(gamma * self._target(tq) / 2 / unit)
        bias = self.rng.integers(-int(unit), int(unit), d)
        eps = np.array([intops.norm_epsilon(1e-5, tin.scale, d, center)])
        return self._add(QNode(name, "norm", (x,), name, {"center": center},
                               {"bias": bias, "multiplier": q, "shift": s, "eps": eps}),
                         tq, self.shapes[x])

    def embedding(self, name: str, ids: str, table: np.ndarray, tq: TensorQ) -> str:
        shape = (*self.shapes[ids], *table.shape[1:])
        return self._add(QNode(name, "embedding", (ids,), name, {}, {"table": table}), tq,
                         shape)

    def random_table(self, vocab: int, d: int, tq: TensorQ) -> np.ndarray:
        return self.rng.integers(tq.qmin, tq.qmax + 1, (vocab, d))

    def constant(self, name: str, value: np.ndarray, tq: TensorQ) -> str:
        return self._add(QNode(name, "constant", (), name, {}, {"value": np.asarray(value)}), tq,
                         np.shape(value))

    def reshape(self, name: str, x: str, shape: tuple[int, ...]) -> str:
        return self._add(QNode(name, "reshape", (x,), name), self.tensors[x], shape)

    def permute(self, name: str, x: str, perm: tuple[int, ...]) -> str:
        shape = tuple(self.shapes[x][p] for p in perm)
        return self._add(QNode(name, "permute", (x,), name, {"perm": perm}), self.tensors[x],
                         shape)

    def add(self, name: str, a: str, b: str, tq: TensorQ) -> str:
        sa, sb = self.tensors[a].scale, self.tensors[b].scale
        twice = 2 * max(sa, sb)
        q, s = quantize_multipliers(np.array([sa / twice, sb / twice,
                                              twice / ((1 << 20) * tq.scale)]))
        return self._add(QNode(name, "add", (a, b), name, {}, {"multiplier": q, "shift": s}),
                         tq, self.shapes[a])

    def heads(self, name: str, x: str, h: int) -> str:
        """(S, D) -> (H, S, D / H): a reshape and a permute, as torch splits heads."""
        s, d = self.shapes[x]
        r = self.reshape(f"{name}.split", x, (s, h, d // h))
        return self.permute(name, r, (1, 0, 2))

    def merge(self, name: str, x: str) -> str:
        """(H, S, dh) -> (S, H * dh)."""
        h, s, dh = self.shapes[x]
        p = self.permute(f"{name}.merge", x, (1, 0, 2))
        return self.reshape(name, p, (s, h * dh))

    def graph(self, output: str, nodes=None) -> QGraph:
        return QGraph(self.name, self.input, output, tuple(self.nodes if nodes is None else nodes),
                      dict(self.tensors), dict(self.shapes), input_layout=self.layout)


def attention_block(s: int = 8, d: int = 32, heads: int = 4, vocab: int = 50, mlp: int = 64,
                    seed: int = 0, masked: bool = False, bits: int = 8,
                    embedding_bits: int = 8) -> QGraph:
    """A pre-LN transformer layer on token ids: token + position embeddings -> LayerNorm ->
    q, k, v -> heads -> softmax(q k^T) (causal) -> @ v -> merge -> projection -> residual add ->
    LayerNorm -> linear + GELU -> linear -> residual add; activations of ``bits`` bits.
    ``embedding_bits`` 16: the tables' rows and their sum are int16 codes
    (QuantConfig.embedding_bits)."""
    lim = (1 << (bits - 1)) - 1

    def act(scale: float, zp: int) -> TensorQ:
        return TensorQ(scale * 2 ** (8 - bits), int(np.clip(zp, -lim - 1, lim)), bits)

    b = Builder("attention_block", seed)
    ids = b.ids("ids", s, vocab)
    wide = embedding_bits > 8
    res = TensorQ(0.08 / 256, 700, 16) if wide else act(0.08, 3)
    tok = b.embedding("tok", ids, b.random_table(vocab, d, res), res)
    pos_ids = b.constant("pos_ids", np.arange(s), IDS)
    pos = b.embedding("pos", pos_ids, b.random_table(s, d, res), res)
    x = b.add("embed", tok, pos, TensorQ(0.1 / 256, -500, 16) if wide else act(0.1, -2))
    h = b.norm("ln1", x, act(0.05, 1))
    q, k, v = (b.heads(f"{n}h", b.linear(n, h, d, act(0.06, 0)), heads) for n in "qkv")
    scores = b.matmul("scores", q, k, act(0.1, -5), transpose_b=True)
    mask = None
    if masked:
        table = (np.arange(vocab) % 7 != 0).astype(np.int64)  # every 7th id is padding
        mask = b.embedding("mask", ids, table, TensorQ(1.0, 0))
    p = b.softmax("attn", scores, causal=True, mask=mask, bits=bits)
    ctx = b.merge("ctx", b.matmul("pv", p, v, act(0.04, 0)))
    o = b.linear("proj", ctx, d, act(0.06, -1))
    x1 = b.add("res1", x, o, act(0.12, 2))
    h2 = b.norm("ln2", x1, act(0.05, 0))
    f = b.linear("fc1", h2, mlp, act(0.07, -20), gelu=act(0.05, -100))
    f2 = b.linear("fc2", f, d, act(0.06, 4))
    y = b.add("res2", x1, f2, act(0.15, 0))
    return b.graph(y)

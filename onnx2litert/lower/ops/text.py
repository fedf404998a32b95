"""Lowering of TfIdfVectorizer (integer pools) as exact window comparisons.

ONNX's n-gram counting (reference and ONNX Runtime) counts an n-gram of the pool once for every
start position ``s`` and skip distance ``d`` such that ``X[s + k*d] == gram[k]`` for all k < n:
``d`` runs over 1 .. max_skip_count + 1 for n >= 2, and only ``d = 1`` for unigrams. With the
pool known at conversion time this is, per (n, d), n shifted windows of the row (STRIDED_SLICE)
compared with the constant tokens of all n-grams of that length (EQUAL, broadcast over the pool),
combined with LOGICAL_AND, cast to float32 and summed over the positions. The per-n-gram counts
are scattered onto the output coordinates (``ngram_indexes``) by a constant 0/1 matrix
(FULLY_CONNECTED: exact, the counts are small integers), then weighted for IDF / TFIDF.
"""
from __future__ import annotations

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering
from .elementwise import emit_binary, scalar

_F32 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)
_INPUT_DTYPES = ("int32", "int64")


def pool_ngrams(pool: list[int], counts: list[int], min_n: int, max_n: int) -> dict[tuple[int, ...], int]:
    """The pool's n-grams with min_n <= n <= max_n -> pool index (a repeated n-gram keeps its last index).

    ``counts`` gives the start of the 1-grams, 2-grams, ... in ``pool``, like the ONNX attribute.
    """
    grams: dict[tuple[int, ...], int] = {}
    index = 0
    for i, start in enumerate(counts):
        n = i + 1
        end = counts[i + 1] if i + 1 < len(counts) else len(pool)
        number = max(end - start, 0) // n
        for j in range(number):
            if min_n <= n <= max_n:
                grams[tuple(pool[start + j * n:start + (j + 1) * n])] = index
            index += 1
    return grams


def _window(ctx: LowerContext, x: Tensor, begin: int, length: int) -> Tensor:
    """x[:, begin:begin + length] as [N, length, 1] (ready to broadcast against the pool)."""
    n = x.shape[0]
    part = ctx.emit1("STRIDED_SLICE", [x, ctx.new_const(np.array([0, begin], np.int32), hint="begin"),
                                       ctx.new_const(np.array([n, begin + length], np.int32), hint="end"),
                                       ctx.new_const(np.array([1, 1], np.int32), hint="strides")],
                     (n, length), x.dtype, "window", beginMask=0, endMask=0, ellipsisMask=0, newAxisMask=0,
                     shrinkAxisMask=0, offset=False)
    return ctx.reshape(part, (n, length, 1))


def _count(ctx: LowerContext, x: Tensor, grams: list[tuple[int, ...]], n: int, distances: list[int]) -> Tensor | None:
    """Counts [N, len(grams)] of the n-grams ``grams`` over all skip distances, or None if none fit."""
    rows, cols = x.shape
    tokens = np.array(grams, dtype=x.dtype).reshape(len(grams), n)
    total = None
    for d in distances:
        length = cols - (n - 1) * d
        if length <= 0:
            continue
        match = None
        for k in range(n):
            eq = ctx.emit1("EQUAL", [_window(ctx, x, k * d, length),
                                     ctx.new_const(tokens[:, k].reshape(1, 1, -1), hint="tokens")],
                           (rows, length, len(grams)), _BOOL, "eq")
            match = eq if match is None else ctx.emit1("LOGICAL_AND", [match, eq], eq.shape, _BOOL, "and")
        hits = ctx.emit1("CAST", [match], match.shape, _F32, "hits", inDataType=_BOOL, outDataType=_F32)
        counted = ctx.emit1("SUM", [hits, ctx.new_const(np.array([1], np.int32), hint="axis")],
                            (rows, len(grams)), _F32, "count", keepDims=False)
        total = counted if total is None else emit_binary(ctx, "ADD", total, counted, hint="total")
    return total


@lowering("TfIdfVectorizer", since=9, onnx_dtypes=("int32", "int64", "string"), dtypes=_INPUT_DTYPES,
          verified=_INPUT_DTYPES)
def lower_tfidf_vectorizer(node: NodeView, ctx: LowerContext) -> None:
    """TfIdfVectorizer with ``pool_int64s``: TF / IDF / TFIDF over 1-D [C] or 2-D [N, C] integer input."""
    x = ctx.input(0)
    if node.attr("pool_strings") is not None or node.attr("pool_int64s") is None:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "only integer pools (pool_int64s) are supported")
    mode = str(node.attr("mode", ""))
    if mode not in ("TF", "IDF", "TFIDF"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"mode '{mode}'")
    if x.rank not in (1, 2) or x.size == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"input shape {list(x.shape)}: [C] or [N, C] supported")
    min_n, max_n = int(node.attr("min_gram_length", 0)), int(node.attr("max_gram_length", 0))
    skips = int(node.attr("max_skip_count", 0))
    pool = [int(v) for v in node.attr("pool_int64s")]
    counts = [int(v) for v in node.attr("ngram_counts", [])]
    indexes = [int(v) for v in node.attr("ngram_indexes", [])]
    weights = node.attr("weights")
    if min_n < 1 or max_n < min_n or skips < 0 or not indexes or min(indexes) < 0:
        raise ctx.fail(Reason.INVALID_MODEL, "invalid gram lengths, skip count or ngram_indexes")
    out_size = max(indexes) + 1
    if weights is not None and mode != "TF" and len(weights) < out_size:
        raise ctx.fail(Reason.INVALID_MODEL, f"{len(weights)} weights for {out_size} outputs")
    rows = 1 if x.rank == 1 else x.shape[0]
    x2 = ctx.reshape(x, (1, x.shape[0])) if x.rank == 1 else x
    limits = np.iinfo(x.dtype)
    grams = {g: i for g, i in pool_ngrams(pool, counts, min_n, max_n).items()
             if all(limits.min <= t <= limits.max for t in g)}  # other tokens can never match
    if any(i >= len(indexes) for i in grams.values()):
        raise ctx.fail(Reason.INVALID_MODEL, "ngram_indexes is shorter than the pool")

    parts, columns = [], []
    for n in range(min_n, max_n + 1):
        of_n = [g for g in grams if len(g) == n]
        if not of_n:
            continue
        distances = [1] if n == 1 else list(range(1, skips + 2))
        counted = _count(ctx, x2, of_n, n, distances)
        if counted is not None:
            parts.append(counted)
            columns.extend(indexes[grams[g]] for g in of_n)
    out = ctx.output(0, (out_size,) if x.rank == 1 else (rows, out_size), _F32)
    if not parts:
        ctx.graph.values[node.outputs[0]] = ctx.new_const(np.zeros(out.shape, np.float32), hint="zeros")
        return
    counts_t = parts[0] if len(parts) == 1 else ctx.emit1(
        "CONCATENATION", parts, (rows, len(columns)), _F32, "counts", axis=1, fusedActivationFunction="NONE")
    scatter = np.zeros((out_size, len(columns)), np.float32)  # FULLY_CONNECTED weights are [out, in]
    for j, o in enumerate(columns):
        scatter[o, j] = 1.0
    freq = ctx.emit1("FULLY_CONNECTED", [counts_t, ctx.new_const(scatter, hint="scatter"), None], (rows, out_size),
                     _F32, "freq", fusedActivationFunction="NONE", weightsFormat="DEFAULT", keepNumDims=False)
    if mode != "TF":
        w = np.asarray(weights if weights is not None else np.ones(out_size), np.float32)[:out_size]
        if mode == "IDF":
            seen = ctx.emit1("GREATER", [freq, scalar(ctx, 0.0, _F32, "zero")], freq.shape, _BOOL, "seen")
            freq = ctx.emit1("SELECT_V2", [seen, ctx.new_const(w, hint="weights"), scalar(ctx, 0.0, _F32, "zero")],
                             freq.shape, _F32, "idf")
        elif weights is not None:
            freq = emit_binary(ctx, "MUL", freq, ctx.new_const(w, hint="weights"), hint="tfidf")
    ctx.reshape(freq, out.shape, out=out)

"""Lowerings of the matmul family (see the package docstring for the op list).

- Gemm: constant B -> FULLY_CONNECTED (weights (N, K) with alpha folded in; beta*C folded into
  the bias when C is per-column, else an ADD); run-time B -> BATCH_MATMUL (adjX/adjY).
- MatMul: numpy matmul semantics (1-D operands, batch broadcasting); a constant 1-D/2-D B ->
  FULLY_CONNECTED (keepNumDims for rank > 2 inputs); otherwise BATCH_MATMUL, with adjY reading
  the source of a TRANSPOSE that swaps B's last two axes.
- Einsum: parsed (explicit/implicit output, '...' broadcasting) into SUM of private labels,
  pairwise contractions (BATCH_MATMUL / FULLY_CONNECTED, or MUL when nothing is summed) and a
  final TRANSPOSE; a label repeated within a term (diagonal, trace) is first reduced to its
  diagonal by RESHAPE + GATHER of constant indices (exact).
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from ...errors import Reason
from ...ir import Operator, Tensor
from ..context import LowerContext, NodeView
from ..registry import FLOATS, lowering
from .elementwise import float32_route, via_float32

_F32 = np.dtype(np.float32)
# LiteRT's BATCH_MATMUL kernel handles operands of rank 2..5 (its reference kernel extends to 5-D).
_MAX_BATCH_MATMUL_RANK = 5
# What ONNX allows for MatMul/Gemm (the lowering itself takes float32 only: LiteRT's
# FULLY_CONNECTED and BATCH_MATMUL have no int32/int64 kernels).
_ONNX_DTYPES = FLOATS + ("int32", "int64", "uint32", "uint64")


def _fully_connected(ctx: LowerContext, x: Tensor, weights: np.ndarray, bias: np.ndarray | None,
                     out: Tensor | None = None) -> Tensor:
    """FULLY_CONNECTED of ``x`` (..., K) with weights (N, K); keeps leading dims for rank > 2."""
    n = weights.shape[0]
    w = ctx.new_const(np.ascontiguousarray(weights, dtype=_F32), hint="weights")
    b = ctx.new_const(np.ascontiguousarray(bias, dtype=_F32), hint="bias") if bias is not None else None
    keep = x.rank > 2
    shape = tuple(x.shape[:-1]) + (n,)
    return ctx.emit1("FULLY_CONNECTED", [x, w, b], shape, x.dtype, "fc", out,
                     fusedActivationFunction="NONE", weightsFormat="DEFAULT", keepNumDims=keep)


def broadcast_batch(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """Numpy broadcast of two batch shapes, or None when they are incompatible."""
    try:
        return tuple(int(d) for d in np.broadcast_shapes(a, b))
    except ValueError:
        return None


def merge_batch_dims(a: tuple[int, ...], b: tuple[int, ...]
                     ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Collapse adjacent batch dims that broadcast the same way in both operands.

    Both batch shapes are first extended to a common rank. Adjacent dims merge when each
    operand either matches the broadcast dim in all of them or is 1 in all of them, so the
    merged product broadcasts exactly like the original dims. Returns the merged shapes.
    """
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + tuple(a)
    b = (1,) * (rank - len(b)) + tuple(b)
    groups: list[tuple[tuple[bool, bool], int, int]] = []  # (kind, a product, b product)
    for da, db in zip(a, b):
        out = max(da, db)
        if out == 1:
            continue  # a size-1 dim in both operands carries nothing
        kind = (da == out, db == out)
        if groups and groups[-1][0] == kind:
            _, pa, pb = groups[-1]
            groups[-1] = (kind, pa * da, pb * db)
        else:
            groups.append((kind, da, db))
    return tuple(g[1] for g in groups), tuple(g[2] for g in groups)


def _batch_matmul(ctx: LowerContext, a: Tensor, b: Tensor, adj_x: bool, adj_y: bool,
                  out: Tensor | None = None) -> Tensor:
    """BATCH_MATMUL with batch broadcasting; both operands have rank >= 2.

    LiteRT's builtin kernel takes operands of rank <= 5; higher ranks are reshaped by
    merging batch dims that broadcast alike, when that brings them within the limit.
    """
    m = a.shape[-1] if adj_x else a.shape[-2]
    n = b.shape[-2] if adj_y else b.shape[-1]
    batch = broadcast_batch(a.shape[:-2], b.shape[:-2])
    if batch is None:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"batch dims {list(a.shape[:-2])} and {list(b.shape[:-2])} do not broadcast")
    shape = batch + (m, n)
    if max(a.rank, b.rank) <= _MAX_BATCH_MATMUL_RANK:
        return ctx.emit1("BATCH_MATMUL", [a, b], shape, a.dtype, "matmul", out,
                         adjX=bool(adj_x), adjY=bool(adj_y), asymmetricQuantizeInputs=False)
    batch_a, batch_b = merge_batch_dims(a.shape[:-2], b.shape[:-2])
    if len(batch_a) + 2 > _MAX_BATCH_MATMUL_RANK:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"matmul of ranks {a.rank} and {b.rank} exceeds LiteRT BATCH_MATMUL's rank "
                       f"{_MAX_BATCH_MATMUL_RANK} and its batch dims cannot be merged")
    a2 = ctx.reshape(a, batch_a + a.shape[-2:])
    b2 = ctx.reshape(b, batch_b + b.shape[-2:])
    merged = tuple(max(x, y) for x, y in zip(batch_a, batch_b)) + (m, n)
    y = ctx.emit1("BATCH_MATMUL", [a2, b2], merged, a.dtype, "matmul",
                  adjX=bool(adj_x), adjY=bool(adj_y), asymmetricQuantizeInputs=False)
    return ctx.reshape(y, shape, out=out)


def _check_float(ctx: LowerContext, indices: tuple[int, ...], what: str) -> None:
    for i in indices:
        if ctx.has_input(i) and ctx.in_dtype(i) != _F32:
            raise ctx.fail(Reason.UNSUPPORTED_DTYPE,
                           f"{what} input {i} has dtype {ctx.in_dtype(i).name}; only float32 is supported")


# ---------------------------------------------------------------------------------------
# MatMul
# ---------------------------------------------------------------------------------------
@lowering("MatMul", since=7, onnx_dtypes=_ONNX_DTYPES, dtypes=("float32", "bfloat16", "float16"),
          verified=("float32", "bfloat16", "float16"))
# bfloat16/float16: products are exact in float32; sums accumulate in float32 and are rounded once.
@float32_route(np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16))
def lower_matmul(node: NodeView, ctx: LowerContext) -> None:
    """numpy.matmul: 1-D operands are promoted (and the added dim removed afterwards)."""
    _check_float(ctx, (0, 1), "MatMul")
    a, b = ctx.input(0), ctx.input(1)
    if a.rank == 0 or b.rank == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "MatMul operands must have rank >= 1")
    k = a.shape[-1]
    if (b.shape[0] if b.rank == 1 else b.shape[-2]) != k:
        raise ctx.fail(Reason.INVALID_MODEL, f"MatMul inner dims differ: {list(a.shape)} x {list(b.shape)}")
    out_shape = _matmul_shape(a.shape, b.shape)
    if out_shape is None:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"MatMul batch dims of {list(a.shape)} and {list(b.shape)} do not broadcast")
    out = ctx.output(0, out_shape, a.dtype)
    a2 = a if a.rank >= 2 else ctx.reshape(a, (1, k))
    b_const = ctx.const(1)
    if b_const is not None and b.rank <= 2 and not a.is_const:
        weights = b_const.reshape(k, -1).T  # (N, K)
        _emit_then_reshape(ctx, lambda o: _fully_connected(ctx, a2, weights, None, o),
                           tuple(a2.shape[:-1]) + (weights.shape[0],), out)
        return
    b2 = b if b.rank >= 2 else ctx.reshape(b, (k, 1))
    batch = broadcast_batch(a2.shape[:-2], b2.shape[:-2]) or ()
    # B = transpose(S) over its last two axes: read S with adjY instead (the TRANSPOSE is left
    # for dead-code elimination when nothing else reads it).
    source = swapped_source(ctx.graph.operators, b2)
    b3, adj_y = (source, True) if source is not None else (b2, False)
    _emit_then_reshape(ctx, lambda o: _batch_matmul(ctx, a2, b3, False, adj_y, o),
                       batch + (a2.shape[-2], b2.shape[-1]), out)


def swapped_source(operators: list[Operator], t: Tensor) -> Tensor | None:
    """The input ``S`` when ``t`` is the output of a TRANSPOSE swapping only the last two axes of
    a run-time tensor ``S`` (rank >= 2), else None."""
    if t.is_const or t.rank < 2:
        return None
    producer = next((op for op in reversed(operators) if any(o is t for o in op.outputs)), None)
    if producer is None or producer.opcode != "TRANSPOSE" or len(producer.inputs) != 2:
        return None
    src, perm = producer.inputs
    if src is None or perm is None or perm.data is None or src.is_const:
        return None
    swap = tuple(range(t.rank - 2)) + (t.rank - 1, t.rank - 2)
    if tuple(int(p) for p in np.asarray(perm.data).reshape(-1)) != swap:
        return None
    return src


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """numpy.matmul result shape (None when the batch dims do not broadcast)."""
    a2 = a if len(a) >= 2 else (1,) + tuple(a)
    b2 = b if len(b) >= 2 else tuple(b) + (1,)
    batch = broadcast_batch(a2[:-2], b2[:-2])
    if batch is None:
        return None
    shape = batch + (a2[-2], b2[-1])
    if len(b) == 1:
        shape = shape[:-1]
    if len(a) == 1:
        shape = shape[:-2] + shape[-1:] if len(b) != 1 else shape[:-1]
    return shape


def _emit_then_reshape(ctx: LowerContext, emit, shape: tuple[int, ...], out: Tensor) -> None:
    """Emit into ``out`` directly when shapes agree, else into a temporary reshaped into ``out``."""
    if tuple(shape) == tuple(out.shape):
        emit(out)
        return
    y = emit(None)
    ctx.reshape(y, out.shape, out=out)


# ---------------------------------------------------------------------------------------
# Gemm
# ---------------------------------------------------------------------------------------
def is_per_column(c_shape: tuple[int, ...], n: int) -> bool:
    """True when C broadcasts to (M, N) identically on every row (a bias vector of length N)."""
    if len(c_shape) == 0:
        return True
    if len(c_shape) == 1:
        return c_shape[0] in (1, n)
    return len(c_shape) == 2 and c_shape[0] == 1 and c_shape[1] in (1, n)


@lowering("Gemm", since=7, onnx_dtypes=_ONNX_DTYPES, dtypes=("float32",), verified=("float32",))
def lower_gemm(node: NodeView, ctx: LowerContext) -> None:
    """Y = alpha * A' @ B' + beta * C, with A' = A^T if transA, B' = B^T if transB."""
    _check_float(ctx, (0, 1, 2), "Gemm")
    a, b = ctx.input(0), ctx.input(1)
    if a.rank != 2 or b.rank != 2:
        raise ctx.fail(Reason.INVALID_MODEL, "Gemm operands must be 2-D")
    alpha = float(node.attr("alpha", 1.0))
    beta = float(node.attr("beta", 1.0))
    trans_a = bool(node.attr("transA", 0))
    trans_b = bool(node.attr("transB", 0))
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    k_a, k_b = (a.shape[0] if trans_a else a.shape[1]), (b.shape[1] if trans_b else b.shape[0])
    if k_a != k_b:
        raise ctx.fail(Reason.INVALID_MODEL, f"Gemm inner dimensions differ: A' is {m}x{k_a}, B' is {k_b}x{n}")
    out = ctx.output(0, (m, n), a.dtype)
    use_c = ctx.has_input(2) and beta != 0.0  # beta == 0: C does not contribute
    c_const = ctx.const(2) if use_c else None
    b_const = ctx.const(1)
    add_c = use_c
    if b_const is not None and not a.is_const:
        weights = b_const if trans_b else b_const.T  # (N, K)
        if alpha != 1.0:
            weights = weights.astype(np.float64) * alpha
        bias = None
        if c_const is not None and is_per_column(c_const.shape, n):
            row = (c_const.astype(np.float64) * beta).reshape(-1)
            bias = np.broadcast_to(row, (n,))
            add_c = False
        x = ctx.transpose(a, (1, 0)) if trans_a else a
        y = _fully_connected(ctx, x, weights, bias, None if add_c else out)
    else:
        y = _batch_matmul(ctx, a, b, trans_a, trans_b, None if add_c or alpha != 1.0 else out)
        if alpha != 1.0:
            y = ctx.emit1("MUL", [y, ctx.new_const(np.float32(alpha), hint="alpha")], (m, n), _F32, "alpha",
                          None if add_c else out, fusedActivationFunction="NONE")
    if not add_c:
        return
    if c_const is not None:
        c = ctx.new_const((c_const.astype(np.float64) * beta).astype(np.float32), hint="beta_c")
    else:
        c = ctx.input(2)
        if beta != 1.0:
            c = ctx.emit1("MUL", [c, ctx.new_const(np.float32(beta), hint="beta")], c.shape, _F32, "beta_c",
                          fusedActivationFunction="NONE")
    ctx.emit("ADD", [y, c], [out], fusedActivationFunction="NONE")


# ---------------------------------------------------------------------------------------
# Einsum
# ---------------------------------------------------------------------------------------
# LiteRT's broadcasting MUL handles operands up to this rank on its builtin kernels.
_MAX_MUL_RANK = 6
_ELLIPSIS = "..."


@dataclass(frozen=True)
class EinsumSpec:
    """A parsed equation: one label tuple per operand and the output labels.

    Letters stand for themselves; the dims an ellipsis covers get the labels ``"...0"``,
    ``"...1"``, … right-aligned across operands (so ellipsis dims broadcast numpy-style).
    """

    inputs: tuple[tuple[str, ...], ...]
    output: tuple[str, ...]


def _parse_term(term: str, rank: int | None, where: str) -> tuple[list[str], bool]:
    """Letters of one term (ellipsis as a placeholder) and whether it had an ellipsis."""
    has_ellipsis = term.count(_ELLIPSIS) == 1
    rest = term.replace(_ELLIPSIS, "", 1) if has_ellipsis else term
    if term.count(_ELLIPSIS) > 1 or not all(c.isascii() and c.isalpha() for c in rest):
        raise ValueError(f"{where} term '{term}' is not letters with at most one '...'")
    if rank is not None:
        if (has_ellipsis and len(rest) > rank) or (not has_ellipsis and len(rest) != rank):
            raise ValueError(f"{where} term '{term}' does not match an operand of rank {rank}")
    labels = []
    for part in (term.split(_ELLIPSIS) if has_ellipsis else [term]):
        labels.extend(part)
        labels.append(_ELLIPSIS)
    return labels[:-1], has_ellipsis


def parse_einsum(equation: str, ranks: list[int]) -> EinsumSpec:
    """Parse an ONNX Einsum equation for operands of the given ranks (raises ValueError)."""
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise ValueError(f"equation '{equation}' has more than one '->'")
    lhs, _, rhs = eq.partition("->")
    explicit = "->" in eq
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"equation '{equation}' has {len(terms)} input terms for {len(ranks)} inputs")
    parsed = [_parse_term(t, r, "input") for t, r in zip(terms, ranks)]
    ell_ranks = [r - (len(labels) - 1) if has else 0 for (labels, has), r in zip(parsed, ranks)]
    n_ell = max(ell_ranks, default=0)
    ell_labels = tuple(f"{_ELLIPSIS}{i}" for i in range(n_ell))

    def expand(labels: list[str], count: int) -> tuple[str, ...]:
        out: list[str] = []
        for label in labels:
            out.extend(ell_labels[n_ell - count:] if label == _ELLIPSIS else [label])
        return tuple(out)

    inputs = tuple(expand(labels, e) for (labels, _), e in zip(parsed, ell_ranks))
    if explicit:
        out_labels, out_has_ellipsis = _parse_term(rhs, None, "output")
        if any(has for _, has in parsed) and not out_has_ellipsis:
            # numpy and ONNX Runtime both reject this rather than summing the ellipsis dims.
            raise ValueError(f"inputs have '...' but the output term '{rhs}' does not")
        output = expand(out_labels, n_ell)
        known = {label for term in inputs for label in term}
        missing = [c for c in output if c not in known]
        if missing or len(set(output)) != len(output):
            raise ValueError(f"output term '{rhs}' repeats a label or names one no input has")
    else:
        counts: dict[str, int] = {}
        for term in inputs:
            for label in term:
                counts[label] = counts.get(label, 0) + 1
        letters = sorted(c for c, n in counts.items() if n == 1 and not c.startswith(_ELLIPSIS))
        output = ell_labels + tuple(letters)
    return EinsumSpec(inputs, output)


def _label_sizes(spec: EinsumSpec, shapes: list[tuple[int, ...]]) -> dict[str, int]:
    """Broadcast size per label: letters must agree; ellipsis dims may be 1 (ValueError otherwise)."""
    sizes: dict[str, int] = {}
    for labels, shape in zip(spec.inputs, shapes):
        for label, d in zip(labels, shape):
            old = sizes.get(label)
            if old is None or old == d:
                sizes[label] = d
            elif label.startswith(_ELLIPSIS) and 1 in (old, d):
                sizes[label] = max(old, d)
            else:
                raise ValueError(f"label '{label}' has sizes {old} and {d}")
    return sizes


@dataclass
class _Operand:
    """A tensor and the einsum label of each of its dims."""

    t: Tensor
    labels: tuple[str, ...]


def _sum_out(ctx: LowerContext, op: _Operand, drop: set[str]) -> _Operand:
    """SUM over the dims whose labels are in ``drop``."""
    axes = [i for i, label in enumerate(op.labels) if label in drop]
    if not axes:
        return op
    kept = tuple(label for label in op.labels if label not in drop)
    shape = tuple(d for d, label in zip(op.t.shape, op.labels) if label not in drop)
    y = ctx.emit1("SUM", [op.t, ctx.new_const(np.array(axes, np.int32), hint="axes")], shape, op.t.dtype,
                  "einsum_sum", keepDims=False)
    return _Operand(y, kept)


@dataclass(frozen=True)
class _DiagonalStep:
    """How to take the diagonal over the ``k`` occurrences of one label in a term.

    The occurrences are moved next to the first one (``perm``, None when they already are),
    merged into one axis of size ``n**k`` by a reshape, and the diagonal entries
    ``j * (1 + n + ... + n**(k-1))`` are gathered along that axis: an exact index copy.
    """

    perm: tuple[int, ...] | None
    merged_shape: tuple[int, ...]
    axis: int
    indices: np.ndarray
    labels: tuple[str, ...]


def diagonal_step(labels: tuple[str, ...], shape: tuple[int, ...]) -> _DiagonalStep | None:
    """The step removing the first label repeated in ``labels`` (None when none repeats)."""
    label = next((x for x in labels if labels.count(x) > 1), None)
    if label is None:
        return None
    where = [i for i, x in enumerate(labels) if x == label]
    first = where[0]
    order = [i for i in range(len(labels)) if labels[i] != label or i == first]
    pos = order.index(first)
    order[pos:pos + 1] = where  # every occurrence right after the ones before the first
    n, k = shape[first], len(where)
    if any(shape[i] != n for i in where):
        raise ValueError(f"label '{label}' has sizes {[shape[i] for i in where]} within one term")
    moved = [shape[i] for i in order]
    merged = tuple(moved[:pos]) + (n ** k,) + tuple(moved[pos + k:])
    stride = sum(n ** m for m in range(k))
    indices = np.arange(n, dtype=np.int64) * stride
    if indices.size and indices[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"the diagonal of label '{label}' is too large for int32 gather indices")
    kept = tuple(x for i, x in enumerate(labels) if x != label or i == first)
    perm = None if order == list(range(len(labels))) else tuple(order)
    return _DiagonalStep(perm, merged, pos, indices.astype(np.int32), kept)


def _diagonal(ctx: LowerContext, op: _Operand) -> _Operand:
    """``op`` with every label repeated within its term reduced to its diagonal (one dim)."""
    while True:
        try:
            step = diagonal_step(op.labels, op.t.shape)
        except ValueError as exc:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"Einsum: {exc}") from None
        if step is None:
            return op
        if op.t.is_const:  # fold: same index arithmetic in numpy
            data = op.t.data if step.perm is None else np.transpose(op.t.data, step.perm)
            data = np.take(data.reshape(step.merged_shape), step.indices, axis=step.axis)
            op = _Operand(ctx.new_const(np.ascontiguousarray(data), hint="diagonal"), step.labels)
            continue
        t = op.t if step.perm is None else ctx.transpose(op.t, step.perm)
        t = _reshape_if(ctx, t, step.merged_shape)
        shape = step.merged_shape[:step.axis] + (step.indices.size,) + step.merged_shape[step.axis + 1:]
        y = ctx.emit1("GATHER", [t, ctx.new_const(step.indices, hint="diagonal_index")], shape, t.dtype,
                      "einsum_diagonal", axis=step.axis, batchDims=0)
        op = _Operand(y, step.labels)


def _arrange(ctx: LowerContext, op: _Operand, order: tuple[str, ...]) -> Tensor:
    """``op`` transposed so its labels follow ``order``."""
    if op.labels == order:
        return op.t
    return ctx.transpose(op.t, tuple(op.labels.index(label) for label in order))


def _dims(op: _Operand, labels: list[str]) -> tuple[int, ...]:
    return tuple(op.t.shape[op.labels.index(label)] for label in labels)


def _reshape_if(ctx: LowerContext, t: Tensor, shape: tuple[int, ...]) -> Tensor:
    return t if tuple(t.shape) == tuple(shape) else ctx.reshape(t, shape)


def _contract(ctx: LowerContext, a: _Operand, b: _Operand, keep: set[str]) -> _Operand:
    """Einsum of two operands keeping the labels in ``keep``; shared labels not kept are summed.

    No shared summed label: a broadcasting MUL. Otherwise a matmul with batch = shared kept
    labels, M = labels only in ``a``, K = shared summed labels, N = labels only in ``b``:
    FULLY_CONNECTED when ``b`` is a constant and there is no batch, else BATCH_MATMUL (adjX/adjY
    instead of a transpose when an operand already has its dims as (K, M) or (N, K)).
    """
    a = _sum_out(ctx, a, {x for x in a.labels if x not in keep and x not in b.labels})
    b = _sum_out(ctx, b, {x for x in b.labels if x not in keep and x not in a.labels})
    batch = [x for x in a.labels if x in b.labels and x in keep]
    summed = [x for x in a.labels if x in b.labels and x not in keep]
    a_only = [x for x in a.labels if x not in b.labels]
    b_only = [x for x in b.labels if x not in a.labels]
    result = tuple(batch + a_only + b_only)
    for x in summed:
        if _dims(a, [x]) != _dims(b, [x]):
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"summed ellipsis dim broadcasts ({_dims(a, [x])[0]} vs {_dims(b, [x])[0]})")
    if not summed:
        if len(result) > _MAX_MUL_RANK:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"einsum product of rank {len(result)} exceeds LiteRT MUL's rank {_MAX_MUL_RANK}")
        at = _arrange(ctx, a, tuple(batch + a_only))
        at = _reshape_if(ctx, at, tuple(at.shape) + (1,) * len(b_only))
        bt = _arrange(ctx, b, tuple(batch + b_only))
        bt = _reshape_if(ctx, bt, _dims(b, batch) + (1,) * len(a_only) + _dims(b, b_only))
        shape = tuple(max(x, y) for x, y in zip(at.shape, bt.shape))
        y = ctx.emit1("MUL", [at, bt], shape, at.dtype, "einsum_mul", fusedActivationFunction="NONE")
        return _Operand(y, result)
    if a.t.is_const and not b.t.is_const and not batch:
        return _contract(ctx, b, a, keep)  # constant on the right: FULLY_CONNECTED weights
    m = int(np.prod(_dims(a, a_only), dtype=np.int64))
    k = int(np.prod(_dims(a, summed), dtype=np.int64))
    n = int(np.prod(_dims(b, b_only), dtype=np.int64))
    final = tuple(max(x, y) for x, y in zip(_dims(a, batch), _dims(b, batch))) + _dims(a, a_only) + _dims(b, b_only)
    if b.t.is_const and not a.t.is_const and not batch:
        weights = np.transpose(b.t.data, [b.labels.index(x) for x in b_only + summed]).reshape(n, k)
        x2 = _reshape_if(ctx, _arrange(ctx, a, tuple(a_only + summed)), (m, k))
        y = _fully_connected(ctx, x2, weights, None)
        return _Operand(_reshape_if(ctx, y, final), result)
    a2, adj_x = _matmul_operand(ctx, a, batch, a_only, summed, (m, k))
    b2, adj_y = _matmul_operand(ctx, b, batch, summed, b_only, (k, n))
    y = _batch_matmul(ctx, a2, b2, adj_x, adj_y)
    return _Operand(_reshape_if(ctx, y, final), result)


def _matmul_operand(ctx: LowerContext, op: _Operand, batch: list[str], rows: list[str], cols: list[str],
                    matrix: tuple[int, int]) -> tuple[Tensor, bool]:
    """``op`` as (batch..., rows, cols) for BATCH_MATMUL, or as (batch..., cols, rows) with adj=True
    when its dims are already in that order (saves a transpose)."""
    if op.labels == tuple(batch + cols + rows) and op.labels != tuple(batch + rows + cols):
        return _reshape_if(ctx, op.t, _dims(op, batch) + matrix[::-1]), True
    t = _arrange(ctx, op, tuple(batch + rows + cols))
    return _reshape_if(ctx, t, _dims(op, batch) + matrix), False


def _bind_output(ctx: LowerContext, t: Tensor, out: Tensor) -> None:
    """Make ``out`` hold ``t``: retarget the op that just produced ``t``, else copy with a RESHAPE."""
    last = ctx.emitted[-1] if ctx.emitted else None
    if last is not None and last.outputs == [t] and tuple(t.shape) == tuple(out.shape):
        last.outputs[0] = out  # ``t`` is a fresh temporary nothing else reads
        return
    ctx.reshape(t, out.shape, out=out)


@lowering("Einsum", since=12, onnx_dtypes=_ONNX_DTYPES, dtypes=("float32", "bfloat16"),
          verified=("float32", "bfloat16"))
@via_float32  # bfloat16: products are exact in float32; sums accumulate in float32, rounded once
def lower_einsum(node: NodeView, ctx: LowerContext) -> None:
    """Einsum as SUM / TRANSPOSE / RESHAPE / MUL / FULLY_CONNECTED / BATCH_MATMUL.

    Labels an operand alone carries and the output drops are summed first; operands are then
    contracted left to right (keeping labels the output or a later operand needs); finally the
    result is transposed to the output order. A label repeated within one term (a diagonal or
    trace) is first reduced to its diagonal with a RESHAPE + GATHER of constant indices.
    """
    count = len(node.inputs)
    if count == 0:
        raise ctx.fail(Reason.INVALID_MODEL, "Einsum needs at least one input")
    _check_float(ctx, tuple(range(count)), "Einsum")
    equation = str(node.attr("equation", ""))
    operands = [ctx.input(i) for i in range(count)]
    try:
        spec = parse_einsum(equation, [t.rank for t in operands])
        sizes = _label_sizes(spec, [t.shape for t in operands])
    except ValueError as exc:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"Einsum equation '{equation}': {exc}") from None
    out = ctx.output(0, tuple(sizes[x] for x in spec.output), _F32)
    ops = [_diagonal(ctx, _Operand(t, labels)) for t, labels in zip(operands, spec.inputs)]
    output = set(spec.output)
    for i, op in enumerate(ops):
        elsewhere = {x for j, other in enumerate(ops) if j != i for x in other.labels}
        ops[i] = _sum_out(ctx, op, {x for x in op.labels if x not in output and x not in elsewhere})
    cur = ops[0]
    for i in range(1, len(ops)):
        keep = output | {x for later in ops[i + 1:] for x in later.labels}
        cur = _contract(ctx, cur, ops[i], keep)
    cur = _sum_out(ctx, cur, {x for x in cur.labels if x not in output})
    y = _arrange(ctx, cur, spec.output)
    if y.is_const:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "Einsum of constants only should have been folded")
    _bind_output(ctx, y, out)

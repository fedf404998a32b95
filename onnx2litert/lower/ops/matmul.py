"""Lowerings of the matmul family (see the package docstring for the op list).

- Gemm: constant B -> FULLY_CONNECTED (weights (N, K) with alpha folded in; beta*C folded into
  the bias when C is per-column, else an ADD); run-time B -> BATCH_MATMUL (adjX/adjY).
- MatMul: numpy matmul semantics (1-D operands, batch broadcasting); a constant 1-D/2-D B ->
  FULLY_CONNECTED (keepNumDims for rank > 2 inputs); otherwise BATCH_MATMUL.
"""
from __future__ import annotations

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import FLOATS, lowering

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
@lowering("MatMul", since=7, onnx_dtypes=_ONNX_DTYPES, dtypes=("float32",), verified=("float32",))
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
    _emit_then_reshape(ctx, lambda o: _batch_matmul(ctx, a2, b2, False, False, o),
                       batch + (a2.shape[-2], b2.shape[-1]), out)


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

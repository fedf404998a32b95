"""Lowerings of the normalization family (see the package docstring for the op list).

- BatchNormalization (inference form) -> MUL + ADD with per-channel constants in ONNX layout
  (a later pass folds them into a preceding convolution), or SUB/ADD/RSQRT/MUL/ADD when the
  statistics are computed at run time.
- InstanceNormalization -> MEAN, SQUARED_DIFFERENCE, ADD eps, RSQRT, MUL, ADD (channels-last).
- Softmax / LogSoftmax -> SOFTMAX / LOG_SOFTMAX on the last axis, with the reshape (opset < 13)
  or transpose (opset >= 13) that the ONNX axis semantics need; bfloat16 step by step in float32
  with a bfloat16 rounding after each step (``emit_bf16_softmax``, shared with Attention).
- LayerNormalization (17), GroupNormalization (18: per-group affine; 21: per-channel affine),
  MeanVarianceNormalization, RMSNormalization (23) -> MEAN, SUB, SQUARE, MEAN, ADD eps, RSQRT,
  MUL (+ MUL scale, ADD bias): the variance is the mean of squared *centered* values.
- LpNormalization (p = 1, 2) -> SUM(ABS) or SQRT(SUM(SQUARE)), MAXIMUM(norm, FLT_MIN), DIV.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering
from .elementwise import float32_route, widen

_F32 = np.dtype(np.float32)


def _float_params_or_fail(ctx: LowerContext, indices: range, what: str) -> None:
    """Fail unless every listed input is float32 (the only dtype the emitted kernels take here)."""
    for i in indices:
        if ctx.has_input(i) and ctx.in_dtype(i) != _F32:
            raise ctx.fail(Reason.UNSUPPORTED_DTYPE,
                           f"{what} input {i} has dtype {ctx.in_dtype(i).name}; only float32 is supported")


def channel_param_shape(rank: int, channels: int) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector over an ONNX (N, C, D1, ...) tensor."""
    return (channels,) + (1,) * (rank - 2)


# ---------------------------------------------------------------------------------------
# BatchNormalization
# ---------------------------------------------------------------------------------------
def _bn_param_shape(node: NodeView, x_shape: tuple[int, ...], ctx: LowerContext) -> tuple[int, ...]:
    """The broadcast shape of the BN parameters, honouring ``spatial`` (opsets 7-8)."""
    spatial = int(node.attr("spatial", 1)) if node.opset < 9 else 1
    expected = (x_shape[1],) if spatial else tuple(x_shape[1:])
    for i in range(1, 5):
        shape = ctx.in_shape(i)
        if tuple(shape) != expected:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"BatchNormalization input {i} has shape {list(shape)}; expected {list(expected)}"
                           f" for spatial={spatial}")
    # spatial=0 parameters already have the (C, D1, ...) shape that broadcasts over N.
    return channel_param_shape(len(x_shape), x_shape[1]) if spatial else tuple(x_shape[1:])


def _bn_check_inference(node: NodeView, ctx: LowerContext) -> None:
    if node.opset >= 14 and int(node.attr("training_mode", 0)) != 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       "BatchNormalization with training_mode=1 is not supported (inference form only)")
    extra = [o for o in node.outputs[1:] if o]
    if extra:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"BatchNormalization outputs beyond Y ({', '.join(extra)}) are training outputs; "
                       "only the inference form is supported")


def fold_batchnorm(scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray,
                   epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, offset) with y = x * multiplier + offset, computed in float64."""
    mult = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
    offset = bias.astype(np.float64) - mean.astype(np.float64) * mult
    return mult.astype(np.float32), offset.astype(np.float32)


@lowering("BatchNormalization", since=7, dtypes=("float32",), verified=("float32",))
def lower_batch_normalization(node: NodeView, ctx: LowerContext) -> None:
    """BatchNormalization: y = (x - mean) / sqrt(var + eps) * scale + B.

    Inference form with the given statistics; from opset 14, training_mode=1 uses the batch
    statistics and also yields the running mean / variance (see :func:`_bn_training`).
    """
    training = node.opset >= 14 and int(node.attr("training_mode", 0)) != 0
    if not training:
        _bn_check_inference(node, ctx)
    _float_params_or_fail(ctx, range(1, 5), "BatchNormalization")
    x = ctx.input(0)
    if x.rank < 2:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "BatchNormalization input must have rank >= 2")
    pshape = _bn_param_shape(node, x.shape, ctx)
    eps = float(node.attr("epsilon", 1e-5))
    if training:
        _bn_training(node, ctx, pshape, eps)
        return
    out = ctx.output(0, x.shape, x.dtype)
    params = [ctx.const(i) for i in range(1, 5)]
    if all(p is not None for p in params):
        mult, offset = fold_batchnorm(*params, eps)
        m = ctx.new_const(mult.reshape(pshape), hint="bn_mul")
        a = ctx.new_const(offset.reshape(pshape), hint="bn_add")
        y = ctx.emit1("MUL", [x, m], x.shape, x.dtype, "bn_scaled", fusedActivationFunction="NONE")
        ctx.emit("ADD", [y, a], [out], fusedActivationFunction="NONE")
        return
    # Run-time statistics: compute the same formula with ops, params reshaped to broadcast.
    scale, bias, mean, var = (_as_param(ctx, i, pshape) for i in range(1, 5))
    centered = ctx.emit1("SUB", [x, mean], x.shape, x.dtype, "bn_centered", fusedActivationFunction="NONE")
    var_eps = ctx.emit1("ADD", [var, ctx.new_const(np.float32(eps), hint="eps")], pshape, _F32, "bn_var_eps",
                        fusedActivationFunction="NONE")
    inv_std = ctx.emit1("RSQRT", [var_eps], pshape, _F32, "bn_inv_std")
    mult = ctx.emit1("MUL", [inv_std, scale], pshape, _F32, "bn_mult", fusedActivationFunction="NONE")
    y = ctx.emit1("MUL", [centered, mult], x.shape, x.dtype, "bn_scaled", fusedActivationFunction="NONE")
    ctx.emit("ADD", [y, bias], [out], fusedActivationFunction="NONE")


def _bn_training(node: NodeView, ctx: LowerContext, pshape: tuple[int, ...], eps: float) -> None:
    """training_mode=1: normalize with the batch mean / population variance over every axis
    but the channel axis; running_mean / running_var = input * momentum + batch * (1 - momentum)."""
    x = ctx.input(0)
    c = x.shape[1]
    axes = ctx.new_const(np.array([a for a in range(x.rank) if a != 1], np.int32), hint="bn_axes")
    kshape = (1, c) + (1,) * (x.rank - 2)
    mean = ctx.emit1("MEAN", [x, axes], kshape, _F32, "bn_batch_mean", keepDims=True)
    sq = ctx.emit1("SQUARED_DIFFERENCE", [x, mean], x.shape, _F32, "bn_sq")
    var = ctx.emit1("MEAN", [sq, axes], kshape, _F32, "bn_batch_var", keepDims=True)
    scale, bias = (_as_param(ctx, i, pshape) for i in (1, 2))
    centered = ctx.emit1("SUB", [x, mean], x.shape, x.dtype, "bn_centered", fusedActivationFunction="NONE")
    var_eps = ctx.emit1("ADD", [var, ctx.new_const(np.float32(eps), hint="eps")], kshape, _F32, "bn_var_eps",
                        fusedActivationFunction="NONE")
    inv_std = ctx.emit1("RSQRT", [var_eps], kshape, _F32, "bn_inv_std")
    normed = ctx.emit1("MUL", [centered, inv_std], x.shape, x.dtype, "bn_normed", fusedActivationFunction="NONE")
    y = ctx.emit1("MUL", [normed, scale], x.shape, x.dtype, "bn_scaled", fusedActivationFunction="NONE")
    ctx.emit("ADD", [y, bias], [ctx.output(0, x.shape, x.dtype)], fusedActivationFunction="NONE")
    momentum = float(node.attr("momentum", 0.9))
    for out_index, batch_stat, in_index in ((1, mean, 3), (2, var, 4)):
        if len(node.outputs) <= out_index or not node.outputs[out_index]:
            continue
        running = ctx.input(in_index)
        stat = ctx.reshape(batch_stat, running.shape)
        kept = ctx.emit1("MUL", [running, ctx.new_const(np.float32(momentum), hint="momentum")], running.shape,
                         _F32, "bn_kept", fusedActivationFunction="NONE")
        new = ctx.emit1("MUL", [stat, ctx.new_const(np.float32(1.0 - momentum), hint="one_minus_momentum")],
                        running.shape, _F32, "bn_new", fusedActivationFunction="NONE")
        ctx.emit("ADD", [kept, new], [ctx.output(out_index, running.shape, _F32)], fusedActivationFunction="NONE")


def _as_param(ctx: LowerContext, i: int, shape: tuple[int, ...]) -> Tensor:
    """Input ``i`` reshaped (constant: at conversion time) to the broadcast shape."""
    t = ctx.input(i)
    return t if tuple(t.shape) == tuple(shape) else ctx.reshape(t, shape)


# ---------------------------------------------------------------------------------------
# InstanceNormalization
# ---------------------------------------------------------------------------------------
@lowering("InstanceNormalization", since=7, dtypes=("float32",), verified=("float32",))
def lower_instance_normalization(node: NodeView, ctx: LowerContext) -> None:
    """y = scale * (x - mean) / sqrt(var + eps) + B, statistics per (n, c) over spatial axes.

    Computed channels-last so the per-channel scale and bias broadcast on the last axis and
    the surrounding transposes can cancel with neighbouring spatial ops.
    """
    _float_params_or_fail(ctx, range(1, 3), "InstanceNormalization")
    x = ctx.input(0)
    if not 3 <= x.rank <= 5:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"InstanceNormalization input of rank {x.rank} is not supported (rank 3..5)")
    channels = x.shape[1]
    for i in (1, 2):
        if tuple(ctx.in_shape(i)) != (channels,):
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"InstanceNormalization input {i} must have shape ({channels},)")
    eps = float(node.attr("epsilon", 1e-5))
    xt = ctx.to_channels_last(x)
    axes = ctx.new_const(np.arange(1, x.rank - 1, dtype=np.int32), hint="axes")
    stat_shape = (xt.shape[0],) + (1,) * (x.rank - 2) + (channels,)
    mean = ctx.emit1("MEAN", [xt, axes], stat_shape, _F32, "in_mean", keepDims=True)
    sqdiff = ctx.emit1("SQUARED_DIFFERENCE", [xt, mean], xt.shape, _F32, "in_sqdiff")
    var = ctx.emit1("MEAN", [sqdiff, axes], stat_shape, _F32, "in_var", keepDims=True)
    var_eps = ctx.emit1("ADD", [var, ctx.new_const(np.float32(eps), hint="eps")], stat_shape, _F32,
                        "in_var_eps", fusedActivationFunction="NONE")
    inv_std = ctx.emit1("RSQRT", [var_eps], stat_shape, _F32, "in_inv_std")
    scale, bias = ctx.input(1), ctx.input(2)
    mult = ctx.emit1("MUL", [inv_std, scale], stat_shape, _F32, "in_mult", fusedActivationFunction="NONE")
    centered = ctx.emit1("SUB", [xt, mean], xt.shape, _F32, "in_centered", fusedActivationFunction="NONE")
    scaled = ctx.emit1("MUL", [centered, mult], xt.shape, _F32, "in_scaled", fusedActivationFunction="NONE")
    y = ctx.emit1("ADD", [scaled, bias], xt.shape, _F32, "in_out", fusedActivationFunction="NONE")
    ctx.from_channels_last(y, out=ctx.output(0, x.shape, x.dtype))


# ---------------------------------------------------------------------------------------
# Softmax / LogSoftmax
# ---------------------------------------------------------------------------------------
_SOFTMAX = {"Softmax": "SOFTMAX", "LogSoftmax": "LOG_SOFTMAX"}
_BF16 = np.dtype(ml_dtypes.bfloat16)
# A bfloat16 sum is accumulated term by term, rounding after every addition (3 ops per term), up
# to this many terms; longer sums accumulate in float32 and round once (more accurate, but no
# longer the sequential bfloat16 order, so results may differ from it by a bfloat16 ulp).
BF16_SEQUENTIAL_SUM_LIMIT = 64


def round_bf16(ctx: LowerContext, x: Tensor, hint: str, out: Tensor | None = None) -> Tensor:
    """float32 ``x`` rounded to bfloat16 (nearest even) and back: one bfloat16 computation step."""
    if x.is_const:
        return ctx.new_const(x.data.astype(_BF16).astype(np.float32), hint=hint)
    half = ctx.emit1("CAST", [x], x.shape, _BF16, f"{hint}_bf16", inDataType=_F32, outDataType=_BF16)
    return ctx.emit1("CAST", [half], x.shape, _F32, hint, out, inDataType=_BF16, outDataType=_F32)


def _bf16_sum_last(ctx: LowerContext, x: Tensor, hint: str) -> Tensor:
    """Keep-dims sum over the last axis of float32 ``x`` (bfloat16 values), in bfloat16 arithmetic.

    Terms are added in order with a rounding after each addition (numpy's reduction order for
    bfloat16, which the reference evaluator uses); see ``BF16_SEQUENTIAL_SUM_LIMIT``.
    """
    n = x.shape[-1]
    stat_shape = x.shape[:-1] + (1,)
    if n == 1:
        return x
    if n > BF16_SEQUENTIAL_SUM_LIMIT:
        axis = ctx.new_const(np.array([x.rank - 1], np.int32), hint="axis")
        total = ctx.emit1("SUM", [x, axis], stat_shape, _F32, f"{hint}_sum_f32", keepDims=True)
        return round_bf16(ctx, total, f"{hint}_sum")
    parts = [ctx.tmp(stat_shape, _F32, f"{hint}_term{j}") for j in range(n)]
    ctx.emit("SPLIT", [ctx.new_const(np.array(x.rank - 1, np.int32), hint="axis"), x], parts, numSplits=n)
    acc = parts[0]
    for j, part in enumerate(parts[1:], 1):
        acc = ctx.emit1("ADD", [acc, part], stat_shape, _F32, f"{hint}_acc{j}_f32", fusedActivationFunction="NONE")
        acc = round_bf16(ctx, acc, f"{hint}_acc{j}")
    return acc


def emit_bf16_softmax(ctx: LowerContext, x: Tensor, log: bool = False, hint: str = "softmax",
                      out: Tensor | None = None) -> Tensor:
    """(Log)softmax over the last axis of float32 ``x`` holding bfloat16 values, computed in bfloat16.

    Every step of the reference (``x - max``, ``exp``, the sum, the division, ``log``) is computed
    in float32 and rounded to bfloat16, like numpy on bfloat16 arrays; the float32 EXP / LOG are
    within a float32 ulp of the C library's, so a result can differ only where that moves a value
    across a bfloat16 rounding boundary (rare; then by one bfloat16 ulp).
    """
    last = ctx.new_const(np.array([x.rank - 1], np.int32), hint="last_axis")
    stat_shape = x.shape[:-1] + (1,)
    top = ctx.emit1("REDUCE_MAX", [x, last], stat_shape, _F32, f"{hint}_max", keepDims=True)
    shifted = ctx.emit1("SUB", [x, top], x.shape, _F32, f"{hint}_shift_f32", fusedActivationFunction="NONE")
    shifted = round_bf16(ctx, shifted, f"{hint}_shift")
    exps = round_bf16(ctx, ctx.emit1("EXP", [shifted], x.shape, _F32, f"{hint}_exp_f32"), f"{hint}_exp")
    total = _bf16_sum_last(ctx, exps, hint)
    probs = ctx.emit1("DIV", [exps, total], x.shape, _F32, f"{hint}_div_f32", fusedActivationFunction="NONE")
    probs = round_bf16(ctx, probs, f"{hint}_probs", None if log else out)
    if not log:
        return probs
    return round_bf16(ctx, ctx.emit1("LOG", [probs], x.shape, _F32, f"{hint}_log_f32"), f"{hint}_log", out)


def _emit_last_axis_softmax(op_type: str, x: Tensor, ctx: LowerContext, out: Tensor | None = None,
                            bf16: bool = False) -> Tensor:
    if bf16:
        return emit_bf16_softmax(ctx, x, log=op_type == "LogSoftmax", out=out)
    opts = {"beta": 1.0} if op_type == "Softmax" else {}
    return ctx.emit1(_SOFTMAX[op_type], [x], x.shape, x.dtype, "softmax", out, **opts)


def swap_last_perm(rank: int, axis: int) -> tuple[int, ...]:
    """Permutation swapping ``axis`` with the last axis (its own inverse)."""
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    return tuple(perm)


@lowering("Softmax", "LogSoftmax", since=7, dtypes=("float32", "bfloat16", "float16"),
          verified=("float32", "bfloat16", "float16"))
@float32_route(np.dtype(np.float16))  # float16: computed in float32, rounded to float16 once
def lower_softmax(node: NodeView, ctx: LowerContext) -> None:
    """Softmax/LogSoftmax; opset < 13 flattens to 2-D at ``axis``, opset >= 13 uses one axis.

    bfloat16 is computed in float32 with a rounding to bfloat16 after every step of the
    reference (``emit_bf16_softmax``): CAST in (exact), the steps, CAST out (exact).
    """
    x = ctx.input(0)
    rank = x.rank
    if rank == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{node.op_type} of a scalar is not supported")
    legacy = node.opset < 13
    axis = int(node.attr("axis", 1 if legacy else -1))
    if not -rank <= axis < rank:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    bf16 = x.dtype == _BF16
    if bf16 and legacy:
        raise ctx.fail(Reason.INVALID_MODEL, f"{node.op_type}-{node.opset} does not take bfloat16 (opset 13 added it)")
    final = ctx.output(0, x.shape, x.dtype)
    if bf16:
        x = widen(ctx, x, _F32, "x_f32")
    out = ctx.tmp(x.shape, _F32, "softmax_f32") if bf16 else final
    if legacy and axis != rank - 1:
        # Opset < 13 coerces the input to 2-D (prod(shape[:axis]), prod(shape[axis:])).
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        flat = ctx.reshape(x, (outer, x.size // max(outer, 1)))
        y = _emit_last_axis_softmax(node.op_type, flat, ctx, bf16=bf16)
        ctx.reshape(y, x.shape, out=out)
    elif axis == rank - 1:
        _emit_last_axis_softmax(node.op_type, x, ctx, out, bf16=bf16)
    else:
        perm = swap_last_perm(rank, axis)
        y = _emit_last_axis_softmax(node.op_type, ctx.transpose(x, perm), ctx, bf16=bf16)
        ctx.transpose(y, perm, out=out)
    if bf16:  # the values are bfloat16 already: this CAST is exact
        ctx.emit("CAST", [out], [final], inDataType=_F32, outDataType=_BF16)


# ---------------------------------------------------------------------------------------
# Shared standardization helpers (LayerNormalization, GroupNormalization, MVN, RMSNorm)
# ---------------------------------------------------------------------------------------
def trailing_axes(rank: int, axis: int) -> tuple[int, ...] | None:
    """The axes ``[axis, rank)`` for a possibly negative ``axis``; None when out of range."""
    if not -rank <= axis < rank:
        return None
    axis = axis + rank if axis < 0 else axis
    return tuple(range(axis, rank))


def _stat_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of a keep-dims reduction of ``shape`` over ``axes``."""
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _emit_standardize(ctx: LowerContext, x: Tensor, axes: tuple[int, ...], eps: float | None,
                      mean_out: Tensor | None = None, inv_std_out: Tensor | None = None,
                      out: Tensor | None = None, hint: str = "norm") -> Tensor:
    """(x - mean) * rsqrt(mean((x - mean)^2) + eps) with statistics over ``axes`` (keep dims).

    The variance is the mean of the squared *centered* values (not E[x^2] - E[x]^2), which
    avoids cancellation when the mean is large compared with the spread. ``eps=None`` adds
    nothing before the RSQRT. ``mean_out``/``inv_std_out`` receive the statistics when given.
    """
    axes_t = ctx.new_const(np.array(axes, np.int32), hint="axes")
    sshape = _stat_shape(x.shape, axes)
    mean = ctx.emit1("MEAN", [x, axes_t], sshape, _F32, f"{hint}_mean", mean_out, keepDims=True)
    centered = ctx.emit1("SUB", [x, mean], x.shape, _F32, f"{hint}_centered", fusedActivationFunction="NONE")
    sq = ctx.emit1("SQUARE", [centered], x.shape, _F32, f"{hint}_sq")
    var = ctx.emit1("MEAN", [sq, axes_t], sshape, _F32, f"{hint}_var", keepDims=True)
    if eps is not None:
        var = ctx.emit1("ADD", [var, ctx.new_const(np.float32(eps), hint="eps")], sshape, _F32,
                        f"{hint}_var_eps", fusedActivationFunction="NONE")
    inv_std = ctx.emit1("RSQRT", [var], sshape, _F32, f"{hint}_inv_std", inv_std_out)
    return ctx.emit1("MUL", [centered, inv_std], x.shape, _F32, f"{hint}_normalized", out,
                     fusedActivationFunction="NONE")


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when ``shape`` broadcasts unidirectionally to ``target`` (result shape == target)."""
    try:
        return tuple(np.broadcast_shapes(tuple(shape), tuple(target))) == tuple(target)
    except ValueError:
        return False


def _check_stash_type(node: NodeView, ctx: LowerContext) -> None:
    stash = int(node.attr("stash_type", 1))
    if stash != 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{node.op_type} stash_type={stash} is not supported (only 1: float32 statistics)")


def _emit_affine(ctx: LowerContext, y: Tensor, scale: Tensor | None, bias: Tensor | None, out: Tensor,
                 hint: str) -> None:
    """out = y * scale + bias (either may be absent); the last op writes ``out``."""
    if scale is not None:
        y = ctx.emit1("MUL", [y, scale], y.shape, _F32, f"{hint}_scaled", None if bias is not None else out,
                      fusedActivationFunction="NONE")
    if bias is not None:
        ctx.emit("ADD", [y, bias], [out], fusedActivationFunction="NONE")


# ---------------------------------------------------------------------------------------
# LayerNormalization
# ---------------------------------------------------------------------------------------
def _normalized_input(node: NodeView, ctx: LowerContext) -> tuple[Tensor, tuple[int, ...]]:
    """X and the axes [axis, rank) that LayerNormalization / RMSNormalization normalize over."""
    x = ctx.input(0)
    if x.rank == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{node.op_type} of a scalar is not supported")
    axis = int(node.attr("axis", -1))
    axes = trailing_axes(x.rank, axis)
    if axes is None:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"axis {axis} is out of range for rank {x.rank}")
    return x, axes


@lowering("LayerNormalization", since=17, dtypes=("float32",), verified=("float32",))
def lower_layer_normalization(node: NodeView, ctx: LowerContext) -> None:
    """Standardize over axes [axis, rank), then Y = normalized * Scale + B.

    Optional outputs Mean and InvStdDev (shape X.shape[:axis] + 1s) are the keep-dims
    statistics the computation produces anyway.
    """
    _check_stash_type(node, ctx)
    _float_params_or_fail(ctx, range(1, 3), "LayerNormalization")
    x, axes = _normalized_input(node, ctx)
    scale = ctx.input(1)
    bias = ctx.optional_input(2)
    for name, t in (("Scale", scale), ("B", bias)):
        if t is not None and not _broadcasts_to(t.shape, x.shape):
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"LayerNormalization {name} shape {list(t.shape)} does not broadcast to {list(x.shape)}")
    sshape = _stat_shape(x.shape, axes)
    want = [i < len(node.outputs) and bool(node.outputs[i]) for i in range(3)]
    mean_out = ctx.output(1, sshape, _F32) if want[1] else None
    inv_out = ctx.output(2, sshape, _F32) if want[2] else None
    eps = float(node.attr("epsilon", 1e-5))
    y = _emit_standardize(ctx, x, axes, eps, mean_out, inv_out, hint="ln")
    _emit_affine(ctx, y, scale, bias, ctx.output(0, x.shape, x.dtype), "ln")


# ---------------------------------------------------------------------------------------
# GroupNormalization
# ---------------------------------------------------------------------------------------
@lowering("GroupNormalization", since=18, dtypes=("float32",), verified=("float32",))
def lower_group_normalization(node: NodeView, ctx: LowerContext) -> None:
    """Statistics per (instance, group of C/G channels); affine per group (opset 18) or per channel (21+).

    X (N, C, D...) is reshaped to (N, G, C/G * prod(D)) and standardized over the last axis.
    Opset 18 applies its (G,) scale and bias in that grouped view; opset 21 reshapes back
    first and applies its (C,) scale and bias per channel.
    """
    _check_stash_type(node, ctx)
    _float_params_or_fail(ctx, range(1, 3), "GroupNormalization")
    x = ctx.input(0)
    if x.rank < 2:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "GroupNormalization input must have rank >= 2")
    groups = node.attr("num_groups")
    channels = x.shape[1]
    if groups is None or int(groups) <= 0 or channels % int(groups) != 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"num_groups={groups} must be positive and divide the {channels} channels")
    groups = int(groups)
    per_group = node.opset < 21
    pcount = groups if per_group else channels
    for i in (1, 2):
        if int(np.prod(ctx.in_shape(i), dtype=np.int64)) != pcount or len(ctx.in_shape(i)) != 1:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"GroupNormalization-{node.opset} input {i} must have shape ({pcount},)")
    grouped = (x.shape[0], groups, x.size // max(x.shape[0] * groups, 1))
    xg = ctx.reshape(x, grouped)
    out = ctx.output(0, x.shape, x.dtype)
    y = _emit_standardize(ctx, xg, (2,), float(node.attr("epsilon", 1e-5)), hint="gn")
    if per_group:
        scale, bias = (_as_param(ctx, i, (groups, 1)) for i in (1, 2))
        y = ctx.emit1("MUL", [y, scale], grouped, _F32, "gn_scaled", fusedActivationFunction="NONE")
        y = ctx.emit1("ADD", [y, bias], grouped, _F32, "gn_shifted", fusedActivationFunction="NONE")
        ctx.reshape(y, x.shape, out=out)
        return
    y = ctx.reshape(y, x.shape)
    pshape = channel_param_shape(x.rank, channels)
    _emit_affine(ctx, y, _as_param(ctx, 1, pshape), _as_param(ctx, 2, pshape), out, "gn")


# ---------------------------------------------------------------------------------------
# MeanVarianceNormalization
# ---------------------------------------------------------------------------------------
# ONNX's function body (and ONNX Runtime) divide by sqrt(var) + 1e-9; under RSQRT the tiny
# constant moves inside the root, where for any variance that float32 can normalize
# meaningfully (var >> 1e-18) the difference is far below float32 resolution.
_MVN_EPS = 1e-18


@lowering("MeanVarianceNormalization", since=9, dtypes=("float32",), verified=("float32",))
def lower_mean_variance_normalization(node: NodeView, ctx: LowerContext) -> None:
    """(X - E[X]) / sqrt(E[(X - E[X])^2]) over ``axes`` (default [0, 2, 3])."""
    x = ctx.input(0)
    given = [int(a) for a in node.attr("axes", [0, 2, 3])]
    axes = []
    for a in given:
        if not -x.rank <= a < x.rank:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"axes {given} are out of range for rank {x.rank}")
        axes.append(a + x.rank if a < 0 else a)
    if not axes or len(set(axes)) != len(axes):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"axes {given} must be non-empty and distinct")
    _emit_standardize(ctx, x, tuple(sorted(axes)), _MVN_EPS, out=ctx.output(0, x.shape, x.dtype), hint="mvn")


# ---------------------------------------------------------------------------------------
# LpNormalization
# ---------------------------------------------------------------------------------------
# Smallest normal float32: a zero norm becomes this, so an all-zero row divides to 0 as ONNX
# defines (instead of 0/0 = NaN), while every norm float32 represents normally is unchanged.
_FLT_MIN = np.float32(np.finfo(np.float32).tiny)


@lowering("LpNormalization", since=7, dtypes=("float32",), verified=("float32",))
def lower_lp_normalization(node: NodeView, ctx: LowerContext) -> None:
    """x / ||x||_p along ``axis`` (p = 1: SUM(ABS), p = 2: SQRT(SUM(SQUARE))); zero norm gives 0."""
    x = ctx.input(0)
    p = int(node.attr("p", 2))
    if p not in (1, 2):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"LpNormalization p={p} is not supported (1 or 2)")
    if x.rank == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "LpNormalization of a scalar is not supported")
    axis = int(node.attr("axis", -1))
    if not -x.rank <= axis < x.rank:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"axis {axis} is out of range for rank {x.rank}")
    axis = axis + x.rank if axis < 0 else axis
    sshape = _stat_shape(x.shape, (axis,))
    axes_t = ctx.new_const(np.array([axis], np.int32), hint="axes")
    mag = ctx.emit1("ABS" if p == 1 else "SQUARE", [x], x.shape, _F32, "lp_mag")
    norm = ctx.emit1("SUM", [mag, axes_t], sshape, _F32, "lp_sum", keepDims=True)
    if p == 2:
        norm = ctx.emit1("SQRT", [norm], sshape, _F32, "lp_norm")
    norm = ctx.emit1("MAXIMUM", [norm, ctx.new_const(_FLT_MIN, hint="flt_min")], sshape, _F32, "lp_safe")
    ctx.emit("DIV", [x, norm], [ctx.output(0, x.shape, x.dtype)], fusedActivationFunction="NONE")


# ---------------------------------------------------------------------------------------
# RMSNormalization (opset 23)
# ---------------------------------------------------------------------------------------
@lowering("RMSNormalization", since=23, dtypes=("float32",), verified=("float32",))
def lower_rms_normalization(node: NodeView, ctx: LowerContext) -> None:
    """Y = X * rsqrt(mean(X^2 over [axis, rank)) + eps) * scale."""
    _check_stash_type(node, ctx)
    _float_params_or_fail(ctx, range(1, 2), "RMSNormalization")
    x, axes = _normalized_input(node, ctx)
    scale = ctx.input(1)
    if not _broadcasts_to(scale.shape, x.shape):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"RMSNormalization scale shape {list(scale.shape)} does not broadcast to {list(x.shape)}")
    sshape = _stat_shape(x.shape, axes)
    axes_t = ctx.new_const(np.array(axes, np.int32), hint="axes")
    sq = ctx.emit1("SQUARE", [x], x.shape, _F32, "rms_sq")
    ms = ctx.emit1("MEAN", [sq, axes_t], sshape, _F32, "rms_mean_sq", keepDims=True)
    ms = ctx.emit1("ADD", [ms, ctx.new_const(np.float32(node.attr("epsilon", 1e-5)), hint="eps")], sshape, _F32,
                   "rms_eps", fusedActivationFunction="NONE")
    inv = ctx.emit1("RSQRT", [ms], sshape, _F32, "rms_inv")
    y = ctx.emit1("MUL", [x, inv], x.shape, _F32, "rms_normalized", fusedActivationFunction="NONE")
    ctx.emit("MUL", [y, scale], [ctx.output(0, x.shape, x.dtype)], fusedActivationFunction="NONE")

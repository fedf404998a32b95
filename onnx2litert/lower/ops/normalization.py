"""Lowerings of the normalization family (see the package docstring for the op list).

- BatchNormalization (inference form) -> MUL + ADD with per-channel constants in ONNX layout
  (a later pass folds them into a preceding convolution), or SUB/ADD/RSQRT/MUL/ADD when the
  statistics are computed at run time.
- InstanceNormalization -> MEAN, SQUARED_DIFFERENCE, ADD eps, RSQRT, MUL, ADD (channels-last).
- Softmax / LogSoftmax -> SOFTMAX / LOG_SOFTMAX on the last axis, with the reshape (opset < 13)
  or transpose (opset >= 13) that the ONNX axis semantics need.
"""
from __future__ import annotations

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering

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
    """Inference BatchNormalization: y = (x - mean) / sqrt(var + eps) * scale + B."""
    _bn_check_inference(node, ctx)
    _float_params_or_fail(ctx, range(1, 5), "BatchNormalization")
    x = ctx.input(0)
    if x.rank < 2:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "BatchNormalization input must have rank >= 2")
    pshape = _bn_param_shape(node, x.shape, ctx)
    eps = float(node.attr("epsilon", 1e-5))
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


def _emit_last_axis_softmax(op_type: str, x: Tensor, ctx: LowerContext, out: Tensor | None = None) -> Tensor:
    opts = {"beta": 1.0} if op_type == "Softmax" else {}
    return ctx.emit1(_SOFTMAX[op_type], [x], x.shape, x.dtype, "softmax", out, **opts)


def swap_last_perm(rank: int, axis: int) -> tuple[int, ...]:
    """Permutation swapping ``axis`` with the last axis (its own inverse)."""
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    return tuple(perm)


@lowering("Softmax", "LogSoftmax", since=7, dtypes=("float32",), verified=("float32",))
def lower_softmax(node: NodeView, ctx: LowerContext) -> None:
    """Softmax/LogSoftmax; opset < 13 flattens to 2-D at ``axis``, opset >= 13 uses one axis."""
    x = ctx.input(0)
    rank = x.rank
    if rank == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{node.op_type} of a scalar is not supported")
    legacy = node.opset < 13
    axis = int(node.attr("axis", 1 if legacy else -1))
    if not -rank <= axis < rank:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    out = ctx.output(0, x.shape, x.dtype)
    if legacy and axis != rank - 1:
        # Opset < 13 coerces the input to 2-D (prod(shape[:axis]), prod(shape[axis:])).
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        flat = ctx.reshape(x, (outer, x.size // max(outer, 1)))
        y = _emit_last_axis_softmax(node.op_type, flat, ctx)
        ctx.reshape(y, x.shape, out=out)
        return
    if axis == rank - 1:
        _emit_last_axis_softmax(node.op_type, x, ctx, out)
        return
    perm = swap_last_perm(rank, axis)
    xt = ctx.transpose(x, perm)
    y = _emit_last_axis_softmax(node.op_type, xt, ctx)
    ctx.transpose(y, perm, out=out)


"""Losses: SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss (opset 12+).

Both work on (N, C, D) views of their (N, C, d1, ..., dk) input (D = d1 * ... * dk, 1 for a 2-D
input) and (N, D) views of the int32/int64 labels, so every LiteRT op stays rank <= 3:

- SoftmaxCrossEntropyLoss: TRANSPOSE to (N, D, C), LOG_SOFTMAX on the last axis (the optional
  ``log_prob`` output is that, transposed and reshaped back), then the NLL below on class axis 2.
- NegativeLogLikelihoodLoss: the NLL on class axis 1 of the (N, C, D) view.

The NLL picks the labelled log-probability with ONE_HOT(labels) (float 1/0) * input summed over
the class axis, negated. An ignored label is remapped to -1 first (when ``ignore_index`` lies in
[0, C); labels outside that range already give an all-zero one-hot row), so its loss and its
weight are 0. Class weights multiply the one-hot rows (SUM of them gives the applied weight).

Reductions: 'none' reshapes to the label shape; 'sum' SUMs; 'mean' divides the sum by the sum
of the applied weights when weights or ignore_index are given (spec, ONNX Runtime and PyTorch:
ignored samples do not count), else it is the plain MEAN.
"""
from __future__ import annotations

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering

_F32 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)
_LABEL_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_REDUCTIONS = ("none", "sum", "mean")


def _reduce(ctx: LowerContext, opcode: str, x: Tensor, axes: tuple[int, ...], keep: bool, hint: str,
            out: Tensor | None = None) -> Tensor:
    """SUM / MEAN over ``axes``."""
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else \
        tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return ctx.emit1(opcode, [x, ctx.new_const(np.array(axes, np.int32), hint="axes")], shape, x.dtype, hint, out,
                     keepDims=keep)


def _binary(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor, hint: str,
            out: Tensor | None = None, dtype: np.dtype | None = None) -> Tensor:
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    opts = {"fusedActivationFunction": "NONE"} if opcode in ("ADD", "SUB", "MUL", "DIV") else {}
    return ctx.emit1(opcode, [a, b], shape, dtype or a.dtype, hint, out, **opts)


def _check(node: NodeView, ctx: LowerContext) -> tuple[str, int | None, tuple[int, int, int]]:
    """Validate attributes and shapes; return (reduction, ignore_index, (N, C, D))."""
    reduction = node.attr("reduction", "mean")
    if reduction not in _REDUCTIONS:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"reduction '{reduction}' is not none/sum/mean")
    x, labels = ctx.input(0), ctx.input(1)
    if x.dtype != _F32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"input dtype {x.dtype.name} is not supported (float32 only)")
    if labels.dtype not in _LABEL_DTYPES:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"label dtype {labels.dtype.name} is not int32/int64")
    if x.rank < 2:
        raise ctx.fail(Reason.INVALID_MODEL, f"input must be (N, C, ...), got shape {list(x.shape)}")
    n, c = x.shape[:2]
    if labels.shape != (n,) + x.shape[2:]:
        raise ctx.fail(Reason.INVALID_MODEL, f"labels shape {list(labels.shape)} does not match input "
                                             f"{list(x.shape)}")
    if ctx.has_input(2):
        w = ctx.input(2)
        if w.dtype != _F32 or w.shape != (c,):
            raise ctx.fail(Reason.INVALID_MODEL, f"weight must be float32 of shape [{c}], got "
                                                 f"{w.dtype.name} {list(w.shape)}")
    if x.size == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "empty inputs are not supported")
    ii = node.attr("ignore_index")
    d = int(np.prod(x.shape[2:], dtype=np.int64))
    return reduction, (None if ii is None else int(ii)), (n, c, d)


def _nll(ctx: LowerContext, logp: Tensor, axis: int, reduction: str, ignore_index: int | None,
         out: Tensor) -> None:
    """Weighted NLL of ``logp`` ((N, C, D) with axis 1, or (N, D, C) with axis 2) into ``out``."""
    labels = ctx.input(1)
    n = labels.shape[0]
    c = logp.shape[axis]
    d = labels.size // n
    labels = ctx.reshape(labels, (n, d))
    if ignore_index is not None and 0 <= ignore_index < c:
        # Only an in-range ignore_index needs a remap; out-of-range labels one-hot to zeros.
        ignored = _binary(ctx, "EQUAL", labels, ctx.new_const(np.array(ignore_index, labels.dtype), hint="ii"),
                          "ignored", dtype=_BOOL)
        labels = ctx.emit1("SELECT_V2", [ignored, ctx.new_const(np.array(-1, labels.dtype), hint="minus_one"),
                                         labels], labels.shape, labels.dtype, "labels_kept")
    hot_shape = (n, c, d) if axis == 1 else (n, d, c)
    picks = ctx.emit1("ONE_HOT", [labels, ctx.new_const(np.array(c, np.int32), hint="depth"),
                                  ctx.new_const(np.float32(1), hint="on"), ctx.new_const(np.float32(0), hint="off")],
                      hot_shape, _F32, "one_hot", axis=axis)
    weighted = ctx.has_input(2)
    if weighted:
        w = ctx.reshape(ctx.input(2), (c, 1) if axis == 1 else (c,))
        picks = _binary(ctx, "MUL", picks, w, "weighted_one_hot")
    picked = _reduce(ctx, "SUM", _binary(ctx, "MUL", logp, picks, "picked_all"), (axis,), False, "picked")
    if reduction == "none":
        loss = ctx.emit1("NEG", [picked], picked.shape, _F32, "loss")
        ctx.reshape(loss, out.shape, out=out)
        return
    if reduction == "sum" or (not weighted and ignore_index is None):
        # -sum and -mean: the negation moves onto the scalar.
        total = _reduce(ctx, "SUM" if reduction == "sum" else "MEAN", picked, (0, 1), False, "total")
        ctx.emit("NEG", [total], [out])
        return
    applied = _reduce(ctx, "SUM", picks, (0, 1, 2), False, "applied_weight")
    total = _reduce(ctx, "SUM", picked, (0, 1), False, "total")
    neg_total = ctx.emit1("NEG", [total], total.shape, _F32, "neg_total")
    _binary(ctx, "DIV", neg_total, applied, "loss", out)


def _loss_shape(reduction: str, labels: Tensor) -> tuple[int, ...]:
    return labels.shape if reduction == "none" else ()


@lowering("NegativeLogLikelihoodLoss", since=12, onnx_dtypes=("float32", "float16", "float64", "bfloat16"))
def lower_nll_loss(node: NodeView, ctx: LowerContext) -> None:
    """NegativeLogLikelihoodLoss via ONE_HOT * input summed over the class axis (see module doc)."""
    reduction, ii, (n, c, d) = _check(node, ctx)
    x = ctx.reshape(ctx.input(0), (n, c, d))
    out = ctx.output(0, _loss_shape(reduction, ctx.input(1)), _F32)
    _nll(ctx, x, 1, reduction, ii, out)


@lowering("SoftmaxCrossEntropyLoss", since=12, onnx_dtypes=("float32", "float16", "float64", "bfloat16"))
def lower_softmax_cross_entropy_loss(node: NodeView, ctx: LowerContext) -> None:
    """SoftmaxCrossEntropyLoss: LOG_SOFTMAX over the classes, then the NLL (see module doc)."""
    reduction, ii, (n, c, d) = _check(node, ctx)
    x = ctx.input(0)
    out = ctx.output(0, _loss_shape(reduction, ctx.input(1)), _F32)
    if d == 1:
        scores = ctx.reshape(x, (n, 1, c))
    else:
        scores = ctx.transpose(ctx.reshape(x, (n, c, d)), (0, 2, 1))
    logp = ctx.emit1("LOG_SOFTMAX", [scores], scores.shape, _F32, "log_prob")
    if len(node.outputs) > 1 and node.outputs[1]:
        log_prob_out = ctx.output(1, x.shape, _F32)
        back = logp if d == 1 else ctx.transpose(logp, (0, 2, 1))
        ctx.reshape(back, x.shape, out=log_prob_out)
    _nll(ctx, logp, 2, reduction, ii, out)

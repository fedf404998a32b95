"""Axis reversals: found, moved and cancelled by rule.

``torch.flip`` exports as a Slice with step -1. LiteRT's STRIDED_SLICE kernel walks such a
slice element by element (about 10x slower than REVERSE_V2, which copies whole inner rows),
and XNNPACK delegates neither. So:

* :func:`reversing_slices_to_reverse`: a STRIDED_SLICE that reverses one whole axis and keeps
  every other axis whole becomes REVERSE_V2 on that axis.
* :func:`sink_reversals`: a single-use REVERSE_V2 moves past an elementwise unary op reading
  it, and two reversals of the same axis in a row cancel.

CUMSUM is not moved through: a reversal passing it would turn a forward scan into LiteRT's
reverse scan, which is about 18x slower than REVERSE_V2 + forward scan + REVERSE_V2 (so the
CumSum lowering writes reverse=1 that way).
"""
from __future__ import annotations

from ..ir import Operator, Subgraph, Tensor
from .graphutil import Namer, const_value, int32_const, is_dynamic, remove_forwarding_op, run_consumer_first, \
    single_use
from .layout import UNARY_OPS

# Dtypes LiteRT's REVERSE_V2 kernel takes.
_REVERSE_DTYPES = frozenset({"float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"})
# Elementwise unary ops that commute with any permutation of the elements (per-tensor only:
# QUANTIZE / DEQUANTIZE may carry per-axis parameters).
_COMMUTING_UNARY = UNARY_OPS - {"QUANTIZE", "DEQUANTIZE"}


def _reversed_axis(op: Operator) -> int | None:
    """The one axis a STRIDED_SLICE reverses end to end, when it keeps every other axis whole."""
    if len(op.inputs) != 4 or len(op.outputs) != 1:
        return None
    x, out = op.inputs[0], op.outputs[0]
    if x is None or is_dynamic(x) or x.shape != out.shape or x.rank == 0 or x.quantization is not None:
        return None
    opts = op.options
    if any(int(opts.get(k, 0)) for k in ("beginMask", "ellipsisMask", "newAxisMask", "shrinkAxisMask")) \
            or opts.get("offset", False):
        return None
    begin, end, strides = (const_value(t) for t in op.inputs[1:])
    if begin is None or end is None or strides is None or not len(begin) == len(end) == len(strides) == x.rank:
        return None
    end_mask = int(opts.get("endMask", 0))
    reversed_axes = []
    for a, dim in enumerate(x.shape):
        b, e, s, masked = int(begin[a]), int(end[a]), int(strides[a]), bool(end_mask & (1 << a))
        b = b + dim if b < 0 else b
        if s == 1 and b == 0 and (masked or e >= dim):
            continue
        if s == -1 and b == dim - 1 and masked:
            reversed_axes.append(a)
            continue
        return None
    return reversed_axes[0] if len(reversed_axes) == 1 else None


def reversing_slices_to_reverse(sg: Subgraph) -> bool:
    """STRIDED_SLICE reversing one whole axis -> REVERSE_V2 on that axis."""
    namer = Namer(sg)
    changed = False
    for op in sg.operators:
        if op.opcode != "STRIDED_SLICE" or op.inputs[0] is None or op.inputs[0].dtype.name not in _REVERSE_DTYPES:
            continue
        axis = _reversed_axis(op)
        if axis is None:
            continue
        op.opcode = "REVERSE_V2"
        op.inputs = [op.inputs[0], int32_const(namer, f"{op.outputs[0].name}/axis", [axis])]
        op.options = {}
        changed = True
    return changed


def _reverse_axis(op: Operator) -> int | None:
    if op.opcode != "REVERSE_V2" or len(op.inputs) != 2 or op.inputs[0] is None:
        return None
    axes = const_value(op.inputs[1])
    if axes is None or axes.size != 1:
        return None
    return int(axes.reshape(-1)[0]) % max(op.inputs[0].rank, 1)


def sink_reversals(sg: Subgraph) -> bool:
    """Move REVERSE_V2 past commuting ops and cancel same-axis pairs (see module doc)."""
    namer = Namer(sg)
    changed = False
    progress = True
    while progress:
        progress = False
        consumers = sg.consumers()
        for op in sg.operators:
            axis = _reverse_axis(op)
            y = op.outputs[0]
            if axis is None or not single_use(sg, y, consumers):
                continue
            user = consumers[y][0]
            x = op.inputs[0]
            if _reverse_axis(user) == axis:
                progress = remove_forwarding_op(sg, user, x)
                if progress:
                    sg.operators.remove(op)  # its only reader is gone
            elif user.opcode in _COMMUTING_UNARY and len(user.inputs) == 1 and len(user.outputs) == 1 \
                    and user.outputs[0].shape == y.shape and user.outputs[0].quantization is None:
                run_consumer_first(sg, op, user, x, Tensor(namer(f"{user.outputs[0].name}/unreversed"),
                                                           x.shape, user.outputs[0].dtype))
                progress = True
            if progress:
                changed = True
                break
    return changed

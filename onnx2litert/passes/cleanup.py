"""Canonicalization and clean-up of shape ops and no-op arithmetic.

* :func:`canonicalize_reshapes`: SQUEEZE / EXPAND_DIMS with static shapes become RESHAPE;
  RESHAPE of RESHAPE reads the first one's input; a RESHAPE that keeps the shape is removed.
* :func:`canonicalize_clamps`: MAXIMUM(x, 0) becomes RELU, and a MINIMUM/MAXIMUM pair with
  constant bounds (0, 6), (-1, 1) becomes RELU6 / RELU_N1_TO_1 (float32 only: those kernels
  are float-only here), so activation fusion can see them. A (0, 1) clamp stays
  MINIMUM(RELU(x), 1): XNNPACK does not delegate RELU_0_TO_1, and the RELU can fuse.
* :func:`relu_before_minimum`: ``RELU(MINIMUM(x, c))`` with ``c >= 0`` becomes
  ``MINIMUM(RELU(x), c)`` (the same clamp to ``[0, c]``), so the RELU can fuse into the op
  producing ``x`` (a hard sigmoid whose scale folded into a convolution ends this way).
* :func:`drop_reshapes_around_elementwise`: ``RESHAPE(x) -> elementwise chain -> RESHAPE``
  back to ``x``'s shape, where each op is unary or takes a scalar constant, runs the chain on
  ``x`` directly (an elementwise op does not care how the elements are arranged).
* :func:`remove_noop_arithmetic`: ``x + 0``, ``x - 0``, ``x * 1``, ``x / 1`` and casts to the
  same dtype, when they neither broadcast nor carry a fused activation.
* :func:`hoist_elementwise_above_broadcast`: an elementwise op (CAST, or arithmetic with a
  scalar constant) reading a BROADCAST_TO or RESHAPE result runs on that op's input instead:
  on fewer elements after a broadcast, and next to the op that produced the input, where a
  CAST meets the CAST it undoes (index arithmetic exported as int64 and narrowed back).
"""
from __future__ import annotations

import numpy as np

from ..ir import Operator, Subgraph, Tensor
from .graphutil import (Namer, activation, int32_const, is_dynamic, is_plain_float, remove_forwarding_op,
                        run_consumer_first, single_use)


def _producers(sg: Subgraph) -> dict[int, Operator]:
    return {id(t): op for op in sg.operators for t in op.outputs}


def canonicalize_reshapes(sg: Subgraph) -> bool:
    """SQUEEZE/EXPAND_DIMS -> RESHAPE, collapse RESHAPE chains, drop shape-preserving RESHAPEs."""
    namer = Namer(sg)
    changed = False
    for op in list(sg.operators):
        if op.opcode in ("SQUEEZE", "EXPAND_DIMS") and op.inputs and not is_dynamic(op.outputs[0]) \
                and not is_dynamic(op.inputs[0]):
            op.opcode = "RESHAPE"
            op.inputs = [op.inputs[0], int32_const(namer, f"{op.outputs[0].name}/shape", op.outputs[0].shape)]
            op.options = {}
            changed = True
    producers = _producers(sg)
    for op in list(sg.operators):
        if op.opcode != "RESHAPE" or not op.inputs or op.inputs[0] is None:
            continue
        inner = producers.get(id(op.inputs[0]))
        if inner is not None and inner.opcode == "RESHAPE" and inner.inputs[0] is not None \
                and inner.inputs[0].quantization is op.inputs[0].quantization:
            op.inputs = [inner.inputs[0], *op.inputs[1:]]
            changed = True
        x, out = op.inputs[0], op.outputs[0]
        if x.shape == out.shape and not is_dynamic(out) and not is_dynamic(x) and remove_forwarding_op(sg, op, x):
            producers = _producers(sg)
            changed = True
    return changed


def _scalar_const(t: Tensor | None) -> float | None:
    if t is None or not t.is_const or t.data.size != 1:
        return None
    return float(t.data.reshape(-1)[0])


def _bound(op: Operator) -> tuple[Tensor, float] | None:
    """(variable input, constant scalar bound) of a MINIMUM/MAXIMUM."""
    if len(op.inputs) != 2:
        return None
    a, b = op.inputs
    for x, c in ((a, b), (b, a)):
        value = _scalar_const(c)
        if value is not None and x is not None and not x.is_const and x.shape == op.outputs[0].shape:
            return x, value
    return None


# (0, 1) -> RELU_0_TO_1 is left out on purpose: XNNPACK refuses RELU_0_TO_1 (see delegate.py).
_CLAMP_OPS = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1"}


def canonicalize_clamps(sg: Subgraph) -> bool:
    """MAXIMUM(x, 0) -> RELU and MIN/MAX pairs with known bounds -> one clamp activation."""
    changed = False
    producers = _producers(sg)
    consumers = sg.consumers()
    for op in list(sg.operators):
        if op.opcode not in ("MINIMUM", "MAXIMUM") or not is_plain_float(op.outputs[0]):
            continue
        found = _bound(op)
        if found is None or not is_plain_float(found[0]):
            continue
        x, value = found
        inner = producers.get(id(x))
        pair = None
        if inner is not None and single_use(sg, x, consumers):
            if inner.opcode in ("MINIMUM", "MAXIMUM") and inner.opcode != op.opcode:
                inner_found = _bound(inner)
                if inner_found is not None:
                    lo, hi = (value, inner_found[1]) if op.opcode == "MAXIMUM" else (inner_found[1], value)
                    # max(min(x, hi), lo) == min(max(x, lo), hi) only when lo <= hi.
                    if (lo, hi) in _CLAMP_OPS:
                        pair = (_CLAMP_OPS[(lo, hi)], inner_found[0])
            elif inner.opcode == "RELU" and op.opcode == "MINIMUM" and (0.0, value) in _CLAMP_OPS:
                pair = (_CLAMP_OPS[(0.0, value)], inner.inputs[0])
        if pair is not None:
            op.opcode, op.inputs, op.options = pair[0], [pair[1]], {}
            sg.operators.remove(inner)
            changed = True
        elif op.opcode == "MAXIMUM" and value == 0.0:
            op.opcode, op.inputs, op.options = "RELU", [x], {}
            changed = True
        else:
            continue
        producers = _producers(sg)
        consumers = sg.consumers()
    return changed


# Ops computing each output element from the same-position input element (and scalar constants).
_ELEMENTWISE_UNARY = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "HARD_SWISH",
                                "ABS", "NEG", "EXP", "LOG", "SQRT", "RSQRT", "SQUARE", "ELU", "GELU", "FLOOR",
                                "CEIL", "ROUND", "SIN", "COS"})
_ELEMENTWISE_BINARY = frozenset({"ADD", "SUB", "MUL", "DIV", "MINIMUM", "MAXIMUM", "POW", "SQUARED_DIFFERENCE"})


def _scalar_elementwise_input(op: Operator) -> Tensor | None:
    """The variable input of a unary op, or of a binary op whose other input is a scalar constant."""
    if len(op.outputs) != 1:
        return None
    if op.opcode in _ELEMENTWISE_UNARY and len(op.inputs) == 1:
        return op.inputs[0]
    if op.opcode in _ELEMENTWISE_BINARY and len(op.inputs) == 2:
        a, b = op.inputs
        if a is not None and b is not None and b.is_const and b.data.size == 1 and b.rank <= a.rank \
                and not a.is_const:
            return a
        if a is not None and b is not None and a.is_const and a.data.size == 1 and a.rank <= b.rank \
                and not b.is_const:
            return b
    return None


def drop_reshapes_around_elementwise(sg: Subgraph) -> bool:
    """``RESHAPE(x) -> e1 -> ... -> ek -> RESHAPE`` to ``x.shape`` becomes ``x -> e1 -> ... -> ek``.

    Each ``e`` is unary or has a scalar constant second operand, keeps its input's shape, is
    plain float32 and its input is used only by it; so the chain computes the same elements in
    the same order whatever the shape. (A layout pass turns a transpose that moves only unit
    dims into such a RESHAPE, e.g. a hard sigmoid on an (N, C, 1, 1) squeeze-excitation vector.)
    """
    changed = True
    any_change = False
    while changed:
        changed = False
        consumers = sg.consumers()
        for first in list(sg.operators):
            if first.opcode != "RESHAPE" or not first.inputs or first.inputs[0] is None:
                continue
            x, t = first.inputs[0], first.outputs[0]
            if not (is_plain_float(x) and is_plain_float(t)) or is_dynamic(x) or is_dynamic(t):
                continue
            chain: list[Operator] = []
            last = None
            while single_use(sg, t, consumers):
                user = consumers[t][0]
                if user.opcode == "RESHAPE" and user.inputs[0] is t:
                    last = user
                    break
                if _scalar_elementwise_input(user) is not t or user.outputs[0].shape != t.shape \
                        or not is_plain_float(user.outputs[0]):
                    break
                chain.append(user)
                t = user.outputs[0]
            if last is None or not chain or last.outputs[0].shape != x.shape or is_dynamic(last.outputs[0]):
                continue
            # A scalar constant of higher rank than x would broadcast x's shape up.
            if any(i is not None and i.is_const and i.rank > x.rank for op in chain for i in op.inputs):
                continue
            prev = x
            for op in chain:
                var, old = _scalar_elementwise_input(op), op.outputs[0]
                new = last.outputs[0] if op is chain[-1] else Tensor(old.name, x.shape, old.dtype)
                op.inputs = [prev if i is var else i for i in op.inputs]
                op.outputs = [new]
                prev = new
            sg.operators.remove(first)
            sg.operators.remove(last)
            changed = any_change = True
            break
    return any_change


def relu_before_minimum(sg: Subgraph) -> bool:
    """``RELU(MINIMUM(x, c))`` -> ``MINIMUM(RELU(x), c)`` for a scalar constant ``c >= 0``."""
    changed = False
    producers = _producers(sg)
    consumers = sg.consumers()
    for relu in list(sg.operators):
        if relu.opcode != "RELU" or len(relu.inputs) != 1 or not is_plain_float(relu.outputs[0]):
            continue
        m = relu.inputs[0]
        mini = producers.get(id(m))
        if mini is None or mini.opcode != "MINIMUM" or not single_use(sg, m, consumers) or not is_plain_float(m):
            continue
        found = _bound(mini)
        if found is None or not found[1] >= 0.0 or not is_plain_float(found[0]) or m.shape != relu.outputs[0].shape:
            continue
        run_consumer_first(sg, mini, relu, found[0], m)
        producers = _producers(sg)
        consumers = sg.consumers()
        changed = True
    return changed


def remove_noop_arithmetic(sg: Subgraph) -> bool:
    """Drop ``x+0``, ``x-0``, ``x*1``, ``x/1`` (no broadcast, no activation) and same-dtype CAST."""
    changed = False
    for op in list(sg.operators):
        out = op.outputs[0] if len(op.outputs) == 1 else None
        if out is None:
            continue
        src = None
        if op.opcode == "CAST" and op.inputs[0] is not None and op.inputs[0].dtype == out.dtype \
                and op.inputs[0].quantization is None and out.quantization is None:
            src = op.inputs[0]
        elif op.opcode == "CAST" and op.inputs[0] is not None:
            src = _cast_round_trip_source(sg, op)
        elif op.opcode in ("ADD", "SUB", "MUL", "DIV") and len(op.inputs) == 2 and activation(op) == "NONE" \
                and out.quantization is None:
            neutral = 0.0 if op.opcode in ("ADD", "SUB") else 1.0
            a, b = op.inputs
            candidates = [(a, b)] + ([(b, a)] if op.opcode in ("ADD", "MUL") else [])
            for x, c in candidates:
                if x is not None and c is not None and c.is_const and x.quantization is None \
                        and c.quantization is None and x.shape == out.shape and x.dtype == out.dtype \
                        and np.all(c.data == neutral):
                    src = x
                    break
        if src is not None and remove_forwarding_op(sg, op, src):
            changed = True
    return changed


def _exact_widening(src: np.dtype, dst: np.dtype) -> bool:
    """True when every ``src`` value is exactly representable in ``dst`` (so a cast back restores it)."""
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return True
    if src.kind == "b":
        return dst.kind in "biuf"
    floats = {"bfloat16": (8, 8), "float16": (11, 5), "float32": (24, 8), "float64": (53, 11)}  # (significand, exponent) bits
    if src.name in floats and dst.name in floats:
        return all(a <= b for a, b in zip(floats[src.name], floats[dst.name]))
    if src.kind in "iu" and dst.kind in "iu":
        return bool(np.can_cast(src, dst, casting="safe"))
    if src.kind in "iu" and dst.name in floats:
        return src.itemsize * 8 - (src.kind == "i") <= floats[dst.name][0]
    return False


def _cast_round_trip_source(sg: Subgraph, op: Operator) -> Tensor | None:
    """For CAST(CAST(x: a -> b) -> a) with an exact a -> b, the tensor x; else None."""
    out = op.outputs[0]
    inner = next((p for p in sg.operators if op.inputs[0] in p.outputs), None)
    if inner is None or inner.opcode != "CAST" or inner.inputs[0] is None:
        return None
    x = inner.inputs[0]
    if x.dtype != out.dtype or x.shape != out.shape or x.quantization or out.quantization \
            or op.inputs[0].quantization:
        return None
    return x if _exact_widening(x.dtype, op.inputs[0].dtype) else None


# Ops that only place elements: an elementwise op after them computes the same values before them.
_ELEMENT_MOVERS = frozenset({"BROADCAST_TO", "RESHAPE"})
# Binary ops that are elementwise when their second operand is a scalar constant.
_SCALAR_OPERAND_OPS = frozenset({"ADD", "SUB", "MUL", "DIV", "FLOOR_MOD", "FLOOR_DIV", "MAXIMUM", "MINIMUM"})


def _hoistable(op: Operator) -> bool:
    """CAST, or ``op(x, c)`` with a scalar constant ``c`` and no fused activation."""
    if len(op.outputs) != 1 or not op.inputs or op.inputs[0] is None or op.outputs[0].quantization is not None:
        return False
    if op.opcode == "CAST":
        return len(op.inputs) == 1
    if op.opcode not in _SCALAR_OPERAND_OPS or len(op.inputs) != 2 or activation(op) != "NONE":
        return False
    c = op.inputs[1]
    return c is not None and c.is_const and c.data.size == 1 and c.rank == 0 and c.quantization is None


def hoist_elementwise_above_broadcast(sg: Subgraph) -> bool:
    """``f(MOVE(x))`` -> ``MOVE(f(x))`` for MOVE in BROADCAST_TO / RESHAPE and elementwise ``f`` (see module doc)."""
    namer = Namer(sg)
    changed = False
    producers = _producers(sg)
    consumers = sg.consumers()
    for op in list(sg.operators):
        if not _hoistable(op):
            continue
        moved = op.inputs[0]
        mover = producers.get(id(moved))
        if mover is None or mover.opcode not in _ELEMENT_MOVERS or not single_use(sg, moved, consumers):
            continue
        x, y = mover.inputs[0], op.outputs[0]
        if x is None or x.quantization is not None or moved.quantization is not None or is_dynamic(x) \
                or is_dynamic(moved) or is_dynamic(y) or x.size > moved.size:
            continue
        run_consumer_first(sg, mover, op, x, Tensor(namer(f"{y.name}/hoisted"), x.shape, y.dtype))
        producers = _producers(sg)
        consumers = sg.consumers()
        changed = True
    return changed


def drop_reshape_before_fully_connected(sg: Subgraph) -> bool:
    """FULLY_CONNECTED flattens its input to (-1, K) itself, so a RESHAPE to (B, K) before it is redundant.

    Only for keepNumDims=False (the output is (B, O) either way) and when every user of the
    RESHAPE is such a FULLY_CONNECTED.
    """
    changed = False
    consumers = sg.consumers()
    for op in list(sg.operators):
        if op.opcode != "RESHAPE" or not op.inputs or op.inputs[0] is None:
            continue
        x, out = op.inputs[0], op.outputs[0]
        users = consumers.get(out, [])
        if not users or out.rank != 2 or any(t is out for t in sg.outputs) or is_dynamic(x) or is_dynamic(out):
            continue
        if x.rank < 2 or x.quantization is not out.quantization:
            continue
        if not all(u.opcode == "FULLY_CONNECTED" and u.inputs[0] is out and not u.options.get("keepNumDims", False)
                   and u.inputs[1] is not None and u.inputs[1].rank == 2 and u.inputs[1].shape[1] == out.shape[1]
                   and all(t is not out for t in u.inputs[1:]) for u in users):
            continue
        for u in users:
            u.inputs = [x, *u.inputs[1:]]
        sg.operators.remove(op)
        changed = True
    return changed

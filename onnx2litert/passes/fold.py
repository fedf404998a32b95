"""Constant folding, constant sharing and common-subexpression elimination.

* :func:`fold_constants` evaluates with numpy the ops whose inputs are all constants (shape
  ops, casts, simple arithmetic), so no run-time work is spent on values known at
  conversion time. Quantized tensors and graph outputs are left alone, and a fold that
  would make the model much larger (a broadcast, a fill) is skipped.
* :func:`share_constants` makes identical constants one tensor, so equal ops on them look
  equal to :func:`eliminate_common_ops` (the exporter already stores one buffer per content).
* :func:`eliminate_common_ops` merges ops with the same opcode, inputs and options (e.g. two
  TRANSPOSE of one graph input feeding two convolutions).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir import Operator, Subgraph, Tensor
from .graphutil import activation, transpose_perm

_Eval = Callable[[Operator, list[np.ndarray]], "np.ndarray | None"]

# Folding may grow a constant (broadcasting, FILL) up to this many elements, or up to the
# size of its inputs, whichever is larger.
_MAX_GROWTH_ELEMENTS = 1024

_ACT_CLAMP = {"NONE": (None, None), "RELU": (0, None), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}


def _float_only(fn: Callable[..., np.ndarray]) -> _Eval:
    def run(op: Operator, xs: list[np.ndarray]) -> np.ndarray | None:
        if any(x.dtype.kind != "f" for x in xs):
            return None
        with np.errstate(all="ignore"):
            return fn(*xs)
    return run


def _arith(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], floats_only: bool = False) -> _Eval:
    def run(op: Operator, xs: list[np.ndarray]) -> np.ndarray | None:
        a, b = xs
        if a.dtype != b.dtype or (floats_only and a.dtype.kind != "f"):
            return None
        lo, hi = _ACT_CLAMP.get(activation(op), ("?", "?"))
        if lo == "?":
            return None
        with np.errstate(all="ignore"):
            y = fn(a, b).astype(a.dtype)
        if lo is not None or hi is not None:
            y = np.clip(y, lo, hi).astype(a.dtype)
        return y
    return run


def _concat(op: Operator, xs: list[np.ndarray]) -> np.ndarray | None:
    if activation(op) != "NONE" or len({x.dtype for x in xs}) != 1:
        return None
    return np.concatenate(xs, axis=int(op.options.get("axis", 0)))


def _gather(op: Operator, xs: list[np.ndarray]) -> np.ndarray | None:
    x, idx = xs
    axis = int(op.options.get("axis", 0))
    if op.options.get("batchDims", 0) or idx.dtype.kind not in "iu":
        return None
    axis = axis + x.ndim if axis < 0 else axis
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[axis]):
        return None  # LiteRT rejects out-of-range indices at run time; keep that behaviour
    return np.take(x, idx, axis=axis)


EVALUATORS: dict[str, _Eval] = {
    "TRANSPOSE": lambda op, xs: np.transpose(xs[0], transpose_perm(op)) if transpose_perm(op) else None,
    "RESHAPE": lambda op, xs: xs[0].reshape(op.outputs[0].shape),
    "SQUEEZE": lambda op, xs: xs[0].reshape(op.outputs[0].shape),
    "EXPAND_DIMS": lambda op, xs: xs[0].reshape(op.outputs[0].shape),
    "CAST": lambda op, xs: xs[0].astype(op.outputs[0].dtype) if xs[0].dtype.kind in "fiub" else None,
    "ADD": _arith(np.add), "SUB": _arith(np.subtract), "MUL": _arith(np.multiply),
    "DIV": _arith(np.divide, floats_only=True),
    "MAXIMUM": lambda op, xs: np.maximum(*xs) if xs[0].dtype == xs[1].dtype else None,
    "MINIMUM": lambda op, xs: np.minimum(*xs) if xs[0].dtype == xs[1].dtype else None,
    "NEG": lambda op, xs: np.negative(xs[0]),
    "ABS": lambda op, xs: np.abs(xs[0]),
    "SQUARE": lambda op, xs: np.square(xs[0]),
    "SQRT": _float_only(np.sqrt),
    "RSQRT": _float_only(lambda x: 1 / np.sqrt(x)),
    "EXP": _float_only(np.exp),
    "CONCATENATION": _concat,
    "PACK": lambda op, xs: np.stack(xs, axis=int(op.options.get("axis", 0))),
    "GATHER": _gather,
}


def _shape_value(op: Operator) -> np.ndarray | None:
    """SHAPE of a statically shaped tensor is a constant even when its data is not."""
    x = op.inputs[0]
    if x is None or (x.shape_signature is not None and any(d < 0 for d in x.shape_signature)):
        return None
    return np.asarray(x.shape, dtype=op.outputs[0].dtype)


def fold_constants(sg: Subgraph) -> bool:
    """Replace ops computing constants by their values; return True when anything folded."""
    changed = False
    outputs = {id(t) for t in sg.outputs}
    kept: list[Operator] = []
    for op in sg.operators:
        value = _try_fold(op, outputs)
        if value is None:
            kept.append(op)
            continue
        out = op.outputs[0]
        out.data = np.ascontiguousarray(value, dtype=out.dtype).reshape(out.shape)
        out.shape_signature = None
        changed = True
    sg.operators = kept
    return changed


def _try_fold(op: Operator, graph_outputs: set[int]) -> np.ndarray | None:
    if len(op.outputs) != 1 or id(op.outputs[0]) in graph_outputs or op.custom_code is not None:
        return None
    out = op.outputs[0]
    if out.quantization is not None or any(t is not None and t.quantization is not None for t in op.inputs):
        return None
    if op.opcode == "SHAPE":
        return _shape_value(op)
    fn = EVALUATORS.get(op.opcode)
    if fn is None or not op.inputs or any(t is None or not t.is_const for t in op.inputs):
        return None
    data_inputs = op.inputs if op.opcode not in ("TRANSPOSE", "RESHAPE", "EXPAND_DIMS") else op.inputs[:1]
    if out.size > max(_MAX_GROWTH_ELEMENTS, sum(t.size for t in data_inputs)):
        return None
    try:
        value = fn(op, [t.data for t in op.inputs])
    except (ValueError, TypeError, IndexError):
        return None
    if value is None:
        return None
    value = np.asarray(value)
    if value.size != out.size or _non_unit(value.shape) != _non_unit(out.shape):
        return None
    if value.dtype != out.dtype and not np.can_cast(value.dtype, out.dtype, casting="same_kind"):
        return None
    return value


def _non_unit(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _const_key(t: Tensor) -> tuple:
    """Cheap key (no data hashing): constants can only be equal within one bucket."""
    q = t.quantization
    qkey = None if q is None else (np.asarray(q.scale).tobytes(), np.asarray(q.zero_point).tobytes(), q.axis)
    return (t.dtype.str, t.shape, qkey)


def _edges(t: Tensor) -> tuple[bytes, bytes]:
    """A few leading and trailing values: different weights almost always differ there already."""
    flat = t.data.reshape(-1)
    return flat[:16].tobytes(), flat[-16:].tobytes()


def share_constants(sg: Subgraph) -> bool:
    """Point every use of a constant at the first constant with the same dtype, shape and bytes.

    Bytes are compared only between constants whose dtype and shape already match, so large
    models with few look-alike weights never hash their weights.
    """
    buckets: dict[tuple, list[Tensor]] = {}
    canonical: dict[int, Tensor] = {}
    edges: dict[int, tuple[bytes, bytes]] = {}  # _edges per tensor, computed once per call

    def edges_of(c: Tensor) -> tuple[bytes, bytes]:
        if id(c) not in edges:
            edges[id(c)] = _edges(c)
        return edges[id(c)]

    changed = False
    for op in sg.operators:
        new_inputs = []
        for t in op.inputs:
            if t is not None and t.is_const:
                if id(t) not in canonical:
                    bucket = buckets.setdefault(_const_key(t), [])
                    match = next((c for c in bucket if c is t or (edges_of(c) == edges_of(t)
                                                                  and np.array_equal(c.data, t.data))), None)
                    if match is None:
                        bucket.append(t)
                        match = t
                    canonical[id(t)] = match
                canon = canonical[id(t)]
                if canon is not t:
                    t = canon
                    changed = True
            new_inputs.append(t)
        op.inputs = new_inputs
    return changed


# Ops whose result does not depend only on their inputs and options.
_IMPURE = frozenset({"CUSTOM", "CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "RANDOM_UNIFORM",
                     "RANDOM_STANDARD_NORMAL", "MULTINOMIAL", "IF", "WHILE", "CALL", "STABLEHLO_RNG_BIT_GENERATOR"})


def _options_key(options: dict) -> str:
    return repr(sorted((k, np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                       for k, v in options.items()))


def eliminate_common_ops(sg: Subgraph) -> bool:
    """Merge an op into an earlier identical one (same opcode, inputs and options)."""
    seen: dict[tuple, Operator] = {}
    graph_outputs = {id(t) for t in sg.outputs}
    changed = False
    kept: list[Operator] = []
    for op in sg.operators:
        if op.opcode in _IMPURE or not op.outputs:
            kept.append(op)
            continue
        key = (op.opcode, tuple(id(t) if t is not None else None for t in op.inputs), _options_key(op.options),
               tuple((o.shape, o.dtype.str) for o in op.outputs))
        prev = seen.get(key)
        if prev is None or any(id(o) in graph_outputs or o.quantization is not None for o in op.outputs):
            seen.setdefault(key, op)
            kept.append(op)
            continue
        for old, new in zip(op.outputs, prev.outputs):
            sg.replace_uses(old, new)
        changed = True
    sg.operators = kept
    return changed

"""Quantized ONNX (QDQ / QOperator) -> integer LiteRT ops.

The quantized lowerings leave ``DEQUANTIZE -> float op -> QUANTIZE`` patterns whose float
weights are exactly ``q * scale`` (see ``lower/ops/quantized.py``). This pass, run after the
transpose optimizer, removes the float islands:

1. internal uint8 tensors between QUANTIZE and DEQUANTIZE become int8 with the zero point
   shifted by -128 (exact), because LiteRT's per-channel and XNNPACK kernels are int8;
2. ``QUANTIZE(DEQUANTIZE(q))`` becomes ``q`` (same parameters) or one requantizing QUANTIZE;
3. a DEQUANTIZE sinks through ops that only move or select values (RESHAPE, TRANSPOSE, PAD,
   MAX_POOL_2D, SLICE, ...): ``f(dq(q)) == dq(f(q))`` exactly, so such ops run on integers;
   likewise a QUANTIZE rises above them (``q(f(x)) == f(q(x))``);
4. ``QUANTIZE(f(DEQUANTIZE(a), ...))`` becomes the integer ``f`` reading ``a`` and writing the
   QUANTIZE's tensor: CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED (weights proven to be
   symmetric int8 per tensor or per output channel, int32 bias with scale
   in_scale * w_scale), ADD, SUB, MUL, MEAN, AVERAGE_POOL_2D, CONCATENATION, LOGISTIC, TANH,
   SOFTMAX, HARD_SWISH, RELU, RELU6, LEAKY_RELU. Kernels with fixed output parameters
   (LOGISTIC, TANH, SOFTMAX) or equal in/out parameters (AVERAGE_POOL_2D) get a requantizing
   QUANTIZE after them when the model's parameters differ.

Weights are only quantized when that is exact: a candidate scale must reproduce every float
weight bit for bit, otherwise the op stays a float island (still correct, just slower).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..ir import Operator, Quantization, Subgraph, Tensor
from .graphutil import Namer, activation, new_const

_I8 = np.dtype(np.int8)
_U8 = np.dtype(np.uint8)
_F32 = np.dtype(np.float32)

# Ops that only move, select or compare values: f(dequantize(q)) == dequantize(f(q)).
# Value: the index of their data input.
MOVABLE: dict[str, int] = {
    "RESHAPE": 0, "TRANSPOSE": 0, "SQUEEZE": 0, "EXPAND_DIMS": 0, "PAD": 0, "PADV2": 0, "MAX_POOL_2D": 0,
    "SLICE": 0, "STRIDED_SLICE": 0, "GATHER": 0, "SPLIT": 1, "SPLIT_V": 0, "DEPTH_TO_SPACE": 0,
    "SPACE_TO_DEPTH": 0, "RESIZE_NEAREST_NEIGHBOR": 0, "REDUCE_MAX": 0, "TILE": 0, "BROADCAST_TO": 0,
}
# Integer kernels whose output parameters are fixed by LiteRT (int8 scale, zero point).
_FIXED_OUTPUT = {"LOGISTIC": (1.0 / 256, -128), "SOFTMAX": (1.0 / 256, -128), "TANH": (1.0 / 128, 0)}
_UNARY = frozenset({"LOGISTIC", "TANH", "SOFTMAX", "HARD_SWISH", "RELU", "RELU6", "LEAKY_RELU", "RELU_N1_TO_1"})
_WEIGHTED = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}  # output-channel axis of the filter


# -- small pure helpers ------------------------------------------------------------------------

def _per_tensor(q: Quantization | None) -> bool:
    return q is not None and np.asarray(q.scale).size == 1


def _scale(q: Quantization) -> float:
    return float(np.asarray(q.scale, np.float32).reshape(-1)[0])


def _zp(q: Quantization) -> int:
    return int(np.asarray(q.zero_point).reshape(-1)[0])


def _same(a: Quantization | None, b: Quantization | None) -> bool:
    if a is None or b is None:
        return a is b
    sa, sb = np.asarray(a.scale, np.float32).reshape(-1), np.asarray(b.scale, np.float32).reshape(-1)
    za, zb = np.asarray(a.zero_point).reshape(-1), np.asarray(b.zero_point).reshape(-1)
    return sa.shape == sb.shape and bool(np.array_equal(sa, sb)) and bool(np.array_equal(za, zb)) \
        and (sa.size == 1 or a.axis == b.axis)


def _per_tensor_q(scale: float, zp: int) -> Quantization:
    return Quantization(np.array([scale], np.float32), np.array([zp], np.int64), 0)


def _shift_to_int8(q: Quantization) -> Quantization:
    return Quantization(np.asarray(q.scale, np.float32).copy(), np.asarray(q.zero_point, np.int64) - 128, q.axis)


def _candidate_scales(peak: float, count: int = 3) -> list[np.float32]:
    """Scales near ``peak / 127`` (a few ulps either way): where a symmetric quantizer put it."""
    out = []
    for denom in (127.0, 128.0):
        s = np.float32(np.float32(peak) / np.float32(denom))
        out.append(s)
        lo = hi = s
        for _ in range(count):
            lo, hi = np.nextafter(lo, np.float32(0)), np.nextafter(hi, np.float32(np.inf))
            out.extend((lo, hi))
    return out


def _int8_at(values: np.ndarray, s: np.float32) -> np.ndarray | None:
    """round(values / s) when it fits int8 and float32(q) * s gives back ``values`` bit for bit."""
    q = np.rint(values / s)
    if np.abs(q).max() > 127 or not np.array_equal((q.astype(np.float32) * s).astype(np.float32), values):
        return None
    return q


def _exact_symmetric(values: np.ndarray) -> tuple[np.ndarray, np.float32] | None:
    """(int8 q, scale) with float32(q) * scale == values bit for bit and |q| <= 127, or None."""
    peak = float(np.abs(values).max(initial=0.0))
    if peak == 0.0:
        return np.zeros(values.shape, _I8), np.float32(0)
    flat = values.reshape(-1)
    # A few hundred elements (the peak among them) reject a wrong scale before the full check:
    # per-channel weights fail every whole-tensor candidate, which dominated fold_qdq's time.
    sample = np.append(flat[::max(1, flat.size // 256)], flat[np.argmax(np.abs(flat))])
    for s in _candidate_scales(peak):
        if not np.isfinite(s) or s <= 0 or _int8_at(sample, s) is None:
            continue
        q = _int8_at(values, s)
        if q is not None:
            return q.astype(_I8), s
    return None


def recover_weights(w: np.ndarray, axis: int) -> tuple[np.ndarray, Quantization] | None:
    """Prove float weights are symmetric int8 (per tensor, or per channel along ``axis``).

    Returns the int8 weights and their parameters, or None when no exact int8 form is found.
    """
    w = np.asarray(w, np.float32)
    whole = _exact_symmetric(w)
    if whole is not None and whole[1] > 0:
        return whole[0], _per_tensor_q(float(whole[1]), 0)
    moved = np.moveaxis(w, axis, 0)
    found = _exact_symmetric_rows(moved.reshape(moved.shape[0], -1))
    if found is None:
        return None
    q_rows, scales_arr = found
    if not np.any(scales_arr > 0):
        return None
    # An all-zero channel may use any scale: take the largest one so its bias keeps its precision.
    scales_arr[scales_arr == 0] = scales_arr.max()
    q = np.moveaxis(q_rows.reshape(moved.shape), 0, axis)
    return q.astype(_I8), Quantization(scales_arr, np.zeros(scales_arr.size, np.int64), axis)


def _exact_symmetric_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_exact_symmetric` of every row of the float32 matrix ``rows`` at once.

    Returns (int8 q [C, n], float32 scales [C]) or None when some row has no exact form. Each
    row gets the first candidate scale (in :func:`_candidate_scales` order) that works, the
    same one the per-row function picks: the arithmetic is the same float32 arithmetic, only
    batched over the rows that are still unresolved.
    """
    n_rows = rows.shape[0]
    q_out = np.zeros(rows.shape, _I8)
    scales = np.zeros(n_rows, np.float32)
    if n_rows == 0:
        return q_out, scales
    peaks = np.abs(rows).max(axis=1, initial=0.0).astype(np.float32)
    todo = np.flatnonzero(peaks != 0)  # all-zero rows: q 0, scale 0
    if todo.size == 0:
        return q_out, scales
    candidates = _candidate_scale_table(peaks[todo])  # [len(todo), n_candidates]
    pending = np.arange(todo.size)  # positions into ``todo`` still without a scale
    with np.errstate(all="ignore"):
        for k in range(candidates.shape[1]):
            s = candidates[pending, k]
            usable = np.isfinite(s) & (s > 0)
            idx = pending[usable]
            if idx.size:
                s_ok = s[usable][:, None]
                vals = rows[todo[idx]]
                q = np.rint(vals / s_ok)
                fits = np.abs(q).max(axis=1) <= 127
                fits &= np.all((q.astype(np.float32) * s_ok).astype(np.float32) == vals, axis=1)
                won = idx[fits]
                q_out[todo[won]] = q[fits].astype(_I8)
                scales[todo[won]] = s[usable][fits]
                pending = np.setdiff1d(pending, won, assume_unique=True)
            if pending.size == 0:
                return q_out, scales
    return None


def _candidate_scale_table(peaks: np.ndarray) -> np.ndarray:
    """[len(peaks), 14]: :func:`_candidate_scales` of every peak (same order, same float32 values)."""
    cols = []
    zero, inf = np.float32(0), np.float32(np.inf)
    for denom in (127.0, 128.0):
        s = (peaks.astype(np.float32) / np.float32(denom)).astype(np.float32)
        cols.append(s)
        lo = hi = s
        for _ in range(3):
            lo, hi = np.nextafter(lo, zero), np.nextafter(hi, inf)
            cols.extend((lo, hi))
    return np.stack(cols, axis=1)


def quantize_bias(b: np.ndarray, in_scale: float, w_q: Quantization) -> np.ndarray | None:
    """int32 bias with scale in_scale * w_scale (per channel), or None when it does not fit."""
    scale = np.float32(in_scale) * np.asarray(w_q.scale, np.float32)
    q = np.rint(np.asarray(b, np.float64) / scale.astype(np.float64))
    if np.abs(q).max(initial=0) >= 2 ** 31 - 1:
        return None
    return q.astype(np.int32)


# -- graph state -------------------------------------------------------------------------------

class _G:
    """Producer/consumer maps of the subgraph being rewritten.

    The maps describe the graph as of the last successful rewrite (:meth:`drop_dead`), as a
    full rebuild there would: rewrites go through :meth:`set_io`, :meth:`remove`,
    :meth:`replace_uses` and the insert methods, which log what they change, and
    :meth:`drop_dead` replays the log instead of rescanning the whole graph (graphs here
    have ~1000 ops and one rewrite each).
    """

    def __init__(self, sg: Subgraph):
        self.sg = sg
        self.namer = Namer(sg)
        self._log: list[tuple] = []
        # Since the last drop_dead: ops that may have become dead (inserted, outputs
        # changed) and tensors that lost a reader.
        self._touched: list[Operator] = []
        self._lost: list[Tensor] = []
        self._scanned = False  # the first drop_dead scans the whole graph
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the maps from the graph as it is now."""
        ops = self.sg.operators
        prod: dict[int, Operator] = {}
        cons: dict[int, list[Operator]] = defaultdict(list)
        n_outputs = 0
        for op in ops:
            outs = op.outputs
            n_outputs += len(outs)
            for t in outs:
                prod[id(t)] = op
            for t in op.inputs:
                if t is not None:
                    cons[id(t)].append(op)
        self.prod, self.cons = prod, cons
        # Every tensor written by one op (a valid graph): ``prod`` then names every writer.
        self.single_writer = n_outputs == len(prod)
        self.outputs = {id(t) for t in self.sg.outputs}
        self.inputs = {id(t) for t in self.sg.inputs}
        self._log.clear()

    def producer(self, t: Tensor | None) -> Operator | None:
        return None if t is None else self.prod.get(id(t))

    def consumers(self, t: Tensor) -> list[Operator]:
        """The ops reading ``t`` (in no particular order; see :meth:`consumers_in_order`)."""
        return self.cons.get(id(t), [])

    def consumers_in_order(self, t: Tensor) -> list[Operator]:
        return sorted(self.consumers(t), key=self.sg.operators.index)

    def is_io(self, t: Tensor) -> bool:
        return id(t) in self.outputs or id(t) in self.inputs

    def dq_source(self, t: Tensor | None) -> Tensor | None:
        """The integer tensor ``t`` is the DEQUANTIZE of (per-tensor parameters only)."""
        p = self.producer(t)
        if p is None or p.opcode != "DEQUANTIZE":
            return None
        src = p.inputs[0]
        return src if _per_tensor(src.quantization) and src.dtype in (_I8, _U8) else None

    def tensor(self, hint: str, shape: tuple[int, ...], dtype: np.dtype, q: Quantization | None = None) -> Tensor:
        return Tensor(self.namer(hint), shape, dtype, quantization=q)

    # -- logged graph edits ----------------------------------------------------------------

    def insert_before(self, anchor: Operator, ops: list[Operator]) -> None:
        i = self.sg.operators.index(anchor)
        self.sg.operators[i:i] = ops
        self._log.extend(("add", op, op.inputs, op.outputs) for op in ops)

    def insert_after(self, anchor: Operator, ops: list[Operator]) -> None:
        i = self.sg.operators.index(anchor) + 1
        self.sg.operators[i:i] = ops
        self._log.extend(("add", op, op.inputs, op.outputs) for op in ops)

    def remove(self, op: Operator) -> None:
        self.sg.operators.remove(op)
        self._log.append(("remove", op, op.inputs, op.outputs))

    def set_io(self, op: Operator, inputs: list[Tensor | None] | None = None,
               outputs: list[Tensor] | None = None) -> None:
        """Give ``op`` new input and/or output lists."""
        old = (op.inputs, op.outputs)
        if inputs is not None:
            op.inputs = inputs
        if outputs is not None:
            op.outputs = outputs
        self._log.append(("io", op, old, (op.inputs, op.outputs)))

    def replace_uses(self, old: Tensor, new: Tensor) -> None:
        self.sg.replace_uses(old, new)
        self._log.append(("replace", old, new))

    def _add_uses(self, op: Operator, inputs: list[Tensor | None], outputs: list[Tensor]) -> None:
        for t in outputs:
            self.prod[id(t)] = op
        for t in inputs:
            if t is not None:
                self.cons[id(t)].append(op)

    def _drop_uses(self, op: Operator, inputs: list[Tensor | None], outputs: list[Tensor]) -> None:
        for t in outputs:
            if self.prod.get(id(t)) is op:
                del self.prod[id(t)]
        for t in inputs:
            if t is None:
                continue
            users = self.cons[id(t)]
            users.remove(op)  # one use per occurrence (Operator compares by identity)
            if not users:
                del self.cons[id(t)]
            self._lost.append(t)

    def _replay(self) -> None:
        """Bring the maps up to date with the logged edits."""
        for event in self._log:
            kind = event[0]
            if kind == "add":
                self._add_uses(event[1], event[2], event[3])
                self._touched.append(event[1])
            elif kind == "remove":
                self._drop_uses(event[1], event[2], event[3])
            elif kind == "io":
                op, old, new = event[1], event[2], event[3]
                self._drop_uses(op, *old)
                self._add_uses(op, *new)
                self._touched.append(op)
            else:
                old_t, new_t = event[1], event[2]
                users = self.cons.pop(id(old_t), None)
                if users:
                    self.cons[id(new_t)].extend(users)
                self._lost.append(old_t)
        self._log.clear()
        self.outputs = {id(t) for t in self.sg.outputs}
        self.inputs = {id(t) for t in self.sg.inputs}

    # -- dead ops ----------------------------------------------------------------------------

    def drop_dead(self) -> None:
        """Remove ops none of whose outputs is used (DEQUANTIZEs left behind by rewrites).

        The first call scans the whole graph; after it no op is dead, so later calls only
        look at ops a rewrite inserted or changed and at writers of tensors that lost a
        reader (and, transitively, at what removing those frees).
        """
        if not self._scanned or not self.single_writer:
            self._scanned = True
            self._touched.clear()
            self._lost.clear()
            self._drop_dead_full()
            return
        self._replay()
        if not self.single_writer:  # pragma: no cover - set by refresh only
            return
        alive = {id(op) for op in self.sg.operators}
        cons, outputs, prod = self.cons, self.outputs, self.prod

        def dead(op: Operator) -> bool:
            return all(id(t) not in cons and id(t) not in outputs for t in op.outputs)

        work = [op for op in self._touched if id(op) in alive and dead(op)]
        work.extend(p for p in (prod.get(id(t)) for t in self._lost)
                    if p is not None and id(p) in alive and dead(p))
        self._touched.clear()
        self._lost.clear()
        removed: set[int] = set()
        while work:
            op = work.pop()
            if id(op) in removed:
                continue
            removed.add(id(op))
            self._drop_uses(op, op.inputs, op.outputs)
            for t in self._lost:
                p = prod.get(id(t))
                if p is not None and id(p) in alive and id(p) not in removed and dead(p):
                    work.append(p)
            self._lost.clear()
        if removed:
            self.sg.operators = [op for op in self.sg.operators if id(op) not in removed]

    def _drop_dead_full(self) -> None:
        """Rebuild the maps, then remove every dead op (with use counts, maps updated in place)."""
        self.refresh()
        if not self.single_writer:
            self._drop_dead_by_rescans()
            return
        cons, outputs, prod = self.cons, self.outputs, self.prod
        ops = self.sg.operators
        # Right after a refresh a tensor is a key of ``cons`` exactly when something reads it;
        # an op is live when it writes such a tensor or a graph output.
        live = {id(prod[key]) for key in cons if key in prod}
        live.update(id(prod[key]) for key in outputs if key in prod)
        work = [op for op in ops if id(op) not in live]
        if not work:
            return
        lost: dict[int, int] = defaultdict(int)  # uses of a tensor by the ops removed so far

        def dead(op: Operator) -> bool:
            return all(len(cons.get(id(t), ())) == lost[id(t)] and id(t) not in outputs for t in op.outputs)

        removed: dict[int, Operator] = {}
        while work:
            op = work.pop()
            if id(op) in removed:
                continue
            removed[id(op)] = op
            for t in op.inputs:
                if t is None:
                    continue
                key = id(t)
                lost[key] += 1
                writer = prod.get(key)
                if len(cons[key]) == lost[key] and writer is not None and id(writer) not in removed \
                        and dead(writer):
                    work.append(writer)
        self.sg.operators = [op for op in ops if id(op) not in removed]
        for op in removed.values():
            for t in op.outputs:
                prod.pop(id(t), None)
        for key in lost:
            kept = [u for u in cons[key] if id(u) not in removed]
            if kept:
                cons[key] = kept
            else:
                del cons[key]

    def _drop_dead_by_rescans(self) -> None:
        """Dead-op removal for a graph where a tensor has several writers: rescan until stable."""
        while True:
            dead = [op for op in self.sg.operators
                    if all(not self.consumers(t) and id(t) not in self.outputs for t in op.outputs)]
            if not dead:
                return
            ids = {id(op) for op in dead}
            self.sg.operators = [op for op in self.sg.operators if id(op) not in ids]
            self.refresh()


def _int8_view(g: _G, src: Tensor, anchor: Operator) -> Tensor:
    """``src`` as an int8 tensor: uint8 graph inputs get an exact requantizing QUANTIZE."""
    if src.dtype == _I8:
        return src
    for op in g.consumers_in_order(src):
        if op.opcode == "QUANTIZE" and op.outputs[0].dtype == _I8 and \
                _same(op.outputs[0].quantization, _shift_to_int8(src.quantization)):
            if g.sg.operators.index(op) < g.sg.operators.index(anchor):
                return op.outputs[0]
    out = g.tensor(f"{src.name}/int8", src.shape, _I8, _shift_to_int8(src.quantization))
    g.insert_before(anchor, [Operator("QUANTIZE", [src], [out], origin=anchor.origin)])
    return out


# -- 1. uint8 -> int8 --------------------------------------------------------------------------

def _retype_uint8(g: _G) -> bool:
    """Internal uint8 tensors written by QUANTIZE and read only by (DE)QUANTIZE become int8."""
    changed = False
    for op in g.sg.operators:
        if op.opcode != "QUANTIZE":
            continue
        t = op.outputs[0]
        if t.dtype != _U8 or t.quantization is None or g.is_io(t):
            continue
        if not all(c.opcode in ("DEQUANTIZE", "QUANTIZE") for c in g.consumers(t)):
            continue
        t.dtype = _I8
        t.quantization = _shift_to_int8(t.quantization)
        changed = True
    return changed


# -- 2. QUANTIZE(DEQUANTIZE(q)) ----------------------------------------------------------------

def _fold_requantize(g: _G, op: Operator) -> bool:
    src = g.dq_source(op.inputs[0])
    y = op.outputs[0]
    if src is None or not _per_tensor(y.quantization):
        return False
    if src.dtype == y.dtype and _same(src.quantization, y.quantization) and not g.is_io(y):
        g.remove(op)
        g.replace_uses(y, src)
        return True
    if op.inputs[0] is src:
        return False
    g.set_io(op, inputs=[src])  # one requantizing QUANTIZE (int8/uint8 -> int8/uint8)
    return True


# -- 3. sink DEQUANTIZE through value-moving ops -----------------------------------------------

def _sink(g: _G, op: Operator) -> bool:
    idx = MOVABLE[op.opcode]
    if idx >= len(op.inputs):
        return False
    src = g.dq_source(op.inputs[idx])
    if src is None or any(o.dtype != _F32 for o in op.outputs):
        return False
    inputs = list(op.inputs)
    if op.opcode == "PADV2":
        fill = inputs[2]
        if fill is None or not fill.is_const or fill.size != 1:
            return False
        value = float(fill.data.reshape(-1)[0])
        lo, hi = np.iinfo(src.dtype).min, np.iinfo(src.dtype).max
        if value <= np.finfo(np.float32).min and all(c.opcode == "MAX_POOL_2D" for c in g.consumers(op.outputs[0])):
            qv = lo  # "minus infinity" padding for a max pool: the lowest integer never wins either
        else:
            s, z = _scale(src.quantization), _zp(src.quantization)
            qv = int(np.clip(np.rint(value / s) + z, lo, hi))
            if np.float32((qv - z) * np.float32(s)) != np.float32(value):
                return False
        inputs[2] = new_const(g.namer(f"{fill.name}/quantized"), np.array([qv], src.dtype).reshape(fill.shape),
                              src.dtype, src.quantization)
    if op.opcode == "CONCATENATION" or activation(op) != "NONE":
        return False
    inputs[idx] = src
    new_outs, dqs = [], []
    for o in op.outputs:
        t = g.tensor(f"{o.name}/q", o.shape, src.dtype, src.quantization)
        new_outs.append(t)
        dqs.append(Operator("DEQUANTIZE", [t], [o], origin=op.origin))
    g.set_io(op, inputs, new_outs)
    g.insert_after(op, dqs)
    return True


def _hoist(g: _G, quant: Operator) -> bool:
    """QUANTIZE(f(x)) -> f(QUANTIZE(x)) for a value-moving ``f`` (exact: QUANTIZE is monotonic
    and maps the zero PAD adds to the zero point LiteRT's integer PAD adds)."""
    y, target = quant.inputs[0], quant.outputs[0]
    op = g.producer(y)
    if op is None or op.opcode not in MOVABLE or op.opcode == "PADV2" or len(op.outputs) != 1:
        return False
    idx = MOVABLE[op.opcode]
    x = op.inputs[idx] if idx < len(op.inputs) else None
    if x is None or x.is_const or x.dtype != _F32 or activation(op) != "NONE" or g.is_io(y):
        return False
    if len(g.consumers(y)) != 1 or op.opcode == "TRANSPOSE" and not _per_tensor(target.quantization):
        return False
    t = g.tensor(f"{x.name}/quantized", x.shape, target.dtype, target.quantization)
    g.insert_before(op, [Operator("QUANTIZE", [x], [t], origin=quant.origin)])
    inputs = list(op.inputs)
    inputs[idx] = t
    g.set_io(op, inputs, [target])
    g.remove(quant)
    return True


# -- 4. integer compute ops --------------------------------------------------------------------

def _single_quantize_user(g: _G, y: Tensor) -> Operator | None:
    """The QUANTIZE that is ``y``'s only use (per-tensor, int8/uint8), or None."""
    users = g.consumers(y)
    if len(users) != 1 or id(y) in g.outputs:
        return None
    q = users[0]
    if q.opcode != "QUANTIZE" or sum(1 for t in q.inputs if t is y) != 1:
        return None
    out = q.outputs[0]
    return q if _per_tensor(out.quantization) and out.dtype in (_I8, _U8) else None


def _activations(g: _G, op: Operator, indices: list[int], anchor: Operator) -> list[Tensor] | None:
    srcs = []
    for i in indices:
        src = g.dq_source(op.inputs[i]) if i < len(op.inputs) else None
        if src is None:
            return None
        srcs.append(src)
    return [_int8_view(g, s, anchor) for s in srcs]


def _weighted_inputs(g: _G, op: Operator, x: Tensor) -> list[Tensor | None] | None:
    """[x, int8 filter, int32 bias] for CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED."""
    w = op.inputs[1]
    b = op.inputs[2] if len(op.inputs) > 2 else None
    if w is None or not w.is_const or w.dtype != _F32 or w.quantization is not None:
        return None
    if b is not None and (not b.is_const or b.dtype != _F32):
        return None
    if op.opcode == "FULLY_CONNECTED" and op.options.get("weightsFormat", "DEFAULT") not in (0, "DEFAULT"):
        return None
    found = recover_weights(w.data, _WEIGHTED[op.opcode])
    if found is None:
        return None
    wq_data, wq = found
    wt = new_const(g.namer(f"{w.name}/int8"), wq_data, _I8, wq)
    channels = w.shape[_WEIGHTED[op.opcode]]
    in_scale = _scale(x.quantization)
    bias_values = np.zeros(channels, np.float32) if b is None else b.data.reshape(-1)
    if bias_values.size != channels:
        return None
    bq = quantize_bias(bias_values, in_scale, wq)
    if bq is None:
        return None
    bias_scale = (np.float32(in_scale) * np.asarray(wq.scale, np.float32)).astype(np.float32)
    b_name = b.name if b is not None else f"{op.outputs[0].name}/bias"
    bt = new_const(g.namer(f"{b_name}/int32"), bq, np.int32,
                   Quantization(bias_scale, np.zeros(bias_scale.size, np.int64), 0))
    return [x, wt, bt]


def _integerize(g: _G, op: Operator) -> bool:
    if len(op.outputs) != 1 or op.outputs[0].dtype != _F32:
        return False
    quant = _single_quantize_user(g, op.outputs[0])
    if quant is None:
        return False
    code = op.opcode
    if code in _WEIGHTED:
        acts = _activations(g, op, [0], op)
        if acts is None:
            return False
        new_inputs = _weighted_inputs(g, op, acts[0])
    elif code in ("ADD", "SUB", "MUL"):
        acts = _activations(g, op, [0, 1], op)
        new_inputs = acts
    elif code in ("MEAN", "AVERAGE_POOL_2D") or code in _UNARY:
        acts = _activations(g, op, [0], op)
        new_inputs = None if acts is None else [acts[0], *op.inputs[1:]]
    elif code == "CONCATENATION":
        if activation(op) != "NONE":
            return False
        acts = _activations(g, op, list(range(len(op.inputs))), op)
        new_inputs = acts
    else:
        return False
    if new_inputs is None:
        return False
    _rewrite(g, op, quant, new_inputs)
    return True


def _rewrite(g: _G, op: Operator, quant: Operator, new_inputs: list[Tensor | None]) -> None:
    """Make ``op`` integer on ``new_inputs``, writing ``quant``'s output (requantized if needed)."""
    target = quant.outputs[0]
    code = op.opcode
    # The tensor the integer kernel writes: its parameters must suit the kernel.
    if code in _FIXED_OUTPUT:
        scale, zp = _FIXED_OUTPUT[code]
        kernel_q = _per_tensor_q(scale, zp)
    elif code == "AVERAGE_POOL_2D":
        kernel_q = new_inputs[0].quantization
    else:
        kernel_q = target.quantization if target.dtype == _I8 else _shift_to_int8(target.quantization)
    if target.dtype == _I8 and _same(kernel_q, target.quantization):
        out = target
        after: list[Operator] = []
    else:
        out = g.tensor(f"{target.name}/int8", target.shape, _I8, kernel_q)
        after = [Operator("QUANTIZE", [out], [target], origin=op.origin)]
    if code == "CONCATENATION":
        # XNNPACK (and LiteRT's own converter) want every input on the output's parameters.
        before = []
        for i, t in enumerate(new_inputs):
            if t is not None and not _same(t.quantization, kernel_q):
                r = g.tensor(f"{t.name}/requantized", t.shape, _I8, kernel_q)
                before.append(Operator("QUANTIZE", [t], [r], origin=op.origin))
                new_inputs[i] = r
        g.insert_before(op, before)
    g.set_io(op, list(new_inputs), [out])
    g.remove(quant)
    g.insert_after(op, after)


# -- driver ------------------------------------------------------------------------------------

def fold_qdq(sg: Subgraph, max_sweeps: int = 64) -> bool:
    """Turn quantize/dequantize patterns in ``sg`` into integer ops; True when anything changed."""
    if not any(op.opcode in ("QUANTIZE", "DEQUANTIZE") for op in sg.operators):
        return False
    g = _G(sg)
    changed = _retype_uint8(g)
    for _ in range(max_sweeps):
        progress = False
        alive = {id(op) for op in sg.operators}
        for op in list(sg.operators):
            if id(op) not in alive:
                continue
            if op.opcode == "QUANTIZE":
                done = _fold_requantize(g, op) or _hoist(g, op)
            elif op.opcode in MOVABLE:
                done = _sink(g, op)
            else:
                done = _integerize(g, op)
            if done:
                progress = True
                g.drop_dead()  # also refreshes the maps
                alive = {id(o) for o in sg.operators}
        if not progress:
            break
        changed = True
        if _retype_uint8(g):
            g.refresh()
    return changed

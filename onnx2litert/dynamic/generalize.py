"""Shape generalization by multi-point conversion.

The lowerings compute with static shapes. Instead of teaching each one about symbolic dims,
the graph is converted (frontend -> lower -> passes) at several sizes of the symbolic dims and
the resulting IRs are compared:

* they must be structurally identical (ops, opcodes, options, topology, dtypes, non-integer
  constants), otherwise a size changes *what* is computed and the dims cannot stay dynamic;
* a tensor dim that differs between the conversions becomes -1 in ``shape_signature``;
* an integer constant that differs (a RESHAPE target, STRIDED_SLICE bounds, FILL dims...)
  must be a multilinear function with integer coefficients of the symbolic sizes (affine in
  each: ``a + b*B + c*S + d*B*S``). It is fitted on a 2^k grid of sizes and verified on one
  more point, then computed at run time from SHAPE of a graph input (a RESHAPE target with a
  single varying entry just gets -1 there instead).

The first conversion is at the representative sizes (batch 1, other dims
``dynamic_dim_default``) and is the model that is exported: its ``shape`` fields keep those
sizes.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from ..errors import ConversionError, Issue, Reason
from ..evaluate.runtime import LAYOUT_METADATA
from ..ir import Model, Operator, Subgraph, Tensor
from ..options import ConversionOptions
from ..passes.delegate import slices_to_end_as_strided_slice
from ..passes.graphutil import topo_sort
from .symbols import InputDecl, Symbol, declared_inputs, find_symbols

# 2^k + 1 conversions for k symbols: beyond this many the model is converted statically.
MAX_SYMBOLS = 3
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101,
           103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193, 197, 199)


class NotGeneral(Exception):
    """The conversions at different sizes cannot be merged into one dynamic-shape model."""


@dataclass(frozen=True)
class DynamicPlan:
    """The symbolic dims kept dynamic and the sizes the model is converted at."""

    decls: tuple[InputDecl, ...]
    symbols: tuple[Symbol, ...]
    pinned: dict[str, int]
    representative: tuple[int, ...]
    alternates: tuple[tuple[int, int], ...]  # per symbol: (grid value, verification value)
    # False when the dims are only fixed at their representative sizes (size-based splitting
    # writes static parts), so no generalization is attempted.
    keep_dynamic: bool = True

    def points(self) -> list[tuple[int, ...]]:
        """The representative point first, then the rest of the {rep, alt} grid, then the verification point."""
        k = len(self.symbols)
        grid = [tuple(self.alternates[i][0] if mask >> i & 1 else self.representative[i] for i in range(k))
                for mask in range(2 ** k)]
        return grid + [tuple(a[1] for a in self.alternates)]

    def options_at(self, options: ConversionOptions, values: tuple[int, ...]) -> ConversionOptions:
        """``options`` with every input that has a dynamic dim fixed (as by -ois) at ``values``."""
        by_label = {s.label: v for s, v in zip(self.symbols, values)}
        fixed = dict(options.overwrite_input_shape)
        for d in self.decls:
            if d.name in fixed or d.dims is None or all(isinstance(x, int) for x in d.dims):
                continue
            shape = []
            for axis, dim in enumerate(d.dims):
                if isinstance(dim, int):
                    shape.append(dim)
                    continue
                label = dim or f"{d.name}:{axis}"
                shape.append(by_label.get(label, self.pinned.get(label, options.batch_size or 1)))
            fixed[d.name] = tuple(shape)
        return dataclasses.replace(options, overwrite_input_shape=tuple(fixed.items()))

    def summary(self) -> dict:
        return {"symbols": [{"name": s.label, "inputs": [{"input": n, "axis": a} for n, a in s.occurrences],
                             "representative": r}
                            for s, r in zip(self.symbols, self.representative)],
                "points": [list(p) for p in self.points()]}


def plan_dynamic(source: object, options: ConversionOptions) -> DynamicPlan | None:
    """The plan for ``source``, or None when no dim stays dynamic (then conversion is static, as before)."""
    if not options.dynamic_shapes:
        return None
    decls = declared_inputs(source)  # type: ignore[arg-type]
    if not decls:
        return None
    symbols, pinned = find_symbols(decls, options)
    if len(symbols) > MAX_SYMBOLS:
        return None
    if not symbols:
        # Nothing stays dynamic; a plan is still needed when a size pinned by -ois on one input
        # must be applied to the same named dim of another input.
        overrides = options.input_shape_overrides()
        if not any(isinstance(x, str) and x in pinned for d in decls if d.name not in overrides
                   for x in (d.dims or ())):
            return None
    rep = tuple(1 if s.batch_like else options.dynamic_dim_default for s in symbols)
    used = set(rep) | {d for decl in decls for d in (decl.dims or ()) if isinstance(d, int)} | set(pinned.values())
    alternates = []
    for r in rep:
        # Distinct primes, spread out (second > 2x first) so size coincidences are unlikely.
        a = _next_prime(r + 1, used)
        used.add(a)
        b = _next_prime(2 * a + 1, used)
        used.add(b)
        alternates.append((a, b))
    return DynamicPlan(tuple(decls), tuple(symbols), pinned, rep, tuple(alternates),
                       keep_dynamic=not options.auto_split_tflite_by_size)


def _next_prime(start: int, used: set[int]) -> int:
    for p in _PRIMES:
        if p >= start and p not in used:
            return p
    n = max(start, _PRIMES[-1] + 1)
    while n in used or any(n % q == 0 for q in _PRIMES if q * q <= n):
        n += 1
    return n


# --- running the pipeline at one point ------------------------------------------------------

def convert_point(source: object, options: ConversionOptions) -> Model:
    """Frontend, lowering and passes at fixed sizes (no export); raises NotGeneral if it fails."""
    from ..frontend import prepare
    from ..lower import lower_graph
    from ..passes import run_passes

    try:
        lowered = lower_graph(prepare(source, options), options)  # type: ignore[arg-type]
    except ConversionError as exc:
        raise NotGeneral(exc.issues[0].line()) from exc
    if lowered.issues:
        raise NotGeneral(lowered.issues[0].line())
    if options.optimize:
        run_passes(lowered.model, options)
    return lowered.model


# --- comparing the conversions --------------------------------------------------------------

def _same_value(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _same_quant(a: Tensor, b: Tensor) -> bool:
    qa, qb = a.quantization, b.quantization
    if qa is None or qb is None:
        return qa is qb
    return (qa.axis == qb.axis and _same_value(qa.scale, qb.scale) and _same_value(qa.zero_point, qb.zero_point))


def _op_label(op: Operator) -> str:
    return f"{op.opcode}" + (f" (ONNX node '{op.origin}')" if op.origin else "")


@dataclass
class _Varying:
    """An integer constant of the representative model whose values depend on the sizes."""

    tensor: Tensor
    values: list[np.ndarray]  # one per point (same shape unless ``broadcast``)
    reader: str
    # For a constant whose *shape* depends on the sizes: the size-independent array it
    # broadcasts along the varying axes (e.g. a class token expanded to the batch).
    broadcast: np.ndarray | None = None


def _compare_subgraph(sgs: list[Subgraph], where: str) -> tuple[list[tuple[Tensor, list[tuple[int, ...]]]],
                                                                 list[_Varying]]:
    """Check structural identity; return (tensor, shapes per point) for non-constants and varying constants."""
    ref = sgs[0]
    tensor_lists = [sg.tensors() for sg in sgs]
    n = len(tensor_lists[0])
    if any(len(ts) != n for ts in tensor_lists) or any(len(sg.operators) != len(ref.operators) for sg in sgs):
        raise NotGeneral(f"{where}: the number of ops or tensors changes with the sizes")
    index = [{id(t): i for i, t in enumerate(ts)} for ts in tensor_lists]

    def ids(k: int, tensors: list[Tensor | None]) -> list[int]:
        return [-1 if t is None else index[k][id(t)] for t in tensors]

    for k, sg in enumerate(sgs[1:], 1):
        if ids(k, sg.inputs) != ids(0, ref.inputs) or ids(k, sg.outputs) != ids(0, ref.outputs):
            raise NotGeneral(f"{where}: the graph inputs/outputs change with the sizes")
        for pos, (a, b) in enumerate(zip(ref.operators, sg.operators)):
            if (a.opcode != b.opcode or a.custom_code != b.custom_code or a.custom_options != b.custom_options
                    or ids(0, a.inputs) != ids(k, b.inputs) or ids(0, a.outputs) != ids(k, b.outputs)):
                raise NotGeneral(f"{where}: op #{pos} {_op_label(a)} is converted differently at other sizes "
                                 f"({_op_label(b)})")
            if not _same_value(a.options, b.options):
                raise NotGeneral(f"{where}: the options of op #{pos} {_op_label(a)} depend on the sizes "
                                 f"({a.options} vs {b.options})")
    readers: dict[int, Operator] = {}
    for op in ref.operators:
        for t in op.inputs:
            if t is not None:
                readers.setdefault(id(t), op)
    shapes, varying = [], []
    for i, t in enumerate(tensor_lists[0]):
        others = [ts[i] for ts in tensor_lists]
        reader = _op_label(readers[id(t)]) if id(t) in readers else "a graph output"
        if any(o.dtype != t.dtype or o.is_const != t.is_const or o.rank != t.rank or not _same_quant(o, t)
               for o in others):
            raise NotGeneral(f"{where}: tensor '{t.name}' read by {reader} changes dtype, rank or kind with the "
                             f"sizes")
        if not t.is_const:
            shapes.append((t, [o.shape for o in others]))
            continue
        if all(o.shape == t.shape and np.array_equal(o.data, t.data) for o in others):
            continue
        if any(o.shape != t.shape for o in others):
            small = _broadcast_source([np.asarray(o.data) for o in others]) if t.quantization is None else None
            if small is None:
                raise NotGeneral(f"constant '{t.name}' read by {reader} has a shape that depends on the sizes "
                                 f"({' vs '.join(str(list(o.shape)) for o in others)})")
            varying.append(_Varying(t, [np.asarray(o.data) for o in others], reader, small))
            continue
        if t.dtype.kind not in "i" or t.dtype.itemsize < 4:
            raise NotGeneral(f"{t.dtype.name} constant '{t.name}' read by {reader} depends on the sizes")
        varying.append(_Varying(t, [np.asarray(o.data) for o in others], reader))
    return shapes, varying


def _broadcast_source(datas: list[np.ndarray]) -> np.ndarray | None:
    """The array every point's constant broadcasts along its size-dependent axes, or None."""
    varying_axes = [a for a in range(datas[0].ndim) if len({d.shape[a] for d in datas}) > 1]
    smalls = []
    for d in datas:
        small = d
        for a in varying_axes:
            small = np.take(small, [0], axis=a)
        if not np.array_equal(np.broadcast_to(small, d.shape), d):
            return None
        smalls.append(small)
    return smalls[0] if all(np.array_equal(x, smalls[0]) for x in smalls) else None


# --- fitting integer constants ----------------------------------------------------------------

def _monomials(point: tuple[int, ...]) -> list[int]:
    """[prod of point[i] for i in subset] for every subset (bitmask order; 0 = the constant term)."""
    k = len(point)
    out = []
    for mask in range(2 ** k):
        v = 1
        for i in range(k):
            if mask >> i & 1:
                v *= point[i]
        out.append(v)
    return out


def fit_columns(points: list[tuple[int, ...]], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per entry: integer coefficients C [2^k, n] with values[p] == monomials(p) @ C, and which entries fit.

    The first 2^k points must be the {rep, alt} grid (they determine C); the rest verify it.
    Entries that do not fit (non-integer coefficients, or a verification point disagrees) get
    ``ok`` False and a zero column.
    """
    k = len(points[0])
    m = 2 ** k
    y = values.reshape(len(points), -1)
    design = np.array([_monomials(p) for p in points], dtype=np.int64)
    coef = np.linalg.solve(design[:m].astype(np.float64), y[:m].astype(np.float64))
    rounded = np.round(coef)
    ok = np.all(np.abs(coef - rounded) <= 1e-6, axis=0)
    c = rounded.astype(np.int64)
    ok &= np.all(design @ c == y.astype(np.int64), axis=0)
    c[:, ~ok] = 0
    return c, ok


def fit_multilinear(points: list[tuple[int, ...]], values: np.ndarray) -> np.ndarray | None:
    """Like :func:`fit_columns` for every entry at once: C, or None when some entry does not fit."""
    c, ok = fit_columns(points, values)
    return c if bool(ok.all()) else None


# --- rewriting the representative model -----------------------------------------------------

class _RuntimeSizes:
    """Emits (once each) the ops that read the symbolic sizes from graph inputs at run time."""

    def __init__(self, model: Model, plan: DynamicPlan, io_layout: dict):
        self.model, self.plan, self.io_layout = model, plan, io_layout
        self.ops: list[Operator] = []
        self._cache: dict[tuple, Tensor] = {}

    def const(self, name: str, data: np.ndarray) -> Tensor:
        return Tensor(name, data.shape, data.dtype, data=data)

    def symbol(self, i: int, dtype: np.dtype) -> Tensor:
        """A [1] tensor holding symbol ``i``'s size, read from the first input that carries it."""
        key = ("sym", i, dtype.name)
        if key in self._cache:
            return self._cache[key]
        name, onnx_axis = self.plan.symbols[i].occurrences[0]
        x = self.model.main.inputs[self.model.signature_inputs.index(name)]
        perm = ((self.io_layout.get("inputs") or {}).get(name) or {}).get("perm_from_onnx")
        self._cache[key] = self.dim_of(x, list(perm).index(onnx_axis) if perm else onnx_axis, dtype)
        return self._cache[key]

    def monomial(self, mask: int, dtype: np.dtype) -> Tensor:
        """A [1] tensor holding the product of the symbols in ``mask``."""
        key = ("mono", mask, dtype.name)
        if key in self._cache:
            return self._cache[key]
        members = [i for i in range(len(self.plan.symbols)) if mask >> i & 1]
        acc = self.symbol(members[0], dtype)
        for i in members[1:]:
            out = Tensor(f"dynamic_size_product_{mask}_{i}_{dtype.name}", (1,), dtype)
            self.ops.append(Operator("MUL", [acc, self.symbol(i, dtype)], [out],
                                     {"fusedActivationFunction": "NONE"}, origin="dynamic"))
            acc = out
        self._cache[key] = acc
        return acc

    def dim_of(self, x: Tensor, axis: int, dtype: np.dtype) -> Tensor:
        """A [1] tensor holding the run-time size of ``x``'s ``axis``."""
        key = ("dim", id(x), axis, dtype.name)
        if key not in self._cache:
            shp = Tensor(f"{x.name}/dynamic_shape_{dtype.name}", (x.rank,), dtype)
            self.ops.append(Operator("SHAPE", [x], [shp], {"outType": dtype}, origin=f"dynamic:{x.name}"))
            size = Tensor(f"{x.name}/dynamic_dim{axis}_{dtype.name}", (1,), dtype)
            self.ops.append(Operator("GATHER", [shp, self.const(f"{x.name}/dynamic_dim{axis}_index",
                                                                  np.array([axis], np.int32))], [size],
                                     {"axis": 0, "batchDims": 0}, origin=f"dynamic:{x.name}"))
            self._cache[key] = size
        return self._cache[key]

    def _add_term(self, t: Tensor, acc: Tensor, row: np.ndarray, factor: Tensor, tag: str) -> Tensor:
        dtype, n = t.dtype, row.shape[0]
        term = Tensor(f"{t.name}/dynamic_term_{tag}", (n,), dtype)
        self.ops.append(Operator("MUL", [self.const(f"{t.name}/dynamic_coef_{tag}", row.astype(dtype)), factor],
                                 [term], {"fusedActivationFunction": "NONE"}, origin=f"dynamic:{t.name}"))
        out = Tensor(f"{t.name}/dynamic_sum_{tag}", (n,), dtype)
        self.ops.append(Operator("ADD", [acc, term], [out], {"fusedActivationFunction": "NONE"},
                                 origin=f"dynamic:{t.name}"))
        return out

    def affine(self, t: Tensor, coef: np.ndarray, from_input: dict[int, tuple[Tensor, int]]) -> Tensor:
        """A tensor computing ``t``'s values at run time.

        Row 0 of ``coef`` is the constant part, row ``mask`` multiplies the product of the
        symbols in ``mask``; entries in ``from_input`` add the run-time size of a tensor's axis.
        """
        dtype = t.dtype
        n = coef.shape[1]
        acc = self.const(f"{t.name}/dynamic_base", coef[0].astype(dtype))
        for mask in range(1, coef.shape[0]):
            if coef[mask].any():
                acc = self._add_term(t, acc, coef[mask], self.monomial(mask, dtype), str(mask))
        for e, (x, axis) in sorted(from_input.items()):
            onehot = np.zeros(n, np.int64)
            onehot[e] = 1
            acc = self._add_term(t, acc, onehot, self.dim_of(x, axis, dtype), f"entry{e}")
        if acc.is_const:  # cannot happen for a varying constant; keeps the contract obvious
            raise NotGeneral(f"constant '{t.name}' has no size-dependent entry")
        if t.shape != (n,):
            out = Tensor(f"{t.name}/dynamic", t.shape, dtype)
            self.ops.append(Operator("RESHAPE", [acc, self.const(f"{t.name}/dynamic_shape",
                                                                  np.array(t.shape, np.int32))], [out],
                                     origin=f"dynamic:{t.name}"))
            acc = out
        return acc


def _readers_at(t: Tensor, sg: Subgraph, slots: set[tuple[str, int]]) -> list[Operator]:
    """The ops reading ``t``, when every read is an (opcode, input position) of ``slots`` and
    ``t`` is not a graph output; [] otherwise."""
    uses = [(op, i) for op in sg.operators for i, x in enumerate(op.inputs) if x is t]
    if not uses or t in sg.outputs or any((op.opcode, i) not in slots for op, i in uses):
        return []
    return [op for op, _ in uses]


def _reshape_uses(t: Tensor, sg: Subgraph) -> list[Operator]:
    """The RESHAPE ops reading ``t`` as their target shape, or [] if anything else reads it."""
    return _readers_at(t, sg, {("RESHAPE", 1)})


def _forward_on(op: Operator, axes: list[int], varying_ids: set[int]) -> bool:
    """A STRIDED_SLICE with no special masks and constant positive strides (not begin-masked) on ``axes``."""
    strides, opts = (op.inputs[3] if len(op.inputs) > 3 else None), op.options
    if strides is None or not strides.is_const or id(strides) in varying_ids \
            or any(opts.get(k) for k in ("ellipsisMask", "newAxisMask", "shrinkAxisMask", "offset")):
        return False
    step = np.asarray(strides.data).reshape(-1)
    return all(step[e] > 0 and not int(opts.get("beginMask", 0)) >> e & 1 for e in axes)


def _runs_to_end(v: _Varying, changing: list[int], shapes: dict[int, list[tuple[int, ...]]],
                 sg: Subgraph, varying_ids: set[int]) -> str | None:
    """"SLICE" / "STRIDED_SLICE" when ``v`` is only read as that op's size / end and every changing
    entry reaches the end of its axis at every size (a whole batch or sequence axis); else None.

    Such entries need no run-time SHAPE arithmetic: a SLICE size becomes -1 and a STRIDED_SLICE
    end an ``end_mask`` bit, so the parameters stay constant (which XNNPACK requires).
    """
    readers = _readers_at(v.tensor, sg, {("SLICE", 2), ("STRIDED_SLICE", 2)})
    if len({op.opcode for op in readers}) != 1:
        return None
    opcode = readers[0].opcode
    for op in readers:
        begin, data = op.inputs[1], op.inputs[0]
        per_point = shapes.get(id(data))
        if not begin.is_const or id(begin) in varying_ids or per_point is None:
            return None
        start = np.asarray(begin.data, np.int64).reshape(-1)
        if opcode == "STRIDED_SLICE" and not _forward_on(op, changing, varying_ids):
            return None
        for e in changing:
            reach = [dims[e] if opcode == "STRIDED_SLICE" else dims[e] - start[e] for dims in per_point]
            if start[e] < 0 or any(int(np.asarray(val).reshape(-1)[e]) != r for val, r in zip(v.values, reach)):
                return None
    return opcode


@dataclass
class _Resolution:
    """How each entry of a varying integer constant is obtained at run time."""

    varying: _Varying
    coef: np.ndarray  # [2^k, n]: entry = coef[0] + sum of coef[mask] * monomial(mask)
    from_input: dict[int, tuple[Tensor, int]]  # entry -> (tensor, axis) whose run-time size it is
    minus_one: tuple[int, ...]  # entries written as -1: RESHAPE infers it, SLICE runs to the end
    end_mask: tuple[int, ...] = ()  # STRIDED_SLICE end entries replaced by end_mask bits


def _resolve(v: _Varying, points: list[tuple[int, ...]], shapes: dict[int, list[tuple[int, ...]]],
             sg: Subgraph, varying_ids: set[int]) -> _Resolution:
    """Explain every size-dependent entry of ``v`` or raise :class:`NotGeneral`.

    In order: a multilinear function of the symbolic sizes; for a RESHAPE target, a dim of the
    RESHAPE's data input (e.g. a strided convolution's output length, which is not affine) or,
    once, -1 (RESHAPE infers it). A SLICE size or STRIDED_SLICE end that always reaches the end
    of its axis is checked first: -1 or an ``end_mask`` bit, no run-time computation.
    """
    if v.broadcast is not None:  # its shape must be affine in the sizes; BROADCAST_TO does the rest
        dims = np.array([x.shape for x in v.values], np.int64)
        coef, ok = fit_columns(points, dims)
        if not ok.all():
            raise NotGeneral(f"constant '{v.tensor.name}' read by {v.reader} has a shape that is not an affine "
                             f"function of the symbolic sizes ({dims.tolist()} at sizes {[list(p) for p in points]})")
        return _Resolution(v, coef, {}, ())
    values = np.stack([np.asarray(x, np.int64).reshape(-1) for x in v.values])
    coef, ok = fit_columns(points, values)
    changing = [int(e) for e in np.flatnonzero(np.any(values != values[0], axis=0))]
    to_end = _runs_to_end(v, changing, shapes, sg, varying_ids)
    if to_end == "SLICE":
        return _Resolution(v, coef, {}, tuple(changing))
    if to_end == "STRIDED_SLICE":
        return _Resolution(v, coef, {}, (), tuple(changing))
    reshapes = _reshape_uses(v.tensor, sg)
    can_infer = bool(reshapes) and not np.any(values[0] == -1)
    if can_infer and len(changing) == 1:  # the cheapest: no run-time computation at all
        return _Resolution(v, coef, {}, (changing[0],))
    from_input: dict[int, tuple[Tensor, int]] = {}
    infer = None
    for e in changing:
        if ok[e]:
            continue
        data = reshapes[0].inputs[0] if len(reshapes) == 1 else None
        per_point = shapes.get(id(data)) if data is not None else None
        axis = next((j for j in range(len(per_point[0])) if [p[j] for p in per_point] == values[:, e].tolist()),
                    None) if per_point else None
        if axis is not None:
            from_input[e] = (data, axis)
        elif can_infer and infer is None:
            infer = e
        else:
            raise NotGeneral(f"constant '{v.tensor.name}' read by {v.reader} is not an affine function of the "
                             f"symbolic sizes (values {values.tolist()} at sizes {[list(p) for p in points]})")
    return _Resolution(v, coef, from_input, () if infer is None else (infer,))


def _apply(res: _Resolution, sizes: _RuntimeSizes, sg: Subgraph) -> None:
    t = res.varying.tensor
    coef = res.coef.copy()
    small = res.varying.broadcast
    if small is not None:
        shape = sizes.affine(Tensor(f"{t.name}/broadcast_shape", (t.rank,), np.int32), coef, {})
        sig = tuple(-1 if len({x.shape[a] for x in res.varying.values}) > 1 else t.shape[a] for a in range(t.rank))
        out = Tensor(f"{t.name}/dynamic", t.shape, t.dtype, shape_signature=sig)
        sizes.ops.append(Operator("BROADCAST_TO", [sizes.const(f"{t.name}/broadcast_source", small), shape], [out],
                                  origin=f"dynamic:{t.name}"))
        sg.replace_uses(t, out)
        return
    for e in res.minus_one:
        coef[:, e] = 0
        coef[0, e] = -1
    if res.end_mask:
        coef[:, list(res.end_mask)] = 0  # ignored under the mask; 0 keeps the file independent of the sizes
        bits = sum(1 << e for e in res.end_mask)
        for op in _readers_at(t, sg, {("STRIDED_SLICE", 2)}):
            op.options = {**op.options, "endMask": int(op.options.get("endMask", 0)) | bits}
    for e in res.from_input:
        coef[:, e] = 0
    if not res.from_input and not coef[1:].any():  # only the -1 or masked entries depended on the sizes
        t.data = coef[0].astype(t.dtype).reshape(t.shape)
        return
    sg.replace_uses(t, sizes.affine(t, coef, res.from_input))


def _rewrite_varying(model: Model, resolutions: list[_Resolution], plan: DynamicPlan, io_layout: dict) -> None:
    if not resolutions:
        return
    sizes = _RuntimeSizes(model, plan, io_layout)
    main = model.main
    for res in resolutions:
        _apply(res, sizes, main)
    # SHAPE of intermediate tensors must follow their producers: prepend, then reorder.
    main.operators[:0] = sizes.ops
    topo_sort(main)
    slices_to_end_as_strided_slice(main)  # the SLICE sizes just set to -1, as the passes spell them


# --- the whole step ---------------------------------------------------------------------------

def generalize(plan: DynamicPlan, source: object, options: ConversionOptions, model: Model,
               io_layout: dict) -> None:
    """Turn ``model`` (converted at the representative point) into a dynamic-shape model in place.

    Converts the other points, compares, marks varying dims -1 and computes varying integer
    constants at run time. Raises :class:`NotGeneral` (``model`` untouched) when the sizes
    cannot stay dynamic.
    """
    points = plan.points()
    models = [model]
    for p in points[1:]:
        other = convert_point(source, plan.options_at(options, p))
        if len(other.subgraphs) != len(model.subgraphs):
            raise NotGeneral("the number of subgraphs changes with the sizes")
        # Fail fast: most models that do not generalize show it at the first other size.
        for s in range(len(model.subgraphs)):
            _compare_subgraph([model.subgraphs[s], other.subgraphs[s]], "main graph" if s == 0 else f"subgraph {s}")
        models.append(other)
    all_shapes, varying_main = [], []
    for s in range(len(model.subgraphs)):
        shapes, varying = _compare_subgraph([m.subgraphs[s] for m in models],
                                            "main graph" if s == 0 else f"subgraph {s}")
        if varying and s != 0:
            raise NotGeneral(f"constant '{varying[0].tensor.name}' inside a control-flow body depends on the sizes")
        all_shapes.extend(shapes)
        varying_main = varying if s == 0 else varying_main
    # Explain every varying constant before touching the model (NotGeneral leaves it as it was).
    shapes_by_id = {id(t): per_point for t, per_point in all_shapes}
    varying_ids = {id(v.tensor) for v in varying_main}
    resolutions = [_resolve(v, points, shapes_by_id, model.main, varying_ids) for v in varying_main]
    for t, per_point in all_shapes:
        old = t.shape_signature
        sig = tuple(-1 if any(s[a] != t.shape[a] for s in per_point) or (old is not None and old[a] < 0)
                    else t.shape[a] for a in range(t.rank))
        if any(d < 0 for d in sig):
            t.shape_signature = sig
    _rewrite_varying(model, resolutions, plan, io_layout)
    _record_layout(model, plan, io_layout)


def _record_layout(model: Model, plan: DynamicPlan, io_layout: dict) -> None:
    """Add the dynamic dims to the I/O layout mapping (and the metadata copy of it)."""
    by_input: dict[str, dict[str, str]] = {}
    for s in plan.symbols:
        for name, axis in s.occurrences:
            by_input.setdefault(name, {})[str(axis)] = s.label
    for kind, names, tensors in (("inputs", model.signature_inputs, model.main.inputs),
                                 ("outputs", model.signature_outputs, model.main.outputs)):
        entries = io_layout.setdefault(kind, {})
        for name, t in zip(names, tensors):
            entry = entries.get(name)
            if entry is None:
                continue
            sig = list(t.shape_signature) if t.shape_signature is not None else list(t.shape)
            perm = entry.get("perm_from_onnx")
            onnx_sig = [0] * len(sig)
            for ir_axis, d in enumerate(sig):
                onnx_sig[perm[ir_axis] if perm else ir_axis] = d
            entry["shape_signature"] = sig
            entry["onnx_shape_signature"] = onnx_sig
            if kind == "inputs" and name in by_input:
                entry["dynamic_dims"] = dict(sorted(by_input[name].items()))
    model.metadata[LAYOUT_METADATA] = json.dumps(io_layout, sort_keys=True).encode()


def static_fallback_warning(plan: DynamicPlan, reason: str) -> str:
    """The warning for symbolic dims that stay at their representative sizes (static model).

    Used when the graph does not generalize to other sizes (``reason``) and when splitting,
    which writes static parts. The warning names the sizes and how to choose others.
    """
    sizes = ", ".join(f"{s.describe()} = {r}" for s, r in zip(plan.symbols, plan.representative))
    hints = [f"-ois {d.name}:" + ",".join(str(x) if isinstance(x, int) else "N" for x in d.dims)
             for d in plan.decls if d.dims is not None and any(isinstance(x, str) for x in d.dims)]
    return (f"symbolic dim(s) fixed at static sizes ({sizes}): {reason}; choose other sizes with "
            f"{' '.join(hints)} (or --dynamic_dim_default N)")


def representative_hint(plan: DynamicPlan | None) -> list[Issue]:
    """The extra issue for a conversion that failed at the representative sizes of non-batch symbols.

    Such a dim was converted at ``dynamic_dim_default``, a size the model may not accept (a
    convolution wider than it, a reshape baked for a traced length): say so, and how to pin it.
    """
    if plan is None:
        return []
    non_batch = [(s, r) for s, r in zip(plan.symbols, plan.representative) if not s.batch_like]
    if not non_batch:
        return []
    hints = [f"-ois {d.name}:" + ",".join(str(x) if isinstance(x, int) else "N" for x in d.dims)
             for d in plan.decls if d.dims is not None and any(isinstance(x, str) for x in d.dims)]
    sizes = ", ".join(f"{s.describe()} = {r}" for s, r in non_batch)
    return [Issue(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                  f"symbolic dim(s) were converted at their representative size ({sizes}; "
                  f"--dynamic_dim_default) and the model does not convert at that size; choose another size "
                  f"with --dynamic_dim_default N or fix the dims with {' '.join(hints)}")]

"""Lowerings of the ai.onnx.ml domain: Binarizer, ArrayFeatureExtractor, TreeEnsemble.

TreeEnsemble is lowered exactly over its static tree structure: every interior node becomes a
comparison of one input feature with its threshold (bool [N, 1]), and every tree becomes a
nest of SELECT_V2 between constant leaf rows [n_targets] (the leaf weight at its target, the
aggregation's neutral value elsewhere); the trees are then aggregated in the reference's order.

Thresholds are compared exactly in the input's precision:

- float32 input with float64 thresholds: ``x <= t`` is ``x <= down(t)`` (the largest float32
  not above t), ``x < t`` is ``x < up(t)``, ``x == t`` is impossible unless t is a float32, ...
- float64 input: LiteRT has no float64 comparison kernels, so the bits are compared instead:
  BITCAST to int64 and map to an order-preserving key (``-magnitude`` for negative values, which
  also makes -0.0 equal +0.0); NaN is detected from the magnitude. Leaf values are selected as
  int64 bit patterns and BITCAST back, which is exact when each target gets at most one tree's
  leaf (float64 additions are refused).
"""
from __future__ import annotations

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering
from .elementwise import emit_binary, scalar

ML = "ai.onnx.ml"
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I32 = np.dtype(np.int32)
_I64 = np.dtype(np.int64)
_BOOL = np.dtype(np.bool_)

_LEQ, _LT, _GTE, _GT, _EQ, _NEQ, _MEMBER = range(7)
_SUM, _AVERAGE_ID, _MIN, _MAX = 1, 0, 2, 3
# More interior nodes than this would make an unreasonably large model (one SELECT_V2 each).
_MAX_TREE_NODES = 20000


# -- helpers ---------------------------------------------------------------------------------------
def _cmp(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor) -> Tensor:
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    return ctx.emit1(opcode, [a, b], shape, _BOOL, opcode.lower())


def _logical(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor) -> Tensor:
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    return ctx.emit1(opcode, [a, b], shape, _BOOL, opcode.lower())


def _not(ctx: LowerContext, a: Tensor) -> Tensor:
    return ctx.emit1("LOGICAL_NOT", [a], a.shape, _BOOL, "not")


def _select(ctx: LowerContext, cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
    shape = tuple(np.broadcast_shapes(cond.shape, a.shape, b.shape))
    return ctx.emit1("SELECT_V2", [cond, a, b], shape, a.dtype, "select")


def _cast(ctx: LowerContext, x: Tensor, dtype: np.dtype) -> Tensor:
    return ctx.emit1("CAST", [x], x.shape, dtype, "cast", inDataType=x.dtype, outDataType=np.dtype(dtype))


def f32_down(t: float) -> np.float32:
    """The largest float32 <= t (t a float64; NaN stays NaN)."""
    f = np.float32(t)
    return np.nextafter(f, np.float32(-np.inf)) if float(f) > t else f


def f32_up(t: float) -> np.float32:
    """The smallest float32 >= t."""
    f = np.float32(t)
    return np.nextafter(f, np.float32(np.inf)) if float(f) < t else f


def f64_key(value: float) -> int:
    """Order-preserving int64 key of a float64 (-0.0 and +0.0 share key 0); the run-time twin is _key()."""
    bits = int(np.array(value, _F64).view(_I64))
    return -(bits & 0x7FFFFFFFFFFFFFFF) if bits < 0 else bits


# -- Binarizer -------------------------------------------------------------------------------------
@lowering("Binarizer", since=1, domain=ML, onnx_dtypes=("float32", "float64", "int64", "int32"),
          dtypes=("float32",), verified=("float32",))
def lower_binarizer(node: NodeView, ctx: LowerContext) -> None:
    """Y = (X > threshold) cast to X's type: GREATER + CAST."""
    x = ctx.input(0)
    threshold = np.float32(node.attr("threshold", 0.0))
    mask = _cmp(ctx, "GREATER", x, scalar(ctx, threshold, _F32, "threshold"))
    ctx.emit1("CAST", [mask], x.shape, _F32, out=ctx.output(0, x.shape, _F32), inDataType=_BOOL, outDataType=_F32)


# -- ArrayFeatureExtractor -------------------------------------------------------------------------
_AFE_DTYPES = ("float32", "int32", "int64")


@lowering("ArrayFeatureExtractor", since=1, domain=ML, onnx_dtypes=("float32", "float64", "int64", "int32", "string"),
          dtypes=_AFE_DTYPES, verified=_AFE_DTYPES)
def lower_array_feature_extractor(node: NodeView, ctx: LowerContext) -> None:
    """Z = X[..., Y] with Y flattened (a 1-D X gives [1, len(Y)]): GATHER along the last axis.

    Negative indices count from the end (numpy's reading, as in the ONNX reference); run-time
    indices are wrapped with SELECT_V2, constant ones at conversion time.
    """
    x, idx = ctx.input(0), ctx.input(1)
    if x.rank < 1 or x.size == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "X must have at least one element")
    count = int(np.prod(idx.shape))
    if count == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "an empty index list gives a zero-sized output")
    features = x.shape[-1]
    out_shape = (1, count) if x.rank == 1 else x.shape[:-1] + (count,)
    value = ctx.const(1)
    if value is not None:
        flat = np.asarray(value).reshape(-1).astype(np.int64)
        if np.any(flat < -features) or np.any(flat >= features):
            raise ctx.fail(Reason.INVALID_MODEL, f"indices {flat.tolist()} out of range for {features} features")
        positions = ctx.new_const((flat % features).astype(np.int32), hint="indices")
    else:
        positions = ctx.reshape(idx, (count,))
        negative = _cmp(ctx, "LESS", positions, scalar(ctx, 0, positions.dtype, "zero"))
        wrapped = emit_binary(ctx, "ADD", positions, scalar(ctx, features, positions.dtype, "n"), hint="wrapped")
        positions = _select(ctx, negative, wrapped, positions)
    data = ctx.reshape(x, (1, features)) if x.rank == 1 else x
    ctx.emit("GATHER", [data, positions], [ctx.output(0, out_shape, x.dtype)], axis=data.rank - 1, batchDims=0)


# -- TreeEnsemble ----------------------------------------------------------------------------------
def _attr_array(node: NodeView, name: str, dtype: type | None = None) -> np.ndarray | None:
    value = node.attr(name)
    if value is None:
        return None
    if hasattr(value, "dims"):  # a TensorProto attribute
        from onnx import numpy_helper
        arr = numpy_helper.to_array(value)
    else:
        arr = np.asarray(value)
    return arr.astype(dtype) if dtype is not None else arr


class _Comparator:
    """Emits exact feature-vs-constant comparisons for one input (float32 or float64)."""

    def __init__(self, ctx: LowerContext, x: Tensor):
        self.ctx = ctx
        self.x = x
        self.f64 = x.dtype == _F64
        # float64 values are handled as their int64 bit patterns (LiteRT's SLICE has no float64 kernel)
        self.source = ctx.emit1("BITCAST", [x], x.shape, _I64, "bits") if self.f64 else x
        self._columns: dict[int, Tensor] = {}
        self._nan: dict[int, Tensor] = {}

    def column(self, feature: int) -> Tensor:
        """Feature ``feature`` as [N, 1] (float32 values, or int64 keys for float64 input)."""
        if feature not in self._columns:
            ctx, src = self.ctx, self.source
            n = src.shape[0]
            col = ctx.emit1("SLICE", [src, ctx.new_const(np.array([0, feature], np.int32), hint="begin"),
                                        ctx.new_const(np.array([n, 1], np.int32), hint="size")],
                            (n, 1), src.dtype, "feature")
            if self.f64:
                bits = col
                # negative values: bits - INT64_MIN (wrapping) is the magnitude; the key is its negation
                mag = emit_binary(ctx, "SUB", bits, scalar(ctx, np.iinfo(np.int64).min, _I64, "sign"), hint="mag")
                negative = _cmp(ctx, "LESS", bits, scalar(ctx, 0, _I64, "zero"))
                key = _select(ctx, negative, ctx.emit1("NEG", [mag], (n, 1), _I64, "neg"), bits)
                magnitude = _select(ctx, negative, mag, bits)
                self._nan[feature] = _cmp(ctx, "GREATER", magnitude,
                                          scalar(ctx, 0x7FF0000000000000, _I64, "inf_bits"))
                col = key
            self._columns[feature] = col
        return self._columns[feature]

    def isnan(self, feature: int) -> Tensor:
        col = self.column(feature)
        if self.f64:
            return self._nan[feature]
        return _cmp(self.ctx, "NOT_EQUAL", col, col)

    def _const(self, value: float | int, dtype: np.dtype) -> Tensor:
        return scalar(self.ctx, value, dtype, "split")

    def compare(self, mode: int, feature: int, split: float) -> Tensor | bool:
        """``x[:, feature] <mode> split`` for non-NaN x (NaN handled by the caller); a bool when constant."""
        col = self.column(feature)
        if np.isnan(split):
            return mode == _NEQ
        if self.f64:
            key = f64_key(split)
            opcode = {_LEQ: "LESS_EQUAL", _LT: "LESS", _GTE: "GREATER_EQUAL", _GT: "GREATER", _EQ: "EQUAL",
                      _NEQ: "NOT_EQUAL"}[mode]
            return _cmp(self.ctx, opcode, col, self._const(key, _I64))
        if mode in (_EQ, _NEQ):
            exact = float(np.float32(split)) == split
            if not exact:
                return mode == _NEQ
            return _cmp(self.ctx, "EQUAL" if mode == _EQ else "NOT_EQUAL", col, self._const(np.float32(split), _F32))
        bound = f32_down(split) if mode in (_LEQ, _GT) else f32_up(split)
        opcode = {_LEQ: "LESS_EQUAL", _LT: "LESS", _GTE: "GREATER_EQUAL", _GT: "GREATER"}[mode]
        return _cmp(self.ctx, opcode, col, self._const(bound, _F32))


def _membership_sets(modes: np.ndarray, members: np.ndarray | None) -> dict[int, list[float]]:
    """Interior node index -> its member values (NaN-delimited in the order the MEMBER nodes appear)."""
    sets: dict[int, list[float]] = {}
    if members is None:
        return sets
    values = [float(v) for v in np.asarray(members, np.float64).reshape(-1)]
    pos = 0
    for i, mode in enumerate(modes):
        if mode != _MEMBER:
            continue
        current = []
        while pos < len(values) and not np.isnan(values[pos]):
            current.append(values[pos])
            pos += 1
        pos += 1  # the NaN delimiter
        sets[i] = current
    return sets


@lowering("TreeEnsemble", since=5, domain=ML, onnx_dtypes=("float32", "float64", "float16"),
          dtypes=("float32", "float64"), verified=("float32", "float64"))
def lower_tree_ensemble(node: NodeView, ctx: LowerContext) -> None:
    """TreeEnsemble (post_transform NONE; SUM/AVERAGE/MIN/MAX) as exact comparisons and SELECT_V2 nests."""
    x = ctx.input(0)
    if x.dtype not in (_F32, _F64):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"input dtype {x.dtype.name}: float32 and float64 are supported")
    if x.rank != 2 or x.shape[0] == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"X must be a non-empty [N, F] tensor, got {list(x.shape)}")
    post = int(node.attr("post_transform", 0))
    if post != 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"post_transform {post}: only NONE (0) is supported")
    aggregate = int(node.attr("aggregate_function", _SUM))
    if aggregate not in (_SUM, _AVERAGE_ID, _MIN, _MAX):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"aggregate_function {aggregate}")
    n_targets = int(node.attr("n_targets", 0))
    modes = _attr_array(node, "nodes_modes", np.int64)
    splits = _attr_array(node, "nodes_splits", np.float64)
    features = _attr_array(node, "nodes_featureids", np.int64)
    true_ids = _attr_array(node, "nodes_truenodeids", np.int64)
    false_ids = _attr_array(node, "nodes_falsenodeids", np.int64)
    true_leaf = _attr_array(node, "nodes_trueleafs", np.int64)
    false_leaf = _attr_array(node, "nodes_falseleafs", np.int64)
    leaf_targets = _attr_array(node, "leaf_targetids", np.int64)
    leaf_weights = _attr_array(node, "leaf_weights")
    roots = _attr_array(node, "tree_roots", np.int64)
    required = [modes, splits, features, true_ids, false_ids, true_leaf, false_leaf, leaf_targets, leaf_weights, roots]
    if any(a is None for a in required) or n_targets <= 0:
        raise ctx.fail(Reason.INVALID_MODEL, "TreeEnsemble misses required attributes")
    nan_true = _attr_array(node, "nodes_missing_value_tracks_true", np.int64)
    if nan_true is None:
        nan_true = np.zeros(len(modes), np.int64)
    members = _membership_sets(modes, _attr_array(node, "membership_values", np.float64))
    if len(modes) > _MAX_TREE_NODES:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{len(modes)} tree nodes exceed {_MAX_TREE_NODES}")
    if np.any(features < 0) or np.any(features >= x.shape[1]) or np.any(leaf_targets < 0) \
            or np.any(leaf_targets >= n_targets):
        raise ctx.fail(Reason.INVALID_MODEL, "a feature or target id is out of range")

    f64 = x.dtype == _F64
    weights = np.asarray(leaf_weights, np.float64 if f64 else np.float32).reshape(-1)
    n_trees = len(roots)
    if aggregate == _AVERAGE_ID and n_trees > 1:
        # the reference adds weight / n_trees (computed in float64) into the sum
        weights = (weights.astype(np.float64) / n_trees).astype(weights.dtype)
    neutral = {_SUM: 0.0, _AVERAGE_ID: 0.0, _MIN: np.inf, _MAX: -np.inf}[aggregate]
    out_dtype = _F64 if f64 else _F32
    contributing = np.zeros(n_targets, np.int64)  # trees that can reach each target
    comparator = _Comparator(ctx, x)
    conditions: dict[int, Tensor | bool] = {}

    def condition(i: int) -> Tensor | bool:
        if i not in conditions:
            mode, feature = int(modes[i]), int(features[i])
            if mode == _MEMBER:
                if i not in members:
                    raise ctx.fail(Reason.INVALID_MODEL, "a BRANCH_MEMBER node has no membership values")
                result: Tensor | bool = False
                for value in members[i]:
                    hit = comparator.compare(_EQ, feature, value)
                    result = _or(ctx, result, hit)
            elif mode in (_LEQ, _LT, _GTE, _GT, _EQ, _NEQ):
                result = comparator.compare(mode, feature, float(splits[i]))
            else:
                raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"node mode {mode}")
            # On NaN the reference is true exactly for NEQ or missing_value_tracks_true. float32
            # comparisons (and float64 EQ/NEQ keys) already give the NEQ answer; float64 order
            # comparisons of NaN keys do not.
            nan_ok = not comparator.f64 or mode in (_EQ, _NEQ, _MEMBER)
            if nan_true[i] and mode != _NEQ:
                result = _or(ctx, result, comparator.isnan(feature))
            elif not nan_ok and not isinstance(result, bool):
                result = _logical(ctx, "LOGICAL_AND", result, _not(ctx, comparator.isnan(feature)))
            conditions[i] = result
        return conditions[i]

    def leaf_row(leaf: int) -> np.ndarray:
        row = np.full(n_targets, neutral, np.float64 if f64 else np.float32)
        w = weights[leaf]
        if aggregate in (_SUM, _AVERAGE_ID) and w == 0:
            w = 0.0  # 0 + (-0.0) is +0.0 in the reference's accumulation
        row[int(leaf_targets[leaf])] = w
        return row

    def evaluate(is_leaf: bool, index: int, depth: int, reach: set[int]) -> Tensor | np.ndarray:
        if depth > len(modes):
            raise ctx.fail(Reason.INVALID_MODEL, "the tree has a cycle")
        if is_leaf:
            if not 0 <= index < len(weights):
                raise ctx.fail(Reason.INVALID_MODEL, f"leaf {index} out of range")
            reach.add(int(leaf_targets[index]))
            return leaf_row(index)
        if not 0 <= index < len(modes):
            raise ctx.fail(Reason.INVALID_MODEL, f"node {index} out of range")
        cond = condition(index)
        if isinstance(cond, bool):
            branch = (bool(true_leaf[index]), int(true_ids[index])) if cond else \
                (bool(false_leaf[index]), int(false_ids[index]))
            return evaluate(*branch, depth + 1, reach)
        a = evaluate(bool(true_leaf[index]), int(true_ids[index]), depth + 1, reach)
        b = evaluate(bool(false_leaf[index]), int(false_ids[index]), depth + 1, reach)
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a.view(np.uint8),
                                                                                      b.view(np.uint8)):
            return a
        return _select(ctx, cond, _as_tensor(ctx, a, f64), _as_tensor(ctx, b, f64))

    if len(roots) == 0:
        raise ctx.fail(Reason.INVALID_MODEL, "TreeEnsemble has no trees")
    results = []
    always = np.zeros(n_targets, bool)  # targets some tree contributes to for every input
    for root in roots:
        root = int(root)
        # a single-leaf tree: both branches name the same leaf
        single = bool(true_leaf[root]) and bool(false_leaf[root]) and true_ids[root] == false_ids[root]
        reach: set[int] = set()
        value = evaluate(True, int(true_ids[root]), 0, reach) if single else evaluate(False, root, 0, reach)
        for t in reach:
            contributing[t] += 1
        if len(reach) == 1:
            always[next(iter(reach))] = True
        results.append(value)
    if aggregate in (_MIN, _MAX) and not always.all():
        # A target no leaf reached is 0 in ONNX Runtime but +-FLT_MAX in the ONNX reference.
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "MIN/MAX aggregation where a target may get no leaf "
                       "value: its output is not defined consistently (ONNX Runtime 0, the reference +-FLT_MAX)")

    out = ctx.output(0, (x.shape[0], n_targets), out_dtype)
    if f64:
        if np.any(contributing > 1):
            raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "float64 trees that add into the same target need float64 "
                                                     "arithmetic, which LiteRT lacks")
        if aggregate in (_MIN, _MAX):
            raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "float64 MIN/MAX aggregation is not supported")
        # each target takes the one tree that reaches it (its neutral 0.0 elsewhere); merge the bit patterns
        total: Tensor | np.ndarray = np.zeros(n_targets, np.int64)
        for value in results:
            bits = value.view(np.int64) if isinstance(value, np.ndarray) else value
            total = _merge_bits(ctx, total, bits)
        if isinstance(total, np.ndarray):
            total = ctx.new_const(np.broadcast_to(total, (x.shape[0], n_targets)).copy(), hint="bits")
        elif total.shape != (x.shape[0], n_targets):
            total = ctx.emit1("BROADCAST_TO", [total, ctx.new_const(np.array(out.shape, np.int32), hint="shape")],
                              out.shape, _I64, "bits")
        ctx.emit("BITCAST", [total], [out])
        return

    opcode = {_SUM: "ADD", _AVERAGE_ID: "ADD", _MIN: "MINIMUM", _MAX: "MAXIMUM"}[aggregate]
    start = {_SUM: 0.0, _AVERAGE_ID: 0.0, _MIN: np.finfo(np.float32).max, _MAX: np.finfo(np.float32).min}[aggregate]
    acc: Tensor = ctx.new_const(np.full((x.shape[0], n_targets), start, np.float32), hint="init")
    for i, value in enumerate(results):
        last = i == len(results) - 1
        acc = emit_binary(ctx, opcode, acc, _as_tensor(ctx, value, False), out=out if last else None, hint="agg")


def _or(ctx: LowerContext, a: Tensor | bool, b: Tensor | bool) -> Tensor | bool:
    if isinstance(a, bool):
        return True if a else b
    if isinstance(b, bool):
        return True if b else a
    return _logical(ctx, "LOGICAL_OR", a, b)


def _as_tensor(ctx: LowerContext, value: Tensor | np.ndarray, f64: bool) -> Tensor:
    """A leaf row constant (float64 rows travel as their int64 bit patterns) or a computed tensor."""
    if isinstance(value, np.ndarray):
        return ctx.new_const(value.view(np.int64) if f64 else value, hint="leaf")
    return value


def _merge_bits(ctx: LowerContext, total: Tensor | np.ndarray, bits: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """Combine per-target bit patterns of trees that reach disjoint targets (0 = +0.0 = no contribution)."""
    if isinstance(total, np.ndarray) and isinstance(bits, np.ndarray):
        return np.where(bits != 0, bits, total)
    a = total if isinstance(total, Tensor) else ctx.new_const(total, hint="bits")
    b = bits if isinstance(bits, Tensor) else ctx.new_const(bits, hint="bits")
    keep = _cmp(ctx, "NOT_EQUAL", b, scalar(ctx, 0, _I64, "zero"))
    return _select(ctx, keep, b, a)

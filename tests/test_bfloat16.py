"""bfloat16 end to end: CAST to/from bfloat16, data movement and exact arithmetic through float32.

ONNX Runtime's Python API can neither feed nor return bfloat16 tensors, so bfloat16 models are
checked against the ONNX reference evaluator (which computes bfloat16 with ml_dtypes, in
float32, rounding to nearest even). Casts are also checked against ONNX Runtime on float32
models that round-trip through bfloat16 inside the graph.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import onnx2litert
from onnx2litert.evaluate import run_tflite
from tests.helpers import check_model, expect_failure, make_model, single_op_model

BF16 = np.dtype(ml_dtypes.bfloat16)
_F32 = np.float32


def bf16_data(shape: tuple[int, ...], seed: int = 0, scale: float = 3.0) -> np.ndarray:
    """Seeded standard-normal values rounded to bfloat16."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32).astype(BF16)


def _same(out: np.ndarray, ref: np.ndarray, ulps: int) -> bool:
    """Bit-exact (NaNs equal) for ulps == 0, else within ``ulps`` bfloat16 units in the last place."""
    if ref.dtype != BF16:
        return np.array_equal(out, ref, equal_nan=ref.dtype.kind == "f")
    o, r = out.astype(np.float32), ref.astype(np.float32)
    nan = np.isnan(o) & np.isnan(r)
    if ulps == 0:
        return bool(np.all(nan | (o == r)))
    spacing = np.abs(np.spacing(r.astype(BF16)).astype(np.float32))
    return bool(np.all(nan | (o == r) | (np.abs(o - r) <= ulps * spacing)))


def check_bf16(model: onnx.ModelProto, feeds: dict[str, np.ndarray], ulps: int = 0) -> None:
    """Convert, run in LiteRT (XNNPACK and builtin kernels) and compare with the ONNX reference.

    ``ulps`` = 0 for ops that are exact in bfloat16 (data movement, comparisons, correctly
    rounded arithmetic); 1 for transcendental ops and float32 accumulations rounded once.
    """
    onnx.checker.check_model(model)
    names = [o.name for o in model.graph.output]
    expected = dict(zip(names, ReferenceEvaluator(model).run(None, feeds)))
    result = onnx2litert.convert(model)
    for use_default_delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], feeds, use_default_delegates=use_default_delegates)
        assert set(got) == set(expected)
        for name, ref in expected.items():
            ref = np.asarray(ref)
            out = got[name]
            assert out.shape == ref.shape, (name, out.shape, ref.shape)
            assert out.dtype == ref.dtype, (name, out.dtype, ref.dtype)
            assert _same(out, ref, ulps), f"{name}: {out} != {ref}"


def unary_model(op: str, shape: list[int], out_shape: list[int] | None = None, opset: int = 17,
                out_dtype: np.dtype = BF16, **attrs: object) -> onnx.ModelProto:
    return single_op_model(op, [("x", BF16, shape)], out_shape, output_dtype=out_dtype, opset=opset, **attrs)


# -- Cast / CastLike -------------------------------------------------------------------------------
_OTHER = ["float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "bool"]
_SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 3.4e38, 1e-40],
                     np.float32)


def _values_for(dtype: np.dtype, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype.kind == "b":
        return rng.integers(0, 2, n).astype(bool)
    if dtype.kind in "iu":
        lo = max(int(np.iinfo(dtype).min), -(2 ** 30))
        hi = min(int(np.iinfo(dtype).max), 2 ** 30)
        return rng.integers(lo, hi, n, dtype=np.int64).astype(dtype)
    specials = _SPECIALS[np.abs(np.nan_to_num(_SPECIALS)) < np.finfo(dtype).max]  # no overflow warnings
    return np.concatenate([(rng.standard_normal(n - specials.size) * 100), specials]).astype(dtype)


@pytest.mark.parametrize("other", _OTHER)
def test_cast_to_bfloat16(other: str) -> None:
    dtype = np.dtype(other)
    model = single_op_model("Cast", [("x", dtype, [4, 8])], [4, 8], output_dtype=BF16,
                            to=TensorProto.BFLOAT16)
    check_bf16(model, {"x": _values_for(dtype, 32, 1).reshape(4, 8)})


@pytest.mark.parametrize("other", _OTHER)
def test_cast_from_bfloat16(other: str) -> None:
    dtype = np.dtype(other)
    x = bf16_data((4, 8), seed=2, scale=40.0)
    if dtype.kind in "iu":  # stay inside the target's range (out-of-range float -> int is undefined)
        info = np.iinfo(dtype)
        x = np.clip(x.astype(np.float32), max(info.min, -1e9), min(info.max, 1e9)).astype(BF16)
    elif dtype.kind == "f":
        x = np.concatenate([x.reshape(-1)[:-_SPECIALS.size], _SPECIALS.astype(BF16)]).reshape(4, 8)
    model = single_op_model("Cast", [("x", BF16, [4, 8])], [4, 8], output_dtype=dtype,
                            to=helper.np_dtype_to_tensor_dtype(dtype))
    check_bf16(model, {"x": x})


@pytest.mark.parametrize("direction", ["to", "from"])
def test_castlike_bfloat16(direction: str) -> None:
    if direction == "to":
        model = single_op_model("CastLike", [("x", np.float32, [3, 4]), ("like", BF16, [1])], [3, 4],
                                output_dtype=BF16, opset=21)
        feeds = {"x": _values_for(np.dtype(np.float32), 12, 3).reshape(3, 4), "like": bf16_data((1,))}
    else:
        model = single_op_model("CastLike", [("x", BF16, [3, 4]), ("like", np.float32, [1])], [3, 4],
                                output_dtype=np.float32, opset=21)
        feeds = {"x": bf16_data((3, 4)), "like": np.zeros(1, np.float32)}
    check_bf16(model, feeds)


@pytest.mark.parametrize("source", ["float32", "int32", "float64"])
def test_cast_round_trip_matches_onnxruntime(source: str) -> None:
    """float32 I/O, bfloat16 inside: ONNX Runtime is the reference (round to nearest even, NaN/inf)."""
    dtype = np.dtype(source)
    model = make_model([helper.make_node("Cast", ["x"], ["b"], to=TensorProto.BFLOAT16),
                        helper.make_node("Cast", ["b"], ["y"], to=TensorProto.FLOAT)],
                       [("x", dtype, [64])], [("y", np.float32, [64])])
    x = _values_for(dtype, 64, 4)
    if source == "int32":  # values where rounding through float32 first matters
        x[:4] = [2 ** 24 + 2 ** 16 + 1, -(2 ** 24 + 2 ** 16 + 1), 2 ** 30 - 1, 16777217]
    check_model(model, {"x": x}, tol=0.0)


def test_cast_bfloat16_to_uint64_fails() -> None:
    model = single_op_model("Cast", [("x", BF16, [4])], [4], output_dtype=np.uint64, to=TensorProto.UINT64)
    expect_failure(model, "unsupported_dtype")


# -- arithmetic (correctly rounded in float32 -> exact) ---------------------------------------------
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
def test_binary_bfloat16(op: str) -> None:
    model = single_op_model(op, [("a", BF16, [2, 3, 4]), ("b", BF16, [3, 1])], [2, 3, 4], output_dtype=BF16)
    b = bf16_data((3, 1), 6)
    if op == "Div":
        b = np.where(b.astype(np.float32) == 0, 1, b.astype(np.float32)).astype(BF16)
    check_bf16(model, {"a": bf16_data((2, 3, 4), 5), "b": b})


@pytest.mark.parametrize("op", ["Neg", "Abs", "Sqrt"])
def test_unary_exact_bfloat16(op: str) -> None:
    x = bf16_data((3, 5), 7)
    if op == "Sqrt":
        x = np.abs(x.astype(np.float32)).astype(BF16)
    check_bf16(unary_model(op, [3, 5], [3, 5]), {"x": x})


def test_clip_bfloat16() -> None:
    model = single_op_model("Clip", [("x", BF16, [3, 5])], [3, 5], output_dtype=BF16,
                            initializers={"lo": np.array(-1.5, BF16), "hi": np.array(2.25, BF16)})
    check_bf16(model, {"x": bf16_data((3, 5), 8)})


@pytest.mark.parametrize("op,attrs", [("Celu", {"alpha": 2.0}), ("Celu", {}), ("Elu", {}), ("Elu", {"alpha": 0.5})])
def test_transcendental_bfloat16(op: str, attrs: dict) -> None:
    """Computed in float32 and rounded once: within one bfloat16 ulp of the reference."""
    check_bf16(unary_model(op, [4, 6], [4, 6], **attrs), {"x": bf16_data((4, 6), 9)}, ulps=1)


# -- data movement (through float32: values are carried unchanged) ----------------------------------
_I64 = np.int64


@pytest.mark.parametrize("op,shape,out_shape,attrs,inits", [
    ("Reshape", [2, 3, 4], [6, 4], {}, {"s": np.array([6, 4], _I64)}),
    ("Flatten", [2, 3, 4], [2, 12], {}, {}),
    ("Squeeze", [2, 1, 4], [2, 4], {}, {"axes": np.array([1], _I64)}),
    ("Unsqueeze", [2, 4], [2, 1, 4], {}, {"axes": np.array([1], _I64)}),
    ("Transpose", [2, 3, 4], [4, 2, 3], {"perm": [2, 0, 1]}, {}),
    ("Slice", [4, 6], [2, 2], {}, {"st": np.array([1, 5], _I64), "en": np.array([3, 0], _I64),
                                   "ax": np.array([0, 1], _I64), "sp": np.array([1, -2], _I64)}),
    ("Pad", [2, 3], [4, 6], {"mode": "constant"}, {"p": np.array([1, 2, 1, 1], _I64),
                                                   "v": np.array(1.5, BF16)}),
    ("Pad", [2, 3], [2, 7], {"mode": "reflect"}, {"p": np.array([0, 2, 0, 2], _I64)}),
    ("Gather", [4, 3], [2, 3], {"axis": 0}, {"i": np.array([3, -1], _I64)}),
    ("GatherElements", [3, 4], [3, 2], {"axis": 1}, {"i": np.array([[0, 3], [1, 1], [2, 0]], _I64)}),
    ("GatherND", [3, 4], [2], {}, {"i": np.array([[0, 3], [2, 1]], _I64)}),
    ("Tile", [2, 3], [4, 9], {}, {"r": np.array([2, 3], _I64)}),
    ("Expand", [3, 1], [2, 3, 4], {}, {"s": np.array([2, 3, 4], _I64)}),
    ("Trilu", [4, 5], [4, 5], {"upper": 0}, {}),
    ("Compress", [3, 4], [3, 2], {"axis": 1}, {"c": np.array([True, False, False, True])}),
    ("ReverseSequence", [4, 3, 2], [4, 3, 2], {"batch_axis": 1, "time_axis": 0},
     {"l": np.array([4, 1, 3], _I64)}),
    ("Einsum", [3, 4], [4, 3], {"equation": "ij->ji"}, {}),
])
def test_data_movement_bfloat16(op: str, shape: list[int], out_shape: list[int], attrs: dict,
                                inits: dict) -> None:
    model = single_op_model(op, [("x", BF16, shape)], out_shape, output_dtype=BF16, initializers=inits,
                            opset=18, **attrs)
    x = bf16_data(tuple(shape), 10)
    x.reshape(-1)[0] = np.nan  # NaNs and infinities travel unchanged
    x.reshape(-1)[-1] = -np.inf
    check_bf16(model, {"x": x})


def test_concat_split_bfloat16() -> None:
    nodes = [helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Split", ["c", "s"], ["y0", "y1"], axis=1)]
    model = make_model(nodes, [("a", BF16, [2, 3]), ("b", BF16, [2, 2])],
                       [("y0", BF16, [2, 1]), ("y1", BF16, [2, 4])], {"s": np.array([1, 4], _I64)}, opset=18)
    check_bf16(model, {"a": bf16_data((2, 3), 11), "b": bf16_data((2, 2), 12)})


@pytest.mark.parametrize("op", ["Shape", "Size"])
def test_shape_of_bfloat16(op: str) -> None:
    out = [3] if op == "Shape" else []
    check_bf16(unary_model(op, [2, 3, 4], out, out_dtype=np.int64), {"x": bf16_data((2, 3, 4), 13)})


def test_identity_bfloat16_graph_output() -> None:
    nodes = [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["y"])]
    model = make_model(nodes, [("x", BF16, [5])], [("y", BF16, [5])])
    check_bf16(model, {"x": bf16_data((5,), 14)})


# -- selection and comparison ------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_bfloat16(op: str) -> None:
    check_bf16(unary_model(op, [3, 5], [3], out_dtype=np.int64, axis=1, keepdims=0), {"x": bf16_data((3, 5), 15)})


def test_topk_bfloat16() -> None:
    model = make_model([helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)], [("x", BF16, [3, 6])],
                       [("v", BF16, [3, 2]), ("i", np.int64, [3, 2])], {"k": np.array([2], _I64)})
    check_bf16(model, {"x": bf16_data((3, 6), 16)})


def test_unique_bfloat16() -> None:
    model = make_model([helper.make_node("Unique", ["x"], ["y", "idx", "inv", "cnt"], sorted=1)],
                       [("x", BF16, [8])],
                       [("y", BF16, [5]), ("idx", np.int64, [5]), ("inv", np.int64, [8]), ("cnt", np.int64, [5])])
    x = np.array([2.0, 1.5, -3.0, 1.5, 7.0, 2.0, 0.25, -3.0], np.float32).astype(BF16)
    check_bf16(model, {"x": x})


def test_onehot_bfloat16_values() -> None:
    model = single_op_model("OneHot", [("i", np.int64, [2, 3])], [2, 3, 5], output_dtype=BF16,
                            initializers={"d": np.array(5, _I64), "v": np.array([-0.5, 2.75], BF16)}, axis=-1)
    check_bf16(model, {"i": np.array([[0, 4, -1], [2, 7, -5]], _I64)})


# -- Range (opset 27: bfloat16 accumulates in stash_type float32) -----------------------------------
def _range_model(stash: int | None = None) -> onnx.ModelProto:
    attrs = {} if stash is None else {"stash_type": stash}
    model = make_model([helper.make_node("Range", ["s", "l", "d"], ["y"], **attrs)],
                       [("s", BF16, []), ("l", BF16, []), ("d", BF16, [])], [("y", BF16, [5])], opset=17)
    model.opset_import[0].version = 27
    model.ir_version = 13
    return model


def test_range_bfloat16() -> None:
    feeds = {"s": np.array(1.0, BF16), "l": np.array(11.0, BF16), "d": np.array(2.25, BF16)}
    check_bf16(_range_model(), feeds)


def test_range_bfloat16_double_stash_fails() -> None:
    expect_failure(_range_model(TensorProto.DOUBLE), "unsupported_attribute_value")


# -- contractions (products exact in float32, float32 accumulation rounded once) --------------------
@pytest.mark.parametrize("equation,shapes,out", [
    ("bij,bjk->bik", [[2, 3, 4], [2, 4, 5]], [2, 3, 5]),
    ("ij->i", [[3, 4]], [3]),
])
def test_einsum_bfloat16(equation: str, shapes: list[list[int]], out: list[int]) -> None:
    names = [f"x{i}" for i in range(len(shapes))]
    model = make_model([helper.make_node("Einsum", names, ["y"], equation=equation)],
                       [(n, BF16, s) for n, s in zip(names, shapes)], [("y", BF16, out)], opset=18)
    check_bf16(model, {n: bf16_data(tuple(s), 20 + i) for i, (n, s) in enumerate(zip(names, shapes))}, ulps=1)


def test_matmul_bfloat16() -> None:
    model = single_op_model("MatMul", [("a", BF16, [2, 3, 4]), ("b", BF16, [4, 5])], [2, 3, 5], output_dtype=BF16)
    check_bf16(model, {"a": bf16_data((2, 3, 4), 30), "b": bf16_data((4, 5), 31)}, ulps=1)

"""Dynamic shapes: symbolic input dims stay -1 in shape_signature and the model runs at any size.

Each model converts ONCE; the .tflite is then resized (``resize_tensor_input``) to several sizes
and compared with ONNX Runtime on XNNPACK and on the builtin kernels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import onnx2litert
from onnx2litert.dynamic import declared_inputs, find_symbols, fit_multilinear, plan_dynamic
from onnx2litert.evaluate import run_onnx
from onnx2litert.options import ConversionOptions
from tests.helpers import _assert_match, expect_failure, make_model

RNG = np.random.default_rng(0)
F32 = np.float32
I64 = np.int64


# --- running a converted model at a new size -------------------------------------------------

def run_resized(tflite: bytes, feeds: dict[str, np.ndarray], layout: dict,
                use_default_delegates: bool) -> dict[str, np.ndarray]:
    """resize_tensor_input + allocate_tensors to the feeds' shapes, invoke, outputs by signature name."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = {} if use_default_delegates else {
        "experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interp = Interpreter(model_content=tflite, num_threads=1, **kw)
    sig = interp.get_signature_list()["serving_default"]
    runner = interp.get_signature_runner("serving_default")
    in_details, out_details = runner.get_input_details(), runner.get_output_details()
    del runner  # it holds views of the interpreter's buffers, which block resizing
    values = {}
    for name in sig["inputs"]:
        perm = (layout["inputs"].get(name) or {}).get("perm_from_onnx")
        values[name] = np.ascontiguousarray(np.transpose(feeds[name], perm) if perm else feeds[name])
        interp.resize_tensor_input(in_details[name]["index"], list(values[name].shape), strict=True)
    interp.allocate_tensors()
    for name, value in values.items():
        interp.set_tensor(in_details[name]["index"], value)
    interp.invoke()
    return {name: interp.get_tensor(out_details[name]["index"]) for name in sig["outputs"]}


def signatures(tflite: bytes) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """shape_signature of every signature input and output."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=tflite).get_signature_runner("serving_default")
    return ({n: d["shape_signature"].tolist() for n, d in runner.get_input_details().items()},
            {n: d["shape_signature"].tolist() for n, d in runner.get_output_details().items()})


def check_sizes(model: onnx.ModelProto, result: onnx2litert.ConversionResult,
                feeds_list: list[dict[str, np.ndarray]], variant: str = "float32") -> None:
    """At every feeds' size, both CPU paths match ONNX Runtime (float: 1e-5 * max(1, max|ref|))."""
    for feeds in feeds_list:
        expected = run_onnx(model.SerializeToString(), feeds)
        for use_default_delegates in (True, False):
            got = run_resized(result.artifacts[variant], feeds, result.io_layout, use_default_delegates)
            _assert_match(expected, got, 1e-5)


# --- models -----------------------------------------------------------------------------------

D, HEADS = 8, 2


def attention_block(opset: int = 17) -> onnx.ModelProto:
    """MatMul+Add projection, heads via Reshape(Shape/Gather/Concat), Transpose, MatMul, Softmax, LayerNorm.

    Inputs x [batch, seq, D] and an additive mask [batch, seq] (the same symbols in two inputs).
    """
    hd = D // HEADS
    inits = {
        "wq": (RNG.standard_normal((D, D)) * 0.3).astype(F32), "bq": RNG.standard_normal(D).astype(F32),
        "wk": (RNG.standard_normal((D, D)) * 0.3).astype(F32),
        "gamma": RNG.standard_normal(D).astype(F32), "beta": RNG.standard_normal(D).astype(F32),
        "i0": np.array([0], I64), "i1": np.array([1], I64), "heads": np.array([HEADS], I64),
        "hd": np.array([hd], I64), "dm": np.array([D], I64), "one": np.array([1], I64),
    }
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "wq"], ["q0"]), n("Add", ["q0", "bq"], ["q"]), n("MatMul", ["x", "wk"], ["k"]),
        n("Shape", ["x"], ["shp"]), n("Gather", ["shp", "i0"], ["b"], axis=0),
        n("Gather", ["shp", "i1"], ["s"], axis=0),
        n("Concat", ["b", "s", "heads", "hd"], ["hshape"], axis=0),
        n("Reshape", ["q", "hshape"], ["qh"]), n("Reshape", ["k", "hshape"], ["kh"]),
        n("Transpose", ["qh"], ["qt"], perm=[0, 2, 1, 3]), n("Transpose", ["kh"], ["kt"], perm=[0, 2, 3, 1]),
        n("MatMul", ["qt", "kt"], ["scores0"]),
        # mask [B, S] -> [B, 1, 1, S] through a computed shape, added to the scores
        n("Concat", ["b", "one", "one", "s"], ["mshape"], axis=0), n("Reshape", ["mask", "mshape"], ["m4"]),
        n("Add", ["scores0", "m4"], ["scores"]),
        n("Softmax", ["scores"], ["probs"], axis=-1), n("MatMul", ["probs", "qt"], ["ctx"]),
        n("Transpose", ["ctx"], ["ctxt"], perm=[0, 2, 1, 3]),
        n("Concat", ["b", "s", "dm"], ["mshape3"], axis=0), n("Reshape", ["ctxt", "mshape3"], ["merged"]),
        n("Add", ["merged", "x"], ["res"]),
        n("LayerNormalization", ["res", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5),
    ]
    return make_model(nodes, [("x", F32, ["batch", "seq", D]), ("mask", F32, ["batch", "seq"])],
                      [("y", F32, ["batch", "seq", D])], inits, opset)


def attention_feeds(b: int, s: int) -> dict[str, np.ndarray]:
    return {"x": RNG.standard_normal((b, s, D)).astype(F32), "mask": RNG.standard_normal((b, s)).astype(F32)}


def small_cnn() -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool -> GlobalAveragePool -> Flatten -> Gemm, symbolic batch."""
    inits = {"w": (RNG.standard_normal((4, 3, 3, 3)) * 0.3).astype(F32), "bw": RNG.standard_normal(4).astype(F32),
             "g": RNG.standard_normal((5, 4)).astype(F32), "gb": RNG.standard_normal(5).astype(F32)}
    n = helper.make_node
    nodes = [n("Conv", ["x", "w", "bw"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), n("Relu", ["c"], ["r"]),
             n("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             n("GlobalAveragePool", ["p"], ["gap"]), n("Flatten", ["gap"], ["f"]),
             n("Gemm", ["f", "g", "gb"], ["y"], transB=1)]
    return make_model(nodes, [("x", F32, ["N", 3, 8, 8])], [("y", F32, ["N", 5])], inits)


def shape_scalar_model(dims: list, combine: str) -> onnx.ModelProto:
    """y = x + f(size of axis 1), f computed in the graph from Shape (constant-folded per size).

    ``combine``: "square" (integer, non-affine), "float" (a float constant), "affine" (2*S+3).
    """
    n = helper.make_node
    axis = 0 if combine.endswith("_batch") else 1
    kind = combine.removesuffix("_batch")
    nodes = [n("Shape", ["x"], ["shp"]), n("Gather", ["shp", "ax"], ["s"], axis=0)]
    inits = {"ax": np.array([axis], I64), "two": np.array([2], I64), "three": np.array([3], I64)}
    if kind == "square":
        nodes += [n("Mul", ["s", "s"], ["v"]), n("Add", ["x", "v"], ["y"])]
        dtype = I64
    elif kind == "affine":
        nodes += [n("Mul", ["s", "two"], ["s2"]), n("Add", ["s2", "three"], ["v"]), n("Add", ["x", "v"], ["y"])]
        dtype = I64
    else:
        nodes += [n("Cast", ["s"], ["sf"], to=onnx.TensorProto.FLOAT), n("Add", ["x", "sf"], ["y"])]
        dtype = F32
    return make_model(nodes, [("x", dtype, dims)], [("y", dtype, dims)], inits)


# --- tests ------------------------------------------------------------------------------------

def test_attention_block_converts_once_and_runs_at_other_sizes() -> None:
    model = attention_block()
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is True and not result.warnings
    ins, outs = signatures(result.artifacts["float32"])
    assert ins == {"x": [-1, -1, D], "mask": [-1, -1]} and outs == {"y": [-1, -1, D]}
    # the initial shape is the representative one: batch 1, seq --dynamic_dim_default (8)
    assert result.io_layout["inputs"]["x"]["shape"] == [1, 8, D]
    assert result.io_layout["inputs"]["x"]["dynamic_dims"] == {"0": "batch", "1": "seq"}
    assert result.io_layout["outputs"]["y"]["onnx_shape_signature"] == [-1, -1, D]
    check_sizes(model, result, [attention_feeds(1, 8), attention_feeds(2, 5), attention_feeds(3, 13)])


def test_float16_variant_is_dynamic_too() -> None:
    model = attention_block()
    result = onnx2litert.convert(model)
    assert signatures(result.artifacts["float16"])[0]["x"] == [-1, -1, D]
    feeds = attention_feeds(2, 6)
    expected = run_onnx(model.SerializeToString(), feeds)["y"]
    got = run_resized(result.artifacts["float16"], feeds, result.io_layout, False)["y"]
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-2 * max(1, np.abs(expected).max())


def test_dynamic_dim_default_sets_the_initial_size() -> None:
    model = attention_block()
    result = onnx2litert.convert(model, dynamic_dim_default=5)
    assert result.io_layout["inputs"]["x"]["shape"] == [1, 5, D]
    check_sizes(model, result, [attention_feeds(1, 5), attention_feeds(2, 9)])


def test_cnn_with_symbolic_batch_runs_at_batch_1_and_3() -> None:
    model = small_cnn()
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is True
    layout = result.io_layout["inputs"]["x"]
    assert layout["layout"] == "channels_last" and layout["shape_signature"] == [-1, 8, 8, 3]
    assert layout["onnx_shape_signature"] == [-1, 3, 8, 8]
    assert signatures(result.artifacts["float32"])[1]["y"] == [-1, 5]
    # A RESHAPE target with one size-dependent entry takes -1 instead of a run-time computation.
    assert "SHAPE" not in result.op_counts
    check_sizes(model, result, [{"x": RNG.standard_normal((b, 3, 8, 8)).astype(F32)} for b in (1, 3)])


def test_eval_with_onnx_uses_the_representative_shape() -> None:
    result = onnx2litert.convert(attention_block(), eval_with_onnx=True)
    acc = result.reports["accuracy"]
    assert acc["pass"] and [i["shape"] for i in acc["inputs"]] == [[1, 8, D], [1, 8]]


def test_affine_integer_constant_is_computed_at_run_time() -> None:
    model = shape_scalar_model(["B", "S"], "affine")
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is True and "SHAPE" in result.op_counts
    check_sizes(model, result, [{"x": RNG.integers(-5, 5, (b, s)).astype(I64)} for b, s in ((1, 8), (2, 3))])


@pytest.mark.parametrize("combine", ["square", "float"])
def test_size_dependent_constant_keeps_a_sequence_dim_static_with_a_warning(combine: str) -> None:
    model = shape_scalar_model(["B", "S"], combine)
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is False
    (warning,) = [w for w in result.warnings if "static sizes" in w]
    assert "'S' ('x' axis 1) = 8" in warning and "-ois x:N,N" in warning and "does not generalize" in warning
    assert signatures(result.artifacts["float32"])[0]["x"] == [1, 8]
    dtype = I64 if combine == "square" else F32
    feeds = {"x": RNG.integers(-5, 5, (1, 8)).astype(dtype)}
    _assert_match(run_onnx(model.SerializeToString(), feeds), run_resized(
        result.artifacts["float32"], feeds, result.io_layout, False), 1e-5)


@pytest.mark.parametrize("combine", ["square_batch", "float_batch"])
def test_size_dependent_constant_falls_back_to_static_batch(combine: str) -> None:
    model = shape_scalar_model(["B", 4], combine)
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is False
    assert any("static sizes" in w and "= 1" in w for w in result.warnings)
    assert signatures(result.artifacts["float32"])[0]["x"] == [1, 4]
    dtype = I64 if combine.startswith("square") else F32
    feeds = {"x": RNG.integers(-5, 5, (1, 4)).astype(dtype)}
    _assert_match(run_onnx(model.SerializeToString(), feeds), run_resized(
        result.artifacts["float32"], feeds, result.io_layout, False), 1e-5)


def test_batch_size_and_overwrite_input_shape_pin_dims() -> None:
    model = attention_block()
    result = onnx2litert.convert(model, batch_size=2)
    assert signatures(result.artifacts["float32"])[0] == {"x": [2, -1, D], "mask": [2, -1]}
    check_sizes(model, result, [attention_feeds(2, 3)])
    result = onnx2litert.convert(model, overwrite_input_shape={"x": [1, 4, D], "mask": [1, 4]})
    assert "dynamic_shapes" not in result.reports
    assert signatures(result.artifacts["float32"])[0] == {"x": [1, 4, D], "mask": [1, 4]}
    # a named symbol pinned in one input is pinned in the others too
    result = onnx2litert.convert(model, overwrite_input_shape={"x": [3, 4, D]})
    assert signatures(result.artifacts["float32"])[0] == {"x": [3, 4, D], "mask": [3, 4]}


def test_no_dynamic_shapes_restores_static_conversion() -> None:
    model = attention_block()
    expect_failure(model, "dynamic_shape_unsupported", dynamic_shapes=False)
    result = onnx2litert.convert(small_cnn(), dynamic_shapes=False)
    assert "dynamic_shapes" not in result.reports
    assert signatures(result.artifacts["float32"])[0]["x"] == [1, 8, 8, 3]


def test_representative_size_too_small_says_how_to_fix() -> None:
    n = helper.make_node
    w = RNG.standard_normal((2, 1, 16)).astype(F32)
    model = make_model([n("Conv", ["x", "w"], ["y"], kernel_shape=[16], strides=[4])],
                       [("x", F32, ["N", 1, "T"])], [("y", F32, None)], {"w": w})
    exc = expect_failure(model, "dynamic_shape_unsupported")
    assert "--dynamic_dim_default" in str(exc) and "-ois x:N,1,N" in str(exc)
    result = onnx2litert.convert(model, dynamic_dim_default=32)
    assert signatures(result.artifacts["float32"])[0]["x"] == [-1, -1, 1]
    check_sizes(model, result, [{"x": RNG.standard_normal((b, 1, t)).astype(F32)} for b, t in ((1, 32), (2, 57))])


def test_splitting_fixes_symbolic_dims_with_a_warning() -> None:
    result = onnx2litert.convert(attention_block(), auto_split_tflite_by_size=True)
    assert result.reports["dynamic_shapes"]["dynamic"] is False
    assert any("splitting writes static parts" in w for w in result.warnings)
    assert signatures(result.artifacts["float32"])[0] == {"x": [1, 8, D], "mask": [1, 8]}


def test_model_without_symbolic_dims_does_no_extra_work() -> None:
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", F32, [2, 3])], [("y", F32, None)])
    result = onnx2litert.convert(model)
    assert "dynamic_shapes" not in result.reports and "dynamic_s" not in result.timings
    assert plan_dynamic(model, ConversionOptions()) is None


def test_declared_inputs_from_file_bytes_and_proto(tmp_path: Path) -> None:
    model = attention_block()
    # an initializer listed as a graph input (IR < 4 style) is not an input
    model.graph.input.append(helper.make_tensor_value_info("wq", onnx.TensorProto.FLOAT, [D, D]))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    expected = declared_inputs(model)
    assert [d.name for d in expected] == ["x", "mask"]
    assert expected[0].dims == ("batch", "seq", D)
    assert declared_inputs(path) == expected == declared_inputs(model.SerializeToString())
    assert declared_inputs(tmp_path / "missing.onnx") is None and declared_inputs(b"\xff\xff") is None
    symbols, pinned = find_symbols(expected, ConversionOptions(batch_size=4))
    assert [s.label for s in symbols] == ["seq"] and pinned == {"batch": 4}


def test_unnamed_dims_are_separate_symbols() -> None:
    decls = declared_inputs(make_model([helper.make_node("Add", ["a", "b"], ["y"])],
                                       [("a", F32, [None, 4]), ("b", F32, [None, 4])], [("y", F32, [None, 4])]))
    symbols, _ = find_symbols(decls, ConversionOptions())
    assert [s.label for s in symbols] == ["a:0", "b:0"]


def test_fit_multilinear() -> None:
    points = [(1, 8), (3, 8), (1, 11), (3, 11), (7, 23)]
    b, s = np.array(points).T
    values = np.stack([2 * b + 5, b * s, s - 1, np.full_like(b, 4)], axis=1)
    coef = fit_multilinear(points, values)
    assert coef is not None and coef[:, 1].tolist() == [0, 0, 0, 1]
    assert fit_multilinear(points, (s * s)[:, None]) is None       # non-affine in S
    assert fit_multilinear(points, (s // 2)[:, None]) is None      # fractional coefficients


def test_constant_expanded_to_the_batch_is_broadcast_at_run_time() -> None:
    """A class token Expand-ed to [batch, 1, D] (folded to a constant per size) becomes BROADCAST_TO."""
    n = helper.make_node
    cls = RNG.standard_normal((1, 1, D)).astype(F32)
    nodes = [n("Shape", ["x"], ["shp"]), n("Gather", ["shp", "i0"], ["b"], axis=0),
             n("Concat", ["b", "one", "dm"], ["eshape"], axis=0), n("Expand", ["cls", "eshape"], ["tok"]),
             n("Concat", ["tok", "x"], ["y"], axis=1)]
    model = make_model(nodes, [("x", F32, ["batch", "seq", D])], [("y", F32, None)],
                       {"cls": cls, "i0": np.array([0], I64), "one": np.array([1], I64), "dm": np.array([D], I64)})
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is True and "BROADCAST_TO" in result.op_counts
    check_sizes(model, result, [{"x": RNG.standard_normal((b, s, D)).astype(F32)} for b, s in ((1, 8), (3, 2))])


def qkv_split_model(seq: int | str) -> onnx.ModelProto:
    """ViT-style q/k/v split: [B, S, 3*D] -> [B, S, 3, H, hd] -> [3, B, H, S, hd] -> Gather 0/1/2 on axis 0."""
    hd = D // HEADS
    n = helper.make_node
    nodes = [n("Shape", ["x"], ["shp"]), n("Gather", ["shp", "i0"], ["b"], axis=0),
             n("Gather", ["shp", "i1"], ["s"], axis=0),
             n("Concat", ["b", "s", "three", "heads", "hd"], ["qshape"], axis=0),
             n("Reshape", ["x", "qshape"], ["q5"]), n("Transpose", ["q5"], ["qt"], perm=[2, 0, 3, 1, 4]),
             n("Gather", ["qt", "k0"], ["q"], axis=0), n("Gather", ["qt", "k1"], ["k"], axis=0),
             n("Gather", ["qt", "k2"], ["v"], axis=0),
             n("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), n("MatMul", ["q", "kt"], ["sc"]),
             n("Softmax", ["sc"], ["p"], axis=-1), n("MatMul", ["p", "v"], ["y"])]
    inits = {"i0": np.array([0], I64), "i1": np.array([1], I64), "three": np.array([3], I64),
             "heads": np.array([HEADS], I64), "hd": np.array([hd], I64), "k0": np.array(0, I64),
             "k1": np.array(1, I64), "k2": np.array(2, I64)}
    return make_model(nodes, [("x", F32, ["batch", seq, 3 * D])], [("y", F32, None)], inits)


def runtime_params(tflite: bytes, opcode: str, inputs: tuple[int, ...]) -> int:
    """How many of ``opcode``'s parameter operands (by input position) are computed at run time."""
    from ai_edge_litert import schema_py_generated as S

    m = S.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    sg, code = m.subgraphs[0], getattr(S.BuiltinOperator, opcode)
    ops = [op for op in sg.operators
           if max(m.operatorCodes[op.opcodeIndex].builtinCode, m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
           == code]
    assert ops, f"no {opcode} in the model"
    return sum(m.buffers[sg.tensors[op.inputs[i]].buffer].data is None for op in ops for i in inputs)


@pytest.mark.parametrize("seq", [6, "seq"])
def test_slice_sizes_reaching_the_end_of_a_dynamic_axis_stay_constant(seq: int | str) -> None:
    """The q/k/v SLICEs run to the end of the batch (and sequence) axes: size -1, not SHAPE arithmetic."""
    model = qkv_split_model(seq)
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is True
    # "to the end" is spelled as STRIDED_SLICE with an end mask, which XNNPACK takes (SLICE size -1 it does not)
    assert "SLICE" not in result.op_counts
    assert runtime_params(result.artifacts["float32"], "STRIDED_SLICE", (1, 2, 3)) == 0
    if seq == 6:  # only the batch varies: the RESHAPE targets take -1 there, so nothing is computed
        assert "SHAPE" not in result.op_counts
    sizes = ((1, 6), (3, 6)) if seq == 6 else ((1, 8), (3, 5))
    check_sizes(model, result, [{"x": RNG.standard_normal((b, s, 3 * D)).astype(F32)} for b, s in sizes])


def test_slice_size_short_of_the_end_is_computed_at_run_time() -> None:
    """y = x[:, :S-1] (Shape arithmetic): the end depends on S but stops one short, so it is computed."""
    n = helper.make_node
    nodes = [n("Shape", ["x"], ["shp"]), n("Gather", ["shp", "i1"], ["s"], axis=0), n("Sub", ["s", "i1"], ["e"]),
             n("Slice", ["x", "z", "e", "i1"], ["y"])]
    model = make_model(nodes, [("x", F32, ["batch", "seq", D])], [("y", F32, None)],
                       {"i1": np.array([1], I64), "z": np.array([0], I64)})
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is True
    assert runtime_params(result.artifacts["float32"], "STRIDED_SLICE", (1, 2, 3)) == 1
    check_sizes(model, result, [{"x": RNG.standard_normal((b, s, D)).astype(F32)} for b, s in ((1, 8), (2, 5))])


def test_strided_slice_end_reaching_the_end_of_a_dynamic_axis_becomes_an_end_mask() -> None:
    """y = x[:, 1:] with the end read from Shape: the end follows S, so it becomes an end_mask bit."""
    n = helper.make_node
    nodes = [n("Shape", ["x"], ["shp"]), n("Gather", ["shp", "i1"], ["s"], axis=0),
             n("Slice", ["x", "i1", "s", "i1"], ["y0"]), n("Relu", ["y0"], ["y"])]
    model = make_model(nodes, [("x", F32, ["batch", "seq", D])], [("y", F32, None)], {"i1": np.array([1], I64)})
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is True and "SHAPE" not in result.op_counts
    assert runtime_params(result.artifacts["float32"], "STRIDED_SLICE", (1, 2, 3)) == 0
    check_sizes(model, result, [{"x": RNG.standard_normal((b, s, D)).astype(F32)} for b, s in ((1, 8), (3, 5))])

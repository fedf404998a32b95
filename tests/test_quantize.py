"""Quantized variants: float16, dynamic range, int8 and int16-activation integer models.

Each variant is loaded and run on XNNPACK and on the builtin kernels and compared with
ONNX Runtime by cosine similarity (outputs dequantized, inputs quantized where the file
takes integers). Calibration data comes from the same distribution as the test inputs.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S
from onnx import helper

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from onnx2litert.evaluate.accuracy import dequantize_outputs, io_details, quantize_feeds
from onnx2litert.quantize.common import activation_params, quantize_weights_symmetric
from tests.helpers import expect_failure, make_model

# Minimum cosine per variant (the acceptance bars).
MIN_COSINE = {
    "float32": 0.99999, "float16": 0.9999, "dynamic_range_quant": 0.999,
    "integer_quant": 0.99, "full_integer_quant": 0.99,
    "integer_quant_with_int16_act": 0.999, "full_integer_quant_with_int16_act": 0.999,
}
ALL_VARIANTS = tuple(MIN_COSINE)


def _rand(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def cnn_model() -> object:
    """Conv+BN+Relu, depthwise, Add, MaxPool/AvgPool, Concat, 1x1 Conv, SiLU, GAP, Gemm, Softmax."""
    rng = np.random.default_rng(0)
    inits = {
        "w1": _rand(rng, 8, 3, 3, 3, scale=0.3), "b1": _rand(rng, 8, scale=0.1),
        "g": 1 + _rand(rng, 8, scale=0.1), "be": _rand(rng, 8, scale=0.1), "m": _rand(rng, 8, scale=0.1),
        "v": 1 + np.abs(_rand(rng, 8, scale=0.1)),
        "wd": _rand(rng, 8, 1, 3, 3, scale=0.3), "bd": _rand(rng, 8, scale=0.1),
        "w2": _rand(rng, 8, 16, 1, 1, scale=0.3),
        "wf": _rand(rng, 10, 8, scale=0.5), "bf": _rand(rng, 10, scale=0.1),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "m", "v"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("Conv", ["r1", "wd", "bd"], ["d1"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Add", ["d1", "r1"], ["a1"]),
        helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["a1"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Concat", ["p1", "p2"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w2"], ["c2"]),
        helper.make_node("Sigmoid", ["c2"], ["s2"]),
        helper.make_node("Mul", ["c2", "s2"], ["sw"]),
        helper.make_node("GlobalAveragePool", ["sw"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["fl"]),
        helper.make_node("Gemm", ["fl", "wf", "bf"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1),
    ]
    return make_model(nodes, [("x", np.float32, [1, 3, 8, 8])],
                      [("logits", np.float32, [1, 10]), ("y", np.float32, [1, 10])], inits)


def mixed_model() -> object:
    """Concat of tensors with different ranges, Tanh, ConvTranspose, Sub, Reshape, Transpose, MatMul."""
    rng = np.random.default_rng(1)
    inits = {
        "w1": _rand(rng, 6, 4, 3, 3, scale=0.3), "b1": _rand(rng, 6, scale=0.1),
        "wt": _rand(rng, 12, 4, 2, 2, scale=0.3), "bt": _rand(rng, 4, scale=0.1),
        "k": np.float32(3.0).reshape(1), "shape": np.array([1, 4, 64], np.int64),
        "wm": _rand(rng, 64, 16, scale=0.2),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["c1"], ["t1"]),
        helper.make_node("Mul", ["x", "k"], ["x3"]),
        helper.make_node("Sub", ["x3", "x"], ["x2"]),
        helper.make_node("Concat", ["t1", "x2", "c1"], ["cat"], axis=1),
        helper.make_node("Relu", ["cat"], ["rc"]),
        helper.make_node("Conv", ["rc", "wt"], ["ct"], kernel_shape=[1, 1]),
        helper.make_node("ConvTranspose", ["ct", "wt2", "bt"], ["up"], strides=[2, 2]),
        helper.make_node("Reshape", ["up", "shape"], ["rs"]),
        helper.make_node("MatMul", ["rs", "wm"], ["y"]),
    ]
    inits["wt"] = _rand(rng, 8, 16, 1, 1, scale=0.3)
    inits["wt2"] = _rand(rng, 8, 4, 2, 2, scale=0.3)
    return make_model(nodes, [("x", np.float32, [1, 4, 4, 4])], [("y", np.float32, [1, 4, 16])], inits)


def fallback_model() -> object:
    """Conv -> Exp (no integer kernel) -> Conv: Exp stays float in integer_quant."""
    rng = np.random.default_rng(2)
    inits = {"w1": _rand(rng, 4, 3, 1, 1, scale=0.3), "w2": _rand(rng, 5, 4, 1, 1, scale=0.3)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"]), helper.make_node("Exp", ["c1"], ["e"]),
             helper.make_node("Conv", ["e", "w2"], ["y"])]
    return make_model(nodes, [("x", np.float32, [1, 3, 4, 4])], [("y", np.float32, [1, 5, 4, 4])], inits)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _calibration(tmp_path, shape: tuple[int, ...], n: int = 64) -> str:
    path = tmp_path / "calib.npz"
    np.savez(path, x=np.random.default_rng(123).standard_normal((n, *shape)).astype(np.float32))
    return str(path)


def _convert_all(model, tmp_path, **options) -> onnx2litert.ConversionResult:
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    return onnx2litert.convert(model, output_dynamic_range_quantized_tflite=True,
                               output_integer_quantized_tflite=True,
                               calibration_data=_calibration(tmp_path, shape), calibration_num_samples=64,
                               **options)


def _run_variant(data: bytes, feeds: dict, use_default_delegates: bool) -> dict[str, np.ndarray]:
    ins, outs = io_details(data)
    got = run_tflite(data, quantize_feeds(feeds, ins), use_default_delegates=use_default_delegates)
    return dequantize_outputs(got, outs)


def _min_cosines(model, result, seeds=(7, 8, 9)) -> dict[str, float]:
    worst: dict[str, float] = {}
    for seed in seeds:
        feeds = {"x": np.random.default_rng(seed).standard_normal(
            [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]).astype(np.float32)}
        ref = run_onnx(model.SerializeToString(), feeds)
        for variant, data in result.artifacts.items():
            for delegates in (True, False):
                got = _run_variant(data, feeds, delegates)
                for name, r in ref.items():
                    c = _cosine(r, got[name])
                    worst[variant] = min(worst.get(variant, 1.0), c)
    return worst


@pytest.fixture(scope="module")
def cnn_result(tmp_path_factory):
    return _convert_all(cnn_model(), tmp_path_factory.mktemp("cnn"))


def test_cnn_all_variants_close_to_onnx(cnn_result):
    assert set(cnn_result.artifacts) == set(ALL_VARIANTS)
    worst = _min_cosines(cnn_model(), cnn_result)
    print("cnn cosines:", worst)
    for variant, c in worst.items():
        assert c >= MIN_COSINE[variant], (variant, c)
    rep = cnn_result.reports["quantization"]
    assert rep["calibration"] == {"num_samples": 64, "synthetic": False, "percentile": None}
    assert all(v["produced"] and not v["float_ops"] for v in rep["variants"].values())


def test_mixed_all_variants_close_to_onnx(tmp_path):
    model = mixed_model()
    result = _convert_all(model, tmp_path)
    worst = _min_cosines(model, result)
    print("mixed cosines:", worst)
    for variant, c in worst.items():
        assert c >= MIN_COSINE[variant], (variant, c)


def _tensors_by_op(data: bytes) -> list[tuple[str, list]]:
    m = S.ModelT.InitFromPackedBuf(data, 0)
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    sg = m.subgraphs[0]
    return [(names[m.operatorCodes[op.opcodeIndex].builtinCode], [sg.tensors[i] if i >= 0 else None for i in op.inputs],
             [sg.tensors[i] for i in op.outputs]) for op in sg.operators]


_WEIGHT = {"CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 3), "FULLY_CONNECTED": (1, 0), "TRANSPOSE_CONV": (1, 0)}


@pytest.mark.parametrize("variant", ["dynamic_range_quant", "integer_quant", "integer_quant_with_int16_act"])
def test_weight_quantization_axes(cnn_result, variant):
    seen = set()
    for opcode, ins, outs in _tensors_by_op(cnn_result.artifacts[variant]):
        if opcode not in _WEIGHT:
            continue
        idx, axis = _WEIGHT[opcode]
        w = ins[idx]
        assert w.type == S.TensorType.INT8
        q = w.quantization
        assert q.quantizedDimension == axis and len(q.scale) == w.shape[axis], opcode
        assert np.all(np.asarray(q.zeroPoint) == 0)
        bias = ins[2]
        if variant == "dynamic_range_quant":
            assert bias is None or bias.type == S.TensorType.FLOAT32
            assert ins[0].type == S.TensorType.FLOAT32
        else:
            act = S.TensorType.INT8 if variant == "integer_quant" else S.TensorType.INT16
            assert ins[0].type == act and outs[0].type == act
            if bias is not None:
                assert bias.type == (S.TensorType.INT32 if act == S.TensorType.INT8 else S.TensorType.INT64)
                np.testing.assert_allclose(bias.quantization.scale,
                                           ins[0].quantization.scale[0] * np.asarray(q.scale), rtol=1e-6)
        seen.add(opcode)
    assert seen == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def test_dynamic_range_fully_connected_is_asymmetric(cnn_result):
    m = S.ModelT.InitFromPackedBuf(cnn_result.artifacts["dynamic_range_quant"], 0)
    codes = {c.builtinCode: c.version for c in m.operatorCodes}
    assert codes[S.BuiltinOperator.FULLY_CONNECTED] == 12  # hybrid per-channel
    assert codes[S.BuiltinOperator.CONV_2D] == 5
    assert codes[S.BuiltinOperator.DEPTHWISE_CONV_2D] == 6
    fc = [op for op in m.subgraphs[0].operators if m.operatorCodes[op.opcodeIndex].builtinCode ==
          S.BuiltinOperator.FULLY_CONNECTED][0]
    assert fc.builtinOptions.asymmetricQuantizeInputs


def test_fixed_output_parameters(cnn_result):
    for variant, expected in (("integer_quant", (1 / 256, -128)), ("integer_quant_with_int16_act", (1 / 32768, 0))):
        for opcode, _, outs in _tensors_by_op(cnn_result.artifacts[variant]):
            if opcode in ("SOFTMAX", "LOGISTIC"):
                q = outs[0].quantization
                assert (float(q.scale[0]), int(q.zeroPoint[0])) == pytest.approx(expected), (variant, opcode)


def test_same_scale_ops_share_parameters(cnn_result):
    for opcode, ins, outs in _tensors_by_op(cnn_result.artifacts["integer_quant"]):
        if opcode in ("CONCATENATION", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "TRANSPOSE"):
            qo = outs[0].quantization
            for t in ins:
                if t is not None and t.type == S.TensorType.INT8:
                    assert t.quantization.scale[0] == qo.scale[0] and t.quantization.zeroPoint[0] == qo.zeroPoint[0]


@pytest.mark.parametrize("in_dtype,out_dtype", [("int8", "int8"), ("uint8", "uint8"), ("uint8", "int8")])
def test_full_integer_io_dtypes(tmp_path, in_dtype, out_dtype):
    model = cnn_model()
    result = onnx2litert.convert(model, output_integer_quantized_tflite=True, output_float16=False,
                                 calibration_data=_calibration(tmp_path, (1, 3, 8, 8), 4),
                                 input_quant_dtype=in_dtype, output_quant_dtype=out_dtype)
    ins, outs = io_details(result.artifacts["full_integer_quant"])
    assert ins["x"]["dtype"] == np.dtype(in_dtype)
    assert {n: d["dtype"] for n, d in outs.items()} == {"logits": np.dtype(out_dtype), "y": np.dtype(out_dtype)}
    ins16, outs16 = io_details(result.artifacts["full_integer_quant_with_int16_act"])
    assert ins16["x"]["dtype"] == np.int16 and all(d["dtype"] == np.int16 for d in outs16.values())
    ins_f, outs_f = io_details(result.artifacts["integer_quant"])
    assert ins_f["x"]["dtype"] == np.float32 and all(d["dtype"] == np.float32 for d in outs_f.values())
    feeds = {"x": np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    ref = run_onnx(model.SerializeToString(), feeds)
    for delegates in (True, False):
        got = _run_variant(result.artifacts["full_integer_quant"], feeds, delegates)
        assert _cosine(ref["logits"], got["logits"]) >= 0.99


def test_per_tensor(tmp_path):
    model = cnn_model()
    result = _convert_all(model, tmp_path, quant_type="per-tensor", output_float16=False)
    for variant in ("dynamic_range_quant", "integer_quant"):
        for opcode, ins, _ in _tensors_by_op(result.artifacts[variant]):
            if opcode in _WEIGHT:
                scales = np.asarray(ins[1].quantization.scale)
                # hybrid depthwise kernels read per-channel scales only: one value repeated
                assert len(scales) == 1 or (opcode == "DEPTHWISE_CONV_2D" and np.all(scales == scales[0]))
    worst = _min_cosines(model, result, seeds=(7,))
    assert worst["integer_quant"] >= 0.98 and worst["dynamic_range_quant"] >= 0.999
    assert worst["integer_quant_with_int16_act"] >= 0.999


def test_float_fallback_and_full_integer_failure(tmp_path):
    model = fallback_model()
    result = _convert_all(model, tmp_path)
    rep = result.reports["quantization"]["variants"]
    assert rep["integer_quant"]["float_ops"][0]["op"] == "EXP"
    assert not rep["full_integer_quant"]["produced"]
    assert rep["full_integer_quant"]["reasons"] == ["unsupported_dtype"]
    assert "full_integer_quant" not in result.artifacts
    ops = [op for op, _, _ in _tensors_by_op(result.artifacts["integer_quant"])]
    assert ops == ["QUANTIZE", "CONV_2D", "DEQUANTIZE", "EXP", "QUANTIZE", "CONV_2D", "TRANSPOSE", "DEQUANTIZE"]
    worst = _min_cosines(model, result, seeds=(7,))
    assert worst["integer_quant"] >= 0.99 and worst["integer_quant_with_int16_act"] >= 0.999
    # Asking to evaluate the variant that could not be made reports why.
    expect_failure(model, "unsupported_dtype", output_integer_quantized_tflite=True,
                   calibration_data=_calibration(tmp_path, (1, 3, 4, 4), 2), eval_with_onnx=True,
                   eval_target_tflite="full_integer_quant")


def test_synthetic_calibration_warns():
    model = fallback_model()
    with pytest.warns(UserWarning, match="real data gives better ranges"):
        result = onnx2litert.convert(model, output_integer_quantized_tflite=True, calibration_num_samples=2,
                                     output_float16=False)
    assert result.reports["quantization"]["calibration"]["synthetic"]
    assert any("real data" in w for w in result.warnings)


def test_custom_input_npy_calibration(tmp_path):
    model = cnn_model()
    raw = np.random.default_rng(5).standard_normal((4, 8, 8, 3)) * 2.0 + 1.0  # onnx2tf-style NHWC file
    path = tmp_path / "x.npy"
    np.save(path, raw.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no synthetic-data warning
        result = onnx2litert.convert(model, output_integer_quantized_tflite=True, output_float16=False,
                                     custom_input_op_name_np_data_path=[("x", str(path), 1.0, 2.0)])
    assert result.reports["quantization"]["calibration"]["num_samples"] == 4
    assert _min_cosines(model, result, seeds=(7,))["integer_quant"] >= 0.99


def test_bad_calibration_data(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros((2, 5), np.float32))
    expect_failure(cnn_model(), "invalid_option", output_integer_quantized_tflite=True, calibration_data=str(path))
    np.savez(path, nope=np.zeros((1, 3, 8, 8), np.float32))
    expect_failure(cnn_model(), "invalid_option", output_integer_quantized_tflite=True, calibration_data=str(path))
    expect_failure(cnn_model(), "invalid_option", quant_type="per-row")
    expect_failure(cnn_model(), "invalid_option", input_quant_dtype="int4")


@pytest.mark.parametrize("target", ["dynamic_range_quant", "full_integer_quant", "integer_quant_with_int16_act"])
def test_eval_reports_variant_and_mode(tmp_path, target):
    result = _convert_all(cnn_model(), tmp_path, output_float16=False, eval_with_onnx=True, eval_target_tflite=target,
                          eval_num_samples=2)
    acc = result.reports["accuracy"]
    assert acc["target"] == target
    assert acc["compare_mode"] == ("dequant" if target == "full_integer_quant" else "raw")
    assert acc["overall"]["cosine"] >= 0.99 and acc["pass"] in (True, False)
    if target == "full_integer_quant":
        assert acc["quantized_io"] == {"inputs": ["x"], "outputs": ["logits", "y"]}


def test_percentile_calibration_and_cind_parsing(tmp_path):
    from onnx2litert.options import parse_custom_input

    assert parse_custom_input(["x", "a.npy", "[0.5,1]", "2"]) == ("x", "a.npy", (0.5, 1), 2.0)
    expect_failure(cnn_model(), "invalid_option", calibration_percentile=10.0)
    model = mixed_model()
    result = _convert_all(model, tmp_path, calibration_percentile=99.99, output_float16=False)
    assert result.reports["quantization"]["calibration"]["percentile"] == 99.99
    assert _min_cosines(model, result, seeds=(7,))["integer_quant"] >= 0.99


def test_quant_helpers():
    q, s = quantize_weights_symmetric(np.array([[1.0, -2.0], [0.0, 0.0]], np.float32), axis=0)
    assert q.tolist() == [[64, -127], [0, 0]] and s.tolist() == pytest.approx([2 / 127, 1.0])
    assert activation_params(-1.0, 3.0, np.int8) == (pytest.approx(4 / 255), -128 + 64)
    assert activation_params(0.5, 2.0, np.int16) == (pytest.approx(2 / 32767), 0)


def _maxpool_model() -> object:
    """Conv -> MaxPool with explicit pads (lowered to PADV2(lowest) + VALID MAX_POOL_2D)."""
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
    return make_model(nodes, [("x", np.float32, [1, 3, 8, 8])], [("y", np.float32, [1, 4, 4, 4])],
                      {"w": _rand(rng, 4, 3, 3, 3, scale=0.3)})


def test_max_pool_padding_keeps_its_range(tmp_path):
    """PADV2's float32-lowest pad value must not enter the tied range (it made the scale ~1e36)."""
    model = _maxpool_model()
    result = _convert_all(model, tmp_path, output_float16=False)
    rep = result.reports["quantization"]["variants"]
    assert all(v["produced"] and not v["float_ops"] for v in rep.values())
    for variant, act in (("full_integer_quant", np.int8), ("full_integer_quant_with_int16_act", np.int16)):
        ops = _tensors_by_op(result.artifacts[variant])
        pads = [(ins, outs) for op, ins, outs in ops if op == "PADV2"]
        if not pads:
            pytest.skip("MaxPool padding is not lowered to PADV2 here")
        ins, outs = pads[0]
        q_out, q_pad = outs[0].quantization, ins[2].quantization
        assert q_pad.scale[0] == q_out.scale[0] and q_pad.zeroPoint[0] == q_out.zeroPoint[0]
        assert int(ins[2].buffer is not None) and q_out.scale[0] < 1.0  # a real range, not float32's lowest
    worst = _min_cosines(model, result, seeds=(7, 8))
    for variant, c in worst.items():
        assert c >= MIN_COSINE[variant], (variant, c)


def _softmax_model(scale: float) -> object:
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["y"], axis=1)]
    return make_model(nodes, [("x", np.float32, [1, 16])], [("y", np.float32, [1, 10])],
                      {"w": _rand(rng, 10, 16, scale=scale)})


def test_int16_softmax_with_a_wide_input_range_stays_float(tmp_path):
    """LiteRT's int16 SOFTMAX overflows for input_scale * beta >= 5: keep it float / fail full int16."""
    model = _softmax_model(1e5)  # logits of ~1e5..1e6: the float softmax is one-hot
    result = _convert_all(model, tmp_path, output_float16=False)
    rep = result.reports["quantization"]["variants"]
    assert [f["op"] for f in rep["integer_quant_with_int16_act"]["float_ops"]] == ["SOFTMAX"]
    assert "overflow" in rep["integer_quant_with_int16_act"]["float_ops"][0]["reason"]
    assert not rep["full_integer_quant_with_int16_act"]["produced"]
    assert rep["full_integer_quant_with_int16_act"]["reasons"] == ["unsupported_dtype"]
    assert rep["full_integer_quant"]["produced"] and not rep["full_integer_quant"]["float_ops"]
    worst = _min_cosines(model, result, seeds=(7,))
    assert worst["integer_quant_with_int16_act"] >= 0.999 and worst["full_integer_quant"] >= 0.99
    # A normal logit range keeps the int16 kernel.
    normal = _convert_all(_softmax_model(0.3), tmp_path, output_float16=False)
    assert normal.reports["quantization"]["variants"]["full_integer_quant_with_int16_act"]["produced"]


def test_log_softmax_and_arg_max_int8(tmp_path):
    """LOG_SOFTMAX (fixed 16/256, zp 127) and ARG_MAX (int64 indices) get int8 kernels; int16 has none."""
    rng = np.random.default_rng(8)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("LogSoftmax", ["c"], ["ls"], axis=1),
             helper.make_node("ArgMax", ["c"], ["am"], axis=1, keepdims=0)]
    model = make_model(nodes, [("x", np.float32, [1, 3, 4, 4])],
                       [("ls", np.float32, [1, 6, 4, 4]), ("am", np.int64, [1, 4, 4])],
                       {"w": _rand(rng, 6, 3, 1, 1, scale=1.0)})
    result = _convert_all(model, tmp_path, output_float16=False)
    rep = result.reports["quantization"]["variants"]
    assert rep["full_integer_quant"]["produced"] and not rep["full_integer_quant"]["float_ops"]
    assert sorted(f["op"] for f in rep["integer_quant_with_int16_act"]["float_ops"]) == ["ARG_MAX", "LOG_SOFTMAX"]
    ops = _tensors_by_op(result.artifacts["full_integer_quant"])
    ls = [outs[0].quantization for op, _, outs in ops if op == "LOG_SOFTMAX"][0]
    assert (float(ls.scale[0]), int(ls.zeroPoint[0])) == (16 / 256, 127)
    am = [(ins, outs) for op, ins, outs in ops if op == "ARG_MAX"][0]
    assert am[0][0].type == S.TensorType.INT8 and am[1][0].type == S.TensorType.INT64
    _, outs = io_details(result.artifacts["full_integer_quant"])
    assert outs["am"]["dtype"] == np.int64 and outs["ls"]["dtype"] == np.int8
    feeds = {"x": np.random.default_rng(9).standard_normal((1, 3, 4, 4)).astype(np.float32)}
    ref = run_onnx(model.SerializeToString(), feeds)
    for variant in ("integer_quant", "full_integer_quant"):
        for delegates in (True, False):
            got = _run_variant(result.artifacts[variant], feeds, delegates)
            assert _cosine(ref["ls"], got["ls"]) >= 0.99
            assert np.mean(got["am"] == ref["am"]) >= 0.9  # quantization may tie close channels


def test_gelu_int8_kernel(tmp_path):
    """A GELU formula (fused to one GELU op) gets LiteRT's int8 GELU kernel; int16 has none and stays float."""
    rng = np.random.default_rng(10)
    mk = helper.make_node
    nodes = [mk("Conv", ["x", "w"], ["c"]), mk("Div", ["c", "sqrt2"], ["u"]), mk("Erf", ["u"], ["e"]),
             mk("Add", ["e", "one"], ["s"]), mk("Mul", ["c", "s"], ["cs"]), mk("Mul", ["cs", "half"], ["y"])]
    inits = {"w": _rand(rng, 6, 3, 1, 1, scale=1.0), "sqrt2": np.array(np.sqrt(2.0), np.float32),
             "one": np.array(1.0, np.float32), "half": np.array(0.5, np.float32)}
    model = make_model(nodes, [("x", np.float32, [1, 3, 4, 4])], [("y", np.float32, [1, 6, 4, 4])], inits)
    result = _convert_all(model, tmp_path, output_float16=False)
    rep = result.reports["quantization"]["variants"]
    assert rep["full_integer_quant"]["produced"] and not rep["full_integer_quant"]["float_ops"]
    assert [f["op"] for f in rep["integer_quant_with_int16_act"]["float_ops"]] == ["GELU"]
    assert [ins[0].type for op, ins, _ in _tensors_by_op(result.artifacts["full_integer_quant"])
            if op == "GELU"] == [S.TensorType.INT8]
    worst = _min_cosines(model, result)
    for variant, c in worst.items():
        assert c >= MIN_COSINE[variant], (variant, c)


def block_move_model() -> object:
    """SpaceToDepth -> Conv -> DepthToSpace (DCR and CRD): LiteRT has int8 but no int16 kernels for either."""
    rng = np.random.default_rng(4)
    inits = {"w": _rand(rng, 12, 12, 1, 1, scale=0.3), "b": _rand(rng, 12, scale=0.1)}
    nodes = [helper.make_node("SpaceToDepth", ["x"], ["s"], blocksize=2),
             helper.make_node("Conv", ["s", "w", "b"], ["c"]),
             helper.make_node("DepthToSpace", ["c"], ["d"], blocksize=2, mode="DCR"),
             helper.make_node("DepthToSpace", ["c"], ["e"], blocksize=2, mode="CRD"),
             helper.make_node("Add", ["d", "e"], ["y"])]
    return make_model(nodes, [("x", np.float32, [1, 3, 6, 8])], [("y", np.float32, [1, 3, 6, 8])], inits)


@pytest.mark.parametrize("build", [block_move_model, mixed_model])
def test_int16_block_moves_respelled_as_transpose(tmp_path, build):
    """DEPTH_TO_SPACE / SPACE_TO_DEPTH (also from a stride-2 ConvTranspose) become RESHAPE + TRANSPOSE +
    RESHAPE in the int16 files, so the full-integer int16 variant is produced; int8 keeps the kernels."""
    model = build()
    result = _convert_all(model, tmp_path)
    variants = result.reports["quantization"]["variants"]
    assert variants["full_integer_quant_with_int16_act"]["produced"]
    assert not variants["integer_quant_with_int16_act"]["float_ops"]
    for variant in ("integer_quant_with_int16_act", "full_integer_quant_with_int16_act"):
        ops = {op for op, _, _ in _tensors_by_op(result.artifacts[variant])}
        assert not ops & {"DEPTH_TO_SPACE", "SPACE_TO_DEPTH"} and "TRANSPOSE" in ops, (variant, ops)
    int8_ops = {op for op, _, _ in _tensors_by_op(result.artifacts["full_integer_quant"])}
    assert int8_ops & {"DEPTH_TO_SPACE", "SPACE_TO_DEPTH"}
    worst = _min_cosines(model, result)
    for variant, c in worst.items():
        assert c >= MIN_COSINE[variant], (variant, c)

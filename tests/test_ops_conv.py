"""Conv and ConvTranspose: every attribute variant converted, run in LiteRT and compared.

Each model runs twice in LiteRT: with the default XNNPACK delegate (``check_model``) and
with the builtin kernels only, because the two implement grouped / transposed
convolutions separately.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import onnx2litert
from onnx2litert.evaluate import run_onnx
from onnx2litert.evaluate.runtime import read_layout
from tests.helpers import check_model, expect_failure, make_model, random_inputs

F32 = np.float32


def _model(op: str, x_shape: list[int], w_shape: list[int], bias: bool = True, opset: int = 17,
           seed: int = 0, **attrs: object):
    """One Conv/ConvTranspose node with constant weights (and bias), output shape inferred."""
    rng = np.random.default_rng(seed)
    inits = {"w": rng.standard_normal(w_shape).astype(F32)}
    if bias:
        c_out = w_shape[0] if op == "Conv" else w_shape[1] * int(attrs.get("group", 1))
        inits["b"] = rng.standard_normal(c_out).astype(F32)
    node = helper.make_node(op, ["x", *inits], ["y"], **attrs)
    return _with_inferred_outputs(make_model([node], [("x", F32, x_shape)], [("y", F32, None)], inits, opset))


def _with_inferred_outputs(model):
    """Give the graph outputs the shapes ONNX shape inference finds (the checker wants one)."""
    inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model).graph.output}
    for vi in model.graph.output:
        vi.CopyFrom(inferred[vi.name])
    return model


def _run_builtin_kernels(tflite: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run without the default delegates (LiteRT's own kernels), ONNX layout in and out."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    layout = read_layout(tflite).get("inputs", {})
    interp = Interpreter(model_content=tflite, num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    args = {}
    for name, value in feeds.items():
        perm = (layout.get(name) or {}).get("perm_from_onnx")
        args[name] = np.ascontiguousarray(np.transpose(value, perm) if perm else value)
    return interp.get_signature_runner("serving_default")(**args)


def _assert_close(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape, (got.shape, ref.shape)
    bound = 1e-5 * max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got.astype(np.float64) - ref).max())
    assert err <= bound, f"max abs error {err:.3g} > {bound:.3g}"


def _check(model, expect_ops: set[str] | None = None, reference: str = "ort") -> onnx2litert.ConversionResult:
    """XNNPACK run (check_model, against ONNX Runtime) plus a builtin-kernel run.

    ``reference="onnx"`` compares with the ONNX reference evaluator instead, for attribute
    combinations ONNX Runtime refuses to run.
    """
    feeds = random_inputs(model)
    if reference == "ort":
        result = check_model(model, feeds)
        ref = run_onnx(model.SerializeToString(), feeds)["y"]
    else:
        from onnx2litert.evaluate import run_tflite

        result = onnx2litert.convert(model)
        ref = ReferenceEvaluator(model).run(None, feeds)[0]
        _assert_close(run_tflite(result.artifacts["float32"], feeds)["y"], ref)
    _assert_close(_run_builtin_kernels(result.artifacts["float32"], feeds)["y"], ref)
    if expect_ops is not None:  # the ops the lowering emits (the passes may rewrite them further)
        lowered = onnx2litert.convert(model, optimize=False).op_counts
        assert expect_ops <= set(lowered), lowered
    return result


# -- Conv 2-D ---------------------------------------------------------------------------------

CONV2D = {
    "k3_valid": ([1, 3, 6, 7], [4, 3, 3, 3], {}),
    "k3_pad1_same": ([1, 3, 6, 7], [4, 3, 3, 3], {"pads": [1, 1, 1, 1]}),
    "asym_pads": ([1, 3, 6, 7], [4, 3, 3, 2], {"pads": [0, 1, 2, 0]}),
    "pads_larger_than_same": ([1, 2, 5, 5], [3, 2, 3, 3], {"pads": [2, 2, 2, 2]}),
    "stride2_pad1": ([1, 3, 7, 8], [4, 3, 3, 3], {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "stride2_valid_unused_tail": ([1, 3, 8, 8], [4, 3, 3, 3], {"strides": [2, 2], "pads": [0, 0, 1, 1]}),
    "stride_hw": ([1, 2, 9, 7], [3, 2, 2, 3], {"strides": [3, 2]}),
    "dilation2_pad2": ([1, 2, 8, 8], [3, 2, 3, 3], {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    "dilation_hw_stride": ([1, 2, 9, 8], [3, 2, 3, 2], {"dilations": [2, 1], "strides": [1, 2]}),
    "same_upper_s1": ([1, 3, 6, 5], [4, 3, 3, 3], {"auto_pad": "SAME_UPPER"}),
    "same_upper_s2_odd": ([1, 3, 6, 8], [4, 3, 3, 2], {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    "same_lower_even_total": ([1, 3, 6, 5], [4, 3, 3, 3], {"auto_pad": "SAME_LOWER"}),
    "same_lower_odd_total": ([1, 3, 6, 8], [4, 3, 2, 2], {"auto_pad": "SAME_LOWER", "strides": [1, 2]}),
    "auto_valid": ([1, 3, 6, 5], [4, 3, 3, 2], {"auto_pad": "VALID", "strides": [2, 1]}),
    "auto_notset_kernel_shape": ([1, 3, 6, 5], [4, 3, 3, 2], {"auto_pad": "NOTSET", "kernel_shape": [3, 2]}),
    "pointwise": ([2, 5, 4, 3], [6, 5, 1, 1], {}),
    "batch2": ([2, 3, 5, 5], [2, 3, 3, 3], {"pads": [1, 1, 1, 1]}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", sorted(CONV2D))
def test_conv2d(case: str, bias: bool) -> None:
    x_shape, w_shape, attrs = CONV2D[case]
    _check(_model("Conv", x_shape, w_shape, bias, **attrs), {"CONV_2D"})


GROUPED = {
    # (C_in, C_out, group, extra attrs); group == C_in is depthwise (any depth multiplier)
    "depthwise_m1": (4, 4, 4, {"pads": [1, 1, 1, 1]}),
    "depthwise_m2": (3, 6, 3, {}),
    "depthwise_m3_stride_dil": (2, 6, 2, {"strides": [2, 1], "dilations": [1, 2], "pads": [1, 2, 0, 1]}),
    "depthwise_same_lower": (4, 8, 4, {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    "grouped_2": (4, 6, 2, {"pads": [1, 1, 1, 1]}),
    "grouped_2_shrink": (6, 4, 2, {"strides": [2, 2]}),
    "grouped_3_dilated": (6, 9, 3, {"dilations": [2, 2], "pads": [2, 1, 2, 1]}),
    "grouped_4_m2": (8, 8, 4, {"pads": [0, 1, 1, 0]}),
}


@pytest.mark.parametrize("case", sorted(GROUPED))
def test_conv2d_grouped(case: str) -> None:
    c_in, c_out, group, attrs = GROUPED[case]
    model = _model("Conv", [1, c_in, 7, 6], [c_out, c_in // group, 3, 3], group=group, **attrs)
    _check(model, {"DEPTHWISE_CONV_2D"} if group == c_in else {"CONV_2D"})


def test_conv2d_grouped_is_one_native_conv() -> None:
    result = _check(_model("Conv", [1, 4, 5, 5], [6, 2, 3, 3], group=2))
    assert result.op_counts.get("CONV_2D") == 1 and "SPLIT" not in result.op_counts


def test_conv2d_grouped_split_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    # The per-group path (SPLIT + CONV_2D per group + CONCATENATION) for runtimes without
    # native grouped CONV_2D; 3-D grouped convolutions always take it.
    from onnx2litert.lower.ops import conv

    monkeypatch.setattr(conv, "_NATIVE_GROUPED_CONV2D", False)
    result = _check(_model("Conv", [1, 6, 5, 5], [9, 2, 3, 3], group=3, strides=[2, 1], pads=[1, 0, 1, 2]))
    assert result.op_counts.get("CONV_2D") == 3 and {"SPLIT", "CONCATENATION"} <= set(result.op_counts)


@pytest.mark.parametrize("auto_pad,strides", [("SAME_UPPER", [1, 1]), ("SAME_LOWER", [2, 1])])
def test_conv2d_dilated_auto_pad_against_onnx_reference(auto_pad: str, strides: list[int]) -> None:
    # ONNX Runtime refuses dilations with auto_pad SAME_*; the ONNX reference evaluator defines it.
    model = _model("Conv", [1, 3, 7, 6], [4, 3, 3, 2], auto_pad=auto_pad, dilations=[2, 3], strides=strides)
    _check(model, {"CONV_2D"}, reference="onnx")


def test_conv_runtime_bias() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3, 3, 3)).astype(F32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])
    model = _with_inferred_outputs(
        make_model([node], [("x", F32, [1, 3, 5, 5]), ("b", F32, [4])], [("y", F32, None)], {"w": w}))
    result = check_model(model)
    assert "ADD" in result.op_counts


@pytest.mark.parametrize("opset", [7, 11, 13, 21])
def test_conv_opsets(opset: int) -> None:
    _check(_model("Conv", [1, 2, 6, 6], [4, 1, 3, 3], opset=opset, group=2, strides=[2, 2], pads=[1, 0, 1, 1]))


# -- Conv 1-D and 3-D -------------------------------------------------------------------------

CONV1D = {
    "basic": ([1, 3, 9], [4, 3, 3], {}),
    "stride_pads": ([1, 3, 9], [4, 3, 3], {"strides": [2], "pads": [1, 2]}),
    "dilation": ([2, 2, 10], [3, 2, 3], {"dilations": [3], "pads": [3, 3]}),
    "same_upper": ([1, 3, 8], [4, 3, 4], {"auto_pad": "SAME_UPPER", "strides": [3]}),
    "same_lower_odd": ([1, 3, 8], [4, 3, 2], {"auto_pad": "SAME_LOWER"}),
    "depthwise_m2": ([1, 3, 8], [6, 1, 3], {"group": 3, "pads": [1, 1]}),
    "grouped": ([1, 4, 8], [6, 2, 3], {"group": 2}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", sorted(CONV1D))
def test_conv1d(case: str, bias: bool) -> None:
    x_shape, w_shape, attrs = CONV1D[case]
    _check(_model("Conv", x_shape, w_shape, bias, **attrs))


CONV3D = {
    "basic": ([1, 2, 4, 5, 4], [3, 2, 2, 3, 2], {}),
    "pads": ([1, 2, 4, 4, 4], [3, 2, 3, 3, 3], {"pads": [1, 1, 1, 1, 1, 1]}),
    "asym_pads_strides": ([1, 2, 5, 4, 6], [3, 2, 3, 2, 3], {"strides": [2, 1, 2], "pads": [1, 0, 2, 0, 1, 0]}),
    "dilation": ([1, 2, 6, 5, 5], [2, 2, 2, 2, 3], {"dilations": [2, 1, 2]}),
    "same_upper": ([1, 2, 5, 4, 4], [3, 2, 3, 3, 2], {"auto_pad": "SAME_UPPER", "strides": [2, 1, 1]}),
    "same_lower": ([1, 2, 5, 4, 4], [3, 2, 2, 3, 2], {"auto_pad": "SAME_LOWER"}),
    "grouped": ([1, 4, 4, 4, 4], [6, 2, 3, 3, 3], {"group": 2, "pads": [1, 1, 1, 1, 1, 1]}),
    "depthwise": ([1, 3, 4, 4, 4], [6, 1, 2, 2, 2], {"group": 3}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", sorted(CONV3D))
def test_conv3d(case: str, bias: bool) -> None:
    x_shape, w_shape, attrs = CONV3D[case]
    _check(_model("Conv", x_shape, w_shape, bias, **attrs), {"CONV_3D"})


# -- ConvTranspose ----------------------------------------------------------------------------

DECONV2D = {
    "basic": ([1, 3, 4, 5], [3, 2, 3, 3], {}),
    "stride2": ([1, 3, 4, 5], [3, 2, 3, 3], {"strides": [2, 2]}),
    "stride2_k4_pad1_same": ([1, 3, 4, 5], [3, 2, 4, 4], {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "stride2_pad1_outpad1": ([1, 3, 4, 5], [3, 2, 3, 3], {"strides": [2, 2], "pads": [1, 1, 1, 1],
                                                          "output_padding": [1, 1]}),
    "asym_pads": ([1, 3, 4, 5], [3, 2, 3, 3], {"strides": [2, 1], "pads": [1, 0, 0, 2]}),
    "outpad_only": ([1, 3, 4, 4], [3, 2, 3, 2], {"strides": [3, 2], "output_padding": [2, 1]}),
    "dilation": ([1, 3, 4, 5], [3, 2, 3, 3], {"dilations": [2, 2]}),
    "dilation_stride_pads": ([1, 3, 4, 5], [3, 2, 3, 2], {"dilations": [2, 1], "strides": [2, 2],
                                                          "pads": [1, 2, 0, 1]}),
    "same_upper": ([1, 3, 4, 5], [3, 2, 3, 3], {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    "same_lower": ([1, 3, 4, 5], [3, 2, 3, 3], {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    "same_lower_stride3": ([1, 3, 4, 5], [3, 2, 4, 3], {"auto_pad": "SAME_LOWER", "strides": [3, 2]}),
    "same_kernel_shorter_than_stride": ([1, 3, 4, 5], [3, 2, 1, 2], {"auto_pad": "SAME_UPPER", "strides": [2, 3]}),
    "auto_valid": ([1, 3, 4, 5], [3, 2, 3, 3], {"auto_pad": "VALID", "strides": [2, 1]}),
    "output_shape_crop": ([1, 3, 4, 5], [3, 2, 3, 3], {"strides": [2, 2], "output_shape": [8, 7]}),
    "output_shape_extend": ([1, 3, 4, 5], [3, 2, 3, 3], {"strides": [2, 2], "output_shape": [9, 12]}),
    "output_shape_same_upper": ([1, 3, 4, 5], [3, 2, 3, 3], {"strides": [2, 2], "output_shape": [8, 10],
                                                             "auto_pad": "SAME_UPPER"}),
    "group2": ([1, 4, 4, 5], [4, 3, 3, 3], {"group": 2}),
    "group2_stride_pads": ([1, 4, 4, 5], [4, 1, 3, 3], {"group": 2, "strides": [2, 1], "pads": [1, 1, 1, 1]}),
    "depthwise_group": ([1, 3, 3, 4], [3, 2, 2, 2], {"group": 3, "strides": [2, 2]}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", sorted(DECONV2D))
def test_conv_transpose2d(case: str, bias: bool) -> None:
    x_shape, w_shape, attrs = DECONV2D[case]
    _check(_model("ConvTranspose", x_shape, w_shape, bias, **attrs), {"TRANSPOSE_CONV"})


def test_conv_transpose_same_padding_needs_no_crop() -> None:
    result = _check(_model("ConvTranspose", [1, 3, 4, 5], [3, 2, 4, 4], strides=[2, 2], pads=[1, 1, 1, 1]))
    assert "SLICE" not in result.op_counts


@pytest.mark.parametrize("opset", [7, 11, 13, 21])
def test_conv_transpose_opsets(opset: int) -> None:
    _check(_model("ConvTranspose", [1, 2, 3, 4], [2, 3, 3, 3], opset=opset, strides=[2, 2], pads=[1, 0, 0, 1],
                  output_padding=[1, 0]))


def test_conv_transpose_runtime_bias() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 2, 3, 3)).astype(F32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])
    model = _with_inferred_outputs(
        make_model([node], [("x", F32, [1, 3, 4, 4]), ("b", F32, [2])], [("y", F32, None)], {"w": w}))
    result = check_model(model)
    assert "ADD" in result.op_counts


DECONV_1D_3D = {
    "1d_basic": ([1, 3, 5], [3, 2, 3], {}),
    "1d_stride_pads_outpad": ([1, 3, 5], [3, 2, 3], {"strides": [2], "pads": [1, 0], "output_padding": [1]}),
    "1d_dilation_group": ([1, 4, 5], [4, 1, 2], {"dilations": [2], "group": 2}),
    "1d_same_upper": ([1, 3, 5], [3, 2, 4], {"auto_pad": "SAME_UPPER", "strides": [2]}),
    "3d_basic": ([1, 2, 3, 3, 2], [2, 3, 2, 2, 2], {}),
    "3d_stride_pads_outpad": ([1, 2, 3, 3, 3], [2, 3, 3, 2, 3], {"strides": [2, 1, 2], "pads": [1, 0, 1, 0, 0, 1],
                                                                 "output_padding": [1, 0, 0]}),
    "3d_dilation": ([1, 2, 3, 3, 3], [2, 2, 2, 2, 2], {"dilations": [2, 1, 2]}),
    "3d_group": ([1, 4, 2, 3, 3], [4, 2, 2, 2, 2], {"group": 2, "strides": [2, 2, 1]}),
    "3d_output_shape": ([1, 2, 3, 3, 3], [2, 2, 3, 3, 3], {"strides": [2, 2, 2], "output_shape": [6, 5, 7]}),
    "3d_same_lower": ([1, 2, 3, 3, 3], [2, 2, 3, 3, 3], {"strides": [2, 2, 1], "auto_pad": "SAME_LOWER"}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", sorted(DECONV_1D_3D))
def test_conv_transpose_1d_3d(case: str, bias: bool) -> None:
    x_shape, w_shape, attrs = DECONV_1D_3D[case]
    expect = {"CONV_3D_TRANSPOSE"} if len(x_shape) == 5 else {"TRANSPOSE_CONV"}
    _check(_model("ConvTranspose", x_shape, w_shape, bias, **attrs), expect)


# -- failures ---------------------------------------------------------------------------------

# -- run-time weights -------------------------------------------------------------------------

RUNTIME_WEIGHTS = {
    # name: (op, x shape, w shape, attrs, LiteRT op expected)
    "conv2d": ("Conv", [1, 3, 6, 7], [4, 3, 3, 3], {"pads": [1, 0, 2, 1], "strides": [2, 1]}, "CONV_2D"),
    "conv2d_same_strided": ("Conv", [1, 2, 7, 6], [3, 2, 3, 2], {"auto_pad": "SAME_LOWER", "strides": [2, 1]},
                            "CONV_2D"),
    "conv1d": ("Conv", [2, 3, 9], [4, 3, 3], {"pads": [1, 2], "strides": [2]}, "CONV_2D"),
    "conv3d": ("Conv", [1, 2, 4, 5, 4], [3, 2, 2, 3, 2], {"pads": [1, 0, 1, 0, 1, 1]}, "CONV_3D"),
    "conv3d_grouped": ("Conv", [1, 4, 4, 4, 3], [4, 2, 2, 2, 2], {"group": 2}, "CONV_3D"),
    "grouped_native": ("Conv", [1, 4, 5, 5], [6, 2, 3, 3], {"group": 2, "pads": [1, 1, 1, 1]}, "CONV_2D"),
    "depthwise_m2": ("Conv", [1, 3, 6, 5], [6, 1, 3, 3], {"group": 3, "strides": [2, 2]}, "DEPTHWISE_CONV_2D"),
    "deconv2d": ("ConvTranspose", [1, 2, 3, 4], [2, 3, 3, 3], {"strides": [2, 2], "pads": [1, 0, 1, 1]},
                 "TRANSPOSE_CONV"),
    "deconv2d_same": ("ConvTranspose", [1, 2, 3, 3], [2, 3, 3, 3], {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
                      "TRANSPOSE_CONV"),
    "deconv2d_dilated": ("ConvTranspose", [1, 2, 3, 4], [2, 2, 3, 2], {"dilations": [2, 3]}, "TRANSPOSE_CONV"),
    "deconv2d_group": ("ConvTranspose", [1, 4, 3, 3], [4, 2, 3, 3], {"group": 2, "strides": [3, 2]},
                       "TRANSPOSE_CONV"),
    "deconv1d": ("ConvTranspose", [1, 2, 5], [2, 3, 3], {"strides": [2], "output_padding": [1]},
                 "TRANSPOSE_CONV"),
    "deconv3d": ("ConvTranspose", [1, 2, 3, 3, 2], [2, 2, 2, 3, 2], {"strides": [2, 1, 2]}, "CONV_3D_TRANSPOSE"),
    "deconv3d_dilated": ("ConvTranspose", [1, 2, 3, 2, 3], [2, 2, 2, 2, 2], {"dilations": [2, 1, 2]},
                         "CONV_3D_TRANSPOSE"),
}


@pytest.mark.parametrize("bias", ["const_bias", "runtime_bias", "nobias"])
@pytest.mark.parametrize("case", sorted(RUNTIME_WEIGHTS))
def test_runtime_weights(case: str, bias: str) -> None:
    # Weights (and bias) fed as graph inputs: the filter is rearranged by TRANSPOSE at run time.
    op, x_shape, w_shape, attrs, litert_op = RUNTIME_WEIGHTS[case]
    c_out = w_shape[0] if op == "Conv" else w_shape[1] * int(attrs.get("group", 1))
    rng = np.random.default_rng(3)
    inputs = [("x", F32, x_shape), ("w", F32, w_shape)]
    inits = {}
    if bias == "runtime_bias":
        inputs.append(("b", F32, [c_out]))
    elif bias == "const_bias":
        inits["b"] = rng.standard_normal(c_out).astype(F32)
    names = ["x", "w"] + (["b"] if bias != "nobias" else [])
    node = helper.make_node(op, names, ["y"], **attrs)
    model = _with_inferred_outputs(make_model([node], inputs, [("y", F32, None)], inits))
    feeds = {n: rng.standard_normal(s).astype(F32) for n, _, s in inputs}
    result = check_model(model, feeds)
    assert litert_op in result.op_counts, result.op_counts


def test_runtime_weights_grouped_split_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Per-group convolutions take SLICEs of the run-time filter.
    from onnx2litert.lower.ops import conv

    monkeypatch.setattr(conv, "_NATIVE_GROUPED_CONV2D", False)
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=3, pads=[1, 0, 1, 2])
    model = _with_inferred_outputs(make_model([node], [("x", F32, [1, 6, 5, 5]), ("w", F32, [9, 2, 3, 3])],
                                              [("y", F32, None)]))
    result = check_model(model)
    assert result.op_counts.get("CONV_2D") == 3, result.op_counts


def test_runtime_weights_dtype_mismatch() -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    model = make_model([node], [("x", np.float16, [1, 2, 5, 5]), ("w", np.float16, [2, 2, 3, 3])],
                       [("y", np.float16, None)])
    expect_failure(model, "unsupported_dtype")


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
def test_four_spatial_dims_unsupported(op: str) -> None:
    expect_failure(_model(op, [1, 2, 3, 3, 3, 3], [2, 2, 2, 2, 2, 2]), "unsupported_attribute_value")


def test_conv_float16_input_unsupported() -> None:
    w = np.ones((2, 2, 3, 3), np.float16)
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    model = make_model([node], [("x", np.float16, [1, 2, 5, 5])], [("y", np.float16, None)], {"w": w})
    expect_failure(model, "unsupported_dtype")


def test_conv_transpose_same_with_output_padding_is_ambiguous() -> None:
    # ONNX shape inference says 9, ONNX Runtime computes 8: refuse rather than guess.
    model = _model("ConvTranspose", [1, 2, 4, 3], [2, 3, 2, 2], auto_pad="SAME_UPPER", strides=[2, 1],
                   output_padding=[1, 0])
    expect_failure(model, "unsupported_attribute_value")


def test_conv_transpose_output_shape_too_large() -> None:
    model = _model("ConvTranspose", [1, 3, 4, 5], [3, 2, 3, 3], strides=[2, 2], output_shape=[8, 14])
    expect_failure(model, "unsupported_attribute_value")

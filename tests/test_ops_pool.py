"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool and LRN: LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.helpers import check_model, expect_failure
from tests.helpers import single_op_model as _single_op_model

F32 = np.float32


def single_op_model(op_type: str, inputs: list, **kwargs) -> onnx.ModelProto:
    """tests.helpers.single_op_model with output shapes filled in by ONNX shape inference."""
    model = _single_op_model(op_type, inputs, **kwargs)
    inferred = onnx.shape_inference.infer_shapes(model)
    for declared, found in zip(model.graph.output, inferred.graph.output):
        if found.type.tensor_type.HasField("shape"):
            declared.type.tensor_type.shape.CopyFrom(found.type.tensor_type.shape)
    return model

# (input spatial shape, attributes) — each exercises one geometry path.
POOL_CASES = {
    "k3s1p1_same": ([5, 6], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    "k2s2_valid": ([6, 6], dict(kernel_shape=[2, 2], strides=[2, 2])),
    "k3s2_valid_trailing": ([7, 6], dict(kernel_shape=[3, 3], strides=[2, 2])),
    "k3s2_same_pads": ([6, 6], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])),
    "asym_pads": ([5, 6], dict(kernel_shape=[3, 2], pads=[2, 0, 0, 1])),
    "pads_begin_only": ([5, 5], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0])),
    "rect_kernel_stride": ([6, 7], dict(kernel_shape=[2, 3], strides=[1, 2], pads=[1, 0, 0, 1])),
    "ceil": ([6, 6], dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    "ceil_pads": ([5, 7], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),
    "auto_same_upper": ([5, 6], dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER")),
    "auto_same_lower": ([5, 6], dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_LOWER")),
    "auto_same_upper_s1": ([5, 5], dict(kernel_shape=[4, 4], auto_pad="SAME_UPPER")),
    "auto_same_lower_s1": ([5, 5], dict(kernel_shape=[4, 4], auto_pad="SAME_LOWER")),
    "auto_valid": ([7, 6], dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="VALID")),
    "global_kernel": ([4, 5], dict(kernel_shape=[4, 5])),
    "1d": ([9], dict(kernel_shape=[3], strides=[2], pads=[1, 0])),
    "1d_ceil": ([8], dict(kernel_shape=[3], strides=[2], ceil_mode=1)),
    "1d_same": ([8], dict(kernel_shape=[3], pads=[1, 1])),
}

DILATED_CASES = {
    "dil2": ([7, 7], dict(kernel_shape=[3, 3], dilations=[2, 2])),
    "dil2_pads_stride": ([8, 7], dict(kernel_shape=[2, 3], dilations=[2, 1], strides=[2, 1], pads=[1, 1, 1, 1])),
    "dil_ceil": ([8, 8], dict(kernel_shape=[2, 2], dilations=[3, 2], strides=[2, 2], ceil_mode=1)),
    "dil_k1": ([5, 5], dict(kernel_shape=[1, 2], dilations=[3, 1])),
    "1d_dil": ([10], dict(kernel_shape=[3], dilations=[2], pads=[2, 2])),
}


def _pool_model(op: str, spatial: list[int], attrs: dict, opset: int = 17, n_outputs: int = 1):
    return single_op_model(op, [("x", F32, [2, 3, *spatial])], opset=opset, n_outputs=n_outputs, **attrs)


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_max_pool(case):
    spatial, attrs = POOL_CASES[case]
    check_model(_pool_model("MaxPool", spatial, attrs))


@pytest.mark.parametrize("case", sorted(DILATED_CASES))
def test_max_pool_dilated(case):
    spatial, attrs = DILATED_CASES[case]
    check_model(_pool_model("MaxPool", spatial, attrs))


def test_max_pool_same_is_single_op():
    result = check_model(_pool_model("MaxPool", *POOL_CASES["k3s1p1_same"]))
    assert result.op_counts.get("MAX_POOL_2D") == 1 and "PADV2" not in result.op_counts


def test_max_pool_negative_inputs_with_padding():
    """Padding must never win the max: all-negative input with explicit non-SAME pads."""
    model = _pool_model("MaxPool", [5, 5], dict(kernel_shape=[3, 3], pads=[2, 0, 0, 2]))
    x = -np.abs(np.random.default_rng(1).standard_normal((2, 3, 5, 5))).astype(F32) - 1.0
    check_model(model, {"x": x})


@pytest.mark.parametrize("opset", [7, 8, 10, 11, 12, 22])
def test_max_pool_opsets(opset):
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0])
    check_model(_pool_model("MaxPool", [6, 5], attrs, opset=opset))


def test_max_pool_storage_order_without_indices():
    check_model(_pool_model("MaxPool", [4, 4], dict(kernel_shape=[2, 2], storage_order=1)))


def test_max_pool_indices_output_rejected():
    model = _pool_model("MaxPool", [4, 4], dict(kernel_shape=[2, 2]), n_outputs=2)
    model.graph.output[1].type.tensor_type.elem_type = 7  # INT64 Indices
    expect_failure(model, "unsupported_attribute_value")


POOL3D_CASES = {
    "k2": ([4, 4, 4], dict(kernel_shape=[2, 2, 2])),
    "k3s2_pads": ([5, 6, 5], dict(kernel_shape=[3, 3, 2], strides=[2, 2, 1], pads=[1, 0, 1, 1, 1, 0])),
    "same_upper": ([4, 5, 3], dict(kernel_shape=[3, 2, 2], strides=[2, 1, 2], auto_pad="SAME_UPPER")),
    "ceil": ([5, 6, 6], dict(kernel_shape=[2, 3, 3], strides=[2, 2, 2], ceil_mode=1)),
    "dilated": ([6, 5, 7], dict(kernel_shape=[2, 2, 3], dilations=[2, 1, 2], pads=[1, 0, 1, 1, 1, 0])),
    "dilated_ceil": ([7, 5, 6], dict(kernel_shape=[2, 2, 2], dilations=[2, 2, 1], strides=[2, 1, 2], ceil_mode=1)),
}


@pytest.mark.parametrize("case", sorted(POOL3D_CASES))
def test_max_pool_3d(case):
    spatial, attrs = POOL3D_CASES[case]
    check_model(_pool_model("MaxPool", spatial, attrs, opset=19))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("spatial, attrs", [
    ([1, 4], dict(kernel_shape=[1, 1], strides=[1, 2], ceil_mode=1)),
    ([5, 5], dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),
])
def test_pool_ambiguous_ceil_shape_rejected(op, spatial, attrs):
    """ceil_mode drops a last window starting in the padding (ONNX Runtime) while ONNX shape
    inference keeps it: the declared shape is wrong for the runtime, so refuse to guess."""
    expect_failure(_pool_model(op, spatial, attrs), "unsupported_attribute_value")


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_average_pool(case, include_pad):
    spatial, attrs = POOL_CASES[case]
    check_model(_pool_model("AveragePool", spatial, dict(attrs, count_include_pad=include_pad)))


@pytest.mark.parametrize("opset", [7, 10, 11, 19, 22])
def test_average_pool_opsets(opset):
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0], count_include_pad=1)
    check_model(_pool_model("AveragePool", [6, 5], attrs, opset=opset))


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("case", sorted(DILATED_CASES))
def test_average_pool_dilated(case, include_pad):
    # Only the kernel taps count (ONNX reference and ONNX Runtime, opset 19+).
    spatial, attrs = DILATED_CASES[case]
    check_model(_pool_model("AveragePool", spatial, dict(attrs, count_include_pad=include_pad), opset=19))


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("case", sorted(POOL3D_CASES))
def test_average_pool_3d(case, include_pad):
    spatial, attrs = POOL3D_CASES[case]
    check_model(_pool_model("AveragePool", spatial, dict(attrs, count_include_pad=include_pad), opset=19))


def test_pool_4d_rejected():
    expect_failure(_pool_model("MaxPool", [2, 2, 2, 2], dict(kernel_shape=[2, 2, 2, 2])),
                   "unsupported_attribute_value")


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("spatial", [[7], [4, 5], [2, 3, 4]])
def test_global_pool(op, spatial):
    check_model(single_op_model(op, [("x", F32, [2, 3, *spatial])]))


@pytest.mark.parametrize("size", [1, 3, 5, 9])
def test_lrn(size):
    model = single_op_model("LRN", [("x", F32, [2, 6, 3, 4])], size=size, alpha=0.3, beta=0.6, bias=1.5)
    check_model(model)


@pytest.mark.parametrize("shape, size", [([2, 6, 3, 4], 2), ([2, 6, 3, 4], 4), ([1, 5, 7], 3),
                                         ([1, 4, 2, 2, 3], 3)])
def test_lrn_rejected(shape, size):
    """Even sizes (asymmetric window) and non-4-D inputs: ONNX Runtime cannot run them either."""
    expect_failure(single_op_model("LRN", [("x", F32, shape)], size=size), "unsupported_attribute_value")


@pytest.mark.parametrize("opset", [7, 13])
def test_lrn_defaults(opset):
    check_model(single_op_model("LRN", [("x", F32, [1, 7, 3, 3])], opset=opset, size=3))

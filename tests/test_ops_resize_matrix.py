"""Resize through per-axis weight matrices (cubic, antialias, tf_crop_and_resize, linear modes
RESIZE_BILINEAR cannot express) and Resize with a run-time ``sizes`` input: LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.helpers import check_model, expect_failure, make_model

F32 = np.float32


def _model(in_shape: list[int], *, scales: list[float] | None = None, sizes: list[int] | None = None,
           roi: list[float] | None = None, opset: int = 19, runtime_sizes: bool = False,
           **attrs: object) -> onnx.ModelProto:
    """One Resize node; scales/sizes/roi constant unless ``runtime_sizes`` makes sizes a graph input."""
    inits: dict[str, np.ndarray] = {}
    inputs = [("x", F32, in_shape)]
    names = ["x", "", ""]
    if roi is not None:
        inits["roi"] = np.array(roi, F32)
        names[1] = "roi"
    if scales is not None:
        inits["scales"] = np.array(scales, F32)
        names[2] = "scales"
    if sizes is not None:
        names.append("sizes")
        if runtime_sizes:
            inputs.append(("sizes", np.int64, [len(sizes)]))
        else:
            inits["sizes"] = np.array(sizes, np.int64)
    node = helper.make_node("Resize", names, ["y"], **attrs)
    model = make_model([node], inputs, [("y", F32, None)], inits, opset)
    if runtime_sizes:  # the output shape ONNX would infer from the constant sizes
        const = _model(in_shape, sizes=sizes, roi=roi, opset=opset, **attrs)
        model.graph.output[0].CopyFrom(const.graph.output[0])
    else:
        inferred = onnx.shape_inference.infer_shapes(model)
        model.graph.output[0].CopyFrom(inferred.graph.output[0])
    return model


def _feeds(model: onnx.ModelProto, sizes: list[int] | None = None) -> dict[str, np.ndarray]:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(F32)}
    if sizes is not None:
        feeds["sizes"] = np.array(sizes, np.int64)
    return feeds


def _ops(result) -> set[str]:
    return set(result.op_counts)


# --- cubic -------------------------------------------------------------------------------------

CUBIC_COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"]


@pytest.mark.parametrize("coord", CUBIC_COORDS)
@pytest.mark.parametrize("a, exclude", [(-0.75, 0), (-0.5, 1), (-0.5, 0)])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 0.5, 1.5], [1, 1, 1, 3]])
def test_cubic_scales(coord: str, a: float, exclude: int, scales: list[float]) -> None:
    model = _model([1, 2, 4, 6], scales=scales, mode="cubic", coordinate_transformation_mode=coord,
                   cubic_coeff_a=a, exclude_outside=exclude)
    result = check_model(model, _feeds(model))
    assert "FULLY_CONNECTED" in _ops(result)


@pytest.mark.parametrize("coord", CUBIC_COORDS)
@pytest.mark.parametrize("sizes", [[2, 2, 3, 3], [2, 2, 9, 10], [2, 2, 5, 4]])
def test_cubic_sizes(coord: str, sizes: list[int]) -> None:
    model = _model([2, 2, 4, 4], sizes=sizes, mode="cubic", coordinate_transformation_mode=coord)
    check_model(model, _feeds(model))


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_cubic_opsets(opset: int) -> None:
    model = _model([1, 2, 4, 5], sizes=[1, 2, 7, 8], opset=opset, mode="cubic",
                   roi=[] if opset < 13 else None, scales=[] if opset < 13 else None)
    check_model(model, _feeds(model))


def test_cubic_batch_axis_rejected() -> None:
    expect_failure(_model([2, 2, 4, 4], sizes=[1, 2, 4, 4], mode="cubic"), "unsupported_attribute_value")


# --- antialias ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("resize", [dict(scales=[1, 1, 0.6, 0.6]), dict(scales=[1, 1, 0.5, 1.5]),
                                    dict(sizes=[1, 2, 3, 3]), dict(sizes=[1, 2, 2, 7])])
def test_antialias(mode: str, resize: dict) -> None:
    model = _model([1, 2, 6, 5], opset=18, mode=mode, antialias=1, **resize)
    result = check_model(model, _feeds(model))
    assert "FULLY_CONNECTED" in _ops(result)


def test_antialias_exclude_outside_cubic() -> None:
    model = _model([1, 1, 8, 8], scales=[1, 1, 0.4, 0.7], opset=18, mode="cubic", antialias=1,
                   exclude_outside=1, cubic_coeff_a=-0.5)
    check_model(model, _feeds(model))


# --- tf_crop_and_resize ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("roi, extrapolation", [
    ([0, 0, 0.4, 0.6, 1, 1, 0.6, 0.8], 0.0),
    ([0, 0, 0.4, 0.6, 1, 1, 1.2, 1.7], 10.0),
    ([0, 0, -0.3, 0.1, 1, 1, 0.9, 1.4], -2.5),
])
def test_tf_crop_and_resize(mode: str, roi: list[float], extrapolation: float) -> None:
    model = _model([1, 2, 4, 5], sizes=[1, 2, 3, 4], roi=roi, mode=mode,
                   coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=extrapolation)
    check_model(model, _feeds(model))


def test_tf_crop_and_resize_axes() -> None:
    model = _model([1, 1, 4, 4], sizes=[3, 3], roi=[0.6, 0.4, 0.8, 0.6], axes=[3, 2], mode="linear",
                   coordinate_transformation_mode="tf_crop_and_resize")
    check_model(model, _feeds(model))


def test_tf_crop_and_resize_runtime_roi_rejected() -> None:
    node = helper.make_node("Resize", ["x", "roi", "", "sizes"], ["y"], mode="linear",
                            coordinate_transformation_mode="tf_crop_and_resize")
    model = make_model([node], [("x", F32, [1, 1, 4, 4]), ("roi", F32, [8])], [("y", F32, [1, 1, 3, 3])],
                       {"sizes": np.array([1, 1, 3, 3], np.int64)}, 19)
    expect_failure(model, "requires_constant_input")


# --- run-time sizes ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode, coord", [("nearest", "half_pixel"), ("nearest", "asymmetric"),
                                         ("linear", "half_pixel"), ("linear", "pytorch_half_pixel"),
                                         ("cubic", "align_corners")])
@pytest.mark.parametrize("sizes", [[1, 2, 7, 8], [1, 2, 3, 1], [1, 2, 2, 9]])
def test_runtime_sizes_stretch(mode: str, coord: str, sizes: list[int]) -> None:
    model = _model([1, 2, 4, 5], sizes=sizes, runtime_sizes=True, mode=mode,
                   coordinate_transformation_mode=coord)
    check_model(model, _feeds(model, sizes))


@pytest.mark.parametrize("policy, sizes", [("not_larger", [7, 8]), ("not_smaller", [7, 8]),
                                           ("not_larger", [1, 3]), ("not_smaller", [1, 3])])
def test_runtime_sizes_policy(policy: str, sizes: list[int]) -> None:
    model = _model([1, 1, 2, 4], sizes=sizes, runtime_sizes=True, axes=[2, 3], mode="nearest",
                   keep_aspect_ratio_policy=policy)
    check_model(model, _feeds(model, sizes))


def test_runtime_sizes_policy_ambiguous_rejected() -> None:
    # Output (3, 5) from a (2, 3) input: out/in is 1.5 or 5/3 and both give that shape.
    model = _model([1, 1, 2, 3], sizes=[3, 5], runtime_sizes=True, axes=[2, 3], mode="nearest",
                   keep_aspect_ratio_policy="not_larger")
    expect_failure(model, "requires_constant_input")


def test_runtime_scales_rejected() -> None:
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic",
                            coordinate_transformation_mode="align_corners")
    model = make_model([node], [("x", F32, [1, 1, 2, 2]), ("scales", F32, [4])], [("y", F32, [1, 1, 4, 4])],
                       opset=19)
    expect_failure(model, "requires_constant_input")

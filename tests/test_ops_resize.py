"""Resize, Upsample, DepthToSpace, SpaceToDepth: LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.helpers import check_model, expect_failure, make_model

F32 = np.float32
COORD_MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def _resize_model(in_shape: list[int], *, scales: list[float] | None = None, sizes: list[int] | None = None,
                  opset: int = 13, **attrs: object) -> onnx.ModelProto:
    """One Resize node with constant scales or sizes (roi/scales placeholders as the opset needs)."""
    inits: dict[str, np.ndarray] = {}
    if opset == 10:
        inits["scales"] = np.array(scales, F32)
        names = ["x", "scales"]
    else:
        names = ["x", "roi" if opset < 13 else "", "scales" if scales is not None or opset < 13 else ""]
        if opset < 13:
            inits["roi"] = np.zeros(0, F32)
        if scales is not None:
            inits["scales"] = np.array(scales, F32)
        elif opset < 13:
            inits["scales"] = np.zeros(0, F32)
        if sizes is not None:
            inits["sizes"] = np.array(sizes, np.int64)
            names.append("sizes")
        while names and names[-1] == "":
            names.pop()
    node = helper.make_node("Resize", names, ["y"], **attrs)
    model = make_model([node], [("x", F32, in_shape)], [("y", F32, None)], inits, opset)
    return _with_inferred_output(model)


def _with_inferred_output(model: onnx.ModelProto) -> onnx.ModelProto:
    inferred = onnx.shape_inference.infer_shapes(model)
    for declared, found in zip(model.graph.output, inferred.graph.output):
        declared.type.tensor_type.shape.CopyFrom(found.type.tensor_type.shape)
    return model


def _ops(result) -> set[str]:
    return set(result.op_counts)


# --- linear ------------------------------------------------------------------------------------

@pytest.mark.parametrize("coord", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 3, 1.5], [1, 1, 0.5, 0.5], [1, 1, 1, 2]])
def test_resize_linear_scales(coord, scales):
    result = check_model(_resize_model([1, 2, 4, 6], scales=scales, mode="linear",
                                       coordinate_transformation_mode=coord))
    assert "RESIZE_BILINEAR" in _ops(result)


@pytest.mark.parametrize("coord", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
@pytest.mark.parametrize("sizes", [[1, 2, 7, 5], [1, 2, 3, 9], [1, 2, 1, 4], [1, 2, 2, 3]])
def test_resize_linear_sizes(coord, sizes):
    """Non-integer ratios: exact whenever LiteRT's in/out scale equals ONNX's (sizes input)."""
    model = _resize_model([1, 2, 4, 6], sizes=sizes, mode="linear", coordinate_transformation_mode=coord)
    result = check_model(model)
    if coord == "pytorch_half_pixel" and 1 in sizes[2:]:
        # A single output row samples pixel 0 in PyTorch mode; no LiteRT mode does that.
        assert "FULLY_CONNECTED" in _ops(result)


def test_resize_linear_non_integer_scale_uses_matrix():
    """scales=1.5 on 5 rows gives 7 rows sampled at 1/1.5 steps; LiteRT would use 5/7 steps."""
    result = check_model(_resize_model([1, 1, 5, 4], scales=[1, 1, 1.5, 1], mode="linear"))
    assert "RESIZE_BILINEAR" not in _ops(result) and "FULLY_CONNECTED" in _ops(result)


@pytest.mark.parametrize("opset", [10, 11, 13, 18, 19])
def test_resize_linear_opsets(opset):
    attrs = {"mode": "linear"}
    if opset >= 11:
        attrs["coordinate_transformation_mode"] = "asymmetric"
    check_model(_resize_model([2, 3, 3, 4], scales=[1, 1, 2, 3], opset=opset, **attrs))


def test_resize_linear_half_pixel_symmetric_upscale():
    check_model(_resize_model([1, 2, 4, 4], scales=[1, 1, 2, 2], opset=19, mode="linear",
                              coordinate_transformation_mode="half_pixel_symmetric"))


def test_resize_linear_3d():
    check_model(_resize_model([2, 3, 5], sizes=[2, 3, 9], mode="linear",
                              coordinate_transformation_mode="align_corners"))


def test_resize_axes_and_policy():
    check_model(_resize_model([1, 2, 4, 6], sizes=[8, 9], opset=18, axes=[2, 3], mode="linear",
                              keep_aspect_ratio_policy="not_larger"))
    check_model(_resize_model([1, 2, 4, 6], sizes=[6, 6], opset=18, axes=[2, 3], mode="nearest",
                              keep_aspect_ratio_policy="not_smaller", coordinate_transformation_mode="asymmetric",
                              nearest_mode="floor"))
    check_model(_resize_model([1, 2, 4, 6], scales=[2.0, 3.0], opset=19, axes=[-2, -1], mode="nearest"))


def test_resize_antialias_upscale_is_plain_linear():
    check_model(_resize_model([1, 2, 3, 4], scales=[1, 1, 2, 2], opset=18, mode="linear", antialias=1))


# --- nearest -----------------------------------------------------------------------------------

@pytest.mark.parametrize("nearest", NEAREST_MODES)
@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize("sizes", [[1, 2, 8, 12], [1, 2, 6, 9], [1, 2, 2, 3], [1, 2, 5, 3], [1, 2, 1, 1]])
def test_resize_nearest(coord, nearest, sizes):
    check_model(_resize_model([1, 2, 4, 6], sizes=sizes, mode="nearest", coordinate_transformation_mode=coord,
                              nearest_mode=nearest))


@pytest.mark.parametrize("coord, nearest", [("asymmetric", "floor"), ("align_corners", "round_prefer_ceil"),
                                            ("half_pixel", "round_prefer_ceil"),
                                            ("tf_half_pixel_for_nn", "floor")])
def test_resize_nearest_uses_builtin(coord, nearest):
    result = check_model(_resize_model([1, 2, 4, 6], scales=[1, 1, 2, 1.5], mode="nearest",
                                       coordinate_transformation_mode=coord, nearest_mode=nearest))
    assert _ops(result) & {"RESIZE_NEAREST_NEIGHBOR"} and "GATHER" not in _ops(result)


@pytest.mark.parametrize("coord, nearest, sizes", [
    ("asymmetric", "ceil", [1, 2, 8, 12]),
    ("tf_half_pixel_for_nn", "ceil", [1, 2, 8, 12]),
    ("asymmetric", "round_prefer_ceil", [1, 2, 8, 12]),
])
def test_resize_nearest_without_litert_mode_uses_gather(coord, nearest, sizes):
    """Index maps no LiteRT mode reproduces become exact constant-index GATHERs."""
    result = check_model(_resize_model([1, 2, 4, 6], sizes=sizes, mode="nearest",
                                       coordinate_transformation_mode=coord, nearest_mode=nearest))
    assert "GATHER" in _ops(result) and "RESIZE_NEAREST_NEIGHBOR" not in _ops(result)


@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 0.5, 0.5], [1, 1, 3, 1], [1, 1, 0.6, 1.5]])
def test_resize_nearest_opset10(scales):
    check_model(_resize_model([1, 2, 5, 4], scales=scales, opset=10, mode="nearest"))


@pytest.mark.parametrize("opset", [11, 13, 18, 19])
def test_resize_nearest_opsets(opset):
    check_model(_resize_model([1, 3, 3, 2], scales=[1, 1, 2, 2], opset=opset, mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"))


def test_resize_nearest_3d():
    check_model(_resize_model([1, 3, 5], scales=[1, 1, 2.0], mode="nearest"))


def test_resize_nearest_rounding_tie_rejected():
    """7 -> 4 columns: source column 3.5 in exact math but 3.4999998 in float32."""
    model = _resize_model([1, 1, 2, 7], sizes=[1, 1, 2, 4], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="round_prefer_ceil")
    expect_failure(model, "unsupported_attribute_value")


# --- rejected ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    dict(scales=[1, 1, 2, 2], mode="nearest", coordinate_transformation_mode="tf_crop_and_resize"),
    dict(scales=[1, 1, 0.6, 1], mode="linear", coordinate_transformation_mode="align_corners"),
    dict(scales=[1, 1, 0.6, 1], mode="cubic", coordinate_transformation_mode="align_corners"),
    dict(sizes=[1, 2, 1, 3], mode="cubic", coordinate_transformation_mode="pytorch_half_pixel"),
    dict(scales=[1, 2, 2, 2], mode="nearest"),
    dict(scales=[2, 1, 2, 2], mode="nearest"),
    dict(sizes=[1, 2, 2, 2, 2], mode="nearest"),
])
def test_resize_rejected(kwargs):
    shape = [1, 2, 2, 2, 2] if "sizes" in kwargs and len(kwargs["sizes"]) == 5 else [1, 2, 3, 3]
    opset = kwargs.pop("opset", 13)
    if kwargs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        model = _resize_model(shape, opset=opset, **kwargs)
        model.graph.node[0].input[1] = "roi"
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([0, 0, 0, 0, 1, 1, 1, 1], F32), "roi"))
    else:
        model = _resize_model(shape, opset=opset, **kwargs)
    expect_failure(model, "unsupported_attribute_value")


def test_resize_dynamic_scales_rejected():
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest")
    model = make_model([node], [("x", F32, [1, 2, 3, 3]), ("s", F32, [4])], [("y", F32, [1, 2, 6, 6])])
    expect_failure(model, "requires_constant_input")


# --- Upsample ----------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [7, 8, 9])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 3, 1.5], [1, 1, 1, 2]])
def test_upsample(opset, mode, scales):
    if opset < 9:
        node = helper.make_node("Upsample", ["x"], ["y"], mode=mode, scales=[float(s) for s in scales])
        inits = {}
    else:
        node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode=mode)
        inits = {"scales": np.array(scales, F32)}
    model = make_model([node], [("x", F32, [1, 2, 2, 4])], [("y", F32, None)], inits, opset)
    check_model(_with_inferred_output(model))


# --- DepthToSpace / SpaceToDepth ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("block", [2, 3])
def test_depth_to_space(mode, block, dtype):
    c = 2 * block * block
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=block, mode=mode)
    model = make_model([node], [("x", dtype, [2, c, 2, 3])], [("y", dtype, [2, 2, 2 * block, 3 * block])])
    result = check_model(model)
    assert "DEPTH_TO_SPACE" in _ops(result)


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_depth_to_space_opsets(opset):
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2)
    check_model(make_model([node], [("x", F32, [1, 8, 2, 2])], [("y", F32, [1, 2, 4, 4])], opset=opset))


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
@pytest.mark.parametrize("block", [2, 3])
@pytest.mark.parametrize("opset", [7, 13])
def test_space_to_depth(block, dtype, opset):
    node = helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=block)
    model = make_model([node], [("x", dtype, [2, 3, 2 * block, 3 * block])],
                       [("y", dtype, [2, 3 * block * block, 2, 3])], opset=opset)
    check_model(model)

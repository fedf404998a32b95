"""GridSample, RoiAlign and NonMaxSuppression: LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tests.helpers import check_model, expect_failure, make_model


# -- GridSample ------------------------------------------------------------------------------------
def _grid_model(x_shape, grid_shape, opset, **attrs):
    out = list(x_shape[:2]) + list(grid_shape[1:-1])
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], **attrs)
    return make_model([node], [("x", np.float32, list(x_shape)), ("grid", np.float32, list(grid_shape))],
                      [("y", np.float32, out)], opset=opset)


def _grid_feeds(x_shape, grid_shape, seed=0):
    rng = np.random.default_rng(seed)
    grid = rng.uniform(-1.4, 1.4, grid_shape).astype(np.float32)
    grid.reshape(-1)[:4] = [-1.0, 1.0, 0.0, 1.0]  # exact edges and centre
    return {"x": rng.standard_normal(x_shape).astype(np.float32), "grid": grid}


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_opset16(mode, padding, align):
    xs, gs = (2, 3, 5, 4), (2, 6, 7, 2)
    check_model(_grid_model(xs, gs, 16, mode=mode, padding_mode=padding, align_corners=align),
                _grid_feeds(xs, gs))


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_grid_sample_opset20(mode, padding):
    xs, gs = (1, 2, 4, 6), (1, 5, 3, 2)
    check_model(_grid_model(xs, gs, 20, mode=mode, padding_mode=padding), _grid_feeds(xs, gs, 1))


def test_grid_sample_wide_reflection():
    """Grid values far outside [-1, 1] reflect several times."""
    xs, gs = (1, 1, 3, 4), (1, 4, 4, 2)
    feeds = _grid_feeds(xs, gs, 2)
    feeds["grid"] = (feeds["grid"] * 3.0).astype(np.float32)
    for align in (0, 1):
        check_model(_grid_model(xs, gs, 16, padding_mode="reflection", align_corners=align), feeds)


def test_grid_sample_cubic_fails():
    expect_failure(_grid_model((1, 1, 3, 3), (1, 2, 2, 2), 16, mode="bicubic"), "unsupported_attribute_value")


def test_grid_sample_volumetric_opset16_fails():
    model = _grid_model((1, 1, 2, 3, 3), (1, 2, 2, 2, 3), 20)
    model.opset_import[0].version = 16
    expect_failure(model, "unsupported_attribute_value")


# -- RoiAlign --------------------------------------------------------------------------------------
_ROIS = np.array([[0.0, 0.0, 7.0, 5.0], [1.5, 2.2, 6.1, 7.9], [-1.0, 3.0, 2.0, 9.5], [4.0, 4.0, 4.5, 4.2]],
                 np.float32)
_BATCH = np.array([0, 1, 1, 0], np.int64)


def _roi_model(opset, runtime_rois, **attrs):
    x_shape = (2, 3, 8, 9)
    inputs = [("x", np.float32, list(x_shape))]
    inits = {}
    if runtime_rois:
        inputs += [("rois", np.float32, [4, 4]), ("idx", np.int64, [4])]
    else:
        inits = {"rois": _ROIS, "idx": _BATCH}
    oh, ow = attrs.get("output_height", 1), attrs.get("output_width", 1)
    node = helper.make_node("RoiAlign", ["x", "rois", "idx"], ["y"], **attrs)
    model = make_model([node], inputs, [("y", np.float32, [4, 3, oh, ow])], inits, opset)
    feeds = {"x": np.random.default_rng(3).standard_normal(x_shape).astype(np.float32)}
    if runtime_rois:
        feeds.update(rois=_ROIS, idx=_BATCH)
    return model, feeds


@pytest.mark.parametrize("ctm", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("runtime_rois", [True, False])
def test_roi_align(ctm, mode, runtime_rois):
    model, feeds = _roi_model(16, runtime_rois, coordinate_transformation_mode=ctm, mode=mode, output_height=3,
                              output_width=2, sampling_ratio=2, spatial_scale=0.9)
    check_model(model, feeds)


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_roi_align_adaptive_constant_rois(mode):
    model, feeds = _roi_model(16, False, mode=mode, output_height=2, output_width=3, sampling_ratio=0)
    check_model(model, feeds)


def test_roi_align_opset10():
    model, feeds = _roi_model(10, True, output_height=2, output_width=2, sampling_ratio=1, spatial_scale=0.5)
    check_model(model, feeds)


def test_roi_align_adaptive_runtime_rois_fails():
    model, _ = _roi_model(16, True, output_height=2, output_width=2, sampling_ratio=0)
    expect_failure(model, "requires_constant_input")


# -- NonMaxSuppression -----------------------------------------------------------------------------
def _nms_feeds(batches, classes, count, seed, center):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 4, (batches, count, 2)).astype(np.float32)
    wh = rng.uniform(0.5, 2.5, (batches, count, 2)).astype(np.float32)
    if center:
        boxes = np.concatenate([xy, wh], axis=2)
    else:
        boxes = np.concatenate([xy, xy + wh], axis=2)
        flip = rng.random((batches, count)) < 0.3
        boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]  # flipped corners are allowed
    scores = rng.permutation(batches * classes * count).reshape(batches, classes, count)
    return {"boxes": boxes.astype(np.float32), "scores": (scores / scores.size).astype(np.float32)}


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("shape", [(1, 1, 8), (2, 3, 6)])
@pytest.mark.parametrize("runtime_scalars", [True, False])
def test_nms(center, shape, runtime_scalars):
    batches, classes, count = shape
    scalars = {"max_out": np.array([3], np.int64), "iou": np.array([0.3], np.float32),
               "score": np.array([0.2], np.float32)}
    inputs = [("boxes", np.float32, [batches, count, 4]), ("scores", np.float32, [batches, classes, count])]
    if runtime_scalars:
        inputs += [(k, v.dtype, [1]) for k, v in scalars.items()]
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score"], ["y"],
                            center_point_box=center)
    model = make_model([node], inputs, [("y", np.int64, None)], None if runtime_scalars else scalars, 11)
    feeds = _nms_feeds(batches, classes, count, 4, center)
    if runtime_scalars:
        feeds.update(scalars)
    check_model(model, feeds)


@pytest.mark.parametrize("n_inputs", [3, 4])
def test_nms_optional_inputs(n_inputs):
    names = ["boxes", "scores", "max_out", "iou"][:n_inputs]
    inits = {"max_out": np.array([10], np.int64), "iou": np.array([0.4], np.float32)}
    node = helper.make_node("NonMaxSuppression", names, ["y"])
    model = make_model([node], [("boxes", np.float32, [1, 7, 4]), ("scores", np.float32, [1, 2, 7])],
                       [("y", np.int64, None)], {k: v for k, v in inits.items() if k in names}, 11)
    check_model(model, _nms_feeds(1, 2, 7, 5, 0))


def test_nms_iou_boundary_is_kept():
    """IoU exactly equal to the threshold does not suppress (ONNX uses >, LiteRT >=)."""
    boxes = np.array([[[0, 0, 1, 1], [0.5, 0.5, 1.5, 1.5]]], np.float32)
    inits = {"max_out": np.array([3], np.int64), "iou": np.array([1 / 7], np.float32)}
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou"], ["y"])
    model = make_model([node], [("boxes", np.float32, [1, 2, 4]), ("scores", np.float32, [1, 1, 2])],
                       [("y", np.int64, None)], inits, 11)
    check_model(model, {"boxes": boxes, "scores": np.array([[[0.9, 0.8]]], np.float32)})


def test_nms_bad_center_fails():
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["y"], center_point_box=2)
    model = make_model([node], [("boxes", np.float32, [1, 3, 4]), ("scores", np.float32, [1, 1, 3])],
                       [("y", np.int64, [None, 3])], opset=11)
    expect_failure(model, "unsupported_attribute_value")


@pytest.mark.parametrize("names, inits", [
    (["boxes", "scores"], {}),                                       # no limit input: selects nothing
    (["boxes", "scores", "m"], {"m": np.array([0], np.int64)}),       # limit 0
    (["boxes", "scores", "m", "i", "s"], {"m": np.array([5], np.int64), "i": np.array([0.5], np.float32),
                                          "s": np.array([2.0], np.float32)}),  # every score below threshold
])
def test_nms_empty_output(names, inits):
    node = helper.make_node("NonMaxSuppression", names, ["y"])
    model = make_model([node], [("boxes", np.float32, [1, 7, 4]), ("scores", np.float32, [1, 2, 7])],
                       [("y", np.int64, None)], inits, 11)
    check_model(model, _nms_feeds(1, 2, 7, 5, 0))


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_volumetric(mode, align):
    xs, gs = (1, 2, 3, 4, 5), (1, 2, 3, 4, 3)
    check_model(_grid_model(xs, gs, 20, mode=mode, align_corners=align), _grid_feeds(xs, gs, 6))

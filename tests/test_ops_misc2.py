"""DeformConv, SpaceToDepth (opset 28), Optional* on tensors, Dropout with ratio 0, old opsets."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.helpers import check_model, check_reference, expect_failure, make_model, single_op_model

F32 = np.float32


# -- DeformConv ------------------------------------------------------------------------------------
def _out_size(size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - (k - 1) * dil - 1) // stride + 1


@pytest.mark.parametrize("group,ogroup,stride,pad,dil,mask,bias,const_w", [
    (1, 1, 1, 0, 1, False, False, False),
    (1, 1, 1, 1, 1, True, True, False),
    (2, 1, 2, 1, 1, False, True, True),
    (1, 2, 1, 0, 2, True, False, True),
    (2, 2, 2, 2, 1, True, True, False),
])
def test_deform_conv(group: int, ogroup: int, stride: int, pad: int, dil: int, mask: bool, bias: bool,
                     const_w: bool) -> None:
    rng = np.random.default_rng(group * 7 + ogroup)
    n, c, h, w, oc, k = 2, 4, 5, 6, 6, 3
    oh, ow = _out_size(h, k, stride, pad, dil), _out_size(w, k, stride, pad, dil)
    feeds = {"x": rng.standard_normal((n, c, h, w)).astype(F32),
             # offsets up to +-3 pixels: many samples fall partly or fully outside the image
             "offset": (rng.standard_normal((n, ogroup * k * k * 2, oh, ow)) * 1.5).astype(F32)}
    weights = rng.standard_normal((oc, c // group, k, k)).astype(F32)
    inits = {"w": weights} if const_w else {}
    if not const_w:
        feeds["w"] = weights
    names = ["x", "w", "offset", "b" if bias else "", "mask" if mask else ""]
    if bias:
        feeds["b"] = rng.standard_normal(oc).astype(F32)
    if mask:
        feeds["mask"] = rng.uniform(0, 1, (n, ogroup * k * k, oh, ow)).astype(F32)
    while not names[-1]:
        names.pop()
    node = helper.make_node("DeformConv", names, ["y"], kernel_shape=[k, k], group=group, offset_group=ogroup,
                            strides=[stride, stride], pads=[pad] * 4, dilations=[dil, dil])
    inputs = [(name, F32, list(value.shape)) for name, value in feeds.items()]
    model = make_model([node], inputs, [("y", F32, [n, oc, oh, ow])], inits, opset=22)
    check_model(model, feeds)


def test_deform_conv_3d_unsupported() -> None:
    node = helper.make_node("DeformConv", ["x", "w", "offset"], ["y"], kernel_shape=[1, 1, 1])
    model = make_model([node], [("x", F32, [1, 1, 2, 2, 2]), ("w", F32, [1, 1, 1, 1, 1]),
                                ("offset", F32, [1, 3, 2, 2, 2])], [("y", F32, [1, 1, 2, 2, 2])], opset=22)
    expect_failure(model, "unsupported_attribute_value")


# -- SpaceToDepth at opset 28 ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", [None, "DCR", "CRD"])
@pytest.mark.parametrize("blocksize", [2, 3])
def test_space_to_depth_28(mode: str | None, blocksize: int) -> None:
    attrs = {"blocksize": blocksize} | ({} if mode is None else {"mode": mode})
    shape = [2, 3, 2 * blocksize, 3 * blocksize]
    model = single_op_model("SpaceToDepth", [("x", F32, shape)], None, opset=28, **attrs)
    check_reference(model, {"x": np.random.default_rng(0).standard_normal(shape).astype(F32)})


def test_space_to_depth_28_bad_mode() -> None:
    model = single_op_model("SpaceToDepth", [("x", F32, [1, 1, 2, 2])], [1, 4, 1, 1], opset=28, blocksize=2,
                            mode="XYZ")
    expect_failure(model, "unsupported_attribute_value")


# -- OptionalHasElement / OptionalGetElement on tensors --------------------------------------------
@pytest.mark.parametrize("opset", [18, 28])
def test_optional_has_element(opset: int) -> None:
    nodes = [helper.make_node("OptionalHasElement", ["x"], ["has"]),
             helper.make_node("OptionalHasElement", [""], ["empty"]),
             helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", F32, [2, 3])], [("has", np.bool_, []), ("empty", np.bool_, []),
                                                      ("y", F32, [2, 3])], opset=opset)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3)).astype(F32)}
    (check_model if opset <= 21 else check_reference)(model, feeds)


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_optional_get_element(dtype: type) -> None:
    model = single_op_model("OptionalGetElement", [("x", dtype, [2, 3])], [2, 3], opset=18)
    check_model(model)


# -- Dropout ---------------------------------------------------------------------------------------
def test_dropout_ratio_zero_runtime_training_mode() -> None:
    """A constant ratio of 0 drops nothing, whatever the run-time training_mode."""
    node = helper.make_node("Dropout", ["x", "r", "t"], ["y", "mask"])
    model = make_model([node], [("x", F32, [3, 4]), ("t", np.bool_, [])],
                       [("y", F32, [3, 4]), ("mask", np.bool_, [3, 4])], {"r": np.array(0.0, F32)}, opset=13)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(F32)
    for training in (True, False):
        check_model(model, {"x": x, "t": np.array(training)})


def test_dropout_runtime_training_mode_and_ratio() -> None:
    node = helper.make_node("Dropout", ["x", "r", "t"], ["y"])
    model = make_model([node], [("x", F32, [3, 4]), ("r", F32, []), ("t", np.bool_, [])], [("y", F32, [3, 4])],
                       opset=13)
    expect_failure(model, "requires_constant_input")


# -- old opsets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [[4], [2, 3], [2, 3, 4]])
def test_not_opset_1(shape: list[int]) -> None:
    check_model(single_op_model("Not", [("x", np.bool_, shape)], shape, opset=1))


@pytest.mark.parametrize("op,opset,out,attrs", [
    ("Relu", 1, [2, 3], {}),
    ("Sigmoid", 6, [2, 3], {}),
    ("Transpose", 1, [3, 2], {"perm": [1, 0]}),
])
def test_old_opset_same_definition_converts(op: str, opset: int, out: list[int], attrs: dict) -> None:
    model = single_op_model(op, [("x", F32, [2, 3])], out, opset=opset, **attrs)
    if op == "Relu":  # ONNX Runtime has no Relu-1 kernel
        check_reference(model, {"x": np.random.default_rng(0).standard_normal((2, 3)).astype(F32)})
    else:
        check_model(model)


@pytest.mark.parametrize("op,opset,inputs,attrs", [
    ("Add", 6, [("a", F32, [2, 3]), ("b", F32, [3])], {"broadcast": 1}),  # broadcast/axis attributes
    ("Concat", 3, [("a", F32, [2, 3]), ("b", F32, [2, 3])], {}),          # axis optional (default 1)
    ("BatchNormalization", 6, [("x", F32, [1, 2, 2, 2]), ("s", F32, [2]), ("b", F32, [2]), ("m", F32, [2]),
                               ("v", F32, [2])], {"is_test": 1}),       # is_test / spatial attributes
    ("Upsample", 6, [("x", F32, [1, 1, 2, 2])], {"height_scale": 2.0, "width_scale": 2.0}),
])
def test_old_opset_changed_definition_refused(op: str, opset: int, inputs: list, attrs: dict) -> None:
    node = helper.make_node(op, [n for n, _, _ in inputs], ["y"], **attrs)
    model = helper.make_model(helper.make_graph(
        [node], "old", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, _, s in inputs],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", opset)], ir_version=3)
    expect_failure(model, "unsupported_opset")


def test_only_ml_domain_with_default_nodes_refused() -> None:
    model = single_op_model("Relu", [("x", F32, [2])], [2])
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    expect_failure(model, "unsupported_opset")

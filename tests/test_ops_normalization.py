"""BatchNormalization, InstanceNormalization, Softmax and LogSoftmax lowerings vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import onnx2litert
from onnx2litert.evaluate import run_onnx
from tests.helpers import check_model, expect_failure, make_model, random_inputs, single_op_model

F32 = np.float32


def lowered_ops(model) -> dict[str, int]:
    """Op counts straight out of the lowering (no optimization passes), for structure checks."""
    return onnx2litert.convert(model, optimize=False).op_counts


def _bn_params(shape, seed=3):
    rng = np.random.default_rng(seed)
    return {"scale": rng.standard_normal(shape).astype(F32), "bias": rng.standard_normal(shape).astype(F32),
            "mean": rng.standard_normal(shape).astype(F32),
            "var": rng.uniform(0.2, 2.0, shape).astype(F32)}


# ---------------------------------------------------------------------------------------
# BatchNormalization
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [7, 9, 14, 15, 21])
@pytest.mark.parametrize("shape", [[2, 3], [2, 3, 4], [1, 3, 4, 5], [1, 2, 3, 2, 2]], ids=lambda s: f"rank{len(s)}")
def test_batchnorm_constant(shape, opset):
    model = single_op_model("BatchNormalization", [("x", F32, shape)], shape, initializers=_bn_params([shape[1]]),
                            opset=opset, epsilon=1e-3)
    check_model(model)
    # Constant statistics become one MUL and one ADD (a later pass folds them into a conv).
    ops = lowered_ops(model)
    assert ops.get("MUL") == 1 and ops.get("ADD") == 1


@pytest.mark.parametrize("spatial", [0, 1])
@pytest.mark.parametrize("opset", [7, 8])
def test_batchnorm_spatial_attr(opset, spatial):
    shape = [2, 3, 2, 2]
    pshape = shape[1:] if spatial == 0 else shape[1:2]  # spatial=0: statistics per (C, D1, ...)
    model = single_op_model("BatchNormalization", [("x", F32, shape)], shape, initializers=_bn_params(pshape),
                            opset=opset, spatial=spatial)
    check_model(model)


@pytest.mark.parametrize("opset", [7, 8])
def test_batchnorm_spatial0_wrong_param_shape_fails(opset):
    shape = [2, 3, 2, 2]
    model = single_op_model("BatchNormalization", [("x", F32, shape)], shape, initializers=_bn_params([3]),
                            opset=opset, spatial=0)
    expect_failure(model, "unsupported_attribute_value")


@pytest.mark.parametrize("opset", [7, 9, 15])
def test_batchnorm_runtime_params(opset):
    shape = [2, 3, 2, 2]
    params = _bn_params([3])
    model = single_op_model("BatchNormalization", [("x", F32, shape)] + [(k, F32, [3]) for k in params], shape,
                            opset=opset, epsilon=1e-4)
    feeds = random_inputs(model)
    feeds.update(params)  # variance must be positive
    check_model(model, feeds)


@pytest.mark.parametrize("shape", [[4, 3], [2, 3, 5], [2, 3, 4, 5], [2, 3, 2, 3, 2]], ids=lambda s: f"rank{len(s)}")
@pytest.mark.parametrize("opset", [14, 15])
def test_batchnorm_training_mode(opset, shape):
    # Batch statistics normalize Y; outputs 1/2 are the updated running mean / variance (ONNX
    # requires all three outputs in training mode).
    outs = ["y", "running_mean", "running_var"]
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], outs, training_mode=1,
                            epsilon=1e-2, momentum=0.8)
    model = make_model([node], [("x", F32, shape)] + [(k, F32, [3]) for k in ("scale", "bias", "mean", "var")],
                       [("y", F32, shape)] + [(o, F32, [3]) for o in outs[1:]], opset=opset)
    feeds = random_inputs(model)
    feeds.update(_bn_params([3]))
    check_model(model, feeds)


@pytest.mark.parametrize("opset,n_out", [(9, 5), (13, 3)])
def test_batchnorm_extra_outputs_fail(opset, n_out):
    # Before opset 14 the extra outputs are training outputs with other semantics (saved statistics).
    shape = [2, 3, 2, 2]
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"],
                            ["y"] + [f"o{i}" for i in range(1, n_out)])
    outs = [("y", F32, shape)] + [(f"o{i}", F32, [3]) for i in range(1, n_out)]
    model = make_model([node], [("x", F32, shape)], outs, _bn_params([3]), opset)
    expect_failure(model, "unsupported_attribute_value")


# ---------------------------------------------------------------------------------------
# InstanceNormalization
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [[2, 3, 5], [1, 3, 4, 5], [2, 2, 3, 2, 2]], ids=lambda s: f"rank{len(s)}")
@pytest.mark.parametrize("opset", [7, 17, 21])
@pytest.mark.parametrize("epsilon", [None, 1e-2])
def test_instance_norm(shape, opset, epsilon):
    c = shape[1]
    rng = np.random.default_rng(5)
    inits = {"scale": rng.standard_normal(c).astype(F32), "bias": rng.standard_normal(c).astype(F32)}
    attrs = {} if epsilon is None else {"epsilon": epsilon}
    model = single_op_model("InstanceNormalization", [("x", F32, shape)], shape, initializers=inits, opset=opset,
                            **attrs)
    check_model(model)


def test_instance_norm_runtime_scale():
    shape = [2, 3, 4, 4]
    model = single_op_model("InstanceNormalization", [("x", F32, shape), ("s", F32, [3]), ("b", F32, [3])], shape)
    check_model(model)


def test_instance_norm_rank2_fails():
    model = single_op_model("InstanceNormalization", [("x", F32, [2, 3])], [2, 3],
                            initializers={"s": np.ones(3, F32), "b": np.zeros(3, F32)})
    expect_failure(model, "unsupported_attribute_value")


# ---------------------------------------------------------------------------------------
# Softmax / LogSoftmax
# ---------------------------------------------------------------------------------------
SOFTMAX_CASES = [
    # (shape, axis or None for the default)
    ([2, 3, 2, 2], None),
    ([2, 3, 2, 2], 1),
    ([2, 3, 2, 2], 0),
    ([2, 3, 2, 2], 2),
    ([2, 3, 2, 2], -1),
    ([2, 3, 2, 2], -3),
    ([3, 5], 1),
    ([3, 5], 0),
    ([5], 0),
    ([2, 2, 3, 2, 3], 3),
]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [7, 11, 13, 21])
@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=[f"{s}-axis{a}" for s, a in SOFTMAX_CASES])
def test_softmax(op, opset, shape, axis):
    attrs = {} if axis is None else {"axis": axis}
    model = single_op_model(op, [("x", F32, shape)], shape, opset=opset, **attrs)
    check_model(model)


def test_softmax_opset_semantics_differ():
    """Opset 11 normalizes over the flattened axes [1:], opset 13 over axis 1 alone."""
    shape = [2, 3, 2, 2]
    x = np.random.default_rng(0).standard_normal(shape).astype(F32)
    m11 = single_op_model("Softmax", [("x", F32, shape)], shape, opset=11, axis=1)
    m13 = single_op_model("Softmax", [("x", F32, shape)], shape, opset=13, axis=1)
    check_model(m11, {"x": x})
    check_model(m13, {"x": x})
    assert not np.allclose(run_onnx(m11.SerializeToString(), {"x": x})["y"],
                           run_onnx(m13.SerializeToString(), {"x": x})["y"])
    ops11, ops13 = lowered_ops(m11), lowered_ops(m13)
    assert ops11.get("RESHAPE") == 2 and "TRANSPOSE" not in ops11
    assert ops13.get("TRANSPOSE") == 2 and "RESHAPE" not in ops13


def test_softmax_last_axis_is_single_op():
    shape = [2, 3, 4]
    model = single_op_model("Softmax", [("x", F32, shape)], shape, opset=13)
    check_model(model)
    assert lowered_ops(model) == {"SOFTMAX": 1}


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_large_values(op):
    """Inputs far from zero: the kernels must be numerically stable like ONNX Runtime."""
    shape = [2, 6]
    x = (np.random.default_rng(2).standard_normal(shape) * 50).astype(F32)
    check_model(single_op_model(op, [("x", F32, shape)], shape, opset=13), {"x": x})


def test_softmax_float64_unsupported():
    model = single_op_model("Softmax", [("x", np.float64, [2, 3])], [2, 3], opset=13)
    expect_failure(model, "unsupported_dtype")

"""LayerNormalization, GroupNormalization, MeanVarianceNormalization, LpNormalization and
RMSNormalization lowerings vs ONNX Runtime (check_model runs XNNPACK and the builtin kernels)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import onnx2litert
from onnx2litert.lower.ops.normalization import trailing_axes
from tests.helpers import check_model, expect_failure, make_model, single_op_model

F32 = np.float32


def _rand(shape, seed=3, loc=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) + loc).astype(F32)


def lowered_ops(model) -> dict[str, int]:
    """Op counts straight out of the lowering (no optimization passes)."""
    return onnx2litert.convert(model, optimize=False).op_counts


# ---------------------------------------------------------------------------------------
# LayerNormalization
# ---------------------------------------------------------------------------------------
def _ln_model(shape, axis=None, with_bias=True, params_as_inputs=False, outputs=("y",), opset=17, **attrs):
    rank = len(shape)
    a = -1 if axis is None else axis
    norm = shape[(a + rank) % rank:]
    if axis is not None:
        attrs["axis"] = axis
    names = ["x", "scale"] + (["bias"] if with_bias else [])
    inputs = [("x", F32, shape)]
    inits = {}
    for n, seed in (("scale", 5), ("bias", 6))[: len(names) - 1]:
        if params_as_inputs:
            inputs.append((n, F32, norm))
        else:
            inits[n] = _rand(norm, seed)
    stat = list(shape[: (a + rank) % rank]) + [1] * len(norm)
    node = helper.make_node("LayerNormalization", names, list(outputs), **attrs)
    outs = [(o, F32, list(shape) if i == 0 else stat) for i, o in enumerate(outputs) if o]
    return make_model([node], inputs, outs, inits, opset)


@pytest.mark.parametrize("shape,axis", [([2, 5], None), ([2, 3, 8], None), ([2, 3, 4], 1), ([2, 3, 4], -2),
                                        ([1, 2, 3, 4], 0), ([6], 0)],
                         ids=["2d", "3d", "axis1", "axis-2", "axis0", "1d"])
def test_layernorm_axes(shape, axis):
    check_model(_ln_model(shape, axis, epsilon=1e-3))


@pytest.mark.parametrize("params_as_inputs", [False, True], ids=["const", "graph-input"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_layernorm_params(with_bias, params_as_inputs):
    model = _ln_model([2, 3, 4], None, with_bias, params_as_inputs)
    check_model(model)
    if not with_bias:
        assert "ADD" in lowered_ops(model)  # only the epsilon add: no bias add
        assert lowered_ops(model)["ADD"] == 1


@pytest.mark.parametrize("outputs", [("y", "mean", "inv"), ("y", "mean"), ("y", "", "inv")],
                         ids=["both", "mean", "inv"])
def test_layernorm_stat_outputs(outputs):
    check_model(_ln_model([2, 3, 4], -1, outputs=outputs))
    check_model(_ln_model([2, 3, 4], 1, outputs=outputs))


def test_layernorm_large_mean_is_stable():
    """Centering before squaring keeps precision when |mean| >> std (E[x^2] - E[x]^2 would not)."""
    model = _ln_model([2, 16], None)
    check_model(model, {"x": _rand([2, 16]) * F32(0.5) + F32(20.0)})


@pytest.mark.parametrize("opset", [18, 21, 23])
def test_layernorm_opsets(opset):
    model = _ln_model([2, 3, 4], -1, opset=opset)
    model.ir_version = max(model.ir_version, 11 if opset >= 23 else 10)
    check_model(model)


def test_layernorm_broadcast_scale():
    """A scale of shape (1, D) broadcasts unidirectionally to X."""
    shape = [2, 3, 4]
    model = single_op_model("LayerNormalization", [("x", F32, shape)], shape,
                            initializers={"scale": _rand([1, 4], 5), "bias": _rand([4], 6)})
    check_model(model)


def test_layernorm_stash_type_fails():
    model = _ln_model([2, 4], None, stash_type=11)
    expect_failure(model, "unsupported_attribute_value")


def test_layernorm_non_broadcastable_scale_fails():
    model = single_op_model("LayerNormalization", [("x", F32, [2, 4]), ("scale", F32, [3])], [2, 4])
    expect_failure(model, "unsupported_attribute_value")


# ---------------------------------------------------------------------------------------
# GroupNormalization
# ---------------------------------------------------------------------------------------
def _gn_model(shape, groups, opset, params_as_inputs=False, **attrs):
    pcount = groups if opset < 21 else shape[1]
    inputs = [("x", F32, shape)]
    inits = {}
    for n, seed in (("scale", 5), ("bias", 6)):
        if params_as_inputs:
            inputs.append((n, F32, [pcount]))
        else:
            inits[n] = _rand([pcount], seed)
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=groups, **attrs)
    return make_model([node], inputs, [("y", F32, shape)], inits, opset)


@pytest.fixture
def allow_deprecated(monkeypatch):
    """GroupNormalization-18 is deprecated, so onnx.checker rejects it, yet ONNX Runtime runs it and
    models use it: skip only the checker step of check_model for those tests."""
    monkeypatch.setattr(onnx.checker, "check_model", lambda *args, **kwargs: None)


@pytest.mark.usefixtures("allow_deprecated")
@pytest.mark.parametrize("params_as_inputs", [False, True], ids=["const", "graph-input"])
@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("shape,groups", [([2, 4, 3, 3], 2), ([1, 6, 5], 3), ([2, 4, 2, 2, 2], 4),
                                          ([2, 4, 3], 1), ([3, 4], 2)],
                         ids=["4d-g2", "3d-g3", "5d-instance", "3d-layer", "2d"])
def test_groupnorm(shape, groups, opset, params_as_inputs):
    check_model(_gn_model(shape, groups, opset, params_as_inputs, epsilon=1e-3))


@pytest.mark.usefixtures("allow_deprecated")
def test_groupnorm_opset18_vs_21_differ():
    """Opset 18 scales per group, opset 21 per channel: the same scale length means different things."""
    shape, groups = [1, 4, 3], 4  # G == C: both forms take a (4,) scale, with equal meaning
    check_model(_gn_model(shape, groups, 18))
    check_model(_gn_model(shape, groups, 21))
    # G=2 with a (4,) scale is only valid at opset 21; at opset 18 it is rejected.
    model = _gn_model([1, 4, 3], 2, 21)
    model.opset_import[0].version = 18
    expect_failure(model, "unsupported_attribute_value")


@pytest.mark.parametrize("groups", [3, 0])
def test_groupnorm_bad_groups_fails(groups):
    model = _gn_model([1, 4, 3], 2, 21)
    model.graph.node[0].attribute[0].i = groups
    expect_failure(model, "unsupported_attribute_value")


def test_groupnorm_stash_type_fails():
    expect_failure(_gn_model([1, 4, 3], 2, 21, stash_type=11), "unsupported_attribute_value")


# ---------------------------------------------------------------------------------------
# MeanVarianceNormalization
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [9, 13])
@pytest.mark.parametrize("shape,axes", [([2, 3, 4, 5], None), ([2, 3, 4, 5], [2, 3]), ([2, 3, 4], [1]),
                                        ([2, 3, 4], [0, -1]), ([3, 4], [0, 1])],
                         ids=["default", "spatial", "one", "negative", "all"])
def test_mvn(shape, axes, opset):
    attrs = {} if axes is None else {"axes": axes}
    check_model(single_op_model("MeanVarianceNormalization", [("x", F32, shape)], shape, opset=opset, **attrs))


def test_mvn_bad_axes_fails():
    model = single_op_model("MeanVarianceNormalization", [("x", F32, [2, 3])], [2, 3], axes=[0, 0])
    expect_failure(model, "unsupported_attribute_value")


# ---------------------------------------------------------------------------------------
# LpNormalization
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [7, 13, 22])
@pytest.mark.parametrize("p", [None, 1, 2])
@pytest.mark.parametrize("shape,axis", [([2, 3, 4], None), ([2, 3, 4], 1), ([2, 3, 4], 0), ([5], -1)],
                         ids=["default", "axis1", "axis0", "1d"])
def test_lpnorm(shape, axis, p, opset):
    attrs = {k: v for k, v in (("p", p), ("axis", axis)) if v is not None}
    check_model(single_op_model("LpNormalization", [("x", F32, shape)], shape, opset=opset, **attrs))


@pytest.mark.parametrize("p", [1, 2])
def test_lpnorm_zero_row_gives_zero(p):
    """ONNX defines the output of an all-zero vector as zero (not NaN)."""
    x = _rand([3, 4])
    x[1] = 0.0
    check_model(single_op_model("LpNormalization", [("x", F32, [3, 4])], [3, 4], p=p), {"x": x})


def test_lpnorm_p3_fails():
    model = single_op_model("LpNormalization", [("x", F32, [2, 3])], [2, 3], p=3)
    expect_failure(model, "unsupported_attribute_value")


# ---------------------------------------------------------------------------------------
# RMSNormalization (opset 23)
# ---------------------------------------------------------------------------------------
def _rms_model(shape, axis=None, scale_shape=None, scale_as_input=False, **attrs):
    rank = len(shape)
    a = -1 if axis is None else axis
    sshape = scale_shape or shape[(a + rank) % rank:]
    if axis is not None:
        attrs["axis"] = axis
    inputs = [("x", F32, shape)] + ([("scale", F32, sshape)] if scale_as_input else [])
    inits = {} if scale_as_input else {"scale": _rand(sshape, 5)}
    node = helper.make_node("RMSNormalization", ["x", "scale"], ["y"], **attrs)
    model = make_model([node], inputs, [("y", F32, shape)], inits, 23)
    model.ir_version = 11  # opset 23 needs IR version 11
    return model


@pytest.mark.parametrize("scale_as_input", [False, True], ids=["const", "graph-input"])
@pytest.mark.parametrize("shape,axis", [([2, 3, 8], None), ([2, 3, 4], 1), ([2, 3, 4], -2), ([4, 6], 0)],
                         ids=["last", "axis1", "axis-2", "axis0"])
def test_rmsnorm(shape, axis, scale_as_input):
    check_model(_rms_model(shape, axis, scale_as_input=scale_as_input, epsilon=1e-3))


def test_rmsnorm_broadcast_scale():
    check_model(_rms_model([2, 3, 4], -1, scale_shape=[1, 1, 4]))


def test_rmsnorm_stash_type_fails():
    expect_failure(_rms_model([2, 4], stash_type=11), "unsupported_attribute_value")


def test_trailing_axes():
    assert trailing_axes(3, -1) == (2,)
    assert trailing_axes(3, 0) == (0, 1, 2)
    assert trailing_axes(3, 3) is None
    assert trailing_axes(3, -4) is None

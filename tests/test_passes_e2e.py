"""End-to-end: small ONNX CNNs convert to transpose-free, fused LiteRT graphs matching ONNX Runtime."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from onnx import helper

from onnx2litert.frontend import prepare
from onnx2litert.lower import REGISTRY, lower_graph
from onnx2litert.options import ConversionOptions
from tests.helpers import check_model, make_model

rng = np.random.default_rng(2)
C = 4


def _w(*shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def _need(*ops: str) -> None:
    missing = [op for op in ops if REGISTRY.find("", op, 17) is None]
    if missing:
        pytest.skip(f"lowering not available yet: {', '.join(missing)}")


def _bn(name: str, x: str, out: str, inits: dict) -> helper.NodeProto:
    inits.update({f"{name}_g": _w(C) + 1, f"{name}_b": _w(C), f"{name}_m": _w(C), f"{name}_v": np.abs(_w(C)) + 0.5})
    return helper.make_node("BatchNormalization", [x, f"{name}_g", f"{name}_b", f"{name}_m", f"{name}_v"], [out])


def conv_bn_relu():
    inits = {"w": _w(C, 3, 3, 3), "b": _w(C)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), _bn("bn", "c", "n", inits),
             helper.make_node("Relu", ["n"], ["y"])]
    return nodes, inits, [("y", [1, C, 6, 6])], ("Conv", "BatchNormalization", "Relu")


def residual_clip():
    inits = {"w1": _w(C, 3, 3, 3), "w2": _w(C, C, 3, 3), "w3": _w(C, 3, 1, 1), "lo": np.float32(0),
             "hi": np.float32(6)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), _bn("bn1", "c1", "n1", inits),
             helper.make_node("Clip", ["n1", "lo", "hi"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]), _bn("bn2", "c2", "n2", inits),
             helper.make_node("Conv", ["x", "w3"], ["sc"]),
             helper.make_node("Add", ["n2", "sc"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    return nodes, inits, [("y", [1, C, 6, 6])], ("Conv", "BatchNormalization", "Clip", "Add", "Relu")


def depthwise_gap_gemm():
    inits = {"w1": _w(C, 3, 1, 1), "w2": _w(C, 1, 3, 3), "wf": _w(5, C), "bf": _w(5)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"]), _bn("bn1", "c1", "n1", inits),
             helper.make_node("Relu", ["n1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=C, strides=[2, 2]),
             _bn("bn2", "c2", "n2", inits), helper.make_node("Relu", ["n2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1)]
    return nodes, inits, [("y", [1, 5])], ("Conv", "BatchNormalization", "Relu", "GlobalAveragePool", "Flatten",
                                           "Gemm")


def concat_maxpool_flatten():
    inits = {"w1": _w(C, 3, 3, 3), "w2": _w(C, 3, 1, 1), "wf": _w(3, 2 * C * 9), "bf": _w(3)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=1), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1)]
    return nodes, inits, [("y", [1, 3])], ("Conv", "Concat", "Relu", "MaxPool", "Flatten", "Gemm")


def resize_head():
    inits = {"w": _w(C, 3, 3, 3), "scales": np.array([1, 1, 2, 2], np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Resize", ["r", "", "scales"], ["u"], mode="nearest"),
             helper.make_node("Sigmoid", ["u"], ["y"])]
    return nodes, inits, [("y", [1, C, 12, 12])], ("Conv", "Relu", "Resize", "Sigmoid")


MODELS = {"conv_bn_relu": conv_bn_relu, "residual_clip": residual_clip, "depthwise_gap_gemm": depthwise_gap_gemm,
          "concat_maxpool_flatten": concat_maxpool_flatten, "resize_head": resize_head}


def _build(name: str):
    nodes, inits, outputs, needs = MODELS[name]()
    _need(*needs)
    return make_model(nodes, [("x", np.float32, [1, 3, 6, 6])], [(n, np.float32, s) for n, s in outputs], inits)


def _lowered_counts(model, **options) -> Counter:
    opts = ConversionOptions.from_kwargs(**options)
    lowered = lower_graph(prepare(model, opts), opts)
    return Counter(op.opcode for op in lowered.model.main.operators)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cnn_without_transposes(name):
    model = _build(name)
    before = _lowered_counts(model)
    result = check_model(model)
    counts = result.op_counts
    outputs_4d = sum(len(o.type.tensor_type.shape.dim) == 4 for o in model.graph.output)
    assert counts.get("TRANSPOSE", 0) <= outputs_4d, (before, counts)
    assert sum(counts.values()) < sum(before.values())
    # BatchNormalization folded and activations fused: no MUL/ADD from BN, no standalone RELU.
    assert counts.get("MUL", 0) == 0 and counts.get("RELU", 0) == 0 and counts.get("RELU6", 0) == 0, counts
    if name != "residual_clip":
        assert counts.get("ADD", 0) == 0, counts


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cnn_keeping_input_layout(name):
    model = _build(name)
    result = check_model(model, keep_all_inputs_layout=True)
    outputs_4d = sum(len(o.type.tensor_type.shape.dim) == 4 for o in model.graph.output)
    assert result.op_counts.get("TRANSPOSE", 0) <= 1 + outputs_4d, result.op_counts


def test_residual_add_has_fused_relu():
    model = _build("residual_clip")
    counts = check_model(model).op_counts
    assert counts.get("ADD", 0) == 1 and counts.get("RELU", 0) == 0


@pytest.mark.parametrize("scale_sign", ["positive", "mixed"])
def test_preactivation_batchnorm_becomes_one_maximum(scale_sign):
    """MaxPool -> BN -> Mul -> Add -> Relu -> Conv1x1 (DenseNet-style pre-activation with an extra
    scale/shift): the constant chain combines into one affine op, a positive scale moves into the
    conv, and the RELU'd shift into its bias, leaving MAXIMUM (one pass in XNNPACK)."""
    inits = {"w0": _w(C, 3, 3, 3), "s": (np.abs(_w(1, C, 1, 1)) + 0.3), "t": _w(1, C, 1, 1), "w1": _w(5, C, 1, 1),
             "b1": _w(5), "g": np.abs(_w(C)) + 0.5, "be": _w(C), "mu": _w(C), "var": np.abs(_w(C)) + 0.5}
    if scale_sign == "mixed":
        inits["s"][0, 1] *= -1
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c0"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["p", "g", "be", "mu", "var"], ["n"]),
             helper.make_node("Mul", ["n", "s"], ["m"]),
             helper.make_node("Add", ["m", "t"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w1", "b1"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [1, 3, 6, 6])], [("y", np.float32, [1, 5, 3, 3])], inits)
    counts = check_model(model).op_counts
    if scale_sign == "positive":
        assert counts == {"CONV_2D": 2, "MAX_POOL_2D": 1, "MAXIMUM": 1, "TRANSPOSE": 1}, counts
    else:  # a negative scale cannot cross the RELU: one MUL stays, the shift still goes into the conv bias
        assert counts.get("MUL") == 1 and counts.get("MAXIMUM") == 1 and "ADD" not in counts, counts


def test_preactivation_before_padded_conv_keeps_the_shift():
    """A 3x3 SAME conv mixes zero padding into its windows, so the shift cannot move into its bias."""
    inits = {"w1": _w(5, 3, 3, 3), "b1": _w(5)}
    nodes = [_bn("bn", "x", "n", inits), helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Conv", ["r", "w1", "b1"], ["y"], pads=[1, 1, 1, 1])]
    inits.update({k: v[:3] for k, v in inits.items() if k.startswith("bn_")})
    model = make_model(nodes, [("x", np.float32, [1, 3, 6, 6])], [("y", np.float32, [1, 5, 6, 6])], inits)
    counts = check_model(model).op_counts
    assert counts.get("ADD") == 1 and "MAXIMUM" not in counts, counts

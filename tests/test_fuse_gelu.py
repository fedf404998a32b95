"""GELU formulas exported as arithmetic become one GELU op (frontend/fuse.py), and ONNX Runtime's
com.microsoft Gelu / FastGelu lower to it: LiteRT vs ONNX Runtime, plus the op counts."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx2litert.frontend.fuse import MS_DOMAIN, fuse_gelu
from tests.helpers import check_model, make_model

F32 = np.float32
SHAPE = [2, 7, 16]
SQRT2 = math.sqrt(2.0)
C = math.sqrt(2.0 / math.pi)


def _x(seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": (np.random.default_rng(seed).standard_normal(SHAPE) * 3).astype(F32)}


def _scalars(**values: float) -> dict[str, np.ndarray]:
    return {k: np.array(v, F32) for k, v in values.items()}


def _half_x_times(s: str, form: str) -> list[onnx.NodeProto]:
    """Nodes computing y = 0.5 * x * s in the given association."""
    mk = helper.make_node
    if form == "x_s_half":
        return [mk("Mul", ["x", s], ["xs"]), mk("Mul", ["xs", "half"], ["y"])]
    if form == "x_s_div2":
        return [mk("Mul", [s, "x"], ["xs"]), mk("Div", ["xs", "two"], ["y"])]
    if form == "s_half_x":
        return [mk("Mul", ["half", s], ["sh"]), mk("Mul", ["x", "sh"], ["y"])]
    assert form == "xhalf_s"
    return [mk("Mul", ["x", "half"], ["xh"]), mk("Mul", ["xh", s], ["y"])]


def erf_gelu(form: str = "x_s_half", scale_op: str = "Div", half: float = 0.5) -> onnx.ModelProto:
    mk = helper.make_node
    pre = mk("Div", ["x", "sqrt2"], ["u"]) if scale_op == "Div" else mk("Mul", ["inv_sqrt2", "x"], ["u"])
    nodes = [pre, mk("Erf", ["u"], ["e"]), mk("Add", ["e", "one"], ["s"]), *_half_x_times("s", form)]
    inits = _scalars(sqrt2=SQRT2, inv_sqrt2=1 / SQRT2, one=1.0, half=half, two=2.0)
    return make_model(nodes, [("x", F32, SHAPE)], [("y", F32, SHAPE)], inits)


def tanh_gelu(cube: str = "pow", form: str = "x_s_half") -> onnx.ModelProto:
    mk = helper.make_node
    if cube == "pow":
        cube_nodes = [mk("Pow", ["x", "three"], ["x3"])]
    else:
        cube_nodes = [mk("Mul", ["x", "x"], ["x2"]), mk("Mul", ["x2", "x"], ["x3"])]
    nodes = [*cube_nodes, mk("Mul", ["x3", "k"], ["kx3"]), mk("Add", ["x", "kx3"], ["inner"]),
             mk("Mul", ["c", "inner"], ["u"]), mk("Tanh", ["u"], ["t"]), mk("Add", ["one", "t"], ["s"]),
             *_half_x_times("s", form)]
    inits = _scalars(three=3.0, k=0.044715, c=C, one=1.0, half=0.5, two=2.0)
    return make_model(nodes, [("x", F32, SHAPE)], [("y", F32, SHAPE)], inits)


@pytest.mark.parametrize("form", ["x_s_half", "x_s_div2", "s_half_x", "xhalf_s"])
@pytest.mark.parametrize("scale_op", ["Div", "Mul"])
def test_erf_gelu_becomes_one_op(form, scale_op):
    counts = check_model(erf_gelu(form, scale_op), _x()).op_counts
    assert counts == {"GELU": 1}, counts


@pytest.mark.parametrize("cube", ["pow", "mul"])
@pytest.mark.parametrize("form", ["x_s_half", "xhalf_s"])
def test_tanh_gelu_becomes_one_op(cube, form):
    counts = check_model(tanh_gelu(cube, form), _x()).op_counts
    assert counts == {"GELU": 1}, counts


def test_wrong_constant_is_not_fused():
    counts = check_model(erf_gelu(half=0.25), _x()).op_counts
    assert "GELU" not in counts, counts


def test_intermediate_read_elsewhere_is_not_fused():
    model = erf_gelu()
    model.graph.output.append(helper.make_tensor_value_info("e", onnx.TensorProto.FLOAT, SHAPE))
    counts = check_model(model, _x()).op_counts
    assert "GELU" not in counts, counts


def test_fuse_gelu_rewrites_the_graph():
    model = erf_gelu("s_half_x")
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert fuse_gelu(model, constants, {"x": np.dtype(F32)}, {"y"}) == 1
    assert [(n.domain, n.op_type, list(n.input), list(n.output)) for n in model.graph.node] == [
        (MS_DOMAIN, "Gelu", ["x"], ["y"])]
    assert any(imp.domain == MS_DOMAIN for imp in model.opset_import)


def _ms_model(op: str, bias: bool) -> onnx.ModelProto:
    inputs = ["x", "b"] if bias else ["x"]
    node = helper.make_node(op, inputs, ["y"], domain=MS_DOMAIN)
    inits = {"b": (np.random.default_rng(1).standard_normal(SHAPE[-1])).astype(F32)} if bias else {}
    model = make_model([node], [("x", F32, SHAPE)], [("y", F32, SHAPE)], inits)
    model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return model


@pytest.mark.parametrize("op,bias", [("Gelu", False), ("FastGelu", False), ("FastGelu", True)])
def test_onnxruntime_gelu_ops(op, bias):
    counts = check_model(_ms_model(op, bias), _x()).op_counts
    assert counts.get("GELU") == 1, counts

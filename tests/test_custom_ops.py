"""The custom-op policy: ops with no lowering become CUSTOM 'ONNX_<Op>' only when allowed."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from ai_edge_litert import schema_py_generated as S
from ai_edge_litert.interpreter import Interpreter
from flatbuffers import flexbuffers
from onnx import TensorProto, helper, numpy_helper

import onnx2litert
from onnx2litert.lower import REGISTRY
from onnx2litert.lower.custom import allowlisted, attribute_values
from onnx2litert.options import ConversionOptions
from tests.helpers import IR_VERSION, check_model, expect_failure, make_model, single_op_model

ENABLE = {"flatbuffer_direct_allow_custom_ops": True}
DOMAIN = "com.example"


def _bernoulli_model() -> onnx.ModelProto:
    # Bernoulli draws random numbers: no exact lowering can exist, so it stays a custom-op candidate.
    return single_op_model("Bernoulli", [("x", np.float32, [2, 5])], seed=1.0)


def _domain_model(extra_nodes: tuple = (), output_shape: list | None = (2, 3), **attrs: object) -> onnx.ModelProto:
    """x -> com.example::MyOp(x, w) -> y, with ``w`` a constant and the given attributes."""
    node = helper.make_node("MyOp", ["x", "w"], ["y"], domain=DOMAIN, name="my", **attrs)
    graph = helper.make_graph(
        [node, *extra_nodes], "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(extra_nodes[-1].output[0] if extra_nodes else "y", TensorProto.FLOAT,
                                       None if output_shape is None else list(output_shape))],
        [numpy_helper.from_array(np.arange(3, dtype=np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)],
                             ir_version=IR_VERSION)


def _custom_ops(data: bytes) -> list[tuple[str, S.OperatorT, S.SubGraphT]]:
    model = S.ModelT.InitFromObj(S.Model.GetRootAs(data, 0))
    sg = model.subgraphs[0]
    out = []
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if code.builtinCode == S.BuiltinOperator.CUSTOM:
            out.append((code.customCode.decode(), op, sg))
    return out


@pytest.mark.parametrize("op_type", ["Bernoulli", "Multinomial"])
def test_candidate_ops_have_no_lowering(op_type):
    assert REGISTRY.find("", op_type, 17) is None and not REGISTRY.knows("", op_type)
    assert not REGISTRY.knows(DOMAIN, "MyOp")


@pytest.mark.parametrize("value, expected", [
    ("Det,Bernoulli", ("Det", "Bernoulli")), (" Det , ,Bernoulli ", ("Det", "Bernoulli")),
    (["Det", "Bernoulli,Foo"], ("Det", "Bernoulli", "Foo")), (("Det",), ("Det",)), ("", ()), ([], ())])
def test_allowlist_normalized(value, expected):
    opts = ConversionOptions.from_kwargs(flatbuffer_direct_custom_op_allowlist=value)
    assert opts.flatbuffer_direct_custom_op_allowlist == expected


def test_policy_defaults_off():
    opts = ConversionOptions()
    assert opts.flatbuffer_direct_allow_custom_ops is False and opts.flatbuffer_direct_custom_op_allowlist == ()


@pytest.mark.parametrize("entry, ok", [("Det", True), ("ONNX_Det", True), ("com.example::Det", False),
                                       ("Bernoulli", False)])
def test_allowlist_matching(entry, ok):
    assert allowlisted("", "Det", (entry,)) is ok
    assert allowlisted(DOMAIN, "MyOp", ("com.example::MyOp",)) and allowlisted(DOMAIN, "MyOp", ("MyOp",))
    assert allowlisted("", "Det", ())


def test_disabled_fails_with_candidate_disabled():
    exc = expect_failure(_bernoulli_model(), "custom_op_candidate_disabled")
    assert [i.reason.value for i in exc.issues] == ["custom_op_candidate_disabled"]
    assert "--flatbuffer_direct_allow_custom_ops" in str(exc) and "ONNX_Bernoulli" in str(exc)


def test_allowlist_without_enable_is_still_disabled():
    expect_failure(_bernoulli_model(), "custom_op_candidate_disabled",
                   flatbuffer_direct_custom_op_allowlist="Bernoulli")


def test_enabled_not_in_allowlist():
    exc = expect_failure(_bernoulli_model(), "custom_op_not_in_allowlist", **ENABLE,
                         flatbuffer_direct_custom_op_allowlist="Det,TopK")
    assert [i.reason.value for i in exc.issues] == ["custom_op_not_in_allowlist"]
    assert "Det,TopK" in str(exc) and "Bernoulli" in str(exc)


@pytest.mark.parametrize("allowlist", ["Bernoulli", "Det,Bernoulli", ["ONNX_Bernoulli"], "", []])
def test_enabled_and_allowed(allowlist):
    result = onnx2litert.convert(_bernoulli_model(), **ENABLE, flatbuffer_direct_custom_op_allowlist=allowlist)
    assert result.op_counts == {"CUSTOM": 1}
    for variant in ("float32", "float16"):
        ops = _custom_ops(result.artifacts[variant])
        assert [code for code, _, _ in ops] == ["ONNX_Bernoulli"]
        _, op, _ = ops[0]
        assert op.customOptionsFormat == S.CustomOptionsFormat.FLEXBUFFERS
        assert flexbuffers.Loads(bytes(op.customOptions)) == {"seed": 1.0}


def test_flexbuffer_round_trips_attributes():
    tensor = numpy_helper.from_array(np.arange(4, dtype=np.int32).reshape(2, 2), "t")
    model = _domain_model(alpha=0.1, count=-3, big=2 ** 40, mode="fast", ints=[1, -2, 3], floats=[0.5, 0.25],
                          names=["a", "bc"], table=tensor)
    model.graph.node[0].attribute.append(helper.make_attribute("empty", [], attr_type=onnx.AttributeProto.INTS))
    result = onnx2litert.convert(model, **ENABLE)
    (code, op, sg), = _custom_ops(result.artifacts["float32"])
    assert code == "ONNX_MyOp"
    decoded = flexbuffers.Loads(bytes(op.customOptions))
    assert list(decoded) == sorted(decoded)  # deterministic (sorted) key order
    assert decoded == attribute_values(model.graph.node[0])
    assert decoded["alpha"] == float(np.float32(0.1)) and decoded["count"] == -3 and decoded["big"] == 2 ** 40
    assert decoded["mode"] == "fast" and decoded["names"] == ["a", "bc"] and decoded["empty"] == []
    assert decoded["ints"] == [1, -2, 3] and decoded["floats"] == [0.5, 0.25]
    table = onnx.TensorProto()
    table.ParseFromString(bytes(decoded["table"]))
    np.testing.assert_array_equal(numpy_helper.to_array(table), np.arange(4, dtype=np.int32).reshape(2, 2))
    # Inputs are the node's inputs: the graph input and the constant (with its data).
    x, w = (sg.tensors[i] for i in op.inputs)
    assert x.name.decode() == "x" and list(x.shape) == [2, 3]
    assert list(w.shape) == [3]
    model_t = S.ModelT.InitFromObj(S.Model.GetRootAs(result.artifacts["float32"], 0))
    np.testing.assert_array_equal(np.frombuffer(bytes(model_t.buffers[w.buffer].data), np.float32),
                                  np.arange(3, dtype=np.float32))
    y = sg.tensors[op.outputs[0]]
    assert list(y.shape) == [2, 3] and y.type == S.TensorType.FLOAT32


def test_node_without_attributes_gets_empty_map():
    result = onnx2litert.convert(_domain_model(), **ENABLE, flatbuffer_direct_custom_op_allowlist="MyOp")
    (_, op, _), = _custom_ops(result.artifacts["float32"])
    assert flexbuffers.Loads(bytes(op.customOptions)) == {}


def test_report_shows_custom_node_and_policy(tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                        helper.make_node("Bernoulli", ["r"], ["h"], name="hm", seed=1.0),
                        helper.make_node("Neg", ["h"], ["y"], name="neg")],
                       [("x", np.float32, [2, 5])], [("y", np.float32, [2, 5])])
    result = onnx2litert.convert(model, tmp_path, report_op_coverage=True, **ENABLE,
                                 flatbuffer_direct_custom_op_allowlist="Bernoulli")
    report = json.loads((tmp_path / "model_op_coverage_report.json").read_text())
    assert report == json.loads(json.dumps(result.reports["op_coverage"]))
    assert report["custom_op_policy"] == {"allow_custom_ops": True, "allowlist": ["Bernoulli"],
                                          "custom_nodes": ["hm"]}
    nodes = {n["name"]: n for n in report["nodes"]}
    assert nodes["hm"]["dispatch"] == "custom" and nodes["hm"]["litert_ops"] == ["CUSTOM"]
    assert "ONNX_Bernoulli" in nodes["hm"]["message"]
    assert nodes["relu"]["dispatch"] == "builtin" and nodes["neg"]["dispatch"] == "builtin"
    s = report["summary"]
    assert (s["converted_nodes"], s["custom_nodes"], s["coverage_ratio"]) == (3, 1, 1.0)
    assert s["dispatch_counts"] == {"builtin": 2, "custom": 1}
    assert result.op_counts == {"CUSTOM": 1, "NEG": 1, "RELU": 1}


def test_report_on_failure_shows_policy_and_reason(tmp_path):
    with pytest.raises(onnx2litert.ConversionError) as info:
        onnx2litert.convert(_bernoulli_model(), tmp_path, report_op_coverage=True)
    report = info.value.report
    assert report["custom_op_policy"] == {"allow_custom_ops": False, "allowlist": [], "custom_nodes": []}
    (node,) = report["nodes"]
    assert node["dispatch"] == "unsupported" and node["reason_code"] == "custom_op_candidate_disabled"
    assert report["summary"]["custom_nodes"] == 0
    assert report["reason_counts"] == {"custom_op_candidate_disabled": 1}
    assert not list(tmp_path.glob("*.tflite"))  # no model is written when conversion fails


def test_model_written_and_litert_refuses_without_kernel(tmp_path):
    result = onnx2litert.convert(_bernoulli_model(), tmp_path, **ENABLE)
    path = tmp_path / "model_float32.tflite"
    assert result.paths["float32"] == str(path) and path.read_bytes() == result.artifacts["float32"]
    assert (tmp_path / "model_float16.tflite").exists()
    interpreter = Interpreter(model_path=str(path))
    with pytest.raises(RuntimeError, match="unresolved custom op: ONNX_Bernoulli"):
        interpreter.allocate_tensors()


def test_deterministic_bytes():
    model = _domain_model(alpha=0.5, ints=[3, 1], mode="x")
    a = onnx2litert.convert(model, **ENABLE).artifacts["float32"]
    b = onnx2litert.convert(model, **ENABLE).artifacts["float32"]
    assert a == b


def test_custom_op_keeps_onnx_layout_next_to_spatial_ops():
    """A CUSTOM op computes in ONNX layout: the layout pass must not hand it NHWC tensors."""
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                        helper.make_node("Bernoulli", ["c"], ["h"], seed=1.0),
                        helper.make_node("Conv", ["h", "w2"], ["y"], pads=[1, 1, 1, 1])],
                       [("x", np.float32, [1, 3, 5, 5])], [("y", np.float32, [1, 4, 5, 5])],
                       {"w": w, "w2": np.ones((4, 4, 1, 1), np.float32)})
    result = onnx2litert.convert(model, **ENABLE)
    (_, op, sg), = _custom_ops(result.artifacts["float32"])
    assert list(sg.tensors[op.inputs[0]].shape) == [1, 4, 5, 5]
    assert list(sg.tensors[op.outputs[0]].shape) == [1, 4, 5, 5]


def test_lowering_failure_is_not_turned_into_custom():
    """A registered lowering's rejection keeps its reason code even with custom ops enabled."""
    model = single_op_model("Softmax", [("x", np.float64, [2, 3])], axis=1)
    assert REGISTRY.find("", "Softmax", 17) is not None
    expect_failure(model, "unsupported_dtype", **ENABLE)


def test_unsupported_opset_is_not_turned_into_custom():
    """Upsample has a lowering up to opset 9 only: opset 10's node keeps unsupported_opset."""
    assert REGISTRY.knows("", "Upsample") and REGISTRY.find("", "Upsample", 10) is None
    model = make_model([helper.make_node("Upsample", ["x", "s"], ["y"], mode="nearest")],
                       [("x", np.float32, [1, 1, 2, 2])], [("y", np.float32, [1, 1, 4, 4])],
                       {"s": np.array([1, 1, 2, 2], np.float32)}, opset=10)
    expect_failure(model, "unsupported_opset", **ENABLE)


def test_unknown_output_shape():
    """MyOp feeding another node: ONNX cannot infer its output shape, so it is no candidate."""
    model = _domain_model((helper.make_node("Relu", ["y"], ["z"]),), output_shape=[2, 3])
    exc = expect_failure(model, "dynamic_shape_unsupported", **ENABLE)
    assert "'y'" in str(exc)
    # Disabled: the node could not be a custom op anyway, so the plain reason stays.
    exc = expect_failure(model, "unsupported_onnx_op")
    assert [i.reason.value for i in exc.issues] == ["unsupported_onnx_op"]
    expect_failure(model, "unsupported_onnx_op", **ENABLE, flatbuffer_direct_custom_op_allowlist="Other")


def test_policy_errors_reported_for_every_node_at_once():
    model = make_model([helper.make_node("Bernoulli", ["x"], ["h"], name="a"),
                        helper.make_node("Multinomial", ["h"], ["y"], name="b")],
                       [("x", np.float32, [2, 3])], [("y", np.int32, [2, 1])])
    exc = expect_failure(model, "custom_op_not_in_allowlist", **ENABLE,
                         flatbuffer_direct_custom_op_allowlist="Bernoulli")
    assert [(i.node_name, i.reason.value) for i in exc.issues] == [("b", "custom_op_not_in_allowlist")]
    exc = expect_failure(model, "custom_op_candidate_disabled")
    assert [(i.node_name, i.reason.value) for i in exc.issues] == [("a", "custom_op_candidate_disabled"),
                                                                   ("b", "custom_op_candidate_disabled")]
    result = onnx2litert.convert(model, **ENABLE)
    assert [code for code, _, _ in _custom_ops(result.artifacts["float32"])] == ["ONNX_Bernoulli", "ONNX_Multinomial"]


def test_builtin_part_still_matches_onnx_runtime():
    """Custom ops enabled changes nothing for a model whose ops all lower to builtins."""
    model = single_op_model("Relu", [("x", np.float32, [2, 3])])
    check_model(model, **ENABLE)

"""Failures: every blocking node reported, reports still written, no partial output, option errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import onnx2litert
from onnx2litert.errors import REASON_DESCRIPTIONS, Reason
from tests.helpers import expect_failure, make_model

CLOSED_SET = {r.value for r in Reason}


def _two_unsupported() -> onnx.ModelProto:
    """x -> Frobnicate -> a, x -> Twiddle -> b, y = a + b: two independent unsupported nodes."""
    nodes = [helper.make_node("Frobnicate", ["x"], ["a"], name="frob", domain="com.example"),
             helper.make_node("Twiddle", ["x"], ["b"], name="twid", domain="com.example"),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    model = make_model(nodes, [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    return model


def _assert_closed(exc: onnx2litert.ConversionError) -> None:
    for issue in exc.issues:
        assert isinstance(issue.reason, Reason) and issue.reason.value in CLOSED_SET
        assert issue.reason in REASON_DESCRIPTIONS
        assert f"[{issue.reason.value}]" in str(exc)


def test_two_unsupported_nodes_both_reported(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(onnx2litert.ConversionError) as info:
        onnx2litert.convert(_two_unsupported(), out, report_op_coverage=True)
    exc = info.value
    _assert_closed(exc)
    assert {(i.node_name, i.op_type, i.reason.value) for i in exc.issues} == {
        ("frob", "Frobnicate", "unsupported_onnx_op"), ("twid", "Twiddle", "unsupported_onnx_op")}
    assert "frob" in str(exc) and "twid" in str(exc)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["model_op_coverage_report.json"]  # the report, and no .tflite at all
    report = json.loads((out / "model_op_coverage_report.json").read_text())
    assert {i["node"] for i in report["issues"]} == {"frob", "twid"}
    assert {i["reason_code"] for i in report["issues"]} <= CLOSED_SET
    assert report["summary"]["conversion_ok"] is False
    dispatch = {n["name"]: n["dispatch"] for n in report["nodes"]}
    assert dispatch["frob"] == dispatch["twid"] == "unsupported"
    assert exc.report is not None and exc.report["issues"] == report["issues"]


def test_frontend_failure_still_writes_report(tmp_path: Path) -> None:
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [1, "W"])],
                       [("y", np.float32, None)])
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "out"
    with pytest.raises(onnx2litert.ConversionError) as info:
        onnx2litert.convert(path, out, report_op_coverage=True, dynamic_shapes=False)
    exc = info.value
    _assert_closed(exc)
    assert exc.reason is Reason.DYNAMIC_SHAPE_UNSUPPORTED
    assert sorted(p.name for p in out.iterdir()) == ["dyn_op_coverage_report.json"]
    report = json.loads((out / "dyn_op_coverage_report.json").read_text())
    assert report["issues"][0]["reason_code"] == "dynamic_shape_unsupported"


def test_success_then_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(onnx2litert.ConversionError):
        onnx2litert.convert(_two_unsupported(), out)
    assert not out.exists() or not list(out.glob("*.tflite"))
    assert not out.exists() or not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("options", [
    {"batch_size": 0},
    {"batch_size": -3},
    {"eval_num_samples": 0},
    {"tflite_backend": "tensorflow"},
    {"eval_target_tflite": "int8"},
    {"eval_compare_mode": "fuzzy"},
    {"overwrite_input_shape": ["x:1,a,3"]},
    {"overwrite_input_shape": ["no_colon"]},
    {"overwrite_input_shape": ["x:1,0,3"]},
    {"overwrite_input_shape": {"x": [1, -1, 3]}},
    {"no_such_option": True},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_invalid_options(options: dict) -> None:
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [1, 2, 3])],
                       [("y", np.float32, None)])
    exc = expect_failure(model, "invalid_option", **options)
    _assert_closed(exc)
    assert all(i.reason is Reason.INVALID_OPTION for i in exc.issues)


def test_tf_converter_backend_not_installed(tmp_path: Path) -> None:
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [1, 2, 3])],
                       [("y", np.float32, None)])
    exc = expect_failure(model, "backend_not_installed", tflite_backend="tf_converter", output_folder=str(tmp_path))
    _assert_closed(exc)
    assert "flatbuffer_direct" in str(exc)
    assert list(tmp_path.iterdir()) == []

"""Regression tests for review findings in the driver, context, loader and Gemm."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnx2litert
from tests.helpers import check_model, expect_failure, make_model


def test_scalar_transpose_is_a_copy():
    model = make_model([helper.make_node("Transpose", ["x"], ["y"])], [("x", np.float32, [])],
                       [("y", np.float32, [])])
    result = check_model(model, {"x": np.array(3.0, np.float32)})
    assert "TRANSPOSE" not in result.op_counts


def test_invalid_node_with_an_inferred_empty_output_is_not_skipped():
    # DepthToSpace(blocksize=2) on 3 channels: inference says 0 output channels; the lowering must refuse it.
    model = make_model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2)],
                       [("x", np.float32, [1, 3, 4, 4])], [("y", np.float32, None)])
    with pytest.raises(onnx2litert.ConversionError):
        onnx2litert.convert(model)


def test_gemm_with_mismatched_inner_dims_is_invalid():
    model = make_model([helper.make_node("Gemm", ["a", "b"], ["y"])], [("a", np.float32, [2, 3])],
                       [("y", np.float32, [2, 5])], {"b": np.ones((4, 5), np.float32)})
    model.graph.ClearField("value_info")
    expect_failure(model, "invalid_model")


def test_model_proto_with_external_data_initializer_is_refused(tmp_path, monkeypatch):
    (tmp_path / "secret.bin").write_bytes(np.arange(6, dtype=np.float32).tobytes())
    monkeypatch.chdir(tmp_path)
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 3])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "secret.bin"), ("offset", "0"), ("length", "24")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    expect_failure(model, "invalid_model")


def test_lowering_bug_is_reported_on_its_node(monkeypatch):
    from onnx2litert.lower import REGISTRY

    entry = REGISTRY.find("", "Relu", 17)

    def broken(node, ctx):
        raise IndexError("boom")

    import dataclasses

    patched = dataclasses.replace(entry, fn=broken)
    key = ("", "Relu")
    original = REGISTRY._entries[key]
    monkeypatch.setitem(REGISTRY._entries, key, [patched if e is entry else e for e in original])
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", np.float32, [2])],
                       [("y", np.float32, [2])])
    exc = expect_failure(model, "internal_error")
    assert exc.issues[0].node_name == "r" and "IndexError: boom" in exc.issues[0].message


def test_clip6_default_bounds_clip_infinities():
    model = make_model([helper.make_node("Clip", ["x"], ["y"])], [("x", np.float32, [4])], [("y", np.float32, [4])],
                       opset=6)
    check_model(model, {"x": np.array([-np.inf, -1.0, 2.0, np.inf], np.float32)})


def test_selu1_uses_its_own_defaults():
    # ONNX Runtime has no Selu-1 kernel: compare with the Selu-1 definition (alpha 1.6732, gamma 1.0507).
    model = make_model([helper.make_node("Selu", ["x"], ["y"])], [("x", np.float32, [2, 3])],
                       [("y", np.float32, [2, 3])], opset=1)
    x = np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)
    got = onnx2litert.run_tflite(onnx2litert.convert(model).artifacts["float32"], {"x": x})["y"]
    want = 1.0507 * np.where(x > 0, x, 1.6732 * (np.exp(x) - 1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dropout6_in_training_mode_is_not_dropped():
    model = make_model([helper.make_node("Dropout", ["x"], ["y"], ratio=0.5)], [("x", np.float32, [2, 3])],
                       [("y", np.float32, [2, 3])], opset=6)
    with pytest.raises(onnx2litert.ConversionError):
        onnx2litert.convert(model)


def test_nodes_behind_an_unsupported_node_are_blocked_not_blamed():
    model = make_model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                        helper.make_node("Bernoulli", ["r"], ["b"], name="bern"),
                        helper.make_node("Sigmoid", ["b"], ["y"], name="sig")],
                       [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3])])
    exc = expect_failure(model, "custom_op_candidate_disabled", report_op_coverage=True)
    nodes = {n["name"]: n for n in exc.report["nodes"]}
    assert nodes["sig"]["dispatch"] == "blocked" and nodes["sig"]["reason_code"] is None
    assert exc.report["reason_counts"] == {"custom_op_candidate_disabled": 1}
    assert exc.report["summary"]["lowered_nodes"] == 2


def test_list_options_given_as_none_mean_not_given():
    """``keep_ncw_or_nchw_or_ncdhw_input_names=None`` (and the other list options) used to raise TypeError."""
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                       [("x", np.float32, [1, 2, 5, 5])], [("y", np.float32, None)],
                       {"w": np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32)})
    result = check_model(model, keep_ncw_or_nchw_or_ncdhw_input_names=None, overwrite_input_shape=None,
                         flatbuffer_direct_custom_op_allowlist=None, custom_input_op_name_np_data_path=None)
    assert result.io_layout

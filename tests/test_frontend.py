"""Frontend: safe loading, opset range, input shapes, pass-through removal, constant folding."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from onnx2litert.frontend import prepare
from onnx2litert.lower import REGISTRY
from onnx2litert.options import ConversionOptions
from tests.helpers import check_model, expect_failure, make_model

RNG = np.random.default_rng(0)
WEIGHT = RNG.standard_normal((2, 3, 4)).astype(np.float32)


def _add_model(opset: int = 17) -> onnx.ModelProto:
    """y = Relu(x + w) with a (2, 3, 4) float weight."""
    nodes = [helper.make_node("Add", ["x", "w"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    return make_model(nodes, [("x", np.float32, [2, 3, 4])], [("y", np.float32, [2, 3, 4])], {"w": WEIGHT}, opset)


def _prepared(model: onnx.ModelProto, **options: object):
    return prepare(model, ConversionOptions.from_kwargs(**options))


def _feeds() -> dict[str, np.ndarray]:
    return {"x": RNG.standard_normal((2, 3, 4)).astype(np.float32)}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- loading and external data ------------------------------------------------------------

def test_external_data_inside_folder_loads(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    onnx.save(_add_model(), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").is_file()
    before = {p.name: _sha(p) for p in tmp_path.iterdir()}
    result = onnx2litert.convert(path)
    feeds = _feeds()
    got = run_tflite(result.artifacts["float32"], feeds)["y"]
    np.testing.assert_allclose(got, run_onnx(str(path), feeds)["y"], atol=1e-6)
    assert {p.name: _sha(p) for p in tmp_path.iterdir()} == before  # nothing written or changed


def test_external_data_in_subfolder_loads(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    model = _add_model()
    (tmp_path / "data").mkdir()
    onnx.save(model, str(path), save_as_external_data=True, location="data/w.bin", size_threshold=0)
    assert "w" in _prepared_path(path).constants


def _prepared_path(path: Path):
    return prepare(str(path), ConversionOptions())


def _model_with_location(tmp_path: Path, location: str) -> Path:
    """Save the Add model with its weight marked external at ``location`` (bytes written there)."""
    model = _add_model()
    tensor = model.graph.initializer[0]
    raw = tensor.raw_data or numpy_helper.from_array(WEIGHT).raw_data
    external_data_helper.set_external_data(tensor, location=location, offset=0, length=len(raw))
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    path = tmp_path / "model" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    target = Path(location) if os.path.isabs(location) else path.parent / location
    if not target.exists() and target.parent.exists():
        target.write_bytes(raw)
    return path


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink", "symlink_dir"])
def test_external_data_outside_folder_is_unsafe(tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(numpy_helper.from_array(WEIGHT).raw_data)
    if kind == "parent":
        path = _model_with_location(tmp_path, "../outside.bin")
    elif kind == "absolute":
        path = _model_with_location(tmp_path, str(outside))
    elif kind == "symlink":
        (tmp_path / "model").mkdir()
        os.symlink(outside, tmp_path / "model" / "link.bin")
        path = _model_with_location(tmp_path, "link.bin")
    else:
        (tmp_path / "model").mkdir()
        os.symlink(tmp_path, tmp_path / "model" / "up")
        path = _model_with_location(tmp_path, "up/outside.bin")
    before = _sha(path)
    expect_failure(str(path), "unsafe_external_data")
    assert _sha(path) == before


def test_external_data_missing_file_is_invalid(tmp_path: Path) -> None:
    path = _model_with_location(tmp_path, "missing_dir/w.bin")
    expect_failure(str(path), "invalid_model")


def test_external_data_without_folder_is_refused(tmp_path: Path) -> None:
    path = _model_with_location(tmp_path, "w.bin")
    model = onnx.load(str(path), load_external_data=False)  # still references w.bin
    expect_failure(model, "invalid_model")
    expect_failure(model.SerializeToString(), "invalid_model")


def test_missing_file_directory_and_garbage_are_invalid(tmp_path: Path) -> None:
    expect_failure(str(tmp_path / "nope.onnx"), "invalid_model")
    expect_failure(str(tmp_path), "invalid_model")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf \xff\xfe\x00 at all" * 10)
    expect_failure(str(junk), "invalid_model")
    expect_failure(b"\x00\x01\x02garbage", "invalid_model")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    expect_failure(str(empty), "invalid_model")


@pytest.mark.parametrize("opset", [6, 99])
def test_opset_outside_range(opset: int) -> None:
    expect_failure(_add_model(opset), "unsupported_opset")


def test_newer_opset_converts_ops_whose_definition_did_not_change() -> None:
    from onnx2litert.lower.registry import VERIFIED_OPSET
    # Add did not change after VERIFIED_OPSET: a newer-opset model (one ONNX Runtime runs) converts.
    check_model(_add_model(max(VERIFIED_OPSET + 1, 24)))


def test_registry_newer_definition_lowering_only_for_its_definition() -> None:
    """A lowering registered with since > VERIFIED_OPSET serves exactly the definition it names."""
    from onnx2litert.lower.registry import VERIFIED_OPSET, Lowering, Registry

    def old_fn(node, ctx):  # pragma: no cover - never called
        pass

    def new_fn(node, ctx):  # pragma: no cover - never called
        pass

    reg = Registry()
    reg.add(Lowering("Cast", old_fn, since=6))
    # Cast definitions: ..., 23, 24, 25, 28 (onnx 1.19+); register only the opset-24 one.
    reg.add(Lowering("Cast", new_fn, since=24))
    assert reg.find("", "Cast", VERIFIED_OPSET).fn is old_fn
    assert reg.find("", "Cast", 13).fn is old_fn
    if onnx.defs.onnx_opset_version() >= 25:
        assert reg.find("", "Cast", 24).fn is new_fn
        assert reg.find("", "Cast", 25) is None  # the opset-25 definition has no lowering yet
    # Unchanged ops above VERIFIED_OPSET keep using the verified lowering.
    reg.add(Lowering("Add", old_fn, since=7))
    assert reg.find("", "Add", VERIFIED_OPSET + 1).fn is old_fn


def test_registry_new_op_after_verified() -> None:
    """Swish (new in 24) is found at 24 and never below it."""
    from onnx2litert.lower.registry import REGISTRY
    if onnx.defs.onnx_opset_version() < 24:
        pytest.skip("Swish needs onnx opset 24")
    assert REGISTRY.find("", "Swish", 23) is None
    assert REGISTRY.find("", "Swish", 24) is not None


def test_cast_at_newest_opset_converts() -> None:
    """Cast has lowerings for its post-VERIFIED_OPSET definitions (24, 25, 28)."""
    from onnx2litert.lower.registry import REGISTRY
    newest = onnx.defs.onnx_opset_version()
    assert REGISTRY.find("", "Cast", newest) is not None
    model = make_model([helper.make_node("Cast", ["x"], ["y"], to=onnx.TensorProto.INT32)],
                       [("x", np.float32, [2, 3])], [("y", np.int32, [2, 3])], opset=newest)
    onnx2litert.convert(model)


def test_no_default_opset() -> None:
    model = _add_model()
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    expect_failure(model, "unsupported_opset")


# --- input shapes -----------------------------------------------------------------------------

def _relu_model(shape: list) -> onnx.ModelProto:
    return make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, shape)],
                      [("y", np.float32, None)])


def test_batch_size_fixes_symbolic_batch() -> None:
    model = _relu_model(["N", 3, 4])
    assert _prepared(model).shapes["x"] == (1, 3, 4)
    prepared = _prepared(model, batch_size=2)
    assert prepared.shapes["x"] == (2, 3, 4) and prepared.shapes["y"] == (2, 3, 4)
    feeds = {"x": RNG.standard_normal((2, 3, 4)).astype(np.float32)}
    got = run_tflite(onnx2litert.convert(model, batch_size=2).artifacts["float32"], feeds)["y"]
    np.testing.assert_array_equal(got, np.maximum(feeds["x"], 0))


def test_overwrite_input_shape_fixes_all_dims() -> None:
    model = _relu_model(["N", 3, "W"])
    prepared = _prepared(model, overwrite_input_shape=["x:1,3,5"])
    assert prepared.shapes["x"] == (1, 3, 5) and prepared.shapes["y"] == (1, 3, 5)
    feeds = {"x": RNG.standard_normal((1, 3, 5)).astype(np.float32)}
    got = run_tflite(onnx2litert.convert(model, overwrite_input_shape={"x": [1, 3, 5]}).artifacts["float32"],
                     feeds)["y"]
    np.testing.assert_array_equal(got, np.maximum(feeds["x"], 0))


def test_overwrite_input_shape_for_unranked_input() -> None:
    model = _relu_model(["N"])
    model.graph.input[0].type.tensor_type.ClearField("shape")
    expect_failure(model, "dynamic_shape_unsupported")
    assert _prepared(model, overwrite_input_shape=["x:2,3"]).shapes["y"] == (2, 3)


def test_symbolic_non_batch_dim_names_the_input() -> None:
    model = _relu_model([1, 3, "height"])
    exc = expect_failure(model, "dynamic_shape_unsupported", dynamic_shapes=False)
    assert "'x'" in str(exc) and "height" in str(exc) and "-ois" in str(exc)


@pytest.mark.parametrize("spec, reason", [(["x:1,3"], "invalid_option"), (["zzz:1,3,4"], "invalid_option")])
def test_bad_overwrite_input_shape(spec: list[str], reason: str) -> None:
    expect_failure(_relu_model([1, 3, 4]), reason, overwrite_input_shape=spec)


# --- pass-through removal -------------------------------------------------------------------

def _chain_model(opset: int = 17) -> onnx.ModelProto:
    dropout_inputs = ["i1"] if opset < 12 else ["i1", "", ""]
    nodes = [
        helper.make_node("Identity", ["x"], ["i0"]),
        helper.make_node("Relu", ["i0"], ["r"]),
        helper.make_node("Identity", ["r"], ["i1"]),
        helper.make_node("Dropout", dropout_inputs, ["d"], name="drop"),
        helper.make_node("Identity", ["d"], ["i2"]),
        helper.make_node("Add", ["i2", "i0"], ["a"]),
        helper.make_node("Identity", ["a"], ["y"], name="final_identity"),
    ]
    return make_model(nodes, [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3])], opset=opset)


@pytest.mark.parametrize("opset", [11, 17])
def test_identity_and_dropout_chains_removed(opset: int) -> None:
    model = _chain_model(opset)
    prepared = _prepared(model)
    assert [n.op_type for n in prepared.nodes] == ["Relu", "Add"]
    assert prepared.outputs == ["y"] and prepared.nodes[-1].output[0] == "y"
    assert list(prepared.nodes[1].input) == ["r", "x"]
    assert len(prepared.original_nodes) == len(model.graph.node)
    result = check_model(model, report_op_coverage=True)
    assert result.op_counts == {"ADD": 1, "RELU": 1}
    dispatch = {r["name"] or r["op_type"]: r["dispatch"] for r in result.reports["op_coverage"]["nodes"]}
    assert dispatch["drop"] == "removed" and dispatch["final_identity"] == "removed"
    from onnx2litert.export.schema import S
    m = S.Model.GetRootAs(result.artifacts["float32"], 0)
    sig = m.SignatureDefs(0)
    assert [sig.Outputs(i).Name().decode() for i in range(sig.OutputsLength())] == ["y"]


def test_identity_of_graph_output_keeps_both_outputs() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [2, 3])], [("r", np.float32, [2, 3]), ("y", np.float32, [2, 3])])
    prepared = _prepared(model)
    assert prepared.outputs == ["r", "y"]
    # r is itself a graph output, so it cannot be renamed: the Identity stays.
    assert [n.op_type for n in prepared.nodes] == ["Relu", "Identity"]


def test_training_dropout_is_kept() -> None:
    nodes = [helper.make_node("Dropout", ["x", "", "t"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [2, 3]), ("t", np.bool_, [])], [("y", np.float32, [2, 3])])
    assert [n.op_type for n in _prepared(model).nodes] == ["Dropout"]
    model_const = make_model([helper.make_node("Dropout", ["x", "", "t"], ["d"]),
                              helper.make_node("Relu", ["d"], ["y"])],
                             [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3])],
                             {"t": np.array(False)})
    assert [n.op_type for n in _prepared(model_const).nodes] == ["Relu"]


def test_dropout_with_used_mask_is_kept() -> None:
    nodes = [helper.make_node("Dropout", ["x"], ["d", "m"]), helper.make_node("Relu", ["d"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3]), ("m", np.bool_, [2, 3])])
    assert [n.op_type for n in _prepared(model).nodes] == ["Dropout", "Relu"]


# --- constant folding ---------------------------------------------------------------------

def _shape_subgraph_model(opset: int = 17) -> onnx.ModelProto:
    """y = Reshape(x, [Shape(x)[0], -1]) built the way exporters do it."""
    ax = helper.make_tensor("ax", TensorProto.INT64, [1], [0])
    nodes = [
        helper.make_node("Shape", ["x"], ["shp"]),
        helper.make_node("Constant", [], ["idx"], value=helper.make_tensor("i", TensorProto.INT64, [], [0])),
        helper.make_node("Gather", ["shp", "idx"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]) if opset >= 13
        else helper.make_node("Unsqueeze", ["b"], ["b1"], axes=[0]),
        helper.make_node("Concat", ["b1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = {"minus1": np.array([-1], np.int64)}
    if opset >= 13:
        inits["axes"] = numpy_helper.to_array(ax)
    return make_model(nodes, [("x", np.float32, [2, 3, 4])], [("y", np.float32, [2, 12])], inits, opset)


@pytest.mark.parametrize("opset", [11, 17])
def test_shape_subgraph_folds_to_reshape(opset: int) -> None:
    prepared = _prepared(_shape_subgraph_model(opset))
    assert [n.op_type for n in prepared.nodes] == ["Reshape"]
    np.testing.assert_array_equal(prepared.constants[prepared.nodes[0].input[1]], [2, -1])
    assert prepared.shapes["y"] == (2, 12)
    # Folded helpers stay known for the coverage report; the unused weight "axes" is dropped.
    assert "axes" not in prepared.constants


def test_shape_subgraph_converts_to_single_reshape() -> None:
    if REGISTRY.find("", "Reshape", 17) is None:
        pytest.skip("no Reshape lowering registered yet")
    result = check_model(_shape_subgraph_model())
    assert result.op_counts == {"RESHAPE": 1}


def test_folding_does_not_keep_the_unfolded_weight() -> None:
    w = RNG.standard_normal((4, 3)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]), helper.make_node("MatMul", ["x", "wt"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [2, 4])], [("y", np.float32, [2, 4])], {"w": w.T.copy()})
    prepared = _prepared(model)
    assert [n.op_type for n in prepared.nodes] == ["MatMul"]
    assert "w" not in prepared.constants and "wt" in prepared.constants
    assert len(prepared.model.graph.initializer) == 0  # weights live once, in constants
    check_model(model)


@pytest.mark.parametrize("opset", [11, 13])
def test_folding_uses_the_models_opset(opset: int) -> None:
    """Softmax before opset 13 normalizes over the flattened axes from ``axis``; 13+ over one axis."""
    c = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    nodes = [helper.make_node("Softmax", ["c"], ["sm"], axis=1), helper.make_node("Add", ["x", "sm"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [2, 3, 4])], [("y", np.float32, [2, 3, 4])], {"c": c}, opset)
    prepared = _prepared(model)
    assert [n.op_type for n in prepared.nodes] == ["Add"]
    zeros = {"x": np.zeros((2, 3, 4), np.float32)}
    np.testing.assert_allclose(prepared.constants["sm"], run_onnx(model.SerializeToString(), zeros)["y"],
                               rtol=1e-6, atol=1e-7)
    check_model(model)


@pytest.mark.parametrize("opset", [13, 15])
def test_shape_start_end_follow_opset(opset: int) -> None:
    attrs = {"start": 1, "end": -1} if opset >= 15 else {}
    nodes = [helper.make_node("Shape", ["x"], ["s"], **attrs), helper.make_node("Cast", ["s"], ["sf"], to=1),
             helper.make_node("Add", ["x2", "sf"], ["y"])]
    n = 2 if opset >= 15 else 4
    model = make_model(nodes, [("x", np.float32, [1, 2, 3, 5]), ("x2", np.float32, [n])], [("y", np.float32, [n])],
                       opset=opset)
    prepared = _prepared(model)
    assert list(prepared.constants["s"]) == ([2, 3] if opset >= 15 else [1, 2, 3, 5])


def test_out_of_order_graph_is_sorted_and_undefined_input_is_invalid() -> None:
    nodes = [helper.make_node("Relu", ["s"], ["y"]), helper.make_node("Add", ["x", "w"], ["s"])]
    model = make_model(nodes, [("x", np.float32, [2, 3, 4])], [("y", np.float32, [2, 3, 4])], {"w": WEIGHT})
    assert [n.op_type for n in _prepared(model).nodes] == ["Add", "Relu"]
    bad = make_model([helper.make_node("Relu", ["ghost"], ["y"])], [("x", np.float32, [2])], [("y", np.float32, [2])])
    exc = expect_failure(bad, "invalid_model")
    assert "ghost" in str(exc)
    orphan = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [2])],
                        [("y", np.float32, [2]), ("nowhere", np.float32, [2])])
    assert "nowhere" in str(expect_failure(orphan, "invalid_model"))


# --- the caller's model and file are never modified ---------------------------------------

def test_input_file_untouched(tmp_path: Path) -> None:
    model = _shape_subgraph_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.value_info.append(helper.make_tensor_value_info("shp", TensorProto.INT64, [3]))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    before, stat = _sha(path), path.stat()
    out = tmp_path / "out"
    try:
        onnx2litert.convert(path, out, report_op_coverage=True)
    except onnx2litert.ConversionError:
        pass  # a missing lowering must not matter here: only the input file is checked
    assert _sha(path) == before and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "out"]


def test_model_proto_not_mutated() -> None:
    model = _chain_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.value_info.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 3]))
    model.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), "unused"))
    before = model.SerializeToString()
    onnx2litert.convert(model, batch_size=2)
    assert model.SerializeToString() == before


# --- If with a constant condition -----------------------------------------------------------

def _rank_check_if_model(threshold: int, else_returns_outer: bool, opset: int = 17) -> onnx.ModelProto:
    """The torch exporter's pattern: If(Size(Shape(x)) > threshold) picks a reshape or x itself.

    then: y = Reshape(x * k, [-1]) with a branch initializer k; else: x + 1, or x itself
    (an outer-scope value, through Identity as torch exports it) when ``else_returns_outer``.
    """
    then_g = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["m"]),
         helper.make_node("Reshape", ["m", "flat"], ["t_out"])],
        "then", [], [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [24])],
        [numpy_helper.from_array(np.array(3.0, np.float32), "k"),
         numpy_helper.from_array(np.array([-1], np.int64), "flat")])
    if else_returns_outer:
        else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["x_copy"])], "else", [],
                                   [helper.make_tensor_value_info("x_copy", TensorProto.FLOAT, [2, 3, 4])])
    else:
        else_g = helper.make_graph(
            [helper.make_node("Add", ["x", "one"], ["e_out"])], "else", [],
            [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [2, 3, 4])],
            [numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Size", ["shape"], ["rank"]),
             helper.make_node("Greater", ["rank", "thr"], ["cond"]),
             helper.make_node("If", ["cond"], ["picked"], name="check", then_branch=then_g, else_branch=else_g),
             helper.make_node("Relu", ["picked"], ["y"])]
    out_shape = [24] if 3 > threshold else [2, 3, 4]
    return make_model(nodes, [("x", np.float32, [2, 3, 4])], [("y", np.float32, out_shape)],
                      {"thr": np.array(threshold, np.int64)}, opset)


@pytest.mark.parametrize("threshold,else_returns_outer", [(2, False), (5, False), (5, True), (2, True)])
def test_if_with_constant_condition_is_inlined(threshold: int, else_returns_outer: bool) -> None:
    model = _rank_check_if_model(threshold, else_returns_outer)
    prepared = _prepared(model)
    assert "If" not in [n.op_type for n in prepared.nodes]
    result = check_model(model)
    assert result is not None


def test_if_inlining_renames_branch_locals_apart_from_outer_names() -> None:
    """Both Ifs use the same branch-local names; inlined, they must not collide."""
    def branch(scale: float) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("Mul", ["x", "k"], ["out"])], "b", [],
                                 [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
                                 [numpy_helper.from_array(np.array(scale, np.float32), "k")])
    nodes = [helper.make_node("If", ["c"], ["a"], then_branch=branch(2.0), else_branch=branch(5.0)),
             helper.make_node("If", ["c"], ["b"], then_branch=branch(3.0), else_branch=branch(7.0)),
             helper.make_node("Sub", ["a", "b"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3])],
                       {"c": np.array([True])})
    assert "If" not in [n.op_type for n in _prepared(model).nodes]
    check_model(model)


def test_if_branch_returning_its_initializer() -> None:
    """A branch output that no branch node produces is copied into the If output."""
    body = helper.make_graph([], "b", [], [helper.make_tensor_value_info("k", TensorProto.FLOAT, [2, 3])],
                             [numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "k")])
    other = helper.make_graph([helper.make_node("Tanh", ["x"], ["t"])], "o", [],
                              [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 3])])
    nodes = [helper.make_node("If", ["c"], ["p"], then_branch=body, else_branch=other),
             helper.make_node("Add", ["p", "x"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3])], {"c": np.array(True)})
    check_model(model)


def test_nested_constant_ifs_are_inlined() -> None:
    """The inner If reads a value local to the outer branch; inlining must rename that read too."""
    def body(op: str, inp: str, out: str, name: str) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node(op, [inp], [out])], name, [],
                                 [helper.make_tensor_value_info(out, TensorProto.FLOAT, [2, 3])])
    outer_then = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["h"]),
         helper.make_node("If", ["c2"], ["i_out"], then_branch=body("Exp", "h", "n", "inner_then"),
                          else_branch=body("Abs", "h", "ab", "inner_else"))], "outer_then", [],
        [helper.make_tensor_value_info("i_out", TensorProto.FLOAT, [2, 3])])
    nodes = [helper.make_node("If", ["c1"], ["o"], then_branch=outer_then,
                              else_branch=body("Sigmoid", "x", "ex", "outer_else")),
             helper.make_node("Mul", ["o", "x"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3])],
                       {"c1": np.array(True), "c2": np.array(False)})
    assert [n.op_type for n in _prepared(model).nodes] == ["Neg", "Abs", "Mul"]
    check_model(model)


def test_if_with_run_time_condition_becomes_litert_if() -> None:
    then_g = helper.make_graph([helper.make_node("Neg", ["x"], ["n"])], "t", [],
                               [helper.make_tensor_value_info("n", TensorProto.FLOAT, [2, 3])])
    else_g = helper.make_graph([helper.make_node("Abs", ["x"], ["a"])], "e", [],
                               [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)]
    model = make_model(nodes, [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3])],
                       {"zero": np.array(0.0, np.float32)})
    x = np.abs(np.random.default_rng(0).standard_normal((2, 3))).astype(np.float32)
    for sign in (1, -1):  # both branches taken
        assert check_model(model, {"x": sign * x}).op_counts["IF"] == 1


# --- shape inference gaps -------------------------------------------------------------------

@pytest.mark.parametrize("opset", [21, 22])  # GroupNormalization-18 is deprecated
def test_shapes_known_after_group_normalization(opset: int) -> None:
    """ONNX infers no shape for GroupNormalization: the frontend must, or the Conv after it fails."""
    c, groups = 4, 2
    rng = np.random.default_rng(1)
    inits = {"s": rng.standard_normal(c).astype(np.float32),  # per channel since opset 21
             "b": rng.standard_normal(c).astype(np.float32),
             "w": rng.standard_normal((3, c, 3, 3)).astype(np.float32)}
    nodes = [helper.make_node("GroupNormalization", ["x", "s", "b"], ["g"], num_groups=groups, epsilon=1e-5),
             helper.make_node("Conv", ["g", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [1, c, 5, 5])], [("y", np.float32, [1, 3, 5, 5])], inits, opset)
    prepared = _prepared(model)
    assert prepared.shapes["g"] == (1, c, 5, 5)
    assert prepared.shapes["c"] == (1, 3, 5, 5)
    check_model(model)

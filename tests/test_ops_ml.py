"""ai.onnx.ml lowerings (Binarizer, ArrayFeatureExtractor, TreeEnsemble) and TfIdfVectorizer vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tests.helpers import IR_VERSION, check_model, expect_failure, tensor_type
from onnx2litert.lower.ops.ml import f32_down, f32_up, f64_key
from onnx2litert.lower.ops.text import pool_ngrams

F32 = np.float32
ML = "ai.onnx.ml"


def ml_model(node: onnx.NodeProto, inputs: list[tuple[str, type, list]], outputs: list[tuple[str, type, list]],
             ml_opset: int, default_opset: int | None = 17, initializers: dict | None = None) -> onnx.ModelProto:
    """A one-node model importing ai.onnx.ml (and the default domain unless ``default_opset`` is None)."""
    graph = helper.make_graph(
        [node], "ml",
        [helper.make_tensor_value_info(n, tensor_type(d), s) for n, d, s in inputs],
        [helper.make_tensor_value_info(n, tensor_type(d), s) for n, d, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()])
    imports = [helper.make_opsetid(ML, ml_opset)]
    if default_opset is not None:
        imports.append(helper.make_opsetid("", default_opset))
    return helper.make_model(graph, opset_imports=imports, ir_version=IR_VERSION)


# -- helpers ---------------------------------------------------------------------------------------
def test_float_bounds_and_keys() -> None:
    assert float(f32_down(0.1)) < 0.1 < float(f32_up(0.1))
    assert f32_down(0.5) == f32_up(0.5) == F32(0.5)
    values = [-np.inf, -3.5, -1e-300, -0.0, 0.0, 1e-300, 2.0, np.inf]
    keys = [f64_key(v) for v in values]
    assert keys == sorted(keys) and f64_key(-0.0) == f64_key(0.0)


def test_pool_ngrams_last_duplicate_wins() -> None:
    grams = pool_ngrams([1, 2, 1, 2, 3, 1, 2], [0, 3], 1, 2)
    assert grams == {(1,): 2, (2,): 1, (2, 3): 3, (1, 2): 4}


# -- Binarizer / ArrayFeatureExtractor -------------------------------------------------------------
@pytest.mark.parametrize("threshold", [None, 0.25, -1.0])
def test_binarizer(threshold: float | None) -> None:
    attrs = {} if threshold is None else {"threshold": threshold}
    node = helper.make_node("Binarizer", ["x"], ["y"], domain=ML, **attrs)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(F32)
    x[0, :3] = [0.25, -1.0, 0.0]
    check_model(ml_model(node, [("x", F32, [3, 4])], [("y", F32, [3, 4])], 1, default_opset=None), {"x": x})


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("const", [True, False])
def test_array_feature_extractor(dtype: type, const: bool) -> None:
    idx = np.array([3, 0, 3], np.int64)
    node = helper.make_node("ArrayFeatureExtractor", ["x", "i"], ["y"], domain=ML)
    inputs = [("x", dtype, [2, 3, 4])] + ([] if const else [("i", np.int64, [3])])
    model = ml_model(node, inputs, [("y", dtype, [2, 3, 3])], 1, initializers={"i": idx} if const else None)
    x = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    check_model(model, {"x": x} if const else {"x": x, "i": idx})


def test_array_feature_extractor_1d_and_2d_indices() -> None:
    node = helper.make_node("ArrayFeatureExtractor", ["x", "i"], ["y"], domain=ML)
    model = ml_model(node, [("x", F32, [5]), ("i", np.int64, [1, 2])], [("y", F32, [1, 2])], 1)
    check_model(model, {"x": np.arange(5, dtype=F32), "i": np.array([[4, 1]], np.int64)})


def test_array_feature_extractor_negative_runtime_index() -> None:
    """Negative indices count from the end (the ONNX reference's reading; ONNX Runtime rejects them)."""
    import onnx2litert
    from onnx.reference import ReferenceEvaluator
    from onnx2litert.evaluate import run_tflite
    node = helper.make_node("ArrayFeatureExtractor", ["x", "i"], ["y"], domain=ML)
    model = ml_model(node, [("x", F32, [2, 4]), ("i", np.int64, [2])], [("y", F32, [2, 2])], 1)
    feeds = {"x": np.arange(8, dtype=F32).reshape(2, 4), "i": np.array([-1, 1], np.int64)}
    expected = ReferenceEvaluator(model).run(None, feeds)[0]
    got = run_tflite(onnx2litert.convert(model).artifacts["float32"], feeds)["y"]
    np.testing.assert_array_equal(got, expected)


# -- TreeEnsemble ----------------------------------------------------------------------------------
def _tree_node(x_dtype: type, splits: list[float], modes: list[int], features: list[int],
               true_ids: list[int], true_leafs: list[int], false_ids: list[int], false_leafs: list[int],
               leaf_targets: list[int], leaf_weights: list[float], roots: list[int], n_targets: int,
               **extra: object) -> onnx.NodeProto:
    tensor = lambda name, arr: numpy_helper.from_array(np.asarray(arr), name)  # noqa: E731
    attrs = dict(nodes_splits=tensor("s", np.array(splits, x_dtype)),
                 nodes_modes=tensor("m", np.array(modes, np.uint8)),
                 nodes_featureids=features, nodes_truenodeids=true_ids, nodes_trueleafs=true_leafs,
                 nodes_falsenodeids=false_ids, nodes_falseleafs=false_leafs, leaf_targetids=leaf_targets,
                 leaf_weights=tensor("w", np.array(leaf_weights, x_dtype)), tree_roots=roots, n_targets=n_targets)
    for key, value in extra.items():
        attrs[key] = tensor(key, value) if isinstance(value, np.ndarray) else value
    return helper.make_node("TreeEnsemble", ["x"], ["y"], domain=ML, **attrs)


def _two_trees(mode: int, x_dtype: type = F32, **extra: object) -> onnx.NodeProto:
    """Tree 0: node0 (f0 ? 0.3) -> node1 (f1 ? -0.1) | leaf 2; tree 1: node2 (f1 ? 0.7) -> leaf 3 | leaf 4."""
    return _tree_node(x_dtype, [0.3, -0.1, 0.7], [mode, mode, mode], [0, 1, 1],
                      true_ids=[1, 0, 3], true_leafs=[0, 1, 1], false_ids=[2, 1, 4], false_leafs=[1, 1, 1],
                      leaf_targets=[0, 1, 1, 0, 2], leaf_weights=[1.5, -2.25, 4.0, 0.125, 8.0],
                      roots=[0, 2], n_targets=3, **extra)


def _tree_inputs(dtype: type = F32) -> np.ndarray:
    x = np.random.default_rng(1).standard_normal((8, 2)).astype(dtype)
    x[0] = [0.3, -0.1]  # exactly on the thresholds (float32 values)
    x[1] = [0.7, 0.7]
    x[2] = [np.nan, 0.2]
    x[3] = [0.1, np.nan]
    return x


@pytest.mark.parametrize("mode", range(6))
@pytest.mark.parametrize("aggregate", [0, 1])
def test_tree_ensemble_modes(mode: int, aggregate: int) -> None:
    node = _two_trees(mode, aggregate_function=aggregate)
    model = ml_model(node, [("x", F32, [8, 2])], [("y", F32, [8, 3])], 5)
    check_model(model, {"x": _tree_inputs()})


@pytest.mark.parametrize("aggregate", [2, 3])
def test_tree_ensemble_min_max(aggregate: int) -> None:
    """Three trees whose leaves all feed target 0 (every row gets a value there)."""
    node = _tree_node(F32, [0.3, -0.1, 0.7], [0, 1, 3], [0, 1, 1], true_ids=[1, 0, 3], true_leafs=[0, 1, 1],
                      false_ids=[2, 1, 4], false_leafs=[1, 1, 1], leaf_targets=[0, 0, 0, 0, 0],
                      leaf_weights=[1.5, -2.25, 4.0, 0.125, 8.0], roots=[0, 2], n_targets=1,
                      aggregate_function=aggregate)
    model = ml_model(node, [("x", F32, [8, 2])], [("y", F32, [8, 1])], 5)
    check_model(model, {"x": _tree_inputs()})


@pytest.mark.parametrize("mode", [0, 3, 4, 5])
def test_tree_ensemble_missing_tracks_true(mode: int) -> None:
    node = _two_trees(mode, nodes_missing_value_tracks_true=[1, 0, 1])
    model = ml_model(node, [("x", F32, [8, 2])], [("y", F32, [8, 3])], 5)
    check_model(model, {"x": _tree_inputs()})


def test_tree_ensemble_threshold_neighbours() -> None:
    """Inputs on and one ulp around a threshold take the right branch for LEQ and LT."""
    node = _tree_node(F32, [0.1, 0.1], [0, 1], [0, 0], true_ids=[1, 0], true_leafs=[0, 1],
                      false_ids=[1, 1], false_leafs=[1, 1], leaf_targets=[0, 1], leaf_weights=[1.0, 2.0],
                      roots=[0], n_targets=2)
    model = ml_model(node, [("x", F32, [4, 1])], [("y", F32, [4, 2])], 5)
    below, above = np.nextafter(F32(0.1), F32(0)), np.nextafter(F32(0.1), F32(1))
    check_model(model, {"x": np.array([[0.1], [below], [above], [0.0]], F32)})


def test_tree_ensemble_set_membership() -> None:
    node = _tree_node(F32, [0.0, 0.0], [6, 0], [0, 1], true_ids=[0, 1], true_leafs=[1, 1], false_ids=[1, 2],
                      false_leafs=[0, 1], leaf_targets=[0, 1, 1], leaf_weights=[1.0, 10.0, 100.0], roots=[0],
                      n_targets=2, membership_values=np.array([1.0, 2.5, np.nan], F32))
    model = ml_model(node, [("x", F32, [5, 2])], [("y", F32, [5, 2])], 5)
    x = np.array([[1.0, 1.0], [2.5, -1.0], [3.0, -1.0], [np.nan, 1.0], [3.0, 1.0]], F32)
    check_model(model, {"x": x})


def test_tree_ensemble_float64_single_tree() -> None:
    node = _tree_node(np.float64, [0.3, -0.1, 0.7], [0, 1, 3], [0, 1, 1], true_ids=[1, 0, 1], true_leafs=[0, 1, 1],
                      false_ids=[2, 1, 2], false_leafs=[0, 1, 1], leaf_targets=[0, 1, 0], leaf_weights=[1.5, -0.0, 4.1],
                      roots=[0], n_targets=2)
    model = ml_model(node, [("x", np.float64, [8, 2])], [("y", np.float64, [8, 2])], 5)
    x = _tree_inputs(np.float64)
    x[4] = [-0.0, -0.1]
    x[5] = [0.30000000000000004, np.inf]
    check_model(model, {"x": x})


def test_tree_ensemble_single_leaf_tree() -> None:
    node = _tree_node(F32, [0.0], [0], [0], true_ids=[0], true_leafs=[1], false_ids=[0], false_leafs=[1],
                      leaf_targets=[1], leaf_weights=[2.5], roots=[0], n_targets=2)
    model = ml_model(node, [("x", F32, [3, 1])], [("y", F32, [3, 2])], 5)
    check_model(model, {"x": np.array([[1.0], [-1.0], [np.nan]], F32)})


def test_tree_ensemble_unsupported() -> None:
    node = _two_trees(0, post_transform=2)
    expect_failure(ml_model(node, [("x", F32, [8, 2])], [("y", F32, [8, 3])], 5), "unsupported_attribute_value")
    node = _two_trees(0, aggregate_function=2)  # target 2 may get no leaf: ORT and the reference disagree
    expect_failure(ml_model(node, [("x", F32, [8, 2])], [("y", F32, [8, 3])], 5), "unsupported_attribute_value")
    node = _two_trees(0, np.float64)  # both trees add into target 0: float64 ADD
    expect_failure(ml_model(node, [("x", np.float64, [8, 2])], [("y", np.float64, [8, 3])], 5), "unsupported_dtype")


# -- TfIdfVectorizer -------------------------------------------------------------------------------
_POOL = dict(ngram_counts=[0, 4], ngram_indexes=[0, 1, 2, 3, 4, 5, 6], pool_int64s=[2, 3, 5, 4, 5, 6, 7, 8, 6, 7])
_X = np.array([[1, 1, 3, 3, 3, 7], [8, 6, 7, 5, 6, 8]])


@pytest.mark.parametrize("mode,weights", [("TF", None), ("IDF", None), ("IDF", [0.5, 1, 2, 3, -4, 5, 6.25]),
                                          ("TFIDF", None), ("TFIDF", [0.5, 1, 2, 3, -4, 5, 6.25])])
@pytest.mark.parametrize("grams,skip", [((1, 1), 0), ((2, 2), 0), ((1, 2), 2), ((2, 2), 5)])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_tfidf(mode: str, weights: list | None, grams: tuple[int, int], skip: int, dtype: type) -> None:
    attrs = dict(_POOL, mode=mode, min_gram_length=grams[0], max_gram_length=grams[1], max_skip_count=skip)
    if weights is not None:
        attrs["weights"] = weights
    model = helper.make_model(helper.make_graph(
        [helper.make_node("TfIdfVectorizer", ["x"], ["y"], **attrs)], "tfidf",
        [helper.make_tensor_value_info("x", tensor_type(dtype), [2, 6])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 7])]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    check_model(model, {"x": _X.astype(dtype)})


@pytest.mark.parametrize("indexes", [[6, 5, 4, 3, 2, 1, 0], [0, 2, 4, 6, 8, 9, 1]])
def test_tfidf_1d_permuted_indexes(indexes: list[int]) -> None:
    attrs = dict(_POOL, ngram_indexes=indexes, mode="TF", min_gram_length=1, max_gram_length=2, max_skip_count=5)
    size = max(indexes) + 1
    model = helper.make_model(helper.make_graph(
        [helper.make_node("TfIdfVectorizer", ["x"], ["y"], **attrs)], "tfidf",
        [helper.make_tensor_value_info("x", onnx.TensorProto.INT32, [12])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [size])]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    check_model(model, {"x": _X.reshape(-1).astype(np.int32)})


def test_tfidf_string_pool_unsupported() -> None:
    node = helper.make_node("TfIdfVectorizer", ["x"], ["y"], mode="TF", min_gram_length=1, max_gram_length=1,
                            max_skip_count=0, ngram_counts=[0], ngram_indexes=[0], pool_strings=["a"])
    model = helper.make_model(helper.make_graph(
        [node], "tfidf", [helper.make_tensor_value_info("x", onnx.TensorProto.INT32, [3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    expect_failure(model, "unsupported_dtype")

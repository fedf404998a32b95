"""If -> IF, Loop -> unrolled ops or WHILE, Scan -> unrolled ops; LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.helpers import IR_VERSION, check_model, expect_failure, tensor_type

F32 = np.float32


def _vi(name: str, dtype: np.dtype | type, shape: list | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, tensor_type(dtype), shape)


def _graph(nodes: list, name: str, inputs: list, outputs: list, inits: dict | None = None) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [_vi(*i) for i in inputs], [_vi(*o) for o in outputs],
                             [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])


def _model(nodes: list, inputs: list, outputs: list, inits: dict | None = None, opset: int = 17) -> onnx.ModelProto:
    g = _graph(nodes, "test", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)


def _feeds(**arrays: np.ndarray) -> dict[str, np.ndarray]:
    return dict(arrays)


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


def _subgraph_count(result) -> int:
    from ai_edge_litert import schema_py_generated as S
    return S.Model.GetRootAsModel(result.artifacts["float32"], 0).SubgraphsLength()


# -- If -------------------------------------------------------------------------------------------

def _if_model(opset: int = 17) -> onnx.ModelProto:
    """y = c ? relu(x) * 2 : x - w  (both branches read outer values x and w)."""
    then_g = _graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", "two"], ["t_out"])],
                    "then", [], [("t_out", F32, [2, 3])], {"two": np.array(2, F32)})
    else_g = _graph([helper.make_node("Sub", ["x", "w"], ["e_out"])], "else", [], [("e_out", F32, [2, 3])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    return _model([node], [("c", bool, []), ("x", F32, [2, 3]), ("w", F32, [2, 3])], [("y", F32, [2, 3])],
                  opset=opset)


@pytest.mark.parametrize("cond", [True, False])
@pytest.mark.parametrize("opset", [11, 17, 21])
def test_if_runtime_condition(cond: bool, opset: int) -> None:
    result = check_model(_if_model(opset), _feeds(c=np.array(cond), x=_x((2, 3)), w=_x((2, 3), 1)))
    assert result.op_counts.get("IF") == 1
    assert _subgraph_count(result) == 3


def _if_outer_model(cond_shape: list) -> onnx.ModelProto:
    """Branches read runtime outer values (a, b) and a constant (k), and return an outer value as is."""
    then_g = _graph([helper.make_node("Add", ["a", "k"], ["t0"]), helper.make_node("Identity", ["b"], ["t1"])],
                    "then", [], [("t0", F32, [3]), ("t1", F32, [3])])
    else_g = _graph([helper.make_node("Identity", ["a"], ["e0"]), helper.make_node("Mul", ["b", "k"], ["e1"])],
                    "else", [], [("e0", F32, [3]), ("e1", F32, [3])])
    nodes = [helper.make_node("Exp", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["b"]),
             helper.make_node("If", ["c"], ["y0", "y1"], then_branch=then_g, else_branch=else_g)]
    return _model(nodes, [("c", bool, cond_shape), ("x", F32, [3])], [("y0", F32, [3]), ("y1", F32, [3])],
                  {"k": np.array([1.0, -2.0, 3.0], F32)})


@pytest.mark.parametrize("cond", [True, False])
@pytest.mark.parametrize("cond_shape", [[], [1]])
def test_if_outer_scope_values(cond: bool, cond_shape: list) -> None:
    check_model(_if_outer_model(cond_shape), _feeds(c=np.full(cond_shape, cond), x=_x((3,))))


def _nested_if_model() -> onnx.ModelProto:
    """Outer If on c1; its then branch holds an If on c2; all branches read x."""
    inner_then = _graph([helper.make_node("Sigmoid", ["x"], ["it"])], "inner_then", [], [("it", F32, [4])])
    inner_else = _graph([helper.make_node("Tanh", ["x"], ["ie"])], "inner_else", [], [("ie", F32, [4])])
    outer_then = _graph([helper.make_node("If", ["c2"], ["io"], then_branch=inner_then, else_branch=inner_else),
                         helper.make_node("Add", ["io", "x"], ["ot"])], "outer_then", [], [("ot", F32, [4])])
    outer_else = _graph([helper.make_node("Abs", ["x"], ["oe"])], "outer_else", [], [("oe", F32, [4])])
    node = helper.make_node("If", ["c1"], ["y"], then_branch=outer_then, else_branch=outer_else)
    return _model([node], [("c1", bool, []), ("c2", bool, []), ("x", F32, [4])], [("y", F32, [4])])


@pytest.mark.parametrize("c1,c2", [(True, True), (True, False), (False, True)])
def test_if_nested(c1: bool, c2: bool) -> None:
    result = check_model(_nested_if_model(), _feeds(c1=np.array(c1), c2=np.array(c2), x=_x((4,))))
    assert _subgraph_count(result) == 5


def test_if_int64_outputs() -> None:
    then_g = _graph([helper.make_node("Add", ["n", "one"], ["t"])], "then", [], [("t", np.int64, [2])],
                    {"one": np.array(1, np.int64)})
    else_g = _graph([helper.make_node("Neg", ["n"], ["e"])], "else", [], [("e", np.int64, [2])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    model = _model([node], [("c", bool, []), ("n", np.int64, [2])], [("y", np.int64, [2])])
    for cond in (True, False):
        check_model(model, _feeds(c=np.array(cond), n=np.array([3, -4], np.int64)))


def test_if_branch_shapes_differ() -> None:
    then_g = _graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [("t", F32, None)])
    else_g = _graph([helper.make_node("ReduceSum", ["x"], ["e"], keepdims=0)], "else", [], [("e", F32, None)])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    model = _model([node], [("c", bool, []), ("x", F32, [2, 3])], [("y", F32, None)], opset=11)
    expect_failure(model, "dynamic_shape_unsupported")


def test_if_unsupported_op_in_branch() -> None:
    then_g = _graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [("t", F32, [2])])
    else_g = _graph([helper.make_node("Bernoulli", ["x"], ["e"])], "else", [], [("e", F32, [2])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    model = _model([node], [("c", bool, []), ("x", F32, [2])], [("y", F32, [2])])
    exc = expect_failure(model, "custom_op_candidate_disabled")
    assert "Bernoulli" in str(exc)


# -- Loop -----------------------------------------------------------------------------------------

def _loop_body(n_scan: bool = True, cond_expr: str = "pass", cond_shape: list | None = None) -> onnx.GraphProto:
    """acc' = acc + x * i ; scan = acc' (per iteration); cond_out = cond_in (or i < 2)."""
    nodes = [helper.make_node("Cast", ["i"], ["i_f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x", "i_f"], ["xi"]),
             helper.make_node("Add", ["acc", "xi"], ["acc_out"])]
    if cond_expr == "pass":
        nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"]))
    elif cond_expr == "below2":  # i < 2: constant once i is
        nodes.append(helper.make_node("Less", ["i", "two"], ["cond_out"]))
    elif cond_expr == "data":  # keep going while sum(acc) < limit: data dependent
        nodes += [helper.make_node("ReduceSum", ["acc_out"], ["s"], keepdims=0),
                  helper.make_node("Less", ["s", "limit"], ["cond_out"])]
    cond_shape = [] if cond_shape is None else cond_shape
    outputs = [("cond_out", bool, cond_shape if cond_expr == "pass" else []), ("acc_out", F32, [2, 3])]
    if n_scan:
        nodes.append(helper.make_node("Relu", ["acc_out"], ["scan"]))
        outputs.append(("scan", F32, [2, 3]))
    inits = {"two": np.array(2, np.int64)} if cond_expr == "below2" else None
    inputs = [("i", np.int64, []), ("cond_in", bool, cond_shape), ("acc", F32, [2, 3])]
    return _graph(nodes, "body", inputs, outputs, inits)


@pytest.mark.parametrize("trip", [1, 4])
@pytest.mark.parametrize("opset", [11, 17])
def test_loop_constant_trip_count_unrolled(trip: int, opset: int) -> None:
    node = helper.make_node("Loop", ["M", "", "acc0"], ["acc", "scan"], body=_loop_body())
    model = _model([node], [("x", F32, [2, 3]), ("acc0", F32, [2, 3])],
                   [("acc", F32, [2, 3]), ("scan", F32, [trip, 2, 3])], {"M": np.array(trip, np.int64)}, opset)
    result = check_model(model, _feeds(x=_x((2, 3)), acc0=_x((2, 3), 1)))
    assert "WHILE" not in result.op_counts and _subgraph_count(result) == 1


def test_loop_constant_condition_stops_early() -> None:
    """cond_out = i < 2 folds per unrolled iteration: 3 iterations of M = 10."""
    node = helper.make_node("Loop", ["M", "c", "acc0"], ["acc", "scan"], body=_loop_body(cond_expr="below2"))
    model = _model([node], [("x", F32, [2, 3]), ("acc0", F32, [2, 3])],
                   [("acc", F32, [2, 3]), ("scan", F32, [3, 2, 3])],
                   {"M": np.array(10, np.int64), "c": np.array(True)})
    result = check_model(model, _feeds(x=_x((2, 3)), acc0=_x((2, 3), 1)))
    assert "WHILE" not in result.op_counts


def test_loop_runtime_trip_count_while() -> None:
    node = helper.make_node("Loop", ["m", "", "acc0"], ["acc"], body=_loop_body(n_scan=False))
    model = _model([node], [("m", np.int64, []), ("x", F32, [2, 3]), ("acc0", F32, [2, 3])],
                   [("acc", F32, [2, 3])])
    for m in (0, 3):
        result = check_model(model, _feeds(m=np.array(m, np.int64), x=_x((2, 3)), acc0=_x((2, 3), 1)))
        assert result.op_counts.get("WHILE") == 1 and _subgraph_count(result) == 3


@pytest.mark.parametrize("with_m", [False, True])
def test_loop_runtime_condition_while(with_m: bool) -> None:
    """Data-dependent cond_out; with M = 4 the trip count bounds it too."""
    node = helper.make_node("Loop", ["M" if with_m else "", "c", "acc0"], ["acc"],
                            body=_loop_body(n_scan=False, cond_expr="data", cond_shape=[1]))
    inits = {"limit": np.array(20.0, F32)}
    if with_m:
        inits["M"] = np.array(4, np.int64)
    model = _model([node], [("c", bool, [1]), ("x", F32, [2, 3]), ("acc0", F32, [2, 3])],
                   [("acc", F32, [2, 3])], inits)
    x = np.abs(_x((2, 3))) + 0.5
    for c in (True, False):
        result = check_model(model, _feeds(c=np.array([c]), x=x, acc0=np.zeros((2, 3), F32)))
        assert result.op_counts.get("WHILE") == 1


def test_loop_while_two_carried_int64_counter() -> None:
    """Two loop-carried values (float and int64) and an outer runtime value read by the body."""
    body = _graph([helper.make_node("Add", ["n", "step"], ["n_out"]),
                   helper.make_node("Mul", ["v", "scale"], ["v_out"]),
                   helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                  [("i", np.int64, []), ("cond_in", bool, []), ("n", np.int64, [1]), ("v", F32, [3])],
                  [("cond_out", bool, []), ("n_out", np.int64, [1]), ("v_out", F32, [3])],
                  {"step": np.array([2], np.int64)})
    node = helper.make_node("Loop", ["m", "", "n0", "v0"], ["n", "v"], body=body)
    model = _model([node], [("m", np.int64, [1]), ("n0", np.int64, [1]), ("v0", F32, [3]), ("scale", F32, [3])],
                   [("n", np.int64, [1]), ("v", F32, [3])])
    check_model(model, _feeds(m=np.array([3], np.int64), n0=np.array([5], np.int64), v0=_x((3,)),
                              scale=np.array([0.5, -1.5, 1.0], F32)))


def test_loop_runtime_trip_count_with_scan_outputs_fails() -> None:
    node = helper.make_node("Loop", ["m", "", "acc0"], ["acc", "scan"], body=_loop_body())
    model = _model([node], [("m", np.int64, []), ("x", F32, [2, 3]), ("acc0", F32, [2, 3])],
                   [("acc", F32, [2, 3]), ("scan", F32, None)])
    expect_failure(model, "dynamic_shape_unsupported")


def test_loop_carried_shape_changes_in_while_fails() -> None:
    body = _graph([helper.make_node("Concat", ["v", "v"], ["v_out"], axis=0),
                   helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                  [("i", np.int64, []), ("cond_in", bool, []), ("v", F32, None)],
                  [("cond_out", bool, []), ("v_out", F32, None)])
    node = helper.make_node("Loop", ["m", "", "v0"], ["v"], body=body)
    model = _model([node], [("m", np.int64, []), ("v0", F32, [2])], [("v", F32, None)])
    expect_failure(model, "dynamic_shape_unsupported")


def test_loop_carried_shape_changes_unrolled() -> None:
    """Unrolling handles a loop-carried value whose shape grows each iteration."""
    body = _graph([helper.make_node("Concat", ["v", "v"], ["v_out"], axis=0),
                   helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                  [("i", np.int64, []), ("cond_in", bool, []), ("v", F32, None)],
                  [("cond_out", bool, []), ("v_out", F32, None)])
    node = helper.make_node("Loop", ["M", "", "v0"], ["v"], body=body)
    model = _model([node], [("v0", F32, [2])], [("v", F32, [8])], {"M": np.array(2, np.int64)})
    check_model(model, _feeds(v0=_x((2,))))


# -- Scan -----------------------------------------------------------------------------------------

def _scan_model(in_dir: int, out_dir: int, out_axis: int) -> onnx.ModelProto:
    """Running sum over axis 1 of x [2, 3, 4] (state [2, 4]), scan output = state * w."""
    body = _graph([helper.make_node("Add", ["s", "xt"], ["s_out"]), helper.make_node("Mul", ["s_out", "w"], ["o"])],
                  "body", [("s", F32, [2, 4]), ("xt", F32, [2, 4])], [("s_out", F32, [2, 4]), ("o", F32, [2, 4])])
    node = helper.make_node("Scan", ["s0", "x"], ["s", "ys"], body=body, num_scan_inputs=1, scan_input_axes=[1],
                            scan_input_directions=[in_dir], scan_output_directions=[out_dir],
                            scan_output_axes=[out_axis])
    out_shape = [3, 2, 4] if out_axis == 0 else [2, 4, 3]
    return _model([node], [("s0", F32, [2, 4]), ("x", F32, [2, 3, 4]), ("w", F32, [2, 4])],
                  [("s", F32, [2, 4]), ("ys", F32, out_shape)])


@pytest.mark.parametrize("in_dir,out_dir,out_axis", [(0, 0, 0), (1, 0, 0), (0, 1, -1)])
def test_scan_unrolled(in_dir: int, out_dir: int, out_axis: int) -> None:
    result = check_model(_scan_model(in_dir, out_dir, out_axis),
                         _feeds(s0=_x((2, 4)), x=_x((2, 3, 4), 1), w=_x((2, 4), 2)))
    assert _subgraph_count(result) == 1


def test_loop_constant_trip_count_above_unroll_limit_while() -> None:
    """A constant trip count above MAX_UNROLL (no scan outputs) runs as WHILE with M in the cond subgraph."""
    body = _graph([helper.make_node("Add", ["v", "x"], ["v_out"]),
                   helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                  [("i", np.int64, []), ("cond_in", bool, []), ("v", F32, [3])],
                  [("cond_out", bool, []), ("v_out", F32, [3])])
    node = helper.make_node("Loop", ["M", "", "v0"], ["v"], body=body)
    model = _model([node], [("v0", F32, [3]), ("x", F32, [3])], [("v", F32, [3])], {"M": np.array(100, np.int64)})
    result = check_model(model, _feeds(v0=_x((3,)), x=_x((3,), 1)))
    assert result.op_counts.get("WHILE") == 1


def test_loop_data_dependent_condition_with_scan_outputs_fails() -> None:
    node = helper.make_node("Loop", ["M", "c", "acc0"], ["acc", "scan"], body=_loop_body(cond_expr="data"))
    model = _model([node], [("c", bool, []), ("x", F32, [2, 3]), ("acc0", F32, [2, 3])],
                   [("acc", F32, [2, 3]), ("scan", F32, None)],
                   {"M": np.array(4, np.int64), "limit": np.array(20.0, F32)})
    expect_failure(model, "dynamic_shape_unsupported")


def test_if_branch_with_conv_float16() -> None:
    """A spatial op inside a branch (layout transposes are optimized per subgraph); float16 weights too."""
    w = np.random.default_rng(3).standard_normal((4, 3, 3, 3)).astype(F32)
    then_g = _graph([helper.make_node("Conv", ["x", "w"], ["t"], pads=[1, 1, 1, 1]),
                     helper.make_node("Relu", ["t"], ["t_out"])], "then", [], [("t_out", F32, [1, 4, 5, 5])])
    else_g = _graph([helper.make_node("Conv", ["x", "w"], ["e"], pads=[1, 1, 1, 1], strides=[1, 1]),
                     helper.make_node("Sigmoid", ["e"], ["e_out"])], "else", [], [("e_out", F32, [1, 4, 5, 5])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    model = _model([node], [("c", bool, []), ("x", F32, [1, 3, 5, 5])], [("y", F32, [1, 4, 5, 5])], {"w": w})
    for cond in (True, False):
        feeds = _feeds(c=np.array(cond), x=_x((1, 3, 5, 5)))
        check_model(model, feeds)
        check_model(model, feeds, variant="float16", tol=1e-2)


def test_scan8_batched() -> None:
    """Scan-8: batch axis 0, sequence axis 1, reverse direction, constant full sequence_lens."""
    body = _graph([helper.make_node("Add", ["s", "xt"], ["s_out"]), helper.make_node("Mul", ["s_out", "xt"], ["o"])],
                  "body", [("s", F32, [2]), ("xt", F32, [2])], [("s_out", F32, [2]), ("o", F32, [2])])
    node = helper.make_node("Scan", ["lens", "s0", "x"], ["s", "ys"], body=body, num_scan_inputs=1, directions=[1])
    model = _model([node], [("s0", F32, [2, 2]), ("x", F32, [2, 3, 2])], [("s", F32, [2, 2]), ("ys", F32, [2, 3, 2])],
                   {"lens": np.array([3, 3], np.int64)}, opset=8)
    check_model(model, _feeds(s0=_x((2, 2)), x=_x((2, 3, 2), 1)))


def test_scan8_short_sequence_lens_fails() -> None:
    body = _graph([helper.make_node("Add", ["s", "xt"], ["s_out"])], "body", [("s", F32, [2]), ("xt", F32, [2])],
                  [("s_out", F32, [2])])
    node = helper.make_node("Scan", ["lens", "s0", "x"], ["s"], body=body, num_scan_inputs=1)
    model = _model([node], [("s0", F32, [2, 2]), ("x", F32, [2, 3, 2])], [("s", F32, [2, 2])],
                   {"lens": np.array([3, 2], np.int64)}, opset=8)
    expect_failure(model, "unsupported_attribute_value")


def test_scan_too_long_fails() -> None:
    body = _graph([helper.make_node("Add", ["s", "xt"], ["s_out"])], "body", [("s", F32, [2]), ("xt", F32, [2])],
                  [("s_out", F32, [2])])
    node = helper.make_node("Scan", ["s0", "x"], ["s"], body=body, num_scan_inputs=1)
    model = _model([node], [("s0", F32, [2]), ("x", F32, [65, 2])], [("s", F32, [2])])
    expect_failure(model, "dynamic_shape_unsupported")


@pytest.mark.parametrize("trip", [3, 70])
def test_loop_constant_true_condition_with_scan_outputs(trip: int) -> None:
    """cond = True and cond_out = cond_in: unrolled (small M) or WHILE filling [M, ...] buffers (large M)."""
    node = helper.make_node("Loop", ["M", "c", "acc0"], ["acc", "scan"], body=_loop_body())
    model = _model([node], [("x", F32, [2, 3]), ("acc0", F32, [2, 3])],
                   [("acc", F32, [2, 3]), ("scan", F32, [trip, 2, 3])],
                   {"M": np.array(trip, np.int64), "c": np.array(True)})
    result = check_model(model, _feeds(x=_x((2, 3)) * 0.01, acc0=_x((2, 3), 1)))
    assert ("WHILE" in result.op_counts) == (trip > 16)

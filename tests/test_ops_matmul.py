"""MatMul and Gemm lowerings: LiteRT vs ONNX Runtime on tiny seeded models."""
from __future__ import annotations

import numpy as np
import pytest

from onnx import helper

import onnx2litert
from onnx2litert.export.schema import S
from onnx2litert.ir import Operator, Tensor
from onnx2litert.lower.ops.matmul import is_per_column, merge_batch_dims, swapped_source
from tests.helpers import check_model, expect_failure, make_model, single_op_model

F32 = np.float32


def lowered_ops(model) -> dict[str, int]:
    """Op counts straight out of the lowering (no optimization passes), for structure checks."""
    return onnx2litert.convert(model, optimize=False).op_counts


def _rand(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


def _matmul_model(sa, sb, b_const, opset=13):
    out = list(np.matmul(np.zeros(sa), np.zeros(sb)).shape)
    if b_const:
        return single_op_model("MatMul", [("a", F32, sa)], out, initializers={"b": _rand(sb)}, opset=opset)
    return single_op_model("MatMul", [("a", F32, sa), ("b", F32, sb)], out, opset=opset)


MATMUL_SHAPES = [
    ([2, 3], [3, 4]),
    ([3], [3, 4]),          # 1-D A
    ([2, 3], [3]),          # 1-D B
    ([3], [3]),             # both 1-D: scalar result
    ([2, 2, 3], [3, 4]),    # batched A, 2-D B
    ([2, 1, 2, 2, 3], [3, 4]),
    ([2, 2, 2, 2, 2, 3], [3, 4]),
    ([3], [2, 3, 4]),
    ([2, 2, 3], [3]),
]


@pytest.mark.parametrize("b_const", [True, False], ids=["constB", "runtimeB"])
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}x{b}" for a, b in MATMUL_SHAPES])
def test_matmul_shapes(sa, sb, b_const):
    model = _matmul_model(sa, sb, b_const)
    check_model(model)
    ops = lowered_ops(model)
    if b_const and len(sb) <= 2:
        assert "FULLY_CONNECTED" in ops and "BATCH_MATMUL" not in ops
    else:
        assert "BATCH_MATMUL" in ops


BATCHED = [
    ([2, 2, 3], [2, 3, 4]),
    ([2, 1, 2, 3], [3, 3, 4]),        # batch broadcasting both ways
    ([2, 3], [2, 2, 3, 4]),           # 2-D A against batched B
    ([1, 2, 2, 1, 2, 3], [2, 1, 2, 1, 3, 4]),  # rank 6 with mergeable batch dims
    ([2, 1, 2, 3, 2, 3], [1, 3, 4]),
]


@pytest.mark.parametrize("b_const", [True, False], ids=["constB", "runtimeB"])
@pytest.mark.parametrize("sa,sb", BATCHED, ids=[f"{a}x{b}" for a, b in BATCHED])
def test_matmul_batched(sa, sb, b_const):
    model = _matmul_model(sa, sb, b_const)
    check_model(model)
    assert "BATCH_MATMUL" in lowered_ops(model)


@pytest.mark.parametrize("opset", [7, 9, 13, 21])
def test_matmul_opsets(opset):
    check_model(_matmul_model([2, 3], [3, 4], True, opset))
    check_model(_matmul_model([2, 2, 3], [2, 3, 4], False, opset))


@pytest.mark.parametrize("sb", [[3, 4], [2, 3, 4]])
def test_matmul_const_a(sb):
    out = list(np.matmul(np.zeros([2, 3]), np.zeros(sb)).shape)
    model = single_op_model("MatMul", [("b", F32, sb)], out, initializers={"a": _rand([2, 3])},
                            input_names=["a", "b"])
    check_model(model)


def test_matmul_rank_unmergeable_fails():
    # Batch dims alternate between broadcasting in A and in B: no reshape brings them to rank 5.
    expect_failure(_matmul_model([2, 1, 2, 1, 2, 2, 3], [2, 1, 2, 1, 3, 4], False), "unsupported_attribute_value")


def test_matmul_int32_unsupported():
    model = single_op_model("MatMul", [("a", np.int32, [2, 3]), ("b", np.int32, [3, 4])], [2, 4])
    expect_failure(model, "unsupported_dtype")


def test_merge_batch_dims():
    assert merge_batch_dims((2, 3, 4), (2, 3, 4)) == ((24,), (24,))
    assert merge_batch_dims((2, 1, 3), (1, 5, 1)) == ((2, 1, 3), (1, 5, 1))
    assert merge_batch_dims((1, 2, 2, 1), (2, 1, 2, 1)) == ((1, 2, 2), (2, 1, 2))
    assert merge_batch_dims((4,), ()) == ((4,), (1,))


# ---------------------------------------------------------------------------------------
# Gemm
# ---------------------------------------------------------------------------------------
M, K, N = 3, 4, 5


def _gemm_model(*, trans_a=0, trans_b=0, alpha=None, beta=None, c_shape=(N,), b_const=True, c_const=True,
                opset=13):
    sa = [K, M] if trans_a else [M, K]
    sb = [N, K] if trans_b else [K, N]
    inputs = [("a", F32, sa)]
    inits = {}
    names = ["a", "b"]
    if b_const:
        inits["b"] = _rand(sb, 2)
    else:
        inputs.append(("b", F32, sb))
    if c_shape is not None:
        names.append("c")
        if c_const:
            inits["c"] = _rand(c_shape, 3)
        else:
            inputs.append(("c", F32, list(c_shape)))
    attrs = {"transA": trans_a, "transB": trans_b}
    if alpha is not None:
        attrs["alpha"] = alpha
    if beta is not None:
        attrs["beta"] = beta
    # Keep graph inputs first, then initializers, in the node's (a, b, c) order.
    return single_op_model("Gemm", inputs, [M, N], initializers=inits, opset=opset, input_names=names, **attrs)


C_SHAPES = [None, (), (1,), (N,), (1, N), (M, N), (M, 1), (1, 1)]


@pytest.mark.parametrize("c_shape", C_SHAPES, ids=[str(c) for c in C_SHAPES])
@pytest.mark.parametrize("b_const", [True, False], ids=["constB", "runtimeB"])
def test_gemm_c_shapes(c_shape, b_const):
    model = _gemm_model(c_shape=c_shape, b_const=b_const, alpha=0.5, beta=2.0)
    check_model(model)
    ops = lowered_ops(model)
    if b_const:
        assert "FULLY_CONNECTED" in ops
        # A per-column C becomes the FULLY_CONNECTED bias; other shapes need an ADD.
        assert ("ADD" in ops) == (c_shape is not None and not is_per_column(c_shape, N))
    else:
        assert "BATCH_MATMUL" in ops


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("b_const", [True, False], ids=["constB", "runtimeB"])
def test_gemm_transpose(trans_a, trans_b, b_const):
    check_model(_gemm_model(trans_a=trans_a, trans_b=trans_b, b_const=b_const))


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.25, 1.0), (1.0, -3.0), (2.0, 0.0)])
@pytest.mark.parametrize("c_shape", [(N,), (M, N)], ids=["perColumn", "full"])
@pytest.mark.parametrize("b_const", [True, False], ids=["constB", "runtimeB"])
def test_gemm_alpha_beta(alpha, beta, c_shape, b_const):
    check_model(_gemm_model(alpha=alpha, beta=beta, c_shape=c_shape, b_const=b_const))


@pytest.mark.parametrize("c_shape", [(N,), (M, N), (1, 1)], ids=["perColumn", "full", "scalar"])
@pytest.mark.parametrize("b_const", [True, False], ids=["constB", "runtimeB"])
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_gemm_runtime_c(c_shape, b_const, beta):
    check_model(_gemm_model(c_shape=c_shape, b_const=b_const, c_const=False, beta=beta))


@pytest.mark.parametrize("opset", [7, 9, 11, 13, 21])
def test_gemm_opsets(opset):
    check_model(_gemm_model(opset=opset, trans_b=1, alpha=1.5))
    if opset >= 11:  # C is optional from opset 11
        check_model(_gemm_model(opset=opset, c_shape=None))


def test_gemm_const_a_runtime_b():
    model = single_op_model("Gemm", [("b", F32, [K, N])], [M, N], initializers={"a": _rand([M, K])},
                            input_names=["a", "b"], alpha=0.5)
    check_model(model)


def test_gemm_int32_unsupported():
    model = single_op_model("Gemm", [("a", np.int32, [M, K]), ("b", np.int32, [K, N])], [M, N])
    expect_failure(model, "unsupported_dtype")


# ---------------------------------------------------------------------------------------
# MatMul of a transposed run-time operand (adjY)
# ---------------------------------------------------------------------------------------
def _batch_matmul_adj_y(data: bytes) -> list[bool]:
    """The adjY flag of every BATCH_MATMUL in the main subgraph of a .tflite flatbuffer."""
    model = S.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    flags = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != S.BuiltinOperator.BATCH_MATMUL:
            continue
        opts = S.BatchMatMulOptions()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        flags.append(bool(opts.AdjY()))
    return flags


def _transposed_b_model(sa, sb, perm, extra_use=False):
    """MatMul(a, Transpose(b, perm)); with ``extra_use`` the transposed tensor is also an output."""
    bt_shape = [sb[p] for p in perm]
    out = list(np.matmul(np.zeros(sa), np.zeros(bt_shape)).shape)
    nodes = [helper.make_node("Transpose", ["b"], ["bt"], perm=perm), helper.make_node("MatMul", ["a", "bt"], ["y"])]
    outputs = [("y", F32, out)] + ([("bt", F32, bt_shape)] if extra_use else [])
    return make_model(nodes, [("a", F32, sa), ("b", F32, sb)], outputs, opset=13)


TRANSPOSED_B = [
    ([2, 3], [4, 3], [1, 0]),
    ([2, 2, 3], [2, 4, 3], [0, 2, 1]),
    ([1, 2, 2, 3], [1, 2, 4, 3], [0, 1, 3, 2]),
    ([2, 2, 2, 3], [4, 3], [1, 0]),          # 2-D transposed B against batched A
    ([2, 3], [2, 2, 4, 3], [0, 1, 3, 2]),    # batched transposed B against 2-D A
    ([2, 1, 2, 3], [3, 4, 3], [0, 2, 1]),    # batch broadcasting
    ([1, 2, 2, 1, 2, 3], [2, 1, 2, 1, 4, 3], [0, 1, 2, 3, 5, 4]),  # rank 6: merged batch dims
]


@pytest.mark.parametrize("sa,sb,perm", TRANSPOSED_B, ids=[f"{a}x{b}" for a, b, _ in TRANSPOSED_B])
def test_matmul_transposed_b_uses_adj_y(sa, sb, perm):
    """A Transpose swapping B's last two axes is read through BATCH_MATMUL's adjY and disappears."""
    result = check_model(_transposed_b_model(sa, sb, perm))
    assert "TRANSPOSE" not in result.op_counts and result.op_counts.get("BATCH_MATMUL") == 1
    assert _batch_matmul_adj_y(result.artifacts["float32"]) == [True]


def test_matmul_transposed_b_other_perm_keeps_transpose():
    """A Transpose that also moves batch dims is not a last-two-axes swap: it stays."""
    result = check_model(_transposed_b_model([2, 2, 3], [3, 2, 4], [1, 0, 2]))
    assert result.op_counts.get("TRANSPOSE") == 1 and _batch_matmul_adj_y(result.artifacts["float32"]) == [False]


def test_matmul_transposed_b_also_output():
    """The transposed tensor is also a graph output: the TRANSPOSE stays for it, MatMul still uses adjY."""
    result = check_model(_transposed_b_model([2, 2, 3], [2, 4, 3], [0, 2, 1], extra_use=True))
    assert result.op_counts.get("TRANSPOSE") == 1 and _batch_matmul_adj_y(result.artifacts["float32"]) == [True]


def test_swapped_source():
    a, s = Tensor("a", (2, 3, 4), np.dtype(F32)), Tensor("s", (2, 4, 3), np.dtype(F32))
    perm = Tensor("p", (3,), np.dtype(np.int32), data=np.array([0, 2, 1], np.int32))
    ops = [Operator("TRANSPOSE", [s, perm], [a])]
    assert swapped_source(ops, a) is s
    perm_other = Tensor("q", (3,), np.dtype(np.int32), data=np.array([1, 0, 2], np.int32))
    assert swapped_source([Operator("TRANSPOSE", [s, perm_other], [a])], a) is None
    assert swapped_source([Operator("RESHAPE", [s, perm], [a])], a) is None
    assert swapped_source([], a) is None

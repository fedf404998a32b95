"""Einsum lowering vs ONNX Runtime over a broad set of equations (check_model runs XNNPACK and the
builtin kernels); equation parsing unit tests."""
from __future__ import annotations

import numpy as np
import pytest

import onnx2litert
from onnx2litert.lower.ops.matmul import diagonal_step, parse_einsum
from tests.helpers import check_model, expect_failure, single_op_model

F32 = np.float32


def _rand(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


def einsum_model(equation, shapes, const=(), dtype=F32, opset=13):
    """One Einsum node; operands whose index is in ``const`` are initializers, the rest graph inputs."""
    out = list(np.einsum(equation, *[np.zeros(s) for s in shapes]).shape)
    names = [f"x{i}" for i in range(len(shapes))]
    inputs = [(n, dtype, list(s)) for i, (n, s) in enumerate(zip(names, shapes)) if i not in const]
    inits = {n: _rand(s, seed=10 + i) for i, (n, s) in enumerate(zip(names, shapes)) if i in const}
    return single_op_model("Einsum", inputs, out, initializers=inits, opset=opset, input_names=names,
                           equation=equation)


def lowered_ops(model) -> dict[str, int]:
    return onnx2litert.convert(model, optimize=False).op_counts


CASES = [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("bhqk,bhkd->bhqd", [(1, 2, 3, 5), (1, 2, 5, 4)]),
    ("bqhd,bkhd->bhqk", [(2, 3, 2, 4), (2, 5, 2, 4)]),
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("ij,kj->ik", [(3, 4), (5, 4)]),
    ("ji,jk->ik", [(4, 3), (4, 5)]),
    ("ij,jk->ki", [(3, 4), (4, 5)]),
    ("ij,jk->", [(3, 4), (4, 5)]),
    ("bi,bi->b", [(3, 4), (3, 4)]),
    ("i,i->", [(5,), (5,)]),
    ("i,i", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,j", [(3,), (4,)]),
    ("bi,bj->bij", [(2, 3), (2, 4)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ij,ij->", [(3, 4), (3, 4)]),
    ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 5)]),
    ("Ab,bC->AC", [(3, 4), (4, 5)]),
    ("b i j , b j k -> b i k", [(2, 3, 4), (2, 4, 5)]),
    ("bij->bji", [(2, 3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij->j", [(3, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ij->ij", [(3, 4)]),
    ("ba", [(3, 4)]),
    ("ij", [(3, 4)]),
    ("bij,bjk,bkl->bil", [(2, 3, 4), (2, 4, 5), (2, 5, 3)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("i,i,i->i", [(4,), (4,), (4,)]),
    ("abc,cd,de->abe", [(2, 3, 4), (4, 5), (5, 3)]),
    ("ab,bc,ad->cd", [(2, 3), (3, 4), (2, 5)]),
    (",ij->ij", [(), (3, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk", [(2, 2, 3, 4), (2, 2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (1, 3, 4, 5)]),
    ("...ij->...ji", [(2, 3, 4)]),
    ("...i,...i->...", [(2, 3, 4), (2, 3, 4)]),
    ("i...->...", [(3, 2, 4)]),
    ("bij,jk->bik", [(2, 3, 4), (4, 5)]),
    ("bhwc,co->bhwo", [(1, 2, 3, 4), (4, 5)]),
    ("abcdef,abcdfg->abcdeg", [(2, 1, 2, 1, 2, 3), (2, 1, 2, 1, 3, 2)]),
]


@pytest.mark.parametrize("equation,shapes", CASES, ids=[c[0].replace(" ", "") for c in CASES])
def test_einsum_inputs(equation, shapes):
    check_model(einsum_model(equation, shapes))


CONST_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)], (1,)),
    ("ij,kj->ik", [(3, 4), (5, 4)], (1,)),
    ("bij,jk->bik", [(2, 3, 4), (4, 5)], (1,)),
    ("bhwc,co->bhwo", [(1, 2, 3, 4), (4, 5)], (1,)),
    ("jk,ij->ik", [(4, 5), (3, 4)], (0,)),
    ("i,j->ij", [(3,), (4,)], (1,)),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], (1,)),
    ("bi,i->b", [(2, 3), (3,)], (1,)),
]


@pytest.mark.parametrize("equation,shapes,const", CONST_CASES, ids=[f"{c[0]}-const{c[2]}" for c in CONST_CASES])
def test_einsum_constant_operand(equation, shapes, const):
    check_model(einsum_model(equation, shapes, const))


def test_einsum_structure():
    """Attention einsums need no TRANSPOSE (adjY); a constant right operand becomes FULLY_CONNECTED."""
    assert lowered_ops(einsum_model("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)])) == {"BATCH_MATMUL": 1}
    assert lowered_ops(einsum_model("bhqk,bhkd->bhqd", [(1, 2, 3, 5), (1, 2, 5, 4)])) == {"BATCH_MATMUL": 1}
    assert lowered_ops(einsum_model("ij,kj->ik", [(3, 4), (5, 4)], (1,))) == {"FULLY_CONNECTED": 1}
    assert lowered_ops(einsum_model("i,j->ij", [(3,), (4,)])) == {"MUL": 1, "RESHAPE": 2}


def test_einsum_opset_ends():
    check_model(einsum_model("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], opset=12))
    check_model(einsum_model("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], opset=21))


DIAGONAL_CASES = [
    ("ii->i", [(3, 3)]),
    ("ii->", [(3, 3)]),
    ("ii", [(3, 3)]),                       # implicit output: trace
    ("bhss->bhs", [(2, 2, 3, 3)]),
    ("bhss->bh", [(2, 2, 3, 3)]),
    ("bii,bj->bj", [(2, 3, 3), (2, 4)]),
    ("bii,bi->bi", [(2, 3, 3), (2, 3)]),
    ("iij->ij", [(3, 3, 4)]),
    ("iji->ij", [(3, 4, 3)]),               # repeated axes not adjacent: TRANSPOSE first
    ("jii->ji", [(4, 3, 3)]),
    ("iii->i", [(3, 3, 3)]),
    ("ijij->ij", [(2, 3, 2, 3)]),           # two repeated labels
    ("ij,jj->i", [(3, 4), (4, 4)]),
    ("ii,jj->ij", [(3, 3), (4, 4)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("bhqd,bhkd,bhqq->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 3, 3)]),
]


@pytest.mark.parametrize("equation,shapes", DIAGONAL_CASES, ids=[c[0] for c in DIAGONAL_CASES])
def test_einsum_diagonal(equation, shapes):
    check_model(einsum_model(equation, shapes))


@pytest.mark.parametrize("equation,shapes,const", [("ii,ij->j", [(3, 3), (3, 4)], (0,)),
                                                   ("ij,jj->i", [(3, 4), (4, 4)], (1,))])
def test_einsum_diagonal_constant(equation, shapes, const):
    """A constant operand's diagonal is taken at conversion time."""
    model = einsum_model(equation, shapes, const)
    check_model(model)
    assert "GATHER" not in lowered_ops(model)


def test_einsum_diagonal_structure():
    """Adjacent repeated axes: RESHAPE + GATHER, no TRANSPOSE; otherwise a TRANSPOSE brings them together."""
    assert lowered_ops(einsum_model("bhss->bhs", [(2, 2, 3, 3)])) == {"RESHAPE": 1, "GATHER": 1}
    assert lowered_ops(einsum_model("iji->ij", [(3, 4, 3)])) == {"TRANSPOSE": 1, "RESHAPE": 1, "GATHER": 1}


def test_diagonal_step():
    step = diagonal_step(("b", "i", "j", "i"), (2, 3, 4, 3))
    assert step.perm == (0, 1, 3, 2) and step.merged_shape == (2, 9, 4) and step.axis == 1
    assert step.indices.tolist() == [0, 4, 8] and step.labels == ("b", "i", "j")
    step = diagonal_step(("i", "i", "i"), (2, 2, 2))
    assert step.perm is None and step.merged_shape == (8,) and step.indices.tolist() == [0, 7]
    assert diagonal_step(("i", "j"), (2, 3)) is None
    x = _rand((2, 3, 4, 3))
    data = np.take(np.transpose(x, (0, 1, 3, 2)).reshape(2, 9, 4), [0, 4, 8], axis=1)
    np.testing.assert_array_equal(data, np.einsum("biji->bij", x))


def test_einsum_diagonal_size_mismatch_fails():
    model = single_op_model("Einsum", [("x0", F32, [3, 4])], [3], equation="ii->i")
    expect_failure(model, "unsupported_attribute_value")


def test_einsum_int_fails():
    expect_failure(einsum_model("ij,jk->ik", [(3, 4), (4, 5)], dtype=np.int32), "unsupported_dtype")


@pytest.mark.parametrize("equation,shapes,out", [("...i,...i->i", [[1, 3], [2, 3]], [3]),
                                                 ("...ij->ij", [[2, 3, 4]], [3, 4])])
def test_einsum_ellipsis_missing_in_output_fails(equation, shapes, out):
    """numpy and ONNX Runtime reject an output without '...' when the inputs have one."""
    model = single_op_model("Einsum", [(f"x{i}", F32, s) for i, s in enumerate(shapes)], out, equation=equation)
    expect_failure(model, "unsupported_attribute_value")


def test_einsum_ellipsis_broadcast_moved_to_end():
    """Ellipsis dims broadcast (1 vs 2) and may sit anywhere in the output."""
    model = single_op_model("Einsum", [("x0", F32, [1, 3]), ("x1", F32, [2, 3])], [3, 2], equation="...i,...i->i...")
    check_model(model)


def test_parse_einsum():
    spec = parse_einsum("...ij,...jk", [4, 3])
    assert spec.inputs == (("...0", "...1", "i", "j"), ("...1", "j", "k"))
    assert spec.output == ("...0", "...1", "i", "k")
    assert parse_einsum("ba", [2]).output == ("a", "b")
    assert parse_einsum("Ab,bC", [2, 2]).output == ("A", "C")
    assert parse_einsum("ij,jk->", [2, 2]).output == ()
    for bad, ranks in [("ij->ik", [2]), ("ij,jk", [2]), ("ij", [3]), ("i.j", [2]), ("ij->ii", [2]),
                       ("i->j->k", [1]), ("......", [2])]:
        with pytest.raises(ValueError):
            parse_einsum(bad, ranks)

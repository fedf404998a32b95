"""Shared test helpers: build small ONNX models, convert them, run LiteRT vs ONNX Runtime."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite

IR_VERSION = 10  # ONNX Runtime reads up to 13; opset 21 needs 10


def tensor_type(dtype: np.dtype | type | str) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def make_model(nodes: Iterable[onnx.NodeProto], inputs: list[tuple[str, np.dtype, list]],
               outputs: list[tuple[str, np.dtype, list | None]], initializers: dict[str, np.ndarray] | None = None,
               opset: int = 17) -> onnx.ModelProto:
    """A model from nodes; inputs/outputs are (name, dtype, shape) (shape None = infer)."""
    graph = helper.make_graph(
        list(nodes), "test",
        [helper.make_tensor_value_info(n, tensor_type(d), s) for n, d, s in inputs],
        [helper.make_tensor_value_info(n, tensor_type(d), s) for n, d, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)
    if any(s is None for _, _, s in outputs):  # fill output types from shape inference (checker needs them)
        inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model, data_prop=True).graph.output}
        for vi in model.graph.output:
            if vi.name in inferred and inferred[vi.name].type.tensor_type.HasField("shape"):
                vi.CopyFrom(inferred[vi.name])
    return model


def single_op_model(op_type: str, inputs: list[tuple[str, np.dtype, list]], output_shape: list | None = None,
                    output_dtype: np.dtype | None = None, initializers: dict[str, np.ndarray] | None = None,
                    opset: int = 17, n_outputs: int = 1, input_names: list[str] | None = None,
                    **attrs: object) -> onnx.ModelProto:
    """A model with one node; graph inputs are ``inputs``, extra node inputs come from initializers."""
    names = input_names if input_names is not None else [n for n, _, _ in inputs] + list(initializers or {})
    outs = [f"y{i}" if n_outputs > 1 else "y" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, **attrs)
    dtype = output_dtype or (inputs[0][1] if inputs else np.float32)
    return make_model([node], inputs, [(o, dtype, output_shape) for o in outs], initializers, opset)


def random_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value for d in tt.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.dtype(dtype).kind == "f" or np.dtype(dtype).name == "bfloat16":
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif np.dtype(dtype).kind == "b":
            feeds[vi.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[vi.name] = rng.integers(-5, 6, shape).astype(dtype)
    return feeds


def check_model(model: onnx.ModelProto, feeds: dict[str, np.ndarray] | None = None, *, tol: float = 1e-5,
                seed: int = 0, variant: str = "float32", **options: object) -> onnx2litert.ConversionResult:
    """Convert, run in LiteRT and ONNX Runtime, and assert the outputs match.

    Float outputs: max abs error <= tol * max(1, max |reference|). Other dtypes: exact.
    """
    onnx.checker.check_model(model)
    feeds = feeds if feeds is not None else random_inputs(model, seed)
    result = onnx2litert.convert(model, **options)
    expected = run_onnx(model.SerializeToString(), feeds)
    # Both CPU paths must run the model and match: XNNPACK (the default) and the builtin kernels.
    for use_default_delegates in (True, False):
        got = run_tflite(result.artifacts[variant], feeds, use_default_delegates=use_default_delegates)
        _assert_match(expected, got, tol)
    return result


def _assert_match(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], tol: float) -> None:
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    for name, ref in expected.items():
        out = got[name]
        assert out.shape == ref.shape, f"{name}: shape {out.shape} != {ref.shape}"
        assert out.dtype == ref.dtype, f"{name}: dtype {out.dtype} != {ref.dtype}"
        if ref.dtype.kind == "f":
            same = (out == ref) | (np.isnan(out) & np.isnan(ref))  # equal infs/NaNs match
            finite = np.isfinite(ref)
            bound = tol * max(1.0, float(np.abs(ref[finite]).max()) if finite.any() else 1.0)
            diff = np.where(same, 0.0, np.abs(out.astype(np.float64) - ref))
            err = float(np.nan_to_num(diff, nan=np.inf).max()) if ref.size else 0.0
            assert err <= bound, f"{name}: max abs error {err:.3g} > {bound:.3g}"
        else:
            np.testing.assert_array_equal(out, ref, err_msg=name)


def check_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray], tol: float = 1e-5) -> None:
    """Like check_model, with onnx's reference evaluator as the oracle (for opsets/ops ONNX Runtime lacks)."""
    from onnx.reference import ReferenceEvaluator

    onnx.checker.check_model(model)
    result = onnx2litert.convert(model)
    names = [o.name for o in model.graph.output]
    expected = dict(zip(names, ReferenceEvaluator(model).run(None, feeds)))
    for use_default_delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], feeds, use_default_delegates=use_default_delegates)
        _assert_match(expected, got, tol)


def expect_failure(model: onnx.ModelProto, reason: str, **options: object) -> onnx2litert.ConversionError:
    """Assert conversion fails with ``reason`` (a Reason value string)."""
    try:
        onnx2litert.convert(model, **options)
    except onnx2litert.ConversionError as exc:
        codes = [i.reason.value for i in exc.issues]
        assert reason in codes, f"expected {reason}, got {codes}: {exc}"
        return exc
    raise AssertionError(f"conversion succeeded; expected failure {reason}")

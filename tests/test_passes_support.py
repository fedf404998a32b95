"""Helpers for the pass tests: build IR graphs by hand, run them in LiteRT before and after a pass.

(No tests here; the name only keeps it beside the pass tests.)
"""
from __future__ import annotations

import copy
from collections import Counter
from typing import Callable

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from onnx2litert.export import export_model
from onnx2litert.ir import Model, Operator, Subgraph, Tensor

NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)


class Builder:
    """Append-only IR graph builder for tests."""

    def __init__(self) -> None:
        self.inputs: list[Tensor] = []
        self.ops: list[Operator] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def input(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> Tensor:
        t = Tensor(name, shape, dtype)
        self.inputs.append(t)
        return t

    def const(self, value: object, dtype: type = np.float32, hint: str = "c") -> Tensor:
        arr = np.asarray(value, dtype=dtype)
        return Tensor(self.name(hint), arr.shape, arr.dtype, data=arr)

    def op(self, opcode: str, inputs: list[Tensor | None], shape: tuple[int, ...], dtype: type | None = None,
           name: str | None = None, **options: object) -> Tensor:
        out = Tensor(name or self.name(opcode.lower()), shape,
                     dtype or next(t.dtype for t in inputs if t is not None))
        self.ops.append(Operator(opcode, list(inputs), [out], dict(options)))
        return out

    def multi(self, opcode: str, inputs: list[Tensor | None], shapes: list[tuple[int, ...]], **options: object
              ) -> list[Tensor]:
        dtype = next((t.dtype for t in inputs if t is not None and not t.is_const), np.dtype(np.float32))
        outs = [Tensor(self.name(opcode.lower()), s, dtype) for s in shapes]
        self.ops.append(Operator(opcode, list(inputs), outs, dict(options)))
        return outs

    def transpose(self, x: Tensor, perm: tuple[int, ...], name: str | None = None) -> Tensor:
        shape = tuple(x.shape[p] for p in perm)
        return self.op("TRANSPOSE", [x, self.const(perm, np.int32, "perm")], shape, name=name)

    def reshape(self, x: Tensor, shape: tuple[int, ...]) -> Tensor:
        return self.op("RESHAPE", [x, self.const(shape, np.int32, "shape")], shape)

    def model(self, outputs: list[Tensor]) -> Model:
        sg = Subgraph(list(self.inputs), list(outputs), list(self.ops))
        return Model([sg], signature_inputs=[t.name for t in self.inputs],
                      signature_outputs=[t.name for t in outputs])


def run_model(model: Model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    interp = Interpreter(model_content=export_model(model))
    return interp.get_signature_runner("serving_default")(**feeds)


def random_feeds(model: Model, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, t in zip(model.signature_inputs, model.main.inputs):
        if t.dtype.kind == "f":
            feeds[name] = (rng.standard_normal(t.shape) * 3).astype(t.dtype)
        else:
            feeds[name] = rng.integers(-5, 6, t.shape).astype(t.dtype)
    return feeds


def opcounts(model: Model) -> Counter:
    return Counter(op.opcode for op in model.main.operators)


def check_rewrite(model: Model, rewrite: Callable[[Subgraph], object], seed: int = 0, tol: float = 1e-5
                  ) -> Model:
    """Apply ``rewrite`` to ``model`` in place and assert LiteRT computes the same outputs.

    Returns the rewritten model; graph output tensors must keep their identity and names.
    """
    reference = copy.deepcopy(model)
    outputs_before = [(id(t), t.name) for t in model.main.outputs]
    rewrite(model.main)
    assert [(id(t), t.name) for t in model.main.outputs] == outputs_before, "graph outputs changed identity"
    _check_topological(model.main)
    feeds = random_feeds(reference, seed)
    expected = run_model(reference, feeds)
    got = run_model(model, feeds)
    assert set(got) == set(expected)
    for name, ref in expected.items():
        out = got[name]
        assert out.shape == ref.shape and out.dtype == ref.dtype, (name, out.shape, ref.shape)
        if ref.dtype.kind == "f":
            bound = tol * max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
            err = float(np.abs(out.astype(np.float64) - ref).max()) if ref.size else 0.0
            assert err <= bound, f"{name}: max abs error {err:.3g} > {bound:.3g}"
        else:
            np.testing.assert_array_equal(out, ref)
    return model


def _check_topological(sg: Subgraph) -> None:
    available = {id(t) for t in sg.inputs}
    for op in sg.operators:
        for t in op.inputs:
            assert t is None or t.is_const or id(t) in available, f"{op} reads {t} before it is produced"
        for t in op.outputs:
            assert id(t) not in available, f"{t} produced twice"
            available.add(id(t))
    for t in sg.outputs:
        assert id(t) in available

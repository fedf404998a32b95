"""Every ONNX backend node test case listed in conformance_expected_pass.txt must keep passing.

The list is written by ``python bench/conformance.py --update-expected`` (see docs/conformance.md). Each
listed case is one test, so ``pytest -n 2`` spreads them over workers. The cases come from the onnx
package's node test suite; collecting them takes about a minute the first time, after which they are read
from a cache shared by all workers (see ``bench/conformance.py``).
"""
from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED = Path(__file__).with_name("conformance_expected_pass.txt")


def _load_runner() -> ModuleType:
    """bench/conformance.py as a module (bench/ is not a package)."""
    name = "onnx2litert_bench_conformance"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "conformance.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


runner = _load_runner()
LISTED = runner.read_expected(EXPECTED)


@lru_cache(maxsize=1)
def _cases() -> dict:
    return runner.load_cases()


def test_expectations_file_is_sorted_and_unique() -> None:
    assert LISTED, f"{EXPECTED.name} lists no case: run bench/conformance.py --update-expected"
    assert LISTED == sorted(set(LISTED)), f"{EXPECTED.name} must be sorted without duplicates"


@pytest.mark.parametrize("name", LISTED)
def test_listed_case_passes(name: str) -> None:
    cases = _cases()
    assert name in cases, f"{name} is not a node test case of the installed onnx package"
    rec = runner.run_case(cases[name])
    assert rec["status"] == "pass", f"{name}: {rec['status']} {rec['reasons']} {rec['detail']}"


def test_compare_outputs_follows_the_backend_runner() -> None:
    """Shapes and dtypes must match exactly; values within rtol/atol."""
    import numpy as np

    ref = {"y": np.array([1.0, 2.0], np.float32)}
    assert runner.compare_outputs(ref, {"y": np.array([1.0005, 2.0], np.float32)}, 1e-3, 1e-7) is None
    assert "elements off" in runner.compare_outputs(ref, {"y": np.array([1.01, 2.0], np.float32)}, 1e-3, 1e-7)
    assert "dtype" in runner.compare_outputs(ref, {"y": np.array([1.0, 2.0], np.float64)}, 1e-3, 1e-7)
    assert "shape" in runner.compare_outputs(ref, {"y": np.array([[1.0, 2.0]], np.float32)}, 1e-3, 1e-7)
    assert "names" in runner.compare_outputs(ref, {"z": ref["y"]}, 1e-3, 1e-7)


def test_not_applicable_rules() -> None:
    from onnx import TensorProto, helper

    def model(elem: int | None = None, seq: bool = False, domain: str = "", op: str = "Identity") -> object:
        t = helper.make_tensor_type_proto(elem or TensorProto.FLOAT, [2])
        vt = helper.make_sequence_type_proto(t) if seq else t
        node = helper.make_node(op, ["x"], ["y"], domain=domain)
        return helper.make_graph([node], "g", [helper.make_value_info("x", vt)], [helper.make_value_info("y", t)])

    class M:  # not_applicable_reason only reads .graph
        def __init__(self, graph: object) -> None:
            self.graph = graph

    assert runner.not_applicable_reason(M(model())) is None
    assert runner.not_applicable_reason(M(model(seq=True))).startswith("non_tensor_io")
    assert runner.not_applicable_reason(M(model(TensorProto.STRING))).startswith("string_io")
    assert runner.not_applicable_reason(M(model(TensorProto.FLOAT8E4M3FN))).startswith("no_litert_dtype")
    assert runner.not_applicable_reason(M(model(domain="ai.onnx.preview.training"))).startswith("training_op")
    assert runner.not_applicable_reason(M(model(op="Bernoulli"))).startswith("random_output")
    assert runner.not_applicable_reason(M(model(op="RandomUniformLike"))).startswith("random_output")
    assert runner.not_applicable_reason(M(model(op="ImageDecoder"))).startswith("file_decoding")


def test_select_patterns() -> None:
    names = ["test_abs", "test_add", "test_add_bcast", "test_relu_expanded"]
    assert runner.select(names, "test_add*") == ["test_add", "test_add_bcast"]
    assert runner.select(names, "test_abs,test_relu*") == ["test_abs", "test_relu_expanded"]
    assert runner.select(names, "re:_expanded$") == ["test_relu_expanded"]
    assert runner.base_name("test_relu_expanded_ver18") == "test_relu"


def test_pool_survives_crash_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A segfaulting or hanging case costs only itself; the other cases still run."""
    import os
    import signal
    import time

    def fake_run_case(case, on_phase=None):  # runs in the forked worker
        on_phase("run")
        if case.name == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if case.name == "hang":
            time.sleep(60)
        return {"name": case.name, "status": "pass", "reasons": [], "detail": ""}

    monkeypatch.setattr(runner, "run_case", fake_run_case)
    names = ["a", "crash", "b", "hang", "c"]
    cases = {n: runner.Case(n, b"", (), ()) for n in names}
    recs = {r["name"]: r for r in runner.run_pool(cases, names, jobs=2, timeout=3, max_tasks_per_child=2)}
    assert set(recs) == set(names)
    assert [recs[n]["status"] for n in "abc"] == ["pass"] * 3
    assert recs["crash"]["status"] == "runtime_fail" and "signal 11" in recs["crash"]["reasons"][0]
    assert recs["hang"]["status"] == "runtime_fail" and "timeout" in recs["hang"]["reasons"][0]

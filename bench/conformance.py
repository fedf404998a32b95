"""Run the ONNX backend node test suite through onnx2litert and LiteRT.

    python bench/conformance.py --jobs 2 --write-docs        # full suite: docs/conformance.md + .json
    python bench/conformance.py --jobs 2 --update-expected   # also rewrite tests/conformance_expected_pass.txt
    python bench/conformance.py --cases 'test_conv*'         # a subset (fnmatch pattern, or a regex with re:)

Every node test case of the installed ``onnx`` package (``collect_testcases()``, including the
function-expanded ``*_expanded`` variants) is converted with ``onnx2litert.convert`` (float32 only),
run with ``onnx2litert.run_tflite`` on the case's inputs (ONNX names, ONNX layout) and compared with the
case's expected outputs using the onnx backend runner's rule: same output count, shapes and dtypes, then
``np.testing.assert_allclose(got, expected, rtol, atol)`` with the case's rtol/atol (1e-3 / 1e-7).

Each case ends in exactly one status:

``pass``            the outputs match.
``mismatch``        the model converts and runs, but an output differs (values, shape, dtype or name).
``convert_fail``    ``convert`` raised ``ConversionError``; the reason codes come from its issues. An
                    uncaught exception inside ``convert`` is a converter bug and is reported as
                    ``internal_error``.
``runtime_fail``    the converted file does not load or run (an exception), or the worker process crashed
                    (e.g. a segfault in LiteRT) or exceeded ``--timeout``, in either phase.
``not_applicable``  the case cannot be expressed as a LiteRT model at all; see :func:`not_applicable_reason`.

Cases run in worker processes (``--jobs``, default 2). A worker serves at most ``--max-tasks-per-child``
cases and is replaced after a crash or a timeout, so one bad case never stops the run.

Collecting the cases runs the onnx package's reference implementations and takes about a minute, so the
collected cases are cached (pickle) in ``$ONNX2LITERT_CONFORMANCE_CACHE`` or
``~/.cache/onnx2litert/conformance-onnx-<version>.pkl``; the cache is rebuilt when the onnx version changes.
"""
from __future__ import annotations

import argparse
import faulthandler
import fcntl
import fnmatch
import json
import multiprocessing as mp
import os
import pickle
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DOCS_MD = REPO / "docs" / "conformance.md"
DOCS_JSON = REPO / "docs" / "conformance.json"
EXPECTED_PASS = REPO / "tests" / "conformance_expected_pass.txt"
DOCS_COMMAND = "python bench/conformance.py --jobs 2 --write-docs --update-expected"

# The onnx backend runner's defaults (every collected node case carries these).
DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-7

STATUSES = ("pass", "mismatch", "convert_fail", "runtime_fail", "not_applicable")
TRAINING_DOMAINS = ("ai.onnx.preview.training",)
# Ops whose outputs are random draws: no converter can reproduce the case's stored expected outputs.
RANDOM_OPS = ("Bernoulli", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial")
# Ops that decode compressed files (JPEG, PNG, ...) rather than compute on tensors.
FILE_DECODING_OPS = ("ImageDecoder",)
CACHE_FORMAT = 1


# ---------------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """One node test case: the model, one data set, and the comparison tolerances."""

    name: str
    model: bytes
    inputs: tuple[Any, ...]   # np.ndarray, or TensorProto / list / None for types numpy cannot hold
    outputs: tuple[Any, ...]
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL


def cache_path() -> Path:
    """Where the collected cases are cached (depends on the installed onnx version)."""
    import onnx

    env = os.environ.get("ONNX2LITERT_CONFORMANCE_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "onnx2litert" / f"conformance-onnx-{onnx.__version__}.pkl"


def _collect_from_onnx() -> dict[str, Case]:
    """Collect every node test case from the installed onnx package (slow: runs reference code)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators overflow/divide by zero on purpose
        collected = collect_testcases()
    cases: dict[str, Case] = {}
    for tc in collected:
        if tc.model is None or not tc.data_sets:
            continue
        inputs, outputs = tc.data_sets[0]  # node cases have exactly one data set
        cases[tc.name] = Case(tc.name, tc.model.SerializeToString(), tuple(inputs), tuple(outputs),
                              float(tc.rtol), float(tc.atol))
    return dict(sorted(cases.items()))


def load_cases(path: Path | None = None) -> dict[str, Case]:
    """All cases by name, from the cache; builds the cache once (under a file lock) when missing.

    The lock lets parallel pytest workers share one build instead of each collecting for a minute.
    """
    import onnx

    path = path or cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            cached = _read_cache(path, onnx.__version__)
            if cached is not None:
                return cached
            cases = _collect_from_onnx()
            payload = {"format": CACHE_FORMAT, "onnx": onnx.__version__, "cases": cases}
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
            return cases
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_cache(path: Path, onnx_version: str) -> dict[str, Case] | None:
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            payload = pickle.load(f)
    except Exception:  # a corrupt or foreign cache is simply rebuilt
        return None
    if payload.get("format") != CACHE_FORMAT or payload.get("onnx") != onnx_version:
        return None
    return payload["cases"]


def select(names: Iterable[str], pattern: str | None) -> list[str]:
    """Names matching ``pattern``: comma-separated fnmatch globs, or a regex after ``re:``."""
    names = list(names)
    if not pattern:
        return names
    if pattern.startswith("re:"):
        rx = re.compile(pattern[3:])
        return [n for n in names if rx.search(n)]
    globs = [p.strip() for p in pattern.split(",") if p.strip()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]


# ---------------------------------------------------------------------------------------------- model facts
def case_op(case: Case, model: Any | None = None) -> str:
    """The op a case tests: the single node's type (domain-qualified outside ai.onnx).

    Function-expanded cases contain the expansion, so their op comes from the case name's base case,
    which the caller resolves (see :func:`op_of`); here a multi-node graph falls back to its first node.
    """
    import onnx

    model = model if model is not None else onnx.load_from_string(case.model)
    nodes = list(model.graph.node)
    if not nodes:
        return "(no node)"
    node = nodes[0]
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def base_name(name: str) -> str:
    """``test_x_expanded`` / ``test_x_expanded_ver18`` -> ``test_x``; other names unchanged."""
    return re.sub(r"_expanded(_ver\d+)?$", "", name)


def is_expanded(name: str) -> bool:
    return base_name(name) != name


def op_of(name: str, cases: dict[str, Case], cache: dict[str, str] | None = None) -> str:
    """The ONNX op a case is about (for expanded cases: the op of the case it was expanded from)."""
    cache = cache if cache is not None else {}
    key = base_name(name)
    if key not in cache:
        cache[key] = case_op(cases[key] if key in cases else cases[name])
    return cache[key]


def default_opset(model: Any) -> int | None:
    """The model's default-domain (ai.onnx) opset version, None when it imports none."""
    return next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), None)


def supported_opsets() -> tuple[int, int]:
    """The converter's default-domain opset range."""
    from onnx2litert.frontend.load import MAX_OPSET, MIN_OPSET

    return MIN_OPSET, MAX_OPSET


# LiteRT's TensorType has no equivalent for these ONNX element types.
def _no_litert_type() -> dict[int, str]:
    from onnx import TensorProto as T

    names = ["FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT8E8M0", "UINT4",
             "FLOAT4E2M1", "INT2", "UINT2"]
    return {getattr(T, n): n.lower() for n in names if hasattr(T, n)}


def not_applicable_reason(model: Any) -> str | None:
    """Why a case cannot be a LiteRT model at all, or None when it is applicable.

    The rules (kept short on purpose; everything else counts against the converter):

    * ``non_tensor_io``: a graph input/output is a sequence, optional or map. LiteRT signatures carry
      plain tensors only.
    * ``string_io``: a graph input/output is a string tensor. LiteRT's string tensors are only used by
      a few text ops that have no ONNX counterpart; the converter has no string support by design.
    * ``no_litert_dtype``: a graph input/output has an element type LiteRT has no tensor type for
      (float8 variants, float4, uint4, int2/uint2).
    * ``training_op``: the graph uses an op of the ``ai.onnx.preview.training`` domain (Adagrad, Adam,
      Momentum, Gradient), which only exist for training.
    * ``random_output``: the graph uses an op whose output is a random draw (Bernoulli, Random*,
      Multinomial): the stored expected outputs are one sample that no other runtime reproduces.
    * ``file_decoding``: the graph decodes a compressed image file (ImageDecoder), which is codec
      work, not tensor computation a LiteRT builtin expresses.
    """
    from onnx import TensorProto

    no_type = _no_litert_type()
    for vi in list(model.graph.input) + list(model.graph.output):
        kind = vi.type.WhichOneof("value")
        if kind != "tensor_type" and kind != "sparse_tensor_type":
            return f"non_tensor_io: '{vi.name}' is a {kind or 'untyped value'}"
        elem = vi.type.tensor_type.elem_type if kind == "tensor_type" else vi.type.sparse_tensor_type.elem_type
        if elem == TensorProto.STRING:
            return f"string_io: '{vi.name}' is a string tensor"
        if elem in no_type:
            return f"no_litert_dtype: '{vi.name}' is {no_type[elem]}"
    for node in model.graph.node:
        if node.domain in TRAINING_DOMAINS:
            return f"training_op: {node.domain}.{node.op_type}"
        if node.domain in ("", "ai.onnx") and node.op_type in RANDOM_OPS:
            return f"random_output: {node.op_type}"
        if node.domain in ("", "ai.onnx") and node.op_type in FILE_DECODING_OPS:
            return f"file_decoding: {node.op_type}"
    return None


# ---------------------------------------------------------------------------------------------- one case
def _as_array(value: Any) -> np.ndarray:
    """Case data as numpy; some newer cases store their tensors as ``TensorProto``."""
    from onnx import TensorProto, numpy_helper

    return numpy_helper.to_array(value) if isinstance(value, TensorProto) else np.asarray(value)



def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare_outputs(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], rtol: float,
                    atol: float) -> str | None:
    """None when ``got`` matches ``expected`` by the onnx backend runner's rule, else why not."""
    if set(got) != set(expected):
        return f"output names differ: got {sorted(got)}, expected {sorted(expected)}"
    for name, ref in expected.items():
        out = np.asarray(got[name])
        ref = np.asarray(ref)
        if out.shape != ref.shape:
            return f"'{name}': shape {list(out.shape)} != expected {list(ref.shape)}"
        if out.dtype != ref.dtype:
            return f"'{name}': dtype {out.dtype} != expected {ref.dtype}"
        try:
            if ref.dtype == object:
                np.testing.assert_array_equal(out, ref)
            else:
                np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)
        except AssertionError:
            return f"'{name}': {_mismatch_stats(out, ref, rtol, atol)}"
    return None


def _mismatch_stats(out: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> str:
    if ref.dtype.kind not in "fciub":
        return "values differ"
    o = out.astype(np.float64)
    r = ref.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isclose(o, r, rtol=rtol, atol=atol, equal_nan=True)
        err = np.abs(o - r)
    finite = err[np.isfinite(err)]
    max_abs = float(finite.max()) if finite.size else float("nan")
    return (f"{int(bad.sum())}/{bad.size} elements off (rtol {rtol:g}, atol {atol:g}), "
            f"max abs err {max_abs:.3g}, max |ref| {float(np.nanmax(np.abs(r))) if r.size else 0:.3g}")


def run_case(case: Case, on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Convert, run and compare one case in this process; returns the result record.

    ``on_phase`` is told ``"convert"`` and ``"run"`` as they start (the pool uses it to attribute a crash).
    """
    import onnx

    import onnx2litert
    from onnx2litert.errors import ConversionError

    t0 = time.perf_counter()
    rec: dict[str, Any] = {"name": case.name, "status": None, "reasons": [], "detail": ""}

    def done(status: str, detail: str = "", reasons: list[str] | None = None) -> dict[str, Any]:
        rec.update(status=status, detail=_short(detail), reasons=reasons or [],
                   seconds=round(time.perf_counter() - t0, 3))
        return rec

    model = onnx.load_from_string(case.model)
    rec["opset"] = default_opset(model)
    na = not_applicable_reason(model)
    if na is not None:
        return done("not_applicable", na, [na.split(":")[0]])

    if on_phase:
        on_phase("convert")
    try:
        result = onnx2litert.convert(case.model, output_float16=False)
    except ConversionError as exc:
        codes = sorted({i.reason.value for i in exc.issues})
        return done("convert_fail", exc.issues[0].line() if exc.issues else str(exc), codes)
    except Exception as exc:  # the converter should have wrapped this: a bug
        return done("convert_fail", f"uncaught {type(exc).__name__} in convert: {exc}", ["internal_error"])

    inits = {i.name for i in model.graph.initializer}
    in_names = [vi.name for vi in model.graph.input if vi.name not in inits]
    feeds = {n: _as_array(v) for n, v in zip(in_names, case.inputs)}
    expected = {vi.name: _as_array(v) for vi, v in zip(model.graph.output, case.outputs)}
    if on_phase:
        on_phase("run")
    try:
        got = onnx2litert.run_tflite(result.artifacts["float32"], feeds)
    except Exception as exc:
        return done("runtime_fail", f"{type(exc).__name__}: {exc}")
    problem = compare_outputs(expected, got, case.rtol, case.atol)
    return done("pass") if problem is None else done("mismatch", problem)


# ---------------------------------------------------------------------------------------------- the pool
def _worker_main(conn: Connection, cases: dict[str, Case], quiet: bool) -> None:
    """Serve case names from ``conn`` until told to stop (None) or the pipe closes."""
    if quiet:  # LiteRT and the XNNPACK delegate log to fd 2; the record carries what matters
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        faulthandler.disable()  # pytest's handler writes to a saved copy of stderr; the record says "crash"
    warnings.simplefilter("ignore")
    import onnx2litert  # noqa: F401  (import once per worker, not per case)

    while True:
        try:
            name = conn.recv()
        except EOFError:
            return
        if name is None:
            return
        try:
            rec = run_case(cases[name], on_phase=lambda p: conn.send(("phase", p)))
        except Exception as exc:  # a bug in this runner, not the converter; still report it
            rec = {"name": name, "status": "runtime_fail", "reasons": ["runner_error"],
                   "detail": _short(f"{type(exc).__name__}: {exc} {traceback.format_exc(limit=3)}")}
        conn.send(("result", rec))


@dataclass
class _Slot:
    proc: Any = None
    conn: Connection | None = None
    case: str | None = None
    phase: str = ""
    started: float = 0.0
    served: int = 0


def run_pool(cases: dict[str, Case], names: list[str], jobs: int = 2, timeout: float = 120.0,
             max_tasks_per_child: int = 100, quiet: bool = True,
             progress: Callable[[dict[str, Any], int, int], None] | None = None) -> list[dict[str, Any]]:
    """Run ``names`` in ``jobs`` worker processes; a crash or timeout costs only that case.

    Workers are forked (they inherit ``cases``), serve up to ``max_tasks_per_child`` cases, and are
    replaced when they die or exceed ``timeout`` seconds on one case.
    """
    ctx = mp.get_context("fork")
    pending = deque(names)
    slots = [_Slot() for _ in range(max(1, jobs))]
    results: dict[str, dict[str, Any]] = {}
    total = len(names)

    def start(slot: _Slot) -> None:
        parent, child = ctx.Pipe()
        slot.proc = ctx.Process(target=_worker_main, args=(child, cases, quiet), daemon=True)
        slot.proc.start()
        child.close()
        slot.conn, slot.served = parent, 0

    def stop(slot: _Slot, kill: bool) -> None:
        if slot.proc is None:
            return
        if kill:
            slot.proc.kill()
        else:
            try:
                slot.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        slot.proc.join(5)
        if slot.proc.is_alive():
            slot.proc.kill()
            slot.proc.join()
        slot.conn.close()
        slot.proc = slot.conn = None

    def finish(slot: _Slot, rec: dict[str, Any]) -> None:
        rec.setdefault("seconds", round(time.perf_counter() - slot.started, 3))
        results[rec["name"]] = rec
        slot.case = None
        if progress:
            progress(rec, len(results), total)

    def lost(slot: _Slot, what: str) -> None:
        finish(slot, {"name": slot.case, "status": "runtime_fail", "reasons": [what],
                      "detail": f"worker {what} during {slot.phase or 'start-up'}"})

    try:
        while pending or any(s.case for s in slots):
            for slot in slots:
                if slot.case is None and pending:
                    if slot.proc is not None and slot.served >= max_tasks_per_child:
                        stop(slot, kill=False)
                    if slot.proc is None:
                        start(slot)
                    slot.case, slot.phase, slot.started = pending.popleft(), "", time.perf_counter()
                    slot.served += 1
                    slot.conn.send(slot.case)
            busy = [s for s in slots if s.case]
            wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=1.0)
            for slot in busy:
                while slot.case and slot.conn.poll():
                    try:
                        kind, payload = slot.conn.recv()
                    except (EOFError, OSError):
                        break
                    if kind == "phase":
                        slot.phase = payload
                    else:
                        finish(slot, payload)
                if not slot.case:
                    continue
                if not slot.proc.is_alive():
                    code = slot.proc.exitcode
                    what = f"crash (signal {-code})" if code is not None and code < 0 else f"exit {code}"
                    lost(slot, what)
                    stop(slot, kill=True)
                elif time.perf_counter() - slot.started > timeout:
                    lost(slot, f"timeout after {timeout:g}s")
                    stop(slot, kill=True)
    finally:
        for slot in slots:
            stop(slot, kill=slot.case is not None)
    return [results[n] for n in names if n in results]


# ---------------------------------------------------------------------------------------------- reports
def annotate(records: list[dict[str, Any]], cases: dict[str, Case]) -> None:
    """Add the op and whether the case is a function expansion to every record."""
    ops: dict[str, str] = {}
    for rec in records:
        rec["op"] = op_of(rec["name"], cases, ops)
        rec["expanded"] = is_expanded(rec["name"])


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts overall, by op and by failure reason."""
    status = Counter(r["status"] for r in records)
    applicable = len(records) - status["not_applicable"]
    by_op: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        key = "expanded_" if r["expanded"] else ""
        by_op[r["op"]][key + r["status"]] += 1
        by_op[r["op"]][key + "total"] += 1
    fail_reasons = Counter(code for r in records if r["status"] == "convert_fail" for code in r["reasons"])
    lo, hi = supported_opsets()
    in_range = [r for r in records if r["status"] != "not_applicable" and lo <= (r.get("opset") or 0) <= hi]
    return {"total": len(records), "applicable": applicable, "status": {s: status[s] for s in STATUSES},
            "pass_rate_applicable": round(status["pass"] / applicable, 4) if applicable else None,
            "supported_opsets": [lo, hi], "applicable_in_opset_range": len(in_range),
            "pass_in_opset_range": sum(r["status"] == "pass" for r in in_range),
            "convert_fail_reasons": dict(fail_reasons.most_common()),
            "by_op": {op: dict(c) for op, c in sorted(by_op.items())}}


def _versions() -> dict[str, str]:
    import onnx

    import onnx2litert
    out = {"onnx": onnx.__version__, "onnx2litert": onnx2litert.__version__}
    try:
        from importlib.metadata import version
        out["ai-edge-litert"] = version("ai-edge-litert")
    except Exception:
        pass
    return out


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(records: list[dict[str, Any]], summary: dict[str, Any], versions: dict[str, str]) -> str:
    """The docs/conformance.md page."""
    st = summary["status"]
    lines = [
        "# Conformance: the ONNX backend node test suite",
        "",
        "<!-- generated by bench/conformance.py; do not edit by hand -->",
        "",
        f"Regenerate with `{DOCS_COMMAND}` (under a minute on 2 cores once the cases are cached; "
        "collecting them from onnx the first time adds about a minute). Versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "Every node test case of the installed `onnx` package (including the function-expanded `*_expanded`",
        "cases) is converted with `onnx2litert.convert` (default flags, float32 file), run with",
        "`onnx2litert.run_tflite` on the case's inputs and compared with the case's expected outputs the way",
        "the onnx backend runner does: same outputs, shapes and dtypes, then `np.testing.assert_allclose`",
        f"with the case's `rtol`/`atol` (every node case uses rtol={DEFAULT_RTOL:g}, atol={DEFAULT_ATOL:g}).",
        "Cases that pass are listed in `tests/conformance_expected_pass.txt`; `tests/test_conformance.py`",
        "fails when one of them stops passing.",
        "",
        "```bash",
        f"{DOCS_COMMAND}   # full suite: this page, docs/conformance.json, the expectations",
        "python bench/conformance.py --cases 'test_resize*' --verbose   # a subset, one line per case",
        "python bench/conformance.py --cases 'test_atan*' --update-expected   # refresh only those entries",
        "python -m pytest -q -n 2 tests/test_conformance.py   # the regression test over the listed cases",
        "```",
        "",
        "A case runs in a worker process (`--jobs`, default 2); a worker that crashes (LiteRT can segfault)",
        "or exceeds `--timeout` (default 120 s) costs only that case, which is reported as `runtime_fail`.",
        "",
        "## Summary",
        "",
        f"**{st['pass']} / {summary['applicable']} applicable cases pass**"
        + (f" ({100 * summary['pass_rate_applicable']:.1f} %)" if summary["applicable"] else "")
        + f"; {summary['total']} cases in total. Of the applicable cases, "
        f"{summary['applicable_in_opset_range']} use a default-domain opset in the converter's range "
        f"{summary['supported_opsets'][0]}-{summary['supported_opsets'][1]}, and "
        f"{summary['pass_in_opset_range']} of those pass; the cases outside that range fail with "
        "`unsupported_opset` (newer opsets, or a model that imports no default-domain opset).",
        "",
        "| status | cases | meaning |",
        "|---|---:|---|",
        f"| pass | {st['pass']} | outputs match within rtol/atol |",
        f"| mismatch | {st['mismatch']} | converts and runs, but an output differs (values, shape or dtype) |",
        f"| convert_fail | {st['convert_fail']} | `convert` raised `ConversionError` (reason codes below) |",
        f"| runtime_fail | {st['runtime_fail']} | the file does not load or run, or the worker crashed or timed out |",
        f"| not_applicable | {st['not_applicable']} | cannot be a LiteRT model (rules below) |",
        "",
        "## Why conversions fail",
        "",
        "Reason codes of the `convert_fail` cases (a case with several codes counts once per code):",
        "",
        "| reason code | cases |",
        "|---|---:|",
    ]
    lines += [f"| `{code}` | {n} |" for code, n in summary["convert_fail_reasons"].items()]
    if not summary["convert_fail_reasons"]:
        lines.append("| (none) | 0 |")

    fail_ops: Counter = Counter()
    for r in records:
        if r["status"] in ("mismatch", "convert_fail", "runtime_fail"):
            fail_ops[r["op"]] += 1
    op_codes: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        if r["status"] == "convert_fail":
            op_codes[r["op"]].update(r["reasons"])
        elif r["status"] in ("mismatch", "runtime_fail"):
            op_codes[r["op"]][r["status"]] += 1
    lines += ["", "Ops with the most failing applicable cases:", "", "| op | failing | why (cases) |",
              "|---|---:|---|"]
    for op, n in fail_ops.most_common(25):
        why = ", ".join(f"{c} ({k})" for c, k in op_codes[op].most_common())
        lines.append(f"| {op} | {n} | {why} |")

    for status, title in (("runtime_fail", "Runtime failures and crashes"), ("mismatch", "Mismatches")):
        bad = [r for r in records if r["status"] == status]
        lines += ["", f"## {title} ({len(bad)})", ""]
        if not bad:
            lines.append("None.")
            continue
        lines += ["| case | op | detail |", "|---|---|---|"]
        lines += [f"| `{r['name']}` | {r['op']} | {_md_escape(r['detail'])} |" for r in bad]

    na = [r for r in records if r["status"] == "not_applicable"]
    na_rules = Counter(r["reasons"][0] for r in na)
    lines += ["", f"## Not applicable ({len(na)})", "",
              "These cases cannot be expressed as a LiteRT model, so they are left out of the applicable total.",
              "The list is kept short on purpose: everything else counts against the converter.", "",
              "| rule | cases | why |", "|---|---:|---|",
              f"| `non_tensor_io` | {na_rules['non_tensor_io']} | a graph input/output is a sequence, optional or "
              "map; LiteRT signatures carry plain tensors only |",
              f"| `string_io` | {na_rules['string_io']} | a graph input/output is a string tensor; LiteRT string "
              "tensors serve only a few text ops with no ONNX counterpart |",
              f"| `no_litert_dtype` | {na_rules['no_litert_dtype']} | a graph input/output is float8 "
              "(e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0), float4e2m1, uint4 or int2/uint2: LiteRT's "
              "`TensorType` has no such type |",
              f"| `training_op` | {na_rules['training_op']} | an `ai.onnx.preview.training` op (Adagrad, Adam, "
              "Momentum, Gradient): training only |",
              f"| `random_output` | {na_rules['random_output']} | a random-draw op (Bernoulli, RandomUniform(Like), "
              "RandomNormal(Like), Multinomial): the expected outputs are one sample no runtime reproduces |",
              f"| `file_decoding` | {na_rules['file_decoding']} | ImageDecoder decodes JPEG/PNG/... files: codec "
              "work, not a tensor computation |"]

    lines += ["", "## Per op", "",
              "`direct`: the case's own node; `expanded`: the same case with the op replaced by its ONNX function "
              "body (`*_expanded`). Counts are pass / applicable (not-applicable cases in brackets).", "",
              "| op | direct | expanded | failing reasons |", "|---|---:|---:|---|"]
    for op, c in summary["by_op"].items():
        cells = []
        for key in ("", "expanded_"):
            tot = c.get(key + "total", 0)
            na_n = c.get(key + "not_applicable", 0)
            cell = "" if tot == 0 else f"{c.get(key + 'pass', 0)} / {tot - na_n}" + (f" [{na_n}]" if na_n else "")
            cells.append(cell)
        why = ", ".join(f"{k} ({n})" for k, n in op_codes[op].most_common()) if op in op_codes else ""
        lines.append(f"| {op} | {cells[0]} | {cells[1]} | {why} |")
    return "\n".join(lines) + "\n"


def write_expected(records: list[dict[str, Any]], path: Path, only: set[str] | None = None) -> list[str]:
    """Rewrite the expectations file with the passing cases (merged when ``only`` is a subset)."""
    passing = {r["name"] for r in records if r["status"] == "pass"}
    if only is not None and path.is_file():
        keep = {n for n in read_expected(path) if n not in only}
        passing |= keep
    names = sorted(passing)
    header = ("# ONNX backend node test cases that pass through onnx2litert (one per line, sorted).\n"
              "# Generated by bench/conformance.py --update-expected; tests/test_conformance.py checks them.\n")
    _write_text(path, header + "".join(n + "\n" for n in names))
    return names


def read_expected(path: Path = EXPECTED_PASS) -> list[str]:
    """Case names in the expectations file (comments and blank lines skipped)."""
    if not path.is_file():
        return []
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--cases", help="comma-separated fnmatch patterns (e.g. 'test_conv*'), or re:REGEX")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case (default 120)")
    parser.add_argument("--max-tasks-per-child", type=int, default=100, help="cases per worker before restart")
    parser.add_argument("--json", type=Path, help=f"results file (default {DOCS_JSON.relative_to(REPO)} for the "
                                                  "full suite, none for --cases)")
    parser.add_argument("--write-docs", action="store_true", help=f"write {DOCS_MD.relative_to(REPO)} (full suite)")
    parser.add_argument("--update-expected", action="store_true",
                        help=f"rewrite {EXPECTED_PASS.relative_to(REPO)} (with --cases: only those entries)")
    parser.add_argument("--verbose", action="store_true", help="a line per case, and worker stderr")
    parser.add_argument("--rebuild-cache", action="store_true", help="collect the cases from onnx again")
    parser.add_argument("--from-json", type=Path,
                        help="do not run: re-render docs/expectations from an earlier results file")
    args = parser.parse_args(argv)
    if args.write_docs and args.cases:
        parser.error("--write-docs documents the full suite; drop --cases")

    t0 = time.perf_counter()
    if args.from_json:
        return _from_json(args)
    if args.rebuild_cache and cache_path().exists():
        cache_path().unlink()
    cases = load_cases()
    names = select(cases, args.cases)
    if not names:
        print(f"no case matches {args.cases!r}", file=sys.stderr)
        return 2
    print(f"{len(names)} cases ({len(cases)} collected, {time.perf_counter() - t0:.0f}s); "
          f"{args.jobs} workers", file=sys.stderr)

    def progress(rec: dict[str, Any], done: int, total: int) -> None:
        if args.verbose or rec["status"] == "runtime_fail":
            print(f"[{done}/{total}] {rec['name']}: {rec['status']} {rec.get('detail', '')}", file=sys.stderr)
        elif done % 100 == 0 or done == total:
            print(f"[{done}/{total}] {time.perf_counter() - t0:.0f}s", file=sys.stderr)

    records = run_pool(cases, names, jobs=args.jobs, timeout=args.timeout,
                       max_tasks_per_child=args.max_tasks_per_child, quiet=not args.verbose, progress=progress)
    annotate(records, cases)
    summary = summarize(records)
    elapsed = time.perf_counter() - t0
    versions = _versions()

    json_path = args.json or (None if args.cases else DOCS_JSON)
    if json_path is not None:
        payload = {"generated": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions,
                   "command": " ".join(["python", "bench/conformance.py"] + (argv if argv is not None
                                                                             else sys.argv[1:])),
                   "seconds": round(elapsed, 1), "summary": summary, "cases": records}
        _write_text(json_path, results_json(payload))
        print(f"wrote {json_path}", file=sys.stderr)
    if args.write_docs:
        _write_text(DOCS_MD, render_markdown(records, summary, versions))
        print(f"wrote {DOCS_MD}", file=sys.stderr)
    if args.update_expected:
        listed = write_expected(records, EXPECTED_PASS, only=set(names) if args.cases else None)
        print(f"wrote {EXPECTED_PASS} ({len(listed)} cases)", file=sys.stderr)

    _print_summary(summary, elapsed)
    return 0


def results_json(payload: dict[str, Any]) -> str:
    """The results file: readable header, then one line per case (small, diff-friendly)."""
    head = {k: v for k, v in payload.items() if k != "cases"}
    text = json.dumps(head, indent=1)[:-2]  # reopen the object to append the cases
    cases = ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in payload["cases"])
    return f'{text},\n "cases": [\n{cases}\n ]\n}}\n'


def _from_json(args: argparse.Namespace) -> int:
    """Re-render the docs and the expectations from a results file of a full run."""
    payload = json.loads(args.from_json.read_text())
    records, versions = payload["cases"], payload["versions"]
    summary = summarize(records)
    if args.write_docs:
        _write_text(DOCS_MD, render_markdown(records, summary, versions))
        print(f"wrote {DOCS_MD}", file=sys.stderr)
    if args.update_expected:
        listed = write_expected(records, EXPECTED_PASS)
        print(f"wrote {EXPECTED_PASS} ({len(listed)} cases)", file=sys.stderr)
    _print_summary(summary, payload.get("seconds", 0.0))
    return 0


def _print_summary(summary: dict[str, Any], elapsed: float) -> None:
    st = summary["status"]
    print(f"{st['pass']}/{summary['applicable']} applicable cases pass ({summary['total']} total): "
          + ", ".join(f"{s} {st[s]}" for s in STATUSES) + f"; {elapsed:.0f}s")
    if summary["convert_fail_reasons"]:
        print("convert_fail reasons: " + ", ".join(f"{k} {v}" for k, v in summary["convert_fail_reasons"].items()))


if __name__ == "__main__":
    sys.exit(main())

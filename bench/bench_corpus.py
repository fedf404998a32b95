"""Benchmark onnx2litert on the corpus models.

    python bench/bench_corpus.py [--models a,b] [--corpus DIR] [--runs 20] [--out docs/benchmarks.md]

For each model, in two child processes (so a crash or a memory peak never affects the others):

1. ``convert``: ``onnx2litert.convert`` with default flags (symbolic non-batch input dims fixed from
   the manifest's test shapes); reports conversion time and the child's peak RSS.
2. ``measure``: runs the float32 file on the manifest's reference inputs (cosine / relative L2 vs the
   stored ONNX Runtime outputs), reads op / TRANSPOSE / fused-activation counts from the flatbuffer with
   ``ai_edge_litert.schema_py_generated``, and times LiteRT and ONNX Runtime on one thread each
   (median of ``--runs`` runs after warm-up, LiteRT and ONNX Runtime runs alternating) on the same inputs.

Every row is set beside ``../shared/anchors.md`` (the reference converters' LiteRT/ORT ratios on
the same corpus): the best ratio of an accurate ONNX converter (onnx2tf, NXP onnx2tflite) and
litert-torch's (which converts the PyTorch source, not the ONNX file).

Writes a markdown table to ``--out`` and the raw rows as JSON next to it (same name, ``.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COSINE_MIN = 0.99999  # the same bounds as tests/test_corpus.py
RELATIVE_L2_MAX = 1e-4
# Models that arrive quantized are held to the anchors' "accurate" bar instead.
QUANTIZED_COSINE_MIN = 0.999
QUANTIZED_RELATIVE_L2_MAX = 0.01
WARMUP_RUNS = 3
ANCHORS = REPO.parent / "shared" / "anchors.md"
ONNX_CONVERTERS = ("onnx2tf", "NXP")


# ---------------------------------------------------------------------------------------------- corpus
def load_manifest(corpus: Path) -> dict[str, dict]:
    """Manifest records by model name."""
    path = corpus / "manifest.json"
    if not path.is_file():
        raise SystemExit(f"no manifest.json in {corpus}: build the corpus first "
                         f"(CORPUS_DIR={corpus} bash ../shared/corpus/build_corpus.sh)")
    return {rec["name"]: rec for rec in json.loads(path.read_text())["models"]}


def shape_overrides(rec: dict) -> dict[str, list[int]]:
    """overwrite_input_shape for inputs with a symbolic dim past the batch axis."""
    return {i["name"]: list(i["shape"]) for i in rec["inputs"]
            if any(not isinstance(d, int) or d <= 0 for d in i["declared_shape"][1:])}


def load_reference(corpus: Path, rec: dict) -> tuple[dict, dict]:
    """(feeds, expected outputs) from ``testdata/<name>.npz``."""
    import numpy as np

    data = np.load(corpus / rec["ort"]["testdata"])
    feeds = {i["name"]: data["input:" + i["name"]] for i in rec["inputs"]}
    expected = {o["name"]: data["output:" + o["name"]] for o in rec["outputs"]}
    return feeds, expected


def load_anchors(path: Path) -> dict[str, dict[str, float]]:
    """Per model, the LiteRT/ORT ratio of each reference converter whose result was accurate (✅)."""
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    header = next((line for line in lines if line.startswith("| model |")), None)
    if header is None:
        return {}
    columns = [c.strip().split(":")[0] for c in header.strip("|").split("|")]
    out: dict[str, dict[str, float]] = {}
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        ratios = {}
        for name, cell in zip(columns[2:], cells[2:]):
            fields = [f.strip() for f in cell.split("/")]
            if fields[0] == "✅" and len(fields) >= 4:
                ratios[name] = float(fields[3])
        out[cells[0]] = ratios
    return out


def compare_with_anchors(row: dict, anchors: dict[str, dict[str, float]]) -> None:
    """Add the reference ratios and whether ours is at most the best accurate ONNX converter's."""
    ref = anchors.get(row["model"], {})
    onnx_refs = [v for k, v in ref.items() if k in ONNX_CONVERTERS]
    row["best_onnx_converter_ratio"] = min(onnx_refs) if onnx_refs else None
    row["litert_torch_ratio"] = ref.get("litert-torch")
    ours = row.get("litert_vs_ort")
    if row["best_onnx_converter_ratio"] is not None and ours is not None:
        row["meets_onnx_converters"] = bool(ours <= row["best_onnx_converter_ratio"])


# ---------------------------------------------------------------------------------------------- flatbuffer
def tflite_counts(data: bytes) -> dict[str, int]:
    """Op, TRANSPOSE and fused-activation counts of the main subgraph, read with the LiteRT schema."""
    from ai_edge_litert import schema_py_generated as S

    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    option_names = {v: k for k, v in vars(S.BuiltinOptions).items() if not k.startswith("_")}
    model = S.Model.GetRootAs(data, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        codes.append(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()))
    sub = model.Subgraphs(0)
    ops = transposes = fused = 0
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        ops += 1
        transposes += names.get(codes[op.OpcodeIndex()]) == "TRANSPOSE"
        cls = getattr(S, option_names.get(op.BuiltinOptionsType(), ""), None)
        table = op.BuiltinOptions()
        if cls is not None and table is not None and hasattr(cls, "FusedActivationFunction"):
            opts = cls()
            opts.Init(table.Bytes, table.Pos)
            fused += opts.FusedActivationFunction() != S.ActivationFunctionType.NONE
    return {"ops": ops, "transposes": int(transposes), "fused_activations": int(fused)}


# ---------------------------------------------------------------------------------------------- children
def child_convert(corpus: Path, name: str, workdir: Path) -> dict:
    """Convert one model; runs in its own process so peak RSS is this conversion's."""
    import onnx2litert

    rec = load_manifest(corpus)[name]
    t0 = time.perf_counter()
    try:
        result = onnx2litert.convert(corpus / rec["file"], workdir, overwrite_input_shape=shape_overrides(rec))
    except onnx2litert.ConversionError as exc:
        return {"status": "convert_fail", "reasons": sorted({i.reason.value for i in exc.issues}),
                "error": exc.issues[0].line(), "n_issues": len(exc.issues),
                "convert_s": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb()}
    return {"status": "converted", "convert_s": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb(),
            "float32": result.paths["float32"], "timings": result.timings}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KB on Linux


def _interleaved_latency_ms(fns: list, runs: int) -> list[float]:
    """Median latency of each callable, run alternately (so load changes hit all of them alike)."""
    for _ in range(WARMUP_RUNS):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, out in zip(fns, samples):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000.0)
    return [statistics.median(s) for s in samples]


def child_measure(corpus: Path, name: str, tflite_path: Path, runs: int) -> dict:
    """Accuracy, counts and single-thread latency of LiteRT and ONNX Runtime on the reference inputs."""
    import numpy as np
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from onnx2litert.evaluate import compare_outputs, run_tflite
    from onnx2litert.evaluate.runtime import read_layout

    rec = load_manifest(corpus)[name]
    feeds, expected = load_reference(corpus, rec)
    data = tflite_path.read_bytes()
    row: dict = {"size_mb": len(data) / 1e6, **tflite_counts(data)}
    try:
        got = run_tflite(data, feeds)
    except Exception as exc:  # the converted file does not run
        return {**row, "status": "runtime_fail", "error": f"{type(exc).__name__}: {exc}"[:300]}
    metrics = compare_outputs(expected, got)
    cos = [m.get("cosine", float("nan")) for m in metrics.values()]
    rl2 = [m.get("relative_l2", float("nan")) for m in metrics.values()]
    row["cosine"] = min(cos)
    row["relative_l2"] = max(rl2)
    cos_min, rl2_max = ((QUANTIZED_COSINE_MIN, QUANTIZED_RELATIVE_L2_MAX) if rec.get("category") == "quantized"
                        else (COSINE_MIN, RELATIVE_L2_MAX))
    ok = all(c >= cos_min for c in cos) and all(r <= rl2_max for r in rl2)
    row["status"] = "ok" if ok else "mismatch"

    # LiteRT: inputs set once in the model's layout, then only invoke() is timed (the signature
    # runner would resize and re-allocate tensors on every call, which a deployed app does not do).
    layout = read_layout(data).get("inputs", {})
    interp = Interpreter(model_content=data, num_threads=1)
    interp.allocate_tensors()
    details = interp.get_signature_runner("serving_default").get_input_details()
    for k, v in feeds.items():
        perm = (layout.get(k) or {}).get("perm_from_onnx")
        interp.set_tensor(details[k]["index"], np.ascontiguousarray(np.transpose(v, perm) if perm else v))

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(corpus / rec["file"]), so, providers=["CPUExecutionProvider"])
    row["litert_ms"], row["ort_ms"] = _interleaved_latency_ms([interp.invoke, lambda: sess.run(None, feeds)], runs)
    row["litert_vs_ort"] = row["litert_ms"] / row["ort_ms"] if row["ort_ms"] > 0 else float("nan")
    return row


def _run_child(args: list[str], timeout: float) -> tuple[dict | None, str, float]:
    """Run this script in child mode; returns (JSON result or None, error text, wall seconds)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired:
        return None, f"timeout after {timeout:.0f}s", time.perf_counter() - t0
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line), "", wall
    tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return None, f"exit status {proc.returncode}: {tail}"[:300], wall


# ---------------------------------------------------------------------------------------------- parent
def bench_model(corpus: Path, rec: dict, runs: int, timeout: float) -> dict:
    """One row of the table."""
    name = rec["name"]
    row: dict = {"model": name, "category": rec.get("category"), "onnx_mb": rec.get("size_bytes", 0) / 1e6}
    with tempfile.TemporaryDirectory(prefix=f"bench_{name}_") as tmp:
        conv, err, wall = _run_child(["--_child", "convert", "--corpus", str(corpus), "--model", name,
                                      "--workdir", tmp], timeout)
        row["convert_wall_s"] = wall
        if conv is None:
            return {**row, "status": "convert_fail", "error": err, "reasons": ["crash"]}
        row.update({k: conv[k] for k in ("convert_s", "peak_rss_mb")})
        if conv["status"] != "converted":
            return {**row, "status": "convert_fail", "reasons": conv["reasons"], "error": conv["error"]}
        meas, err, _ = _run_child(["--_child", "measure", "--corpus", str(corpus), "--model", name,
                                   "--tflite", conv["float32"], "--runs", str(runs)], timeout)
        if meas is None:
            return {**row, "status": "runtime_fail", "error": err}
        row.update(meas)
    return row


def _fmt(value: object, spec: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec)


def _status(row: dict) -> str:
    if row["status"] == "convert_fail":
        return "convert_fail: " + ", ".join(row.get("reasons", []))
    return row["status"]


def _summary(rows: list[dict]) -> str:
    compared = [r for r in rows if "meets_onnx_converters" in r]
    faster_torch = [r for r in rows if r.get("litert_torch_ratio") is not None and r.get("litert_vs_ort") is not None]
    return (f"Summary: {sum(r['status'] == 'ok' for r in rows)}/{len(rows)} ok; LiteRT/ORT at or below the best "
            f"accurate ONNX converter's on {sum(r['meets_onnx_converters'] for r in compared)}/{len(compared)} "
            f"models both convert (✗ marks the others); at or below litert-torch's on "
            f"{sum(r['litert_vs_ort'] <= r['litert_torch_ratio'] for r in faster_torch)}/{len(faster_torch)}.")


def render_markdown(rows: list[dict], meta: dict) -> str:
    """The docs/benchmarks.md page."""
    lines = [
        "# Benchmarks",
        "",
        f"Generated {meta['generated']} by `python bench/bench_corpus.py` on {meta['machine']} "
        f"(Python {meta['python']}, {meta['cpus']} CPUs). LiteRT and ONNX Runtime run on 1 thread; latency "
        f"is the median of {meta['runs']} runs after {WARMUP_RUNS} warm-up runs, LiteRT `invoke()` and ONNX "
        "Runtime `run()` alternating in one process, on the corpus' reference inputs. Cosine / relative L2: float32 file vs the stored ONNX Runtime outputs (worst output). "
        f"`ok` needs cosine >= {COSINE_MIN} and relative L2 <= {RELATIVE_L2_MAX} (models that arrive quantized: "
        f"cosine >= {QUANTIZED_COSINE_MIN}, relative L2 <= {QUANTIZED_RELATIVE_L2_MAX}). Conversion time and peak "
        "RSS are measured in a child process per model. Weights are random (see ../shared/corpus).",
        "",
        "`best ONNX conv.` is the lowest LiteRT/ORT ratio of an accurate reference ONNX converter (onnx2tf, NXP) "
        "and `litert-torch` that of litert-torch from the PyTorch source, both from `../shared/anchors.md` "
        "(measured in their own runs: ratios move by about ±10% from run to run on this machine).",
        "",
        _summary(rows),
        "",
        "| model | status | cosine | rel. L2 | ops | TRANSPOSE | fused act. | .tflite MB | LiteRT ms | ORT ms "
        "| LiteRT/ORT | best ONNX conv. | litert-torch | convert s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {_status(r)} | {_fmt(r.get('cosine'), '.6f')} | {_fmt(r.get('relative_l2'), '.2e')} "
            f"| {_fmt(r.get('ops'), 'd')} | {_fmt(r.get('transposes'), 'd')} | {_fmt(r.get('fused_activations'), 'd')} "
            f"| {_fmt(r.get('size_mb'), '.2f')} | {_fmt(r.get('litert_ms'), '.2f')} | {_fmt(r.get('ort_ms'), '.2f')} "
            f"| {_fmt(r.get('litert_vs_ort'), '.2f')}{'' if r.get('meets_onnx_converters', True) else ' ✗'} "
            f"| {_fmt(r.get('best_onnx_converter_ratio'), '.2f')} | {_fmt(r.get('litert_torch_ratio'), '.2f')} "
            f"| {_fmt(r.get('convert_s'), '.2f')} "
            f"| {_fmt(r.get('peak_rss_mb'), '.0f')} |")
    failures = [r for r in rows if r["status"] != "ok" and r.get("error")]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- **{r['model']}** ({_status(r)}): `{r['error']}`" for r in failures]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default_corpus = os.environ.get("ONNX2LITERT_CORPUS") or str(REPO / ".corpus")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help="comma-separated model names (default: every corpus model)")
    p.add_argument("--anchors", default=str(ANCHORS), help="reference converters' figures (../shared/anchors.md)")
    p.add_argument("--corpus", default=default_corpus, help="corpus folder (default: $ONNX2LITERT_CORPUS or .corpus)")
    p.add_argument("--runs", type=int, default=20, help="timed runs per runtime (>= 20 recommended)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per child process")
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="markdown output (JSON next to it)")
    # Internal: child modes.
    p.add_argument("--_child", choices=["convert", "measure"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--tflite", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parent: benchmark the selected models and write the reports. Child modes print one JSON line."""
    args = parse_args(argv)
    corpus = Path(args.corpus).resolve()
    if args._child == "convert":
        print(json.dumps(child_convert(corpus, args.model, Path(args.workdir))))
        return 0
    if args._child == "measure":
        print(json.dumps(child_measure(corpus, args.model, Path(args.tflite), args.runs)))
        return 0

    records = load_manifest(corpus)
    names = args.models.split(",") if args.models else list(records)
    anchors = load_anchors(Path(args.anchors))
    missing = [n for n in names if n not in records]
    if missing:
        raise SystemExit(f"not in the corpus manifest: {', '.join(missing)}")
    rows = []
    for name in names:
        row = bench_model(corpus, records[name], args.runs, args.timeout)
        compare_with_anchors(row, anchors)
        rows.append(row)
        print(f"{name:28s} {_status(row):40s} cos={_fmt(row.get('cosine'), '.6f')} "
              f"litert={_fmt(row.get('litert_ms'), '.2f')}ms ort={_fmt(row.get('ort_ms'), '.2f')}ms "
              f"convert={_fmt(row.get('convert_s'), '.2f')}s rss={_fmt(row.get('peak_rss_mb'), '.0f')}MB", flush=True)
    meta = {"generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": f"{platform.system()} {platform.machine()}", "python": platform.python_version(),
            "cpus": os.cpu_count(), "runs": args.runs, "corpus": str(corpus)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(rows, meta))
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

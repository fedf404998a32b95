"""Quantized variants of the corpus CNNs, checked against ONNX Runtime in LiteRT.

    python bench/quant_corpus.py [--models a,b] [--corpus DIR] [--out docs/quantization.md]

For each model, in child processes (a crash or a memory peak never affects the others):

1. ``convert``: ``onnx2litert.convert`` with ``-odrqt -oiqt`` and ``calibration_data`` = an ``.npz`` of
   16 seeded samples drawn from the model's reference input distribution (the manifest's ``values``
   hints: ``range`` -> uniform, ``const`` -> filled, other floats -> standard normal). The calibration
   seed differs from the seed of the stored reference input, so the model is never calibrated on the
   input it is evaluated on.
2. ``measure``: every produced variant is loaded and run on XNNPACK (LiteRT's default CPU path) and on
   the builtin kernels alone, on the stored reference input (``testdata/<name>.npz``; quantized for
   integer inputs), its outputs dequantized, and compared by cosine with the stored ONNX Runtime
   outputs (float outputs; integer outputs such as arg-max labels are reported as the share of equal
   elements). For an int8 variant below its bar, a per-layer trace (cosine of each op's dequantized
   output against the float32 file's tensor of the same name, builtin kernels) shows where the error
   comes from.

Writes ``--out`` (markdown) and the raw rows as JSON next to it, plus the output of the migration
command (``--migration_model``) run once through ``python -m onnx2litert``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from bench_corpus import load_manifest, load_reference, shape_overrides  # noqa: E402

CNN_MODELS = ["light_densenet121", "light_inception_v1", "light_inception_v2", "light_resnet50",
              "light_shufflenet", "light_squeezenet", "resnet18", "mobilenetv2", "mobilenetv3_small",
              "mobilenetv3_small_dynamo", "efficientnet_b0", "densenet_small", "unet_small", "yolo_style_det",
              "deeplabv3_mnv2_op13", "style_transfer", "espcn_superres", "conv1d_audio_m5"]
VARIANTS = ["float32", "float16", "dynamic_range_quant", "integer_quant", "full_integer_quant",
            "integer_quant_with_int16_act", "full_integer_quant_with_int16_act"]
# The issue's acceptance bars (minimum cosine to ONNX Runtime) per variant.
BARS = {"float32": 0.99999, "float16": 0.9999, "dynamic_range_quant": 0.999, "integer_quant": 0.99,
        "full_integer_quant": 0.99, "integer_quant_with_int16_act": 0.999,
        "full_integer_quant_with_int16_act": 0.999}
CALIBRATION_SAMPLES = 16
MIGRATION_MODEL = "mobilenetv2"


# ---------------------------------------------------------------------------------------------- inputs
def sample_input(spec: dict, rng: np.random.Generator) -> np.ndarray:
    """One input drawn as the corpus draws its reference inputs (see manifest ``input_generation``)."""
    shape, dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])
    values = spec.get("values") or {}
    if "const" in values:
        return np.full(shape, values["const"], dtype)
    if "range" in values:
        lo, hi = values["range"]
        if dtype.kind in "iu":
            return rng.integers(lo, hi, shape).astype(dtype)
        return rng.uniform(lo, hi, shape).astype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, 8, shape).astype(dtype)


def write_calibration(rec: dict, path: Path, n: int = CALIBRATION_SAMPLES) -> Path:
    """An ``.npz`` of ``n`` samples per input, keyed by ONNX input name (shape [n, *input_shape])."""
    rng = np.random.default_rng(zlib.crc32(("calibration:" + rec["name"]).encode()))
    arrays = {spec["name"]: np.stack([sample_input(spec, rng) for _ in range(n)]) for spec in rec["inputs"]}
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------------------------------------- metrics
def cosine(ref: np.ndarray, got: np.ndarray) -> float:
    """Cosine similarity of two flattened arrays (1.0 when both are zero)."""
    r = np.asarray(ref, np.float64).ravel()
    g = np.asarray(got, np.float64).ravel()
    nr, ng = np.linalg.norm(r), np.linalg.norm(g)
    if nr == 0 and ng == 0:
        return 1.0
    if nr == 0 or ng == 0:
        return 0.0
    return float(r @ g / (nr * ng))


def compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict:
    """Worst cosine over float outputs; share of equal elements for integer outputs."""
    cos, agree = [], []
    for name, ref in expected.items():
        if name not in got or np.shape(got[name]) != np.shape(ref):
            return {"error": f"output '{name}' missing or of shape {np.shape(got.get(name))}"}
        if np.asarray(ref).dtype.kind in "iub":
            agree.append(float(np.mean(np.asarray(got[name]) == ref)))
        else:
            cos.append(cosine(ref, got[name]))
    return {"cosine": min(cos) if cos else None, "label_agreement": min(agree) if agree else None}


def run_variant(data: bytes, feeds: dict, delegates: bool) -> dict[str, np.ndarray]:
    """ONNX-layout outputs (dequantized) of a variant on ONNX-layout float feeds."""
    from onnx2litert.evaluate import run_tflite
    from onnx2litert.evaluate.accuracy import dequantize_outputs, io_details, quantize_feeds

    ins, outs = io_details(data)
    got = run_tflite(data, quantize_feeds(feeds, ins), use_default_delegates=delegates)
    return dequantize_outputs(got, outs)


def _interpreter_tensors(data: bytes, feeds: dict) -> dict[str, np.ndarray]:
    """Every tensor (dequantized to float) after one builtin-kernel run, by tensor name."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from onnx2litert.evaluate.runtime import read_layout

    layout = read_layout(data).get("inputs", {})
    interp = Interpreter(model_content=data, num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                         experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    runner_inputs = interp.get_signature_list()["serving_default"]["inputs"]
    sig = interp.get_signature_runner("serving_default").get_input_details()
    for name in runner_inputs:
        d = sig[name]
        value = np.asarray(feeds[name])
        perm = (layout.get(name) or {}).get("perm_from_onnx")
        if perm:
            value = np.transpose(value, perm)
        scale, zp = d["quantization"]
        if np.dtype(d["dtype"]).kind in "iu" and scale:
            info = np.iinfo(d["dtype"])
            value = np.clip(np.round(value / scale) + zp, info.min, info.max)
        interp.set_tensor(d["index"], np.ascontiguousarray(value, dtype=d["dtype"]))
    interp.invoke()
    out = {}
    for t in interp.get_tensor_details():
        try:
            v = interp.get_tensor(t["index"])
        except ValueError:
            continue
        scale, zp = t["quantization"]
        if np.dtype(t["dtype"]).kind in "iu" and scale:
            v = (v.astype(np.float64) - zp) * scale
        out[t["name"]] = v
    return out


def layer_trace(float_data: bytes, quant_data: bytes, feeds: dict) -> list[dict]:
    """Cosine of each op output of ``quant_data`` against the float32 file's tensor of the same name."""
    from ai_edge_litert import schema_py_generated as S

    ref = _interpreter_tensors(float_data, feeds)
    got = _interpreter_tensors(quant_data, feeds)
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    m = S.ModelT.InitFromPackedBuf(quant_data, 0)
    sg = m.subgraphs[0]
    rows = []
    for k, op in enumerate(sg.operators):
        code = m.operatorCodes[op.opcodeIndex]
        opname = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
        if opname in ("QUANTIZE", "DEQUANTIZE"):
            continue
        for i in op.outputs:
            tname = sg.tensors[i].name.decode()
            if tname in ref and tname in got and np.shape(ref[tname]) == np.shape(got[tname]):
                rows.append({"op": k, "opcode": opname, "tensor": tname, "cosine": cosine(ref[tname], got[tname])})
    return rows


def weight_rounding_cosine(onnx_path: Path, feeds: dict, expected: dict) -> float | None:
    """Cosine to ORT of the ONNX model itself with its Conv/Gemm/MatMul weights rounded to int8.

    Weights are rounded symmetrically per output channel (as the quantized files store them) and
    the model runs in float in ONNX Runtime: the error that int8 weights alone cause, with no
    activation quantization and no LiteRT kernel involved.
    """
    import onnx
    from onnx import numpy_helper

    from onnx2litert.evaluate import run_onnx
    from onnx2litert.quantize.common import quantize_weights_symmetric

    model = onnx.load(str(onnx_path))
    inits = {i.name: i for i in model.graph.initializer}
    axes: dict[str, int] = {}
    for node in model.graph.node:
        if len(node.input) < 2 or node.input[1] not in inits:
            continue
        if node.op_type in ("Conv", "ConvTranspose"):
            axes[node.input[1]] = 0 if node.op_type == "Conv" else 1
        elif node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            axes[node.input[1]] = 0 if trans_b else 1
        elif node.op_type == "MatMul":
            axes[node.input[1]] = -1
    if not axes:
        return None
    for name, axis in axes.items():
        w = numpy_helper.to_array(inits[name])
        if w.dtype != np.float32 or w.ndim < 2:
            continue
        axis = axis % w.ndim
        q, scales = quantize_weights_symmetric(w, axis)
        shape = [1] * w.ndim
        shape[axis] = -1
        rounded = (q.astype(np.float32) * scales.reshape(shape)).astype(np.float32)
        inits[name].CopyFrom(numpy_helper.from_array(rounded, name))
    got = run_onnx(model.SerializeToString(), feeds)
    return compare(expected, got).get("cosine")


# ---------------------------------------------------------------------------------------------- children
def child_convert(corpus: Path, name: str, workdir: Path) -> dict:
    """Convert one model to every variant with the seeded calibration set."""
    import warnings

    import onnx2litert

    rec = load_manifest(corpus)[name]
    calib = write_calibration(rec, workdir / "calibration.npz")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = onnx2litert.convert(corpus / rec["file"], workdir, overwrite_input_shape=shape_overrides(rec),
                                         output_dynamic_range_quantized_tflite=True,
                                         output_integer_quantized_tflite=True, calibration_data=str(calib),
                                         calibration_num_samples=CALIBRATION_SAMPLES)
        except onnx2litert.ConversionError as exc:
            return {"status": "convert_fail", "error": exc.issues[0].line(),
                    "reasons": sorted({i.reason.value for i in exc.issues})}
    return {"status": "converted", "convert_s": time.perf_counter() - t0, "paths": result.paths,
            "quantization": result.reports.get("quantization", {}), "timings": result.timings}


def child_measure(corpus: Path, name: str, paths: dict[str, str], trace: bool) -> dict:
    """Run every variant on XNNPACK and builtin kernels; compare with the stored ORT outputs."""
    rec = load_manifest(corpus)[name]
    feeds, expected = load_reference(corpus, rec)
    rows: dict[str, dict] = {}
    for variant, path in paths.items():
        data = Path(path).read_bytes()
        row: dict = {"size_mb": len(data) / 1e6}
        for label, delegates in (("xnnpack", True), ("builtin", False)):
            try:
                row[label] = compare(expected, run_variant(data, feeds, delegates))
            except Exception as exc:  # a file that does not load or run is a result, not a crash
                row[label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        rows[variant] = row
    extra: dict = {}
    below = [v for v, r in rows.items() if any(r[k].get("cosine") is not None and r[k]["cosine"] < BARS[v]
                                               for k in ("xnnpack", "builtin"))]
    if trace and below:
        try:
            extra["weight_rounding_cosine"] = weight_rounding_cosine(corpus / rec["file"], feeds, expected)
        except Exception as exc:
            extra["weight_rounding_error"] = f"{type(exc).__name__}: {exc}"[:200]
    traces = {}
    if trace and "float32" in paths:
        float_data = Path(paths["float32"]).read_bytes()
        for variant in ("integer_quant", "integer_quant_with_int16_act"):
            r = rows.get(variant, {}).get("builtin", {})
            if r.get("cosine") is not None and r["cosine"] < BARS[variant] and variant in paths:
                traces[variant] = layer_trace(float_data, Path(paths[variant]).read_bytes(), feeds)
    return {"variants": rows, "traces": traces, **extra}


def _run_child(args: list[str], timeout: float) -> tuple[dict | None, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired:
        return None, f"timeout after {timeout:.0f}s"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line), ""
    tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return None, f"exit status {proc.returncode}: {tail}"[:300]


def bench_model(corpus: Path, name: str, timeout: float, trace: bool) -> dict:
    """One model: conversion summary, per-variant results and (for failures) layer traces."""
    with tempfile.TemporaryDirectory(prefix=f"quant_{name}_") as tmp:
        conv, err = _run_child(["--_child", "convert", "--corpus", str(corpus), "--model", name,
                                "--workdir", tmp], timeout)
        if conv is None:
            return {"model": name, "status": "convert_crash", "error": err}
        if conv["status"] != "converted":
            return {"model": name, **conv}
        paths = {k: v for k, v in conv["paths"].items() if k in VARIANTS}
        meas, err = _run_child(["--_child", "measure", "--corpus", str(corpus), "--model", name,
                                "--paths", json.dumps(paths)] + (["--trace"] if trace else []), timeout)
    row = {"model": name, "status": "converted", "convert_s": conv["convert_s"],
           "quantization": conv["quantization"]}
    if meas is None:
        return {**row, "status": "measure_crash", "error": err}
    return {**row, **meas}


# ---------------------------------------------------------------------------------------------- report
def _cell(row: dict, variant: str) -> str:
    """``cosine`` (worst of XNNPACK and builtin) with a mark when below the bar or not run."""
    v = row.get("variants", {}).get(variant)
    if v is None:
        q = row.get("quantization", {}).get("variants", {}).get(variant)
        if q is not None and not q.get("produced", True):
            return "not produced"
        return "-"
    errs = [k for k in ("xnnpack", "builtin") if "error" in v[k]]
    if errs:
        return "fails on " + "+".join(errs)
    cos = [v[k]["cosine"] for k in ("xnnpack", "builtin") if v[k].get("cosine") is not None]
    agree = [v[k]["label_agreement"] for k in ("xnnpack", "builtin") if v[k].get("label_agreement") is not None]
    text = f"{min(cos):.6f}" if cos else ""
    if cos and min(cos) < BARS[variant]:
        text = f"**{text}** ✗"
    if agree:
        text += f" (labels {100 * min(agree):.1f}%)"
    return text


def _load_status(row: dict) -> str:
    """`ok` when every produced variant loads and runs on both kernel sets."""
    bad = []
    for variant, v in row.get("variants", {}).items():
        for k in ("xnnpack", "builtin"):
            if "error" in v[k]:
                bad.append(f"{variant}/{k}")
    return "ok (XNNPACK + builtin)" if not bad else "fails: " + ", ".join(bad)


def _trace_summary(trace: list[dict], points: int = 8) -> str:
    """Cosine at evenly spaced depths, e.g. ``CONV_2D#3 0.9998 -> ...``."""
    if not trace:
        return "-"
    idx = sorted({round(k * (len(trace) - 1) / (points - 1)) for k in range(points)})
    return " → ".join(f"{trace[i]['opcode']}#{trace[i]['op']} {trace[i]['cosine']:.4f}" for i in idx)


def render_consumers(rows: list[dict]) -> list[str]:
    """The TFLM / Vela section from ``bench/quant_consumers.py --json`` rows."""
    from quant_consumers import format_row

    lines = ["", "## Independent consumers: TFLite Micro and Vela", "",
             "`python bench/quant_consumers.py --json ...` (needs `pip install -e .[consumers]`): the "
             "`full_integer_quant` file (int8 I/O, per-channel weights, 16 seeded calibration samples) runs in "
             "the TFLM Python interpreter and in LiteRT's builtin kernels on the same seeded int8 input (largest "
             "difference of the raw int8 outputs, in quantization steps), and is compiled by Vela for an "
             "Ethos-U55-128 (`vela --accelerator-config ethos-u55-128`). \"Our ops\" are the operators of our "
             "file; Vela's summary counts its own (split) operators.", "", "```"]
    lines += [format_row(r) for r in rows]
    return lines + ["```"]


def render_markdown(rows: list[dict], meta: dict, migration: str | None, consumers: list[dict] | None = None) -> str:
    """The docs/quantization.md page."""
    short = {"float32": "float32", "float16": "float16", "dynamic_range_quant": "dynamic range",
             "integer_quant": "int8", "full_integer_quant": "int8 full-integer I/O",
             "integer_quant_with_int16_act": "int16 act.", "full_integer_quant_with_int16_act":
             "int16 act. full-integer I/O"}
    lines = [
        "# Quantization on the corpus CNNs",
        "",
        f"Generated {meta['generated']} by `python bench/quant_corpus.py` on {meta['machine']} "
        f"(Python {meta['python']}, ai-edge-litert {meta['litert']}, onnxruntime {meta['ort']}).",
        "",
        "Each model is converted with `-odrqt -oiqt` (per-channel weights) and `calibration_data` = "
        f"{CALIBRATION_SAMPLES} seeded samples drawn from the model's reference input distribution (the "
        "corpus manifest's `values` hints: standard normal, uniform [-1, 1) for `conv1d_audio_m5`; the "
        "calibration seed differs from the reference input's). Every produced file is run on XNNPACK (LiteRT's "
        "default CPU path) and on the builtin kernels alone, on the corpus' stored reference input "
        "(`testdata/<name>.npz`, quantized for integer-input files); outputs are dequantized and compared "
        "with the stored ONNX Runtime outputs. A cell is the worst cosine over outputs and over both kernel "
        "sets. Integer outputs (deeplab's arg-max `labels`) are reported as the share of equal labels. "
        "Weights are random (see ../shared/corpus).",
        "",
        "Bars: " + ", ".join(f"{short[v]} >= {BARS[v]}" for v in VARIANTS) + ". ✗ = below the bar "
        "(explained below).",
        "",
        "| model | " + " | ".join(short[v] for v in VARIANTS) + " | load/run |",
        "|---|" + "---:|" * len(VARIANTS) + "---|",
    ]
    for r in rows:
        if r["status"] != "converted":
            lines.append(f"| {r['model']} | {r['status']}: `{r.get('error', '')}` |" + " |" * len(VARIANTS))
            continue
        lines.append(f"| {r['model']} | " + " | ".join(_cell(r, v) for v in VARIANTS) + f" | {_load_status(r)} |")
    below = {(r["model"], v) for r in rows for v in VARIANTS if "✗" in _cell(r, v)}
    total = sum(1 for r in rows for v in VARIANTS if r.get("variants", {}).get(v))
    lines += ["", f"Summary: {len(rows)} models, {total} files, {total - len(below)} at or above their bar."]
    fallbacks = []
    for r in rows:
        for v, q in r.get("quantization", {}).get("variants", {}).items():
            if q.get("float_ops"):
                ops = sorted({f["op"] for f in q["float_ops"]})
                fallbacks.append(f"- **{r['model']}** `{v}`: float ops kept: {', '.join(ops)}")
            if not q.get("produced", True):
                fallbacks.append(f"- **{r['model']}** `{v}` not produced: {q['errors'][0]}")
    if fallbacks:
        lines += ["", "## Ops left float / variants not produced", ""] + fallbacks
    traces = [(r["model"], v, t) for r in rows for v, t in r.get("traces", {}).items()]
    if traces:
        lines += ["", "## Per-layer traces of the variants below their bar", "",
                  "Cosine of each op's dequantized output against the float32 file's tensor of the same name "
                  "(builtin kernels, reference input), at evenly spaced depths:", ""]
        for r in rows:
            if r.get("weight_rounding_cosine") is not None:
                lines.append(f"- **{r['model']}**: int8 weights alone (ONNX model with its Conv/Gemm/MatMul weights "
                             f"rounded to int8 per output channel, float compute in ONNX Runtime): cosine "
                             f"{r['weight_rounding_cosine']:.6f}.")
        for model, v, t in traces:
            worst_drop = max(range(1, len(t)), key=lambda i: t[i - 1]["cosine"] - t[i]["cosine"], default=0)
            lines.append(f"- **{model}** `{v}` ({len(t)} ops): {_trace_summary(t)}; largest single-op drop at "
                         f"{t[worst_drop]['opcode']}#{t[worst_drop]['op']} "
                         f"(`{t[worst_drop]['tensor']}`)." if t else f"- **{model}** `{v}`: no trace")
    if ANALYSIS.strip():
        lines += ["", "## Analysis", "", ANALYSIS.strip()]
    if consumers:
        lines += render_consumers(consumers)
    if migration:
        lines += ["", "## The migration command", "", "```", migration.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def run_migration(corpus: Path, name: str) -> str:
    """Run the onnx2tf-style migration command on one corpus CNN; return the command and its output."""
    rec = load_manifest(corpus)[name]
    with tempfile.TemporaryDirectory(prefix="quant_migration_") as tmp:
        cmd = [sys.executable, "-m", "onnx2litert", "-i", str(corpus / rec["file"]), "-o", tmp,
               "--tflite_backend", "flatbuffer_direct", "-odrqt", "-oiqt", "--eval_with_onnx",
               "--eval_target_tflite", "full_integer_quant", "--eval_compare_mode", "dequant",
               "--report_op_coverage"]
        # Bytes, not text: universal newlines would turn the progress bar's \r into line breaks.
        proc = subprocess.run(cmd, capture_output=True, cwd=REPO)
        shown = "$ python -m onnx2litert -i " + rec["file"] + " -o out " + " ".join(cmd[7:])
        out = (proc.stdout + proc.stderr).decode(errors="replace").replace(tmp, "out")
        # The calibration progress bar rewrites one line with \r: keep its final state.
        out = "\n".join(line.split("\r")[-1] for line in out.split("\n"))
        return f"{shown}\n{out}\n(exit status {proc.returncode})"


# Hand-written findings shown under the table (kept here so the page stays fully generated).
ANALYSIS = """
**Quantizer bugs found by this run and fixed in `onnx2litert/quantize/integer.py`** (tests in
`tests/test_quantize.py`):

- *Max-pool padding ruined the int8/int16 scale.* A MaxPool whose ONNX pads differ from LiteRT's SAME is
  lowered to `PADV2(float32 lowest)` + VALID `MAX_POOL_2D`. PADV2 had no integer kernel in the quantizer, and
  its calibrated output range contained -3.4e38, which was tied into the max pool's group: scale ~1e36.
  Before: light_densenet121 int8 0.978 / int16 0.982, light_resnet50 int8 failed on XNNPACK, and their
  full-integer files were not produced. Now PADV2 is a same-parameter op whose pad value is left out of the
  range and quantized with the output's parameters (it saturates to the integer minimum, which is exact for
  the following max pool): densenet121 int8 0.99916, resnet50 int8 1.000000, both full-integer.
- *int16 SOFTMAX overflowed.* LiteRT's int16 softmax scales `input - max` by `input_scale * beta * 65535 / 10`
  with an integer left shift; with |input - max| < 2^16 the int32 product wraps once `input_scale * beta >= 5`.
  light_shufflenet's random-weight logits reach +-1e7 (scale 349): cosine 0.045. The quantizer now checks
  this limit after the ranges are tied: the SOFTMAX stays float in `integer_quant_with_int16_act` (cosine
  1.000000) and `full_integer_quant_with_int16_act` is not produced, with the reason in the report.
- *LOG_SOFTMAX and ARG_MAX had no int8 kernel in the quantizer* although LiteRT has them (LOG_SOFTMAX's
  output is fixed at 16/256, zero point 127; ARG_MAX keeps its int64 indices): conv1d_audio_m5 and
  deeplabv3_mnv2_op13 now get full-integer int8 files. Neither has an int16 kernel in LiteRT.
- *A SHAPE of the (now integer) input blocked the full-integer files of unet_small and style_transfer*:
  SHAPE reads no values, so it now accepts int8/int16 inputs. (These two rows were re-run after the fix.)

Other variants not produced are real LiteRT limits, listed above: LOCAL_RESPONSE_NORMALIZATION (inception_v1),
EXP/DIV (yolo box decoding), int16 HARD_SWISH (mobilenetv3), SQUARED_DIFFERENCE (style_transfer's instance
norm) and DEPTH_TO_SPACE (espcn), LOG_SOFTMAX/ARG_MAX int16, and int16 softmax
over logit ranges beyond the kernel's limit (resnet50, shufflenet).

**Below the bar, and why** (all are properties of the random-weight models, not of the files):

- *light_inception_v1, int8 (0.585).* The model ends in a 1000-class SOFTMAX whose reference output is
  nearly uniform (largest probability 0.0075; only 64 of 1000 values are >= half an int8 step). LiteRT's
  int8 softmax kernel requires output scale 1/256, so most probabilities round to 0: rounding the exact ONNX
  Runtime output itself to that grid gives cosine 0.5834. The per-layer trace above shows every layer up to
  the FULLY_CONNECTED logits at >= 0.9995. The int16 file (1/32768 grid) reaches 0.99993. The full-integer
  files are not produced because LOCAL_RESPONSE_NORMALIZATION has no integer kernel in LiteRT.
- *light_squeezenet, dynamic range (0.9966) and int16 activations (0.9970); int8 0.9955 passes its 0.99 bar.*
  The error comes from the int8 weights, which all three share: the ONNX model itself with its Conv weights
  rounded to int8 per output channel and run in float by ONNX Runtime gives cosine 0.99702 (the "int8
  weights alone" figure below), i.e. exactly the int16 result. The trace shows the logits (the MEAN before
  the SOFTMAX) at 0.99990; the softmax over large random logits (largest probability 0.31) turns that small
  logit error into 0.997 on the probabilities (exp amplifies absolute logit errors).

**TFLite Micro vs LiteRT (section below).** On the same int8 input the raw outputs are identical
(conv1d_audio_m5) or 1 step apart; light_squeezenet is 2 steps apart at its SOFTMAX output. A per-op
comparison (TFLM's `kPreserveAllTensors` vs LiteRT's `experimental_preserve_all_tensors`, tiny_cnn) shows
where the two runtimes' integer arithmetic differs: MEAN (the global average pool) rounds differently on 19 %
of its elements (1 step) and one CONV_2D on 0.1 % (1 step); the following FULLY_CONNECTED / SOFTMAX carry
the 1-step difference. In squeezenet the MEAN's 1-step differences (13.5 % of elements) feed a SOFTMAX over
large logits, which makes 2 steps on 0.2 % of the outputs. Both runtimes accept every op of our files.

**Vela.** Every operator of tiny_cnn, the onnx.helper conv net, light_squeezenet, mobilenetv2 and resnet18
(CONV_2D, DEPTHWISE_CONV_2D, ADD, MUL, pools, CONCATENATION, MEAN, RESHAPE, FULLY_CONNECTED, LOGISTIC,
SOFTMAX, PAD) is placed on the Ethos-U55. The only op left on the CPU is conv1d_audio_m5's LOG_SOFTMAX, which
is not in Vela's supported-operator list for the U55 (`vela --supported-ops-report`); nothing in our file
can change that.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default_corpus = os.environ.get("ONNX2LITERT_CORPUS") or str(REPO / ".corpus")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help="comma-separated model names (default: the corpus CNNs)")
    p.add_argument("--corpus", default=default_corpus)
    p.add_argument("--timeout", type=float, default=1200, help="seconds per child process")
    p.add_argument("--out", default=str(REPO / "docs" / "quantization.md"))
    p.add_argument("--migration_model", default=MIGRATION_MODEL, help="'' to skip the migration command")
    p.add_argument("--no_trace", action="store_true", help="skip per-layer traces of variants below the bar")
    p.add_argument("--consumers_json", help="rows written by bench/quant_consumers.py --json, shown in the page")
    p.add_argument("--render_only", action="store_true",
                   help="re-render --out from the JSON next to it (no conversion, no run)")
    p.add_argument("--_child", choices=["convert", "measure"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--paths", help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parent: run the selected models, write the report. Child modes print one JSON line."""
    args = parse_args(argv)
    corpus = Path(args.corpus).resolve()
    if args._child == "convert":
        print(json.dumps(child_convert(corpus, args.model, Path(args.workdir)), default=str))
        return 0
    if args._child == "measure":
        print(json.dumps(child_measure(corpus, args.model, json.loads(args.paths), args.trace), default=str))
        return 0
    out = Path(args.out)
    if args.render_only:
        saved = json.loads(out.with_suffix(".json").read_text())
        consumers = json.loads(Path(args.consumers_json).read_text()) if args.consumers_json else None
        out.write_text(render_markdown(saved["rows"], saved["meta"], saved.get("migration"), consumers))
        print(f"wrote {out}")
        return 0
    records = load_manifest(corpus)
    names = args.models.split(",") if args.models else [n for n in CNN_MODELS if n in records]
    rows = []
    for name in names:
        t0 = time.perf_counter()
        row = bench_model(corpus, name, args.timeout, not args.no_trace)
        rows.append(row)
        print(f"{name:28s} {time.perf_counter() - t0:6.1f}s " +
              " ".join(f"{v}={_cell(row, v)}" for v in VARIANTS), flush=True)
    import ai_edge_litert
    import onnxruntime
    meta = {"generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": f"{platform.system()} {platform.machine()}", "python": platform.python_version(),
            "litert": getattr(ai_edge_litert, "__version__", "?"), "ort": onnxruntime.__version__,
            }
    migration = run_migration(corpus, args.migration_model) if args.migration_model else None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "migration": migration}, indent=1,
                                                   default=str) + "\n")
    consumers = json.loads(Path(args.consumers_json).read_text()) if args.consumers_json else None
    out.write_text(render_markdown(rows, meta, migration, consumers))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

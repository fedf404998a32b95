"""The pipeline: frontend -> lower -> passes -> quantize -> export, with reports beside it."""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .errors import ConversionError, Issue, Reason
from .evaluate.accuracy import evaluate_against_onnx
from .evaluate.runtime import LAYOUT_METADATA
from .export import export_model
from .frontend import PreparedGraph, prepare
from .lower import REGISTRY, lower_graph
from .dynamic import NotGeneral, generalize, plan_dynamic, representative_hint, static_fallback_warning
from .options import ConversionOptions
from .passes import run_passes
from .quantize import collect_ranges, load_samples, quantize_integer, ranges_by_position, to_dynamic_range
from .quantize.float16 import float16_variant
from .report import op_coverage_report
from .export.flatbuffer import FileImage, write_atomic
from .export.large import IN_MEMORY_LIMIT, constant_bytes, prepare_export
from .split.pipeline import run_split, threshold_error

ModelSource = str | os.PathLike | bytes | onnx.ModelProto


@dataclass
class ConversionResult:
    """What a conversion produced: artifacts, reports, the I/O layout mapping, timings.

    ``artifacts`` (variant -> bytes) and ``split_parts`` (file name -> bytes) hold every file
    when no output folder is given. With an output folder, files larger than
    ``onnx2litert.export.large.IN_MEMORY_LIMIT`` (256 MiB; e.g. a model with external
    buffers past 2 GiB) are streamed to disk and are *absent* there: ``paths`` always has
    every file written (``"float32"``, ``"float16"``, ``"split_0001"``...).
    """

    stem: str
    artifacts: dict[str, bytes] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    reports: dict[str, dict] = field(default_factory=dict)
    report_paths: dict[str, str] = field(default_factory=dict)
    io_layout: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    op_counts: dict[str, int] = field(default_factory=dict)
    # Non-fatal notes for the user (e.g. calibration on synthetic data).
    warnings: list[str] = field(default_factory=list)
    # Size-based split (--auto_split_tflite_by_size): part file name -> bytes, in run order.
    split_parts: dict[str, bytes] = field(default_factory=dict)

    @property
    def accuracy_passed(self) -> bool | None:
        acc = self.reports.get("accuracy")
        return None if acc is None else bool(acc["pass"])


def convert(model_or_path: ModelSource, output_folder: str | os.PathLike | None = None,
            **options: object) -> ConversionResult:
    """Convert an ONNX model (path, bytes or ModelProto) to LiteRT.

    With ``output_folder`` the files ``<stem>_float32.tflite`` and ``<stem>_float16.tflite``
    (and requested reports) are written there. Without it, every file's bytes are in
    ``result.artifacts``; with it, a file larger than 256 MiB is streamed to disk and is only in
    ``result.paths`` (which always lists every file written).
    ``output_dynamic_range_quantized_tflite`` / ``output_integer_quantized_tflite`` add the
    ``<stem>_dynamic_range_quant.tflite`` and ``<stem>_{integer_quant, full_integer_quant,
    integer_quant_with_int16_act, full_integer_quant_with_int16_act}.tflite`` variants.
    Options use the CLI's long names (e.g. ``report_op_coverage=True``), except ``optimize=False``
    (``--disable_optimizations``) and ``dynamic_shapes=False`` (``--no_dynamic_shapes``); the CLI's
    aliases (``-easm``, ``-asms``...) are CLI-only. Raises
    :class:`ConversionError` with every blocking problem when the model cannot be converted.
    """
    opts = ConversionOptions.from_kwargs(
        output_folder=None if output_folder is None else str(output_folder), **options)
    return run_conversion(model_or_path, opts)


def _stem(source: ModelSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).stem
    return "model"


def _options_summary(opts: ConversionOptions) -> dict:
    return {"tflite_backend": opts.tflite_backend, "batch_size": opts.batch_size,
            "overwrite_input_shape": {k: list(v) for k, v in opts.overwrite_input_shape},
            "keep_ncw_or_nchw_or_ncdhw_input_names": list(opts.keep_ncw_or_nchw_or_ncdhw_input_names),
            "keep_all_inputs_layout": opts.keep_all_inputs_layout,
            "flatbuffer_direct_allow_custom_ops": opts.flatbuffer_direct_allow_custom_ops,
            "flatbuffer_direct_custom_op_allowlist": list(opts.flatbuffer_direct_custom_op_allowlist)}


def run_conversion(source: ModelSource, opts: ConversionOptions) -> ConversionResult:
    """Run the whole pipeline with already-validated options."""
    result = ConversionResult(stem=_stem(source))
    out_dir = Path(opts.output_folder) if opts.output_folder else None
    if opts.tflite_backend == "tf_converter":
        raise ConversionError(Issue(
            Reason.BACKEND_NOT_INSTALLED,
            "the tf_converter backend is not installed in this build; use --tflite_backend flatbuffer_direct"))

    t0 = time.perf_counter()
    # Symbolic input dims that stay dynamic: the pipeline runs at their representative sizes
    # (point_opts fixes them like -ois), then onnx2litert.dynamic generalizes the result.
    plan = plan_dynamic(source, opts)
    point_opts = plan.options_at(opts, plan.points()[0]) if plan else opts
    try:
        prepared = prepare(source, point_opts)
    except ConversionError as exc:
        hint = representative_hint(plan)
        if hint:  # a dim converted at --dynamic_dim_default: say how to choose another size
            exc = ConversionError(exc.issues + hint, exc.report)
        if opts.report_op_coverage and out_dir is not None and result.stem:
            report = op_coverage_report(result.stem, None, [], exc.issues, REGISTRY, _options_summary(opts))
            _write_json(out_dir, f"{result.stem}_op_coverage_report.json", report)
            exc.report = report
        raise exc
    result.timings["frontend_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lowered = lower_graph(prepared, point_opts)
    result.timings["lower_s"] = time.perf_counter() - t0
    coverage = op_coverage_report(result.stem, prepared.opset, lowered.records, lowered.issues, REGISTRY,
                                  _options_summary(opts))
    if opts.report_op_coverage:
        result.reports["op_coverage"] = coverage
        if out_dir is not None:
            result.report_paths["op_coverage"] = _write_json(
                out_dir, f"{result.stem}_op_coverage_report.json", coverage)
    if lowered.issues:
        raise ConversionError(lowered.issues + representative_hint(plan), coverage)

    model = lowered.model
    result.io_layout = lowered.io_layout
    model.metadata[LAYOUT_METADATA] = json.dumps(lowered.io_layout, sort_keys=True).encode()
    t0 = time.perf_counter()
    if opts.optimize:
        run_passes(model, point_opts)
    result.timings["passes_s"] = time.perf_counter() - t0
    if plan is not None and plan.symbols and plan.keep_dynamic:
        _generalize(plan, source, opts, model, result)
    elif plan is not None and plan.symbols:
        result.warnings.append(static_fallback_warning(plan, "size-based splitting writes static parts"))
        result.reports["dynamic_shapes"] = {**plan.summary(), "dynamic": False,
                                            "reason": "size-based splitting writes static parts"}
    result.op_counts = dict(sorted(Counter(op.opcode for op in model.main.operators).items()))

    t0 = time.perf_counter()
    # Past ~2 GB of constants the float variants store them after the flatbuffer. Files are
    # laid out first and streamed; big ones never exist as one bytes object.
    threshold = opts.tflite_external_buffers_threshold_bytes
    _emit(result, "float32", prepare_export(model, threshold), out_dir)
    if opts.output_float16:
        # A large model's fp16 weights are converted chunk by chunk while being written,
        # instead of holding a second (half-size) copy of every weight.
        large = constant_bytes(model) > IN_MEMORY_LIMIT
        fp16, kept_float32 = float16_variant(model, deferred=large)
        if kept_float32:
            result.warnings.append(f"{len(kept_float32)} constants stay float32 in the float16 file "
                                   f"(values beyond the float16 range)")
        _emit(result, "float16", prepare_export(fp16, threshold), out_dir)
        del fp16
    result.timings["export_s"] = time.perf_counter() - t0
    failed: dict[str, ConversionError] = {}
    if opts.output_dynamic_range_quantized_tflite or opts.output_integer_quantized_tflite:
        t0 = time.perf_counter()
        failed = _quantized_variants(model, prepared, opts, result)
        result.timings["quantize_s"] = time.perf_counter() - t0

    if out_dir is not None:
        for variant, data in result.artifacts.items():
            if variant not in result.paths:
                result.paths[variant] = _write_atomic(out_dir / f"{result.stem}_{variant}.tflite", data)

    if opts.auto_split_tflite_by_size:
        _split(source, prepared, model, opts, result, out_dir)

    if opts.eval_with_onnx:
        if opts.eval_target_tflite in failed:
            raise failed[opts.eval_target_tflite]
        _evaluate(source, prepared, opts, result, out_dir)
    return result


def _generalize(plan, source: ModelSource, opts: ConversionOptions, model, result: ConversionResult) -> None:
    """Keep the plan's symbolic dims dynamic (onnx2litert.dynamic); otherwise they stay at their
    representative sizes, with a warning that says so."""
    t0 = time.perf_counter()
    report = {**plan.summary(), "dynamic": True}
    try:
        generalize(plan, source, opts, model, result.io_layout)
    except NotGeneral as exc:
        report.update(dynamic=False, reason=str(exc))
        result.warnings.append(static_fallback_warning(plan, f"the model does not generalize ({exc})"))
    result.reports["dynamic_shapes"] = report
    result.timings["dynamic_s"] = time.perf_counter() - t0


def _emit(result: ConversionResult, variant: str, image: FileImage, out_dir: Path | None) -> None:
    """Keep a float variant as bytes, or stream it to the output folder when it is large."""
    if out_dir is None or image.size <= IN_MEMORY_LIMIT:
        result.artifacts[variant] = image.to_bytes()
        return
    result.paths[variant] = image.write_file(out_dir / f"{result.stem}_{variant}.tflite")


def _artifact(result: ConversionResult, variant: str) -> bytes | str:
    """A produced variant as bytes, or the path of its file when it was only streamed to disk."""
    return result.artifacts[variant] if variant in result.artifacts else result.paths[variant]


_INTEGER_VARIANTS = (  # (artifact, activation dtype, integer I/O)
    ("integer_quant", "int8", False),
    ("full_integer_quant", "int8", True),
    ("integer_quant_with_int16_act", "int16", False),
    ("full_integer_quant_with_int16_act", "int16", True),
)


def _quantized_variants(model, prepared: PreparedGraph, opts: ConversionOptions,
                        result: ConversionResult) -> dict[str, ConversionError]:
    """Add the dynamic-range and integer artifacts; return full-integer variants that could not be made.

    A full-integer variant fails (with its reason codes in the quantization report) when an
    op has no integer kernel; the other variants are still produced.
    """
    per_channel = opts.quant_type == "per-channel"
    qreport: dict = {"quant_type": opts.quant_type, "variants": {}}
    result.reports["quantization"] = qreport
    if opts.output_dynamic_range_quantized_tflite:
        result.artifacts["dynamic_range_quant"] = export_model(to_dynamic_range(model, per_channel))
    failed: dict[str, ConversionError] = {}
    if not opts.output_integer_quantized_tflite:
        return failed
    specs = [(n, tuple(prepared.shapes[n]), prepared.dtypes.get(n, np.dtype(np.float32))) for n in prepared.inputs]
    channels_last = {name: tuple(info["perm_from_onnx"])
                     for name, info in (result.io_layout.get("inputs") or {}).items()
                     if info and info.get("perm_from_onnx")}
    samples, messages = load_samples(specs, calibration_data=opts.calibration_data,
                                     custom_inputs=opts.custom_input_op_name_np_data_path,
                                     num_samples=opts.calibration_num_samples, channels_last=channels_last)
    result.warnings.extend(messages)
    float32 = _artifact(result, "float32")
    if not isinstance(float32, bytes):
        float32 = Path(float32).read_bytes()  # calibration needs the bytes of the float model
    ranges = collect_ranges(model, float32, samples, result.io_layout, opts.calibration_percentile,
                            progress=opts.verbose or opts.show_progress)
    positions = ranges_by_position(model, ranges)
    qreport["calibration"] = {"num_samples": len(samples), "synthetic": bool(messages),
                              "percentile": opts.calibration_percentile}
    for name, act, integer_io in _INTEGER_VARIANTS:
        try:
            qmodel, rep = quantize_integer(model, positions, activation=act, per_channel=per_channel,
                                           integer_io=integer_io, input_dtype=opts.input_quant_dtype,
                                           output_dtype=opts.output_quant_dtype)
        except ConversionError as exc:
            failed[name] = exc
            qreport["variants"][name] = {"produced": False, "reasons": [i.reason.value for i in exc.issues],
                                         "errors": [i.line() for i in exc.issues]}
            result.warnings.append(f"{name} was not produced: {exc.summary()}")
            continue
        result.artifacts[name] = export_model(qmodel)
        qreport["variants"][name] = {"produced": True, **rep.as_dict()}
    return failed


def _split(source: ModelSource, prepared: PreparedGraph, model, opts: ConversionOptions,
           result: ConversionResult, out_dir: Path | None) -> None:
    """Split the optimized float model (logic in onnx2litert.split); write parts and reports."""
    t0 = time.perf_counter()
    specs = [(n, tuple(prepared.shapes[n]), prepared.dtypes.get(n, np.dtype(np.float32))) for n in prepared.inputs]
    run = run_split(model, result.stem, result.io_layout, opts, source=source, input_specs=specs,
                    unsplit_tflite=_artifact(result, "float32"), out_dir=out_dir)
    result.split_parts = dict(run.output.parts)
    result.reports["split_plan"] = run.output.plan
    if run.output.manifest is not None:
        result.reports["split_manifest"] = run.output.manifest
    if run.accuracy is not None:
        result.reports["split_accuracy"] = run.accuracy
    result.timings["split_s"] = time.perf_counter() - t0
    if out_dir is not None:
        for name, path in run.paths.items():
            result.paths[f"split_{Path(name).stem[-4:]}"] = path
        for key, suffix in (("split_plan", "split_plan"), ("split_manifest", "split_manifest"),
                            ("split_accuracy", "split_accuracy_report")):
            if key in result.reports:
                result.report_paths[key] = _write_json(out_dir, f"{result.stem}_{suffix}.json", result.reports[key])
    if run.accuracy is not None and opts.eval_fail_on_threshold and not run.accuracy["pass"]:
        raise threshold_error(run.accuracy, opts)


def _evaluate(source: ModelSource, prepared: PreparedGraph, opts: ConversionOptions,
              result: ConversionResult, out_dir: Path | None) -> None:
    t0 = time.perf_counter()
    target = opts.eval_target_tflite
    if target not in result.artifacts and target not in result.paths:
        raise ConversionError(Issue(Reason.INVALID_OPTION, f"--eval_target_tflite {target} was not produced"))
    onnx_src: str | bytes
    if isinstance(source, onnx.ModelProto):
        onnx_src = source.SerializeToString()
    elif isinstance(source, (bytes, bytearray)):
        onnx_src = bytes(source)
    else:
        onnx_src = str(source)
    specs = [(n, tuple(prepared.shapes[n]), prepared.dtypes.get(n, np.dtype(np.float32))) for n in prepared.inputs]
    report = evaluate_against_onnx(onnx_src, _artifact(result, target), specs,
                                   num_samples=opts.eval_num_samples, seed=opts.eval_seed,
                                   cosine_threshold=opts.eval_cosine_threshold,
                                   max_abs_threshold=opts.eval_max_abs_threshold, target=target,
                                   compare_mode=opts.eval_compare_mode)
    report["model"] = result.stem
    result.reports["accuracy"] = report
    result.timings["evaluate_s"] = time.perf_counter() - t0
    if out_dir is not None:
        result.report_paths["accuracy"] = _write_json(out_dir, f"{result.stem}_accuracy_report.json", report)
    if opts.eval_fail_on_threshold and not report["pass"]:
        ov = report["overall"]
        raise ConversionError(Issue(
            Reason.ACCURACY_THRESHOLD_EXCEEDED,
            f"{target} vs ONNX Runtime: cosine {ov['cosine']:.6f} (min {opts.eval_cosine_threshold}), "
            f"max_abs {ov['max_abs']:.3g}"), report)


def _write_atomic(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (see :func:`onnx2litert.export.flatbuffer.write_atomic`)."""
    return write_atomic(path, lambda f: f.write(data))


def _write_json(out_dir: Path, name: str, report: dict) -> str:
    """Write a report as strict JSON: NaN and +/-inf (e.g. a failed output's max_abs) become null."""
    text = json.dumps(_finite_json(report), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    return _write_atomic(out_dir / name, text.encode())


def _finite_json(value: object) -> object:
    """``value`` with every non-finite float (Python or numpy) replaced by None, recursively."""
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return [_finite_json(v) for v in value.tolist()]
    return value


def _json_default(value: object) -> object:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Counter):
        return dict(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")

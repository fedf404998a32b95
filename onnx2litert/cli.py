"""Command line: ``onnx2litert -i model.onnx -o out``.

A thin shell over :func:`onnx2litert.convert.run_conversion`: it parses flags (onnx2tf-compatible
names) into one immutable :class:`ConversionOptions`, runs the pipeline, prints a short summary and
maps failures to exit codes. It holds no conversion logic of its own.

Exit codes (also in the README):

* 0 - success
* 1 - the model could not be converted (unsupported op, invalid/missing model file, ...)
* 2 - a flag or option value is invalid (argparse errors and ``invalid_option``)
* 3 - ``-efot`` was given and the converted model failed the accuracy thresholds
* 4 - internal error (a bug in onnx2litert)
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import os
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from . import __version__
from .errors import REASON_DESCRIPTIONS, ConversionError, Issue, Reason
from .options import (BACKENDS, COMPARE_MODES, DEFAULT_SPLIT_MAX_BYTES, DEFAULT_SPLIT_TARGET_BYTES, EVAL_TARGETS,
                      QUANT_IO_DTYPES, QUANT_TYPES, SPLIT_EVAL_REFERENCES, ConversionOptions, parse_input_shape,
                      parse_name_list)
from .split.sizes import parse_byte_size

if TYPE_CHECKING:
    from .convert import ConversionResult

EXIT_OK = 0
EXIT_CONVERSION_FAILED = 1
EXIT_USAGE = 2
EXIT_ACCURACY = 3
EXIT_INTERNAL = 4

PROG = "onnx2litert"

# Informational lines the LiteRT runtime prints straight to fd 2 (not configurable from Python);
# hidden unless -v so that errors stay one line.
_RUNTIME_NOISE = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are ONE line (no usage dump) and exit with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: [{Reason.INVALID_OPTION.value}] {message} (see --help)\n")


def _input_shape(spec: str) -> tuple[str, tuple[int, ...]]:
    """argparse type for ``NAME:D0,D1,...``; reuses the library's parser so both agree."""
    try:
        return parse_input_shape(spec)
    except ConversionError as exc:
        raise argparse.ArgumentTypeError(exc.issues[0].message) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _literal(text: str) -> object:
    """A scalar or (nested) list such as ``0.5`` or ``[[[[0.485,0.456,0.406]]]]`` (onnx2tf's -cind form)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"expected a number or a list of numbers, got '{text}'") from None
    return value


def _custom_inputs(entries: list[list[str]] | None) -> tuple[tuple, ...]:
    """-cind NAME NPY_PATH [MEAN STD] (repeatable) -> the option's (NAME, NPY_PATH, MEAN, STD) tuples."""
    result = []
    for entry in entries or ():
        if not 2 <= len(entry) <= 4:
            raise ConversionError(Issue(Reason.INVALID_OPTION,
                                        f"-cind expects NAME NPY_PATH [MEAN [STD]], got {' '.join(entry)}"))
        name, path, *rest = entry
        try:
            stats = [_literal(v) for v in rest]
        except ValueError as exc:
            raise ConversionError(Issue(Reason.INVALID_OPTION, f"-cind {name}: {exc}")) from None
        result.append((name, path, *stats, *([None] * (2 - len(stats)))))
    return tuple(result)


def _byte_size(text: str) -> int:
    """argparse type: a byte count, plain or with a KB/MB/GB suffix."""
    try:
        value = parse_byte_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got '{text}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with flags grouped the way ``--help`` shows them."""
    codes = "\n".join(f"  {r.value:<30} {REASON_DESCRIPTIONS[r]}" for r in Reason)
    parser = _Parser(
        prog=PROG,
        description="Convert an ONNX model to LiteRT (TFLite) flatbuffers directly, without TensorFlow. "
                    "Writes <stem>_float32.tflite and <stem>_float16.tflite to the output folder.",
        epilog="exit codes: 0 ok, 1 conversion failed, 2 invalid flag/option, 3 accuracy check failed "
               "(-efot), 4 internal error\n\nreason codes:\n" + codes,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")

    io = parser.add_argument_group("input/output")
    io.add_argument("-i", "--input_onnx_file_path", required=True, metavar="PATH",
                    help="the ONNX model to convert")
    io.add_argument("-o", "--output_folder_path", default="saved_model", metavar="DIR",
                    help="folder for the .tflite files and reports (default: saved_model)")
    io.add_argument("-tb", "--tflite_backend", default="flatbuffer_direct", choices=BACKENDS,
                    help="flatbuffer_direct (default) writes the flatbuffer directly; tf_converter is "
                         "not available in this build and fails with backend_not_installed")

    shapes = parser.add_argument_group("shapes & layout")
    shapes.add_argument("-b", "--batch_size", type=_positive_int, metavar="N",
                        help="fix a symbolic/unknown batch (first) dim of every input to N (static); by default "
                             "it stays dynamic (-1 in shape_signature, initial size 1) when the model allows")
    shapes.add_argument("-ois", "--overwrite_input_shape", nargs="+", type=_input_shape, action="extend",
                        metavar="NAME:D0,D1,...",
                        help="fix input shapes, e.g. -ois waveform:1,16000 (static; for symbolic dims that "
                             "cannot stay dynamic)")
    shapes.add_argument("-ddd", "--dynamic_dim_default", type=_positive_int, metavar="N", default=8,
                        help="initial size of symbolic non-batch dims kept dynamic, also the size they are "
                             "converted at (default 8); resize_tensor_input changes it at run time")
    shapes.add_argument("-nds", "--no_dynamic_shapes", action="store_false", dest="dynamic_shapes",
                        help="never keep symbolic dims dynamic: batch dims become 1 (or -b), other symbolic "
                             "dims need -ois")
    shapes.add_argument("-k", "-kat", "--keep_ncw_or_nchw_or_ncdhw_input_names", nargs="+", action="extend",
                        metavar="NAME", dest="keep_ncw_or_nchw_or_ncdhw_input_names",
                        help="keep these inputs in ONNX (channels-first) layout; by default inputs feeding "
                             "spatial ops (Conv, Pool, Resize, ...) are exposed channels-last")
    shapes.add_argument("--keep_all_inputs_layout", action="store_true",
                        help="keep every input in ONNX layout")

    ev = parser.add_argument_group("evaluation")
    ev.add_argument("-ewo", "--eval_with_onnx", action="store_true",
                    help="run the converted model and ONNX Runtime on seeded inputs and compare "
                         "(writes <stem>_accuracy_report.json)")
    ev.add_argument("-ett", "--eval_target_tflite", default="float32", choices=EVAL_TARGETS,
                    help="which converted file to evaluate (default float32)")
    ev.add_argument("-ecm", "--eval_compare_mode", default="auto", choices=COMPARE_MODES,
                    help="how outputs are compared: auto (default), dequant (dequantize quantized "
                         "outputs first) or raw")
    ev.add_argument("-ens", "--eval_num_samples", type=_positive_int, default=1, metavar="N",
                    help="number of seeded input samples (default 1)")
    ev.add_argument("--eval_seed", type=int, default=0, metavar="SEED", help="seed of the first sample (default 0)")
    ev.add_argument("--eval_cosine_threshold", type=float, default=0.999, metavar="C",
                    help="minimum cosine similarity per output to pass (default 0.999)")
    ev.add_argument("--eval_max_abs_threshold", type=float, default=None, metavar="E",
                    help="maximum absolute error to pass (default: not checked)")
    ev.add_argument("-efot", "--eval_fail_on_threshold", action="store_true",
                    help="exit with status 3 when the evaluation fails its thresholds (implies -ewo)")

    quant = parser.add_argument_group("quantization")
    quant.add_argument("-odrqt", "--output_dynamic_range_quantized_tflite", action="store_true",
                       help="also write <stem>_dynamic_range_quant.tflite (int8 weights, float activations)")
    quant.add_argument("-oiqt", "--output_integer_quantized_tflite", action="store_true",
                       help="also write the calibrated integer variants: <stem>_integer_quant, "
                            "_full_integer_quant, _integer_quant_with_int16_act, "
                            "_full_integer_quant_with_int16_act (.tflite)")
    quant.add_argument("-qt", "--quant_type", default="per-channel", choices=QUANT_TYPES,
                       help="weight quantization granularity (default per-channel)")
    quant.add_argument("-iqd", "--input_quant_dtype", default="int8", choices=QUANT_IO_DTYPES,
                       help="input dtype of the full-integer variants (default int8)")
    quant.add_argument("-oqd", "--output_quant_dtype", default="int8", choices=QUANT_IO_DTYPES,
                       help="output dtype of the full-integer variants (default int8)")
    quant.add_argument("-cind", "--custom_input_op_name_np_data_path", nargs="+", action="append",
                       metavar="ARG", help="calibration data for one input: NAME NPY_PATH [MEAN STD] "
                                           "(repeatable; MEAN/STD are numbers or lists, data is (x-MEAN)/STD)")
    quant.add_argument("--calibration_data", metavar="NPZ",
                       help=".npz of calibration inputs keyed by ONNX input name (ONNX layout)")
    quant.add_argument("--calibration_num_samples", type=_positive_int, default=16, metavar="N",
                       help="calibration samples used (default 16; synthetic data when none is given)")
    quant.add_argument("--calibration_percentile", type=float, default=None, metavar="P",
                       help="clip activation ranges to the [100-P, P] percentiles (default: min/max)")

    split = parser.add_argument_group("splitting & large models")
    split.add_argument("--auto_split_tflite_by_size", "-easm", "--enable_auto_split_model",
                       dest="auto_split_tflite_by_size", action="store_true",
                       help="also split the float32 model into <stem>_0001.tflite, ... by size, with "
                            "<stem>_split_plan.json and <stem>_split_manifest.json (-easm: onnx2tf's newer name)")
    split.add_argument("--tflite_split_target_bytes", "-asms", "--auto_split_max_size",
                       dest="tflite_split_target_bytes", type=_byte_size, default=None, metavar="SIZE",
                       help=f"size a part aims for: bytes or 512KB/100MB/1GB (default {DEFAULT_SPLIT_TARGET_BYTES})")
    split.add_argument("--tflite_split_max_bytes", type=_byte_size, default=None, metavar="SIZE",
                       help=f"hard maximum size of a part (default {DEFAULT_SPLIT_MAX_BYTES}, or the target "
                            "when that is larger); a single op above it fails with split_impossible")
    split.add_argument("--eval_split_models", nargs="?", const="onnx", default=None,
                       choices=SPLIT_EVAL_REFERENCES,
                       help="run the parts in sequence and compare with ONNX Runtime (default) or the unsplit "
                            "float32 model; writes <stem>_split_accuracy_report.json (implies splitting)")
    split.add_argument("--tflite_external_buffers_threshold_bytes", type=int, default=2 ** 31 - 2 ** 26,
                       metavar="BYTES", help="constant bytes above which constants are stored after the "
                                             "flatbuffer (default just under 2 GiB; <= 0 forces it)")

    custom = parser.add_argument_group("custom ops")
    custom.add_argument("--flatbuffer_direct_allow_custom_ops", action="store_true",
                        help="turn ops with no builtin lowering into CUSTOM 'ONNX_<Op>' ops instead of failing "
                             "(the runtime then needs a matching kernel)")
    custom.add_argument("--flatbuffer_direct_custom_op_allowlist", nargs="+", action="extend", metavar="OP",
                        help="with custom ops allowed, only these ONNX op types may become CUSTOM ops "
                             "(names or comma-separated lists)")

    rep = parser.add_argument_group("reports")
    rep.add_argument("-roc", "--report_op_coverage", action="store_true",
                     help="write <stem>_op_coverage_report.json: how every ONNX node was lowered, and "
                          "the reason code of every node that was not (written on failure too)")

    misc = parser.add_argument_group("misc")
    misc.add_argument("--disable_optimizations", action="store_true",
                      help="skip the IR passes (layout, fusion, cleanup); for debugging only")
    misc.add_argument("--pad_conv_output_channels_to", type=int, default=0, metavar="N",
                      help="x86 tuning: convolutions larger than 1x1 with N/2 < Cout < N output channels "
                           "compute N (zero filters) and slice; 32 is faster with XNNPACK on AVX-512 CPUs, "
                           "slower on ARM (default 0: off)")
    misc.add_argument("-v", "--verbose", action="store_true",
                      help="print per-op counts, the I/O layout and tracebacks on errors")
    return parser


def options_from_args(args: argparse.Namespace) -> ConversionOptions:
    """Build the one immutable options object from parsed flags.

    Implied options (-efot -> -ewo, --eval_split_models -> splitting, -asms above the default
    max -> a larger max) are ConversionOptions' own rules, so the API behaves the same.
    """
    # Split sizes that were not given stay unset, so ConversionOptions can tell them apart.
    sizes = {k: v for k in ("tflite_split_target_bytes", "tflite_split_max_bytes")
             if (v := getattr(args, k)) is not None}
    return ConversionOptions(
        output_folder=args.output_folder_path,
        tflite_backend=args.tflite_backend,
        batch_size=args.batch_size,
        overwrite_input_shape=tuple(args.overwrite_input_shape or ()),
        dynamic_shapes=args.dynamic_shapes,
        dynamic_dim_default=args.dynamic_dim_default,
        keep_ncw_or_nchw_or_ncdhw_input_names=tuple(args.keep_ncw_or_nchw_or_ncdhw_input_names or ()),
        keep_all_inputs_layout=args.keep_all_inputs_layout,
        report_op_coverage=args.report_op_coverage,
        eval_with_onnx=args.eval_with_onnx,
        eval_target_tflite=args.eval_target_tflite,
        eval_compare_mode=args.eval_compare_mode,
        eval_num_samples=args.eval_num_samples,
        eval_seed=args.eval_seed,
        eval_fail_on_threshold=args.eval_fail_on_threshold,
        eval_cosine_threshold=args.eval_cosine_threshold,
        eval_max_abs_threshold=args.eval_max_abs_threshold,
        output_dynamic_range_quantized_tflite=args.output_dynamic_range_quantized_tflite,
        output_integer_quantized_tflite=args.output_integer_quantized_tflite,
        quant_type=args.quant_type,
        input_quant_dtype=args.input_quant_dtype,
        output_quant_dtype=args.output_quant_dtype,
        calibration_data=args.calibration_data,
        custom_input_op_name_np_data_path=_custom_inputs(args.custom_input_op_name_np_data_path),
        calibration_num_samples=args.calibration_num_samples,
        calibration_percentile=args.calibration_percentile,
        auto_split_tflite_by_size=args.auto_split_tflite_by_size,
        **sizes,
        eval_split_models=args.eval_split_models,
        tflite_external_buffers_threshold_bytes=args.tflite_external_buffers_threshold_bytes,
        flatbuffer_direct_allow_custom_ops=args.flatbuffer_direct_allow_custom_ops,
        flatbuffer_direct_custom_op_allowlist=parse_name_list(args.flatbuffer_direct_custom_op_allowlist or ()),
        optimize=not args.disable_optimizations,
        pad_conv_output_channels_to=args.pad_conv_output_channels_to,
        verbose=args.verbose,
        show_progress=True,
    )


def exit_code_for(issues: Sequence[Issue]) -> int:
    """Map the issues of a failed conversion to the documented exit code."""
    reasons = {i.reason for i in issues}
    if Reason.INTERNAL_ERROR in reasons:
        return EXIT_INTERNAL
    if Reason.ACCURACY_THRESHOLD_EXCEEDED in reasons:
        return EXIT_ACCURACY
    if reasons and reasons <= {Reason.INVALID_OPTION}:
        return EXIT_USAGE
    return EXIT_CONVERSION_FAILED


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / (1024 * 1024):.2f} MB"


def _print_summary(result: "ConversionResult", elapsed: float, verbose: bool, out: TextIO) -> None:
    """A few lines: files with sizes, op counts, timings, report paths, accuracy verdict."""
    for path in result.paths.values():
        out.write(f"wrote {path} ({_size(Path(path).stat().st_size)})\n")
    total = sum(result.op_counts.values())
    out.write(f"ops: {total} (TRANSPOSE: {result.op_counts.get('TRANSPOSE', 0)})\n")
    if verbose:
        out.write("  " + ", ".join(f"{k} x{v}" for k, v in result.op_counts.items()) + "\n")
        for name, info in result.io_layout.get("inputs", {}).items():
            out.write(f"  input '{name}': {info.get('layout')} {info.get('shape')}"
                      f" (ONNX {info.get('onnx_shape')})\n")
        for name, info in result.io_layout.get("outputs", {}).items():
            out.write(f"  output '{name}': {info.get('layout')} {info.get('shape')}\n")
    else:
        changed = [n for n, info in result.io_layout.get("inputs", {}).items()
                   if info.get("layout") == "channels_last"]
        if changed:
            out.write(f"channels-last inputs: {', '.join(changed)} (keep ONNX layout with -k NAME)\n")
    for warning in getattr(result, "warnings", []):
        out.write(f"warning: {warning}\n")
    steps = ", ".join(f"{k.removesuffix('_s')} {v:.2f}s" for k, v in result.timings.items())
    out.write(f"time: {elapsed:.2f}s ({steps})\n")
    cov = result.reports.get("op_coverage")
    if cov is not None:
        s = cov["summary"]
        out.write(f"op coverage: {s['converted_nodes']}/{s['lowered_nodes']} nodes "
                  f"({100 * s['coverage_ratio']:.0f}%) -> {result.report_paths.get('op_coverage', '-')}\n")
    for kind, what in (("accuracy", None), ("split_accuracy", "chained parts")):
        acc = result.reports.get(kind)
        if acc is None:
            continue
        ov = acc["overall"]
        verdict = "PASS" if acc["pass"] else "FAIL"
        if ov.get("nonfinite"):
            verdict += " (NaN/inf outputs the reference does not have)"
        reference = "ONNX Runtime" if acc.get("reference", "onnx") == "onnx" else "the unsplit float32 file"
        out.write(f"{kind.replace('_', ' ')} ({what or acc['target']} vs {reference}, {acc['num_samples']} "
                  f"sample(s)): {verdict} cosine {ov['cosine']:.6f}, max_abs {ov['max_abs']:.3g}, "
                  f"relative_l2 {ov['relative_l2']:.3g} -> {result.report_paths.get(kind, '-')}\n")


def _report_failure(exc: ConversionError, opts: ConversionOptions | None, stem: str, err: TextIO) -> None:
    if len(exc.issues) > 1:
        err.write(f"{PROG}: conversion failed with {len(exc.issues)} blocking problems:\n")
    for issue in exc.issues:
        err.write(issue.line() + "\n")
    if opts is not None and opts.output_folder:
        for kind in ("op_coverage", "accuracy"):
            path = Path(opts.output_folder) / f"{stem}_{kind}_report.json"
            if path.is_file() and exc.report is not None:
                err.write(f"{kind.replace('_', ' ')} report: {path}\n")


@contextlib.contextmanager
def _filtered_stderr(enabled: bool):
    """Forward fd 2 live while converting, minus the runtime's INFO chatter (progress lines still stream)."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. embedded): nothing to filter
        yield
        return
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    pump = threading.Thread(target=_pump_stderr, args=(read_fd, saved), daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        # A native library may hold its own copy of the pipe's write end, so EOF is not reliable:
        # an end marker tells the pump to drain and stop.
        os.write(write_fd, _END_MARK)
        os.close(write_fd)
        pump.join(timeout=10)
        os.close(saved)


_END_MARK = b"\0onnx2litert:end-of-stderr\0"


def _pump_stderr(read_fd: int, target_fd: int) -> None:
    """Copy segments (ending in newline or carriage return) from the pipe, dropping noise lines."""
    noise = {line.encode() for line in _RUNTIME_NOISE}
    pending = b""
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(65536)
            pending += chunk
            if _END_MARK in pending:
                pending = pending[:pending.index(_END_MARK)]
                chunk = b""
            done = not chunk  # end marker or EOF: flush everything
            cut = len(pending) - 1 if done else max(pending.rfind(b"\n"), pending.rfind(b"\r"))
            if cut < 0 and not done:
                continue
            block, pending = pending[:cut + 1], pending[cut + 1:]
            kept = b"".join(seg for seg in block.splitlines(keepends=True) if seg.rstrip(b"\r\n") not in noise)
            if kept:
                os.write(target_fd, kept)
            if done:
                return


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (never raises SystemExit itself)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help/--version (0) and usage errors (2)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    # Imported late so that --help stays fast.
    from .convert import run_conversion

    verbose = args.verbose
    opts: ConversionOptions | None = None
    stem = Path(args.input_onnx_file_path).stem
    t0 = time.perf_counter()
    try:
        opts = options_from_args(args)
        with _filtered_stderr(not verbose), warnings.catch_warnings():
            # The summary prints result.warnings; the same notes as Python warnings would print twice.
            warnings.simplefilter("ignore", UserWarning)
            result = run_conversion(args.input_onnx_file_path, opts)
    except ConversionError as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        _report_failure(exc, opts, stem, sys.stderr)
        return exit_code_for(exc.issues)
    except OSError as exc:  # e.g. the output folder is a file or not writable: not a bug, one line
        if verbose:
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"{PROG}: I/O error: {exc}\n")
        return EXIT_CONVERSION_FAILED
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:  # a bug: one line, traceback with -v
        if verbose:
            traceback.print_exc(file=sys.stderr)
        hint = "" if verbose else " (run with -v for the traceback)"
        sys.stderr.write(f"[{Reason.INTERNAL_ERROR.value}] {type(exc).__name__}: {exc}{hint}\n")
        return EXIT_INTERNAL
    _print_summary(result, time.perf_counter() - t0, verbose, sys.stdout)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The split step of a conversion: plan and build the parts, then optionally evaluate them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import ConversionError, Issue, Reason
from ..ir import Model
from ..options import ConversionOptions
from .core import SplitOutput, split_model
from .evaluate import evaluate_split


@dataclass
class SplitRun:
    """Parts, plan and manifest, plus the split accuracy report when evaluation was asked for."""

    output: SplitOutput
    accuracy: dict | None = None


def onnx_source(source: object) -> str | bytes:
    """A path or bytes ONNX Runtime can open, from any model source ``convert()`` accepts."""
    if isinstance(source, onnx.ModelProto):
        return source.SerializeToString()
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    return str(source)


def run_split(model: Model, stem: str, io_layout: dict, opts: ConversionOptions, *,
              source: object = None, input_specs: list[tuple[str, tuple[int, ...], np.dtype]] | None = None,
              unsplit_tflite: bytes | None = None) -> SplitRun:
    """Split the optimized float IR per ``opts``; evaluate the chain if ``opts.eval_split_models``.

    Evaluation is skipped (``accuracy`` None) when the model fits one part. With
    ``opts.eval_fail_on_threshold`` a failed evaluation raises ``accuracy_threshold_exceeded``
    after the report is stored on the returned error (``exc.report``).
    """
    out = split_model(model, stem, io_layout, opts.tflite_split_target_bytes, opts.tflite_split_max_bytes,
                      opts.tflite_external_buffers_threshold_bytes)
    run = SplitRun(out)
    if opts.eval_split_models is None or not out.split:
        return run
    report = evaluate_split(out.manifest, out.parts, input_specs or [], reference=opts.eval_split_models,
                            onnx_model=onnx_source(source) if source is not None else None,
                            unsplit_tflite=unsplit_tflite, num_samples=opts.eval_num_samples,
                            seed=opts.eval_seed, cosine_threshold=opts.eval_cosine_threshold,
                            max_abs_threshold=opts.eval_max_abs_threshold)
    report["model"] = stem
    run.accuracy = report
    return run


def threshold_error(report: dict, opts: ConversionOptions) -> ConversionError:
    """The ``accuracy_threshold_exceeded`` error for a failed split accuracy report."""
    ov = report["overall"]
    return ConversionError(Issue(
        Reason.ACCURACY_THRESHOLD_EXCEEDED,
        f"split models vs {report['reference']}: cosine {ov['cosine']:.6f} (min {opts.eval_cosine_threshold}), "
        f"max_abs {ov['max_abs']:.3g}"), report)


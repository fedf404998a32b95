"""The split step of a conversion: plan and build the parts, then optionally evaluate them."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..errors import ConversionError, Issue, Reason
from ..export.flatbuffer import FileImage
from ..ir import Model
from ..options import ConversionOptions
from .core import SplitOutput, split_model
from .evaluate import evaluate_split
from ..export.large import IN_MEMORY_LIMIT


@dataclass
class SplitRun:
    """Parts, plan and manifest, plus the split accuracy report when evaluation was asked for.

    ``paths`` maps part file names to the files written (when an output folder was given).
    """

    output: SplitOutput
    accuracy: dict | None = None
    paths: dict[str, str] = field(default_factory=dict)


def onnx_source(source: object) -> str | bytes:
    """A path or bytes ONNX Runtime can open, from any model source ``convert()`` accepts."""
    if isinstance(source, onnx.ModelProto):
        return source.SerializeToString()
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    return str(source)


def write_parts(out: SplitOutput, out_dir: str | os.PathLike, in_memory_limit: int | None = None
                ) -> dict[str, str]:
    """Write every part into ``out_dir``; return file name -> path.

    Parts up to ``in_memory_limit`` bytes (default :data:`IN_MEMORY_LIMIT`) are serialized
    once, kept in ``out.parts`` and written; larger ones are streamed straight to their file
    and never held as bytes.
    """
    if in_memory_limit is None:
        in_memory_limit = IN_MEMORY_LIMIT
    paths = {}
    for name, image in out.images.items():
        if image.size <= in_memory_limit:
            data = out.parts.get(name) or image.to_bytes()
            out.parts[name] = data
            image = FileImage(data, [], len(data))
        paths[name] = image.write_file(Path(out_dir) / name)
    return paths


def run_split(model: Model, stem: str, io_layout: dict, opts: ConversionOptions, *,
              source: object = None, input_specs: list[tuple[str, tuple[int, ...], np.dtype]] | None = None,
              unsplit_tflite: bytes | str | None = None, out_dir: str | os.PathLike | None = None) -> SplitRun:
    """Split the optimized float IR per ``opts``; evaluate the chain if ``opts.eval_split_models``.

    Without ``out_dir`` every part is kept as bytes (``run.output.parts``). With it, parts
    are written there (:func:`write_parts`; large ones only as files, see ``run.paths``) and
    evaluation runs the parts from memory or from their files. ``unsplit_tflite`` may be
    bytes or a path. Evaluation is skipped (``accuracy`` None) when the model fits one part.
    With ``opts.eval_fail_on_threshold`` a failed evaluation raises ``accuracy_threshold_exceeded``
    after the report is stored on the returned error (``exc.report``).
    """
    out = split_model(model, stem, io_layout, opts.tflite_split_target_bytes, opts.tflite_split_max_bytes,
                      opts.tflite_external_buffers_threshold_bytes)
    run = SplitRun(out)
    if out_dir is None:
        out.materialize()
    else:
        run.paths = write_parts(out, out_dir)
    if opts.eval_split_models is None or not out.split:
        return run
    models = {name: out.parts.get(name) or run.paths[name] for name in out.images}
    report = evaluate_split(out.manifest, models, input_specs or [], reference=opts.eval_split_models,
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


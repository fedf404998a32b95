"""Accuracy of the chained split models against ONNX Runtime or the unsplit float32 model."""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from ..evaluate.accuracy import aggregate, compare_outputs, passes
from ..evaluate.runtime import OnnxReference, TfliteRunner, make_inputs
from ..options import SPLIT_EVAL_REFERENCES
from .runner import run_split_models


def evaluate_split(manifest: Mapping, models: Mapping[str, bytes | str | os.PathLike],
                   input_specs: list[tuple[str, tuple[int, ...], np.dtype]], *, reference: str = "onnx",
                   onnx_model: str | os.PathLike | bytes | None = None,
                   unsplit_tflite: bytes | str | os.PathLike | None = None,
                   num_samples: int = 1, seed: int = 0, cosine_threshold: float = 0.999,
                   max_abs_threshold: float | None = None) -> dict:
    """Run the chained parts and the reference on the same seeded inputs; return the report.

    The report has the accuracy report's fields (``per_output``, ``overall``, ``thresholds``,
    ``pass``...) plus ``reference`` and the part list. ``models`` maps part file names to
    bytes or to file paths (large parts are run from their files).
    """
    if reference not in SPLIT_EVAL_REFERENCES:
        raise ValueError(f"reference must be one of {SPLIT_EVAL_REFERENCES}, got {reference!r}")
    samples = []
    ref = OnnxReference(onnx_model) if reference == "onnx" else TfliteRunner(unsplit_tflite)
    for k in range(num_samples):
        feeds = make_inputs(input_specs, seed + k)
        got = run_split_models(manifest, feeds, models=models)
        samples.append(compare_outputs(ref.run(feeds), got))
    per_output, overall = aggregate(samples)
    passed = passes(per_output, overall, cosine_threshold, max_abs_threshold)
    return {
        "target": "split_float32",
        "reference": reference,
        "compare_mode": "raw",
        "seed": seed,
        "num_samples": num_samples,
        "num_parts": len(manifest["parts"]),
        "parts": [p["file"] for p in manifest["parts"]],
        "inputs": [{"name": n, "shape": list(s), "dtype": np.dtype(d).name} for n, s, d in input_specs],
        "thresholds": {"cosine_min": cosine_threshold, "max_abs_max": max_abs_threshold},
        "per_output": per_output,
        "overall": overall,
        "pass": bool(passed),
    }

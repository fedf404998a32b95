"""Accuracy of a converted model against ONNX Runtime on seeded inputs."""
from __future__ import annotations

import os

import numpy as np

from .runtime import make_inputs, run_onnx, run_tflite


def _metrics(ref: np.ndarray, got: np.ndarray) -> dict:
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    g = np.asarray(got, dtype=np.float64).reshape(-1)
    if r.shape != g.shape:
        return {"shape_mismatch": True, "reference_shape": list(np.shape(ref)), "tflite_shape": list(np.shape(got))}
    diff = np.abs(r - g)
    nr, ng = np.linalg.norm(r), np.linalg.norm(g)
    if nr == 0 and ng == 0:
        cosine = 1.0
    elif nr == 0 or ng == 0:
        cosine = 0.0
    else:
        cosine = float(np.dot(r, g) / (nr * ng))
    return {
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "rmse": float(np.sqrt((diff ** 2).mean())) if diff.size else 0.0,
        "cosine": cosine,
        "relative_l2": float(np.linalg.norm(r - g) / nr) if nr > 0 else float(np.linalg.norm(r - g)),
        "max_abs_reference": float(np.abs(r).max()) if r.size else 0.0,
    }


def compare_outputs(reference: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per-output metrics (max_abs, mean_abs, rmse, cosine, relative_l2)."""
    return {name: _metrics(ref, got[name]) if name in got else {"missing": True}
            for name, ref in reference.items()}


def _aggregate(per_sample: list[dict[str, dict]]) -> tuple[dict[str, dict], dict]:
    per_output: dict[str, dict] = {}
    for name in per_sample[0]:
        rows = [s[name] for s in per_sample]
        if any("cosine" not in r for r in rows):
            per_output[name] = rows[0]
            continue
        per_output[name] = {
            "max_abs": max(r["max_abs"] for r in rows),
            "mean_abs": float(np.mean([r["mean_abs"] for r in rows])),
            "rmse": float(np.sqrt(np.mean([r["rmse"] ** 2 for r in rows]))),
            "cosine": min(r["cosine"] for r in rows),
            "relative_l2": max(r["relative_l2"] for r in rows),
            "max_abs_reference": max(r["max_abs_reference"] for r in rows),
        }
    valid = [m for m in per_output.values() if "cosine" in m]
    overall = {
        "max_abs": max((m["max_abs"] for m in valid), default=float("nan")),
        "mean_abs": float(np.mean([m["mean_abs"] for m in valid])) if valid else float("nan"),
        "rmse": max((m["rmse"] for m in valid), default=float("nan")),
        "cosine": min((m["cosine"] for m in valid), default=float("nan")),
        "relative_l2": max((m["relative_l2"] for m in valid), default=float("nan")),
    }
    return per_output, overall


def io_details(tflite_model: str | os.PathLike | bytes) -> tuple[dict, dict]:
    """Signature input/output details (dtype, scale, zero point) by name."""
    from ai_edge_litert.interpreter import Interpreter

    data = bytes(tflite_model) if isinstance(tflite_model, (bytes, bytearray)) else open(tflite_model, "rb").read()
    runner = Interpreter(model_content=data).get_signature_runner("serving_default")
    return runner.get_input_details(), runner.get_output_details()


def _is_quantized(detail: dict) -> bool:
    scale, _ = detail.get("quantization", (0.0, 0))
    return np.dtype(detail["dtype"]).kind in "iu" and scale != 0.0


def quantize_feeds(feeds: dict[str, np.ndarray], in_details: dict) -> dict[str, np.ndarray]:
    """Quantize float feeds for inputs the model takes as quantized integers (full-integer files)."""
    out = {}
    for name, value in feeds.items():
        d = in_details.get(name)
        if d is not None and _is_quantized(d) and np.asarray(value).dtype.kind == "f":
            scale, zp = d["quantization"]
            info = np.iinfo(d["dtype"])
            q = np.round(np.asarray(value, np.float64) / scale) + zp
            out[name] = np.clip(q, info.min, info.max).astype(d["dtype"])
        else:
            out[name] = value
    return out


def dequantize_outputs(outs: dict[str, np.ndarray], out_details: dict) -> dict[str, np.ndarray]:
    """Dequantize quantized integer outputs with their tensor's scale and zero point."""
    res = {}
    for name, value in outs.items():
        d = out_details.get(name)
        if d is not None and _is_quantized(d):
            scale, zp = d["quantization"]
            res[name] = ((np.asarray(value, np.float64) - zp) * scale).astype(np.float32)
        else:
            res[name] = value
    return res


def evaluate_against_onnx(onnx_model: str | os.PathLike | bytes, tflite_model: str | os.PathLike | bytes,
                          input_specs: list[tuple[str, tuple[int, ...], np.dtype]], *, num_samples: int = 1,
                          seed: int = 0, cosine_threshold: float = 0.999,
                          max_abs_threshold: float | None = None, target: str = "float32",
                          compare_mode: str = "auto") -> dict:
    """Run both models on ``num_samples`` seeded inputs and return the accuracy report.

    ``compare_mode``: ``dequant`` dequantizes quantized integer outputs (with each output
    tensor's scale and zero point) before comparing with ONNX Runtime's float outputs;
    ``raw`` compares the values as they come; ``auto`` is dequant when the model has a
    quantized output, else raw. Float inputs are quantized for models that take quantized
    integer inputs (full-integer files) in every mode.
    """
    in_details, out_details = io_details(tflite_model)
    has_quant_out = any(_is_quantized(d) for d in out_details.values())
    mode = compare_mode if compare_mode != "auto" else ("dequant" if has_quant_out else "raw")
    samples = []
    for k in range(num_samples):
        feeds = make_inputs(input_specs, seed + k)
        got = run_tflite(tflite_model, quantize_feeds(feeds, in_details))
        if mode == "dequant":
            got = dequantize_outputs(got, out_details)
        samples.append(compare_outputs(run_onnx(onnx_model, feeds), got))
    per_output, overall = _aggregate(samples)
    complete = all("cosine" in m for m in per_output.values())
    passed = complete and overall["cosine"] >= cosine_threshold and (
        max_abs_threshold is None or overall["max_abs"] <= max_abs_threshold)
    return {
        "target": target,
        "compare_mode": mode,
        "compare_mode_requested": compare_mode,
        "quantized_io": {"inputs": sorted(n for n, d in in_details.items() if _is_quantized(d)),
                         "outputs": sorted(n for n, d in out_details.items() if _is_quantized(d))},
        "seed": seed,
        "num_samples": num_samples,
        "inputs": [{"name": n, "shape": list(s), "dtype": np.dtype(d).name} for n, s, d in input_specs],
        "thresholds": {"cosine_min": cosine_threshold, "max_abs_max": max_abs_threshold},
        "per_output": per_output,
        "overall": overall,
        "pass": bool(passed),
    }

"""Accuracy of a converted model against ONNX Runtime on seeded inputs."""
from __future__ import annotations

import os

import numpy as np

from .runtime import OnnxReference, TfliteRunner, make_inputs


_INF = float("inf")


def _nonfinite_mismatch(r: np.ndarray, g: np.ndarray) -> int:
    """Elements where the outputs disagree on a NaN/inf: the converted output is non-finite
    where the reference is finite, or the reference's NaN/inf is not reproduced."""
    r_fin, g_fin = np.isfinite(r), np.isfinite(g)
    same = (np.isnan(r) & np.isnan(g)) | (r == g)  # equal infinities count as reproduced
    return int(np.count_nonzero((r_fin & ~g_fin) | (~r_fin & ~same)))


def _metrics(ref: np.ndarray, got: np.ndarray) -> dict:
    """Error metrics of one output; always finite numbers or +/-inf, never NaN.

    A NaN/inf the reference does not have makes the output fail outright (``nonfinite``,
    cosine -1, max_abs inf): NaN would otherwise compare false against every threshold and
    vanish from min()/max() depending on its position.
    """
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    g = np.asarray(got, dtype=np.float64).reshape(-1)
    if r.shape != g.shape:
        return {"shape_mismatch": True, "reference_shape": list(np.shape(ref)), "tflite_shape": list(np.shape(got))}
    bad = _nonfinite_mismatch(r, g)
    if bad:
        finite_ref = r[np.isfinite(r)]
        return {"max_abs": _INF, "mean_abs": _INF, "rmse": _INF, "cosine": -1.0, "relative_l2": _INF,
                "max_abs_reference": float(np.abs(finite_ref).max()) if finite_ref.size else 0.0,
                "nonfinite": True, "nonfinite_count": bad}
    # Matching NaN/inf elements are equal; the metrics cover the finite rest.
    both = np.isfinite(r) & np.isfinite(g)
    if not both.all():
        r, g = r[both], g[both]
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
        "cosine": cosine if np.isfinite(cosine) else -1.0,  # overflow in the products: treat as failed
        "relative_l2": float(np.linalg.norm(r - g) / nr) if nr > 0 else float(np.linalg.norm(r - g)),
        "max_abs_reference": float(np.abs(r).max()) if r.size else 0.0,
        "nonfinite": False,
    }


def compare_outputs(reference: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per-output metrics (max_abs, mean_abs, rmse, cosine, relative_l2, nonfinite)."""
    return {name: _metrics(ref, got[name]) if name in got else {"missing": True}
            for name, ref in reference.items()}


def _worst_max(values: list[float]) -> float:
    """Largest error; NaN counts as the worst (inf) instead of vanishing from max()."""
    return max((_INF if np.isnan(v) else v for v in values), default=float("nan"))


def _worst_min(values: list[float]) -> float:
    """Smallest similarity; NaN counts as the worst (-1) instead of vanishing from min()."""
    return min((-1.0 if np.isnan(v) else v for v in values), default=float("nan"))


def aggregate(per_sample: list[dict[str, dict]]) -> tuple[dict[str, dict], dict]:
    per_output: dict[str, dict] = {}
    for name in per_sample[0]:
        rows = [s[name] for s in per_sample]
        if any("cosine" not in r for r in rows):
            per_output[name] = next(r for r in rows if "cosine" not in r)
            continue
        per_output[name] = {
            "max_abs": _worst_max([r["max_abs"] for r in rows]),
            "mean_abs": float(np.mean([r["mean_abs"] for r in rows])),
            "rmse": float(np.sqrt(np.mean([r["rmse"] ** 2 for r in rows]))),
            "cosine": _worst_min([r["cosine"] for r in rows]),
            "relative_l2": _worst_max([r["relative_l2"] for r in rows]),
            "max_abs_reference": _worst_max([r["max_abs_reference"] for r in rows]),
            "nonfinite": any(r.get("nonfinite", False) for r in rows),
        }
    valid = [m for m in per_output.values() if "cosine" in m]
    overall = {
        "max_abs": _worst_max([m["max_abs"] for m in valid]),
        "mean_abs": float(np.mean([m["mean_abs"] for m in valid])) if valid else float("nan"),
        "rmse": _worst_max([m["rmse"] for m in valid]),
        "cosine": _worst_min([m["cosine"] for m in valid]),
        "relative_l2": _worst_max([m["relative_l2"] for m in valid]),
        "nonfinite": any(m["nonfinite"] for m in valid),
    }
    return per_output, overall


def passes(per_output: dict[str, dict], overall: dict, cosine_threshold: float,
           max_abs_threshold: float | None) -> bool:
    """The verdict: every output compared, no unexpected NaN/inf, finite metrics within the thresholds."""
    complete = bool(per_output) and all("cosine" in m for m in per_output.values())
    if not complete or overall.get("nonfinite", False):
        return False
    cosine, max_abs = overall["cosine"], overall["max_abs"]
    if not (np.isfinite(cosine) and np.isfinite(max_abs)) or cosine < cosine_threshold:
        return False
    return max_abs_threshold is None or max_abs <= max_abs_threshold


def io_details(tflite_model: str | os.PathLike | bytes) -> tuple[dict, dict]:
    """Signature input/output details (dtype, scale, zero point) by name."""
    runner = TfliteRunner(tflite_model)  # from a path: memory-mapped by LiteRT, no read of the file here
    return runner.input_details(), runner.output_details()


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
    # One interpreter and one ONNX Runtime session serve every sample.
    tflite = TfliteRunner(tflite_model)
    reference = OnnxReference(onnx_model)
    in_details, out_details = tflite.input_details(), tflite.output_details()
    has_quant_out = any(_is_quantized(d) for d in out_details.values())
    mode = compare_mode if compare_mode != "auto" else ("dequant" if has_quant_out else "raw")
    samples = []
    for k in range(num_samples):
        feeds = make_inputs(input_specs, seed + k)
        got = tflite.run(quantize_feeds(feeds, in_details))
        if mode == "dequant":
            got = dequantize_outputs(got, out_details)
        samples.append(compare_outputs(reference.run(feeds), got))
    per_output, overall = aggregate(samples)
    passed = passes(per_output, overall, cosine_threshold, max_abs_threshold)
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

"""A/B latency of one conversion option against the default conversion, with ONNX Runtime beside.

    python bench/ab_option.py MODEL.onnx [MODEL2.onnx ...] --option pad_conv_output_channels_to=32 [--runs 20]

Both LiteRT models and ONNX Runtime run on one thread in one process, invoked in turn on every
iteration, so machine-speed drift hits the three alike (separate runs move by about +-10% on the
project's machine). Prints the median latencies and the LiteRT/ORT ratio of each variant.
"""
from __future__ import annotations

import argparse
import ast
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _option(spec: str) -> tuple[str, object]:
    key, sep, raw = spec.partition("=")
    if not sep:
        raise SystemExit(f"--option expects KEY=VALUE, got '{spec}'")
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def _interpreter(path: str, options: dict):
    import onnx2litert
    from ai_edge_litert.interpreter import Interpreter

    result = onnx2litert.convert(path, **options)
    interp = Interpreter(model_content=result.artifacts["float32"], num_threads=1)
    interp.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in interp.get_input_details():
        data = rng.standard_normal(d["shape"]) if np.issubdtype(d["dtype"], np.floating) else np.zeros(d["shape"])
        interp.set_tensor(d["index"], data.astype(d["dtype"]))
    return interp, result.op_counts


def _ort_session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        dtype = np.float32 if "float" in i.type else np.int64
        feeds[i.name] = rng.standard_normal(shape).astype(dtype) if dtype == np.float32 else np.zeros(shape, dtype)
    return lambda: sess.run(None, feeds)


def ab(path: str, options: dict, runs: int, warmup: int = 3) -> dict:
    """Median ms of the default model, the optioned model and ONNX Runtime, invoked in turn."""
    base, base_counts = _interpreter(path, {})
    variant, variant_counts = _interpreter(path, options)
    ort_run = _ort_session(path)
    fns = {"default": base.invoke, "option": variant.invoke, "ort": ort_run}
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(warmup + runs):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                samples[key].append((time.perf_counter() - t0) * 1e3)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {**med, "ops_default": sum(base_counts.values()), "ops_option": sum(variant_counts.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--option", action="append", required=True, help="KEY=VALUE (repeatable)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    options = dict(_option(s) for s in args.option)
    print(f"option: {options}; median of {args.runs} runs, LiteRT/ORT in parentheses")
    for path in args.models:
        r = ab(path, options, args.runs)
        print(f"{Path(path).stem:32s} default {r['default']:8.2f} ms ({r['default'] / r['ort']:.2f}, "
              f"{r['ops_default']} ops)  option {r['option']:8.2f} ms ({r['option'] / r['ort']:.2f}, "
              f"{r['ops_option']} ops)  ort {r['ort']:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())

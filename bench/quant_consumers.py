"""Two independent consumers of our int8 files: TFLite Micro and the Arm Ethos-U Vela compiler.

    pip install -e .[consumers]
    python bench/quant_consumers.py [--models tiny_cnn,small_convnet,conv1d_audio_m5,light_squeezenet]

For each model the ``full_integer_quant`` file (int8 activations, int8 I/O, per-channel weights,
calibrated on 16 seeded samples of the model's input distribution) is

1. run in the TFLM Python interpreter (``tflite_micro.runtime.Interpreter.from_bytes``) and in
   LiteRT's builtin kernels on the same int8 input; the raw int8 outputs are compared (LiteRT's
   reference kernels and TFLM's share their integer arithmetic: identical or within 1 step);
2. compiled by Vela for an Ethos-U55-128 (``vela --accelerator-config ethos-u55-128``); the share of
   operators placed on the NPU is read from Vela's summary, and the operators left on the CPU with
   Vela's reasons from ``--show-cpu-operations`` and its warnings.

Prints one line per model and, with ``--json``, writes the rows as JSON.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ["tiny_cnn", "small_convnet", "conv1d_audio_m5", "light_squeezenet"]
CALIBRATION_SAMPLES = 16
# TFLM needs one arena for all activations; big enough for the small corpus models above.
ARENA_BYTES = 64 * 1024 * 1024


# ---------------------------------------------------------------------------------------------- models
def small_convnet() -> "onnx.ModelProto":  # noqa: F821
    """A small conv net built with onnx.helper: Conv/BN/Relu, depthwise, Add, pools, Concat, Clip, FC.

    Covers the standard layers an NPU is expected to run: CONV_2D, DEPTHWISE_CONV_2D, ADD, MAX_POOL_2D,
    AVERAGE_POOL_2D, CONCATENATION, RELU, RELU6, MEAN (global average pool), RESHAPE, FULLY_CONNECTED,
    LOGISTIC and SOFTMAX.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(42)

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits = {"w1": w(16, 3, 3, 3), "b1": w(16, scale=0.1), "g": 1 + w(16, scale=0.1), "be": w(16, scale=0.1),
             "m": w(16, scale=0.1), "v": 1 + np.abs(w(16, scale=0.1)), "wd": w(16, 1, 3, 3), "bd": w(16, scale=0.1),
             "w2": w(24, 32, 1, 1, scale=0.2), "b2": w(24, scale=0.1), "w3": w(24, 24, 3, 3, scale=0.1),
             "wf": w(10, 24, scale=0.3), "bf": w(10, scale=0.1),
             "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        n("BatchNormalization", ["c1", "g", "be", "m", "v"], ["bn"]),
        n("Relu", ["bn"], ["r1"]),
        n("Conv", ["r1", "wd", "bd"], ["d1"], pads=[1, 1, 1, 1], group=16),
        n("Clip", ["d1", "lo", "hi"], ["d1c"]),
        n("Add", ["d1c", "r1"], ["a1"]),
        n("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        n("AveragePool", ["a1"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        n("Concat", ["p1", "p2"], ["cat"], axis=1),
        n("Conv", ["cat", "w2", "b2"], ["c2"]),
        n("Sigmoid", ["c2"], ["s2"]),
        n("Mul", ["c2", "s2"], ["sw"]),
        n("Conv", ["sw", "w3"], ["c3"], pads=[1, 1, 1, 1]),
        n("Relu", ["c3"], ["r3"]),
        n("GlobalAveragePool", ["r3"], ["gap"]),
        n("Flatten", ["gap"], ["fl"]),
        n("Gemm", ["fl", "wf", "bf"], ["logits"], transB=1),
        n("Softmax", ["logits"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "small_convnet",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 48, 48])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def model_source(name: str, corpus: Path) -> tuple[object, dict[str, np.ndarray], dict]:
    """(ONNX path or ModelProto, calibration arrays keyed by input name with a leading sample axis,
    conversion options such as ``overwrite_input_shape``)."""
    rng = np.random.default_rng(zlib.crc32(("consumers:" + name).encode()))
    if name == "tiny_cnn":
        return REPO / "examples" / "tiny_cnn.onnx", {
            "input": rng.standard_normal((CALIBRATION_SAMPLES, 1, 3, 32, 32)).astype(np.float32)}, {}
    if name == "small_convnet":
        return small_convnet(), {"x": rng.standard_normal((CALIBRATION_SAMPLES, 1, 3, 48, 48)).astype(np.float32)}, {}
    sys.path.insert(0, str(REPO / "bench"))
    from quant_corpus import sample_input

    from bench_corpus import load_manifest, shape_overrides

    rec = load_manifest(corpus)[name]
    arrays = {s["name"]: np.stack([sample_input(s, rng) for _ in range(CALIBRATION_SAMPLES)]) for s in rec["inputs"]}
    return corpus / rec["file"], arrays, {"overwrite_input_shape": shape_overrides(rec)}


def full_integer_file(source: object, calibration: dict[str, np.ndarray], workdir: Path, **options: object) -> bytes:
    """The ``full_integer_quant`` bytes of ``source``, calibrated on ``calibration``."""
    import onnx2litert

    npz = workdir / "calibration.npz"
    np.savez(npz, **calibration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = onnx2litert.convert(source, output_integer_quantized_tflite=True, output_float16=False,
                                     calibration_data=str(npz), calibration_num_samples=CALIBRATION_SAMPLES,
                                     **options)
    if "full_integer_quant" not in result.artifacts:
        raise RuntimeError(result.reports["quantization"]["variants"]["full_integer_quant"]["errors"][0])
    return result.artifacts["full_integer_quant"]


# ---------------------------------------------------------------------------------------------- runtimes
def random_int8_inputs(data: bytes, seed: int = 0) -> list[np.ndarray]:
    """Seeded standard-normal inputs, quantized with each input tensor's parameters (input order)."""
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(seed)
    feeds = []
    for d in Interpreter(model_content=data).get_input_details():
        scale, zp = d["quantization"]
        info = np.iinfo(d["dtype"])
        x = rng.standard_normal(d["shape"])
        feeds.append(np.clip(np.round(x / scale) + zp, info.min, info.max).astype(d["dtype"]))
    return feeds


def run_litert(data: bytes, inputs: list[np.ndarray], delegates: bool = False) -> list[np.ndarray]:
    """Raw outputs of LiteRT (builtin kernels unless ``delegates``), in the model's output order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = {} if delegates else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interp = Interpreter(model_content=data, num_threads=1, **kw)
    interp.allocate_tensors()
    for d, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def run_tflm(data: bytes, inputs: list[np.ndarray], arena_bytes: int = ARENA_BYTES) -> list[np.ndarray]:
    """Raw outputs of the TFLite Micro interpreter, in the model's output order."""
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(data, arena_size=arena_bytes)
    for k, x in enumerate(inputs):
        interp.set_input(x, k)
    interp.invoke()
    n_out = len(_io_counts(data)[1])
    return [np.array(interp.get_output(k)) for k in range(n_out)]


def _io_counts(data: bytes) -> tuple[list[int], list[int]]:
    from ai_edge_litert import schema_py_generated as S

    sg = S.Model.GetRootAs(data, 0).Subgraphs(0)
    return list(sg.InputsAsNumpy()), list(sg.OutputsAsNumpy())


def max_step_difference(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    """Largest difference in quantization steps between two lists of integer outputs."""
    return max(int(np.abs(x.astype(np.int64) - y.astype(np.int64)).max()) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------- vela
_SUMMARY = re.compile(r"^(CPU|NPU) operators = (\d+)", re.M)


def run_vela(data: bytes, workdir: Path, accelerator: str = "ethos-u55-128") -> dict:
    """Compile with Vela; returns NPU/CPU operator counts, the CPU ops and Vela's reasons."""
    path = workdir / "model.tflite"
    path.write_bytes(data)
    out_dir = workdir / "vela"
    proc = subprocess.run(["vela", "--accelerator-config", accelerator, "--show-cpu-operations", str(path),
                           "--output-dir", str(out_dir)], capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return {"ok": False, "error": text.strip().splitlines()[-1] if text.strip() else f"exit {proc.returncode}"}
    counts = {kind: int(n) for kind, n in _SUMMARY.findall(text)}
    reasons = sorted({line.strip() for line in text.splitlines()
                      if ("not supported" in line or "placing on cpu" in line.lower() or "constraint" in line.lower())
                      and not line.startswith("Warning: No ")})
    compiled = (out_dir / "model_vela.tflite").read_bytes()
    return {"ok": True, "npu_ops": counts.get("NPU", 0), "cpu_ops": counts.get("CPU", 0),
            "cpu_op_types": cpu_op_types(compiled), "reasons": reasons}


def cpu_op_types(compiled: bytes) -> list[str]:
    """Operators of a Vela output file other than the ``ethos-u`` custom op (i.e. left to the CPU)."""
    from ai_edge_litert import schema_py_generated as S

    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    m = S.ModelT.InitFromPackedBuf(compiled, 0)
    left = []
    for op in m.subgraphs[0].operators or []:
        code = m.operatorCodes[op.opcodeIndex]
        custom = (code.customCode or b"").decode() if isinstance(code.customCode, bytes) else (code.customCode or "")
        if custom == "ethos-u":
            continue
        left.append(custom or names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?"))
    return left


def op_types(data: bytes) -> dict[str, int]:
    """Op histogram of a file's main subgraph."""
    from collections import Counter

    from ai_edge_litert import schema_py_generated as S

    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    m = S.ModelT.InitFromPackedBuf(data, 0)
    return dict(Counter(names[max(m.operatorCodes[op.opcodeIndex].builtinCode,
                                  m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
                        for op in m.subgraphs[0].operators))


# ---------------------------------------------------------------------------------------------- main
def check_model(name: str, corpus: Path) -> dict:
    """Convert one model and run both consumers on its full_integer_quant file."""
    row: dict = {"model": name}
    with tempfile.TemporaryDirectory(prefix=f"consumers_{name}_") as tmp:
        work = Path(tmp)
        try:
            source, calib, options = model_source(name, corpus)
            data = full_integer_file(source, calib, work, **options)
        except Exception as exc:
            return {**row, "error": f"conversion: {type(exc).__name__}: {exc}"[:300]}
        row["ops"] = op_types(data)
        row["size_kb"] = len(data) / 1024
        inputs = random_int8_inputs(data)
        ref = run_litert(data, inputs)
        row["litert_xnnpack_vs_builtin_steps"] = max_step_difference(run_litert(data, inputs, True), ref)
        try:
            row["tflm_vs_litert_steps"] = max_step_difference(run_tflm(data, inputs), ref)
        except Exception as exc:
            row["tflm_error"] = f"{type(exc).__name__}: {exc}"[:300]
        row["vela"] = run_vela(data, work)
    return row


def format_row(row: dict) -> str:
    """One human-readable line."""
    if "error" in row:
        return f"{row['model']:20s} {row['error']}"
    tflm = row.get("tflm_error") or f"TFLM vs LiteRT max diff {row['tflm_vs_litert_steps']} step(s)"
    v = row["vela"]
    if v["ok"]:
        ours = sum(row["ops"].values())
        on_npu = ours - len(v["cpu_op_types"])
        vela = (f"Vela: {on_npu}/{ours} of our ops on the NPU ({100.0 * on_npu / max(ours, 1):.1f}%; Vela's summary: "
                f"{v['npu_ops']} NPU / {v['cpu_ops']} CPU operators)"
                + (f", left on the CPU: {', '.join(v['cpu_op_types'])}" if v["cpu_op_types"] else ""))
    else:
        vela = f"Vela failed: {v['error']}"
    return f"{row['model']:20s} {sum(row['ops'].values())} ops | {tflm} | {vela}"


def main(argv: list[str] | None = None) -> int:
    """Check the selected models; print one line each (and the JSON rows with --json)."""
    import os

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--corpus", default=os.environ.get("ONNX2LITERT_CORPUS") or str(REPO / ".corpus"))
    p.add_argument("--json", help="write the rows to this JSON file")
    args = p.parse_args(argv)
    rows = []
    for name in args.models.split(","):
        row = check_model(name, Path(args.corpus))
        rows.append(row)
        print(format_row(row), flush=True)
        for reason in row.get("vela", {}).get("reasons", []):
            print("    vela:", reason)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Per-operator latency of a converted model next to ONNX Runtime's per-node profile.

    python bench/profile_ops.py MODEL.onnx [--tflite FILE] [--shape name:1,3,224,224] [--runs 20] [--top 25]

LiteRT's Python interpreter has no op profiler, so every operator of the main subgraph is cut out
into a one-operator model (its constant operands kept, everything else fed with seeded data) and
timed on one thread with the default (XNNPACK) delegate. The sum over operators is close to, but
not exactly, the whole model's latency: a cut-out op pays the delegate's per-call overhead, and
an op XNNPACK fuses into its consumer in the whole graph (a zero PAD before a convolution costs
nothing there) is timed alone here. Both runtimes are timed in turn, not interleaved, so compare
op families within a runtime more than across them when the machine's speed drifts.
ONNX Runtime's own profiler gives the per-node figures on the other side. Both are grouped by op
type so layout or lowering choices that make one op family slower stand out.
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn, runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(samples)


def _feed(shape: list[int], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return np.zeros(shape, dtype)  # index-like and bool operands: 0 is valid for every gather/slice


def litert_op_profile(data: bytes, runs: int) -> list[dict]:
    """Median latency of every operator of subgraph 0, each run alone."""
    from ai_edge_litert import schema_py_generated as S
    from ai_edge_litert.interpreter import Interpreter
    import flatbuffers

    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    model = S.ModelT.InitFromPackedBuf(bytearray(data), 0)
    sub = model.subgraphs[0]
    buffers = model.buffers
    all_ops = list(sub.operators)
    rng = np.random.default_rng(0)
    rows = []
    for idx, op in enumerate(all_ops):
        code = model.operatorCodes[op.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        ins = [t for t in op.inputs if t >= 0]
        const = {t for t in ins if buffers[sub.tensors[t].buffer].data is not None
                 and len(buffers[sub.tensors[t].buffer].data) > 0}
        keep = {sub.tensors[t].buffer for t in const}
        sub.operators = [op]
        sub.inputs = [t for t in dict.fromkeys(ins) if t not in const]
        sub.outputs = list(op.outputs)
        model.buffers = [b if i in keep or i == 0 else S.BufferT() for i, b in enumerate(buffers)]
        if model.subgraphs[1:]:
            model.buffers = buffers  # control flow: keep every buffer the bodies may read
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        one = bytes(builder.Output())
        try:
            interp = Interpreter(model_content=one, num_threads=1)
            interp.allocate_tensors()
            for d in interp.get_input_details():
                interp.set_tensor(d["index"], _feed(list(d["shape"]), d["dtype"], rng))
            ms = _median_ms(interp.invoke, runs)
        except Exception as exc:  # noqa: BLE001 - a cut-out op that cannot run alone is reported, not fatal
            ms = float("nan")
            name += f" ({type(exc).__name__})"
        out = sub.tensors[op.outputs[0]]
        rows.append({"index": idx, "op": name, "ms": ms, "out_shape": list(out.shape) if out.shape is not None else []})
    sub.operators, model.buffers = all_ops, buffers
    return rows


def ort_node_profile(onnx_path: Path, feeds: dict, runs: int) -> list[dict]:
    """Mean per-node latency from ONNX Runtime's profiler, one thread."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        for _ in range(3 + runs):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[str, list[float]] = collections.defaultdict(list)
    op_type: dict[str, str] = {}
    for ev in events:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            node = ev["name"][: -len("_kernel_time")]
            per_node[node].append(ev["dur"] / 1000.0)
            op_type[node] = ev.get("args", {}).get("op_name", "?")
    return [{"node": n, "op": op_type[n], "ms": statistics.median(v[3:] or v)} for n, v in per_node.items()]


def _onnx_feeds(model: str, shapes: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Seeded feeds for the ONNX model (symbolic dims from --shape, else 1)."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    dtypes = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
              "tensor(bool)": np.bool_}
    return {i.name: _feed(shapes.get(i.name) or [d if isinstance(d, int) else 1 for d in i.shape],
                          np.dtype(dtypes[i.type]), rng) for i in sess.get_inputs()}


def _by_type(rows: list[dict]) -> dict[str, tuple[int, float]]:
    acc: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
    for r in rows:
        if r["ms"] == r["ms"]:
            acc[r["op"]][0] += 1
            acc[r["op"]][1] += r["ms"]
    return {k: (v[0], v[1]) for k, v in acc.items()}


def main(argv: list[str] | None = None) -> int:
    """Convert (or load) the model, profile both runtimes, print the tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="ONNX file")
    p.add_argument("--tflite", help="already converted .tflite (default: convert with default flags)")
    p.add_argument("--shape", action="append", default=[], help="name:d0,d1,... for symbolic inputs")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--top", type=int, default=25, help="slowest single LiteRT operators to list")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import onnx2litert

    import onnx

    declared = {i.name for i in onnx.load(args.model, load_external_data=False).graph.input}
    shapes = {s.split(":")[0]: [int(d) for d in s.split(":")[1].split(",")] for s in args.shape}
    shapes = {k: v for k, v in shapes.items() if k in declared}  # one --shape list serves several models
    with tempfile.TemporaryDirectory() as tmp:
        if args.tflite:
            data = Path(args.tflite).read_bytes()
        else:
            result = onnx2litert.convert(args.model, tmp, overwrite_input_shape=shapes)
            data = Path(result.paths["float32"]).read_bytes()
    lite = litert_op_profile(data, args.runs)
    feeds = _onnx_feeds(args.model, shapes)
    onnx_rows = ort_node_profile(Path(args.model), feeds, args.runs)

    lt, ot = _by_type(lite), _by_type(onnx_rows)
    print(f"LiteRT sum of ops: {sum(v[1] for v in lt.values()):.2f} ms over {len(lite)} ops;"
          f" ORT sum of nodes: {sum(v[1] for v in ot.values()):.2f} ms over {len(onnx_rows)} nodes")
    print("\nLiteRT by op type:")
    for k, (n, ms) in sorted(lt.items(), key=lambda kv: -kv[1][1]):
        print(f"  {k:28s} {n:4d} {ms:9.3f} ms")
    print("\nONNX Runtime by op type:")
    for k, (n, ms) in sorted(ot.items(), key=lambda kv: -kv[1][1]):
        print(f"  {k:28s} {n:4d} {ms:9.3f} ms")
    print(f"\nslowest {args.top} LiteRT operators:")
    for r in sorted(lite, key=lambda r: -(r["ms"] if r["ms"] == r["ms"] else 0))[: args.top]:
        print(f"  #{r['index']:4d} {r['op']:24s} {r['ms']:8.3f} ms  out {r['out_shape']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Large-model benchmark: peak memory and time of converting a model with ~2.5 GB of weights.

A seeded MLP stack (Gemm layers ``x @ W^T + b`` with ReLU between, the form PyTorch's
``nn.Linear`` exports) is written as ``model.onnx`` plus one external-data file, so the
``.onnx`` stays small. It is then converted with the CLI in child processes:

* ``single``: default flags (``<stem>_float32.tflite`` with external buffers past 2 GiB,
  plus the float16 variant, which is written by default);
* ``single_fp32_only``: the same without the float16 variant (to see what fp16 costs);
* ``split``: ``--auto_split_tflite_by_size --tflite_split_target_bytes 1000000000
  --tflite_split_max_bytes 1073741824 --eval_split_models`` (parts + ORT comparison).

For each run the child's peak RSS (``wait4`` rusage ``ru_maxrss``) and wall time are
recorded, with an RSS timeline sampled from ``/proc/<pid>/status``. The memory target is
``peak RSS < W + 1 GiB`` for W bytes of weights. Finally the single float32 file (> 2 GB,
constants after the flatbuffer) is loaded from its path in LiteRT, run on seeded inputs and
compared with ONNX Runtime; the float16 file is compared too. Results go to
``docs/large_models.md`` (and ``.json``). Temporary files are removed at the end.

    python bench/big_model.py                      # ~2.5 GiB of weights, ~15 GB of disk
    python bench/big_model.py --gib 0.3 --out /tmp/lm.md   # a quick smaller run

Not a CI test: it needs several GB of RAM and disk and a few minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024 ** 3
HIDDEN = 4096
FFN = 16384
SEED = 0
_DATA_ALIGN = 4096  # offsets of the tensors inside the data file (page aligned, like onnx.save)


def _external_tensor(name: str, array: np.ndarray, data_file: Path, f) -> TensorProto:
    """Append ``array`` to the open data file ``f``; return a TensorProto pointing at it."""
    offset = f.tell()
    pad = (-offset) % _DATA_ALIGN
    f.write(bytes(pad))
    offset += pad
    f.write(np.ascontiguousarray(array).tobytes())
    t = TensorProto()
    t.name = name
    t.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    t.dims.extend(array.shape)
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", data_file.name), ("offset", str(offset)), ("length", str(array.nbytes))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def build_model(folder: Path, weight_gib: float, seed: int = SEED) -> tuple[Path, int]:
    """Write ``model.onnx`` + ``model.data`` (an MLP stack of ~``weight_gib`` GiB); return path, W.

    Each block is Gemm(HIDDEN -> FFN) + Relu + Gemm(FFN -> HIDDEN) (+ Relu between blocks),
    weights N(0, 1/fan_in) so activations stay O(1). Generated one matrix at a time.
    """
    per_block = 2 * HIDDEN * FFN * 4
    blocks = max(1, round(weight_gib * GIB / per_block))
    rng = np.random.default_rng(seed)
    data_file = folder / "model.data"
    nodes, inits = [], []
    x = "x"
    weight_bytes = 0
    with open(data_file, "wb") as f:
        for b in range(blocks):
            for j, (n_in, n_out) in enumerate(((HIDDEN, FFN), (FFN, HIDDEN))):
                name = f"b{b}_fc{j}"
                w = (rng.standard_normal((n_out, n_in), dtype=np.float32) / np.float32(np.sqrt(n_in)))
                bias = (rng.standard_normal(n_out, dtype=np.float32) * np.float32(0.1))
                inits.append(_external_tensor(f"{name}.weight", w, data_file, f))
                inits.append(_external_tensor(f"{name}.bias", bias, data_file, f))
                weight_bytes += w.nbytes + bias.nbytes
                del w
                y = f"{name}_out"
                nodes.append(helper.make_node("Gemm", [x, f"{name}.weight", f"{name}.bias"], [y], name=name,
                                              transB=1))
                x = y
                last = b == blocks - 1 and j == 1
                if not last:
                    nodes.append(helper.make_node("Relu", [x], [f"{name}_relu"], name=f"{name}_relu"))
                    x = f"{name}_relu"
    nodes.append(helper.make_node("Identity", [x], ["y"], name="out"))
    graph = helper.make_graph(nodes, "big_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, HIDDEN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, HIDDEN])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="big_model.py")
    model.ir_version = 8
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path, weight_bytes


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def run_measured(cmd: list[str], log: Path, interval: float = 0.1) -> dict:
    """Run ``cmd``; return exit code, wall time, peak RSS (rusage) and an RSS timeline."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        samples: list[tuple[float, int, int, int]] = []
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                s = _status(proc.pid)
                if s:
                    samples.append((time.perf_counter() - t0, s.get("VmRSS", 0), s.get("RssAnon", 0),
                                    s.get("RssFile", 0)))
                done.wait(interval)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        thread.join()
    wall = time.perf_counter() - t0
    peak = max(samples, key=lambda s: s[1]) if samples else (0, 0, 0, 0)
    return {"cmd": " ".join(cmd[2:]), "exit_code": proc.returncode, "wall_s": round(wall, 1),
            "peak_rss_bytes": usage.ru_maxrss * 1024,
            "sampled_peak": {"t_s": round(peak[0], 1), "rss": peak[1], "anon": peak[2], "file": peak[3]},
            "timeline": [(round(t, 1), r, a, f) for t, r, a, f in samples[::max(1, len(samples) // 60)]],
            "log": log.read_text()[-4000:]}


def convert_cmd(onnx_path: Path, out_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "onnx2litert", "-i", str(onnx_path), "-o", str(out_dir), *extra]


def _ort(onnx_path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return sess.run(["y"], feeds)[0]


def _litert(tflite_path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite_path), num_threads=1)  # mmap: constants read at their offsets
    runner = interp.get_signature_runner("serving_default")
    return runner(**feeds)["y"]


def check_in_child(onnx_path: Path, tflite_path: Path, seed: int) -> dict:
    """LiteRT (from the path) vs ONNX Runtime on seeded inputs, in a child process."""
    code = ("import json,sys; sys.path.insert(0, %r); from bench.big_model import compare; "
            "print(json.dumps(compare(%r, %r, %d)))") % (str(ROOT), str(onnx_path), str(tflite_path), seed)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def compare(onnx_path: str, tflite_path: str, seed: int) -> dict:
    """Max abs error of LiteRT vs ONNX Runtime (three seeded inputs); runs ORT first, then frees it."""
    rng = np.random.default_rng(seed)
    feeds = [{"x": rng.standard_normal((1, HIDDEN), dtype=np.float32)} for _ in range(3)]
    refs = [_ort(Path(onnx_path), f) for f in feeds]
    import gc

    gc.collect()
    gots = [_litert(Path(tflite_path), f) for f in feeds]
    err = max(float(np.abs(g - r).max()) for g, r in zip(gots, refs))
    scale = max(float(np.abs(r).max()) for r in refs)
    cos = min(float(np.dot(g.ravel(), r.ravel()) / (np.linalg.norm(g) * np.linalg.norm(r)))
              for g, r in zip(gots, refs))
    return {"max_abs_err": err, "max_abs_ref": scale, "rel_err": err / max(1.0, scale), "cosine": cos,
            "file_bytes": os.path.getsize(tflite_path)}


def _gb(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def write_doc(path: Path, info: dict) -> None:
    """The markdown report (plus the raw JSON next to it)."""
    w = info["weight_bytes"]
    target = w + GIB
    lines = [
        "# Large models",
        "",
        "## Converting models with gigabytes of weights",
        "",
        "- **ONNX external data** (`model.onnx` + data files, as `onnx.save(..., save_as_external_data=True)` "
        "writes): convert from the `.onnx` path. Data files must lie inside the model's folder "
        "(`unsafe_external_data` otherwise). Initializers of 1 MiB or more are memory-mapped read-only, "
        "not read into memory (and never held twice).",
        "- **Past 2 GiB** a flatbuffer cannot hold the weights: when the constants exceed "
        "`--tflite_external_buffers_threshold_bytes` (default 2 GiB - 64 MiB) the file stores them after "
        "the flatbuffer (`Buffer.offset`/`size`, 64-byte aligned). LiteRT loads such a file from its path "
        "(`Interpreter(model_path=...)`, memory-mapped).",
        "- **Split instead** with `--auto_split_tflite_by_size --tflite_split_target_bytes N "
        "--tflite_split_max_bytes M` (`--eval_split_models` runs the chained parts against ONNX Runtime).",
        "- **Python API**: with an output folder, every file larger than 256 MiB "
        "(`onnx2litert.export.large.IN_MEMORY_LIMIT`) is streamed to disk and is *not* in "
        "`result.artifacts` / `result.split_parts`; `result.paths` always lists every file written "
        "(`paths[\"float32\"]`, `paths[\"split_0001\"]`, ...). Without an output folder all files are "
        "returned as bytes (which needs the memory). Evaluation (`-ewo`, `--eval_split_models`) runs "
        "such files from their paths.",
        "- **Memory target**: a conversion of a model with W bytes of weights peaks below W + 1 GiB RSS "
        "(measured below). ONNX Runtime, when asked to evaluate, loads its own copy of the weights.",
        "",
        "## Benchmark",
        "",
        "Generated by `python bench/big_model.py` (not a CI test). Model: "
        f"{info['blocks']} MLP blocks of Gemm {HIDDEN}->{FFN}->{HIDDEN} (transB=1, ReLU), seed {SEED}, "
        f"W = {w:,} bytes ({_gb(w)}) of float32 weights in one external-data file; the `.onnx` itself is "
        f"{info['onnx_bytes']:,} bytes. Memory target: peak RSS < W + 1 GiB = {_gb(target)}. "
        f"Machine: {os.cpu_count()} cores, {info['ram']}; generation took {info['generate_s']} s.",
        "",
        "| conversion | flags | exit | wall s | peak RSS | W + 1 GiB | meets target | output |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, run in info["runs"].items():
        ok = run["peak_rss_bytes"] < target
        lines.append(f"| {name} | `{run['flags'] or '(defaults)'}` | {run['exit_code']} | {run['wall_s']} | "
                     f"{_gb(run['peak_rss_bytes'])} | {_gb(target)} | {'yes' if ok else 'NO'} | {run['outputs']} |")
    lines += ["", "Peak RSS is the child's `ru_maxrss` (from `wait4`): resident anonymous memory plus resident "
              "file-backed pages (memory-mapped weights count once they are touched). The sampled peak splits "
              "it into anonymous / file-backed (`/proc/<pid>/status`, every 0.1 s):", ""]
    for name, run in info["runs"].items():
        s = run["sampled_peak"]
        lines.append(f"- {name}: at {s['t_s']} s, RSS {_gb(s['rss'])} = anon {_gb(s['anon'])} + "
                     f"file {_gb(s['file'])}; CLI timings: {run['timings']}")
    lines += ["", "## LiteRT vs ONNX Runtime", "",
              "The single files are loaded from their path (`Interpreter(model_path=...)`; the float32 file "
              "is larger than 2 GiB, its constants follow the flatbuffer at `Buffer.offset`) and run on three "
              "seeded inputs, ONNX Runtime on the same inputs (separate child process).", "",
              "| file | bytes | max abs err | max abs ref | err / max(1, ref) | min cosine | pass |",
              "|---|---|---|---|---|---|---|"]
    for name, res in info["checks"].items():
        if "error" in res:
            lines.append(f"| {name} | - | error | | | | NO |")
            continue
        lines.append(f"| {name} | {res['file_bytes']:,} | {res['max_abs_err']:.3g} | {res['max_abs_ref']:.3g} | "
                     f"{res['rel_err']:.3g} | {res['cosine']:.8f} | {'yes' if res['pass'] else 'NO'} |")
    split_acc = info.get("split_accuracy")
    if split_acc:
        ov = split_acc["overall"]
        lines += ["", f"Split parts chained vs ONNX Runtime (`--eval_split_models`): {split_acc['num_parts']} "
                  f"parts, cosine {ov['cosine']:.8f}, max_abs {ov['max_abs']:.3g}, pass {split_acc['pass']}."]
    lines += ["", "## What keeps memory at W + small", "",
              "- External-data initializers are memory-mapped read-only, not read into protobuf "
              "bytes and then copied into arrays (`onnx2litert/frontend/load.py`). Their pages count in RSS "
              "once touched (passes compare same-shape weights, so the peak is reached there: W + ~0.1 GiB); "
              "export drops each weight's pages after writing it (`release_pages`), so later steps start "
              "near zero again.",
              "- A Gemm with `transB=1` (the `nn.Linear` form) uses the mapped weight as the "
              "FULLY_CONNECTED weight without a copy. Weights that need a layout change (MatMul's "
              "`[K, N]`, Conv's OIHW) are copied once by their lowering: expect about 2 W for such models.",
              "- Export lays out the flatbuffer tables only, then streams each constant into the file "
              "(`FileImage.write_file`); no `bytearray` of the whole file exists. Files above 256 MiB "
              "written to an output folder are not kept in `ConversionResult.artifacts` / `split_parts` "
              "(their paths are in `paths`).",
              "- The float16 variant of a model with more than 256 MiB of constants converts each weight "
              "chunk by chunk while writing (`export/deferred.py`), so no second copy of the weights "
              "(W/2) is held.",
              "- Split parts are laid out (exact sizes) without serializing, then streamed to their files; "
              "evaluation runs the parts from those files, one at a time.",
              "- With `--eval_split_models` the peak is ONNX Runtime's own copy of the weights (anonymous "
              "memory, read from the external data) while it computes the reference; the converter's "
              "weights are no longer resident by then.",
              ""]
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps(info, indent=2, default=str))


def _timings(log: str) -> str:
    for line in log.splitlines():
        if line.startswith("time:"):
            return line[len("time:"):].strip()
    return "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=2.5, help="weights in GiB (default 2.5)")
    ap.add_argument("--workdir", type=Path, default=None, help="folder for the temporary files")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "large_models.md")
    ap.add_argument("--keep", action="store_true", help="keep the generated model and outputs")
    ap.add_argument("--runs", default="single,single_fp32_only,split", help="which conversions to run")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="big_model_", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        onnx_path, w = build_model(work, args.gib)
        info: dict = {"weight_bytes": w, "blocks": max(1, round(args.gib * GIB / (2 * HIDDEN * FFN * 4))),
                      "onnx_bytes": onnx_path.stat().st_size, "generate_s": round(time.perf_counter() - t0, 1),
                      "ram": _ram(), "runs": {}, "checks": {}}
        print(f"model: {onnx_path} W={w:,} bytes, generated in {info['generate_s']} s", flush=True)
        flags = {"single": [], "single_fp32_only": ["--no-output_float16"],
                 "split": ["--auto_split_tflite_by_size", "--tflite_split_target_bytes", "1000000000",
                           "--tflite_split_max_bytes", "1073741824", "--eval_split_models"]}
        for name in args.runs.split(","):
            out_dir = work / f"out_{name}"
            extra = flags[name]
            if name == "single_fp32_only":
                extra = []  # the CLI has no flag to skip float16: use the Python API instead
                cmd = [sys.executable, "-c",
                       "import sys; sys.path.insert(0, %r); import onnx2litert; r = onnx2litert.convert(%r, %r, "
                       "output_float16=False); print('time: ' + ', '.join(f'{k} {v:.2f}s' for k, v in "
                       "r.timings.items()))" % (str(ROOT), str(onnx_path), str(out_dir))]
            else:
                cmd = convert_cmd(onnx_path, out_dir, *extra)
            print(f"converting: {name} ...", flush=True)
            run = run_measured(cmd, work / f"{name}.log")
            run["flags"] = " ".join(extra) if name != "single_fp32_only" else "output_float16=False (Python API)"
            run["timings"] = _timings(run["log"])
            files = sorted(out_dir.glob("*.tflite")) if out_dir.exists() else []
            run["outputs"] = ", ".join(f"{p.name} ({p.stat().st_size / GIB:.2f} GiB)" for p in files) or "-"
            info["runs"][name] = run
            print(f"  exit {run['exit_code']}, {run['wall_s']} s, peak RSS {_gb(run['peak_rss_bytes'])}", flush=True)
            if run["exit_code"] != 0:
                print(run["log"][-3000:], flush=True)
            if name == "single":
                for variant, bound in (("float32", 1e-4), ("float16", 2e-2)):
                    tfl = out_dir / f"model_{variant}.tflite"
                    if tfl.exists():
                        res = check_in_child(onnx_path, tfl, SEED)
                        if "error" not in res:
                            res["bound"] = bound
                            res["pass"] = res["rel_err"] <= bound
                        info["checks"][f"model_{variant}.tflite"] = res
                        print(f"  {variant} vs ORT: {res}", flush=True)
            if name == "split":
                acc = out_dir / "model_split_accuracy_report.json"
                if acc.exists():
                    info["split_accuracy"] = json.loads(acc.read_text())
            if not args.keep:
                shutil.rmtree(out_dir, ignore_errors=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_doc(args.out, info)
        print(f"wrote {args.out}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _ram() -> str:
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        return f"{kb / 1024 ** 2:.0f} GiB RAM"
    except OSError:
        return "unknown RAM"


if __name__ == "__main__":
    sys.exit(main())

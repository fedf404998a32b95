"""Split an optimized IR model into size-bounded part models plus a plan and a manifest."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConversionError, Issue, Reason
from ..export.flatbuffer import FileImage
from ..ir import Model
from .extract import Part, build_part, io_record, signature_names
from ..export.large import DEFAULT_EXTERNAL_THRESHOLD, prepare_export
from .planner import MODEL_OVERHEAD, OPERATOR_OVERHEAD, TENSOR_OVERHEAD, SplitPlan, plan_split, tensor_bytes

PLAN_FORMAT = "onnx2litert_split_plan"
MANIFEST_FORMAT = "onnx2litert_split_manifest"
FORMAT_VERSION = 1
# When an exported part is larger than the hard maximum (the estimate was too low), the
# target is scaled down and the model re-planned, at most this many times.
_MAX_ATTEMPTS = 4


@dataclass
class SplitOutput:
    """What splitting produced: the laid-out part files (name -> image, in run order), plan
    and manifest.

    ``images`` are not yet serialized: stream each with ``image.write_file(path)`` or get
    bytes with ``image.to_bytes()``; ``parts`` caches bytes already made (see :meth:`materialize`).
    """

    plan: dict
    manifest: dict | None
    images: dict[str, FileImage] = field(default_factory=dict)
    parts: dict[str, bytes] = field(default_factory=dict)

    @property
    def split(self) -> bool:
        return bool(self.images)

    def materialize(self) -> dict[str, bytes]:
        """Every part as bytes (all in memory at once: for small models and tests)."""
        for name, image in self.images.items():
            if name not in self.parts:
                self.parts[name] = image.to_bytes()
        return self.parts


def part_file_name(stem: str, index: int) -> str:
    """``<stem>_0001.tflite`` for the first part (1-based, four digits)."""
    return f"{stem}_{index:04d}.tflite"


def split_model(model: Model, stem: str, io_layout: dict, target_bytes: int, max_bytes: int,
                external_threshold: int = DEFAULT_EXTERNAL_THRESHOLD) -> SplitOutput:
    """Plan, build and lay out the parts of ``model`` (the optimized float IR).

    When the whole model fits the target no parts are produced; the plan then has one
    partition and ``split_required`` false, and the manifest is ``None``.
    Raises ``split_impossible`` when an op cannot fit ``max_bytes``.
    """
    names = signature_names(model)
    target = target_bytes
    attempts = 0
    while True:
        attempts += 1
        plan = plan_split(model, target, max_bytes)
        if not plan.needs_split:
            return SplitOutput(_plan_report(stem, plan, names, [], [], attempts, target_bytes), None)
        parts = [build_part(model, p.start, p.end, names, io_layout) for p in plan.partitions]
        # Laid out only (exact sizes, no data copied): parts are streamed to files later.
        images = [prepare_export(part.model, external_threshold) for part in parts]
        largest = max(image.size for image in images)
        if largest <= max_bytes:
            break
        if attempts >= _MAX_ATTEMPTS:
            raise ConversionError(Issue(
                Reason.SPLIT_IMPOSSIBLE,
                f"a part is still {largest} bytes after {attempts} planning attempts, above "
                f"--tflite_split_max_bytes {max_bytes}"))
        target = max(1, int(target * max_bytes / largest * 0.95))
    files = [part_file_name(stem, i + 1) for i in range(len(parts))]
    sizes = [image.size for image in images]
    report = _plan_report(stem, plan, names, parts, sizes, attempts, target_bytes)
    manifest = _manifest(stem, model, io_layout, parts, files, sizes)
    return SplitOutput(report, manifest, dict(zip(files, images)))


def _sources(parts: list[Part]) -> dict[str, int]:
    """Signature name -> 1-based index of the part that produces it."""
    return {o.name: i + 1 for i, part in enumerate(parts) for o in part.outputs}


def _edges(parts: list[Part], model_outputs: set[str]) -> list[dict]:
    produced = _sources(parts)
    grouped: dict[tuple, list[str]] = {}
    for j, part in enumerate(parts, start=1):
        for p in part.inputs:
            grouped.setdefault((produced.get(p.name, "model_input"), j), []).append(p.name)
        for p in part.outputs:
            if p.name in model_outputs:
                grouped.setdefault((j, "model_output"), []).append(p.name)
    return [{"from": src, "to": dst, "tensors": tensors} for (src, dst), tensors in grouped.items()]


def _plan_report(stem: str, plan: SplitPlan, names: dict[int, str], parts: list[Part], sizes: list[int],
                 attempts: int, requested_target: int) -> dict:
    chosen = set(plan.chosen_cuts)
    partitions = []
    for i, p in enumerate(plan.partitions):
        entry = {"index": i + 1, "file": part_file_name(stem, i + 1) if parts else None,
                 "op_range": [p.start, p.end], "op_start": p.start, "op_end": p.end - 1,
                 "num_ops": p.end - p.start, "estimated_bytes": p.estimated_bytes,
                 "constant_bytes": p.constant_bytes}
        if parts:
            entry["actual_bytes"] = sizes[i]
            entry["inputs"] = [io.name for io in parts[i].inputs]
            entry["outputs"] = [io.name for io in parts[i].outputs]
        partitions.append(entry)
    cuts = [{"index": c.index, "after_op": c.index - 1, "num_tensors": c.num_tensors, "bytes": c.bytes,
             "tensors": [{"name": names.get(id(t), t.name), "shape": list(t.shape),
                          "dtype": np.dtype(t.dtype).name, "bytes": tensor_bytes(t)} for t in c.tensors],
             "chosen": c.index in chosen} for c in plan.cuts]
    model_outputs = {o.name for part in parts for o in part.outputs if o.layout.get("layout") != "internal"}
    return {
        "format": PLAN_FORMAT, "version": FORMAT_VERSION, "model": stem,
        "split_required": plan.needs_split,
        "target_bytes": requested_target, "effective_target_bytes": plan.target_bytes,
        "max_bytes": plan.max_bytes, "planning_attempts": attempts,
        "num_ops": plan.num_ops, "estimated_total_bytes": plan.estimated_total_bytes,
        "estimate": {"tensor_overhead_bytes": TENSOR_OVERHEAD, "operator_overhead_bytes": OPERATOR_OVERHEAD,
                     "model_overhead_bytes": MODEL_OVERHEAD,
                     "shared_constants": "counted in every partition that reads them"},
        "num_partitions": len(plan.partitions),
        "partitions": partitions,
        "cut_points": cuts,
        "edges": _edges(parts, model_outputs) if parts else [],
    }


def _manifest(stem: str, model: Model, io_layout: dict, parts: list[Part], files: list[str],
              sizes: list[int]) -> dict:
    produced = _sources(parts)
    in_layout = io_layout.get("inputs", {})
    out_layout = io_layout.get("outputs", {})
    sg = model.main
    inputs = [{"name": n, "shape": list(in_layout.get(n, {}).get("onnx_shape") or t.shape),
               "dtype": np.dtype(t.dtype).name, "layout": in_layout.get(n, {}).get("layout", "onnx"),
               "perm_from_onnx": in_layout.get(n, {}).get("perm_from_onnx")}
              for n, t in zip(model.signature_inputs, sg.inputs)]
    outputs = [{"name": n, "shape": list(t.shape), "dtype": np.dtype(t.dtype).name,
                "layout": out_layout.get(n, {}).get("layout", "onnx"), "part": produced.get(n)}
               for n, t in zip(model.signature_outputs, sg.outputs)]
    entries = []
    for i, (part, file) in enumerate(zip(parts, files), start=1):
        ins = []
        for p in part.inputs:
            rec = io_record(p)
            rec["source"] = produced.get(p.name, "model_input")
            ins.append(rec)
        entries.append({"index": i, "file": file, "bytes": sizes[i - 1],
                        "inputs": ins, "outputs": [io_record(p) for p in part.outputs]})
    return {"format": MANIFEST_FORMAT, "version": FORMAT_VERSION, "model": stem,
            "num_parts": len(parts), "inputs": inputs, "outputs": outputs, "parts": entries}

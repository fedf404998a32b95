"""Run split part models in sequence, passing values between them by signature name."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..evaluate.runtime import run_tflite


def load_manifest(manifest: str | os.PathLike | Mapping) -> tuple[dict, Path | None]:
    """The manifest dict and the folder its part files are relative to (None for a dict)."""
    if isinstance(manifest, Mapping):
        return dict(manifest), None
    path = Path(manifest)
    return json.loads(path.read_text()), path.parent


def run_split_models(manifest: str | os.PathLike | Mapping, feeds: Mapping[str, np.ndarray], *,
                     models: Mapping[str, bytes | str | os.PathLike] | None = None,
                     base_dir: str | os.PathLike | None = None,
                     num_threads: int = 1, use_default_delegates: bool = True) -> dict[str, np.ndarray]:
    """Run the parts listed in a split manifest in order and return the model's outputs.

    ``feeds`` are the original model inputs in ONNX layout, keyed by ONNX name (as for
    :func:`onnx2litert.run_tflite`); outputs come back in ONNX layout keyed by ONNX name.
    Part files are read from ``models`` (file name -> bytes or path) when given, else from
    ``base_dir`` (default: the manifest's folder, or the current folder for a dict).
    Values are dropped as soon as no later part reads them.
    """
    data, folder = load_manifest(manifest)
    root = Path(base_dir) if base_dir is not None else (folder or Path.cwd())
    wanted = [o["name"] for o in data["outputs"]]
    missing = [i["name"] for i in data["inputs"] if i["name"] not in feeds]
    if missing:
        raise KeyError(f"missing feed(s) for model input(s): {', '.join(missing)}")
    parts = data["parts"]
    last_read = {}
    for k, part in enumerate(parts):
        for i in part["inputs"]:
            last_read[i["name"]] = k
    values: dict[str, np.ndarray] = {name: np.asarray(v) for name, v in feeds.items()}
    for k, part in enumerate(parts):
        blob = models[part["file"]] if models is not None and part["file"] in models else root / part["file"]
        args = {i["name"]: values[i["name"]] for i in part["inputs"]}
        outs = run_tflite(blob, args, num_threads=num_threads, use_default_delegates=use_default_delegates)
        values.update(outs)
        for i in part["inputs"]:
            if last_read[i["name"]] == k and i["name"] not in wanted:
                values.pop(i["name"], None)
    return {name: values[name] for name in wanted}

"""End-to-end accuracy on the corpus models (``../shared/corpus``; build it with ``.ci/run`` or
``CORPUS_DIR=.corpus bash ../shared/corpus/build_corpus.sh``).

Every model is converted with default flags, the float32 file is run with ``onnx2litert.run_tflite``
on the manifest's reference inputs and compared with the stored ONNX Runtime outputs. Skipped (with
the reason) when the corpus is not built. Location: ``$ONNX2LITERT_CORPUS`` or ``<repo>/.corpus``.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import onnx2litert
from onnx2litert.evaluate import compare_outputs

pytestmark = pytest.mark.corpus

REPO = Path(__file__).resolve().parents[1]
F32_MIN_COSINE = 0.99999
F32_MAX_RELATIVE_L2 = 1e-4
F16_MIN_COSINE = 0.999

LIGHT = ["light_densenet121", "light_inception_v1", "light_inception_v2", "light_resnet50", "light_shufflenet",
         "light_squeezenet"]
MODELS = ["resnet18", "mobilenetv2", "mobilenetv3_small", "mobilenetv3_small_dynamo", "efficientnet_b0",
          "densenet_small", "unet_small", "yolo_style_det", "deeplabv3_mnv2_op13", "style_transfer",
          "espcn_superres", "conv1d_audio_m5"]


def corpus_dir() -> Path:
    """``$ONNX2LITERT_CORPUS`` or ``<repo>/.corpus``."""
    return Path(os.environ.get("ONNX2LITERT_CORPUS") or REPO / ".corpus")


@lru_cache(maxsize=1)
def manifest() -> dict[str, dict] | None:
    """Manifest records by model name, or None when the corpus is not built."""
    path = corpus_dir() / "manifest.json"
    if not path.is_file():
        return None
    return {rec["name"]: rec for rec in json.loads(path.read_text())["models"]}


def model_names() -> list[str]:
    """The listed models plus any other ``light_*`` model the manifest has (e.g. CORPUS_LIGHT_ALL=1)."""
    extra = sorted(n for n in (manifest() or {}) if n.startswith("light_") and n not in LIGHT)
    return LIGHT + extra + MODELS


def shape_overrides(rec: dict) -> dict[str, list[int]]:
    """overwrite_input_shape for inputs with a symbolic dim past the batch axis (fixed manifest shapes)."""
    return {i["name"]: list(i["shape"]) for i in rec["inputs"]
            if any(not isinstance(d, int) or d <= 0 for d in i["declared_shape"][1:])}


def load_case(name: str) -> tuple[dict, Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(record, model path, feeds, expected outputs), skipping when the corpus lacks the model."""
    records = manifest()
    if records is None:
        pytest.skip(f"corpus not built: no manifest.json in {corpus_dir()} "
                    "(set ONNX2LITERT_CORPUS or run ../shared/corpus/build_corpus.sh)")
    rec = records.get(name)
    if rec is None:
        pytest.skip(f"{name} is not in the corpus manifest (see {corpus_dir() / 'build_log.md'})")
    testdata = rec.get("ort", {}).get("testdata")
    model_path = corpus_dir() / rec["file"]
    if not testdata or not (corpus_dir() / testdata).is_file() or not model_path.is_file():
        pytest.skip(f"{name}: model file or reference data missing in {corpus_dir()}")
    data = np.load(corpus_dir() / testdata)
    feeds = {i["name"]: data["input:" + i["name"]] for i in rec["inputs"]}
    expected = {o["name"]: data["output:" + o["name"]] for o in rec["outputs"]}
    return rec, model_path, feeds, expected


def check_outputs(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], min_cosine: float,
                  max_relative_l2: float | None, label: str) -> None:
    """Per-output cosine / relative L2 against the stored ONNX Runtime outputs."""
    assert set(got) == set(expected), f"{label}: outputs {sorted(got)} != {sorted(expected)}"
    metrics = compare_outputs(expected, got)
    problems = []
    for name, ref in expected.items():
        m = metrics[name]
        if got[name].shape != ref.shape:
            problems.append(f"{name}: shape {got[name].shape} != {ref.shape}")
            continue
        if got[name].dtype != ref.dtype:
            problems.append(f"{name}: dtype {got[name].dtype} != {ref.dtype}")
        if not m["cosine"] >= min_cosine:
            problems.append(f"{name}: cosine {m['cosine']:.7f} < {min_cosine}")
        if max_relative_l2 is not None and not m["relative_l2"] <= max_relative_l2:
            problems.append(f"{name}: relative L2 {m['relative_l2']:.3g} > {max_relative_l2}")
    assert not problems, f"{label}: " + "; ".join(problems)


@pytest.mark.parametrize("name", model_names())
def test_corpus_model(name: str) -> None:
    rec, model_path, feeds, expected = load_case(name)
    result = onnx2litert.convert(model_path, overwrite_input_shape=shape_overrides(rec))
    got = onnx2litert.run_tflite(result.artifacts["float32"], feeds)
    check_outputs(expected, got, F32_MIN_COSINE, F32_MAX_RELATIVE_L2, f"{name} float32")
    got16 = onnx2litert.run_tflite(result.artifacts["float16"], feeds)
    check_outputs(expected, got16, F16_MIN_COSINE, None, f"{name} float16")


def test_shape_overrides_only_for_symbolic_non_batch_dims() -> None:
    rec = {"inputs": [{"name": "waveform", "declared_shape": ["batch", "seq"], "shape": [1, 16000]},
                      {"name": "image", "declared_shape": ["batch", 3, 8, 8], "shape": [1, 3, 8, 8]}]}
    assert shape_overrides(rec) == {"waveform": [1, 16000]}

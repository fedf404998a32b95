"""Our int8 files in two independent consumers (TFLite Micro, Arm Vela) and the migration command.

The consumer tests run when ``pip install -e .[consumers]`` installed ``tflite-micro`` and
``ethos-u-vela``; they are skipped otherwise. The migration-command test always runs.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import quant_consumers as qc  # noqa: E402

TINY = REPO / "examples" / "tiny_cnn.onnx"


@pytest.fixture(scope="module")
def int8_files(tmp_path_factory) -> dict[str, bytes]:
    """full_integer_quant bytes of the tiny CNN and the onnx.helper conv net."""
    out = {}
    for name in ("tiny_cnn", "small_convnet"):
        source, calibration, options = qc.model_source(name, REPO / ".corpus")
        out[name] = qc.full_integer_file(source, calibration, tmp_path_factory.mktemp(name), **options)
    return out


@pytest.mark.parametrize("name", ["tiny_cnn", "small_convnet"])
def test_tflm_matches_litert(int8_files, name):
    pytest.importorskip("tflite_micro")
    data = int8_files[name]
    for seed in (0, 1):
        inputs = qc.random_int8_inputs(data, seed)
        ref = qc.run_litert(data, inputs)
        got = qc.run_tflm(data, inputs, arena_bytes=4 * 1024 * 1024)
        assert [g.shape for g in got] == [r.shape for r in ref] and all(g.dtype == np.int8 for g in got)
        # TFLM's and LiteRT's integer kernels round MEAN / requantization slightly differently.
        assert qc.max_step_difference(got, ref) <= 1


@pytest.mark.parametrize("name", ["tiny_cnn", "small_convnet"])
def test_vela_places_every_op_on_the_npu(int8_files, name, tmp_path):
    pytest.importorskip("ethosu.vela")
    if shutil.which("vela") is None:
        pytest.skip("the vela command is not on PATH")
    result = qc.run_vela(int8_files[name], tmp_path)
    assert result["ok"], result
    assert result["cpu_ops"] == 0 and result["cpu_op_types"] == [] and result["npu_ops"] > 0, result


def test_small_convnet_has_the_standard_layers(int8_files):
    ops = qc.op_types(int8_files["small_convnet"])
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION",
               "FULLY_CONNECTED", "SOFTMAX", "LOGISTIC", "MUL"):
        assert op in ops, (op, ops)


def test_migration_command(tmp_path):
    """The onnx2tf-style command works unchanged on examples/tiny_cnn.onnx."""
    cmd = [sys.executable, "-m", "onnx2litert", "-i", str(TINY), "-o", str(tmp_path), "--tflite_backend",
           "flatbuffer_direct", "-odrqt", "-oiqt", "--eval_with_onnx", "--eval_target_tflite", "full_integer_quant",
           "--eval_compare_mode", "dequant", "--report_op_coverage"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for variant in ("float32", "float16", "dynamic_range_quant", "integer_quant", "full_integer_quant",
                    "integer_quant_with_int16_act", "full_integer_quant_with_int16_act"):
        assert (tmp_path / f"tiny_cnn_{variant}.tflite").is_file(), variant
    acc = json.loads((tmp_path / "tiny_cnn_accuracy_report.json").read_text())
    assert acc["target"] == "full_integer_quant" and acc["compare_mode"] == "dequant"
    assert acc["quantized_io"]["inputs"] == ["input"] and acc["overall"]["cosine"] >= 0.99
    cov = json.loads((tmp_path / "tiny_cnn_op_coverage_report.json").read_text())
    assert cov["summary"]["conversion_ok"]

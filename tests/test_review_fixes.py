"""Regression tests for review findings: accuracy verdicts with NaN/inf, ONNX Runtime errors,
float16 overflow, -cind per-channel statistics, option implications and early validation."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import onnx2litert
from onnx2litert.cli import build_parser, options_from_args
from onnx2litert.convert import _write_json
from onnx2litert.errors import ConversionError, Reason
from onnx2litert.evaluate import accuracy
from onnx2litert.evaluate.accuracy import aggregate, _metrics, compare_outputs, evaluate_against_onnx, io_details
from onnx2litert.evaluate.runtime import OnnxReference, run_onnx, run_tflite
from onnx2litert.options import DEFAULT_SPLIT_MAX_BYTES, ConversionOptions
from onnx2litert.quantize.calibrate import collect_ranges, load_samples
from onnx2litert.quantize.float16 import float16_variant, overflows_float16
from tests.helpers import make_model

REPO = Path(__file__).resolve().parents[1]


def _unary(op: str, shape: tuple[int, ...] = (2, 3)) -> onnx.ModelProto:
    return make_model([helper.make_node(op, ["x"], ["y"])], [("x", np.float32, list(shape))],
                      [("y", np.float32, list(shape))])


def _strict_json(text: str) -> object:
    """json.loads that rejects the NaN/Infinity extensions Python would otherwise accept."""
    def reject(token: str) -> None:
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=reject)


def _conv_model(channels: int = 3) -> onnx.ModelProto:
    w = np.random.default_rng(0).standard_normal((4, channels, 1, 1)).astype(np.float32)
    return make_model([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])],
                      [("x", np.float32, [1, channels, 4, 4])], [("y", np.float32, [1, 4, 4, 4])], {"w": w})


# 1. NaN/inf in the accuracy metrics -----------------------------------------------------------

def test_nonfinite_output_fails_in_every_sample_order():
    ref = {"y": np.array([1.0, 2.0, 3.0], np.float32)}
    good = compare_outputs(ref, {"y": np.array([1.0, 2.0, 3.0], np.float32)})
    bad = compare_outputs(ref, {"y": np.array([1.0, np.nan, 3.0], np.float32)})
    assert bad["y"]["nonfinite"] and bad["y"]["cosine"] == -1.0 and bad["y"]["max_abs"] == math.inf
    for order in ([good, bad], [bad, good]):
        per_output, overall = aggregate(order)
        assert overall["cosine"] == -1.0 and overall["max_abs"] == math.inf and overall["nonfinite"]
        # a threshold of -1 would accept cosine -1: the flag alone must fail the verdict
        assert not accuracy.passes(per_output, overall, -1.0, None)
    per_output, overall = aggregate([good])
    assert accuracy.passes(per_output, overall, 0.999, None)


@pytest.mark.parametrize("got, flagged", [
    ([np.inf, 2.0], True),           # inf where the reference is finite
    ([np.nan, 2.0], False),          # the reference's NaN reproduced
    ([1.0, 2.0], True),              # the reference's NaN lost
])
def test_nonfinite_reference_values(got: list[float], flagged: bool):
    m = _metrics(np.array([np.nan, 2.0]), np.array(got))
    assert m["nonfinite"] is flagged
    if not flagged:
        assert m["cosine"] == pytest.approx(1.0) and m["max_abs"] == 0.0
    assert not any(isinstance(v, float) and math.isnan(v) for v in m.values())


def test_nan_outputs_fail_evaluation_and_report_is_strict_json(tmp_path: Path):
    # The "converted" model computes Sqrt (NaN for negative inputs) where the reference is Relu.
    tflite = onnx2litert.convert(_unary("Sqrt"), output_float16=False).artifacts["float32"]
    report = evaluate_against_onnx(_unary("Relu").SerializeToString(), tflite, [("x", (2, 3), np.float32)],
                                   num_samples=2, cosine_threshold=-1.0)
    assert report["pass"] is False and report["overall"]["nonfinite"]
    assert report["overall"]["cosine"] == -1.0
    data = _strict_json(Path(_write_json(tmp_path, "acc.json", report)).read_text())
    assert data["overall"]["max_abs"] is None and data["overall"]["cosine"] == -1.0 and data["pass"] is False


def test_empty_overall_is_written_as_null(tmp_path: Path):
    per_output, overall = aggregate([{"y": {"missing": True}}])
    assert math.isnan(overall["cosine"])
    data = _strict_json(Path(_write_json(tmp_path, "r.json", {"overall": overall, "a": [np.float32(np.inf)]})
                             ).read_text())
    assert data["overall"]["cosine"] is None and data["a"] == [None]


# 2. ONNX Runtime errors, session reuse --------------------------------------------------------

def test_onnx_runtime_load_error_is_invalid_model():
    model = _unary("Relu")
    model.ir_version = 99  # beyond what ONNX Runtime supports
    with pytest.raises(ConversionError) as info:
        run_onnx(model.SerializeToString(), {"x": np.zeros((2, 3), np.float32)})
    assert info.value.reason == Reason.INVALID_MODEL
    assert "ONNX Runtime cannot run the reference model" in info.value.issues[0].message


def test_onnx_runtime_run_error_is_invalid_model():
    ref = OnnxReference(_unary("Relu").SerializeToString())
    with pytest.raises(ConversionError) as info:
        ref.run({"x": np.zeros((5, 5), np.float32)})  # wrong shape: ORT refuses at run time
    assert info.value.reason == Reason.INVALID_MODEL


def test_evaluation_builds_each_runtime_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    created = []

    class Counting(OnnxReference):
        def __init__(self, model):
            created.append(model)
            super().__init__(model)

    monkeypatch.setattr(accuracy, "OnnxReference", Counting)
    result = onnx2litert.convert(_unary("Relu"), tmp_path, output_float16=False)
    report = evaluate_against_onnx(_unary("Relu").SerializeToString(), result.paths["float32"],
                                   [("x", (2, 3), np.float32)], num_samples=3)
    assert report["pass"] and len(created) == 1
    ins, outs = io_details(result.paths["float32"])  # from a path: no read of the whole file
    assert set(ins) == {"x"} and set(outs) == {"y"}


# 3. float16 overflow --------------------------------------------------------------------------

def test_float16_keeps_constants_beyond_its_range():
    rng = np.random.default_rng(1)
    big = rng.standard_normal((4, 4)).astype(np.float32)
    big[0, 0] = 1e5  # rounds to inf in float16
    small = rng.standard_normal((4, 4)).astype(np.float32)
    model = make_model([helper.make_node("Mul", ["x", "big"], ["m"]), helper.make_node("Add", ["m", "small"], ["y"])],
                       [("x", np.float32, [4, 4])], [("y", np.float32, [4, 4])], {"big": big, "small": small})
    result = onnx2litert.convert(model)
    assert any("1 constants stay float32 in the float16 file" in w for w in result.warnings), result.warnings
    x = rng.standard_normal((4, 4)).astype(np.float32)
    x[0, 0] = 0.0  # 0 * inf would be NaN
    ref = run_onnx(model.SerializeToString(), {"x": x})["y"]
    got = run_tflite(result.artifacts["float16"], {"x": x})["y"]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=1e-2, atol=1e-2)  # only `small` is rounded to float16


def test_overflow_check_is_exact():
    assert not overflows_float16(np.array([65504.0, 65519.0, -65519.0, np.inf, np.nan], np.float32))
    assert overflows_float16(np.array([1.0, 65520.0], np.float32))
    assert overflows_float16(np.array([-np.inf, -1e9], np.float32))


def test_float16_variant_lists_kept_constants():
    from onnx2litert.frontend import prepare
    from onnx2litert.lower import lower_graph

    big = np.full((4, 4), 7e4, np.float32)
    model = make_model([helper.make_node("Mul", ["x", "big"], ["y"])], [("x", np.float32, [4, 4])],
                       [("y", np.float32, [4, 4])], {"big": big})
    opts = ConversionOptions()
    ir = lower_graph(prepare(model, opts), opts).model
    fp16, kept = float16_variant(ir)
    assert len(kept) == 1
    assert not any(op.opcode == "DEQUANTIZE" for op in fp16.main.operators)


# 4. calibration: per-channel MEAN/STD, npz decode errors, progress ----------------------------

@pytest.mark.parametrize("mean, std", [([0.1, 0.2, 0.3], [1.0, 2.0, 4.0]),
                                       ([[[[0.1, 0.2, 0.3]]]], [[[[1.0, 2.0, 4.0]]]])])  # onnx2tf's NHWC form
def test_cind_per_channel_stats_on_nchw_data(tmp_path: Path, mean: list, std: list):
    data = np.random.default_rng(2).standard_normal((4, 3, 3, 3)).astype(np.float32)  # W == C: no accident
    np.save(tmp_path / "x.npy", data)
    samples, _ = load_samples([("x", (1, 3, 3, 3), np.float32)],
                              custom_inputs=[("x", str(tmp_path / "x.npy"), mean, std)])
    got = np.concatenate([s["x"] for s in samples])
    want = (data - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_cind_per_channel_stats_on_channels_last_data(tmp_path: Path):
    data = np.random.default_rng(3).standard_normal((2, 2, 2, 3)).astype(np.float32)  # onnx2tf-style NHWC
    np.save(tmp_path / "x.npy", data)
    samples, _ = load_samples([("x", (1, 3, 2, 2), np.float32)],
                              custom_inputs=[("x", str(tmp_path / "x.npy"), [1.0, 2.0, 3.0], None)],
                              channels_last={"x": (0, 2, 3, 1)})
    want = np.transpose(data - np.array([1.0, 2.0, 3.0]), (0, 3, 1, 2))
    np.testing.assert_allclose(np.concatenate([s["x"] for s in samples]), want, rtol=1e-6)


@pytest.mark.parametrize("mean, std", [([0.5, 0.5], None), (None, [[1.0, 2.0, 3.0, 4.0, 5.0]]), (0.0, 0.0)])
def test_cind_mismatched_stats_are_invalid_options(tmp_path: Path, mean: object, std: object):
    np.save(tmp_path / "x.npy", np.zeros((4, 3, 2, 2), np.float32))
    with pytest.raises(ConversionError) as info:
        load_samples([("x", (1, 3, 2, 2), np.float32)], custom_inputs=[("x", str(tmp_path / "x.npy"), mean, std)])
    assert info.value.reason == Reason.INVALID_OPTION


def test_npz_member_decode_error_is_invalid_option(tmp_path: Path):
    path = tmp_path / "calib.npz"
    np.savez(path, x=np.array([{"not": "numbers"}], dtype=object))  # needs pickle to decode
    with pytest.raises(ConversionError) as info:
        load_samples([("x", (1, 3, 2, 2), np.float32)], calibration_data=str(path))
    assert info.value.reason == Reason.INVALID_OPTION


@pytest.mark.filterwarnings("ignore:no calibration data given")
def test_calibration_progress_only_when_asked(capfd: pytest.CaptureFixture):
    model = _conv_model()
    opts = dict(output_integer_quantized_tflite=True, output_float16=False, calibration_num_samples=2)
    onnx2litert.convert(model, **opts)
    assert "calibration [" not in capfd.readouterr().err
    onnx2litert.convert(model, show_progress=True, **opts)
    assert "calibration [" in capfd.readouterr().err


def test_collect_ranges_is_quiet_by_default(capfd: pytest.CaptureFixture):
    from onnx2litert.export import export_model
    from onnx2litert.frontend import prepare
    from onnx2litert.lower import lower_graph

    opts = ConversionOptions()
    lowered = lower_graph(prepare(_unary("Relu"), opts), opts)
    collect_ranges(lowered.model, export_model(lowered.model), [{"x": np.ones((2, 3), np.float32)}])
    assert capfd.readouterr().err == ""


# 5. options: implications, early validation ---------------------------------------------------

def test_implications_hold_in_the_api():
    assert ConversionOptions(eval_fail_on_threshold=True).eval_with_onnx
    assert ConversionOptions(eval_split_models="onnx").auto_split_tflite_by_size
    assert ConversionOptions().tflite_split_max_bytes == DEFAULT_SPLIT_MAX_BYTES
    raised = ConversionOptions(tflite_split_target_bytes=2 * DEFAULT_SPLIT_MAX_BYTES)
    assert raised.tflite_split_max_bytes == 2 * DEFAULT_SPLIT_MAX_BYTES
    with pytest.raises(ConversionError):  # an explicit max is never raised, even when it equals the default
        ConversionOptions(tflite_split_target_bytes=2 * DEFAULT_SPLIT_MAX_BYTES,
                          tflite_split_max_bytes=DEFAULT_SPLIT_MAX_BYTES)


def test_cli_and_api_build_the_same_split_sizes():
    def cli(*argv: str) -> ConversionOptions:
        return options_from_args(build_parser().parse_args(["-i", "m.onnx", *argv]))

    assert cli("-asms", "2GB").tflite_split_max_bytes == ConversionOptions(
        tflite_split_target_bytes=2 << 30).tflite_split_max_bytes == 2 << 30
    assert cli("-asms", "1MB", "--tflite_split_max_bytes", "2MB").tflite_split_max_bytes == 2 << 20
    assert cli().tflite_split_max_bytes == ConversionOptions().tflite_split_max_bytes
    assert cli("-efot").eval_with_onnx and cli("--eval_split_models").auto_split_tflite_by_size


@pytest.mark.parametrize("kwargs", [
    {"eval_with_onnx": True, "eval_target_tflite": "float16", "output_float16": False},
    {"eval_fail_on_threshold": True, "eval_target_tflite": "dynamic_range_quant"},
    {"eval_with_onnx": True, "eval_target_tflite": "full_integer_quant"},
    {"eval_cosine_threshold": float("nan")},
    {"eval_cosine_threshold": 1.5},
    {"eval_cosine_threshold": -1.01},
    {"eval_max_abs_threshold": float("nan")},
    {"calibration_data": "no/such/calib.npz"},
    {"custom_input_op_name_np_data_path": [("x", "no/such/x.npy", None, None)]},
    {"extra": ()},  # removed: it was never read
])
def test_invalid_options_fail_before_writing(tmp_path: Path, kwargs: dict):
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as info:
        onnx2litert.convert(_unary("Relu"), out, **kwargs)
    assert info.value.reason == Reason.INVALID_OPTION
    assert not out.exists()


@pytest.mark.parametrize("kwargs", [
    {"eval_with_onnx": True, "eval_target_tflite": "dynamic_range_quant",
     "output_dynamic_range_quantized_tflite": True},
    {"eval_target_tflite": "float16", "output_float16": False},  # not evaluated: nothing to check
    {"eval_cosine_threshold": -1.0}, {"eval_cosine_threshold": 1.0},
])
def test_valid_option_combinations(kwargs: dict):
    ConversionOptions.from_kwargs(**kwargs)


def test_keep_names_string_is_one_name():
    opts = ConversionOptions.from_kwargs(keep_ncw_or_nchw_or_ncdhw_input_names="input")
    assert opts.keep_ncw_or_nchw_or_ncdhw_input_names == ("input",)
    opts = ConversionOptions.from_kwargs(keep_ncw_or_nchw_or_ncdhw_input_names=["a", "b"])
    assert opts.keep_ncw_or_nchw_or_ncdhw_input_names == ("a", "b")


# 6. documentation -----------------------------------------------------------------------------

def test_docs_state_where_bytes_and_option_names_are():
    doc = onnx2litert.convert.__doc__
    assert "always in ``result.artifacts``" not in doc and "result.paths" in doc
    readme = (REPO / "README.md").read_text()
    for text in ("`optimize=False`", "`dynamic_shapes=False`", "`output_float16`"):
        assert text in readme, text

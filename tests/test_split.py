"""Size-based splitting: plan, manifest, chained runs, split evaluation, export past 2 GB."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from onnx2litert.split import (export_model_auto, external_buffer_count, parse_byte_size, plan_split,
                               run_split_models)
from tests.helpers import expect_failure, make_model, random_inputs

C = 48  # 48x48x3x3 float32 filters: ~83 KB each
TARGET, MAX = 100_000, 120_000
ACCURACY_KEYS = {"target", "compare_mode", "seed", "num_samples", "inputs", "thresholds", "per_output",
                 "overall", "pass"}


def _conv_net(channels: int = C, seed: int = 0) -> onnx.ModelProto:
    """Conv stack with a residual Add and an intermediate graph output (~270 KB of weights)."""
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    c = channels
    inits = {"W1": w(c, 8, 3, 3), "B1": w(c), "W2": w(c, c, 3, 3), "B2": w(c), "W3": w(c, c, 3, 3),
             "B3": w(c), "W4": w(c, c, 3, 3), "B4": w(c), "G": w(c, 10), "GB": w(10)}
    pads = [1, 1, 1, 1]
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=pads),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "W2", "B2"], ["c2"], pads=pads),
             helper.make_node("Relu", ["c2"], ["mid"]),
             helper.make_node("Conv", ["mid", "W3", "B3"], ["c3"], pads=pads),
             helper.make_node("Add", ["c3", "r1"], ["a3"]),
             helper.make_node("Conv", ["a3", "W4", "B4"], ["c4"], pads=pads),
             helper.make_node("Relu", ["c4"], ["r4"]),
             helper.make_node("GlobalAveragePool", ["r4"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["f"]),
             helper.make_node("Gemm", ["f", "G", "GB"], ["y"])]
    return make_model(nodes, [("x", np.float32, [1, 8, 10, 10])], [("y", np.float32, None), ("mid", np.float32, None)],
                      inits)


def _assert_close(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> None:
    assert set(got) == set(expected)
    for name, ref in expected.items():
        out = got[name]
        assert out.shape == ref.shape and out.dtype == ref.dtype, name
        r, g = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
        cosine = float(r @ g / (np.linalg.norm(r) * np.linalg.norm(g)))
        assert cosine >= 0.99999, (name, cosine)
        bound = 1e-5 * max(1.0, float(np.abs(ref).max()))
        assert float(np.abs(r - g).max()) <= bound, name


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[onnx.ModelProto, Path, onnx2litert.ConversionResult]:
    model = _conv_net()
    folder = tmp_path_factory.mktemp("split")
    path = folder / "net.onnx"
    onnx.save(model, str(path))
    out = folder / "out"
    result = onnx2litert.convert(path, out, auto_split_tflite_by_size=True, tflite_split_target_bytes=TARGET,
                                 tflite_split_max_bytes=MAX, eval_split_models="onnx", eval_num_samples=2)
    return model, out, result


def test_parts_written_and_within_max(split_run) -> None:
    _, out, result = split_run
    parts = sorted(p.name for p in out.glob("net_0*.tflite"))
    assert len(parts) >= 3
    assert parts == [f"net_{i:04d}.tflite" for i in range(1, len(parts) + 1)]
    assert list(result.split_parts) == parts
    for name in parts:
        size = (out / name).stat().st_size
        assert size <= MAX, (name, size)
        assert (out / name).read_bytes() == result.split_parts[name]
    # the unsplit variants are still produced
    assert (out / "net_float32.tflite").exists() and (out / "net_float16.tflite").exists()


def test_parts_chain_to_onnx_outputs(split_run) -> None:
    model, out, result = split_run
    for seed in (0, 1):
        feeds = random_inputs(model, seed)
        expected = run_onnx(model.SerializeToString(), feeds)
        _assert_close(expected, run_split_models(out / "net_split_manifest.json", feeds))
        # the manifest dict plus in-memory parts runs the same way, on both CPU paths
        got = run_split_models(result.reports["split_manifest"], feeds, models=result.split_parts,
                               use_default_delegates=False)
        _assert_close(expected, got)


def test_each_part_is_a_complete_model(split_run) -> None:
    model, out, _ = split_run
    manifest = json.loads((out / "net_split_manifest.json").read_text())
    feeds = random_inputs(model, 0)
    values = dict(feeds)
    for part in manifest["parts"]:
        outs = run_tflite(out / part["file"], {i["name"]: values[i["name"]] for i in part["inputs"]})
        assert set(outs) == {o["name"] for o in part["outputs"]}
        for o in part["outputs"]:
            assert list(outs[o["name"]].shape) == o["shape"] and outs[o["name"]].dtype.name == o["dtype"]
        values.update(outs)


def test_plan_fields(split_run) -> None:
    _, out, result = split_run
    plan = json.loads((out / "net_split_plan.json").read_text())
    assert plan == json.loads(json.dumps(result.reports["split_plan"]))
    assert plan["format"] == "onnx2litert_split_plan" and plan["split_required"] is True
    assert plan["target_bytes"] == TARGET and plan["max_bytes"] == MAX
    parts = plan["partitions"]
    assert plan["num_partitions"] == len(parts) == len(result.split_parts)
    # contiguous op ranges covering every op
    assert parts[0]["op_range"][0] == 0 and parts[-1]["op_range"][1] == plan["num_ops"]
    for a, b in zip(parts, parts[1:]):
        assert a["op_range"][1] == b["op_range"][0]
    for p in parts:
        assert p["num_ops"] == p["op_range"][1] - p["op_range"][0] == p["op_end"] - p["op_start"] + 1
        assert p["actual_bytes"] <= MAX and p["estimated_bytes"] >= p["constant_bytes"] > 0
        assert p["file"] and p["inputs"] and p["outputs"]
    cuts = plan["cut_points"]
    assert [c["index"] for c in cuts] == list(range(1, plan["num_ops"]))
    chosen = [c["index"] for c in cuts if c["chosen"]]
    assert chosen == [p["op_range"][0] for p in parts[1:]]
    for c in cuts:
        assert c["num_tensors"] == len(c["tensors"]) >= 1
        assert c["bytes"] == sum(t["bytes"] for t in c["tensors"])
    # the residual Add keeps two values alive across the cuts inside it
    assert max(c["num_tensors"] for c in cuts) >= 2
    edges = {(e["from"], e["to"]) for e in plan["edges"]}
    assert ("model_input", 1) in edges
    assert any(dst == "model_output" for _, dst in edges)
    assert any(isinstance(src, int) and isinstance(dst, int) and dst > src + 1 for src, dst in edges)  # skip edge


def test_manifest_fields(split_run) -> None:
    _, out, result = split_run
    manifest = json.loads((out / "net_split_manifest.json").read_text())
    assert manifest["format"] == "onnx2litert_split_manifest" and manifest["num_parts"] == len(manifest["parts"])
    (inp,) = manifest["inputs"]
    assert inp["name"] == "x" and inp["shape"] == [1, 8, 10, 10] and inp["dtype"] == "float32"
    assert inp["layout"] == result.io_layout["inputs"]["x"]["layout"]
    assert [o["name"] for o in manifest["outputs"]] == ["y", "mid"]
    produced: dict[str, int] = {}
    for part in manifest["parts"]:
        assert (out / part["file"]).stat().st_size == part["bytes"]
        for i in part["inputs"]:
            assert {"name", "shape", "dtype", "layout", "perm_from_onnx", "source"} <= set(i)
            assert i["source"] == produced.get(i["name"], "model_input")
        for o in part["outputs"]:
            produced[o["name"]] = part["index"]
    first = manifest["parts"][0]["inputs"][0]
    assert first["name"] == "x" and first["perm_from_onnx"] == result.io_layout["inputs"]["x"]["perm_from_onnx"]
    assert first["onnx_shape"] == [1, 8, 10, 10]
    assert {o["name"]: o["part"] for o in manifest["outputs"]} == {n: produced[n] for n in ("y", "mid")}


def test_split_accuracy_report(split_run) -> None:
    _, out, result = split_run
    report = json.loads((out / "net_split_accuracy_report.json").read_text())
    assert ACCURACY_KEYS <= set(report)
    assert report["reference"] == "onnx" and report["target"] == "split_float32"
    assert report["num_samples"] == 2 and report["num_parts"] == len(result.split_parts)
    assert set(report["per_output"]) == {"y", "mid"}
    assert report["pass"] is True and report["overall"]["cosine"] >= 0.99999
    assert result.report_paths["split_accuracy"].endswith("net_split_accuracy_report.json")


def test_eval_against_unsplit_tflite_and_fail_on_threshold() -> None:
    model = _conv_net()
    result = onnx2litert.convert(model, auto_split_tflite_by_size=True, tflite_split_target_bytes=TARGET,
                                 tflite_split_max_bytes=MAX, eval_split_models="unsplit_tflite",
                                 output_float16=False)
    report = result.reports["split_accuracy"]
    assert report["reference"] == "unsplit_tflite" and report["pass"] is True
    assert report["overall"]["max_abs"] <= 1e-5
    exc = expect_failure(model, "accuracy_threshold_exceeded", auto_split_tflite_by_size=True,
                         tflite_split_target_bytes=TARGET, tflite_split_max_bytes=MAX, eval_split_models="onnx",
                         eval_max_abs_threshold=1e-30, eval_fail_on_threshold=True, output_float16=False)
    assert exc.report is not None and exc.report["pass"] is False


def test_single_op_over_max_is_split_impossible() -> None:
    # one 64x64x3x3 filter (147 KB) cannot fit a 120 KB part
    exc = expect_failure(_conv_net(channels=64), "split_impossible", auto_split_tflite_by_size=True,
                         tflite_split_target_bytes=TARGET, tflite_split_max_bytes=MAX)
    assert "CONV_2D" in str(exc)


def test_small_model_is_not_split(tmp_path: Path) -> None:
    result = onnx2litert.convert(_conv_net(channels=4), tmp_path, auto_split_tflite_by_size=True,
                                 eval_split_models="onnx")
    plan = result.reports["split_plan"]
    assert plan["split_required"] is False and plan["num_partitions"] == 1
    assert result.split_parts == {} and "split_manifest" not in result.reports
    assert (tmp_path / "model_split_plan.json").exists()
    assert not list(tmp_path.glob("model_0001.tflite"))


def test_planner_prefers_light_cuts() -> None:
    """With room for either, the cut carrying one value beats the cuts inside the residual."""
    from onnx2litert.convert import ConversionOptions
    from onnx2litert.frontend import prepare
    from onnx2litert.lower import lower_graph
    from onnx2litert.passes import run_passes

    opts = ConversionOptions()
    lowered = lower_graph(prepare(_conv_net(), opts), opts)
    run_passes(lowered.model, opts)
    plan = plan_split(lowered.model, 200_000, 250_000)
    cut_sizes = {c.index: c.num_tensors for c in plan.cuts}
    assert plan.chosen_cuts and all(cut_sizes[k] == min(cut_sizes.values()) for k in plan.chosen_cuts)


@pytest.mark.parametrize("kwargs", [
    {"tflite_split_target_bytes": 0},
    {"tflite_split_target_bytes": 10, "tflite_split_max_bytes": 5},
    {"eval_split_models": "tflite", "auto_split_tflite_by_size": True},
    {"eval_split_models": "tflite"},  # eval_split_models implies splitting; its value is still checked
])
def test_invalid_split_options(kwargs: dict) -> None:
    expect_failure(_conv_net(channels=4), "invalid_option", **kwargs)


def test_parse_byte_size() -> None:
    assert parse_byte_size("1GB") == 1 << 30
    assert parse_byte_size("5MB") == 5 << 20 and parse_byte_size("512kb") == 512 << 10
    assert parse_byte_size("123") == 123 and parse_byte_size(7) == 7
    with pytest.raises(ValueError):
        parse_byte_size("lots")


def test_external_buffers_load_and_match(tmp_path: Path) -> None:
    model = _conv_net(channels=8)
    inline = onnx2litert.convert(model).artifacts
    normal = inline["float32"]
    result = onnx2litert.convert(model, tmp_path, tflite_external_buffers_threshold_bytes=0)
    data = result.artifacts["float32"]
    assert external_buffer_count(data) >= 5 and external_buffer_count(normal) == 0
    from ai_edge_litert import schema_py_generated as S
    m = S.Model.GetRootAs(data, 0)
    for i in range(m.BuffersLength()):
        buf = m.Buffers(i)
        if buf.Offset() > 1:
            assert buf.Offset() % 64 == 0 and buf.DataLength() == 0
            assert buf.Offset() + buf.Size() <= len(data)
    feeds = random_inputs(model, 0)
    expected = run_onnx(model.SerializeToString(), feeds)
    from ai_edge_litert.interpreter import Interpreter
    Interpreter(model_path=str(tmp_path / "model_float32.tflite")).allocate_tensors()  # loads from a file too
    for delegates in (True, False):
        _assert_close(expected, run_tflite(data, feeds, use_default_delegates=delegates))
        # float16 weights: same results as the same variant with inline buffers
        got16 = run_tflite(result.artifacts["float16"], feeds, use_default_delegates=delegates)
        ref16 = run_tflite(inline["float16"], feeds, use_default_delegates=delegates)
        for name, ref in ref16.items():
            np.testing.assert_array_equal(got16[name], ref)


def test_export_auto_threshold_and_split_parts_with_external_buffers() -> None:
    model = _conv_net()
    result = onnx2litert.convert(model, auto_split_tflite_by_size=True, tflite_split_target_bytes=TARGET,
                                 tflite_split_max_bytes=MAX, tflite_external_buffers_threshold_bytes=0,
                                 output_float16=False)
    assert all(external_buffer_count(d) > 0 for d in result.split_parts.values())
    feeds = random_inputs(model, 0)
    _assert_close(run_onnx(model.SerializeToString(), feeds),
                  run_split_models(result.reports["split_manifest"], feeds, models=result.split_parts))


def test_export_model_auto_keeps_small_models_inline() -> None:
    from onnx2litert.ir import Model, Operator, Subgraph, Tensor
    x = Tensor("x", (2,), np.float32)
    c = Tensor("c", (2,), np.float32, data=np.array([1.0, 2.0], np.float32))
    y = Tensor("y", (2,), np.float32)
    ir = Model([Subgraph([x], [y], [Operator("ADD", [x, c], [y])])], signature_inputs=["x"], signature_outputs=["y"])
    assert external_buffer_count(export_model_auto(ir)) == 0
    assert external_buffer_count(export_model_auto(ir, external_threshold=4)) == 1
    got = run_tflite(export_model_auto(ir, external_threshold=4), {"x": np.array([3.0, 4.0], np.float32)})
    np.testing.assert_array_equal(got["y"], np.array([4.0, 6.0], np.float32))


def test_underestimated_parts_are_replanned_then_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the table allowances zeroed the estimate is too low: re-planning shrinks the
    target, and when even one conv per part is above the max the error is split_impossible."""
    from onnx2litert.split import planner

    for name in ("MODEL_OVERHEAD", "TENSOR_OVERHEAD", "OPERATOR_OVERHEAD"):
        monkeypatch.setattr(planner, name, 0)
    model = _conv_net()
    ok = onnx2litert.convert(model, auto_split_tflite_by_size=True, tflite_split_target_bytes=170_000,
                             tflite_split_max_bytes=170_000, output_float16=False)
    assert all(len(d) <= 170_000 for d in ok.split_parts.values())
    assert ok.reports["split_plan"]["planning_attempts"] == 2
    assert ok.reports["split_plan"]["effective_target_bytes"] < 170_000
    exc = expect_failure(model, "split_impossible", auto_split_tflite_by_size=True,
                         tflite_split_target_bytes=84_000, tflite_split_max_bytes=84_000, output_float16=False)
    assert "planning attempts" in str(exc)


def test_split_is_deterministic(split_run) -> None:
    model, _, first = split_run
    again = onnx2litert.convert(model, auto_split_tflite_by_size=True, tflite_split_target_bytes=TARGET,
                                tflite_split_max_bytes=MAX, output_float16=False)
    assert list(again.split_parts.values()) == list(first.split_parts.values())

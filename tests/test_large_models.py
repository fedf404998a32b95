"""Large-model machinery on small models: memory-mapped external data, streamed export,
files kept out of memory, deferred float16 weights. (The real ~2.5 GB run is
``bench/big_model.py``.)"""
from __future__ import annotations

import importlib
import mmap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnx2litert
from onnx2litert.evaluate.runtime import run_onnx, run_tflite
from onnx2litert.export import export_model
from onnx2litert.export import flatbuffer as fb
from onnx2litert.quantize import to_float16_weights
from onnx2litert.frontend import load as load_module
from onnx2litert.frontend.load import load_graph
from onnx2litert.ir import Model, Operator, Subgraph, Tensor
from onnx2litert.export import large as large_export
from onnx2litert.split import pipeline
from onnx2litert.export.large import (export_model_auto, export_with_external_buffers, external_buffer_count,
                                            prepare_export)
from tests.helpers import random_inputs

IN, HID, OUT = 8, 16, 4
# The module (the package re-exports the function under the same name).
convert_module = importlib.import_module("onnx2litert.convert")


def _mlp(seed: int = 0) -> onnx.ModelProto:
    """Gemm(transB=1) + Relu + MatMul + Add: weights of several sizes and layouts."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((HID, IN)).astype(np.float32)
    b1 = rng.standard_normal(HID).astype(np.float32)
    w2 = rng.standard_normal((HID, OUT)).astype(np.float32)
    b2 = rng.standard_normal(OUT).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["m"]),
             helper.make_node("Add", ["m", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, IN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, OUT])],
                              [onnx.numpy_helper.from_array(a, n) for n, a in
                               (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what the installed ONNX Runtime reads
    return model


def _save_external(model: onnx.ModelProto, folder: Path) -> Path:
    path = folder / "mlp.onnx"
    model = onnx.ModelProto.FromString(model.SerializeToString())  # onnx.save rewrites it in place
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="mlp.data", size_threshold=0)
    return path


def _close(got: dict, ref: dict) -> None:
    for name, r in ref.items():
        assert np.abs(got[name] - r).max() <= 1e-5 * max(1.0, float(np.abs(r).max()))


def _mapped(a: np.ndarray) -> bool:
    while a is not None and not isinstance(a, mmap.mmap):
        a = getattr(a, "base", None) if not isinstance(a, (bytes, memoryview)) else (
            a.obj if isinstance(a, memoryview) else None)
    return isinstance(a, mmap.mmap)


@pytest.fixture
def map_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Map every external initializer, however small."""
    monkeypatch.setattr(load_module, "MAP_MIN_BYTES", 0)


# --- external data ------------------------------------------------------------------------------

@pytest.mark.parametrize("mapped", [True, False])
def test_external_data_model_converts_and_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  mapped: bool) -> None:
    monkeypatch.setattr(load_module, "MAP_MIN_BYTES", 0 if mapped else 1 << 40)
    model = _mlp()
    path = _save_external(model, tmp_path)
    _, constants = load_graph(path)
    assert all(_mapped(v) == mapped for v in constants.values())
    feeds = random_inputs(model, 0)
    result = onnx2litert.convert(path)
    _close(run_tflite(result.artifacts["float32"], feeds), run_onnx(str(path), feeds))
    # Same file as from the inline model.
    assert result.artifacts["float32"] == onnx2litert.convert(model).artifacts["float32"]


def test_mapped_initializers_are_read_only_and_releasable(tmp_path: Path, map_everything: None) -> None:
    path = _save_external(_mlp(), tmp_path)
    before = (tmp_path / "mlp.data").read_bytes()
    _, constants = load_graph(path)
    w1 = constants["w1"]
    assert not w1.flags.writeable  # like arrays decoded from inline raw_data
    with pytest.raises(ValueError):
        w1[...] = 0.0
    copy = w1.copy()
    fb.release_pages(w1)  # drops resident pages only: the values are read back from the file
    np.testing.assert_array_equal(w1, copy)
    fb.release_pages(copy)  # an ordinary array: nothing happens
    assert (tmp_path / "mlp.data").read_bytes() == before


def test_truncated_external_data_is_invalid(tmp_path: Path, map_everything: None) -> None:
    path = _save_external(_mlp(), tmp_path)
    data = tmp_path / "mlp.data"
    data.write_bytes(data.read_bytes()[:-8])
    with pytest.raises(onnx2litert.ConversionError) as info:
        onnx2litert.convert(path)
    assert "invalid_model" in str(info.value) and "truncated" in str(info.value)


# --- streamed export -----------------------------------------------------------------------------

def _ir() -> Model:
    """A small IR model with shared, distinct and small constants."""
    rng = np.random.default_rng(1)
    x = Tensor("x", (2, 64), np.float32)
    w = rng.standard_normal((32, 64)).astype(np.float32)
    w_a = Tensor("w_a", w.shape, np.float32, data=w)
    w_b = Tensor("w_b", w.shape, np.float32, data=w.copy())  # equal bytes: stored once
    bias = Tensor("bias", (32,), np.float32, data=rng.standard_normal(32).astype(np.float32))
    h1, h2, y = (Tensor(n, (2, 32), np.float32) for n in ("h1", "h2", "y"))
    ops = [Operator("FULLY_CONNECTED", [x, w_a, bias], [h1], {"fusedActivationFunction": "NONE"}),
           Operator("FULLY_CONNECTED", [x, w_b, None], [h2], {"fusedActivationFunction": "NONE"}),
           Operator("ADD", [h1, h2], [y], {"fusedActivationFunction": "NONE"})]
    return Model([Subgraph([x], [y], ops)], metadata={"note": b"hello"}, signature_inputs=["x"],
                 signature_outputs=["y"])


@pytest.mark.parametrize("chunk", [None, 100])
@pytest.mark.parametrize("external", [False, True])
def test_streamed_file_matches_in_memory_bytes_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        external: bool, chunk: int | None) -> None:
    if chunk:
        monkeypatch.setattr(fb, "CHUNK_BYTES", chunk)  # many chunks per constant
    model = _ir()
    image = prepare_export(model, 0 if external else large_export.DEFAULT_EXTERNAL_THRESHOLD)
    path = Path(image.write_file(tmp_path / "m.tflite"))
    data = path.read_bytes()
    assert len(data) == image.size
    assert data == image.to_bytes() == (export_with_external_buffers(model) if external else export_model(model))
    assert external_buffer_count(data) == (2 if external else 0)  # the duplicate weight is stored once
    x = np.random.default_rng(2).standard_normal((2, 64)).astype(np.float32)
    w = model.main.operators[0].inputs[1].data
    ref = 2 * x @ w.T + model.main.operators[0].inputs[2].data
    for source in (data, str(path)):
        got = run_tflite(source, {"x": x})["y"]
        assert np.abs(got - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_inline_layout_puts_aligned_data_after_the_tables() -> None:
    data = export_model(_ir())
    m = fb.S.Model.GetRootAs(data, 0)
    metadata = {m.Metadata(i).Buffer() for i in range(m.MetadataLength())}
    spans, meta_starts = [], []
    for i in range(m.BuffersLength()):
        buf = m.Buffers(i)
        if buf.DataLength():
            start = buf._tab.Vector(buf._tab.Offset(4))
            assert start % 16 == 0
            (meta_starts if i in metadata else spans).append((start, buf.DataLength()))
    assert len(spans) == 2 and meta_starts  # weight and bias (the duplicate weight is shared)
    assert min(s for s, _ in spans) > max(meta_starts)[0]  # constants come after every table
    end = max(s + n for s, n in spans)
    assert end <= len(data) < end + 16


def test_export_is_deterministic() -> None:
    assert export_model(_ir()) == export_model(_ir())
    assert export_model_auto(_ir(), 0) == export_model_auto(_ir(), 0)


# --- deferred float16 ------------------------------------------------------------------------------

@pytest.mark.parametrize("external", [False, True])
def test_deferred_float16_export_is_byte_identical(monkeypatch: pytest.MonkeyPatch, external: bool) -> None:
    monkeypatch.setattr(fb, "CHUNK_BYTES", 96)
    model = _ir()
    # Two float32 weights that differ but round to the same float16 values: stored once in both.
    w = model.main.operators[1].inputs[1]
    w.data = w.data + np.float32(1e-7) * (np.abs(w.data) < 1e-3)
    threshold = 0 if external else large_export.DEFAULT_EXTERNAL_THRESHOLD
    eager = export_model_auto(to_float16_weights(model), threshold)
    deferred = export_model_auto(to_float16_weights(model, deferred=True), threshold)
    assert eager == deferred


# --- conversions with an output folder: big files stay on disk --------------------------------------

@pytest.fixture
def nothing_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat every file as large: streamed to the output folder, never kept as bytes."""
    monkeypatch.setattr(convert_module, "IN_MEMORY_LIMIT", 0)
    monkeypatch.setattr(pipeline, "IN_MEMORY_LIMIT", 0)


def test_large_files_are_only_on_disk_and_evaluated_from_there(tmp_path: Path, nothing_in_memory: None,
                                                               map_everything: None) -> None:
    model = _mlp()
    path = _save_external(model, tmp_path)
    reference = onnx2litert.convert(model).artifacts
    out = tmp_path / "out"
    result = onnx2litert.convert(path, out, eval_with_onnx=True, eval_target_tflite="float16")
    assert result.artifacts == {}
    assert set(result.paths) == {"float32", "float16"}
    for variant in ("float32", "float16"):
        assert Path(result.paths[variant]).read_bytes() == reference[variant]
    assert result.accuracy_passed


def test_split_parts_stream_to_files_and_evaluate(tmp_path: Path, nothing_in_memory: None) -> None:
    model = _mlp()
    opts = dict(auto_split_tflite_by_size=True, tflite_split_target_bytes=3000, tflite_split_max_bytes=6000,
                output_float16=False)
    in_memory = onnx2litert.convert(model, **opts)
    assert len(in_memory.split_parts) >= 2
    result = onnx2litert.convert(model, tmp_path, eval_split_models="onnx", **opts)
    assert result.split_parts == {}
    written = {Path(p).name: Path(p).read_bytes() for k, p in result.paths.items() if k.startswith("split_")}
    assert written == in_memory.split_parts
    assert result.reports["split_accuracy"]["pass"]
    assert [p["bytes"] for p in result.reports["split_manifest"]["parts"]] == [len(d) for d in written.values()]


def test_cli_summary_lists_streamed_files(tmp_path: Path, nothing_in_memory: None,
                                          capsys: pytest.CaptureFixture) -> None:
    from onnx2litert.cli import main

    model_path = tmp_path / "mlp.onnx"
    onnx.save(_mlp(), str(model_path))
    assert main(["-i", str(model_path), "-o", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "mlp_float32.tflite" in text and "mlp_float16.tflite" in text

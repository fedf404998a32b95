"""End-to-end tests of the command line (run as ``python -m onnx2litert`` in a subprocess)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx2litert.cli import build_parser, main
from onnx2litert.errors import Reason
from onnx2litert.evaluate import run_onnx, run_tflite
from onnx2litert.evaluate.runtime import read_layout
from tests.helpers import make_model

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "tiny_cnn.onnx"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter, as a user would."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "onnx2litert", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or REPO, env=env, timeout=300)


def run_in_process(capfd: pytest.CaptureFixture, *args: object) -> subprocess.CompletedProcess:
    """Call ``main()`` directly (same behaviour, no interpreter start-up); output captured at fd level."""
    capfd.readouterr()
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(["onnx2litert", *map(str, args)], code, out, err)


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def assert_matches_onnx(onnx_path: Path, tflite_path: Path, feeds: dict[str, np.ndarray], tol: float = 1e-5) -> None:
    """LiteRT (fed ONNX-layout arrays) agrees with ONNX Runtime within the project's float bound."""
    expected = run_onnx(onnx_path, feeds)
    got = run_tflite(tflite_path, feeds)
    assert set(got) == set(expected)
    for name, ref in expected.items():
        assert got[name].shape == ref.shape, name
        bound = tol * max(1.0, float(np.abs(ref).max()))
        assert float(np.abs(got[name].astype(np.float64) - ref).max()) <= bound, name


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def relu_add(tmp_path: Path) -> Path:
    """y = Relu(x) + c, with a symbolic batch dim."""
    c = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    model = make_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "c"], ["y"])],
                       [("x", np.float32, ["batch", 3, 4])], [("y", np.float32, ["batch", 3, 4])], {"c": c})
    return save(model, tmp_path / "relu_add.onnx")


@pytest.fixture
def dynamic_seq(tmp_path: Path) -> Path:
    """A model whose input has a symbolic non-batch dim ('seq')."""
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, ["batch", "seq"])],
                       [("y", np.float32, ["batch", "seq"])])
    return save(model, tmp_path / "dynamic_seq.onnx")


@pytest.fixture
def conv_model(tmp_path: Path) -> Path:
    """A 1x1 Conv: its input is exposed channels-last unless kept with -k."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])],
                       [("x", np.float32, [1, 3, 5, 6])], [("y", np.float32, [1, 4, 5, 6])], {"w": w})
    return save(model, tmp_path / "conv.onnx")


def test_help_lists_groups_and_flags():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for group in ("input/output:", "shapes & layout:", "evaluation:", "quantization:", "splitting & large models:",
                  "custom ops:", "reports:", "misc:"):
        assert group in proc.stdout
    for flag in ("-i", "--input_onnx_file_path", "-o", "--output_folder_path", "-tb", "--tflite_backend",
                 "-roc", "--report_op_coverage", "-ewo", "--eval_with_onnx", "-ett", "--eval_target_tflite",
                 "-ecm", "--eval_compare_mode", "-ens", "--eval_num_samples", "-efot", "--eval_fail_on_threshold",
                 "-b", "--batch_size", "-ois", "--overwrite_input_shape", "-k", "-kat",
                 "--keep_ncw_or_nchw_or_ncdhw_input_names", "-v", "--verbose"):
        assert re.search(rf"(^|[\s,\[]){re.escape(flag)}([\s,\]]|$)", proc.stdout, re.M), flag
    for reason in Reason:
        assert reason.value in proc.stdout


def test_main_returns_exit_code_in_process(capsys: pytest.CaptureFixture):
    assert main(["--help"]) == 0
    assert "input/output" in capsys.readouterr().out
    assert main(["-i"]) == 2


def test_default_output_folder_is_saved_model(tmp_path: Path, relu_add: Path):
    proc = run_cli("-i", relu_add, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "saved_model" / "relu_add_float32.tflite").is_file()


def test_convert_writes_runnable_files(tmp_path: Path, relu_add: Path):
    out = tmp_path / "out"
    proc = run_cli("-i", relu_add, "-o", out)
    assert proc.returncode == 0, proc.stderr
    f32, f16 = out / "relu_add_float32.tflite", out / "relu_add_float16.tflite"
    assert f32.is_file() and f16.is_file()
    assert f"wrote {f32}" in proc.stdout and "ops: 2 (TRANSPOSE: 0)" in proc.stdout
    assert "time:" in proc.stdout
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 3, 4)).astype(np.float32)}
    assert_matches_onnx(relu_add, f32, feeds)
    assert_matches_onnx(relu_add, f16, feeds, tol=1e-3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_reports_json_fields(tmp_path: Path, relu_add: Path):
    out = tmp_path / "out"
    proc = run_cli("-i", relu_add, "-o", out, "-roc", "-ewo", "-ens", "2", "-ett", "float16")
    assert proc.returncode == 0, proc.stderr
    cov = json.loads((out / "relu_add_op_coverage_report.json").read_text())
    assert cov["schema"] == "onnx2litert.op_coverage/1"
    assert cov["summary"]["conversion_ok"] is True
    assert cov["summary"]["coverage_ratio"] == 1.0
    assert cov["issues"] == []
    assert {n["op_type"] for n in cov["nodes"]} == {"Relu", "Add"}
    assert cov["options"]["tflite_backend"] == "flatbuffer_direct"
    acc = json.loads((out / "relu_add_accuracy_report.json").read_text())
    assert acc["pass"] is True and acc["target"] == "float16" and acc["num_samples"] == 2
    assert set(acc["overall"]) >= {"max_abs", "mean_abs", "rmse", "cosine", "relative_l2"}
    assert acc["per_output"]["y"]["cosine"] > 0.999
    assert acc["inputs"] == [{"name": "x", "shape": [1, 3, 4], "dtype": "float32"}]
    assert "op coverage: 2/2 nodes (100%)" in proc.stdout
    assert "accuracy (float16 vs ONNX Runtime, 2 sample(s)): PASS" in proc.stdout


def test_example_model(tmp_path: Path):
    """The README's first command."""
    out = tmp_path / "out"
    proc = run_cli("-i", EXAMPLE, "-o", out, "--eval_with_onnx", "--report_op_coverage")
    assert proc.returncode == 0, proc.stderr
    acc = json.loads((out / "tiny_cnn_accuracy_report.json").read_text())
    assert acc["pass"] is True
    assert acc["overall"]["cosine"] >= 0.99999
    cov = json.loads((out / "tiny_cnn_op_coverage_report.json").read_text())
    assert cov["summary"]["coverage_ratio"] == 1.0
    feeds = {"input": np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)}
    assert_matches_onnx(EXAMPLE, out / "tiny_cnn_float32.tflite", feeds)
    assert_matches_onnx(EXAMPLE, out / "tiny_cnn_float16.tflite", feeds, tol=1e-2)


def test_example_file_is_reproducible(tmp_path: Path):
    """examples/tiny_cnn.onnx is exactly what examples/make_example.py builds."""
    target = tmp_path / "tiny_cnn.onnx"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_example.py"), "--output", str(target)],
                   check=True, capture_output=True)
    assert target.read_bytes() == EXAMPLE.read_bytes()
    assert EXAMPLE.stat().st_size < 200 * 1024
    model = onnx.load(str(EXAMPLE))
    assert model.ir_version == 10 and model.opset_import[0].version == 17
    ops = {n.op_type for n in model.graph.node}
    assert ops >= {"Conv", "BatchNormalization", "Relu", "Add", "MaxPool", "Clip", "GlobalAveragePool",
                   "Flatten", "Gemm", "Softmax"}


@pytest.mark.parametrize("args", [
    ["-ens", "abc"],
    ["-ens", "0"],
    ["-ecm", "bogus"],
    ["-tb", "keras"],
    ["-b", "-1"],
    ["-ois", "x1,2"],
    ["-ois", "x:1,a"],
    ["--no_such_flag"],
], ids=lambda a: " ".join(a))
def test_bad_flag_value_is_one_line_exit_2(tmp_path: Path, relu_add: Path, args: list[str],
                                          capfd: pytest.CaptureFixture):
    proc = run_in_process(capfd, "-i", relu_add, "-o", tmp_path / "out", *args)
    assert proc.returncode == 2, proc.stderr
    lines = stderr_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "invalid_option" in lines[0]
    assert not (tmp_path / "out").exists()


def test_bad_flag_value_in_subprocess(tmp_path: Path, relu_add: Path):
    proc = run_cli("-i", relu_add, "-o", tmp_path / "out", "-ens", "abc")
    assert proc.returncode == 2
    assert stderr_lines(proc) == [
        "onnx2litert: error: [invalid_option] argument -ens/--eval_num_samples: "
        "expected a positive integer, got 'abc' (see --help)"]


def test_missing_input_flag_exit_2(capfd: pytest.CaptureFixture):
    proc = run_in_process(capfd)
    assert proc.returncode == 2
    assert len(stderr_lines(proc)) == 1 and "-i/--input_onnx_file_path" in proc.stderr


def test_option_error_from_options_object(tmp_path: Path, relu_add: Path, capfd: pytest.CaptureFixture):
    """An option the parser accepts but the model rejects (unknown input name) is also exit 2."""
    proc = run_in_process(capfd, "-i", relu_add, "-o", tmp_path / "out", "-ois", "nope:1,3,4")
    assert proc.returncode == 2
    lines = stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("[invalid_option]") and "nope" in lines[0]


def test_missing_file_one_line(tmp_path: Path):
    out = tmp_path / "out"
    proc = run_cli("-i", tmp_path / "missing.onnx", "-o", out)
    assert proc.returncode == 1
    lines = stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("[invalid_model]") and "missing.onnx" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not list(out.glob("*.tflite")) if out.exists() else True


def test_non_onnx_file_one_line(tmp_path: Path):
    bogus = tmp_path / "notes.onnx"
    bogus.write_text("this is not a protobuf\n" * 10)
    out = tmp_path / "out"
    proc = run_cli("-i", bogus, "-o", out, "-roc")
    assert proc.returncode == 1
    lines = [ln for ln in stderr_lines(proc) if not ln.startswith("op coverage report:")]
    assert len(lines) == 1 and lines[0].startswith("[invalid_model]"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(out.glob("*.tflite")) if out.exists() else True


def test_verbose_shows_traceback(tmp_path: Path):
    proc = run_cli("-i", tmp_path / "missing.onnx", "-o", tmp_path / "out", "-v")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "[invalid_model]" in proc.stderr


def test_tf_converter_backend_not_installed(tmp_path: Path, relu_add: Path, capfd: pytest.CaptureFixture):
    proc = run_in_process(capfd, "-i", relu_add, "-o", tmp_path / "out", "-tb", "tf_converter")
    assert proc.returncode == 1
    lines = stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("[backend_not_installed]")
    assert not (tmp_path / "out").exists()


def test_unsupported_op_lists_issue_lines(tmp_path: Path):
    model = make_model([helper.make_node("Relu", ["x"], ["r"]),
                        helper.make_node("Foo", ["r"], ["y"], domain="com.example")],
                       [("x", np.float32, [2, 3])], [("y", np.float32, [2, 3])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    path = tmp_path / "foo.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "out"
    proc = run_cli("-i", path, "-o", out, "-roc")
    assert proc.returncode == 1
    match = re.search(r"^\[(\w+)\] Foo node '[^']*': ", proc.stderr, re.M)
    assert match and match.group(1) in {r.value for r in Reason}, proc.stderr
    assert not list(out.glob("*.tflite"))
    cov = json.loads((out / "foo_op_coverage_report.json").read_text())
    assert cov["summary"]["conversion_ok"] is False
    assert cov["issues"][0]["reason_code"] == match.group(1)


def test_efot_fails_on_threshold(tmp_path: Path, conv_model: Path, capfd: pytest.CaptureFixture):
    out = tmp_path / "out"
    # float16 weights cannot reach a max_abs of 1e-12: evaluation must fail.
    strict = ("-ett", "float16", "--eval_max_abs_threshold", "1e-12")
    proc = run_cli("-i", conv_model, "-o", out, "-efot", *strict)
    assert proc.returncode == 3, proc.stderr
    assert stderr_lines(proc)[0].startswith("[accuracy_threshold_exceeded]")
    assert json.loads((out / "conv_accuracy_report.json").read_text())["pass"] is False
    # Without -efot the verdict is reported but the exit status stays 0.
    proc = run_in_process(capfd, "-i", conv_model, "-o", out, "-ewo", *strict)
    assert proc.returncode == 0, proc.stderr
    assert "FAIL" in proc.stdout


def test_cosine_threshold_outside_its_range_is_a_usage_error(tmp_path: Path, relu_add: Path,
                                                              capfd: pytest.CaptureFixture):
    out = tmp_path / "out"
    proc = run_in_process(capfd, "-i", relu_add, "-o", out, "-efot", "--eval_cosine_threshold", "1.5")
    assert proc.returncode == 2, proc.stderr
    assert stderr_lines(proc)[0].startswith("[invalid_option] --eval_cosine_threshold")
    assert not out.exists()  # validated before anything is written


def _input_shape(tflite: Path) -> list[int]:
    from ai_edge_litert.interpreter import Interpreter

    return [int(d) for d in Interpreter(model_path=str(tflite)).get_input_details()[0]["shape"]]


def test_overwrite_input_shape_and_batch(tmp_path: Path, dynamic_seq: Path, relu_add: Path,
                                        capfd: pytest.CaptureFixture):
    proc = run_cli("-i", dynamic_seq, "-o", tmp_path / "a", "--no_dynamic_shapes")
    assert proc.returncode == 1
    assert stderr_lines(proc)[0].startswith("[dynamic_shape_unsupported]")
    assert "-ois x:" in proc.stderr

    proc = run_in_process(capfd, "-i", dynamic_seq, "-o", tmp_path / "b", "-ois", "x:2,7")
    assert proc.returncode == 0, proc.stderr
    f32 = tmp_path / "b" / "dynamic_seq_float32.tflite"
    assert _input_shape(f32) == [2, 7]
    assert_matches_onnx(dynamic_seq, f32, {"x": np.random.default_rng(0).standard_normal((2, 7)).astype(np.float32)})

    proc = run_in_process(capfd, "-i", relu_add, "-o", tmp_path / "c", "-b", "3")
    assert proc.returncode == 0, proc.stderr
    f32 = tmp_path / "c" / "relu_add_float32.tflite"
    assert _input_shape(f32) == [3, 3, 4]
    assert_matches_onnx(relu_add, f32, {"x": np.random.default_rng(0).standard_normal((3, 3, 4)).astype(np.float32)})


@pytest.mark.parametrize("keep", [[], ["-k", "x"], ["-kat", "x"], ["--keep_ncw_or_nchw_or_ncdhw_input_names", "x"],
                                  ["--keep_all_inputs_layout"]], ids=lambda k: " ".join(k) or "default")
def test_keep_input_layout(tmp_path: Path, conv_model: Path, keep: list[str], capfd: pytest.CaptureFixture):
    out = tmp_path / "out"
    # The default case runs as a user would; the flag spellings are checked in-process (faster).
    proc = run_in_process(capfd, "-i", conv_model, "-o", out, *keep) if keep else run_cli("-i", conv_model, "-o", out)
    assert proc.returncode == 0, proc.stderr
    f32 = out / "conv_float32.tflite"
    layout = read_layout(f32.read_bytes())["inputs"]["x"]
    if keep:
        assert layout["layout"] == "onnx" and _input_shape(f32) == [1, 3, 5, 6]
    else:
        assert layout["layout"] == "channels_last" and _input_shape(f32) == [1, 5, 6, 3]
        assert "channels-last inputs: x" in proc.stdout
    # run_tflite takes ONNX-layout arrays either way.
    assert_matches_onnx(conv_model, f32, {"x": np.random.default_rng(0).standard_normal((1, 3, 5, 6)).astype(np.float32)})


def test_keep_unknown_input_is_option_error(tmp_path: Path, conv_model: Path, capfd: pytest.CaptureFixture):
    proc = run_in_process(capfd, "-i", conv_model, "-o", tmp_path / "out", "-k", "nope")
    assert proc.returncode == 2
    assert stderr_lines(proc)[0].startswith("[invalid_option]")


def test_parser_maps_k_and_kat_to_the_same_option():
    args = build_parser().parse_args(["-i", "m.onnx", "-k", "a", "-kat", "b", "c", "-ois", "a:1,2", "b:3"])
    assert args.keep_ncw_or_nchw_or_ncdhw_input_names == ["a", "b", "c"]
    assert args.overwrite_input_shape == [("a", (1, 2)), ("b", (3,))]
    assert args.output_folder_path == "saved_model"


def test_parser_maps_new_options(tmp_path: Path):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((1, 3), np.float32))
    args = build_parser().parse_args(["-i", "m.onnx", "-oiqt", "-qt", "per-tensor", "-cind", "x", str(npy), "[0.5]",
                                      "2", "--flatbuffer_direct_custom_op_allowlist", "A,B", "C"])
    from onnx2litert.cli import options_from_args

    opts = options_from_args(args)
    assert opts.output_integer_quantized_tflite and opts.quant_type == "per-tensor"
    assert opts.custom_input_op_name_np_data_path == (("x", str(npy), [0.5], 2),)
    assert opts.show_progress  # the CLI shows the calibration progress bar; the API does not by default
    assert opts.flatbuffer_direct_custom_op_allowlist == ("A", "B", "C")


def test_readme_documents_every_flag():
    readme = (REPO / "README.md").read_text()
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert f"`{flag}" in readme or f"/ `{flag}" in readme or "`-h`" in readme and flag == "-h", flag


def test_readme_lists_every_reason_code_and_exit_code():
    readme = (REPO / "README.md").read_text()
    # The reason-code table is generated from REASON_DESCRIPTIONS by docs/update_readme.py.
    spec = importlib.util.spec_from_file_location("update_readme", REPO / "docs" / "update_readme.py")
    updater = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(updater)
    assert updater.render(readme) == readme, "README.md is out of date: run python docs/update_readme.py"
    for reason in Reason:
        assert f"`{reason.value}`" in readme, reason.value
    for code in range(5):
        assert re.search(rf"^\| {code} \|", readme, re.M), f"exit code {code} missing from README"
    assert "pip install -e . && onnx2litert -i examples/tiny_cnn.onnx -o out --eval_with_onnx " \
           "--report_op_coverage" in readme
    assert "python -m pytest -q -n 2 tests" in readme

"""DFT, STFT, window ops and MelWeightMatrix: LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests.helpers import check_model, expect_failure, make_model


def _dft_model(shape, out_shape, opset, axis, inverse=0, onesided=0, dft_length=None, axis_as_input=None):
    inits = {}
    names = ["x", ""]
    if dft_length is not None:
        inits["n"] = np.array(dft_length, np.int64)
        names[1] = "n"
    attrs = {"inverse": inverse, "onesided": onesided}
    if opset >= 20:
        inits["axis"] = np.array(axis, np.int64)
        names.append("axis")
    else:
        attrs["axis"] = axis
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node("DFT", names, ["y"], **attrs)
    return make_model([node], [("x", np.float32, list(shape))], [("y", np.float32, list(out_shape))], inits, opset)


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("case", [
    # shape, out_shape, axis, inverse, onesided, dft_length
    ((2, 8, 1), (2, 8, 2), 1, 0, 0, None),           # real forward
    ((2, 8, 2), (2, 8, 2), 1, 0, 0, None),           # complex forward
    ((2, 8, 2), (2, 8, 2), 1, 1, 0, None),           # complex inverse
    ((2, 8, 1), (2, 5, 2), 1, 0, 1, None),           # rfft
    ((3, 5, 7, 1), (3, 4, 7, 2), 2, 0, 1, None),     # rfft, odd length, inner axis
    ((2, 8, 2), (2, 6, 2), 1, 0, 0, 6),              # truncation
    ((2, 5, 2), (2, 9, 2), 1, 0, 0, 9),              # zero padding
    ((3, 4, 6, 2), (3, 4, 6, 2), 2, 1, 0, None),     # inverse, inner axis
    ((2, 6, 3, 1), (2, 6, 3, 2), 0, 0, 0, None),     # axis 0
])
def test_dft(opset, case):
    shape, out_shape, axis, inverse, onesided, n = case
    check_model(_dft_model(shape, out_shape, opset, axis, inverse, onesided, n))


def test_dft_negative_axis_opset20():
    check_model(_dft_model((2, 8, 5, 1), (2, 8, 5, 2), 20, -2))


def test_irfft_matches_numpy():
    """IRFFT (onesided inverse, opset 20) against numpy.fft.irfft (the ONNX reference definition)."""
    import onnx2litert
    from onnx2litert.evaluate import run_tflite
    rng = np.random.default_rng(0)
    for n_out, m in ((10, 6), (9, 5)):
        x = rng.standard_normal((2, m, 3, 2)).astype(np.float32)
        model = _dft_model(x.shape, (2, n_out, 3, 1), 20, 1, inverse=1, onesided=1, dft_length=n_out)
        got = run_tflite(onnx2litert.convert(model).artifacts["float32"], {"x": x})["y"]
        ref = np.fft.irfft(x[..., 0] + 1j * x[..., 1], n=n_out, axis=1)[..., None]
        assert np.abs(got - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("axis", [1, 2, -2, -3])
@pytest.mark.parametrize("channels,inverse", [(1, 0), (2, 0), (2, 1)])
def test_dft_runtime_axis_selects(axis, channels, inverse):
    """(1, 4, 4, c) -> (1, 4, 4, 2) fits axis 1 and 2: both are computed, the axis value SELECTs."""
    node = helper.make_node("DFT", ["x", "", "axis"], ["y"], inverse=inverse)
    model = make_model([node], [("x", np.float32, [1, 4, 4, channels]), ("axis", np.int64, [])],
                       [("y", np.float32, [1, 4, 4, 2])], opset=20)
    x = np.random.default_rng(0).standard_normal([1, 4, 4, channels]).astype(np.float32)
    check_model(model, {"x": x, "axis": np.array(axis, np.int64)})


def test_dft_runtime_axis_and_implied_length():
    """A run-time dft_length the output shape fixes (here 4 along either axis) is fine."""
    node = helper.make_node("DFT", ["x", "n", "axis"], ["y"])
    model = make_model([node], [("x", np.float32, [1, 4, 4, 1]), ("n", np.int64, []), ("axis", np.int64, [])],
                       [("y", np.float32, [1, 4, 4, 2])], opset=20)
    x = np.random.default_rng(1).standard_normal([1, 4, 4, 1]).astype(np.float32)
    check_model(model, {"x": x, "n": np.array(4, np.int64), "axis": np.array(2, np.int64)})


def test_dft_runtime_axis_and_ambiguous_length_fails():
    """RFFT to 4 bins: dft_length 6 or 7, which the shape cannot tell apart."""
    node = helper.make_node("DFT", ["x", "n", "axis"], ["y"], onesided=1)
    model = make_model([node], [("x", np.float32, [1, 7, 7, 1]), ("n", np.int64, []), ("axis", np.int64, [])],
                       [("y", np.float32, [1, 4, 7, 2])], opset=20)
    expect_failure(model, "requires_constant_input")


def test_dft_int_input_fails():
    node = helper.make_node("DFT", ["x"], ["y"], axis=1)
    model = make_model([node], [("x", np.float64, [1, 4, 1])], [("y", np.float64, [1, 4, 2])], opset=17)
    expect_failure(model, "unsupported_dtype")


@pytest.mark.parametrize("window_kind", ["none", "const", "runtime"])
@pytest.mark.parametrize("onesided, channels", [(1, 1), (0, 1), (0, 2)])  # onesided needs a real signal
def test_stft(window_kind, onesided, channels):
    length, step, fl = 32, 5, 8
    rng = np.random.default_rng(1)
    inputs = [("x", np.float32, [2, length, channels])]
    inits = {"step": np.array(step, np.int64)}
    names = ["x", "step", "", ""]
    if window_kind == "const":
        inits["w"] = np.hanning(fl).astype(np.float32)
        names[2] = "w"
    elif window_kind == "runtime":
        inputs.append(("w", np.float32, [fl]))
        names[2] = "w"
    if window_kind != "const":
        inits["fl"] = np.array(fl, np.int64)
        names[3] = "fl"
    while names[-1] == "":
        names.pop()
    bins = fl // 2 + 1 if onesided else fl
    frames = 1 + (length - fl) // step
    node = helper.make_node("STFT", names, ["y"], onesided=onesided)
    model = make_model([node], inputs, [("y", np.float32, [2, frames, bins, 2])], inits, 17)
    feeds = {"x": rng.standard_normal((2, length, channels)).astype(np.float32)}
    if window_kind == "runtime":
        feeds["w"] = rng.random(fl).astype(np.float32)
    check_model(model, feeds)


def test_stft_runtime_step_ambiguous_fails():
    node = helper.make_node("STFT", ["x", "step", "", "fl"], ["y"])
    model = make_model([node], [("x", np.float32, [1, 16, 1]), ("step", np.int64, []), ("fl", np.int64, [])],
                       [("y", np.float32, [1, 2, 5, 2])], opset=17)
    expect_failure(model, "requires_constant_input")


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("size_dtype", [np.int32, np.int64])
def test_window_const_size(op, periodic, size_dtype):
    # an Add keeps the window from being the graph output directly and exercises a real kernel
    nodes = [helper.make_node(op, ["n"], ["w"], periodic=periodic),
             helper.make_node("Add", ["w", "x"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [7])], [("y", np.float32, [7])],
                       {"n": np.array(7, size_dtype)}, 17)
    check_model(model)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
def test_window_runtime_size_static_output(op):
    node = helper.make_node(op, ["n"], ["y"])
    model = make_model([node], [("n", np.int64, [])], [("y", np.float32, [9])], opset=17)
    check_model(model, {"n": np.array(9, np.int64)})


def test_window_runtime_size_unknown_output_fails():
    node = helper.make_node("HannWindow", ["n"], ["y"])
    model = make_model([node], [("n", np.int64, [])], [("y", np.float32, None)], opset=17)
    expect_failure(model, "requires_constant_input")


def test_window_output_dtype_fails():
    node = helper.make_node("HannWindow", ["n"], ["y"], output_datatype=TensorProto.DOUBLE)
    model = make_model([node], [], [("y", np.float64, [4])], {"n": np.array(4, np.int64)}, 17)
    expect_failure(model, "unsupported_dtype")


@pytest.mark.parametrize("params", [(8, 16, 8192, 0.0, 4096.0), (5, 32, 16000, 20.0, 7000.0)])
def test_mel_weight_matrix(params):
    mel, n, rate, low, high = params
    inits = {"a": np.array(mel, np.int64), "b": np.array(n, np.int64), "c": np.array(rate, np.int64),
             "d": np.array(low, np.float32), "e": np.array(high, np.float32)}
    nodes = [helper.make_node("MelWeightMatrix", ["a", "b", "c", "d", "e"], ["m"]),
             helper.make_node("MatMul", ["x", "m"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [3, n // 2 + 1])], [("y", np.float32, [3, mel])], inits, 17)
    check_model(model)


def test_mel_weight_matrix_runtime_fails():
    node = helper.make_node("MelWeightMatrix", ["a", "b", "c", "d", "e"], ["y"])
    model = make_model([node], [("a", np.int64, []), ("b", np.int64, []), ("c", np.int64, []),
                                ("d", np.float32, []), ("e", np.float32, [])], [("y", np.float32, [9, 8])],
                       opset=17)
    expect_failure(model, "requires_constant_input")

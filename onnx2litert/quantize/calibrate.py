"""Calibration: run the float model in LiteRT and record the range of every float tensor.

Samples come from (in this order) an ``.npz`` file keyed by ONNX input name, onnx2tf-style
``(NAME, NPY_PATH, MEAN, STD)`` tuples, or seeded synthetic standard-normal data (with a
warning: real data gives ranges that fit the deployment distribution). Samples are in
ONNX layout; the converted model's channels-last inputs are transposed using its I/O
layout mapping.

The float model runs on LiteRT's builtin kernels with ``experimental_preserve_all_tensors``
so every intermediate tensor can be read after each invocation (a delegate would hide them).
"""
from __future__ import annotations

import sys
import warnings
import zipfile
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..errors import ConversionError, Issue, Reason
from ..ir import Model

SYNTHETIC_SEED = 0
SYNTHETIC_WARNING = ("no calibration data given (calibration_data / custom_input_op_name_np_data_path): "
                     "calibrating on {n} seeded standard-normal samples; real data gives better ranges")

InputSpec = tuple[str, tuple[int, ...], np.dtype]


@dataclass(frozen=True)
class Range:
    """Observed float range of one tensor."""

    lo: float
    hi: float


def _invalid(message: str) -> ConversionError:
    return ConversionError(Issue(Reason.INVALID_OPTION, message))


def _as_samples(name: str, arr: np.ndarray, shape: tuple[int, ...], channels_last: tuple[int, ...] | None
                ) -> list[np.ndarray]:
    """Split ``arr`` into samples of ``shape`` (ONNX layout); accept a leading sample axis.

    An array in the converted model's channels-last layout (as onnx2tf's calibration files
    are) is transposed back when its shape only matches that layout.
    """
    shape = tuple(shape)
    cl_shape = tuple(shape[p] for p in channels_last) if channels_last else None

    def fit(a: np.ndarray) -> np.ndarray | None:
        if a.shape == shape:
            return a
        if cl_shape is not None and a.shape == cl_shape:
            return np.transpose(a, np.argsort(channels_last))
        return None

    single = fit(arr)
    if single is not None:
        return [single]
    out = []
    if arr.ndim == len(shape) + 1:
        out = [fit(a) for a in arr]
    elif arr.ndim == len(shape) and shape and shape[0] == 1:
        out = [fit(a[None]) for a in arr]  # samples stacked along a batch axis of 1
    if not out or any(a is None for a in out):
        raise _invalid(f"calibration data for input '{name}' has shape {list(arr.shape)}; expected "
                       f"{list(shape)} or [N, {', '.join(map(str, shape))}]")
    return out


def _channel_axis(data_shape: tuple[int, ...], shape: tuple[int, ...],
                  channels_last: tuple[int, ...] | None) -> int | None:
    """Axis of ``data_shape`` holding the ONNX channel dim (axis 1 of ``shape``), or None if unknown.

    The data holds samples of ``shape`` in ONNX layout or, as onnx2tf's files do, in the
    converted model's channels-last layout, possibly behind a sample axis; ONNX layout wins
    when both fit (as in :func:`_as_samples`).
    """
    rank = len(shape)
    if rank < 2 or len(data_shape) < rank:
        return None
    tail = tuple(data_shape[len(data_shape) - rank + 1:])  # the batch dim may hold stacked samples
    if tail == tuple(shape[1:]):
        return len(data_shape) - rank + 1
    if channels_last:
        cl_shape = tuple(shape[p] for p in channels_last)
        if tail == cl_shape[1:]:
            return len(data_shape) - rank + list(channels_last).index(1)
    return None


def _stat(name: str, what: str, value: object, default: float, data_shape: tuple[int, ...],
          channel_axis: int | None) -> np.ndarray | float:
    """A -cind MEAN or STD ready to broadcast against the data.

    C values along one axis (``[m0, m1, m2]`` or onnx2tf's ``[[[[m0, m1, m2]]]]``) are per channel:
    they are placed on the data's channel axis (axis 1 in ONNX layout, last for channels-last files). Scalars and arrays that already broadcast are
    used as given; anything else is an ``invalid_option``.
    """
    if value is None:
        return default
    try:
        stat = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise _invalid(f"custom_input_op_name_np_data_path {what} for input '{name}' must be numbers, "
                       f"got {value!r}") from None
    # Values along one axis (e.g. onnx2tf's [[[[0.485, 0.456, 0.406]]]]) are per channel whatever
    # layout they were written for. (Data whose shape fits neither layout fails in _as_samples.)
    if stat.size > 1 and stat.squeeze().ndim == 1 and channel_axis is not None:
        if data_shape[channel_axis] != stat.size:
            raise _invalid(f"custom_input_op_name_np_data_path {what} for input '{name}' has {stat.size} values; "
                           f"a per-channel {what} needs one per channel ({data_shape[channel_axis]}) of the data "
                           f"shaped {list(data_shape)}")
        return stat.reshape((-1,) + (1,) * (len(data_shape) - 1 - channel_axis))
    try:
        np.broadcast_shapes(stat.shape, data_shape)
    except ValueError:
        raise _invalid(f"custom_input_op_name_np_data_path {what} for input '{name}' has shape "
                       f"{list(stat.shape)}, which does not broadcast to the data's {list(data_shape)}") from None
    if stat.ndim > len(data_shape):  # would add axes to every sample
        raise _invalid(f"custom_input_op_name_np_data_path {what} for input '{name}' has more dims "
                       f"({stat.ndim}) than the data ({len(data_shape)})")
    return stat


def load_samples(specs: list[InputSpec], *, calibration_data: str | None = None,
                 custom_inputs: Iterable[tuple] = (), num_samples: int = 16,
                 channels_last: dict[str, tuple[int, ...]] | None = None
                 ) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """Calibration feeds (ONNX layout) and any warnings to show the user.

    ``custom_inputs`` holds ``(name, npy_path, mean, std)`` tuples; mean/std normalize the data
    as ``(x - mean) / std``. Each is a scalar, a list of one value per channel (placed on the
    channel axis of the file's layout), or an array broadcastable to the data in the file's
    layout. At most ``num_samples`` samples are used.
    """
    channels_last = channels_last or {}
    per_input: dict[str, list[np.ndarray]] = {}
    shapes = {n: s for n, s, _ in specs}
    if calibration_data:
        try:
            npz = np.load(calibration_data, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise _invalid(f"cannot read calibration_data '{calibration_data}': {exc}") from None
        with npz:
            for name in npz.files:
                if name not in shapes:
                    raise _invalid(f"calibration_data has key '{name}', which is not a model input "
                                   f"(inputs: {', '.join(shapes)})")
                try:  # members are decoded lazily: a corrupt or pickled member fails here, not in np.load
                    arr = np.asarray(npz[name])
                except (OSError, ValueError, zipfile.BadZipFile) as exc:
                    raise _invalid(f"cannot read '{name}' from calibration_data '{calibration_data}': {exc}"
                                   ) from None
                per_input[name] = _as_samples(name, arr, shapes[name], channels_last.get(name))
    for entry in custom_inputs:
        name, path, *rest = entry
        if name not in shapes:
            raise _invalid(f"custom_input_op_name_np_data_path names '{name}', which is not a model input")
        try:
            arr = np.load(path, allow_pickle=False).astype(np.float64)
        except (OSError, ValueError, TypeError) as exc:
            raise _invalid(f"cannot read '{path}' for input '{name}': {exc}") from None
        pos = _channel_axis(arr.shape, shapes[name], channels_last.get(name))
        mean = _stat(name, "MEAN", rest[0] if len(rest) > 0 else None, 0.0, arr.shape, pos)
        std = _stat(name, "STD", rest[1] if len(rest) > 1 else None, 1.0, arr.shape, pos)
        if np.any(std == 0):
            raise _invalid(f"custom_input_op_name_np_data_path STD for input '{name}' has a zero")
        per_input[name] = _as_samples(name, (arr - mean) / std, shapes[name], channels_last.get(name))
    messages: list[str] = []
    if per_input:
        missing = [n for n in shapes if n not in per_input]
        if missing:
            raise _invalid(f"calibration data is missing input(s): {', '.join(missing)}")
        counts = {len(v) for v in per_input.values()}
        n = min(min(counts), num_samples)
        return [{name: per_input[name][k].astype(dt) for name, _, dt in specs} for k in range(n)], messages
    messages.append(SYNTHETIC_WARNING.format(n=num_samples))
    warnings.warn(messages[-1], stacklevel=2)
    rng = np.random.default_rng(SYNTHETIC_SEED)
    samples = []
    for _ in range(num_samples):
        feed = {}
        for name, shape, dtype in specs:
            dtype = np.dtype(dtype)
            if dtype.kind == "f":
                feed[name] = rng.standard_normal(shape).astype(dtype)
            elif dtype.kind == "b":
                feed[name] = rng.integers(0, 2, shape).astype(bool)
            else:
                feed[name] = rng.integers(0, 8, shape).astype(dtype)
        samples.append(feed)
    return samples, messages


def collect_ranges(model: Model, tflite: bytes, samples: list[dict[str, np.ndarray]],
                   io_layout: dict | None = None, percentile: float | None = None,
                   progress: bool = False) -> dict[int, Range]:
    """Range of every float32 tensor of the main subgraph, keyed by ``id(tensor)``.

    ``tflite`` must be ``export_model(model)``: tensor ``i`` of the flatbuffer is
    ``model.main.tensors()[i]``. With ``percentile`` (e.g. 99.99) a tensor's range is the
    [100 - p, p] percentiles of each sample, widened over samples; otherwise min/max.
    ``progress`` draws a bar on stderr (the CLI and verbose runs; off for library use).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    sg = model.main
    tensors = sg.tensors()
    index = {id(t): i for i, t in enumerate(tensors)}
    watched = [(i, t) for i, t in enumerate(tensors) if t.dtype == np.float32 and not t.is_const]
    interp = Interpreter(model_content=tflite, num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                         experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    in_layout = (io_layout or {}).get("inputs", {})
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    total = len(samples)
    for k, feed in enumerate(samples):
        for name, t in zip(model.signature_inputs, sg.inputs):
            value = np.asarray(feed[name])
            perm = (in_layout.get(name) or {}).get("perm_from_onnx")
            if perm:
                value = np.transpose(value, perm)
            interp.set_tensor(index[id(t)], np.ascontiguousarray(value, dtype=t.dtype))
        interp.invoke()
        for i, t in watched:
            v = interp.get_tensor(i)
            if v.size == 0:
                continue
            finite = v[np.isfinite(v)]
            if finite.size == 0:
                continue
            if percentile is not None:
                a, b = np.percentile(finite, [100.0 - percentile, percentile])
            else:
                a, b = finite.min(), finite.max()
            lo[id(t)] = min(lo.get(id(t), np.inf), float(a))
            hi[id(t)] = max(hi.get(id(t), -np.inf), float(b))
        if progress:
            _progress(k + 1, total)
    ranges = {key: Range(lo[key], hi[key]) for key in lo}
    for t in tensors:
        if t.is_const and t.dtype == np.float32 and t.size:
            ranges[id(t)] = Range(float(t.data.min()), float(t.data.max()))
    return ranges


def _progress(done: int, total: int) -> None:
    """One self-overwriting line on stderr: ``calibration [#####.....] 8/16``."""
    width = 20
    fill = width * done // max(total, 1)
    sys.stderr.write(f"\rcalibration [{'#' * fill}{'.' * (width - fill)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()

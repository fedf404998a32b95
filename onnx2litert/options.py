"""The one immutable options object passed down the pipeline."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from .errors import ConversionError, Issue, Reason

EVAL_TARGETS = ("float32", "float16", "dynamic_range_quant", "integer_quant", "full_integer_quant",
                "integer_quant_with_int16_act", "full_integer_quant_with_int16_act")
QUANT_TYPES = ("per-channel", "per-tensor")
QUANT_IO_DTYPES = ("int8", "uint8")
COMPARE_MODES = ("auto", "dequant", "raw")
BACKENDS = ("flatbuffer_direct", "tf_converter")
SPLIT_EVAL_REFERENCES = ("onnx", "unsplit_tflite")
DEFAULT_SPLIT_TARGET_BYTES = 1_060_000_000
DEFAULT_SPLIT_MAX_BYTES = 1_073_741_824
# Which options produce each evaluable variant (float32 is always produced).
_VARIANT_SOURCE = {
    "float16": ("output_float16", "output_float16=True"),
    "dynamic_range_quant": ("output_dynamic_range_quantized_tflite", "-odrqt/--output_dynamic_range_quantized_tflite"),
    **{v: ("output_integer_quantized_tflite", "-oiqt/--output_integer_quantized_tflite")
       for v in EVAL_TARGETS if "integer_quant" in v},
}


@dataclass(frozen=True)
class ConversionOptions:
    """Every knob of a conversion. Built once (CLI or API) and never mutated.

    Construction applies the implications the CLI documents, so the API behaves the same:
    ``eval_fail_on_threshold`` implies ``eval_with_onnx``, ``eval_split_models`` implies
    ``auto_split_tflite_by_size``, and an unset ``tflite_split_max_bytes`` is the default max,
    raised to ``tflite_split_target_bytes`` when the target is above it. It then validates every
    option (before anything is written) and raises ``invalid_option`` with all problems found.
    """

    output_folder: str | None = None
    tflite_backend: str = "flatbuffer_direct"
    # Shapes: a batch size for symbolic/unknown leading dims, and explicit input shapes.
    batch_size: int | None = None
    overwrite_input_shape: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Symbolic input dims not pinned by -b/-ois stay dynamic (-1 in shape_signature) when the
    # model converts the same way at every size; non-batch ones are converted at this size
    # (the .tflite's initial shape; batch dims use 1).
    dynamic_shapes: bool = True
    dynamic_dim_default: int = 8
    # Inputs listed here keep their ONNX (channels-first) layout.
    keep_ncw_or_nchw_or_ncdhw_input_names: tuple[str, ...] = ()
    keep_all_inputs_layout: bool = False
    # Outputs to write.
    output_float16: bool = True
    output_dynamic_range_quantized_tflite: bool = False
    output_integer_quantized_tflite: bool = False
    # Quantization: weight granularity, full-integer I/O types, calibration.
    quant_type: str = "per-channel"
    input_quant_dtype: str = "int8"
    output_quant_dtype: str = "int8"
    # .npz keyed by ONNX input name (ONNX layout; a leading sample axis is optional).
    calibration_data: str | None = None
    # onnx2tf's -cind: (NAME, NPY_PATH, MEAN, STD) per input; MEAN/STD may be None.
    custom_input_op_name_np_data_path: tuple[tuple, ...] = ()
    calibration_num_samples: int = 16
    # None: min/max ranges; e.g. 99.99: the [0.01, 99.99] percentiles of each sample.
    calibration_percentile: float | None = None
    # Reports and evaluation.
    report_op_coverage: bool = False
    eval_with_onnx: bool = False
    eval_target_tflite: str = "float32"
    eval_compare_mode: str = "auto"
    eval_num_samples: int = 1
    eval_seed: int = 0
    # Implies eval_with_onnx.
    eval_fail_on_threshold: bool = False
    eval_cosine_threshold: float = 0.999
    eval_max_abs_threshold: float | None = None
    # Size-based splitting of the float32 model into <stem>_0001.tflite... plus a plan and a
    # manifest; parts aim for the target and never exceed the max. None (not given): the
    # default max, or the target when that is larger; an int after construction.
    auto_split_tflite_by_size: bool = False
    tflite_split_target_bytes: int = DEFAULT_SPLIT_TARGET_BYTES
    tflite_split_max_bytes: int | None = None
    # Evaluate the chained parts against "onnx" (ONNX Runtime) or "unsplit_tflite"; None: off.
    # Implies auto_split_tflite_by_size.
    eval_split_models: str | None = None
    # Constant bytes above which a .tflite stores its constants after the flatbuffer
    # (Buffer.offset/size, past the 2 GiB flatbuffer limit); <= 0 forces that layout.
    tflite_external_buffers_threshold_bytes: int = 2 ** 31 - 2 ** 26
    # Custom ops: an op with no builtin lowering becomes CUSTOM 'ONNX_<Op>' only when allowed
    # (and, with a non-empty allowlist, listed there by op type).
    flatbuffer_direct_allow_custom_ops: bool = False
    flatbuffer_direct_custom_op_allowlist: tuple[str, ...] = ()
    # Passes (escape hatch for debugging; defaults are what users want).
    optimize: bool = True
    # x86 tuning: 3x3+ convolutions with multiple/2 < Cout < multiple compute ``multiple``
    # channels and slice (0 = off; 32 measured faster with XNNPACK on AVX-512, slower on ARM).
    pad_conv_output_channels_to: int = 0
    verbose: bool = False
    # A progress bar on stderr during calibration (the CLI sets it; verbose shows it too).
    show_progress: bool = False

    def __post_init__(self) -> None:
        self._apply_implications()
        problems = []
        if self.tflite_backend not in BACKENDS:
            problems.append(f"--tflite_backend must be one of {', '.join(BACKENDS)}, got '{self.tflite_backend}'")
        if self.eval_target_tflite not in EVAL_TARGETS:
            problems.append(
                f"--eval_target_tflite must be one of {', '.join(EVAL_TARGETS)}, got '{self.eval_target_tflite}'")
        if self.eval_compare_mode not in COMPARE_MODES:
            problems.append(
                f"--eval_compare_mode must be one of {', '.join(COMPARE_MODES)}, got '{self.eval_compare_mode}'")
        if self.quant_type not in QUANT_TYPES:
            problems.append(f"--quant_type must be one of {', '.join(QUANT_TYPES)}, got '{self.quant_type}'")
        for flag, value in (("input_quant_dtype", self.input_quant_dtype),
                            ("output_quant_dtype", self.output_quant_dtype)):
            if value not in QUANT_IO_DTYPES:
                problems.append(f"--{flag} must be one of {', '.join(QUANT_IO_DTYPES)}, got '{value}'")
        if self.calibration_num_samples < 1:
            problems.append(f"--calibration_num_samples must be >= 1, got {self.calibration_num_samples}")
        if self.calibration_percentile is not None and not 50.0 < self.calibration_percentile <= 100.0:
            problems.append(f"--calibration_percentile must be in (50, 100], got {self.calibration_percentile}")
        for entry in self.custom_input_op_name_np_data_path:
            if not 2 <= len(entry) <= 4:
                problems.append("--custom_input_op_name_np_data_path entries are (NAME, NPY_PATH[, MEAN[, STD]]), "
                                f"got {entry!r}")
        if self.eval_num_samples < 1:
            problems.append(f"--eval_num_samples must be >= 1, got {self.eval_num_samples}")
        problems.extend(self._eval_problems())
        problems.extend(self._path_problems())
        problems.extend(self._split_problems())
        m = self.pad_conv_output_channels_to
        if not isinstance(m, int) or m < 0 or (m and (m < 2 or m % 2)):
            problems.append(f"--pad_conv_output_channels_to must be 0 (off) or an even number >= 2, got {m}")
        if self.dynamic_dim_default < 1:
            problems.append(f"--dynamic_dim_default must be >= 1, got {self.dynamic_dim_default}")
        if self.batch_size is not None and self.batch_size < 1:
            problems.append(f"--batch_size must be >= 1, got {self.batch_size}")
        for name, dims in self.overwrite_input_shape:
            if any(d < 1 for d in dims):
                problems.append(f"--overwrite_input_shape for '{name}' has a non-positive dim: {list(dims)}")
        if problems:
            raise ConversionError([Issue(Reason.INVALID_OPTION, p) for p in problems])

    def _split_problems(self) -> list[str]:
        problems = []
        if self.tflite_split_target_bytes < 1:
            problems.append(f"--tflite_split_target_bytes must be >= 1, got {self.tflite_split_target_bytes}")
        if self.tflite_split_max_bytes < self.tflite_split_target_bytes:
            problems.append(f"--tflite_split_max_bytes ({self.tflite_split_max_bytes}) must be >= "
                            f"--tflite_split_target_bytes ({self.tflite_split_target_bytes})")
        if self.eval_split_models is not None:
            if self.eval_split_models not in SPLIT_EVAL_REFERENCES:
                problems.append(f"--eval_split_models must be one of {', '.join(SPLIT_EVAL_REFERENCES)}, "
                                f"got '{self.eval_split_models}'")
        return problems

    def _apply_implications(self) -> None:
        """Set the options other options imply (frozen dataclass: object.__setattr__)."""
        if self.eval_fail_on_threshold:
            # failing on accuracy without evaluating would silently check nothing
            object.__setattr__(self, "eval_with_onnx", True)
        if self.eval_split_models is not None:
            object.__setattr__(self, "auto_split_tflite_by_size", True)
        if self.tflite_split_max_bytes is None:
            # onnx2tf has one size (-asms): a target above the default max raises the max with it
            target = self.tflite_split_target_bytes
            object.__setattr__(self, "tflite_split_max_bytes",
                               max(DEFAULT_SPLIT_MAX_BYTES, target if isinstance(target, int) else 0))

    def _eval_problems(self) -> list[str]:
        problems = []
        c = self.eval_cosine_threshold
        if not isinstance(c, (int, float)) or math.isnan(c) or not -1.0 <= c <= 1.0:
            problems.append(f"--eval_cosine_threshold must be a number in [-1, 1], got {c}")
        m = self.eval_max_abs_threshold
        if m is not None and (not isinstance(m, (int, float)) or math.isnan(m) or m < 0):
            problems.append(f"--eval_max_abs_threshold must be a number >= 0, got {m}")
        source = _VARIANT_SOURCE.get(self.eval_target_tflite)
        if self.eval_with_onnx and source is not None and not getattr(self, source[0]):
            problems.append(f"--eval_target_tflite {self.eval_target_tflite} is not produced by these options "
                            f"(it needs {source[1]})")
        return problems

    def _path_problems(self) -> list[str]:
        """Calibration files that do not exist (caught before any output is written)."""
        problems = []
        if self.calibration_data is not None and not os.path.isfile(self.calibration_data):
            problems.append(f"--calibration_data file not found: '{self.calibration_data}'")
        for entry in self.custom_input_op_name_np_data_path:
            if 2 <= len(entry) <= 4 and not os.path.isfile(str(entry[1])):
                problems.append(f"--custom_input_op_name_np_data_path file for input '{entry[0]}' not found: "
                                f"'{entry[1]}'")
        return problems

    @classmethod
    def from_kwargs(cls, **kwargs: object) -> "ConversionOptions":
        """Build options from keyword arguments, rejecting unknown names with a clear error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConversionError(Issue(Reason.INVALID_OPTION, f"unknown option(s): {', '.join(unknown)}"))
        # None means "not given" for the list-valued options (a None default would fail later).
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        norm = {k: v for k, v in kwargs.items() if not (v is None and isinstance(defaults[k], tuple))}
        ois = norm.get("overwrite_input_shape")
        if isinstance(ois, dict):
            norm["overwrite_input_shape"] = tuple((k, tuple(int(d) for d in v)) for k, v in ois.items())
        elif ois is not None and not isinstance(ois, tuple):
            norm["overwrite_input_shape"] = tuple(parse_input_shape(s) if isinstance(s, str) else s for s in ois)
        keep = norm.get("keep_ncw_or_nchw_or_ncdhw_input_names")
        if keep is not None:  # a str would otherwise become its characters
            norm["keep_ncw_or_nchw_or_ncdhw_input_names"] = parse_name_list(keep)
        allow = norm.get("flatbuffer_direct_custom_op_allowlist")
        if allow is not None:
            norm["flatbuffer_direct_custom_op_allowlist"] = parse_name_list(allow)
        cind = norm.get("custom_input_op_name_np_data_path")
        if cind is not None and not isinstance(cind, tuple):
            norm["custom_input_op_name_np_data_path"] = tuple(tuple(e) for e in cind)
        return cls(**norm)

    def input_shape_overrides(self) -> dict[str, tuple[int, ...]]:
        return dict(self.overwrite_input_shape)


def parse_input_shape(spec: str) -> tuple[str, tuple[int, ...]]:
    """Parse onnx2tf's ``name:d0,d1,...`` form."""
    name, sep, dims = spec.rpartition(":")
    if not sep or not name:
        raise ConversionError(Issue(Reason.INVALID_OPTION,
                                    f"--overwrite_input_shape expects NAME:D0,D1,..., got '{spec}'"))
    try:
        values = tuple(int(d) for d in dims.split(","))
    except ValueError:
        raise ConversionError(Issue(Reason.INVALID_OPTION,
                                    f"--overwrite_input_shape dims must be integers, got '{spec}'")) from None
    return name, values


def parse_name_list(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Normalize ``"A,B"`` or ``["A", "B"]`` (items may hold commas too) to ``("A", "B")``."""
    items = [value] if isinstance(value, str) else list(value)
    names = []
    for item in items:
        names.extend(n.strip() for n in str(item).split(","))
    return tuple(n for n in names if n)


def parse_custom_input(values: list[str] | tuple[str, ...]) -> tuple:
    """Parse onnx2tf's ``-cind NAME NPY_PATH [MEAN STD]``; MEAN/STD are numbers or JSON lists.

    E.g. ``["x", "x.npy", "[0.485,0.456,0.406]", "[0.229,0.224,0.225]"]``.
    """
    import json

    if not 2 <= len(values) <= 4:
        raise ConversionError(Issue(Reason.INVALID_OPTION,
                                    f"--custom_input_op_name_np_data_path expects NAME NPY_PATH [MEAN STD], got "
                                    f"{list(values)}"))
    name, path, *rest = values
    parsed = []
    for text in rest:
        try:
            value = json.loads(text)
        except ValueError:
            raise ConversionError(Issue(Reason.INVALID_OPTION,
                                        f"--custom_input_op_name_np_data_path MEAN/STD must be a number or a "
                                        f"list like [0.5,0.5,0.5], got '{text}'")) from None
        parsed.append(tuple(value) if isinstance(value, list) else float(value))
    return (name, path, *parsed)

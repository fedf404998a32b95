"""The one immutable options object passed down the pipeline."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import ConversionError, Issue, Reason

EVAL_TARGETS = ("float32", "float16")
COMPARE_MODES = ("auto", "dequant", "raw")
BACKENDS = ("flatbuffer_direct", "tf_converter")


@dataclass(frozen=True)
class ConversionOptions:
    """Every knob of a conversion. Built once (CLI or API) and never mutated."""

    output_folder: str | None = None
    tflite_backend: str = "flatbuffer_direct"
    # Shapes: a batch size for symbolic/unknown leading dims, and explicit input shapes.
    batch_size: int | None = None
    overwrite_input_shape: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Inputs listed here keep their ONNX (channels-first) layout.
    keep_ncw_or_nchw_or_ncdhw_input_names: tuple[str, ...] = ()
    keep_all_inputs_layout: bool = False
    # Outputs to write.
    output_float16: bool = True
    # Reports and evaluation.
    report_op_coverage: bool = False
    eval_with_onnx: bool = False
    eval_target_tflite: str = "float32"
    eval_compare_mode: str = "auto"
    eval_num_samples: int = 1
    eval_seed: int = 0
    eval_fail_on_threshold: bool = False
    eval_cosine_threshold: float = 0.999
    eval_max_abs_threshold: float | None = None
    # Passes (escape hatch for debugging; defaults are what users want).
    optimize: bool = True
    verbose: bool = False
    extra: tuple[tuple[str, object], ...] = field(default=())

    def __post_init__(self) -> None:
        problems = []
        if self.tflite_backend not in BACKENDS:
            problems.append(f"--tflite_backend must be one of {', '.join(BACKENDS)}, got '{self.tflite_backend}'")
        if self.eval_target_tflite not in EVAL_TARGETS:
            problems.append(
                f"--eval_target_tflite must be one of {', '.join(EVAL_TARGETS)}, got '{self.eval_target_tflite}'")
        if self.eval_compare_mode not in COMPARE_MODES:
            problems.append(
                f"--eval_compare_mode must be one of {', '.join(COMPARE_MODES)}, got '{self.eval_compare_mode}'")
        if self.eval_num_samples < 1:
            problems.append(f"--eval_num_samples must be >= 1, got {self.eval_num_samples}")
        if self.batch_size is not None and self.batch_size < 1:
            problems.append(f"--batch_size must be >= 1, got {self.batch_size}")
        for name, dims in self.overwrite_input_shape:
            if any(d < 1 for d in dims):
                problems.append(f"--overwrite_input_shape for '{name}' has a non-positive dim: {list(dims)}")
        if problems:
            raise ConversionError([Issue(Reason.INVALID_OPTION, p) for p in problems])

    @classmethod
    def from_kwargs(cls, **kwargs: object) -> "ConversionOptions":
        """Build options from keyword arguments, rejecting unknown names with a clear error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConversionError(Issue(Reason.INVALID_OPTION, f"unknown option(s): {', '.join(unknown)}"))
        norm = dict(kwargs)
        ois = norm.get("overwrite_input_shape")
        if isinstance(ois, dict):
            norm["overwrite_input_shape"] = tuple((k, tuple(int(d) for d in v)) for k, v in ois.items())
        elif ois is not None and not isinstance(ois, tuple):
            norm["overwrite_input_shape"] = tuple(parse_input_shape(s) if isinstance(s, str) else s for s in ois)
        keep = norm.get("keep_ncw_or_nchw_or_ncdhw_input_names")
        if keep is not None and not isinstance(keep, tuple):
            norm["keep_ncw_or_nchw_or_ncdhw_input_names"] = tuple(keep)
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

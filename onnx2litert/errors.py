"""Reason codes and the conversion error.

Every failure the converter reports carries one reason code from the closed set below.
The same codes appear in error messages, the op-coverage report and the README.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(str, enum.Enum):
    """The closed set of reason codes."""

    UNSUPPORTED_ONNX_OP = "unsupported_onnx_op"
    REQUIRES_CONSTANT_INPUT = "requires_constant_input"
    UNSUPPORTED_ATTRIBUTE_VALUE = "unsupported_attribute_value"
    UNSUPPORTED_DTYPE = "unsupported_dtype"
    DYNAMIC_SHAPE_UNSUPPORTED = "dynamic_shape_unsupported"
    UNSUPPORTED_OPSET = "unsupported_opset"
    CUSTOM_OP_CANDIDATE_DISABLED = "custom_op_candidate_disabled"
    CUSTOM_OP_NOT_IN_ALLOWLIST = "custom_op_not_in_allowlist"
    INVALID_MODEL = "invalid_model"
    INVALID_OPTION = "invalid_option"
    UNSAFE_EXTERNAL_DATA = "unsafe_external_data"
    BACKEND_NOT_INSTALLED = "backend_not_installed"
    ACCURACY_THRESHOLD_EXCEEDED = "accuracy_threshold_exceeded"
    SPLIT_IMPOSSIBLE = "split_impossible"
    INTERNAL_ERROR = "internal_error"


#: One line per code for the README and ``--help``.
REASON_DESCRIPTIONS: dict[Reason, str] = {
    Reason.UNSUPPORTED_ONNX_OP: "no lowering is registered for this ONNX op type",
    Reason.REQUIRES_CONSTANT_INPUT: "the lowering needs this input to be a constant (initializer or foldable)",
    Reason.UNSUPPORTED_ATTRIBUTE_VALUE: "an attribute value that LiteRT cannot express exactly",
    Reason.UNSUPPORTED_DTYPE: "a tensor element type the lowering or LiteRT kernel does not accept",
    Reason.DYNAMIC_SHAPE_UNSUPPORTED: "a shape the lowering needs is not known at conversion time",
    Reason.UNSUPPORTED_OPSET: "the model's default-domain opset is outside the supported range",
    Reason.CUSTOM_OP_CANDIDATE_DISABLED: "the op could only become a CUSTOM op, and custom ops are disabled",
    Reason.CUSTOM_OP_NOT_IN_ALLOWLIST: "the op could only become a CUSTOM op, and it is not in the allowlist",
    Reason.INVALID_MODEL: "the file is missing, is not an ONNX model, or fails the ONNX checker",
    Reason.INVALID_OPTION: "a flag or option value is not valid",
    Reason.UNSAFE_EXTERNAL_DATA: "external data points outside the model's folder",
    Reason.BACKEND_NOT_INSTALLED: "the requested backend is not available in this installation",
    Reason.ACCURACY_THRESHOLD_EXCEEDED: "evaluation against ONNX Runtime failed its thresholds (-efot)",
    Reason.SPLIT_IMPOSSIBLE: "size-based splitting cannot keep a part within --tflite_split_max_bytes "
                             "(one op's weights alone exceed it)",
    Reason.INTERNAL_ERROR: "a bug in onnx2litert: please report it with the model",
}


@dataclass(frozen=True)
class Issue:
    """One blocking problem: which node, why, and a human message."""

    reason: Reason
    message: str
    node_name: str | None = None
    op_type: str | None = None

    def line(self) -> str:
        where = f"{self.op_type} node '{self.node_name}': " if self.node_name is not None else ""
        return f"[{self.reason.value}] {where}{self.message}"


class ConversionError(Exception):
    """Conversion failed; ``issues`` lists every blocking problem found."""

    def __init__(self, issues: list[Issue] | Issue, report: dict | None = None):
        self.issues: list[Issue] = [issues] if isinstance(issues, Issue) else list(issues)
        self.report = report
        super().__init__(self.summary())

    @property
    def reason(self) -> Reason:
        return self.issues[0].reason

    def summary(self) -> str:
        if len(self.issues) == 1:
            return self.issues[0].line()
        head = f"{len(self.issues)} blocking problems:"
        return "\n".join([head] + ["  " + i.line() for i in self.issues])


class LoweringError(Exception):
    """Raised inside a lowering; the driver attaches the node and collects it."""

    def __init__(self, reason: Reason, message: str):
        self.reason = reason
        self.message = message
        super().__init__(f"[{reason.value}] {message}")

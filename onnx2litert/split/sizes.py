"""Byte sizes written the way onnx2tf's ``--auto_split_max_size`` accepts them (``512KB``, ``1GB``)."""
from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3,
          "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "KIB": 1024, "MIB": 1024 ** 2, "GIB": 1024 ** 3}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_byte_size(text: str | int) -> int:
    """``"1GB"`` -> 1073741824, ``"5MB"`` -> 5242880, ``"123"`` -> 123 (binary units).

    Raises ``ValueError`` for anything else.
    """
    if isinstance(text, int):
        return text
    m = _PATTERN.match(text)
    unit = m.group(2).upper() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(f"expected a size like 512KB, 100MB or 1GB, got {text!r}")
    return int(float(m.group(1)) * _UNITS[unit])

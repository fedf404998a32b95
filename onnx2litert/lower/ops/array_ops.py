"""Lowerings of the array_ops family (see the package docstring for the op list)."""
from __future__ import annotations

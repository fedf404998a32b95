"""Lowerings of the transformer family (see the package docstring for the op list)."""
from __future__ import annotations

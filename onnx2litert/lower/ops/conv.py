"""Convolutions (placeholder module, filled in by the conv family work)."""
from __future__ import annotations

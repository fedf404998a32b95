"""IR -> IR rewrites, each small and semantics-preserving."""
from .pipeline import run_passes

__all__ = ["run_passes"]

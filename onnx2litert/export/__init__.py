"""IR -> LiteRT flatbuffer bytes."""
from .flatbuffer import export_model

__all__ = ["export_model"]

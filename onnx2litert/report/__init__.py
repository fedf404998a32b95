"""JSON reports."""
from .op_coverage import op_coverage_report

__all__ = ["op_coverage_report"]

"""Size-based splitting of large models, chained execution, and export past 2 GB.

* :func:`split_model` plans cut points over the optimized IR and builds one complete
  ``.tflite`` per partition, with a plan report and a run manifest.
* :func:`run_split_models` runs the parts in sequence from a manifest.
* :func:`export_model_auto` stores constants after the flatbuffer when they would not fit.
"""
from .core import SplitOutput, part_file_name, split_model
from .evaluate import SPLIT_EVAL_REFERENCES, evaluate_split
from ..export.large import (DEFAULT_EXTERNAL_THRESHOLD, export_model_auto, export_with_external_buffers,
                           external_buffer_count)
from .planner import SplitPlan, plan_split
from .runner import load_manifest, run_split_models
from .sizes import parse_byte_size

__all__ = ["DEFAULT_EXTERNAL_THRESHOLD", "SPLIT_EVAL_REFERENCES", "SplitOutput", "SplitPlan", "evaluate_split",
           "export_model_auto", "export_with_external_buffers", "external_buffer_count", "load_manifest",
           "parse_byte_size", "part_file_name", "plan_split", "run_split_models", "split_model"]

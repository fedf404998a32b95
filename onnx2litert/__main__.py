"""``python -m onnx2litert``."""
from .cli import main

raise SystemExit(main())

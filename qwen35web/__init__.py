"""qwen35web: Qwen3.5 (Gated DeltaNet hybrid) exported to ONNX and run in the browser, from Python.

The subpackages are the architecture (docs/architecture.md):

  qwen35web.export    checkpoint -> ONNX bundle (needs the `export` extra: torch, transformers)
  qwen35web.runtime   the generation runtime, pure Python: CPython + onnxruntime, or Pyodide + onnxruntime-web
  qwen35web.web       the static page and the commands that build and serve it

This module stays stdlib-only and imports nothing: it is also shipped to Pyodide with the runtime.
"""

__version__ = "0.2.0"

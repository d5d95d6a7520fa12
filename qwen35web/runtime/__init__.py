"""The generation runtime, laid out by where its code runs.

- `qwen35web.runtime` itself (every module here and in `tokenizer/`, `vision/`): the portable core. Standard
  library and jinja2 only; it runs in CPython and, zipped whole, in Pyodide.
- `qwen35web.runtime.native`: CPython only — the onnxruntime engine, Pillow image decoding, the command lines.
- `qwen35web.runtime.browser`: Pyodide only — the onnxruntime-web engine and what the page's worker calls; the
  only code that touches `js`/`pyodide` objects.

The core never imports `native` or `browser`: tests/runtime/test_layout.py and ruff's banned-api rule
(pyproject.toml) keep it so.
"""

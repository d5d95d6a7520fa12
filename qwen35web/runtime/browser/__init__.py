"""Runs only in Pyodide, inside the page's worker: the onnxruntime-web engine (the one module that reaches
JavaScript through Pyodide's FFI), the session the worker drives, and images handed over as JS bytes.

`engine.py` is the FFI seam; `session.py` and `images.py` take plain Python values or objects that
behave like Pyodide's proxies (`to_py()`/`to_bytes()`), so they are tested in CPython with a fake of that
seam.
"""

"""Runs only in CPython: onnxruntime and numpy (the engine), Pillow (image files), the command lines.

Never shipped to the browser (qwen35web/web/build.py leaves this folder out of the Pyodide archive).
"""

"""Pure-Python generation runtime (CPython and Pyodide)."""

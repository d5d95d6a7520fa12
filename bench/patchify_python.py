"""Patchify in pure Python (stdlib only): the candidate the ONNX patchify graph was measured against.

Not used by the runtime: `bench.vision` times it in CPython and (through bench/web/patchify.mjs)
in Pyodide, and checks that it gives exactly the graph's values. Same order as transformers:
merge block by merge block, then patch, then channel, temporal copy, patch row, patch column.
"""

from __future__ import annotations

from array import array


def patchify_python(
    rgb: bytes, height: int, width: int, table: list[float], patch: int, merge: int, temporal: int
) -> array:
    """uint8 RGB bytes [height, width, 3] -> float32 rows [h/P * w/P, 3 * T * P * P], flattened."""
    out = array("f")
    row_bytes = width * 3
    lookups = [table[c * 256 : (c + 1) * 256].__getitem__ for c in range(3)]
    for block_row in range(height // (patch * merge)):
        for block_col in range(width // (patch * merge)):
            for in_row in range(merge):
                for in_col in range(merge):
                    top = (block_row * merge + in_row) * patch
                    left = (block_col * merge + in_col) * patch
                    for channel in range(3):
                        values = array("f")
                        for y in range(top, top + patch):
                            start = y * row_bytes + left * 3 + channel
                            values.extend(map(lookups[channel], rgb[start : start + patch * 3 : 3]))
                        for _ in range(temporal):
                            out.extend(values)
    return out

"""A JS Uint8Array read in place from Python: a saved conversation's bytes, restored in the page.

`blob.to_bytes()` would copy the whole array into Pyodide's heap (and slicing bytes copies again);
a JsBytes slice is a `subarray` view instead, so only the header is ever copied into Python and each
state is copied once, in JS, by the web engine (`WebEngine.from_bytes`). No `js` import at module
level: browser/session.py (which wraps the array) also runs in CPython, in tests.
"""

from __future__ import annotations

from typing import Any


class JsBytes:
    """A runtime.engine.ByteView over a JS Uint8Array proxy."""

    def __init__(self, array: Any):
        self.array = array

    def __len__(self) -> int:
        return int(self.array.length)

    def __getitem__(self, part: slice, /) -> JsBytes:
        start, stop, step = part.indices(len(self))
        if step != 1:
            raise ValueError("JsBytes slices are contiguous")
        return JsBytes(self.array.subarray(start, max(start, stop)))

    def tobytes(self) -> bytes:
        return bytes(self.array.to_bytes())

    async def sha256(self) -> bytes | None:
        """Its SHA-256 by WebCrypto (native code: ~0.1 s for 70 MB where Pyodide's hashlib takes
        ~0.4 s); None where the page is no secure context (no crypto.subtle): hashlib then."""
        import js  # type: ignore[import-not-found]

        subtle = getattr(getattr(js, "crypto", None), "subtle", None)
        if subtle is None:
            return None
        digest = await subtle.digest("SHA-256", self.array)
        return bytes(js.Uint8Array.new(digest).to_bytes())

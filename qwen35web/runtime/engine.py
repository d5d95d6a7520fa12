"""The backend seam: what the runtime needs from an ONNX runtime, and nothing more.

Two implementations: `native/engine.py` (onnxruntime in CPython, tensors are numpy arrays) and
`browser/engine.py` (onnxruntime-web through Pyodide's FFI, tensors are JS `ort.Tensor`s that may live
on the GPU). Everything above this seam is backend-agnostic, stdlib-only Python.
"""

from __future__ import annotations

from typing import Any, Protocol

Tensor = Any  # an opaque handle owned by the engine


class ByteView(Protocol):
    """Bytes read in place, not copied: a memoryview natively, the page's JS Uint8Array in the browser
    (browser/engine.JsBytes). A slice is another view; `tobytes()` copies."""

    def __len__(self) -> int: ...

    def __getitem__(self, part: slice, /) -> ByteView: ...

    def tobytes(self) -> bytes: ...


TensorBytes = bytes | memoryview | ByteView  # what from_bytes takes: bytes, or a view of a saved file

MODEL_ROLE = "model"
SAMPLER_ROLE = "sampler"


class Engine(Protocol):
    @property
    def name(self) -> str:
        """ "cpu" natively; "webgpu" or "wasm" in the browser."""

    @property
    def busy_seconds(self) -> float:
        """Wall time spent inside run/read so far (the Python share is the rest)."""

    async def open(self, role: str, source: str) -> None:
        """Create the session for `role` from a file path (native) or URL (web)."""

    def int64(self, values: list[int], dims: list[int]) -> Tensor: ...

    def float32(self, values: list[float], dims: list[int]) -> Tensor: ...

    def ones_int64(self, dims: list[int]) -> Tensor:
        """All-ones int64 tensor, built without a Python loop over its elements."""

    def zeros(self, dtype: str, dims: list[int]) -> Tensor: ...

    async def run(self, role: str, feeds: dict[str, Tensor], outputs: list[str]) -> dict[str, Tensor]: ...

    async def read(self, tensor: Tensor) -> list[Any]:
        """The tensor's elements as a flat Python list (copies from the device if needed)."""

    async def read_last_row(self, tensor: Tensor) -> list[float]:
        """Row [0, -1, :] of a [1, T, N] tensor (parity checks; not on the per-token path)."""

    def release(self, tensor: Tensor) -> None:
        """Free a tensor the runtime no longer needs (GPU buffers must not leak)."""

    def live_tensors(self) -> int:
        """How many tensors this engine created and has not released (leak checks)."""

    # Kept states and saved conversations (prefix_cache, conversation_file): sizes, cutting a KV
    # cache, bytes in and out.

    def nbytes(self, tensor: Tensor) -> int:
        """Bytes the tensor's elements occupy (memory budgets of kept states)."""

    def can_cut(self, tensor: Tensor) -> bool:
        """Whether `cut` works on this tensor without a round trip off the device."""

    def cut(self, tensor: Tensor, axis: int, length: int) -> Tensor | None:
        """A new tensor holding the first `length` entries along `axis` (a KV cache cut to a shorter
        past), or None when `can_cut` is false."""

    async def to_bytes(self, tensor: Tensor) -> tuple[str, list[int], bytes]:
        """(dtype, dims, little-endian element bytes), downloaded from the device if needed."""

    def from_bytes(self, dtype: str, dims: list[int], data: TensorBytes) -> Tensor:
        """A tensor from what `to_bytes` gave (on the CPU: the next run uploads it); it owns its
        elements (a view's bytes are copied once, never kept)."""

    async def close(self) -> None: ...

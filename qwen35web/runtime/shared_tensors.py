"""Tensors with more than one holder: the runner's current states and the kept states
(prefix_cache).

onnxruntime never writes into its inputs, so keeping a state needs no copy: it keeps the very tensors a
run produced (on WebGPU they stay GPU buffers) and the runner may feed them again later. What must
change is who frees them: `SharingEngine` wraps an engine and counts the extra holders of a tensor,
so `release()` frees it only when its last holder lets go. Tensors nobody retained behave exactly as
before (released at once).
"""

from __future__ import annotations

from typing import Any

from qwen35web.runtime.engine import Engine, Tensor, TensorBytes


class SharingEngine:
    """An `Engine` whose `release` honours `retain`: freed when the last holder releases."""

    def __init__(self, inner: Engine):
        self.inner = inner
        self._extra_holders: dict[int, int] = {}  # id(tensor) -> holders beyond the first

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def busy_seconds(self) -> float:
        return self.inner.busy_seconds

    def retain(self, tensor: Tensor) -> Tensor:
        """One more holder of `tensor` (each retain is matched by one release)."""
        key = id(tensor)
        self._extra_holders[key] = self._extra_holders.get(key, 0) + 1
        return tensor

    def release(self, tensor: Tensor) -> None:
        key = id(tensor)
        extra = self._extra_holders.get(key, 0)
        if extra == 0:
            self.inner.release(tensor)
        elif extra == 1:
            del self._extra_holders[key]
        else:
            self._extra_holders[key] = extra - 1

    def holders(self, tensor: Tensor) -> int:
        return 1 + self._extra_holders.get(id(tensor), 0)

    async def open(self, role: str, source: str) -> None:
        await self.inner.open(role, source)

    def int64(self, values: list[int], dims: list[int]) -> Tensor:
        return self.inner.int64(values, dims)

    def float32(self, values: list[float], dims: list[int]) -> Tensor:
        return self.inner.float32(values, dims)

    def ones_int64(self, dims: list[int]) -> Tensor:
        return self.inner.ones_int64(dims)

    def zeros(self, dtype: str, dims: list[int]) -> Tensor:
        return self.inner.zeros(dtype, dims)

    async def run(self, role: str, feeds: dict[str, Tensor], outputs: list[str]) -> dict[str, Tensor]:
        return await self.inner.run(role, feeds, outputs)

    async def read(self, tensor: Tensor) -> list[Any]:
        return await self.inner.read(tensor)

    async def read_last_row(self, tensor: Tensor) -> list[float]:
        return await self.inner.read_last_row(tensor)

    def live_tensors(self) -> int:
        return self.inner.live_tensors()

    def nbytes(self, tensor: Tensor) -> int:
        return self.inner.nbytes(tensor)

    def can_cut(self, tensor: Tensor) -> bool:
        return self.inner.can_cut(tensor)

    def cut(self, tensor: Tensor, axis: int, length: int) -> Tensor | None:
        return self.inner.cut(tensor, axis, length)

    async def to_bytes(self, tensor: Tensor) -> tuple[str, list[int], bytes]:
        return await self.inner.to_bytes(tensor)

    def from_bytes(self, dtype: str, dims: list[int], data: TensorBytes) -> Tensor:
        return self.inner.from_bytes(dtype, dims, data)

    async def close(self) -> None:
        self._extra_holders.clear()
        await self.inner.close()

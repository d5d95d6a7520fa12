"""The native engine: onnxruntime's CPU provider in CPython; tensors are numpy arrays."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnxruntime as ort

from qwen35web.runtime.engine import Tensor, TensorBytes
from qwen35web.runtime.errors import BundleError

_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "uint8": np.uint8}


class NativeEngine:
    name = "cpu"

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self.sessions: dict[str, ort.InferenceSession] = {}
        self._live = 0  # numpy is garbage collected; counted only to mirror the web engine's contract
        self.busy_seconds = 0.0

    async def open(self, role: str, source: str) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            self.sessions[role] = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable graphs
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BundleError(f"cannot load {source}: {first_line}") from None

    def int64(self, values: list[int], dims: list[int]) -> Tensor:
        return np.asarray(values, dtype=np.int64).reshape(dims)

    def float32(self, values: list[float], dims: list[int]) -> Tensor:
        return np.asarray(values, dtype=np.float32).reshape(dims)

    def ones_int64(self, dims: list[int]) -> Tensor:
        return np.ones(dims, dtype=np.int64)

    def zeros(self, dtype: str, dims: list[int]) -> Tensor:
        return np.zeros(dims, dtype=_DTYPES[dtype])

    async def run(self, role: str, feeds: dict[str, Tensor], outputs: list[str]) -> dict[str, Tensor]:
        start = time.perf_counter()
        results = self.sessions[role].run(outputs, feeds)
        self.busy_seconds += time.perf_counter() - start
        return dict(zip(outputs, results, strict=True))

    async def read(self, tensor: Tensor) -> list[Any]:
        start = time.perf_counter()
        values = np.asarray(tensor).ravel().tolist()
        self.busy_seconds += time.perf_counter() - start
        return values

    async def read_last_row(self, tensor: Tensor) -> list[float]:
        return np.asarray(tensor)[0, -1].astype(np.float32).tolist()

    def release(self, tensor: Tensor) -> None:
        return None

    def live_tensors(self) -> int:
        return self._live

    def nbytes(self, tensor: Tensor) -> int:
        return int(np.asarray(tensor).nbytes)

    def can_cut(self, tensor: Tensor) -> bool:
        return True

    def cut(self, tensor: Tensor, axis: int, length: int) -> Tensor | None:
        index = (slice(None),) * axis + (slice(0, length),)
        return np.ascontiguousarray(np.asarray(tensor)[index])

    async def to_bytes(self, tensor: Tensor) -> tuple[str, list[int], bytes]:
        array = np.ascontiguousarray(tensor)
        return str(array.dtype), list(array.shape), array.astype(array.dtype.newbyteorder("<")).tobytes()

    def from_bytes(self, dtype: str, dims: list[int], data: TensorBytes) -> Tensor:
        little_endian = np.dtype(_DTYPES[dtype]).newbyteorder("<")
        buffer = data if isinstance(data, bytes | memoryview) else data.tobytes()
        # astype copies: the tensor never holds on to a view of a saved file's bytes
        return np.frombuffer(buffer, dtype=little_endian).astype(_DTYPES[dtype]).reshape(dims)

    async def close(self) -> None:
        self.sessions.clear()

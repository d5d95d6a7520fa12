"""The web engine: onnxruntime-web driven from Pyodide through its JavaScript FFI.

The only module of the runtime that imports `js` / `pyodide`. Tensors are JS `ort.Tensor` proxies.
With WebGPU the model session keeps every output (logits [1, T, V] and the present states) on the
GPU ('gpu-buffer'), so the states go straight back in as the next run's pasts and the logits go
straight into the sampler graph; per token Python reads back only the sampler's k candidates.
Every tensor handed out is counted until `release()`, which disposes the GPU ones at once (GPU
buffers are not garbage collected): leaks show in `live_tensors()`.

Weights come from a `files` object of the page's worker: `files.bytes(path)` returns the verified
bytes of a bundle file (a Uint8Array), already downloaded and checked against the manifest's sha256;
`files.externalData(path)` lists the external-data files of a graph (from browser/session's download plan).
"""

from __future__ import annotations

import array
import logging
import time
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import JsException, to_js  # type: ignore[import-not-found]

from qwen35web.runtime.browser.js_bytes import JsBytes
from qwen35web.runtime.engine import MODEL_ROLE, Tensor, TensorBytes
from qwen35web.runtime.errors import BundleError

logger = logging.getLogger(__name__)

BACKENDS = ("webgpu", "wasm")
# float16 data travels as raw bits in a Uint16Array (onnxruntime-web accepts it): Pyodide cannot
# hand a Float16Array across the FFI ("Unknown typed array type").
# uint8: an image's resized RGB pixels, the patchify graph's input.
_TYPED_ARRAYS = {
    "float32": "Float32Array",
    "int64": "BigInt64Array",
    "float16": "Uint16Array",
    "uint8": "Uint8Array",
}
_ITEM_BYTES = {"float32": 4, "int64": 8, "float16": 2, "uint8": 1}


class EngineRunError(RuntimeError):
    """onnxruntime-web refused a run (the message is onnxruntime's first line)."""


def _typed_to_list(data: Any) -> list[Any]:
    """A typed array's elements as a Python list (Pyodide cannot convert a Float16Array itself)."""
    if data.constructor.name == "Float16Array":
        data = js.Float32Array.new(data)
    return data.to_py().tolist()  # type: ignore[no-any-return]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _js_object(mapping: dict[str, Any]) -> Any:
    """A plain JS object from a dict (nested dicts too); JS values inside pass through unchanged."""
    return to_js(mapping, dict_converter=js.Object.fromEntries)


class WebEngine:
    """Engine over onnxruntime-web: `ort` is the imported ORT module, `files` the worker's verified files."""

    def __init__(self, ort: Any, backend: str, files: Any):
        if backend not in BACKENDS:
            raise BundleError(f"unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")
        self.ort = ort
        self.name = backend
        self.files = files
        self.sessions: dict[str, Any] = {}
        self.busy_seconds = 0.0
        self._live: dict[int, tuple[Tensor, bool]] = {}  # id -> (tensor, lives on the GPU)
        self._fetches: dict[tuple[str, ...], Any] = {}
        # Roles whose outputs stay on the GPU ('gpu-buffer'): only the model's, and only with WebGPU.
        self._gpu_output_roles = {MODEL_ROLE} if backend == "webgpu" else set()
        self._one = js.BigInt(1)

    def _session_options(self, role: str, source: str) -> Any:
        # The external-data files `source` references, as the download plan listed them.
        external = [
            {"path": path, "data": self.files.bytes(path)} for path in self.files.externalData(source)
        ]
        # Model outputs stay on the GPU; the sampler's few outputs come back to the CPU for Python.
        location = "gpu-buffer" if role in self._gpu_output_roles else "cpu"
        options: dict[str, Any] = {
            "executionProviders": [self.name],
            "graphOptimizationLevel": "all",
            "logSeverityLevel": 3,
            "preferredOutputLocation": location,
        }
        if external:
            options["externalData"] = external
        return _js_object(options)

    async def open(self, role: str, source: str) -> None:
        """Create the session for `role` from bundle file `source` (and its external data)."""
        try:
            model_bytes = self.files.bytes(source)
            self.sessions[role] = await self.ort.InferenceSession.create(
                model_bytes, self._session_options(role, source)
            )
        except JsException as err:
            raise BundleError(
                f"onnxruntime-web ({self.name}) cannot load {source}: {_first_line(err)}"
            ) from None

    def _track(self, tensor: Tensor, on_gpu: bool = False) -> Tensor:
        self._live[id(tensor)] = (tensor, on_gpu)
        return tensor

    def _tensor(self, dtype: str, data: Any, dims: list[int]) -> Tensor:
        return self._track(self.ort.Tensor.new(dtype, data, to_js(dims)))

    def int64(self, values: list[int], dims: list[int]) -> Tensor:
        # array.array('q') converts to a BigInt64Array in one copy (no per-element FFI calls).
        return self._tensor("int64", to_js(array.array("q", values)), dims)

    def float32(self, values: list[float], dims: list[int]) -> Tensor:
        return self._tensor("float32", to_js(array.array("f", values)), dims)

    def ones_int64(self, dims: list[int]) -> Tensor:
        return self._tensor("int64", js.BigInt64Array.new(_element_count(dims)).fill(self._one), dims)

    def zeros(self, dtype: str, dims: list[int]) -> Tensor:
        typed_array = getattr(js, _TYPED_ARRAYS[dtype])
        return self._tensor(dtype, typed_array.new(_element_count(dims)), dims)

    def _output_names(self, outputs: list[str]) -> Any:
        key = tuple(outputs)
        if key not in self._fetches:  # the same few lists every token: convert each once
            self._fetches[key] = to_js(outputs)
        return self._fetches[key]

    async def run(self, role: str, feeds: dict[str, Tensor], outputs: list[str]) -> dict[str, Tensor]:
        start = time.perf_counter()
        try:
            results = await self.sessions[role].run(_js_object(feeds), self._output_names(outputs))
        except JsException as err:
            raise EngineRunError(
                f"onnxruntime-web ({self.name}) run of the {role}: {_first_line(err)}"
            ) from None
        finally:
            self.busy_seconds += time.perf_counter() - start
        on_gpu = role in self._gpu_output_roles
        by_name = results.to_py(depth=1)  # {name: ort.Tensor proxy} in one FFI call
        return {name: self._track(by_name[name], on_gpu) for name in outputs}

    async def _data(self, tensor: Tensor) -> Any:
        """The tensor's typed array, downloaded from the GPU when it lives there."""
        entry = self._live.get(id(tensor))
        if entry is not None and entry[1]:
            return await tensor.getData()
        return tensor.data

    async def read(self, tensor: Tensor) -> list[Any]:
        start = time.perf_counter()
        try:
            return _typed_to_list(await self._data(tensor))
        finally:
            self.busy_seconds += time.perf_counter() - start

    async def read_last_row(self, tensor: Tensor) -> list[float]:
        width = int(tensor.dims[len(tensor.dims) - 1])
        data = await self._data(tensor)
        return _typed_to_list(data.subarray(data.length - width))

    def release(self, tensor: Tensor) -> None:
        entry = self._live.pop(id(tensor), None)
        if entry is None:
            logger.debug("release of a tensor this engine does not hold")
        elif entry[1]:
            tensor.dispose()  # frees the GPU buffer now; CPU tensors are left to the garbage collector

    def live_tensors(self) -> int:
        return len(self._live)

    def nbytes(self, tensor: Tensor) -> int:
        return int(tensor.size) * _ITEM_BYTES[str(tensor.type)]

    def can_cut(self, tensor: Tensor) -> bool:
        """CPU tensors only: a GPU tensor would need a slice graph, so on WebGPU the prefix cache keeps
        each kept state's own tensors (kept alive, never copied) instead of sharing a longer KV."""
        entry = self._live.get(id(tensor))
        return entry is None or not entry[1]

    def cut(self, tensor: Tensor, axis: int, length: int) -> Tensor | None:
        """KV cut on the CPU (wasm): one typed-array copy per leading row of [B, H, T, D]."""
        if not self.can_cut(tensor):
            return None
        dims = [int(d) for d in tensor.dims.to_py()]
        outer, inner, old = _element_count(dims[:axis]), _element_count(dims[axis + 1 :]), dims[axis]
        source = tensor.data
        target = getattr(js, _TYPED_ARRAYS[str(tensor.type)]).new(outer * length * inner)
        for row in range(outer):  # [B*H] rows of [T, D]: a handful of heads
            begin = row * old * inner
            target.set(source.subarray(begin, begin + length * inner), row * length * inner)
        return self._tensor(str(tensor.type), target, [*dims[:axis], length, *dims[axis + 1 :]])

    async def to_bytes(self, tensor: Tensor) -> tuple[str, list[int], bytes]:
        data = await self._data(tensor)
        raw = js.Uint8Array.new(data.buffer, data.byteOffset, data.byteLength)
        return str(tensor.type), [int(d) for d in tensor.dims.to_py()], bytes(raw.to_bytes())

    def from_bytes(self, dtype: str, dims: list[int], data: TensorBytes) -> Tensor:
        if isinstance(data, JsBytes):  # a view of a saved conversation: one copy, in JS
            copy = data.array.slice()  # its own buffer, aligned for the typed-array view below
        else:
            raw = to_js(memoryview(data) if isinstance(data, bytes) else data)  # a Uint8Array copy
            copy = js.Uint8Array.new(raw.byteLength)
            copy.set(raw)
        typed = getattr(js, _TYPED_ARRAYS[dtype]).new(copy.buffer)
        return self._tensor(dtype, typed, dims)

    async def close(self) -> None:
        for tensor, _ in list(self._live.values()):
            self.release(tensor)
        for session in self.sessions.values():
            await session.release()
        self.sessions.clear()


def _element_count(dims: list[int]) -> int:
    count = 1
    for dim in dims:
        count *= dim
    return count

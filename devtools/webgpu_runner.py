"""Run ONNX graphs on onnxruntime-web's WebGPU backend in headless Chromium, from Python (tests, benches).

A throwaway page loads onnxruntime-web's native WebGPU build (`ort.webgpu.bundle.min.mjs`, the build the
site loads for WebGPU) from node_modules; graphs are handed over as bytes, sessions kept by name, feeds and
outputs cross as base64. Here the adapter is SwiftShader (a CPU adapter): results are for correctness, and
any timing is meaningless unless `adapter()["isFallbackAdapter"]` is false.

    with WebGpuPage() as gpu:
        gpu.load("m", model_bytes)
        outputs = gpu.run("m", {"x": array})          # {name: np.ndarray}
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import mimetypes
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from devtools.chromium import CHROMIUM, CHROMIUM_FLAGS

ROOT = Path(__file__).resolve().parents[1]
ORT_DIST = ROOT / "node_modules" / "onnxruntime-web" / "dist"
ASYNCIFY = "ort-wasm-simd-threaded.asyncify"
TIMEOUT_MS = 600_000
# numpy dtype name <-> onnxruntime-web tensor type (its typed array holds the raw bytes).
ORT_TYPES = {"float32": "float32", "float16": "float16", "int64": "int64", "int32": "int32"}

mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")

PAGE = """<!doctype html><meta charset="utf-8"><script type="module">
import * as ort from "./ort/ort.webgpu.bundle.min.mjs";
ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
ort.env.logLevel = "error";
const ARRAYS = {float32: Float32Array, float16: Uint16Array, int64: BigInt64Array, int32: Int32Array};
const sessions = new Map();
function bytes(b64) { return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)); }
function b64(view) {
  const u = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  let s = "";
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
  return btoa(s);
}
function tensors(feeds) {
  const out = {};
  for (const [name, f] of Object.entries(feeds)) {
    out[name] = new ort.Tensor(f.type, new ARRAYS[f.type](bytes(f.data).buffer), f.dims);
  }
  return out;
}
window.gpu = {
  async adapter() {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info || {};
    return {isFallbackAdapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
            vendor: info.vendor || "", architecture: info.architecture || "",
            description: info.description || "",
            features: [...adapter.features].sort()};
  },
  async load(name, modelB64) {
    const session = await ort.InferenceSession.create(bytes(modelB64), {executionProviders: ["webgpu"]});
    sessions.set(name, session);
    return {inputs: session.inputNames, outputs: session.outputNames};
  },
  async run(name, feeds) {
    const out = await sessions.get(name).run(tensors(feeds));
    const result = {};
    for (const [key, tensor] of Object.entries(out)) {
      result[key] = {type: tensor.type, dims: tensor.dims, data: b64(await tensor.getData())};
      tensor.dispose();
    }
    return result;
  },
  async time(name, feeds, repeats) {
    const session = sessions.get(name), input = tensors(feeds), samples = [];
    for (let i = 0; i < repeats + 1; i++) {
      const start = performance.now();
      const out = await session.run(input);
      for (const tensor of Object.values(out)) { await tensor.getData(); tensor.dispose(); }
      if (i > 0) samples.push(performance.now() - start);  // the first run compiles the shaders
    }
    return samples;
  },
  async release(name) { await sessions.get(name).release(); sessions.delete(name); },
};
window.ready = true;
</script>"""


def to_js(feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Feeds as the page takes them: {name: {type, dims, data (base64 of the raw bytes)}}."""
    out = {}
    for name, array in feeds.items():
        kind = ORT_TYPES[array.dtype.name]
        data = base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()
        out[name] = {"type": kind, "dims": list(array.shape), "data": data}
    return out


def from_js(outputs: dict[str, Any]) -> dict[str, np.ndarray]:
    arrays = {}
    for name, tensor in outputs.items():
        raw = np.frombuffer(base64.b64decode(tensor["data"]), dtype=np.dtype(tensor["type"]))
        arrays[name] = raw.reshape(tensor["dims"]).copy()
    return arrays


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def ort_webgpu_site(page: str = PAGE) -> Iterator[str]:
    """Serve `page` as index.html beside onnxruntime-web's WebGPU build (under ort/), on 127.0.0.1;
    yields the base URL."""
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        (site / "index.html").write_text(page)
        (site / "ort").mkdir()
        # With wasmPaths set, the bundle imports the asyncify .mjs beside the .wasm.
        for name in ("ort.webgpu.bundle.min.mjs", f"{ASYNCIFY}.wasm", f"{ASYNCIFY}.mjs"):
            shutil.copy(ORT_DIST / name, site / "ort" / name)
        handler = functools.partial(_QuietHandler, directory=str(site))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


class WebGpuPage:
    """One headless Chromium page with onnxruntime-web's WebGPU build; a context manager."""

    def __init__(self, browser: Any = None) -> None:
        """`browser`: a Playwright Chromium already launched with CHROMIUM_FLAGS (Playwright's sync
        API allows one driver per process: a test session shares its own); None starts one."""
        self._stack = contextlib.ExitStack()
        self._browser = browser
        self.page: Any = None

    def __enter__(self) -> WebGpuPage:
        base = self._stack.enter_context(ort_webgpu_site())
        browser = self._browser
        if browser is None:
            from playwright.sync_api import sync_playwright

            playwright = self._stack.enter_context(sync_playwright())
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            self._stack.callback(browser.close)
        context = browser.new_context()
        self._stack.callback(context.close)
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.goto(f"{base}/index.html")
        self.page.wait_for_function("window.ready === true")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def adapter(self) -> dict[str, Any] | None:
        """The WebGPU adapter: isFallbackAdapter, vendor, architecture, description, features."""
        return self.page.evaluate("() => window.gpu.adapter()")

    def load(self, name: str, model: bytes) -> dict[str, list[str]]:
        """A WebGPU session for `model` (a serialized ModelProto, weights inline), kept as `name`."""
        encoded = base64.b64encode(model).decode()
        return self.page.evaluate("([n, m]) => window.gpu.load(n, m)", [name, encoded])

    def run(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return from_js(self.page.evaluate("([n, f]) => window.gpu.run(n, f)", [name, to_js(feeds)]))

    def time(self, name: str, feeds: dict[str, np.ndarray], repeats: int) -> list[float]:
        """Milliseconds per run (outputs read back), after one untimed run."""
        return self.page.evaluate("([n, f, r]) => window.gpu.time(n, f, r)", [name, to_js(feeds), repeats])

    def release(self, name: str) -> None:
        self.page.evaluate("n => window.gpu.release(n)", name)

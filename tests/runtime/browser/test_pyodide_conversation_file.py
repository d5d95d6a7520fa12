"""Saved conversations in Pyodide (no numpy there): the same bytes as CPython writes, read back the
same, and the web engine's tensor bytes (onnxruntime-web's `Tensor`, run by Node) round-trip and cut
a KV cache like numpy does; the page's restore reads a JS array in place (JsBytes, WebCrypto
checksum). Needs `node` and node_modules (pyodide, onnxruntime-web): `make setup`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qwen35web.runtime.conversation_file import SavedConversation, SavedTensor, decode, encode

REPO = Path(__file__).resolve().parents[3]
NODE_MODULES = REPO / "node_modules"
NODE = shutil.which("node")

_RUNNER = """
import { loadPyodide } from "%(modules)s/pyodide/pyodide.mjs";
import * as ort from "%(modules)s/onnxruntime-web/dist/ort.all.min.mjs";
import fs from "fs";
const [work, runtime] = process.argv.slice(2);
const py = await loadPyodide({ indexURL: "%(modules)s/pyodide/" });
py.FS.mkdirTree("/work/qwen35web");
py.FS.writeFile("/work/qwen35web/__init__.py", fs.readFileSync(`${runtime}/../__init__.py`));
// The runtime package with its subpackages (vision/, tokenizer/), as the page's runtime archive has it.
for (const entry of fs.readdirSync(runtime, { recursive: true })) {
  if (!entry.endsWith(".py")) continue;
  const target = `/work/qwen35web/runtime/${entry}`;
  py.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
  py.FS.writeFile(target, fs.readFileSync(`${runtime}/${entry}`));
}
for (const name of fs.readdirSync(work)) py.FS.writeFile(`/work/${name}`, fs.readFileSync(`${work}/${name}`));
py.registerJsModule("ort_module", ort);
console.log(await py.runPythonAsync(fs.readFileSync(`${work}/check.py`, "utf8")));
"""

_CHECK = """
import hashlib, json, sys
sys.path.insert(0, "/work")
import ort_module
from qwen35web.runtime.browser.engine import WebEngine
from qwen35web.runtime.conversation_file import SavedConversation, SavedTensor, decode, encode

case = json.load(open("/work/case.json"))
tensors = [SavedTensor(t["name"], t["dtype"], t["shape"], bytes.fromhex(t["hex"])) for t in case["tensors"]]
saved = SavedConversation("ab" * 32, "fp32", case["messages"], case["token_ids"], tensors)
written = encode(saved)
read = decode(open("/work/native.q35", "rb").read())
engine = WebEngine(ort_module, "wasm", None)
bytes_back, cut_back = [], []
for tensor in tensors:
    handle = engine.from_bytes(tensor.dtype, tensor.shape, tensor.data)
    dtype, dims, data = await engine.to_bytes(handle)
    bytes_back.append([dtype, dims, data == tensor.data, engine.nbytes(handle) == len(tensor.data)])
    if len(tensor.shape) == 4:
        cut = engine.cut(handle, 2, 2)
        cut_back.append((await engine.to_bytes(cut))[2].hex())
# The page's restore: the file as a JS array read in place (JsBytes), its checksum by WebCrypto.
import js
from pyodide.ffi import to_js
from qwen35web.runtime.browser.js_bytes import JsBytes
from qwen35web.runtime.conversation_file import SavedConversationError
array = to_js(memoryview(open("/work/native.q35", "rb").read()))
view = JsBytes(array)
in_place = decode(view, await view[: len(view) - 32].sha256())
in_place_back = []
for tensor in in_place.tensors:
    handle = engine.from_bytes(tensor.dtype, tensor.shape, tensor.data)
    in_place_back.append((await engine.to_bytes(handle))[2].hex())
array[len(view) - 40] ^= 1  # one flipped bit in the last tensor
try:
    decode(view, await view[: len(view) - 32].sha256())
    corrupted = "decoded"
except SavedConversationError as err:
    corrupted = str(err)
json.dumps({
    "in_place": [in_place.messages == case["messages"], in_place.token_ids == case["token_ids"],
                 in_place_back == [t["hex"] for t in case["tensors"]]],
    "corrupted": corrupted,
    "python": sys.version.split()[0],
    "written_sha256": hashlib.sha256(written).hexdigest(),
    "read_back": [read.messages == case["messages"], read.token_ids == case["token_ids"],
                  [t.data.hex() for t in read.tensors] == [t["hex"] for t in case["tensors"]]],
    "bytes_back": bytes_back,
    "cut": cut_back,
})
"""


@pytest.fixture(autouse=True)
def _require_node_modules() -> None:
    assert NODE is not None, "node is not on PATH (make setup)"
    for package in ("pyodide", "onnxruntime-web"):
        assert (NODE_MODULES / package).is_dir(), f"node_modules/{package} is missing (make setup)"


def _case() -> tuple[SavedConversation, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    arrays = [
        rng.standard_normal((1, 6, 3)).astype(np.float32),  # a conv state
        rng.standard_normal((1, 2, 5, 4)).astype(np.float32),  # a KV cache with 5 past positions
        rng.standard_normal((1, 2, 5, 4)).astype(np.float16),
        rng.integers(-(2**40), 2**40, (1, 3)).astype(np.int64),
    ]
    tensors = [
        SavedTensor(f"past_{i}", a.dtype.name, list(a.shape), a.tobytes()) for i, a in enumerate(arrays)
    ]
    messages = [{"role": "user", "content": "héllo 你好 🙂"}, {"role": "assistant", "content": "ok"}]
    return SavedConversation("ab" * 32, "fp32", messages, [1, 2, 3, 4, 5], tensors), arrays


def test_pyodide_reads_and_writes_the_same_files(tmp_path: Path) -> None:
    import hashlib

    saved, arrays = _case()
    native = encode(saved)
    (tmp_path / "native.q35").write_bytes(native)
    case = {
        "messages": saved.messages,
        "token_ids": saved.token_ids,
        "tensors": [
            {"name": t.name, "dtype": t.dtype, "shape": t.shape, "hex": t.data.hex()} for t in saved.tensors
        ],
    }
    (tmp_path / "case.json").write_text(json.dumps(case), encoding="utf-8")
    (tmp_path / "check.py").write_text(_CHECK, encoding="utf-8")
    runner = tmp_path / "run.mjs"
    runner.write_text(_RUNNER % {"modules": NODE_MODULES.as_posix()}, encoding="utf-8")
    completed = subprocess.run(
        [str(NODE), str(runner), str(tmp_path), str(REPO / "qwen35web" / "runtime")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # Pyodide's error output starts with its own minified source: show the Python traceback.
    assert completed.returncode == 0, completed.stderr[completed.stderr.rfind("Traceback") :][:3000]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["written_sha256"] == hashlib.sha256(native).hexdigest()  # byte for byte
    assert report["read_back"] == [True, True, True]
    assert report["in_place"] == [True, True, True]  # the page's restore: a JS array read in place
    assert report["corrupted"] == "truncated or corrupted (its checksum does not match)"
    for (dtype, dims, same, size_ok), array in zip(report["bytes_back"], arrays, strict=True):
        assert (dtype, dims, same, size_ok) == (array.dtype.name, list(array.shape), True, True)
    kv = [a for a in arrays if a.ndim == 4]
    assert report["cut"] == [np.ascontiguousarray(a[:, :, :2]).tobytes().hex() for a in kv]
    assert decode(native).messages == saved.messages

// Pyodide with qwen35web.runtime imported, from its memory image when this browser has one.
//
// Starting Pyodide (its interpreter and standard library) is most of the time to ready. The first start
// takes an image of the wasm memory once the runtime is imported (what Pyodide calls a memory snapshot:
// `_makeSnapshot` / `makeMemorySnapshot`, which leave that instance usable) and keeps it in the Cache
// API; later starts restore it (`_loadSnapshot`) in a fraction of the time. The memory image is keyed by
// the Pyodide version and the runtime archive's sha256, so a new site version makes a new one (older
// ones are dropped); it carries its own sha256, and any failure falls back to a plain start. The
// runtime's files live in Pyodide's file system, not in wasm memory: they are unpacked again after a
// restore.

import { loadPyodide, version as PYODIDE_VERSION } from "../vendor/pyodide/pyodide.mjs";

const RUNTIME_ARCHIVE = new URL("../py/runtime.zip", import.meta.url).href;
const PYTHON_APP_DIR = "/home/pyodide/app";
// Where the images are stored (names kept as they are: new names would orphan stored images).
const MEMORY_IMAGE_CACHE = "qwen35web-python-v1";
const IMAGE_SHA_HEADER = "X-Snapshot-Sha256";
// Imported before the memory image is taken: what every session needs (none of it touches JS objects).
const PRELOAD = ["qwen35web.runtime.browser.session", "qwen35web.runtime.tokenizer", "jinja2"];

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function fetchArchive() {
  const response = await fetch(RUNTIME_ARCHIVE);
  if (!response.ok) throw new Error(`${RUNTIME_ARCHIVE}: the server answered HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

class MemoryImageStore {
  constructor(cache, key) {
    this.cache = cache;
    this.key = key;
  }

  static async open(archive) {
    if (!self.caches || !self.crypto?.subtle) return new MemoryImageStore(null, null);
    try {
      const key = `${self.location.origin}/.python/${PYODIDE_VERSION}/${(await sha256Hex(archive)).slice(0, 32)}`;
      return new MemoryImageStore(await caches.open(MEMORY_IMAGE_CACHE), key);
    } catch (err) {
      console.warn(`no Python memory images here (${err.message})`);
      return new MemoryImageStore(null, null);
    }
  }

  async read() {
    const hit = this.cache && (await this.cache.match(this.key));
    if (!hit) return null;
    const bytes = new Uint8Array(await hit.arrayBuffer());
    if ((await sha256Hex(bytes)) === hit.headers.get(IMAGE_SHA_HEADER)) return bytes;
    console.warn("the stored Python memory image is damaged; starting Python without it");
    await this.forget();
    return null;
  }

  async write(bytes) {
    if (!this.cache) return;
    try {
      const headers = { [IMAGE_SHA_HEADER]: await sha256Hex(bytes), "Content-Type": "application/octet-stream" };
      await this.cache.put(this.key, new Response(bytes, { headers }));
      for (const request of await this.cache.keys()) {
        if (request.url !== this.key) await this.cache.delete(request); // images of older versions
      }
    } catch (err) {
      console.warn(`the Python memory image was not stored (${err.message})`);
    }
  }

  forget() {
    return this.cache ? this.cache.delete(this.key) : Promise.resolve(false);
  }
}

const output = { stdout: (line) => console.log(line), stderr: (line) => console.warn(line) };

function unpack(pyodide, archive) {
  pyodide.unpackArchive(archive, "zip", { extractDir: PYTHON_APP_DIR });
  pyodide.runPython("import importlib; importlib.invalidate_caches()");
}

async function restore(indexURL, memoryImage, archive) {
  const pyodide = await loadPyodide({ indexURL, _loadSnapshot: memoryImage, ...output });
  unpack(pyodide, archive);
  pyodide.runPython(`import sys; assert ${JSON.stringify(PYTHON_APP_DIR)} in sys.path`);
  return pyodide;
}

async function startFresh(indexURL, archive, store) {
  const pyodide = await loadPyodide({ indexURL, _makeSnapshot: Boolean(store.cache), ...output });
  unpack(pyodide, archive);
  pyodide.runPython(`import sys; sys.path.insert(0, ${JSON.stringify(PYTHON_APP_DIR)})`);
  for (const name of PRELOAD) pyodide.pyimport(name).destroy();
  if (store.cache) {
    try {
      store.write(pyodide.makeMemorySnapshot()); // not awaited: storing is off the path to ready
    } catch (err) {
      console.warn(`no Python memory image made (${err.message})`);
    }
  }
  return pyodide;
}

// {pyodide, fromMemoryImage}; `timings.time(name, promise)` records the parts.
export async function startPython(timings) {
  const indexURL = new URL("../vendor/pyodide/", import.meta.url).href;
  const archive = await fetchArchive();
  const store = await MemoryImageStore.open(archive);
  const memoryImage = await store.read();
  if (memoryImage) {
    try {
      return { pyodide: await timings.time("pyodide", restore(indexURL, memoryImage, archive)), fromMemoryImage: true };
    } catch (err) {
      console.warn(`Python did not start from its memory image (${err.message}); starting it afresh`);
      await store.forget();
    }
  }
  return { pyodide: await timings.time("pyodide", startFresh(indexURL, archive, store)), fromMemoryImage: false };
}

// bench.vision's web-side timings, in Node (V8, the engine Chromium runs wasm with):
//   node bench/web/vision_node.mjs wasm SPEC.json     onnxruntime-web 1.30 wasm EP, 1 thread
//   node bench/web/vision_node.mjs pyodide SPEC.json  the pure-Python patchify in Pyodide
// SPEC (written by bench/vision.py) names the graph, its external data, the feeds (raw little-endian
// files) and the repeats; one JSON line of timings (ms) goes to stdout.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const [mode, specPath] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specPath, "utf8"));

async function timed(run, repeats) {
  const first = performance.now();
  await run();
  const warmup = performance.now() - first;
  const runs = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await run();
    runs.push(performance.now() - start);
  }
  return { warmup_ms: warmup, runs_ms: runs };
}

const ARRAYS = { uint8: Uint8Array, float32: Float32Array, int64: BigInt64Array };

async function wasm() {
  const ort = await import(path.join(REPO, "node_modules/onnxruntime-web/dist/ort.wasm.min.mjs"));
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = "error";
  const externalData = (spec.data_files || []).map((name) => ({
    path: name,
    data: fs.readFileSync(path.join(path.dirname(spec.graph), name)),
  }));
  const start = performance.now();
  const session = await ort.InferenceSession.create(fs.readFileSync(spec.graph), { externalData });
  const session_ms = performance.now() - start;
  const feeds = {};
  for (const feed of spec.feeds) {
    const bytes = fs.readFileSync(feed.file);
    const data = new ARRAYS[feed.type](bytes.buffer, bytes.byteOffset, bytes.byteLength / ARRAYS[feed.type].BYTES_PER_ELEMENT);
    feeds[feed.name] = new ort.Tensor(feed.type, data, feed.dims);
  }
  const result = await timed(() => session.run(feeds), spec.repeats);
  return { session_ms, ...result };
}

async function pyodide() {
  const { loadPyodide } = await import(path.join(REPO, "node_modules/pyodide/pyodide.mjs"));
  const py = await loadPyodide({ indexURL: path.join(REPO, "node_modules/pyodide/") });
  py.FS.writeFile("/home/pyodide/patchify_python.py", fs.readFileSync(path.join(REPO, "bench/patchify_python.py")));
  py.FS.writeFile("/home/pyodide/rgb.bin", fs.readFileSync(spec.rgb));
  py.runPython(`
import sys, json
sys.path.insert(0, "/home/pyodide")
from patchify_python import patchify_python
rgb = open("/home/pyodide/rgb.bin", "rb").read()
table = json.loads(${JSON.stringify(JSON.stringify(spec.table))})
`);
  const run = () => py.runPython(`_ = patchify_python(rgb, ${spec.height}, ${spec.width}, table, ${spec.patch}, ${spec.merge}, ${spec.temporal})`);
  return timed(run, spec.repeats);
}

const result = mode === "wasm" ? await wasm() : await pyodide();
console.log(JSON.stringify(result));

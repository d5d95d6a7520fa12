// Bench harness: drives onnxruntime-web (wasm EP, 1 thread) directly on any exported decoder graph.
// Feeds are built from a GraphSpec (bench/graph_spec.py) so our bundles and onnxruntime-genai's
// graphs (different cache names, rank-3 position_ids) run through the same code.
import * as ort from "./ort/ort.wasm.bundle.min.mjs";

ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
ort.env.logLevel = "error";

const sessions = new Map(); // name -> {session, spec, vocab}

function int64(values) {
  return BigInt64Array.from(values, (v) => BigInt(v));
}

function randomFloats(count) {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (Math.random() - 0.5) * 0.2;
  return out;
}

// Feeds for `seq` new tokens after `past` cached ones: [1, T] ids, [1, P+T] mask, positions, states.
function feeds(entry, seq, past) {
  const { spec, vocab } = entry;
  const ids = Array.from({ length: seq }, (_, i) => (i * 7919) % vocab);
  const positions = Array.from({ length: seq }, (_, i) => past + i);
  const out = {
    input_ids: new ort.Tensor("int64", int64(ids), [1, seq]),
    attention_mask: new ort.Tensor("int64", int64(new Array(past + seq).fill(1)), [1, past + seq]),
  };
  out.position_ids =
    spec.position_rank === 3
      ? new ort.Tensor("int64", int64([...positions, ...positions, ...positions]), [3, 1, seq])
      : new ort.Tensor("int64", int64(positions), [1, seq]);
  for (const state of spec.states) {
    const dims = state.dims.map((d) => (d === "batch" ? 1 : d === "past" ? past : d));
    const size = dims.reduce((a, b) => a * b, 1);
    out[state.past] = new ort.Tensor("float32", randomFloats(size), dims);
  }
  return out;
}

async function load(name, modelUrl, dataFiles, spec, vocab) {
  const started = performance.now();
  const externalData = dataFiles.map((file) => ({ path: file, data: new URL(file, modelUrl).href }));
  const session = await ort.InferenceSession.create(modelUrl, {
    executionProviders: ["wasm"],
    externalData,
    graphOptimizationLevel: "all",
  });
  sessions.set(name, { session, spec, vocab });
  return performance.now() - started;
}

// Mean ms per call of `calls` runs of one prefill (kind "prefill", size T) or decode (size = past).
async function time(name, kind, size, calls) {
  const entry = sessions.get(name);
  const input = kind === "prefill" ? feeds(entry, size, 0) : feeds(entry, 1, size);
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const results = await entry.session.run(input);
    for (const tensor of Object.values(results)) tensor.dispose();
  }
  return (performance.now() - started) / calls;
}

// Mean ms per call of a graph fed random float32 inputs of the given shapes ({name: dims}).
async function timeInputs(name, shapes, calls) {
  const { session } = sessions.get(name);
  const input = {};
  for (const [key, dims] of Object.entries(shapes)) {
    input[key] = new ort.Tensor("float32", randomFloats(dims.reduce((a, b) => a * b, 1)), dims);
  }
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const results = await session.run(input);
    for (const tensor of Object.values(results)) tensor.dispose();
  }
  return (performance.now() - started) / calls;
}

// Mean ms per call of a graph fed `feeds` ({name: {type, dims, values?}}): listed values (e.g. an
// int64 image grid) or, for float32 inputs without them, random numbers.
async function timeFeeds(name, feeds, calls) {
  const { session } = sessions.get(name);
  const input = {};
  for (const [key, { type, dims, values }] of Object.entries(feeds)) {
    const size = dims.reduce((a, b) => a * b, 1);
    const data = type === "int64" ? int64(values) : values ? Float32Array.from(values) : randomFloats(size);
    input[key] = new ort.Tensor(type, data, dims);
  }
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const results = await session.run(input);
    for (const tensor of Object.values(results)) tensor.dispose();
  }
  return (performance.now() - started) / calls;
}

// Frees a session's wasm memory before the next big graph is loaded.
async function release(name) {
  await sessions.get(name).session.release();
  sessions.delete(name);
}

// Memory-bandwidth probe: plain JS sum over a Float32Array bigger than the caches (decode's bound).
function bandwidth(megabytes = 256, passes = 4) {
  const data = new Float32Array((megabytes * 1024 * 1024) / 4).fill(1);
  let total = 0;
  const started = performance.now();
  for (let p = 0; p < passes; p++) {
    for (let i = 0; i < data.length; i++) total += data[i];
  }
  const seconds = (performance.now() - started) / 1000;
  return { gbPerSecond: (data.byteLength * passes) / seconds / 1e9, checksum: total };
}

window.bench = { load, time, timeInputs, timeFeeds, release, bandwidth, ready: true };
document.getElementById("status").textContent = "ready";

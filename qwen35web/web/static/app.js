// window.app: the page's programmatic API (contract in DESIGN.md), over the worker that runs the model.
//   app.ready                 -> Promise<{backend, model}> (rejects with a readable message)
//   app.generate({prompt, maxNewTokens, minNewTokens, greedy, chat, messages, temperature, topK, topP, seed, onText})
//                             -> Promise<{tokens, text, backend, prefillMs, decodeTokensPerSecond, ...}>
//   app.logits(tokenIds)      -> Promise<number[]> (last position's logits)
//   app.tokenize(text)        -> Promise<number[]>
//   app.stop()                -> stops the running generation before its next token
//   app.stats()               -> Promise<{liveTensors, heldTensors}> (leak checks)
//   app.on(event, listener)   -> "progress" while loading
// Query parameters: ?backend=webgpu|wasm, ?model=NAME, ?prefillChunk=N.

class WorkerClient {
  constructor(url) {
    this.worker = new Worker(url, { type: "module" });
    this.pending = new Map();
    this.nextId = 1;
    this.worker.onmessage = (event) => this.receive(event.data);
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.failAll(`the worker failed: ${event.message || "it could not start"}`);
    };
  }

  receive({ id, kind, ...payload }) {
    const call = this.pending.get(id);
    if (!call) return;
    if (kind === "event") {
      call.onEvent(payload);
      return;
    }
    this.pending.delete(id);
    if (kind === "result") call.resolve(payload.value);
    else call.reject(new Error(payload.message));
  }

  failAll(message) {
    for (const call of this.pending.values()) call.reject(new Error(message));
    this.pending.clear();
  }

  call(type, payload = {}, onEvent = () => {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onEvent });
      this.worker.postMessage({ id, type, ...payload });
    });
  }
}

const params = new URLSearchParams(self.location.search);
const client = new WorkerClient(new URL("./worker.js", import.meta.url));
const listeners = { progress: new Set() };
let loaded = null; // the worker's init result: backend, model, note, facts, weights, timings

function emit(event, value) {
  for (const listener of listeners[event]) listener(value);
}

const prefillChunk = Number.parseInt(params.get("prefillChunk") || "", 10);
const ready = client
  .call(
    "init",
    {
      backend: params.get("backend"),
      model: params.get("model"),
      prefillChunk: Number.isFinite(prefillChunk) && prefillChunk > 0 ? prefillChunk : null,
    },
    (event) => event.progress && emit("progress", event.progress),
  )
  .then((result) => {
    loaded = result;
    return { backend: result.backend, model: result.model };
  });

// JSON (the worker's channel to Python) would turn NaN and Infinity into null, i.e. "use the
// default": refuse them here instead, so a bad setting is an error, never a silent default.
const NUMERIC_SETTINGS = ["maxNewTokens", "minNewTokens", "temperature", "topK", "topP", "repetitionPenalty", "seed"];

function checkNumbers(options) {
  for (const name of NUMERIC_SETTINGS) {
    const value = options[name];
    if (value !== undefined && value !== null && !Number.isFinite(value)) {
      throw new Error(`${name} must be a finite number, got ${value}`);
    }
  }
}

async function generate(options = {}) {
  await ready;
  const { onText, ...rest } = options;
  checkNumbers(rest);
  const request = {
    prompt: rest.prompt,
    messages: rest.messages,
    chat: Boolean(rest.chat),
    maxNewTokens: rest.maxNewTokens ?? 128,
    minNewTokens: rest.minNewTokens,
    greedy: Boolean(rest.greedy),
    temperature: rest.temperature,
    topK: rest.topK,
    topP: rest.topP,
    repetitionPenalty: rest.repetitionPenalty,
    seed: rest.seed,
    stop: rest.stop,
  };
  return client.call("generate", { request }, (event) => {
    if (event.text !== undefined && onText) onText(event.text);
  });
}

export const app = {
  ready,
  generate,
  logits: async (tokenIds) => (await ready, client.call("logits", { ids: Array.from(tokenIds) })),
  tokenize: async (text) => (await ready, client.call("tokenize", { text })),
  stats: async () => (await ready, client.call("stats")),
  stop: () => client.call("stop"),
  info: () => loaded,
  on: (event, listener) => listeners[event].add(listener),
};

window.app = app;

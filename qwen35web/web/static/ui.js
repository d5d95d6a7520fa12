// The demo page: its controls over qwen35web.mjs (the same module any page can import). All DOM work
// lives here; app.js adds window.app for tests. Query parameters: ?backend=webgpu|wasm, ?model=NAME,
// ?threads=N, ?prefillChunk=N.

import { AbortError, enableOffline, load, siteModel } from "./qwen35web.mjs";
import { exposeApp } from "./app.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const history = []; // chat mode: [{role, content}], kept until "Clear"
const progressListeners = new Set();
let model = null;
let shell = null; // the service worker's side (shell.mjs), where there is one
let running = null; // the AbortController of the generation in progress

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 0)} MB`;
}

function positiveInteger(name) {
  const value = Number.parseInt(params.get(name) || "", 10);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setRunning(controller) {
  running = controller;
  $("generate").disabled = Boolean(controller);
  $("stop").disabled = !controller;
}

const PHASE_TEXT = {
  runtime: "Starting Python and onnxruntime…",
  session: "Creating the inference session…",
};

function showProgress(progress) {
  const text = $("load-text");
  if (PHASE_TEXT[progress.phase]) {
    text.textContent = PHASE_TEXT[progress.phase];
    return;
  }
  const bar = $("load-progress");
  if (progress.total > 0) {
    bar.max = progress.total;
    bar.value = progress.loaded;
    text.textContent = `Downloading weights: ${megabytes(progress.loaded)} / ${megabytes(progress.total)}`;
  } else {
    bar.max = 1;
    bar.value = 1;
    text.textContent = `Weights from this browser's storage (${megabytes(progress.cachedBytes || 0)}), verified`;
  }
}

function showModel() {
  const info = window.app.info();
  const facts = info.facts;
  const badge = $("backend-badge");
  badge.textContent = info.backend === "webgpu" ? "WebGPU" : "WASM (CPU)";
  badge.dataset.state = info.backend;
  badge.title = info.backendReason;
  $("backend-reason").textContent = info.backendReason;
  $("threads").textContent = info.threadsReason;
  $("model-name").textContent =
    `${info.model} · ${facts.layers} layers · hidden ${facts.hiddenSize} · vocabulary ${facts.vocabSize} · ` +
    `${facts.dtype} · ${megabytes(facts.weightBytes)} of weights`;
  $("model-note").textContent = info.note;
  $("model-note").hidden = !info.note;
  const weights = info.weights;
  const where = weights.cachedFiles && !weights.downloadedBytes ? "weights from cache" : `${megabytes(weights.downloadedBytes)} downloaded`;
  $("load-text").textContent = `Ready in ${(info.timings.totalMs / 1000).toFixed(1)} s (${where})`;
  $("chat-mode").disabled = !facts.chat;
  $("generate").disabled = false;
}

function failedToLoad(err) {
  $("backend-badge").textContent = "not loaded";
  $("backend-badge").dataset.state = "error";
  $("load-text").textContent = "The model could not be loaded.";
  showError(`Could not load the model: ${err.message}`);
}

function numberSetting(id, label, integer) {
  const value = Number($(id).value);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new Error(`${label} must be ${integer ? "a whole number" : "a number"}`);
  }
  return value;
}

function readSettings() {
  return {
    greedy: $("greedy").checked,
    temperature: numberSetting("temperature", "Temperature", false),
    topK: numberSetting("top-k", "Top-k", true),
    topP: numberSetting("top-p", "Top-p", false),
    maxNewTokens: numberSetting("max-new-tokens", "Max new tokens", true),
  };
}

function addTurn(role, label, text = "") {
  const turn = document.createElement("article");
  turn.className = `turn ${role}`;
  const heading = document.createElement("div");
  heading.className = "role";
  heading.textContent = label;
  const reasoning = document.createElement("p");
  reasoning.className = "reasoning";
  reasoning.hidden = true;
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  turn.append(heading, reasoning, body);
  $("transcript").append(turn);
  return turn;
}

function describeRun(stats) {
  const parts = [
    `${stats.tokens.length} tokens`,
    `prefill ${stats.prefillMs.toFixed(0)} ms (${stats.promptTokens} prompt tokens)`,
    `${stats.decodeTokensPerSecond.toFixed(1)} tokens/s`,
    `Python ${(100 * stats.pythonShare).toFixed(0)} % of decode`,
  ];
  const reasons = { cancelled: "stopped", eos: "end of text", max_new_tokens: "token limit" };
  parts.push(reasons[stats.stopReason] || stats.stopReason);
  return parts.join(" · ");
}

// Stream one generation into `reply`; the done event's stats (or, when stopped, the partial ones).
async function stream(request, reply, signal) {
  const parts = { text: reply.querySelector(".text"), reasoning: reply.querySelector(".reasoning") };
  try {
    for await (const event of model.generate(request, { signal })) {
      if (event.type === "done") return event.stats;
      const target = parts[event.kind] || parts.text;
      target.hidden = false;
      target.textContent += event.text;
    }
  } catch (err) {
    if (err instanceof AbortError && err.stats) return err.stats;
    throw err;
  }
  return null;
}

// One Generate: plain mode shows the prompt and its continuation; chat mode appends to the conversation.
async function runGeneration(signal) {
  const prompt = $("prompt").value;
  if (!prompt.trim()) throw new Error("Write a prompt first.");
  const settings = readSettings();
  const chat = $("chat-mode").checked;
  if (!chat) $("transcript").replaceChildren();
  const messages = chat ? [...history, { role: "user", content: prompt }] : undefined;
  addTurn("user", chat ? "You" : "Prompt", prompt);
  const reply = addTurn("assistant", chat ? "Assistant" : "Continuation");
  reply.classList.add("streaming");
  try {
    const stats = await stream({ prompt, chat, messages, ...settings }, reply, signal);
    reply.querySelector(".text").textContent = stats.text;
    if (chat) {
      history.push({ role: "user", content: prompt }, { role: "assistant", content: stats.text });
      $("prompt").value = "";
    }
    $("run-stats").textContent = describeRun(stats);
  } finally {
    reply.classList.remove("streaming");
  }
}

async function onGenerate(event) {
  event.preventDefault();
  if (running || !model) return;
  showError("");
  const controller = new AbortController();
  setRunning(controller);
  try {
    await runGeneration(controller.signal);
  } catch (err) {
    showError(err.message);
  } finally {
    setRunning(null);
  }
}

function showOffline(offline) {
  offline.then(
    ({ version }) => ($("offline-status").textContent = `Available offline (site version ${version}).`),
    (err) => console.warn(`not available offline: ${err.message}`),
  );
}

async function start() {
  shell = await enableOffline().catch((err) => {
    console.warn(`no service worker (${err.message}): this page will not work offline`);
    return null;
  });
  if (shell) shell.onUpdate(() => ($("update-notice").hidden = false));
  const entry = await siteModel(params.get("model") || undefined);
  model = await load({
    bundle: entry.bundle,
    name: entry.name,
    backend: params.get("backend") || "auto",
    threads: positiveInteger("threads"),
    prefillChunk: positiveInteger("prefillChunk"),
    onProgress: (progress) => {
      showProgress(progress);
      for (const listener of progressListeners) listener(progress);
    },
  });
  const offline = shell ? shell.cacheBackend(model.backend) : Promise.reject(new Error("no service worker"));
  showOffline(offline);
  return { model, entry, shell, offline };
}

function wire() {
  $("prompt-form").addEventListener("submit", onGenerate);
  $("stop").addEventListener("click", () => running && running.abort());
  $("clear").addEventListener("click", () => {
    history.length = 0;
    $("transcript").replaceChildren();
    $("run-stats").textContent = "";
    showError("");
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("prompt-form").requestSubmit();
  });
  $("update-reload").addEventListener("click", () => {
    if (!shell || !shell.applyUpdate()) location.reload();
  });
  const app = exposeApp(start(), progressListeners);
  app.ready.then(showModel, failedToLoad);
}

wire();

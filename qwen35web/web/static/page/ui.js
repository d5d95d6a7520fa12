// The demo page: its controls over qwen35web.mjs (the same module any page can import). All DOM work
// lives here; app.js adds window.app for tests. Query parameters: ?backend=webgpu|wasm, ?model=NAME,
// ?threads=N, ?prefillChunk=N, ?maxContext=N, ?maxImageTokens=N, ?maxPromptImageTokens=N,
// ?prefillAhead=0 (no background prefill), ?tools=1 (the demo tools switched on), ?toolChoice=NAME|required
// (a tool turn's first request forces a call).

import { AbortError, enableOffline, load, siteModel } from "../qwen35web.mjs";
import { exposeApp } from "./app.js";
import { Attachments } from "./attachments.js";
import { ChatController } from "./chat.js";
import { addAssistantTurn, addUserTurn, describeRun } from "./chat-view.js";

/** @type {(id: string) => PageControl} */
const $ = (id) => /** @type {PageControl} */ (document.getElementById(id));
const params = new URLSearchParams(location.search);
const progressListeners = new Set();
let model = null;
let shell = null; // the service worker's side (shell.mjs), where there is one
let running = null; // the AbortController of the generation in progress
let chat = null; // the ChatController where the bundle has a chat template

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
  if (chat) chat.updateButtons(Boolean(controller));
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
    `${facts.dtype} · ${megabytes(facts.weightBytes)} of weights` +
    (facts.visionWeightBytes ? ` + ${megabytes(facts.visionWeightBytes)} vision` : "");
  $("model-note").textContent = info.note;
  $("model-note").hidden = !info.note;
  applyBundleDefaults(facts.generation || {}, facts.generationSource, facts.penalties !== false);
  applyThinkingDefault(facts.thinkingDefault);
  const weights = info.weights;
  const where = weights.cachedFiles && !weights.downloadedBytes ? "weights from cache" : `${megabytes(weights.downloadedBytes)} downloaded`;
  $("load-text").textContent = `Ready in ${(info.timings.totalMs / 1000).toFixed(1)} s (${where})`;
  $("generate").disabled = false;
}

// A chat where the bundle has a template (the stored chats come back); else a plain continuation.
async function startMode() {
  if (!model.info.facts.chat) {
    document.body.classList.add("plain");
    $("generate").textContent = "Generate";
    $("prompt").placeholder = "Write a prompt… (Ctrl+Enter generates)";
    return;
  }
  // A vision-language bundle takes images: attach (picker, drop, paste), checked as they come.
  const attachments = model.info.facts.vision
    ? new Attachments(
        model,
        { list: $("attachments"), input: $("attach-input"), button: $("attach"), dropTarget: $("prompt-form"), pasteTarget: $("prompt") },
        { showError },
      )
    : null;
  if (attachments) $("prompt").placeholder = "Write a message, attach or paste images… (Ctrl+Enter sends)";
  const prefillAhead = params.get("prefillAhead") !== "0";
  $("demo-tools").checked = params.get("tools") === "1";
  chat = new ChatController(model, { readSettings, showError, setRunning, attachments, prefillAhead });
  window.app.lastTurn = () => chat.lastStats;
  window.app.chat = () => ({
    id: chat.chat.id,
    messages: chat.chat.messages,
    contextStart: chat.chat.contextStart,
    restoredTokens: chat.restoredTokens,
    timings: chat.timings,
  });
  window.app.restored = () => chat.restored; // the stored chat's state is loaded (in the background)
  window.app.drafted = () => chat.drafted; // the message being typed has been handed to the model
  await chat.start();
}

function failedToLoad(err) {
  $("backend-badge").textContent = "not loaded";
  $("backend-badge").dataset.state = "error";
  $("load-text").textContent = "The model could not be loaded.";
  showError(`Could not load the model: ${err.message}`);
}

// The form starts from the bundle's recommended sampling (its generation_config.json or the model
// card's values, in the manifest's `generation` section); where it says nothing, index.html's stay.
function applyBundleDefaults(generation, source, penalties) {
  const fields = {
    temperature: "temperature",
    topK: "top-k",
    topP: "top-p",
    presencePenalty: "presence-penalty",
    frequencyPenalty: "frequency-penalty",
  };
  for (const id of ["presence-penalty", "frequency-penalty"]) {
    $(id).disabled = !penalties; // a sampler exported before the penalties cannot apply them
  }
  const taken = [];
  for (const [name, id] of Object.entries(fields)) {
    if (Number.isFinite(generation[name])) {
      $(id).value = String(generation[name]);
      taken.push(name);
    }
  }
  if (typeof generation.greedy === "boolean") {
    $("greedy").checked = generation.greedy;
    taken.push("greedy");
  }
  $("settings-source").textContent = taken.length
    ? `Defaults from ${source || "the model's generation_config.json"}: ${taken.join(", ")}.`
    : "The model recommends no sampling settings: these are the page's defaults.";
}

// The Thinking toggle starts at what the template does by default (the manifest's thinking_default)
// and is hidden where the template has no reasoning switch (null).
function applyThinkingDefault(thinkingDefault) {
  const toggle = $("thinking");
  toggle.closest("label").hidden = typeof thinkingDefault !== "boolean";
  toggle.checked = thinkingDefault === true;
  toggle.dataset.default = String(thinkingDefault === true);
}

// enable_thinking is passed only when the person chose other than the template's default.
function thinkingChoice() {
  const toggle = $("thinking");
  if (toggle.closest("label").hidden || String(toggle.checked) === toggle.dataset.default) return undefined;
  return toggle.checked;
}

function numberSetting(id, label, integer) {
  const value = Number($(id).value);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new Error(`${label} must be ${integer ? "a whole number" : "a number"}`);
  }
  return value;
}

// A disabled or empty field is not given: the bundle's default (or no limit) applies.
function optionalSetting(id, label, integer) {
  if ($(id).disabled || !$(id).value.trim()) return undefined;
  return numberSetting(id, label, integer);
}

function readSettings() {
  return {
    greedy: $("greedy").checked,
    temperature: numberSetting("temperature", "Temperature", false),
    topK: numberSetting("top-k", "Top-k", true),
    topP: numberSetting("top-p", "Top-p", false),
    maxNewTokens: numberSetting("max-new-tokens", "Max new tokens", true),
    presencePenalty: optionalSetting("presence-penalty", "Presence penalty", false),
    frequencyPenalty: optionalSetting("frequency-penalty", "Frequency penalty", false),
    reasoningBudget: optionalSetting("reasoning-budget", "Reasoning budget", true),
    enableThinking: thinkingChoice(),
    // Reproducible runs from the address: ?seed=N (sampling) and ?minNewTokens=N (no end of text before N).
    seed: positiveInteger("seed"),
    minNewTokens: positiveInteger("minNewTokens"),
    tools: $("demo-tools").checked,
    toolChoice: toolChoiceParam(),
  };
}

// ?toolChoice=NAME (or "required") forces the first request of a tool turn to call a tool (demos,
// tests on random weights); later requests of the turn are "auto".
function toolChoiceParam() {
  const choice = params.get("toolChoice");
  if (!choice) return undefined;
  return choice === "required" ? "required" : { type: "function", function: { name: choice } };
}

// Without a chat template the page continues a prompt (the transcript shows only the latest run).
async function runContinuation(signal) {
  const prompt = $("prompt").value;
  if (!prompt.trim()) throw new Error("Write a prompt first.");
  const { enableThinking, ...settings } = readSettings();
  $("transcript").replaceChildren();
  addUserTurn($("transcript"), prompt, "Prompt");
  const reply = addAssistantTurn($("transcript"), "Continuation");
  let stats = null;
  try {
    for await (const event of model.generate({ prompt, ...settings }, { signal })) {
      if (event.type === "delta") reply.append("text", event.text);
      else if (event.type === "done") stats = event.stats;
    }
  } catch (err) {
    if (!(err instanceof AbortError && err.stats)) {
      reply.fail();
      throw err;
    }
    stats = err.stats;
  }
  reply.finish(stats);
  $("run-stats").textContent = describeRun(stats);
}

// Generate (Send), Regenerate: one at a time; Stop aborts it.
function runExclusive(action) {
  return async (event) => {
    if (event) event.preventDefault();
    if (running || !model) return;
    showError("");
    const controller = new AbortController();
    setRunning(controller);
    try {
      await action(controller.signal);
      if (chat && chat.lastStats) $("run-stats").textContent = describeRun(chat.lastStats);
    } catch (err) {
      showError(err.message);
    } finally {
      setRunning(null);
    }
  };
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
    backend: /** @type {import("../qwen35web.mjs").Backend} */ (params.get("backend")) || "auto", // the module checks it
    threads: positiveInteger("threads"),
    prefillChunk: positiveInteger("prefillChunk"),
    maxContext: positiveInteger("maxContext"),
    maxImageTokens: positiveInteger("maxImageTokens"),
    maxPromptImageTokens: positiveInteger("maxPromptImageTokens"),
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
  const send = runExclusive((signal) => (chat ? chat.send($("prompt").value, signal) : runContinuation(signal)));
  $("prompt-form").addEventListener("submit", send);
  $("regenerate").addEventListener("click", runExclusive((signal) => chat.regenerate(signal)));
  $("stop").addEventListener("click", () => running && running.abort());
  const newChat = () => !running && chat && chat.newChat();
  $("new-chat").addEventListener("click", newChat);
  $("context-new-chat").addEventListener("click", newChat);
  const dropAndSend = (signal) => chat.send($("prompt").value, signal, { dropOldest: true });
  $("context-drop-send").addEventListener("click", runExclusive(dropAndSend));
  $("prompt").addEventListener("input", () => chat && !running && chat.draftChanged($("prompt").value));
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("prompt-form").requestSubmit();
  });
  $("update-reload").addEventListener("click", () => {
    if (!shell || !shell.applyUpdate()) location.reload();
  });
  const app = exposeApp(start(), progressListeners);
  app.chatReady = app.ready.then(() => {
    showModel();
    return startMode();
  }, failedToLoad);
}

wire();

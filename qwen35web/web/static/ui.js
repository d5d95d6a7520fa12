// The demo page's controls, on top of window.app (app.js). All DOM work lives here.

import { app } from "./app.js";

const $ = (id) => document.getElementById(id);
const history = []; // chat mode: [{role, content}], kept until "Clear"
let running = false;

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 0)} MB`;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setRunning(value) {
  running = value;
  $("generate").disabled = value;
  $("stop").disabled = !value;
}

function showProgress(progress) {
  const text = $("load-text");
  if (progress.phase === "session") {
    text.textContent = "Creating the inference session…";
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
    text.textContent = `Weights from this browser's cache (${megabytes(progress.cachedBytes || 0)}), verified`;
  }
}

function showModel({ backend }) {
  const info = app.info();
  const backendReason = info.backendReason;
  const facts = info.facts;
  const badge = $("backend-badge");
  badge.textContent = backend === "webgpu" ? "WebGPU" : "WASM (CPU)";
  badge.dataset.state = backend;
  badge.title = backendReason;
  $("backend-reason").textContent = backendReason;
  $("model-name").textContent =
    `${info.model} · ${facts.layers} layers · hidden ${facts.hiddenSize} · vocabulary ${facts.vocabSize} · ` +
    `${facts.dtype} · ${megabytes(facts.weightBytes)} of weights`;
  $("model-note").textContent = info.note;
  $("model-note").hidden = !info.note;
  const where = info.weights.cachedFiles ? "weights from cache" : `${megabytes(info.weights.downloadedBytes)} downloaded`;
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
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  turn.append(heading, body);
  $("transcript").append(turn);
  return turn;
}

function describeRun(result) {
  const parts = [
    `${result.tokens.length} tokens`,
    `prefill ${result.prefillMs.toFixed(0)} ms (${result.promptTokens} prompt tokens)`,
    `${result.decodeTokensPerSecond.toFixed(1)} tokens/s`,
    `Python ${(100 * result.pythonShare).toFixed(0)} % of decode`,
  ];
  const reasons = { cancelled: "stopped", eos: "end of text", max_new_tokens: "token limit" };
  parts.push(reasons[result.stopReason] || result.stopReason);
  return parts.join(" · ");
}

// One Generate: plain mode shows the prompt and its continuation; chat mode appends to the conversation.
async function runGeneration() {
  const prompt = $("prompt").value;
  if (!prompt.trim()) throw new Error("Write a prompt first.");
  const settings = readSettings();
  const chat = $("chat-mode").checked;
  if (!chat) $("transcript").replaceChildren();
  const messages = chat ? [...history, { role: "user", content: prompt }] : undefined;
  addTurn("user", chat ? "You" : "Prompt", prompt);
  const reply = addTurn("assistant", chat ? "Assistant" : "Continuation");
  reply.classList.add("streaming");
  const text = reply.querySelector(".text");
  try {
    const result = await app.generate({ prompt, chat, messages, ...settings, onText: (piece) => (text.textContent += piece) });
    text.textContent = result.text;
    if (chat) {
      history.push({ role: "user", content: prompt }, { role: "assistant", content: result.text });
      $("prompt").value = "";
    }
    $("run-stats").textContent = describeRun(result);
  } finally {
    reply.classList.remove("streaming");
  }
}

async function onGenerate(event) {
  event.preventDefault();
  if (running) return;
  showError("");
  setRunning(true);
  try {
    await runGeneration();
  } catch (err) {
    showError(err.message);
  } finally {
    setRunning(false);
  }
}

function wire() {
  $("prompt-form").addEventListener("submit", onGenerate);
  $("stop").addEventListener("click", () => app.stop());
  $("clear").addEventListener("click", () => {
    history.length = 0;
    $("transcript").replaceChildren();
    $("run-stats").textContent = "";
    showError("");
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("prompt-form").requestSubmit();
  });
  app.on("progress", showProgress);
  app.ready.then(showModel, failedToLoad);
}

wire();

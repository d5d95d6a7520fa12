// The transcript's DOM: user and assistant turns (a user turn's images as thumbnails), an assistant
// turn's reasoning and tool calls folded above its answer (<details>), the answer as Markdown
// (markdown.js: DOM nodes, never HTML), and the per-turn figures (time to first token, what was
// prefilled, images encoded).

import { MarkdownView } from "./markdown.js";
import { MAX_TOOL_ROUNDS } from "./tool-loop.js";

const THUMBNAIL_PIXELS = 96; // the longer side of a thumbnail

const STOP_REASONS = {
  cancelled: "stopped",
  eos: "end of text",
  max_new_tokens: "token limit",
  stop_string: "stop text",
  context_full: "context full",
  tool_rounds: `stopped after ${MAX_TOOL_ROUNDS} replies that called tools`,
  error: "failed",
};

export function stopReasonText(reason) {
  return STOP_REASONS[reason] || reason;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A thumbnail of an image Blob drawn into `canvas` (a canvas, not an <img>: the page's CSP allows no
// blob: image URLs). A Blob the browser cannot decode leaves a marked, empty canvas.
export async function drawThumbnail(canvas, blob) {
  canvas.className = "thumbnail";
  canvas.width = canvas.height = THUMBNAIL_PIXELS;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", blob.name ? `image ${blob.name}` : "image");
  try {
    const bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
    const scale = THUMBNAIL_PIXELS / Math.max(bitmap.width, bitmap.height);
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    canvas.dataset.drawn = "true";
  } catch {
    canvas.classList.add("broken");
  }
}

export function addUserTurn(transcript, text, label = "You", images = []) {
  const turn = element("article", "turn user");
  turn.append(element("div", "role", label));
  if (images.length) {
    const strip = element("div", "turn-images");
    for (const blob of images) {
      const canvas = document.createElement("canvas");
      drawThumbnail(canvas, blob);
      strip.append(canvas);
    }
    turn.append(strip);
  }
  turn.append(element("p", "text", text));
  transcript.append(turn);
  turn.scrollIntoView({ block: "end" });
  return turn;
}

// A tool call as a folded block: the tool's name, its arguments and (once known) its result.
// `call`: {name, arguments (an object or JSON text), result? (any JSON value or text), error?: true
// when the result is the error the model was given}.
export function renderToolCall(call) {
  const block = element("details", call.error ? "tool-call tool-error" : "tool-call");
  const summary = element("summary", "", `Tool call: ${call.name}${call.error ? " (error)" : ""}`);
  block.append(summary, element("div", "tool-label", "Arguments"), element("pre", "tool-arguments", asJson(call.arguments)));
  if (call.result !== undefined) {
    block.append(element("div", "tool-label", "Result"), element("pre", "tool-result", asJson(call.result)));
  }
  return block;
}

function asJson(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value; // not JSON (a streamed, partial argument string): shown as it is
    }
  }
  return JSON.stringify(value, null, 2);
}

// An assistant turn: {turn, status(line), append(kind, text), toolCall(call), finish(stats), fail()}.
export function addAssistantTurn(transcript, label = "Assistant") {
  const turn = element("article", "turn assistant streaming");
  const reasoning = element("details", "reasoning");
  const summary = element("summary", "", "Thinking…");
  const reasoningText = element("div", "reasoning-text");
  reasoning.append(summary, reasoningText);
  reasoning.hidden = true;
  const tools = element("div", "tool-calls");
  tools.hidden = true;
  const text = element("div", "text markdown");
  const answer = new MarkdownView(text);
  const status = element("p", "turn-status");
  status.hidden = true;
  const figures = element("p", "turn-stats");
  turn.append(element("div", "role", label), status, reasoning, tools, text, figures);
  transcript.append(turn);
  const follow = () => turn.scrollIntoView({ block: "end" });
  return {
    turn,
    // What runs before the first token (e.g. "Looking at image 1…"); "" hides it.
    status(line) {
      status.textContent = line;
      status.hidden = !line;
    },
    append(kind, piece) {
      status.hidden = true;
      if (kind === "reasoning") {
        reasoning.hidden = false;
        reasoningText.textContent += piece;
      } else {
        answer.update(answer.source + piece);
      }
      follow();
    },
    toolCall(call) {
      tools.hidden = false;
      tools.append(renderToolCall(call));
      follow();
    },
    // The final answer and reasoning as the runtime recorded them (what the next turn renders).
    finish(stats) {
      turn.classList.remove("streaming");
      status.hidden = true;
      showReply(reasoning, summary, reasoningText, answer, stats.text, stats.reasoning);
      if (stats.stopReason === "tool_rounds") {
        const note = `The model called tools in ${stats.rounds} replies in a row: the page stopped asking (the cap is ${MAX_TOOL_ROUNDS}). Send a message to go on.`;
        text.append(element("p", "tool-rounds", note));
      } else if (!stats.text && stats.reasoning) {
        text.append(element("span", "empty-answer", `No answer yet: the reply ended in its reasoning (${stopReasonText(stats.stopReason)}).`));
      }
      figures.textContent = describeTurn(stats);
    },
    fail() {
      turn.classList.remove("streaming");
    },
  };
}

function showReply(reasoning, summary, reasoningText, view, answer, thought) {
  view.update(answer || "");
  reasoningText.textContent = thought || "";
  reasoning.hidden = !thought;
  summary.textContent = thought ? `Reasoning (${thought.length} characters)` : "";
}

// The first `count` turns are no longer in the model's context (dropped to fit it): dimmed, with
// `note` right below them, so the transcript never hides what the model was not given.
export function markDropped(transcript, count, note) {
  const turns = transcript.querySelectorAll(".turn");
  turns.forEach((turn, index) => turn.classList.toggle("dropped", index < count));
  let marker = transcript.querySelector(".context-drop");
  if (!marker) {
    marker = element("p", "context-drop");
    marker.setAttribute("role", "status");
  }
  marker.textContent = note;
  if (count > 0 && turns[count - 1]) turns[count - 1].after(marker);
  else marker.remove();
}

// A stored assistant turn, shown the way finish() shows a new one (without figures): one assistant
// message, or a tool turn's messages (assistant ones with tool_calls, the `tool` results, the answer).
export function addStoredAssistantTurn(transcript, messages) {
  const group = Array.isArray(messages) ? messages : [messages];
  const view = addAssistantTurn(transcript);
  const results = new Map(group.filter((m) => m.role === "tool").map((m) => [m.tool_call_id, m.content]));
  for (const message of group) {
    for (const call of message.tool_calls || []) view.toolCall(storedCall(call, results.get(call.id)));
  }
  const replies = group.filter((m) => m.role === "assistant");
  const joined = (key) => replies.map((m) => m[key] || "").filter(Boolean).join("\n\n");
  view.finish({ text: joined("content"), reasoning: joined("reasoning_content"), stopReason: "" });
  view.turn.querySelector(".turn-stats").textContent = "";
  return view;
}

// A stored call and its result (the tool message's JSON text; an {"error"} object marks a failure).
function storedCall(call, content) {
  let result = content;
  try {
    result = content === undefined ? undefined : JSON.parse(content);
  } catch {
    // not JSON: shown as it is
  }
  const error = Boolean(result && typeof result === "object" && "error" in result);
  return { name: call.function.name, arguments: call.function.arguments, result, error };
}

// A tool turn's figures (tool-loop.js's stats).
function describeToolTurn(stats) {
  const calls = `${stats.toolCalls} tool ${stats.toolCalls === 1 ? "call" : "calls"} in ${stats.rounds} ${stats.rounds === 1 ? "reply" : "replies"}`;
  const parts = [calls];
  parts.push(`${stats.prefilledTokens} tokens prefilled (${stats.reusedTokens} reused by the last reply)`);
  parts.push(`${stats.completionTokens} tokens in ${(stats.ms / 1000).toFixed(1)} s`);
  if (stats.stopReason) parts.push(stopReasonText(stats.stopReason));
  return parts.join(" · ");
}

export function describeTurn(stats) {
  if (stats.rounds !== undefined) return describeToolTurn(stats);
  const parts = [];
  if (Number.isFinite(stats.firstTokenMs) && stats.tokens && stats.tokens.length) {
    parts.push(`first token ${Math.round(stats.firstTokenMs)} ms`);
  }
  if (Number.isFinite(stats.prefilledTokens)) {
    parts.push(`${stats.prefilledTokens} new of ${stats.promptTokens} prompt tokens prefilled (${stats.reusedTokens} reused)`);
  }
  if (stats.imagesEncoded) parts.push(`${stats.imagesEncoded} ${stats.imagesEncoded === 1 ? "image" : "images"} encoded`);
  if (stats.tokens) parts.push(`${stats.tokens.length} tokens at ${stats.decodeTokensPerSecond.toFixed(1)}/s`);
  if (stats.stopReason) parts.push(stopReasonText(stats.stopReason));
  return parts.join(" · ");
}

export function describeRun(stats) {
  if (stats.rounds !== undefined) return describeToolTurn(stats);
  return [
    `${stats.tokens.length} tokens`,
    `prefill ${stats.prefillMs.toFixed(0)} ms (${stats.promptTokens} prompt tokens)`,
    `${stats.decodeTokensPerSecond.toFixed(1)} tokens/s`,
    `Python ${(100 * stats.pythonShare).toFixed(0)} % of decode`,
    stopReasonText(stats.stopReason),
  ].join(" · ");
}

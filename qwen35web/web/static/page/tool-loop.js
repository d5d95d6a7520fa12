// The demo page's tool loop, on the module's public API only (model.chat.completions.create): ask
// with the tools; when the model calls some, run them (runToolCall), append its assistant message
// and one `tool` message per call, and ask again, until it answers with text or `maxRounds` replies
// have called tools (then the loop stops and says so). The first `forcedRounds` requests carry
// `toolChoice` (a forced call: tests on random weights, demos), later ones "auto".
//
// Returns {messages, stats}: the messages the turn added (assistant and tool, OpenAI's shapes, as
// chat.completions.create takes them back) and the turn's figures: text and reasoning (every round's,
// joined), stopReason ("eos", "max_new_tokens", "cancelled", or "tool_rounds" when the cap was hit),
// rounds, toolCalls, and the tokens (promptTokens and reusedTokens of the last request; prefilled and
// completion tokens summed over the rounds; `usage`: each request's {promptTokens, reusedTokens,
// completionTokens}). A failure before anything was added throws (as
// create() does: ContextFullError, InputError, ...); a later one ends the loop with `stats.error`.

import { AbortError } from "../qwen35web.mjs";
import { runToolCall } from "./demo-tools.js";

export const MAX_TOOL_ROUNDS = 5;

const STOP_REASONS = { stop: "eos", length: "max_new_tokens", tool_calls: "tool_calls" };

// One streamed reply into `reply`: its content, reasoning, calls (merged from their deltas, OpenAI's
// way: the id and name first, the arguments in pieces), finish reason and usage. What came before an
// abort stays in `reply`.
async function streamReply(chunks, reply, onDelta) {
  for await (const chunk of chunks) {
    if (chunk.usage) reply.usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    const { content, reasoning_content: reasoning, tool_calls: calls } = choice.delta;
    if (reasoning) {
      reply.reasoning += reasoning;
      onDelta("reasoning", reasoning);
    }
    if (content) {
      reply.content += content;
      onDelta("text", content);
    }
    for (const piece of calls || []) {
      const call = (reply.calls[piece.index] ||= { id: "", type: "function", function: { name: "", arguments: "" } });
      if (piece.id) call.id = piece.id;
      if (piece.function && piece.function.name) call.function.name = piece.function.name;
      if (piece.function && piece.function.arguments) call.function.arguments += piece.function.arguments;
    }
    if (choice.finish_reason) reply.finishReason = choice.finish_reason;
  }
}

function assistantMessage(reply) {
  const message = { role: "assistant", content: reply.content };
  if (reply.reasoning) message.reasoning_content = reply.reasoning;
  if (reply.calls.length) message.tool_calls = reply.calls;
  return message;
}

function joined(parts) {
  return parts.filter(Boolean).join("\n\n");
}

/**
 * @param {import("../qwen35web.mjs").Model} model
 * @param {any[]} messages the conversation so far (OpenAI's message shapes), ending with a user message
 * @param {{tools: any[], request?: object, toolChoice?: any, forcedRounds?: number, maxRounds?: number,
 *   signal?: AbortSignal, onDelta?: (kind: string, text: string) => void,
 *   onRound?: (round: number) => void, onToolCall?: (call: any, outcome: any) => void}} options
 */
export async function runToolLoop(model, messages, options) {
  const { tools, request = {}, toolChoice, forcedRounds = 1, maxRounds = MAX_TOOL_ROUNDS, signal } = options;
  const { onDelta = () => {}, onRound = () => {}, onToolCall = () => {} } = options;
  const added = [];
  const texts = [];
  const thoughts = [];
  const stats = { rounds: 0, toolCalls: 0, prefilledTokens: 0, completionTokens: 0, promptTokens: 0, reusedTokens: 0, usage: [] };
  let stopReason = "tool_rounds";
  let error = null;
  const started = performance.now();
  for (let round = 1; round <= maxRounds; round++) {
    const choice = toolChoice !== undefined && round <= forcedRounds ? toolChoice : "auto";
    const body = { ...request, messages: [...messages, ...added], tools, tool_choice: choice, stream: true, stream_options: { include_usage: true } };
    const reply = { content: "", reasoning: "", calls: [], finishReason: null, usage: null };
    try {
      onRound(round);
      await streamReply(await model.chat.completions.create(body, { signal }), reply, onDelta);
    } catch (err) {
      if (!added.length && !(err instanceof AbortError)) throw err;
      stopReason = err instanceof AbortError ? "cancelled" : "error";
      if (!(err instanceof AbortError)) error = err;
      if (reply.content || reply.reasoning) {
        // What was shown before the stop is kept, as a reply cut short (its calls never ran).
        texts.push(reply.content);
        thoughts.push(reply.reasoning);
        added.push(assistantMessage({ ...reply, calls: [] }));
      }
      break;
    }
    stats.rounds = round;
    if (reply.usage) {
      const cached = reply.usage.prompt_tokens_details.cached_tokens;
      stats.usage.push({ promptTokens: reply.usage.prompt_tokens, reusedTokens: cached, completionTokens: reply.usage.completion_tokens });
      stats.promptTokens = reply.usage.prompt_tokens;
      stats.reusedTokens = cached;
      stats.prefilledTokens += reply.usage.prompt_tokens - cached;
      stats.completionTokens += reply.usage.completion_tokens;
    }
    texts.push(reply.content);
    thoughts.push(reply.reasoning);
    added.push(assistantMessage(reply));
    if (!reply.calls.length) {
      stopReason = STOP_REASONS[reply.finishReason] || "eos";
      break;
    }
    for (const call of reply.calls) {
      const outcome = runToolCall(call);
      stats.toolCalls++;
      onToolCall(call, outcome);
      added.push({ role: "tool", tool_call_id: call.id, content: outcome.content });
    }
  }
  Object.assign(stats, { text: joined(texts), reasoning: joined(thoughts), stopReason, ms: performance.now() - started });
  if (error) stats.error = error.message;
  return { messages: added, stats };
}

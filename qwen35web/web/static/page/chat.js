// The page's conversation: send (with the attached images), stop, regenerate the last reply, new chat,
// the stored chats (list, open, delete) and the context gauge. Each finished turn is saved with the
// state its next turn resumes from (model.saveConversation) and its images, so a reload shows them and
// continues without prefilling the history. A full context is said; the person may start a new chat or
// send anyway with the oldest turns dropped (they stay in the transcript and the stored chat, marked:
// the model no longer sees them).

import { AbortError, ContextFullError } from "../qwen35web.mjs";
import { ChatStore, newChatId, storedBytes } from "./chat-store.js";
import { addAssistantTurn, addStoredAssistantTurn, addUserTurn, markDropped } from "./chat-view.js";
import { DEMO_TOOLS } from "./demo-tools.js";
import { runToolLoop } from "./tool-loop.js";

/** @type {(id: string) => PageControl} */
const $ = (id) => /** @type {PageControl} */ (document.getElementById(id));

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 1)} MB`;
}

function leadingSystem(messages) {
  let head = 0;
  while (head < messages.length && messages[head].role === "system") head++;
  return head;
}

// Tool turns (an assistant's calls, a tool's result) go to the model through chat.completions.create.
function hasToolTurns(messages) {
  return messages.some((m) => m.role === "tool" || (m.role === "assistant" && m.tool_calls && m.tool_calls.length));
}

// The transcript's turns: each user message alone, each run of assistant and tool messages together.
function turnGroups(messages) {
  const groups = [];
  for (const message of messages) {
    if (message.role === "system") continue;
    const last = groups[groups.length - 1];
    if (message.role !== "user" && last && last[0].role !== "user") last.push(message);
    else groups.push([message]);
  }
  return groups;
}

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(/** @type {string} */ (reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// The page's messages in OpenAI's shapes: a message's image Blobs become image_url parts (data URLs).
async function completionMessages(messages) {
  const out = [];
  for (const { images, ...message } of messages) {
    if (!Array.isArray(images) || !images.length) {
      out.push(message);
      continue;
    }
    const parts = [];
    for (const blob of images) parts.push({ type: "image_url", image_url: { url: await dataUrl(blob) } });
    parts.push({ type: "text", text: message.content || "" });
    out.push({ ...message, content: parts });
  }
  return out;
}

// The form's settings as chat.completions.create's fields (the reasoning budget has none there).
function completionSettings({ greedy, temperature, topK, topP, maxNewTokens, minNewTokens, seed, presencePenalty, frequencyPenalty, enableThinking }) {
  const request = { temperature: greedy ? 0 : temperature, top_k: topK, top_p: topP, max_tokens: maxNewTokens };
  const optional = { min_tokens: minNewTokens, seed, presence_penalty: presencePenalty, frequency_penalty: frequencyPenalty };
  for (const [name, value] of Object.entries(optional)) if (value !== undefined) request[name] = value;
  if (enableThinking !== undefined) request.chat_template_kwargs = { enable_thinking: enableThinking };
  return request;
}

function turnsText(count) {
  return count === 1 ? "oldest turn" : `${count} oldest turns`;
}

export class ChatController {
  constructor(model, { readSettings, showError, setRunning, attachments = null, prefillAhead = true }) {
    this.model = model;
    this.attachments = attachments; // the images for the next message (attachments.js); null: no vision
    this.readSettings = readSettings;
    this.showError = showError;
    this.setRunning = setRunning;
    this.store = null;
    // contextStart: the first message the model sees (after the system ones); older ones were dropped.
    this.chat = { id: newChatId(), messages: [], contextStart: 0 };
    this.lastStats = null;
    this.contextTokens = model.info.facts.contextTokens;
    this.restoredTokens = 0;
    this.timings = {}; // the last save's and open's parts in ms (what the page pays; benches read it)
    // Prefill ahead (after each reply) and while typing (the draft, debounced): see model.prepare().
    this.prefillAhead = prefillAhead;
    this.draftTimer = null;
    this.drafted = Promise.resolve(); // the latest draft has been handed over
    this.restored = Promise.resolve(); // the stored chat's state is loaded (restore runs in the background)
    this.toolsUsed = []; // the tools the last turn was asked with (saved with the state)
  }

  // What the model is given: the leading system messages and the turns not dropped.
  modelMessages() {
    const { messages, contextStart } = this.chat;
    const head = leadingSystem(messages);
    return [...messages.slice(0, head), ...messages.slice(Math.max(head, contextStart))];
  }

  // Mark the turns the model no longer sees (the transcript shows every non-system message).
  showDropped(note) {
    const { messages, contextStart } = this.chat;
    const hidden = Math.max(0, contextStart - leadingSystem(messages));
    markDropped($("transcript"), hidden, note);
  }

  async start() {
    try {
      this.store = await ChatStore.open();
    } catch (err) {
      console.warn(`chats cannot be stored in this browser (${err.message})`);
    }
    const chats = this.store ? await this.store.list() : [];
    if (chats.length) await this.open(chats[0].id);
    else this.showContext(0);
    await this.refreshList();
  }

  // Render a stored chat and load its saved state into the model (next turn: only new tokens).
  async open(id) {
    const started = performance.now();
    const stored = await this.store.get(id);
    const read = performance.now();
    if (!stored) return;
    this.reset({ id, messages: stored.chat.messages, contextStart: stored.chat.contextStart || 0 });
    for (const group of turnGroups(this.chat.messages)) {
      const first = group[0];
      if (first.role === "user") addUserTurn($("transcript"), first.content, "You", first.images || []);
      else addStoredAssistantTurn($("transcript"), group);
    }
    const dropped = this.modelMessages().length < this.chat.messages.length;
    if (dropped) this.showDropped("Above: the oldest turns, dropped to fit the context; the model no longer sees them.");
    this.restoredTokens = 0;
    this.timings.open = { readMs: read - started, shownMs: performance.now() - started };
    // The page is usable at once: the state loads in the worker meanwhile, and a turn sent before it
    // is done waits there for what is left (the worker runs calls in order).
    this.restored = this.restoreState(id, stored);
    await this.refreshList();
  }

  async restoreState(id, stored) {
    if (stored.state) {
      try {
        const restoring = performance.now();
        const { tokens, tools } = await this.model.restoreConversation(stored.state);
        if (id !== this.chat.id) return;
        this.toolsUsed = tools;
        this.restoredTokens = tokens;
        Object.assign(this.timings.open, { restoreMs: performance.now() - restoring, bytes: stored.state.byteLength });
      } catch (err) {
        if (id !== this.chat.id) return;
        this.showNote(`This chat's saved state does not fit the model now loaded (${err.message}): its next turn prefills the whole conversation.`);
      }
    }
    if (id !== this.chat.id) return;
    this.showContext(this.restoredTokens);
    this.prepareDraft($("prompt").value);
  }

  // The message box changed: hand the latest draft over a fifth of a second later (at most five
  // drafts a second however fast the typing; each costs the worker two encodes of the draft alone).
  draftChanged(text) {
    this.draft = text;
    if (this.draftTimer) return;
    this.drafted = new Promise((resolve) => {
      this.draftTimer = setTimeout(() => {
        this.draftTimer = null;
        this.prepareDraft(this.draft).then(resolve);
      }, 200);
    });
  }

  // Background prefill of what the next turn starts with (never while a turn runs: the conversation
  // is about to change). Only a hint: a failure is logged, and no result depends on it.
  prepareDraft(text) {
    if (!this.prefillAhead || this.busy || (this.attachments && this.attachments.items.length)) {
      return Promise.resolve();
    }
    const messages = this.modelMessages();
    // prepare() renders without tools: a turn with tools would not start from what it prefilled.
    if (this.readSettings().tools || hasToolTurns(messages)) return Promise.resolve();
    if (text.trim()) messages.push({ role: "user", content: text });
    const { enableThinking } = this.readSettings();
    return this.model.prepare(messages, { enableThinking }).catch((err) => console.warn(`prepare: ${err.message}`));
  }

  reset(chat) {
    this.chat = chat;
    this.lastStats = null;
    $("transcript").replaceChildren();
    $("run-stats").textContent = "";
    this.showContextFull(null);
    this.showNote("");
    this.showError("");
    this.updateButtons(false);
  }

  newChat() {
    this.reset({ id: newChatId(), messages: [], contextStart: 0 });
    this.showContext(0);
    this.prepareDraft("");
    this.refreshList();
    $("prompt").focus();
  }

  // `dropOldest`: the person chose to continue a full conversation without its oldest turns.
  async send(text, signal, { dropOldest = false } = {}) {
    const images = this.attachments ? await this.attachments.take() : [];
    if (!text.trim() && !images.length) throw new Error("Write a message first.");
    const user = images.length ? { role: "user", content: text, images } : { role: "user", content: text };
    const userTurn = addUserTurn($("transcript"), text, "You", images);
    this.chat.messages.push(user);
    $("prompt").value = "";
    let ok = false;
    try {
      ok = await this.reply(signal, dropOldest);
    } finally {
      if (!ok) {
        // Nothing the user gave is lost: the message goes back into the box, its images back above it.
        this.chat.messages.pop();
        userTurn.remove();
        $("prompt").value = text;
        if (images.length) this.attachments.putBack(images);
      }
    }
  }

  // Drop the last reply (with its tool calls and results) and ask again: the runtime resumes from
  // the state kept before that reply.
  async regenerate(signal) {
    const messages = this.chat.messages;
    if (!messages.length || messages[messages.length - 1].role === "user") return;
    let start = messages.length;
    while (start > 0 && messages[start - 1].role !== "user" && messages[start - 1].role !== "system") start--;
    const dropped = messages.splice(start);
    const turns = $("transcript").querySelectorAll(".turn.assistant");
    const lastTurn = /** @type {HTMLElement} */ (turns[turns.length - 1]);
    lastTurn.hidden = true;
    if (await this.reply(signal)) lastTurn.remove();
    else {
      messages.push(...dropped);
      lastTurn.hidden = false;
    }
  }

  // One assistant turn over this.chat.messages; false when it failed before it could start.
  async reply(signal, dropOldest = false) {
    if (this.readSettings().tools || hasToolTurns(this.modelMessages())) return this.replyWithTools(signal);
    const view = addAssistantTurn($("transcript"));
    const { enableThinking, tools: _tools, toolChoice: _choice, ...settings } = this.readSettings();
    const options = { ...settings, enableThinking, dropOldest, signal, prefillAhead: this.prefillAhead };
    let stats = null;
    try {
      for await (const event of this.model.chat(this.modelMessages(), options)) {
        if (event.type === "delta") view.append(event.kind, event.text);
        else if (event.type === "progress") view.status(progressText(event));
        else if (event.type === "done") stats = event.stats;
      }
    } catch (err) {
      if (err instanceof AbortError && err.stats) stats = err.stats;
      else {
        view.turn.remove();
        if (err instanceof ContextFullError) this.showContextFull(err.message);
        else throw err;
        return false;
      }
    }
    view.finish(stats);
    this.chat.messages.push(assistantMessage(stats));
    this.lastStats = stats;
    this.showContextFull(null);
    if (stats.droppedMessages > 0) this.dropped(stats);
    this.showContext(stats.promptTokens + stats.tokens.length);
    if (stats.stopReason === "context_full") {
      this.showContextFull(`The reply filled the model's context (${stats.contextTokens} tokens).`);
    }
    await this.save();
    return true;
  }

  // A turn with the demo tools (tool-loop.js, through chat.completions.create): calls folded above
  // the answer with their results, the loop until the model answers. Also any turn of a conversation
  // that holds tool turns (model.chat() renders no tool messages). Settings: the `toolChoice` of the
  // first request (forced: the ?toolChoice= address parameter), the tools only when switched on.
  async replyWithTools(signal) {
    const view = addAssistantTurn($("transcript"));
    const settings = this.readSettings();
    const tools = settings.tools ? DEMO_TOOLS : [];
    const options = { tools, request: completionSettings(settings), signal };
    if (tools.length && settings.toolChoice) options.toolChoice = settings.toolChoice;
    let shown = false; // the answer so far has text: the next reply's starts on a new paragraph
    let stats;
    try {
      const turn = await runToolLoop(this.model, await completionMessages(this.modelMessages()), {
        ...options,
        onRound: (round) => round > 1 && shown && view.append("text", "\n\n"),
        onDelta: (kind, text) => {
          shown ||= kind === "text";
          view.append(kind, text);
        },
        onToolCall: (call, outcome) => {
          const { name, arguments: args } = call.function;
          view.toolCall({ name, arguments: args, result: outcome.value, error: !outcome.ok });
        },
      });
      stats = turn.stats;
      this.chat.messages.push(...turn.messages);
    } catch (err) {
      view.turn.remove();
      if (err instanceof ContextFullError) this.showContextFull(err.message);
      else throw err;
      return false;
    }
    this.toolsUsed = tools;
    view.finish(stats);
    this.lastStats = stats;
    this.showContextFull(null);
    if (stats.error) this.showError(`The tool turn stopped: ${stats.error}`);
    const last = stats.usage[stats.usage.length - 1]; // the last request: what the context holds now
    if (last) this.showContext(last.promptTokens + last.completionTokens);
    await this.save();
    return true;
  }

  // The runtime left out the oldest turns to fit (the person asked it to): say so, never silently.
  dropped(stats) {
    const head = leadingSystem(this.chat.messages);
    this.chat.contextStart = Math.max(head, this.chat.contextStart) + stats.droppedMessages;
    this.showDropped(
      `Dropped the ${turnsText(stats.droppedTurns)} to fit the context; the model re-read the rest ` +
        `(${stats.prefilledTokens} tokens prefilled).`,
    );
  }

  async save() {
    if (!this.store) return;
    try {
      const started = performance.now();
      // With the tools the last turn was asked with: the state holds them (they open the prompt).
      const state = await this.model.saveConversation(this.modelMessages(), { tools: this.toolsUsed });
      const serialised = performance.now();
      await this.store.put({ ...this.chat, model: this.model.name }, state);
      this.timings.save = {
        serialiseMs: serialised - started,
        storeMs: performance.now() - serialised,
        bytes: state.byteLength,
      };
    } catch (err) {
      this.showNote(`This chat could not be stored in the browser (${err.message}); it stays on this page.`);
    }
    await this.refreshList();
  }

  async delete(id) {
    await this.store.delete(id);
    if (id === this.chat.id) this.newChat();
    else await this.refreshList();
  }

  async refreshList() {
    const list = $("chat-list");
    if (!this.store) {
      $("chat-storage").textContent = "Chats cannot be stored in this browser.";
      return;
    }
    const chats = await this.store.list();
    list.replaceChildren(...chats.map((chat) => this.listItem(chat)));
    const used = chats.reduce((sum, chat) => sum + storedBytes(chat), 0);
    $("chat-storage").textContent = chats.length
      ? `${chats.length} stored ${chats.length === 1 ? "chat" : "chats"}: ${megabytes(used)} in this browser`
      : "No stored chats yet.";
  }

  listItem(chat) {
    const item = document.createElement("li");
    item.dataset.id = chat.id;
    if (chat.id === this.chat.id) item.classList.add("current");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open-chat";
    open.textContent = chat.title;
    open.title = `${new Date(chat.updated).toLocaleString()} · ${megabytes(storedBytes(chat))}`;
    open.addEventListener("click", () => this.whenIdle(() => this.open(chat.id)));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "delete-chat";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete the chat "${chat.title}"`);
    remove.addEventListener("click", () => this.whenIdle(() => this.delete(chat.id)));
    item.append(open, remove);
    return item;
  }

  whenIdle(action) {
    if (this.busy) return;
    action().catch((err) => this.showError(err.message));
  }

  updateButtons(busy) {
    this.busy = busy;
    const messages = this.chat.messages;
    const last = messages[messages.length - 1];
    $("regenerate").disabled = busy || !last || last.role === "user" || last.role === "system";
    $("new-chat").disabled = busy;
  }

  showContext(used) {
    const total = this.contextTokens;
    $("context-meter").max = total;
    $("context-meter").value = used;
    $("context-used").textContent = `Context: ${used} / ${total} tokens`;
  }

  showContextFull(message) {
    $("context-full").hidden = !message;
    $("context-full-text").textContent = message ? `This conversation is full: ${message}` : "";
  }

  showNote(message) {
    $("chat-note").textContent = message;
    $("chat-note").hidden = !message;
  }
}

// The vision graph's progress before the first token (the reply's status line).
function progressText(event) {
  if (event.phase !== "vision") return "";
  if (event.state === "start") return `Looking at image ${event.image}…`;
  return `Image ${event.image} seen in ${(event.ms / 1000).toFixed(1)} s; reading the message…`;
}

function assistantMessage(stats) {
  const message = { role: "assistant", content: stats.text };
  if (stats.reasoning) message.reasoning_content = stats.reasoning;
  return message;
}

// The page's conversations in IndexedDB, so they survive a reload. Two object stores: "chats" holds
// what the list needs (id, title, model, updated, messages, byte counts) and "states" the saved state
// of each (model.saveConversation()'s bytes, large: the recurrent states plus the KV), read only
// when a chat is opened.

const DB_NAME = "qwen35web-chats";
const DB_VERSION = 1;
const TITLE_CHARS = 48;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("the storage transaction was aborted"));
  });
}

function titleOf(messages) {
  const first = messages.find((m) => m.role === "user");
  const text = first ? first.content.trim().replace(/\s+/g, " ") : "New chat";
  return text.length > TITLE_CHARS ? `${text.slice(0, TITLE_CHARS - 1)}…` : text;
}

function messageBytes(messages) {
  return new TextEncoder().encode(JSON.stringify(messages)).byteLength;
}

export class ChatStore {
  constructor(db) {
    this.db = db;
  }

  static async open() {
    const opening = indexedDB.open(DB_NAME, DB_VERSION);
    opening.onupgradeneeded = () => {
      const db = opening.result;
      db.createObjectStore("chats", { keyPath: "id" });
      db.createObjectStore("states");
    };
    return new ChatStore(await request(opening));
  }

  // Every stored chat, newest first (without its state bytes).
  async list() {
    const tx = this.db.transaction("chats", "readonly");
    const chats = await request(tx.objectStore("chats").getAll());
    return chats.sort((a, b) => b.updated - a.updated);
  }

  // {chat, state}: the chat and its state bytes (null when none was saved).
  async get(id) {
    const tx = this.db.transaction(["chats", "states"], "readonly");
    const chat = await request(tx.objectStore("chats").get(id));
    const state = await request(tx.objectStore("states").get(id));
    return chat ? { chat, state: state || null } : null;
  }

  // Store (or replace) a chat and its state in one transaction: both or neither are kept.
  // contextStart: the first message the model still sees (older ones were dropped to fit its context).
  async put({ id, model, messages, contextStart = 0 }, state) {
    const chat = {
      id,
      model,
      contextStart,
      title: titleOf(messages),
      updated: Date.now(),
      messages,
      messageBytes: messageBytes(messages),
      stateBytes: state ? state.byteLength : 0,
    };
    const tx = this.db.transaction(["chats", "states"], "readwrite");
    tx.objectStore("chats").put(chat);
    if (state) tx.objectStore("states").put(state, id);
    else tx.objectStore("states").delete(id);
    await finished(tx);
    return chat;
  }

  async delete(id) {
    const tx = this.db.transaction(["chats", "states"], "readwrite");
    tx.objectStore("chats").delete(id);
    tx.objectStore("states").delete(id);
    await finished(tx);
  }

  // Bytes the stored chats hold (messages and states).
  async usedBytes() {
    const chats = await this.list();
    return chats.reduce((sum, chat) => sum + chat.messageBytes + chat.stateBytes, 0);
  }
}

export function newChatId() {
  return `chat-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

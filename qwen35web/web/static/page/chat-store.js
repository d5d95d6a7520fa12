// The page's conversations in IndexedDB, so they survive a reload. Three object stores: "chats" holds
// what the list needs (id, title, model, updated, messages, byte counts), "states" the saved state of
// each (model.saveConversation()'s bytes, large: the recurrent states plus the KV) and "images" the
// image Blobs its messages carry (as the user gave them; a stored message names them by index),
// the last two read only when a chat is opened.

const DB_NAME = "qwen35web-chats";
const DB_VERSION = 2; // 2: the "images" store
const STORES = ["chats", "states", "images"];
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
  let text = first ? String(first.content || "").trim().replace(/\s+/g, " ") : "New chat";
  if (!text && first) text = first.images && first.images.length ? "Image" : "New chat";
  return text.length > TITLE_CHARS ? `${text.slice(0, TITLE_CHARS - 1)}…` : text;
}

function messageBytes(messages) {
  return new TextEncoder().encode(JSON.stringify(messages)).byteLength;
}

// Messages as stored: each message's image Blobs replaced by indexes into one list of the chat's Blobs.
function splitImages(messages) {
  const blobs = [];
  const stored = messages.map((message) => {
    if (!Array.isArray(message.images) || !message.images.length) return message;
    const indexes = message.images.map((blob) => {
      const known = blobs.indexOf(blob);
      return known >= 0 ? known : blobs.push(blob) - 1;
    });
    return { ...message, images: indexes };
  });
  return { stored, blobs };
}

function joinImages(messages, blobs) {
  return messages.map((message) =>
    Array.isArray(message.images) ? { ...message, images: message.images.map((i) => blobs[i]) } : message,
  );
}

export class ChatStore {
  constructor(db) {
    this.db = db;
  }

  static async open() {
    const opening = indexedDB.open(DB_NAME, DB_VERSION);
    opening.onupgradeneeded = () => {
      const db = opening.result;
      for (const name of STORES) {
        if (db.objectStoreNames.contains(name)) continue; // a version-1 database keeps its chats
        if (name === "chats") db.createObjectStore(name, { keyPath: "id" });
        else db.createObjectStore(name);
      }
    };
    return new ChatStore(await request(opening));
  }

  // Every stored chat, newest first (without its state bytes).
  async list() {
    const tx = this.db.transaction("chats", "readonly");
    const chats = await request(tx.objectStore("chats").getAll());
    return chats.sort((a, b) => b.updated - a.updated);
  }

  // {chat, state}: the chat (its messages with their image Blobs) and its state bytes (null when none).
  async get(id) {
    const tx = this.db.transaction(STORES, "readonly");
    const chat = await request(tx.objectStore("chats").get(id));
    const state = await request(tx.objectStore("states").get(id));
    const blobs = (await request(tx.objectStore("images").get(id))) || [];
    if (!chat) return null;
    return { chat: { ...chat, messages: joinImages(chat.messages, blobs) }, state: state || null };
  }

  // Store (or replace) a chat, its images and its state in one transaction: all or none are kept.
  // contextStart: the first message the model still sees (older ones were dropped to fit its context).
  async put({ id, model, messages, contextStart = 0 }, state) {
    const { stored, blobs } = splitImages(messages);
    const chat = {
      id,
      model,
      contextStart,
      title: titleOf(messages),
      updated: Date.now(),
      messages: stored,
      messageBytes: messageBytes(stored),
      stateBytes: state ? state.byteLength : 0,
      imageBytes: blobs.reduce((sum, blob) => sum + blob.size, 0),
    };
    const tx = this.db.transaction(STORES, "readwrite");
    tx.objectStore("chats").put(chat);
    if (state) tx.objectStore("states").put(state, id);
    else tx.objectStore("states").delete(id);
    if (blobs.length) tx.objectStore("images").put(blobs, id);
    else tx.objectStore("images").delete(id);
    await finished(tx);
    return chat;
  }

  async delete(id) {
    const tx = this.db.transaction(STORES, "readwrite");
    for (const name of STORES) tx.objectStore(name).delete(id);
    await finished(tx);
  }

  // Bytes the stored chats hold (messages, states and images).
  async usedBytes() {
    const chats = await this.list();
    return chats.reduce((sum, chat) => sum + storedBytes(chat), 0);
  }
}

export function newChatId() {
  return `chat-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

// What one stored chat takes in the browser (chats stored before images have no imageBytes).
export function storedBytes(chat) {
  return chat.messageBytes + chat.stateBytes + (chat.imageBytes || 0);
}

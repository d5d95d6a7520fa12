// The bundle's files for the worker: taken from this browser's storage (weight-cache.js) or downloaded
// with byte progress, and verified against the manifest's sha256 (crypto.subtle) before every use, also
// when they come from storage. A download that breaks off is retried from where it stopped (HTTP
// Range), within this load and, from the whole pieces already stored, in a later one; the assembled
// file is still checked end to end. Python (browser/engine.py, browser/session.py) reads the files through
// bytes()/text().

import { coded } from "../errors.mjs";
import { pieceBytes } from "./weight-cache.js";

const PROGRESS_INTERVAL_MS = 100;
const RETRIES = 3; // per file, counted from the last time bytes arrived
const RETRY_DELAY_MS = 400;

export function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 1)} MB`;
}

async function sha256Hex(bytes) {
  if (!self.crypto || !self.crypto.subtle) {
    throw coded(
      "not-supported",
      "weights cannot be verified here: serve the page over HTTPS or from 127.0.0.1 (a secure context)",
    );
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class Progress {
  constructor(files, report) {
    this.total = files.reduce((sum, f) => sum + f.size, 0);
    this.offsets = new Map();
    this.report = report;
    this.lastReport = 0;
  }

  get loaded() {
    let sum = 0;
    for (const offset of this.offsets.values()) sum += offset;
    return sum;
  }

  set(file, offset) {
    this.offsets.set(file.path, offset);
    const now = performance.now();
    const loaded = this.loaded;
    if (now - this.lastReport >= PROGRESS_INTERVAL_MS || loaded === this.total) {
      this.lastReport = now;
      this.report({ phase: "download", loaded, total: this.total, file: file.path });
    }
  }
}

// Does a 206 answer start where we asked? (`Content-Range: bytes FIRST-LAST/SIZE`)
function startsAt(response, offset) {
  if (response.status !== 206) return false;
  const match = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(response.headers.get("Content-Range") || "");
  return match !== null && Number(match[1]) === offset;
}

// One file from the network into `bytes` (its full size), from `offset` (bytes restored from storage),
// writing whole pieces to `cache` as they complete.
class Download {
  constructor(url, file, bytes, cache, progress) {
    this.url = url;
    this.file = file;
    this.bytes = bytes;
    this.cache = cache;
    this.progress = progress;
    this.offset = 0;
    this.stored = 0; // bytes [0, stored) are queued for (or in) the cache as whole pieces
    this.writes = Promise.resolve(); // the queued piece writes, in order
  }

  async run(offset) {
    try {
      await this.fetchFrom(offset);
    } finally {
      await this.writes; // what arrived is stored before anyone looks (or resumes)
    }
  }

  async fetchFrom(offset) {
    this.offset = this.stored = offset;
    this.progress.set(this.file, offset);
    let failures = 0;
    while (this.offset < this.file.size) {
      const before = this.offset;
      try {
        const response = await this.request();
        if (response === null) break; // 416: the server has nothing beyond what we have
        await this.read(response);
      } catch (err) {
        if (typeof err.code === "string") throw err; // a bad bundle, not a network failure
        failures = this.offset > before ? 1 : failures + 1;
        if (failures > RETRIES) throw this.interrupted(err);
        console.warn(`${this.file.path}: download broke off at ${this.offset} bytes (${err.message}); resuming`);
        await sleep(RETRY_DELAY_MS * 2 ** (failures - 1));
        continue;
      }
      if (this.offset === before) break; // an answer with no new bytes: the file ends here
    }
    if (this.offset !== this.file.size) {
      throw coded(
        "bad-bundle",
        `${this.file.path}: ${this.offset} bytes received, the manifest says ${this.file.size} (truncated download?)`,
      );
    }
  }

  async request() {
    const resume = this.offset > 0;
    const headers = resume ? { Range: `bytes=${this.offset}-` } : {};
    const response = await fetch(this.url, { cache: "no-store", headers });
    if (resume && response.status === 416) return null;
    if (!response.ok) throw coded("bad-bundle", `${this.file.path}: the server answered HTTP ${response.status}`);
    if (resume && !startsAt(response, this.offset)) {
      this.offset = this.stored = 0; // the server sent the whole file (no Range support): start over
    }
    return response;
  }

  async read(response) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read(); // throws when the connection drops
      if (done) return;
      if (this.offset + value.length > this.file.size) {
        await reader.cancel();
        throw coded("bad-bundle", `${this.file.path}: larger than the ${this.file.size} bytes the manifest says`);
      }
      this.bytes.set(value, this.offset);
      this.offset += value.length;
      this.progress.set(this.file, this.offset);
      this.storePieces();
    }
  }

  // Whole pieces (and the last, short one once the file is complete) are queued for storage as they
  // fill; reading goes on meanwhile (the bytes of a full piece no longer change).
  storePieces() {
    while (this.cache.usable && this.stored < this.file.size) {
      const piece = pieceBytes(this.file.size);
      const end = Math.min(this.stored + piece, this.file.size);
      if (this.offset < end) return;
      const index = this.stored / piece;
      this.writes = this.writes.then(() => this.cache.putPiece(this.file, this.bytes, index));
      this.stored = end;
    }
  }

  interrupted(err) {
    const piece = pieceBytes(this.file.size);
    const kept = this.cache.usable ? Math.floor(this.offset / piece) * piece : 0;
    const resume = kept > 0 ? `; ${megabytes(kept)} are kept: load again to resume` : "";
    return coded(
      "network",
      `${this.file.path}: the download broke off at ${megabytes(this.offset)} of ${megabytes(this.file.size)} ` +
        `(${err.message || "network error"})${resume}`,
    );
  }
}

export class WeightStore {
  // files: [{path, size, sha256, externalData}] from qwen35web.runtime.browser.session.download_plan;
  // cache: a WeightCache; storage: {quota, usage} from navigator.storage.estimate(), or null.
  constructor(baseUrl, files, cache, storage = null) {
    this.baseUrl = baseUrl;
    this.files = files;
    this.cache = cache;
    this.storage = storage;
    this.data = new Map();
    // readMs / verifyMs: time reading stored files and hashing them (what a warm load spends here).
    this.stats = { cachedFiles: 0, cachedBytes: 0, downloadedBytes: 0, resumedBytes: 0, readMs: 0, verifyMs: 0 };
  }

  async verified(bytes, file) {
    const start = performance.now();
    const ok = (await sha256Hex(bytes)) === file.sha256;
    this.stats.verifyMs += performance.now() - start;
    return ok;
  }

  // The whole file from storage, verified; null when it is not (completely, correctly) there.
  async fromCache(file, bytes) {
    const read = performance.now();
    const state = await this.cache.readComplete(file, bytes);
    this.stats.readMs += performance.now() - read;
    if (state === "absent") return null;
    if (state === "complete" && (await this.verified(bytes, file))) return bytes;
    console.warn(`${file.path}: the stored copy is damaged; downloading it again`);
    await this.cache.forget(file.sha256);
    return null;
  }

  // Refuse, before any byte is fetched, a download that browser storage cannot hold.
  async checkRoom(missing) {
    if (!this.storage || !this.cache.usable || missing.length === 0) return;
    let needed = 0;
    for (const file of missing) needed += file.size - (await this.cache.keptBytes(file));
    const free = Math.max(0, this.storage.quota - this.storage.usage);
    if (needed > free) {
      throw coded(
        "storage",
        `not enough browser storage for this model: it needs ${megabytes(needed)} and ${megabytes(free)} ` +
          "are free (free space for this site in the browser's settings, then load again)",
      );
    }
  }

  async fetchFile(file, bytes, progress) {
    for (let attempt = 0; ; attempt++) {
      const restored = attempt === 0 ? await this.cache.readPieces(file, bytes) : 0;
      const url = new URL(file.path, this.baseUrl);
      await new Download(url, file, bytes, this.cache, progress).run(restored);
      if (await this.verified(bytes, file)) {
        await this.cache.markComplete(file);
        this.stats.downloadedBytes += file.size - restored;
        this.stats.resumedBytes += restored;
        return;
      }
      await this.cache.forget(file.sha256);
      // A resumed file may have been spliced from a stale piece: fetch it whole once more.
      if (restored === 0 || attempt > 0) {
        throw coded("bad-bundle", `${file.path}: sha256 does not match the manifest (corrupt download)`);
      }
    }
  }

  // Every file of the plan, from storage or the network; report({phase, loaded, total, file}).
  async load(report) {
    const missing = [];
    for (const file of this.files) {
      const bytes = new Uint8Array(file.size);
      if (await this.fromCache(file, bytes)) {
        this.data.set(file.path, bytes);
        this.stats.cachedFiles += 1;
        this.stats.cachedBytes += file.size;
      } else {
        missing.push({ file, bytes });
      }
    }
    await this.checkRoom(missing.map((m) => m.file));
    const progress = new Progress(missing.map((m) => m.file), report);
    report({ phase: "download", loaded: 0, total: progress.total, cachedBytes: this.stats.cachedBytes });
    for (const { file, bytes } of missing) {
      await this.fetchFile(file, bytes, progress);
      this.data.set(file.path, bytes);
    }
  }
}

const PLAIN_PATH = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9_][A-Za-z0-9._/-]*$/;

// The plan browser/session.download_plan makes, read by JS straight from the manifest so the download can start
// while Python is still starting; null when the manifest is not plainly readable (Python then says why).
// Python's plan, which validates the manifest, is compared with it before anything is used.
export function planFromManifest(manifestText) {
  let manifest;
  try {
    manifest = JSON.parse(manifestText);
  } catch {
    return null;
  }
  if (!manifest || typeof manifest.files !== "object" || !Array.isArray(manifest.external_data)) return null;
  const external = manifest.external_data;
  // [path, its external data]: the decoder, the sampler, the tokenizer, then a VL bundle's vision graphs.
  const files = [["model.onnx", external], ...external.map((p) => [p, []]), ["sampler.onnx", []], ["tokenizer.json", []]];
  const vision = manifest.vision;
  if (vision) {
    const data = Array.isArray(vision.data_files) ? vision.data_files : [];
    files.push([vision.file, data], ...data.map((p) => [p, []]), [vision.patchify_file, []]);
  }
  const plan = [];
  for (const [path, externalData] of files) {
    const entry = manifest.files[path];
    if (!PLAIN_PATH.test(String(path)) || !entry || !Number.isInteger(entry.size) || typeof entry.sha256 !== "string") {
      return null;
    }
    plan.push({ path, size: entry.size, sha256: entry.sha256, externalData });
  }
  return plan;
}

// Where bundle files live in this browser: the Cache API, one cache for all models, keyed by content.
//
//   /.weights/sha256/<sha>/piece/<i>   bytes [i * P, (i + 1) * P) of the file, P = pieceBytes(size); written
//                                      while it downloads, so a download cut off resumes from the last
//                                      whole piece (HTTP Range) instead of starting over
//   /.weights/sha256/<sha>             {size, pieces}: written only once every piece is in and the whole
//                                      file matched its sha256 (a file without it is a partial download)
//   /.weights/bundle/<bundle URL>      {manifestText, files: [sha...]}: the manifest last loaded from that
//                                      URL (so a cached model opens offline) and the files it uses
//
// Files shared by bundles share their entries. A file no bundle record names any more (an old version
// of a model) is evicted after each successful load. The keys are same-origin URLs never fetched.

export const CACHE_NAME = "qwen35web-weights-v2";
const CACHE_PREFIX = "qwen35web-weights-";
// A file is kept in about PIECES_PER_FILE pieces, each between the two bounds: a download cut off loses at
// most one piece (<= 4 MiB), and a large file is a few hundred entries, not thousands.
const PIECES_PER_FILE = 16;
const MIN_PIECE_BYTES = 64 * 1024;
const MAX_PIECE_BYTES = 4 * 1024 * 1024;
const READ_CONCURRENCY = 4;

const fileKey = (sha) => `${self.location.origin}/.weights/sha256/${sha}`;
const pieceKey = (sha, index) => `${fileKey(sha)}/piece/${index}`;
const bundleKey = (url) => `${self.location.origin}/.weights/bundle/${encodeURIComponent(url)}`;
const FILE_KEY = /\/\.weights\/sha256\/([0-9a-f]{64})(?:\/piece\/\d+)?$/;

export function pieceBytes(size) {
  return Math.min(MAX_PIECE_BYTES, Math.max(MIN_PIECE_BYTES, Math.ceil(size / PIECES_PER_FILE)));
}

export function pieceCount(size) {
  return Math.max(1, Math.ceil(size / pieceBytes(size)));
}

async function json(response) {
  try {
    return response ? await response.json() : null;
  } catch {
    return null; // an entry that is not ours or was damaged: treated as absent
  }
}

export class WeightCache {
  // `cache` is an open Cache, or null where storage is unavailable (then nothing is kept).
  constructor(cache) {
    this.cache = cache;
    this.broken = false; // set when a write failed (quota): stop writing, keep loading from the network
  }

  static async open() {
    try {
      if (!self.caches) return new WeightCache(null);
      const cache = await self.caches.open(CACHE_NAME);
      // Older layouts of this cache are dropped whole (their keys mean something else).
      for (const name of await self.caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE_NAME) await self.caches.delete(name);
      }
      return new WeightCache(cache);
    } catch (err) {
      console.warn(`weights cache unavailable (${err.message}); downloading every time`);
      return new WeightCache(null);
    }
  }

  get usable() {
    return this.cache !== null && !this.broken;
  }

  async put(key, body) {
    if (!this.usable) return false;
    try {
      await this.cache.put(key, new Response(body));
      return true;
    } catch (err) {
      this.broken = true;
      console.warn(`browser storage refused a write (${err.name}: ${err.message}); not caching any more`);
      return false;
    }
  }

  // The whole cached file {size, sha256} into `bytes` (a Uint8Array of its size): "complete", "absent"
  // (never completely stored: a partial download, if anything) or "damaged". The caller checks the sha256.
  async readComplete(file, bytes) {
    const entry = this.cache ? await this.cache.match(fileKey(file.sha256)) : undefined;
    if (!entry) return "absent";
    const marker = await json(entry);
    if (!marker || marker.size !== file.size || marker.pieces !== pieceCount(file.size)) return "damaged";
    return (await this.readPieces(file, bytes, marker.pieces)) === file.size ? "complete" : "damaged";
  }

  // Piece `index` of `file` into its place in `bytes`; false when it is not stored (whole).
  async readPiece(file, bytes, index) {
    const piece = pieceBytes(file.size);
    const start = index * piece;
    const hit = await this.cache.match(pieceKey(file.sha256, index));
    if (!hit) return false;
    const data = new Uint8Array(await hit.arrayBuffer());
    if (data.length !== Math.min(piece, file.size - start)) return false;
    bytes.set(data, start);
    return true;
  }

  // Consecutive whole pieces from the start into `bytes`, at most `limit`; the bytes they hold. A few
  // pieces are read at once: each read waits on the browser's storage, and the waits overlap.
  async readPieces(file, bytes, limit = pieceCount(file.size)) {
    if (!this.cache) return 0;
    const stored = new Array(limit).fill(false);
    let next = 0;
    const reader = async () => {
      while (next < limit) {
        const index = next++;
        stored[index] = await this.readPiece(file, bytes, index);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, limit) }, reader));
    const whole = stored.includes(false) ? stored.indexOf(false) : limit;
    return Math.min(whole * pieceBytes(file.size), file.size);
  }

  // Bytes of `file` already kept as whole pieces (without reading them): what a resume saves.
  async keptBytes(file) {
    if (!this.cache) return 0;
    if (await this.cache.match(fileKey(file.sha256))) return file.size;
    let index = 0;
    while (index < pieceCount(file.size) && (await this.cache.match(pieceKey(file.sha256, index)))) index++;
    return Math.min(index * pieceBytes(file.size), file.size);
  }

  // Piece `index` of `file`, taken from `bytes` (the whole file's buffer; Response copies it).
  putPiece(file, bytes, index) {
    const start = index * pieceBytes(file.size);
    const end = Math.min(start + pieceBytes(file.size), file.size);
    return this.put(pieceKey(file.sha256, index), bytes.subarray(start, end));
  }

  // After the whole file matched its sha256: mark it complete.
  markComplete(file) {
    return this.put(fileKey(file.sha256), JSON.stringify({ size: file.size, pieces: pieceCount(file.size) }));
  }

  async forget(sha) {
    if (!this.cache) return;
    for (const request of await this.cache.keys()) {
      const match = FILE_KEY.exec(new URL(request.url).pathname);
      if (match && match[1] === sha) await this.cache.delete(request);
    }
  }

  async bundleRecord(url) {
    return this.cache ? json(await this.cache.match(bundleKey(url))) : null;
  }

  recordBundle(url, manifestText, files) {
    return this.put(bundleKey(url), JSON.stringify({ manifestText, files: files.map((f) => f.sha256) }));
  }

  // Delete every file (and partial download) that no bundle record names: old versions of models.
  async evictUnreferenced() {
    if (!this.usable) return 0;
    const requests = await this.cache.keys();
    const referenced = new Set();
    for (const request of requests) {
      if (!new URL(request.url).pathname.startsWith("/.weights/bundle/")) continue;
      const record = await json(await this.cache.match(request));
      for (const sha of record?.files ?? []) referenced.add(sha);
    }
    let evicted = 0;
    for (const request of requests) {
      const match = FILE_KEY.exec(new URL(request.url).pathname);
      if (match && !referenced.has(match[1])) {
        await this.cache.delete(request);
        evicted += 1;
      }
    }
    return evicted;
  }
}

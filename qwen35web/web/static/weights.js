// The bundle's files for the worker: downloaded once with byte progress, kept in the Cache API keyed
// by their sha256, and verified against the manifest's sha256 (crypto.subtle) before every use, also
// when they come from the cache. Python (engine_web / web_entry) reads them through bytes()/text().

const CACHE_NAME = "qwen35web-weights-v1";
const PROGRESS_INTERVAL_MS = 100;

async function sha256Hex(bytes) {
  if (!self.crypto || !self.crypto.subtle) {
    throw new Error("weights cannot be verified here: serve the page over HTTPS or from 127.0.0.1 (a secure context)");
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// A same-origin URL that is only ever a cache key (never fetched): one entry per content hash, so
// bundles that share a file share its cache entry.
function cacheKey(sha256) {
  return new Request(`${self.location.origin}/.weights/sha256/${sha256}`);
}

async function openCache() {
  try {
    return self.caches ? await self.caches.open(CACHE_NAME) : null;
  } catch (err) {
    console.warn(`weights cache unavailable (${err.message}); downloading every time`);
    return null;
  }
}

class Progress {
  constructor(total, report) {
    this.total = total;
    this.loaded = 0;
    this.report = report;
    this.lastReport = 0;
  }

  add(bytes, file) {
    this.loaded += bytes;
    const now = performance.now();
    if (now - this.lastReport >= PROGRESS_INTERVAL_MS || this.loaded === this.total) {
      this.lastReport = now;
      this.report({ phase: "download", loaded: this.loaded, total: this.total, file });
    }
  }
}

async function download(url, file, progress) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) {
    throw new Error(`${file.path}: the server answered HTTP ${response.status}`);
  }
  const bytes = new Uint8Array(file.size);
  const reader = response.body.getReader();
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (received + value.length > file.size) {
      await reader.cancel();
      throw new Error(`${file.path}: larger than the ${file.size} bytes the manifest says`);
    }
    bytes.set(value, received);
    received += value.length;
    progress.add(value.length, file.path);
  }
  if (received !== file.size) {
    throw new Error(`${file.path}: ${received} bytes received, the manifest says ${file.size} (truncated download?)`);
  }
  return bytes;
}

async function verify(file, bytes) {
  if ((await sha256Hex(bytes)) !== file.sha256) {
    throw new Error(`${file.path}: sha256 does not match the manifest (corrupt download)`);
  }
}

export class WeightStore {
  // files: [{path, size, sha256, externalData}] from qwen35web.runtime.web_entry.download_plan
  constructor(baseUrl, files) {
    this.baseUrl = baseUrl;
    this.files = files;
    this.data = new Map();
    this.stats = { cachedFiles: 0, cachedBytes: 0, downloadedBytes: 0 };
  }

  async fromCache(cache, file) {
    const hit = cache ? await cache.match(cacheKey(file.sha256)) : undefined;
    if (!hit) return null;
    const bytes = new Uint8Array(await hit.arrayBuffer());
    if (bytes.length === file.size && (await sha256Hex(bytes)) === file.sha256) return bytes;
    console.warn(`${file.path}: cached copy is corrupt; downloading it again`);
    await cache.delete(cacheKey(file.sha256));
    return null;
  }

  async remember(cache, file, bytes) {
    if (!cache) return;
    try {
      await cache.put(cacheKey(file.sha256), new Response(bytes));
    } catch (err) {
      console.warn(`${file.path}: not cached (${err.message})`);
    }
  }

  // Fetch (or take from the cache) every file of the plan; report({phase, loaded, total, file}).
  async load(report) {
    const cache = await openCache();
    const missing = [];
    for (const file of this.files) {
      const bytes = await this.fromCache(cache, file);
      if (bytes) {
        this.data.set(file.path, bytes);
        this.stats.cachedFiles += 1;
        this.stats.cachedBytes += file.size;
      } else {
        missing.push(file);
      }
    }
    const progress = new Progress(missing.reduce((sum, f) => sum + f.size, 0), report);
    report({ phase: "download", loaded: 0, total: progress.total, cachedBytes: this.stats.cachedBytes });
    for (const file of missing) {
      const bytes = await download(new URL(file.path, this.baseUrl), file, progress);
      await verify(file, bytes);
      this.data.set(file.path, bytes);
      this.stats.downloadedBytes += file.size;
      await this.remember(cache, file, bytes);
    }
  }

  bytes(path) {
    const bytes = this.data.get(path);
    if (!bytes) throw new Error(`bundle file ${path} was not loaded`);
    return bytes;
  }

  text(path) {
    return new TextDecoder("utf-8").decode(this.bytes(path));
  }

  externalData(path) {
    const file = this.files.find((f) => f.path === path);
    return file ? file.externalData : [];
  }

  // The sessions hold their own copies once created: drop ours.
  release() {
    this.data.clear();
  }
}

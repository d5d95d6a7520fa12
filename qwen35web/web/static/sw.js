// The site's service worker: the app shell offline, and cross-origin isolation on any host.
//
// `qwen35web site build` writes SHELL below: the site version (a hash of the shell's files) and the
// sha256 of every shell file. Installing fetches the whole shell and checks every byte against it, so
// a version is cached completely or not at all (a partial upload fails the install and the previous
// version stays); activating drops every other version. A new version waits until the page asks for
// it ("skip-waiting") or no tab uses the old one: an open tab never gets a mix of versions.
// onnxruntime-web's files are cached per backend, for the backend the page uses ("cache-backend").
// Every shell response gets COOP/COEP/CORP headers, so the page is cross-origin isolated (wasm threads)
// even where the server cannot send them. Model weights are not the shell: weights.js keeps those.

const SHELL = null; // filled in by qwen35web site build

const CACHE_PREFIX = "qwen35web-shell-";
const CACHE_NAME = SHELL ? `${CACHE_PREFIX}${SHELL.version}` : null;
const SCOPE = new URL("./", self.location.href).href;
const ISOLATE = new URL(self.location.href).searchParams.get("isolate") !== "0";
const PAGES = new Set(["", "index.html"]); // navigations to the scope's root get index.html

const fileHash = (path) => SHELL.core[path] ?? backendOf(path)?.[path];
const backendOf = (path) => Object.values(SHELL.backends).find((files) => Object.hasOwn(files, path));
const urlOf = (path) => new URL(path, SCOPE).href;

async function sha256Hex(buffer) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", buffer));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The file as this version has it: fetched, and refused unless its bytes match SHELL.
async function fetchVerified(path) {
  for (const cache of ["no-cache", "reload"]) {
    const response = await fetch(urlOf(path), { cache: /** @type {RequestCache} */ (cache) });
    if (!response.ok) throw new Error(`${path}: the server answered HTTP ${response.status}`);
    const bytes = await response.arrayBuffer();
    if ((await sha256Hex(bytes)) === fileHash(path)) {
      return new Response(bytes, { status: 200, headers: response.headers });
    }
  }
  throw new Error(`${path}: the server's copy is not this site version's (${SHELL.version})`);
}

async function cacheFiles(cache, paths) {
  for (const path of paths) await cache.put(urlOf(path), await fetchVerified(path));
}

// Backends an earlier version had cached: the new version caches them too (a whole shell, offline).
async function backendsInUse() {
  const used = new Set();
  for (const name of await caches.keys()) {
    if (!name.startsWith(CACHE_PREFIX) || name === CACHE_NAME) continue;
    const keys = new Set((await (await caches.open(name)).keys()).map((r) => r.url));
    for (const [backend, files] of Object.entries(SHELL.backends)) {
      if (Object.keys(files).every((path) => keys.has(urlOf(path)))) used.add(backend);
    }
  }
  return used;
}

async function install() {
  const cache = await caches.open(CACHE_NAME);
  await cacheFiles(cache, Object.keys(SHELL.core));
  for (const backend of await backendsInUse()) await cacheFiles(cache, Object.keys(SHELL.backends[backend]));
}

async function activate() {
  for (const name of await caches.keys()) {
    if (name.startsWith(CACHE_PREFIX) && name !== CACHE_NAME) await caches.delete(name);
  }
}

function withIsolation(response) {
  if (!ISOLATE) return response;
  const headers = new Headers(response.headers);
  headers.set("Cross-Origin-Opener-Policy", "same-origin");
  headers.set("Cross-Origin-Embedder-Policy", "require-corp");
  headers.set("Cross-Origin-Resource-Policy", "same-origin");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

// A shell file: from this version's cache when intact, else fetched (and cached once verified).
async function serveShell(path) {
  const cache = await caches.open(CACHE_NAME);
  const hit = await cache.match(urlOf(path));
  if (hit) {
    const bytes = await hit.arrayBuffer();
    if ((await sha256Hex(bytes)) === fileHash(path)) {
      return withIsolation(new Response(bytes, { status: 200, headers: hit.headers }));
    }
    console.warn(`${path}: the cached copy is damaged; fetching it again`);
    await cache.delete(urlOf(path));
  }
  try {
    const response = await fetchVerified(path);
    await cache.put(urlOf(path), response.clone());
    return withIsolation(response);
  } catch (err) {
    // Offline with nothing cached, or the server moved on to another version: the network's answer.
    console.warn(`${path}: ${err.message}`);
    return withIsolation(await fetch(urlOf(path)));
  }
}

function shellPath(request) {
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin || !url.href.startsWith(SCOPE)) return null;
  const path = url.pathname.slice(new URL(SCOPE).pathname.length);
  if (request.mode === "navigate" && PAGES.has(path)) return "index.html";
  return fileHash(path) ? path : null;
}

async function cacheBackend(backend) {
  const files = SHELL.backends[backend];
  if (!files) throw new Error(`unknown backend "${backend}"`);
  const cache = await caches.open(CACHE_NAME);
  for (const path of Object.keys(files)) {
    if (!(await cache.match(urlOf(path)))) await cacheFiles(cache, [path]);
  }
}

const MESSAGES = {
  version: async () => ({ version: SHELL?.version ?? null }),
  "cache-backend": async ({ backend }) => (await cacheBackend(backend), { version: SHELL.version, backend }),
  "skip-waiting": async () => (await /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self)).skipWaiting(), {}),
};

self.addEventListener("install", (/** @type {ExtendableEvent} */ event) => {
  if (SHELL) event.waitUntil(install());
});

self.addEventListener("activate", (/** @type {ExtendableEvent} */ event) => {
  if (SHELL) event.waitUntil(activate());
});

self.addEventListener("fetch", (/** @type {FetchEvent} */ event) => {
  const path = SHELL ? shellPath(event.request) : null;
  if (path) event.respondWith(serveShell(path));
});

self.addEventListener("message", (/** @type {ExtendableMessageEvent} */ event) => {
  const { type, ...payload } = event.data || {};
  const port = event.ports[0];
  const handler = MESSAGES[type];
  if (!handler || !port) return;
  event.waitUntil(
    handler(payload).then(
      (value) => port.postMessage({ value }),
      (err) => port.postMessage({ error: err.message }),
    ),
  );
});

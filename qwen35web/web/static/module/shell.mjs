// The page's side of sw.js: register it, reload once to become cross-origin isolated where only the
// service worker can make the page so, cache the backend in use, and offer a waiting site update.

const SW_URL = new URL("../sw.js", import.meta.url);
const RELOAD_MARK = "qwen35web-isolation-reload";

// One request to a service worker, answered on a MessageChannel.
function ask(worker, type, payload = {}) {
  return new Promise((resolve, reject) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = ({ data }) => (data.error ? reject(new Error(data.error)) : resolve(data.value));
    worker.postMessage({ type, ...payload }, [channel.port2]);
  });
}

function activated(registration) {
  const worker = registration.installing || registration.waiting || registration.active;
  if (!worker || worker.state === "activated") return Promise.resolve(registration.active);
  return new Promise((resolve, reject) => {
    worker.addEventListener("statechange", () => {
      if (worker.state === "activated") resolve(worker);
      if (worker.state === "redundant") reject(new Error("the service worker failed to install"));
    });
  });
}

class Shell {
  constructor(registration) {
    this.registration = registration;
    this.updateListeners = new Set();
    this.updateWaiting = Boolean(registration.waiting && navigator.serviceWorker.controller);
    registration.addEventListener("updatefound", () => this.watchInstall(registration.installing));
    if (registration.installing) this.watchInstall(registration.installing);
  }

  get controlled() {
    return Boolean(navigator.serviceWorker.controller);
  }

  watchInstall(worker) {
    if (!worker) return;
    worker.addEventListener("statechange", () => {
      // "installed" while another version controls this page: a new version waits for us.
      if (worker.state === "installed" && navigator.serviceWorker.controller) {
        this.updateWaiting = true;
        for (const listener of this.updateListeners) listener();
      }
    });
  }

  // The active version once it has cached the shell: {version}.
  async ready() {
    const worker = await activated(this.registration);
    return ask(worker, "version");
  }

  // Cache onnxruntime-web's files for `backend` in the active version: the shell is complete offline.
  async cacheBackend(backend) {
    const worker = await activated(this.registration);
    return ask(worker, "cache-backend", { backend });
  }

  onUpdate(listener) {
    this.updateListeners.add(listener);
    if (this.updateWaiting) listener();
  }

  checkForUpdate() {
    return this.registration.update();
  }

  // Switch to the waiting version: the page reloads once it controls this page.
  applyUpdate() {
    const waiting = this.registration.waiting;
    if (!waiting) return false;
    navigator.serviceWorker.addEventListener("controllerchange", () => location.reload(), { once: true });
    waiting.postMessage({ type: "skip-waiting" }, [new MessageChannel().port2]);
    return true;
  }
}

// Register the site's service worker (scope: the folder of this module). `isolate: false` keeps it from
// adding COOP/COEP headers. Where only the service worker can isolate the page, this reloads the page
// once it is active (the promise then never settles); a null result means no service worker here.
export async function enableOffline({ isolate = true } = {}) {
  if (!globalThis.navigator || !navigator.serviceWorker || !globalThis.isSecureContext) return null;
  const url = new URL(SW_URL);
  if (!isolate) url.searchParams.set("isolate", "0");
  const registration = await navigator.serviceWorker.register(url, { type: "classic" });
  const shell = new Shell(registration);
  if (isolate && !crossOriginIsolated && !sessionStorage.getItem(RELOAD_MARK)) {
    await activated(registration);
    sessionStorage.setItem(RELOAD_MARK, "1"); // once per tab: never a reload loop
    location.reload();
    return new Promise(() => {});
  }
  return shell;
}

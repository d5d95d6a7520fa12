// Types the worker side's check needs: the vendored Pyodide (copied into the site at build time, so
// not beside the sources) and WebGPU's navigator.gpu (not in TypeScript's WebWorker library yet).

declare module "*/vendor/pyodide/pyodide.mjs" {
  export const version: string;
  export function loadPyodide(options: Record<string, unknown>): Promise<any>;
}

interface WorkerNavigator {
  readonly gpu?: { requestAdapter(): Promise<any> };
}

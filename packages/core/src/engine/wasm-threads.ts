/**
 * The wasm backend with XNNPACK threads under Node.
 *
 * Stock tfjs-backend-wasm never loads its threaded build under Node: the multithread flag
 * is hard-wired off, and forcing it fails because Node workers cannot load the `blob:`
 * URLs the browser path uses. This loader calls the threaded build's emscripten factory
 * with real file paths and writes the pthread worker script to a temp file.
 *
 * Two things are adjusted in the factory, both without touching the package on disk:
 * - the C++ caps threads at `emscripten_num_logical_cores() / 2`, i.e. half of
 *   `os.cpus()`, which is 1 on a 2-core machine; the factory is given an `os` whose
 *   `cpus()` reports enough cores for the requested count;
 * - emscripten pre-spawns 8 pthread workers; the pool is cut to the requested count.
 *
 * Pthread workers are `unref()`ed, so they never keep Node alive; {@link shutdownEngine}
 * terminates them. The worker script's temp dir is removed as soon as the workers loaded it.
 * @module
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { BackendWasm, getThreadsCount, setThreadsCount } from "@tensorflow/tfjs-backend-wasm";
import { IS_NODE } from "./host.js";
import { tf } from "./tf.js";

// Only the Node loader needs `require`; a browser bundle gets the stock (single-thread) build.
const require = (IS_NODE ? createRequire(import.meta.url) : undefined) as NodeJS.Require;

/** XNNPACK's thread pool in tfjs-backend-wasm is capped at 8 threads. */
export const MAX_WASM_THREADS = 8;
const THREADED_INIT_TIMEOUT_MS = 60_000;

type BackendFactory = () => tf.KernelBackend | Promise<tf.KernelBackend>;

/** How the current wasm backend was (or will be) created. */
export interface WasmStatus {
  /** Requested thread count. */
  requestedThreads: number;
  /** Threads XNNPACK actually uses; 0 until the backend is initialised. */
  threads: number;
  /** Whether the threaded build is running. */
  threaded: boolean;
  /** Why the threaded build is not in use, when it was requested. */
  fallbackReason?: string;
}

interface EngineRegistry {
  registryFactory: Record<string, { factory: BackendFactory; priority: number } | undefined>;
  registry: Record<string, tf.KernelBackend | undefined>;
}

const WASM_PRIORITY = 2;
const engineRegistry = () => tf.engine() as unknown as EngineRegistry;
// The stock factory, captured before prefkit replaces the registration: the fallback path.
const stockFactory: BackendFactory | undefined = engineRegistry().registryFactory["wasm"]?.factory;

let status: WasmStatus = { requestedThreads: 1, threads: 0, threaded: false };

/** The wasm backend's current status. */
export function wasmStatus(): WasmStatus {
  return { ...status };
}

function packageFile(relative: string): string {
  const root = path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json"));
  const file = path.join(root, relative);
  if (!fs.existsSync(file)) throw new Error(`missing ${file}`);
  return file;
}

/**
 * Writes the pthread worker script to a fresh temp dir Node can load it from. The dir can
 * go as soon as the factory resolves: emscripten resolves only after every pool worker has
 * loaded the script, and the pool is sized so no worker is spawned later.
 */
function writeWorkerScript(): { file: string; remove: () => void } {
  const { wasmWorkerContents } = require(packageFile("wasm-out/tfjs-backend-wasm-threaded-simd.worker.js")) as {
    wasmWorkerContents: string;
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "prefkit-wasm-"));
  const file = path.join(dir, "tfjs-wasm-worker.cjs");
  // The contents are meant for a Blob; a literal newline inside them sits in a string literal.
  fs.writeFileSync(file, wasmWorkerContents.replace(/\n/g, "\\n"));
  return { file, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

type ThreadedFactory = (config: Record<string, unknown>) => Promise<any>;

/** Evaluates the threaded emscripten factory with an `os` that reports `2 × threads` cores. */
function loadThreadedFactory(factoryPath: string, threads: number): ThreadedFactory {
  const source = fs.readFileSync(factoryPath, "utf8").replace("pthreadPoolSize=8", `pthreadPoolSize=${threads}`);
  const cpus = os.cpus();
  const fakeOs = { ...os, cpus: () => Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]) };
  const shimRequire = (id: string) => (id === "os" || id === "node:os" ? fakeOs : require(id));
  const module = { exports: {} as unknown };
  const evaluate = new Function("require", "module", "exports", "__filename", "__dirname", source);
  evaluate(shimRequire, module, module.exports, factoryPath, path.dirname(factoryPath));
  if (typeof module.exports !== "function") throw new Error("threaded wasm factory did not load");
  return module.exports as ThreadedFactory;
}

function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`threaded wasm did not start within ${ms} ms`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function createThreadedBackend(threads: number): Promise<BackendWasm> {
  if (!IS_NODE) throw new Error("the threaded loader is for Node; browsers use the stock build");
  if (typeof SharedArrayBuffer === "undefined") throw new Error("SharedArrayBuffer is not available");
  if (!(await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"))) throw new Error("WebAssembly SIMD is not supported");
  const factoryPath = packageFile("wasm-out/tfjs-backend-wasm-threaded-simd.js");
  const wasmPath = packageFile("dist/tfjs-backend-wasm-threaded-simd.wasm");
  const factory = loadThreadedFactory(factoryPath, threads);
  const worker = writeWorkerScript();
  const config: Record<string, any> = {
    locateFile: (file: string) =>
      file.endsWith(".worker.js") ? worker.file : file.endsWith(".wasm") ? wasmPath : file,
    mainScriptUrlOrBlob: factoryPath,
  };
  let mod: any;
  try {
    // emscripten fills `config` in as the Module object, so its PThread is reachable on timeout.
    mod = await withTimeout(factory(config), THREADED_INIT_TIMEOUT_MS, () => config["PThread"]?.terminateAllThreads());
  } finally {
    worker.remove();
  }
  mod.tfjs = {
    init: mod.cwrap("init", null, []),
    initWithThreadsCount: mod.cwrap("init_with_threads_count", null, ["number"]),
    getThreadsCount: mod.cwrap("get_threads_count", "number", []),
    registerTensor: mod.cwrap("register_tensor", null, ["number", "number", "number"]),
    disposeData: mod.cwrap("dispose_data", null, ["number"]),
    dispose: mod.cwrap("dispose", null, []),
  };
  setThreadsCount(threads);
  const backend = new BackendWasm(mod);
  // Running pthreads are ref'd by emscripten; idle XNNPACK workers must not keep Node alive.
  for (const w of mod.PThread.runningWorkers as Array<{ unref(): void }>) w.unref();
  return backend;
}

async function createBackend(threads: number): Promise<tf.KernelBackend> {
  if (threads > 1) {
    try {
      const backend = await createThreadedBackend(threads);
      status = { requestedThreads: threads, threads: getThreadsCount(), threaded: true };
      return backend;
    } catch (err) {
      status = {
        requestedThreads: threads,
        threads: 0,
        threaded: false,
        fallbackReason: `threaded wasm failed (${(err as Error).message}); using 1 thread`,
      };
    }
  }
  if (stockFactory === undefined) throw new Error("the stock wasm backend registration was removed");
  const backend = await stockFactory();
  status = { ...status, requestedThreads: threads, threads: 1, threaded: false };
  return backend;
}

/**
 * Registers the `wasm` backend factory for `threads` threads (1 = the stock single-thread
 * build). An initialised wasm backend with another thread count is removed first: every
 * tensor it held becomes invalid.
 */
export function configureWasm(threads: number): void {
  const reg = engineRegistry();
  const registered = reg.registryFactory["wasm"] !== undefined;
  if (registered && status.requestedThreads === threads && reg.registryFactory["wasm"]!.factory !== stockFactory)
    return;
  if (registered) tf.removeBackend("wasm");
  status = { requestedThreads: threads, threads: 0, threaded: false };
  tf.registerBackend("wasm", () => createBackend(threads), WASM_PRIORITY);
}

/** Removes the wasm backend (terminating pthread workers) and leaves a lazy registration behind. */
export function shutdownWasm(): void {
  const reg = engineRegistry();
  const threads = status.requestedThreads;
  if (reg.registryFactory["wasm"] !== undefined) tf.removeBackend("wasm");
  status = { requestedThreads: threads, threads: 0, threaded: false };
  tf.registerBackend("wasm", () => createBackend(threads), WASM_PRIORITY);
}

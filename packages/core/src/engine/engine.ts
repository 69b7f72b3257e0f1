/**
 * Engine selection: the one place that initialises TF.js, picks the backend and registers
 * kernel plugins. Trainers call {@link initEngine} once and log {@link engineInfo}.
 * @module
 */
import os from "node:os";
import { EngineError } from "../errors/index.js";
import { hostEnv, IS_NODE } from "./host.js";
import { builtinKernelPlugins } from "./kernels/index.js";
import { activeNativeGemm, NATIVE_BLAS_PLUGIN, nativeBlasPlugin, nativeBlasStatus } from "./kernels/native-blas.js";
import type { NativeGemmInfo } from "./kernels/native-gemm.js";
import type { KernelPlugin } from "./plugin.js";
import { tf } from "./tf.js";
import { configureWasm, MAX_WASM_THREADS, shutdownWasm, wasmStatus } from "./wasm-threads.js";

/** Options of {@link initEngine}. Every field is optional. */
export interface EngineOptions {
  /**
   * Backend to use: `"wasm"`, `"cpu"`, `"tensorflow"` (tfjs-node or tfjs-node-gpu, when
   * installed), any other registered TF.js backend, or `"auto"`. Defaults to the
   * `PREFKIT_BACKEND` environment variable, then `"auto"`: tfjs-node-gpu, tfjs-node, the
   * backend of an available `preferred` kernel plugin (`cpu` with the native addon, which is used
   * whenever it is built unless `PREFKIT_NATIVE=0`), wasm, cpu, first that works.
   */
  backend?: string;
  /**
   * XNNPACK threads for wasm, 1–8. 1 uses the stock single-thread build; more loads the
   * threaded build (falling back to 1 thread if that fails). Defaults to `PREFKIT_THREADS`,
   * then `min(4, os.availableParallelism())`.
   */
  threads?: number;
  /**
   * Extra kernel plugins, e.g. `nativeBlasPlugin()` (the native addon's matmuls on `cpu`). They stay
   * known to later calls. Setting the `PREFKIT_NATIVE=1` environment variable adds the native
   * BLAS plugin without code changes.
   */
  plugins?: KernelPlugin[];
  /**
   * Register prefkit's built-in kernels (wasm matmul routing, scatter-add segment sum,
   * cpu fallbacks). Default true; false gives stock TF.js kernels, for comparisons.
   */
  builtinKernels?: boolean;
}

/** A kernel plugin as reported by {@link engineInfo}. */
export interface KernelPluginInfo {
  /** Plugin name. */
  name: string;
  /** Backend the plugin's kernels target. */
  backend: string;
  /** Kernels the plugin provides. */
  kernels: string[];
}

/** What the engine is running on. Trainers log it once at start. */
export interface EngineInfo {
  /** Active TF.js backend, e.g. `"wasm"`. */
  backend: string;
  /**
   * Compute threads: XNNPACK threads on wasm, the core count on tensorflow, on cpu the BLAS
   * threads of a native plugin (such as native-blas) or else 1.
   */
  threads: number;
  /** Whether the wasm backend runs its threaded build. */
  wasmThreaded: boolean;
  /** `@tensorflow/tfjs-core` version. */
  tfjsVersion: string;
  /** Registered kernel plugins that target the active backend. */
  kernelPlugins: KernelPluginInfo[];
  /**
   * What runs the products when the native addon is active (cpu with `native-blas`): its GEMM's
   * instruction set (`"avx512bf16"`, `"avx512"`, `"avx2"`, `"scalar"`; `PREFKIT_ISA` forces one), BLAS
   * (`"builtin"`, or `"openblas"` with `PREFKIT_BLAS=openblas`) and threads. Absent otherwise.
   */
  nativeGemm?: NativeGemmInfo;
  /** Why a preferred choice was not taken (a missing package, a failed threaded build). */
  notes: string[];
}

const NATIVE_MODULES = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"] as const;
const NATIVE_BACKEND = "tensorflow";

interface EngineState {
  backend: string;
  threads: number;
  builtinKernels: boolean;
  notes: string[];
}

let state: EngineState | undefined;
const userPlugins = new Map<string, KernelPlugin>();
const builtins = builtinKernelPlugins();
/** Plugins whose kernels are currently registered. */
const registered = new Map<string, KernelPlugin>();

function logicalCores(): number {
  if (!IS_NODE) return globalThis.navigator?.hardwareConcurrency ?? 1;
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}

function defaultThreads(): number {
  // In a browser the stock single-thread build is used (threads there need cross-origin isolation).
  if (!IS_NODE) return 1;
  const cores = logicalCores();
  return Math.max(1, Math.min(4, cores));
}

function resolveThreads(option: number | undefined): number {
  const env = hostEnv("PREFKIT_THREADS");
  const threads = option ?? (env !== undefined && env !== "" ? Number(env) : defaultThreads());
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    const field = option === undefined ? "PREFKIT_THREADS" : "threads";
    throw new EngineError(`threads must be an integer from 1 to ${MAX_WASM_THREADS}, got ${String(threads)}`, {
      field,
    });
  }
  return threads;
}

/** Imports tfjs-node-gpu or tfjs-node, which register the `tensorflow` backend. */
async function loadNativeBackend(notes: string[]): Promise<boolean> {
  if (tf.findBackendFactory(NATIVE_BACKEND) != null) return true;
  for (const name of NATIVE_MODULES) {
    try {
      await import(name);
    } catch {
      notes.push(`${name} is not installed`);
      continue;
    }
    if (tf.findBackendFactory(NATIVE_BACKEND) != null) return true;
    notes.push(`${name} loaded but registered no "${NATIVE_BACKEND}" backend with prefkit's tfjs-core`);
  }
  return false;
}

async function isAvailable(plugin: KernelPlugin): Promise<boolean> {
  try {
    return await plugin.isAvailable();
  } catch {
    return false;
  }
}

function knownPlugins(builtinKernels: boolean): KernelPlugin[] {
  return [...(builtinKernels ? builtins : []), ...userPlugins.values()];
}

/** Registers every available plugin in `wanted` and unregisters any other. */
async function syncPlugins(wanted: KernelPlugin[], notes: string[]): Promise<void> {
  const keep = new Set<KernelPlugin>();
  for (const plugin of wanted) {
    if (registered.get(plugin.name) === plugin) {
      keep.add(plugin);
    } else if (await isAvailable(plugin)) {
      keep.add(plugin);
    } else {
      const reason = plugin.unavailableReason?.();
      notes.push(`kernel plugin ${plugin.name} is not available${reason === undefined ? "" : `: ${reason}`}`);
    }
  }
  for (const [name, plugin] of registered) {
    if (keep.has(plugin)) continue;
    plugin.unregister();
    registered.delete(name);
  }
  for (const plugin of keep) {
    if (registered.get(plugin.name) === plugin) continue;
    try {
      await plugin.register();
    } catch (err) {
      plugin.unregister();
      throw new EngineError(
        `kernel plugin ${plugin.name} failed to register: ${(err as Error).message}`,
        {},
        { cause: err },
      );
    }
    registered.set(plugin.name, plugin);
  }
}

async function trySetBackend(name: string): Promise<boolean> {
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

/** Backends to try, best first, for a request. */
async function candidates(
  requested: string,
  field: string,
  plugins: KernelPlugin[],
  notes: string[],
): Promise<string[]> {
  if (requested === NATIVE_BACKEND || requested === "node" || requested === "tfjs-node") {
    if (await loadNativeBackend(notes)) return [NATIVE_BACKEND];
    throw new EngineError(`backend "${requested}" needs @tensorflow/tfjs-node or tfjs-node-gpu: ${notes.join("; ")}`, {
      field,
    });
  }
  if (requested !== "auto") {
    if (tf.findBackendFactory(requested) == null) {
      const known = Object.keys((tf.engine() as unknown as { registryFactory: object }).registryFactory);
      throw new EngineError(`unknown backend "${requested}"; registered: ${known.join(", ")}`, { field });
    }
    return [requested];
  }
  const order: string[] = [];
  if (await loadNativeBackend(notes)) order.push(NATIVE_BACKEND);
  for (const plugin of plugins) {
    if (plugin.preferred && (await isAvailable(plugin)) && !order.includes(plugin.backend)) order.push(plugin.backend);
  }
  for (const name of ["wasm", "cpu"]) if (!order.includes(name)) order.push(name);
  return order;
}

/** Stops the cpu backend's one-time "looks like you are running TensorFlow.js in Node.js" banner. */
function silenceCpuBanner(): void {
  const cpu = tf.findBackend("cpu") as { firstUse?: boolean } | null;
  if (cpu != null && "firstUse" in cpu) cpu.firstUse = false;
}

/**
 * Initialises TF.js: picks the backend, configures wasm threads, registers kernel plugins.
 *
 * Idempotent: a second call with the same options only re-reports; a call with another
 * backend switches to it (tensors move lazily); a call with another thread count rebuilds
 * the wasm backend, which invalidates tensors held by it.
 *
 * @throws EngineError when an explicitly requested backend or thread count is unusable.
 */
export function initEngine(options: EngineOptions = {}): Promise<EngineInfo> {
  // Serialised: two overlapping calls must not interleave plugin and backend switches.
  const run = pending.then(() => initEngineNow(options));
  pending = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

let pending: Promise<void> = Promise.resolve();

async function initEngineNow(options: EngineOptions): Promise<EngineInfo> {
  const notes: string[] = [];
  for (const plugin of options.plugins ?? []) {
    const previous = userPlugins.get(plugin.name);
    if (previous !== undefined && previous !== plugin && registered.get(plugin.name) === previous) {
      previous.unregister();
      registered.delete(plugin.name);
    }
    userPlugins.set(plugin.name, plugin);
  }
  // The native addon is used whenever it is built (npm ci builds it when g++ and make are installed),
  // unless PREFKIT_NATIVE=0; PREFKIT_NATIVE=1 asks for it and reports why when it is unavailable.
  const nativeEnv = hostEnv("PREFKIT_NATIVE");
  if (
    nativeEnv !== "0" &&
    !userPlugins.has(NATIVE_BLAS_PLUGIN) &&
    (nativeEnv === "1" || nativeBlasStatus().available)
  ) {
    userPlugins.set(NATIVE_BLAS_PLUGIN, nativeBlasPlugin());
  }
  const envBackend = hostEnv("PREFKIT_BACKEND");
  const fromEnv = options.backend === undefined && envBackend !== undefined && envBackend !== "";
  const requested = (options.backend ?? (fromEnv ? envBackend : "auto")).trim();
  const field = fromEnv ? "PREFKIT_BACKEND" : "backend";
  const threads = resolveThreads(options.threads);
  const builtinKernels = options.builtinKernels ?? true;
  const plugins = knownPlugins(builtinKernels);

  silenceCpuBanner();
  await syncPlugins(plugins, notes);
  for (const plugin of registered.values()) plugin.configure?.({ threads });
  let chosen: string | undefined;
  for (const name of await candidates(requested, field, plugins, notes)) {
    if (name === "wasm") configureWasm(threads);
    if (await trySetBackend(name)) {
      chosen = name;
      break;
    }
    notes.push(`backend ${name} failed to initialise`);
  }
  if (chosen === undefined) {
    throw new EngineError(`no usable backend for "${requested}": ${notes.join("; ")}`, { field: "backend" });
  }
  const wasm = wasmStatus();
  if (chosen === "wasm" && wasm.fallbackReason !== undefined) notes.push(wasm.fallbackReason);
  state = { backend: chosen, threads, builtinKernels, notes };
  return engineInfo();
}

/**
 * What the engine runs on: backend, threads, TF.js version, active kernel plugins.
 * @throws EngineError before {@link initEngine} has run.
 */
export function engineInfo(): EngineInfo {
  if (state === undefined) throw new EngineError("engine not initialised: call initEngine() first");
  const backend = tf.getBackend();
  const wasm = wasmStatus();
  const active = [...registered.values()].filter((p) => p.backend === backend);
  const threads =
    backend === "wasm"
      ? wasm.threads
      : backend === NATIVE_BACKEND
        ? logicalCores()
        : active.some((p) => p.configure !== undefined)
          ? state.threads
          : 1;
  const kernelPlugins = active.map((p) => ({ name: p.name, backend: p.backend, kernels: [...p.kernels] }));
  const nativeGemm = active.some((p) => p.name === NATIVE_BLAS_PLUGIN) ? activeNativeGemm() : undefined;
  return {
    backend,
    threads,
    wasmThreaded: backend === "wasm" && wasm.threaded,
    tfjsVersion: tf.version_core,
    kernelPlugins,
    ...(nativeGemm !== undefined ? { nativeGemm } : {}),
    notes: [...state.notes],
  };
}

/** The engine as a run sees it: what the `ENGINE` token of a run container resolves to. */
export interface Engine {
  /** The TensorFlow.js namespace prefkit computes with. */
  readonly tf: typeof tf;
  /**
   * {@link engineInfo} once the engine is initialised: the first call runs {@link initEngine} with its defaults
   * (environment variables included) unless the user already called it. Trainers await it before training.
   */
  ready(): Promise<EngineInfo>;
}

/**
 * The process's engine ({@link Engine}): trainers call `ready()`, so `initEngine` is optional for users. When
 * the user picked a backend with `tf.setBackend` but never called `initEngine`, `ready()` keeps that backend
 * (and adds prefkit's kernels to it) rather than switching away from where the model's tensors live.
 */
export const defaultEngine: Engine = {
  tf,
  ready: () => {
    if (state !== undefined) return pending.then(() => engineInfo());
    const chosen = (tf.engine() as { backendName?: string | null }).backendName;
    return initEngine(chosen ? { backend: chosen } : {});
  },
};

/**
 * Releases the engine: removes the wasm backend (terminating its pthread workers, freeing
 * its heap) and unregisters every kernel plugin. Tensors on wasm become invalid. Call
 * {@link initEngine} again to continue.
 */
export function shutdownEngine(): void {
  for (const plugin of registered.values()) plugin.unregister();
  registered.clear();
  shutdownWasm();
  state = undefined;
}

/**
 * Kernel plugins: a named set of TF.js kernels for one backend that can be added to or
 * removed from the running engine. prefkit's own wasm and cpu kernels are plugins, and so
 * is a native BLAS binding that replaces `BatchMatMul` on `cpu`.
 * @module
 */
import { tf } from "./tf.js";

/**
 * A set of kernels for one TF.js backend that prefkit can register and unregister.
 *
 * Implement it directly for full control, or build one from kernel configs with
 * {@link defineKernelPlugin}, which handles replacing and restoring stock kernels.
 */
export interface KernelPlugin {
  /** Unique name, reported in {@link EngineInfo.kernelPlugins}, e.g. `"prefkit-wasm-matmul"`. */
  readonly name: string;
  /** Backend whose kernels this plugin adds or replaces: `"cpu"`, `"wasm"`, `"tensorflow"`. */
  readonly backend: string;
  /** Names of the kernels the plugin provides, e.g. `["BatchMatMul"]`. For reporting only. */
  readonly kernels: readonly string[];
  /**
   * When true and {@link KernelPlugin.isAvailable} holds, automatic engine selection prefers
   * this plugin's backend over wasm. Set it for native (N-API) plugins that make `cpu` fast.
   */
  readonly preferred?: boolean;
  /** Whether the plugin can run here (e.g. its native library loads). Must not throw. */
  isAvailable(): boolean | Promise<boolean>;
  /** Why {@link KernelPlugin.isAvailable} is false (e.g. the native addon is not built), for the engine's notes. */
  unavailableReason?(): string | undefined;
  /**
   * Called by {@link initEngine} after registration with the engine's settings, e.g. so a
   * native plugin runs its BLAS on `threads` threads. A plugin that implements it makes
   * {@link EngineInfo.threads} report `threads` on its backend.
   */
  configure?(settings: { threads: number }): void;
  /** Registers the kernels. Called by {@link initEngine} when enabling the plugin, and not again until after `unregister()`. */
  register(): void | Promise<void>;
  /** Removes the kernels and restores whatever was registered before. */
  unregister(): void;
}

/** One kernel of a {@link KernelPluginSpec}. */
export interface KernelSpec {
  /** TF.js kernel name, e.g. `tf.BatchMatMul`. */
  kernelName: string;
  /**
   * Builds the kernel at registration time, so it can wrap the kernel it replaces: `stock` is
   * whatever was registered before (undefined when the backend has none). Return the stock
   * `setupFunc` too when delegating to a stock wasm kernel, since it binds the wasm function.
   */
  build: (stock: tf.KernelConfig | undefined) => Omit<tf.KernelConfig, "kernelName" | "backendName">;
}

/** What {@link defineKernelPlugin} needs to build a {@link KernelPlugin}. */
export interface KernelPluginSpec {
  /** Unique plugin name. */
  name: string;
  /** Backend every kernel targets. */
  backend: string;
  /** Kernels to register. */
  kernels: readonly KernelSpec[];
  /** See {@link KernelPlugin.preferred}. */
  preferred?: boolean;
  /** See {@link KernelPlugin.isAvailable}; defaults to always available. */
  isAvailable?: () => boolean | Promise<boolean>;
}

/**
 * Registers `config`, replacing any kernel already registered under the same name and
 * backend (TF.js warns and keeps the old one otherwise). Returns the replaced config.
 */
export function replaceKernel(config: tf.KernelConfig): tf.KernelConfig | undefined {
  const previous = tf.getKernel(config.kernelName, config.backendName);
  if (previous !== undefined) tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
  return previous;
}

/**
 * Builds a {@link KernelPlugin} from kernel configs. `register()` replaces each kernel and
 * remembers the stock one; `unregister()` puts the stock kernels back.
 */
export function defineKernelPlugin(spec: KernelPluginSpec): KernelPlugin {
  const replaced = new Map<string, tf.KernelConfig | undefined>();
  return {
    name: spec.name,
    backend: spec.backend,
    kernels: spec.kernels.map((k) => k.kernelName),
    preferred: spec.preferred,
    isAvailable: spec.isAvailable ?? (() => true),
    register() {
      if (replaced.size > 0) return;
      for (const { kernelName, build } of spec.kernels) {
        const stock = tf.getKernel(kernelName, spec.backend);
        replaceKernel({ ...build(stock), kernelName, backendName: spec.backend });
        replaced.set(kernelName, stock);
      }
    },
    unregister() {
      for (const [kernelName, stock] of replaced) {
        if (tf.getKernel(kernelName, spec.backend) !== undefined) tf.unregisterKernel(kernelName, spec.backend);
        if (stock !== undefined) tf.registerKernel(stock);
      }
      replaced.clear();
    },
  };
}

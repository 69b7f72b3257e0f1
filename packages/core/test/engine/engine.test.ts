import { createRequire } from "node:module";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { EngineError } from "../../src/errors/index.js";
import {
  defineKernelPlugin,
  engineInfo,
  initEngine,
  type KernelPlugin,
  shutdownEngine,
  tf,
} from "../../src/engine/index.js";

// This file tests engine/plugin selection itself: the native addon only when a test asks for it.
const nativeEnvBefore = process.env.PREFKIT_NATIVE;
process.env.PREFKIT_NATIVE = "0";
afterAll(() => {
  process.env.PREFKIT_NATIVE = nativeEnvBefore;
});
const ENV_KEYS = ["PREFKIT_BACKEND", "PREFKIT_THREADS"] as const;
const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));

afterEach(() => {
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});
afterAll(() => shutdownEngine());

function installed(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}
const nativeInstalled = installed("@tensorflow/tfjs-node") || installed("@tensorflow/tfjs-node-gpu");

async function expectEngineError(p: Promise<unknown>, field: string, message: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EngineError);
  expect((err as EngineError).field).toBe(field);
  expect((err as EngineError).message).toMatch(message);
}

/** A stand-in for an N-API BLAS plugin: replaces BatchMatMul on cpu and counts its calls. */
function fakeNativePlugin(available: boolean | (() => boolean)) {
  const calls = { register: 0, unregister: 0, matmul: 0 };
  const inner = defineKernelPlugin({
    name: "fake-blas",
    backend: "cpu",
    preferred: true,
    isAvailable: typeof available === "function" ? available : () => available,
    kernels: [
      {
        kernelName: tf.BatchMatMul,
        build: (stock) => ({
          kernelFunc: (args) => {
            calls.matmul++;
            return stock!.kernelFunc(args);
          },
        }),
      },
    ],
  });
  const plugin: KernelPlugin = {
    ...inner,
    register: () => {
      calls.register++;
      return inner.register();
    },
    unregister: () => {
      calls.unregister++;
      inner.unregister();
    },
  };
  return { plugin, calls };
}

describe("initEngine / engineInfo", () => {
  it("engineInfo throws before initEngine", () => {
    expect(() => engineInfo()).toThrow(EngineError);
  });

  it("auto-selects wasm here (no tfjs-node) and explains why", async () => {
    delete process.env["PREFKIT_BACKEND"];
    const info = await initEngine({ threads: 1 });
    if (nativeInstalled) {
      expect(info.backend).toBe("tensorflow");
      return;
    }
    expect(info.backend).toBe("wasm");
    expect(info.threads).toBe(1);
    expect(info.wasmThreaded).toBe(false);
    expect(info.tfjsVersion).toBe(tf.version_core);
    expect(info.notes).toContain("@tensorflow/tfjs-node is not installed");
    expect(info.kernelPlugins.map((p) => p.name)).toEqual(
      expect.arrayContaining(["prefkit-wasm-matmul", "prefkit-wasm-segment-sum"]),
    );
    expect(info.kernelPlugins.every((p) => p.backend === "wasm")).toBe(true);
    expect(engineInfo()).toEqual(info);
  });

  it("is idempotent: the same options keep the same backend instance", async () => {
    await initEngine({ backend: "wasm", threads: 1 });
    const backend = tf.backend();
    const t = tf.tensor1d([1, 2, 3]);
    await initEngine({ backend: "wasm", threads: 1 });
    expect(tf.backend()).toBe(backend);
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3]);
    t.dispose();
  });

  it("switches backend on a second call; tensors follow", async () => {
    await initEngine({ backend: "wasm", threads: 1 });
    const t = tf.tensor1d([1, 2, 3]);
    const info = await initEngine({ backend: "cpu" });
    expect(info.backend).toBe("cpu");
    expect(tf.getBackend()).toBe("cpu");
    expect(Array.from(tf.tidy(() => tf.mul(t, 2).dataSync()))).toEqual([2, 4, 6]);
    expect(info.kernelPlugins.map((p) => p.name)).toEqual(["prefkit-cpu-segment-sum"]);
    t.dispose();
  });

  it("PREFKIT_BACKEND overrides auto-selection, and an explicit backend overrides the variable", async () => {
    process.env["PREFKIT_BACKEND"] = "cpu";
    expect((await initEngine({ threads: 1 })).backend).toBe("cpu");
    expect((await initEngine({ backend: "wasm", threads: 1 })).backend).toBe("wasm");
    process.env["PREFKIT_BACKEND"] = "no-such-backend";
    await expectEngineError(initEngine({ threads: 1 }), "PREFKIT_BACKEND", /unknown backend "no-such-backend"/);
  });

  it("rejects unknown backends and bad thread counts with EngineError", async () => {
    await expectEngineError(initEngine({ backend: "webgpu" }), "backend", /unknown backend "webgpu".*wasm/);
    await expectEngineError(initEngine({ backend: "wasm", threads: 0 }), "threads", /1 to 8, got 0/);
    await expectEngineError(initEngine({ backend: "wasm", threads: 2.5 }), "threads", /got 2.5/);
    process.env["PREFKIT_THREADS"] = "many";
    await expectEngineError(initEngine({ backend: "wasm" }), "PREFKIT_THREADS", /got NaN/);
  });

  it.skipIf(nativeInstalled)("explains a missing tfjs-node when the tensorflow backend is requested", async () => {
    await expectEngineError(initEngine({ backend: "tensorflow" }), "backend", /tfjs-node-gpu is not installed/);
  });

  it("prefers cpu when a preferred native kernel plugin is available, and uses its kernels", async () => {
    const { plugin, calls } = fakeNativePlugin(true);
    const stock = tf.getKernel(tf.BatchMatMul, "cpu");
    const info = await initEngine({ threads: 1, plugins: [plugin] });
    if (nativeInstalled) return;
    expect(info.backend).toBe("cpu");
    expect(info.kernelPlugins.map((p) => p.name)).toEqual(["prefkit-cpu-segment-sum", "fake-blas"]);
    expect(info.kernelPlugins[1]).toEqual({ name: "fake-blas", backend: "cpu", kernels: ["BatchMatMul"] });
    expect(calls.register).toBe(1);
    const y = tf.tidy(() => Array.from(tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).dataSync()));
    expect(y).toEqual([3, 3, 3, 3]);
    expect(calls.matmul).toBe(1);
    // A repeat call neither re-registers nor loses the plugin.
    await initEngine({ threads: 1 });
    expect(calls.register).toBe(1);
    expect(engineInfo().kernelPlugins.map((p) => p.name)).toContain("fake-blas");
    // Shutdown restores the stock kernel.
    shutdownEngine();
    expect(calls.unregister).toBe(1);
    expect(tf.getKernel(tf.BatchMatMul, "cpu")).toBe(stock);
  });

  it("skips an unavailable (or throwing) plugin and says so", async () => {
    const { plugin, calls } = fakeNativePlugin(() => {
      throw new Error("libopenblas.so not found");
    });
    const info = await initEngine({ threads: 1, plugins: [plugin] });
    if (nativeInstalled) return;
    expect(info.backend).toBe("wasm");
    expect(calls.register).toBe(0);
    expect(info.notes).toContain("kernel plugin fake-blas is not available");
    await initEngine({ backend: "cpu", threads: 1 });
    expect(engineInfo().kernelPlugins.map((p) => p.name)).not.toContain("fake-blas");
  });

  it("builtinKernels: false restores stock kernels; true registers prefkit's again", async () => {
    await initEngine({ backend: "wasm", threads: 1, builtinKernels: false });
    expect(engineInfo().kernelPlugins).toEqual([]);
    expect(tf.getKernel(tf.UnsortedSegmentSum, "wasm")).toBeUndefined();
    await initEngine({ backend: "wasm", threads: 1 });
    expect(tf.getKernel(tf.UnsortedSegmentSum, "wasm")).toBeDefined();
  });
});

describe("threaded wasm", () => {
  const refs = () => process.getActiveResourcesInfo().filter((r) => r === "MessagePort" || r === "Worker").length;

  it("runs XNNPACK on 2 threads without keeping Node alive", async () => {
    const before = refs();
    const info = await initEngine({ backend: "wasm", threads: 2 });
    expect(info.notes.filter((n) => n.includes("threaded"))).toEqual([]);
    expect(info.threads).toBe(2);
    expect(info.wasmThreaded).toBe(true);
    const y = tf.tidy(() => tf.matMul(tf.ones([64, 32]), tf.ones([32, 48])).dataSync());
    expect(y.every((v) => v === 32)).toBe(true);
    // Idle pthread workers are unref'd: nothing new holds the event loop.
    expect(refs()).toBe(before);
  });

  it("falls back to one thread, with a note, when the threaded build cannot load", async () => {
    const sab = Object.getOwnPropertyDescriptor(globalThis, "SharedArrayBuffer")!;
    Object.defineProperty(globalThis, "SharedArrayBuffer", { ...sab, value: undefined });
    try {
      const info = await initEngine({ backend: "wasm", threads: 3 });
      expect(info.backend).toBe("wasm");
      expect(info.threads).toBe(1);
      expect(info.wasmThreaded).toBe(false);
      expect(info.notes).toContain("threaded wasm failed (SharedArrayBuffer is not available); using 1 thread");
      expect(tf.tidy(() => tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).dataSync()[0])).toBe(3);
    } finally {
      Object.defineProperty(globalThis, "SharedArrayBuffer", sab);
    }
  });

  it("goes back to the single-thread build when asked for 1 thread", async () => {
    const info = await initEngine({ backend: "wasm", threads: 1 });
    expect(info.threads).toBe(1);
    expect(info.wasmThreaded).toBe(false);
  });

  it("reads PREFKIT_THREADS", async () => {
    process.env["PREFKIT_THREADS"] = "2";
    const info = await initEngine({ backend: "wasm" });
    expect(info.threads).toBe(2);
    shutdownEngine();
    expect(() => engineInfo()).toThrow(EngineError);
    // And comes back after a shutdown.
    expect((await initEngine({ backend: "wasm", threads: 2 })).threads).toBe(2);
  });
});

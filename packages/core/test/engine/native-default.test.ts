/**
 * The fast path is what a user gets by installing: when `npm ci` has built the native addon,
 * `initEngine()` picks `cpu` with the native-blas plugin; `PREFKIT_NATIVE=0` keeps the portable wasm path.
 * (Its own file: a plugin, once added, stays for the life of the process.)
 */
import { afterAll, describe, expect, it } from "vitest";
import { initEngine, NATIVE_BLAS_PLUGIN, nativeBlasStatus, shutdownEngine } from "../../src/engine/index.js";

const status = nativeBlasStatus();
const underCi = process.env.CI === "true";
const previous = process.env.PREFKIT_NATIVE;
afterAll(() => {
  process.env.PREFKIT_NATIVE = previous;
  shutdownEngine();
});

describe("the default engine", () => {
  it("PREFKIT_NATIVE=0 keeps the portable wasm path", async () => {
    delete process.env.PREFKIT_BACKEND;
    process.env.PREFKIT_NATIVE = "0";
    const info = await initEngine({ threads: 1 });
    expect(info.backend).toBe("wasm");
    expect(info.kernelPlugins.map((p) => p.name)).not.toContain(NATIVE_BLAS_PLUGIN);
  });

  it("uses cpu + native-blas when the addon is built and PREFKIT_NATIVE is unset, else stays on wasm", async () => {
    delete process.env.PREFKIT_NATIVE;
    if (underCi) expect(status.available, `the addon must be built in CI: ${status.reason}`).toBe(true);
    const info = await initEngine({ threads: 1 });
    if (status.available) {
      expect(info.backend).toBe("cpu");
      expect(info.kernelPlugins.map((p) => p.name)).toContain(NATIVE_BLAS_PLUGIN);
    } else {
      console.warn(`native addon not built (${status.reason}): checking the wasm fallback only`);
      expect(info.backend).toBe("wasm");
      expect(info.notes.join("; ")).not.toContain("native-blas");
    }
  });
});

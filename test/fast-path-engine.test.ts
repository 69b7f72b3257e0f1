/**
 * `.ci/run` runs the whole suite a second time with PREFKIT_NATIVE=1 (and a third time with
 * PREFKIT_BLAS=openblas as well); this checks that the run really is on the fast path (test/helpers/setup-engine.ts initialises the default engine for every file), and
 * that the default run is left alone (no engine initialised before the tests' own).
 */
import { EngineError, engineInfo, nativeBlasStatus, tf } from "@prefkit/core";
import { nativeDecoderStatus } from "@prefkit/models";
import { describe, expect, it } from "vitest";

const fastRun = process.env["PREFKIT_NATIVE"] === "1";

describe("the test run's engine", () => {
  it(
    fastRun
      ? "PREFKIT_NATIVE=1: every test file starts on cpu with the native addon (when built)"
      : "default run: no engine is initialised before a test's own",
    () => {
      if (!fastRun) {
        expect(() => engineInfo()).toThrow(EngineError);
        return;
      }
      const status = nativeBlasStatus();
      if (process.env["CI"] === "true") expect(status.available, status.reason).toBe(true);
      if (!status.available) {
        console.warn(`native addon not built (${status.reason}): the PREFKIT_NATIVE=1 run is on the portable path`);
        return;
      }
      expect(tf.getBackend()).toBe("cpu");
      expect(engineInfo().kernelPlugins.map((p) => p.name)).toContain("native-blas");
      // The fused decoder's addon (packages/models/native) loads and runs on core's GEMM and pool.
      const decoder = nativeDecoderStatus();
      expect(decoder.available, decoder.reason).toBe(true);
      // The third CI pass (PREFKIT_BLAS=openblas) really sends the fp32 products to OpenBLAS.
      expect(engineInfo().nativeGemm?.blas).toBe(process.env["PREFKIT_BLAS"] === "openblas" ? "openblas" : "builtin");
    },
  );
});

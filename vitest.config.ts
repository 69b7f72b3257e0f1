import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources, so `npm test` does not need a build first.
    alias: {
      "@prefkit/core": src("core"),
      "@prefkit/losses": src("losses"),
      "@prefkit/models": src("models"),
      "@prefkit/callbacks": src("callbacks"),
    },
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Two cores: more workers only fight over them.
    maxWorkers: 2,
    // Two workers already fill both cores; a threaded wasm pool on top of that spins against the
    // other worker (measured: a tiny-model SFT step 185 ms on 1 thread, 1.1 s on 2 under load).
    // Tests that exercise threading pass `threads` explicitly.
    // The suite's default engine stays the portable wasm path; tests of the native addon enable it
    // explicitly (`plugins: [nativeBlasPlugin()]`), and PREFKIT_NATIVE=1 runs the whole suite on it.
    env: {
      PREFKIT_THREADS: process.env["PREFKIT_THREADS"] ?? "1",
      PREFKIT_NATIVE: process.env["PREFKIT_NATIVE"] ?? "0",
    },
    setupFiles: ["test/helpers/setup-engine.ts"],
    reporters: ["default"],
  },
});

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
    reporters: ["default"],
  },
});

import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const src = (pkg: string) => fileURLToPath(new URL(`../../packages/${pkg}/src/index.ts`, import.meta.url));

// The page bundles prefkit's sources (core, losses, models). Node-only code paths (file I/O,
// checkpoints, the threaded wasm loader) are never reached in the page.
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  logLevel: "warn",
  resolve: {
    alias: {
      "@prefkit/core": src("core"),
      "@prefkit/losses": src("losses"),
      "@prefkit/models": src("models"),
    },
  },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", chunkSizeWarningLimit: 8000 },
});

// `npm install` / `npm ci` hook of @prefkit/core: builds the optional native addon (its own GEMM and
// thread pool, AdamW, the kernel plugin's products, and the engine ABI that @prefkit/models' fused
// decoder uses) when the machine has what it needs (see build-addon.mjs), and never fails the install.
// OpenBLAS, when installed, is only loaded at run time with PREFKIT_BLAS=openblas.
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { buildAddon } from "./build-addon.mjs";

buildAddon({
  pkg: "@prefkit/core",
  dir: dirname(fileURLToPath(import.meta.url)),
  what: "native addon",
  artifact: "packages/core/native/build/Release/prefkit_native.node",
  fallback: "prefkit uses the portable wasm path (the fast cpu path needs the addon)",
});

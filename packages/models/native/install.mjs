// `npm install` / `npm ci` hook of @prefkit/models: builds the fused decoder's addon (it runs on
// @prefkit/core's GEMM and thread pool, through the engine ABI) with core's builder, and never fails
// the install: without a compiler it prints one line and the decoder runs its tfjs ops.
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { buildAddon } from "@prefkit/core/native/build-addon.mjs";

buildAddon({
  pkg: "@prefkit/models",
  dir: dirname(fileURLToPath(import.meta.url)),
  what: "native decoder",
  artifact: "packages/models/native/build/Release/prefkit_decoder.node",
  fallback: "the decoder runs its tfjs ops (the fused native decoder needs this addon)",
});

// `npm install` / `npm ci` hook of @prefkit/core: builds the optional native addon (its own GEMM, the
// fused decoder, AdamW) when the machine has what it needs, and never fails the install.
//
// Needs: a C++ compiler (g++), make and python3 (for node-gyp), and Node's headers where node-gyp finds
// them without a download (e.g. `nodedir` in npmrc). No BLAS package: the addon brings its own GEMM
// (OpenBLAS, when installed, is only loaded at run time with PREFKIT_BLAS=openblas). Without them it
// prints one line saying why and what to install; prefkit then runs on the portable wasm path.
// PREFKIT_SKIP_NATIVE=1 skips the build. Rebuild later with `npm run build:native`.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const say = (msg) => console.log(`@prefkit/core: ${msg}`);
const portable = "prefkit uses the portable wasm path (the fast cpu path needs the addon)";

function missingPrerequisite() {
  if (process.platform !== "linux" && process.platform !== "darwin") {
    return `native addon not built: it builds on Linux and macOS, not ${process.platform}`;
  }
  for (const tool of ["g++", "make", "python3"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `native addon not built: ${tool} is missing (apt-get install g++ make python3)`;
    }
  }
  return undefined;
}

function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), "../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"),
  ];
  return candidates.find((c) => c !== undefined && c !== "" && existsSync(c));
}

if (process.env.PREFKIT_SKIP_NATIVE === "1") {
  say(`native addon not built: PREFKIT_SKIP_NATIVE=1; ${portable}`);
} else {
  const missing = missingPrerequisite();
  const gyp = nodeGyp();
  if (missing !== undefined) say(`${missing}; ${portable}`);
  else if (gyp === undefined) say(`native addon not built: node-gyp not found; ${portable}`);
  else {
    const r = spawnSync(process.execPath, [gyp, "rebuild", "--directory", here], { encoding: "utf8" });
    if (r.status === 0) say("native addon built (packages/core/native/build/Release/prefkit_native.node)");
    else {
      const tail = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-4).join(" | ");
      say(`native addon build failed (${tail}); ${portable}; retry with \`npm run build:native\``);
    }
  }
}

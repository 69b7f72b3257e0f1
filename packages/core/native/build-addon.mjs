// Builds one of prefkit's optional native addons with node-gyp at `npm install` / `npm ci` (the
// install scripts of @prefkit/core and @prefkit/models call it), and never fails the install: without
// what the build needs, or when it fails, it prints one line saying why and what to do, and prefkit
// keeps its portable path.
//
// Needs: a C++ compiler (g++), make and python3 (for node-gyp), and Node's headers where node-gyp finds
// them without a download (e.g. `nodedir` in npmrc). No BLAS package. PREFKIT_SKIP_NATIVE=1 skips the
// build. Rebuild later with `npm run build:native`.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

function missingPrerequisite() {
  if (process.platform !== "linux" && process.platform !== "darwin") {
    return `it builds on Linux and macOS, not ${process.platform}`;
  }
  for (const tool of ["g++", "make", "python3"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `${tool} is missing (apt-get install g++ make python3)`;
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

/**
 * Build the addon whose binding.gyp is in `dir`, printing one line prefixed with `pkg`.
 * @param {{ pkg: string, dir: string, what: string, artifact: string, fallback: string }} addon
 *   what: e.g. "native addon"; artifact: the built file, for the success line; fallback: what prefkit
 *   does without it.
 */
export function buildAddon({ pkg, dir, what, artifact, fallback }) {
  const say = (msg) => console.log(`${pkg}: ${msg}`);
  if (process.env.PREFKIT_SKIP_NATIVE === "1") {
    say(`${what} not built: PREFKIT_SKIP_NATIVE=1; ${fallback}`);
    return;
  }
  const missing = missingPrerequisite();
  const gyp = nodeGyp();
  if (missing !== undefined) say(`${what} not built: ${missing}; ${fallback}`);
  else if (gyp === undefined) say(`${what} not built: node-gyp not found; ${fallback}`);
  else {
    const r = spawnSync(process.execPath, [gyp, "rebuild", "--directory", dir], { encoding: "utf8" });
    if (r.status === 0) say(`${what} built (${artifact})`);
    else {
      const tail = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-4).join(" | ");
      say(`${what} build failed (${tail}); ${fallback}; retry with \`npm run build:native\``);
    }
  }
}

#!/usr/bin/env node
/**
 * Fails (exit 1) when the sources of packages/* import each other in a circle, and prints each circle.
 * Every relative import and every `@prefkit/<pkg>` import counts, type-only ones included: a circle of
 * types is still a circle in the design.
 *
 *   node scripts/check-cycles.mjs
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PACKAGES = join(ROOT, "packages");

function sources(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

const files = readdirSync(PACKAGES)
  .map((p) => join(PACKAGES, p, "src"))
  .filter((d) => existsSync(d))
  .flatMap(sources);

function resolveImport(from, spec) {
  if (spec.startsWith("@prefkit/")) return join(PACKAGES, spec.slice("@prefkit/".length), "src", "index.ts");
  if (!spec.startsWith(".")) return undefined;
  const target = resolve(dirname(from), spec.replace(/\.js$/, ".ts"));
  return existsSync(target) ? target : undefined;
}

const graph = new Map();
const importRe = /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/g;
for (const file of files) {
  const text = readFileSync(file, "utf8");
  const deps = new Set();
  for (const m of text.matchAll(importRe)) {
    const target = resolveImport(file, m[1]);
    if (target !== undefined && target !== file) deps.add(target);
  }
  graph.set(file, [...deps]);
}

// Tarjan's strongly connected components: every component with more than one file is a circle.
let index = 0;
const stack = [];
const info = new Map();
const circles = [];
function visit(v) {
  info.set(v, { index, low: index, onStack: true });
  index++;
  stack.push(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!info.has(w)) {
      visit(w);
      info.get(v).low = Math.min(info.get(v).low, info.get(w).low);
    } else if (info.get(w).onStack) info.get(v).low = Math.min(info.get(v).low, info.get(w).index);
  }
  if (info.get(v).low === info.get(v).index) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      info.get(w).onStack = false;
      component.push(w);
    } while (w !== v);
    if (component.length > 1) circles.push(component);
  }
}
for (const v of graph.keys()) if (!info.has(v)) visit(v);

if (circles.length === 0) {
  console.log(`no import circles in ${files.length} source files`);
} else {
  for (const c of circles) console.log(`circle: ${c.map((f) => relative(ROOT, f)).join(" ↔ ")}`);
  process.exit(1);
}

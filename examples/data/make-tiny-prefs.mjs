#!/usr/bin/env node
/**
 * Writes tiny-prefs.jsonl: 12 small {prompt, chosen, rejected} rows for CLI smoke runs on stories260K
 * (TinyStories vocabulary). Chosen completions continue the story; rejected ones are word salad.
 * Deterministic: `node examples/data/make-tiny-prefs.mjs` rewrites the same file.
 */
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const names = ["Lily", "Tom", "Sue", "Ben"];
const things = ["a big red ball", "a little dog", "a shiny toy", "a pretty flower"];
const places = ["the park", "the garden"];
const rows = [];
for (let i = 0; i < 12; i++) {
  const name = names[i % names.length];
  const thing = things[(i >> 1) % things.length];
  const place = places[i % places.length];
  rows.push({
    prompt: `Once upon a time, there was a little girl named ${name}. One day, she went to ${place} and saw`,
    chosen: ` ${thing}. She was very happy and played with it all day.`,
    rejected: ` the the was and. Big day a it happy the the.`,
  });
}
const out = join(dirname(fileURLToPath(import.meta.url)), "tiny-prefs.jsonl");
writeFileSync(out, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
console.log(`wrote ${rows.length} rows to ${out}`);

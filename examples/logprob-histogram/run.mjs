#!/usr/bin/env node
/**
 * The SmolLM-card-style log-prob histogram on stories260K: in-distribution text (TinyStories-like
 * stories sampled from the model itself, temperature 1) versus out-of-distribution text (WikiText-2
 * paragraphs), each scored as the mean per-token log-prob under the model.
 *
 *   npm run build && node examples/logprob-histogram/run.mjs [--texts 32] [--out runs/logprob-histogram]
 *
 * Writes logprob_histogram.png/.svg/.json into --out and prints the two means.
 * WikiText-2 (../shared/assets/wikitext2/wikitext-2-raw-v1.test.txt) is plain UTF-8 text, one paragraph
 * per line, with headings as " = Title = " lines and blank lines between; we take paragraphs of 30+ words.
 */
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { generate, logProbHistogram } from "@prefkit/callbacks";
import { initEngine } from "@prefkit/core";
import { AutoModelForCausalLM, AutoTokenizer } from "@prefkit/models";

const here = dirname(fileURLToPath(import.meta.url));
const SHARED = resolve(here, "..", "..", "..", "shared", "assets");

/** Run the comparison; returns the histogram result (means by dataset name, PNG path). */
export async function main(options = {}) {
  const o = {
    texts: 32,
    maxLength: 64,
    outDir: "runs/logprob-histogram",
    modelDir: join(SHARED, "stories260K"),
    wikiFile: join(SHARED, "wikitext2", "wikitext-2-raw-v1.test.txt"),
    log: console.log,
    ...options,
  };
  await initEngine({ backend: "wasm", threads: 1 });
  const model = await AutoModelForCausalLM.fromPretrained(o.modelDir);
  const tok = await AutoTokenizer.fromPretrained(o.modelDir);
  try {
    // In-distribution: the model's own stories, sampled from BOS (one batch: all prompts are [BOS]).
    const stories = (
      await generate(model, tok, new Array(o.texts).fill(""), {
        maxNewTokens: o.maxLength,
        temperature: 1,
        seed: 7,
      })
    ).map((g) => g.completion.trim());
    const wiki = (await readFile(o.wikiFile, "utf8"))
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("=") && l.split(/\s+/).length >= 30)
      .slice(0, o.texts);
    const result = await logProbHistogram(
      model,
      tok,
      [
        { name: "TinyStories (model samples)", texts: stories },
        { name: "WikiText-2", texts: wiki },
      ],
      { outDir: o.outDir, maxLength: o.maxLength },
    );
    for (const d of result.datasets)
      o.log(`${d.name}: mean log-prob per token ${d.mean.toFixed(4)} over ${d.values.length} texts`);
    o.log(`histogram: ${result.png}`);
    return result;
  } finally {
    model.dispose();
  }
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  const { values } = parseArgs({ options: { texts: { type: "string" }, out: { type: "string" } } });
  await main({
    ...(values.texts ? { texts: Number(values.texts) } : {}),
    ...(values.out ? { outDir: values.out } : {}),
  });
  process.exit(0);
}

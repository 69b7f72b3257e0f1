#!/usr/bin/env node
/**
 * prefkit demo: SFT, then DPO toward a preference a simple rule can measure, then (on the fast path) a few
 * DPO steps in bf16 AMP against float32 on the trained model loaded from a bf16 checkpoint.
 *
 *   npm run demo                      tiny Llama, built here; about a minute on 2 cores
 *   npm run demo -- --quick           a shorter run (the test uses it)
 *   npm run demo -- --model DIR       the DPO phase on a real HF checkpoint (e.g. stories260K)
 *
 * Nothing is downloaded: the tiny model, its tokenizer and every dataset are generated here.
 */
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { engineInfo, initEngine } from "@prefkit/core";
import { runTinyDemo } from "./lib/tiny.mjs";
import { runModelDemo } from "./lib/real-model.mjs";

const HELP = `usage: npm run demo -- [options]

  --model DIR      run the DPO phase on a HF checkpoint directory (config.json, model.safetensors,
                   tokenizer.json), with pairs from the model's own samples labelled by the rule
  --quick          fewer steps and samples (a smoke test, about 20 s)
  --seed N         seed of data, weights and sampling (default 42)
  --backend NAME   TF.js backend: wasm (default choice), cpu, tensorflow, auto
  --threads N      wasm threads (default 1: the demo's matmuls are too small to gain from more)
  --json           print the result as one JSON line at the end
  -h, --help       this text`;

/** Parse the command line. */
export function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" },
      quick: { type: "boolean", default: false },
      seed: { type: "string", default: "42" },
      backend: { type: "string" },
      threads: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new Error(`--seed: expected an integer, got ${values.seed}`);
  return {
    model: values.model,
    quick: values.quick,
    seed,
    backend: values.backend,
    threads: values.threads === undefined ? undefined : Number(values.threads),
    json: values.json,
    help: values.help,
  };
}

async function main() {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (e) {
    console.error(`${e.message}\n\n${HELP}`);
    process.exit(2);
  }
  if (cli.help) {
    console.log(HELP);
    return;
  }
  const started = performance.now();
  const engineOpts = {};
  if (cli.backend !== undefined) engineOpts.backend = cli.backend;
  // One wasm thread unless asked: the demo's matmuls are small, and a thread pool sharing two cores
  // with anything else is several times slower than one thread (see examples/demo/README.md).
  engineOpts.threads = cli.threads ?? 1;
  await initEngine(engineOpts);
  const info = engineInfo();
  const fast = info.kernelPlugins.some((p) => p.name === "native-blas");
  const path = fast
    ? ` + native addon (the fast path; GEMM ${info.nativeGemm?.isa ?? "?"}, ${info.nativeGemm?.blas ?? "?"})`
    : " (the portable path; `npm ci` with g++ and make builds the fast one)";
  console.log(`prefkit demo · backend ${info.backend}${path}, ${info.threads} thread(s)`);
  const result =
    cli.model !== undefined
      ? await runModelDemo({ dir: cli.model, quick: cli.quick, seed: cli.seed })
      : await runTinyDemo({ quick: cli.quick, seed: cli.seed });
  const seconds = (performance.now() - started) / 1000;
  console.log(`\ntotal time ${seconds.toFixed(1)} s`);
  if (cli.json) console.log(JSON.stringify({ ...result, totalSeconds: seconds }));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((e) => {
    console.error(e?.stack ?? e);
    process.exit(1);
  });
}

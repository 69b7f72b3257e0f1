// Forward time and KV-cache generation speed of stories260K and a SmolLM-135M-shaped random model.
// Prints one JSON line per measurement on stdout (progress on stderr). Not a test.
//
//   npm run build && node bench/generate.mjs
//   node bench/generate.mjs --models stories --engines wasm --new-tokens 32
//   node bench/generate.mjs --cpu-smol-layers 2 --cpu-smol-batch 1   # the pure-JS cpu backend is ~0.3 GFLOPS
//
// Lines:
//   {kind:"forward", model, engine, layers, batch, seq, ms, tokensPerSec}          batch × seq tokens, no grad
//   {kind:"generate", model, engine, layers, batch, promptLen, newTokens, ms, prefillMs,
//    tokensPerSec, msPerStep}                                                       greedy, KV cache, no stop id
// tokensPerSec of "generate" counts new tokens only (batch × newTokens / total time incl. prefill).
// Timings on a shared 2-core machine swing by ~3x when anything else runs: compare lines of one run.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { initEngine, nativeBlasPlugin, Rng, shutdownEngine, tf } from "@prefkit/core";
import { AutoModelForCausalLM } from "@prefkit/models";
import { smolConfig } from "./smol.mjs";

const { values: opts } = parseArgs({
  options: {
    models: { type: "string", default: "stories,smol" },
    engines: { type: "string", default: "wasm,cpu" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "3" },
    batch: { type: "string", default: "4" },
    seq: { type: "string", default: "128" },
    "smol-layers": { type: "string", default: "30" },
    "cpu-smol-layers": { type: "string", default: "2" },
    "cpu-smol-batch": { type: "string", default: "4" },
    "gen-batches": { type: "string", default: "1,8" },
    "prompt-len": { type: "string", default: "16" },
    "new-tokens": { type: "string", default: "64" },
    "smol-new-tokens": { type: "string", default: "32" },
    "gen-engines": { type: "string", default: "wasm" },
  },
  strict: true,
});
const num = (k) => Number(opts[k]);
const list = (k) => opts[k].split(",").filter(Boolean);
const log = (...a) => console.error("[bench:generate]", ...a);

const STORIES = fileURLToPath(new URL("../../shared/assets/stories260K", import.meta.url));
const SMOL = smolConfig();

async function loadModel(name, layers) {
  if (name === "stories") {
    if (!existsSync(STORIES)) throw new Error(`stories260K not found at ${STORIES}`);
    return { label: "stories260K", model: await AutoModelForCausalLM.fromPretrained(STORIES) };
  }
  return {
    label: layers === 30 ? "smollm-135m" : `smollm-135m-${layers}l`,
    model: AutoModelForCausalLM.fromConfig({ ...SMOL, num_hidden_layers: layers }, { seed: 0 }),
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function randomIds(rows, cols, vocab, seed) {
  const rng = new Rng(seed);
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => 3 + rng.int(vocab - 3)));
}

function timeForward(model, ids, reps) {
  const run = () => tf.tidy(() => void model.forward({ inputIds: ids }).logits.dataSync());
  const ms = [];
  for (let i = 0; i <= reps; i++) {
    const t0 = performance.now();
    run();
    if (i > 0 || reps === 0) ms.push(performance.now() - t0); // the first run warms up (unless reps = 0)
  }
  return median(ms);
}

async function timeGenerate(model, batch, promptLen, newTokens, vocab) {
  const ids = randomIds(batch, promptLen, vocab, 1);
  await model.generate(ids, { maxNewTokens: 2, eosTokenId: [] }); // warm-up
  const prefill = performance.now();
  await model.generate(ids, { maxNewTokens: 1, eosTokenId: [] });
  const prefillMs = performance.now() - prefill;
  const t0 = performance.now();
  const out = await model.generate(ids, { maxNewTokens: newTokens, eosTokenId: [] });
  const ms = performance.now() - t0;
  const generated = out.numGeneratedTokens.reduce((a, b) => a + b, 0);
  return { ms, prefillMs, tokensPerSec: (generated / ms) * 1000, msPerStep: (ms - prefillMs) / (newTokens - 1) };
}

const r1 = (x) => Math.round(x * 10) / 10;

for (const engineName of list("engines")) {
  let info;
  try {
    // "native": the cpu backend with the native-blas plugin (OpenBLAS matmuls), at --threads.
    info =
      engineName === "native"
        ? await initEngine({ backend: "cpu", threads: num("threads"), plugins: [nativeBlasPlugin()] })
        : await initEngine({ backend: engineName, threads: engineName === "wasm" ? num("threads") : 1 });
    if (engineName === "native" && !info.kernelPlugins.some((p) => p.name === "native-blas")) {
      throw new Error(`native addon unavailable: ${info.notes.join("; ")}`);
    }
  } catch (e) {
    console.log(JSON.stringify({ engine: engineName, error: String(e?.message ?? e) }));
    continue;
  }
  const engine = engineName === "native" ? `native-${info.threads}t` : `${info.backend}-${info.threads}t`;
  for (const name of list("models")) {
    const onCpu = info.backend === "cpu" && engineName !== "native";
    const layers = name === "smol" ? (onCpu ? num("cpu-smol-layers") : num("smol-layers")) : 5;
    log(`${engine}: loading ${name} (${layers} layers)`);
    const { label, model } = await loadModel(name, layers);
    const vocab = model.decoderConfig.vocabSize;
    const batch = name === "smol" && onCpu ? num("cpu-smol-batch") : num("batch");
    const seq = num("seq");
    const reps = name === "smol" && onCpu ? 0 : num("reps");
    log(`${engine}: forward ${label} ${batch}x${seq}`);
    const ms = timeForward(model, randomIds(batch, seq, vocab, 0), reps);
    console.log(
      JSON.stringify({
        kind: "forward",
        model: label,
        engine,
        layers,
        batch,
        seq,
        runs: Math.max(1, reps),
        ms: Math.round(ms),
        tokensPerSec: r1(((batch * seq) / ms) * 1000),
      }),
    );
    if (list("gen-engines").includes(engineName)) {
      for (const genBatch of list("gen-batches").map(Number)) {
        const newTokens = name === "smol" ? num("smol-new-tokens") : num("new-tokens");
        log(`${engine}: generate ${label} batch ${genBatch}, ${newTokens} new tokens`);
        const g = await timeGenerate(model, genBatch, num("prompt-len"), newTokens, vocab);
        console.log(
          JSON.stringify({
            kind: "generate",
            model: label,
            engine,
            layers,
            batch: genBatch,
            promptLen: num("prompt-len"),
            newTokens,
            ms: Math.round(g.ms),
            prefillMs: Math.round(g.prefillMs),
            msPerStep: r1(g.msPerStep),
            tokensPerSec: r1(g.tokensPerSec),
          }),
        );
      }
    }
    model.dispose();
  }
  shutdownEngine();
}

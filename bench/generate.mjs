// Forward time and KV-cache generation speed of stories260K and a SmolLM-135M-shaped random model.
// Prints one JSON line per measurement on stdout (progress on stderr). Not a test.
//
//   npm run build && node bench/generate.mjs
//   node bench/generate.mjs --models stories --engines wasm --new-tokens 32
//   node bench/generate.mjs --models smol --engines native --gen-engines native --decodes native,tfjs
//   node bench/generate.mjs --cpu-smol-layers 2 --cpu-smol-batch 1   # the pure-JS cpu backend is ~0.3 GFLOPS
//
// Lines:
//   {kind:"forward", model, engine, layers, batch, seq, ms, tokensPerSec}          batch × seq tokens, no grad
//   {kind:"generate", model, engine, decode, weights, layers, batch, promptLen, newTokens, ms, prefillMs,
//    tokensPerSec, msPerStep}                                                       greedy, KV cache, no stop id
//   {kind:"generate-rss", model, engine, decode, calls, rssMB: {first, max, last}, numTensors: {first, last}}
//                                                    RSS and tensors over --rss-calls generate() calls (smol)
// tokensPerSec of "generate" counts new tokens only (batch × newTokens / total time incl. prefill), as the
// PyTorch peer does. On the native engine, `decode` says which session decoded: "native" (the decode step,
// issue 16) or "tfjs" (the tfjs ops over a tensor KV cache, what the fast path ran before; --decodes).
// --long-new-tokens N adds a batch-1 line with N new tokens for smol (the Mistral card's 128; 0: none).
// `weights` is "float32", or for smol on the native decode step (unless --weights float32) "bf16": the same
// model saved as BF16 and loaded with dtype "bfloat16", its frozen weights decoded from their 16-bit packs.
// Timings on a shared 2-core machine swing by ~3x when anything else runs: compare lines of one run.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
    decodes: { type: "string", default: "native" },
    "long-new-tokens": { type: "string", default: "128" },
    "rss-calls": { type: "string", default: "0" },
    weights: { type: "string", default: "float32,bf16" },
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

/** RSS (MB) of this process now. */
const rssMB = () => Math.round(process.memoryUsage().rss / 2 ** 20);

/**
 * RSS and tensor count over `calls` generate() calls of varying batch (1–8), length and sampling, after one
 * warm-up call of the largest shape: flat means the KV cache and buffers are reused.
 */
async function rssOverCalls(model, calls, vocab) {
  const ids = randomIds(8, 16, vocab, 3);
  const run = (i) => {
    const rows = 1 + (i % 8);
    return model.generate(ids.slice(0, rows), {
      maxNewTokens: 4 + (i % 5),
      eosTokenId: [],
      doSample: i % 2 === 0,
      seed: i,
      returnLogprobs: i % 3 === 0,
    });
  };
  await run(7);
  const rss = [rssMB()];
  const tensors = [tf.memory().numTensors];
  for (let i = 0; i < calls; i++) {
    await run(i);
    rss.push(rssMB());
  }
  tensors.push(tf.memory().numTensors);
  return {
    calls,
    rssMB: { first: rss[0], max: Math.max(...rss), last: rss.at(-1) },
    numTensors: { first: tensors[0], last: tensors[1] },
  };
}

/** Median of `reps` timed greedy generations (after a warm-up), as the PyTorch peer times its own. */
async function timeGenerate(model, batch, promptLen, newTokens, vocab, reps) {
  const ids = randomIds(batch, promptLen, vocab, 1);
  await model.generate(ids, { maxNewTokens: 2, eosTokenId: [] }); // warm-up
  const prefill = performance.now();
  await model.generate(ids, { maxNewTokens: 1, eosTokenId: [] });
  const prefillMs = performance.now() - prefill;
  const runs = [];
  for (let i = 0; i < Math.max(1, reps); i++) {
    const t0 = performance.now();
    const out = await model.generate(ids, { maxNewTokens: newTokens, eosTokenId: [] });
    runs.push(performance.now() - t0);
    if (out.numGeneratedTokens.some((n) => n !== newTokens)) throw new Error("a row stopped early");
  }
  const ms = median(runs);
  return {
    ms,
    prefillMs,
    tokensPerSec: ((batch * newTokens) / ms) * 1000,
    msPerStep: (ms - prefillMs) / (newTokens - 1),
  };
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
      const shapes = list("gen-batches").map((b) => [
        Number(b),
        name === "smol" ? num("smol-new-tokens") : num("new-tokens"),
      ]);
      if (name === "smol" && num("long-new-tokens") > 0) shapes.push([1, num("long-new-tokens")]);
      // The native engine decodes on the native step, or (--decodes tfjs) on the tfjs ops as before issue 16.
      const decodes = engineName === "native" ? list("decodes") : ["tfjs"];
      /** Times each shape on `m` (decoding on `decode`) and prints its "generate" line. */
      const generateLines = async (m, decode, weights) => {
        const session = m.startDecoding(1, 2);
        const ran = session?.kind ?? "tfjs";
        session?.dispose();
        if (ran !== decode) throw new Error(`asked to decode on ${decode}, but ${ran} would run`);
        for (const [genBatch, newTokens] of shapes) {
          log(
            `${engine}: generate ${label} (${weights}) batch ${genBatch}, ${newTokens} new tokens, ${decode} decoding`,
          );
          // One timed run of the long shape (its steps already average out), as the PyTorch peer does.
          const timed = newTokens === num("long-new-tokens") && genBatch === 1 ? 1 : num("reps");
          const g = await timeGenerate(m, genBatch, num("prompt-len"), newTokens, vocab, timed);
          console.log(
            JSON.stringify({
              kind: "generate",
              model: label,
              engine,
              decode,
              weights,
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
      };
      for (const decode of decodes) {
        model.decoder.useNativeGeneration = decode === "native";
        await generateLines(model, decode, "float32");
        if (name === "smol" && num("rss-calls") > 0) {
          log(`${engine}: rss over ${num("rss-calls")} generate() calls, ${decode} decoding`);
          const r = await rssOverCalls(model, num("rss-calls"), vocab);
          console.log(JSON.stringify({ kind: "generate-rss", model: label, engine, decode, layers, ...r }));
        }
      }
      if (name === "smol" && decodes.includes("native") && list("weights").includes("bf16")) {
        // The same model stored in 16 bits (saved as BF16, loaded with dtype "bfloat16"): the native step
        // runs its frozen weights from their bf16 packs.
        const dir = await mkdtemp(join(tmpdir(), "prefkit-bench-bf16-"));
        try {
          await model.savePretrained(dir, { dtype: "BF16" });
          const half = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
          await generateLines(half, "native", "bf16");
          half.dispose();
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
      model.decoder.useNativeGeneration = true;
    }
    model.dispose();
  }
  shutdownEngine();
}

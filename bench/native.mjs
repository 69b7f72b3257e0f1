// The native BLAS plugin (cpu + OpenBLAS through N-API) against the portable wasm path.
// Prints JSON lines (one per measurement) to stdout; progress goes to stderr. Not a test.
//
//   npm run build && npm run build:native && node bench/native.mjs [--skip-model] [--skip-profile] [--top 10]
//
// 1. GFLOPS of [512×576]·[576×1536] and its two gradient products (dA = dC·Bᵀ, dB = Aᵀ·dC) through
//    tf.matMul on cpu with the plugin, at 1 and 2 OpenBLAS threads.
// 2. Forward+backward of a SmolLM-shaped 2-layer model (hidden 576, 9/3 heads, intermediate 1536,
//    vocab 49152, tied) at 2×128 (loss: summed completion log-probs), on cpu+native (2 threads) and
//    on wasm (2 threads, prefkit kernels); one warm-up, then the mean of --steps timed steps.
// 3. tf.profile of that step on cpu+native: the top kernels by total ms.
// Timings on a shared 2-core machine swing up to 3×: each line carries the 1-minute load average.
import os from "node:os";
import { parseArgs } from "node:util";
import { initEngine, nativeBlasPlugin, nativeBlasStatus, sequenceLogProbs, tf } from "@prefkit/core";
import { PreTrainedModelForCausalLM } from "@prefkit/models";
import { randomBatch, smolConfig } from "./smol.mjs";

const { values: opts } = parseArgs({
  options: {
    "skip-model": { type: "boolean", default: false },
    "skip-profile": { type: "boolean", default: false },
    steps: { type: "string", default: "1" },
    top: { type: "string", default: "10" },
  },
});

const load = () => Math.round(os.loadavg()[0] * 100) / 100;
const emit = (record) => console.log(JSON.stringify({ ...record, load1: load() }));
const log = (msg) => console.error(`[native] ${msg}`);

const status = nativeBlasStatus();
emit({ bench: "native-status", ...status });
if (!status.available) {
  log(`native-blas is unavailable (${status.reason}); nothing to measure`);
  process.exit(0);
}
const plugin = nativeBlasPlugin();

// 1. Matmul GFLOPS.
const [M, K, N] = [512, 576, 1536];
const products = [
  { name: "forward A·B [512×576]·[576×1536]", a: [M, K], b: [K, N], ta: false, tb: false },
  { name: "dA = dC·Bᵀ [512×1536]·[576×1536]ᵀ", a: [M, N], b: [K, N], ta: false, tb: true },
  { name: "dB = Aᵀ·dC [512×576]ᵀ·[512×1536]", a: [M, K], b: [M, N], ta: true, tb: false },
];
for (const threads of [1, 2]) {
  await initEngine({ backend: "cpu", threads, plugins: [plugin] });
  for (const p of products) {
    const a = tf.randomNormal(p.a);
    const b = tf.randomNormal(p.b);
    // (Returning the typed array from tf.tidy would make tidy walk all its elements.)
    const run = () => {
      const c = tf.matMul(a, b, p.ta, p.tb);
      c.dataSync();
      c.dispose();
    };
    run();
    const reps = 10;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    const ms = (performance.now() - t0) / reps;
    emit({
      bench: "native-matmul",
      product: p.name,
      threads,
      ms: Math.round(ms * 100) / 100,
      gflops: Math.round((2 * M * N * K) / ms / 1e5) / 10,
    });
    tf.dispose([a, b]);
  }
}

// 2. and 3. The SmolLM-shaped 2-layer forward+backward.
const SMOL = smolConfig(2);
const [ROWS, T, PROMPT] = [2, 128, 32];

async function modelStep(label, engineOptions, profile) {
  const info = await initEngine(engineOptions);
  tf.env().set("CHECK_COMPUTATION_FOR_ERRORS", false);
  const model = PreTrainedModelForCausalLM.fromConfig(SMOL, { seed: 0 });
  const { ids, completion: mask } = randomBatch({ rows: ROWS, seqLen: T, prompt: PROMPT, vocab: SMOL.vocab_size });
  const vars = model.trainableVariables();
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(sequenceLogProbs(model, ids, mask).sums), vars);
      for (const g of Object.values(grads)) g.dataSync();
      return value.dataSync()[0];
    });
  log(`${label}: warm-up step (${info.backend}, ${info.threads} threads)`);
  let t0 = performance.now();
  step();
  const warmupS = (performance.now() - t0) / 1000;
  const steps = Number(opts.steps);
  t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const seconds = (performance.now() - t0) / 1000 / steps;
  emit({
    bench: "native-model-fwd-bwd",
    path: label,
    backend: info.backend,
    threads: info.threads,
    plugins: info.kernelPlugins.map((p) => p.name),
    layers: 2,
    batch: `${ROWS}x${T}`,
    warmupS: Math.round(warmupS * 100) / 100,
    seconds: Math.round(seconds * 100) / 100,
  });
  if (profile) {
    log(`${label}: profiling one step`);
    const prof = await tf.profile(() => {
      step();
      return [];
    });
    const byName = new Map();
    let totalMs = 0;
    for (const k of prof.kernels) {
      const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
      totalMs += ms;
      const e = byName.get(k.name) ?? { kernel: k.name, ms: 0, calls: 0 };
      e.ms += ms;
      e.calls += 1;
      byName.set(k.name, e);
    }
    const top = [...byName.values()]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, Number(opts.top))
      .map((e) => ({ ...e, ms: Math.round(e.ms) }));
    emit({ bench: "native-profile", path: label, kernelMs: Math.round(totalMs), top });
  }
  tf.dispose([ids, mask]);
  model.dispose();
}

if (!opts["skip-model"]) {
  await modelStep("cpu+native-blas", { backend: "cpu", threads: 2, plugins: [plugin] }, !opts["skip-profile"]);
  await modelStep("wasm", { backend: "wasm", threads: 2 }, false);
}
process.exit(0);

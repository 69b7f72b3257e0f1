// Forward (and forward+backward) time of stories260K at batch 4 × 128 on each engine.
// Prints one JSON line per (engine, pass).
//
//   npx tsc -b packages/core packages/models && node bench/forward.mjs [--reps 5] [--skip-cpu] [--no-grad]
//   node bench/forward.mjs --smol --batch 2 --seq 128 --skip-cpu   # SmolLM-135M shape, 2 layers, random init
//
// Timings on shared machines swing by up to 3x: compare lines from one run only.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { initEngine, Rng, shutdownEngine, tf } from "@prefkit/core";
import { AutoModelForCausalLM, sequenceLogProbs } from "@prefkit/models";
import { smolConfig } from "./smol.mjs";

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const REPS = option("--reps", 5);
const [B, T] = [option("--batch", 4), option("--seq", 128)];
const dir = fileURLToPath(new URL("../../shared/assets/stories260K", import.meta.url));
// The tfjs-notes test model: SmolLM-135M widths with 2 layers (18.3 GFLOP forward at 2 × 128).
const SMOL = smolConfig(2);
const smol = flag("--smol");
if (!smol && !existsSync(dir)) throw new Error(`stories260K not found at ${dir}`);
const vocab = smol ? SMOL.vocab_size : 512;

const engines = [
  { name: "cpu", options: { backend: "cpu", threads: 1 } },
  { name: "wasm-stock-1t", options: { backend: "wasm", threads: 1, builtinKernels: false } },
  { name: "wasm-prefkit-1t", options: { backend: "wasm", threads: 1 } },
  { name: "wasm-prefkit-2t", options: { backend: "wasm", threads: 2 } },
].filter((e) => !(flag("--skip-cpu") && e.name === "cpu"));

const rng = new Rng(0);
const inputIds = Array.from({ length: B }, () => Array.from({ length: T }, () => 3 + rng.int(vocab - 3)));
const mask = inputIds.map((row) => row.map((_, t) => (t >= T / 4 ? 1 : 0)));

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

function time(fn, reps) {
  fn(); // warm-up (kernel compilation, XNNPACK packing)
  const ms = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

for (const engine of engines) {
  let info;
  try {
    info = await initEngine(engine.options);
  } catch (e) {
    console.log(JSON.stringify({ engine: engine.name, error: String(e?.message ?? e) }));
    continue;
  }
  const model = smol
    ? AutoModelForCausalLM.fromConfig(SMOL, { seed: 0 })
    : await AutoModelForCausalLM.fromPretrained(dir);
  const forward = () =>
    tf.tidy(() => {
      model.forward({ inputIds }).logits.dataSync();
    });
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.neg(tf.mean(sequenceLogProbs(model, inputIds, mask).sums)),
        model.trainableVariables(),
      );
      value.dataSync();
      for (const g of Object.values(grads)) g.dataSync();
    });
  const reps = engine.name === "cpu" ? Math.min(REPS, 2) : REPS;
  const base = {
    model: smol ? "smollm-135m-2l" : "stories260K",
    engine: engine.name,
    backend: info.backend,
    threads: info.threads,
    batch: B,
    seq: T,
  };
  console.log(JSON.stringify({ ...base, pass: "forward", ms: Math.round(time(forward, reps)) }));
  if (!flag("--no-grad")) {
    try {
      console.log(JSON.stringify({ ...base, pass: "forward+backward", ms: Math.round(time(step, reps)) }));
    } catch (e) {
      console.log(JSON.stringify({ ...base, pass: "forward+backward", error: String(e?.message ?? e) }));
    }
  }
  model.dispose();
  shutdownEngine();
}

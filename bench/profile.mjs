// Per-kernel profile of one DPO step (the `npm run bench` workload) on a SmolLM-shaped random Llama:
// kernel name → total ms, calls; and the heaviest (kernel, input shapes) pairs. Uses `tf.profile`,
// after one unprofiled warm-up step. Kernels that prefkit implements from JS (e.g. the wasm BatchMatMul)
// call their helpers (Transpose) directly, so those helpers' time is inside the outer kernel's.
// `tf.customGrad` forwards show up as "unnamed scope" entries that contain their inner kernels' time
// again; they are left out of the totals and shares.
//
//   npm run build && node bench/profile.mjs [--layers 2] [--backend wasm] [--threads 2] [--top 15] [--json]
//
// Prints a table to stdout (or one JSON line with --json). Timings swing ~3x on a shared machine.
import { parseArgs } from "node:util";
import { AdamW, initEngine, sequenceLogProbs, tf } from "@prefkit/core";
import { dpoLoss } from "@prefkit/losses";
import { PreTrainedModelForCausalLM } from "@prefkit/models";
import { randomBatch, smolConfig } from "./smol.mjs";

const { values: opts } = parseArgs({
  options: {
    layers: { type: "string", default: "2" },
    backend: { type: "string", default: "wasm" },
    threads: { type: "string", default: "2" },
    top: { type: "string", default: "15" },
    json: { type: "boolean", default: false },
  },
});

const SMOL = smolConfig(Number(opts.layers));
const [PAIRS, T, PROMPT] = [2, 128, 32];
const ROWS = 2 * PAIRS;

const info = await initEngine({ backend: opts.backend, threads: Number(opts.threads) });
// The profiler otherwise reads every kernel output back to check for NaNs: slow, and not what we time.
tf.env().set("CHECK_COMPUTATION_FOR_ERRORS", false);
const policy = PreTrainedModelForCausalLM.fromConfig(SMOL, { seed: 0 });
const reference = policy.frozenCopy();
const optimizer = new AdamW({ learningRate: 1e-6 });
const { ids, completion: mask } = randomBatch({ rows: ROWS, seqLen: T, prompt: PROMPT, vocab: SMOL.vocab_size });
const vars = policy.trainableVariables();

// Phases are tagged by wrapping them: tf.profile lists kernels in execution order, so we cut the list.
const marks = [];
const mark = (name) => marks.push({ name, at: tf.engine().state.activeProfile?.kernels.length ?? 0 });

function step() {
  return tf.tidy(() => {
    mark("reference forward");
    const ref = tf.tidy(() => sequenceLogProbs(reference, ids, mask).sums);
    const rc = tf.slice(ref, [0], [PAIRS]);
    const rr = tf.slice(ref, [PAIRS], [PAIRS]);
    mark("policy forward+backward");
    const { value, grads } = tf.variableGrads(() => {
      const lp = sequenceLogProbs(policy, ids, mask).sums;
      const { losses } = dpoLoss(tf.slice(lp, [0], [PAIRS]), tf.slice(lp, [PAIRS], [PAIRS]), rc, rr, { beta: 0.1 });
      return tf.mean(losses);
    }, vars);
    mark("AdamW");
    optimizer.applyGradients(grads);
    mark("end");
    return value.dataSync()[0];
  });
}

console.error(
  `[profile] ${SMOL.num_hidden_layers}-layer DPO step on ${info.backend} (${info.threads} threads): warm-up`,
);
let t0 = performance.now();
step();
console.error(`[profile] warm-up step ${((performance.now() - t0) / 1000).toFixed(2)}s; profiling one step`);
marks.length = 0;
t0 = performance.now();
const profile = await tf.profile(() => {
  step();
  return [];
});
const wallMs = performance.now() - t0;

const byName = new Map();
const byShape = new Map();
let kernelMs = 0;
const isScope = (k) => k.name.startsWith("unnamed");
for (const k of profile.kernels) {
  if (isScope(k)) continue;
  const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
  kernelMs += ms;
  const n = byName.get(k.name) ?? { kernel: k.name, ms: 0, calls: 0 };
  n.ms += ms;
  n.calls += 1;
  byName.set(k.name, n);
  const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
  const s = byShape.get(key) ?? { kernel: k.name, inputShapes: k.inputShapes, ms: 0, calls: 0 };
  s.ms += ms;
  s.calls += 1;
  byShape.set(key, s);
}
const phases = [];
for (let i = 0; i + 1 < marks.length; i++) {
  const ks = profile.kernels.slice(marks[i].at, marks[i + 1].at).filter((k) => !isScope(k));
  phases.push({ phase: marks[i].name, ms: Math.round(ks.reduce((a, k) => a + (k.kernelTimeMs || 0), 0)) });
}
const top = Number(opts.top);
const r1 = (x) => Math.round(x * 10) / 10;
const kernels = [...byName.values()].sort((a, b) => b.ms - a.ms);
const shapes = [...byShape.values()].sort((a, b) => b.ms - a.ms);
const out = {
  workload: "dpo-profile",
  backend: info.backend,
  threads: info.threads,
  layers: SMOL.num_hidden_layers,
  batch: ROWS,
  seqLen: T,
  wallMs: Math.round(wallMs),
  kernelMs: Math.round(kernelMs),
  kernelCalls: profile.kernels.length,
  phases,
  topKernels: kernels.slice(0, top).map((k) => ({ ...k, ms: r1(k.ms), share: r1((100 * k.ms) / kernelMs) })),
  topShapes: shapes.slice(0, top).map((k) => ({ ...k, ms: r1(k.ms), share: r1((100 * k.ms) / kernelMs) })),
};
if (opts.json) {
  console.log(JSON.stringify(out));
} else {
  console.log(
    `${out.layers}-layer DPO step, ${out.backend} ${out.threads}t, batch ${ROWS}x${T}: wall ${out.wallMs} ms, kernels ${out.kernelMs} ms in ${out.kernelCalls} calls`,
  );
  console.log(`phases: ${phases.map((p) => `${p.phase} ${p.ms} ms`).join(", ")}`);
  console.log("\nkernel                      ms   share  calls");
  for (const k of out.topKernels) {
    console.log(
      `${k.kernel.padEnd(24)}${String(k.ms).padStart(8)} ${String(k.share).padStart(6)}% ${String(k.calls).padStart(6)}`,
    );
  }
  console.log("\nkernel (input shapes)                                        ms   share  calls");
  for (const k of out.topShapes) {
    const label = `${k.kernel} ${JSON.stringify(k.inputShapes)}`.slice(0, 58);
    console.log(
      `${label.padEnd(58)}${String(k.ms).padStart(8)} ${String(k.share).padStart(6)}% ${String(k.calls).padStart(6)}`,
    );
  }
}
policy.dispose();
reference.dispose();
optimizer.dispose();
process.exit(0);

// Where the time of the fast-path DPO step goes: the bench's DPO step (SmolLM-135M shape, 2 pairs ×
// 128 tokens, policy forward+backward, reference forward, AdamW) on cpu with the native-blas plugin,
// split into its parts (wall clock per part) and the native decoder's own phases (its profiler,
// packages/models/native/src/profiler.h).
// Prints one JSON line; progress goes to stderr. Not a test.
//
//   npm run build && npm run build:native && node bench/decoder-profile.mjs [--layers 30] [--steps 3]
import os from "node:os";
import { parseArgs } from "node:util";
import { AdamW, fusedSequenceLogProbs, initEngine, nativeBlasPlugin, nativeBlasStatus, tf } from "@prefkit/core";
import { dpoLoss } from "@prefkit/losses";
import { nativeDecoderProfile, nativeDecoderStatus, PreTrainedModelForCausalLM } from "@prefkit/models";
import { randomBatch, smolConfig } from "./smol.mjs";

const { values: opts } = parseArgs({
  options: { layers: { type: "string", default: "30" }, steps: { type: "string", default: "3" } },
});
const log = (msg) => console.error(`[decoder-profile] ${msg}`);
const status = nativeBlasStatus();
if (!status.available) {
  console.log(JSON.stringify({ workload: "decoder-profile", error: `native addon unavailable: ${status.reason}` }));
  process.exit(0);
}
await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
const decoderStatus = nativeDecoderStatus();
if (!decoderStatus.available) {
  console.log(
    JSON.stringify({ workload: "decoder-profile", error: `native decoder unavailable: ${decoderStatus.reason}` }),
  );
  process.exit(0);
}
const layers = Number(opts.layers);
const steps = Number(opts.steps);
const pairs = 2;
const rows = 2 * pairs;
const T = 128;
const config = smolConfig(layers);
const policy = PreTrainedModelForCausalLM.fromConfig(config, { seed: 0 });
const reference = policy.frozenCopy();
const optimizer = new AdamW({ learningRate: 1e-6, weightDecay: 0 });
const { ids, completion } = randomBatch({ rows, seqLen: T, prompt: 32, vocab: config.vocab_size });
const vars = policy.trainableVariables();
const parts = { reference: 0, policyForwardBackward: 0, adamw: 0 };
let total = 0;
for (let i = 0; i <= steps; i++) {
  if (i === 1) nativeDecoderProfile(true);
  const t0 = performance.now();
  tf.tidy(() => {
    const ref = tf.tidy(() => fusedSequenceLogProbs(reference, ids, completion).sums);
    const t1 = performance.now();
    const { grads } = tf.variableGrads(() => {
      const logps = fusedSequenceLogProbs(policy, ids, completion).sums;
      const [c, r] = [tf.slice(logps, [0], [pairs]), tf.slice(logps, [pairs], [pairs])];
      const [rc, rr] = [tf.slice(ref, [0], [pairs]), tf.slice(ref, [pairs], [pairs])];
      return tf.mean(dpoLoss(c, r, rc, rr, { beta: 0.1, lossType: "sigmoid" }).losses);
    }, vars);
    const t2 = performance.now();
    optimizer.applyGradients(grads);
    vars[0].dataSync();
    const t3 = performance.now();
    if (i > 0) {
      parts.reference += (t1 - t0) / 1000;
      parts.policyForwardBackward += (t2 - t1) / 1000;
      parts.adamw += (t3 - t2) / 1000;
    }
  });
  const sec = (performance.now() - t0) / 1000;
  if (i > 0) total += sec;
  log(`step ${i}${i === 0 ? " (warm-up)" : ""}: ${sec.toFixed(2)} s`);
}
const perStep = (x) => Math.round((x / steps) * 1000) / 1000;
const phases = Object.fromEntries(Object.entries(nativeDecoderProfile(false)).map(([k, v]) => [k, perStep(v)]));
console.log(
  JSON.stringify({
    workload: "decoder-profile",
    layers,
    batch: rows,
    seqLen: T,
    steps,
    stepSeconds: perStep(total),
    parts: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, perStep(v)])),
    nativePhasesSecondsPerStep: phases,
    load1: Math.round(os.loadavg()[0] * 100) / 100,
  }),
);

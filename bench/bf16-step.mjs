// bf16 AMP and gradient checkpointing on the fast path, on random weights of real model shapes: one DPO
// step (1 pair × --seq tokens, reference = the adapters-off model for LoRA, a frozen copy for full
// fine-tuning; AdamW) per configuration, each in a fresh child process so that its peak RSS is its own.
// Configurations are the cross product of --compute and --checkpointing; they run one after the other in
// the same invocation, so compare lines of one run (the machine is shared: the load is in each line).
// Prints one JSON line per configuration on stdout; progress on stderr. Not a test. Big shapes need
// several GB: run under `flock /tmp/prefkit-timing.lock`.
//
//   node bench/bf16-step.mjs --model qwen1.5b --layers 4 --compute float32,bfloat16
//   node bench/bf16-step.mjs --model qwen1.5b --checkpointing false,true --seq 1024,2048 --compute bfloat16
//   node bench/bf16-step.mjs --model qwen0.5b --mode full --compute float32,bfloat16
//   node bench/bf16-step.mjs --model mistral7b --layers 2 --seq 64 --steps 1 --packed-storage false,true
//
// Per line: stepSeconds (mean of --steps measured steps after one warm-up step, which also makes the
// packs), peakRssGB (VmHWM of the child, reset after the model is built: the training peak, packs
// included), rssGB after the steps (after a full GC), the losses, the fused decoder's phases per step
// (nativeDecoderProfile), and with --packed-storage true (Decoder.packedStorage: each bf16 frozen weight's
// pack becomes its only storage) vs false: the frozen 16-bit weights' bits still held in JS (heldBitsGB)
// beside their packs, and what that does to rssGB.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const MODELS = {
  "qwen0.5b": { hidden: 896, inter: 4864, layers: 24, heads: 14, kv: 2, vocab: 151936, tied: true },
  "qwen1.5b": { hidden: 1536, inter: 8960, layers: 28, heads: 12, kv: 2, vocab: 151936, tied: true },
  mistral7b: { hidden: 4096, inter: 14336, layers: 32, heads: 32, kv: 8, vocab: 32000, tied: false },
};

const { values: opts } = parseArgs({
  options: {
    model: { type: "string", default: "qwen1.5b" },
    layers: { type: "string" },
    seq: { type: "string", default: "512" },
    mode: { type: "string", default: "lora" },
    compute: { type: "string", default: "float32,bfloat16" },
    checkpointing: { type: "string", default: "false" },
    "packed-storage": { type: "string", default: "false" },
    steps: { type: "string", default: "2" },
    threads: { type: "string", default: "2" },
    child: { type: "string" },
  },
});

const log = (msg) => console.error(`[bf16-step] ${msg}`);
const vm = (field) => Number(/(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8").split(`${field}:`)[1])[1]) / 1e6;

if (opts.child === undefined) {
  const self = fileURLToPath(import.meta.url);
  for (const seq of opts.seq.split(",")) {
    for (const checkpointing of opts.checkpointing.split(",")) {
      for (const packed of opts["packed-storage"].split(",")) {
        for (const compute of opts.compute.split(",")) {
          const child = { ...opts, seq, checkpointing, compute, "packed-storage": packed, child: "1" };
          const argv = Object.entries(child).flatMap(([k, v]) => (v === undefined ? [] : [`--${k}`, String(v)]));
          log(
            `${opts.model} ${opts.mode} seq ${seq} compute ${compute} checkpointing ${checkpointing} packed ${packed}`,
          );
          const r = spawnSync(process.execPath, ["--max-old-space-size=8192", "--expose-gc", self, ...argv], {
            encoding: "utf8",
            stdio: ["ignore", "pipe", "inherit"],
          });
          process.stdout.write(
            r.status === 0 ? r.stdout : `${JSON.stringify({ error: `child exit ${r.status}`, ...child })}\n`,
          );
        }
      }
    }
  }
  process.exit(0);
}

const { AdamW, initEngine, nativeBlasPlugin, Rng, tf } = await import("@prefkit/core");
const { dpoLoss } = await import("@prefkit/losses");
const {
  AmpPlugin,
  getPeftModel,
  HalfPrecisionLinear,
  nativeDecoderProfile,
  nativeDecoderStatus,
  PreTrainedModelForCausalLM,
} = await import("@prefkit/models");

await initEngine({ backend: "cpu", threads: Number(opts.threads), plugins: [nativeBlasPlugin()] });
const shape = MODELS[opts.model];
if (shape === undefined) throw new Error(`--model: one of ${Object.keys(MODELS).join(", ")}`);
const layers = Number(opts.layers ?? shape.layers);
const T = Number(opts.seq);
const config = {
  model_type: opts.model.startsWith("qwen") ? "qwen2" : "mistral",
  vocab_size: shape.vocab,
  hidden_size: shape.hidden,
  intermediate_size: shape.inter,
  num_hidden_layers: layers,
  num_attention_heads: shape.heads,
  num_key_value_heads: shape.kv,
  tie_word_embeddings: shape.tied,
  max_position_embeddings: 32768,
  initializer_range: 0.02,
};
const built = performance.now();
const base = PreTrainedModelForCausalLM.fromConfig(config, { seed: 0 });
const lora = opts.mode === "lora";
const policy = lora ? getPeftModel(base, { r: 16, loraAlpha: 32, targetModules: "all-linear" }, { seed: 0 }) : base;
// AMP as a trainer composes it: 16-bit storage of the frozen weights (the LoRA base), bf16 compute or not.
new AmpPlugin({ compute: opts.compute }).onModelLoaded(policy);
const reference = lora ? undefined : base.frozenCopy();
if (opts.checkpointing === "true") policy.gradientCheckpointingEnable();
base.decoder.packedStorage = opts["packed-storage"] === "true";
const runReference = (fn) => (lora ? policy.withAdaptersDisabled(() => fn(base)) : fn(reference));
log(`built in ${((performance.now() - built) / 1000).toFixed(1)} s; rss ${vm("VmRSS").toFixed(2)} GB`);
writeFileSync("/proc/self/clear_refs", "5"); // reset VmHWM: the peak from here on is training's

const rng = new Rng(1);
const ids = tf.tensor2d(
  Array.from({ length: 2 * T }, () => 3 + rng.int(shape.vocab - 3)),
  [2, T],
  "int32",
);
const completion = tf.tensor2d(
  Array.from({ length: 2 * T }, (_, i) => (i % T >= T / 4 ? 1 : 0)),
  [2, T],
  "int32",
);
const optimizer = new AdamW({ learningRate: 1e-5, weightDecay: 0 });
const vars = policy.trainableVariables();
const steps = Number(opts.steps);
const losses = [];
let total = 0;
for (let i = 0; i <= steps; i++) {
  if (i === 1) nativeDecoderProfile(true);
  const t0 = performance.now();
  const loss = tf.tidy(() => {
    const ref = tf.tidy(() => runReference((m) => m.completionLogProbs(ids, completion).sums));
    const { value, grads } = tf.variableGrads(() => {
      const logps = (lora ? base : policy).completionLogProbs(ids, completion).sums;
      const [c, r] = [tf.slice(logps, [0], [1]), tf.slice(logps, [1], [1])];
      const [rc, rr] = [tf.slice(ref, [0], [1]), tf.slice(ref, [1], [1])];
      return tf.mean(dpoLoss(c, r, rc, rr, { beta: 0.1, lossType: "sigmoid" }).losses);
    }, vars);
    optimizer.applyGradients(grads);
    return value.dataSync()[0];
  });
  const sec = (performance.now() - t0) / 1000;
  losses.push(loss);
  if (i > 0) total += sec;
  log(`step ${i}${i === 0 ? " (warm-up, packs)" : ""}: ${sec.toFixed(2)} s, loss ${loss.toFixed(6)}`);
}
const perStep = (x) => Math.round((x / steps) * 1000) / 1000;
// The frozen 16-bit projections: bits still held in JS, and the elements they store.
let heldBits = 0;
let frozenElements = 0;
for (const m of base.linearModules().values()) {
  const plain = m.base ?? m;
  if (!(plain instanceof HalfPrecisionLinear)) continue;
  frozenElements += plain.weight.size;
  if (!plain.weight.bitsReleased) heldBits += 2 * plain.weight.size;
}
globalThis.gc?.();
const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
console.log(
  JSON.stringify({
    bench: "bf16-step",
    model: opts.model,
    mode: opts.mode,
    layers,
    pairs: 1,
    seqLen: T,
    compute: opts.compute,
    gradientCheckpointing: opts.checkpointing === "true",
    packedStorage: base.decoder.packedStorage,
    frozen16BitGParams: round(frozenElements / 1e9),
    heldBitsGB: round(heldBits / 1e9),
    stepSeconds: perStep(total),
    tokensPerSecond: round((2 * T * steps) / total, 1),
    peakRssGB: round(vm("VmHWM")),
    rssGB: round(vm("VmRSS")),
    losses: losses.map((l) => round(l, 6)),
    bf16Path: nativeDecoderStatus().bf16,
    nativePhasesSecondsPerStep: Object.fromEntries(
      Object.entries(nativeDecoderProfile(false)).map(([k, v]) => [k, perStep(v)]),
    ),
    load1: round(os.loadavg()[0], 2),
  }),
);

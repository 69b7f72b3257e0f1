#!/usr/bin/env node
/**
 * GRPO on stories260K with two plain reward functions, the kind GRPO users start with:
 *   - uses_happy:     1 when the story uses the word "happy", else 0;
 *   - short_sentence: 1 when the completion ends with a full stop and has at most MAX_WORDS words, else 0.
 *
 *   npm run build && node examples/grpo/train.mjs          full run (50 updates, under a minute on 2 cores)
 *   node examples/grpo/train.mjs --quick                   20 updates
 *
 * Policy: stories260K (a 260K-parameter Llama trained on TinyStories). Reference: a frozen copy (β = 0.1).
 * Every update samples 8 completions of at most 8 tokens for each of 4 story openings, scores them with both
 * functions, and takes one optimizer step on the group-relative advantages. The held-out rewards (8 seeded samples per
 * held-out opening, `trainer.evaluate()`) are printed before and after training, and the report's charts
 * (reward per function, KL, completion length) are written to `<outputDir>/charts/`.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ReportCallback } from "@prefkit/callbacks";
import { GRPOTrainer } from "@prefkit/losses";
import { AutoModelForCausalLM, AutoTokenizer } from "@prefkit/models";
import { exampleCommandLine } from "../common/command-line.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const MODEL = resolve(here, "..", "..", "..", "shared", "assets", "stories260K");

/** The word budget of `short_sentence`. */
export const MAX_WORDS = 6;

export { short_sentence, uses_happy } from "./rewards.mjs";
import { short_sentence, uses_happy } from "./rewards.mjs";

const STARTS = ["Once upon a time,", "One day,", "Every morning,", "After lunch,", "In the park,", "At school,"];
const SUBJECTS = ["Lily", "Tom", "a little girl", "a big dog", "Ben", "Sue", "the cat", "a small bird"];
const HELD_OUT_SUBJECTS = ["Mia", "a tiny frog", "Max", "the old man"];

/** Training prompts (starts × subjects) and held-out prompts (starts × other subjects). */
export function storyPrompts() {
  const train = STARTS.flatMap((s) => SUBJECTS.map((who) => `${s} ${who}`));
  const heldOut = STARTS.flatMap((s) => HELD_OUT_SUBJECTS.map((who) => `${s} ${who}`));
  return { train, heldOut };
}

/** The report's charts: the reward and each function's mean, the KL, the completion lengths. */
export const CHARTS = [
  {
    name: "rewards",
    title: "GRPO rewards",
    metrics: ["reward", "rewards/uses_happy/mean", "rewards/short_sentence/mean"],
    yTitle: "reward",
  },
  { name: "kl", title: "KL to the reference", metrics: ["kl"], yTitle: "KL" },
  { name: "lengths", title: "Completion length", metrics: ["completions/mean_length"], yTitle: "tokens" },
  { name: "entropy", title: "Policy entropy", metrics: ["entropy"], yTitle: "nats" },
];

const DEFAULTS = {
  updates: 50,
  numGenerations: 8,
  promptsPerUpdate: 4,
  maxCompletionLength: 8,
  learningRate: 5e-4,
  beta: 0.1,
  rewardWeights: null,
  seed: 42,
  outputDir: "runs/grpo",
  modelDir: MODEL,
  log: console.log,
};

const pick = (logs, names) => Object.fromEntries(names.map((n) => [n, logs[n]]));
const HELD_OUT = ["eval_reward", "eval_rewards/uses_happy/mean", "eval_rewards/short_sentence/mean"];

/** Train, measure before/after on held-out prompts, return the numbers and the log history. */
export async function main(options = {}) {
  const o = { ...DEFAULTS, ...options };
  const tokenizer = await AutoTokenizer.fromPretrained(o.modelDir);
  const model = await AutoModelForCausalLM.fromPretrained(o.modelDir);
  const { train, heldOut } = storyPrompts();
  const report = new ReportCallback({ charts: CHARTS, title: "GRPO on stories260K" });
  const trainer = new GRPOTrainer({
    model,
    rewardFuncs: [uses_happy, short_sentence],
    trainDataset: train.map((prompt) => ({ prompt })),
    evalDataset: heldOut.map((prompt) => ({ prompt })),
    processingClass: tokenizer,
    args: {
      outputDir: o.outputDir,
      maxSteps: o.updates,
      numGenerations: o.numGenerations,
      perDeviceTrainBatchSize: o.numGenerations * o.promptsPerUpdate,
      maxCompletionLength: o.maxCompletionLength,
      learningRate: o.learningRate,
      beta: o.beta,
      rewardWeights: o.rewardWeights,
      loggingSteps: 1,
      saveStrategy: "no",
      seed: o.seed,
    },
    callbacks: [
      report,
      {
        onLog: (_a, state, _c, { logs }) => {
          if (!("reward" in logs) || "eval_reward" in logs) return;
          const f = (k, d = 3) => logs[k].toFixed(d);
          o.log(
            `update ${state.globalStep}: reward=${f("reward")} uses_happy=${f("rewards/uses_happy/mean")} ` +
              `short_sentence=${f("rewards/short_sentence/mean")} kl=${f("kl", 4)} ` +
              `mean_length=${f("completions/mean_length", 1)}`,
          );
        },
      },
    ],
  });
  const started = performance.now();
  const before = pick(await trainer.evaluate(), HELD_OUT);
  o.log(`held-out before: ${JSON.stringify(before)} (${heldOut.length} prompts × ${o.numGenerations} samples)`);
  const trainStart = performance.now();
  await trainer.train();
  const trainSeconds = (performance.now() - trainStart) / 1000;
  const after = pick(await trainer.evaluate(), HELD_OUT);
  const last = trainer.lastRollout;
  const samples = last.responses
    .slice(0, 3)
    .map((r, i) => tokenizer.decode(r.slice(0, last.validLengths[i]), { skipSpecialTokens: true }));
  const logs = trainer.state.logHistory.filter((e) => "reward" in e && !("eval_reward" in e));
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const window = Math.min(5, Math.floor(logs.length / 2));
  const kls = logs.map((l) => l.kl);
  const result = {
    before,
    after,
    firstRewards: mean(logs.slice(0, window).map((l) => l.reward)),
    lastRewards: mean(logs.slice(-window).map((l) => l.reward)),
    maxKl: Math.max(...kls),
    finalKl: kls.at(-1),
    secondsPerUpdate: trainSeconds / o.updates,
    seconds: (performance.now() - started) / 1000,
    charts: report.result?.charts.map((c) => c.png) ?? [],
    samples,
    history: logs,
  };
  o.log(
    `held-out after ${o.updates} updates: ${JSON.stringify(after)}; training reward ${result.firstRewards.toFixed(3)} ` +
      `(first ${window} updates) → ${result.lastRewards.toFixed(3)} (last ${window}); kl max ${result.maxKl.toFixed(4)}, ` +
      `final ${result.finalKl.toFixed(4)}; ${result.secondsPerUpdate.toFixed(2)} s/update`,
  );
  o.log(`last update's first completions: ${samples.map((t) => JSON.stringify(t)).join(" | ")}`);
  if (result.charts.length > 0) o.log(`charts: ${result.charts.join(", ")}`);
  trainer.dispose();
  model.dispose();
  return result;
}

const HELP = "usage: node examples/grpo/train.mjs [--quick] [--updates N] [--backend wasm|cpu] [--threads N]";

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const values = await exampleCommandLine("prefkit GRPO", HELP, {
    updates: { type: "string" },
  });
  const updates = values.updates !== undefined ? Number(values.updates) : values.quick ? 20 : DEFAULTS.updates;
  await main({ updates, outputDir: join("runs", "grpo") });
  process.exit(0);
}

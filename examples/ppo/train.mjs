#!/usr/bin/env node
/**
 * PPO on stories260K with a transparent rule reward: +1 for every "happy word" in the response.
 *
 *   npm run build && node examples/ppo/train.mjs            full run (about 2–4 minutes on 2 cores)
 *   node examples/ppo/train.mjs --quick                     a short smoke run (the test uses it)
 *   node examples/ppo/train.mjs --value-head model          TRL's separate value model instead of a policy head
 *
 * Policy: stories260K (a 260K-parameter Llama trained on TinyStories). Reference: a frozen copy of it.
 * Reward: a `RewardFunction` plugged in through `rewardFunctionPlugin` and found by name, exactly where a
 * reward model would go. The mean score on held-out prompts (sampled at the training temperature, fixed
 * seed) is printed before and after training, with TRL's `objective/rlhf_reward`, `objective/kl` and
 * `val/ratio` per update.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Rng } from "@prefkit/core";
import { PPOTrainer, rewardFunctionPlugin } from "@prefkit/losses";
import { AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer } from "@prefkit/models";
import { exampleCommandLine } from "../common/command-line.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const MODEL = resolve(here, "..", "..", "..", "shared", "assets", "stories260K");

/** The rewarded words: the score of a response is how many of these it contains. */
export const HAPPY_WORDS = [
  "happy",
  "smile",
  "smiled",
  "fun",
  "love",
  "loved",
  "laugh",
  "laughed",
  "hug",
  "kind",
  "friends",
];

/** +1 per happy word (case-insensitive, whole words): a transparent rule reward. */
export function happyScore(text) {
  return (text.toLowerCase().match(/[a-z]+/g) ?? []).filter((w) => HAPPY_WORDS.includes(w)).length;
}

/** TRL's reward-function signature: (completions, prompts, ids) → scores. */
export const happyReward = (completions) => completions.map(happyScore);

const STARTS = ["Once upon a time,", "One day,", "Every morning,", "After lunch,", "In the park,", "At school,"];
const SUBJECTS = ["Lily", "Tom", "a little girl", "a big dog", "Ben", "Sue", "the cat", "a small bird"];
const HELD_OUT_SUBJECTS = ["Mia", "a tiny frog", "Max", "the old man"];

/** Training prompts (starts × subjects) and held-out prompts (starts × other subjects). */
export function storyPrompts() {
  const train = STARTS.flatMap((s) => SUBJECTS.map((who) => `${s} ${who}`));
  const heldOut = STARTS.flatMap((s) => HELD_OUT_SUBJECTS.map((who) => `${s} ${who}`));
  return { train, heldOut };
}

/** Mean happy score of `samples` sampled responses per prompt (temperature as in training, fixed seed). */
export async function meanScore(model, tokenizer, prompts, { responseLength, temperature, samples = 2, seed = 123 }) {
  const rng = new Rng(seed);
  const ids = prompts.map((p) => tokenizer.encode(p));
  const len = Math.max(...ids.map((r) => r.length));
  const inputIds = ids.map((r) => [...new Array(len - r.length).fill(0), ...r]);
  const attentionMask = ids.map((r) => [...new Array(len - r.length).fill(0), ...r.map(() => 1)]);
  let sum = 0;
  let n = 0;
  for (let s = 0; s < samples; s++) {
    const out = await model.generate(inputIds, {
      maxNewTokens: responseLength,
      doSample: true,
      temperature,
      attentionMask,
      rng,
    });
    for (const r of out.newTokens) {
      sum += happyScore(tokenizer.decode(r, { skipSpecialTokens: true }));
      n++;
    }
  }
  return sum / n;
}

const DEFAULTS = {
  updates: 24,
  perDeviceTrainBatchSize: 8,
  numMiniBatches: 2,
  responseLength: 24,
  learningRate: 1e-4,
  klCoef: 0.05,
  valueHead: "policy",
  seed: 42,
  evalSamples: 2,
  outputDir: "runs/ppo",
  modelDir: MODEL,
  log: console.log,
};

/** Train, measure before/after, return the numbers and the log history. */
export async function main(options = {}) {
  const o = { ...DEFAULTS, ...options };
  const tokenizer = await AutoTokenizer.fromPretrained(o.modelDir);
  const model = await AutoModelForCausalLM.fromPretrained(o.modelDir);
  const valueModel =
    o.valueHead === "model"
      ? await AutoModelForSequenceClassification.fromPretrained(o.modelDir, { numLabels: 1, seed: o.seed })
      : undefined;
  const { train, heldOut } = storyPrompts();
  const measure = (m) =>
    meanScore(m, tokenizer, heldOut, { responseLength: o.responseLength, temperature: 0.7, samples: o.evalSamples });
  const started = performance.now();
  const before = await measure(model);
  o.log(`held-out mean score before: ${before.toFixed(3)} (${heldOut.length} prompts × ${o.evalSamples} samples)`);

  const firstEpochRatios = [];
  const trainer = new PPOTrainer({
    model,
    rewardModel: "happy-words",
    plugins: [rewardFunctionPlugin("happy-words", happyReward)],
    ...(valueModel ? { valueModel } : {}),
    trainDataset: train.map((prompt) => ({ prompt })),
    processingClass: tokenizer,
    args: {
      outputDir: o.outputDir,
      maxSteps: o.updates,
      perDeviceTrainBatchSize: o.perDeviceTrainBatchSize,
      numMiniBatches: o.numMiniBatches,
      responseLength: o.responseLength,
      learningRate: o.learningRate,
      klCoef: o.klCoef,
      valueHead: o.valueHead,
      loggingSteps: 1,
      saveStrategy: "no",
      seed: o.seed,
    },
    callbacks: [
      {
        onStepEnd: () => firstEpochRatios.push(...trainer.lastUpdateStats.ratio[0].flat()),
      },
      {
        onLog: (_a, state, _c, { logs }) => {
          if (!("objective/kl" in logs)) return;
          const f = (k, d = 3) => logs[k].toFixed(d);
          o.log(
            `update ${state.globalStep}: objective/scores=${f("objective/scores")} ` +
              `objective/rlhf_reward=${f("objective/rlhf_reward")} objective/kl=${f("objective/kl")} ` +
              `val/ratio=${f("val/ratio", 4)} loss/value_avg=${f("loss/value_avg")} episode=${logs.episode}`,
          );
        },
      },
    ],
  });
  const trainStart = performance.now();
  await trainer.train();
  const trainSeconds = (performance.now() - trainStart) / 1000;
  const after = await measure(model);
  const logs = trainer.state.logHistory.filter((e) => "objective/kl" in e);
  const kls = logs.map((l) => l["objective/kl"]);
  const result = {
    before,
    after,
    maxKl: Math.max(...kls),
    finalKl: kls.at(-1),
    firstEpochRatio: { min: Math.min(...firstEpochRatios), max: Math.max(...firstEpochRatios) },
    firstRlhfReward: logs[0]["objective/rlhf_reward"],
    lastRlhfReward: logs.at(-1)["objective/rlhf_reward"],
    trainSeconds,
    secondsPerUpdate: trainSeconds / o.updates,
    seconds: (performance.now() - started) / 1000,
    history: logs,
  };
  o.log(
    `held-out mean score after ${o.updates} updates: ${after.toFixed(3)} (before ${before.toFixed(3)}); ` +
      `objective/kl max ${result.maxKl.toFixed(3)}, final ${result.finalKl.toFixed(3)}; ` +
      `first-epoch val/ratio in [${result.firstEpochRatio.min.toFixed(4)}, ${result.firstEpochRatio.max.toFixed(4)}]; ` +
      `${result.secondsPerUpdate.toFixed(2)} s/update, ${result.seconds.toFixed(0)} s total`,
  );
  trainer.dispose();
  model.dispose();
  valueModel?.dispose();
  return result;
}

const HELP =
  "usage: node examples/ppo/train.mjs [--quick] [--updates N] [--value-head policy|model] [--backend wasm|cpu] [--threads N]";

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const values = await exampleCommandLine("prefkit PPO", HELP, {
    updates: { type: "string" },
    "value-head": { type: "string" },
  });
  const updates = values.updates !== undefined ? Number(values.updates) : values.quick ? 8 : DEFAULTS.updates;
  await main({
    updates,
    ...(values["value-head"] ? { valueHead: values["value-head"] } : {}),
    ...(values.quick ? { responseLength: 16, evalSamples: 1 } : {}),
    outputDir: join("runs", "ppo"),
  });
  process.exit(0);
}

#!/usr/bin/env node
/**
 * KTO, ORPO, CPO/SimPO (and DPO for comparison) on real data: stories260K (a real pretrained 260K-parameter
 * Llama) learns Human-Like-DPO's preference for casual over formal answers. Each method trains on the same
 * pairs (KTO on thumbs-up/down rows made from them, see `thumbs`) and is evaluated on held-out pairs before and
 * after: the reward accuracy (for KTO, the desirable − undesirable reward gap) must rise.
 *
 *   npm run build && node examples/methods/train.mjs          all methods, 48 steps each (a few minutes)
 *   node examples/methods/train.mjs --methods orpo,kto --steps 24
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { initEngine } from "@prefkit/core";
import { createTrainer } from "@prefkit/losses";
import { AutoModelForCausalLM, AutoTokenizer } from "@prefkit/models";

const here = dirname(fileURLToPath(import.meta.url));
const ASSETS = resolve(here, "..", "..", "..", "shared", "assets");
const MODEL = join(ASSETS, "stories260K");
const DATA = join(ASSETS, "human-like-dpo", "dpo_dataset_4_09_2024_more_casual_convs_1k.json");

/** Each method's config beyond the shared loop settings (TRL's defaults otherwise). */
const METHODS = {
  dpo: { beta: 0.1 },
  kto: { beta: 0.1 },
  orpo: { beta: 0.1 },
  cpo: { lossType: "simpo", simpoGamma: 0.5, cpoAlpha: 0, beta: 2 },
};

/**
 * What says the preference was learned on held-out pairs: the reward accuracy, or for KTO (whose unpaired eval
 * batches hold one kind each, as TRL's unpairing orders them) the gap between the desirable and undesirable
 * rows' mean rewards.
 */
const score = (method, metrics) =>
  method === "kto"
    ? metrics["eval_rewards/chosen"] - metrics["eval_rewards/rejected"]
    : metrics["eval_rewards/accuracies"];
const SCORE_NAME = (method) => (method === "kto" ? "desirable − undesirable reward" : "reward accuracy");

/**
 * Unpaired feedback as a product collects it: one answer per prompt with a thumbs up or down, the two kinds
 * interleaved (even pairs give their casual answer, odd pairs their formal one). Unpairing the pairs as TRL does
 * would put every desirable row of a block before every undesirable one, and with KTO's sequential sampling
 * each batch (and its KL estimate) would then hold a single kind.
 */
export function thumbs(pairs) {
  return pairs.map((r, i) =>
    i % 2 === 0
      ? { prompt: r.prompt, completion: r.chosen, label: true }
      : { prompt: r.prompt, completion: r.rejected, label: false },
  );
}

/**
 * Train each of `methods` from the same pretrained weights; returns per method the held-out loss and score before
 * and after training.
 */
export async function main(options = {}) {
  const { methods = Object.keys(METHODS), steps = 48, trainPairs = 96, evalPairs = 32, maxLength = 96 } = options;
  const learningRate = options.learningRate ?? 3e-3;
  const log = options.log ?? ((l) => console.log(l));
  const rows = JSON.parse(readFileSync(DATA, "utf8"));
  const train = rows.slice(0, trainPairs);
  const held = rows.slice(trainPairs, trainPairs + evalPairs);
  const tokenizer = await AutoTokenizer.fromPretrained(MODEL);
  const outputDir = options.outputDir ?? (await mkdtemp(join(tmpdir(), "prefkit-methods-")));
  const results = {};
  try {
    for (const method of methods) {
      const model = await AutoModelForCausalLM.fromPretrained(MODEL);
      const trainer = createTrainer(method, {
        model,
        processingClass: tokenizer,
        trainDataset: method === "kto" ? thumbs(train) : train,
        evalDataset: method === "kto" ? thumbs(held) : held,
        warn: () => {},
        args: {
          ...METHODS[method],
          outputDir: join(outputDir, method),
          maxSteps: steps,
          perDeviceTrainBatchSize: 4,
          learningRate,
          lrSchedulerType: "constant",
          loggingSteps: 1,
          saveStrategy: "no",
          maxLength,
          seed: 7,
        },
      });
      const start = await trainer.evaluate();
      await trainer.train();
      const end = await trainer.evaluate();
      const [before, after] = [score(method, start), score(method, end)];
      const evalLoss = [start["eval_loss"], end["eval_loss"]];
      results[method] = { before, after, evalLossBefore: evalLoss[0], evalLossAfter: evalLoss[1] };
      log(
        `${method}: held-out loss ${evalLoss[0].toFixed(4)} → ${evalLoss[1].toFixed(4)}; ` +
          `held-out ${SCORE_NAME(method)} ${before.toFixed(3)} → ${after.toFixed(3)}`,
      );
      trainer.optimizer.dispose();
      model.dispose();
    }
  } finally {
    if (options.outputDir === undefined) await rm(outputDir, { recursive: true, force: true });
  }
  return results;
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const { values } = parseArgs({ options: { methods: { type: "string" }, steps: { type: "string" } } });
  await initEngine({ backend: "wasm", threads: 1 });
  await main({
    ...(values.methods ? { methods: values.methods.split(",") } : {}),
    ...(values.steps ? { steps: Number(values.steps) } : {}),
  });
}

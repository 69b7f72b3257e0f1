#!/usr/bin/env node
/**
 * Train a reward model on the Human-Like-DPO pairs and report its accuracy on a held-out 20%.
 *
 *   npm run build && node examples/reward-model/train.mjs            full run (a few minutes on 2 cores)
 *   node examples/reward-model/train.mjs --quick                     a short smoke run (the test uses it)
 *   node examples/reward-model/train.mjs --bf16                      bf16: weights loaded as bfloat16, products
 *                                                                    in bf16 with fp32 sums (AmpPlugin compute)
 *
 * Model: stories260K's Llama body (260K parameters, TinyStories) with a fresh `score` head
 * (`AutoModelForSequenceClassification`, numLabels 1), and its 512-token tokenizer. Data:
 * ../shared/assets/human-like-dpo ({prompt, chosen, rejected}; chosen = casual, emoji-rich answer,
 * rejected = formal answer). Each answer is cut to its first `--chars` characters to fit the time
 * budget; the RewardTrainer scores prompt+answer at the last real token and drops (counts) rows longer
 * than `maxLength` tokens.
 */
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { trainTestSplit } from "@prefkit/core";
import { RewardTrainer } from "@prefkit/losses";
import { AmpPlugin, AutoModelForSequenceClassification, AutoTokenizer } from "@prefkit/models";
import { exampleCommandLine } from "../common/command-line.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const SHARED = resolve(here, "..", "..", "..", "shared", "assets");
const DATA = join(SHARED, "human-like-dpo", "dpo_dataset_4_09_2024_more_casual_convs_1k.json");
const MODEL = join(SHARED, "stories260K");

/** Options of {@link main}; the CLI flags map onto them. */
const DEFAULTS = {
  steps: 60,
  batchSize: 8,
  learningRate: 1e-3,
  chars: 100,
  maxLength: 128,
  seed: 42,
  outputDir: "runs/reward-model",
  modelDir: MODEL,
  dataFile: DATA,
  /** Load the weights as bfloat16 and compute the products in bf16 (PyTorch's CPU autocast); the trained
   * weights keep float32 masters. On the fast path the fused decoder runs the bf16 GEMM. */
  bf16: false,
  log: console.log,
};

/**
 * Split 80/20 (seeded), train, evaluate. Returns the eval metrics before and after training, the
 * dropped-row counts and the trainer's log history.
 */
export async function main(options = {}) {
  const o = { ...DEFAULTS, ...options };
  const rows = JSON.parse(await readFile(o.dataFile, "utf8")).map((r) => ({
    prompt: r.prompt,
    chosen: ` ${r.chosen.slice(0, o.chars)}`,
    rejected: ` ${r.rejected.slice(0, o.chars)}`,
  }));
  const { train, test } = trainTestSplit(rows, { testSize: 0.2, seed: o.seed });
  const tokenizer = await AutoTokenizer.fromPretrained(o.modelDir);
  const model = await AutoModelForSequenceClassification.fromPretrained(o.modelDir, {
    numLabels: 1,
    seed: o.seed,
    ...(o.bf16 ? { dtype: "bfloat16" } : {}),
  });
  const trainer = new RewardTrainer({
    model,
    args: {
      outputDir: o.outputDir,
      learningRate: o.learningRate,
      lrSchedulerType: "linear",
      warmupRatio: 0.05,
      maxSteps: o.steps,
      perDeviceTrainBatchSize: o.batchSize,
      maxLength: o.maxLength,
      loggingSteps: Math.max(1, Math.floor(o.steps / 10)),
      saveStrategy: "no",
      seed: o.seed,
    },
    trainDataset: train,
    evalDataset: test,
    processingClass: tokenizer,
    plugins: o.bf16 ? [new AmpPlugin({ dtype: "bfloat16", compute: "bfloat16" })] : [],
    warn: (m) => o.log(`warning: ${m}`),
    callbacks: [
      {
        onLog: (_args, state, _control, { logs }) => {
          if (!("loss" in logs)) return;
          const f = (k) => (logs[k] ?? Number.NaN).toFixed(3);
          o.log(
            `step ${state.globalStep}: loss=${f("loss")} accuracy=${f("accuracy")} margin=${f("margin")} ` +
              `mean_reward=${f("mean_reward")} num_tokens=${logs.num_tokens}`,
          );
        },
      },
    ],
  });
  const started = performance.now();
  const before = await trainer.evaluate();
  o.log(
    `pairs: ${train.length} train / ${test.length} held out; dropped over maxLength ${o.maxLength}: ` +
      `${trainer.droppedRows.train} train, ${trainer.droppedRows.eval} eval`,
  );
  o.log(`before training: eval_accuracy=${before.eval_accuracy.toFixed(3)} eval_loss=${before.eval_loss.toFixed(3)}`);
  await trainer.train();
  const after = await trainer.evaluate();
  const seconds = (performance.now() - started) / 1000;
  o.log(
    `after ${o.steps} steps: eval_accuracy=${after.eval_accuracy.toFixed(3)} eval_loss=${after.eval_loss.toFixed(3)} ` +
      `eval_margin=${after.eval_margin.toFixed(3)} (${seconds.toFixed(0)} s)`,
  );
  const result = {
    before,
    after,
    droppedRows: { ...trainer.droppedRows },
    evalPairs: trainer.evalRows.length,
    history: trainer.state.logHistory,
    seconds,
  };
  trainer.dispose();
  model.dispose();
  return result;
}

const HELP = `usage: node examples/reward-model/train.mjs [--quick] [--bf16] [--steps N] [--backend wasm|cpu] [--threads N]`;

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const values = await exampleCommandLine("prefkit reward model", HELP, {
    steps: { type: "string" },
    bf16: { type: "boolean" },
  });
  const steps = values.steps !== undefined ? Number(values.steps) : values.quick ? 20 : DEFAULTS.steps;
  await main({ steps, bf16: values.bf16 === true, ...(values.quick ? { chars: 60, maxLength: 96 } : {}) });
}

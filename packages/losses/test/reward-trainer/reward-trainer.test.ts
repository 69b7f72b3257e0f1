/**
 * RewardTrainer: the logged loss and TRL metrics against the formula on hand-read scores (margin and
 * centring), over-long rows dropped and counted, raw text rows through the data pipeline, learning a
 * learnable preference, exact resume, and a flat tensor count.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Callback, ConfigError, Rng, type TokenizedPreference, tf } from "@prefkit/core";
import { RewardTrainer } from "@prefkit/losses";
import {
  AutoModelForSequenceClassification,
  AutoTokenizer,
  type PreTrainedModelForSequenceClassification,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";

const VOCAB = 16;
const TINY = {
  model_type: "llama",
  vocab_size: VOCAB,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  initializer_range: 0.2,
};
const tinyRm = (seed = 1) => AutoModelForSequenceClassification.fromConfig(TINY, { numLabels: 1, seed });

/** Chosen completions use even ids, rejected odd ids; eos/pad (2) also appears inside and at the end. */
function makePairs(n: number, seed = 7): TokenizedPreference[] {
  const r = new Rng(seed);
  const seq = (len: number, parity: number) => Array.from({ length: len }, () => 4 + 2 * r.int(VOCAB / 2 - 2) + parity);
  return Array.from({ length: n }, () => ({
    promptIds: [1, 2, ...Array.from({ length: 1 + r.int(3) }, () => 3 + r.int(VOCAB - 3))],
    chosenIds: [...seq(1 + r.int(3), 0), 2],
    rejectedIds: [...seq(1 + r.int(3), 1), 2],
  }));
}

const stopAtStep = (n: number): Callback => ({
  onStepEnd: (_a, s, c) => {
    if (s.globalStep === n) c.shouldTrainingStop = true;
  },
});
const base = { saveStrategy: "no" as const, loggingSteps: 1, learningRate: 1e-2, lrSchedulerType: "constant" as const };
const trainLogs = (h: Array<Record<string, number>>) => h.filter((e) => "loss" in e);
const weightsOf = (m: PreTrainedModelForSequenceClassification) =>
  Object.fromEntries([...m.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())]));

/** Scores of each full sequence, one row at a time (no padding). */
function scores(
  m: PreTrainedModelForSequenceClassification,
  rows: TokenizedPreference[],
  key: "chosenIds" | "rejectedIds",
) {
  return rows.map((r) => tf.tidy(() => m.forward({ inputIds: [[...r.promptIds, ...r[key]]] }).logits.dataSync()[0]!));
}
const logSigmoid = (x: number) => -Math.log1p(Math.exp(-x));

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-rm-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("RewardTrainer", () => {
  it("logs TRL's loss and metrics, equal to the formula on hand-read scores (margin + centring)", async () => {
    const model = tinyRm(1);
    const pairs = makePairs(4).map((p, i) => ({ ...p, margin: 0.25 * i }));
    const rc = scores(model, pairs, "chosenIds");
    const rr = scores(model, pairs, "rejectedIds");
    const coef = 0.01;
    const trainer = new RewardTrainer({
      model,
      args: {
        ...base,
        outputDir: join(root, "metrics"),
        maxSteps: 1,
        perDeviceTrainBatchSize: 4,
        centerRewardsCoefficient: coef,
      },
      trainDataset: pairs,
    });
    await trainer.train();
    const log = trainLogs(trainer.state.logHistory)[0]!;
    const n = pairs.length;
    const diff = rc.map((c, i) => c - rr[i]!);
    const loss =
      -diff.reduce((s, d, i) => s + logSigmoid(d - pairs[i]!.margin!), 0) / n +
      (coef * rc.reduce((s, c, i) => s + (c + rr[i]!) ** 2, 0)) / n;
    const all = [...rc, ...rr];
    expect(log["loss"]).toBeCloseTo(loss, 5);
    expect(log["accuracy"]).toBeCloseTo(diff.filter((d) => d > 0).length / n, 6);
    expect(log["margin"]).toBeCloseTo(diff.reduce((a, b) => a + b, 0) / n, 5);
    expect(log["min_reward"]).toBeCloseTo(Math.min(...all), 5);
    expect(log["max_reward"]).toBeCloseTo(Math.max(...all), 5);
    expect(log["mean_reward"]).toBeCloseTo(all.reduce((a, b) => a + b, 0) / all.length, 5);
    const tokens = pairs.reduce((s, p) => s + 2 * p.promptIds.length + p.chosenIds.length + p.rejectedIds.length, 0);
    expect(log["num_tokens"]).toBe(tokens);
    for (const k of ["grad_norm", "learning_rate", "epoch"]) expect(log[k]).toBeTypeOf("number");
    trainer.dispose();
    model.dispose();
  });

  it("has TRL's defaults, refuses numLabels ≠ 1, and drops (not truncates) rows longer than maxLength, counting them", async () => {
    const two = AutoModelForSequenceClassification.fromConfig(TINY, { numLabels: 2 });
    expect(() => new RewardTrainer({ model: two, trainDataset: makePairs(2) })).toThrow(ConfigError);
    two.dispose();
    const model = tinyRm(2);
    const pairs = makePairs(8, 3);
    const maxLength = 6;
    const longer = pairs.filter(
      (p) => p.promptIds.length + Math.max(p.chosenIds.length, p.rejectedIds.length) > maxLength,
    ).length;
    expect(longer).toBeGreaterThan(0);
    expect(longer).toBeLessThan(pairs.length);
    const warnings: string[] = [];
    const trainer = new RewardTrainer({
      model,
      args: { ...base, outputDir: join(root, "drop"), maxSteps: 1, maxLength },
      trainDataset: pairs,
      evalDataset: pairs,
      warn: (m) => warnings.push(m),
    });
    expect(trainer.args).toMatchObject({
      learningRate: 1e-2,
      maxLength,
      centerRewardsCoefficient: null,
      disableDropout: true,
    });
    await trainer.train();
    expect(trainer.droppedRows).toEqual({ train: longer, eval: longer });
    expect(trainer.trainRows).toHaveLength(pairs.length - longer);
    expect(trainer.trainRows.every((r) => r.promptIds.length + r.chosenIds.length <= maxLength)).toBe(true);
    expect(warnings.some((w) => w.includes(`dropped ${longer} of 8 training rows`))).toBe(true);
    const ev = await trainer.evaluate();
    for (const k of [
      "eval_loss",
      "eval_accuracy",
      "eval_margin",
      "eval_min_reward",
      "eval_mean_reward",
      "eval_max_reward",
    ]) {
      expect(ev[k]).toBeTypeOf("number");
    }
    trainer.dispose();
    model.dispose();
    const fresh = tinyRm(1);
    expect(new RewardTrainer({ model: fresh, trainDataset: [] as TokenizedPreference[] }).args.maxLength).toBe(1024);
    fresh.dispose();
  });

  const stories = sharedPath("assets/stories260K");
  it.skipIf(!stories)("tokenises raw rows as prompt+completion (eos appended) and drops over-long ones", async () => {
    const tok = await AutoTokenizer.fromPretrained(stories!);
    const model = await AutoModelForSequenceClassification.fromPretrained(stories!, { numLabels: 1, seed: 0 });
    const rows = [
      { prompt: "Once upon a time", chosen: " there was a cat.", rejected: " it rained." },
      { prompt: "Lily saw", chosen: " a dog.", rejected: " a big, big, big, big, big, big, big, big red ball." },
    ];
    const trainer = new RewardTrainer({
      model,
      args: { ...base, outputDir: join(root, "raw"), maxSteps: 1, maxLength: 16 },
      trainDataset: rows,
      processingClass: tok,
      warn: () => {},
    });
    await trainer.train();
    expect(trainer.droppedRows.train).toBe(1);
    const r = trainer.trainRows[0]!;
    expect(r.promptIds).toEqual(tok.encode("Once upon a time"));
    expect(r.chosenIds).toEqual([...tok.encode(" there was a cat.", { addSpecialTokens: false }), tok.eosTokenId]);
    trainer.dispose();
    model.dispose();
  });

  it("learns an even-vs-odd preference: eval accuracy reaches 1", async () => {
    const model = tinyRm(3);
    const trainer = new RewardTrainer({
      model,
      args: { ...base, outputDir: join(root, "learn"), maxSteps: 30, perDeviceTrainBatchSize: 8, loggingSteps: 10 },
      trainDataset: makePairs(32, 11),
      evalDataset: makePairs(16, 12),
    });
    const before = await trainer.evaluate();
    await trainer.train();
    const after = await trainer.evaluate();
    expect(after["eval_accuracy"]).toBe(1);
    expect(after["eval_loss"]!).toBeLessThan(before["eval_loss"]! / 2);
    trainer.dispose();
    model.dispose();
  });

  it("6 steps straight == 3 steps + save + resume (new model, new trainer) + 3 steps", async () => {
    const pairs = makePairs(6, 31);
    const args = {
      ...base,
      saveStrategy: "steps" as const,
      saveSteps: 3,
      maxSteps: 6,
      perDeviceTrainBatchSize: 2,
      lrSchedulerType: "cosine" as const,
      warmupSteps: 2,
      weightDecay: 0.01,
      seed: 5,
    };
    const straightModel = tinyRm(4);
    const straight = new RewardTrainer({
      model: straightModel,
      args: { ...args, outputDir: join(root, "straight") },
      trainDataset: pairs,
    });
    await straight.train();

    const dir = join(root, "resumed");
    const firstModel = tinyRm(4);
    const first = new RewardTrainer({
      model: firstModel,
      args: { ...args, outputDir: dir },
      trainDataset: pairs,
      callbacks: [stopAtStep(3)],
    });
    await first.train();
    expect(await readdir(dir)).toEqual(["checkpoint-3"]);
    const resumedModel = tinyRm(4);
    const resumed = new RewardTrainer({ model: resumedModel, args: { ...args, outputDir: dir }, trainDataset: pairs });
    await resumed.train({ resumeFromCheckpoint: true });
    expect(resumed.state.globalStep).toBe(6);
    const a = trainLogs(straight.state.logHistory);
    const b = trainLogs(resumed.state.logHistory);
    expect(b).toHaveLength(6);
    for (let i = 0; i < 6; i++) {
      expect(Math.abs(b[i]!["loss"]! - a[i]!["loss"]!)).toBeLessThan(1e-6);
      expect(b[i]!["accuracy"]).toBe(a[i]!["accuracy"]);
    }
    expect(weightsOf(resumedModel)).toEqual(weightsOf(straightModel));
    for (const t of [straight, first, resumed]) t.dispose();
    for (const m of [straightModel, firstModel, resumedModel]) m.dispose();
  });

  it("keeps numTensors flat across steps and back to baseline after dispose", async () => {
    const baseline = tf.memory().numTensors;
    const model = tinyRm(5);
    const counts: number[] = [];
    const trainer = new RewardTrainer({
      model,
      args: {
        ...base,
        outputDir: join(root, "mem"),
        maxSteps: 12,
        perDeviceTrainBatchSize: 2,
        gradientAccumulationSteps: 2,
      },
      trainDataset: makePairs(16, 9),
      callbacks: [{ onStepEnd: () => void counts.push(tf.memory().numTensors) }],
    });
    await trainer.train();
    expect(counts[11]).toBe(counts[0]);
    trainer.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });
});

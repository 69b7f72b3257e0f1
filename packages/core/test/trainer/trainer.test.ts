import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tf } from "../../src/engine/tf.js";
import type { Callback } from "../../src/interfaces/callback.js";
import type { BatchSource } from "../../src/interfaces/trainer.js";
import type { AdamW } from "../../src/optim/adamw.js";
import { resolveTrainingArgs } from "../../src/trainer/args.js";
import { arrayBatchSource } from "../../src/trainer/batch-source.js";
import { type Batch, makeRows, TinyLM, TinyTrainer, weightsOf } from "./tiny-lm.js";

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-trainer-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const fixed = (batches: Batch[]): BatchSource<Batch> => ({ numBatches: batches.length, batches: () => batches });
const losses = (t: TinyTrainer) => t.state.logHistory.filter((e) => "loss" in e).map((e) => e["loss"]!);

describe("BaseTrainer", () => {
  it("gradient accumulation over uneven micro-batches equals one big batch (1e-5)", async () => {
    const rows = makeRows(12);
    const big: Batch[] = [rows.slice(0, 4), rows.slice(4, 8), rows.slice(8, 12)];
    const micro: Batch[] = [
      rows.slice(0, 2),
      rows.slice(2, 3),
      rows.slice(3, 4),
      rows.slice(4, 5),
      rows.slice(5, 7),
      rows.slice(7, 8),
      rows.slice(8, 9),
      rows.slice(9, 10),
      rows.slice(10, 12),
    ];
    const common = {
      outputDir: join(root, "ga"),
      saveStrategy: "no" as const,
      loggingSteps: 1,
      numTrainEpochs: 1,
      learningRate: 0.05,
      maxGradNorm: 0.5,
    };
    const mA = new TinyLM(3);
    const mB = new TinyLM(3);
    const a = new TinyTrainer({ ...common, gradientAccumulationSteps: 1 }, mA, fixed(big));
    const b = new TinyTrainer({ ...common, gradientAccumulationSteps: 3 }, mB, fixed(micro));
    await a.train();
    await b.train();
    expect(a.state.globalStep).toBe(3);
    expect(b.state.globalStep).toBe(3);
    const la = losses(a);
    const lb = losses(b);
    expect(la).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect(lb[i]).toBeCloseTo(la[i]!, 5);
    const gn = (t: TinyTrainer) => t.state.logHistory.filter((e) => "grad_norm" in e).map((e) => e["grad_norm"]!);
    for (let i = 0; i < 3; i++) expect(Math.abs(gn(b)[i]! - gn(a)[i]!)).toBeLessThan(1e-5 * gn(a)[i]!);
    expect(gn(a)[0]).toBeGreaterThan(0.5); // clipping was active
    const wa = weightsOf(mA);
    const wb = weightsOf(mB);
    for (const k of Object.keys(wa))
      for (let i = 0; i < wa[k]!.length; i++) expect(Math.abs(wb[k]![i]! - wa[k]![i]!)).toBeLessThan(1e-5);
    // the rows-weighted metric averages to the big-batch value too (metrics are share-weighted)
    const rowsMetric = b.state.logHistory.filter((e) => "rows" in e).map((e) => e["rows"]!);
    expect(rowsMetric[0]).toBeCloseTo((2 * 2 + 1 + 1) / 4, 10);
    for (const m of [mA, mB]) m.dispose();
    a.optimizer.dispose();
    b.optimizer.dispose();
  });

  it("gradientCheckpointing (default false) enables the model's checkpointing before training; a model without it is refused", async () => {
    expect(resolveTrainingArgs({}).gradientCheckpointing).toBe(false);
    expect(() => resolveTrainingArgs({ gradientCheckpointing: "yes" as unknown as boolean })).toThrow(
      /field "gradientCheckpointing": expected true or false, got "yes"/,
    );
    const common = { outputDir: join(root, "gc"), saveStrategy: "no" as const, maxSteps: 1, loggingSteps: 1 };
    const plain = new TinyLM(3);
    const refused = new TinyTrainer({ ...common, gradientCheckpointing: true }, plain, fixed([makeRows(2)]));
    await expect(refused.train()).rejects.toThrow(
      /field "gradientCheckpointing": the model does not support gradient checkpointing/,
    );
    expect(refused.state.globalStep).toBe(0);
    // A model with HF's switch: the trainer turns it on before the first step, and only when asked.
    const calls: string[] = [];
    const checkpointable = Object.assign(new TinyLM(3), {
      isGradientCheckpointing: false,
      gradientCheckpointingEnable() {
        calls.push(`enable at step ${trainer.state.globalStep}`);
      },
      gradientCheckpointingDisable() {
        calls.push("disable");
      },
    });
    const trainer = new TinyTrainer({ ...common, gradientCheckpointing: true }, checkpointable, fixed([makeRows(2)]));
    await trainer.train();
    expect(calls).toEqual(["enable at step 0"]);
    expect(trainer.state.globalStep).toBe(1);
    const without = new TinyTrainer({ ...common }, checkpointable, fixed([makeRows(2)]));
    await without.train();
    expect(calls).toEqual(["enable at step 0"]);
    for (const t of [refused, trainer, without]) t.optimizer.dispose();
    plain.dispose();
    checkpointable.dispose();
  });

  it("keeps numTensors flat (step 20 == step 1), leaves frozen weights untouched without slots, returns to baseline", async () => {
    const baseline = tf.memory().numTensors;
    const model = new TinyLM(4);
    const frozenBefore = Array.from(model.frozen.dataSync());
    const counts = new Map<number, number>();
    const probe: Callback = {
      onStepEnd: (_a, state) => {
        counts.set(state.globalStep, tf.memory().numTensors);
      },
    };
    const rows = makeRows(8);
    const t = new TinyTrainer(
      { outputDir: join(root, "mem"), saveStrategy: "no", loggingSteps: 5, maxSteps: 20, gradientAccumulationSteps: 2 },
      model,
      arrayBatchSource(rows, { batchSize: 2, collate: (r) => r }),
      undefined,
      [probe],
    );
    await t.train();
    expect(t.state.globalStep).toBe(20);
    expect(counts.get(20)).toBe(counts.get(1));
    expect(Array.from(model.frozen.dataSync())).toEqual(frozenBefore);
    const slots = (t.optimizer as AdamW).slotNames();
    expect(slots).toHaveLength(2);
    expect(slots).not.toContain(model.frozen.name);
    // 3 model vars + 2×2 slots
    expect(counts.get(1)! - baseline).toBe(3 + 4);
    t.optimizer.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("logs TRL names averaged between logs, with the scheduled learning rate", async () => {
    const model = new TinyLM(6);
    const t = new TinyTrainer(
      {
        outputDir: join(root, "log"),
        saveStrategy: "no",
        loggingSteps: 2,
        maxSteps: 4,
        learningRate: 0.1,
        warmupSteps: 2,
      },
      model,
      fixed([0, 2, 4, 6].map((i) => makeRows(8).slice(i, i + 2))),
    );
    await t.train();
    const logs = t.state.logHistory.filter((e) => "loss" in e);
    expect(logs.map((e) => e["step"])).toEqual([2, 4]);
    // linear with 2 warm-up steps of 4: lr after step 2 is 0.1·(4−2)/(4−2) = 0.1, after step 4 it is 0
    expect(logs[0]!["learning_rate"]).toBeCloseTo(0.1, 12);
    expect(logs[1]!["learning_rate"]).toBe(0);
    expect(Object.keys(logs[0]!).sort()).toEqual(
      ["epoch", "grad_norm", "learning_rate", "loss", "mean_token_accuracy", "num_tokens", "rows", "step"].sort(),
    );
    expect(logs[1]!["num_tokens"]).toBe(4 * 2 * 3);
    expect(logs[1]!["epoch"]).toBe(1);
    const final = t.state.logHistory.at(-1)!;
    expect(final["train_loss"]).toBeCloseTo((logs[0]!["loss"]! + logs[1]!["loss"]!) / 2, 10);
    t.optimizer.dispose();
    model.dispose();
  });

  it("evaluates with the eval_ prefix and tracks the best metric", async () => {
    const model = new TinyLM(7);
    const rows = makeRows(8);
    const seen: Array<Record<string, number>> = [];
    const t = new TinyTrainer(
      {
        outputDir: join(root, "eval"),
        saveSteps: 2,
        loggingSteps: 2,
        maxSteps: 4,
        learningRate: 0.05,
        evalStrategy: "steps",
        evalSteps: 2,
        metricForBestModel: "loss",
      },
      model,
      arrayBatchSource(rows, { batchSize: 2, collate: (r) => r }),
      arrayBatchSource(rows.slice(0, 5), { batchSize: 2, collate: (r) => r, shuffle: false }),
      [{ onEvaluate: (_a, _s, _c, { metrics }) => void seen.push(metrics) }],
    );
    await t.train();
    expect(seen).toHaveLength(2);
    expect(Object.keys(seen[0]!).sort()).toEqual(["eval_loss", "eval_mean_token_accuracy", "eval_rows"]);
    // weighted by rows: batches of 2, 2, 1 rows → eval_rows = (2·2 + 2·2 + 1·1) / 5
    expect(seen[0]!["eval_rows"]).toBeCloseTo(9 / 5, 10);
    expect(seen[1]!["eval_loss"]).toBeLessThan(seen[0]!["eval_loss"]!);
    expect(t.state.bestMetric).toBe(seen[1]!["eval_loss"]);
    expect(t.state.bestModelCheckpoint).toBe(join(root, "eval", "checkpoint-4"));
    t.optimizer.dispose();
    model.dispose();
  });

  it("6 steps straight == 3 steps + save + resume (new model, new trainer) + 3 steps", async () => {
    const rows = makeRows(12, 3, 9);
    const args = {
      saveSteps: 3,
      loggingSteps: 1,
      maxSteps: 6,
      learningRate: 0.05,
      warmupSteps: 2,
      lrSchedulerType: "cosine" as const,
      gradientAccumulationSteps: 2,
      weightDecay: 0.01,
      seed: 11,
    };
    const source = () => arrayBatchSource(rows, { batchSize: 2, collate: (r: typeof rows) => r, seed: 11 });
    const straightModel = new TinyLM(1);
    const straight = new TinyTrainer({ ...args, outputDir: join(root, "straight") }, straightModel, source());
    straight.noise = true;
    await straight.train();

    const dir = join(root, "resumed");
    const firstModel = new TinyLM(1);
    const stopAt3: Callback = {
      onStepEnd: (_a, s, c) => {
        if (s.globalStep === 3) c.shouldTrainingStop = true;
      },
    };
    const counter = () => {
      let steps = 0;
      return {
        name: "counter",
        onStepEnd: () => void steps++,
        getState: () => ({ steps }),
        loadState: (st: unknown) => {
          steps = (st as { steps: number }).steps;
        },
        get steps() {
          return steps;
        },
      };
    };
    const firstCounter = counter();
    const first = new TinyTrainer({ ...args, outputDir: dir }, firstModel, source(), undefined, [
      stopAt3,
      firstCounter,
    ]);
    first.noise = true;
    await first.train();
    expect(first.state.globalStep).toBe(3);
    expect(await readdir(dir)).toEqual(["checkpoint-3"]);

    const resumedModel = new TinyLM(99); // different init: weights must come from the checkpoint
    const resumedCounter = counter();
    const resumed = new TinyTrainer({ ...args, outputDir: dir }, resumedModel, source(), undefined, [resumedCounter]);
    resumed.noise = true;
    await resumed.train({ resumeFromCheckpoint: true });
    expect(resumed.state.globalStep).toBe(6);
    expect(firstCounter.steps).toBe(3);
    expect(resumedCounter.steps).toBe(6); // stateful callback restored from stateful_callbacks
    const a = losses(straight);
    const b = losses(resumed);
    expect(b).toHaveLength(6);
    for (let i = 0; i < 6; i++) expect(Math.abs(b[i]! - a[i]!)).toBeLessThan(1e-6);
    expect(weightsOf(resumedModel)).toEqual(weightsOf(straightModel));
    const stateJson = JSON.parse(await readFile(join(dir, "checkpoint-6", "trainer_state.json"), "utf8"));
    expect(stateJson.global_step).toBe(6);
    expect(stateJson.epoch).toBe(2);
    expect(stateJson.log_history).toHaveLength(6);
    for (const t of [straight, first, resumed]) t.optimizer.dispose();
    for (const m of [straightModel, firstModel, resumedModel]) m.dispose();
  });

  it("writes checkpoint files and honours saveTotalLimit", async () => {
    const dir = join(root, "limit");
    const model = new TinyLM(2);
    const t = new TinyTrainer(
      { outputDir: dir, saveSteps: 1, saveTotalLimit: 2, loggingSteps: 1, maxSteps: 4 },
      model,
      arrayBatchSource(makeRows(4), { batchSize: 2, collate: (r) => r }),
    );
    await t.train();
    expect((await readdir(dir)).sort()).toEqual(["checkpoint-3", "checkpoint-4"]);
    expect((await readdir(join(dir, "checkpoint-4"))).sort()).toEqual(
      [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "prefkit_state.json",
        "rng_state.json",
        "scheduler.json",
        "trainer_state.json",
        "training_args.json",
      ].sort(),
    );
    t.optimizer.dispose();
    model.dispose();
  });
});

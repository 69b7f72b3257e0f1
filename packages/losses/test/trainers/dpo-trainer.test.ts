import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AdapterToggle,
  type Callback,
  type CausalLM,
  ConfigError,
  DatasetError,
  type ForwardInputs,
  createRunContainer,
  type Loss,
  lossPlugin,
  lossRegistryOf,
  tf,
} from "@prefkit/core";
import { DPOTrainer, type DPOLossInputs } from "@prefkit/losses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import { handLogp, makePairs, maxWeightDiff, stopAtStep, tinyModel, trainLogs, weightsOf } from "./helpers.js";

const storiesDir = sharedPath("assets/stories260K");
let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-dpo-trainer-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const base = { saveStrategy: "no" as const, loggingSteps: 1, learningRate: 1e-2, lrSchedulerType: "constant" as const };

describe("DPOTrainer", () => {
  it("step 0: policy = frozen-copy reference gives loss ln 2, zero rewards, and TRL's metrics from hand-computed log-probs", async () => {
    const model = tinyModel(1);
    const pairs = makePairs(3);
    const trainer = new DPOTrainer({
      model,
      args: { ...base, outputDir: join(root, "step0"), maxSteps: 1, perDeviceTrainBatchSize: 3 },
      trainDataset: pairs,
    });
    // expected values from the untouched starting weights, computed row by row in JS
    const chosen = pairs.map((p) => handLogp(model, p.promptIds, p.chosenIds));
    const rejected = pairs.map((p) => handLogp(model, p.promptIds, p.rejectedIds));
    await trainer.train();
    const log = trainLogs(trainer.state.logHistory)[0]!;
    expect(Math.abs(log["loss"]! - Math.LN2)).toBeLessThan(1e-6);
    for (const k of ["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"]) {
      expect(log[k], k).toBe(0);
    }
    const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
    expect(log["logps/chosen"]).toBeCloseTo(mean(chosen), 5);
    expect(log["logps/rejected"]).toBeCloseTo(mean(rejected), 5);
    expect(Object.keys(log).sort()).toEqual(
      [
        "entropy",
        "epoch",
        "grad_norm",
        "learning_rate",
        "logits/chosen",
        "logits/rejected",
        "logps/chosen",
        "logps/rejected",
        "loss",
        "mean_token_accuracy",
        "num_tokens",
        "rewards/accuracies",
        "rewards/chosen",
        "rewards/margins",
        "rewards/rejected",
        "step",
      ].sort(),
    );
    const tokens = pairs.reduce((s, p) => s + 2 * p.promptIds.length + p.chosenIds.length + p.rejectedIds.length, 0);
    expect(log["num_tokens"]).toBe(tokens);
    expect(log["grad_norm"]).toBeGreaterThan(0);
    expect(trainer.reference?.kind).toBe("model");
    trainer.dispose();
    model.dispose();
  });

  it("logits/chosen is the mean logit over the positions that predict chosen tokens (TRL)", async () => {
    const model = tinyModel(2);
    const pairs = makePairs(2, 11);
    const trainer = new DPOTrainer({
      model,
      args: { ...base, outputDir: join(root, "logits"), maxSteps: 1, perDeviceTrainBatchSize: 2 },
      trainDataset: pairs,
      evalDataset: pairs,
    });
    const metrics = await trainer.evaluate();
    let sum = 0;
    let n = 0;
    for (const p of pairs) {
      const ids = [...p.promptIds, ...p.chosenIds];
      const logits = tf.tidy(() => model.forward({ inputIds: [ids] }).logits.arraySync()[0]!);
      for (let t = p.promptIds.length - 1; t < ids.length - 1; t++) {
        sum += logits[t]!.reduce((a, b) => a + b, 0) / logits[t]!.length;
        n++;
      }
    }
    expect(metrics["eval_logits/chosen"]).toBeCloseTo(sum / n, 5);
    expect(metrics["eval_loss"]).toBeCloseTo(Math.LN2, 6);
    trainer.dispose();
    model.dispose();
  });

  it("gradient accumulation: 4 micro-batches of 1 == 1 batch of 4 (weights to 1e-5)", async () => {
    const pairs = makePairs(4, 21);
    const run = async (bs: number, ga: number) => {
      const model = tinyModel(3);
      const t = new DPOTrainer({
        model,
        args: {
          ...base,
          outputDir: join(root, `ga-${bs}`),
          maxSteps: 3,
          perDeviceTrainBatchSize: bs,
          gradientAccumulationSteps: ga,
          maxGradNorm: 0.5,
        },
        trainDataset: pairs,
      });
      await t.train();
      const w = weightsOf(model);
      const logs = trainLogs(t.state.logHistory);
      t.dispose();
      model.dispose();
      return { w, logs };
    };
    const big = await run(4, 1);
    const micro = await run(1, 4);
    expect(big.logs).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      expect(Math.abs(micro.logs[i]!["loss"]! - big.logs[i]!["loss"]!)).toBeLessThan(1e-5);
      expect(Math.abs(micro.logs[i]!["rewards/margins"]! - big.logs[i]!["rewards/margins"]!)).toBeLessThan(1e-5);
    }
    expect(big.logs[2]!["loss"]).not.toBeCloseTo(Math.LN2, 3); // the weights did move
    expect(maxWeightDiff(big.w, micro.w)).toBeLessThan(1e-5);
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
    const straightModel = tinyModel(4);
    const straight = new DPOTrainer({
      model: straightModel,
      args: { ...args, outputDir: join(root, "straight") },
      trainDataset: pairs,
    });
    await straight.train();

    const dir = join(root, "resumed");
    const firstModel = tinyModel(4);
    const stopAt3: Callback = stopAtStep(3);
    const first = new DPOTrainer({
      model: firstModel,
      args: { ...args, outputDir: dir },
      trainDataset: pairs,
      callbacks: [stopAt3],
    });
    await first.train();
    expect(await readdir(dir)).toEqual(["checkpoint-3"]);

    // A fresh process would rebuild the base model and the trainer, then resume.
    const resumedModel = tinyModel(4);
    const resumed = new DPOTrainer({ model: resumedModel, args: { ...args, outputDir: dir }, trainDataset: pairs });
    await resumed.train({ resumeFromCheckpoint: true });
    expect(resumed.state.globalStep).toBe(6);
    const a = trainLogs(straight.state.logHistory);
    const b = trainLogs(resumed.state.logHistory);
    expect(b).toHaveLength(6);
    for (let i = 0; i < 6; i++) {
      expect(Math.abs(b[i]!["loss"]! - a[i]!["loss"]!)).toBeLessThan(1e-6);
      expect(b[i]!["rewards/margins"]).toBe(a[i]!["rewards/margins"]);
    }
    expect(weightsOf(resumedModel)).toEqual(weightsOf(straightModel));
    for (const t of [straight, first, resumed]) t.dispose();
    for (const m of [straightModel, firstModel, resumedModel]) m.dispose();
  });

  it("keeps numTensors flat: after step 20 == after step 1, and back to baseline after dispose", async () => {
    const baseline = tf.memory().numTensors;
    const model = tinyModel(5);
    const counts = new Map<number, number>();
    const probe: Callback = {
      onStepEnd: (_a, s) => {
        counts.set(s.globalStep, tf.memory().numTensors);
      },
    };
    const t = new DPOTrainer({
      model,
      args: {
        ...base,
        outputDir: join(root, "mem"),
        maxSteps: 20,
        loggingSteps: 5,
        perDeviceTrainBatchSize: 2,
        gradientAccumulationSteps: 2,
      },
      trainDataset: makePairs(8, 41),
      evalDataset: makePairs(3, 42),
      callbacks: [probe],
    });
    await t.train();
    await t.evaluate();
    expect(t.state.globalStep).toBe(20);
    expect(counts.get(20)).toBe(counts.get(1));
    t.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("the loss decreases over 20 steps on a tiny model and the preference is learned", async () => {
    const model = tinyModel(6);
    const t = new DPOTrainer({
      model,
      args: {
        ...base,
        outputDir: join(root, "learn"),
        maxSteps: 20,
        loggingSteps: 5,
        perDeviceTrainBatchSize: 4,
        beta: 0.5,
      },
      trainDataset: makePairs(16, 51),
      evalDataset: makePairs(8, 52),
    });
    await t.train();
    const logs = trainLogs(t.state.logHistory);
    expect(logs).toHaveLength(4);
    expect(logs[3]!["loss"]).toBeLessThan(logs[0]!["loss"]! - 0.1);
    const ev = await t.evaluate();
    expect(ev["eval_rewards/accuracies"]).toBeGreaterThan(0.7);
    expect(ev["eval_rewards/margins"]).toBeGreaterThan(0);
    expect(ev["eval_loss"]).toBeLessThan(Math.LN2);
    t.dispose();
    model.dispose();
  });

  it("a user loss registered by name (plugin) trains exactly like a built-in", async () => {
    // The user's loss: 2 · softplus(−β·Δ), i.e. twice the sigmoid loss.
    const doubled = (cfg: { beta: number }): Loss<DPOLossInputs> => ({
      name: "doubled-sigmoid",
      compute: (x) => {
        const d = tf.sub(
          tf.sub(x.chosenLogps as tf.Tensor, x.refChosenLogps as tf.Tensor),
          tf.sub(x.rejectedLogps as tf.Tensor, x.refRejectedLogps as tf.Tensor),
        );
        return {
          loss: tf.mul(tf.mean(tf.softplus(tf.mul(d, -cfg.beta))), 2) as tf.Scalar,
          metrics: { "custom/delta": tf.mean(d) as tf.Scalar },
        };
      },
    });
    const pairs = makePairs(4, 61);
    const run = async (lossType: string, lr: number, plugins = [lossPlugin("doubled-sigmoid", doubled)]) => {
      const model = tinyModel(7);
      const t = new DPOTrainer({
        model,
        args: {
          ...base,
          outputDir: join(root, `custom-${lossType}`),
          maxSteps: 3,
          perDeviceTrainBatchSize: 4,
          learningRate: lr,
          lossType,
        },
        trainDataset: pairs,
        plugins,
      });
      await t.train();
      const logs = trainLogs(t.state.logHistory);
      const w = weightsOf(model);
      t.dispose();
      model.dispose();
      return { logs, w };
    };
    const custom = await run("doubled-sigmoid", 1e-2);
    expect(custom.logs[0]!["loss"]).toBeCloseTo(2 * Math.LN2, 6);
    expect(custom.logs[0]!["custom/delta"]).toBe(0);
    expect(custom.logs[2]!["loss"]).toBeLessThan(custom.logs[0]!["loss"]!);
    // With loss weights [2] the built-in sigmoid is the same objective: same losses and updates.
    const builtin = await (async () => {
      const model = tinyModel(7);
      const t = new DPOTrainer({
        model,
        args: {
          ...base,
          outputDir: join(root, "custom-ref"),
          maxSteps: 3,
          perDeviceTrainBatchSize: 4,
          lossType: ["sigmoid"],
          lossWeights: [2],
        },
        trainDataset: pairs,
      });
      await t.train();
      const out = { logs: trainLogs(t.state.logHistory), w: weightsOf(model) };
      t.dispose();
      model.dispose();
      return out;
    })();
    for (let i = 0; i < 3; i++) expect(custom.logs[i]!["loss"]).toBeCloseTo(builtin.logs[i]!["loss"]!, 5);
    expect(maxWeightDiff(custom.w, builtin.w)).toBeLessThan(1e-5);

    // Unknown names are a ConfigError listing what is registered (including the plugin's loss).
    // The trainer is composed when it is built, so the error comes at once.
    const badModel = tinyModel(7);
    expect(
      () =>
        new DPOTrainer({
          model: badModel,
          args: { ...base, outputDir: join(root, "custom-bad"), maxSteps: 1, lossType: "nope" },
          trainDataset: pairs,
          plugins: [lossPlugin("doubled-sigmoid", doubled)],
        }),
    ).toThrow(/unknown loss type "nope"; known: .*"doubled-sigmoid".*"sigmoid"/);
    badModel.dispose();
    // A registry in a parent container works the same way, for every run made from it.
    const parent = createRunContainer();
    lossRegistryOf(parent).register("via-registry", doubled);
    const viaRegistry = await run("via-registry", 1e-2, []).catch((e) => e);
    expect(viaRegistry).toBeInstanceOf(ConfigError);
    const m = tinyModel(7);
    const t = new DPOTrainer({
      model: m,
      args: { ...base, outputDir: join(root, "custom-reg"), maxSteps: 1, lossType: "via-registry" },
      trainDataset: pairs,
      container: parent,
    });
    await t.train();
    expect(trainLogs(t.state.logHistory)[0]!["loss"]).toBeCloseTo(2 * Math.LN2, 6);
    t.dispose();
    m.dispose();
  });

  it('lossType ["sigmoid", "sft"] (RPO) equals rpoAlpha 1: ln 2 + the chosen NLL at step 0', async () => {
    const pairs = makePairs(4, 65);
    const run = async (extra: object) => {
      const model = tinyModel(15);
      const nll = (() => {
        let sum = 0;
        let n = 0;
        for (const p of pairs) {
          sum -= handLogp(model, p.promptIds, p.chosenIds);
          n += p.chosenIds.length;
        }
        return sum / n;
      })();
      const t = new DPOTrainer({
        model,
        args: { ...base, outputDir: join(root, "rpo"), maxSteps: 3, perDeviceTrainBatchSize: 4, ...extra },
        trainDataset: pairs,
      });
      await t.train();
      const logs = trainLogs(t.state.logHistory);
      t.dispose();
      model.dispose();
      return { logs, nll };
    };
    const mix = await run({ lossType: ["sigmoid", "sft"] });
    const rpo = await run({ rpoAlpha: 1 });
    expect(mix.logs[0]!["loss"]).toBeCloseTo(Math.LN2 + mix.nll, 5);
    for (let i = 0; i < 3; i++) expect(rpo.logs[i]!["loss"]).toBeCloseTo(mix.logs[i]!["loss"]!, 5);
  });

  it("warns once when the loss stays at ln 2 (reference = policy weights, nothing learns)", async () => {
    const model = tinyModel(8);
    const warnings: string[] = [];
    const seen: boolean[] = [];
    const t = new DPOTrainer({
      model,
      args: { ...base, outputDir: join(root, "ln2"), maxSteps: 6, learningRate: 0, perDeviceTrainBatchSize: 2 },
      trainDataset: makePairs(4, 71),
      warn: (m) => warnings.push(m),
      ln2Warning: { consecutiveLogs: 3 },
      callbacks: [
        {
          onLog: () => {
            seen.push(t.ln2Warning.warned);
          },
        },
      ],
    });
    await t.train();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/policy and reference may be the same weights/);
    expect(t.ln2Warning).toMatchObject({ warned: true, step: 3 });
    expect(seen.slice(0, 6)).toEqual([false, false, true, true, true, true]);
    t.dispose();
    model.dispose();
  });

  it("refuses the policy itself as refModel", async () => {
    const model = tinyModel(9);
    const make = () =>
      new DPOTrainer({
        model,
        refModel: model,
        args: { ...base, outputDir: join(root, "same") },
        trainDataset: makePairs(2),
      });
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(/refModel is the policy itself/);
    model.dispose();
  });
});

/** A model whose only trainable weight is a logit-bias "adapter" over a frozen tiny Llama. */
class BiasAdapterLM implements CausalLM, AdapterToggle {
  readonly base = tinyModel(14);
  readonly bias = tf.variable(tf.zeros([16]), true, "adapter.bias");
  private enabled = true;
  get config() {
    return this.base.config;
  }
  constructor() {
    for (const v of this.base.namedParameters().values()) v.trainable = false;
  }
  forward(inputs: ForwardInputs) {
    return tf.tidy(() => {
      const { logits } = this.base.forward(inputs);
      return { logits: (this.enabled ? tf.add(logits, this.bias) : logits) as tf.Tensor3D };
    });
  }
  namedParameters() {
    return new Map([...this.base.namedParameters(), ["adapter.bias", this.bias]]);
  }
  trainableVariables() {
    return [this.bias];
  }
  withAdaptersDisabled<T>(fn: () => T): T {
    const previous = this.enabled;
    this.enabled = false;
    try {
      return fn();
    } finally {
      this.enabled = previous;
    }
  }
  async savePretrained() {}
  dispose() {
    this.base.dispose();
    this.bias.dispose();
  }
}

describe("DPOTrainer reference resolution and inputs", () => {
  it("uses the same network with adapters off as the reference (no copy) when the model has an AdapterToggle", async () => {
    const model = new BiasAdapterLM();
    const baseWeights = weightsOf(model.base);
    const before = tf.memory().numTensors;
    const t = new DPOTrainer({
      model,
      args: { ...base, outputDir: join(root, "adapter"), maxSteps: 10, perDeviceTrainBatchSize: 4, learningRate: 0.1 },
      trainDataset: makePairs(8, 91),
    });
    await t.train();
    expect(t.reference?.kind).toBe("adapters-off");
    expect(t.reference?.owned).toBeUndefined();
    // only the optimizer's two slots per trainable variable were added, no copy of the base
    t.dispose();
    expect(tf.memory().numTensors).toBe(before);
    const logs = trainLogs(t.state.logHistory);
    expect(Math.abs(logs[0]!["loss"]! - Math.LN2)).toBeLessThan(1e-6);
    expect(logs[9]!["loss"]).toBeLessThan(logs[0]!["loss"]!);
    expect(logs[9]!["rewards/margins"]).toBeGreaterThan(0);
    expect(weightsOf(model.base)).toEqual(baseWeights);
    model.dispose();
  });

  it("errors clearly without a possible reference, on raw rows without a tokenizer, and on malformed token rows", async () => {
    const model = new BiasAdapterLM();
    const plain: CausalLM = {
      config: model.config,
      forward: (i) => model.forward(i),
      namedParameters: () => model.namedParameters(),
      trainableVariables: () => model.trainableVariables(),
      savePretrained: async () => {},
      dispose: () => {},
    };
    const out = join(root, "errors");
    expect(
      () => new DPOTrainer({ model: plain, args: { ...base, outputDir: out }, trainDataset: makePairs(2) }),
    ).toThrow(/field "refModel": no reference model/);
    const raw = new DPOTrainer({
      model,
      args: { ...base, outputDir: out },
      trainDataset: [{ prompt: "a", chosen: "b", rejected: "c" }],
    });
    await expect(raw.train()).rejects.toThrow(/need a tokenizer: pass processingClass/);
    const bad = new DPOTrainer({
      model,
      args: { ...base, outputDir: out },
      trainDataset: [...makePairs(2), { promptIds: [1], chosenIds: [2, 0.5], rejectedIds: [3] }],
    });
    await expect(bad.train()).rejects.toThrow(DatasetError);
    await expect(bad.train()).rejects.toThrow(/row 3, field "chosenIds"/);
    expect(() => new DPOTrainer({ model, args: { beta: -1 }, trainDataset: makePairs(2) })).toThrow(/field "beta"/);
    model.dispose();
  });
});

describe("DPOTrainer precomputeRefLogProbs", () => {
  const pairs = makePairs(6, 81);
  const args = { ...base, maxSteps: 3, perDeviceTrainBatchSize: 2, seed: 3 };

  it("cached reference log-probs equal the live reference (1e-5) and training matches", async () => {
    const liveModel = tinyModel(10);
    const live = new DPOTrainer({
      model: liveModel,
      args: { ...args, outputDir: join(root, "live") },
      trainDataset: pairs,
    });
    await live.train();

    const dir = join(root, "pre");
    const preModel = tinyModel(10);
    const expected = pairs.map((p) => ({
      c: handLogp(preModel, p.promptIds, p.chosenIds),
      r: handLogp(preModel, p.promptIds, p.rejectedIds),
    }));
    const pre = new DPOTrainer({
      model: preModel,
      args: { ...args, outputDir: dir, precomputeRefLogProbs: true },
      trainDataset: pairs,
    });
    await pre.train();
    expect(pre.reference?.kind).toBe("policy-at-start"); // no frozen copy was made
    const files = await readdir(join(dir, "ref_logps"));
    expect(files).toHaveLength(1);
    const cache = JSON.parse(await readFile(join(dir, "ref_logps", files[0]!), "utf8"));
    expect(cache.numRows).toBe(6);
    for (let i = 0; i < 6; i++) {
      expect(Math.abs(cache.chosen[i] - expected[i]!.c)).toBeLessThan(1e-5);
      expect(Math.abs(cache.rejected[i] - expected[i]!.r)).toBeLessThan(1e-5);
    }
    const a = trainLogs(live.state.logHistory);
    const b = trainLogs(pre.state.logHistory);
    for (let i = 0; i < 3; i++) {
      expect(Math.abs(a[i]!["loss"]! - b[i]!["loss"]!)).toBeLessThan(1e-5);
      expect(Math.abs(a[i]!["rewards/chosen"]! - b[i]!["rewards/chosen"]!)).toBeLessThan(1e-5);
    }
    expect(maxWeightDiff(weightsOf(liveModel), weightsOf(preModel))).toBeLessThan(1e-5);
    // After training the cached values are reused, never recomputed from the trained policy.
    const again = await pre.precomputeRefLogProbs();
    expect(again.chosen).toEqual(cache.chosen);
    // The same data with the same starting weights finds the cache (same key).
    const model2 = tinyModel(10);
    const t2 = new DPOTrainer({
      model: model2,
      args: { ...args, outputDir: dir, precomputeRefLogProbs: true },
      trainDataset: pairs,
    });
    const loaded = await t2.precomputeRefLogProbs();
    expect(loaded.chosen).toEqual(cache.chosen);
    for (const t of [live, pre, t2]) t.dispose();
    for (const m of [liveModel, preModel, model2]) m.dispose();
  });

  it("refuses to compute them from a trained policy: weights changed since construction, or a resume without the cache", async () => {
    const model = tinyModel(11);
    const t = new DPOTrainer({
      model,
      args: { ...args, outputDir: join(root, "refuse-a"), precomputeRefLogProbs: true },
      trainDataset: pairs,
    });
    // "train" the policy behind the trainer's back
    const v = [...model.namedParameters().values()][0]!;
    tf.tidy(() => v.assign(tf.add(v, 0.01)));
    await expect(t.train()).rejects.toThrow(ConfigError);
    await expect(t.precomputeRefLogProbs()).rejects.toThrow(/weights changed since the trainer was built/);
    t.dispose();
    model.dispose();

    const dir = join(root, "refuse-b");
    const m1 = tinyModel(12);
    const first = new DPOTrainer({
      model: m1,
      args: { ...args, outputDir: dir, precomputeRefLogProbs: true, saveStrategy: "steps", saveSteps: 2, maxSteps: 4 },
      trainDataset: pairs,
      callbacks: [stopAtStep(2)],
    });
    await first.train();
    expect(existsSync(join(dir, "checkpoint-2"))).toBe(true);
    await rm(join(dir, "ref_logps"), { recursive: true });
    const m2 = tinyModel(12);
    const resumed = new DPOTrainer({
      model: m2,
      args: { ...args, outputDir: dir, precomputeRefLogProbs: true, saveStrategy: "steps", saveSteps: 2, maxSteps: 4 },
      trainDataset: pairs,
    });
    await expect(resumed.train({ resumeFromCheckpoint: true })).rejects.toThrow(
      /refusing to compute reference log-probs from the policy: it has already been trained \(global step 2\)/,
    );
    for (const x of [first, resumed]) x.dispose();
    for (const m of [m1, m2]) m.dispose();
  });

  it("a resume with the cache continues exactly like the straight run", async () => {
    const run = async (dir: string, stopAt?: number) => {
      const model = tinyModel(13);
      const callbacks: Callback[] = stopAt ? [stopAtStep(stopAt)] : [];
      const t = new DPOTrainer({
        model,
        args: {
          ...args,
          outputDir: dir,
          precomputeRefLogProbs: true,
          saveStrategy: "steps",
          saveSteps: 2,
          maxSteps: 4,
        },
        trainDataset: pairs,
        callbacks,
      });
      return { t, model };
    };
    const s = await run(join(root, "pc-straight"));
    await s.t.train();
    const f = await run(join(root, "pc-resume"), 2);
    await f.t.train();
    const r = await run(join(root, "pc-resume"));
    await r.t.train({ resumeFromCheckpoint: true });
    const a = trainLogs(s.t.state.logHistory);
    const b = trainLogs(r.t.state.logHistory);
    expect(b).toHaveLength(4);
    for (let i = 0; i < 4; i++) expect(Math.abs(a[i]!["loss"]! - b[i]!["loss"]!)).toBeLessThan(1e-6);
    expect(weightsOf(r.model)).toEqual(weightsOf(s.model));
    for (const x of [s, f, r]) {
      x.t.dispose();
      x.model.dispose();
    }
  });
});

describe("DPOTrainer with raw rows and a real tokenizer", () => {
  it.skipIf(!storiesDir)("tokenises explicit-prompt rows through core's pipeline and trains stories260K", async () => {
    const dir = storiesDir!;
    const { AutoModelForCausalLM, AutoTokenizer } = await import("@prefkit/models");
    const tok = await AutoTokenizer.fromPretrained(dir);
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    const rows = [
      { prompt: "Once upon a time, there was a", chosen: " little girl.", rejected: " big dog." },
      { prompt: "Lily liked to", chosen: " play in the park.", rejected: " eat." },
      { prompt: "The sun was", chosen: " warm.", rejected: " very very cold and dark." },
    ];
    const t = new DPOTrainer({
      model,
      args: { ...base, outputDir: join(root, "stories"), maxSteps: 2, perDeviceTrainBatchSize: 3, learningRate: 1e-3 },
      trainDataset: rows,
      processingClass: tok,
    });
    await t.train();
    expect(t.trainRows).toHaveLength(3);
    const r0 = t.trainRows[0]!;
    expect(r0.promptIds[0]).toBe(tok.bosTokenId);
    expect(r0.chosenIds.at(-1)).toBe(tok.eosTokenId);
    const logs = trainLogs(t.state.logHistory);
    expect(Math.abs(logs[0]!["loss"]! - Math.LN2)).toBeLessThan(1e-6);
    // logps/chosen of step 1 equals the fused log-probs of the tokenised rows under the base model
    const fresh = await AutoModelForCausalLM.fromPretrained(dir);
    const expected = t.trainRows.map((r) => handLogp(fresh, r.promptIds, r.chosenIds));
    expect(logs[0]!["logps/chosen"]).toBeCloseTo(expected.reduce((a, b) => a + b, 0) / 3, 4);
    t.dispose();
    model.dispose();
    fresh.dispose();
  });
});

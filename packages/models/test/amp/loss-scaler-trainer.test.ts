// AMP's DynamicLossScaler inside a real DPOTrainer run (through core's GradientHook), on a tiny model.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Callback, type Loss, lossPlugin, type Plugin, Rng, type TokenizedPreference, tf } from "@prefkit/core";
import { DPO_LOSSES, type DPOLossInputs, DPOTrainer } from "@prefkit/losses";
import { AmpPlugin, AutoModelForCausalLM, LossScalerHook } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_LLAMA } from "../../../../test/helpers/tiny-llama.js";

const TINY = TINY_LLAMA;

function pairs(n: number, seed: number): TokenizedPreference[] {
  const r = new Rng(seed);
  const seq = (len: number, parity: number) => Array.from({ length: len }, () => 2 + 2 * r.int(7) + parity);
  return Array.from({ length: n }, () => ({
    promptIds: [1, 2 + r.int(14), 2 + r.int(14)],
    chosenIds: seq(1 + r.int(3), 0),
    rejectedIds: seq(1 + r.int(3), 1),
  }));
}

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-amp-trainer-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The sigmoid DPO loss whose BACKWARD pass overflows (gradient × ∞) on `overflowStep`: what fp16 does. */
function overflowingSigmoid(current: { step: number }, overflowStep: number) {
  return (cfg: object): Loss<DPOLossInputs> => {
    const inner = DPO_LOSSES.sigmoid(cfg);
    const blowUp = tf.customGrad((x: tf.Tensor) => ({
      value: tf.clone(x),
      gradFunc: (dy: tf.Tensor) => tf.mul(dy, current.step === overflowStep ? Number.POSITIVE_INFINITY : 1),
    })) as (x: tf.Tensor) => tf.Tensor;
    return {
      name: "overflowing-sigmoid",
      compute: (x) => {
        const out = inner.compute(x);
        return { ...out, loss: blowUp(out.loss) as tf.Scalar };
      },
    };
  };
}

interface RunResult {
  losses: number[];
  logs: Array<Record<string, number>>;
  weights: Float32Array[][]; // per step: every trainable variable
  scales: number[];
  skipped: DPOTrainer["skippedSteps"];
  iterations: number;
}

async function run(name: string, plugins: Plugin[], amp?: AmpPlugin, lossType = "sigmoid"): Promise<RunResult> {
  const model = AutoModelForCausalLM.fromConfig(TINY, { seed: 3 });
  const weights: Float32Array[][] = [model.trainableVariables().map((v) => (v.dataSync() as Float32Array).slice())];
  const scales: number[] = [];
  const probe: Callback = {
    onStepEnd: () => {
      weights.push(model.trainableVariables().map((v) => (v.dataSync() as Float32Array).slice()));
      if (amp) scales.push(amp.lossScaler.getScale());
    },
  };
  const t = new DPOTrainer({
    model,
    args: {
      outputDir: join(root, name),
      maxSteps: 5,
      perDeviceTrainBatchSize: 2,
      learningRate: 5e-2,
      loggingSteps: 1,
      saveStrategy: "no",
      lossType,
    },
    trainDataset: pairs(10, 5),
    callbacks: [probe],
    plugins,
  });
  await t.train();
  const logs = t.state.logHistory.filter((e) => "loss" in e);
  const out = {
    losses: logs.map((e) => e["loss"]!),
    logs,
    weights,
    scales,
    skipped: t.skippedSteps,
    iterations: (t.optimizer as unknown as { iterations: number }).iterations,
  };
  t.dispose();
  model.dispose();
  return out;
}

const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
/** Every variable equal byte for byte. */
const same = (a: Float32Array[], b: Float32Array[]) => a.every((x, i) => bytes(x).equals(bytes(b[i]!)));

describe("DynamicLossScaler in a DPOTrainer run (AmpPlugin → GradientHook)", () => {
  it("without overflow: the same losses and weights as the run without AMP; with an injected overflow: that step is skipped, the scale backs off, training goes on", async () => {
    const baseline = tf.memory().numTensors;
    const plain = await run("plain", []);
    expect(plain.losses[0]).toBeCloseTo(Math.LN2, 6);
    expect(plain.logs[0]).not.toHaveProperty("skipped_steps"); // no hook, no new metric

    const amp = new AmpPlugin({ lossScaler: { enabled: true, growthInterval: 2 } });
    expect(amp.gradientHook).toBeInstanceOf(LossScalerHook);
    const scaled = await run("amp", [amp], amp);
    expect(scaled.losses).toHaveLength(5);
    for (let i = 0; i < 5; i++) expect(Math.abs(scaled.losses[i]! - plain.losses[i]!)).toBeLessThan(1e-6);
    for (let i = 0; i < 5; i++) {
      expect(Math.abs(scaled.logs[i]!["grad_norm"]! - plain.logs[i]!["grad_norm"]!)).toBeLessThan(1e-6);
    }
    // power-of-two scaling is exact in float32: the weights match bit for bit
    expect(same(scaled.weights[5]!, plain.weights[5]!)).toBe(true);
    expect(scaled.scales).toEqual([65536, 131072, 131072, 262144, 262144]); // grows every 2 finite steps
    expect(scaled.skipped).toEqual([]);
    expect(scaled.logs.map((e) => e["skipped_steps"])).toEqual([0, 0, 0, 0, 0]);

    // the overflowing loss is registered by a plugin; a callback tells it which step is being computed
    const current = { step: 0 };
    const amp2 = new AmpPlugin({ lossScaler: { enabled: true, growthInterval: 2 } });
    const model = AutoModelForCausalLM.fromConfig(TINY, { seed: 3 });
    const weights: Float32Array[][] = [];
    const scales: number[] = [];
    const t = new DPOTrainer({
      model,
      args: {
        outputDir: join(root, "overflow"),
        maxSteps: 5,
        perDeviceTrainBatchSize: 2,
        learningRate: 5e-2,
        loggingSteps: 1,
        saveStrategy: "no",
        lossType: "overflowing-sigmoid",
      },
      trainDataset: pairs(10, 5),
      callbacks: [
        {
          onStepBegin: (_args, state) => {
            current.step = state.globalStep + 1;
          },
          onStepEnd: () => {
            weights.push(model.trainableVariables().map((v) => (v.dataSync() as Float32Array).slice()));
            scales.push(amp2.lossScaler.getScale());
          },
        },
      ],
      plugins: [lossPlugin("overflowing-sigmoid", overflowingSigmoid(current, 3)), amp2],
    });
    await t.train();
    const logs = t.state.logHistory.filter((e) => "loss" in e);
    // steps 1–2 are the plain run's; step 3's forward is too (its backward overflowed)
    for (let i = 0; i < 3; i++) expect(Math.abs(logs[i]!["loss"]! - plain.losses[i]!)).toBeLessThan(1e-6);
    expect(same(weights[1]!, plain.weights[2]!)).toBe(true);
    // step 3 skipped: weights unchanged, grad_norm not finite, counted, scale backed off, schedule held
    expect(same(weights[2]!, weights[1]!)).toBe(true);
    expect(Number.isFinite(logs[2]!["grad_norm"]!)).toBe(false);
    expect(t.skippedSteps).toEqual([
      {
        step: 3,
        hook: "amp.lossScaler",
        reason: "step 3: inf/NaN gradients at loss scale 131072; skipping the step and backing off to 65536",
      },
    ]);
    expect(logs.map((e) => e["skipped_steps"])).toEqual([0, 0, 1, 1, 1]);
    expect(scales).toEqual([65536, 131072, 65536, 65536, 131072]);
    expect(logs[2]!["learning_rate"]).toBe(logs[1]!["learning_rate"]);
    expect(logs[3]!["learning_rate"]).toBeLessThan(logs[2]!["learning_rate"]!);
    // training continues: steps 4 and 5 update the weights; the optimizer ran 4 times
    expect(same(weights[3]!, weights[2]!)).toBe(false);
    expect(same(weights[4]!, weights[3]!)).toBe(false);
    expect((t.optimizer as unknown as { iterations: number }).iterations).toBe(4);
    expect(t.state.globalStep).toBe(5);
    expect(logs.every((e) => Number.isFinite(e["loss"]!))).toBe(true);
    t.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });
});

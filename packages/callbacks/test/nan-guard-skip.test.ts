// NanGuardCallback with action "skip": a real DPOTrainer run on a tiny model, a NaN injected at step 2.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Loss, lossPlugin, Rng, type TokenizedPreference, tf } from "@prefkit/core";
import { DPO_LOSSES, type DPOLossInputs, DPOTrainer } from "@prefkit/losses";
import { AutoModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_LLAMA } from "../../../test/helpers/tiny-llama.js";
import { NanGuardCallback } from "../src/index.js";

const TINY = TINY_LLAMA;

function pairs(n: number): TokenizedPreference[] {
  const r = new Rng(5);
  const seq = (len: number, parity: number) => Array.from({ length: len }, () => 2 + 2 * r.int(7) + parity);
  return Array.from({ length: n }, () => ({
    promptIds: [1, 2 + r.int(14)],
    chosenIds: seq(1 + r.int(3), 0),
    rejectedIds: seq(1 + r.int(3), 1),
  }));
}

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-nan-guard-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const snapshot = (vars: tf.Variable[]) => vars.map((v) => Array.from(v.dataSync()));

describe("NanGuardCallback action skip", () => {
  it("skips the step whose loss is NaN before its update, names the step, and training goes on", async () => {
    const baseline = tf.memory().numTensors;
    const current = { step: 0 };
    // the sigmoid DPO loss, times NaN on step 2
    const nanAtStep2 = (cfg: object): Loss<DPOLossInputs> => {
      const inner = DPO_LOSSES.sigmoid(cfg);
      return {
        name: "nan-at-2",
        compute: (x) => {
          const out = inner.compute(x);
          return current.step === 2 ? { ...out, loss: tf.mul(out.loss, Number.NaN) as tf.Scalar } : out;
        },
      };
    };
    const messages: string[] = [];
    const guard = new NanGuardCallback({ action: "skip", report: (m) => messages.push(m) });
    expect(guard.gradientHook?.name).toBe("NanGuardCallback");
    expect(new NanGuardCallback().gradientHook).toBeUndefined();
    const model = AutoModelForCausalLM.fromConfig(TINY, { seed: 3 });
    const weights: number[][][] = [snapshot(model.trainableVariables())];
    const t = new DPOTrainer({
      model,
      args: {
        outputDir: join(root, "skip"),
        maxSteps: 4,
        perDeviceTrainBatchSize: 2,
        learningRate: 5e-2,
        loggingSteps: 1,
        saveStrategy: "no",
        lossType: "nan-at-2",
      },
      trainDataset: pairs(8),
      callbacks: [
        guard,
        {
          onStepBegin: (_a, state) => {
            current.step = state.globalStep + 1;
          },
          onStepEnd: () => {
            weights.push(snapshot(model.trainableVariables()));
          },
        },
      ],
      plugins: [lossPlugin("nan-at-2", nanAtStep2)],
    });
    await t.train();
    const logs = t.state.logHistory.filter((e) => "loss" in e);
    expect(t.state.globalStep).toBe(4); // not stopped
    expect(messages).toEqual([
      "NanGuardCallback: step 2: loss is NaN (grad_norm=NaN); skipping the step (weights unchanged)",
    ]);
    expect(guard.events).toEqual([
      { step: 2, metric: "loss", value: Number.NaN, message: messages[0], action: "skip" },
      { step: 2, metric: "grad_norm", value: Number.NaN, message: messages[0], action: "skip" },
    ]);
    expect(t.skippedSteps).toEqual([{ step: 2, hook: "NanGuardCallback", reason: messages[0] }]);
    expect(logs.map((e) => e["skipped_steps"])).toEqual([0, 1, 1, 1]);
    // step 2 left the weights as they were; steps 1, 3 and 4 moved them, and nothing became NaN
    expect(weights[2]).toEqual(weights[1]);
    expect(weights[1]).not.toEqual(weights[0]);
    expect(weights[3]).not.toEqual(weights[2]);
    expect(weights[4]!.flat().every(Number.isFinite)).toBe(true);
    expect(Number.isFinite(logs[3]!["loss"]!)).toBe(true);
    expect((t.optimizer as unknown as { iterations: number }).iterations).toBe(3);
    t.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });
});

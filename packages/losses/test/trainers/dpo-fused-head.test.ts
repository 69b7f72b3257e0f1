/**
 * DPOTrainer through core's chunked fused LM head (`fusedSequenceLogProbs`, used when the model has a
 * plain head) against the logits path (the same model behind a wrapper without `lmHeadWeight`): same
 * losses, TRL metrics and weights over 3 steps.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CausalLM, hasFusedHead, tf } from "@prefkit/core";
import { DPOTrainer } from "@prefkit/losses";
import type { PreTrainedModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { makePairs, maxWeightDiff, tinyModel, trainLogs, weightsOf } from "./helpers.js";

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-dpo-fused-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The model as a bare `CausalLM`: no forwardHidden/lmHeadWeight, so trainers take the logits path. */
function logitsOnly(model: PreTrainedModelForCausalLM): CausalLM {
  return {
    config: model.config,
    forward: (inputs) => model.forward(inputs),
    namedParameters: () => model.namedParameters(),
    trainableVariables: () => model.trainableVariables(),
    savePretrained: (dir) => model.savePretrained(dir),
    dispose: () => model.dispose(),
  };
}

describe("DPOTrainer with the fused LM head", () => {
  it("gives the same losses, metrics and weights as the logits path over 3 steps (1e-5)", async () => {
    const pairs = makePairs(6, 5);
    const before = tf.memory().numTensors;
    const run = async (fused: boolean) => {
      const model = tinyModel(4);
      const ref = model.frozenCopy();
      const policy = fused ? model : logitsOnly(model);
      const refModel = fused ? ref : logitsOnly(ref);
      expect(hasFusedHead(policy)).toBe(fused);
      expect(hasFusedHead(refModel)).toBe(fused);
      const spy = vi.spyOn(model, "forward");
      const refSpy = vi.spyOn(ref, "forward");
      const trainer = new DPOTrainer({
        model: policy,
        refModel,
        args: {
          outputDir: join(root, fused ? "fused" : "logits"),
          saveStrategy: "no",
          loggingSteps: 1,
          learningRate: 5e-2,
          lrSchedulerType: "constant",
          maxSteps: 3,
          perDeviceTrainBatchSize: 2,
          beta: 0.1,
        },
        trainDataset: pairs,
      });
      await trainer.train();
      // the fused path (the chunked head, or the native decoder's direct pass) is really used for the
      // policy (with gradient) and for the reference: no logits forward
      expect(spy.mock.calls.length === 0).toBe(fused);
      expect(refSpy.mock.calls.length === 0).toBe(fused);
      const logs = trainLogs(trainer.state.logHistory);
      const weights = weightsOf(model);
      trainer.dispose();
      ref.dispose();
      model.dispose();
      return { logs, weights };
    };
    const a = await run(true);
    const b = await run(false);
    expect(a.logs).toHaveLength(3);
    expect(b.logs).toHaveLength(3);
    const keys = Object.keys(b.logs[0]!).sort();
    expect(Object.keys(a.logs[0]!).sort()).toEqual(keys);
    for (const k of ["loss", "entropy", "logits/chosen", "logits/rejected", "mean_token_accuracy", "logps/chosen"]) {
      expect(keys, k).toContain(k);
    }
    for (let step = 0; step < 3; step++) {
      for (const k of keys) {
        expect(Math.abs(a.logs[step]![k]! - b.logs[step]![k]!), `step ${step} ${k}`).toBeLessThanOrEqual(1e-5);
      }
    }
    // training moved the loss away from ln 2, so the comparison covers real updates
    expect(Math.abs(a.logs[2]!["loss"]! - Math.LN2)).toBeGreaterThan(1e-3);
    expect(maxWeightDiff(a.weights, b.weights)).toBeLessThanOrEqual(1e-5);
    expect(tf.memory().numTensors).toBe(before);
  });
});

// Written as a user would, outside the packages: a typed custom loss trained by name through the
// composition root, a user optimizer and callback picked up from the container, and two runs in one process.
import {
  AdamW,
  type Callback,
  CALLBACKS,
  ConfigError,
  defineLoss,
  lossPlugin,
  OPTIMIZER,
  Rng,
  type TokenizedPreference,
  tf,
} from "@prefkit/core";
import { createTrainer } from "@prefkit/losses";
import { container } from "tsyringe";
import { AutoModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_LLAMA } from "../helpers/tiny-llama.js";

beforeAll(async () => {
  await tf.setBackend("cpu");
});

/** "Margin DPO": softplus(γ − β·Δ), with TRL's implicit rewards returned so rewards/* come for free. */
const marginDpo = defineLoss("margin_dpo", "preference", (x, config: { beta: number }) => {
  const chosen = tf.mul(tf.sub(x.chosenLogps, x.refChosenLogps), config.beta) as tf.Tensor1D;
  const rejected = tf.mul(tf.sub(x.rejectedLogps, x.refRejectedLogps), config.beta) as tf.Tensor1D;
  const z = tf.sub(tf.sub(chosen, rejected), 0.5);
  const loss = tf.mean(tf.softplus(tf.neg(z))) as tf.Scalar;
  return { loss, rewards: { chosen, rejected }, metrics: { "margin_dpo/satisfied": tf.mean(tf.step(z)) as tf.Scalar } };
});

function pairs(n: number): TokenizedPreference[] {
  const r = new Rng(5);
  return Array.from({ length: n }, () => ({
    promptIds: [1, 2 + r.int(14)],
    chosenIds: [2 + 2 * r.int(7), 2 + 2 * r.int(7)],
    rejectedIds: [3 + 2 * r.int(7)],
  }));
}

const args = {
  outputDir: "runs/unused",
  saveStrategy: "no" as const,
  lossType: "margin_dpo",
  beta: 0.5,
  maxSteps: 6,
  loggingSteps: 1,
  perDeviceTrainBatchSize: 4,
  learningRate: 2e-2,
};

/** A user optimizer: AdamW that counts its steps. */
class CountingAdamW extends AdamW {
  steps = 0;
  override applyGradients(grads: tf.NamedTensorMap | tf.NamedTensor[]): void {
    this.steps++;
    super.applyGradients(grads);
  }
}

const models: Array<{ dispose(): void }> = [];
afterAll(() => {
  for (const m of models) m.dispose();
});

describe("the composition root, as user code", () => {
  it("trains a typed custom loss registered once by name, with rewards/* logged from its rewards", async () => {
    const model = AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 3 });
    models.push(model);
    const trainer = createTrainer("dpo", { model, args, trainDataset: pairs(8), plugins: [lossPlugin(marginDpo)] });
    await trainer.train();
    const logs = trainer.state.logHistory.filter((e) => "loss" in e);
    expect(logs).toHaveLength(6);
    // Step 1: policy = frozen-copy reference, so rewards are 0 and the loss is softplus(0.5).
    expect(logs[0]!["loss"]).toBeCloseTo(Math.log1p(Math.exp(0.5)), 6);
    for (const k of ["rewards/chosen", "rewards/rejected", "rewards/margins"]) expect(logs[0]![k]).toBe(0);
    expect(logs[0]!["rewards/accuracies"]).toBe(0);
    expect(logs[0]!["margin_dpo/satisfied"]).toBe(0);
    // It learns: the margin grows and the loss falls.
    expect(logs[5]!["rewards/margins"]).toBeGreaterThan(0.1);
    expect(logs[5]!["loss"]).toBeLessThan(logs[0]!["loss"]!);
    // margins = chosen − rejected, as TRL logs it
    expect(logs[5]!["rewards/margins"]).toBeCloseTo(logs[5]!["rewards/chosen"]! - logs[5]!["rewards/rejected"]!, 6);
  });

  it("picks up a user optimizer and callback from the container; two runs share no instances", async () => {
    const parent = container.createChildContainer();
    parent.register(OPTIMIZER, { useFactory: () => new CountingAdamW({ learningRate: 2e-2 }) });
    const steps: number[] = [];
    const cb: Callback = { onStepEnd: (_a, s) => void steps.push(s.globalStep) };
    parent.register(CALLBACKS, { useValue: cb });

    const make = () => {
      const model = AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 3 });
      models.push(model);
      return createTrainer("dpo", {
        model,
        args: { ...args, maxSteps: 3 },
        trainDataset: pairs(8),
        plugins: [lossPlugin(marginDpo)],
        container: parent,
      });
    };
    const a = make();
    const b = make();
    expect(a.optimizer).toBeInstanceOf(CountingAdamW);
    expect(a.optimizer).not.toBe(b.optimizer);
    expect(a.task).not.toBe(b.task);
    expect(a.callbackHandler.callbacks).toContain(cb);
    await a.train();
    expect((a.optimizer as CountingAdamW).steps).toBe(3);
    expect((b.optimizer as CountingAdamW).steps).toBe(0);
    expect(steps).toEqual([1, 2, 3]);
    await b.train();
    expect((b.optimizer as CountingAdamW).steps).toBe(3);
    // Same seed, same data, separate instances: the two runs log the same losses.
    const losses = (t: typeof a) => t.state.logHistory.filter((e) => "loss" in e).map((e) => e["loss"]);
    expect(losses(b)).toEqual(losses(a));
    // A plugin's loss belongs to its run only: without the plugin the name is unknown.
    const model = AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 3 });
    models.push(model);
    expect(() => createTrainer("dpo", { model, args, trainDataset: pairs(8), container: parent })).toThrow(ConfigError);
  });
});

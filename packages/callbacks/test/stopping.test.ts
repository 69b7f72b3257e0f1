import { describe, expect, it } from "vitest";
import { EarlyStoppingCallback, NanGuardCallback } from "../src/index.js";
import { harness } from "./helpers.js";

describe("EarlyStoppingCallback", () => {
  it("stops after `patience` evaluations that do not beat the best by more than the threshold", async () => {
    const cb = new EarlyStoppingCallback({ patience: 2, threshold: 0.01 });
    const h = harness([cb]);
    const seen: boolean[] = [];
    for (const loss of [1.0, 0.9, 0.895, 0.95, 0.8]) {
      await h.step();
      await h.evaluate({ eval_loss: loss });
      seen.push(h.control.shouldTrainingStop);
    }
    // 0.9 improves; 0.895 is within the threshold (1 bad); 0.95 is worse (2 bad) → stop; 0.8 then improves.
    expect(seen).toEqual([false, false, false, true, true]);
    expect(cb.getState()).toMatchObject({ best: 0.8, badEvaluations: 0, stoppedAtStep: 4 });
  });

  it("honours greaterIsBetter and metricForBestModel, and restores its counter", async () => {
    const cb = new EarlyStoppingCallback({ patience: 1 });
    const h = harness([cb], { metricForBestModel: "rewards/accuracies" });
    await h.evaluate({ "eval_rewards/accuracies": 0.5 });
    await h.evaluate({ "eval_rewards/accuracies": 0.75 });
    expect(h.control.shouldTrainingStop).toBe(false);
    const restored = new EarlyStoppingCallback({ patience: 1 });
    restored.loadState(cb.getState());
    const h2 = harness([restored], { metricForBestModel: "rewards/accuracies" });
    await h2.evaluate({ "eval_rewards/accuracies": 0.7 });
    expect(h2.control.shouldTrainingStop).toBe(true);
  });

  it("names a missing metric and bad options", async () => {
    const h = harness([new EarlyStoppingCallback({ metric: "margin" })]);
    await expect(h.evaluate({ eval_loss: 1 })).rejects.toThrow(
      /metric "eval_margin" not in the evaluation \(eval_loss\)/,
    );
    expect(() => new EarlyStoppingCallback({ patience: 0 })).toThrow(
      'field "patience": must be an integer >= 1, got 0',
    );
  });
});

describe("NanGuardCallback", () => {
  it("stops with a message naming the step and the metric", async () => {
    const messages: string[] = [];
    const cb = new NanGuardCallback({ report: (m) => messages.push(m) });
    const h = harness([cb]);
    await h.step({ loss: 0.7, grad_norm: 1 });
    expect(h.control.shouldTrainingStop).toBe(false);
    await h.step({ loss: 0.6, grad_norm: Number.POSITIVE_INFINITY });
    expect(h.control.shouldTrainingStop).toBe(true);
    expect(messages).toEqual(["NanGuardCallback: step 2: grad_norm is Infinity (loss=0.6); stopping training"]);
    expect(cb.events).toEqual([
      { step: 2, metric: "grad_norm", value: Number.POSITIVE_INFINITY, message: messages[0] },
    ]);
  });

  it("warns and goes on with action warn", async () => {
    const messages: string[] = [];
    const h = harness([new NanGuardCallback({ action: "warn", report: (m) => messages.push(m) })]);
    await h.step({ loss: Number.NaN, grad_norm: Number.NaN });
    expect(h.control.shouldTrainingStop).toBe(false);
    expect(messages).toEqual(["NanGuardCallback: step 1: loss is NaN (grad_norm=NaN); continuing"]);
  });
});

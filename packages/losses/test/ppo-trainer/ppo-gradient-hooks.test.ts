/**
 * PPO's optimizer steps run through the generic trainer's gradient step: a gradient hook sees every
 * mini-batch step of every update (loss scaling as AMP's scaler does it, and vetoes as the NaN guard's).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GradientHook, type GradientStepOutcome, type Plugin, tf } from "@prefkit/core";
import type { PPOTrainer } from "@prefkit/losses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePPOTrainer } from "./setup.js";
import { withoutTimes } from "../helpers.js";

let dir: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  dir = await mkdtemp(join(tmpdir(), "prefkit-ppo-hooks-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const hookPlugin = (hook: GradientHook): Plugin => ({
  name: `hook:${hook.name}`,
  register: (context) => context.addGradientHook(hook),
});
const weights = (t: PPOTrainer) => t.policyAndValue.trainableVariables().map((v) => Array.from(v.dataSync()));
const trainingLogs = (t: PPOTrainer) =>
  t.state.logHistory.filter((e) => "objective/kl" in e).map(({ skipped_steps: _s, ...rest }) => withoutTimes(rest));
const dispose = (t: PPOTrainer) => {
  t.dispose();
  t.policyAndValue.policy.dispose();
};

// BASE: 2 PPO epochs × 2 mini-batches = 4 optimizer steps per update; 2 updates.
const STEPS_PER_UPDATE = 4;

describe("PPOTrainer gradient hooks", () => {
  it("a loss scale of 2¹⁰ (unscaled again, as AMP's scaler) is applied to every mini-batch step and changes no number", async () => {
    const plain = makePPOTrainer(dir, {}, { maxSteps: 2 });
    await plain.train();
    const outcomes: GradientStepOutcome[] = [];
    let scaled = 0;
    const scaler: GradientHook = {
      name: "scale-1024",
      lossScale: () => {
        scaled++;
        return 1024;
      },
      unscaleGradients: (grads) =>
        tf.tidy(() => Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.div(g, 1024)]))),
      afterStep: (o) => void outcomes.push(o),
    };
    const t = makePPOTrainer(dir, { plugins: [hookPlugin(scaler)] }, { maxSteps: 2 });
    await t.train();
    expect(scaled).toBe(2 * STEPS_PER_UPDATE);
    expect(outcomes.map((o) => [o.step, o.applied])).toEqual([
      ...Array.from({ length: STEPS_PER_UPDATE }, () => [1, true]),
      ...Array.from({ length: STEPS_PER_UPDATE }, () => [2, true]),
    ]);
    // a power-of-two scale is exact: the same gradients, weights and logged numbers as without the hook
    expect(weights(t)).toEqual(weights(plain));
    expect(trainingLogs(t)).toEqual(trainingLogs(plain));
    expect(t.state.logHistory.filter((e) => "objective/kl" in e).map((e) => e["skipped_steps"])).toEqual([0, 0]);
    dispose(plain);
    dispose(t);
  });

  it("a veto skips exactly that mini-batch step (weights unchanged, no optimizer step) and PPO goes on", async () => {
    let seen = 0;
    const snapshots: number[][][] = [];
    let t: PPOTrainer | undefined;
    const vetoThird: GradientHook = {
      name: "veto-third",
      vetoStep: () => (++seen === 3 ? "third mini-batch step" : undefined),
      afterStep: () => void snapshots.push(weights(t!)),
    };
    t = makePPOTrainer(dir, { plugins: [hookPlugin(vetoThird)] }, { maxSteps: 2 });
    const initial = weights(t);
    await t.train();
    expect(seen).toBe(2 * STEPS_PER_UPDATE);
    expect(snapshots[0]).not.toEqual(initial);
    expect(snapshots[1]).not.toEqual(snapshots[0]);
    expect(snapshots[2]).toEqual(snapshots[1]); // the vetoed step left the weights alone
    expect(snapshots[3]).not.toEqual(snapshots[2]);
    expect(snapshots[7]!.flat().every(Number.isFinite)).toBe(true);
    expect(t.skippedSteps).toEqual([{ step: 1, hook: "veto-third", reason: "third mini-batch step" }]);
    expect((t.optimizer as unknown as { iterations: number }).iterations).toBe(2 * STEPS_PER_UPDATE - 1);
    expect(t.state.logHistory.filter((e) => "objective/kl" in e).map((e) => e["skipped_steps"])).toEqual([1, 1]);
    expect(t.state.globalStep).toBe(2);
    dispose(t);
  });
});

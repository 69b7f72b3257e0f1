/**
 * GRPOTrainer and RLOOTrainer end to end on a tiny random Llama with a rule reward: TRL's metric names,
 * each prompt's completions consecutive, a flat tensor count, β = 0 without any reference model, rewards
 * that rise, exact resume, createTrainer, evaluate().
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Callback, type Trainer, type TrainingArgs, tf } from "@prefkit/core";
import { createTrainer, GroupRolloutTask } from "@prefkit/losses";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { BASE, countF, type Method, makeTrainer, policy, prompts, tokenizer, updateLogs } from "./setup.js";
import { withoutTimes } from "../helpers.js";

let dir: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  dir = await mkdtemp(join(tmpdir(), "prefkit-group-rollout-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const METRICS = [
  "reward",
  "reward_std",
  "rewards/countF/mean",
  "rewards/countF/std",
  "frac_reward_zero_std",
  "completions/mean_length",
  "completions/min_length",
  "completions/max_length",
  "completions/clipped_ratio",
  "completions/mean_terminated_length",
  "entropy",
  "clip_ratio/low_mean",
  "clip_ratio/high_mean",
  "clip_ratio/region_mean",
  "loss",
  "grad_norm",
  "learning_rate",
  "num_tokens",
];

const weightsOf = (t: { model: { namedParameters(): Map<string, tf.Variable> } }) =>
  [...t.model.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())] as const);

describe.each(["grpo", "rloo"] as const)("%s trainer", (method: Method) => {
  it("logs TRL's metrics, keeps each prompt's completions consecutive, a flat tensor count", async () => {
    const before = tf.memory().numTensors;
    const model = policy();
    const counts: number[] = [];
    const trainer = makeTrainer(method, dir, { model }, { maxSteps: 4, beta: 0.04 });
    trainer.addCallback({ onStepEnd: () => void counts.push(tf.memory().numTensors) } as Callback<TrainingArgs>);
    await trainer.train();
    const logs = updateLogs(trainer.state.logHistory);
    expect(logs).toHaveLength(4);
    for (const name of [...METRICS, "kl"]) for (const l of logs) expect(Number.isFinite(l[name]), name).toBe(true);
    expect(trainer.rewardFunctionNames).toEqual(["countF"]);
    const r = trainer.lastRollout!;
    expect(r.promptIds).toHaveLength(BASE.perDeviceTrainBatchSize * BASE.gradientAccumulationSteps);
    for (let g = 0; g < r.promptIds.length; g += BASE.numGenerations) {
      for (let k = 1; k < BASE.numGenerations; k++) expect(r.promptIds[g + k]).toEqual(r.promptIds[g]);
    }
    expect(new Set(r.promptIds.map((p) => p.join())).size).toBe(2); // 2 prompts per update
    // Two micro-batches of 4 rows, covering every completion once.
    const micro = trainer.groupTask.lastMicroBatches!;
    expect(micro.map((m) => m.rows.length)).toEqual([4, 4]);
    expect(micro.flatMap((m) => m.rows).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(logs.map((l) => l["epoch"])).toEqual([0.125, 0.25, 0.375, 0.5]); // 8 updates per epoch of 16 prompts
    expect(new Set(counts.slice(1)).size).toBe(1);
    trainer.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("beta 0 loads no reference model: no frozen copy, no reference pass, no kl", async () => {
    const model = policy();
    const copies = vi.spyOn(model, "frozenCopy");
    const t = makeTrainer(method, dir, { model }, { maxSteps: 2, beta: 0 });
    expect(t.reference).toBeUndefined();
    await t.train();
    expect(copies).not.toHaveBeenCalled();
    expect(t.lastRollout!.refLogprobs).toBeUndefined();
    for (const l of updateLogs(t.state.logHistory)) expect("kl" in l).toBe(false);
    t.dispose();
    // With β > 0 the reference is one frozen copy, taken when the trainer is built.
    const withKl = makeTrainer(method, dir, { model }, { maxSteps: 1, beta: 0.1 });
    expect(copies).toHaveBeenCalledTimes(1);
    expect(withKl.reference?.owned).toBeDefined();
    withKl.dispose();
    model.dispose();
  });

  it("raises the reward on a learnable toy reward (count the f)", async () => {
    const t = makeTrainer(
      method,
      dir,
      {},
      { maxSteps: 12, perDeviceTrainBatchSize: 8, gradientAccumulationSteps: 1, learningRate: 1e-2 },
    );
    await t.train();
    const rewards = updateLogs(t.state.logHistory).map((l) => l["reward"]!);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(rewards.slice(-4))).toBeGreaterThan(mean(rewards.slice(0, 4)) + 1.5);
    t.dispose();
  });

  it("resumes exactly: 4 updates straight equal 2, save, resume, 2 (numIterations 2, β > 0)", async () => {
    const out = join(dir, `resume-${method}`);
    const args = { maxSteps: 4, saveStrategy: "steps", saveSteps: 2, outputDir: out, numIterations: 2, beta: 0.04 };
    const a = makeTrainer(method, dir, {}, args);
    await a.train();
    const b = makeTrainer(method, dir, {}, { ...args, outputDir: join(dir, `resume-${method}-b`) });
    await b.train({ resumeFromCheckpoint: join(out, "checkpoint-2") });
    const wb = new Map(weightsOf(b));
    let worst = 0;
    for (const [k, w] of weightsOf(a))
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i]! - wb.get(k)![i]!));
    expect(worst).toBeLessThan(1e-6);
    const logsA = updateLogs(a.state.logHistory);
    const logsB = updateLogs(b.state.logHistory).slice(-2);
    for (const [i, l] of logsB.entries()) {
      for (const name of ["loss", "reward", "kl", "entropy", "clip_ratio/region_mean", "completions/mean_length"]) {
        expect(l[name], name).toBeCloseTo(logsA[i + 2]![name]!, 6);
      }
    }
    for (const t of [a, b]) {
      t.dispose();
      (t.model as unknown as { dispose(): void }).dispose();
    }
  });

  it(`createTrainer("${method}", options) composes the same run as the façade`, async () => {
    const options = () => ({
      model: policy(),
      rewardFuncs: countF,
      trainDataset: prompts(16),
      processingClass: tokenizer,
      args: { ...BASE, outputDir: join(dir, "create"), maxSteps: 2 },
    });
    const viaFacade = makeTrainer(method, dir, options(), options().args);
    const generic = createTrainer(method, options());
    expect(generic.task).toBeInstanceOf(GroupRolloutTask);
    await viaFacade.train();
    await generic.train();
    const logs = (t: Trainer<unknown, TrainingArgs>) => t.state.logHistory.map(withoutTimes);
    expect(logs(generic)).toEqual(logs(viaFacade as unknown as Trainer<unknown, TrainingArgs>));
    viaFacade.dispose();
    generic.optimizer.dispose();
    (generic.task as GroupRolloutTask).options.reference?.owned?.dispose(); // RLOO's frozen copy (β 0.05)
  });

  it("evaluate(): numGenerations seeded samples per held-out prompt, the same numbers twice", async () => {
    const t = makeTrainer(method, dir, { evalDataset: prompts(3, 11) }, { maxSteps: 1 });
    const first = await t.evaluate();
    expect(Object.keys(first)).toEqual(
      expect.arrayContaining(["eval_reward", "eval_rewards/countF/mean", "eval_completions/mean_length"]),
    );
    expect(await t.evaluate()).toEqual(first);
    t.dispose();
  });
});

/**
 * GRPOTrainer's numbers by hand: the first update's rewards, advantages and loss (with numIterations 1 the
 * ratio is 1, so each aggregation's value follows from the advantages and the completion lengths); several
 * reward functions (weights, null, async, dataset columns, plugins); maskTruncatedCompletions; topK; a user's
 * "group-rollout" loss; reward functions from a module; config errors.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, defineLoss, lossPlugin, tf } from "@prefkit/core";
import {
  GRPO_LOSS_TYPES,
  type GRPOLossType,
  groupAdvantages,
  loadRewardFunctions,
  type RewardFunction,
  rewardFunctionPlugin,
} from "@prefkit/losses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BASE, countF, EOS, makeTrainer, PAD, prompts, tokenizer, updateLogs } from "./setup.js";

let dir: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  dir = await mkdtemp(join(tmpdir(), "prefkit-grpo-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const decode = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });

/** The first update of a GRPO run with `args`: its log entry, rollout and micro-batches. */
async function firstUpdate(args: Record<string, unknown>, extra: Parameters<typeof makeTrainer>[2] = {}) {
  const t = makeTrainer("grpo", dir, extra, { maxSteps: 1, ...args });
  await t.train();
  const out = {
    log: updateLogs(t.state.logHistory)[0]!,
    rollout: t.lastRollout!,
    micro: t.groupTask.lastMicroBatches!,
  };
  t.dispose();
  return out;
}

describe("GRPOTrainer, first update by hand", () => {
  it.each(GRPO_LOSS_TYPES)(
    "lossType %s: rewards, group advantages and the loss (ratio 1)",
    async (lossType: GRPOLossType) => {
      const { log, rollout, micro } = await firstUpdate({ lossType });
      // Rewards: the rule on the decoded completions.
      const completions = rollout.responses.map((r, i) => decode(r.slice(0, rollout.validLengths[i])));
      const rewards = (await countF(completions, [], {} as never)) as number[];
      expect(rollout.rewards.map((r) => r[0])).toEqual(rewards);
      expect(log["reward"]).toBeCloseTo(sum(rewards) / rewards.length, 12);
      // Advantages: (R − group mean) / (group std + 1e-4), groups of numGenerations consecutive rows.
      const expected = groupAdvantages(rewards, BASE.numGenerations).advantages;
      rollout.advantages.forEach((a, i) => void expect(a).toBeCloseTo(expected[i]!, 12));
      // Loss with ratio 1: per token −A; aggregated as TRL, micro-batches accumulated by the trainer.
      const n = rollout.mask.map(sum);
      const A = rollout.advantages;
      const part = (rows: number[]) => -sum(rows.map((i) => A[i]! * n[i]!));
      const perMicro = micro.map(({ rows }) => {
        if (lossType === "grpo") return sum(rows.map((i) => -A[i]!)) / rows.length;
        if (lossType === "bnpo") return part(rows) / Math.max(sum(rows.map((i) => n[i]!)), 1);
        if (lossType === "dr_grpo") return part(rows) / (rows.length * BASE.maxCompletionLength);
        return part(rows); // dapo: Σ over the step / the step's tokens
      });
      const loss = lossType === "dapo" ? sum(perMicro) / sum(n) : sum(perMicro) / micro.length;
      expect(log["loss"]).toBeCloseTo(loss, 5);
      expect(log["clip_ratio/region_mean"]).toBe(0); // r = 1 exactly: π_old is πθ detached
      expect("kl" in log).toBe(false); // β = 0
      expect(log["completions/mean_length"]).toBeCloseTo(sum(rollout.generatedLengths) / 8, 12);
      const truncated = rollout.responses.map((r, i) => ![EOS, PAD].includes(r[rollout.generatedLengths[i]! - 1]!));
      expect(rollout.truncated).toEqual(truncated);
      expect(log["completions/clipped_ratio"]).toBeCloseTo(truncated.filter(Boolean).length / 8, 12);
    },
  );

  it("maskTruncatedCompletions leaves completions without eos out of the loss (not out of the rewards)", async () => {
    const { log, rollout } = await firstUpdate({ maskTruncatedCompletions: true, maxCompletionLength: 3 });
    expect(rollout.truncated.some(Boolean)).toBe(true);
    rollout.mask.forEach((row, i) => {
      expect(sum(row)).toBe(rollout.truncated[i] ? 0 : rollout.validLengths[i]);
    });
    const n = rollout.mask.map(sum);
    const expected = sum(n) === 0 ? 0 : -sum(rollout.advantages.map((a, i) => a * n[i]!)) / sum(n);
    expect(log["loss"]).toBeCloseTo(expected, 5);
    expect(log["completions/clipped_ratio"]).toBeGreaterThan(0);
  });

  it("topK 1 samples the argmax: a prompt's completions agree, so every advantage is 0", async () => {
    const { log, rollout } = await firstUpdate({ topK: 1 });
    for (let g = 0; g < 8; g += 4)
      for (let k = 1; k < 4; k++) expect(rollout.responses[g + k]).toEqual(rollout.responses[g]);
    expect(log["frac_reward_zero_std"]).toBe(1);
    expect(rollout.advantages.every((a) => a === 0)).toBe(true);
  });
});

describe("GRPOTrainer reward functions", () => {
  it("several functions: weights, null, async, the dataset's columns, each logged under its name", async () => {
    const rows = prompts(16).map((p, i) => ({ ...p, letter: i % 2 === 0 ? "f" : "g" }));
    const letters: RewardFunction = (completions, _prompts, { columns }) =>
      completions.map((c, i) => (c.includes(columns["letter"]![i] as string) ? 1 : 0));
    const longOnly: RewardFunction = async (completions) => completions.map((c) => (c.length >= 4 ? c.length : null));
    const { log, rollout } = await firstUpdate(
      { rewardWeights: [1, 0.5, 2] },
      { trainDataset: rows, rewardFuncs: { count_f: countF, letters, long_only: longOnly } },
    );
    const texts = rollout.responses.map((r, i) => decode(r.slice(0, rollout.validLengths[i])));
    const letter = rollout.promptIds.map((p) => rows.find((r) => r.inputIds.join() === p.join())!.letter);
    const matrix = texts.map((c, i) => [
      [...c].filter((ch) => ch === "f").length,
      c.includes(letter[i]!) ? 1 : 0,
      c.length >= 4 ? c.length : Number.NaN,
    ]);
    expect(rollout.rewards).toEqual(matrix);
    const column = (f: number) => matrix.map((r) => r[f]!).filter((x) => !Number.isNaN(x));
    expect(log["rewards/count_f/mean"]).toBeCloseTo(sum(column(0)) / 8, 12);
    expect(log["rewards/long_only/mean"]).toBeCloseTo(sum(column(2)) / column(2).length, 12);
    const weighted = groupAdvantages(
      matrix.map((r) => r.map((x) => (Number.isNaN(x) ? null : x))),
      4,
      { rewardWeights: [1, 0.5, 2] },
    );
    rollout.advantages.forEach((a, i) => void expect(a).toBeCloseTo(weighted.advantages[i]!, 12));
  });

  it("takes every function a rewardFunctionPlugin provided when rewardFuncs is omitted; refuses bad sets", async () => {
    const t = makeTrainer(
      "grpo",
      dir,
      { rewardFuncs: undefined, plugins: [rewardFunctionPlugin("count-f", countF)] },
      { maxSteps: 1 },
    );
    await t.train();
    expect(t.rewardFunctionNames).toEqual(["count-f"]);
    expect(updateLogs(t.state.logHistory)[0]!["rewards/count-f/mean"]).toBeDefined();
    t.dispose();
    const train = (extra: Parameters<typeof makeTrainer>[2], args = {}) => {
      const bad = makeTrainer("grpo", dir, extra, { maxSteps: 1, ...args });
      return bad.train().finally(() => bad.dispose());
    };
    await expect(train({ rewardFuncs: undefined })).rejects.toThrow(/no reward functions/);
    await expect(train({ rewardFuncs: ["nope"] })).rejects.toThrow(/unknown reward function "nope"/);
    await expect(train({ rewardFuncs: [countF, countF] })).rejects.toThrow(/two reward functions are named "countF"/);
    await expect(train({}, { rewardWeights: [1, 2] })).rejects.toThrow(/one weight per reward function/);
    await expect(train({ rewardFuncs: (c: string[]) => c.map(() => Number.NaN) })).rejects.toThrow(
      /a finite number or null/,
    );
  });

  it("loadRewardFunctions reads a module's exported functions (the CLI's --reward-funcs)", async () => {
    const file = join(dir, "rewards.mjs");
    await writeFile(
      file,
      "export const hasF = (c) => c.map((s) => (s.includes('f') ? 1 : 0));\n" +
        "export async function short(c) { return c.map((s) => (s.length < 4 ? 1 : null)); }\n" +
        "export const THRESHOLD = 4;\n",
    );
    const fns = await loadRewardFunctions(file);
    expect(fns.map((f) => f.name)).toEqual(["hasF", "short"]);
    expect(await fns[1]!.fn(["ab", "abcdef"], [], {} as never)).toEqual([1, null]);
    expect((await loadRewardFunctions(file, ["short"])).map((f) => f.name)).toEqual(["short"]);
    await expect(loadRewardFunctions(file, ["THRESHOLD"])).rejects.toThrow(/no exported function "THRESHOLD"/);
    await writeFile(join(dir, "none.mjs"), "export const x = 1;\n");
    await expect(loadRewardFunctions(join(dir, "none.mjs"))).rejects.toThrow(ConfigError);
    const t = makeTrainer(
      "grpo",
      dir,
      { plugins: fns.map((f) => rewardFunctionPlugin(f.name, f.fn)), rewardFuncs: undefined },
      { maxSteps: 1 },
    );
    await t.train();
    expect(t.rewardFunctionNames).toEqual(["hasF", "short"]);
    t.dispose();
  });
});

describe("GRPOTrainer config and extension", () => {
  it("a user's group-rollout loss is selected by lossType like a built-in", async () => {
    const reinforce = defineLoss("reinforce", "group-rollout", (x) => ({
      loss: tf.neg(tf.mean(tf.mul(tf.sum(x.logprobs, 1), x.advantages))) as tf.Scalar,
    }));
    const { log } = await firstUpdate({ lossType: "reinforce" }, { plugins: [lossPlugin(reinforce)] });
    expect(Number.isFinite(log["loss"])).toBe(true);
    expect(log["clip_ratio/low_mean"]).toBeUndefined();
  });

  it("rejects numGenerations that does not divide an update, or below 2, naming the field", () => {
    const field = (args: Record<string, unknown>) => {
      try {
        makeTrainer("grpo", dir, {}, args);
      } catch (e) {
        return (e as ConfigError).field;
      }
      return undefined;
    };
    expect(field({ numGenerations: 3 })).toBe("numGenerations");
    expect(field({ numGenerations: 1, perDeviceTrainBatchSize: 1 })).toBe("numGenerations");
    expect(field({ lossType: "" })).toBe("lossType");
    expect(field({ scaleRewards: "sometimes" })).toBe("scaleRewards");
    expect(field({ topP: 0 })).toBe("topP");
  });
});

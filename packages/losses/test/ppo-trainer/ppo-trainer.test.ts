/**
 * PPOTrainer on a tiny random Llama with a rule reward: TRL's metric names, val/ratio = 1 on the first
 * mini-batch of each update, a flat tensor count, exact resume (value head, KL controller, RNG), the
 * adaptive KL controller against its formula, missingEosPenalty, the value-model variant, reward
 * functions through the registry, TRL's reward placement and chat-templated prompts.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CausalLM, type Callback, ConfigError, type Trainer, type TrainingArgs, tf } from "@prefkit/core";
import {
  computeAdvantages,
  createTrainer,
  encodePrompt,
  PPO_KL_CONTROLLER_KEY,
  PPOTask,
  PPOTrainer,
  type PPOTrainerOptions,
  type RewardFunction,
  type Rollout,
  rewardFunctionPlugin,
} from "@prefkit/losses";
import { AutoModelForSequenceClassification, AutoTokenizer, MISTRAL_INST_TEMPLATE } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import { BASE, countF, EOS, makePPOTrainer, policy, prompts, TINY, tokenizer } from "./setup.js";
import { withoutTimes } from "../helpers.js";

let dir: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  dir = await mkdtemp(join(tmpdir(), "prefkit-ppo-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function makeTrainer(extra: Partial<PPOTrainerOptions> = {}, args: PPOTrainerOptions["args"] = {}) {
  return makePPOTrainer(dir, extra, args);
}

const METRICS = [
  "objective/kl",
  "objective/entropy",
  "objective/non_score_reward",
  "objective/rlhf_reward",
  "objective/scores",
  "policy/approxkl_avg",
  "policy/clipfrac_avg",
  "policy/entropy_avg",
  "loss/policy_avg",
  "loss/value_avg",
  "val/clipfrac_avg",
  "val/ratio",
  "val/ratio_var",
  "val/num_eos_tokens",
  "lr",
  "episode",
  "eps",
];

describe("PPOTrainer", () => {
  it("logs every TRL metric, val/ratio = 1 on each update's first mini-batch, flat tensor count", async () => {
    const before = tf.memory().numTensors;
    const model = policy();
    const counts: number[] = [];
    const firstRatios: number[] = [];
    const trainer = makeTrainer({ model }, { maxSteps: 4 });
    const probe: Callback = {
      onStepEnd: () => {
        counts.push(tf.memory().numTensors);
        firstRatios.push(trainer.lastUpdateStats!.ratio[0]![0]![0]!);
      },
    };
    trainer.addCallback(probe as never);
    await trainer.train();
    const logs = trainer.state.logHistory.filter((e) => "objective/kl" in e);
    expect(logs).toHaveLength(4);
    for (const name of METRICS) for (const l of logs) expect(Number.isFinite(l[name]), name).toBe(true);
    expect(logs.map((l) => l["episode"])).toEqual([8, 16, 24, 32]);
    expect(logs[0]!["lr"]).toBeCloseTo(3e-3, 12); // linear schedule, first update
    // Same weights as the rollout: the ratio is 1 up to the cached-vs-full forward difference.
    for (const r of firstRatios) expect(Math.abs(r - 1)).toBeLessThan(1e-5);
    // Later mini-batches have moved.
    expect(trainer.lastUpdateStats!.ratio[1]![1]![0]).not.toBe(1);
    // rlhf_reward = non_score_reward + scores, and the KL objective is −non_score/β for a fixed β.
    for (const l of logs) {
      expect(l["objective/rlhf_reward"]).toBeCloseTo(l["objective/non_score_reward"]! + l["objective/scores"]!, 6);
      expect(l["objective/non_score_reward"]).toBeCloseTo(-0.05 * l["objective/kl"]!, 6);
    }
    // The first update's KL is 0-mean noise only: policy = reference at sampling time.
    expect(Math.abs(logs[0]!["objective/kl"]!)).toBeLessThan(1e-4);
    expect(new Set(counts.slice(1)).size).toBe(1);
    trainer.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("resumes exactly: 4 updates straight equal 2, save, resume, 2 (value head, adaptive KL state, RNG)", async () => {
    const out = join(dir, "resume");
    const args = {
      maxSteps: 4,
      saveStrategy: "steps" as const,
      saveSteps: 2,
      outputDir: out,
      adaptiveKl: { target: 0.001, horizon: 50 },
    };
    const a = makeTrainer({}, args);
    await a.train();
    const weightsA = [...a.policyAndValue.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())] as const);
    const klA = a.klController.value;
    const logsA = a.state.logHistory.filter((e) => "objective/kl" in e);
    expect((await readdir(join(out, "checkpoint-2"))).sort()).toEqual(
      expect.arrayContaining(["model.safetensors", "model.safetensors.index.json", "value_head.safetensors"]),
    );

    const b = makeTrainer({}, { ...args, outputDir: join(dir, "resume-b") });
    await b.train({ resumeFromCheckpoint: join(out, "checkpoint-2") });
    const weightsB = new Map([...b.policyAndValue.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())]));
    let worst = 0;
    for (const [k, w] of weightsA)
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i]! - weightsB.get(k)![i]!));
    expect(worst).toBeLessThan(1e-6);
    expect(weightsB.has("v_head.summary.weight")).toBe(true);
    expect(b.klController.value).toBeCloseTo(klA, 12);
    expect(klA).not.toBe(0.2); // the controller moved
    const logsB = b.state.logHistory.filter((e) => "objective/kl" in e).slice(-2); // history restored, then 2 new
    expect(logsB.map((l) => l["episode"])).toEqual([24, 32]);
    for (const [i, l] of logsB.entries()) {
      for (const name of ["objective/kl", "objective/scores", "loss/policy_avg", "loss/value_avg", "val/ratio"]) {
        expect(l[name]).toBeCloseTo(logsA[i + 2]![name]!, 6);
      }
    }
    a.dispose();
    b.dispose();
    a.policyAndValue.policy.dispose();
    b.policyAndValue.policy.dispose();
  });

  it("adaptive KL controller: β ← β·(1 + clip(KL/target − 1, ±0.2)·batch/horizon) per update", async () => {
    const t = makeTrainer(
      {},
      { maxSteps: 3, adaptiveKl: { target: 0.5, horizon: 40, initKlCoef: 0.3 }, outputDir: join(dir, "adaptive") },
    );
    const seen: Array<[number, number]> = [];
    t.addCallback({
      onStepEnd: () => seen.push([t.state.logHistory.length, t.klController.value]),
    } as never);
    await t.train();
    const logs = t.state.logHistory.filter((e) => "objective/kl" in e);
    let beta = 0.3;
    for (const [i, l] of logs.entries()) {
      expect(l["objective/kl_coef"]).toBeCloseTo(beta, 12); // the β the rewards of this update used
      const e = Math.min(Math.max(l["objective/kl"]! / 0.5 - 1, -0.2), 0.2);
      beta *= 1 + (e * 8) / 40;
      expect(seen[i]![1]).toBeCloseTo(beta, 12);
    }
    // The controller is the PPO task's checkpointed state: prefkit-only, so in prefkit_state.json.
    const checkpoint = await t.saveCheckpoint();
    const saved = JSON.parse(await readFile(join(checkpoint, "prefkit_state.json"), "utf8"));
    expect(saved.stateful_records[PPO_KL_CONTROLLER_KEY]).toEqual({
      kind: "adaptive",
      value: beta,
      target: 0.5,
      horizon: 40,
    });
    t.dispose();
    t.policyAndValue.policy.dispose();
  });

  it("subtracts missingEosPenalty from responses without eos, truncates at the stop token", async () => {
    const zero: RewardFunction = (c) => c.map(() => 0);
    const t = makeTrainer(
      { rewardModel: zero },
      { maxSteps: 1, missingEosPenalty: 1.5, responseLength: 12, stopTokenId: 7, perDeviceTrainBatchSize: 8 },
    );
    await t.train();
    const r = t.lastRollout!;
    expect(r.containsEos.filter(Boolean).length).toBeGreaterThan(0);
    expect(r.containsEos.filter((x) => !x).length).toBeGreaterThan(0);
    expect(r.validLengths.some((n, i) => n < r.generatedLengths[i]!)).toBe(true); // some cut at the stop token
    for (const [i, s] of r.scores.entries()) expect(s).toBe(r.containsEos[i] ? 0 : -1.5);
    for (let i = 0; i < r.responses.length; i++) {
      const gen = r.responses[i]!.slice(0, r.generatedLengths[i]);
      const cut = gen.indexOf(7);
      expect(r.validLengths[i]).toBe(cut < 0 ? gen.length : cut + 1);
      expect(r.containsEos[i]).toBe(gen.slice(0, r.validLengths[i]).includes(EOS));
      // log-probs past the valid length hold TRL's fill value, values are 0 past validLength + 1
      for (let k = r.validLengths[i]!; k < r.width; k++) expect(r.logprobs[i]![k]).toBe(1);
      for (let k = r.validLengths[i]! + 1; k < r.width; k++) expect(r.values[i]![k]).toBe(0);
    }
    t.dispose();
    t.policyAndValue.policy.dispose();
  });

  it("value model initialised from the reward model (TRL default) trains and is checkpointed", async () => {
    const rm = AutoModelForSequenceClassification.fromConfig(TINY, { numLabels: 1, seed: 9 });
    const rmBefore = Array.from(rm.namedParameters().get("score.weight")!.dataSync());
    const out = join(dir, "value-model");
    const t = makeTrainer(
      { rewardModel: rm },
      { maxSteps: 2, valueHead: "model", saveStrategy: "steps", saveSteps: 2, outputDir: out },
    );
    expect(t.policyAndValue.valueHeadKind).toBe("model");
    await t.train();
    const v = t.policyAndValue.valueParameters().get("value_model.score.weight")!;
    expect(Array.from(v.dataSync())).not.toEqual(rmBefore); // V was trained
    expect(Array.from(rm.namedParameters().get("score.weight")!.dataSync())).toEqual(rmBefore); // RM frozen
    expect(await readdir(join(out, "checkpoint-2"))).toContain("value_model.safetensors");
    // Rewards from the RM: scored at the last real token of prompt + truncated response.
    const r = t.lastRollout!;
    const row = 0;
    const seq = [...r.promptIds[row]!, ...r.responses[row]!.slice(0, r.validLengths[row])];
    const alone = tf.tidy(() => rm.forward({ inputIds: [seq] }).logits.dataSync()[0]!);
    expect(r.scores[row]).toBeCloseTo(alone, 5);
    t.dispose();
    t.policyAndValue.policy.dispose();
    rm.dispose();
  });

  it("finds a reward function registered through a plugin by name, and refuses unknown names", async () => {
    const t = makeTrainer(
      { rewardModel: "count-f", plugins: [rewardFunctionPlugin("count-f", countF)] },
      { maxSteps: 1 },
    );
    await t.train();
    const r = t.lastRollout!;
    for (const [i, s] of r.scores.entries()) {
      expect(s).toBe(r.responses[i]!.slice(0, r.validLengths[i]).filter((id) => id === 5).length);
    }
    t.dispose();
    t.policyAndValue.policy.dispose();
    const bad = makeTrainer({ rewardModel: "nope" }, { maxSteps: 1 });
    await expect(bad.train()).rejects.toThrow(/unknown reward function "nope"/);
    bad.dispose();
    bad.policyAndValue.policy.dispose();
  });

  it("rejects a value model without a source, and too few prompts", () => {
    expect(() => makeTrainer({}, { valueHead: "model" })).toThrow(ConfigError);
    const t = makeTrainer({ trainDataset: prompts(3) });
    return expect(t.train()).rejects.toThrow(/fewer than one update's batch/);
  });

  it('createTrainer("ppo", options) composes the same run as new PPOTrainer(options)', async () => {
    const options = (model: CausalLM) => ({
      model,
      rewardModel: countF,
      trainDataset: prompts(16),
      processingClass: tokenizer,
      args: { ...BASE, outputDir: join(dir, "create"), maxSteps: 2 },
    });
    const viaFacade = new PPOTrainer(options(policy()));
    const generic = createTrainer("ppo", options(policy()));
    expect(generic.task).toBeInstanceOf(PPOTask);
    await viaFacade.train();
    await generic.train();
    const logs = (t: Trainer<unknown, TrainingArgs>) => t.state.logHistory.map(withoutTimes);
    expect(logs(generic)).toEqual(logs(viaFacade as unknown as Trainer<unknown, TrainingArgs>));
    viaFacade.dispose();
    viaFacade.policyAndValue.policy.dispose();
    const task = generic.task as PPOTask;
    generic.optimizer.dispose();
    task.model.dispose();
    task.model.policy.dispose();
    task.options.reference.owned?.dispose();
  });
});

describe("computeAdvantages (TRL reward placement and GAE)", () => {
  it("puts the score one past the last valid token when it fits, else on the last token", () => {
    const rollout = {
      width: 4,
      validLengths: [2, 4],
      scores: [3, 5],
      logprobs: [
        [-1, -2, 1, 1],
        [-1, -1, -1, -1],
      ],
      refLogprobs: [
        [-1.5, -2, 1, 1],
        [-1, -1, -1, -0.5],
      ],
      values: [
        [0.1, 0.2, 0.3, 0],
        [0, 0, 0, 0],
      ],
    } as unknown as Rollout;
    const out = computeAdvantages(rollout, {
      klCoef: 0.1,
      klEstimator: "k1",
      gamma: 1,
      lam: 0.95,
      whitenRewards: false,
    });
    // k1 = logπ − logπref
    expect(out.kl[0]![0]).toBeCloseTo(0.5, 6);
    expect(out.kl[1]![3]).toBeCloseTo(-0.5, 6);
    expect(out.rewards[0]).toEqual([expect.closeTo(-0.05, 6), 0, 3, 0]);
    expect(out.rewards[1]![3]).toBeCloseTo(5 + 0.05, 6);
    expect(out.maskP1[0]).toEqual([1, 1, 1, 0]);
    expect(out.mask[0]).toEqual([1, 1, 0, 0]);
    // returns = raw GAE + V; at t = 2 (row 0): δ = 3 − 0.3, A = δ
    expect(out.returns[0]![2]).toBeCloseTo(3, 6);
    expect(out.advantages[0]![2]).toBeCloseTo(0, 12);
  });
});

describe("prompts", () => {
  const dirStories = sharedPath("assets/stories260K");
  it.skipIf(!dirStories)("renders Mistral [INST] chat prompts with one BOS", async () => {
    const tok = await AutoTokenizer.fromPretrained(dirStories!);
    tok.chatTemplate = MISTRAL_INST_TEMPLATE;
    const ids = encodePrompt([{ role: "user", content: "Tell me a story." }], tok);
    expect(ids[0]).toBe(1);
    expect(ids[1]).not.toBe(1);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe("[INST] Tell me a story. [/INST]");
    expect(encodePrompt("Once upon a time", tok)).toEqual(tok.encode("Once upon a time"));
  });
});

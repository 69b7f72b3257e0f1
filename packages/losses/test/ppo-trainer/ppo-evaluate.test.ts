/**
 * PPOTrainer.evaluate(): held-out prompts decoded greedily (or sampled with a seeded RNG of their own), scored
 * by the reward, with the KL to the reference, checked against a direct computation with full forwards.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CausalLM, type Generator, Rng, tf } from "@prefkit/core";
import { collectRollout, type RolloutSettings } from "@prefkit/losses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BASE, countF, EOS, makePPOTrainer, PAD, policy, prompts, tokenizer } from "./setup.js";
import { withoutTimes } from "../helpers.js";

let dir: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  dir = await mkdtemp(join(tmpdir(), "prefkit-ppo-eval-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const heldOut = prompts(5, 11);
const T = 0.7 + 1e-7; // TRL's temperature scaling of every log-prob

/** log softmax(logits / T) of `response` after `prompt`, one unpadded row, full forward. */
function responseLogprobs(net: CausalLM, prompt: number[], response: number[]): number[] {
  return tf.tidy(() => {
    const logits = net.forward({ inputIds: [[...prompt, ...response]] }).logits;
    const rows = tf.logSoftmax(tf.div(logits, T)).arraySync() as number[][][];
    return response.map((tok, t) => rows[0]![prompt.length - 1 + t]![tok]!);
  });
}

/** The eval objective computed directly: greedy decoding row by row, the rule reward, Σ_t (log π − log π_ref). */
async function directObjective(model: CausalLM & Generator, reference: CausalLM) {
  let scores = 0;
  let kl = 0;
  for (const { inputIds } of heldOut) {
    const out = await model.generate([inputIds], {
      maxNewTokens: BASE.responseLength,
      doSample: false,
      eosTokenId: EOS,
      padTokenId: PAD,
    });
    const response = out.newTokens[0]!;
    scores += (await countF([tokenizer.decode(response, { skipSpecialTokens: true })], [], {} as never))[0]!;
    const lp = responseLogprobs(model, inputIds, response);
    const ref = responseLogprobs(reference, inputIds, response);
    kl += lp.reduce((s, x, t) => s + x - ref[t]!, 0);
  }
  return { scores: scores / heldOut.length, kl: kl / heldOut.length };
}

describe("PPOTrainer.evaluate", () => {
  it("logs eval_objective/* of greedy held-out responses: the reward's mean score and the KL to the reference", async () => {
    const model = policy();
    const reference = policy(); // same seed: the weights the policy starts from
    const t = makePPOTrainer(
      dir,
      { model, evalDataset: heldOut },
      { maxSteps: 3, evalStrategy: "steps", evalSteps: 3 },
    );
    const check = (m: Record<string, number>, want: { scores: number; kl: number }) => {
      expect(m["eval_objective/scores"]).toBe(want.scores);
      expect(m["eval_objective/kl"]).toBeCloseTo(want.kl, 4);
      expect(m["eval_objective/non_score_reward"]).toBeCloseTo(-0.05 * m["eval_objective/kl"]!, 7); // Σ of float32 terms
      expect(m["eval_objective/rlhf_reward"]).toBeCloseTo(
        m["eval_objective/scores"]! + m["eval_objective/non_score_reward"]!,
        12,
      );
    };

    const before = await t.evaluate();
    expect(Object.keys(before).sort()).toEqual([
      "eval_objective/kl",
      "eval_objective/non_score_reward",
      "eval_objective/rlhf_reward",
      "eval_objective/scores",
    ]);
    check(before, await directObjective(model, reference));
    expect(Math.abs(before["eval_objective/kl"]!)).toBeLessThan(1e-4); // policy = reference
    expect(t.evalRows).toHaveLength(heldOut.length);

    await t.train(); // a fresh history; evalStrategy "steps" evaluates after update 3
    const inLoop = t.state.logHistory.filter((e) => "eval_objective/kl" in e);
    expect(inLoop.map((e) => e["step"])).toEqual([3]);
    const after = await t.evaluate();
    const direct = await directObjective(model, reference);
    check(after, direct);
    expect(inLoop[0]!["eval_objective/kl"]).toBe(after["eval_objective/kl"]); // deterministic
    expect(after["eval_objective/kl"]).toBeGreaterThan(1e-3); // the policy moved away from the reference
    const tensors = tf.memory().numTensors;
    expect(await t.evaluate()).toEqual(after);
    expect(tf.memory().numTensors).toBe(tensors);
    t.dispose();
    model.dispose();
    reference.dispose();
  });

  it("evalDoSample samples with its own seeded RNG: the same numbers twice, training numbers untouched", async () => {
    const args = { maxSteps: 2, evalDoSample: true };
    const sampled = makePPOTrainer(dir, { evalDataset: heldOut }, args);
    const first = await sampled.evaluate();
    const second = await sampled.evaluate();
    expect(second).toEqual(first);
    const greedy = makePPOTrainer(dir, { evalDataset: heldOut }, { maxSteps: 2 });
    expect(await greedy.evaluate()).not.toEqual(first);
    await sampled.train();
    const plain = makePPOTrainer(dir, {}, { maxSteps: 2 });
    await plain.train();
    const training = (t: typeof plain) => t.state.logHistory.filter((e) => "objective/kl" in e).map(withoutTimes);
    expect(training(sampled)).toEqual(training(plain)); // evaluation drew nothing from the trainer's RNG
    for (const t of [sampled, greedy, plain]) {
      t.dispose();
      t.policyAndValue.policy.dispose();
    }
  });

  it("greedy decoding without a generator (plain forwards) picks the tokens generate() picks", async () => {
    const model = policy();
    const withoutGenerate = new Proxy(model, {
      get: (target, key) => (key === "generate" ? undefined : Reflect.get(target, key)),
    }) as CausalLM;
    const settings: RolloutSettings = {
      responseLength: BASE.responseLength,
      temperature: 0.7,
      localRolloutForwardBatchSize: 64,
      missingEosPenalty: null,
      stopTokenId: null,
      eosTokenId: EOS,
      padTokenId: PAD,
      doSample: false,
    };
    const rollout = (policyNet: CausalLM) =>
      collectRollout(
        heldOut.map((p) => p.inputIds),
        {
          model: { policy: policyNet },
          reference: { kind: "model", run: (fn) => fn(model) },
          score: async (rows) => rows.promptIds.map(() => 0),
          rng: new Rng(0),
        },
        settings,
      );
    const viaGenerate = await rollout(model);
    const viaForward = await rollout(withoutGenerate);
    expect(viaForward.responses).toEqual(viaGenerate.responses);
    expect(viaForward.validLengths).toEqual(viaGenerate.validLengths);
    viaForward.logprobs.flat().forEach((x, i) => void expect(x).toBeCloseTo(viaGenerate.logprobs.flat()[i]!, 4));
    expect(viaGenerate.values.flat().every((v) => v === 0)).toBe(true); // no value function: no values
    model.dispose();
  });
});

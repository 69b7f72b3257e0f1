import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CausalLM, type TokenizedCompletion, type TokenizerLike, tf } from "@prefkit/core";
import { SFTTrainer } from "@prefkit/losses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import { makeCompletions, maxWeightDiff, tinyModel, trainLogs, weightsOf } from "./helpers.js";

const storiesDir = sharedPath("assets/stories260K");
let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-sft-trainer-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const base = { saveStrategy: "no" as const, loggingSteps: 1, learningRate: 1e-2, lrSchedulerType: "constant" as const };

/** Token-mean NLL and argmax accuracy over the targets from position `from(row)` on, computed in JS. */
function handNll(model: CausalLM, rows: TokenizedCompletion[], from: (r: TokenizedCompletion) => number) {
  let nll = 0;
  let correct = 0;
  let entropy = 0;
  let n = 0;
  for (const r of rows) {
    const ids = [...r.promptIds, ...r.completionIds];
    const logits = tf.tidy(() => model.forward({ inputIds: [ids] }).logits.arraySync()[0]!);
    for (let t = Math.max(from(r), 1); t < ids.length; t++) {
      const row = logits[t - 1]!;
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      nll -= row[ids[t]!]! - lse;
      if (row.indexOf(m) === ids[t]) correct++;
      entropy -= row.reduce((acc, x) => acc + Math.exp(x - lse) * (x - lse), 0);
      n++;
    }
  }
  return { loss: nll / n, accuracy: correct / n, entropy: entropy / n, tokens: n };
}

describe("SFTTrainer", () => {
  it("completion-only loss masks the prompt: the loss equals a hand computation (and the full-text loss too)", async () => {
    const model = tinyModel(21);
    const rows = makeCompletions(5, 9);
    const evalOnly = (completionOnlyLoss: boolean | null) =>
      new SFTTrainer({
        model,
        args: { ...base, outputDir: join(root, "mask"), perDeviceTrainBatchSize: 2, completionOnlyLoss },
        trainDataset: rows,
        evalDataset: rows,
      }).evaluate();
    const completionOnly = handNll(model, rows, (r) => r.promptIds.length);
    const full = handNll(model, rows, () => 1);
    expect(completionOnly.loss).not.toBeCloseTo(full.loss, 2);

    // TRL's default for prompt-completion data is completion-only. Eval batches are weighted by loss
    // tokens, so the eval loss is the token mean over the whole set.
    const dflt = await evalOnly(null);
    expect(dflt["eval_loss"]).toBeCloseTo(completionOnly.loss, 5);
    expect(dflt["eval_mean_token_accuracy"]).toBeCloseTo(completionOnly.accuracy, 6);
    const off = await evalOnly(false);
    expect(off["eval_loss"]).toBeCloseTo(full.loss, 5);
    expect(Object.keys(dflt).sort()).toEqual(["eval_entropy", "eval_loss", "eval_mean_token_accuracy"]);
    expect(dflt["eval_entropy"]).toBeCloseTo(completionOnly.entropy, 5);
    model.dispose();
  });

  it("trains: the loss decreases over 20 steps; accumulation by loss tokens equals the big batch", async () => {
    const rows = makeCompletions(8, 4);
    const run = async (bs: number, ga: number, steps: number) => {
      const model = tinyModel(22);
      const t = new SFTTrainer({
        model,
        args: {
          ...base,
          outputDir: join(root, `sft-${bs}`),
          maxSteps: steps,
          perDeviceTrainBatchSize: bs,
          gradientAccumulationSteps: ga,
        },
        trainDataset: rows,
      });
      await t.train();
      const out = { logs: trainLogs(t.state.logHistory), w: weightsOf(model) };
      t.dispose();
      model.dispose();
      return out;
    };
    const long = await run(4, 1, 20);
    expect(long.logs).toHaveLength(20);
    expect(long.logs[19]!["loss"]).toBeLessThan(0.5 * long.logs[0]!["loss"]!);
    expect(long.logs[19]!["mean_token_accuracy"]).toBeGreaterThan(long.logs[0]!["mean_token_accuracy"]!);
    const big = await run(8, 1, 2);
    const micro = await run(2, 4, 2); // micro-batches hold different numbers of loss tokens
    for (let i = 0; i < 2; i++) expect(Math.abs(micro.logs[i]!["loss"]! - big.logs[i]!["loss"]!)).toBeLessThan(1e-5);
    expect(maxWeightDiff(big.w, micro.w)).toBeLessThan(1e-5);
    expect(big.logs[0]!["num_tokens"]).toBe(rows.reduce((s, r) => s + r.promptIds.length + r.completionIds.length, 0));
  });

  it("keeps numTensors flat over 20 steps", async () => {
    const baseline = tf.memory().numTensors;
    const model = tinyModel(23);
    const counts = new Map<number, number>();
    const t = new SFTTrainer({
      model,
      args: { ...base, outputDir: join(root, "sft-mem"), maxSteps: 20, loggingSteps: 5, perDeviceTrainBatchSize: 2 },
      trainDataset: makeCompletions(6, 5),
      callbacks: [{ onStepEnd: (_a, s) => void counts.set(s.globalStep, tf.memory().numTensors) }],
    });
    await t.train();
    expect(counts.get(20)).toBe(counts.get(1));
    t.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("renders `messages` rows with the tokenizer's chat template and trains on every token", async () => {
    // A character tokenizer over 14 symbols with a tiny chat template; eos 1, pad 0.
    const encode = (text: string) => [...text].map((ch) => 2 + (ch.charCodeAt(0) % 14));
    const tok: TokenizerLike = {
      encode,
      decode: () => "",
      applyChatTemplate: (messages, options) =>
        messages.map((m) => `${m.role[0]}:${m.content}|`).join("") + (options?.addGenerationPrompt ? "a:" : ""),
      hasChatTemplate: true,
      bosTokenId: undefined,
      eosTokenId: 1,
      padTokenId: 0,
    };
    const messages = [
      { role: "user", content: "hi" },
      { role: "assistant", content: "hello" },
    ];
    const model = tinyModel(24);
    const t = new SFTTrainer({
      model,
      args: { ...base, outputDir: join(root, "sft-msg"), maxSteps: 5, perDeviceTrainBatchSize: 2 },
      trainDataset: [{ messages }, { messages: [...messages, { role: "user", content: "bye" }] }],
      evalDataset: [{ messages }],
      processingClass: tok,
    });
    const before = await t.evaluate();
    expect(t.completionOnly).toBe(false);
    expect(t.trainRows[0]).toMatchObject({ promptIds: [], completionIds: encode("u:hi|a:hello|") });
    const rendered = t.trainRows[0]!;
    expect(before["eval_loss"]).toBeCloseTo(handNll(model, [rendered], () => 1).loss, 5);
    await t.train();
    const after = await t.evaluate();
    expect(after["eval_loss"]).toBeLessThan(before["eval_loss"]!);
    t.dispose();
    model.dispose();
  });

  it.skipIf(!storiesDir)("tokenises text and prompt-completion rows with a real tokenizer (stories260K)", async () => {
    const dir = storiesDir!;
    const { AutoModelForCausalLM, AutoTokenizer } = await import("@prefkit/models");
    const tok = await AutoTokenizer.fromPretrained(dir);
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    const text = new SFTTrainer({
      model,
      args: {
        ...base,
        outputDir: join(root, "sft-text"),
        maxSteps: 3,
        perDeviceTrainBatchSize: 2,
        learningRate: 1e-3,
        maxLength: 12,
      },
      trainDataset: [{ text: "Once upon a time, there was a little girl named Lily." }, { text: "She liked the sun." }],
      processingClass: tok,
    });
    await text.train();
    expect(text.completionOnly).toBe(false);
    expect(Math.max(...text.trainRows.map((r) => r.completionIds.length))).toBe(12); // maxLength truncation
    const logs = trainLogs(text.state.logHistory);
    expect(logs[2]!["loss"]).toBeLessThan(logs[0]!["loss"]!);
    const pc = new SFTTrainer({
      model,
      args: { ...base, outputDir: join(root, "sft-pc"), maxSteps: 1, perDeviceTrainBatchSize: 2 },
      trainDataset: [{ prompt: "Lily liked to", completion: " play." }],
      processingClass: tok,
    });
    await pc.train();
    expect(pc.completionOnly).toBe(true);
    expect(pc.trainRows[0]!.completionIds.at(-1)).toBe(tok.eosTokenId);
    text.dispose();
    pc.dispose();
    model.dispose();
  });
});

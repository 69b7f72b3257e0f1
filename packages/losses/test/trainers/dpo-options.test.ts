// End-to-end DPOTrainer runs of the DPO options TRL has and prefkit used to refuse: truncationMode keep_end,
// LD-DPO's ldAlpha, WPO's useWeighting and TR-DPO's syncRefModel. Each test shows the option changes what it
// should (against values computed by hand from the model's logits) and nothing else.
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Callback, type CausalLM, ConfigError, tf } from "@prefkit/core";
import { DPOTrainer, REF_MODEL_FILE } from "@prefkit/losses";
import { LoraPlugin } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DigitTokenizer,
  handLogp,
  handTokens,
  logSumExp,
  makePairs,
  maxWeightDiff,
  stopAtStep,
  tinyModel,
  trainLogs,
  weightsOf,
} from "./helpers.js";

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-dpo-options-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const base = { saveStrategy: "no" as const, loggingSteps: 1, learningRate: 1e-2, lrSchedulerType: "constant" as const };
const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
const logSigmoid = (x: number) => -Math.log1p(Math.exp(-x));

/** |a − e| ≤ tol·max(1, |e|) for every weight. */
function expectWeightsClose(actual: Record<string, number[]>, expected: Record<string, number[]>, tol = 1e-6) {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const k of Object.keys(expected)) {
    expected[k]!.forEach((e, i) => {
      expect(Math.abs(actual[k]![i]! - e), `${k}[${i}]`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(e)));
    });
  }
}

/** α·a + (1 − α)·b weight by weight. */
function mix(a: Record<string, number[]>, b: Record<string, number[]>, alpha: number): Record<string, number[]> {
  return Object.fromEntries(Object.keys(a).map((k) => [k, a[k]!.map((x, i) => alpha * x + (1 - alpha) * b[k]![i]!)]));
}

describe("DPOTrainer truncationMode keep_end", () => {
  // DigitTokenizer: BOS 1, EOS 2, digit d → d + 3.
  const rows = [
    { prompt: "34567", chosen: "89", rejected: "0123456" },
    { prompt: "1111111", chosen: "2", rejected: "33" }, // prompt of 8 tokens ≥ maxLength: keep_start drops it
    { prompt: "5", chosen: "6", rejected: "7" },
  ];
  const args = { ...base, maxSteps: 1, perDeviceTrainBatchSize: 3, maxLength: 7 };

  it("keeps each sequence's last maxLength tokens, drops no row, and the step-0 logps are those of the kept tokens", async () => {
    const model = tinyModel(11);
    const warnings: string[] = [];
    const trainer = new DPOTrainer({
      model,
      args: { ...args, outputDir: join(root, "keep-end"), truncationMode: "keep_end" },
      trainDataset: rows,
      processingClass: new DigitTokenizer(),
      warn: (m) => warnings.push(m),
    });
    await trainer.train();
    // Hand-checked: full chosen 1 6 7 8 9 10 | 11 12 2 (9 tokens) keeps its last 7; full rejected
    // 1 6 7 8 9 10 | 3 4 5 6 7 8 9 2 (14) keeps 7 completion tokens and no prompt.
    const ids = (t: DPOTrainer) => t.trainRows.map(({ source: _, ...r }) => r);
    expect(ids(trainer)).toEqual([
      { promptIds: [7, 8, 9, 10], chosenIds: [11, 12, 2], rejectedIds: [4, 5, 6, 7, 8, 9, 2], rejectedPromptIds: [] },
      { promptIds: [4, 4, 4, 4, 4], chosenIds: [5, 2], rejectedIds: [6, 6, 2], rejectedPromptIds: [4, 4, 4, 4] },
      { promptIds: [1, 8], chosenIds: [9, 2], rejectedIds: [10, 2] },
    ]);
    expect(warnings.filter((w) => w.includes("keep_end"))).toEqual([
      'truncationMode "keep_end" is deprecated in TRL and will be removed in its v2.0.0; "keep_start" is the default',
    ]);
    const log = trainLogs(trainer.state.logHistory)[0]!;
    const start = tinyModel(11); // the untouched starting weights
    const chosen = trainer.trainRows.map((r) => handLogp(start, r.promptIds, r.chosenIds));
    const rejected = trainer.trainRows.map((r) => handLogp(start, r.rejectedPromptIds ?? r.promptIds, r.rejectedIds));
    expect(log["logps/chosen"]).toBeCloseTo(mean(chosen), 5);
    expect(log["logps/rejected"]).toBeCloseTo(mean(rejected), 5);
    expect(Math.abs(log["loss"]! - Math.LN2)).toBeLessThan(1e-6);
    expect(log["num_tokens"]).toBe(7 + 7 + 7 + 7 + 4 + 4);

    // keep_start on the same rows: the long prompt's row is dropped, the completions lose their end.
    const startRun = new DPOTrainer({
      model: start,
      args: { ...args, outputDir: join(root, "keep-start") },
      trainDataset: rows,
      processingClass: new DigitTokenizer(),
      warn: () => {},
    });
    await startRun.train();
    expect(ids(startRun)).toEqual([
      { promptIds: [1, 6, 7, 8, 9, 10], chosenIds: [11], rejectedIds: [3] },
      { promptIds: [1, 8], chosenIds: [9, 2], rejectedIds: [10, 2] },
    ]);
    for (const t of [trainer, startRun]) t.dispose();
    for (const m of [model, start]) m.dispose();
  });
});

describe("DPOTrainer ldAlpha (LD-DPO)", () => {
  const pairs = makePairs(4, 41);
  const args = { ...base, maxSteps: 2, perDeviceTrainBatchSize: 4 };
  const beta = 0.1;

  /** Σ shared + α·Σ tail for a pair's two completions, from the model's logits in JS. */
  const ldSums = (model: CausalLM, pair: (typeof pairs)[number], alpha: number) => {
    const c = handTokens(model, pair.promptIds, pair.chosenIds).map((x) => x.logp);
    const r = handTokens(model, pair.promptIds, pair.rejectedIds).map((x) => x.logp);
    const shared = Math.min(c.length, r.length);
    const sum = (xs: number[]) => xs.reduce((s, x, k) => s + (k < shared ? x : alpha * x), 0);
    return { chosen: sum(c), rejected: sum(r) };
  };

  it("logged logps/*, rewards/* and the loss are LD-weighted sums of policy and reference, computed by hand", async () => {
    // the option has something to do: some pair has completions of different lengths
    expect(pairs.some((p) => p.chosenIds.length !== p.rejectedIds.length)).toBe(true);
    const alpha = 0.5;
    const model = tinyModel(12);
    const expected: Array<Record<string, number>> = [];
    const handStep = (policy: CausalLM, reference: CausalLM) => {
      const pol = pairs.map((p) => ldSums(policy, p, alpha));
      const ref = pairs.map((p) => ldSums(reference, p, alpha));
      const rc = pol.map((p, i) => beta * (p.chosen - ref[i]!.chosen));
      const rr = pol.map((p, i) => beta * (p.rejected - ref[i]!.rejected));
      expected.push({
        "logps/chosen": mean(pol.map((p) => p.chosen)),
        "logps/rejected": mean(pol.map((p) => p.rejected)),
        "rewards/chosen": mean(rc),
        "rewards/rejected": mean(rr),
        loss: mean(rc.map((c, i) => -logSigmoid(c - rr[i]!))),
      });
    };
    handStep(model, model); // step 1 runs on the starting weights; the reference is their copy
    let trainer: DPOTrainer | undefined;
    const atStep1: Callback = {
      onStepEnd: (_a, s) => {
        if (s.globalStep === 1) handStep(model, trainer!.reference!.model!);
      },
    };
    trainer = new DPOTrainer({
      model,
      args: { ...args, outputDir: join(root, "ld"), ldAlpha: alpha },
      trainDataset: pairs,
      callbacks: [atStep1],
    });
    await trainer.train();
    const logs = trainLogs(trainer.state.logHistory);
    expect(logs).toHaveLength(2);
    expect(Math.abs(expected[0]!["loss"]! - Math.LN2)).toBeLessThan(1e-9);
    expect(Math.abs(expected[1]!["rewards/chosen"]!)).toBeGreaterThan(1e-4); // the policy moved
    for (let i = 0; i < 2; i++) {
      for (const [k, v] of Object.entries(expected[i]!)) {
        expect(Math.abs(logs[i]![k]! - v), `step ${i + 1} ${k}: ${logs[i]![k]} vs ${v}`).toBeLessThan(1e-5);
      }
    }
    // the plain sums differ from the LD-weighted ones
    const plain = mean(pairs.map((p) => handLogp(tinyModel(12), p.promptIds, p.chosenIds)));
    expect(Math.abs(plain - logs[0]!["logps/chosen"]!)).toBeGreaterThan(1e-3);
    trainer.dispose();
    model.dispose();
  });

  it("ldAlpha 1 trains exactly like plain DPO; precomputed reference log-probs are LD-weighted and cached under their own key", async () => {
    const run = async (extra: Record<string, unknown>, name: string) => {
      const model = tinyModel(13);
      const t = new DPOTrainer({
        model,
        args: { ...args, outputDir: join(root, name), ...extra },
        trainDataset: pairs,
      });
      await t.train();
      const out = { logs: trainLogs(t.state.logHistory), w: weightsOf(model) };
      t.dispose();
      model.dispose();
      return out;
    };
    const plain = await run({}, "ld-plain");
    const one = await run({ ldAlpha: 1 }, "ld-one");
    expect(one.logs).toEqual(plain.logs);
    expect(maxWeightDiff(one.w, plain.w)).toBe(0);

    const model = tinyModel(13);
    const dir = join(root, "ld-pre");
    const t = new DPOTrainer({
      model,
      args: { ...args, outputDir: dir, ldAlpha: 0.25, precomputeRefLogProbs: true },
      trainDataset: pairs,
    });
    const cached = await t.precomputeRefLogProbs();
    const hand = pairs.map((p) => ldSums(model, p, 0.25));
    cached.chosen.forEach((v, i) => {
      expect(v).toBeCloseTo(hand[i]!.chosen, 5);
    });
    cached.rejected.forEach((v, i) => {
      expect(v).toBeCloseTo(hand[i]!.rejected, 5);
    });
    const files = await readdir(join(dir, "ref_logps"));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^ref-logps-[0-9a-f]{32}-[0-9a-f]{32}-ld0\.25\.json$/);
    t.dispose();
    model.dispose();
  });

  it("a resume refuses reference log-probs that were cached with another ldAlpha", async () => {
    const dir = join(root, "ld-resume");
    const pre = { ...args, outputDir: dir, precomputeRefLogProbs: true, saveStrategy: "steps" as const, saveSteps: 1 };
    const model = tinyModel(13);
    const first = new DPOTrainer({
      model,
      args: { ...pre, ldAlpha: 0.25 },
      trainDataset: pairs,
      callbacks: [stopAtStep(1)],
    });
    await first.train();
    const again = tinyModel(13);
    const resumed = new DPOTrainer({ model: again, args: { ...pre, ldAlpha: 0.5 }, trainDataset: pairs });
    const err = await resumed.train({ resumeFromCheckpoint: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe("ldAlpha");
    expect((err as ConfigError).message).toMatch(/computed as "ld0.25", not "ld0.5"/);
    for (const t of [first, resumed]) t.dispose();
    for (const m of [model, again]) m.dispose();
  });
});

describe("DPOTrainer useWeighting (WPO)", () => {
  const pairs = makePairs(3, 51);
  const args = { ...base, maxSteps: 1, perDeviceTrainBatchSize: 3 };

  /** WPO's sequence weight exp(mean_t (log p_t − log Σ_v p_v²)), from the logits in JS. */
  const weight = (model: CausalLM, prompt: number[], completion: number[]) => {
    const tokens = handTokens(model, prompt, completion);
    const aligned = tokens.map((x) => x.logp - (logSumExp(x.logits.map((l) => 2 * l)) - 2 * logSumExp(x.logits)));
    return Math.exp(mean(aligned));
  };

  it("step-0 loss is ln 2 · mean(w_c·w_r) with hand-computed weights; every other metric is the plain run's", async () => {
    const start = tinyModel(14);
    const w = pairs.map((p) => weight(start, p.promptIds, p.chosenIds) * weight(start, p.promptIds, p.rejectedIds));
    const expectedLoss = Math.LN2 * mean(w);
    expect(expectedLoss).toBeLessThan(0.9 * Math.LN2); // the weights are far from 1 on this model
    const run = async (useWeighting: boolean) => {
      const model = tinyModel(14);
      const t = new DPOTrainer({
        model,
        args: { ...args, outputDir: join(root, `wpo-${useWeighting}`), useWeighting },
        trainDataset: pairs,
      });
      await t.train();
      const log = trainLogs(t.state.logHistory)[0]!;
      t.dispose();
      model.dispose();
      return log;
    };
    const weighted = await run(true);
    const plain = await run(false); // the fused LM head path
    expect(Math.abs(weighted["loss"]! - expectedLoss)).toBeLessThan(1e-6);
    expect(Math.abs(plain["loss"]! - Math.LN2)).toBeLessThan(1e-6);
    expect(weighted["grad_norm"]).toBeLessThan(plain["grad_norm"]!); // each pair's gradient scaled by its w_c·w_r < 1
    for (const k of Object.keys(plain)) {
      if (k === "loss" || k === "grad_norm") continue;
      expect(Math.abs(weighted[k]! - plain[k]!), k).toBeLessThan(1e-5);
    }
    start.dispose();
  });

  it("is refused with aot and aot_unpaired, with TRL's message", () => {
    const model = tinyModel(15);
    for (const lossType of ["aot", "aot_unpaired"] as const) {
      expect(() => new DPOTrainer({ model, args: { useWeighting: true, lossType }, trainDataset: pairs })).toThrow(
        "field \"useWeighting\": WPO-style weighting is not implemented for 'aot' or 'aot_unpaired' because those losses sort samples, which would misalign per-pair weights.",
      );
    }
    model.dispose();
  });
});

describe("DPOTrainer syncRefModel (TR-DPO)", () => {
  const pairs = makePairs(4, 61);
  const args = { ...base, maxSteps: 4, perDeviceTrainBatchSize: 2, syncRefModel: true, refModelSyncSteps: 2 };

  it("every refModelSyncSteps steps the reference becomes α·policy + (1 − α)·reference; before the first sync nothing differs from plain DPO", async () => {
    const alpha = 0.6;
    const model = tinyModel(16);
    const ref0 = weightsOf(model);
    const policyAt: Record<number, Record<string, number[]>> = {};
    const refAt: Record<number, Record<string, number[]>> = {};
    let trainer: DPOTrainer | undefined;
    const snapshot: Callback = {
      onStepEnd: (_a, s) => {
        policyAt[s.globalStep] = weightsOf(model);
        refAt[s.globalStep] = weightsOf(trainer!.reference!.model!);
      },
    };
    trainer = new DPOTrainer({
      model,
      args: { ...args, outputDir: join(root, "sync"), refModelMixupAlpha: alpha },
      trainDataset: pairs,
      callbacks: [snapshot],
    });
    await trainer.train();
    expect(refAt[1]).toEqual(ref0);
    const afterSync2 = mix(policyAt[2]!, ref0, alpha);
    expectWeightsClose(refAt[2]!, afterSync2);
    expect(refAt[3]).toEqual(refAt[2]);
    expectWeightsClose(refAt[4]!, mix(policyAt[4]!, afterSync2, alpha));
    expect(maxWeightDiff(refAt[4]!, refAt[2]!)).toBeGreaterThan(1e-4);

    const plainModel = tinyModel(16);
    const plain = new DPOTrainer({
      model: plainModel,
      args: { ...args, outputDir: join(root, "sync-plain"), syncRefModel: false },
      trainDataset: pairs,
    });
    await plain.train();
    const a = trainLogs(trainer.state.logHistory);
    const b = trainLogs(plain.state.logHistory);
    expect(a.slice(0, 2)).toEqual(b.slice(0, 2));
    expect(Math.abs(a[2]!["rewards/margins"]! - b[2]!["rewards/margins"]!)).toBeGreaterThan(1e-6);
    for (const t of [trainer, plain]) t.dispose();
    for (const m of [model, plainModel]) m.dispose();
  });

  it("checkpoints carry the synced reference: 4 steps straight == 2 + save + resume + 2", async () => {
    const resumeArgs = { ...args, saveStrategy: "steps" as const, saveSteps: 2, refModelSyncSteps: 2, seed: 7 };
    const straightModel = tinyModel(17);
    const straight = new DPOTrainer({
      model: straightModel,
      args: { ...resumeArgs, outputDir: join(root, "sync-straight") },
      trainDataset: pairs,
    });
    await straight.train();

    const dir = join(root, "sync-resumed");
    const firstModel = tinyModel(17);
    const first = new DPOTrainer({
      model: firstModel,
      args: { ...resumeArgs, outputDir: dir },
      trainDataset: pairs,
      callbacks: [stopAtStep(2)],
    });
    await first.train();
    const ckpt = join(dir, "checkpoint-2");
    expect(existsSync(join(ckpt, REF_MODEL_FILE))).toBe(true);
    const index = JSON.parse(await readFile(join(ckpt, "model.safetensors.index.json"), "utf8"));
    expect(index.weight_map["ref_model.model.embed_tokens.weight"]).toBe(REF_MODEL_FILE);
    expect(index.weight_map["model.embed_tokens.weight"]).toBe("model.safetensors");

    const resumedModel = tinyModel(17); // a fresh process: the reference is again a copy of the start
    const resumed = new DPOTrainer({
      model: resumedModel,
      args: { ...resumeArgs, outputDir: dir },
      trainDataset: pairs,
    });
    await resumed.train({ resumeFromCheckpoint: true });
    const a = trainLogs(straight.state.logHistory);
    const b = trainLogs(resumed.state.logHistory);
    expect(b).toHaveLength(4);
    for (let i = 0; i < 4; i++) expect(Math.abs(b[i]!["loss"]! - a[i]!["loss"]!)).toBeLessThan(1e-6);
    expect(weightsOf(resumedModel)).toEqual(weightsOf(straightModel));
    expect(weightsOf(resumed.reference!.model!)).toEqual(weightsOf(straight.reference!.model!));
    for (const t of [straight, first, resumed]) t.dispose();
    for (const m of [straightModel, firstModel, resumedModel]) m.dispose();
  });

  it("is refused with TRL's messages for a PEFT (LoRA) model and with precomputeRefLogProbs", () => {
    const model = tinyModel(18);
    const lora = new LoraPlugin({ r: 2, loraAlpha: 4, targetModules: "all-linear" }, { seed: 0 });
    const peft = () =>
      new DPOTrainer({
        model,
        args: { ...args, outputDir: join(root, "sync-lora") },
        trainDataset: pairs,
        plugins: [lora],
      });
    expect(peft).toThrow(ConfigError);
    expect(peft).toThrow(/field "syncRefModel": You passed `sync_ref_model=True` while using a PEFT model/);
    expect(
      () =>
        new DPOTrainer({
          model: tinyModel(18),
          args: { syncRefModel: true, precomputeRefLogProbs: true },
          trainDataset: pairs,
        }),
    ).toThrow(
      /field "syncRefModel": You cannot use `sync_ref_model=True` together with `precompute_ref_log_probs=True`/,
    );
    model.dispose();
  });
});

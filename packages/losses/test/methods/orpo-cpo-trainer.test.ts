import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tf } from "@prefkit/core";
import { CPOTrainer, createTrainer, ORPOTrainer, type PreferenceTask } from "@prefkit/losses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handLogp, makePairs, tinyModel, trainLogs } from "../trainers/helpers.js";

let root = "";
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-orpo-cpo-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const base = { saveStrategy: "no" as const, loggingSteps: 1, perDeviceTrainBatchSize: 4 };
const logSigmoid = (x: number) => -Math.log1p(Math.exp(-x));
const log1mexp = (x: number) => Math.log(-Math.expm1(x));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe("reference-free preference trainers", () => {
  it("ORPO step 1 equals NLL(prompt + chosen) − β·mean(log σ(log_odds)) from hand-computed log-probs", async () => {
    const model = tinyModel(12);
    const pairs = makePairs(4, 31);
    const beta = 0.25;
    const pc = pairs.map((p) => handLogp(model, p.promptIds, p.chosenIds) / p.chosenIds.length);
    const pr = pairs.map((p) => handLogp(model, p.promptIds, p.rejectedIds) / p.rejectedIds.length);
    const seq = pairs.map((p) => [...p.promptIds, ...p.chosenIds]);
    const nll =
      -seq.reduce((s, ids) => s + handLogp(model, [ids[0]!], ids.slice(1)), 0) /
      seq.reduce((s, ids) => s + ids.length - 1, 0);
    const logOdds = pc.map((c, i) => c - pr[i]! - (log1mexp(c) - log1mexp(pr[i]!)));
    const ratio = logOdds.map((z) => logSigmoid(z));
    const t = new ORPOTrainer({
      model,
      args: { ...base, outputDir: join(root, "orpo"), maxSteps: 1, learningRate: 0, beta },
      trainDataset: pairs,
    });
    await t.train();
    const log = trainLogs(t.state.logHistory)[0]!;
    expect(log["loss"]).toBeCloseTo(nll - beta * mean(ratio), 5);
    expect(log["nll_loss"]).toBeCloseTo(nll, 5);
    expect(log["log_odds_ratio"]).toBeCloseTo(mean(ratio), 5);
    expect(log["log_odds_chosen"]).toBeCloseTo(mean(logOdds), 5);
    expect(log["rewards/chosen"]).toBeCloseTo(beta * mean(pc), 5);
    expect(log["logps/chosen"]).toBeCloseTo(mean(pc), 5);
    t.dispose();
    model.dispose();
  });

  it("CPO (sigmoid + NLL) and SimPO step 1 from hand-computed log-probs; both learn with no reference model", async () => {
    const pairs = makePairs(8, 41);
    const beta = 0.5;
    const model = tinyModel(13);
    const sc = pairs.slice(0, 4).map((p) => handLogp(model, p.promptIds, p.chosenIds));
    const sr = pairs.slice(0, 4).map((p) => handLogp(model, p.promptIds, p.rejectedIds));
    const chosenTokens = pairs.slice(0, 4).reduce((s, p) => s + p.chosenIds.length, 0);
    const nll = -sc.reduce((a, b) => a + b, 0) / chosenTokens;
    const t = new CPOTrainer({
      model,
      args: { ...base, outputDir: join(root, "cpo"), maxSteps: 20, learningRate: 2e-2, beta },
      trainDataset: pairs.slice(0, 4),
    });
    // No reference at all: no frozen copy of the weights, no reference forward.
    expect((t.task as PreferenceTask).options.reference).toBeUndefined();
    await t.train();
    const logs = trainLogs(t.state.logHistory);
    const sigmoid = mean(sc.map((c, i) => -logSigmoid(beta * (c - sr[i]!))));
    expect(logs[0]!["loss"]).toBeCloseTo(sigmoid + nll, 5);
    expect(logs[0]!["nll_loss"]).toBeCloseTo(nll, 5);
    expect(logs.at(-1)!["rewards/margins"]).toBeGreaterThan(logs[0]!["rewards/margins"]!);
    expect(logs.at(-1)!["loss"]).toBeLessThan(logs[0]!["loss"]!);
    t.dispose();
    model.dispose();

    // SimPO through createTrainer: per-token means, logits − γ/β, no NLL (alphapo sugar sets cpoAlpha 0 too).
    const m2 = tinyModel(13);
    const gamma = 0.3;
    const mc = pairs.slice(0, 4).map((p) => handLogp(m2, p.promptIds, p.chosenIds) / p.chosenIds.length);
    const mr = pairs.slice(0, 4).map((p) => handLogp(m2, p.promptIds, p.rejectedIds) / p.rejectedIds.length);
    const simpo = createTrainer("cpo", {
      model: m2,
      args: {
        ...base,
        outputDir: join(root, "simpo"),
        maxSteps: 1,
        learningRate: 0,
        beta,
        lossType: "simpo",
        simpoGamma: gamma,
        cpoAlpha: 0,
      },
      trainDataset: pairs.slice(0, 4),
    });
    await simpo.train();
    const expected = mean(mc.map((c, i) => -logSigmoid(beta * (c - mr[i]! - gamma / beta))));
    expect(trainLogs(simpo.state.logHistory)[0]!["loss"]).toBeCloseTo(expected, 5);
    expect(trainLogs(simpo.state.logHistory)[0]!["nll_loss"]).toBe(0);
    simpo.optimizer.dispose();
    m2.dispose();
  });
});

/**
 * The DPO machinery that reads every weight of a model, with a policy loaded in 16 bits (issue 15 item 1):
 * the reference fingerprint (the key of the precomputed log-prob cache) sees the 16-bit weights, and
 * TR-DPO, which rewrites and checkpoints the reference's variables, refuses a 16-bit reference.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, tf } from "@prefkit/core";
import { DPOTrainer, resolveReference, weightsFingerprint } from "@prefkit/losses";
import { AutoModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePairs, TINY_LLAMA } from "./helpers.js";

let root: string;
let dir: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-dpo-16bit-"));
  dir = join(root, "bf16");
  const model = AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 12 });
  await model.savePretrained(dir, { dtype: "BF16" });
  model.dispose();
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("DPO with a policy loaded as bf16", () => {
  it("the weights fingerprint covers the 16-bit weights, whatever their storage", async () => {
    const half = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
    const full = await AutoModelForCausalLM.fromPretrained(dir);
    expect(half.halfPrecisionWeights().size).toBeGreaterThan(0);
    // Same values in 16 or 32 bits: same fingerprint.
    expect(weightsFingerprint(half)).toBe(weightsFingerprint(full));
    // A change to one 16-bit weight changes it (it is not left out with the non-variables).
    const before = weightsFingerprint(half);
    const w = half.halfPrecisionWeights().get("model.layers.0.mlp.down_proj.weight")!;
    const values = w.float32();
    values[0] = values[0]! + 0.5;
    w.assign(values);
    expect(weightsFingerprint(half)).not.toBe(before);
    // The frozen-copy reference of a 16-bit policy fingerprints like the policy it copies.
    const policy = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
    const reference = resolveReference(policy, undefined, false);
    expect(reference.kind).toBe("model");
    expect(weightsFingerprint(reference.model!)).toBe(weightsFingerprint(full));
    reference.owned!.dispose();
    for (const m of [half, full, policy]) m.dispose();
  });

  it("TR-DPO (syncRefModel) refuses a reference holding 16-bit weights, in one line", async () => {
    const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
    const build = () =>
      new DPOTrainer({
        model,
        args: {
          outputDir: join(root, "sync"),
          saveStrategy: "no",
          maxSteps: 2,
          syncRefModel: true,
          refModelSyncSteps: 1,
        },
        trainDataset: makePairs(2),
      });
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(
      /^field "syncRefModel": TR-DPO updates the reference's weights, but this reference keeps frozen weights in 16 bits/,
    );
    model.dispose();
    // A float32 load of the same checkpoint trains with TR-DPO as before.
    const full = await AutoModelForCausalLM.fromPretrained(dir);
    const t = new DPOTrainer({
      model: full,
      args: {
        outputDir: join(root, "sync32"),
        saveStrategy: "no",
        maxSteps: 2,
        syncRefModel: true,
        refModelSyncSteps: 1,
      },
      trainDataset: makePairs(2),
    });
    await t.train();
    t.dispose();
    full.dispose();
  });
});

/**
 * Issue 15 item 1: what "trainable" means for a model loaded in 16 bits. Full fine-tuning trains float32
 * masters of every weight while the DPO reference (a frozen copy) stays 16-bit and shares the policy's
 * bits; LoRA keeps the whole base 16-bit and frozen and saves the adapter in PEFT format; a reward
 * model's score head is a float32 variable. Because a bf16 checkpoint loaded as bf16 holds exactly the
 * values a float32 load of it holds, and compute is float32, each run must reproduce the float32-loaded
 * run to float32 noise.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tf } from "@prefkit/core";
import { DPOTrainer, RewardTrainer } from "@prefkit/losses";
import {
  AutoModelForCausalLM,
  AutoModelForSequenceClassification,
  HalfPrecisionLinear,
  LoraPlugin,
  PeftModel,
  type PeftModelForCausalLM,
  type PreTrainedModelForCausalLM,
  readSafetensorsHeader,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_LLAMA } from "../../../../test/helpers/tiny-llama.js";
import { makePairs } from "../../../losses/test/trainers/helpers.js";

let root: string;
/** A bf16 checkpoint of a tiny random Llama (tied and untied variants). */
const checkpoints: Record<"tied" | "untied", string> = { tied: "", untied: "" };
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-load16-train-"));
  for (const tied of [true, false]) {
    const model = AutoModelForCausalLM.fromConfig({ ...TINY_LLAMA, tie_word_embeddings: tied }, { seed: 4 });
    const dir = join(root, tied ? "tied" : "untied");
    await model.savePretrained(dir, { dtype: "BF16" });
    model.dispose();
    checkpoints[tied ? "tied" : "untied"] = dir;
  }
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const ARGS = {
  saveStrategy: "no" as const,
  loggingSteps: 1,
  learningRate: 1e-2,
  lrSchedulerType: "constant" as const,
  maxSteps: 3,
  perDeviceTrainBatchSize: 2,
};

const losses = (t: { state: { logHistory: Array<Record<string, number>> } }) =>
  t.state.logHistory.filter((e) => "loss" in e).map((e) => e["loss"]!);

function expectCloseRelative(a: number[], b: number[], tol: number) {
  expect(a).toHaveLength(b.length);
  for (let i = 0; i < a.length; i++)
    expect(Math.abs(a[i]! - b[i]!), `[${i}]`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(b[i]!)));
}

function values(model: PreTrainedModelForCausalLM): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [n, v] of model.namedParameters()) out.set(n, (v.dataSync() as Float32Array).slice());
  for (const [n, w] of model.halfPrecisionWeights()) out.set(n, w.float32());
  return out;
}

describe.each(["tied", "untied"] as const)("a bf16 checkpoint loaded as bf16 (%s embeddings)", (kind) => {
  it("full fine-tuning: float32 masters for every weight, a 16-bit reference that shares the loaded bits", async () => {
    const dir = checkpoints[kind];
    const pairs = makePairs(4, 5);
    const model16 = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
    const model32 = await AutoModelForCausalLM.fromPretrained(dir);
    const loaded = model16.halfPrecisionWeights();
    expect([...loaded.values()].every((w) => w.trainable)).toBe(true); // full fine-tuning is the default
    const loadedBits = new Map([...loaded].map(([n, w]) => [n, w.bits]));
    const snapshot = new Map([...loaded].map(([n, w]) => [n, w.bits.slice()]));

    const t16 = new DPOTrainer({
      model: model16,
      args: { ...ARGS, outputDir: join(root, `full16-${kind}`) },
      trainDataset: pairs,
    });
    const t32 = new DPOTrainer({
      model: model32,
      args: { ...ARGS, outputDir: join(root, `full32-${kind}`) },
      trainDataset: pairs,
    });
    // The reference is a frozen copy, 16-bit, over the very same bit arrays (no float32 detour, no copy).
    expect(t16.reference?.kind).toBe("model");
    const ref = t16.reference!.model as PreTrainedModelForCausalLM;
    expect(ref.dtype).toBe("bfloat16");
    expect([...ref.halfPrecisionWeights().keys()].sort()).toEqual([...loaded.keys()].sort());
    for (const [n, w] of ref.halfPrecisionWeights()) {
      expect(w.bits, n).toBe(loadedBits.get(n));
      expect(w.trainable).toBe(false);
    }
    expect(ref.trainableVariables()).toHaveLength(0);

    await t16.train();
    await t32.train();
    // The policy trained float32 masters of every weight: nothing is left in 16 bits.
    expect(model16.halfPrecisionWeights().size).toBe(0);
    expect(model16.trainableVariables().length).toBe(model32.trainableVariables().length);
    for (const m of model16.linearModules().values()) expect(m.describe?.()?.kind).toBe("dense");
    // Same values, float32 compute: the bf16 run is the float32 run.
    expectCloseRelative(losses(t16), losses(t32), 1e-5);
    expect(losses(t16)[2]!).toBeLessThan(losses(t16)[0]! - 0.01);
    const a = values(model16);
    const b = values(model32);
    for (const [n, v] of b) {
      const w = a.get(n)!;
      for (let i = 0; i < v.length; i++) expect(Math.abs(w[i]! - v[i]!), n).toBeLessThanOrEqual(1e-5);
    }
    // The reference did not move: same arrays, same bits.
    for (const [n, w] of ref.halfPrecisionWeights()) {
      expect(w.bits).toBe(loadedBits.get(n));
      expect(Buffer.from(w.bits.buffer).equals(Buffer.from(snapshot.get(n)!.buffer)), n).toBe(true);
    }
    t16.dispose();
    t32.dispose();
    model16.dispose();
    model32.dispose();
  });

  it("LoRA: the base stays 16-bit and frozen, the adapter trains and is saved in PEFT format", async () => {
    const dir = checkpoints[kind];
    const pairs = makePairs(4, 6);
    const numTensors = tf.memory().numTensors;
    const run = async (dtype: "bfloat16" | "float32", name: string) => {
      const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype });
      const lora = new LoraPlugin({ r: 4, loraAlpha: 8, targetModules: "all-linear" }, { seed: 0 });
      const trainer = new DPOTrainer({
        model,
        args: { ...ARGS, saveStrategy: "steps", saveSteps: 3, outputDir: join(root, name) },
        trainDataset: pairs,
        plugins: [lora],
      });
      await trainer.train();
      return { model, trainer, peft: lora.model as PeftModelForCausalLM };
    };
    const r16 = await run("bfloat16", `lora16-${kind}`);
    const r32 = await run("float32", `lora32-${kind}`);
    expect(r16.trainer.reference?.kind).toBe("adapters-off");
    // No weight of the base left 16-bit storage or became trainable: the optimizer saw the adapters only.
    const half = r16.model.halfPrecisionWeights();
    expect(half.size).toBe(r16.model.weights.all().size - r16.model.weights.variables().size);
    expect([...r16.model.weights.variables().keys()].every((n) => n.endsWith("norm.weight"))).toBe(true);
    expect([...half.values()].some((w) => w.trainable)).toBe(false);
    for (const layer of r16.peft.loraModules().values()) expect(layer.base).toBeInstanceOf(HalfPrecisionLinear);
    const names = r16.peft
      .trainableVariables()
      .map((v) => [...r16.peft.namedParameters()].find(([, p]) => p === v)![0]);
    expect(names.every((n) => /lora_[AB]\.weight$/.test(n))).toBe(true);
    expectCloseRelative(losses(r16.trainer), losses(r32.trainer), 1e-5);

    // The checkpoint is PEFT's adapter directory, float32, as for a float32 base.
    const ckpt = join(root, `lora16-${kind}`, "checkpoint-3");
    const config = JSON.parse(await readFile(join(ckpt, "adapter_config.json"), "utf8"));
    expect(config).toMatchObject({ peft_type: "LORA", r: 4, lora_alpha: 8, task_type: "CAUSAL_LM" });
    const header = await readSafetensorsHeader(join(ckpt, "adapter_model.safetensors"));
    expect(header.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")?.dtype).toBe("F32");
    expect([...header.tensors.keys()].every((k) => /^base_model\.model\..*\.lora_[AB]\.weight$/.test(k))).toBe(true);
    const header32 = await readSafetensorsHeader(
      join(root, `lora32-${kind}`, "checkpoint-3", "adapter_model.safetensors"),
    );
    expect([...header.tensors.keys()]).toEqual([...header32.tensors.keys()]);
    // It loads back onto a fresh bf16 base and gives the trained model's logits exactly.
    const ids = [[1, 3, 5, 7, 9]];
    const trained = tf.tidy(() => r16.peft.forward({ inputIds: ids }).logits.dataSync());
    const fresh = await PeftModel.fromPretrained(
      await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" }),
      ckpt,
    );
    const reloaded = tf.tidy(() => fresh.forward({ inputIds: ids }).logits.dataSync());
    expect(Math.max(...trained.map((x, i) => Math.abs(x - reloaded[i]!)))).toBe(0);
    fresh.dispose();
    for (const r of [r16, r32]) {
      r.trainer.dispose();
      r.peft.dispose();
    }
    expect(tf.memory().numTensors).toBe(numTensors);
  });
});

describe("a reward model loaded as bf16", () => {
  it("LoRA reward training: the body stays 16-bit, the score head trains in float32, as the float32 run", async () => {
    // A reward-model checkpoint in bf16 (its fresh head rounded to bf16, so both loads hold the same values).
    const dir = join(root, "rm-bf16");
    const start = await AutoModelForSequenceClassification.fromPretrained(checkpoints.untied, {
      dtype: "bfloat16",
      numLabels: 1,
      seed: 1,
    });
    await start.savePretrained(dir);
    start.dispose();
    const header = await readSafetensorsHeader(join(dir, "model.safetensors"));
    expect(new Set([...header.tensors.values()].map((e) => e.dtype))).toEqual(new Set(["BF16"]));
    const pairs = makePairs(4, 8);
    const run = async (dtype: "bfloat16" | "float32") => {
      const model = await AutoModelForSequenceClassification.fromPretrained(dir, { dtype, numLabels: 1, seed: 1 });
      const lora = new LoraPlugin({ r: 4, loraAlpha: 8, targetModules: "all-linear" }, { seed: 0 });
      const trainer = new RewardTrainer({
        model,
        args: { ...ARGS, outputDir: join(root, `rm-${dtype}`) },
        trainDataset: pairs,
        plugins: [lora],
      });
      await trainer.train();
      return { model, trainer, lora };
    };
    const r16 = await run("bfloat16");
    const r32 = await run("float32");
    const peft = r16.lora.model!;
    const trainable = new Map([...peft.namedParameters()].filter(([, v]) => v.trainable));
    expect(trainable.has("base_model.model.score.weight")).toBe(true); // PEFT's modules_to_save copy, float32
    expect([...trainable.keys()].filter((k) => !/lora_[AB]\.weight$/.test(k))).toEqual([
      "base_model.model.score.weight",
    ]);
    expect([...r16.model.halfPrecisionWeights().values()].some((w) => w.trainable)).toBe(false);
    expect(r16.model.halfPrecisionWeights().has("model.layers.0.mlp.up_proj.weight")).toBe(true);
    expectCloseRelative(losses(r16.trainer), losses(r32.trainer), 1e-5);
    expect(losses(r16.trainer)[2]!).not.toBe(losses(r16.trainer)[0]!);
    r16.trainer.dispose();
    r32.trainer.dispose();
    peft.dispose();
    r32.lora.model!.dispose();
  });
});

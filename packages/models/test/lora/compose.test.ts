// LoRA + AMP (bf16 storage of the frozen base, loss scaler on) composed on a DPO run, a PPO run and a
// reward-model run, on tiny random models: each trains, leaves the base untouched, trains only the adapter
// (+ score / value head), saves a PEFT adapter directory, and leaves no tensor behind.
import { readdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Callback, Rng, type TokenizedPreference, type TokenizerLike, tf } from "@prefkit/core";
import { DPOTrainer, PPOTrainer, type RewardFunction, RewardTrainer } from "@prefkit/losses";
import {
  AmpPlugin,
  AutoModelForCausalLM,
  AutoModelForSequenceClassification,
  float32ToBf16,
  getPeftModel,
  HalfPrecisionLinear,
  LoraPlugin,
  type PeftModel,
  readSafetensors,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_LLAMA_WITH_SPECIAL_TOKENS } from "../../../../test/helpers/tiny-llama.js";

const TINY = TINY_LLAMA_WITH_SPECIAL_TOKENS;
const PROJECTIONS = 7; // q k v o gate up down in the one layer

function pairs(n: number, seed = 5): TokenizedPreference[] {
  const r = new Rng(seed);
  const seq = (len: number, parity: number) => Array.from({ length: len }, () => 4 + 2 * r.int(6) + parity);
  return Array.from({ length: n }, () => ({
    promptIds: [1, 3 + r.int(13), 3 + r.int(13)],
    chosenIds: seq(1 + r.int(3), 0),
    rejectedIds: seq(1 + r.int(3), 1),
  }));
}

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-compose-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

type Params = { namedParameters(): Map<string, tf.Variable> };
// A copy: on cpu with the native addon, dataSync() is the variable's own array, which AdamW updates in place.
const bytesOf = (v: tf.Tensor) => {
  const d = (v.dataSync() as Float32Array).slice();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
};
/** HF name → float32 bytes of every parameter of the plain model. */
const snapshot = (m: Params) => new Map([...m.namedParameters()].map(([k, v]) => [k, bytesOf(v)]));

/**
 * The base is untouched: every 16-bit-stored projection holds exactly bf16(original weight), and every
 * other frozen parameter (embeddings, norms, lm_head) equals the original byte for byte.
 */
function expectBaseUnchanged(peft: PeftModel, original: Map<string, Buffer>, stored: number) {
  let half = 0;
  for (const [name, layer] of peft.loraModules()) {
    expect(layer.base, name).toBeInstanceOf(HalfPrecisionLinear);
    const buf = original.get(`${name}.weight`)!;
    const f32 = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    expect(
      Buffer.from((layer.base as HalfPrecisionLinear).bits.buffer).equals(Buffer.from(float32ToBf16(f32).buffer)),
    ).toBe(true);
    half++;
  }
  expect(half).toBe(stored);
  let frozen = 0;
  for (const [k, v] of peft.namedParameters()) {
    if (v.trainable) continue;
    const hf = k.replace(/^base_model\.model\./, "").replace(".original_module.", ".");
    expect(original.has(hf), k).toBe(true);
    expect(bytesOf(v).equals(original.get(hf)!), k).toBe(true);
    frozen++;
  }
  expect(frozen).toBeGreaterThan(0);
}

/** Trainable names match `allowed`, and every one moved (B starts at zero, so an adapter that trained is non-zero). */
function expectOnlyAdaptersTrained(trainable: Map<string, Buffer>, after: Params, allowed: RegExp) {
  const now = new Map([...after.namedParameters()].map(([k, v]) => [k, v] as const));
  expect(trainable.size).toBeGreaterThan(0);
  for (const [k, before] of trainable) {
    expect(k).toMatch(allowed);
    if (k.includes("lora_B")) expect(bytesOf(now.get(k)!).equals(before), k).toBe(false);
  }
}

const trainableSnapshot = (m: Params) =>
  new Map([...m.namedParameters()].filter(([, v]) => v.trainable).map(([k, v]) => [k, bytesOf(v)]));

describe("LoRA + AMP compose", () => {
  it("(a) DPO: loss falls from ln 2, reference = adapters off, base untouched, adapter checkpoint", async () => {
    const baseline = tf.memory().numTensors;
    const model = AutoModelForCausalLM.fromConfig(TINY, { seed: 3 });
    const original = snapshot(model);
    const lora = new LoraPlugin({ r: 4, loraAlpha: 8, targetModules: "all-linear" }, { seed: 0 });
    const amp = new AmpPlugin({ dtype: "bfloat16", lossScaler: { enabled: true } });
    let trainable = new Map<string, Buffer>();
    const atStart: Callback = {
      onTrainBegin: () => {
        trainable = trainableSnapshot(lora.model!);
      },
    };
    const outputDir = join(root, "dpo");
    const t = new DPOTrainer({
      model,
      args: { outputDir, maxSteps: 4, perDeviceTrainBatchSize: 4, learningRate: 5e-2, loggingSteps: 1, saveSteps: 4 },
      trainDataset: pairs(8),
      plugins: [amp, lora],
      callbacks: [atStart],
    });
    await t.train();
    expect(t.reference?.kind).toBe("adapters-off");
    expect(t.reference?.owned).toBeUndefined();
    const logs = t.state.logHistory.filter((e) => "loss" in e);
    expect(logs[0]!["loss"]).toBeCloseTo(Math.LN2, 6);
    expect(logs[3]!["loss"]).toBeLessThan(logs[0]!["loss"]! - 0.01);
    expect(logs.map((e) => e["skipped_steps"])).toEqual([0, 0, 0, 0]);
    expect(amp.lossScaler.getScale()).toBe(65536);
    const peft = lora.model!;
    expectBaseUnchanged(peft, original, PROJECTIONS);
    expectOnlyAdaptersTrained(trainable, peft, /\.lora_[AB]\.weight$/);
    const ckpt = join(outputDir, "checkpoint-4");
    const files = await readdir(ckpt);
    expect(files).toContain("adapter_config.json");
    expect(files).not.toContain("model.safetensors");
    const adapter = await readSafetensors(join(ckpt, "adapter_model.safetensors"));
    expect(adapter.tensors.size).toBe(PROJECTIONS * 2);
    t.dispose();
    peft.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("(b) PPO with a rule reward: reference = adapters off (no frozen copy), finite losses, base untouched", async () => {
    const baseline = tf.memory().numTensors;
    const model = AutoModelForCausalLM.fromConfig(TINY, {
      seed: 1,
      generationConfig: { bos_token_id: 1, eos_token_id: 2 },
    });
    const original = snapshot(model);
    const tokenizer: TokenizerLike = {
      encode: (text) => [...text].map((ch) => ch.charCodeAt(0) - 97),
      decode: (ids, o) =>
        ids
          .filter((id) => !(o?.skipSpecialTokens && id <= 2))
          .map((id) => String.fromCharCode(97 + id))
          .join(""),
      applyChatTemplate: (messages) => messages.map((m) => m.content).join(""),
      hasChatTemplate: false,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: 0,
    };
    const countF: RewardFunction = (completions) => completions.map((c) => [...c].filter((ch) => ch === "f").length);
    const r = new Rng(3);
    const prompts = Array.from({ length: 8 }, () => ({ inputIds: [1, 3 + r.int(13), 3 + r.int(13)] }));
    const lora = new LoraPlugin({ r: 4, loraAlpha: 8, targetModules: "all-linear" }, { seed: 0 });
    const amp = new AmpPlugin({ dtype: "bfloat16", lossScaler: { enabled: true } });
    let trainable = new Map<string, Buffer>();
    let trainer: PPOTrainer | undefined;
    const atStart: Callback = {
      onTrainBegin: () => {
        trainable = trainableSnapshot(trainer!.policyAndValue);
      },
    };
    const outputDir = join(root, "ppo");
    trainer = new PPOTrainer({
      model,
      rewardModel: countF,
      trainDataset: prompts,
      processingClass: tokenizer,
      plugins: [lora, amp],
      callbacks: [atStart],
      args: {
        outputDir,
        perDeviceTrainBatchSize: 4,
        numMiniBatches: 2,
        numPpoEpochs: 1,
        responseLength: 4,
        learningRate: 3e-3,
        loggingSteps: 1,
        maxSteps: 2,
        saveSteps: 2,
        valueHead: "policy",
        seed: 5,
      },
    });
    await trainer.train();
    expect(trainer.reference?.kind).toBe("adapters-off");
    expect(trainer.reference?.owned).toBeUndefined();
    const logs = trainer.state.logHistory.filter((e) => "objective/kl" in e);
    expect(logs).toHaveLength(2);
    for (const e of logs) {
      expect(Number.isFinite(e["loss"]!)).toBe(true);
      expect(e["skipped_steps"]).toBe(0);
    }
    expect(Math.abs(logs[0]!["objective/kl"]!)).toBeLessThan(1e-5); // first rollout: policy = reference (B = 0), up to KV-cache rounding
    // 2 updates × 2 mini-batches: the scaler saw 4 finite optimizer steps
    expect(amp.lossScaler.growthTrackerValue).toBe(4);
    const peft = lora.model!;
    expectBaseUnchanged(peft, original, PROJECTIONS);
    expectOnlyAdaptersTrained(
      trainable,
      trainer.policyAndValue,
      /(\.lora_[AB]\.weight|^v_head\.summary\.(weight|bias))$/,
    );
    const files = await readdir(join(outputDir, "checkpoint-2"));
    expect(files).toContain("adapter_config.json");
    expect(files).toContain("adapter_model.safetensors");
    expect(files).not.toContain("model.safetensors");
    trainer.dispose();
    peft.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("(c) reward model with modulesToSave: ['score']: loss falls, score + adapters trained, checkpoint holds score", async () => {
    const baseline = tf.memory().numTensors;
    const rm = AutoModelForSequenceClassification.fromConfig(TINY, { numLabels: 1, seed: 2 });
    const original = snapshot(rm);
    const peft = getPeftModel(
      rm,
      { r: 4, loraAlpha: 8, targetModules: ["q_proj", "v_proj", "up_proj"], modulesToSave: ["score"] },
      { seed: 0 },
    );
    const trainable = trainableSnapshot(peft);
    const amp = new AmpPlugin({ dtype: "bfloat16", lossScaler: { enabled: true } });
    const outputDir = join(root, "rm");
    const t = new RewardTrainer({
      model: peft,
      args: { outputDir, maxSteps: 4, perDeviceTrainBatchSize: 4, learningRate: 5e-2, loggingSteps: 1, saveSteps: 4 },
      trainDataset: pairs(8, 11),
      plugins: [amp],
    });
    await t.train();
    const logs = t.state.logHistory.filter((e) => "loss" in e);
    expect(logs.every((e) => Number.isFinite(e["loss"]!))).toBe(true);
    expect(logs[3]!["loss"]).toBeLessThan(logs[0]!["loss"]!);
    expect(logs.map((e) => e["skipped_steps"])).toEqual([0, 0, 0, 0]);
    // q, v, up are LoRA-wrapped with a bf16 base; the other frozen projections are stored in bf16 as well
    expect(amp.report!.converted).toHaveLength(PROJECTIONS);
    expectBaseUnchanged(peft, original, 3);
    expectOnlyAdaptersTrained(trainable, peft, /(\.lora_[AB]\.weight|^base_model\.model\.score\.weight)$/);
    expect(
      bytesOf(peft.namedParameters().get("base_model.model.score.weight")!).equals(original.get("score.weight")!),
    ).toBe(false);
    const ckpt = join(outputDir, "checkpoint-4");
    const files = await readdir(ckpt);
    expect(files).toContain("adapter_config.json");
    expect(files).not.toContain("model.safetensors");
    const adapter = await readSafetensors(join(ckpt, "adapter_model.safetensors"));
    expect([...adapter.tensors.keys()].filter((k) => !k.includes(".lora_"))).toEqual(["base_model.model.score.weight"]);
    expect(adapter.tensors.size).toBe(3 * 2 + 1);
    t.dispose();
    peft.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });
});

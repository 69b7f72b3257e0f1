// DPO with LoRA (and LoRA + AMP) on the real stories260K checkpoint, through the DPOTrainer of @prefkit/losses.
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tf } from "@prefkit/core";
import { DPOTrainer } from "@prefkit/losses";
import {
  AmpPlugin,
  AutoModelForCausalLM,
  AutoTokenizer,
  float32ToBf16,
  HalfPrecisionLinear,
  LoraPlugin,
  PeftModel,
  PeftModelForCausalLM,
  readSafetensors,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";

const storiesDir = sharedPath("assets/stories260K");
const ROWS = [
  { prompt: "Once upon a time, there was a", chosen: " little girl.", rejected: " big dog." },
  { prompt: "Lily liked to", chosen: " play in the park.", rejected: " eat." },
  { prompt: "The sun was", chosen: " warm.", rejected: " very very cold and dark." },
  { prompt: "Tom had a red", chosen: " ball.", rejected: " car that was fast." },
];
const ARGS = {
  loggingSteps: 1,
  learningRate: 1e-2,
  lrSchedulerType: "constant" as const,
  perDeviceTrainBatchSize: 4,
  maxSteps: 3,
};

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-dpo-lora-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function baseBytes(model: { namedParameters(): Map<string, tf.Variable> }): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of model.namedParameters()) {
    const d = v.dataSync() as Float32Array;
    out.set(k, Buffer.from(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)));
  }
  return out;
}

describe.skipIf(!storiesDir)("DPO with LoRA on stories260K", () => {
  it("reference = adapters off (no copy): loss starts at ln 2 and falls; only adapters change; checkpoints hold the adapter in PEFT format", async () => {
    const dir = storiesDir!;
    const tok = await AutoTokenizer.fromPretrained(dir);
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    const before = baseBytes(model);
    const numTensors = tf.memory().numTensors;
    const lora = new LoraPlugin({ r: 8, loraAlpha: 16, targetModules: "all-linear" }, { seed: 0 });
    const outputDir = join(root, "lora");
    const t = new DPOTrainer({
      model,
      args: { ...ARGS, outputDir, saveStrategy: "steps", saveSteps: 3 },
      trainDataset: ROWS,
      processingClass: tok,
      plugins: [lora],
    });
    await t.train();
    expect(t.reference?.kind).toBe("adapters-off");
    expect(t.reference?.owned).toBeUndefined();
    const peft = lora.model as PeftModelForCausalLM;
    expect(peft).toBeInstanceOf(PeftModelForCausalLM);
    const logs = t.state.logHistory.filter((e) => "loss" in e);
    expect(logs).toHaveLength(3);
    expect(Math.abs(logs[0]!["loss"]! - Math.LN2)).toBeLessThan(1e-6);
    expect(logs[0]!["rewards/margins"]).toBe(0);
    expect(logs[2]!["loss"]).toBeLessThan(logs[0]!["loss"]! - 0.05);
    // only adapters changed: the base tensors byte for byte
    for (const [k, bytes] of baseBytes(model)) {
      if (k.includes(".lora_")) continue;
      expect(bytes.equals(before.get(k)!), k).toBe(true);
    }
    // the checkpoint holds only the adapter, in PEFT's format, and optimizer slots only for it
    const ckpt = join(outputDir, "checkpoint-3");
    const files = (await readdir(ckpt)).sort();
    expect(files).toContain("adapter_config.json");
    expect(files).toContain("adapter_model.safetensors");
    expect(files).not.toContain("model.safetensors");
    const adapter = await readSafetensors(join(ckpt, "adapter_model.safetensors"));
    expect(adapter.tensors.size).toBe(5 * 7 * 2);
    expect(
      [...adapter.tensors.keys()].every((k) => k.startsWith("base_model.model.model.layers.") && k.includes(".lora_")),
    ).toBe(true);
    const optimizer = await readSafetensors(join(ckpt, "optimizer.safetensors"));
    for (const k of optimizer.tensors.keys()) if (k !== "iter") expect(k).toMatch(/\.lora_[AB]\.weight\//);
    const config = JSON.parse(await readFile(join(ckpt, "adapter_config.json"), "utf8"));
    expect(config).toMatchObject({
      peft_type: "LORA",
      r: 8,
      lora_alpha: 16,
      task_type: "CAUSAL_LM",
      base_model_name_or_path: dir,
    });
    // the checkpoint loads back onto a fresh base and gives the trained model's logits
    const ids = [[1, 403, 407, 261, 378, 422]];
    const trained = tf.tidy(() => peft.forward({ inputIds: ids }).logits.dataSync());
    const fresh = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(dir), ckpt);
    const reloaded = tf.tidy(() => fresh.forward({ inputIds: ids }).logits.dataSync());
    expect(Math.max(...trained.map((x, i) => Math.abs(x - reloaded[i]!)))).toBe(0);
    fresh.dispose();
    t.dispose();
    // the adapters, and nothing else, were added (then freed with the PeftModel's unload)
    peft.unload();
    expect(tf.memory().numTensors).toBe(numTensors);
    model.dispose();
  });

  it("LoRA + AMP (bf16 base storage): the reference is still the adapters-off model, loss starts at ln 2 and falls", async () => {
    const dir = storiesDir!;
    const tok = await AutoTokenizer.fromPretrained(dir);
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    const amp = new AmpPlugin({ dtype: "bfloat16" });
    const lora = new LoraPlugin({ r: 8, loraAlpha: 16, loraDropout: 0.05, targetModules: "all-linear" }, { seed: 0 });
    const t = new DPOTrainer({
      model,
      args: { ...ARGS, outputDir: join(root, "lora-amp"), saveStrategy: "no" },
      trainDataset: ROWS,
      processingClass: tok,
      plugins: [amp, lora], // AMP acts in onModelLoaded, after LoRA wrapped the model, whatever the order
    });
    await t.train();
    expect(t.reference?.kind).toBe("adapters-off");
    expect(amp.report!.converted).toHaveLength(5 * 7);
    expect(amp.report!.bytesAfter * 2).toBe(amp.report!.bytesBefore);
    const peft = lora.model as PeftModelForCausalLM;
    expect(peft.loraModules().get("model.layers.0.mlp.up_proj")!.base).toBeInstanceOf(HalfPrecisionLinear);
    expect(amp.lossScaler.enabled).toBe(false); // cpu computes in float32: the scaler is a pass-through
    const logs = t.state.logHistory.filter((e) => "loss" in e);
    expect(Math.abs(logs[0]!["loss"]! - Math.LN2)).toBeLessThan(1e-6);
    expect(logs[2]!["loss"]).toBeLessThan(logs[0]!["loss"]! - 0.05);
    // Merging into a 16-bit base rounds base + scaling·B·A back to bf16, as PEFT merges into a bf16 base.
    const upProj = peft.loraModules().get("model.layers.0.mlp.up_proj")!;
    const expected = tf.tidy(() =>
      float32ToBf16(
        tf.add((upProj.base as HalfPrecisionLinear).upcast(), upProj.deltaWeight()).dataSync() as Float32Array,
      ),
    );
    const merged = peft.mergeAndUnload();
    const mergedUp = merged.linearModules().get("model.layers.0.mlp.up_proj") as HalfPrecisionLinear;
    expect(mergedUp).toBeInstanceOf(HalfPrecisionLinear);
    expect(Buffer.from(mergedUp.bits.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    t.dispose();
    merged.dispose();
    expect(existsSync(join(root, "lora-amp", "checkpoint-3"))).toBe(false);
  });
});

/**
 * The pure parts of the `scale` bench (bench/scale.mjs, bench/random-checkpoint.mjs): its config table against
 * the published configs, the row planning (what is skipped and why), the ratios, and the cached random
 * checkpoint (written once, deterministic, loadable as bf16). Timings are the bench's, never asserted here.
 */
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tf } from "@prefkit/core";
import {
  adapterFor,
  AutoModelForCausalLM,
  expectedWeightShapes,
  readSafetensors,
  validateModelConfig,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeRandomCheckpoint } from "../../bench/random-checkpoint.mjs";
import {
  attachRatios,
  cachedRandomCheckpoint,
  checkpointCacheDir,
  parameterCount,
  SCALE_MODELS,
  scaleShape,
  scaleSkips,
  scaleSpec,
} from "../../bench/scale.mjs";

beforeAll(async () => {
  await tf.ready(); // the default run's backend (the native run's engine is already up)
});

const made: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "prefkit-scale-test-"));
  made.push(dir);
  return dir;
}
afterAll(async () => {
  for (const d of made) await rm(d, { recursive: true, force: true });
});

type Config = Record<string, unknown>;
const config = (key: string): Config => (SCALE_MODELS as Record<string, { config: Config }>)[key]!.config;

describe("scale bench: the shapes", () => {
  it("are the published configs of Qwen2.5-0.5B, Qwen2.5-1.5B and Mistral-7B-v0.1", () => {
    // The fields of each model's config.json on the Hugging Face Hub.
    expect(config("qwen2.5-0.5b")).toMatchObject({
      model_type: "qwen2",
      hidden_size: 896,
      num_hidden_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      intermediate_size: 4864,
      vocab_size: 151936,
      tie_word_embeddings: true,
      rope_theta: 1000000,
      rms_norm_eps: 1e-6,
    });
    expect(config("qwen2.5-1.5b")).toMatchObject({
      model_type: "qwen2",
      hidden_size: 1536,
      num_hidden_layers: 28,
      num_attention_heads: 12,
      num_key_value_heads: 2,
      intermediate_size: 8960,
      vocab_size: 151936,
      tie_word_embeddings: true,
      rope_theta: 1000000,
      rms_norm_eps: 1e-6,
    });
    expect(config("mistral-7b")).toMatchObject({
      model_type: "mistral",
      hidden_size: 4096,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      intermediate_size: 14336,
      vocab_size: 32000,
      tie_word_embeddings: false,
      rope_theta: 10000,
      sliding_window: 4096,
      rms_norm_eps: 1e-5,
    });
    expect(Object.keys(SCALE_MODELS)).toEqual(["qwen2.5-0.5b", "qwen2.5-1.5b", "mistral-7b"]);
    const methods = Object.values(SCALE_MODELS).map((s) => `${s.method} ${s.training}`);
    expect(methods).toEqual(["dpo full", "dpo lora", "reward lora"]);
  });

  it("have the published parameter counts, and the loader expects exactly those weights", () => {
    // Qwen2.5-0.5B 494,032,768, Qwen2.5-1.5B 1,543,714,304, Mistral-7B-v0.1 7,241,732,096.
    const published = { "qwen2.5-0.5b": 494032768, "qwen2.5-1.5b": 1543714304, "mistral-7b": 7241732096 };
    for (const [key, n] of Object.entries(published)) {
      expect(parameterCount(config(key)), key).toBe(n);
      const validated = validateModelConfig(config(key));
      const shapes = expectedWeightShapes(adapterFor(validated).decoderConfig(validated));
      let sum = 0;
      for (const shape of shapes.values()) sum += shape.reduce((a: number, d: number) => a * d, 1);
      expect(sum, key).toBe(n);
    }
    // A sequence classifier drops Mistral's 32000 × 4096 head for a 1 × 4096 score.
    expect(parameterCount(config("mistral-7b"), true)).toBe(7241732096 - 32000 * 4096 + 4096);
  });

  it("take a layer override and split the tokens a quarter prompt, the rest completion", () => {
    expect(scaleSpec("qwen2.5-1.5b", { layers: 1 }).config).toEqual({
      ...config("qwen2.5-1.5b"),
      num_hidden_layers: 1,
    });
    expect(scaleSpec("qwen2.5-1.5b")).toBe(SCALE_MODELS["qwen2.5-1.5b"]);
    expect(() => scaleSpec("llama-3-8b")).toThrow(
      /unknown scale shape "llama-3-8b" \(qwen2.5-0.5b, qwen2.5-1.5b, mistral-7b\)/,
    );
    expect(() => scaleSpec("mistral-7b", { layers: 0 })).toThrow(/--layers: expected a positive integer, got 0/);
    expect(scaleShape(512)).toEqual({ seqLen: 512, prompt: 128, completion: 384, rows: 2 });
    expect(scaleShape(64)).toEqual({ seqLen: 64, prompt: 16, completion: 48, rows: 2 });
    expect(() => scaleShape(4)).toThrow(/--seq: expected an integer >= 8, got 4/);
  });
});

describe("scale bench: the plan", () => {
  const full = { bf16Compute: true, gradientCheckpointing: true };
  it("skips float32 rows whose weights alone exceed the budget, and says how big they are", () => {
    const mistral = scaleSkips(scaleSpec("mistral-7b"), full, 20);
    // 7,110,664,192 parameters of the classifier × 4 bytes = 26.5 GiB.
    expect(mistral).toEqual({ fp32: "float32 weights alone are 26.5 GiB (budget 20 GiB)" });
    expect(scaleSkips(scaleSpec("qwen2.5-1.5b"), full, 20)).toEqual({});
    expect(scaleSkips(scaleSpec("mistral-7b", { layers: 1 }), full, 20)).toEqual({});
  });

  it("skips the bf16 rows without bf16 compute, and the reward rows without gradient checkpointing", () => {
    const none = { bf16Compute: false, gradientCheckpointing: false };
    const qwen = scaleSkips(scaleSpec("qwen2.5-0.5b"), none, 20);
    expect(Object.keys(qwen)).toEqual(["bf16"]);
    expect(qwen.bf16).toMatch(/no bf16 compute \(AmpPlugin has no compute: "bfloat16" option/);
    const mistral = scaleSkips(scaleSpec("mistral-7b"), none, 20);
    expect(mistral.fp32).toMatch(/26\.5 GiB/); // the size reason comes first
    expect(mistral.bf16).toMatch(/no bf16 compute/);
    const small = scaleSkips(
      scaleSpec("mistral-7b", { layers: 1 }),
      { bf16Compute: true, gradientCheckpointing: false },
      20,
    );
    expect(small.fp32).toMatch(/no gradientCheckpointing in TrainingArgs/);
    expect(small.bf16).toBe(small.fp32);
  });

  it("gives each measured prefkit row its speed and memory ratios to the peer's rows of the run", () => {
    const ours = [
      { mode: "fp32", tokensPerSecond: 20, peakRssMB: 9000 },
      { mode: "bf16", tokensPerSecond: 40, peakRssMB: 6000 },
      { mode: "bf16", skipped: "no bf16 compute" },
    ];
    const peers = {
      fp32: { tokensPerSecond: 16, peakRssMB: 18000 },
      autocast: { skipped: "needs at least 26.5 GiB" },
    };
    const out = attachRatios(ours, peers);
    expect(out[0]).toEqual({ ...ours[0], speedupVsTorchFp32: 1.25, rssVsTorchFp32: 0.5 });
    expect(out[1]).toEqual({ ...ours[1], speedupVsTorchFp32: 2.5, rssVsTorchFp32: 0.333 });
    expect(out[2]).toEqual(ours[2]);
    expect(ours[0]).not.toHaveProperty("speedupVsTorchFp32"); // the inputs are left as they were
    const both = attachRatios([ours[1]!], { ...peers, autocast: { tokensPerSecond: 32, peakRssMB: 12000 } });
    expect(both[0]).toMatchObject({ speedupVsTorchAutocast: 1.25, rssVsTorchAutocast: 0.5 });
    // A peer that ran out of memory after its warm-up step: the warm-up ratio and the RSS at its failure.
    const oom = { error: "does not fit in 20.0 GiB: ...", warmupSeconds: 96, peakRssMB: 20000 };
    const failed = attachRatios([{ ...ours[1]!, warmupSeconds: 32 }], { fp32: oom });
    expect(failed[0]).toMatchObject({ warmupSpeedupVsTorchFp32: 3, rssVsTorchFp32AtFailure: 0.3 });
    expect(failed[0]).not.toHaveProperty("speedupVsTorchFp32");
    // Without a warm-up time (it failed while building) nothing is added.
    expect(attachRatios([ours[1]!], { fp32: { error: "x", peakRssMB: 20000 } })[0]).toEqual(ours[1]);
  });
});

describe("scale bench: the random checkpoint", () => {
  // A Qwen2-family config small enough for a test: q/k/v biases, tied embedding, 3 layers in 2 shards.
  const tiny = {
    ...config("qwen2.5-0.5b"),
    vocab_size: 96,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  };

  it("is sharded bf16 with an index and a config saying bfloat16, deterministic in its seed, and loads as bf16", async () => {
    const a = await tempDir();
    const b = await tempDir();
    const written = await writeRandomCheckpoint(a, tiny, { seed: 3, layersPerShard: 2 });
    await writeRandomCheckpoint(b, tiny, { seed: 3, layersPerShard: 2 });
    expect(written.parameters).toBe(parameterCount(tiny));
    const files = (await readdir(a)).sort();
    expect(files).toEqual([
      "config.json",
      "model-00001-of-00004.safetensors",
      "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors",
      "model-00004-of-00004.safetensors",
      "model.safetensors.index.json",
    ]);
    for (const f of files) expect(await readFile(join(b, f)), f).toEqual(await readFile(join(a, f)));
    const c = await tempDir();
    await writeRandomCheckpoint(c, tiny, { seed: 4, layersPerShard: 2 });
    expect(await readFile(join(c, files[2]!))).not.toEqual(await readFile(join(a, files[2]!)));

    expect(JSON.parse(await readFile(join(a, "config.json"), "utf8"))).toEqual({ ...tiny, torch_dtype: "bfloat16" });
    const index = JSON.parse(await readFile(join(a, "model.safetensors.index.json"), "utf8"));
    expect(index.metadata.total_size).toBe(2 * parameterCount(tiny));
    expect(index.weight_map["model.embed_tokens.weight"]).toBe("model-00001-of-00004.safetensors");
    expect(index.weight_map["model.layers.2.mlp.up_proj.weight"]).toBe("model-00003-of-00004.safetensors");
    expect(index.weight_map["model.norm.weight"]).toBe("model-00004-of-00004.safetensors");

    const layer0 = await readSafetensors(join(a, "model-00002-of-00004.safetensors"));
    const get = (name: string) => Array.from(layer0.tensors.get(name)!.data);
    expect(layer0.tensors.get("model.layers.0.self_attn.q_proj.weight")!.dtype).toBe("BF16");
    expect(new Set(get("model.layers.0.input_layernorm.weight"))).toEqual(new Set([1]));
    expect(new Set(get("model.layers.0.self_attn.k_proj.bias"))).toEqual(new Set([0]));
    // U(−√3·0.02, √3·0.02): std 0.02, every value inside the bound (bf16 rounding can reach it).
    const q = get("model.layers.0.self_attn.q_proj.weight");
    const bound = Math.sqrt(3) * 0.02;
    expect(Math.max(...q.map(Math.abs))).toBeLessThanOrEqual(bound * (1 + 2 ** -8));
    const std = Math.sqrt(q.reduce((s, x) => s + x * x, 0) / q.length);
    expect(std).toBeGreaterThan(0.017);
    expect(std).toBeLessThan(0.023);

    const model = await AutoModelForCausalLM.fromPretrained(a, { dtype: "bfloat16" });
    try {
      expect(model.halfPrecisionWeights().size).toBeGreaterThan(0);
      const { logits } = model.forward({ inputIds: [[5, 6, 7, 8]] });
      const values = await logits.data();
      logits.dispose();
      expect(values.length).toBe(4 * 96);
      expect(values.every(Number.isFinite)).toBe(true);
    } finally {
      model.dispose();
    }
  });

  it("is written once per config into its cache directory and reused after", async () => {
    const root = await tempDir();
    const first = await cachedRandomCheckpoint(root, "tiny", tiny);
    expect(first.cached).toBe(false);
    expect(first.dir).toBe(checkpointCacheDir(root, "tiny", tiny));
    expect(first.dir).toMatch(/tiny-3L-[0-9a-f]{8}$/);
    const mtime = (await stat(join(first.dir, "model-00001-of-00003.safetensors"))).mtimeMs;
    const again = await cachedRandomCheckpoint(root, "tiny", tiny);
    expect(again).toEqual({ dir: first.dir, cached: true, bytes: first.bytes, seconds: 0 });
    expect((await stat(join(first.dir, "model-00001-of-00003.safetensors"))).mtimeMs).toBe(mtime);
    // Another layer count or seed is another directory; nothing partial is left next to them.
    const other = await cachedRandomCheckpoint(root, "tiny", { ...tiny, num_hidden_layers: 1 });
    expect(other.cached).toBe(false);
    expect(other.dir).not.toBe(first.dir);
    expect(checkpointCacheDir(root, "tiny", tiny, 2)).not.toBe(first.dir);
    const reordered = Object.fromEntries(Object.entries(tiny).reverse());
    expect(checkpointCacheDir(root, "tiny", reordered)).toBe(first.dir);
    expect((await readdir(root)).sort()).toEqual([first.dir, other.dir].map((d) => d.slice(root.length + 1)).sort());
  });
});

/**
 * savePretrained → fromPretrained round trips, the saved directory layout, config/weight
 * validation errors, fromConfig initialisation and the LinearModule seam.
 */
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  expectedWeightShapes,
  type LinearModule,
  loadCheckpointWeights,
  type PreTrainedModelForCausalLM,
  readSafetensorsHeader,
  supportedModelTypes,
  writeSafetensors,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import { goldenFixtures, readGolden, useBackend } from "./golden.js";

const stories = sharedPath("assets/stories260K");
const fixtures = goldenFixtures();
const untied = fixtures.find((f) => f.name === "llama_gqa_left") ?? fixtures.find((f) => f.name === "llama_gqa");
const qwen2 = fixtures.find((f) => f.name === "qwen2_bias");

let scratch: string;
beforeAll(async () => {
  await useBackend("cpu");
  scratch = await mkdtemp(join(tmpdir(), "prefkit-modeling-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function logitsOf(model: PreTrainedModelForCausalLM, inputIds: number[][], attentionMask?: number[][]) {
  const { logits } = model.forward({ inputIds, ...(attentionMask ? { attentionMask } : {}) });
  const out = await logits.data();
  logits.dispose();
  return out;
}

async function configErrorOf(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

/** A copy of fixture `dir` whose weights were changed by `edit`. */
async function editedCopy(dir: string, name: string, edit: (w: Map<string, any>) => void): Promise<string> {
  const out = join(scratch, name);
  const { tensors } = await loadCheckpointWeights(dir);
  edit(tensors);
  await rm(out, { recursive: true, force: true });
  await import("node:fs/promises").then((fs) => fs.mkdir(out, { recursive: true }));
  await copyFile(join(dir, "config.json"), join(out, "config.json"));
  await writeSafetensors(join(out, "model.safetensors"), tensors);
  return out;
}

describe.skipIf(!stories)("save → load round trip (stories260K, tied)", () => {
  it("gives identical logits and an HF-layout directory without lm_head.weight", async () => {
    const model = await AutoModelForCausalLM.fromPretrained(stories!);
    const out = join(scratch, "stories");
    await model.savePretrained(out);
    const reloaded = await AutoModelForCausalLM.fromPretrained(out);
    const ids = [[1, 403, 407, 261, 378, 432]];
    expect(await logitsOf(reloaded, ids)).toEqual(await logitsOf(model, ids));

    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    expect(config).toMatchObject({
      model_type: "llama",
      tie_word_embeddings: true,
      hidden_size: 64,
      num_key_value_heads: 4,
      torch_dtype: "float32",
      architectures: ["LlamaForCausalLM"],
    });
    const header = await readSafetensorsHeader(join(out, "model.safetensors"));
    expect(header.metadata?.["format"]).toBe("pt");
    expect(new Set(header.tensors.keys())).toEqual(new Set(expectedWeightShapes(model.decoderConfig).keys()));
    expect(header.tensors.has("lm_head.weight")).toBe(false);
    expect(header.tensors.get("model.layers.4.self_attn.k_proj.weight")?.shape).toEqual([32, 64]);
    const generation = JSON.parse(await readFile(join(out, "generation_config.json"), "utf8"));
    expect(generation).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
    await expect(readFile(join(out, "tokenizer.json"), "utf8")).resolves.toContain('"model"');
    model.dispose();
    reloaded.dispose();
  });
});

describe.skipIf(!untied)("save → load round trip (untied)", () => {
  it("keeps lm_head.weight and reproduces the logits exactly; BF16 saving sets torch_dtype", async () => {
    const model = await AutoModelForCausalLM.fromPretrained(untied!.dir);
    const g = readGolden(untied!.dir);
    const out = join(scratch, "untied");
    await model.savePretrained(out);
    const reloaded = await AutoModelForCausalLM.fromPretrained(out);
    expect(await logitsOf(reloaded, g.input_ids, g.attention_mask)).toEqual(
      await logitsOf(model, g.input_ids, g.attention_mask),
    );
    expect((await readSafetensorsHeader(join(out, "model.safetensors"))).tensors.has("lm_head.weight")).toBe(true);

    const bf16 = join(scratch, "untied-bf16");
    await model.savePretrained(bf16, { dtype: "BF16" });
    expect(JSON.parse(await readFile(join(bf16, "config.json"), "utf8")).torch_dtype).toBe("bfloat16");
    expect((await readSafetensorsHeader(join(bf16, "model.safetensors"))).tensors.get("lm_head.weight")?.dtype).toBe(
      "BF16",
    );
    model.dispose();
    reloaded.dispose();
  });
});

describe.skipIf(!qwen2)("config and weight validation", () => {
  it("rejects an unknown model_type naming the field and listing the supported types", async () => {
    const err = await configErrorOf(
      Promise.resolve().then(() => AutoModelForCausalLM.fromConfig({ ...tinyConfig, model_type: "gpt2" })),
    );
    expect(err.field).toBe("model_type");
    for (const t of ["llama", "qwen2", "qwen3", "mistral"]) expect(err.message).toContain(t);
    expect(supportedModelTypes()).toEqual(expect.arrayContaining(["llama", "qwen2", "qwen3", "mistral"]));
  });

  it("names a missing tensor", async () => {
    const dir = await editedCopy(qwen2!.dir, "missing", (w) => w.delete("model.layers.1.self_attn.k_proj.bias"));
    const err = await configErrorOf(AutoModelForCausalLM.fromPretrained(dir));
    expect(err.tensor).toBe("model.layers.1.self_attn.k_proj.bias");
    expect(err.message).toContain("missing");
  });

  it("names an unexpected tensor", async () => {
    const dir = await editedCopy(qwen2!.dir, "extra", (w) =>
      w.set("model.layers.0.self_attn.o_proj.bias", { dtype: "F32", shape: [32], data: new Float32Array(32) }),
    );
    const err = await configErrorOf(AutoModelForCausalLM.fromPretrained(dir));
    expect(err.tensor).toBe("model.layers.0.self_attn.o_proj.bias");
    expect(err.message).toContain("unexpected");
  });

  it("names a tensor with the wrong shape", async () => {
    const dir = await editedCopy(qwen2!.dir, "shape", (w) => {
      const t = w.get("model.norm.weight");
      w.set("model.norm.weight", { ...t, shape: [t.shape[0] / 2, 2] });
    });
    const err = await configErrorOf(AutoModelForCausalLM.fromPretrained(dir));
    expect(err.tensor).toBe("model.norm.weight");
    expect(err.message).toContain("shape");
  });

  it("rejects unsupported rope scaling and activations naming the field", async () => {
    const rope = await configErrorOf(
      Promise.resolve().then(() =>
        AutoModelForCausalLM.fromConfig({ ...tinyConfig, rope_scaling: { rope_type: "yarn", factor: 4 } }),
      ),
    );
    expect(rope.field).toBe("rope_scaling.rope_type");
    const act = await configErrorOf(
      Promise.resolve().then(() => AutoModelForCausalLM.fromConfig({ ...tinyConfig, hidden_act: "gelu" })),
    );
    expect(act.field).toBe("hidden_act");
  });
});

const tinyConfig = {
  model_type: "llama",
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  pad_token_id: 3,
  tie_word_embeddings: false,
};

describe("fromConfig and the LinearModule seam", () => {
  it("initialises like HF (seeded normal weights, unit norms, zero pad row)", async () => {
    const a = AutoModelForCausalLM.fromConfig(tinyConfig, { seed: 5 });
    const b = AutoModelForCausalLM.fromConfig(tinyConfig, { seed: 5 });
    const pa = a.namedParameters();
    const pb = b.namedParameters();
    expect([...pa.keys()]).toEqual([...expectedWeightShapes(a.decoderConfig).keys()]);
    for (const [name, v] of pa) expect(await v.data(), name).toEqual(await pb.get(name)!.data());
    expect(Array.from(await pa.get("model.norm.weight")!.data()).every((x) => x === 1)).toBe(true);
    const embed = (await pa.get("model.embed_tokens.weight")!.array()) as number[][];
    expect(embed[3]!.every((x) => x === 0)).toBe(true);
    const flat = embed.filter((_, i) => i !== 3).flat();
    const std = Math.sqrt(flat.reduce((s, x) => s + x * x, 0) / flat.length);
    expect(std).toBeGreaterThan(0.015);
    expect(std).toBeLessThan(0.025);
    a.dispose();
    b.dispose();
  });

  it("lets a plugin wrap a projection by HF module name (LoRA-style)", async () => {
    const model = AutoModelForCausalLM.fromConfig(tinyConfig, { seed: 2 });
    const names = [...model.linearModules().keys()];
    expect(names).toContain("model.layers.0.self_attn.q_proj");
    expect(names).toContain("model.layers.0.mlp.down_proj");
    expect(names).toContain("lm_head");
    const ids = [[1, 5, 7, 9]];
    // Bitwise comparisons below: the wrapped model runs the tfjs ops, so the plain one must too.
    model.decoder.useNativeDecoder = false;
    const base = await logitsOf(model, ids);

    const rank = 2;
    const loraA = tf.variable(tf.randomNormal([rank, 16], 0, 0.5, "float32", 1));
    const loraB = tf.variable(tf.zeros([16, rank]));
    model.replaceLinear(
      "model.layers.0.self_attn.q_proj",
      (inner): LinearModule => ({
        name: inner.name,
        inFeatures: inner.inFeatures,
        outFeatures: inner.outFeatures,
        apply: (x) =>
          tf.tidy(() => {
            const x2 = tf.reshape(x, [-1, inner.inFeatures]) as tf.Tensor2D;
            const delta = tf.matMul(
              tf.matMul(x2, loraA as tf.Tensor2D, false, true),
              loraB as tf.Tensor2D,
              false,
              true,
            );
            return tf.add(inner.apply(x), tf.reshape(delta, [...x.shape.slice(0, -1), inner.outFeatures]));
          }),
        parameters: () =>
          new Map([
            ...inner.parameters(),
            [`${inner.name}.lora_A.weight`, loraA],
            [`${inner.name}.lora_B.weight`, loraB],
          ]),
      }),
    );
    expect(await logitsOf(model, ids)).toEqual(base); // B = 0: no change
    const params = model.namedParameters();
    expect(params.get("model.layers.0.self_attn.q_proj.lora_B.weight")).toBe(loraB);
    for (const [name, v] of params) if (!name.includes("lora_")) v.trainable = false;
    expect(model.trainableVariables()).toEqual([loraA, loraB]);

    const { grads, value } = tf.variableGrads(
      () => tf.sum(model.forward({ inputIds: ids }).logits) as tf.Scalar,
      [loraA, loraB],
    );
    expect(tf.tidy(() => tf.max(tf.abs(grads[loraB.name]!)).dataSync()[0]!)).toBeGreaterThan(0);
    tf.tidy(() => loraB.assign(tf.onesLike(loraB)));
    expect(await logitsOf(model, ids)).not.toEqual(base);
    expect(() => model.replaceLinear("model.layers.9.self_attn.q_proj", (m) => m)).toThrow(ConfigError);
    tf.dispose([value, ...Object.values(grads), loraA, loraB]);
    model.dispose();
  });
});

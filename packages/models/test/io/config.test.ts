import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "@prefkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import {
  readGenerationConfig,
  readJsonFile,
  readModelConfig,
  stringifyJson,
  validateModelConfig,
  writeJsonAtomic,
} from "../../src/io/index.js";
import { asyncErrorOf, tempDir } from "./helpers.js";

const base = {
  model_type: "qwen3",
  vocab_size: 100,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};

describe("model config", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ dir, cleanup } = await tempDir()));
  afterAll(() => cleanup());

  const llama = sharedPath("fixtures/hf-golden/llama_gqa");
  it.skipIf(!llama)("reads a transformers-written config.json from a directory", async () => {
    const config = await readModelConfig(llama!);
    expect(config).toMatchObject({
      model_type: "llama",
      vocab_size: 320,
      hidden_size: 64,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      rope_scaling: null,
      tie_word_embeddings: false,
      architectures: ["LlamaForCausalLM"],
      pretraining_tp: 1, // unknown to prefkit, kept
    });
  });

  const stories = sharedPath("assets/stories260K/config.json");
  it.skipIf(!stories)("reads stories260K's config.json by file path, with its generation config", async () => {
    const config = await readModelConfig(stories!);
    expect(config.tie_word_embeddings).toBe(true);
    expect(config.num_key_value_heads).toBe(4);
    const gen = await readGenerationConfig(join(stories!, ".."));
    expect(gen).toEqual({ _from_model_config: true, bos_token_id: 1, eos_token_id: 2 });
  });

  it("fills the family's transformers defaults for omitted fields", () => {
    const { num_key_value_heads: _, ...noKv } = base;
    expect(validateModelConfig({ ...noKv, model_type: "llama" })).toMatchObject({
      num_key_value_heads: 4,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      max_position_embeddings: 2048,
      tie_word_embeddings: false,
      hidden_act: "silu",
    });
    expect(validateModelConfig({ ...base, num_attention_heads: 32, hidden_size: 64 }).max_position_embeddings).toBe(
      32768,
    );
    expect(validateModelConfig({ ...base, model_type: "gemma" }).tie_word_embeddings).toBe(true);
    expect(validateModelConfig({ ...base, model_type: "constructor" }).rope_theta).toBe(10000);
    const input = { ...base };
    validateModelConfig(input);
    expect(input).toEqual(base); // not mutated
  });

  it("names the field and the file on a wrong type", async () => {
    const file = join(dir, "config.json");
    await writeFile(file, JSON.stringify({ ...base, hidden_size: "32" }));
    const e = await asyncErrorOf(() => readModelConfig(dir), ConfigError);
    expect(e.field).toBe("hidden_size");
    expect(e.file).toBe(file);
    expect(e.message).toBe(`${file}, field "hidden_size": expected an integer ≥ 1, got "32" (string)`);
  });

  it.each([
    [{ ...base, vocab_size: undefined }, "vocab_size", /required field is missing/],
    [{ ...base, tie_word_embeddings: "yes" }, "tie_word_embeddings", /expected a boolean/],
    [{ ...base, rms_norm_eps: -1 }, "rms_norm_eps", /positive number/],
    [{ ...base, eos_token_id: [1, "2"] }, "eos_token_id", /token id or an array of token ids or null/],
    [{ ...base, rope_scaling: { rope_type: "llama3", factor: "8" } }, "rope_scaling.factor", /positive number/],
    [{ ...base, rope_scaling: [1] }, "rope_scaling", /an object or null/],
    [{ ...base, num_key_value_heads: 3 }, "num_key_value_heads", /not divisible/],
    [{ ...base, hidden_size: 30 }, "hidden_size", /not divisible/],
  ])("rejects %j", (json, field, message) => {
    let error: unknown;
    try {
      validateModelConfig(json, "x/config.json");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(field);
    expect((error as ConfigError).message).toMatch(message);
    expect((error as ConfigError).message.startsWith("x/config.json")).toBe(true);
  });

  it("accepts eos lists, null head_dim and Llama 3 rope scaling", () => {
    const config = validateModelConfig({
      ...base,
      eos_token_id: [1, 2],
      head_dim: null,
      rope_scaling: {
        rope_type: "llama3",
        factor: 8,
        original_max_position_embeddings: 8192,
        low_freq_factor: 1,
        high_freq_factor: 4,
      },
    });
    expect(config.eos_token_id).toEqual([1, 2]);
    expect(config.rope_scaling?.factor).toBe(8);
  });

  it("names the file on a missing or malformed config.json", async () => {
    const sub = join(dir, "broken");
    await mkdir(sub);
    expect((await asyncErrorOf(() => readModelConfig(sub), ConfigError)).file).toBe(join(sub, "config.json"));
    await writeFile(join(sub, "config.json"), '{"model_type": "llama",}');
    const e = await asyncErrorOf(() => readModelConfig(sub), ConfigError);
    expect(e.message).toMatch(/broken\/config\.json: not valid JSON/);
    await writeFile(join(sub, "config.json"), "[1]");
    expect((await asyncErrorOf(() => readModelConfig(sub), ConfigError)).message).toMatch(
      /expected a JSON object, got \[1\]/,
    );
  });
});

describe("generation config", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ dir, cleanup } = await tempDir()));
  afterAll(() => cleanup());

  it("is undefined when absent, typed and validated when present", async () => {
    expect(await readGenerationConfig(dir)).toBeUndefined();
    const file = join(dir, "generation_config.json");
    await writeFile(
      file,
      JSON.stringify({
        eos_token_id: [2, 7],
        do_sample: true,
        temperature: 0.7,
        top_p: 0.9,
        top_k: 20,
        max_new_tokens: 64,
      }),
    );
    expect(await readGenerationConfig(dir)).toEqual({
      eos_token_id: [2, 7],
      do_sample: true,
      temperature: 0.7,
      top_p: 0.9,
      top_k: 20,
      max_new_tokens: 64,
    });
    await writeFile(file, JSON.stringify({ top_p: 1.5 }));
    const e = await asyncErrorOf(() => readGenerationConfig(dir), ConfigError);
    expect(e.message).toBe(`${file}, field "top_p": expected a number in [0, 1], got 1.5 (number)`);
  });
});

describe("JSON files", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ dir, cleanup } = await tempDir()));
  afterAll(() => cleanup());

  it("writes like transformers (indent 2, keys sorted recursively, trailing newline) and reads back", async () => {
    const file = join(dir, "c.json");
    await writeJsonAtomic(file, { b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } });
    expect(await readFile(file, "utf8")).toBe(
      '{\n  "a": {\n    "c": null,\n    "d": [\n      3,\n      {\n        "y": 2,\n        "z": 1\n      }\n    ]\n  },\n  "b": 1\n}\n',
    );
    expect(await readJsonFile(file)).toEqual({ a: { c: null, d: [3, { y: 2, z: 1 }] }, b: 1 });
    expect(stringifyJson({ b: 1, a: 2 }, { sortKeys: false, indent: 0 })).toBe('{"b":1,"a":2}\n');
  });

  it("names the file with the requested error type", async () => {
    const { CheckpointError } = await import("@prefkit/core");
    const missing = join(dir, "none.json");
    expect((await asyncErrorOf(() => readJsonFile(missing), ConfigError)).file).toBe(missing);
    expect((await asyncErrorOf(() => readJsonFile(missing, "checkpoint"), CheckpointError)).file).toBe(missing);
    const e = await asyncErrorOf(() => writeJsonAtomic(join(dir, "no-such-dir", "x.json"), {}), ConfigError);
    expect(e.file).toBe(join(dir, "no-such-dir", "x.json"));
  });
});

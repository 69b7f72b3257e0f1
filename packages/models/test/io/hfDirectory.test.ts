import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError, ConfigError } from "@prefkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import {
  loadCheckpointWeights,
  type PretrainedConfig,
  readGenerationConfig,
  readModelConfig,
  readSafetensorsHeader,
  saveHfDirectory,
} from "../../src/io/index.js";
import { asyncErrorOf, randomData, tempDir } from "./helpers.js";

describe("saveHfDirectory", () => {
  let root: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ dir: root, cleanup } = await tempDir()));
  afterAll(() => cleanup());

  const stories = sharedPath("assets/stories260K");
  it.skipIf(!stories)("writes config, weights, generation config and tokenizer files that load back", async () => {
    const source = stories!;
    const config = await readModelConfig(source);
    const weights = await loadCheckpointWeights(source);
    const generationConfig = await readGenerationConfig(source);
    const out = join(root, "stories-copy");
    await saveHfDirectory(out, { config, weights: weights.tensors, generationConfig, tokenizerFilesFrom: source });

    expect((await readdir(out)).sort()).toEqual([
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    expect(await readModelConfig(out)).toEqual(config);
    expect(await readGenerationConfig(out)).toEqual(generationConfig);
    const text = await readFile(join(out, "config.json"), "utf8");
    expect(text.startsWith('{\n  "architectures": [\n    "LlamaForCausalLM"\n  ],\n  "attention_bias": false,')).toBe(
      true,
    );
    expect(text.endsWith("}\n")).toBe(true);
    const back = await loadCheckpointWeights(out);
    expect(back.metadata).toEqual({ format: "pt" });
    expect(back.tensors.size).toBe(47);
    expect(back.tensors.get("model.layers.2.self_attn.q_proj.weight")).toEqual(
      weights.tensors.get("model.layers.2.self_attn.q_proj.weight"),
    );
    expect(await readFile(join(out, "tokenizer.json"))).toEqual(await readFile(join(source, "tokenizer.json")));
    expect((await readdir(root)).filter((f) => f.startsWith("stories-copy."))).toEqual([]);
  });

  const config: PretrainedConfig = {
    model_type: "llama",
    vocab_size: 4,
    hidden_size: 2,
    intermediate_size: 4,
    num_hidden_layers: 1,
    num_attention_heads: 1,
    num_key_value_heads: 1,
    hidden_act: "silu",
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 16,
    tie_word_embeddings: true,
    custom_field: { keep: [1, 2] },
  };
  const embed = randomData(8, 7);

  it("saves into an existing directory keeping its other files, drops a tied lm_head, stores BF16 and extra metadata", async () => {
    const out = join(root, "replace");
    await mkdir(out);
    await writeFile(join(out, "stale.bin"), "old");
    await saveHfDirectory(out, {
      config,
      weights: {
        "model.embed_tokens.weight": { shape: [4, 2], data: embed, dtype: "BF16" },
        "lm_head.weight": { shape: [4, 2], data: embed },
      },
      metadata: { step: "10" },
    });
    // transformers' save_pretrained deletes nothing of the user's, and neither does this
    expect((await readdir(out)).sort()).toEqual(["config.json", "model.safetensors", "stale.bin"]);
    expect(await readFile(join(out, "stale.bin"), "utf8")).toBe("old");
    expect((await readdir(root)).filter((f) => f.startsWith("replace."))).toEqual([]);
    const header = await readSafetensorsHeader(join(out, "model.safetensors"));
    expect([...header.tensors.keys()]).toEqual(["model.embed_tokens.weight"]);
    expect(header.tensors.get("model.embed_tokens.weight")!.dtype).toBe("BF16");
    expect(header.metadata).toEqual({ step: "10", format: "pt" });
    expect((await readModelConfig(out))["custom_field"]).toEqual({ keep: [1, 2] });
  });

  it("writes nothing when the config is invalid or tied weights disagree", async () => {
    const out = join(root, "invalid");
    const weights = { "model.embed_tokens.weight": { shape: [4, 2], data: embed } };
    const e = await asyncErrorOf(
      () => saveHfDirectory(out, { config: { ...config, vocab_size: 0 }, weights }),
      ConfigError,
    );
    expect(e.field).toBe("vocab_size");
    expect(e.file).toBe(join(out, "config.json"));
    const untied = { ...weights, "lm_head.weight": { shape: [4, 2], data: randomData(8, 99) } };
    expect((await asyncErrorOf(() => saveHfDirectory(out, { config, weights: untied }), ConfigError)).field).toBe(
      "tie_word_embeddings",
    );
    const bad = { "model.embed_tokens.weight": { shape: [4, 3], data: embed } };
    const e3 = await asyncErrorOf(() => saveHfDirectory(out, { config, weights: bad }), CheckpointError);
    expect(e3.tensor).toBe("model.embed_tokens.weight");
    expect((await readdir(root)).filter((f) => f.startsWith("invalid"))).toEqual([]);
  });
});

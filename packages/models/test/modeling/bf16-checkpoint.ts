/**
 * Large bf16 checkpoints for the memory tests: llama-shaped configs and random finite weights, written
 * as the HF file would be.
 */
import { spawnSync } from "node:child_process";
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeSafetensors } from "@prefkit/models";

/** A llama-shaped config: `layers` layers of hidden 1024 / intermediate 2816, vocab 32000, untied. */
export function llamaBf16Config(layers: number, vocab: number) {
  return {
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    vocab_size: vocab,
    hidden_size: 1024,
    intermediate_size: 2816,
    num_hidden_layers: layers,
    num_attention_heads: 16,
    num_key_value_heads: 4,
    tie_word_embeddings: false,
    torch_dtype: "bfloat16",
  };
}

/** Random finite bf16 bit patterns of magnitude 2⁻⁹…2⁻⁵ (xorshift32: fast, deterministic). */
function randomBf16(n: number, seed: number): Uint16Array {
  const out = new Uint16Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const exponent = 118 + ((x >>> 8) % 5);
    out[i] = ((x >>> 31) << 15) | (exponent << 7) | (x & 0x7f);
  }
  return out;
}

/** Write a bf16 checkpoint of `config` with random weights (norms 1). Returns the file's size. */
export async function writeBf16Checkpoint(dir: string, c: ReturnType<typeof llamaBf16Config>): Promise<number> {
  const h = c.hidden_size;
  const kv = (h / c.num_attention_heads) * c.num_key_value_heads;
  const shapes: Array<[string, number[]]> = [
    ["model.embed_tokens.weight", [c.vocab_size, h]],
    ["lm_head.weight", [c.vocab_size, h]],
    ["model.norm.weight", [h]],
  ];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    shapes.push(
      [`${p}.input_layernorm.weight`, [h]],
      [`${p}.post_attention_layernorm.weight`, [h]],
      [`${p}.self_attn.q_proj.weight`, [h, h]],
      [`${p}.self_attn.k_proj.weight`, [kv, h]],
      [`${p}.self_attn.v_proj.weight`, [kv, h]],
      [`${p}.self_attn.o_proj.weight`, [h, h]],
      [`${p}.mlp.gate_proj.weight`, [c.intermediate_size, h]],
      [`${p}.mlp.up_proj.weight`, [c.intermediate_size, h]],
      [`${p}.mlp.down_proj.weight`, [h, c.intermediate_size]],
    );
  }
  const tensors = new Map(
    shapes.map(([name, shape], i) => {
      const n = shape.reduce((a, d) => a * d, 1);
      const data = shape.length === 1 ? new Uint16Array(n).fill(0x3f80) : randomBf16(n, 0x9e3779b9 ^ (i * 7919));
      return [name, { shape, data, dtype: "BF16" as const }];
    }),
  );
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  await writeFile(join(dir, "config.json"), JSON.stringify(c));
  return (await stat(join(dir, "model.safetensors"))).size;
}

/** Run `script` in a fresh node (with `nodeArgs`) and parse the JSON of its last stdout line. */
export function childJson<T>(script: string, args: readonly string[], nodeArgs: readonly string[] = []): T {
  const r = spawnSync(process.execPath, [...nodeArgs, script, ...args], { encoding: "utf8", timeout: 300_000 });
  if (r.status !== 0) throw new Error(`child exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as T;
}

/**
 * Issue 15 item 1, memory: a bf16 checkpoint loaded with `dtype: "bfloat16"` is read tensor by tensor
 * straight into its bit patterns, so the process's peak RSS (VmHWM) grows by about the file's size.
 *
 * Each load runs in a fresh child process (so VmHWM is that load's peak), on the BUILT packages
 * (`npm run build` first, as CI does). The baseline is measured, not assumed: the same child loading a
 * tiny bf16 checkpoint (node, tfjs and prefkit started, the cpu backend active, one load done), so it
 * holds everything that does not grow with the checkpoint. The assertion is peak ≤ baseline + 1.2 × file
 * size. The float32 load of the same checkpoint (twice the file's size in variables) must break that
 * bound, so the measurement can tell the two apart.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { writeSafetensors } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../../../test/helpers/shared.js";

const DIST = join(REPO_ROOT, "packages/models/dist/index.js");
const CORE_DIST = join(REPO_ROOT, "packages/core/dist/index.js");

const CHILD = `
import { readFileSync } from "node:fs";
const { tf } = await import(${JSON.stringify(pathToFileURL(CORE_DIST).href)});
const { AutoModelForCausalLM } = await import(${JSON.stringify(pathToFileURL(DIST).href)});
const [dir, dtype] = process.argv.slice(2);
await tf.setBackend("cpu");
const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype });
const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))[1]) * 1024;
console.log(JSON.stringify({ hwm, half: model.halfPrecisionWeights().size, dtype: model.dtype }));
`;

/** A llama-shaped config: `layers` layers of hidden 1024 / intermediate 2816, vocab 32000, untied. */
function config(layers: number, vocab: number) {
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
async function writeCheckpoint(dir: string, c: ReturnType<typeof config>): Promise<number> {
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

function peakOfLoad(dir: string, dtype: string): { hwm: number; half: number; dtype: string } {
  const r = spawnSync(process.execPath, [join(root, "child.mjs"), dir, dtype], {
    encoding: "utf8",
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`child exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "prefkit-load16-mem-"));
  await writeFile(join(root, "child.mjs"), CHILD);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("peak RSS of loading a bf16 checkpoint", () => {
  it("bfloat16: ≤ baseline + 1.2 × the file size; float32 breaks that bound", async () => {
    expect(existsSync(DIST), `${DIST} is missing: run npm run build first`).toBe(true);
    const tiny = join(root, "tiny");
    const big = join(root, "big");
    await import("node:fs/promises").then((fs) => Promise.all([fs.mkdir(tiny), fs.mkdir(big)]));
    await writeCheckpoint(tiny, config(1, 256));
    const size = await writeCheckpoint(big, config(8, 32000)); // ~155M parameters, ~310 MB
    expect(size).toBeGreaterThan(300e6);

    const baseline = peakOfLoad(tiny, "bfloat16").hwm;
    const bf16 = peakOfLoad(big, "bfloat16");
    expect(bf16.dtype).toBe("bfloat16");
    expect(bf16.half).toBe(2 + 8 * 7); // embedding, lm_head and every projection stayed 16-bit
    const f32 = peakOfLoad(big, "float32");
    const mb = (x: number) => `${(x / 2 ** 20).toFixed(0)} MB`;
    console.log(
      `load peak RSS: baseline ${mb(baseline)}, file ${mb(size)}, bfloat16 ${mb(bf16.hwm)} ` +
        `(baseline + ${((bf16.hwm - baseline) / size).toFixed(3)} × file), float32 ${mb(f32.hwm)} ` +
        `(baseline + ${((f32.hwm - baseline) / size).toFixed(3)} × file)`,
    );
    expect(bf16.hwm).toBeLessThanOrEqual(baseline + 1.2 * size);
    expect(f32.hwm).toBeGreaterThan(baseline + 1.5 * size);
  });
});

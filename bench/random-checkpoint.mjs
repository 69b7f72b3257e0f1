// Random bf16 checkpoints of real model configs, written shard by shard (a few layers per shard) so that
// not even the writer holds the whole model: the `scale` bench loads them with `fromPretrained`, in
// float32 and in bfloat16. Weights are U(−√3·σ, √3·σ) with σ = initializer_range (HF's std), norms 1,
// biases 0, rounded to bf16; a fixed xorshift stream, so the same seed gives the same files.
import { mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  adapterFor,
  expectedWeightShapes,
  float32ToBf16,
  validateModelConfig,
  writeSafetensors,
} from "@prefkit/models";

/** `n` bf16 bit patterns of U(−a, a), from a xorshift32 state; returns [bits, next state]. */
function uniformBf16(n, a, state) {
  const values = new Float32Array(n);
  let x = state | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    values[i] = ((x >>> 0) / 4294967296 - 0.5) * 2 * a;
  }
  return [float32ToBf16(values), x];
}

/** Which shard a tensor goes to: the embedding first, then `layersPerShard` layers per shard, the rest last. */
function shardOf(name, layersPerShard, numLayers) {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  if (m) return 1 + Math.floor(Number(m[1]) / layersPerShard);
  return name === "model.embed_tokens.weight" ? 0 : 1 + Math.ceil(numLayers / layersPerShard);
}

/**
 * Write `config` (a config.json object) with random bf16 weights to `dir`: config.json (torch_dtype
 * bfloat16), `model-0000i-of-0000n.safetensors` shards and `model.safetensors.index.json`.
 * @returns {Promise<{ bytes: number, parameters: number }>} the weights' total size and parameter count.
 */
export async function writeRandomCheckpoint(dir, config, { seed = 1, layersPerShard = 4 } = {}) {
  const validated = validateModelConfig(config);
  const decoderConfig = adapterFor(validated).decoderConfig(validated);
  const shapes = expectedWeightShapes(decoderConfig);
  const numLayers = decoderConfig.numLayers;
  const shardCount = 2 + Math.ceil(numLayers / layersPerShard);
  const names = Array.from({ length: shardCount }, (_, i) => {
    const pad = (k) => String(k).padStart(5, "0");
    return `model-${pad(i + 1)}-of-${pad(shardCount)}.safetensors`;
  });
  const groups = Array.from({ length: shardCount }, () => []);
  for (const [name, shape] of shapes) groups[shardOf(name, layersPerShard, numLayers)].push([name, shape]);
  await mkdir(dir, { recursive: true });
  const a = Math.sqrt(3) * decoderConfig.initializerRange;
  let state = (seed * 2654435761) | 0;
  const weightMap = {};
  let bytes = 0;
  let parameters = 0;
  for (const [i, group] of groups.entries()) {
    const tensors = new Map();
    for (const [name, shape] of group) {
      const n = shape.reduce((x, d) => x * d, 1);
      let bits;
      if (name.endsWith("norm.weight"))
        bits = new Uint16Array(n).fill(0x3f80); // 1.0
      else if (name.endsWith(".bias")) bits = new Uint16Array(n);
      else [bits, state] = uniformBf16(n, a, state);
      tensors.set(name, { shape, data: bits, dtype: "BF16" });
      weightMap[name] = names[i];
      parameters += n;
    }
    if (tensors.size === 0) continue;
    await writeSafetensors(join(dir, names[i]), tensors, { format: "pt" });
    bytes += (await stat(join(dir, names[i]))).size;
  }
  await writeFile(
    join(dir, "model.safetensors.index.json"),
    JSON.stringify({ metadata: { total_size: 2 * parameters }, weight_map: weightMap }, null, 2),
  );
  await writeFile(join(dir, "config.json"), JSON.stringify({ ...config, torch_dtype: "bfloat16" }, null, 2));
  return { bytes, parameters };
}

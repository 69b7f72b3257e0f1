/**
 * Checkpoints that carry weights besides the trained model's own files (TR-DPO's synced reference): the
 * extra tensors go to a file of their own and `model.safetensors.index.json` maps every tensor to its file,
 * which is what core's `loadModelWeights` reads on resume.
 * @module
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readSafetensorsKeys, type tf, writeSafetensors } from "@prefkit/core";

/** The HF index of a sharded (or multi-file) safetensors directory. */
export const SAFETENSORS_INDEX = "model.safetensors.index.json";

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Write `extra` (float32 variables by checkpoint name) into `dir/file` beside the model files already in
 * `dir`, and (re)write `model.safetensors.index.json` over all of them: an existing index is extended,
 * else the keys of `model.safetensors` / `adapter_model.safetensors` are indexed. transformers still loads
 * the model from `model.safetensors` (it prefers it to the index), so the directory stays a plain HF model.
 */
export async function writeExtraWeights(dir: string, file: string, extra: Map<string, tf.Variable>): Promise<void> {
  const indexPath = join(dir, SAFETENSORS_INDEX);
  const weightMap: Record<string, string> = {};
  if (await isFile(indexPath)) {
    const index = JSON.parse(await readFile(indexPath, "utf8")) as { weight_map?: Record<string, string> };
    Object.assign(weightMap, index.weight_map);
  } else {
    for (const f of ["model.safetensors", "adapter_model.safetensors"]) {
      if (await isFile(join(dir, f))) for (const k of await readSafetensorsKeys(join(dir, f))) weightMap[k] = f;
    }
  }
  const raw = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, v] of extra) {
    raw.set(name, { shape: v.shape, data: (await v.data()) as Float32Array });
    weightMap[name] = file;
  }
  await writeSafetensors(join(dir, file), raw, { format: "pt" });
  await writeFile(indexPath, JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
}

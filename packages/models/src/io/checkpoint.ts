/**
 * Loading the weights of a Hugging Face model directory: a single `model.safetensors`, or
 * shards listed by `model.safetensors.index.json`.
 * @module
 */
import { stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { CheckpointError } from "@prefkit/core";
import { readJsonFile } from "./json.js";
import {
  isFloatingDtype,
  type ReadSafetensorsOptions,
  readSafetensors,
  readSafetensorsHeader,
  type SafetensorsDtype,
  type SafetensorsFile,
  type TensorRecord,
} from "./safetensors/index.js";

/** Name of the single-file weights in a HF model directory. */
export const SAFETENSORS_WEIGHTS_NAME = "model.safetensors";
/** Name of the shard index in a sharded HF model directory. */
export const SAFETENSORS_INDEX_NAME = "model.safetensors.index.json";

/** The content of `model.safetensors.index.json`. */
export interface SafetensorsIndex {
  /** Free-form metadata; transformers writes `{ "total_size": <bytes> }`. */
  metadata?: Record<string, unknown>;
  /** Tensor name → shard file name (relative to the directory). */
  weight_map: Record<string, string>;
}

async function kindOf(path: string): Promise<"file" | "dir" | undefined> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? "dir" : "file";
  } catch {
    return undefined;
  }
}

function validateIndex(json: unknown, file: string): SafetensorsIndex {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new CheckpointError("index is not a JSON object", { file });
  }
  const weightMap = (json as Record<string, unknown>)["weight_map"];
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointError("weight_map is missing or not an object", { file, field: "weight_map" });
  }
  for (const [tensor, shard] of Object.entries(weightMap)) {
    // Shards must be plain file names in the same directory: an index must not reach elsewhere.
    if (typeof shard !== "string" || shard === "" || shard !== basename(shard) || shard === "." || shard === "..") {
      throw new CheckpointError(`shard ${JSON.stringify(shard)} is not a file name in the same directory`, {
        file,
        field: "weight_map",
        tensor,
      });
    }
  }
  if (Object.keys(weightMap).length === 0) {
    throw new CheckpointError("weight_map is empty", { file, field: "weight_map" });
  }
  return json as SafetensorsIndex;
}

/**
 * Load all weights of a HF model directory. Reads `model.safetensors` if present, otherwise the
 * shards named by `model.safetensors.index.json`, merged into one map. A path to a
 * `.safetensors` file is read directly.
 *
 * For sharded checkpoints every tensor in the `weight_map` must be in its shard, and no tensor may
 * appear in two shards. The merged `metadata` is the union of the shards' `__metadata__`
 * (the first shard wins on conflicts); the index's own metadata (`total_size`) is not included.
 * With `options.halfPrecision`, floating tensors are kept in that 16-bit format as they are read, one
 * tensor at a time (see `readSafetensors`), so a bf16 checkpoint read as bf16 takes about its file size.
 * @param dir - the model directory (or a `.safetensors` file).
 * @param options - `halfPrecision` to keep floating tensors in 16 bits.
 * @returns the tensors (upcast to float32, or in 16 bits) and the metadata.
 * @throws CheckpointError naming the file (and tensor) if weights are missing or malformed.
 */
export async function loadCheckpointWeights(
  dir: string,
  options: ReadSafetensorsOptions = {},
): Promise<SafetensorsFile> {
  const files = await checkpointFiles(dir);
  if (files.index === undefined) return readSafetensors(files.shards[0]!, options);
  const index = files.index;
  const shardNames = [...new Set(Object.values(index.weight_map))];
  const tensors = new Map<string, TensorRecord>();
  const origin = new Map<string, string>();
  let metadata: Record<string, string> | undefined;
  for (const shardName of shardNames) {
    const shardPath = join(dir, shardName);
    const shard = await readSafetensors(shardPath, options);
    for (const [name, record] of shard.tensors) {
      const first = origin.get(name);
      if (first !== undefined) {
        throw new CheckpointError(`tensor is stored in two shards (also in ${first})`, {
          file: shardPath,
          tensor: name,
        });
      }
      origin.set(name, shardName);
      tensors.set(name, record);
    }
    if (shard.metadata !== undefined) metadata = { ...shard.metadata, ...metadata };
  }
  for (const [name, shardName] of Object.entries(index.weight_map)) {
    if (origin.get(name) !== shardName) {
      const found = origin.get(name);
      throw new CheckpointError(
        found === undefined
          ? `tensor listed in ${SAFETENSORS_INDEX_NAME} is not in its shard`
          : `tensor listed in ${SAFETENSORS_INDEX_NAME} under ${shardName} is stored in ${found}`,
        { file: join(dir, shardName), tensor: name },
      );
    }
  }
  return { tensors, metadata };
}

/** The weight files of a checkpoint: one safetensors file, or the shards of an index (in first-use order). */
interface CheckpointFiles {
  /** The files to read, in order. */
  shards: string[];
  /** The validated index, for a sharded checkpoint. */
  index?: SafetensorsIndex;
}

async function checkpointFiles(dir: string): Promise<CheckpointFiles> {
  const kind = await kindOf(dir);
  if (kind === undefined) throw new CheckpointError("checkpoint path does not exist", { file: dir });
  if (kind === "file") return { shards: [dir] };
  const single = join(dir, SAFETENSORS_WEIGHTS_NAME);
  if ((await kindOf(single)) === "file") return { shards: [single] };
  const indexPath = join(dir, SAFETENSORS_INDEX_NAME);
  if ((await kindOf(indexPath)) !== "file") {
    throw new CheckpointError(`no ${SAFETENSORS_WEIGHTS_NAME} or ${SAFETENSORS_INDEX_NAME} in the directory`, {
      file: dir,
    });
  }
  const index = validateIndex(await readJsonFile(indexPath, "checkpoint"), indexPath);
  return { shards: [...new Set(Object.values(index.weight_map))].map((name) => join(dir, name)), index };
}

/**
 * The dtype of the first floating-point tensor of a checkpoint (by position in the first file), read from
 * the headers only: what transformers' `torch_dtype="auto"` falls back to when `config.json` has no
 * `torch_dtype`. Undefined when the checkpoint holds no floating tensor.
 * @param dir - the model directory (or a `.safetensors` file).
 * @throws CheckpointError when the weights are missing or a header is malformed.
 */
export async function checkpointFloatDtype(dir: string): Promise<SafetensorsDtype | undefined> {
  for (const file of (await checkpointFiles(dir)).shards) {
    for (const entry of (await readSafetensorsHeader(file)).tensors.values()) {
      if (isFloatingDtype(entry.dtype)) return entry.dtype;
    }
  }
  return undefined;
}

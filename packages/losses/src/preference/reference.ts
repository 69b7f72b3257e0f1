/**
 * The DPO reference: which network plays it, fingerprints of data and weights, and the on-disk cache
 * of precomputed reference log-probs.
 * @module
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type CausalLM,
  CheckpointError,
  ConfigError,
  type DpoBatch,
  tryFusedSequenceLogProbs,
  hasAdapterToggle,
  hasHalfPrecisionWeights,
  isFrozenCopyable,
  sequenceLogProbs,
  type TokenizedPreference,
  tf,
} from "@prefkit/core";
import { ldTokenWeights, weightedLogpSums } from "./token-weights.js";

/**
 * How the reference log-probs are obtained:
 * - `model`: a separate (given or frozen-copied) network;
 * - `adapters-off`: the policy itself with its adapters switched off (LoRA), no copy;
 * - `policy-at-start`: the untrained policy, only for precomputing (`precomputeRefLogProbs`).
 */
export type ReferenceKind = "model" | "adapters-off" | "policy-at-start";

/** The resolved reference. `run` evaluates `fn` with the reference network as its argument. */
export interface ReferenceSource {
  /** What plays the reference. */
  kind: ReferenceKind;
  /** Run `fn(network)` where `network`'s forward pass is the reference's. */
  run<T>(fn: (network: CausalLM) => T): T;
  /** The separate reference network (kind `model`): the given `refModel` or the frozen copy. */
  model?: CausalLM;
  /** A frozen copy this trainer made and must dispose, if any. */
  owned?: CausalLM;
}

/**
 * Pick the reference as TRL does: the given `refModel`; else, when the model implements core's
 * `AdapterToggle`, the same model with adapters disabled; else (unless `precompute`, where the untrained
 * policy itself is used once and no copy is kept) a `frozenCopy()` of the model.
 * @throws ConfigError (field `refModel`) when none of these is possible.
 */
export function resolveReference(
  model: CausalLM,
  refModel: CausalLM | undefined,
  precompute: boolean,
): ReferenceSource {
  if (refModel !== undefined) {
    if (refModel === model) {
      throw new ConfigError(
        "refModel is the policy itself: its log-ratios would always be 0 (loss stuck at ln 2); omit refModel",
        { field: "refModel" },
      );
    }
    return { kind: "model", run: (fn) => fn(refModel), model: refModel };
  }
  if (hasAdapterToggle(model))
    return { kind: "adapters-off", run: (fn) => model.withAdaptersDisabled(() => fn(model)) };
  if (precompute) return { kind: "policy-at-start", run: (fn) => fn(model) };
  if (isFrozenCopyable(model)) {
    const copy = model.frozenCopy();
    return { kind: "model", run: (fn) => fn(copy), model: copy, owned: copy };
  }
  throw new ConfigError(
    "no reference model: pass refModel, or use a model that implements AdapterToggle (LoRA) or FrozenCopyable " +
      "(frozenCopy()), or set precomputeRefLogProbs",
    { field: "refModel" },
  );
}

/**
 * Summed completion log-probs of every row (`sequenceLogProbs(...).sums`) as numbers, for the reference
 * (run it outside any gradient tape). Through core's `tryFusedSequenceLogProbs` when it applies (the native
 * fused pass, or a plain LM head), so no `[B, T, V]` logits are made; else through `net.forward`.
 * @param tokenWeights per-token weights of the sum (LD-DPO's {@link ldTokenWeights}); default all 1.
 */
export function completionLogProbSums(
  net: CausalLM,
  inputIds: number[][],
  completionMask: number[][],
  attentionMask: number[][],
  tokenWeights?: readonly number[][],
): number[] {
  return tf.tidy(() => {
    const lp =
      tryFusedSequenceLogProbs(net, inputIds, completionMask, { attentionMask }) ??
      sequenceLogProbs(net, inputIds, completionMask, { attentionMask });
    const sums = tokenWeights === undefined ? lp.sums : weightedLogpSums(lp.perToken, tokenWeights);
    return Array.from(sums.dataSync());
  });
}

/**
 * The reference's summed completion log-probs of a pair batch (`[chosen…, rejected…]`), with LD-DPO's tail
 * weight `ldAlpha` when set (TRL's `compute_ref_log_probs` and the reference branch of `_compute_loss`).
 */
export function referenceLogProbSums(reference: ReferenceSource, batch: DpoBatch, ldAlpha: number | null): number[] {
  const weights = ldAlpha === null ? undefined : ldTokenWeights(batch.completionMask, ldAlpha);
  return reference.run((net) =>
    completionLogProbSums(net, batch.inputIds, batch.completionMask, batch.attentionMask, weights),
  );
}

/**
 * sha256 (hex, 32 chars) over every weight's name, shape and float32 bytes, in name order: the variables
 * and, for a model loaded in 16 bits, its 16-bit weights upcast (so the same values give the same
 * fingerprint whether they are stored in 16 or 32 bits).
 * @param names restrict to these parameter names (those the model lacks are skipped).
 */
export function weightsFingerprint(model: CausalLM, names?: readonly string[]): string {
  const h = createHash("sha256");
  const keep = names === undefined ? undefined : new Set(names);
  const weights: Array<[string, { shape: readonly number[]; values: () => Float32Array }]> = [
    ...[...model.namedParameters()].map(
      ([n, v]) => [n, { shape: v.shape, values: () => v.dataSync() as Float32Array }] as [string, WeightValues],
    ),
    ...(hasHalfPrecisionWeights(model) ? [...model.halfPrecisionWeights()] : []).map(
      ([n, w]) => [n, { shape: w.shape, values: () => w.float32() }] as [string, WeightValues],
    ),
  ];
  const entries = weights
    .filter(([n]) => keep === undefined || keep.has(n))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, w] of entries) {
    h.update(`${name}:${w.shape.join("x")};`);
    const d = w.values();
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest("hex").slice(0, 32);
}

type WeightValues = { shape: readonly number[]; values: () => Float32Array };

/** sha256 (hex, 32 chars) over the token ids of every pair, in order. */
export function preferenceDatasetFingerprint(rows: readonly TokenizedPreference[]): string {
  const h = createHash("sha256");
  for (const r of rows) {
    const rejectedPrompt = r.rejectedPromptIds === undefined ? "" : `|${r.rejectedPromptIds.join(",")}`;
    h.update(`${r.promptIds.join(",")}|${r.chosenIds.join(",")}|${r.rejectedIds.join(",")}${rejectedPrompt}\n`);
  }
  return h.digest("hex").slice(0, 32);
}

/** Reference log-probs of a dataset, by row index. */
export interface RefLogProbs {
  /** log πref(y_c|x) per row (summed over completion tokens). */
  chosen: number[];
  /** log πref(y_r|x) per row. */
  rejected: number[];
}

/** The JSON file the cache writes: `<cacheDir>/ref-logps-<key>.json`. */
export interface RefLogProbsFile extends RefLogProbs {
  /** Format version (1). */
  version: 1;
  /** `<datasetFingerprint>-<referenceFingerprint>`. */
  key: string;
  /** {@link preferenceDatasetFingerprint} of the rows. */
  datasetFingerprint: string;
  /** {@link weightsFingerprint} of the reference weights. */
  referenceFingerprint: string;
  /** Rows covered. */
  numRows: number;
}

/** Path of the cache file for `key`. */
export function refLogProbsPath(cacheDir: string, key: string): string {
  return join(cacheDir, `ref-logps-${key}.json`);
}

/** Read a cache file, or `undefined` if there is none. Throws a {@link CheckpointError} for a corrupt one. */
export async function readRefLogProbs(file: string, key: string, numRows: number): Promise<RefLogProbs | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  let parsed: RefLogProbsFile;
  try {
    parsed = JSON.parse(text) as RefLogProbsFile;
  } catch (e) {
    throw new CheckpointError("reference log-prob cache is not valid JSON", { file }, { cause: e });
  }
  if (
    parsed.key !== key ||
    parsed.numRows !== numRows ||
    !Array.isArray(parsed.chosen) ||
    !Array.isArray(parsed.rejected) ||
    parsed.chosen.length !== numRows ||
    parsed.rejected.length !== numRows
  ) {
    throw new CheckpointError(`reference log-prob cache does not match key ${key} and ${numRows} rows`, { file });
  }
  return { chosen: parsed.chosen, rejected: parsed.rejected };
}

/** Write a cache file atomically (temp file, then rename). */
export async function writeRefLogProbs(file: string, content: RefLogProbsFile): Promise<void> {
  await mkdir(join(file, ".."), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, JSON.stringify(content));
  await rename(tmp, file);
}

/**
 * Precomputed reference log-probs (TRL's `precompute_ref_log_probs`): computed once per dataset split,
 * cached on disk keyed by the dataset's token ids and the reference weights, and never taken from a policy
 * that has already been trained.
 * @module
 */
import { join } from "node:path";
import { type CausalLM, ConfigError, collateDpo, type DpoBatch, type TokenizedPreference } from "@prefkit/core";
import {
  preferenceDatasetFingerprint,
  type RefLogProbs,
  type ReferenceSource,
  readRefLogProbs,
  refLogProbsPath,
  weightsFingerprint,
  writeRefLogProbs,
} from "./reference.js";

/** A dataset split. */
export type Split = "train" | "eval";

/** The cache keys a run used, per split (checkpointed, so a resume reuses exactly those files). */
export type RefCacheKeys = Partial<Record<Split, { key: string }>>;

/** What {@link RefLogProbCache} needs. */
export interface RefLogProbCacheOptions {
  /** The reference. */
  reference: ReferenceSource;
  /** Whether the user gave a separate reference model (then it may be used after training started). */
  separateReference: CausalLM | undefined;
  /** The policy (fingerprinted at construction when it is its own reference). */
  policy: CausalLM;
  /** Where cache files go. */
  cacheDir: string;
  /** Pad id for the reference batches. */
  padTokenId: number;
  /** Rows per reference batch. */
  batchSize: number;
  /**
   * What else shapes the values besides data and weights, e.g. `"ld0.5"` for LD-DPO's weighted sums
   * (`ldAlpha` 0.5); it ends the cache key, so values computed another way are never reused.
   */
  variant?: string;
}

/** Summed reference log-probs of every row of `batch` ([chosen..., rejected...]). */
export type ReferenceSums = (batch: DpoBatch) => number[];

/**
 * The reference log-prob cache of one run. Build it when the trainer is built: the policy's starting
 * weights are fingerprinted then, so a policy trained before `train()` is caught.
 */
export class RefLogProbCache {
  private readonly values: Partial<Record<Split, RefLogProbs>> = {};
  private readonly keys: Partial<Record<Split, string>> = {};
  private readonly startNames: string[];
  private readonly startFingerprint: string;
  private recorded: RefCacheKeys = {};

  /**
   * @param options see {@link RefLogProbCacheOptions}.
   * @param referenceSums how the reference's summed log-probs of a batch are computed.
   */
  constructor(
    private readonly options: RefLogProbCacheOptions,
    private readonly referenceSums: ReferenceSums,
  ) {
    this.startNames = [...options.policy.namedParameters().keys()];
    this.startFingerprint = options.separateReference
      ? weightsFingerprint(options.separateReference)
      : weightsFingerprint(options.policy);
  }

  /** The keys in use (for the checkpoint). */
  state(): RefCacheKeys {
    return Object.fromEntries(Object.entries(this.keys).map(([split, key]) => [split, { key }]));
  }

  /** Keys recorded by the run being resumed: a resume must find the same datasets. */
  restore(keys: RefCacheKeys): void {
    this.recorded = keys;
  }

  /** The cached values of a split, if computed. */
  get(split: Split): RefLogProbs | undefined {
    return this.values[split];
  }

  /**
   * Load (or compute and write) the reference log-probs of `rows`.
   * @param globalStep the run's step (computing from the policy is refused once it trained).
   * @throws ConfigError when the dataset differs from the recorded one, or the policy already trained.
   */
  async ensure(split: Split, rows: readonly TokenizedPreference[], globalStep: number): Promise<RefLogProbs> {
    const done = this.values[split];
    if (done !== undefined) return done;
    const datasetFp = preferenceDatasetFingerprint(rows);
    const recorded = this.recorded[split]?.key;
    if (recorded !== undefined && !recorded.startsWith(`${datasetFp}-`)) {
      throw new ConfigError(
        `the ${split} dataset differs from the one this run's reference log-probs were computed for`,
        { field: split === "train" ? "trainDataset" : "evalDataset" },
      );
    }
    // key = <dataset fingerprint>-<reference fingerprint>[-<variant>], fingerprints of equal length
    const suffix = this.options.variant === undefined ? "" : `-${this.options.variant}`;
    const recordedSuffix = recorded?.slice(2 * datasetFp.length + 1);
    if (recordedSuffix !== undefined && recordedSuffix !== suffix) {
      throw new ConfigError(
        `this run's reference log-probs were computed as "${recordedSuffix.slice(1) || "plain sums"}", ` +
          `not "${this.options.variant ?? "plain sums"}": ldAlpha must not change on resume`,
        { field: "ldAlpha" },
      );
    }
    const key = recorded ?? `${datasetFp}-${this.startFingerprint}${suffix}`;
    const file = refLogProbsPath(this.options.cacheDir, key);
    let values = await readRefLogProbs(file, key, rows.length);
    if (values === undefined) {
      this.assertReferenceUntrained(file, globalStep);
      values = this.compute(rows);
      await writeRefLogProbs(file, {
        version: 1,
        key,
        datasetFingerprint: datasetFp,
        referenceFingerprint: key.slice(datasetFp.length + 1, 2 * datasetFp.length + 1),
        numRows: rows.length,
        ...values,
      });
    }
    this.values[split] = values;
    this.keys[split] = key;
    return values;
  }

  /** Refuse to take reference log-probs from a policy that is no longer the starting one. */
  private assertReferenceUntrained(file: string, globalStep: number): void {
    if (this.options.reference.kind === "model" && this.options.separateReference !== undefined) return;
    if (globalStep > 0) {
      throw new ConfigError(
        `refusing to compute reference log-probs from the policy: it has already been trained (global step ${globalStep}) ` +
          `and the cache ${file} is missing. Restore the cache or start a new run`,
        { field: "precomputeRefLogProbs" },
      );
    }
    if (weightsFingerprint(this.options.policy, this.startNames) !== this.startFingerprint) {
      throw new ConfigError(
        "refusing to compute reference log-probs from the policy: its weights changed since the trainer was built",
        { field: "precomputeRefLogProbs" },
      );
    }
  }

  /** Reference log-probs of `rows`, in order, in batches, without gradients. */
  private compute(rows: readonly TokenizedPreference[]): RefLogProbs {
    const chosen: number[] = [];
    const rejected: number[] = [];
    const bs = this.options.batchSize;
    for (let i = 0; i < rows.length; i += bs) {
      const batch = collateDpo(rows.slice(i, i + bs), { padTokenId: this.options.padTokenId });
      const sums = this.referenceSums(batch);
      chosen.push(...sums.slice(0, batch.batchSize));
      rejected.push(...sums.slice(batch.batchSize));
    }
    return { chosen, rejected };
  }
}

/** `<outputDir>/ref_logps` unless a cache directory is configured. */
export function refCacheDir(outputDir: string, configured: string | null): string {
  return configured ?? join(outputDir, "ref_logps");
}

/**
 * `DPOTrainer`: TRL's DPO training loop on core's `BaseTrainer`.
 * @module
 */
import { join } from "node:path";
import {
  type Callback,
  type CausalLM,
  type ComputeLossContext,
  ConfigError,
  collateDpo,
  type DpoBatch,
  fusedSequenceLogProbs,
  hasFusedHead,
  type Loss,
  type LossRegistry,
  type Plugin,
  type StepOutput,
  type StepResult,
  sequenceLogProbs,
  type TokenizedPreference,
  type TokenizerLike,
  tf,
} from "@prefkit/core";
import type { DependencyContainer } from "tsyringe";
import { type DPOConfig, type DPOLossName, defaultDPOConfig, validateDPOConfig } from "../dpo/config.js";
import type { DPOLossInputs } from "../dpo/objective.js";
import { type PreferenceDatasetInput, resolvePreferenceDataset } from "./datasets.js";
import {
  completionLogProbSums,
  preferenceDatasetFingerprint,
  type RefLogProbs,
  type ReferenceSource,
  readRefLogProbs,
  refLogProbsPath,
  resolveReference,
  weightsFingerprint,
  writeRefLogProbs,
} from "./reference.js";
import { PreparingTrainer } from "./preparing-trainer.js";
import {
  type DeferredBatchSource,
  deferredSources,
  definedFields,
  lossFactory,
  registryOf,
  trainerContainer,
} from "./setup.js";
import { tokenMetrics, tokenMetricsFromStats } from "./token-metrics.js";

/** A DPO micro-batch: core's {@link DpoBatch} plus dataset row indices and, when known, the reference log-probs. */
export interface DPOTrainerBatch extends DpoBatch {
  /** Dataset index of each pair. */
  rowIndices: number[];
  /** log πref(y_c|x) per pair (precomputed, or computed just before the step outside the gradient tape). */
  refChosenLogps?: number[];
  /** log πref(y_r|x) per pair. */
  refRejectedLogps?: number[];
}

/** `DPOTrainer` arguments: any subset of {@link DPOConfig}; `lossType` may be one name or a list. */
export type DPOTrainingArguments = Partial<Omit<DPOConfig, "lossType">> & {
  /** Loss type(s): built-in TRL names or names of registered user losses. */
  lossType?: DPOLossName | readonly DPOLossName[];
};

/** Options of the "loss stuck at ln 2" warning. */
export interface Ln2WarningOptions {
  /** Consecutive logged training losses within `tolerance` of ln 2 before warning. Default 10. */
  consecutiveLogs?: number;
  /** Distance to ln 2 that counts as "at ln 2". Default 1e-4. */
  tolerance?: number;
}

/** What the `DPOTrainer` constructor takes, with TRL's parameter names in camelCase. */
export interface DPOTrainerOptions {
  /** The policy to train. */
  model: CausalLM;
  /**
   * The reference. Default: the model itself with adapters switched off when it implements
   * `AdapterToggle` (LoRA; no copy), else a `frozenCopy()` of its weights when the trainer is built
   * (when training starts if `plugins` are given). With `precomputeRefLogProbs` and no `refModel`, the
   * untrained policy computes them once and no copy is kept. To resume a run, build the trainer on the
   * same starting model: the checkpoint then replaces the policy's weights, not the reference's.
   */
  refModel?: CausalLM;
  /** The config; missing fields take TRL's defaults ({@link defaultDPOConfig}). */
  args?: DPOTrainingArguments;
  /** Training pairs: tokenised, raw TRL rows, or a file path (see {@link PreferenceDatasetInput}). */
  trainDataset: PreferenceDatasetInput;
  /** Evaluation pairs, same forms. */
  evalDataset?: PreferenceDatasetInput;
  /** Tokenizer (TRL's `processing_class`): tokenises raw rows; its pad id pads batches. */
  processingClass?: TokenizerLike;
  /** Alias of `processingClass` (older TRL name). */
  tokenizer?: TokenizerLike;
  /** Callbacks, after the default flow callback. */
  callbacks?: Callback<any>[];
  /** Plugins installed when training starts: their losses, callbacks and model wrappers apply to this run. */
  plugins?: Plugin[];
  /** Registry to look `lossType` names up in (a child is made for the run). Default: core's `defaultLossRegistry`. */
  lossRegistry?: LossRegistry;
  /** Optimizer to use instead of AdamW built from the args. */
  optimizer?: tf.Optimizer;
  /** Where warnings go (the ln 2 warning, dropped rows). Default `console.warn`. */
  warn?: (message: string) => void;
  /** Tuning of the "loss stuck at ln 2" warning. */
  ln2Warning?: Ln2WarningOptions;
}

/** `state.statefulCallbacks` key of the ln 2 watch: `{ consecutive, warned, step }` (callbacks can read it). */
export const DPO_LN2_WARNING_KEY = "DPOTrainer.lossAtLn2";
/** `state.statefulCallbacks` key recording which reference log-prob caches a run uses (for resumes). */
export const DPO_REF_LOGPS_KEY = "DPOTrainer.refLogProbs";

/** The ln 2 watch record kept in `state.statefulCallbacks[DPO_LN2_WARNING_KEY]`. */
export interface Ln2WarningState {
  /** Consecutive logged training losses within tolerance of ln 2. */
  consecutive: number;
  /** True once the warning was emitted. */
  warned: boolean;
  /** Global step at which it was emitted, or null. */
  step: number | null;
}

type Split = "train" | "eval";

/** The resolved trainer config: a full {@link DPOConfig} with `lossType` as a list. */
export type ResolvedDPOConfig = DPOConfig;

/**
 * Fill TRL's defaults into `args` and validate everything but user loss names (checked against the registry
 * later). `useWeighting`, `ldAlpha`, `syncRefModel` and `truncationMode: "keep_end"` are refused with a
 * {@link ConfigError} rather than silently ignored: the trainer does not implement them yet.
 */
export function resolveDPOConfig(args: DPOTrainingArguments = {}): ResolvedDPOConfig {
  const lossType =
    args.lossType === undefined
      ? ["sigmoid"]
      : typeof args.lossType === "string"
        ? [args.lossType]
        : [...args.lossType];
  const config = { ...defaultDPOConfig(), ...definedFields(args), lossType } as ResolvedDPOConfig;
  validateDPOConfig(config, () => true);
  const unsupported: Array<[keyof DPOConfig, boolean, string]> = [
    ["useWeighting", config.useWeighting, "true (WPO)"],
    ["ldAlpha", config.ldAlpha !== null, "set (LD-DPO)"],
    ["syncRefModel", config.syncRefModel, "true (TR-DPO)"],
    ["truncationMode", config.truncationMode !== "keep_start", `"${config.truncationMode}"`],
  ];
  for (const [field, on, what] of unsupported) {
    if (on) throw new ConfigError(`${what} is not supported by the DPOTrainer yet`, { field });
  }
  return config;
}

const LN2 = Math.LN2;

/**
 * DPO training (TRL's `DPOTrainer`): each micro-batch is one fused policy forward over chosen and
 * rejected concatenated (core's `collateDpo` + `sequenceLogProbs`, or `fusedSequenceLogProbs` when the
 * model has a plain LM head: see core's `hasFusedHead`), the reference log-probs come from the
 * reference run without gradients (or from the precomputed cache), and the loss is looked up by
 * `lossType` in the loss registry, so a user's registered loss trains exactly like `"sigmoid"`; several
 * types are summed with `lossWeights`.
 *
 * Logged metrics (TRL names): `loss`, `grad_norm`, `learning_rate`, `epoch`, `num_tokens`,
 * `rewards/chosen`, `rewards/rejected`, `rewards/accuracies`, `rewards/margins`, `logps/chosen`,
 * `logps/rejected`, `logits/chosen`, `logits/rejected`, `mean_token_accuracy`, `entropy`, plus any extra
 * metric a user loss returns; evaluation prefixes them with `eval_`.
 *
 * ```ts
 * const trainer = new DPOTrainer({ model, args: { beta: 0.1, maxSteps: 20, outputDir }, trainDataset, processingClass: tok });
 * await trainer.train();
 * ```
 */
export class DPOTrainer extends PreparingTrainer<DPOTrainerBatch, ResolvedDPOConfig> {
  /** The reference (resolved in the constructor, or when training starts if plugins were given). */
  reference: ReferenceSource | undefined;
  /** The losses built from `lossType`, in order (available after training started). */
  losses: Loss<DPOLossInputs>[] = [];
  /** Tokenised training pairs (available after training started). */
  trainRows: TokenizedPreference[] = [];
  /** Tokenised evaluation pairs, if any. */
  evalRows: TokenizedPreference[] | undefined;

  private readonly options: DPOTrainerOptions;
  private readonly container: DependencyContainer;
  private readonly trainSource: DeferredBatchSource<TokenizedPreference, DPOTrainerBatch>;
  private readonly evalSource: DeferredBatchSource<TokenizedPreference, DPOTrainerBatch> | undefined;
  private readonly warnFn: (message: string) => void;
  private padTokenId = 0;
  private lossWeights: number[] = [];
  private refFingerprint = "";
  private startFingerprint = "";
  private startNames: string[] = [];
  private readonly refCache: Partial<Record<Split, RefLogProbs>> = {};
  private readonly refKeys: Partial<Record<Split, string>> = {};

  /** Build a trainer; nothing heavy happens until {@link DPOTrainer.train} or {@link DPOTrainer.evaluate}. */
  constructor(options: DPOTrainerOptions) {
    const args = resolveDPOConfig(options.args);
    const holder: { trainer?: DPOTrainer } = {};
    const collate = (split: Split) => (rows: Array<{ row: TokenizedPreference; index: number }>) =>
      holder.trainer!.collate(rows, split);
    const { trainSource, evalSource } = deferredSources(args, options.evalDataset !== undefined, collate);
    const refHook: Callback<ResolvedDPOConfig> = {
      onTrainBegin: async () => {
        await holder.trainer!.onTrainStart();
      },
    };
    super(args, options.model, trainSource, evalSource, [refHook, ...(options.callbacks ?? [])], options.optimizer);
    holder.trainer = this;
    this.options = options;
    this.trainSource = trainSource;
    this.evalSource = evalSource;
    this.container = trainerContainer(options.lossRegistry);
    this.warnFn = options.warn ?? ((m) => console.warn(m));
    this.notify = this.warnFn;
    // As TRL, the reference is fixed when the trainer is built; with plugins (which may wrap the model,
    // e.g. LoRA adding an AdapterToggle) it is resolved once they are installed, when training starts.
    if ((options.plugins ?? []).length === 0) {
      this.reference = resolveReference(options.model, options.refModel, args.precomputeRefLogProbs);
    }
    if (args.precomputeRefLogProbs && options.refModel === undefined) {
      // The starting weights, so a policy trained before train() runs is caught.
      this.startNames = [...options.model.namedParameters().keys()];
      this.startFingerprint = weightsFingerprint(options.model);
    }
  }

  /** Evaluate on `evalDataset` (metrics prefixed `eval_`), preparing first if needed. */
  override async evaluate(options: { metricKeyPrefix?: string } = {}): Promise<Record<string, number>> {
    await this.prepare();
    if (this.args.precomputeRefLogProbs && this.evalRows !== undefined) await this.ensureRefLogProbs("eval");
    return super.evaluate(options);
  }

  /**
   * Compute (or load from the cache) the reference log-probs of the train and eval sets now, as TRL's
   * `precompute_ref_log_probs`. The cache file is keyed by the dataset's token ids and the reference
   * weights; when the reference is the policy itself it is refused once the policy has been trained.
   * Returns the training set's values by row.
   * @throws ConfigError when the reference would come from an already-trained policy.
   */
  async precomputeRefLogProbs(): Promise<RefLogProbs> {
    await this.prepare();
    await this.ensureRefLogProbs("train");
    if (this.evalRows !== undefined) await this.ensureRefLogProbs("eval");
    return this.refCache.train!;
  }

  /** The ln 2 watch record (see {@link DPO_LN2_WARNING_KEY}). */
  get ln2Warning(): Ln2WarningState {
    return (
      (this.state.statefulCallbacks[DPO_LN2_WARNING_KEY] as Ln2WarningState | undefined) ?? {
        consecutive: 0,
        warned: false,
        step: null,
      }
    );
  }

  /** Free what the trainer owns: the optimizer state and a frozen reference copy it made (not the policy). */
  dispose(): void {
    this.optimizer.dispose();
    this.reference?.owned?.dispose();
  }

  /** Tokenise the data and install the plugins (once, before the first step). */
  protected async doPrepare(): Promise<void> {
    const o = this.options;
    const args = this.args;
    await this.installRunPlugins(this.container, o.plugins ?? []);

    const registry = registryOf(this.container);
    const names = args.lossType;
    this.losses = names.map((name, i) =>
      lossFactory(registry, name, names.length === 1 ? "lossType" : `lossType[${i}]`)(args),
    ) as Loss<DPOLossInputs>[];
    this.lossWeights = args.lossWeights ?? names.map(() => 1);
    if (this.lossWeights.length !== names.length) {
      throw new ConfigError(`must be null or a list of ${names.length} numbers, one per loss type`, {
        field: "lossWeights",
      });
    }

    const tokenizer = o.processingClass ?? o.tokenizer;
    this.padTokenId = args.padTokenId ?? tokenizer?.padTokenId ?? tokenizer?.eosTokenId ?? 0;
    const tokenize = {
      maxLength: args.maxLength,
      maxPromptLength: args.maxPromptLength,
      maxCompletionLength: args.maxCompletionLength,
      warn: this.warnFn,
    };
    this.trainRows = (await resolvePreferenceDataset(o.trainDataset, tokenizer, tokenize, "trainDataset")).examples;
    this.trainSource.setRows(this.trainRows);
    if (o.evalDataset !== undefined) {
      this.evalRows = (await resolvePreferenceDataset(o.evalDataset, tokenizer, tokenize, "evalDataset")).examples;
      this.evalSource!.setRows(this.evalRows);
    }

    this.reference ??= resolveReference(this.model, o.refModel, args.precomputeRefLogProbs);
    if (args.precomputeRefLogProbs) {
      this.refFingerprint = o.refModel !== undefined ? weightsFingerprint(o.refModel) : this.startFingerprint;
    }
  }

  /** Called on `onTrainBegin`, after a resume restored the state: fill the reference cache if configured. */
  private async onTrainStart(): Promise<void> {
    if (!this.args.precomputeRefLogProbs) return;
    await this.ensureRefLogProbs("train");
    if (this.evalRows !== undefined) await this.ensureRefLogProbs("eval");
    // Record the cache keys in this run's state (train() starts from a fresh state), for resumes.
    this.state.statefulCallbacks[DPO_REF_LOGPS_KEY] = Object.fromEntries(
      Object.entries(this.refKeys).map(([split, key]) => [split, { key }]),
    );
  }

  private cacheDir(): string {
    return this.args.refLogProbsCacheDir ?? join(this.args.outputDir, "ref_logps");
  }

  private async ensureRefLogProbs(split: Split): Promise<void> {
    if (this.refCache[split] !== undefined) return;
    const rows = split === "train" ? this.trainRows : this.evalRows!;
    const datasetFp = preferenceDatasetFingerprint(rows);
    const records = (this.state.statefulCallbacks[DPO_REF_LOGPS_KEY] ?? {}) as Record<string, { key: string }>;
    const recorded = records[split]?.key;
    if (recorded !== undefined && !recorded.startsWith(`${datasetFp}-`)) {
      throw new ConfigError(
        `the ${split} dataset differs from the one this run's reference log-probs were computed for`,
        { field: split === "train" ? "trainDataset" : "evalDataset" },
      );
    }
    const key = recorded ?? `${datasetFp}-${this.refFingerprint}`;
    const file = refLogProbsPath(this.cacheDir(), key);
    let values = await readRefLogProbs(file, key, rows.length);
    if (values === undefined) {
      this.assertReferenceUntrained(file);
      values = this.computeRefLogProbs(rows);
      await writeRefLogProbs(file, {
        version: 1,
        key,
        datasetFingerprint: datasetFp,
        referenceFingerprint: key.slice(datasetFp.length + 1),
        numRows: rows.length,
        ...values,
      });
    }
    this.refCache[split] = values;
    this.refKeys[split] = key;
  }

  /** Refuse to take reference log-probs from a policy that is no longer the starting one. */
  private assertReferenceUntrained(file: string): void {
    const ref = this.reference!;
    if (ref.kind === "model" && this.options.refModel !== undefined) return;
    if (this.state.globalStep > 0) {
      throw new ConfigError(
        `refusing to compute reference log-probs from the policy: it has already been trained (global step ${this.state.globalStep}) ` +
          `and the cache ${file} is missing. Restore the cache or start a new run`,
        { field: "precomputeRefLogProbs" },
      );
    }
    if (weightsFingerprint(this.model, this.startNames) !== this.startFingerprint) {
      throw new ConfigError(
        "refusing to compute reference log-probs from the policy: its weights changed since the trainer was built",
        { field: "precomputeRefLogProbs" },
      );
    }
  }

  /** Reference log-probs of `rows`, in order, in batches of `perDeviceTrainBatchSize`, without gradients. */
  private computeRefLogProbs(rows: readonly TokenizedPreference[]): RefLogProbs {
    const chosen: number[] = [];
    const rejected: number[] = [];
    const bs = this.args.perDeviceTrainBatchSize;
    for (let i = 0; i < rows.length; i += bs) {
      const batch = collateDpo(rows.slice(i, i + bs), { padTokenId: this.padTokenId });
      const sums = this.referenceSums(batch);
      chosen.push(...sums.slice(0, batch.batchSize));
      rejected.push(...sums.slice(batch.batchSize));
    }
    return { chosen, rejected };
  }

  /** Summed reference log-probs of every row of `batch` ([chosen..., rejected...]), as numbers. */
  private referenceSums(batch: DpoBatch): number[] {
    return this.reference!.run((net) =>
      completionLogProbSums(net, batch.inputIds, batch.completionMask, batch.attentionMask),
    );
  }

  /** rows → {@link DPOTrainerBatch} (collateDpo + indices + cached reference values). */
  private collate(rows: Array<{ row: TokenizedPreference; index: number }>, split: Split): DPOTrainerBatch {
    const batch = collateDpo(
      rows.map((r) => r.row),
      { padTokenId: this.padTokenId },
    ) as DPOTrainerBatch;
    batch.rowIndices = rows.map((r) => r.index);
    const cache = this.refCache[split];
    if (cache !== undefined) {
      batch.refChosenLogps = batch.rowIndices.map((i) => cache.chosen[i]!);
      batch.refRejectedLogps = batch.rowIndices.map((i) => cache.rejected[i]!);
    }
    return batch;
  }

  /** The reference runs before the gradient tape opens (TRL's `torch.no_grad()`), then the base step. */
  protected override async trainingStep(microBatches: DPOTrainerBatch[]): Promise<StepResult> {
    for (const b of microBatches) this.attachReference(b);
    return super.trainingStep(microBatches);
  }

  private attachReference(batch: DPOTrainerBatch): void {
    if (batch.refChosenLogps !== undefined) return;
    if (this.reference!.kind === "policy-at-start") {
      throw new ConfigError("reference log-probs were not precomputed for this batch", {
        field: "precomputeRefLogProbs",
      });
    }
    const sums = this.referenceSums(batch);
    batch.refChosenLogps = sums.slice(0, batch.batchSize);
    batch.refRejectedLogps = sums.slice(batch.batchSize);
  }

  /** Each micro-batch weighs its number of pairs, so accumulation equals one big batch. */
  protected override batchWeight(batch: DPOTrainerBatch): number {
    return batch.batchSize;
  }

  /** Loss and TRL metrics of one micro-batch (one fused forward over 2B rows). */
  protected computeLoss(batch: DPOTrainerBatch, _ctx: ComputeLossContext): StepOutput {
    if (batch.refChosenLogps === undefined) this.attachReference(batch);
    const b = batch.batchSize;
    const t = batch.inputIds[0]!.length;
    const ids = tf.tensor2d(batch.inputIds.flat(), [2 * b, t], "int32");
    const att = tf.tensor2d(batch.attentionMask.flat(), [2 * b, t], "int32");
    // With a plain LM head the chunked fused head (core's lmHeadLogProbs) gives the log-probs and the
    // per-token logging stats without any [2B, T, V] logits; otherwise the logits path.
    const fused = hasFusedHead(this.model)
      ? fusedSequenceLogProbs(this.model, ids, batch.completionMask, { attentionMask: att, withStats: true })
      : undefined;
    const logits = fused === undefined ? this.model.forward({ inputIds: ids, attentionMask: att }).logits : undefined;
    const lp = fused ?? sequenceLogProbs(logits!, ids, batch.completionMask);
    const chosen = tf.slice(lp.sums, [0], [b]);
    const rejected = tf.slice(lp.sums, [b], [b]);
    const chosenLengths = tf.slice(lp.counts, [0], [b]);
    const rejectedLengths = tf.slice(lp.counts, [b], [b]);
    const refChosen = tf.tensor1d(batch.refChosenLogps!);
    const refRejected = tf.tensor1d(batch.refRejectedLogps!);
    const chosenNll = tf.div(tf.neg(tf.sum(chosen)), tf.maximum(tf.sum(chosenLengths), 1));
    const inputs: DPOLossInputs = {
      chosenLogps: chosen,
      rejectedLogps: rejected,
      refChosenLogps: refChosen,
      refRejectedLogps: refRejected,
      chosenLengths,
      rejectedLengths,
      chosenNll,
    };
    const metrics: Record<string, tf.Scalar | number> = {};
    let loss: tf.Scalar | undefined;
    this.losses.forEach((l, i) => {
      const out = l.compute(inputs);
      const term = tf.mul(out.loss, this.lossWeights[i]!) as tf.Scalar;
      loss = loss === undefined ? term : (tf.add(loss, term) as tf.Scalar);
      for (const [k, v] of Object.entries(out.metrics ?? {})) metrics[k] = v;
    });
    if (this.args.rpoAlpha !== null && this.args.rpoAlpha !== undefined) {
      loss = tf.add(loss!, tf.mul(chosenNll, this.args.rpoAlpha)) as tf.Scalar;
    }

    const beta = this.args.beta;
    const chosenRewards = tf.mul(tf.sub(chosen, refChosen), beta);
    const rejectedRewards = tf.mul(tf.sub(rejected, refRejected), beta);
    const margins = tf.sub(chosenRewards, rejectedRewards);
    // Position p predicts token p + 1: the scored positions are the completion mask shifted left.
    const scored = batch.completionMask.map((row) => [...row.slice(1), 0]);
    const zeros = new Array<number>(t).fill(0);
    const half = (chosenHalf: boolean) =>
      tf.tensor2d(
        scored.flatMap((row, i) => (i < b === chosenHalf ? row : zeros)),
        [2 * b, t],
        "float32",
      );
    const chosenMask = half(true);
    const masks = {
      meanLogit: [chosenMask, half(false)],
      accuracy: chosenMask,
      entropy: tf.tensor2d(scored.flat(), [2 * b, t], "float32"),
    };
    const tokenValues =
      fused !== undefined
        ? tokenMetricsFromStats(fused.stats!, masks)
        : tokenMetrics(
            logits!,
            tf.concat([tf.slice(ids, [0, 1], [2 * b, t - 1]), tf.zeros([2 * b, 1], "int32")], 1) as tf.Tensor2D,
            masks,
          );
    const [logitsChosen, logitsRejected, accuracy, entropy] = tf.unstack(tokenValues);

    Object.assign(metrics, {
      "rewards/chosen": tf.mean(chosenRewards),
      "rewards/rejected": tf.mean(rejectedRewards),
      "rewards/accuracies": tf.mean(tf.step(margins)),
      "rewards/margins": tf.mean(margins),
      "logps/chosen": tf.mean(chosen),
      "logps/rejected": tf.mean(rejected),
      "logits/chosen": logitsChosen,
      "logits/rejected": logitsRejected,
      mean_token_accuracy: accuracy,
      entropy,
    });
    const numTokens = batch.promptLengths.reduce((s, p, i) => s + p + batch.completionLengths[i]!, 0);
    return { loss: loss!, metrics: metrics as Record<string, tf.Scalar>, numTokens };
  }

  /** Logs as `BaseTrainer.log`, watching training losses for the "stuck at ln 2" symptom first. */
  override async log(logs: Record<string, number>): Promise<void> {
    const loss = logs["loss"];
    if (typeof loss === "number") {
      const opts = this.options.ln2Warning ?? {};
      const need = opts.consecutiveLogs ?? 10;
      const tol = opts.tolerance ?? 1e-4;
      const rec = { ...this.ln2Warning };
      rec.consecutive = Math.abs(loss - LN2) <= tol ? rec.consecutive + 1 : 0;
      if (!rec.warned && rec.consecutive >= need) {
        rec.warned = true;
        rec.step = this.state.globalStep;
        this.warnFn(
          `DPOTrainer: the loss has stayed at ln 2 = ${LN2.toFixed(6)} (±${tol}) for ${rec.consecutive} consecutive logs ` +
            `(step ${this.state.globalStep}): policy and reference may be the same weights (adapter never attached, ` +
            "reference sharing the trainable variables, or log-probs unused)",
        );
      }
      this.state.statefulCallbacks[DPO_LN2_WARNING_KEY] = rec;
    }
    await super.log(logs);
  }
}

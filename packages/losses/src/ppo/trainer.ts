/**
 * `PPOTrainer`: TRL's PPOv2 loop on core's `BaseTrainer`. One trainer step is one PPO update: a rollout
 * of `batchSize` prompts, then `numPpoEpochs` × `numMiniBatches` optimizer steps.
 * @module
 */
import {
  BaseTrainer,
  type BatchSource,
  type Callback,
  type CausalLM,
  ConfigError,
  clipByGlobalNorm,
  isSequenceClassifier,
  type Plugin,
  Rng,
  type SequenceClassifier,
  type StepOutput,
  type StepResult,
  selectiveLogProbs,
  type TokenizerLike,
  type TrainOutput,
  tf,
} from "@prefkit/core";
import type { DependencyContainer } from "tsyringe";
import { type ReferenceSource, resolveReference } from "../trainers/reference.js";
import { applyPlugins, trainerContainer } from "../trainers/setup.js";
import { type PPOConfig, type PPOTrainingArguments, resolvePPOConfig } from "./config.js";
import {
  AdaptiveKLController,
  FixedKLController,
  type KLController,
  type KLControllerState,
  klControllerFromState,
} from "./kl.js";
import { ppoPolicyLoss, ppoValueLoss } from "./losses.js";
import { type PromptDatasetInput, type TokenizedPrompt, tokenizePrompts } from "./prompts.js";
import { type RewardFunction, rewardFunctionRegistryOf } from "./reward-function.js";
import { type AdvantageResult, computeAdvantages } from "./rewards.js";
import { collectRollout, type Rollout, type ScoreRows } from "./rollout.js";
import { PolicyAndValueModel, ScalarValueHead, type ValueSource } from "./value.js";

/** `state.statefulCallbacks` key holding the KL controller's state (checkpointed, restored on resume). */
export const PPO_KL_CONTROLLER_KEY = "PPOTrainer.klController";

/** A chunk of `perDeviceTrainBatchSize × numMiniBatches` prompts; `gradientAccumulationSteps` chunks make one update. */
export interface PPOPromptChunk {
  /** Prompt ids, unpadded. */
  promptIds: number[][];
  /** Dataset index of each prompt. */
  rowIndices: number[];
}

/** The reward: a reward model, a reward function, or the registered name of one. */
export type PPORewardSource = SequenceClassifier | RewardFunction | string;

/** What the `PPOTrainer` constructor takes, with TRL's parameter names in camelCase. */
export interface PPOTrainerOptions {
  /** The policy to train (TRL `model`). Any `CausalLM`; one with `generate()` samples with the KV cache. */
  model: CausalLM;
  /**
   * The frozen reference. Default as the `DPOTrainer`: the policy with adapters off when it implements
   * `AdapterToggle` (LoRA), else a `frozenCopy()` of it taken when the trainer is built.
   */
  refModel?: CausalLM;
  /**
   * The reward: a `SequenceClassifier` with one label (scored at the last real token of the truncated
   * sequence), a {@link RewardFunction}, or the name of one registered with `registerRewardFunction` or
   * a `rewardFunctionPlugin`.
   */
  rewardModel: PPORewardSource;
  /**
   * The value model for `valueHead: "model"` (trained). Default: a trainable copy of `rewardModel`, as TRL
   * (needs a reward model with `copy()`, e.g. `PreTrainedModelForSequenceClassification`).
   */
  valueModel?: SequenceClassifier;
  /** The config; missing fields take TRL's defaults. */
  args?: PPOTrainingArguments;
  /** Prompts: tokenised, raw (strings or messages), or a file path. */
  trainDataset: PromptDatasetInput;
  /** Tokenizer (TRL `processing_class`): prompts, eos/pad ids, and texts for reward functions. */
  processingClass?: TokenizerLike;
  /**
   * The reward model's tokenizer when it differs from the policy's: the decoded prompt+response is then
   * re-tokenised with it for scoring (said once in the logs).
   */
  rewardProcessingClass?: TokenizerLike;
  /** Callbacks, after the default flow callback. */
  callbacks?: Callback<any>[];
  /** Plugins installed when training starts (reward functions, callbacks, model wrappers). */
  plugins?: Plugin[];
  /** Optimizer instead of AdamW from the args. */
  optimizer?: tf.Optimizer;
  /** Where notices go (tokenizer mismatch, ...). Default `console.warn`. */
  warn?: (message: string) => void;
}

/** The resolved config: {@link PPOConfig} (which extends core's `TrainingArgs`). */
export type ResolvedPPOConfig = PPOConfig;

/** Per-micro-batch statistics of the last update, indexed [ppoEpoch][miniBatch][microBatch] as TRL's `*_stats`. */
export interface PPOUpdateStats {
  /** mean ratio over the micro-batch (`val/ratio` entries). */
  ratio: number[][][];
  /** 0.5·mean(Δlogp²). */
  approxkl: number[][][];
  /** Policy clip fraction. */
  pgClipfrac: number[][][];
  /** Policy loss. */
  pgLoss: number[][][];
  /** Value loss. */
  vfLoss: number[][][];
  /** Value clip fraction. */
  vfClipfrac: number[][][];
  /** Mean entropy of the temperature-scaled policy. */
  entropy: number[][][];
}

/** Rows over which the prompts are shuffled per epoch and cut into update-sized chunks (incomplete updates dropped). */
class PromptChunkSource implements BatchSource<PPOPromptChunk> {
  rows: TokenizedPrompt[] = [];
  constructor(
    readonly chunkSize: number,
    readonly chunksPerUpdate: number,
    readonly seed: number,
  ) {}
  get numBatches(): number {
    return Math.floor(this.rows.length / (this.chunkSize * this.chunksPerUpdate)) * this.chunksPerUpdate;
  }
  *batches(epoch: number): Iterable<PPOPromptChunk> {
    const order = new Rng(this.seed + epoch).permutation(this.rows.length);
    for (let b = 0; b < this.numBatches; b++) {
      const idx = order.slice(b * this.chunkSize, (b + 1) * this.chunkSize);
      yield { promptIds: idx.map((i) => this.rows[i]!.inputIds), rowIndices: idx };
    }
  }
}

const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
const unbiasedVar = (xs: number[]) => {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1);
};
const rowSumMean = (rows: number[][], keep?: number[][]) =>
  mean(rows.map((r, i) => r.reduce((s, x, t) => s + (keep === undefined || keep[i]![t] ? x : 0), 0)));

/**
 * PPO with a KL penalty (TRL's `PPOTrainer`, "PPOv2"). Each step:
 * 1. sample `responseLength` tokens per prompt with the KV-cache generator (temperature, top_k 0, top_p 1),
 *    keeping log π_old = log softmax(logits / (T + 1e-7));
 * 2. reference log-probs (same scaling), values, truncation at `stopTokenId` (or eos with `stopToken: "eos"`);
 * 3. score the truncated sequence (reward model at its last real token, or a reward function), minus
 *    `missingEosPenalty` when no eos was produced;
 * 4. per-token reward −β·KL (`k1`/`k3`) plus the score, GAE (`gamma`, `lam`), whitened advantages;
 * 5. `numPpoEpochs` × `numMiniBatches` optimizer steps of clipped policy loss + `vfCoef` × clipped value
 *    loss, each mini-batch accumulated over `gradientAccumulationSteps` micro-batches (loss / GA, as accelerate).
 *
 * β is `klCoef` (fixed) or the adaptive controller's (`adaptiveKl`). The value function is a separate value
 * model or a head on the policy (`valueHead`). Logged metrics (TRL names): `objective/kl`,
 * `objective/entropy`, `objective/non_score_reward`, `objective/rlhf_reward`, `objective/scores`,
 * `objective/kl_coef`, `policy/approxkl_avg`, `policy/clipfrac_avg`, `policy/entropy_avg`, `loss/policy_avg`,
 * `loss/value_avg`, `val/clipfrac_avg`, `val/ratio`, `val/ratio_var`, `val/num_eos_tokens`, `lr`, `episode`,
 * `eps`, plus the loop's `loss`, `grad_norm`, `learning_rate`, `num_tokens`, `epoch`.
 *
 * Checkpoints hold the policy, the value weights (`value_head.safetensors` or `value_model.safetensors`), the
 * optimizer, the KL controller (in `trainer_state.json`) and the RNG that drives sampling and mini-batch
 * order, so a resumed run continues exactly.
 */
export class PPOTrainer extends BaseTrainer<PPOPromptChunk, ResolvedPPOConfig> {
  /** The reference (resolved in the constructor, or when training starts if plugins were given). */
  reference: ReferenceSource | undefined;
  /** The KL coefficient controller (fixed or adaptive). */
  klController: KLController;
  /** Tokenised prompts (after training started). */
  trainRows: TokenizedPrompt[] = [];
  /** The last rollout (for inspection and tests). */
  lastRollout: Rollout | undefined;
  /** The training targets of the last rollout. */
  lastAdvantages: AdvantageResult | undefined;
  /** Per-micro-batch statistics of the last update. */
  lastUpdateStats: PPOUpdateStats | undefined;

  private readonly options: PPOTrainerOptions;
  private readonly container: DependencyContainer;
  private readonly source: PromptChunkSource;
  private readonly warnFn: (message: string) => void;
  private readonly ownedValueModel: SequenceClassifier | undefined;
  private prepared: Promise<void> | undefined;
  private scoreFn: ((rows: ScoreRows) => Promise<number[]>) | undefined;
  private eosTokenId: number | undefined;
  private padTokenId = 0;
  private stopTokenId: number | null = null;
  private lastLr = Number.NaN;
  private runStarted = 0;
  private runStartStep = 0;
  private retokenizeNoted = false;

  /** Build a trainer; prompts are tokenised when {@link PPOTrainer.train} runs. */
  constructor(options: PPOTrainerOptions) {
    const args = resolvePPOConfig(options.args);
    const rm = options.rewardModel;
    if (isSequenceClassifier(rm) && rm.numLabels !== 1) {
      throw new ConfigError(`a reward model needs numLabels = 1, got ${rm.numLabels}`, { field: "rewardModel" });
    }
    if (options.valueModel !== undefined && options.valueModel === rm) {
      throw new ConfigError("valueModel is the reward model itself: training V would change the reward; pass a copy", {
        field: "valueModel",
      });
    }
    let value: ValueSource;
    let owned: SequenceClassifier | undefined;
    if (args.valueHead === "policy") {
      const hidden = options.model.config.hidden_size;
      value = { kind: "policy", head: new ScalarValueHead(hidden, new Rng(args.seed)) };
    } else if (options.valueModel !== undefined) {
      value = { kind: "model", model: options.valueModel };
    } else {
      const copyable = rm as Partial<{ copy(o: { trainable?: boolean }): SequenceClassifier }>;
      if (!isSequenceClassifier(rm) || typeof copyable.copy !== "function") {
        throw new ConfigError(
          'valueHead "model" needs a valueModel, or a reward model with copy() to initialise it from (TRL); ' +
            'with a reward function, pass valueModel or set valueHead: "policy"',
          { field: "valueModel" },
        );
      }
      owned = copyable.copy({ trainable: true });
      value = { kind: "model", model: owned };
    }
    const wrapper = new PolicyAndValueModel(options.model, value);
    const chunk = args.perDeviceTrainBatchSize * args.numMiniBatches;
    const source = new PromptChunkSource(chunk, args.gradientAccumulationSteps, args.seed);
    const holder: { trainer?: PPOTrainer } = {};
    const startHook: Callback<ResolvedPPOConfig> = {
      onTrainBegin: () => holder.trainer!.onTrainStart(),
    };
    super(args, wrapper, source, undefined, [startHook, ...(options.callbacks ?? [])], options.optimizer);
    holder.trainer = this;
    this.options = options;
    this.source = source;
    this.ownedValueModel = owned;
    this.container = trainerContainer(undefined);
    this.warnFn = options.warn ?? ((m) => console.warn(m));
    this.notify = this.warnFn;
    this.klController = this.initialKlController();
    if ((options.plugins ?? []).length === 0) this.reference = resolveReference(options.model, options.refModel, false);
  }

  /** The policy + value model the optimizer trains. */
  get policyAndValue(): PolicyAndValueModel {
    return this.model as PolicyAndValueModel;
  }

  /** Prompts per update: `perDeviceTrainBatchSize × gradientAccumulationSteps × numMiniBatches` (TRL `batch_size`). */
  get batchSize(): number {
    const a = this.args;
    return a.perDeviceTrainBatchSize * a.gradientAccumulationSteps * a.numMiniBatches;
  }

  /** Run training (see `BaseTrainer.train`) after tokenising prompts and resolving the reward. */
  override async train(options: { resumeFromCheckpoint?: string | boolean } = {}): Promise<TrainOutput> {
    await this.prepare();
    this.runStarted = performance.now();
    return super.train(options);
  }

  /** Write the trained policy (without the value function) in HF layout, as TRL's `save_model`. */
  async saveModel(dir: string): Promise<void> {
    await this.policyAndValue.policy.savePretrained(dir);
  }

  /** Free what the trainer owns: optimizer state, the value head or value-model copy, a frozen reference copy. */
  dispose(): void {
    this.optimizer.dispose();
    this.policyAndValue.dispose();
    this.ownedValueModel?.dispose();
    this.reference?.owned?.dispose();
  }

  /** PPO has no per-batch evaluation loss: use `train()`. */
  protected computeLoss(): StepOutput {
    throw new ConfigError("the PPOTrainer has no evaluation loss; train() runs rollouts instead", {
      field: "evalDataset",
    });
  }

  private initialKlController(): KLController {
    const a = this.args;
    return a.adapKlCtrl ? new AdaptiveKLController(a.initKlCoef, a.target, a.horizon) : new FixedKLController(a.klCoef);
  }

  private onTrainStart(): void {
    const saved = this.state.statefulCallbacks[PPO_KL_CONTROLLER_KEY] as KLControllerState | undefined;
    this.klController = saved !== undefined ? klControllerFromState(saved) : this.initialKlController();
    this.runStartStep = this.state.globalStep;
  }

  private prepare(): Promise<void> {
    this.prepared ??= this.doPrepare();
    return this.prepared;
  }

  private async doPrepare(): Promise<void> {
    const o = this.options;
    const args = this.args;
    const policy0 = this.policyAndValue.policy;
    const { model: policy, callbacks, gradientHooks } = await applyPlugins(this.container, o.plugins ?? [], policy0);
    if (policy !== policy0) {
      (this as unknown as { model: CausalLM }).model = new PolicyAndValueModel(policy, this.policyAndValue.value);
    }
    for (const cb of callbacks) this.addCallback(cb);
    for (const hook of gradientHooks) this.addGradientHook(hook);
    this.reference ??= resolveReference(policy, o.refModel, false);

    const tok = o.processingClass;
    const configEos = policy.config["eos_token_id"];
    this.eosTokenId = tok?.eosTokenId ?? (typeof configEos === "number" ? configEos : undefined);
    this.padTokenId = args.padTokenId ?? tok?.padTokenId ?? this.eosTokenId ?? 0;
    this.stopTokenId = args.stopTokenId ?? (args.stopToken === "eos" ? (this.eosTokenId ?? null) : null);
    if (args.stopToken === "eos" && this.eosTokenId === undefined) {
      throw new ConfigError('stopToken "eos" needs a tokenizer or config with an eos token', { field: "stopToken" });
    }

    this.trainRows = await tokenizePrompts(o.trainDataset, tok);
    if (this.trainRows.length < this.batchSize) {
      throw new ConfigError(
        `${this.trainRows.length} prompts are fewer than one update's batch (perDeviceTrainBatchSize × ` +
          `gradientAccumulationSteps × numMiniBatches = ${this.batchSize})`,
        { field: "trainDataset" },
      );
    }
    this.source.rows = this.trainRows;
    if (args.maxSteps <= 0) {
      const episodes = args.totalEpisodes ?? Math.ceil(args.numTrainEpochs * this.trainRows.length);
      (args as { maxSteps: number }).maxSteps = Math.ceil(episodes / this.batchSize);
    }
    this.scoreFn = this.resolveScorer();
  }

  private resolveScorer(): (rows: ScoreRows) => Promise<number[]> {
    const o = this.options;
    let reward = o.rewardModel;
    if (typeof reward === "string") reward = rewardFunctionRegistryOf(this.container).get(reward, "rewardModel");
    const tok = o.processingClass;
    if (typeof reward === "function") {
      const fn = reward;
      if (tok === undefined) {
        throw new ConfigError("a reward function gets decoded text: pass processingClass", {
          field: "processingClass",
        });
      }
      return async (rows) => {
        const completions = rows.responseIds.map((r) => tok.decode(r, { skipSpecialTokens: true }));
        const prompts = rows.promptIds.map((r) => tok.decode(r, { skipSpecialTokens: true }));
        return fn(completions, prompts, { promptIds: rows.promptIds, completionIds: rows.responseIds });
      };
    }
    const rm = reward;
    const rmTok = o.rewardProcessingClass;
    const retokenize = rmTok !== undefined && rmTok !== tok;
    if (retokenize && tok === undefined) {
      throw new ConfigError("re-tokenising for the reward model needs the policy's processingClass", {
        field: "processingClass",
      });
    }
    const chunk = this.args.localRolloutForwardBatchSize;
    return async (rows) => {
      let ids = rows.inputIds;
      let mask = rows.attentionMask;
      if (retokenize) {
        if (!this.retokenizeNoted) {
          this.retokenizeNoted = true;
          this.warnFn(
            "PPOTrainer: the reward model's tokenizer differs from the policy's; decoding prompt+response and " +
              "re-tokenising the text for the reward model",
          );
        }
        const seqs = rows.promptIds.map((p, i) =>
          rmTok!.encode(tok!.decode([...p, ...rows.responseIds[i]!], { skipSpecialTokens: true })),
        );
        const len = Math.max(...seqs.map((s) => s.length));
        const pad = rmTok!.padTokenId ?? rmTok!.eosTokenId ?? 0;
        ids = seqs.map((s) => [...s, ...new Array<number>(len - s.length).fill(pad)]);
        mask = seqs.map((s) => Array.from({ length: len }, (_, t) => (t < s.length ? 1 : 0)));
      }
      const out: number[] = [];
      for (let a = 0; a < ids.length; a += chunk) {
        const scores = tf.tidy(() =>
          rm
            .forward({ inputIds: ids.slice(a, a + chunk), attentionMask: mask.slice(a, a + chunk) })
            .logits.reshape([-1]),
        );
        out.push(...((await scores.data()) as Float32Array));
        scores.dispose();
      }
      return out;
    };
  }

  /** One PPO update over the prompts of `chunks` (see the class comment). */
  protected override async trainingStep(chunks: PPOPromptChunk[]): Promise<StepResult> {
    const args = this.args;
    const model = this.policyAndValue;
    const vars = model.trainableVariables();
    if (vars.length === 0) throw new ConfigError("the model has no trainable variables", { field: "model" });
    const prompts = chunks.flatMap((c) => c.promptIds);

    const rollout = await collectRollout(
      prompts,
      { model, reference: this.reference!, score: this.scoreFn!, rng: this.rng },
      {
        responseLength: args.responseLength,
        temperature: args.temperature,
        localRolloutForwardBatchSize: args.localRolloutForwardBatchSize,
        missingEosPenalty: args.missingEosPenalty,
        stopTokenId: this.stopTokenId,
        eosTokenId: this.eosTokenId,
        padTokenId: this.padTokenId,
      },
    );
    const klCoef = this.klController.value;
    const adv = computeAdvantages(rollout, {
      klCoef,
      klEstimator: args.klEstimator,
      gamma: args.gamma,
      lam: args.lam,
      whitenRewards: args.whitenRewards,
    });

    const n = prompts.length;
    const miniSize = n / args.numMiniBatches;
    const micro = args.perDeviceTrainBatchSize;
    const ga = args.gradientAccumulationSteps;
    const stats: PPOUpdateStats = {
      ratio: [],
      approxkl: [],
      pgClipfrac: [],
      pgLoss: [],
      vfLoss: [],
      vfClipfrac: [],
      entropy: [],
    };
    const lr = this.scheduler!.lr;
    this.lastLr = lr;
    this.optimizer.learningRate = lr;
    const losses: number[] = [];
    const norms: number[] = [];
    const hooks = this.activeGradientHooks();
    let skipped = 0;
    for (let e = 0; e < args.numPpoEpochs; e++) {
      const perm = this.rng.permutation(n);
      for (const key of Object.keys(stats) as (keyof PPOUpdateStats)[]) stats[key].push([]);
      for (let m = 0; m < args.numMiniBatches; m++) {
        const miniInds = perm.slice(m * miniSize, (m + 1) * miniSize);
        for (const key of Object.keys(stats) as (keyof PPOUpdateStats)[]) stats[key][e]!.push([]);
        const accum: tf.NamedTensorMap = {};
        try {
          let miniLoss = 0;
          for (let k = 0; k < ga; k++) {
            const inds = miniInds.slice(k * micro, (k + 1) * micro);
            const out = this.microBatchGrads(rollout, adv, inds, vars, 1 / ga, this.lossScaleOf(hooks));
            losses.push(out.loss);
            miniLoss += out.loss / ga;
            for (const [key, v] of Object.entries(out.stats)) stats[key as keyof PPOUpdateStats][e]![m]!.push(v);
            for (const [name, g] of Object.entries(out.grads)) {
              if (g == null) continue;
              const prev = accum[name];
              if (prev) {
                accum[name] = tf.add(prev, g);
                prev.dispose();
                g.dispose();
              } else accum[name] = g;
            }
          }
          if (hooks.length === 0) {
            norms.push(
              tf.tidy(() => {
                const { grads, norm } = clipByGlobalNorm(accum, args.maxGradNorm);
                const value = norm.dataSync()[0]!;
                // a non-finite mini-batch step is never applied (it ends the run: see BaseTrainer.stepIsFinite)
                if (this.stepIsFinite(miniLoss, value)) this.optimizer.applyGradients(grads);
                return value;
              }),
            );
          } else {
            // every mini-batch step is an optimizer step: the hooks (AMP's scaler, NaN guard) see each one
            const { gradNorm, applied } = this.applyStepGradients(accum, miniLoss, hooks);
            norms.push(gradNorm);
            if (!applied) skipped++;
          }
        } finally {
          for (const g of Object.values(accum)) g.dispose();
        }
        if (m < args.numMiniBatches - 1 || e < args.numPpoEpochs - 1) {
          await this.callbackHandler.emit("onSubstepEnd", this.args, this.state, this.control);
        }
      }
    }
    this.scheduler!.step();

    const flat = (x: number[][][]) => x.flat(2);
    const meanKl = rowSumMean(adv.kl);
    const meanNonScore = rowSumMean(adv.nonScoreReward);
    const meanScore = mean(rollout.scores);
    const metrics: Record<string, number> = {
      "objective/kl": meanKl,
      "objective/entropy": rowSumMean(
        rollout.logprobs.map((r) => r.map((x) => -x)),
        adv.mask,
      ),
      "objective/non_score_reward": meanNonScore,
      "objective/rlhf_reward": meanNonScore + meanScore,
      "objective/scores": meanScore,
      "objective/kl_coef": klCoef,
      "policy/approxkl_avg": mean(flat(stats.approxkl)),
      "policy/clipfrac_avg": mean(flat(stats.pgClipfrac)),
      "loss/policy_avg": mean(flat(stats.pgLoss)),
      "loss/value_avg": mean(flat(stats.vfLoss)),
      "val/clipfrac_avg": mean(flat(stats.vfClipfrac)),
      "policy/entropy_avg": mean(flat(stats.entropy)),
      "val/ratio": mean(flat(stats.ratio)),
      "val/ratio_var": unbiasedVar(flat(stats.ratio)),
      "val/num_eos_tokens": rollout.numEosTokens,
    };
    this.klController.update(meanKl, n);
    this.state.statefulCallbacks[PPO_KL_CONTROLLER_KEY] = this.klController.state();
    this.lastRollout = rollout;
    this.lastAdvantages = adv;
    this.lastUpdateStats = stats;
    const numTokens = rollout.attentionMask.reduce((s, r) => s + r.reduce((a, b) => a + b, 0), 0);
    return { loss: mean(losses), gradNorm: mean(norms), metrics, numTokens, ...(skipped > 0 ? { skipped: true } : {}) };
  }

  private microBatchGrads(
    rollout: Rollout,
    adv: AdvantageResult,
    inds: number[],
    vars: tf.Variable[],
    scale: number,
    lossScale = 1,
  ): { loss: number; grads: tf.NamedTensorMap; stats: Record<keyof PPOUpdateStats, number> } {
    const args = this.args;
    const model = this.policyAndValue;
    const c = rollout.contextLength;
    const w = rollout.width;
    const b = inds.length;
    const pick = (rows: number[][]) => inds.map((i) => rows[i]!);
    const t2 = (rows: number[][], dtype: "float32" | "int32" = "float32") =>
      tf.tensor2d(pick(rows).flat(), [b, rows[0]!.length], dtype);
    const inputs = {
      inputIds: t2(rollout.queryResponses, "int32"),
      attentionMask: t2(rollout.attentionMask, "int32"),
      positionIds: t2(rollout.positionIds, "int32"),
    };
    const responses = t2(rollout.responses, "int32");
    const oldLogprobs = t2(rollout.logprobs);
    const advantages = t2(adv.advantages);
    const returns = t2(adv.returns);
    const oldValues = t2(rollout.values);
    const mask = t2(adv.mask);
    const maskP1 = t2(adv.maskP1);
    const owned = [...Object.values(inputs), responses, oldLogprobs, advantages, returns, oldValues, mask, maskP1];
    const captured: Record<string, tf.Tensor> = {};
    try {
      const { value, grads } = tf.tidy(() =>
        tf.variableGrads(() => {
          const out = model.forwardWithValues(inputs);
          const v = out.logits.shape[2];
          const logits = tf.div(tf.slice(out.logits, [0, c - 1, 0], [b, w, v]), args.temperature + 1e-7) as tf.Tensor3D;
          const newLogprobs = selectiveLogProbs(logits, responses);
          const vpred = tf.mul(tf.slice(out.values, [0, c - 1], [b, w]), maskP1);
          const pg = ppoPolicyLoss(newLogprobs, oldLogprobs, advantages, mask, args.cliprange);
          const vf = ppoValueLoss(vpred, oldValues, returns, maskP1, args.cliprangeValue);
          const entropy = tf.tidy(() => {
            const lse = tf.logSumExp(logits, -1);
            const p = tf.softmax(logits);
            return tf.mean(tf.sub(lse, tf.sum(tf.mul(p, logits), -1)));
          });
          const loss = tf.add(pg.loss, tf.mul(vf.loss, args.vfCoef)) as tf.Scalar;
          Object.assign(captured, {
            ratio: tf.keep(pg.ratioMean),
            approxkl: tf.keep(pg.approxkl),
            pgClipfrac: tf.keep(pg.clipfrac),
            pgLoss: tf.keep(pg.loss),
            vfLoss: tf.keep(vf.loss),
            vfClipfrac: tf.keep(vf.clipfrac),
            entropy: tf.keep(entropy),
            loss: tf.keep(loss),
          });
          return tf.mul(loss, scale * lossScale) as tf.Scalar;
        }, vars),
      );
      value.dispose();
      const stats = Object.fromEntries(Object.entries(captured).map(([k, t]) => [k, t.dataSync()[0]!])) as Record<
        keyof PPOUpdateStats | "loss",
        number
      >;
      const { loss, ...rest } = stats;
      return { loss, grads, stats: rest };
    } finally {
      for (const t of [...owned, ...Object.values(captured)]) t.dispose();
    }
  }

  /** Logs as `BaseTrainer.log`, with TRL's `episode`, `eps` and `lr` filled in for training logs. */
  override async log(logs: Record<string, number>): Promise<void> {
    if ("objective/kl" in logs) {
      const episode = this.state.globalStep * this.batchSize;
      const seconds = (performance.now() - this.runStarted) / 1000;
      logs = {
        ...logs,
        episode,
        eps: Math.floor(((this.state.globalStep - this.runStartStep) * this.batchSize) / Math.max(seconds, 1e-9)),
        lr: this.lastLr,
      };
    }
    await super.log(logs);
  }
}

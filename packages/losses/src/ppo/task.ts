/**
 * The PPO task on core's generic `Trainer`: each trainer step is one update (TRL PPOv2). Its rollout phase
 * samples and scores responses and computes the advantages, then plans `numPpoEpochs × numMiniBatches`
 * optimizer steps of `gradientAccumulationSteps` micro-batches each, which the trainer runs (accumulation,
 * clipping, gradient hooks, schedule). Each micro-batch is one policy + value forward through the run's
 * `"rollout"` loss (`"ppo"`).
 * @module
 */
import {
  type CausalLM,
  type ComputeLossContext,
  ConfigError,
  checkLossKind,
  type Loss,
  Rng,
  type RolloutUpdate,
  type StepOutput,
  selectiveLogProbs,
  type TaskContext,
  type TokenizerLike,
  type TrainingTask,
  tf,
} from "@prefkit/core";
import type { ReferenceSource } from "../preference/reference.js";
import type { PPOConfig } from "./config.js";
import { chunkColumns, type PPOPromptChunk } from "./data.js";
import {
  AdaptiveKLController,
  FixedKLController,
  type KLController,
  type KLControllerState,
  klControllerFromState,
} from "./kl.js";
import type { RolloutInputs } from "./losses.js";
import {
  meanEntropy,
  objectiveMetrics,
  type PPOUpdateStats,
  rolloutEntropy,
  updateStats,
  updateStatsMetrics,
} from "./metrics.js";
import { type AdvantageOptions, type AdvantageResult, computeAdvantages } from "./rewards.js";
import {
  collectRollout,
  optimizationTimeMetrics,
  type Rollout,
  responseLogits,
  rolloutTimeMetrics,
  rowsTensor,
} from "./rollout.js";
import type { RolloutSettings } from "./sampling.js";
import type { Scorer } from "./scoring.js";
import type { PolicyAndValueModel } from "./value.js";

/** A rollout and its training targets: what every micro-batch of one update reads from. */
export interface PPOUpdateData {
  /** The sampled and scored responses. */
  rollout: Rollout;
  /** Advantages, returns and masks. */
  targets: AdvantageResult;
}

/** One PPO micro-batch: some rows of an update's rollout. */
export interface PPOMicroBatch {
  /** The update it belongs to. */
  update: PPOUpdateData;
  /** Row indices into the rollout (from the mini-batch permutation). */
  rows: number[];
}

/** The special token ids a rollout uses. */
export interface PPOTokenIds {
  /** End of sequence (ends generation, counted for the eos penalty), if known. */
  eos: number | undefined;
  /** Written into padding. */
  pad: number;
  /** Truncate responses after it (`null`: no truncation). */
  stop: number | null;
}

/**
 * The token ids of a run: eos from the tokenizer, else the model config; pad from the config, else the
 * tokenizer's pad, else eos, else 0; stop from `stopTokenId`, else eos with `stopToken: "eos"` (GRPO and
 * RLOO, which have none of these fields, stop at eos only).
 * @throws ConfigError for `stopToken: "eos"` without a known eos.
 */
export function ppoTokenIds(
  args: Partial<Pick<PPOConfig, "stopToken" | "stopTokenId" | "padTokenId">>,
  tokenizer: TokenizerLike | undefined,
  policy: CausalLM,
): PPOTokenIds {
  const configEos = policy.config["eos_token_id"];
  const eos = tokenizer?.eosTokenId ?? (typeof configEos === "number" ? configEos : undefined);
  if (args.stopToken === "eos" && eos === undefined) {
    throw new ConfigError('stopToken "eos" needs a tokenizer or config with an eos token', { field: "stopToken" });
  }
  return {
    eos,
    pad: args.padTokenId ?? tokenizer?.padTokenId ?? eos ?? 0,
    stop: args.stopTokenId ?? (args.stopToken === "eos" ? (eos ?? null) : null),
  };
}

/** The KL controller a run starts with: adaptive (`adapKlCtrl`) or fixed at `klCoef`. */
export function initialKlController(args: PPOConfig): KLController {
  return args.adapKlCtrl
    ? new AdaptiveKLController(args.initKlCoef, args.target, args.horizon)
    : new FixedKLController(args.klCoef);
}

/** What a {@link PPOTask} is built from. */
export interface PPOTaskOptions {
  /** The resolved config. */
  args: PPOConfig;
  /** The policy and its value function (what the optimizer trains). */
  model: PolicyAndValueModel;
  /** The frozen reference. */
  reference: ReferenceSource;
  /** The run's `"rollout"` loss. */
  loss: Loss<RolloutInputs>;
  /** Builds the scorer when training or evaluation starts (a reward function's name is looked up then). */
  scorer: () => Scorer;
  /** Special token ids. */
  tokenIds: PPOTokenIds;
}

/** PPO as a {@link TrainingTask}: rollout, advantages and the update plan; the KL controller is its checkpointed state. */
export class PPOTask implements TrainingTask<PPOPromptChunk, PPOMicroBatch> {
  /** Task name (its state is checkpointed under `task:ppo`). */
  readonly name = "ppo";
  /** The KL coefficient controller (fixed or adaptive). */
  klController: KLController;
  /** The last rollout (for inspection and tests). */
  lastRollout: Rollout | undefined;
  /** The training targets of the last rollout. */
  lastAdvantages: AdvantageResult | undefined;
  /** Per-micro-batch statistics of the last update. */
  lastUpdateStats: PPOUpdateStats | undefined;
  private score: Scorer | undefined;
  private clock: { state: object; started: number; step: number } | undefined;

  /** @param options see {@link PPOTaskOptions}. */
  constructor(readonly options: PPOTaskOptions) {
    checkLossKind(options.loss, "rollout", "rollouts");
    this.klController = initialKlController(options.args);
  }

  /** The policy and value function being trained. */
  get model(): PolicyAndValueModel {
    return this.options.model;
  }

  /** Prompts per update: `perDeviceTrainBatchSize × gradientAccumulationSteps × numMiniBatches` (TRL `batch_size`). */
  get batchSize(): number {
    const a = this.options.args;
    return a.perDeviceTrainBatchSize * a.gradientAccumulationSteps * a.numMiniBatches;
  }

  /** Resolve the reward; start the `eps` clock of a run (a new trainer state is a new run). */
  prepare(context: TaskContext): void {
    this.scorer();
    if (this.clock?.state !== context.state) {
      this.clock = { state: context.state, started: performance.now(), step: context.state.globalStep };
    }
  }

  /** Sample and score `chunks`' prompts, compute the advantages, and plan the update's optimizer steps. */
  async rollout(chunks: PPOPromptChunk[], context: TaskContext): Promise<RolloutUpdate<PPOMicroBatch>> {
    const started = performance.now();
    const a = this.options.args;
    const prompts = chunks.flatMap((c) => c.promptIds);
    const columns = chunkColumns(chunks);
    const score = this.scorer();
    const rollout = await collectRollout(
      prompts,
      {
        model: this.model,
        reference: this.options.reference,
        score: (rows) => score({ ...rows, columns }),
        rng: context.rng,
      },
      this.rolloutSettings(true),
    );
    const klCoef = this.klController.value;
    const targets = computeAdvantages(rollout, this.advantageOptions(klCoef));
    const update: PPOUpdateData = { rollout, targets };
    const n = prompts.length;
    const miniSize = n / a.numMiniBatches;
    const micro = a.perDeviceTrainBatchSize;
    const steps: PPOMicroBatch[][] = [];
    for (let e = 0; e < a.numPpoEpochs; e++) {
      const perm = context.rng.permutation(n);
      for (let m = 0; m < a.numMiniBatches; m++) {
        const mini = perm.slice(m * miniSize, (m + 1) * miniSize);
        steps.push(
          Array.from({ length: a.gradientAccumulationSteps }, (_, k) => ({
            update,
            rows: mini.slice(k * micro, (k + 1) * micro),
          })),
        );
      }
    }
    const objective = objectiveMetrics(rollout, targets);
    const step = context.state.globalStep + 1;
    const optimizationStarted = performance.now();
    return {
      steps,
      metrics: {
        ...rolloutTimeMetrics(rollout.timings, (optimizationStarted - started) / 1000),
        ...objective,
        "objective/entropy": rolloutEntropy(rollout, targets),
        "objective/kl_coef": klCoef,
        "val/num_eos_tokens": rollout.numEosTokens,
        episode: step * this.batchSize,
        lr: context.learningRate,
      },
      numTokens: rollout.attentionMask.reduce((s, r) => s + r.reduce((x, y) => x + y, 0), 0),
      latest: ["episode", "eps", "lr"],
      finish: (microMetrics) => {
        const stats = updateStats(microMetrics, a.numPpoEpochs, a.numMiniBatches);
        this.klController.update(objective["objective/kl"]!, n);
        this.lastRollout = rollout;
        this.lastAdvantages = targets;
        this.lastUpdateStats = stats;
        return {
          ...updateStatsMetrics(stats),
          eps: this.episodesPerSecond(step),
          ...optimizationTimeMetrics(started, optimizationStarted),
        };
      },
    };
  }

  /** Loss and statistics of one micro-batch: a policy + value forward, then the run's `"rollout"` loss. */
  compute(batch: PPOMicroBatch, _ctx: ComputeLossContext): StepOutput {
    const { rollout, targets } = batch.update;
    const c = rollout.contextLength;
    const w = rollout.width;
    const b = batch.rows.length;
    const t2 = (rows: number[][], dtype: "float32" | "int32" = "float32") => rowsTensor(rows, batch.rows, dtype);
    const out = this.model.forwardWithValues({
      inputIds: t2(rollout.queryResponses, "int32"),
      attentionMask: t2(rollout.attentionMask, "int32"),
      positionIds: t2(rollout.positionIds, "int32"),
    });
    const logits = responseLogits(out.logits, c, w, this.options.args.temperature);
    const valueMask = t2(targets.maskP1);
    const lossOut = this.options.loss.compute({
      logprobs: selectiveLogProbs(logits, t2(rollout.responses, "int32")),
      oldLogprobs: t2(rollout.logprobs),
      advantages: t2(targets.advantages),
      mask: t2(targets.mask),
      values: tf.mul(tf.slice(out.values, [0, c - 1], [b, w]), valueMask) as tf.Tensor2D,
      oldValues: t2(rollout.values),
      returns: t2(targets.returns),
      valueMask,
    });
    return { ...lossOut, metrics: { ...lossOut.metrics, "policy/entropy_avg": meanEntropy(logits) } };
  }

  /**
   * The objective on held-out prompts (logged as `eval_objective/*`): responses decoded greedily (or sampled
   * with a fresh RNG seeded with `seed` when `evalDoSample`, so the training RNG is untouched), scored as in
   * training, with the KL to the reference and the current β.
   */
  async evaluateBatch(chunk: PPOPromptChunk): Promise<Record<string, number>> {
    const a = this.options.args;
    const rollout = await collectRollout(
      chunk.promptIds,
      {
        model: { policy: this.model.policy },
        reference: this.options.reference,
        score: (rows) => this.scorer()({ ...rows, columns: chunkColumns([chunk]) }),
        rng: new Rng(a.seed),
      },
      this.rolloutSettings(a.evalDoSample),
    );
    return objectiveMetrics(rollout, computeAdvantages(rollout, this.advantageOptions(this.klController.value)));
  }

  /** The KL controller's state (checkpointed; restored on resume). */
  getState(): KLControllerState {
    return this.klController.state();
  }

  /** Restore the KL controller from {@link PPOTask.getState}'s output. */
  loadState(state: unknown): void {
    this.klController = klControllerFromState(state as KLControllerState);
  }

  private scorer(): Scorer {
    this.score ??= this.options.scorer();
    return this.score;
  }

  private rolloutSettings(doSample: boolean): RolloutSettings {
    const a = this.options.args;
    const ids = this.options.tokenIds;
    return {
      responseLength: a.responseLength,
      temperature: a.temperature,
      localRolloutForwardBatchSize: a.localRolloutForwardBatchSize,
      missingEosPenalty: a.missingEosPenalty,
      stopTokenId: ids.stop,
      eosTokenId: ids.eos,
      padTokenId: ids.pad,
      doSample,
    };
  }

  private advantageOptions(klCoef: number): AdvantageOptions {
    const a = this.options.args;
    return { klCoef, klEstimator: a.klEstimator, gamma: a.gamma, lam: a.lam, whitenRewards: a.whitenRewards };
  }

  /** TRL's `eps`: episodes of this run per second of it, after update `step`. */
  private episodesPerSecond(step: number): number {
    const clock = this.clock ?? { started: performance.now(), step: step - 1 };
    const seconds = (performance.now() - clock.started) / 1000;
    return Math.floor(((step - clock.step) * this.batchSize) / Math.max(seconds, 1e-9));
  }
}

import "reflect-metadata";
import { join } from "node:path";
import { inject, injectAll } from "tsyringe";
import { CallbackHandler } from "../callbacks/handler.js";
import { DefaultFlowCallback } from "../callbacks/default-flow.js";
import { createTrainerControl, createTrainerState } from "../callbacks/state.js";
import {
  CHECKPOINT_PREFIX,
  cleanStaleCheckpointTemps,
  latestCheckpoint,
  rotateCheckpoints,
} from "../checkpoint/atomic.js";
import { prepareOutputDir } from "../checkpoint/output-dir.js";
import { loadTrainingCheckpoint, saveTrainingCheckpoint } from "../checkpoint/training-checkpoint.js";
import { CALLBACKS, EVAL_DATA, MODEL, OPTIMIZER, SCHEDULER, TRAIN_DATA, TRAINING_ARGS } from "../di/tokens.js";
import { tf } from "../engine/tf.js";
import { CheckpointError, ConfigError, DivergenceError } from "../errors/index.js";
import type { Callback, TrainerControl, TrainerState } from "../interfaces/callback.js";
import type { CausalLM } from "../interfaces/model.js";
import type { BatchSource, StepOutput, Trainer, TrainingArgs, TrainOutput } from "../interfaces/trainer.js";
import { AdamW } from "../optim/adamw.js";
import { cpuFloat32Values } from "../engine/kernels/cpu-data.js";
import { activeNativeAddon } from "../engine/kernels/native-blas.js";
import { type ClippedGradients, clipByGlobalNorm } from "../optim/clip.js";
import { getWarmupSteps, LRScheduler, type SchedulerFactory } from "../optim/schedules.js";
import { Rng } from "../rng/index.js";
import { resolveTrainingArgs } from "./args.js";
import { type Divergence, FiniteGuard } from "./finite-guard.js";
import type { GradientHook, GradientStepOutcome, SkippedStep } from "./gradient-hook.js";

/** Whether `computeLoss` runs for training (under a gradient tape) or evaluation. */
export interface ComputeLossContext {
  /** True inside the training step; false in evaluation (no gradients are taken). */
  training: boolean;
}

/** Numbers of one optimizer step, as {@link BaseTrainer.trainingStep} returns them. */
export interface StepResult {
  /** Loss of the step: Σ share·loss over micro-batches (= the loss of one big batch). */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** True when a {@link GradientHook} vetoed the optimizer step (absent when none did). */
  skipped?: boolean;
  /** Metrics, each the share-weighted mean over the micro-batches. */
  metrics: Record<string, number>;
  /** Tokens seen in the step (sum of `StepOutput.numTokens`). */
  numTokens: number;
}

/** A tfjs optimizer whose learning rate the trainer can set every step (AdamW and tfjs's own have one). */
export type TunableOptimizer = tf.Optimizer & { learningRate: number };

async function* iterate<T>(x: Iterable<T> | AsyncIterable<T>): AsyncGenerator<T> {
  yield* x;
}

/** `state.statefulCallbacks` key of the skipped-step record (saved when gradient hooks are installed). */
export const SKIPPED_STEPS_KEY = "BaseTrainer.skippedSteps";

/** What {@link BaseTrainer.applyStepGradients} did. */
export interface AppliedGradients {
  /** Global gradient norm before clipping (after unscaling). */
  gradNorm: number;
  /** False when a hook vetoed the step. */
  applied: boolean;
}

function scalarValue(x: tf.Tensor | number): number {
  return typeof x === "number" ? x : x.dataSync()[0]!;
}

/**
 * The loop every prefkit trainer shares (transformers' `Trainer.train` semantics). A subclass
 * (DPOTrainer, RewardTrainer, ...) implements {@link BaseTrainer.computeLoss}; everything else is
 * here: gradient accumulation, clipping, AdamW with a warm-up schedule, logging, evaluation,
 * checkpoints, exact resumption, all reported through the callback contract.
 *
 * **Gradient accumulation.** The micro-batches of one optimizer step are fetched first; the
 * loss of micro-batch i is scaled by `wᵢ / Σw`, with `wᵢ = batchWeight(batchᵢ)` (override it
 * to return rows or tokens), so N micro-batches give the gradient of one big batch whose loss
 * is the `w`-weighted mean.
 *
 * **Frozen weights.** Gradients are taken only for `model.trainableVariables()`, so frozen
 * weights get neither gradients nor optimizer slots.
 *
 * **Gradient hooks.** {@link GradientHook}s (loss scaling, unscaling, step vetoes) run between
 * back-propagation and `applyGradients`; see {@link BaseTrainer.addGradientHook}. Without one the step is
 * the plain one above.
 *
 * **DI.** Every constructor parameter carries an explicit `@inject` token (see the `di`
 * module for why); subclasses add `@injectable()` and do the same for their own parameters.
 */
export abstract class BaseTrainer<TBatch, TArgs extends TrainingArgs = TrainingArgs> implements Trainer {
  /** The resolved config (defaults filled). */
  readonly args: TArgs;
  /** Run progress; JSON-serialisable. */
  state: TrainerState = createTrainerState();
  /** Flags callbacks set to steer the loop. */
  readonly control: TrainerControl = createTrainerControl();
  /** The callback bus ({@link DefaultFlowCallback} first, then the given callbacks). */
  readonly callbackHandler: CallbackHandler<TArgs>;
  /** The optimizer (AdamW from the args unless one was injected). */
  readonly optimizer: TunableOptimizer;
  /** The schedule, built when {@link BaseTrainer.train} knows the step count. */
  scheduler: LRScheduler | undefined;
  /** The trainer's RNG (seeded with `args.seed`; saved in checkpoints). Use it for dropout seeds and sampling. */
  readonly rng: Rng;
  /** Steps a {@link GradientHook} vetoed, in order (restored on resume). */
  skippedSteps: SkippedStep[] = [];
  /** Where the trainer's own warnings go (vanishing gradients, an exploding loss, a finished run resumed). */
  notify: (message: string) => void = (m) => console.warn(m);
  /** Every optimizer step's finiteness check; its `divergence` says why a run stopped (see {@link FiniteGuard}). */
  readonly finiteGuard = new FiniteGuard((m) => this.notify(m));
  private readonly schedulerFactory: SchedulerFactory | undefined;
  private initEmitted = false;
  private readonly gradientHooks: GradientHook[] = [];

  /**
   * @param args trainer config; missing fields take `DEFAULT_TRAINING_ARGS`.
   * @param model the model to train.
   * @param trainData training micro-batches.
   * @param evalData evaluation micro-batches (optional).
   * @param callbacks extra callbacks, called in order after the default flow callback.
   * @param optimizer optimizer to use instead of AdamW built from `args`.
   * @param schedulerFactory schedule to use instead of the one `args.lrSchedulerType` names.
   */
  constructor(
    @inject(TRAINING_ARGS) args: Partial<TArgs>,
    @inject(MODEL) readonly model: CausalLM,
    @inject(TRAIN_DATA) readonly trainData: BatchSource<TBatch>,
    @inject(EVAL_DATA, { isOptional: true }) readonly evalData?: BatchSource<TBatch>,
    @injectAll(CALLBACKS, { isOptional: true }) callbacks: readonly Callback<any>[] = [],
    @inject(OPTIMIZER, { isOptional: true }) optimizer?: tf.Optimizer,
    @inject(SCHEDULER, { isOptional: true }) schedulerFactory?: SchedulerFactory,
  ) {
    this.args = resolveTrainingArgs<TArgs>(args);
    this.rng = new Rng(this.args.seed);
    this.callbackHandler = new CallbackHandler<TArgs>([
      new DefaultFlowCallback() as Callback<TArgs>,
      ...((callbacks ?? []) as Callback<TArgs>[]),
    ]);
    this.optimizer = (optimizer ??
      new AdamW({
        learningRate: this.args.learningRate,
        beta1: this.args.adamBeta1,
        beta2: this.args.adamBeta2,
        epsilon: this.args.adamEpsilon,
        weightDecay: this.args.weightDecay,
      })) as TunableOptimizer;
    this.schedulerFactory = schedulerFactory;
  }

  /**
   * Loss and metrics of one micro-batch. Called inside `tf.variableGrads` when
   * `ctx.training` (use tf ops only on the path to the loss, no data syncs), inside `tf.tidy`
   * otherwise. Return the loss averaged over the micro-batch.
   */
  protected abstract computeLoss(batch: TBatch, ctx: ComputeLossContext): StepOutput;

  /** Weight of a micro-batch in its accumulation group (rows or tokens). Default 1: equal shares. */
  protected batchWeight(_batch: TBatch): number {
    return 1;
  }

  /** Add a callback after those already registered. */
  addCallback(callback: Callback<TArgs>): this {
    this.callbackHandler.add(callback);
    return this;
  }

  /**
   * Add a {@link GradientHook} after those already added (they run before the hooks of callbacks).
   * Plugins reach it by registering under `GRADIENT_HOOKS`.
   */
  addGradientHook(hook: GradientHook): this {
    this.gradientHooks.push(hook);
    return this;
  }

  /** The hooks of the coming step: those added with {@link BaseTrainer.addGradientHook}, then callbacks' `gradientHook`s. */
  activeGradientHooks(): readonly GradientHook[] {
    const fromCallbacks = this.callbackHandler.callbacks
      .map((cb) => cb.gradientHook)
      .filter((h): h is GradientHook => h !== undefined);
    return fromCallbacks.length === 0 ? this.gradientHooks : [...this.gradientHooks, ...fromCallbacks];
  }

  /** Fire `onInitEnd` once (called by {@link BaseTrainer.train} if the caller did not). */
  async init(): Promise<void> {
    if (this.initEmitted) return;
    this.initEmitted = true;
    await this.callbackHandler.emit("onInitEnd", this.args, this.state, this.control);
  }

  /** Optimizer steps per epoch: ⌈micro-batches / gradientAccumulationSteps⌉ (a last partial group is a step). */
  get numUpdateStepsPerEpoch(): number {
    return Math.max(1, Math.ceil(this.trainData.numBatches / this.args.gradientAccumulationSteps));
  }

  /** Run training; see {@link Trainer.train}. */
  async train(options: { resumeFromCheckpoint?: string | boolean } = {}): Promise<TrainOutput> {
    const args = this.args;
    if (this.trainData.numBatches <= 0)
      throw new ConfigError("the training data has no batches", { field: "trainData" });
    await this.init();
    const perEpoch = this.numUpdateStepsPerEpoch;
    const maxSteps = args.maxSteps > 0 ? args.maxSteps : Math.ceil(args.numTrainEpochs * perEpoch);
    const numEpochs = args.maxSteps > 0 ? Math.ceil(maxSteps / perEpoch) : Math.ceil(args.numTrainEpochs);
    this.scheduler =
      this.schedulerFactory?.(maxSteps) ??
      new LRScheduler(
        args.lrSchedulerType,
        args.learningRate,
        getWarmupSteps(maxSteps, args.warmupSteps, args.warmupRatio),
        maxSteps,
      );

    const resume = options.resumeFromCheckpoint ?? args.resumeFromCheckpoint;
    await prepareOutputDir(args.outputDir, { resume: !!resume, overwriteOutputDir: args.overwriteOutputDir });
    await cleanStaleCheckpointTemps(args.outputDir);
    this.finiteGuard.reset();
    this.weightsCheckedAt = -1;
    if (resume) {
      const dir = resume === true ? await latestCheckpoint(args.outputDir) : resume;
      if (!dir) throw new CheckpointError("resumeFromCheckpoint: no checkpoint found", { file: args.outputDir });
      this.state = await loadTrainingCheckpoint(dir, {
        model: this.model,
        optimizer: this.optimizer,
        scheduler: this.scheduler,
        rng: this.rng,
      });
      for (const cb of this.callbackHandler.callbacks) {
        if (cb.name && cb.loadState && cb.name in this.state.statefulCallbacks) {
          cb.loadState(this.state.statefulCallbacks[cb.name]);
        }
      }
      const saved = this.state.statefulCallbacks;
      for (const hook of this.activeGradientHooks()) {
        const key = `gradientHook:${hook.name}`;
        if (hook.loadState && key in saved) hook.loadState(saved[key]);
      }
      this.skippedSteps = structuredClone((saved[SKIPPED_STEPS_KEY] as SkippedStep[] | undefined) ?? []);
    } else {
      this.state = createTrainerState();
      this.skippedSteps = [];
    }
    const s = this.state;
    s.maxSteps = maxSteps;
    s.numUpdateStepsPerEpoch = perEpoch;
    s.numTrainEpochs = numEpochs;
    s.loggingSteps = args.loggingSteps;
    s.evalSteps = args.evalSteps ?? args.loggingSteps;
    s.saveSteps = args.saveSteps;
    s.trainBatchSize = args.perDeviceTrainBatchSize;
    if (resume && s.globalStep >= maxSteps) return this.finishedRun(maxSteps);

    const started = performance.now();
    const startStep = s.globalStep;
    let runLossSum = 0;
    await this.callbackHandler.emit("onTrainBegin", args, s, this.control);
    const firstEpoch = Math.floor(s.globalStep / perEpoch);
    let skipSteps = s.globalStep - firstEpoch * perEpoch;
    const ga = args.gradientAccumulationSteps;
    this.resetLogAccumulators();

    for (let epoch = firstEpoch; epoch < numEpochs && !this.control.shouldTrainingStop; epoch++) {
      await this.callbackHandler.emit("onEpochBegin", args, s, this.control);
      let group: TBatch[] = [];
      let stepInEpoch = skipSteps;
      let toSkip = skipSteps * ga;
      skipSteps = 0;
      const runGroup = async () => {
        const result = await this.optimizerStep(group, epoch, stepInEpoch, perEpoch);
        runLossSum += result.loss;
        stepInEpoch++;
        group = [];
      };
      for await (const batch of iterate(this.trainData.batches(epoch))) {
        if (toSkip > 0) {
          toSkip--;
          continue;
        }
        group.push(batch);
        if (group.length === ga) {
          await runGroup();
          if (this.control.shouldTrainingStop || this.control.shouldEpochStop) break;
        }
      }
      if (group.length > 0 && !this.control.shouldTrainingStop && !this.control.shouldEpochStop) await runGroup();
      await this.callbackHandler.emit("onEpochEnd", args, s, this.control);
      await this.maybeLogSaveEvaluate();
    }

    const steps = s.globalStep - startStep;
    const metrics: Record<string, number> = {
      train_runtime: (performance.now() - started) / 1000,
      train_loss: steps > 0 ? runLossSum / steps : Number.NaN,
    };
    await this.log(metrics);
    await this.callbackHandler.emit("onTrainEnd", args, s, this.control);
    if (this.finiteGuard.divergence) throw await this.divergenceError(this.finiteGuard.divergence);
    return { globalStep: s.globalStep, trainingLoss: metrics["train_loss"]!, metrics };
  }

  /** A resumed run whose checkpoint already reached `maxSteps`: nothing to train (HF would run one step too many). */
  private finishedRun(maxSteps: number): TrainOutput {
    const step = this.state.globalStep;
    this.notify(
      `resumeFromCheckpoint: the checkpoint is at step ${step} and maxSteps is ${maxSteps}: the run has finished; nothing to train`,
    );
    return { globalStep: step, trainingLoss: Number.NaN, metrics: {} };
  }

  /** The error a diverged run ends with: the step, the value, and the newest (good) checkpoint. */
  private async divergenceError(d: Divergence): Promise<DivergenceError> {
    const newest = await latestCheckpoint(this.args.outputDir);
    const notApplied = d.metric === "weights" ? "" : "; that update was not applied";
    return new DivergenceError(
      `training diverged at ${d.message}${notApplied}; nothing was saved after it ` +
        `(${newest === undefined ? "no checkpoint was saved" : `newest checkpoint: ${newest}`})`,
      d.step,
      d.metric,
      d.value,
    );
  }

  /**
   * True when the coming optimizer step (loss and gradient norm as measured) may be applied; false after the
   * run diverged or when either is not finite (see {@link FiniteGuard}). Trainers with their own update loop
   * (PPO) ask it before every `applyGradients`.
   */
  protected stepIsFinite(loss: number, gradNorm: number): boolean {
    return this.finiteGuard.allows(this.state.globalStep + 1, loss, gradNorm);
  }

  /**
   * False (and the run marked diverged) when a trainable weight or an optimizer slot is not finite: nothing
   * may be saved then.
   */
  protected async weightsAreFinite(): Promise<boolean> {
    if (this.finiteGuard.divergence) return false;
    // the scheduled save checks first and then calls saveCheckpoint, which checks again: once per step is enough
    if (this.weightsCheckedAt === this.state.globalStep) return true;
    const trainable = new Set(this.model.trainableVariables());
    const named: Array<readonly [string, tf.Tensor]> = [...this.model.namedParameters()].filter(([, v]) =>
      trainable.has(v),
    );
    const slots = await this.optimizer.getWeights();
    try {
      for (const { name, tensor } of slots) if (tensor.dtype === "float32") named.push([name, tensor]);
      const finite = await this.finiteGuard.weightsAreFinite(this.state.globalStep, named);
      if (finite) this.weightsCheckedAt = this.state.globalStep;
      return finite;
    } finally {
      for (const { tensor } of slots) if (!(tensor instanceof tf.Variable)) tensor.dispose();
    }
  }

  /** The step whose weights {@link BaseTrainer.weightsAreFinite} last found finite. */
  private weightsCheckedAt = -1;
  // Sums since the last log.
  private logLossSum = 0;
  private logSteps = 0;
  private logMetricSums = new Map<string, { sum: number; count: number }>();
  private lastGradNorm = Number.NaN;

  private resetLogAccumulators(): void {
    this.logLossSum = 0;
    this.logSteps = 0;
    this.logMetricSums = new Map();
  }

  private async optimizerStep(
    group: TBatch[],
    epoch: number,
    stepInEpoch: number,
    perEpoch: number,
  ): Promise<StepResult> {
    const s = this.state;
    await this.callbackHandler.emit("onStepBegin", this.args, s, this.control);
    const result = await this.trainingStep(group);
    s.globalStep += 1;
    if (this.finiteGuard.divergence) this.control.shouldTrainingStop = true;
    else if (!result.skipped) this.finiteGuard.observe(s.globalStep, result.loss, result.gradNorm);
    s.epoch = epoch + (stepInEpoch + 1) / perEpoch;
    s.numInputTokensSeen += result.numTokens;
    this.logLossSum += result.loss;
    this.logSteps += 1;
    this.lastGradNorm = result.gradNorm;
    for (const [k, v] of Object.entries(result.metrics)) {
      const acc = this.logMetricSums.get(k) ?? { sum: 0, count: 0 };
      acc.sum += v;
      acc.count += 1;
      this.logMetricSums.set(k, acc);
    }
    await this.callbackHandler.emit("onStepEnd", this.args, s, this.control);
    await this.maybeLogSaveEvaluate();
    return result;
  }

  /**
   * One optimizer step over `microBatches`: forward/backward each (scaled by its share),
   * accumulate gradients, clip to `maxGradNorm`, set the scheduled learning rate, apply the
   * optimizer, advance the schedule. Fires `onSubstepEnd` between micro-batches. Every tensor it
   * creates is released before it returns. Override for trainers whose step is not
   * "minimise computeLoss" (PPO's rollout + epochs), keeping the same result shape.
   */
  protected async trainingStep(microBatches: TBatch[]): Promise<StepResult> {
    const vars = this.model.trainableVariables();
    if (vars.length === 0) throw new ConfigError("the model has no trainable variables", { field: "model" });
    const weights = microBatches.map((b) => this.batchWeight(b));
    const total = weights.reduce((a, b) => a + b, 0);
    if (!(total > 0)) throw new ConfigError(`batch weights must sum to > 0, got ${total}`, { field: "batchWeight" });
    const accum: tf.NamedTensorMap = {};
    let loss = 0;
    let numTokens = 0;
    const metrics: Record<string, number> = {};
    const hooks = this.activeGradientHooks();
    const lossScale = this.lossScaleOf(hooks);
    try {
      for (let i = 0; i < microBatches.length; i++) {
        const share = weights[i]! / total;
        const captured: Record<string, tf.Tensor | number> = {};
        let unscaledLoss: tf.Tensor | undefined;
        const { value, grads } = tf.tidy(() =>
          tf.variableGrads(() => {
            const out = this.computeLoss(microBatches[i]!, { training: true });
            for (const [k, m] of Object.entries(out.metrics ?? {}))
              captured[k] = typeof m === "number" ? m : tf.keep(m);
            numTokens += out.numTokens ?? 0;
            const shared = tf.mul(out.loss, share) as tf.Scalar;
            if (lossScale === 1) return shared;
            unscaledLoss = tf.keep(shared);
            return tf.mul(shared, lossScale) as tf.Scalar;
          }, vars),
        );
        loss += (unscaledLoss ?? value).dataSync()[0]!;
        value.dispose();
        unscaledLoss?.dispose();
        for (const [k, m] of Object.entries(captured)) {
          metrics[k] = (metrics[k] ?? 0) + share * scalarValue(m);
          if (typeof m !== "number") m.dispose();
        }
        for (const [name, g] of Object.entries(grads)) {
          if (g == null) continue;
          const prev = accum[name];
          if (prev) {
            if (!addInPlace(prev, g)) {
              accum[name] = tf.add(prev, g);
              prev.dispose();
            }
            g.dispose();
          } else {
            accum[name] = g;
          }
        }
        if (i < microBatches.length - 1) {
          await this.callbackHandler.emit("onSubstepEnd", this.args, this.state, this.control);
        }
      }
      const scheduler = this.scheduler!;
      this.optimizer.learningRate = scheduler.lr;
      if (hooks.length === 0) {
        const gradNorm = tf.tidy(() => {
          // The accumulated gradients are the trainer's own: scale them in place when clipping.
          const { grads, norm } = clipByGlobalNorm(accum, this.args.maxGradNorm, { inPlace: true });
          const value = norm.dataSync()[0]!;
          if (this.stepIsFinite(loss, value)) this.optimizer.applyGradients(grads);
          return value;
        });
        scheduler.step();
        return { loss, gradNorm, metrics, numTokens };
      }
      const { gradNorm, applied } = this.applyStepGradients(accum, loss, hooks);
      // HF's Trainer steps the schedule only when the optimizer ran (`optimizer_step_was_skipped`).
      if (applied) scheduler.step();
      return { loss, gradNorm, metrics, numTokens, skipped: !applied };
    } finally {
      for (const g of Object.values(accum)) g.dispose();
    }
  }

  /** Product of the hooks' `lossScale()` (1 without hooks). */
  protected lossScaleOf(hooks: readonly GradientHook[]): number {
    let scale = 1;
    for (const h of hooks) if (h.lossScale) scale *= h.lossScale();
    return scale;
  }

  /**
   * The hooked optimizer step (see {@link GradientHook} for the order): unscale, measure the norm, ask for
   * vetoes, clip and apply unless vetoed, tell every hook, record a skip. `accum` is not disposed (the
   * caller owns it); everything made here is. Trainers with their own update loop (PPO) call it per
   * optimizer step; the learning-rate schedule is the caller's business.
   */
  protected applyStepGradients(
    accum: tf.NamedTensorMap,
    loss: number,
    hooks: readonly GradientHook[] = this.activeGradientHooks(),
  ): AppliedGradients {
    const step = this.state.globalStep + 1;
    const made = new Set<tf.Tensor>();
    try {
      let grads = accum;
      for (const h of hooks) {
        if (!h.unscaleGradients) continue;
        grads = h.unscaleGradients(grads, step);
        for (const g of Object.values(grads)) made.add(g);
      }
      const clipped = tf.tidy(
        () => clipByGlobalNorm(grads, this.args.maxGradNorm) as unknown as tf.TensorContainer,
      ) as unknown as ClippedGradients;
      made.add(clipped.norm);
      for (const g of Object.values(clipped.grads)) made.add(g);
      const gradNorm = clipped.norm.dataSync()[0]!;
      let veto: { hook: string; reason: string } | undefined;
      for (const h of hooks) {
        const reason = h.vetoStep?.({ step, loss, gradNorm, grads });
        if (reason) {
          veto = { hook: h.name, reason };
          break;
        }
      }
      // A step no hook vetoed still has to be finite (a vetoed one is a skip, not a divergence).
      const applied = !veto && this.stepIsFinite(loss, gradNorm);
      if (applied) tf.tidy(() => this.optimizer.applyGradients(clipped.grads));
      else if (veto) this.skippedSteps.push({ step, hook: veto.hook, reason: veto.reason });
      const stop = !veto && !applied ? { hook: "FiniteGuard", reason: this.finiteGuard.divergence!.message } : veto;
      const outcome: GradientStepOutcome = {
        step,
        applied,
        loss,
        gradNorm,
        ...(stop ? { skippedBy: stop.hook, reason: stop.reason } : {}),
      };
      for (const h of hooks) h.afterStep?.(outcome);
      return { gradNorm, applied };
    } finally {
      // dispose() is idempotent, so tensors a hook passed through from `accum` are safe to list here
      for (const t of made) if (!Object.values(accum).includes(t)) t.dispose();
    }
  }

  private async maybeLogSaveEvaluate(): Promise<void> {
    const c = this.control;
    if (c.shouldLog && this.logSteps > 0) {
      const logs: Record<string, number> = {
        loss: this.logLossSum / this.logSteps,
        grad_norm: this.lastGradNorm,
        learning_rate: this.scheduler?.lr ?? this.args.learningRate,
      };
      for (const [k, { sum, count }] of this.logMetricSums) logs[k] = sum / count;
      if (this.state.numInputTokensSeen > 0) logs["num_tokens"] = this.state.numInputTokensSeen;
      if (this.activeGradientHooks().length > 0) logs["skipped_steps"] = this.skippedSteps.length;
      this.resetLogAccumulators();
      await this.log(logs);
    }
    c.shouldLog = false;
    if (c.shouldEvaluate) {
      if (this.evalData) await this.evaluate();
      c.shouldEvaluate = false;
    }
    if (c.shouldSave) {
      if (await this.weightsAreFinite()) {
        const dir = await this.saveCheckpoint();
        await this.callbackHandler.emit("onSave", this.args, this.state, this.control, { checkpointDir: dir });
      } else {
        // after a divergence nothing is saved: the newest checkpoint stays the last good one
        c.shouldSave = false;
        c.shouldTrainingStop = true;
      }
    }
  }

  /** Append `logs` (plus `epoch`, and `step` in the history) to `state.logHistory` and fire `onLog`. */
  async log(logs: Record<string, number>): Promise<void> {
    const entry = { ...logs, epoch: this.state.epoch };
    this.state.logHistory.push({ ...entry, step: this.state.globalStep });
    await this.callbackHandler.emit("onLog", this.args, this.state, this.control, { logs: entry });
  }

  /**
   * Evaluate on `evalData` without gradients: the loss and every metric averaged over
   * micro-batches (weighted by {@link BaseTrainer.batchWeight}), named `<prefix>_<name>`.
   * Logs them, fires `onEvaluate`, and tracks `metricForBestModel`.
   */
  async evaluate(options: { metricKeyPrefix?: string } = {}): Promise<Record<string, number>> {
    const prefix = options.metricKeyPrefix ?? "eval";
    if (!this.evalData) throw new ConfigError("no evaluation data was given", { field: "evalData" });
    const sums = new Map<string, number>();
    let total = 0;
    for await (const batch of iterate(this.evalData.batches(0))) {
      const w = this.batchWeight(batch);
      const values = tf.tidy(() => {
        const out = this.computeLoss(batch, { training: false });
        const v: Record<string, number> = { loss: out.loss.dataSync()[0]! };
        for (const [k, m] of Object.entries(out.metrics ?? {})) v[k] = scalarValue(m);
        return v;
      });
      for (const [k, v] of Object.entries(values)) sums.set(k, (sums.get(k) ?? 0) + w * v);
      total += w;
    }
    const metrics: Record<string, number> = {};
    for (const [k, v] of sums) metrics[`${prefix}_${k}`] = v / total;
    await this.log(metrics);
    this.updateBestMetric(metrics, prefix);
    await this.callbackHandler.emit("onEvaluate", this.args, this.state, this.control, { metrics });
    return metrics;
  }

  private updateBestMetric(metrics: Record<string, number>, prefix: string): void {
    const name = this.args.metricForBestModel;
    if (!name) return;
    const key = name.startsWith(`${prefix}_`) ? name : `${prefix}_${name}`;
    const value = metrics[key];
    if (value === undefined) {
      throw new ConfigError(`metric "${key}" not found; evaluation gave ${Object.keys(metrics).join(", ")}`, {
        field: "metricForBestModel",
      });
    }
    const greater = this.args.greaterIsBetter ?? !name.endsWith("loss");
    const best = this.state.bestMetric;
    if (best === null || (greater ? value > best : value < best)) {
      this.state.bestMetric = value;
      this.state.bestGlobalStep = this.state.globalStep;
    }
  }

  /**
   * Write `outputDir/checkpoint-<globalStep>` atomically, then apply `saveTotalLimit`.
   * Returns the checkpoint directory.
   * @throws DivergenceError (nothing written) after the run diverged or when a trainable weight is not finite.
   */
  async saveCheckpoint(): Promise<string> {
    if (!(await this.weightsAreFinite())) throw await this.divergenceError(this.finiteGuard.divergence!);
    const s = this.state;
    const dir = join(this.args.outputDir, `${CHECKPOINT_PREFIX}${s.globalStep}`);
    s.rngState = this.rng.getState();
    for (const cb of this.callbackHandler.callbacks) {
      if (cb.name && cb.getState) s.statefulCallbacks[cb.name] = structuredClone(cb.getState());
    }
    const hooks = this.activeGradientHooks();
    for (const hook of hooks) {
      if (hook.getState) s.statefulCallbacks[`gradientHook:${hook.name}`] = structuredClone(hook.getState());
    }
    if (hooks.length > 0) s.statefulCallbacks[SKIPPED_STEPS_KEY] = structuredClone(this.skippedSteps);
    if (s.bestGlobalStep === s.globalStep) s.bestModelCheckpoint = dir;
    await saveTrainingCheckpoint(dir, {
      model: this.model,
      optimizer: this.optimizer,
      scheduler: this.scheduler,
      state: s,
      control: this.control,
      rng: this.rng,
      args: this.args,
    });
    if (this.args.saveTotalLimit !== undefined) {
      await rotateCheckpoints(this.args.outputDir, this.args.saveTotalLimit, s.bestModelCheckpoint);
    }
    return dir;
  }
}

/**
 * `prev += g` in `prev`'s own array (the same float32 sums as `tf.add`) when the native addon is active
 * on `cpu` and nothing else shares `prev`'s data: gradient accumulation then allocates nothing per
 * micro-batch (a fresh array costs ~4 ms per MB on these machines). False when it did not apply.
 */
function addInPlace(prev: tf.Tensor, g: tf.Tensor): boolean {
  if (activeNativeAddon() === undefined) return false;
  if (prev.size !== g.size || prev.shape.some((d, i) => d !== g.shape[i])) return false;
  const target = cpuFloat32Values(prev, true);
  const source = cpuFloat32Values(g);
  if (target === undefined || source === undefined || target === source) return false;
  for (let i = 0; i < target.length; i++) target[i] = target[i]! + source[i]!;
  return true;
}

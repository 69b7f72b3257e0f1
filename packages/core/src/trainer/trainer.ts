import "reflect-metadata";
import { inject, injectable } from "tsyringe";
import { CallbackHandler } from "../callbacks/handler.js";
import { DefaultFlowCallback } from "../callbacks/default-flow.js";
import { createTrainerControl, createTrainerState } from "../callbacks/state.js";
import { cleanStaleCheckpointTemps, latestCheckpoint } from "../checkpoint/atomic.js";
import { prepareOutputDir } from "../checkpoint/output-dir.js";
import { TRAINER_PARTS } from "../di/tokens.js";
import { defaultEngine, type Engine } from "../engine/engine.js";
import { ConfigError } from "../errors/index.js";
import type { Callback, TrainerControl, TrainerState } from "../interfaces/callback.js";
import { gradientCheckpointingOver } from "../interfaces/model.js";
import type { GradientHook, SkippedStep } from "../interfaces/gradient-hook.js";
import type { RolloutUpdate, TaskContext, TrainableModel, TrainingTask } from "../interfaces/task.js";
import type { BatchSource, TrainingArgs, TrainOutput } from "../interfaces/trainer.js";
import { adamWFromArgs } from "../optim/adamw.js";
import type { LRScheduler } from "../optim/schedules.js";
import { Rng } from "../rng/index.js";
import { resolveTrainingArgs } from "./args.js";
import { divergenceError, FiniteGuard, trainableStateIsFinite } from "./finite-guard.js";
import { accumulateGradients, applyGradients, combineUpdate, lossScaleOf, type StepResult } from "./gradient-step.js";
import { averageOverBatches, evaluateBatch, requireEvalData } from "./evaluation.js";
import { LogWindow } from "./log-window.js";
import { defaultSchedule, epochGroups, planRun, recordPlan } from "./plan.js";
import type { TrainerParts, TunableOptimizer } from "./parts.js";
import { readRunCheckpoint, type RunCheckpointParts, writeRunCheckpoint } from "./run-checkpoint.js";
import { updateBestMetric } from "./best-metric.js";

/**
 * The one training loop of prefkit (transformers' `Trainer.train` semantics), for every method: the method
 * lives in its {@link TrainingTask}; everything else is here — gradient accumulation (micro-batch i's loss
 * scaled by `wᵢ / Σw`, `wᵢ = task.batchWeight`), clipping, AdamW with the schedule, gradient hooks,
 * logging, evaluation, checkpoints and exact resumption, all reported through the callback contract.
 * On-policy tasks add a rollout phase: each trainer step is one update whose optimizer steps the task plans.
 *
 * Extension points for subclasses: {@link Trainer.prepare}, {@link Trainer.trainingStep},
 * {@link Trainer.evaluate}. The TRL façades (`DPOTrainer`, …) are subclasses that only compose parts.
 */
@injectable()
export class Trainer<TBatch = unknown, TArgs extends TrainingArgs = TrainingArgs, TMicro = TBatch> {
  /** The resolved config (defaults filled). */
  readonly args: TArgs;
  /** The model being trained. */
  readonly model: TrainableModel;
  /** The per-method step. */
  readonly task: TrainingTask<TBatch, TMicro>;
  /** Training data. */
  readonly trainData: BatchSource<TBatch>;
  /** Evaluation data, if any. */
  readonly evalData: BatchSource<TBatch> | undefined;
  /** Run progress; JSON-serialisable. */
  state: TrainerState = createTrainerState();
  /** Flags callbacks set to steer the loop. */
  readonly control: TrainerControl = createTrainerControl();
  /** The callback bus ({@link DefaultFlowCallback} first, then the given callbacks). */
  readonly callbackHandler: CallbackHandler<TArgs>;
  /** The optimizer (AdamW from the args unless another was given). */
  readonly optimizer: TunableOptimizer;
  /** The schedule, built when {@link Trainer.train} knows the step count. */
  scheduler: LRScheduler | undefined;
  /** The trainer's RNG (seeded with `args.seed`; saved in checkpoints): dropout seeds and sampling. */
  readonly rng: Rng;
  /** Steps a {@link GradientHook} vetoed, in order (restored on resume). */
  skippedSteps: SkippedStep[] = [];
  /** The engine made ready before training. */
  readonly engine: Engine;
  /** Peak of the learning-rate schedule: a given optimizer's learning rate, else `args.learningRate`. */
  readonly peakLearningRate: number;
  /** Every optimizer step's finiteness check; its `divergence` says why a run stopped (see {@link FiniteGuard}). */
  readonly finiteGuard: FiniteGuard;
  /** Where the trainer's own warnings go (vanishing gradients, an exploding loss, a finished run resumed). */
  readonly warn: (message: string) => void;
  /** The step whose weights were last found finite (a save checks once per step). */
  private weightsCheckedAt = -1;
  private readonly parts: TrainerParts<TBatch, TArgs, TMicro>;
  private readonly gradientHooks: GradientHook[];
  private readonly window = new LogWindow();
  private initEmitted = false;
  private prepared: Promise<void> | undefined;

  /** @param parts what the trainer is built from (see {@link TrainerParts}). */
  constructor(@inject(TRAINER_PARTS) parts: TrainerParts<TBatch, TArgs, TMicro>) {
    this.parts = parts;
    this.args = resolveTrainingArgs<TArgs>(parts.args);
    this.model = parts.model;
    this.task = parts.task;
    this.trainData = parts.trainData;
    this.evalData = parts.evalData;
    this.engine = parts.engine ?? defaultEngine;
    this.warn = parts.warn ?? ((m) => console.warn(m));
    this.finiteGuard = new FiniteGuard(this.warn);
    this.rng = new Rng(this.args.seed);
    this.gradientHooks = [...(parts.gradientHooks ?? [])];
    this.callbackHandler = new CallbackHandler<TArgs>([
      new DefaultFlowCallback() as Callback<TArgs>,
      ...((parts.callbacks ?? []) as Callback<TArgs>[]),
    ]);
    // As HF's Trainer, a given optimizer's own learning rate is the schedule's peak.
    this.peakLearningRate =
      parts.optimizer !== undefined ? (parts.optimizer as TunableOptimizer).learningRate : this.args.learningRate;
    this.optimizer = (parts.optimizer ?? adamWFromArgs(this.args)) as TunableOptimizer;
  }

  /** Add a callback after those already registered (transformers' `Trainer.add_callback`). */
  addCallback(callback: Callback<TArgs>): this {
    this.callbackHandler.add(callback);
    return this;
  }

  /** Add a {@link GradientHook} after the `gradientHooks` part (before callbacks' hooks). */
  addGradientHook(hook: GradientHook): this {
    this.gradientHooks.push(hook);
    return this;
  }

  /** The hooks of the coming step: the `gradientHooks` part and added ones, then callbacks' `gradientHook`s. */
  activeGradientHooks(): readonly GradientHook[] {
    const fromCallbacks = this.callbackHandler.callbacks
      .map((cb) => cb.gradientHook)
      .filter((h): h is GradientHook => h !== undefined);
    return fromCallbacks.length === 0 ? this.gradientHooks : [...this.gradientHooks, ...fromCallbacks];
  }

  /** Fire `onInitEnd` once (called by {@link Trainer.train} if the caller did not). */
  async init(): Promise<void> {
    if (this.initEmitted) return;
    this.initEmitted = true;
    await this.callbackHandler.emit("onInitEnd", this.args, this.state, this.control);
  }

  /** Optimizer steps per epoch: ⌈micro-batches / gradientAccumulationSteps⌉ (a last partial group is a step). */
  get numUpdateStepsPerEpoch(): number {
    return planRun(this.args, this.trainData.numBatches).perEpoch;
  }

  /** What the task is told when training or evaluation starts. */
  protected taskContext(): TaskContext {
    return {
      state: this.state,
      rng: this.rng,
      learningRate: this.scheduler?.lr ?? this.peakLearningRate,
      warn: this.warn,
    };
  }

  /**
   * One-time preparation before the first training step or evaluation: the engine is made ready and the
   * data sources load and tokenise their rows. Later calls share the first one's promise.
   */
  protected prepare(): Promise<void> {
    this.prepared ??= (async () => {
      await this.engine.ready();
      await this.trainData.prepare?.();
      await this.evalData?.prepare?.();
    })();
    return this.prepared;
  }

  /** Run training (optionally resuming) and return the summary, as transformers' `Trainer.train`. */
  async train(options: { resumeFromCheckpoint?: string | boolean } = {}): Promise<TrainOutput> {
    await this.prepare();
    const args = this.args;
    if (args.gradientCheckpointing) this.enableGradientCheckpointing();
    if (this.trainData.numBatches <= 0)
      throw new ConfigError("the training data has no batches", { field: "trainData" });
    await this.init();
    const plan = planRun(args, this.trainData.numBatches, this.parts.totalSteps);
    const { perEpoch, maxSteps, numEpochs } = plan;
    this.scheduler = this.parts.scheduler?.(maxSteps) ?? defaultSchedule(args, this.peakLearningRate, maxSteps);

    const resume = options.resumeFromCheckpoint ?? args.resumeFromCheckpoint;
    // A run that saves no checkpoints writes nothing into outputDir itself (and may have no file
    // system at all: the browser); the caller that saves the final model checks the directory then.
    if (args.saveStrategy !== "no" || resume) {
      await prepareOutputDir(args.outputDir, { resume: !!resume, overwriteOutputDir: args.overwriteOutputDir });
      await cleanStaleCheckpointTemps(args.outputDir);
    }
    this.finiteGuard.reset();
    this.weightsCheckedAt = -1;
    const dir = resume === true ? await latestCheckpoint(args.outputDir) : resume;
    ({ state: this.state, skippedSteps: this.skippedSteps } = resume
      ? await readRunCheckpoint(dir || undefined, this.checkpointParts())
      : { state: createTrainerState(), skippedSteps: [] });
    const s = this.state;
    recordPlan(s, args, plan);
    if (resume && s.globalStep >= maxSteps) {
      // HF would run one step too many; a finished run has nothing left to train.
      this.warn(
        `resumeFromCheckpoint: the checkpoint is at step ${s.globalStep} and maxSteps is ${maxSteps}: the run has finished; nothing to train`,
      );
      return { globalStep: s.globalStep, trainingLoss: Number.NaN, metrics: {} };
    }
    await this.task.prepare?.(this.taskContext());

    const started = performance.now();
    const startStep = s.globalStep;
    let runLossSum = 0;
    await this.callbackHandler.emit("onTrainBegin", args, s, this.control);
    const firstEpoch = Math.floor(s.globalStep / perEpoch);
    let skipSteps = s.globalStep - firstEpoch * perEpoch;
    this.window.reset();

    for (let epoch = firstEpoch; epoch < numEpochs && !this.stopping(); epoch++) {
      await this.callbackHandler.emit("onEpochBegin", args, s, this.control);
      let stepInEpoch = skipSteps;
      for await (const group of epochGroups(this.trainData, epoch, args.gradientAccumulationSteps, skipSteps)) {
        runLossSum += (await this.runStep(group, epoch, stepInEpoch++, perEpoch)).loss;
        if (this.stopping() || this.control.shouldEpochStop) break;
      }
      skipSteps = 0;
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
    if (this.finiteGuard.divergence) throw await divergenceError(this.finiteGuard.divergence, args.outputDir);
    return { globalStep: s.globalStep, trainingLoss: metrics["train_loss"]!, metrics };
  }

  /**
   * HF's `gradient_checkpointing`: the model's `gradientCheckpointingEnable()`, as transformers' `Trainer`
   * calls it before training.
   * @throws ConfigError (field `gradientCheckpointing`) when the model does not support it.
   */
  private enableGradientCheckpointing(): void {
    gradientCheckpointingOver(() => [this.model]).gradientCheckpointingEnable();
  }

  private stopping(): boolean {
    return this.control.shouldTrainingStop;
  }

  /** What checkpoints save and restore: model, optimizer, schedule, RNG, and callbacks', hooks' and task's state. */
  private checkpointParts(): RunCheckpointParts {
    const { model, optimizer, scheduler, rng, args, control } = this;
    const owners = {
      callbacks: this.callbackHandler.callbacks,
      hooks: this.activeGradientHooks(),
      task: this.task as TrainingTask<unknown, unknown>,
    };
    return { model, optimizer, scheduler, rng, args, control, owners };
  }

  private async runStep(group: TBatch[], epoch: number, stepInEpoch: number, perEpoch: number): Promise<StepResult> {
    const s = this.state;
    await this.callbackHandler.emit("onStepBegin", this.args, s, this.control);
    const result = await this.trainingStep(group);
    s.globalStep += 1;
    if (this.finiteGuard.divergence) this.control.shouldTrainingStop = true;
    else if (!result.skipped) this.finiteGuard.observe(s.globalStep, result.loss, result.gradNorm);
    s.epoch = epoch + (stepInEpoch + 1) / perEpoch;
    s.numInputTokensSeen += result.numTokens;
    this.window.add(result);
    await this.callbackHandler.emit("onStepEnd", this.args, s, this.control);
    await this.maybeLogSaveEvaluate();
    return result;
  }

  /**
   * One trainer step over `batches` (one gradient-accumulation group). Offline tasks: the task's
   * `beforeStep` outside the tape, then one optimizer step. On-policy tasks: the task's rollout, then each
   * optimizer step it planned. The schedule advances once (not when a hook vetoed an offline step, as HF).
   */
  protected async trainingStep(batches: TBatch[]): Promise<StepResult> {
    const scheduler = this.scheduler!;
    const between = () => this.callbackHandler.emit("onSubstepEnd", this.args, this.state, this.control).then(() => {});
    if (this.task.rollout === undefined) {
      const micro = batches as unknown as TMicro[];
      await this.task.beforeStep?.(micro);
      const result = await this.optimizerStep(micro, between);
      if (!result.skipped) scheduler.step();
      return result;
    }
    const update = await this.task.rollout(batches, this.taskContext());
    const results: StepResult[] = [];
    for (let i = 0; i < update.steps.length; i++) {
      await this.task.beforeStep?.(update.steps[i]!);
      results.push(await this.optimizerStep(update.steps[i]!, between));
      if (i < update.steps.length - 1) await between();
    }
    scheduler.step();
    return combineUpdate(results, update as RolloutUpdate<unknown>);
  }

  /** Accumulate the gradients of `microBatches`, then unscale/veto/clip/apply them (one optimizer step). */
  protected async optimizerStep(microBatches: TMicro[], between: () => Promise<void>): Promise<StepResult> {
    const hooks = this.activeGradientHooks();
    const parts = { model: this.model, task: this.task, optimizer: this.optimizer, maxGradNorm: this.args.maxGradNorm };
    const acc = await accumulateGradients(parts, microBatches, lossScaleOf(hooks), between);
    try {
      this.optimizer.learningRate = this.scheduler!.lr;
      const step = this.state.globalStep + 1;
      // A non-finite loss or gradient norm is never applied: the run is marked diverged and stops.
      const finite = (loss: number, norm: number) => this.finiteGuard.allows(step, loss, norm);
      const { gradNorm, applied } = applyGradients(parts, acc.grads, acc.loss, step, hooks, this.skippedSteps, finite);
      return {
        loss: acc.loss,
        gradNorm,
        metrics: acc.metrics,
        microMetrics: acc.microMetrics,
        numTokens: acc.numTokens,
        ...(applied ? {} : { skipped: true }),
      };
    } finally {
      for (const g of Object.values(acc.grads)) g.dispose();
    }
  }

  private async maybeLogSaveEvaluate(): Promise<void> {
    const c = this.control;
    if (c.shouldLog && !this.window.empty) {
      const gradNorm = this.window.lastGradNorm;
      const { loss, metrics } = this.window.take();
      const logs: Record<string, number> = {
        loss,
        grad_norm: gradNorm,
        learning_rate: this.scheduler?.lr ?? this.args.learningRate,
        ...metrics,
      };
      if (this.state.numInputTokensSeen > 0) logs["num_tokens"] = this.state.numInputTokensSeen;
      if (this.activeGradientHooks().length > 0) logs["skipped_steps"] = this.skippedSteps.length;
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
   * Evaluate on `evalData` without gradients: the loss and every metric averaged over batches (weighted by
   * the task's `batchWeight`; on-policy tasks score generations through `evaluateBatch`), named
   * `<prefix>_<name>`. Logs them, fires `onEvaluate`, and tracks `metricForBestModel`.
   */
  async evaluate(options: { metricKeyPrefix?: string } = {}): Promise<Record<string, number>> {
    await this.prepare();
    const prefix = options.metricKeyPrefix ?? "eval";
    const data = requireEvalData(this.evalData);
    await this.task.prepare?.(this.taskContext());
    const metrics = await averageOverBatches(this.task, data.batches(0), prefix, (b) => this.evaluateBatch(b));
    await this.log(metrics);
    updateBestMetric(this.state, this.args, metrics, prefix);
    await this.callbackHandler.emit("onEvaluate", this.args, this.state, this.control, { metrics });
    return metrics;
  }

  /** Metric values of one evaluation batch: the task's `evaluateBatch`, or its loss and metrics without gradients. */
  protected async evaluateBatch(batch: TBatch): Promise<Record<string, number>> {
    return evaluateBatch(this.task, batch, this.taskContext());
  }

  /**
   * False (and the run marked diverged) when a trainable weight or an optimizer slot is not finite: nothing may
   * be saved then. Checked once per step.
   */
  protected async weightsAreFinite(): Promise<boolean> {
    if (this.finiteGuard.divergence) return false;
    if (this.weightsCheckedAt === this.state.globalStep) return true;
    const finite = await trainableStateIsFinite(this.finiteGuard, this.state.globalStep, this.model, this.optimizer);
    if (finite) this.weightsCheckedAt = this.state.globalStep;
    return finite;
  }

  /**
   * Write `outputDir/checkpoint-<globalStep>` atomically (model, optimizer, schedule, RNG, state with the
   * callbacks', hooks' and task's state), then apply `saveTotalLimit`. Returns the checkpoint directory.
   * @throws DivergenceError (nothing written) after the run diverged or when a trainable weight is not finite.
   */
  async saveCheckpoint(): Promise<string> {
    if (!(await this.weightsAreFinite()))
      throw await divergenceError(this.finiteGuard.divergence!, this.args.outputDir);
    return writeRunCheckpoint(this.checkpointParts(), this.state, this.skippedSteps);
  }
}

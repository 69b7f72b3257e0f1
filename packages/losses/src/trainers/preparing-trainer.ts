import {
  BaseTrainer,
  type Callback,
  type CausalLM,
  type Plugin,
  type TokenizerLike,
  type TrainingArgs,
  type TrainOutput,
  type tf,
} from "@prefkit/core";
import type { DependencyContainer } from "tsyringe";
import { applyPlugins } from "./setup.js";

/** Constructor options every trainer of this package takes (TRL's parameter names in camelCase). */
export interface TrainerCommonOptions {
  /** Tokenizer (TRL's `processing_class`): tokenises raw rows; its pad id pads batches. */
  processingClass?: TokenizerLike;
  /** Alias of `processingClass` (older TRL name). */
  tokenizer?: TokenizerLike;
  /** Callbacks, after the default flow callback. */
  callbacks?: Callback<any>[];
  /** Plugins installed when training starts: their losses, callbacks, gradient hooks and model wrappers (LoRA, AMP) apply to this run. */
  plugins?: Plugin[];
  /** Optimizer to use instead of AdamW built from the args. */
  optimizer?: tf.Optimizer;
  /** Where warnings go (dropped rows, the ln 2 warning, …). Default `console.warn`. */
  warn?: (message: string) => void;
}

/**
 * A {@link BaseTrainer} whose data, losses and plugins are set up once, on the first `train()` or
 * `evaluate()` (tokenising can be slow, and plugins may wrap the model). The trainers of this package
 * extend it and implement {@link PreparingTrainer.doPrepare}.
 */
export abstract class PreparingTrainer<TBatch, TArgs extends TrainingArgs> extends BaseTrainer<TBatch, TArgs> {
  private prepared: Promise<void> | undefined;

  /** Run training (see `BaseTrainer.train`), after the one-time preparation. */
  override async train(options: { resumeFromCheckpoint?: string | boolean } = {}): Promise<TrainOutput> {
    await this.prepare();
    return super.train(options);
  }

  /** Evaluate on the evaluation set (metrics prefixed `eval_`), after the one-time preparation. */
  override async evaluate(options: { metricKeyPrefix?: string } = {}): Promise<Record<string, number>> {
    await this.prepare();
    return super.evaluate(options);
  }

  /** Run {@link PreparingTrainer.doPrepare} once; later calls share its promise. */
  protected prepare(): Promise<void> {
    this.prepared ??= this.doPrepare();
    return this.prepared;
  }

  /** Tokenise the data, build losses, resolve references: whatever must happen before the first step. */
  protected abstract doPrepare(): Promise<void>;

  /**
   * Install `plugins` in the run's `container`: the model they wrap (e.g. LoRA) replaces the trainer's,
   * and the callbacks and gradient hooks (e.g. AMP's loss scaler) they register join the run. Returns the
   * model to train.
   */
  protected async installRunPlugins(container: DependencyContainer, plugins: readonly Plugin[]): Promise<CausalLM> {
    const { model, callbacks, gradientHooks } = await applyPlugins(container, plugins, this.model);
    (this as unknown as { model: CausalLM }).model = model;
    for (const cb of callbacks) this.addCallback(cb);
    for (const hook of gradientHooks) this.addGradientHook(hook);
    return model;
  }
}

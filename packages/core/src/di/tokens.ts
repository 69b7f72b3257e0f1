/**
 * Injection tokens of a prefkit run. Each is a unique `Symbol` whose description says what
 * it resolves to, so a missing registration reads as e.g. `Symbol(prefkit.MODEL)`.
 * @module
 */

/** The trained `CausalLM` (after plugins wrapped it). */
export const MODEL: unique symbol = Symbol("prefkit.MODEL");
/** The frozen reference `CausalLM` (DPO, PPO). */
export const REFERENCE_MODEL: unique symbol = Symbol("prefkit.REFERENCE_MODEL");
/** The `TokenizerLike`. */
export const TOKENIZER: unique symbol = Symbol("prefkit.TOKENIZER");
/** The `Loss` a trainer minimises (built from the run's `LossRegistry` by the config's `lossType`). */
export const LOSS: unique symbol = Symbol("prefkit.LOSS");
/** The run's `LossRegistry` (a child of `defaultLossRegistry`). */
export const LOSS_REGISTRY: unique symbol = Symbol("prefkit.LOSS_REGISTRY");
/** The optimizer (a tfjs `Optimizer`, e.g. `AdamW`). */
export const OPTIMIZER: unique symbol = Symbol("prefkit.OPTIMIZER");
/** A `SchedulerFactory` that builds the learning-rate schedule once the step count is known. */
export const SCHEDULER: unique symbol = Symbol("prefkit.SCHEDULER");
/** Callbacks; register several and resolve with `resolveAll`. */
export const CALLBACKS: unique symbol = Symbol("prefkit.CALLBACKS");
/** Plugins installed in the run; register several and resolve with `resolveAll`. */
export const PLUGINS: unique symbol = Symbol("prefkit.PLUGINS");
/** The run's `Engine` (`defaultEngine`): the `tf` namespace, and `ready()` which initialises it if the user did not. */
export const ENGINE: unique symbol = Symbol("prefkit.ENGINE");
/** The trainer config (a `TrainingArgs` or a subtype such as `DPOConfig`). */
export const TRAINING_ARGS: unique symbol = Symbol("prefkit.TRAINING_ARGS");
/** The training `BatchSource`. */
export const TRAIN_DATA: unique symbol = Symbol("prefkit.TRAIN_DATA");
/** The evaluation `BatchSource` (optional). */
export const EVAL_DATA: unique symbol = Symbol("prefkit.EVAL_DATA");
/** Gradient hooks (`GradientHook`): loss scaling, unscaling and step vetoes; register several. */
export const GRADIENT_HOOKS: unique symbol = Symbol("prefkit.GRADIENT_HOOKS");
/** The run's `TrainingTask`: the per-method step (forward passes, loss, metrics) the generic `Trainer` runs. */
export const TASK: unique symbol = Symbol("prefkit.TASK");
/** The `TrainerParts` the generic `Trainer` is constructed from, resolved from the tokens above. */
export const TRAINER_PARTS: unique symbol = Symbol("prefkit.TRAINER_PARTS");

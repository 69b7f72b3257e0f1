import { ConfigError } from "../errors/index.js";
import type { TrainingArgs } from "../interfaces/trainer.js";

/** transformers' `TrainingArguments` defaults, in camelCase. */
export const DEFAULT_TRAINING_ARGS: Readonly<TrainingArgs> = Object.freeze({
  outputDir: "runs/prefkit",
  learningRate: 5e-5,
  weightDecay: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  maxGradNorm: 1.0,
  numTrainEpochs: 3,
  maxSteps: -1,
  lrSchedulerType: "linear",
  warmupRatio: 0,
  warmupSteps: 0,
  gradientAccumulationSteps: 1,
  gradientCheckpointing: false,
  loggingStrategy: "steps",
  loggingSteps: 500,
  loggingFirstStep: false,
  evalStrategy: "no",
  evalSteps: undefined,
  saveStrategy: "steps",
  saveSteps: 500,
  saveTotalLimit: undefined,
  metricForBestModel: undefined,
  greaterIsBetter: undefined,
  seed: 42,
  perDeviceTrainBatchSize: 8,
  resumeFromCheckpoint: undefined,
  overwriteOutputDir: false,
});

function positiveInt(args: TrainingArgs, field: keyof TrainingArgs): void {
  const v = args[field];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new ConfigError(`expected a positive integer, got ${JSON.stringify(v)}`, { field });
  }
}

/**
 * Fill defaults ({@link DEFAULT_TRAINING_ARGS}) and validate. Extra fields of trainer configs
 * (`beta`, `lossType`, ...) pass through untouched. Throws a {@link ConfigError} naming the field.
 */
export function resolveTrainingArgs<T extends TrainingArgs>(input: Partial<T>): T {
  const args = { ...DEFAULT_TRAINING_ARGS, ...definedFields(input) } as T;
  positiveInt(args, "gradientAccumulationSteps");
  if (args.loggingStrategy === "steps") positiveInt(args, "loggingSteps");
  if (args.saveStrategy === "steps") positiveInt(args, "saveSteps");
  if (args.evalStrategy === "steps" && args.evalSteps !== undefined) positiveInt(args, "evalSteps");
  positiveInt(args, "perDeviceTrainBatchSize");
  if (typeof args.gradientCheckpointing !== "boolean") {
    throw new ConfigError(`expected true or false, got ${JSON.stringify(args.gradientCheckpointing)}`, {
      field: "gradientCheckpointing",
    });
  }
  if (!Number.isInteger(args.seed))
    throw new ConfigError(`expected an integer, got ${JSON.stringify(args.seed)}`, { field: "seed" });
  if (!(Number.isInteger(args.maxSteps) && (args.maxSteps === -1 || args.maxSteps >= 1))) {
    throw new ConfigError(`expected -1 or a positive integer, got ${JSON.stringify(args.maxSteps)}`, {
      field: "maxSteps",
    });
  }
  if (!(args.maxGradNorm >= 0))
    throw new ConfigError(`expected >= 0, got ${JSON.stringify(args.maxGradNorm)}`, { field: "maxGradNorm" });
  if (!(args.learningRate >= 0))
    throw new ConfigError(`expected >= 0, got ${args.learningRate}`, { field: "learningRate" });
  if (!(args.warmupRatio >= 0 && args.warmupRatio <= 1)) {
    throw new ConfigError(`expected a ratio in [0, 1], got ${args.warmupRatio}`, { field: "warmupRatio" });
  }
  if (args.maxSteps <= 0 && !(args.numTrainEpochs > 0)) {
    throw new ConfigError("set numTrainEpochs > 0 or maxSteps > 0", { field: "numTrainEpochs" });
  }
  if (args.saveTotalLimit !== undefined) positiveInt(args, "saveTotalLimit");
  for (const s of ["loggingStrategy", "evalStrategy", "saveStrategy"] as const) {
    if (!["no", "steps", "epoch"].includes(args[s])) {
      throw new ConfigError(`expected "no", "steps" or "epoch", got ${JSON.stringify(args[s])}`, { field: s });
    }
  }
  return args;
}

/** A copy of `o` without its `undefined` fields, so they do not override defaults when spread over them. */
export function definedFields<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * A method's full config: `TrainingArgs`' defaults, then the method's `defaults` table, then the defined fields
 * of `input`; the loop fields validated here, the method's own fields by `validate`.
 */
export function resolveConfig<T extends TrainingArgs>(
  defaults: Partial<T>,
  input: Partial<T>,
  validate: (config: T) => void = () => {},
): T {
  const config = resolveTrainingArgs<T>({ ...structuredClone(defaults), ...definedFields(input) } as Partial<T>);
  validate(config);
  return config;
}

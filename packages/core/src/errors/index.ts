/**
 * Typed errors. Every prefkit error names what was wrong (file, field, tensor, row)
 * so a user can fix the input without reading a stack trace.
 * @module
 */

/** Where an error was found. Every field is optional; set the ones that apply. */
export interface ErrorLocation {
  /** Path of the file that was being read or written. */
  file?: string;
  /** Config field or JSON key, e.g. `rope_scaling.factor` or `lossType`. */
  field?: string;
  /** Tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  tensor?: string;
  /** 1-based row number in a dataset file. */
  row?: number;
}

function describe(loc: ErrorLocation): string {
  const parts: string[] = [];
  if (loc.file !== undefined) parts.push(loc.file);
  if (loc.row !== undefined) parts.push(`row ${loc.row}`);
  if (loc.tensor !== undefined) parts.push(`tensor "${loc.tensor}"`);
  if (loc.field !== undefined) parts.push(`field "${loc.field}"`);
  return parts.join(", ");
}

/** Base class of all prefkit errors. The message starts with the location when there is one. */
export class PrefkitError extends Error {
  /** Where the problem is. */
  readonly location: ErrorLocation;
  constructor(message: string, location: ErrorLocation = {}, options?: { cause?: unknown }) {
    const where = describe(location);
    super(where ? `${where}: ${message}` : message, options);
    this.name = new.target.name;
    this.location = location;
  }
  /** The file named by the location, if any. */
  get file(): string | undefined {
    return this.location.file;
  }
  /** The config field named by the location, if any. */
  get field(): string | undefined {
    return this.location.field;
  }
  /** The tensor named by the location, if any. */
  get tensor(): string | undefined {
    return this.location.tensor;
  }
  /** The 1-based dataset row named by the location, if any. */
  get row(): number | undefined {
    return this.location.row;
  }
}

/** A config (model `config.json`, trainer config, plugin config) is invalid or does not match the weights. */
export class ConfigError extends PrefkitError {}

/** A checkpoint file (safetensors, index, optimizer state) is malformed, truncated or inconsistent. */
export class CheckpointError extends PrefkitError {}

/** A dataset file or row is malformed, or a dataset is empty. */
export class DatasetError extends PrefkitError {}

/** The engine (TensorFlow.js backend, kernel plugin) could not be set up as requested. */
export class EngineError extends PrefkitError {}

/**
 * Training diverged: the loss, the gradient norm or the weights stopped being finite. The step that
 * produced it was not applied and nothing was saved after it, so the newest checkpoint is the last good one.
 */
export class DivergenceError extends PrefkitError {
  /**
   * @param message what went wrong, starting with the step.
   * @param step the optimizer step (1-based) whose value was not finite.
   * @param metric `loss`, `grad_norm` or `weights`.
   * @param value the non-finite value (NaN for weights).
   * @param location the output directory, when known.
   */
  constructor(
    message: string,
    readonly step: number,
    readonly metric: string,
    readonly value: number,
    location: ErrorLocation = {},
  ) {
    super(message, location);
  }
}

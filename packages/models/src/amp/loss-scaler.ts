/**
 * `DynamicLossScaler`: torch's `GradScaler` semantics (scale, unscale, skip the step on inf/NaN, grow and
 * back off) for TensorFlow.js.
 * @module
 */
import { ConfigError, tf } from "@prefkit/core";

/** Options of {@link DynamicLossScaler}, with torch `GradScaler`'s names and defaults. */
export interface DynamicLossScalerOptions {
  /** Starting scale. Default 2¹⁶ = 65536. */
  initScale?: number;
  /** Multiplier after `growthInterval` consecutive finite steps. Default 2. */
  growthFactor?: number;
  /** Multiplier after a step with inf/NaN gradients. Default 0.5. */
  backoffFactor?: number;
  /** Consecutive finite steps before growing. Default 2000. */
  growthInterval?: number;
  /**
   * `true`, `false`, or `"auto"` (default): on only where compute is 16-bit (the webgl backend without
   * float32 render targets, or with `WEBGL_FORCE_F16_TEXTURES`). Like torch's scaler without CUDA, a
   * disabled scaler is a pass-through: scale 1, no unscale, steps always applied.
   */
  enabled?: boolean | "auto";
}

/** The scaler's state for checkpoints (torch's `state_dict` fields). */
export interface LossScalerState {
  /** Current scale. */
  scale: number;
  /** torch `growth_factor`. */
  growth_factor: number;
  /** torch `backoff_factor`. */
  backoff_factor: number;
  /** torch `growth_interval`. */
  growth_interval: number;
  /** torch `_growth_tracker`: consecutive finite steps since the last change. */
  _growth_tracker: number;
}

/** True when the active backend computes in 16-bit floats (webgl with f16 textures). */
export function backendComputesInHalfPrecision(): boolean {
  if (tf.getBackend() !== "webgl") return false;
  const flag = (name: string): boolean | undefined => {
    try {
      return tf.env().getBool(name);
    } catch {
      return undefined;
    }
  };
  return flag("WEBGL_FORCE_F16_TEXTURES") === true || flag("WEBGL_RENDER_FLOAT32_ENABLED") === false;
}

/** Result of {@link DynamicLossScaler.unscale}. */
export interface UnscaledGradients {
  /** Gradients divided by the scale (new tensors; the caller disposes them). */
  grads: tf.NamedTensorMap;
  /** True when any gradient has an inf or NaN (the step must be skipped). */
  foundInf: boolean;
}

/**
 * Dynamic loss scaling with torch `GradScaler` semantics. A step:
 *
 * ```ts no-run
 * const scaler = new DynamicLossScaler({ enabled: true });
 * const { value, grads } = tf.variableGrads(() => scaler.scale(lossFn()), vars);
 * const applied = scaler.step(optimizer, grads); // unscale; skip on inf/NaN
 * scaler.update();                               // back off or grow
 * ```
 *
 * The scale is always a power of two times the initial scale, so on float32 backends scaling and
 * unscaling are exact: enabled or not, the scaler changes nothing there but skipping non-finite steps.
 */
export class DynamicLossScaler {
  /** Whether scaling is on (see {@link DynamicLossScalerOptions.enabled}). */
  readonly enabled: boolean;
  /** torch `growth_factor`. */
  readonly growthFactor: number;
  /** torch `backoff_factor`. */
  readonly backoffFactor: number;
  /** torch `growth_interval`. */
  readonly growthInterval: number;
  private scaleValue: number;
  private growthTracker = 0;
  private pendingInf: boolean | undefined;

  /** @throws ConfigError naming an option outside its range. */
  constructor(options: DynamicLossScalerOptions = {}) {
    const enabled = options.enabled ?? "auto";
    this.enabled = enabled === "auto" ? backendComputesInHalfPrecision() : enabled;
    this.scaleValue = options.initScale ?? 65536;
    this.growthFactor = options.growthFactor ?? 2;
    this.backoffFactor = options.backoffFactor ?? 0.5;
    this.growthInterval = options.growthInterval ?? 2000;
    if (!(this.scaleValue > 0 && Number.isFinite(this.scaleValue))) {
      throw new ConfigError(`must be a positive finite number, got ${this.scaleValue}`, { field: "initScale" });
    }
    if (!(this.growthFactor > 1)) {
      throw new ConfigError(`must be > 1, got ${this.growthFactor}`, { field: "growthFactor" });
    }
    if (!(this.backoffFactor > 0 && this.backoffFactor < 1)) {
      throw new ConfigError(`must be in (0, 1), got ${this.backoffFactor}`, { field: "backoffFactor" });
    }
    if (!(Number.isInteger(this.growthInterval) && this.growthInterval > 0)) {
      throw new ConfigError(`must be a positive integer, got ${this.growthInterval}`, { field: "growthInterval" });
    }
  }

  /** The current scale (1 when disabled, as torch's `get_scale`... returns 1.0 then). */
  getScale(): number {
    return this.enabled ? this.scaleValue : 1;
  }

  /** Consecutive finite steps since the scale last changed. */
  get growthTrackerValue(): number {
    return this.growthTracker;
  }

  /** `loss · scale` (the loss itself when disabled). Differentiable; use inside `tf.variableGrads`. */
  scale<T extends tf.Tensor>(loss: T): T {
    return this.enabled ? (tf.mul(loss, this.scaleValue) as T) : loss;
  }

  /**
   * Divide gradients by the scale and check them for inf/NaN (one data sync). The input tensors are not
   * disposed. When disabled, the gradients are cloned and still checked.
   */
  unscale(grads: tf.NamedTensorMap): UnscaledGradients {
    const inv = 1 / this.getScale();
    const out: tf.NamedTensorMap = {};
    const flags: tf.Tensor[] = [];
    for (const [name, g] of Object.entries(grads)) {
      if (g == null) continue;
      out[name] = tf.tidy(() => (inv === 1 ? tf.clone(g) : tf.mul(g, inv)));
      flags.push(tf.tidy(() => tf.any(tf.logicalNot(tf.isFinite(g)))));
    }
    const foundInf = flags.length > 0 && tf.tidy(() => tf.any(tf.stack(flags)).dataSync()[0]! !== 0);
    for (const f of flags) f.dispose();
    this.pendingInf = (this.pendingInf ?? false) || foundInf;
    return { grads: out, foundInf };
  }

  /**
   * torch's `scaler.step(optimizer)`: unscale `grads`, then apply them unless they hold inf/NaN. Disposes
   * the unscaled copies (not `grads`). Returns whether the step was applied.
   */
  step(optimizer: tf.Optimizer, grads: tf.NamedTensorMap): boolean {
    const { grads: unscaled, foundInf } = this.unscale(grads);
    try {
      if (!foundInf) optimizer.applyGradients(unscaled);
    } finally {
      for (const g of Object.values(unscaled)) g.dispose();
    }
    return !foundInf;
  }

  /**
   * torch's `scaler.update()`: after a step with inf/NaN, scale ·= `backoffFactor` and the tracker resets;
   * otherwise the tracker counts, and at `growthInterval` the scale ·= `growthFactor` (if still finite).
   * @param foundInf override what the last {@link unscale}/{@link step} saw.
   */
  update(foundInf?: boolean): void {
    const inf = foundInf ?? this.pendingInf ?? false;
    this.pendingInf = undefined;
    if (!this.enabled) return;
    if (inf) {
      this.scaleValue *= this.backoffFactor;
      this.growthTracker = 0;
      return;
    }
    const successful = this.growthTracker + 1;
    if (successful === this.growthInterval) {
      const grown = this.scaleValue * this.growthFactor;
      if (Number.isFinite(grown)) this.scaleValue = grown;
      this.growthTracker = 0;
    } else {
      this.growthTracker = successful;
    }
  }

  /** torch's `state_dict()`. */
  state(): LossScalerState {
    return {
      scale: this.scaleValue,
      growth_factor: this.growthFactor,
      backoff_factor: this.backoffFactor,
      growth_interval: this.growthInterval,
      _growth_tracker: this.growthTracker,
    };
  }

  /** torch's `load_state_dict()` (scale and tracker; the factors are the constructor's). */
  loadState(state: Pick<LossScalerState, "scale" | "_growth_tracker">): void {
    if (!(state.scale > 0) || !Number.isInteger(state._growth_tracker)) {
      throw new ConfigError("invalid loss-scaler state", { field: "scale" });
    }
    this.scaleValue = state.scale;
    this.growthTracker = state._growth_tracker;
  }
}

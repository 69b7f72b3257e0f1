/**
 * The LoRA layer (`y = base(x) + (dropout(x) Aᵀ Bᵀ)·scaling`) and PEFT's `modules_to_save` wrapper, both
 * {@link LinearModule}s installed through the model's `replaceLinear` seam.
 * @module
 */
import { type Rng, tf } from "@prefkit/core";
import { HalfPrecisionLinear } from "../modeling/decoder/half-precision.js";
import { Linear, type LinearModule, type LoraLinearDescription } from "../modeling/decoder/linear.js";

/**
 * When LoRA dropout is active:
 * - `"auto"` (default): only while a gradient tape records (inside `tf.variableGrads`/`tf.grad`, i.e. the
 *   trainer's training step). The DPO/PPO reference pass, evaluation and generation run outside any tape,
 *   so they never see dropout, like a torch model in `eval()` mode.
 * - `"train"`: always (torch `model.train()`).
 * - `"eval"`: never (torch `model.eval()`).
 */
export type LoraDropoutMode = "auto" | "train" | "eval";

/** State shared by every adapter layer of one `PeftModel`: the on/off switch and dropout. */
export interface AdapterState {
  /** False while adapters are disabled (the base model runs alone). */
  enabled: boolean;
  /** See {@link LoraDropoutMode}. */
  dropoutMode: LoraDropoutMode;
  /** Seeds each dropout mask (a fresh seed per call, so masks differ between calls but runs reproduce). */
  rng: Rng;
}

function dropoutActive(state: AdapterState): boolean {
  if (state.dropoutMode === "auto") return tf.engine().isTapeOn();
  return state.dropoutMode === "train";
}

/** Fold `[..., n]` to `[rows, n]`. */
function as2d(x: tf.Tensor, n: number): tf.Tensor2D {
  return (x.rank === 2 ? x : tf.reshape(x, [-1, n])) as tf.Tensor2D;
}

/**
 * PEFT's `lora.Linear`: the base projection plus a low-rank update. `lora_A` is `[r, in]` (Kaiming-uniform
 * with a = √5, i.e. U(−1/√in, 1/√in)), `lora_B` is `[out, r]` (zeros), so the layer starts equal to its base.
 */
export class LoraLinear implements LinearModule {
  /** HF module name (the base's). */
  readonly name: string;
  /** The wrapped projection (frozen). Replaceable, e.g. by AMP's 16-bit storage. */
  base: LinearModule;
  /** `lora_A.weight` `[r, inFeatures]`. */
  readonly loraA: tf.Variable;
  /** `lora_B.weight` `[outFeatures, r]`. */
  readonly loraB: tf.Variable;
  /** Multiplier of the update (`alpha / r` or `alpha / √r`). */
  readonly scaling: number;
  /** Dropout probability on the LoRA input. */
  readonly dropout: number;
  private readonly state: AdapterState;

  /**
   * @param base the projection to adapt.
   * @param init initial `loraA` `[r, in]` and `loraB` `[out, r]` (copied), scaling, dropout, and whether
   *   the adapter variables are trainable.
   * @param state the switch and dropout state shared by the model's adapter layers.
   */
  constructor(
    base: LinearModule,
    init: { loraA: tf.Tensor2D; loraB: tf.Tensor2D; scaling: number; dropout: number; trainable: boolean },
    state: AdapterState,
  ) {
    this.name = base.name;
    this.base = base;
    this.loraA = tf.variable(init.loraA, init.trainable);
    this.loraB = tf.variable(init.loraB, init.trainable);
    this.scaling = init.scaling;
    this.dropout = init.dropout;
    this.state = state;
  }

  /** Size of the last input axis. */
  get inFeatures(): number {
    return this.base.inFeatures;
  }

  /** Size of the last output axis. */
  get outFeatures(): number {
    return this.base.outFeatures;
  }

  /** Rank of the update. */
  get r(): number {
    return this.loraA.shape[0]!;
  }

  /** `base(x)`, plus `dropout(x) Aᵀ Bᵀ · scaling` while adapters are enabled. */
  apply(x: tf.Tensor): tf.Tensor {
    const y = this.base.apply(x);
    if (!this.state.enabled) return y;
    return tf.tidy(() => {
      let h = as2d(x, this.inFeatures);
      if (this.dropout > 0 && dropoutActive(this.state))
        h = tf.dropout(h, this.dropout, undefined, this.state.rng.seed()) as tf.Tensor2D;
      const low = tf.matMul(h, this.loraA as tf.Tensor2D, false, true);
      const delta = tf.mul(tf.matMul(low, this.loraB as tf.Tensor2D, false, true), this.scaling);
      return tf.add(y, x.rank === 2 ? delta : tf.reshape(delta, y.shape));
    });
  }

  /** Whether the update applies now (false while adapters are disabled). */
  get active(): boolean {
    return this.state.enabled;
  }

  /**
   * The seed of this call's dropout mask when dropout applies now (drawn from the shared RNG exactly as
   * {@link apply} draws it), else undefined. For fused implementations of `apply` (the native decoder).
   */
  nextDropoutSeed(): number | undefined {
    return this.dropout > 0 && dropoutActive(this.state) ? this.state.rng.seed() : undefined;
  }

  /** The update over its base's description (for fused implementations such as the native decoder). */
  describe(): LoraLinearDescription {
    return {
      kind: "lora",
      base: this.base.describe?.(),
      loraA: this.loraA,
      loraB: this.loraB,
      scaling: this.scaling,
      rank: this.r,
      dropout: this.dropout,
      active: this.active,
      nextDropoutSeed: () => this.nextDropoutSeed(),
      dropoutApplies: () => this.dropout > 0 && dropoutActive(this.state),
    };
  }

  /** `scaling · B·A` `[out, in]`: what merging adds to the base weight. */
  deltaWeight(): tf.Tensor2D {
    return tf.tidy(() => tf.mul(tf.matMul(this.loraB, this.loraA), this.scaling) as tf.Tensor2D);
  }

  /** The base's parameters plus `${name}.lora_A.weight` and `${name}.lora_B.weight`. */
  parameters(): Map<string, tf.Variable> {
    const out = new Map(this.base.parameters());
    out.set(`${this.name}.lora_A.weight`, this.loraA);
    out.set(`${this.name}.lora_B.weight`, this.loraB);
    return out;
  }

  /** Free the adapter variables (not the base). */
  dispose(): void {
    this.loraA.dispose();
    this.loraB.dispose();
  }
}

/**
 * PEFT's `ModulesToSaveWrapper`: a trainable copy of a projection (saved with the adapter) used while
 * adapters are enabled, and the untouched original used while they are disabled. Parameter names: the
 * copy takes the module's own names (`score.weight`, as PEFT writes them in `adapter_model.safetensors`),
 * the original is reported as `${name}.original_module.weight`.
 */
export class ModulesToSaveLinear implements LinearModule {
  /** HF module name. */
  readonly name: string;
  /** The original projection (frozen). */
  readonly original: LinearModule;
  /** The trained copy. */
  readonly copy: Linear;
  private readonly state: AdapterState;

  /**
   * @param original a {@link Linear} or a 16-bit {@link HalfPrecisionLinear} (its weight, upcast, and bias
   *   are copied into float32 variables).
   * @param trainable whether the copy is trainable.
   */
  constructor(original: Linear | HalfPrecisionLinear, state: AdapterState, trainable: boolean) {
    this.name = original.name;
    this.original = original;
    const weight = tf.tidy(() =>
      tf.variable(original instanceof HalfPrecisionLinear ? original.upcast() : tf.clone(original.weight), trainable),
    );
    const bias = original.bias ? tf.tidy(() => tf.variable(tf.clone(original.bias!), trainable)) : null;
    this.copy = new Linear(original.name, weight, bias);
    this.state = state;
  }

  /** Size of the last input axis. */
  get inFeatures(): number {
    return this.original.inFeatures;
  }

  /** Size of the last output axis. */
  get outFeatures(): number {
    return this.original.outFeatures;
  }

  /** The copy while adapters are enabled, else the original. */
  apply(x: tf.Tensor): tf.Tensor {
    return this.state.enabled ? this.copy.apply(x) : this.original.apply(x);
  }

  /** The copy under the module's names, the original under `${name}.original_module.*`. */
  parameters(): Map<string, tf.Variable> {
    const out = new Map(this.copy.parameters());
    for (const [k, v] of this.original.parameters()) {
      out.set(`${this.name}.original_module${k.slice(this.name.length)}`, v);
    }
    return out;
  }

  /** Free the copy's variables (not the original). */
  dispose(): void {
    this.copy.weight.dispose();
    this.copy.bias?.dispose();
  }
}

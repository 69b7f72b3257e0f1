/**
 * Linear layers and the seam plugins (LoRA, AMP) use to wrap them.
 *
 * Every projection in the decoder is a {@link LinearModule} addressed by its HF module name
 * (`model.layers.3.self_attn.q_proj`, `lm_head`). The model exposes them through
 * `linearModules()` and lets a plugin swap one with `replaceLinear(name, wrap)`; the decoder
 * calls `module.apply(x)` on whatever is in the slot at forward time. A LoRA wrapper therefore
 * looks like:
 *
 * ```ts
 * model.replaceLinear("model.layers.0.self_attn.q_proj", (base) => ({
 *   name: base.name, inFeatures: base.inFeatures, outFeatures: base.outFeatures,
 *   apply: (x) => tf.add(base.apply(x), loraDelta(x)),
 *   parameters: () => new Map([...base.parameters(), [`${base.name}.lora_A.weight`, a], [`${base.name}.lora_B.weight`, b]]),
 * }));
 * ```
 *
 * A module may also say what it computes ({@link LinearModule.describe}), so that a fused
 * implementation of the whole decoder (the native accelerator) can run it without knowing its class;
 * a module that does not describe itself makes such an implementation decline, and the decoder runs
 * `apply` as usual.
 * @module
 */
import { tf } from "@prefkit/core";

/** A plain projection `y = x Wᵀ + b` over float32 variables. */
export interface DenseLinearDescription {
  /** Discriminant. */
  readonly kind: "dense";
  /** Weight `[outFeatures, inFeatures]` (HF layout). */
  readonly weight: tf.Variable;
  /** Bias `[outFeatures]`, or null. */
  readonly bias: tf.Variable | null;
}

/** A projection whose (frozen) weight is stored as 16-bit patterns and upcast to float32 to run. */
export interface Dense16LinearDescription {
  /** Discriminant. */
  readonly kind: "dense16";
  /**
   * The weight's bit patterns, row-major `[outFeatures, inFeatures]` (read lazily: once the bits were
   * dropped for a pack, each read unpacks them).
   */
  readonly bits: Uint16Array;
  /** Identifies the stored values: the same object while they do not change (what caches key on). */
  readonly key: object;
  /**
   * Present when a pack that holds these values exactly may become their only storage (bf16 weights a
   * module owns): the bits array is dropped and unpacked from `store` on demand.
   */
  readonly release?: (store: { unpack(): Uint16Array }) => void;
  /** What the bits encode. */
  readonly dtype: "bfloat16" | "float16";
  /** `[outFeatures, inFeatures]`. */
  readonly shape: readonly [number, number];
  /** Bias `[outFeatures]` (float32), or null. */
  readonly bias: tf.Variable | null;
}

/** PEFT's LoRA over a base projection: `y = base(x) + scaling · (dropout(x) Aᵀ) Bᵀ` while active. */
export interface LoraLinearDescription {
  /** Discriminant. */
  readonly kind: "lora";
  /** What the base projection computes, or undefined when it does not describe itself. */
  readonly base: LinearDescription | undefined;
  /** `lora_A` `[rank, inFeatures]`. */
  readonly loraA: tf.Variable;
  /** `lora_B` `[outFeatures, rank]`. */
  readonly loraB: tf.Variable;
  /** Multiplier of the update. */
  readonly scaling: number;
  /** Rank of the update. */
  readonly rank: number;
  /** Dropout probability on the update's input. */
  readonly dropout: number;
  /** False while adapters are disabled (the base runs alone). */
  readonly active: boolean;
  /**
   * The seed of this call's dropout mask when dropout applies now (drawn from the adapter's RNG exactly
   * as `apply` draws it, so a fused implementation makes the same masks), else undefined.
   */
  nextDropoutSeed(): number | undefined;
  /** Whether dropout would apply now (so that {@link nextDropoutSeed} would draw), without drawing. */
  dropoutApplies?(): boolean;
}

/**
 * What a {@link LinearModule} computes, for implementations that fuse several modules (the native
 * decoder): a plain projection, a 16-bit stored one, or LoRA over another description.
 */
export type LinearDescription = DenseLinearDescription | Dense16LinearDescription | LoraLinearDescription;

/**
 * A linear map `y = x Wᵀ + b` over the last axis, as the decoder sees it. Implement this to
 * wrap or replace a projection.
 */
export interface LinearModule {
  /** HF module name, e.g. `model.layers.0.mlp.up_proj` (parameter names are `${name}.weight`). */
  readonly name: string;
  /** Size of the last input axis. */
  readonly inFeatures: number;
  /** Size of the last output axis. */
  readonly outFeatures: number;
  /** Map `[..., inFeatures]` to `[..., outFeatures]`. Must be differentiable and sync-free. */
  apply(x: tf.Tensor): tf.Tensor;
  /**
   * Every variable this module uses, by full parameter name (`${name}.weight`, `${name}.bias`,
   * plus e.g. `${name}.lora_A.weight` for a wrapper). `namedParameters()` of the model is the
   * union over modules and norms, so wrappers' extra variables become visible to optimizers.
   */
  parameters(): Map<string, tf.Variable>;
  /**
   * What this module computes, so that a fused implementation of the decoder can run it; undefined
   * (or no such method) when it is something else, which makes such implementations decline.
   */
  describe?(): LinearDescription | undefined;
}

/** The stock projection: weight `[out, in]` exactly as HF stores it, optional bias `[out]`. */
export class Linear implements LinearModule {
  /** HF module name. */
  readonly name: string;
  /** Weight `[outFeatures, inFeatures]` (HF layout; applied with a transposed matmul). */
  readonly weight: tf.Variable;
  /** Bias `[outFeatures]`, or null. */
  readonly bias: tf.Variable | null;
  /**
   * When true, `weight` belongs to another module (tied `lm_head` reusing the embedding) and is
   * not reported by {@link Linear.parameters}.
   */
  readonly sharedWeight: boolean;

  /** Wrap existing variables; see the class fields for the expected shapes. */
  constructor(name: string, weight: tf.Variable, bias: tf.Variable | null = null, sharedWeight = false) {
    this.name = name;
    this.weight = weight;
    this.bias = bias;
    this.sharedWeight = sharedWeight;
  }

  /** Size of the last input axis. */
  get inFeatures(): number {
    return this.weight.shape[1]!;
  }

  /** Size of the last output axis. */
  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  /** `x Wᵀ + b`; inputs of any rank ≥ 2 are folded to one unbatched 2-D matmul. */
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, this.inFeatures]);
      let y: tf.Tensor = tf.matMul(x2, this.weight as tf.Tensor2D, false, true);
      if (this.bias) y = tf.add(y, this.bias);
      return x.rank === 2 ? y : tf.reshape(y, [...lead, this.outFeatures]);
    });
  }

  /** A plain projection over {@link weight} and {@link bias}. */
  describe(): DenseLinearDescription {
    return { kind: "dense", weight: this.weight, bias: this.bias };
  }

  /** `${name}.weight` (unless shared) and `${name}.bias` when present. */
  parameters(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    if (!this.sharedWeight) out.set(`${this.name}.weight`, this.weight);
    if (this.bias) out.set(`${this.name}.bias`, this.bias);
    return out;
  }
}

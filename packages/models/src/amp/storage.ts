/**
 * 16-bit storage of frozen weights: a frozen projection's float32 weight is replaced by its bf16 or fp16
 * bit patterns in a `Uint16Array` (outside the tfjs backend). The tfjs ops upcast it to a float32 tensor each
 * time the layer runs; the fused native decoder packs it once for its GEMM and keeps the pack. Compute stays
 * float32 (unless AMP's `compute: "bfloat16"`); only storage shrinks.
 * @module
 */
import { ConfigError, tf } from "@prefkit/core";
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from "../io/halfPrecision.js";
import { type Dense16LinearDescription, Linear, type LinearModule } from "../modeling/decoder/linear.js";
import { LoraLinear } from "../lora/layer.js";

/**
 * One reusable float32 buffer per weight size for the per-call upcast. Safe because an upcast weight never
 * outlives the `apply` (or backward) call that made it: it is disposed by that call's `tf.tidy` and never
 * saved on the tape, and calls run one at a time. Without reuse, every forward would leave a float32 copy of
 * every stored weight as garbage for the GC, and the resident size would climb back to the float32 figure.
 */
const scratch = new Map<number, Float32Array>();

/** The 16-bit storage formats. */
export type HalfPrecisionDtype = "bfloat16" | "float16";

/**
 * A frozen projection whose weight `[out, in]` is kept as 16-bit bit patterns and upcast per call. The
 * gradient with respect to the input is exact for the stored (rounded) weight; the upcast weight is not
 * kept for the backward pass but upcast again there, so a training step holds one layer's float32 weight
 * at a time, not all of them. The weight gets no gradient (it is not a variable).
 */
export class HalfPrecisionLinear implements LinearModule {
  /** HF module name. */
  readonly name: string;
  /** Storage format of {@link bits}. */
  readonly dtype: HalfPrecisionDtype;
  /** The weight's 16-bit patterns, row-major `[outFeatures, inFeatures]`. */
  readonly bits: Uint16Array;
  /** Size of the last input axis. */
  readonly inFeatures: number;
  /** Size of the last output axis. */
  readonly outFeatures: number;
  /** Bias `[out]` (kept in float32: small), or null. */
  readonly bias: tf.Variable | null;
  private readonly matmul: (x: tf.Tensor2D) => tf.Tensor2D;

  /**
   * @param name HF module name; @param weight float32 values `[out, in]` (rounded to `dtype` here).
   * @param bias optional float32 bias variable (reported by {@link parameters}).
   */
  constructor(
    name: string,
    weight: { shape: readonly number[]; data: Float32Array },
    dtype: HalfPrecisionDtype,
    bias: tf.Variable | null = null,
  ) {
    if (weight.shape.length !== 2)
      throw new ConfigError(`expected a 2-D weight, got [${weight.shape}]`, { tensor: name });
    this.name = name;
    this.dtype = dtype;
    this.outFeatures = weight.shape[0]!;
    this.inFeatures = weight.shape[1]!;
    this.bits = dtype === "bfloat16" ? float32ToBf16(weight.data) : float32ToF16(weight.data);
    this.bias = bias;
    this.matmul = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const x = args[0] as tf.Tensor2D;
      const w = this.upcastScratch();
      return {
        value: tf.matMul(x, w, false, true),
        // dy·W with W upcast again: the float32 copy lives only during this layer's backward.
        gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.matMul(dy as tf.Tensor2D, this.upcastScratch())),
      };
    }) as (x: tf.Tensor2D) => tf.Tensor2D;
  }

  /**
   * Store a {@link Linear}'s weight in 16 bits. The Linear's weight variable is disposed when
   * `releaseFloat32` (default true): that is where the memory saving comes from.
   */
  static fromLinear(linear: Linear, dtype: HalfPrecisionDtype, releaseFloat32 = true): HalfPrecisionLinear {
    const half = new HalfPrecisionLinear(
      linear.name,
      { shape: linear.weight.shape, data: linear.weight.dataSync() as Float32Array },
      dtype,
      linear.bias,
    );
    if (releaseFloat32) linear.weight.dispose();
    return half;
  }

  /** Bytes of the stored weight (2 per element). */
  get storedBytes(): number {
    return this.bits.byteLength;
  }

  /** The stored weight upcast to float32 (exact: every 16-bit value is a float32 value). */
  weightFloat32(): Float32Array {
    return this.dtype === "bfloat16" ? bf16ToFloat32(this.bits) : f16ToFloat32(this.bits);
  }

  /** A fresh float32 tensor of the weight; the caller disposes it. */
  upcast(): tf.Tensor2D {
    return tf.tensor2d(this.weightFloat32(), [this.outFeatures, this.inFeatures], "float32");
  }

  /** The weight as a float32 tensor over the shared scratch buffer: dispose it before the next upcast. */
  private upcastScratch(): tf.Tensor2D {
    const n = this.bits.length;
    let buf = scratch.get(n);
    if (buf === undefined) {
      buf = new Float32Array(n);
      scratch.set(n, buf);
    }
    if (this.dtype === "bfloat16") bf16ToFloat32(this.bits, buf);
    else f16ToFloat32(this.bits, buf);
    return tf.tensor2d(buf, [this.outFeatures, this.inFeatures], "float32");
  }

  /** `x Wᵀ + b` with W upcast for this call. Differentiable with respect to `x` (and the bias). */
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = (x.rank === 2 ? x : tf.reshape(x, [-1, this.inFeatures])) as tf.Tensor2D;
      let y: tf.Tensor = this.matmul(x2);
      if (this.bias) y = tf.add(y, this.bias);
      return x.rank === 2 ? y : tf.reshape(y, [...lead, this.outFeatures]);
    });
  }

  /** The 16-bit weight as stored (the native decoder runs it from a pack made once from these bits). */
  describe(): Dense16LinearDescription {
    return {
      kind: "dense16",
      bits: this.bits,
      dtype: this.dtype,
      shape: [this.outFeatures, this.inFeatures],
      bias: this.bias,
    };
  }

  /** Only `${name}.bias` when present: the 16-bit weight is not a variable. */
  parameters(): Map<string, tf.Variable> {
    return this.bias ? new Map([[`${this.name}.bias`, this.bias]]) : new Map();
  }
}

/** What {@link enableHalfPrecisionStorage} needs: the projections and the seam to replace them. */
export interface HalfPrecisionTarget {
  /** Every projection by HF module name. */
  linearModules(): Map<string, LinearModule>;
  /** Replace the projection `name` by `wrap(current)`. */
  replaceLinear(name: string, wrap: (current: LinearModule) => LinearModule): LinearModule;
}

/** Options of {@link enableHalfPrecisionStorage}. */
export interface HalfPrecisionStorageOptions {
  /** Storage format. Default `"bfloat16"` (float32's range, so no overflow; 8 significant bits). */
  dtype?: HalfPrecisionDtype;
  /** Dispose the float32 weight variables after conversion (default true; otherwise nothing is saved). */
  releaseFloat32?: boolean;
}

/** What {@link enableHalfPrecisionStorage} converted. */
export interface HalfPrecisionStorageReport {
  /** Module names now stored in 16 bits. */
  converted: string[];
  /** Module names left alone (trainable, tied to the embeddings, or not a plain projection). */
  skipped: string[];
  /** float32 bytes of the converted weights before. */
  bytesBefore: number;
  /** 16-bit bytes after. */
  bytesAfter: number;
}

function frozenPlain(m: LinearModule): m is Linear {
  return m instanceof Linear && !m.sharedWeight && !m.weight.trainable && !m.weight.isDisposed;
}

/**
 * Store every FROZEN projection of `model` in 16 bits (the base weights under LoRA, or every projection of
 * a frozen reference model). Trainable weights (the master weights) stay float32, and so do the embeddings
 * and a tied `lm_head` (the decoder gathers from the embedding variable directly), norms and biases.
 *
 * After this, the converted float32 variables are disposed: the base model's own `savePretrained`,
 * `frozenCopy` and merging LoRA into it no longer work (a LoRA model's `savePretrained` still does: it
 * writes only the adapter). Logits change by at most what rounding the weights implies (see the guide).
 */
export function enableHalfPrecisionStorage(
  model: HalfPrecisionTarget,
  options: HalfPrecisionStorageOptions = {},
): HalfPrecisionStorageReport {
  if (typeof model?.linearModules !== "function" || typeof model.replaceLinear !== "function") {
    throw new ConfigError("16-bit storage needs a prefkit model (with linearModules() and replaceLinear())", {
      field: "model",
    });
  }
  const dtype = options.dtype ?? "bfloat16";
  if (dtype !== "bfloat16" && dtype !== "float16") {
    throw new ConfigError(`must be "bfloat16" or "float16", got ${JSON.stringify(dtype)}`, { field: "dtype" });
  }
  const release = options.releaseFloat32 ?? true;
  const report: HalfPrecisionStorageReport = { converted: [], skipped: [], bytesBefore: 0, bytesAfter: 0 };
  for (const [name, m] of model.linearModules()) {
    if (m instanceof HalfPrecisionLinear || (m instanceof LoraLinear && m.base instanceof HalfPrecisionLinear)) {
      continue;
    }
    const plain = m instanceof LoraLinear ? m.base : m;
    if (!frozenPlain(plain)) {
      report.skipped.push(name);
      continue;
    }
    const half = HalfPrecisionLinear.fromLinear(plain, dtype, release);
    if (m instanceof LoraLinear) m.base = half;
    else model.replaceLinear(name, () => half);
    report.converted.push(name);
    report.bytesBefore += 4 * half.bits.length;
    report.bytesAfter += half.storedBytes;
  }
  return report;
}

/**
 * 16-bit weights on TensorFlow.js, which has no 16-bit dtypes: a {@link HalfPrecisionWeight} keeps a
 * weight's bf16 or fp16 bit patterns in a `Uint16Array` outside the backend, and a
 * {@link HalfPrecisionLinear} runs a projection over one by upcasting it to float32 for each call (the fused
 * native decoder instead packs the bits once and keeps the pack). Compute stays float32 (unless bf16
 * compute is asked for); only storage shrinks. Both a model loaded with `dtype: "bfloat16"` (its frozen weights)
 * and AMP's 16-bit storage (`enableHalfPrecisionStorage`) use these classes.
 * @module
 */
import { ConfigError, type HalfPrecisionTensor, tf } from "@prefkit/core";
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from "../../io/halfPrecision.js";
import { type Dense16LinearDescription, Linear, type LinearModule } from "./linear.js";

/** The 16-bit storage formats. */
export type HalfPrecisionDtype = "bfloat16" | "float16";

/**
 * One reusable float32 buffer per weight size for the per-call upcast. Safe because an upcast weight never
 * outlives the `apply` (or backward) call that made it: it is disposed by that call's `tf.tidy` and never
 * saved on the tape, and calls run one at a time. Without reuse, every forward would leave a float32 copy of
 * every stored weight as garbage for the GC, and the resident size would climb back to the float32 figure.
 */
const scratch = new Map<number, Float32Array>();

/** `src` upcast into `out` (or a new array). */
function upcastInto(dtype: HalfPrecisionDtype, src: Uint16Array, out?: Float32Array): Float32Array {
  return dtype === "bfloat16" ? bf16ToFloat32(src, out) : f16ToFloat32(src, out);
}

/** `values` rounded to `dtype` (round to nearest even), as bit patterns. */
export function roundToHalfPrecision(values: Float32Array, dtype: HalfPrecisionDtype): Uint16Array {
  return dtype === "bfloat16" ? float32ToBf16(values) : float32ToF16(values);
}

/**
 * Where a weight's bits live once they were dropped for a pack that holds them exactly (the fused native
 * decoder's, with `Decoder.packedStorage`): they come back from it on demand.
 */
export interface PackedBitsStore {
  /** The bits, unpacked into a new array, row-major. */
  unpack(): Uint16Array;
}

/**
 * The storage of one set of values: the bits, or the pack that holds them instead. Copies made with
 * `share` hold the same cell (dropping the bits drops them for all); `assign` makes a new one.
 */
interface BitsCell {
  bits: Uint16Array | null;
  packed: PackedBitsStore | null;
}

/** The cell a `share` copy takes over (set only while its constructor runs). */
let sharedCell: BitsCell | undefined;
const NO_BITS = new Uint16Array(0);

/**
 * A weight stored as 16-bit bit patterns (core's `HalfPrecisionTensor`). The bits are never written in
 * place: {@link assign} swaps in a new array, so copies made with {@link share} (a frozen reference model)
 * may hold the same array safely. Once a pack holds them exactly, {@link releaseBits} drops the array and
 * {@link bits} unpacks them on demand.
 */
export class HalfPrecisionWeight implements HalfPrecisionTensor {
  /** What the bits encode. */
  readonly dtype: HalfPrecisionDtype;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** See core's `HalfPrecisionTensor.trainable`: a trainable weight gets a float32 master when training starts. */
  trainable: boolean;
  private cell: BitsCell;

  /**
   * @param bits the bit patterns, row-major (kept, not copied).
   * @param shape dimensions; their product must be `bits.length`.
   * @param dtype what the bits encode.
   * @param trainable see {@link HalfPrecisionWeight.trainable}. Default false.
   * @throws ConfigError when the shape does not match the bits.
   */
  constructor(bits: Uint16Array, shape: readonly number[], dtype: HalfPrecisionDtype, trainable = false) {
    const size = shape.reduce((a, d) => a * d, 1);
    const shared = sharedCell;
    if (shared === undefined && size !== bits.length) {
      throw new ConfigError(`shape [${shape.join(", ")}] does not match ${bits.length} stored values`, {
        field: "shape",
      });
    }
    this.cell = shared ?? { bits, packed: null };
    this.shape = [...shape];
    this.dtype = dtype;
    this.trainable = trainable;
  }

  /** `values` rounded to `dtype` (round to nearest even). */
  static fromFloat32(
    values: Float32Array,
    shape: readonly number[],
    dtype: HalfPrecisionDtype,
    trainable = false,
  ): HalfPrecisionWeight {
    return new HalfPrecisionWeight(roundToHalfPrecision(values, dtype), shape, dtype, trainable);
  }

  /**
   * The bit patterns, row-major: the stored array, or, after {@link releaseBits}, a new array unpacked
   * from the pack (exact; not kept: the pack stays the storage).
   */
  get bits(): Uint16Array {
    return this.cell.bits ?? this.cell.packed!.unpack();
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, d) => a * d, 1);
  }

  /**
   * Identifies the current values: the same object until {@link assign} replaces them (shared by
   * {@link share} copies). Caches of derived forms (packs) key on it.
   */
  get storageKey(): object {
    return this.cell;
  }

  /** Whether the bits were dropped for a pack ({@link releaseBits}). */
  get bitsReleased(): boolean {
    return this.cell.bits === null;
  }

  /**
   * Drop the bits array: from now on `store` (a pack that holds these values exactly) is their storage,
   * for this weight and every {@link share} copy. Called again, the new store replaces the old one.
   * @throws ConfigError for a float16 weight (its packs do not give fp16 bits back).
   */
  releaseBits(store: PackedBitsStore): void {
    if (this.dtype !== "bfloat16") {
      throw new ConfigError("only bfloat16 bits can be dropped for a pack", { field: "dtype" });
    }
    this.cell.bits = null;
    this.cell.packed = store;
  }

  /** The values upcast to float32 (exact), into `out` when given. */
  float32(out?: Float32Array): Float32Array {
    return upcastInto(this.dtype, this.bits, out);
  }

  /** Replace the values by `values` rounded to {@link dtype}, in a new bits array (copies keep theirs). */
  assign(values: Float32Array): void {
    if (values.length !== this.size) {
      throw new ConfigError(`expected ${this.size} values, got ${values.length}`, { field: "values" });
    }
    this.cell = { bits: roundToHalfPrecision(values, this.dtype), packed: null };
  }

  /** Another weight over the same storage (no copy), with its own `trainable` flag. */
  share(trainable: boolean): HalfPrecisionWeight {
    sharedCell = this.cell;
    try {
      return new HalfPrecisionWeight(NO_BITS, this.shape, this.dtype, trainable);
    } finally {
      sharedCell = undefined;
    }
  }

  /** Rows `ids` of a 2-D weight, upcast: `[ids.length, columns]`, row-major, in a new array. */
  rows(ids: ArrayLike<number>): Float32Array {
    const [count, width] = this.shape as [number, number];
    const bits = this.bits;
    const out = new Float32Array(ids.length * width);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= count) {
        throw new ConfigError(`token id ${id} is outside the vocabulary [0, ${count})`, { field: "inputIds" });
      }
      upcastInto(this.dtype, bits.subarray(id * width, (id + 1) * width), out.subarray(i * width));
    }
    return out;
  }

  /** A float32 tensor of the weight over the shared per-size scratch buffer: dispose it before the next upcast. */
  upcastScratch(): tf.Tensor {
    const n = this.size;
    let buf = scratch.get(n);
    if (buf === undefined) {
      buf = new Float32Array(n);
      scratch.set(n, buf);
    }
    this.float32(buf);
    return tf.tensor(buf, [...this.shape], "float32");
  }
}

/**
 * A projection `y = x Wᵀ + b` whose (frozen) weight `[out, in]` is a {@link HalfPrecisionWeight}, upcast
 * per call. The gradient with respect to the input is exact for the stored weight; the upcast weight is
 * not kept for the backward pass but upcast again there, so a training step holds one layer's float32
 * weight at a time. The weight gets no gradient (it is not a variable).
 */
export class HalfPrecisionLinear implements LinearModule {
  /** HF module name. */
  readonly name: string;
  /** The stored weight `[outFeatures, inFeatures]`. */
  readonly weight: HalfPrecisionWeight;
  /** Bias `[out]` (kept in float32: small), or null. */
  readonly bias: tf.Variable | null;
  /**
   * When true, {@link weight} belongs to another module (a tied `lm_head` over the 16-bit embedding) and is
   * not this module's own.
   */
  readonly sharedWeight: boolean;
  private readonly matmul: (x: tf.Tensor2D) => tf.Tensor2D;

  /**
   * @param name HF module name; @param weight the stored weight `[out, in]`.
   * @param bias optional float32 bias variable (reported by {@link parameters}).
   * @param sharedWeight see {@link HalfPrecisionLinear.sharedWeight}.
   * @throws ConfigError when the weight is not 2-D.
   */
  constructor(name: string, weight: HalfPrecisionWeight, bias: tf.Variable | null = null, sharedWeight = false) {
    if (weight.shape.length !== 2) {
      throw new ConfigError(`expected a 2-D weight, got [${weight.shape}]`, { tensor: name });
    }
    this.name = name;
    this.weight = weight;
    this.bias = bias;
    this.sharedWeight = sharedWeight;
    this.matmul = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const x = args[0] as tf.Tensor2D;
      const w = this.weight.upcastScratch() as tf.Tensor2D;
      return {
        value: tf.matMul(x, w, false, true),
        // dy·W with W upcast again: the float32 copy lives only during this layer's backward.
        gradFunc: (dy: tf.Tensor) =>
          tf.tidy(() => tf.matMul(dy as tf.Tensor2D, this.weight.upcastScratch() as tf.Tensor2D)),
      };
    }) as (x: tf.Tensor2D) => tf.Tensor2D;
  }

  /** A projection over float32 `weight` values `[out, in]` rounded to `dtype`. */
  static fromFloat32(
    name: string,
    weight: { shape: readonly number[]; data: Float32Array },
    dtype: HalfPrecisionDtype,
    bias: tf.Variable | null = null,
  ): HalfPrecisionLinear {
    if (weight.shape.length !== 2) {
      throw new ConfigError(`expected a 2-D weight, got [${weight.shape}]`, { tensor: name });
    }
    return new HalfPrecisionLinear(name, HalfPrecisionWeight.fromFloat32(weight.data, weight.shape, dtype), bias);
  }

  /**
   * Store a {@link Linear}'s weight in 16 bits. The Linear's weight variable is disposed when
   * `releaseFloat32` (default true): that is where the memory saving comes from.
   */
  static fromLinear(linear: Linear, dtype: HalfPrecisionDtype, releaseFloat32 = true): HalfPrecisionLinear {
    const half = HalfPrecisionLinear.fromFloat32(
      linear.name,
      { shape: linear.weight.shape, data: linear.weight.dataSync() as Float32Array },
      dtype,
      linear.bias,
    );
    if (releaseFloat32) linear.weight.dispose();
    return half;
  }

  /** Storage format of the weight. */
  get dtype(): HalfPrecisionDtype {
    return this.weight.dtype;
  }

  /** The weight's 16-bit patterns, row-major `[outFeatures, inFeatures]`. */
  get bits(): Uint16Array {
    return this.weight.bits;
  }

  /** Size of the last input axis. */
  get inFeatures(): number {
    return this.weight.shape[1]!;
  }

  /** Size of the last output axis. */
  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  /** Bytes of the stored weight (2 per element). */
  get storedBytes(): number {
    return 2 * this.weight.size;
  }

  /** The stored weight upcast to float32 (exact: every 16-bit value is a float32 value). */
  weightFloat32(): Float32Array {
    return this.weight.float32();
  }

  /** A fresh float32 tensor of the weight; the caller disposes it. */
  upcast(): tf.Tensor2D {
    return tf.tensor2d(this.weightFloat32(), [this.outFeatures, this.inFeatures], "float32");
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
    // A tied head's bits are the embedding's, which the decoder also gathers rows from: not dropped.
    return dense16Description(this.weight, this.bias, !this.sharedWeight);
  }

  /** Only `${name}.bias` when present: the 16-bit weight is not a variable. */
  parameters(): Map<string, tf.Variable> {
    return this.bias ? new Map([[`${this.name}.bias`, this.bias]]) : new Map();
  }
}

/**
 * The `dense16` description of a 2-D 16-bit `weight` (bits read lazily: after {@link
 * HalfPrecisionWeight.releaseBits} each read unpacks). `releasable`: whether a pack may become the storage.
 */
export function dense16Description(
  weight: HalfPrecisionWeight,
  bias: tf.Variable | null,
  releasable: boolean,
): Dense16LinearDescription {
  const canRelease = releasable && weight.dtype === "bfloat16";
  return {
    kind: "dense16",
    get bits() {
      return weight.bits;
    },
    key: weight.storageKey,
    dtype: weight.dtype,
    shape: [weight.shape[0]!, weight.shape[1]!],
    bias,
    ...(canRelease ? { release: (store: PackedBitsStore) => weight.releaseBits(store) } : {}),
  };
}

/** A weight the decoder runs: a float32 variable or 16-bit storage. */
export type DecoderWeight = tf.Variable | HalfPrecisionWeight;

/** The plain projection the decoder builds over `weight` (float32 or 16-bit). */
export function plainLinear(
  name: string,
  weight: DecoderWeight,
  bias: tf.Variable | null = null,
  sharedWeight = false,
): Linear | HalfPrecisionLinear {
  return weight instanceof HalfPrecisionWeight
    ? new HalfPrecisionLinear(name, weight, bias, sharedWeight)
    : new Linear(name, weight, bias, sharedWeight);
}

/** `module` when it is a plain projection the decoder built (float32 or 16-bit), else undefined. */
export function plainProjection(module: LinearModule): Linear | HalfPrecisionLinear | undefined {
  return module instanceof Linear || module instanceof HalfPrecisionLinear ? module : undefined;
}

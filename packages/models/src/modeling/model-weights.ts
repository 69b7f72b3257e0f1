/**
 * A model's own weights by HF name, each either a float32 `tf.Variable` or 16-bit storage, with the dtype
 * the model was loaded in: what the model classes build their decoder from, copy for a reference model,
 * and save.
 *
 * In a model of dtype `"bfloat16"` or `"float16"`, every 2-D weight but the classification head (the
 * projections, the embedding, an untied `lm_head`) is stored in 16 bits ({@link HalfPrecisionWeight}); the
 * norms, biases and `score` are float32 variables holding values of that dtype. A 16-bit weight marked
 * trainable gets its float32 master (a variable that replaces it) only when training starts
 * ({@link ModelWeights.materializeTrainable}), so frozen weights (a LoRA base, a reference copy) never
 * exist in float32.
 * @module
 */
import { ConfigError, tf } from "@prefkit/core";
import { f16ToFloat32, float32ToF16 } from "../io/halfPrecision.js";
import {
  HALF_PRECISION_DTYPE,
  type HalfPrecisionData,
  type SafetensorsDtype,
  type TensorInput,
  type TensorRecord,
} from "../io/safetensors/index.js";
import {
  type DecoderWeight,
  type HalfPrecisionDtype,
  HalfPrecisionWeight,
  roundToHalfPrecision,
} from "./decoder/half-precision.js";

/** The dtype a model's weights are loaded and kept in (transformers' `torch_dtype`). */
export type ModelDtype = "float32" | HalfPrecisionDtype;

/** The dtypes `savePretrained` can write. */
export type SaveDtype = Extract<SafetensorsDtype, "F32" | "BF16" | "F16">;

/** `config.json`'s `torch_dtype` for each saved dtype. */
export const TORCH_DTYPE_OF: Readonly<Record<SaveDtype, ModelDtype>> = {
  F32: "float32",
  BF16: "bfloat16",
  F16: "float16",
};

const CLASSIFIER_HEAD = "score.weight";

/** Whether a model of a 16-bit dtype keeps weight `name` in 16 bits: every 2-D weight but the classifier head. */
export function storedInHalfPrecision(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && name !== CLASSIFIER_HEAD;
}

/** A tensor to build a weight from: float32 values, or (read in 16 bits) its bit patterns as well. */
export type WeightSource = Pick<TensorRecord, "shape" | "data"> & { readonly halfPrecision?: HalfPrecisionData };

function newVariable(values: Float32Array, shape: readonly number[], trainable: boolean): tf.Variable {
  const initial = tf.tensor(values, [...shape], "float32");
  const variable = tf.variable(initial, trainable);
  initial.dispose();
  return variable;
}

/** True when every value of `data` is exactly a value of `dtype` (so writing it in `dtype` loses nothing). */
function representableIn(data: Float32Array, dtype: HalfPrecisionDtype): boolean {
  if (dtype === "bfloat16") {
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0xffff) !== 0) return false;
    return true;
  }
  const back = f16ToFloat32(float32ToF16(data));
  for (let i = 0; i < data.length; i++) if (!Object.is(back[i], data[i])) return false;
  return true;
}

/** The model's weights: see the module notes. */
export class ModelWeights {
  /** The dtype the model was loaded in (`"float32"` for a model built from float32 values). */
  readonly dtype: ModelDtype;
  private readonly entries: Map<string, DecoderWeight>;

  private constructor(dtype: ModelDtype, entries: Map<string, DecoderWeight>) {
    this.dtype = dtype;
    this.entries = entries;
  }

  /**
   * Weights from tensors (checkpoint records or float32 values), all trainable. In a 16-bit `dtype`, the
   * {@link storedInHalfPrecision} ones are kept in 16 bits (the record's own bits when it was read in that
   * format, else its values rounded), the others become variables of the rounded values.
   */
  static fromTensors(tensors: Iterable<readonly [string, WeightSource]>, dtype: ModelDtype): ModelWeights {
    const weights = new ModelWeights(dtype, new Map());
    for (const [name, t] of tensors) weights.add(name, t);
    return weights;
  }

  /** Add (or replace) the trainable weight `name` from a tensor, stored as {@link fromTensors} stores it. */
  add(name: string, t: WeightSource): void {
    const old = this.entries.get(name);
    if (old instanceof tf.Variable) old.dispose();
    if (this.dtype === "float32") {
      this.entries.set(name, newVariable(t.data, t.shape, true));
      return;
    }
    const bits =
      t.halfPrecision?.dtype === this.dtype ? t.halfPrecision.bits : roundToHalfPrecision(t.data, this.dtype);
    const half = new HalfPrecisionWeight(bits, t.shape, this.dtype, true);
    this.entries.set(name, storedInHalfPrecision(name, t.shape) ? half : newVariable(half.float32(), t.shape, true));
  }

  /** Every weight by HF name, as the decoder runs it. */
  all(): ReadonlyMap<string, DecoderWeight> {
    return this.entries;
  }

  /** The weights that are float32 variables. */
  variables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, w] of this.entries) if (!(w instanceof HalfPrecisionWeight)) out.set(name, w);
    return out;
  }

  /** The weights currently stored in 16 bits. */
  halfPrecision(): Map<string, HalfPrecisionWeight> {
    const out = new Map<string, HalfPrecisionWeight>();
    for (const [name, w] of this.entries) if (w instanceof HalfPrecisionWeight) out.set(name, w);
    return out;
  }

  /** Shapes by name, for validation against a config. */
  shapes(): Map<string, { shape: number[] }> {
    const out = new Map<string, { shape: number[] }>();
    for (const [name, w] of this.entries) out.set(name, { shape: [...w.shape] });
    return out;
  }

  /**
   * Give every trainable 16-bit weight its float32 master: a trainable variable of the same (exact) values
   * that replaces it here and, through `install`, in the modules that run it. The 16-bit bits are dropped
   * by this model (a frozen copy sharing them keeps them).
   * @param install puts the new variable in place of the 16-bit weight in the decoder (may refuse: then
   *   this weight stays in 16 bits and the error propagates).
   */
  materializeTrainable(install: (name: string, master: tf.Variable) => void): void {
    for (const [name, w] of this.entries) {
      if (!(w instanceof HalfPrecisionWeight) || !w.trainable) continue;
      const master = newVariable(w.float32(), w.shape, true);
      try {
        install(name, master);
      } catch (e) {
        master.dispose();
        throw e;
      }
      this.entries.set(name, master);
    }
  }

  /**
   * An independent copy of the weights `names` (default: all). 16-bit weights share their bits with this
   * model (never written in place, so this is safe and costs nothing). Variables are copied; in a frozen
   * copy (`trainable: false`) of a 16-bit model, the variables that a freshly loaded model would keep in
   * 16 bits (float32 masters of trained weights) are stored in 16 bits again, rounded: the reference copy
   * of a 16-bit policy is 16-bit, exactly equal to it while its masters are untouched.
   */
  copy(options: { trainable: boolean; names?: Iterable<string> }): ModelWeights {
    const entries = new Map<string, DecoderWeight>();
    for (const name of options.names ?? this.entries.keys()) {
      const w = this.entries.get(name);
      if (w === undefined) throw new ConfigError("the model lacks this tensor", { tensor: name });
      if (w instanceof HalfPrecisionWeight) {
        entries.set(name, w.share(options.trainable));
        continue;
      }
      const values = w.dataSync() as Float32Array;
      if (!options.trainable && this.dtype !== "float32" && storedInHalfPrecision(name, w.shape)) {
        entries.set(name, HalfPrecisionWeight.fromFloat32(values, w.shape, this.dtype));
      } else {
        // A copy of the values: on cpu `dataSync()` is the variable's own array, which AdamW may update in place.
        entries.set(name, newVariable(values.slice(), w.shape, options.trainable));
      }
    }
    return new ModelWeights(this.dtype, entries);
  }

  /**
   * The tensors `names` as `savePretrained` writes them, and the `torch_dtype` that goes with them.
   *
   * With `dtype` given, every tensor is written in it (16-bit weights already in it byte for byte). Without:
   * a float32 model writes F32 (as it always did); a 16-bit model writes its 16-bit weights as they are
   * (byte-identical to the loaded file for untouched ones) and each float32 variable in the model's dtype
   * when its values are exactly of that dtype (untouched norms, untouched masters), else in F32, so that
   * saving never rounds away what training learned. `torch_dtype` is the model's dtype.
   */
  tensorsForSave(
    names: Iterable<string>,
    dtype?: SaveDtype,
  ): { tensors: Map<string, TensorInput>; torchDtype: ModelDtype } {
    const tensors = new Map<string, TensorInput>();
    const own = this.dtype === "float32" ? undefined : HALF_PRECISION_DTYPE[this.dtype];
    for (const name of names) {
      const w = this.entries.get(name);
      if (w === undefined) throw new ConfigError("the model lacks this tensor", { tensor: name });
      const shape = [...w.shape];
      if (w instanceof HalfPrecisionWeight) {
        const stored = HALF_PRECISION_DTYPE[w.dtype];
        const target = dtype ?? stored;
        tensors.set(name, { shape, data: target === stored ? w.bits : w.float32(), dtype: target });
        continue;
      }
      const data = w.dataSync() as Float32Array;
      let target: SaveDtype = dtype ?? "F32";
      if (dtype === undefined && own !== undefined && representableIn(data, this.dtype as HalfPrecisionDtype)) {
        target = own;
      }
      tensors.set(name, { shape, data, dtype: target });
    }
    return { tensors, torchDtype: dtype !== undefined ? TORCH_DTYPE_OF[dtype] : this.dtype };
  }

  /** Dispose every variable (16-bit storage is plain memory, freed with the model). */
  dispose(): void {
    for (const w of this.entries.values()) if (w instanceof tf.Variable) w.dispose();
  }
}

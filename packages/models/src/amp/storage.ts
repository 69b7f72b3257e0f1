/**
 * 16-bit storage of frozen weights: a frozen projection's float32 weight is replaced by its bf16 or fp16
 * bit patterns in a `Uint16Array` (outside the tfjs backend). The tfjs ops upcast it to a float32 tensor each
 * time the layer runs; the fused native decoder packs it once for its GEMM and keeps the pack. Compute stays
 * float32 (unless AMP's `compute: "bfloat16"`); only storage shrinks. The representation is modeling's
 * `HalfPrecisionLinear`, the same a model loaded with `dtype: "bfloat16"` uses for its frozen weights.
 * @module
 */
import { ConfigError } from "@prefkit/core";
import { type HalfPrecisionDtype, HalfPrecisionLinear } from "../modeling/decoder/half-precision.js";
import { Linear, type LinearModule } from "../modeling/decoder/linear.js";
import { LoraLinear } from "../lora/layer.js";

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

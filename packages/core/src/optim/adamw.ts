import { cpuFloat32Values, markWrittenInPlace } from "../engine/kernels/cpu-data.js";
import { activeNativeAddon } from "../engine/kernels/native-blas.js";
import { tf } from "../engine/tf.js";
import { CheckpointError } from "../errors/index.js";

/** Hyper-parameters of {@link AdamW}; defaults are `torch.optim.AdamW`'s except `weightDecay` (HF's 0). */
export interface AdamWOptions {
  /** Learning rate. Default 1e-3; the trainer overwrites it every step from the schedule. */
  learningRate?: number;
  /** β₁. Default 0.9. */
  beta1?: number;
  /** β₂. Default 0.999. */
  beta2?: number;
  /** ε, added to √v̂. Default 1e-8. */
  epsilon?: number;
  /** Decoupled weight decay λ: each step multiplies the weight by (1 − lr·λ). Default 0. */
  weightDecay?: number;
}

/** A tensor with a name, as tfjs optimizers exchange state. */
export type NamedTensor = Parameters<tf.Optimizer["setWeights"]>[0][number];

interface Slot {
  m: tf.Variable;
  v: tf.Variable;
  step: number;
}

/**
 * AdamW (Loshchilov & Hutter) exactly as `torch.optim.AdamW` (non-fused, non-amsgrad):
 *
 * ```
 * p ← p·(1 − lr·λ)
 * m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
 * p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)
 * ```
 *
 * with a per-variable step count `t`, so a variable that gets no gradient in a step keeps
 * its moments and step. Slots are created lazily, only for variables that receive a
 * gradient, so frozen weights cost no optimizer memory. It is a tfjs `Optimizer`
 * (`minimize`, `applyGradients`, `getWeights`/`setWeights` work as usual); its weights are
 * named `<variable>/m`, `<variable>/v` and `<variable>/step`.
 *
 * With the `native-blas` plugin active on the `cpu` backend, a float32 variable whose data (and
 * whose m and v) no other tensor shares is updated in place by the native addon: no tensor is
 * allocated per step, which on a 135M-parameter model saves seconds of allocation per step.
 * Same formula, same order, float32. The variable keeps its tensor id, so a Float32Array read
 * earlier from it with `dataSync()` on `cpu` (the backend's own array) sees the new values;
 * copy (`.slice()`) what must stay a snapshot; each such update is counted (`inPlaceWriteCount`), so that
 * copies derived from the array (the fused decoder's packed weights) know when they are stale. Any other
 * variable takes the tfjs ops.
 */
export class AdamW extends tf.Optimizer {
  /** Serialization name. */
  static get className(): string {
    return "AdamW";
  }

  /** Current learning rate (a schedule sets it before each step). */
  learningRate: number;
  /** β₁. */
  readonly beta1: number;
  /** β₂. */
  readonly beta2: number;
  /** ε. */
  readonly epsilon: number;
  /** Decoupled weight decay λ. */
  readonly weightDecay: number;
  private readonly slots = new Map<string, Slot>();

  /** Build an optimizer; see {@link AdamWOptions} for defaults. */
  constructor(options: AdamWOptions = {}) {
    super();
    this.learningRate = options.learningRate ?? 1e-3;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
  }

  /** Names of the variables that have optimizer state. */
  slotNames(): string[] {
    return [...this.slots.keys()];
  }

  /** Apply one update. Keys are tfjs variable names; a `null` gradient skips that variable. */
  applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const entries: Array<[string, tf.Tensor | null | undefined]> = Array.isArray(variableGradients)
      ? variableGradients.map((nt) => [nt.name, nt.tensor])
      : Object.entries(variableGradients);
    const lr = this.learningRate;
    const nativeAdamW = activeNativeAddon()?.adamw;
    for (const [name, grad] of entries) {
      if (grad == null) continue;
      const variable = tf.engine().registeredVariables[name];
      if (!variable) throw new Error(`AdamW: no registered variable named "${name}"`);
      let slot = this.slots.get(name);
      if (!slot) {
        slot = tf.tidy(() => ({
          m: tf.variable(tf.zerosLike(variable), false),
          v: tf.variable(tf.zerosLike(variable), false),
          step: 0,
        }));
        this.slots.set(name, slot);
      }
      slot.step += 1;
      const bc1 = 1 - this.beta1 ** slot.step;
      const bc2Sqrt = Math.sqrt(1 - this.beta2 ** slot.step);
      const stepSize = lr / bc1;
      const s = slot;
      if (nativeAdamW !== undefined) {
        const param = cpuFloat32Values(variable, true);
        const g = cpuFloat32Values(grad);
        const m = cpuFloat32Values(s.m, true);
        const v = cpuFloat32Values(s.v, true);
        const sameShape = tf.util.arraysEqual(grad.shape, variable.shape);
        if (sameShape && param !== undefined && g !== undefined && m !== undefined && v !== undefined) {
          nativeAdamW(param, g, m, v, lr, this.beta1, this.beta2, this.epsilon, this.weightDecay, s.step, 1);
          markWrittenInPlace(param);
          continue;
        }
      }
      // Each temporary is freed as soon as it has been used rather than at the end of the tidy: for a
      // vocabulary-sized weight (a tied [49152, 576] embedding is 113 MB) that keeps ~3 temporaries alive
      // instead of ~13, which decides whether a 30-layer model fits the 4 GiB wasm heap. Same ops, same
      // order, so the numbers are unchanged.
      tf.tidy(() => {
        const m1 = tf.mul(s.m, this.beta1);
        const g1 = tf.mul(grad, 1 - this.beta1);
        const m = freeAfter(tf.add(m1, g1), m1, g1);
        const g2 = tf.square(grad);
        const v2 = freeAfter(tf.mul(g2, 1 - this.beta2), g2);
        const v1 = tf.mul(s.v, this.beta2);
        const v = freeAfter(tf.add(v1, v2), v1, v2);
        const root = tf.sqrt(v);
        const scaled = freeAfter(tf.div(root, bc2Sqrt), root);
        const denom = freeAfter(tf.add(scaled, this.epsilon), scaled);
        const ratio = freeAfter(tf.div(m, denom), denom);
        s.m.assign(m);
        s.v.assign(v);
        m.dispose();
        v.dispose();
        const update = freeAfter(tf.mul(ratio, stepSize), ratio);
        const decayed = this.weightDecay !== 0 ? tf.mul(variable, 1 - lr * this.weightDecay) : variable;
        const next = freeAfter(tf.sub(decayed, update), update, ...(decayed === variable ? [] : [decayed]));
        variable.assign(next);
        next.dispose();
      });
    }
    this.incrementIterations();
  }

  /** Free every slot. */
  override dispose(): void {
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.slots.clear();
  }

  /** The state as named tensors (`iter`, then `<var>/m`, `<var>/v`, `<var>/step` per variable). The tensors are copies owned by the caller, who must dispose them. */
  override async getWeights(): Promise<NamedTensor[]> {
    const out: NamedTensor[] = [await this.saveIterations()];
    for (const [name, s] of this.slots) {
      out.push({ name: `${name}/m`, tensor: tf.clone(s.m) });
      out.push({ name: `${name}/v`, tensor: tf.clone(s.v) });
      out.push({ name: `${name}/step`, tensor: tf.scalar(s.step, "int32") });
    }
    return out;
  }

  /** Replace the state with one from {@link AdamW.getWeights} (the tensors are copied). */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    this.dispose();
    const byVar = new Map<string, Partial<{ m: tf.Tensor; v: tf.Tensor; step: tf.Tensor }>>();
    for (const { name, tensor } of rest) {
      const cut = name.lastIndexOf("/");
      const kind = name.slice(cut + 1);
      if (cut < 0 || (kind !== "m" && kind !== "v" && kind !== "step")) {
        throw new CheckpointError(`unexpected optimizer weight name "${name}"`, { tensor: name });
      }
      const key = name.slice(0, cut);
      const entry = byVar.get(key) ?? {};
      entry[kind] = tensor;
      byVar.set(key, entry);
    }
    for (const [name, e] of byVar) {
      if (!e.m || !e.v || !e.step) throw new CheckpointError("incomplete optimizer state", { tensor: name });
      this.slots.set(name, {
        m: tf.variable(e.m, false),
        v: tf.variable(e.v, false),
        step: e.step.dataSync()[0]!,
      });
    }
  }

  /** Hyper-parameters, for tfjs serialization. */
  getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      weightDecay: this.weightDecay,
    };
  }
}

/** Dispose `used` (temporaries inside a tidy) and return `result`. */
function freeAfter<T extends tf.Tensor>(result: T, ...used: tf.Tensor[]): T {
  for (const t of used) t.dispose();
  return result;
}

/** AdamW with the hyper-parameters of a config (`learningRate`, `adamBeta1`, `adamBeta2`, `adamEpsilon`, `weightDecay`). */
export function adamWFromArgs(args: {
  learningRate: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  weightDecay: number;
}): AdamW {
  const { learningRate, adamBeta1: beta1, adamBeta2: beta2, adamEpsilon: epsilon, weightDecay } = args;
  return new AdamW({ learningRate, beta1, beta2, epsilon, weightDecay });
}

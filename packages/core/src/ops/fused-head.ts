/**
 * The LM head fused with selective log-probabilities: `log_softmax(hidden · Wᵀ)[label]` computed
 * over row chunks, so neither the forward nor the backward pass ever holds `[N, V]` logits, their
 * log-softmax or its gradient. Each chunk's logits are `[chunkSize, V]` and are recomputed in the
 * backward pass (one extra head matmul) instead of being kept between the passes.
 * @module
 */
import { tf } from "../engine/tf.js";
import { ConfigError } from "../errors/index.js";
import type { CausalLM, DirectTokenLogProbsLM, ForwardInputs, HiddenStatesLM, IntMatrix } from "../interfaces/index.js";
import { hasDirectTokenLogProbs, hasFusedHead } from "../interfaces/index.js";
import { reduceTokenLogProbs, type SequenceLogProbs, shiftedTargets } from "./logprobs.js";

/** Default rows per chunk of {@link lmHeadLogProbs}: 128 rows × 49152 vocabulary = 25 MB of logits. */
export const DEFAULT_LM_HEAD_CHUNK_SIZE = 128;

/** Options of {@link lmHeadLogProbs}. */
export interface LmHeadLogProbsOptions {
  /** Rows of `hidden` per chunk. Default {@link DEFAULT_LM_HEAD_CHUNK_SIZE}. */
  chunkSize?: number;
  /** Also return the per-row {@link LmHeadLogProbs.stats} (for logging; they carry no gradient). */
  withStats?: boolean;
  /**
   * Compute the gradient with respect to `weight`. Default: true unless `weight` is a
   * `tf.Variable` with `trainable = false` (a frozen embedding under LoRA), whose gradient nobody reads.
   */
  weightGradient?: boolean;
}

/** Result of {@link lmHeadLogProbs}; the caller owns both tensors. */
export interface LmHeadLogProbs {
  /** `log_softmax(hidden · Wᵀ)[n, labels[n]]`, `[N]`. Differentiable w.r.t. `hidden` and `weight`. */
  logProbs: tf.Tensor1D;
  /**
   * With `withStats`: `[N, 3]` per row, no gradient: column 0 the mean raw logit over the vocabulary
   * (TRL's `logits/*`), column 1 the entropy of the softmax, column 2 `1` when `argmax == label` else `0`
   * (TRL's `mean_token_accuracy`).
   */
  stats?: tf.Tensor2D;
}

/** Column of each per-row statistic in {@link LmHeadLogProbs.stats}. */
export const LM_HEAD_STATS = { meanLogit: 0, entropy: 1, correct: 2 } as const;

function labelTensor(labels: tf.Tensor | ArrayLike<number>, n: number, v: number): tf.Tensor1D {
  return tf.tidy(() => {
    const t =
      labels instanceof tf.Tensor
        ? tf.reshape(labels.dtype === "int32" ? labels : tf.cast(labels, "int32"), [-1])
        : tf.tensor1d(Array.from(labels), "int32");
    if (t.shape[0] !== n) {
      throw new ConfigError(`has ${t.shape[0]} entries but hidden has ${n} rows`, { field: "labels" });
    }
    return tf.clipByValue(t, 0, v - 1) as tf.Tensor1D;
  });
}

/**
 * Per-row log-probabilities of `labels` under the LM head `logits = hidden · weightᵀ`, without ever
 * materialising `[N, V]` logits.
 *
 * The forward pass loops over chunks of `chunkSize` rows: logits of the chunk, their logsumexp,
 * the label's logit (a flat gather), and with `withStats` the mean logit, entropy and argmax hit.
 * Only the logsumexp per row is kept for the backward pass, which recomputes each chunk's logits,
 * forms `g = (onehot(label) − softmax) · dy` and accumulates `dHidden_c = g · W` and `dW += gᵀ · h_c`.
 * Every chunk temporary is freed before the next chunk starts.
 *
 * ```ts
 * const { logProbs } = lmHeadLogProbs(hidden2d, embedding, labels, { chunkSize: 128 });
 * ```
 * @param hidden float32 `[N, H]` (e.g. the final-normed hidden states reshaped to rows).
 * @param weight float32 `[V, H]`: the LM head weight in HF layout, or the tied embedding.
 * @param labels `N` token ids (int32 tensor of any shape with N entries, or numbers). Ids outside
 *   `[0, V)` (TRL's −100) are clamped, so their values are meaningless: mask them afterwards.
 * @throws ConfigError when shapes do not fit or `chunkSize` is not a positive integer.
 */
export function lmHeadLogProbs(
  hidden: tf.Tensor2D,
  weight: tf.Tensor2D,
  labels: tf.Tensor | ArrayLike<number>,
  options: LmHeadLogProbsOptions = {},
): LmHeadLogProbs {
  const chunkSize = options.chunkSize ?? DEFAULT_LM_HEAD_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new ConfigError(`must be a positive integer, got ${chunkSize}`, { field: "chunkSize" });
  }
  if (hidden.rank !== 2 || weight.rank !== 2 || hidden.shape[1] !== weight.shape[1]) {
    throw new ConfigError(
      `hidden [${hidden.shape}] and weight [${weight.shape}] must be [N, H] and [V, H] with the same H`,
      { field: "weight" },
    );
  }
  const [n] = hidden.shape;
  const v = weight.shape[0];
  const withStats = options.withStats === true;
  const weightGradient =
    options.weightGradient ?? !(weight instanceof tf.Variable && !(weight as tf.Variable).trainable);
  const labelsFlat = labelTensor(labels, n, v);
  const width = withStats ? 4 : 1;
  const chunks: Array<[number, number]> = [];
  for (let start = 0; start < n; start += chunkSize) chunks.push([start, Math.min(chunkSize, n - start)]);

  const chunkLogits = (h: tf.Tensor2D, w: tf.Tensor2D, start: number, size: number) =>
    tf.matMul(tf.slice(h, [start, 0], [size, -1]), w, false, true);

  const forward = (h: tf.Tensor2D, w: tf.Tensor2D): { packed: tf.Tensor2D; lse: tf.Tensor2D } => {
    const parts: tf.Tensor[] = [];
    const lses: tf.Tensor[] = [];
    for (const [start, size] of chunks) {
      const [part, lse] = tf.tidy(() => {
        const logits = chunkLogits(h, w, start, size); // [c, V]
        const max = tf.max(logits, -1, true);
        const shifted = tf.sub(logits, max);
        const exp = tf.exp(shifted);
        const z = tf.sum(exp, -1, true);
        const logZ = tf.log(z);
        const lse = tf.add(logZ, max); // [c, 1]
        const label = tf.slice(labelsFlat, [start], [size]);
        const index = tf.add(tf.mul(tf.range(0, size, 1, "int32"), tf.scalar(v, "int32")), label);
        const picked = tf.reshape(tf.gather(tf.reshape(logits, [-1]), index), [size, 1]);
        const logProb = tf.sub(picked, lse);
        if (!withStats) return [logProb, lse];
        const meanLogit = tf.mean(logits, -1, true);
        // H = log Z − Σ p·(x − max), with p = exp / Z (as the unfused token metrics).
        const entropy = tf.sub(logZ, tf.div(tf.sum(tf.mul(exp, shifted), -1, true), z));
        const correct = tf.reshape(tf.cast(tf.equal(tf.argMax(logits, -1), label), "float32"), [size, 1]);
        return [tf.concat([logProb, meanLogit, entropy, correct], 1), lse];
      });
      parts.push(part);
      lses.push(lse);
    }
    const packed = (parts.length === 1 ? parts[0]! : tf.concat(parts, 0)) as tf.Tensor2D;
    const lse = (lses.length === 1 ? lses[0]! : tf.concat(lses, 0)) as tf.Tensor2D;
    if (parts.length > 1) tf.dispose([...parts, ...lses]);
    return { packed, lse };
  };

  const backward = (dy: tf.Tensor, h: tf.Tensor2D, w: tf.Tensor2D, lse: tf.Tensor2D, lab: tf.Tensor1D) => {
    const dyCol = tf.slice(dy, [0, 0], [n, 1]); // only the log-prob column carries gradient
    const dHidden: tf.Tensor[] = [];
    let dWeight: tf.Tensor | undefined;
    for (const [start, size] of chunks) {
      const [dh, dw] = tf.tidy(() => {
        const logits = chunkLogits(h, w, start, size);
        const probs = tf.exp(tf.sub(logits, tf.slice(lse, [start, 0], [size, 1])));
        // oneHot's dtype argument is ignored by the wasm kernel (int bits in a float tensor): cast instead.
        const oneHot = tf.cast(tf.oneHot(tf.slice(lab, [start], [size]), v), "float32");
        const g = tf.mul(tf.sub(oneHot, probs), tf.slice(dyCol, [start, 0], [size, 1])); // [c, V]
        const dh = tf.matMul(g, w); // [c, H]
        if (!weightGradient) return [dh, undefined];
        const dw = tf.matMul(g, tf.slice(h, [start, 0], [size, -1]), true, false); // [V, H]
        return [dh, dWeight === undefined ? dw : tf.add(dWeight, dw)];
      });
      dHidden.push(dh!);
      if (dw !== undefined) {
        dWeight?.dispose();
        dWeight = dw;
      }
    }
    dyCol.dispose();
    const dh = dHidden.length === 1 ? dHidden[0]! : tf.concat(dHidden, 0);
    if (dHidden.length > 1) tf.dispose(dHidden);
    return dWeight === undefined ? [dh] : [dh, dWeight];
  };

  const op = weightGradient
    ? tf.customGrad((...args: unknown[]) => {
        const [h, w, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
        const { packed, lse } = forward(h, w);
        save([h, w, lse, labelsFlat]);
        lse.dispose();
        return {
          value: packed,
          gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
            const [sh, sw, slse, slab] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
            return backward(dy, sh, sw, slse, slab);
          },
        };
      })
    : tf.customGrad((...args: unknown[]) => {
        const [h, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
        const { packed, lse } = forward(h, weight);
        save([h, lse, labelsFlat]);
        lse.dispose();
        return {
          value: packed,
          gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
            const [sh, slse, slab] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
            return backward(dy, sh, weight, slse, slab);
          },
        };
      });
  try {
    const packed = (weightGradient ? op(hidden, weight) : op(hidden)) as tf.Tensor2D;
    if (!withStats) {
      const logProbs = tf.reshape(packed, [n]) as tf.Tensor1D;
      packed.dispose();
      return { logProbs };
    }
    const logProbs = tf.tidy(() => tf.reshape(tf.slice(packed, [0, 0], [n, 1]), [n]) as tf.Tensor1D);
    const stats = tf.slice(packed, [0, 1], [n, width - 1]) as tf.Tensor2D;
    packed.dispose();
    return { logProbs, stats };
  } finally {
    labelsFlat.dispose();
  }
}

/** {@link SequenceLogProbs} plus the per-position statistics of {@link fusedSequenceLogProbs}. */
export interface FusedSequenceLogProbs extends SequenceLogProbs {
  /**
   * With `withStats`: `[B, T, 3]`, at position t the statistics of predicting token t + 1 (columns as
   * {@link LM_HEAD_STATS}; the last position's are for a dummy label 0). No gradient.
   */
  stats?: tf.Tensor3D;
}

/** Options of {@link fusedSequenceLogProbs}. */
export interface FusedSequenceLogProbsOptions extends LmHeadLogProbsOptions {
  /** Padding mask passed to the model's forward. Defaults to all ones. */
  attentionMask?: IntMatrix;
  /** Rotary positions passed to the model's forward. */
  positionIds?: IntMatrix;
}

/**
 * `sequenceLogProbs(model, inputIds, completionMask)` (same values, same causal shift, same result
 * shape) without `[B, T, V]` logits in the forward or backward pass, or `undefined` when `model` offers
 * no such path here (then nothing was computed: use `sequenceLogProbs`). Tried in order: the model's own
 * fused pass ({@link DirectTokenLogProbsLM}, e.g. the native decoder, which also serves 16-bit
 * heads), then `model.forwardHidden` with {@link lmHeadLogProbs} over a plain `lmHeadWeight()`.
 * Differentiable with respect to every variable of the model.
 */
export function tryFusedSequenceLogProbs(
  model: CausalLM,
  inputIds: IntMatrix,
  completionMask: IntMatrix,
  options: FusedSequenceLogProbsOptions = {},
): FusedSequenceLogProbs | undefined {
  if (typeof (model as Partial<HiddenStatesLM>).forwardHidden !== "function") return undefined;
  const direct = hasDirectTokenLogProbs(model);
  if (!direct && !hasFusedHead(model)) return undefined;
  return tf.tidy(() => {
    const forwardInputs: ForwardInputs = {
      inputIds,
      ...(options.attentionMask !== undefined ? { attentionMask: options.attentionMask } : {}),
      ...(options.positionIds !== undefined ? { positionIds: options.positionIds } : {}),
    };
    const { nextIds, nextMask } = shiftedTargets(inputIds, completionMask);
    const [b, t] = nextIds.shape;
    let result = direct
      ? model.directTokenLogProbs(forwardInputs, nextIds, { withStats: options.withStats === true })
      : undefined;
    if (result === undefined) {
      const fused = model as CausalLM & HiddenStatesLM;
      const weight = fused.lmHeadWeight();
      if (weight === undefined) return undefined;
      const hidden = fused.forwardHidden(forwardInputs);
      result = lmHeadLogProbs(tf.reshape(hidden, [b * t, hidden.shape[2]]), weight, nextIds, options);
    }
    const { logProbs, stats } = result;
    const reduced = reduceTokenLogProbs(tf.reshape(logProbs, [b, t]) as tf.Tensor2D, nextMask);
    return stats === undefined
      ? reduced
      : {
          ...reduced,
          stats: tf.reshape(stats, [b, t, stats.shape[1]]) as tf.Tensor3D,
        };
  });
}

/**
 * {@link tryFusedSequenceLogProbs}, for callers that know a fused path exists.
 * @param model a model with the {@link HiddenStatesLM} capability whose head is plain (`lmHeadWeight()`
 *   defined), or whose {@link DirectTokenLogProbsLM} pass applies to these inputs.
 * @throws ConfigError when neither applies: use {@link tryFusedSequenceLogProbs} or `sequenceLogProbs`.
 */
export function fusedSequenceLogProbs(
  model: CausalLM,
  inputIds: IntMatrix,
  completionMask: IntMatrix,
  options: FusedSequenceLogProbsOptions = {},
): FusedSequenceLogProbs {
  const result = tryFusedSequenceLogProbs(model, inputIds, completionMask, options);
  if (result === undefined) {
    throw new ConfigError(
      "the model has no fused log-prob path here (no forwardHidden, or no direct pass and no plain lm_head): use sequenceLogProbs",
      { field: "model" },
    );
  }
  return result;
}

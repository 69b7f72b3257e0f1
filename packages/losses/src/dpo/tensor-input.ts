import { tf } from "@prefkit/core";

/**
 * A loss input: a float tensor, or plain numbers that are converted to a float32 tensor.
 * Tensors passed in are never disposed by prefkit; they stay owned by the caller.
 */
export type TensorInput = tf.Tensor | number | number[] | number[][];

/**
 * Returns `x` as a float32 tensor. A tensor is returned as is (when already float32) so the gradient
 * tape sees the caller's tensor; numbers become a new tensor that the enclosing `tf.tidy` releases.
 */
export function asFloatTensor(x: TensorInput): tf.Tensor {
  if (x instanceof tf.Tensor) return x.dtype === "float32" ? x : tf.cast(x, "float32");
  return tf.tensor(x, undefined, "float32");
}

/** `log σ(x)` written as `−softplus(−x)`: `tf.logSigmoid`'s gradient throws on intermediate tensors. */
export function logSigmoid(x: tf.Tensor): tf.Tensor {
  return tf.neg(tf.softplus(tf.neg(x)));
}

/** −(1−ε)·log σ(x) − ε·log σ(−x): the logistic loss with label smoothing ε (conservative DPO, CPO). */
export function smoothedLogistic(x: tf.Tensor, eps: number): tf.Tensor {
  const clean = tf.mul(logSigmoid(x), -(1 - eps));
  return eps === 0 ? clean : tf.sub(clean, tf.mul(logSigmoid(tf.neg(x)), eps));
}

/**
 * `x` with its gradient cut, like torch's `x.detach()`: the value passes through, the gradient is 0.
 * TF.js has no `stopGradient` op; a zero-gradient `customGrad` keeps the value on the backend, where a
 * copy made from `dataSync()` would force a read back to JS.
 */
export const stopGradient: (x: tf.Tensor) => tf.Tensor = tf.customGrad((...args: unknown[]) => {
  const x = args[0] as tf.Tensor;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
}) as (x: tf.Tensor) => tf.Tensor;

/**
 * The rows of a 1-D tensor at `indices`, in that order, as a product with a constant one-hot matrix:
 * differentiable on every backend (no gather gradient) and empty for no indices.
 */
export function selectRows(x: tf.Tensor, indices: readonly number[]): tf.Tensor1D {
  const n = x.shape[0]!;
  if (indices.length === 0) return tf.zeros([0]);
  const selection = tf.tensor2d(
    indices.flatMap((i) => Array.from({ length: n }, (_, j) => (j === i ? 1 : 0))),
    [indices.length, n],
  );
  return tf.reshape(tf.matMul(selection, tf.reshape(x, [n, 1])), [indices.length]);
}

/**
 * Sorts a 1-D tensor ascending with a gradient, like `torch.sort(x)[0]`: ranks come from pairwise
 * `tf.step` comparisons (ties broken by position) and a one-hot permutation matrix gathers the values.
 * `tf.topk` + `tf.gather` cannot be used inside `tf.variableGrads` (the gather gradient rejects int32 indices).
 * O(n²), which is fine for a batch dimension.
 */
export function sortAscending(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const n = x.shape[0]!;
    const col = tf.reshape(x, [n, 1]);
    const diff = tf.sub(col, tf.reshape(x, [1, n])); // diff[i][j] = x_i - x_j
    const less = tf.step(diff); // x_j < x_i
    const equal = tf.sub(tf.sub(tf.onesLike(diff), less), tf.step(tf.neg(diff)));
    const earlier = tf.linalg.bandPart(tf.ones([n, n]), -1, 0).sub(tf.eye(n)); // j < i
    const rank = tf.sum(tf.add(less, tf.mul(equal, earlier)), 1);
    const permutation = tf.cast(tf.oneHot(tf.cast(rank, "int32"), n), "float32"); // [i, rank_i]
    return tf.reshape(tf.matMul(permutation, col, true, false), [n]);
  });
}

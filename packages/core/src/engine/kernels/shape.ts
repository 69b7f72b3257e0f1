/**
 * Shape arithmetic shared by prefkit's kernels (wasm and cpu alike).
 * @module
 */
import { tf } from "../tf.js";

/** The product of a shape's dimensions (1 for a scalar). */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Flat index, within an operand's batch dims `outer`, of the batch that broadcasts into output batch `i`. */
export function broadcastBatchIndex(outOuter: readonly number[], outer: readonly number[], i: number): number {
  let index = 0;
  let stride = 1;
  let rest = i;
  for (let d = outOuter.length - 1; d >= 0; d--) {
    const size = outOuter[d]!;
    const coord = rest % size;
    rest = Math.floor(rest / size);
    const j = d - (outOuter.length - outer.length);
    if (j < 0) continue;
    const dim = outer[j]!;
    if (dim !== 1) index += coord * stride;
    stride *= dim;
  }
  return index;
}

/** The dimensions of a batched `op(a)·op(b)`: `[...outOuter, m, n]` from `[...outerA, m, k]` and `[...outerB, k, n]`. */
export interface MatMulShape {
  m: number;
  k: number;
  n: number;
  outerA: number[];
  outerB: number[];
  outOuter: number[];
}

/**
 * The dimensions of `op(a)·op(b)`, or undefined when a replacement kernel must leave the product to the stock
 * one (non-float32 operands, rank < 2, mismatched inner dimensions: the stock kernel keeps its messages).
 * @throws tf's broadcast error when the batch dimensions do not broadcast.
 */
export function matMulShape(
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): MatMulShape | undefined {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (a.dtype !== "float32" || b.dtype !== "float32" || ra < 2 || rb < 2) return undefined;
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (k !== kb) return undefined;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outOuter = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  return { m, k, n, outerA, outerB, outOuter };
}

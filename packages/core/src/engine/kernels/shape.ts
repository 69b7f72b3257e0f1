/**
 * Shape arithmetic shared by prefkit's kernels (wasm and cpu alike).
 * @module
 */

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

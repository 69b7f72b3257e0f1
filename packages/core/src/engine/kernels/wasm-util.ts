/**
 * Helpers for kernels that run on the wasm backend's heap.
 * @module
 */
import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import type { tf } from "../tf.js";
import { sizeOf } from "./shape.js";

/** Element offset of a tensor's data in the wasm heap, viewed as 4-byte words. */
function wordOffset(backend: BackendWasm, info: tf.TensorInfo): number {
  return backend.dataIdMap.get(info.dataId)!.memoryOffset / 4;
}

/**
 * Copies `count` 4-byte elements from `src` (starting at element `srcStart`) into `dst`
 * (starting at `dstStart`). A memmove inside the heap: no JS-side buffer, no allocation.
 * Call only after every allocation of the kernel step, since heap growth detaches views.
 */
export function heapCopy(
  backend: BackendWasm,
  src: tf.TensorInfo,
  srcStart: number,
  dst: tf.TensorInfo,
  dstStart: number,
  count: number,
): void {
  const heap = new Float32Array(backend.typedArrayFromHeap(dst).buffer);
  const from = wordOffset(backend, src) + srcStart;
  heap.copyWithin(wordOffset(backend, dst) + dstStart, from, from + count);
}

/**
 * Allocates a fresh heap tensor of `shape` holding `count` elements of `src` from `srcStart`.
 * Fresh matters: XNNPACK caches packed weights by tensor id, so a reused id whose bytes
 * changed would give stale products.
 */
export function heapSlice(backend: BackendWasm, src: tf.TensorInfo, srcStart: number, shape: number[]): tf.TensorInfo {
  const out = backend.makeOutput(shape, src.dtype);
  heapCopy(backend, src, srcStart, out, 0, sizeOf(shape));
  return out;
}

/** A TensorInfo that shares `info`'s data under another shape of the same size. */
export function viewAs(info: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return { dataId: info.dataId, shape, dtype: info.dtype };
}

/** Releases a kernel-internal tensor. */
export function release(backend: BackendWasm, info: tf.TensorInfo): void {
  backend.disposeData(info.dataId);
}

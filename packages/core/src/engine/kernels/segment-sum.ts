/**
 * `UnsortedSegmentSum` as a scatter-add, the gradient of `gather` (an embedding lookup).
 *
 * wasm has no such kernel at all. cpu's loops over every segment id with a full-size
 * mask: O(segments × n), so an embedding gradient at a 49k vocabulary takes many seconds.
 * A scatter-add is O(n): about 30 ms for [256,576] → [49152,576].
 * @module
 */
import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import { defineKernelPlugin, type KernelPlugin } from "../plugin.js";
import { tf } from "../tf.js";
import { sizeOf } from "./shape.js";

type KernelArgs = Parameters<tf.KernelFunc>[0];
/** Typed arrays the segment-sum kernels accept for values and output. */
export type Numeric = Float32Array | Int32Array;

/**
 * out[ids[i], :] += x[i, :] for every row i of `x` viewed as [ids.length, inner].
 * Negative or out-of-range ids are dropped, as in TensorFlow.
 */
export function scatterAdd(x: Numeric, ids: Int32Array, numSegments: number, out: Numeric): void {
  out.fill(0);
  const inner = ids.length === 0 ? 0 : x.length / ids.length;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= numSegments) continue;
    const src = i * inner;
    const dst = id * inner;
    for (let j = 0; j < inner; j++) out[dst + j]! += x[src + j]!;
  }
}

interface SegmentSumCall {
  x: tf.TensorInfo;
  segmentIds: tf.TensorInfo;
  numSegments: number;
  outShape: number[];
}

function parse(args: KernelArgs): SegmentSumCall {
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = args.attrs as { numSegments: number };
  if (x.dtype !== "float32" && x.dtype !== "int32") {
    throw new Error(`UnsortedSegmentSum: x must be float32 or int32, got ${x.dtype}`);
  }
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  return { x, segmentIds, numSegments, outShape };
}

function numericArray(values: unknown, dtype: tf.DataType): Numeric {
  if (values instanceof Float32Array || values instanceof Int32Array) return values;
  return dtype === "int32"
    ? Int32Array.from(values as ArrayLike<number>)
    : Float32Array.from(values as ArrayLike<number>);
}

function segmentSumWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, segmentIds, numSegments, outShape } = parse(args);
  const out = backend.makeOutput(outShape, x.dtype);
  // Views only after the allocation above: heap growth detaches earlier ones.
  const ids = backend.typedArrayFromHeap(segmentIds);
  scatterAdd(
    backend.typedArrayFromHeap(x) as Numeric,
    numericArray(ids, "int32") as Int32Array,
    numSegments,
    backend.typedArrayFromHeap(out) as Numeric,
  );
  return out;
}

interface CpuBackendLike {
  readSync(dataId: tf.DataId): unknown;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

function segmentSumCpu(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as CpuBackendLike;
  const { x, segmentIds, numSegments, outShape } = parse(args);
  const out = x.dtype === "int32" ? new Int32Array(sizeOf(outShape)) : new Float32Array(sizeOf(outShape));
  const ids = numericArray(backend.readSync(segmentIds.dataId), "int32") as Int32Array;
  scatterAdd(numericArray(backend.readSync(x.dataId), x.dtype), ids, numSegments, out);
  return backend.makeTensorInfo(outShape, x.dtype, out);
}

/** prefkit's scatter-add `UnsortedSegmentSum` for the wasm backend (which lacks one). */
export function wasmSegmentSumPlugin(): KernelPlugin {
  return defineKernelPlugin({
    name: "prefkit-wasm-segment-sum",
    backend: "wasm",
    kernels: [{ kernelName: tf.UnsortedSegmentSum, build: () => ({ kernelFunc: segmentSumWasm }) }],
  });
}

/** prefkit's scatter-add `UnsortedSegmentSum` for the cpu backend (replacing an O(segments × n) one). */
export function cpuSegmentSumPlugin(): KernelPlugin {
  return defineKernelPlugin({
    name: "prefkit-cpu-segment-sum",
    backend: "cpu",
    kernels: [{ kernelName: tf.UnsortedSegmentSum, build: () => ({ kernelFunc: segmentSumCpu }) }],
  });
}

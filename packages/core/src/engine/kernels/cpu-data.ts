/**
 * Direct access to the `cpu` backend's storage: the Float32Array behind a tensor, for kernels and for
 * the native fast paths that read or update it in place (AdamW, gradient clipping and accumulation).
 * @module
 */
import { tf } from "../tf.js";

/** The slice of the cpu backend used here (`backend.data` and the kernel helpers). */
export interface CpuBackendLike {
  data: {
    has(dataId: tf.DataId): boolean;
    get(dataId: tf.DataId): { values?: unknown; refCount?: number };
  };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
  disposeIntermediateTensorInfo(info: tf.TensorInfo): void;
}

/** Inside a cpu kernel: the Float32Array of a float32 input, or undefined (the stock kernel then runs). */
export function kernelFloat32Values(backend: CpuBackendLike, t: tf.TensorInfo): Float32Array | undefined {
  const values = backend.data.get(t.dataId).values;
  return t.dtype === "float32" && values instanceof Float32Array ? values : undefined;
}

/**
 * The cpu backend's own Float32Array of a float32 tensor, or undefined when the backend is not `cpu`,
 * the tensor is not float32 or is disposed, or (`soleOwner`) another tensor shares its data (a
 * `tf.clone`, or a variable made from a live tensor): writing into it in place would change that
 * tensor too.
 */
export function cpuFloat32Values(t: tf.Tensor, soleOwner = false): Float32Array | undefined {
  if (tf.getBackend() !== "cpu" || t.dtype !== "float32" || t.isDisposed) return undefined;
  const data = (tf.backend() as unknown as CpuBackendLike).data;
  if (!data.has(t.dataId)) return undefined;
  const entry = data.get(t.dataId);
  if (!(entry.values instanceof Float32Array) || entry.values.length !== t.size) return undefined;
  if (soleOwner && entry.refCount !== 1) return undefined;
  return entry.values;
}

/** In-place writes per backend array (see {@link markWrittenInPlace}). */
const inPlaceWrites = new WeakMap<Float32Array, number>();

/**
 * Record that the cpu backend's own array of a tensor was overwritten in place (the native AdamW does: the
 * variable keeps its tensor and its array). Data derived from the array and kept across calls (the fused
 * decoder's packed copy of a weight) compares {@link inPlaceWriteCount} to know it is stale; a write through
 * `variable.assign` needs no mark, since it gives the variable a new array.
 */
export function markWrittenInPlace(values: Float32Array): void {
  inPlaceWrites.set(values, (inPlaceWrites.get(values) ?? 0) + 1);
}

/** How many times `values` was marked written in place (0 when never). */
export function inPlaceWriteCount(values: Float32Array): number {
  return inPlaceWrites.get(values) ?? 0;
}

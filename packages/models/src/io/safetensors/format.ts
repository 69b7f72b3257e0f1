/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON header,
 * then one byte buffer holding every tensor. Each header entry gives `dtype`, `shape` and
 * `data_offsets: [begin, end]` relative to the byte buffer; the optional `__metadata__` entry
 * is a string-to-string map. The parser enforces the rules of the reference implementation
 * (huggingface/safetensors): header at most 100 MB and starting with `{`, offsets that tile the
 * byte buffer exactly (no holes, no overlap, nothing left over), and byte lengths that match
 * the shapes. Any violation is a {@link CheckpointError} naming the file and, where there is one,
 * the tensor.
 *
 * This file holds the format's types and constants and the small checks the reader and writer share.
 * @module
 */
import { CheckpointError } from "@prefkit/core";

/**
 * A safetensors element type that prefkit reads and writes. Every type is converted to float32
 * on load; integer and bool types are written only from exactly representable values.
 */
export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Bytes per element of each supported dtype. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});

/** Largest header the parser accepts, as in the reference implementation (100 MB). */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000;

/** The 16-bit formats a tensor can be kept in, in memory, when read with `halfPrecision` (see `readSafetensors`). */
export type HalfPrecisionFormat = "bfloat16" | "float16";

/** A tensor's values kept as 16-bit bit patterns (see {@link TensorRecord.halfPrecision}). */
export interface HalfPrecisionData {
  /** What the bits encode. */
  dtype: HalfPrecisionFormat;
  /** The bit patterns, row-major. Owned by the record (not a view of the file). */
  bits: Uint16Array;
}

/** One tensor loaded from a safetensors file. */
export interface TensorRecord {
  /** The dtype the tensor had on disk. */
  dtype: SafetensorsDtype;
  /** Dimensions, outermost first (row-major). `[]` is a scalar. */
  shape: number[];
  /**
   * The values upcast to float32, row-major. Owned by the record (not a view of the file). For a record read
   * in 16 bits ({@link halfPrecision} set) this is computed from the bits on each access (exact).
   */
  data: Float32Array;
  /**
   * Set when the tensor was read in 16 bits (`readSafetensors(path, { halfPrecision })`): its values as
   * stored in memory, rounded to that format unless the file already held them in it.
   */
  halfPrecision?: HalfPrecisionData;
}

/** The contents of one safetensors file (or of a sharded checkpoint, merged). */
export interface SafetensorsFile {
  /** Tensors by name, in file order (by data offset). */
  tensors: Map<string, TensorRecord>;
  /** The `__metadata__` map, or `undefined` if the file has none. */
  metadata: Record<string, string> | undefined;
}

/** A tensor to write. `dtype` defaults to `"F32"`; `F16`/`BF16` round to nearest even. */
export interface TensorInput {
  /** Dimensions, outermost first. The product must equal `data.length`. */
  shape: readonly number[];
  /**
   * Row-major float32 values, or, with `dtype` `"BF16"` or `"F16"`, that dtype's bit patterns as a
   * `Uint16Array`, written unchanged (byte-identical).
   */
  data: Float32Array | Uint16Array;
  /** The dtype to store. Defaults to `"F32"`. */
  dtype?: SafetensorsDtype;
}

/** Tensors to write, by name: a plain object or a map (e.g. {@link SafetensorsFile.tensors}). */
export type TensorInputs = Readonly<Record<string, TensorInput>> | ReadonlyMap<string, TensorInput>;

/** Where a tensor lives in a safetensors file, as listed by its header. */
export interface TensorHeaderEntry {
  /** Element type on disk. */
  dtype: SafetensorsDtype;
  /** Dimensions, outermost first. */
  shape: number[];
  /** `[begin, end)` byte offsets relative to the byte buffer after the header. */
  dataOffsets: [number, number];
}

/** A parsed and validated safetensors header. */
export interface SafetensorsHeader {
  /** Tensor entries by name, in data-offset order. */
  tensors: Map<string, TensorHeaderEntry>;
  /** The `__metadata__` map, or `undefined` if absent. */
  metadata: Record<string, string> | undefined;
  /** Absolute file offset of the byte buffer (8 + header length). */
  dataStart: number;
}

/** True on little-endian hosts, where the file's bytes can be viewed as typed arrays directly. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** True for a dtype name prefkit supports. */
export function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && Object.hasOwn(SAFETENSORS_DTYPE_BYTES, value);
}

/** True for a JSON object (not null, not an array). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short rendering of an untrusted JSON value for an error message. */
export function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Throw the {@link CheckpointError} every format violation becomes, naming the file and the tensor. */
export function fail(file: string, message: string, tensor?: string): never {
  throw new CheckpointError(message, tensor === undefined ? { file } : { file, tensor });
}

/** Number of elements of a validated shape, or `undefined` if it exceeds 2^53. */
export function elementCount(shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return n;
}

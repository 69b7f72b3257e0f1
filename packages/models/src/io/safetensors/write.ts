/**
 * Writing safetensors as the reference writer lays them out: larger dtypes first, then by name,
 * `__metadata__` first, the header padded to 8 bytes; to bytes in memory or atomically to disk.
 * @module
 */
import { CheckpointError } from "@prefkit/core";
import { writeFileAtomically } from "../temporary.js";
import { encodeTensor } from "./dtypes.js";
import {
  elementCount,
  fail,
  isDtype,
  isPlainObject,
  preview,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsDtype,
  type TensorInput,
  type TensorInputs,
} from "./format.js";

// Order used by the reference serializer: larger dtypes first (keeps data aligned), then by name.
const DTYPE_WRITE_RANK: Readonly<Record<SafetensorsDtype, number>> = {
  I64: 0,
  F64: 1,
  F32: 2,
  I32: 3,
  BF16: 4,
  F16: 5,
  I16: 6,
  I8: 7,
  U8: 8,
  BOOL: 9,
};

interface PlannedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Uint16Array;
  begin: number;
  end: number;
  /** File name for error messages. */
  where: string;
}

interface WritePlan {
  header: Uint8Array;
  tensors: PlannedTensor[];
  totalBytes: number;
}

function planWrite(
  tensors: TensorInputs,
  metadata: Readonly<Record<string, string>> | undefined,
  where: string,
): WritePlan {
  const list: PlannedTensor[] = [];
  if (!(tensors instanceof Map) && (typeof tensors !== "object" || tensors === null)) {
    fail(where, "tensors must be a Map or a plain object of { shape, data, dtype? }");
  }
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of entries as Array<[string, TensorInput]>) {
    if (name === "__metadata__") fail(where, `"__metadata__" is reserved and cannot name a tensor`);
    if (!isPlainObject(t)) fail(where, "tensor is not an object of { shape, data, dtype? }", name);
    const dtype = t.dtype ?? "F32";
    if (!isDtype(dtype)) fail(where, `unknown dtype ${preview(String(dtype))}`, name);
    if (!Array.isArray(t.shape)) fail(where, "shape is not an array", name);
    if (t.data instanceof Uint16Array) {
      if (dtype !== "BF16" && dtype !== "F16") {
        fail(where, `Uint16Array data holds 16-bit patterns: dtype must be BF16 or F16, not ${dtype}`, name);
      }
    } else if (!(t.data instanceof Float32Array)) {
      fail(where, "data is not a Float32Array (or a Uint16Array of BF16/F16 bit patterns)", name);
    }
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) fail(where, `shape has an invalid dimension ${d}`, name);
    }
    if (elementCount(t.shape) !== t.data.length) {
      fail(where, `shape [${t.shape.join(", ")}] does not match data length ${t.data.length}`, name);
    }
    list.push({ name, dtype, shape: [...t.shape], data: t.data, begin: 0, end: 0, where });
  }
  list.sort(
    (a, b) => DTYPE_WRITE_RANK[a.dtype] - DTYPE_WRITE_RANK[b.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new CheckpointError(`metadata value for "${k}" is not a string`, { file: where, field: k });
      }
    }
    header["__metadata__"] = Object.fromEntries(Object.entries(metadata));
  }
  let offset = 0;
  for (const t of list) {
    t.begin = offset;
    offset += t.data.length * SAFETENSORS_DTYPE_BYTES[t.dtype];
    t.end = offset;
    Object.defineProperty(header, t.name, {
      value: { dtype: t.dtype, shape: t.shape, data_offsets: [t.begin, t.end] },
      enumerable: true,
      configurable: true,
      writable: true,
    });
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the byte buffer starts 8-byte aligned, as the reference writer does.
  const jsonBytes = new TextEncoder().encode(json);
  const padded = jsonBytes.length + ((8 - (jsonBytes.length % 8)) % 8);
  json += " ".repeat(padded - jsonBytes.length);
  const headerBytes = new Uint8Array(8 + padded);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(padded), true);
  headerBytes.set(new TextEncoder().encode(json), 8);
  return { header: headerBytes, tensors: list, totalBytes: 8 + padded + offset };
}

/**
 * Serialize tensors to safetensors bytes, laid out as the reference writer does (larger dtypes
 * first, then by name; `__metadata__` first, as safetensors ≥ 0.4 writes it; header padded to 8 bytes with spaces).
 * @param tensors - tensors by name; each `dtype` defaults to `"F32"`, `F16`/`BF16` round to nearest even.
 * @param metadata - optional `__metadata__` (HF's PyTorch checkpoints use `{ format: "pt" }`).
 * @returns the whole file.
 * @throws CheckpointError if a shape does not match its data, a name is `__metadata__`, or an
 *   integer/bool dtype is asked for values it cannot represent exactly.
 */
export function serializeSafetensors(tensors: TensorInputs, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const plan = planWrite(tensors, metadata, "<serializing>");
  const out = new Uint8Array(plan.totalBytes);
  out.set(plan.header, 0);
  for (const t of plan.tensors) out.set(encodeTensor(t.data, t.dtype, t.where, t.name), plan.header.length + t.begin);
  return out;
}

/**
 * Check tensors (names, dtypes, shapes against data lengths) and metadata as {@link writeSafetensors} would,
 * without writing anything: lets a caller refuse a bad save before it touches the disk.
 * @param tensors - tensors by name.
 * @param metadata - optional `__metadata__` map.
 * @param file - the file they are meant for, for messages.
 * @throws CheckpointError naming the file and tensor.
 */
export function checkTensorInputs(
  tensors: TensorInputs,
  metadata: Readonly<Record<string, string>> | undefined,
  file: string,
): void {
  planWrite(tensors, metadata, file);
}

/**
 * Write a safetensors file atomically: the tensors are streamed (one converted at a time) into
 * a temporary file next to `path`, flushed, and renamed over `path`. A crash leaves either the
 * old file or the new one, never a partial file.
 * @param path - destination `.safetensors` file.
 * @param tensors - tensors by name (see {@link serializeSafetensors}).
 * @param metadata - optional `__metadata__` map.
 * @throws CheckpointError on invalid tensors (see {@link serializeSafetensors}) or I/O failure.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorInputs,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const plan = planWrite(tensors, metadata, path);
  try {
    await writeFileAtomically(path, async (fh) => {
      await fh.write(plan.header);
      for (const t of plan.tensors) await fh.write(encodeTensor(t.data, t.dtype, t.where, t.name));
    });
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(
      `cannot write: ${e instanceof Error ? e.message : String(e)}`,
      { file: path },
      { cause: e },
    );
  }
}

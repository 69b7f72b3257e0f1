/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON header,
 * then one byte buffer holding every tensor. Each header entry gives `dtype`, `shape` and
 * `data_offsets: [begin, end]` relative to the byte buffer; the optional `__metadata__` entry
 * is a string-to-string map. The parser enforces the rules of the reference implementation
 * (huggingface/safetensors): header at most 100 MB and starting with `{`, offsets that tile the
 * byte buffer exactly (no holes, no overlap, nothing left over), and byte lengths that match
 * the shapes. Any violation is a {@link CheckpointError} naming the file and, where there is one,
 * the tensor.
 * @module
 */
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { CheckpointError } from "@prefkit/core";
import { temporarySibling } from "./temporary.js";
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from "./halfPrecision.js";

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

/** One tensor loaded from a safetensors file. */
export interface TensorRecord {
  /** The dtype the tensor had on disk. */
  dtype: SafetensorsDtype;
  /** Dimensions, outermost first (row-major). `[]` is a scalar. */
  shape: number[];
  /** The values upcast to float32, row-major. Owned by the record (not a view of the file). */
  data: Float32Array;
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
  /** Row-major float32 values. */
  data: Float32Array;
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

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const DEFAULT_NAME = "<bytes>";

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && Object.hasOwn(SAFETENSORS_DTYPE_BYTES, value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short rendering of an untrusted JSON value for an error message. */
function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function fail(file: string, message: string, tensor?: string): never {
  throw new CheckpointError(message, tensor === undefined ? { file } : { file, tensor });
}

/** Number of elements of a validated shape, or `undefined` if it exceeds 2^53. */
function elementCount(shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return n;
}

/** Read the 8-byte header length; `Infinity` if it does not fit in 2^53 (rejected later as too large). */
function headerLength(prefix: Uint8Array): number {
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(n);
}

function checkHeaderLength(n: number, fileLength: number, file: string): void {
  if (n > MAX_SAFETENSORS_HEADER_BYTES) {
    fail(file, `header length ${n} exceeds the ${MAX_SAFETENSORS_HEADER_BYTES}-byte limit`);
  }
  if (8 + n > fileLength) {
    fail(file, `header length ${n} runs past the end of the file (${fileLength} bytes): truncated or not safetensors`);
  }
}

/** Decode the JSON header and validate it against the length of the byte buffer that follows. */
function parseHeaderBytes(headerBytes: Uint8Array, dataLength: number, file: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    fail(file, "header is not valid UTF-8");
  }
  if (!text.startsWith("{")) fail(file, "header does not start with '{': not a safetensors file");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isPlainObject(json)) fail(file, "header is not a JSON object");

  let metadata: Record<string, string> | undefined;
  const entries: Array<[string, TensorHeaderEntry]> = [];
  for (const [name, info] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isPlainObject(info)) fail(file, "__metadata__ is not an object of strings");
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== "string") fail(file, `__metadata__ value for key "${k}" is not a string`);
      }
      metadata = Object.fromEntries(Object.entries(info as Record<string, string>));
      continue;
    }
    entries.push([name, parseEntry(name, info, file)]);
  }

  // The reference implementation requires the entries, sorted by offset, to tile the buffer.
  entries.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let expected = 0;
  let previous: string | undefined;
  for (const [name, entry] of entries) {
    const [begin, end] = entry.dataOffsets;
    if (begin < expected) {
      fail(file, `data_offsets [${begin}, ${end}] overlap tensor "${previous}" (which ends at ${expected})`, name);
    }
    if (begin > expected) {
      fail(file, `data_offsets [${begin}, ${end}] leave a hole: the previous tensor ends at ${expected}`, name);
    }
    const count = elementCount(entry.shape);
    const needed = count === undefined ? undefined : count * SAFETENSORS_DTYPE_BYTES[entry.dtype];
    if (needed !== end - begin) {
      fail(
        file,
        `shape ${preview(entry.shape)} of ${entry.dtype} needs ${needed ?? "too many"} bytes, data_offsets cover ${end - begin}`,
        name,
      );
    }
    if (end > dataLength) {
      fail(file, `data_offsets end ${end} is past the end of the data (${dataLength} bytes): file truncated`, name);
    }
    expected = end;
    previous = name;
  }
  if (expected !== dataLength) {
    fail(file, `${dataLength - expected} bytes after the last tensor are not covered by any data_offsets`);
  }
  return { tensors: new Map(entries), metadata, dataStart: 8 + headerBytes.length };
}

function parseEntry(name: string, info: unknown, file: string): TensorHeaderEntry {
  if (!isPlainObject(info)) fail(file, "header entry is not an object", name);
  const { dtype, shape, data_offsets: offsets } = info;
  if (!isDtype(dtype)) {
    fail(file, `unknown or unsupported dtype ${preview(dtype)}`, name);
  }
  if (!Array.isArray(shape)) fail(file, "shape is not an array", name);
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) fail(file, `shape has an invalid dimension ${preview(d)}`, name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2) fail(file, "data_offsets is not a [begin, end] pair", name);
  const [begin, end] = offsets as unknown[];
  if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || (begin as number) < 0) {
    fail(file, `data_offsets ${preview(offsets)} are not non-negative integers`, name);
  }
  if ((end as number) < (begin as number)) fail(file, `data_offsets [${begin}, ${end}] end before they begin`, name);
  return { dtype, shape: shape as number[], dataOffsets: [begin as number, end as number] };
}

/** Copy `bytes` into a fresh buffer of `byteLength` so typed views on it are aligned. */
function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const buffer = new ArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  return buffer;
}

/** Convert one tensor's little-endian bytes to float32. `bytes.length` is already validated. */
function decodeTensor(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  const n = bytes.length / SAFETENSORS_DTYPE_BYTES[dtype];
  if (LITTLE_ENDIAN_HOST) {
    switch (dtype) {
      case "F32":
        return new Float32Array(alignedCopy(bytes));
      case "F16":
        return f16ToFloat32(new Uint16Array(alignedCopy(bytes)));
      case "BF16":
        return bf16ToFloat32(new Uint16Array(alignedCopy(bytes)));
      case "F64":
        return Float32Array.from(new Float64Array(alignedCopy(bytes)));
      case "I64":
        return Float32Array.from(new BigInt64Array(alignedCopy(bytes)), Number);
      case "I32":
        return Float32Array.from(new Int32Array(alignedCopy(bytes)));
      case "I16":
        return Float32Array.from(new Int16Array(alignedCopy(bytes)));
      case "I8":
        return Float32Array.from(new Int8Array(alignedCopy(bytes)));
      case "U8":
        return Float32Array.from(bytes);
      case "BOOL":
        return Float32Array.from(bytes, (b) => (b !== 0 ? 1 : 0));
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = new Float32Array(n);
  const u16 = new Uint16Array(1);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case "F32":
        out[i] = view.getFloat32(4 * i, true);
        break;
      case "F16":
        u16[0] = view.getUint16(2 * i, true);
        out[i] = f16ToFloat32(u16)[0]!;
        break;
      case "BF16":
        u16[0] = view.getUint16(2 * i, true);
        out[i] = bf16ToFloat32(u16)[0]!;
        break;
      case "F64":
        out[i] = view.getFloat64(8 * i, true);
        break;
      case "I64":
        out[i] = Number(view.getBigInt64(8 * i, true));
        break;
      case "I32":
        out[i] = view.getInt32(4 * i, true);
        break;
      case "I16":
        out[i] = view.getInt16(2 * i, true);
        break;
      case "I8":
        out[i] = view.getInt8(i);
        break;
      case "U8":
        out[i] = view.getUint8(i);
        break;
      case "BOOL":
        out[i] = view.getUint8(i) !== 0 ? 1 : 0;
        break;
    }
  }
  return out;
}

/**
 * Parse a safetensors file held in memory. Pure and synchronous; safe on untrusted bytes: every
 * malformed input throws a {@link CheckpointError} naming `fileName` (and the tensor), never a
 * `RangeError`, and the work is linear in the input size.
 * @param bytes - the whole file.
 * @param fileName - used in error messages. Defaults to `"<bytes>"`.
 * @returns the tensors (upcast to float32) and the `__metadata__` map.
 * @throws CheckpointError if the bytes are not a valid safetensors file.
 */
export function parseSafetensors(bytes: Uint8Array, fileName: string = DEFAULT_NAME): SafetensorsFile {
  if (bytes.length < 8) fail(fileName, `file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const n = headerLength(bytes);
  checkHeaderLength(n, bytes.length, fileName);
  const header = parseHeaderBytes(bytes.subarray(8, 8 + n), bytes.length - 8 - n, fileName);
  const data = bytes.subarray(header.dataStart);
  const tensors = new Map<string, TensorRecord>();
  for (const [name, entry] of header.tensors) {
    const [begin, end] = entry.dataOffsets;
    tensors.set(name, {
      dtype: entry.dtype,
      shape: entry.shape,
      data: decodeTensor(entry.dtype, data.subarray(begin, end)),
    });
  }
  return { tensors, metadata: header.metadata };
}

async function readFully(fh: FileHandle, target: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) fail(file, `unexpected end of file at byte ${position + done} (file changed while reading?)`);
    done += bytesRead;
  }
}

async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (e) {
    throw new CheckpointError(
      `cannot open: ${e instanceof Error ? e.message : String(e)}`,
      { file: path },
      { cause: e },
    );
  }
}

async function readHeader(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const size = (await fh.stat()).size;
  if (size < 8) fail(path, `file is ${size} bytes, too short for the 8-byte header length`);
  const prefix = new Uint8Array(8);
  await readFully(fh, prefix, 0, path);
  const n = headerLength(prefix);
  checkHeaderLength(n, size, path);
  const headerBytes = new Uint8Array(n);
  await readFully(fh, headerBytes, 8, path);
  return parseHeaderBytes(headerBytes, size - 8 - n, path);
}

/**
 * Read and validate only the header of a safetensors file: names, dtypes, shapes and offsets,
 * without loading any tensor data.
 * @param path - the `.safetensors` file.
 * @throws CheckpointError if the file cannot be opened or its header is invalid.
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openForRead(path);
  try {
    return await readHeader(fh, path);
  } finally {
    await fh.close();
  }
}

/**
 * Read a safetensors file from disk. Tensors are read one at a time, so peak memory is the
 * float32 result plus one tensor's raw bytes (F32 tensors are read straight into their result).
 * @param path - the `.safetensors` file.
 * @returns the tensors (upcast to float32) and the `__metadata__` map.
 * @throws CheckpointError if the file cannot be opened or is not a valid safetensors file.
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const fh = await openForRead(path);
  try {
    const header = await readHeader(fh, path);
    const tensors = new Map<string, TensorRecord>();
    for (const [name, entry] of header.tensors) {
      const [begin, end] = entry.dataOffsets;
      let data: Float32Array;
      if (entry.dtype === "F32" && LITTLE_ENDIAN_HOST) {
        data = new Float32Array((end - begin) / 4);
        await readFully(fh, new Uint8Array(data.buffer), header.dataStart + begin, path);
      } else {
        const raw = new Uint8Array(end - begin);
        await readFully(fh, raw, header.dataStart + begin, path);
        data = decodeTensor(entry.dtype, raw);
      }
      tensors.set(name, { dtype: entry.dtype, shape: entry.shape, data });
    }
    return { tensors, metadata: header.metadata };
  } finally {
    await fh.close();
  }
}

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

const INTEGER_RANGE: Partial<Record<SafetensorsDtype, [number, number]>> = {
  I64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  I32: [-(2 ** 31), 2 ** 31 - 1],
  I16: [-(2 ** 15), 2 ** 15 - 1],
  I8: [-128, 127],
  U8: [0, 255],
  BOOL: [0, 1],
};

interface PlannedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array;
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
    if (!(t.data instanceof Float32Array)) fail(where, "data is not a Float32Array", name);
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

/** Little-endian bytes of one tensor in its target dtype (a view when no conversion is needed). */
function encodeTensor(t: PlannedTensor): Uint8Array {
  const { data, dtype } = t;
  const asBytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const range = INTEGER_RANGE[dtype];
  if (range !== undefined) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (!Number.isInteger(v) || v < range[0] || v > range[1]) {
        throw new CheckpointError(`value ${v} at index ${i} is not representable as ${dtype}`, {
          file: t.where,
          tensor: t.name,
        });
      }
    }
  }
  const bytes = new Uint8Array(data.length * SAFETENSORS_DTYPE_BYTES[dtype]);
  const view = new DataView(bytes.buffer);
  switch (dtype) {
    case "F32":
      if (LITTLE_ENDIAN_HOST) return asBytes(data);
      for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i]!, true);
      return bytes;
    case "F16":
    case "BF16": {
      const halves = dtype === "F16" ? float32ToF16(data) : float32ToBf16(data);
      if (LITTLE_ENDIAN_HOST) return asBytes(halves);
      for (let i = 0; i < halves.length; i++) view.setUint16(2 * i, halves[i]!, true);
      return bytes;
    }
    case "F64":
      for (let i = 0; i < data.length; i++) view.setFloat64(8 * i, data[i]!, true);
      return bytes;
    case "I64":
      for (let i = 0; i < data.length; i++) view.setBigInt64(8 * i, BigInt(data[i]!), true);
      return bytes;
    case "I32":
      for (let i = 0; i < data.length; i++) view.setInt32(4 * i, data[i]!, true);
      return bytes;
    case "I16":
      for (let i = 0; i < data.length; i++) view.setInt16(2 * i, data[i]!, true);
      return bytes;
    case "I8":
      for (let i = 0; i < data.length; i++) view.setInt8(i, data[i]!);
      return bytes;
    case "U8":
    case "BOOL":
      for (let i = 0; i < data.length; i++) view.setUint8(i, data[i]!);
      return bytes;
  }
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
  for (const t of plan.tensors) out.set(encodeTensor(t), plan.header.length + t.begin);
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
  const tmp = temporarySibling(path, "tmp");
  try {
    const fh = await open(tmp, "wx");
    try {
      await fh.write(plan.header);
      for (const t of plan.tensors) await fh.write(encodeTensor(t));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(
      `cannot write: ${e instanceof Error ? e.message : String(e)}`,
      { file: path },
      { cause: e },
    );
  }
}

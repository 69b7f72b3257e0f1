/**
 * The safetensors header: its 8-byte length prefix and the JSON that lists every tensor, validated as
 * the reference implementation does (offsets that tile the byte buffer, byte lengths that match shapes).
 * @module
 */
import {
  elementCount,
  fail,
  isDtype,
  isPlainObject,
  MAX_SAFETENSORS_HEADER_BYTES,
  preview,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsHeader,
  type TensorHeaderEntry,
} from "./format.js";

/** Read the 8-byte header length; `Infinity` if it does not fit in 2^53 (rejected later as too large). */
export function headerLength(prefix: Uint8Array): number {
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(n);
}

export function checkHeaderLength(n: number, fileLength: number, file: string): void {
  if (n > MAX_SAFETENSORS_HEADER_BYTES) {
    fail(file, `header length ${n} exceeds the ${MAX_SAFETENSORS_HEADER_BYTES}-byte limit`);
  }
  if (8 + n > fileLength) {
    fail(file, `header length ${n} runs past the end of the file (${fileLength} bytes): truncated or not safetensors`);
  }
}

/** Decode the JSON header and validate it against the length of the byte buffer that follows. */
export function parseHeaderBytes(headerBytes: Uint8Array, dataLength: number, file: string): SafetensorsHeader {
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

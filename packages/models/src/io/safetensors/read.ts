/**
 * Reading safetensors: from bytes in memory, or from disk one tensor at a time (the header alone if asked).
 * @module
 */
import { type FileHandle, open } from "node:fs/promises";
import { CheckpointError } from "@prefkit/core";
import {
  decodeTensor,
  decodeTensorAsHalf,
  HALF_PRECISION_DTYPE,
  HalfPrecisionTensorRecord,
  isFloatingDtype,
} from "./dtypes.js";
import {
  fail,
  type HalfPrecisionFormat,
  LITTLE_ENDIAN_HOST,
  type SafetensorsFile,
  type SafetensorsHeader,
  type TensorRecord,
} from "./format.js";
import { checkHeaderLength, headerLength, parseHeaderBytes } from "./header.js";

const DEFAULT_NAME = "<bytes>";

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

/** Options of {@link readSafetensors}. */
export interface ReadSafetensorsOptions {
  /**
   * Keep every floating-point tensor in this 16-bit format instead of float32: a tensor the file holds in
   * that format is read straight into its bit patterns (no conversion, 2 bytes per element in memory);
   * others are decoded and rounded to it (round to nearest even), one tensor at a time. Such records carry
   * `halfPrecision` and compute `data` on access. Integer and bool tensors stay float32. Default: none.
   */
  halfPrecision?: HalfPrecisionFormat;
}

/**
 * Read a safetensors file from disk. Tensors are read one at a time, so peak memory is the
 * result plus one tensor's raw bytes (F32 tensors are read straight into their float32 result, and, with
 * `halfPrecision`, tensors already in that format straight into their bit patterns).
 * @param path - the `.safetensors` file.
 * @param options - `halfPrecision` to keep floating tensors in 16 bits.
 * @returns the tensors (upcast to float32, or in 16 bits) and the `__metadata__` map.
 * @throws CheckpointError if the file cannot be opened or is not a valid safetensors file.
 */
export async function readSafetensors(path: string, options: ReadSafetensorsOptions = {}): Promise<SafetensorsFile> {
  const fh = await openForRead(path);
  try {
    const header = await readHeader(fh, path);
    const tensors = new Map<string, TensorRecord>();
    for (const [name, entry] of header.tensors) {
      const [begin, end] = entry.dataOffsets;
      const format = options.halfPrecision;
      if (format !== undefined && isFloatingDtype(entry.dtype)) {
        let bits: Uint16Array;
        if (entry.dtype === HALF_PRECISION_DTYPE[format] && LITTLE_ENDIAN_HOST) {
          // Already in the format: the file's bytes are the bit patterns, read in place (no second copy).
          bits = new Uint16Array((end - begin) / 2);
          await readFully(fh, new Uint8Array(bits.buffer), header.dataStart + begin, path);
        } else {
          const raw = new Uint8Array(end - begin);
          await readFully(fh, raw, header.dataStart + begin, path);
          bits = decodeTensorAsHalf(entry.dtype, raw, format);
        }
        tensors.set(name, new HalfPrecisionTensorRecord(entry.dtype, entry.shape, { dtype: format, bits }));
        continue;
      }
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

import { open, readFile, writeFile } from "node:fs/promises";
import { CheckpointError } from "../errors/index.js";

/** A tensor as raw data, the unit of the safetensors helpers. */
export interface RawTensor {
  /** Shape. */
  shape: number[];
  /** float32 or int32 values in row-major order. */
  data: Float32Array | Int32Array;
}

/**
 * Write a safetensors file (F32 and I32 only): an 8-byte little-endian header length, a JSON
 * header `{name: {dtype, shape, data_offsets}}`, then the raw bytes.
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, RawTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata) header["__metadata__"] = metadata;
  let offset = 0;
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const t = tensors.get(name)!;
    const bytes = t.data.byteLength;
    header[name] = {
      dtype: t.data instanceof Float32Array ? "F32" : "I32",
      shape: t.shape,
      data_offsets: [offset, offset + bytes],
    };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const d = tensors.get(name)!.data;
    Buffer.from(d.buffer, d.byteOffset, d.byteLength).copy(out, pos);
    pos += d.byteLength;
  }
  await writeFile(path, out);
}

/** The tensor names in a safetensors file, read from its header only. Throws a {@link CheckpointError} naming the file. */
export async function readSafetensorsKeys(path: string): Promise<string[]> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(path, "r");
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const header = Buffer.alloc(Number(len.readBigUInt64LE(0)));
    await fh.read(header, 0, header.length, 8);
    return Object.keys(JSON.parse(header.toString("utf8")) as object).filter((k) => k !== "__metadata__");
  } catch (e) {
    throw new CheckpointError("cannot read the safetensors header", { file: path }, { cause: e });
  } finally {
    await fh?.close();
  }
}

function bf16ToF32(src: Uint16Array): Float32Array {
  const u = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  return new Float32Array(u.buffer);
}

function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i]!;
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    out[i] =
      e === 0
        ? s * 2 ** -14 * (f / 1024)
        : e === 31
          ? f
            ? Number.NaN
            : s * Infinity
          : s * 2 ** (e - 15) * (1 + f / 1024);
  }
  return out;
}

/**
 * Read a safetensors file. F32, I32 are returned as is; BF16 and F16 are upcast to float32,
 * I64 is narrowed to int32. Throws a {@link CheckpointError} naming the file and tensor on
 * anything malformed.
 */
export async function readSafetensors(path: string): Promise<Map<string, RawTensor>> {
  const buf = await readFile(path);
  if (buf.length < 8) throw new CheckpointError("file shorter than the 8-byte header length", { file: path });
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new CheckpointError(`header length ${n} exceeds file size`, { file: path });
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  } catch (e) {
    throw new CheckpointError("header is not JSON", { file: path }, { cause: e });
  }
  const base = 8 + n;
  const out = new Map<string, RawTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [a, b] = info.data_offsets;
    if (base + b > buf.length || a > b)
      throw new CheckpointError("data offsets out of range", { file: path, tensor: name });
    const bytes = new Uint8Array(buf.subarray(base + a, base + b)); // aligned copy
    let data: Float32Array | Int32Array;
    switch (info.dtype) {
      case "F32":
        data = new Float32Array(bytes.buffer);
        break;
      case "I32":
        data = new Int32Array(bytes.buffer);
        break;
      case "BF16":
        data = bf16ToF32(new Uint16Array(bytes.buffer));
        break;
      case "F16":
        data = f16ToF32(new Uint16Array(bytes.buffer));
        break;
      case "I64":
        data = Int32Array.from(new BigInt64Array(bytes.buffer), (x) => Number(x));
        break;
      default:
        throw new CheckpointError(`unsupported dtype ${info.dtype}`, { file: path, tensor: name });
    }
    const count = info.shape.reduce((x, y) => x * y, 1);
    if (data.length !== count) {
      throw new CheckpointError(`shape [${info.shape}] needs ${count} values, found ${data.length}`, {
        file: path,
        tensor: name,
      });
    }
    out.set(name, { shape: info.shape, data });
  }
  return out;
}

/**
 * Tensor bytes to float32 and back, for every safetensors dtype: little-endian on disk whatever the host,
 * F16/BF16 through the half-precision converters, integer and bool types only from exact values.
 * @module
 */
import { CheckpointError } from "@prefkit/core";
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from "../halfPrecision.js";
import {
  type HalfPrecisionData,
  type HalfPrecisionFormat,
  LITTLE_ENDIAN_HOST,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsDtype,
  type TensorRecord,
} from "./format.js";

/** Copy `bytes` into a fresh buffer of `byteLength` so typed views on it are aligned. */
function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const buffer = new ArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  return buffer;
}

/** Convert one tensor's little-endian bytes to float32. `bytes.length` is already validated. */
export function decodeTensor(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
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

const INTEGER_RANGE: Partial<Record<SafetensorsDtype, [number, number]>> = {
  I64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  I32: [-(2 ** 31), 2 ** 31 - 1],
  I16: [-(2 ** 15), 2 ** 15 - 1],
  I8: [-128, 127],
  U8: [0, 255],
  BOOL: [0, 1],
};

/** The safetensors dtype of a 16-bit format. */
export const HALF_PRECISION_DTYPE: Readonly<Record<HalfPrecisionFormat, "BF16" | "F16">> = {
  bfloat16: "BF16",
  float16: "F16",
};

/** The floating dtypes a tensor can be kept in 16 bits from. */
const FLOATING: ReadonlySet<SafetensorsDtype> = new Set(["F64", "F32", "F16", "BF16"]);

/** True for a floating-point safetensors dtype. */
export function isFloatingDtype(dtype: SafetensorsDtype): boolean {
  return FLOATING.has(dtype);
}

/** The 16-bit patterns of little-endian `bytes` that already hold `format` (a copy, aligned). */
export function halfPrecisionBits(bytes: Uint8Array): Uint16Array {
  const bits = new Uint16Array(bytes.length / 2);
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(bits.buffer).set(bytes);
    return bits;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let i = 0; i < bits.length; i++) bits[i] = view.getUint16(2 * i, true);
  return bits;
}

/** A tensor's bytes as `format` bit patterns: copied when the file holds that format, else decoded and rounded. */
export function decodeTensorAsHalf(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  format: HalfPrecisionFormat,
): Uint16Array {
  if (dtype === HALF_PRECISION_DTYPE[format]) return halfPrecisionBits(bytes);
  const values = decodeTensor(dtype, bytes);
  return format === "bfloat16" ? float32ToBf16(values) : float32ToF16(values);
}

/** A {@link TensorRecord} held in 16 bits: `data` is upcast from the bits on each access. */
export class HalfPrecisionTensorRecord implements TensorRecord {
  /** The dtype the tensor had on disk. */
  readonly dtype: SafetensorsDtype;
  /** Dimensions, outermost first. */
  readonly shape: number[];
  /** The values as kept in memory. */
  readonly halfPrecision: HalfPrecisionData;

  /** @param dtype on-disk dtype; @param shape dimensions; @param halfPrecision the values in 16 bits. */
  constructor(dtype: SafetensorsDtype, shape: number[], halfPrecision: HalfPrecisionData) {
    this.dtype = dtype;
    this.shape = shape;
    this.halfPrecision = halfPrecision;
  }

  /** The values upcast to float32 (exact), in a new array on each access. */
  get data(): Float32Array {
    const { dtype, bits } = this.halfPrecision;
    return dtype === "bfloat16" ? bf16ToFloat32(bits) : f16ToFloat32(bits);
  }
}

/**
 * Little-endian bytes of float32 `data` in `dtype` (a view when no conversion is needed). A `Uint16Array`
 * holds `dtype`'s own bit patterns (BF16 or F16) and is written unchanged.
 * @throws CheckpointError naming `file` and `tensor` when an integer or bool dtype cannot hold a value exactly.
 */
export function encodeTensor(
  data: Float32Array | Uint16Array,
  dtype: SafetensorsDtype,
  file: string,
  tensor: string,
): Uint8Array {
  const asBytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (data instanceof Uint16Array) {
    // Bit patterns of `dtype` itself (BF16 or F16; the writer checked): written unchanged.
    if (LITTLE_ENDIAN_HOST) return asBytes(data);
    const bytes = new Uint8Array(data.length * 2);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < data.length; i++) view.setUint16(2 * i, data[i]!, true);
    return bytes;
  }
  const range = INTEGER_RANGE[dtype];
  if (range !== undefined) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (!Number.isInteger(v) || v < range[0] || v > range[1]) {
        throw new CheckpointError(`value ${v} at index ${i} is not representable as ${dtype}`, { file, tensor });
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

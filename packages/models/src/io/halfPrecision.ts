/**
 * float32 <-> float16 / bfloat16 conversion on raw bit patterns.
 *
 * TensorFlow.js has no 16-bit dtypes, so 16-bit weights live in `Uint16Array`s and are upcast
 * to float32 before compute. Downcasts round to nearest, ties to even (what PyTorch and numpy do).
 * @module
 */

function checkOut<T extends { length: number }>(out: T | undefined, length: number, make: (n: number) => T): T {
  if (out === undefined) return make(length);
  if (out.length < length) {
    throw new RangeError(`output array has length ${out.length}, needs at least ${length}`);
  }
  return out;
}

/** The 32 bits of each element of a Float32Array, without copying. */
function bitsOf(src: Float32Array): Uint32Array {
  return new Uint32Array(src.buffer, src.byteOffset, src.length);
}

/**
 * Downcast float32 values to bfloat16 bit patterns (round to nearest, ties to even).
 * NaN stays NaN (quiet, sign kept); values beyond the bf16 range become ±Infinity.
 * @param src - float32 values.
 * @param out - optional destination with at least `src.length` elements.
 * @returns the bf16 bit patterns, one `uint16` per element.
 */
export function float32ToBf16(src: Float32Array, out?: Uint16Array): Uint16Array {
  const dst = checkOut(out, src.length, (n) => new Uint16Array(n));
  const bits = bitsOf(src);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    if ((x & 0x7fffffff) > 0x7f800000) {
      dst[i] = (x >>> 16) | 0x0040;
    } else {
      dst[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return dst;
}

/**
 * Upcast bfloat16 bit patterns to float32. Exact: every bf16 value is a float32 value.
 * @param src - bf16 bit patterns.
 * @param out - optional destination with at least `src.length` elements.
 * @returns the float32 values.
 */
export function bf16ToFloat32(src: Uint16Array, out?: Float32Array): Float32Array {
  const dst = checkOut(out, src.length, (n) => new Float32Array(n));
  const bits = bitsOf(dst);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return dst;
}

/** Convert one float32 bit pattern to an IEEE half bit pattern, round to nearest even. */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  if (exp > 142) return sign | 0x7c00;
  if (exp >= 113) {
    // Normal half. A carry out of the mantissa correctly bumps the exponent (up to Infinity).
    let h = ((exp - 112) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
    return sign | h;
  }
  if (exp < 102) return sign; // below half the smallest subnormal: rounds to ±0
  // Subnormal half: value = m * 2^(exp-150), unit 2^-24, so h = m >> (126 - exp).
  const m = mant | 0x800000;
  const shift = 126 - exp; // 14..24
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1) === 1)) h++;
  return sign | h;
}

function f16BitsToF32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal half: normalise into a float32 normal.
  let e = 113;
  let m = mant;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

let f16Table: Uint32Array | undefined;

/** All 65,536 half values as float32 bits, built on first use (256 KiB). */
function f16ToF32Table(): Uint32Array {
  if (f16Table === undefined) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/**
 * Downcast float32 values to IEEE 754 half-precision bit patterns (round to nearest, ties to even).
 * Values of magnitude ≥ 65520 become ±Infinity; tiny values become subnormals or ±0.
 * @param src - float32 values.
 * @param out - optional destination with at least `src.length` elements.
 * @returns the float16 bit patterns, one `uint16` per element.
 */
export function float32ToF16(src: Float32Array, out?: Uint16Array): Uint16Array {
  const dst = checkOut(out, src.length, (n) => new Uint16Array(n));
  const bits = bitsOf(src);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToF16(bits[i]!);
  return dst;
}

/**
 * Upcast IEEE 754 half-precision bit patterns to float32. Exact.
 * @param src - float16 bit patterns.
 * @param out - optional destination with at least `src.length` elements.
 * @returns the float32 values.
 */
export function f16ToFloat32(src: Uint16Array, out?: Float32Array): Float32Array {
  const dst = checkOut(out, src.length, (n) => new Float32Array(n));
  const bits = bitsOf(dst);
  const table = f16ToF32Table();
  for (let i = 0; i < src.length; i++) bits[i] = table[src[i]!]!;
  return dst;
}

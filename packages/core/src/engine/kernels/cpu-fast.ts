/**
 * Tight typed-array kernels for the `cpu` backend's hottest elementwise work, registered by the
 * native BLAS plugin once matmuls are fast: broadcast `Add`/`Sub`/`Multiply`/`RealDiv`,
 * `Transpose`, `Exp`, `Sigmoid` and last-axis `Softmax` (the stock Softmax runs five kernels with
 * their temporaries; it and `Sigmoid` dominated a KV-cache decoding step once matmuls were native), and
 * strided `Slice` with its gradient `PadV2` (run copies: the stock kernels convert coordinates per element,
 * ~2 µs each, so cutting the response positions out of `[8, 80, 49152]` logits took tens of seconds).
 *
 * The stock cpu kernels compute every broadcast or transposed element's index with a
 * per-element coordinate conversion; a vocabulary-sized `[256,49152] − [256,1]` takes seconds.
 * Here the shapes are collapsed to the fewest dims with constant strides, and the innermost
 * run is a plain loop (contiguous, or a repeated scalar). Float32 only; anything else runs the
 * stock kernel.
 * @module
 */
import { tf } from "../tf.js";
import { type CpuBackendLike, kernelFloat32Values as float32Values } from "./cpu-data.js";

type KernelArgs = Parameters<tf.KernelFunc>[0];

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

/** Dims of size > 1 with their strides in every operand, adjacent dims merged where the strides allow. */
function collapse(sizes: number[], strides: number[][]): { sizes: number[]; strides: number[][] } {
  const outSizes: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < sizes.length; d++) {
    const size = sizes[d]!;
    if (size === 1) continue;
    const last = outSizes.length - 1;
    // Merge into the previous dim when, in every operand, prev stride = this stride × this size.
    if (last >= 0 && strides.every((s, i) => outStrides[i]![last] === s[d]! * size)) {
      outSizes[last]! *= size;
      strides.forEach((s, i) => {
        outStrides[i]![last] = s[d]!;
      });
      continue;
    }
    outSizes.push(size);
    for (let i = 0; i < strides.length; i++) outStrides[i]!.push(strides[i]![d]!);
  }
  return { sizes: outSizes, strides: outStrides };
}

type Inner = (
  out: Float32Array,
  o: number,
  a: Float32Array,
  ia: number,
  sa: number,
  b: Float32Array,
  ib: number,
  sb: number,
  n: number,
) => void;

/** The innermost loop of a binary op, specialised on the expression so V8 keeps it monomorphic. */
function innerLoop(expr: string): Inner {
  // Strides are 0 (broadcast) or 1 (contiguous) in the common cases; the general loop covers the rest.
  return new Function(
    "out",
    "o",
    "a",
    "ia",
    "sa",
    "b",
    "ib",
    "sb",
    "n",
    `"use strict";
    if (sa === 1 && sb === 1) { for (let j = 0; j < n; j++) { const x = a[ia + j], y = b[ib + j]; out[o + j] = ${expr}; } return; }
    if (sa === 1 && sb === 0) { const y = b[ib]; for (let j = 0; j < n; j++) { const x = a[ia + j]; out[o + j] = ${expr}; } return; }
    if (sa === 0 && sb === 1) { const x = a[ia]; for (let j = 0; j < n; j++) { const y = b[ib + j]; out[o + j] = ${expr}; } return; }
    for (let j = 0; j < n; j++) { const x = a[ia + j * sa], y = b[ib + j * sb]; out[o + j] = ${expr}; }`,
  ) as Inner;
}

/** out = a ∘ b with NumPy broadcasting, through `inner` over the innermost collapsed dim. */
export function broadcastBinary(
  inner: Inner,
  aShape: readonly number[],
  a: Float32Array,
  bShape: readonly number[],
  b: Float32Array,
): { shape: number[]; values: Float32Array } {
  const shape = tf.broadcast_util.assertAndGetBroadcastShape([...aShape], [...bShape]);
  const rank = shape.length;
  const pad = (s: readonly number[]) => [...new Array<number>(rank - s.length).fill(1), ...s];
  const ap = pad(aShape);
  const bp = pad(bShape);
  const aStrides = contiguousStrides(ap).map((s, d) => (ap[d] === 1 ? 0 : s));
  const bStrides = contiguousStrides(bp).map((s, d) => (bp[d] === 1 ? 0 : s));
  const out = new Float32Array(shape.reduce((x, y) => x * y, 1));
  if (out.length === 0) return { shape, values: out };
  const c = collapse(shape, [aStrides, bStrides]);
  const sizes = c.sizes.length === 0 ? [1] : c.sizes;
  const [sa, sb] = c.sizes.length === 0 ? [[0], [0]] : (c.strides as [number[], number[]]);
  const r = sizes.length;
  const n = sizes[r - 1]!;
  const innerA = sa[r - 1]!;
  const innerB = sb[r - 1]!;
  const idx = new Array<number>(r - 1).fill(0);
  let ia = 0;
  let ib = 0;
  for (let o = 0; o < out.length; o += n) {
    inner(out, o, a, ia, innerA, b, ib, innerB, n);
    // Odometer over the outer dims.
    for (let d = r - 2; d >= 0; d--) {
      idx[d]!++;
      ia += sa[d]!;
      ib += sb[d]!;
      if (idx[d]! < sizes[d]!) break;
      ia -= sa[d]! * sizes[d]!;
      ib -= sb[d]! * sizes[d]!;
      idx[d] = 0;
    }
  }
  return { shape, values: out };
}

function binaryKernel(expr: string, stock: tf.KernelConfig | undefined, kernelName: string): tf.KernelFunc {
  const inner = innerLoop(expr);
  return (args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const backend = args.backend as unknown as CpuBackendLike;
    const av = float32Values(backend, a);
    const bv = float32Values(backend, b);
    if (av === undefined || bv === undefined) {
      if (stock === undefined) throw new Error(`${kernelName}: no stock cpu kernel to fall back to`);
      return stock.kernelFunc(args);
    }
    const { shape, values } = broadcastBinary(inner, a.shape, av, b.shape, bv);
    return backend.makeTensorInfo(shape, "float32", values);
  };
}

/** x transposed by `perm`, as a new array; the 2-D core is tiled for cache locality. */
export function transposeValues(x: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const out = new Float32Array(x.length);
  if (x.length === 0) return out;
  const inStrides = contiguousStrides(shape);
  const outShape = perm.map((p) => shape[p]!);
  // Output dims in order, each with the input stride it walks.
  const c = collapse(outShape, [contiguousStrides(outShape), perm.map((p) => inStrides[p]!)]);
  if (c.sizes.length <= 1) {
    out.set(x);
    return out;
  }
  const sizes = c.sizes;
  const src = c.strides[1]!;
  const r = sizes.length;
  const rows = sizes[r - 2]!;
  const cols = sizes[r - 1]!;
  const sRow = src[r - 2]!;
  const sCol = src[r - 1]!;
  const block = 32;
  const outerIdx = new Array<number>(Math.max(0, r - 2)).fill(0);
  let base = 0;
  for (let o = 0; o < out.length; o += rows * cols) {
    for (let i0 = 0; i0 < rows; i0 += block) {
      const i1 = Math.min(rows, i0 + block);
      for (let j0 = 0; j0 < cols; j0 += block) {
        const j1 = Math.min(cols, j0 + block);
        for (let i = i0; i < i1; i++) {
          const orow = o + i * cols;
          const irow = base + i * sRow;
          for (let j = j0; j < j1; j++) out[orow + j] = x[irow + j * sCol]!;
        }
      }
    }
    for (let d = r - 3; d >= 0; d--) {
      outerIdx[d]!++;
      base += src[d]!;
      if (outerIdx[d]! < sizes[d]!) break;
      base -= src[d]! * sizes[d]!;
      outerIdx[d] = 0;
    }
  }
  return out;
}

function transposeKernel(stock: tf.KernelConfig | undefined): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { perm } = args.attrs as { perm: number[] };
    const backend = args.backend as unknown as CpuBackendLike;
    const xv = float32Values(backend, x);
    if (xv === undefined) {
      if (stock === undefined) throw new Error("Transpose: no stock cpu kernel to fall back to");
      return stock.kernelFunc(args);
    }
    const values = transposeValues(xv, x.shape, perm);
    return backend.makeTensorInfo(
      perm.map((p) => x.shape[p]!),
      "float32",
      values,
    );
  };
}

/**
 * A unary float32 kernel computing `expr` of `x` in one loop, specialised on the expression (the stock
 * cpu unary kernels call a shared callback per element).
 */
function unaryKernel(expr: string, stock: tf.KernelConfig | undefined, kernelName: string): tf.KernelFunc {
  const loop = new Function(
    "out",
    "a",
    `"use strict"; for (let i = 0; i < a.length; i++) { const x = a[i]; out[i] = ${expr}; }`,
  ) as (out: Float32Array, a: Float32Array) => void;
  return (args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const backend = args.backend as unknown as CpuBackendLike;
    const xv = float32Values(backend, x);
    if (xv === undefined) {
      if (stock === undefined) throw new Error(`${kernelName}: no stock cpu kernel to fall back to`);
      return stock.kernelFunc(args);
    }
    const out = new Float32Array(xv.length);
    loop(out, xv);
    return backend.makeTensorInfo([...x.shape], "float32", out);
  };
}

/** `Softmax` over the last axis, row by row: max, exp(x − max), sum, divide (the stock kernel's steps). */
function softmaxKernel(stock: tf.KernelConfig | undefined): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { logits } = args.inputs as { logits: tf.TensorInfo };
    const { dim } = args.attrs as { dim: number };
    const backend = args.backend as unknown as CpuBackendLike;
    const xv = float32Values(backend, logits);
    const rank = logits.shape.length;
    if (xv === undefined || rank === 0 || (dim !== -1 && dim !== rank - 1)) {
      if (stock === undefined) throw new Error("Softmax: no stock cpu kernel to fall back to");
      return stock.kernelFunc(args);
    }
    const width = logits.shape[rank - 1]!;
    const out = new Float32Array(xv.length);
    for (let row = 0; row < xv.length; row += width) {
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < width; j++) max = Math.max(max, xv[row + j]!);
      let sum = 0;
      for (let j = 0; j < width; j++) {
        const e = Math.fround(Math.exp(Math.fround(xv[row + j]! - max)));
        out[row + j] = e;
        sum = Math.fround(sum + e);
      }
      for (let j = 0; j < width; j++) out[row + j] = out[row + j]! / sum;
    }
    return backend.makeTensorInfo([...logits.shape], "float32", out);
  };
}

/**
 * Copy between a dense block `inner` (shape `sizes`) and the same block at `offsets` inside a dense
 * `outer` tensor (shape `outerShape`): `toInner` reads the block out (Slice), else writes it in (Pad).
 * Trailing dims the block spans whole merge into one contiguous run per outer index.
 */
function copyBlock(
  outer: Float32Array,
  outerShape: readonly number[],
  inner: Float32Array,
  sizes: readonly number[],
  offsets: readonly number[],
  toInner: boolean,
): void {
  if (inner.length === 0) return;
  const strides = contiguousStrides(outerShape);
  let k = sizes.length - 1;
  while (k > 0 && sizes[k] === outerShape[k]) k--;
  const run = k < 0 ? 1 : sizes[k]! * strides[k]!;
  const idx = new Array<number>(Math.max(0, k)).fill(0);
  let base = 0;
  for (let d = 0; d <= k; d++) base += offsets[d]! * strides[d]!;
  for (let o = 0; o < inner.length; o += run) {
    if (toInner) inner.set(outer.subarray(base, base + run), o);
    else outer.set(inner.subarray(o, o + run), base);
    for (let d = k - 1; d >= 0; d--) {
      idx[d]!++;
      base += strides[d]!;
      if (idx[d]! < sizes[d]!) break;
      base -= strides[d]! * sizes[d]!;
      idx[d] = 0;
    }
  }
}

/** `Slice` of a float32 tensor that is not one contiguous range (the stock kernel takes a view of those). */
function sliceKernel(stock: tf.KernelConfig | undefined): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { begin, size } = args.attrs as { begin: number | number[]; size?: number | number[] };
    const backend = args.backend as unknown as CpuBackendLike;
    const xv = float32Values(backend, x);
    if (xv === undefined) {
      if (stock === undefined) throw new Error("Slice: no stock cpu kernel to fall back to");
      return stock.kernelFunc(args);
    }
    const [b, sz] = tf.slice_util.parseSliceParams(x, begin, size);
    tf.slice_util.assertParamsValid(x, b, sz);
    if (x.shape.length === 0 || tf.slice_util.isSliceContinous(x.shape, b, sz)) {
      if (stock === undefined) throw new Error("Slice: no stock cpu kernel to fall back to");
      return stock.kernelFunc(args);
    }
    const out = new Float32Array(sz.reduce((a, n) => a * n, 1));
    copyBlock(xv, x.shape, out, sz, b, true);
    return backend.makeTensorInfo(sz, "float32", out);
  };
}

/** `PadV2` of a float32 tensor with a constant (the gradient of `Slice`). */
function padKernel(stock: tf.KernelConfig | undefined): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { paddings, constantValue } = args.attrs as { paddings: [number, number][]; constantValue: number };
    const backend = args.backend as unknown as CpuBackendLike;
    const xv = float32Values(backend, x);
    if (xv === undefined || x.shape.length === 0) {
      if (stock === undefined) throw new Error("PadV2: no stock cpu kernel to fall back to");
      return stock.kernelFunc(args);
    }
    const shape = x.shape.map((n, d) => paddings[d]![0] + n + paddings[d]![1]);
    const out = new Float32Array(shape.reduce((a, n) => a * n, 1));
    if (constantValue !== 0) out.fill(constantValue);
    copyBlock(
      out,
      shape,
      xv,
      x.shape,
      paddings.map((p) => p[0]),
      false,
    );
    return backend.makeTensorInfo(shape, "float32", out);
  };
}

/** Kernel specs (for {@link defineKernelPlugin}) of the fast cpu elementwise kernels. */
export const cpuFastKernels: ReadonlyArray<{
  kernelName: string;
  build: (stock: tf.KernelConfig | undefined) => { kernelFunc: tf.KernelFunc };
}> = [
  { kernelName: tf.Add, build: (stock) => ({ kernelFunc: binaryKernel("x + y", stock, tf.Add) }) },
  { kernelName: tf.Sub, build: (stock) => ({ kernelFunc: binaryKernel("x - y", stock, tf.Sub) }) },
  { kernelName: tf.Multiply, build: (stock) => ({ kernelFunc: binaryKernel("x * y", stock, tf.Multiply) }) },
  { kernelName: tf.RealDiv, build: (stock) => ({ kernelFunc: binaryKernel("x / y", stock, tf.RealDiv) }) },
  { kernelName: tf.Transpose, build: (stock) => ({ kernelFunc: transposeKernel(stock) }) },
  { kernelName: tf.Exp, build: (stock) => ({ kernelFunc: unaryKernel("Math.exp(x)", stock, tf.Exp) }) },
  // The stock formula: 1 / (1 + exp(−x)).
  {
    kernelName: tf.Sigmoid,
    build: (stock) => ({ kernelFunc: unaryKernel("1 / (1 + Math.exp(-x))", stock, tf.Sigmoid) }),
  },
  { kernelName: tf.Softmax, build: (stock) => ({ kernelFunc: softmaxKernel(stock) }) },
  { kernelName: tf.Slice, build: (stock) => ({ kernelFunc: sliceKernel(stock) }) },
  { kernelName: tf.PadV2, build: (stock) => ({ kernelFunc: padKernel(stock) }) },
];

/**
 * `BatchMatMul` and `_FusedMatMul` for the wasm backend that keep every product on
 * XNNPACK's fast path.
 *
 * Stock wasm sends a product to XNNPACK only when neither operand is transposed and
 * neither is batched; everything else runs a naive single-thread C++ loop at about
 * 1 GFLOPS. Gradients of matMul always transpose an operand and attention matmuls are
 * batched, so training spends most of its time there. These kernels transpose
 * explicitly (a memory-bound wasm Transpose), fold the batch into rows when `b` is not
 * batched, and otherwise loop over the batch with one fast 2-D product each. A single 2-D
 * product with a transposed operand may instead run as C = (op(B)ᵀ·op(A)ᵀ)ᵀ when that
 * moves fewer elements (a tied LM head).
 *
 * XNNPACK caches packed weights by tensor id, so every temporary here is a fresh tensor;
 * nothing is ever written into an existing tensor's memory.
 * @module
 */
import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import { defineKernelPlugin, type KernelPlugin } from "../plugin.js";
import { tf } from "../tf.js";
import { broadcastBatchIndex, matMulShape, sizeOf } from "./shape.js";
import { heapCopy, heapSlice, release, viewAs } from "./wasm-util.js";

type KernelArgs = Parameters<tf.KernelFunc>[0];

interface Operands {
  backend: BackendWasm;
  /** `a` with the transpose applied: [...outerA, M, K]. */
  a: tf.TensorInfo;
  /** `b` with the transpose applied: [...outerB, K, N]. */
  b: tf.TensorInfo;
  m: number;
  k: number;
  n: number;
  outerA: number[];
  outerB: number[];
  outShape: number[];
  /** Tensors this kernel allocated and must release. */
  temps: tf.TensorInfo[];
}

/** Swaps the last two dimensions with the stock wasm Transpose kernel. */
function transposeLast2(backend: BackendWasm, x: tf.TensorInfo): tf.TensorInfo {
  const rank = x.shape.length;
  const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2];
  const transpose = tf.getKernel(tf.Transpose, "wasm");
  return transpose.kernelFunc({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo;
}

/** Makes both operands untransposed, or returns undefined when the stock kernel must run. */
function prepare(
  backend: BackendWasm,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): Operands | undefined {
  const dims = matMulShape(a, b, transposeA, transposeB);
  if (dims === undefined || dims.m * dims.n * dims.k === 0) return undefined;
  const { m, k, n, outerA, outerB, outOuter } = dims;
  const outShape = [...outOuter, m, n];
  const temps: tf.TensorInfo[] = [];
  const at = transposeA ? transposeLast2(backend, a) : a;
  if (transposeA) temps.push(at);
  const bt = transposeB ? transposeLast2(backend, b) : b;
  if (transposeB) temps.push(bt);
  return { backend, a: at, b: bt, m, k, n, outerA, outerB, outShape, temps };
}

/**
 * Runs `product(a2d, b2d)` on XNNPACK for every batch and assembles the output.
 * `product` receives untransposed 2-D operands and returns a [rows, n] tensor.
 */
function runBatched(ops: Operands, product: (a2d: tf.TensorInfo, b2d: tf.TensorInfo) => tf.TensorInfo): tf.TensorInfo {
  const { backend, a, b, m, k, n, outerA, outerB, outShape } = ops;
  const batchB = sizeOf(outerB);
  if (batchB === 1) {
    // b is shared by every batch: fold a's batch into its rows.
    const out = product(viewAs(a, [sizeOf(outerA) * m, k]), viewAs(b, [k, n]));
    out.shape = outShape;
    return out;
  }
  const outOuter = outShape.slice(0, -2);
  const batch = sizeOf(outOuter);
  const batchA = sizeOf(outerA);
  const out = backend.makeOutput(outShape, "float32");
  for (let i = 0; i < batch; i++) {
    const ia = broadcastBatchIndex(outOuter, outerA, i);
    const ib = broadcastBatchIndex(outOuter, outerB, i);
    const ai = batchA === 1 ? viewAs(a, [m, k]) : heapSlice(backend, a, ia * m * k, [m, k]);
    const bi = heapSlice(backend, b, ib * k * n, [k, n]);
    const oi = product(ai, bi);
    heapCopy(backend, oi, 0, out, i * m * n, m * n);
    if (batchA !== 1) release(backend, ai);
    release(backend, bi);
    release(backend, oi);
  }
  return out;
}

/**
 * A single 2-D product with a transposed operand, computed as C = (op(B)ᵀ·op(A)ᵀ)ᵀ when that
 * moves fewer elements. Both plans are memory-bound around one fast product: the direct one
 * transposes the transposed operands and has XNNPACK pack op(B); the swapped one transposes
 * whichever of op(B)ᵀ, op(A)ᵀ is not already stored that way, packs op(A)ᵀ, and transposes
 * the output. For a tied LM head, x·Eᵀ with E [49152, 576], the swapped plan avoids
 * transposing and packing all of E. Returns undefined when the direct plan is cheaper.
 */
function swappedProduct(
  backend: BackendWasm,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  product2d: (a2d: tf.TensorInfo, b2d: tf.TensorInfo) => tf.TensorInfo,
): tf.TensorInfo | undefined {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (!(transposeA || transposeB) || a.dtype !== "float32" || b.dtype !== "float32" || ra < 2 || rb < 2) {
    return undefined;
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  if (sizeOf(outerA) !== 1 || sizeOf(outerB) !== 1) return undefined;
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (k !== (transposeB ? b.shape[rb - 1] : b.shape[rb - 2]) || m * n * k === 0) return undefined;
  const direct = (transposeA ? m * k : 0) + (transposeB ? k * n : 0) + k * n;
  const swapped = (transposeB ? 0 : k * n) + (transposeA ? 0 : m * k) + m * k + m * n;
  if (swapped >= direct) return undefined;
  const outShape = [...tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB), m, n];
  const temps: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo) => {
    temps.push(t);
    return t;
  };
  try {
    const bt = transposeB ? viewAs(b, [n, k]) : keep(transposeLast2(backend, viewAs(b, [k, n])));
    const at = transposeA ? viewAs(a, [k, m]) : keep(transposeLast2(backend, viewAs(a, [m, k])));
    const outT = keep(product2d(bt, at));
    const out = transposeLast2(backend, viewAs(outT, [n, m]));
    out.shape = outShape;
    return out;
  } finally {
    for (const t of temps) release(backend, t);
  }
}

function batchMatMulKernel(stock: tf.KernelConfig): tf.KernelFunc {
  return (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const product2d = (a2d: tf.TensorInfo, b2d: tf.TensorInfo) => {
      const attrs = { transposeA: false, transposeB: false };
      return stock.kernelFunc({ inputs: { a: a2d, b: b2d }, backend, attrs }) as tf.TensorInfo;
    };
    const swapped = swappedProduct(backend, a, b, transposeA, transposeB, product2d);
    if (swapped !== undefined) return swapped;
    const ops = prepare(backend, a, b, transposeA, transposeB);
    if (ops === undefined) return stock.kernelFunc(args);
    try {
      return runBatched(ops, product2d);
    } finally {
      for (const t of ops.temps) release(backend, t);
    }
  };
}

/** A bias or PReLU weight of shape [n]: it applies per output column, so rows may be folded. */
function perColumn(t: tf.TensorInfo | undefined, n: number): boolean {
  return t == null || (t.shape.length === 1 && t.shape[0] === n);
}

function fusedMatMulKernel(stock: tf.KernelConfig): tf.KernelFunc {
  return (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
    const ops = prepare(backend, a!, b!, attrs.transposeA, attrs.transposeB);
    if (ops === undefined) return stock.kernelFunc(args);
    try {
      const foldable = sizeOf(ops.outerB) === 1 && perColumn(bias, ops.n) && perColumn(preluActivationWeights, ops.n);
      const inputs = { bias, preluActivationWeights };
      const untransposed = { ...args.attrs, transposeA: false, transposeB: false };
      if (!foldable) {
        // Still saves the naive loop's transposed access pattern; batching stays stock.
        return stock.kernelFunc({ inputs: { ...inputs, a: ops.a, b: ops.b }, backend, attrs: untransposed });
      }
      return runBatched(ops, (a2d, b2d) => {
        // The stock fused kernel reads its operands as rank 3, as tfjs-core's fused op passes them.
        const a3d = viewAs(a2d, [1, ...a2d.shape]);
        const b3d = viewAs(b2d, [1, ...b2d.shape]);
        const out = stock.kernelFunc({ inputs: { ...inputs, a: a3d, b: b3d }, backend, attrs: untransposed });
        return out as tf.TensorInfo;
      });
    } finally {
      for (const t of ops.temps) release(backend, t);
    }
  };
}

/** Requires the stock kernel: these wrappers delegate every 2-D product to it. */
function wrapStock(make: (stock: tf.KernelConfig) => tf.KernelFunc, name: string) {
  return (stock: tf.KernelConfig | undefined) => {
    if (stock === undefined) throw new Error(`prefkit-wasm-matmul: the wasm backend has no stock ${name} kernel`);
    return { kernelFunc: make(stock), setupFunc: stock.setupFunc, disposeFunc: stock.disposeFunc };
  };
}

/**
 * prefkit's wasm matmul kernels (`BatchMatMul`, `_FusedMatMul`) as a {@link KernelPlugin}.
 * Registered by {@link initEngine} unless built-in kernels are disabled.
 */
export function wasmMatMulPlugin(): KernelPlugin {
  return defineKernelPlugin({
    name: "prefkit-wasm-matmul",
    backend: "wasm",
    kernels: [
      { kernelName: tf.BatchMatMul, build: wrapStock(batchMatMulKernel, tf.BatchMatMul) },
      { kernelName: tf._FusedMatMul, build: wrapStock(fusedMatMulKernel, tf._FusedMatMul) },
    ],
  });
}

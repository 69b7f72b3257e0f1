/**
 * Float64 references and error bounds for the native GEMM tests (gemm.test.ts).
 */

/** One operand as the addon takes it: element (r, c) of op(X) is data[offset + (trans ? c·ld + r : r·ld + c)]. */
export interface Operand {
  data: Float32Array | Uint16Array;
  offset: number;
  ld: number;
  trans: boolean;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** fp32 → bf16 bits, round to nearest even (NaNs are not used here). */
export function toBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bf16 bits → their value. */
export function fromBf16(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** Every element of `data` as a float64 (bf16 Uint16Arrays decoded). */
function decoded(data: Float32Array | Uint16Array): Float64Array {
  if (data instanceof Float32Array) return Float64Array.from(data);
  return Float64Array.from(data, (h) => fromBf16(h));
}

/** A deterministic generator of values in [-1, 1) (a 32-bit LCG; fast enough for millions of values). */
export function filled(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** The product's exact value S = Σ_k a_ik b_kj and its magnitude M = Σ_k |a_ik||b_kj|, both m × n in float64. */
export interface Reference {
  sum: Float64Array;
  magnitude: Float64Array;
}

/** S and M of op(A)·op(B) (m × k times k × n). */
export function reference(m: number, n: number, k: number, a: Operand, b: Operand): Reference {
  const av = decoded(a.data);
  const bv = decoded(b.data);
  // op(A) as a dense m × k and op(B) as a dense k × n, so the inner loop runs along memory.
  const ad = new Float64Array(m * k);
  const bd = new Float64Array(k * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) ad[i * k + p] = av[a.offset + (a.trans ? p * a.ld + i : i * a.ld + p)]!;
  for (let p = 0; p < k; p++)
    for (let j = 0; j < n; j++) bd[p * n + j] = bv[b.offset + (b.trans ? j * b.ld + p : p * b.ld + j)]!;
  const sum = new Float64Array(m * n);
  const magnitude = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    for (let p = 0; p < k; p++) {
      const x = ad[i * k + p]!;
      const ax = Math.abs(x);
      const brow = p * n;
      for (let j = 0; j < n; j++) {
        const y = bd[brow + j]!;
        sum[row + j]! += x * y;
        magnitude[row + j]! += ax * Math.abs(y);
      }
    }
  }
  return { sum, magnitude };
}

/**
 * The componentwise error bound of a product of `k` terms, relative to M = Σ|a||b| (times |alpha|)
 * and to |beta·C0|:  |Ĉ − C| ≤ rel·|alpha|·M + betaRel·|beta·C0|.
 *
 * fp32: rel = 1e-5, the tolerance the GEMM is held to (its typical error is ~√K·2⁻²⁴ of M).
 *
 * bf16 (operands rounded to bf16, products summed in fp32), derived rather than chosen: RNE to bf16's
 * 8 significant bits gives â = a(1 + εa) with |εa| ≤ u_b = 2⁻⁸, likewise b̂. The product of two bf16 is
 * exact in fp32 (8 + 8 significant bits ≤ 24), and |âb̂ − ab| ≤ (2u_b + u_b²)|a||b|. Summing K exact
 * products in fp32, in any order or blocking (vdpbf16ps adds one term at a time, each addition
 * rounded once), adds at most γ_K·Σ|â||b̂| with γ_K = Ku/(1 − Ku), u = 2⁻²⁴, and Σ|â||b̂| ≤
 * (1 + u_b)²·M. Scaling by alpha and adding beta·C0 round twice more (≤ 2u of each). So
 *   |Ĉ − C| ≤ |alpha|·(2⁻⁷ + 2⁻¹⁶ + 1.01·(K + 2)·2⁻²⁴)·M + 2⁻²³·|beta·C0|,
 * where 1.01 covers (1 + u_b)² and 1/(1 − Ku) for K ≤ 10⁵ (denormals, which vdpbf16ps flushes, do
 * not occur in these data).
 */
export function bound(dtype: "float32" | "bfloat16", k: number): { rel: number; betaRel: number } {
  if (dtype === "float32") return { rel: 1e-5, betaRel: 1e-5 };
  return { rel: 2 ** -7 + 2 ** -16 + 1.01 * (k + 2) * 2 ** -24, betaRel: 2 ** -23 };
}

/**
 * The worst ratio |Ĉ − C| / (rel·|alpha|·M + betaRel·|beta·C0|) over an m × n result at `c[cOffset]`
 * with leading dimension ldc; C = alpha·S + beta·C0. ≤ 1 means within the bound.
 */
export function worstRatio(
  c: Float32Array,
  cOffset: number,
  ldc: number,
  ref: Reference,
  m: number,
  n: number,
  opts: { alpha: number; beta: number; c0?: Float32Array; dtype: "float32" | "bfloat16"; k: number },
): number {
  const { rel, betaRel } = bound(opts.dtype, opts.k);
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const at = cOffset + i * ldc + j;
      const c0 = opts.c0 === undefined ? 0 : opts.c0[at]!;
      const exact = opts.alpha * ref.sum[i * n + j]! + opts.beta * c0;
      const allowed = rel * Math.abs(opts.alpha) * ref.magnitude[i * n + j]! + betaRel * Math.abs(opts.beta * c0);
      const err = Math.abs(c[at]! - exact);
      const ratio = err === 0 ? 0 : allowed === 0 ? Number.POSITIVE_INFINITY : err / allowed;
      if (!(ratio <= worst)) worst = Number.isNaN(ratio) ? Number.POSITIVE_INFINITY : ratio;
    }
  }
  return worst;
}

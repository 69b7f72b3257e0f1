/**
 * Issue 16: the decoding kernel of the native addon (gemv.h, the engine ABI's `gemv`): a few rows times a
 * weight stored `[n, k]` and read in place, against a float64 reference on every instruction-set path
 * this CPU has, with leading dimensions, beta accumulation and the tails of k and n; every row of the
 * result bit-identical whatever the number of rows around it and the thread count.
 */
import { createRequire } from "node:module";
import { afterAll, describe, expect, it } from "vitest";
import { type NativeAddon, type NativeIsa, nativeBlasStatus } from "../../src/engine/index.js";
import { filled, reference, worstRatio } from "./gemm-reference.js";

const status = nativeBlasStatus();
const underCi = process.env.CI === "true";
const insist = process.env.PREFKIT_NATIVE === "1";
if (!status.available && !underCi && !insist) console.warn(`native GEMV tests skipped: ${status.reason}`);
const addon: NativeAddon | undefined = status.available
  ? (createRequire(import.meta.url)(status.path) as NativeAddon)
  : undefined;
const isas: NativeIsa[] = addon?.gemmInfo().isas ?? [];
const threadsBefore = addon?.getNumThreads() ?? 1;
afterAll(() => addon?.setNumThreads(threadsBefore));

/** y = x·wᵀ (+ beta·y0) through the kernel: x [m, k] (leading dimension ldx), w [n, k] (ldw), y [m, n] (ldy). */
function gemv(
  m: number,
  n: number,
  k: number,
  x: Float32Array,
  w: Float32Array,
  opts: { isa?: NativeIsa; beta?: number; y0?: Float32Array; ldx?: number; ldw?: number; ldy?: number } = {},
): Float32Array {
  const ldy = opts.ldy ?? n;
  const y = opts.y0 ? opts.y0.slice() : new Float32Array(m * ldy);
  addon!.gemm({
    ...{ m, n, k, a: x, b: w, c: y, transB: true, gemv: true, beta: opts.beta ?? 0 },
    ...{ lda: opts.ldx ?? k, ldb: opts.ldw ?? k, ldc: ldy, ...(opts.isa ? { isa: opts.isa } : {}) },
  });
  return y;
}

describe.skipIf(!status.available && !underCi && !insist)("native GEMV (the decode step's products)", () => {
  it("is named in gemmInfo()", () => {
    expect(status.available).toBe(true);
    expect(addon!.gemmInfo().gemv).toMatch(/^(avx512|avx2|scalar)/);
  });

  it.each(isas)("%s: within the GEMM's fp32 bound of a float64 reference (k and n tails, m 1 to 9)", (isa) => {
    let worst = 0;
    let where = "";
    for (const [m, n, k] of [
      [1, 1, 1],
      [1, 7, 15],
      [1, 37, 577], // one row of X: blocks of 16 (or 12) weight rows, then of 4, then the n tail
      [2, 9, 16],
      [3, 13, 17],
      [4, 64, 576],
      [5, 131, 33],
      [8, 67, 1536],
      [9, 21, 100],
    ] as Array<[number, number, number]>) {
      const x = filled(m * k, m + k);
      const w = filled(n * k, n + 3 * k);
      const ref = reference(
        m,
        n,
        k,
        { data: x, offset: 0, ld: k, trans: false },
        { data: w, offset: 0, ld: k, trans: true },
      );
      const ratio = worstRatio(gemv(m, n, k, x, w, { isa }), 0, n, ref, m, n, {
        alpha: 1,
        beta: 0,
        dtype: "float32",
        k,
      });
      if (!(ratio <= worst)) [worst, where] = [ratio, `m=${m} n=${n} k=${k}`];
    }
    expect(worst, where).toBeLessThanOrEqual(1);
    expect(worst, "the comparison is not vacuous").toBeGreaterThan(0);
  });

  it.each(isas)("%s: leading dimensions and beta accumulate into Y; gaps stay untouched", (isa) => {
    const [m, n, k, ldx, ldw, ldy] = [3, 10, 37, 40, 41, 13];
    const x = filled(m * ldx, 1);
    const w = filled(n * ldw, 2);
    const y0 = filled(m * ldy, 3);
    const y = gemv(m, n, k, x, w, { isa, beta: 1, y0, ldx, ldw, ldy });
    const ref = reference(
      m,
      n,
      k,
      { data: x, offset: 0, ld: ldx, trans: false },
      { data: w, offset: 0, ld: ldw, trans: true },
    );
    expect(worstRatio(y, 0, ldy, ref, m, n, { alpha: 1, beta: 1, c0: y0, dtype: "float32", k })).toBeLessThanOrEqual(1);
    for (let i = 0; i < m; i++) for (let j = n; j < ldy; j++) expect(y[i * ldy + j]).toBe(y0[i * ldy + j]);
    // beta = 0 only writes Y: NaNs there do not propagate.
    const clean = gemv(m, n, k, x, w, { isa, y0: new Float32Array(m * ldy).fill(Number.NaN), ldx, ldw, ldy });
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) expect(Number.isNaN(clean[i * ldy + j])).toBe(false);
  });

  it.each(isas)("%s: each row's bits do not depend on the rows around it or on the thread count", (isa) => {
    const [m, n, k] = [8, 1031, 577];
    const x = filled(m * k, 7);
    const w = filled(n * k, 8);
    addon!.setNumThreads(1);
    const alone = Array.from({ length: m }, (_, i) => gemv(1, n, k, x.subarray(i * k, (i + 1) * k), w, { isa }));
    const together = [1, 2, 3].map((threads) => {
      addon!.setNumThreads(threads);
      return gemv(m, n, k, x, w, { isa });
    });
    addon!.setNumThreads(threadsBefore);
    for (const [t, y] of together.entries()) {
      for (let i = 0; i < m; i++) {
        const row = Buffer.from(y.buffer, i * n * 4, n * 4);
        expect(row.equals(Buffer.from(alone[i]!.buffer)), `row ${i}, ${t + 1} thread(s)`).toBe(true);
      }
    }
  });

  it("refuses what it does not compute, in one line", () => {
    const x = filled(4, 1);
    const w = filled(4, 2);
    const c = new Float32Array(1);
    expect(() => addon!.gemm({ m: 1, n: 1, k: 4, a: x, b: w, c, gemv: true })).toThrow(
      /gemv takes fp32 a times a weight/,
    );
    expect(() => addon!.gemm({ m: 1, n: 1, k: 4, a: x, b: w, c, gemv: true, transB: true, alpha: 2 })).toThrow(
      /alpha 1/,
    );
  });
});

/**
 * Issue 14: the native addon's own GEMM (packages/core/native/src/gemm) against a float64 reference
 * computed here: every transpose combination, sizes 1–65 and 1000+ in each dimension, non-contiguous
 * leading dimensions and offsets, alpha/beta accumulation, strided batches, pre-packed B, bf16
 * operands, on every instruction-set path this CPU has (forced per call, and through PREFKIT_ISA in
 * child processes), bit-identical across thread counts. Bounds: see gemm-reference.ts.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { afterAll, describe, expect, it } from "vitest";
import { type NativeAddon, type NativeGemmOptions, type NativeIsa, nativeBlasStatus } from "../../src/engine/index.js";
import { filled, type Operand, reference, toBf16, worstRatio } from "./gemm-reference.js";

const status = nativeBlasStatus();
const underCi = process.env.CI === "true";
if (!status.available && !underCi) console.warn(`native GEMM tests skipped: ${status.reason}`);
const addon: NativeAddon | undefined = status.available
  ? (createRequire(import.meta.url)(status.path) as NativeAddon)
  : undefined;
const isas: NativeIsa[] = addon?.gemmInfo().isas ?? [];
const DTYPES = ["float32", "bfloat16"] as const;
type Dtype = (typeof DTYPES)[number];
const PATHS = isas.flatMap((isa) => DTYPES.map((dtype) => [isa, dtype] as [NativeIsa, Dtype]));
const TRANSPOSES: Array<[boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];
const threadsBefore = addon?.getNumThreads() ?? 1;
afterAll(() => addon?.setNumThreads(threadsBefore));

/** A dense problem: op(A) m × k, op(B) k × n, with fresh values for each shape and transpose. */
function problem(m: number, n: number, k: number, ta: boolean, tb: boolean, seed: number) {
  const a: Operand = { data: filled(m * k, seed), offset: 0, ld: ta ? m : k, trans: ta };
  const b: Operand = { data: filled(k * n, seed + 1), offset: 0, ld: tb ? k : n, trans: tb };
  return { m, n, k, a, b };
}

const cache = new Map<string, { p: ReturnType<typeof problem>; ref: ReturnType<typeof reference> }>();
/** The problem and its reference, computed once and shared by every path. */
function cached(m: number, n: number, k: number, ta: boolean, tb: boolean) {
  const key = `${m},${n},${k},${ta},${tb}`;
  let hit = cache.get(key);
  if (hit === undefined) {
    const p = problem(m, n, k, ta, tb, m * 7 + n * 13 + k * 29 + (ta ? 1 : 0) + (tb ? 2 : 0));
    hit = { p, ref: reference(m, n, k, p.a, p.b) };
    cache.set(key, hit);
  }
  return hit;
}

function run(p: ReturnType<typeof problem>, extra: Partial<NativeGemmOptions>): Float32Array {
  const c = new Float32Array(p.m * p.n);
  addon!.gemm({ m: p.m, n: p.n, k: p.k, a: p.a.data, b: p.b.data, c, transA: p.a.trans, transB: p.b.trans, ...extra });
  return c;
}

/** The worst bound ratio of a dense product over shapes × transposes on one path. */
function worstOver(shapes: number[][], isa: NativeIsa, dtype: Dtype): { ratio: number; where: string } {
  let ratio = 0;
  let where = "";
  for (const [m, n, k] of shapes) {
    for (const [ta, tb] of TRANSPOSES) {
      const { p, ref } = cached(m!, n!, k!, ta, tb);
      const r = worstRatio(run(p, { isa, dtype }), 0, n!, ref, m!, n!, { alpha: 1, beta: 0, dtype, k: k! });
      if (!(r <= ratio)) [ratio, where] = [r, `m=${m} n=${n} k=${k} transA=${ta} transB=${tb}`];
    }
  }
  return { ratio, where };
}

const SIZES = [1, 3, 17, 63, 64, 65];
const SMALL = SIZES.flatMap((m) => SIZES.flatMap((n) => SIZES.map((k) => [m, n, k])));
// 1000+ in each dimension in turn (more than one K block, M block and tile row), and past one N block.
const LARGE = [
  [1031, 17, 65],
  [65, 1031, 17],
  [17, 65, 1031],
  [1031, 1031, 3],
  [3, 1031, 1031],
  [1031, 3, 1031],
  [3, 5000, 65],
];

describe.skipIf(!status.available && !underCi)("native GEMM (float64 reference)", () => {
  it("is built under CI and reports its paths", () => {
    expect(status.available).toBe(true);
    const info = addon!.gemmInfo();
    expect(info.isas).toContain("scalar");
    expect(info.isas[0]).toBe(info.detectedIsa);
    expect(info.isas).toContain(info.isa);
    expect(info.blas).toBe(process.env.PREFKIT_BLAS === "openblas" ? "openblas" : "builtin");
    expect(status.gemm).toEqual(info);
  });

  it.each(PATHS)("%s %s: every transpose, sizes 1, 3, 17, 63, 64, 65 in each dimension", (isa, dtype) => {
    const { ratio, where } = worstOver(SMALL, isa, dtype);
    expect(ratio, where).toBeLessThanOrEqual(1);
  });

  it.each(PATHS)("%s %s: 1000+ in each dimension", (isa, dtype) => {
    const { ratio, where } = worstOver(LARGE, isa, dtype);
    expect(ratio, where).toBeLessThanOrEqual(1);
  });

  it.each(PATHS)("%s %s: leading dimensions, offsets, alpha and beta; gaps stay untouched", (isa, dtype) => {
    for (const [m, n, k, ta, tb, alpha, beta] of [
      [37, 70, 129, false, true, 1, 1],
      [70, 37, 64, true, false, -0.5, 0.25],
      [5, 130, 600, true, true, 2, -1],
      [129, 9, 17, false, false, 1, 0],
    ] as Array<[number, number, number, boolean, boolean, number, number]>) {
      const lda = (ta ? m : k) + 7;
      const ldb = (tb ? k : n) + 3;
      const ldc = n + 5;
      const a: Operand = { data: filled(11 + lda * (ta ? k : m), m), offset: 11, ld: lda, trans: ta };
      const b: Operand = { data: filled(4 + ldb * (tb ? n : k), n), offset: 4, ld: ldb, trans: tb };
      const c0 = filled(9 + ldc * m + 2, k);
      const c = c0.slice();
      addon!.gemm({
        ...{ m, n, k, a: a.data, b: b.data, c, transA: ta, transB: tb, lda, ldb, ldc, alpha, beta },
        ...{ aOffset: a.offset, bOffset: b.offset, cOffset: 9, isa, dtype },
      });
      const ratio = worstRatio(c, 9, ldc, reference(m, n, k, a, b), m, n, { alpha, beta, c0, dtype, k });
      expect(ratio, `m=${m} n=${n} k=${k}`).toBeLessThanOrEqual(1);
      // Everything outside the m × n window (offset, row gaps, tail) keeps its bits.
      for (let i = 0; i < c.length; i++) {
        const inside = i >= 9 && (i - 9) % ldc < n && Math.floor((i - 9) / ldc) < m;
        if (!inside) expect(c[i], `c[${i}]`).toBe(c0[i]);
      }
    }
    // beta = 0 only writes C: NaNs there do not propagate.
    const { p, ref } = cached(17, 63, 65, false, true);
    const c = new Float32Array(17 * 63).fill(Number.NaN);
    addon!.gemm({ m: 17, n: 63, k: 65, a: p.a.data, b: p.b.data, c, transB: true, isa, dtype });
    expect(worstRatio(c, 0, 63, ref, 17, 63, { alpha: 1, beta: 0, dtype, k: 65 })).toBeLessThanOrEqual(1);
  });

  it.each(PATHS)("%s %s: strided batches, with a shared operand", (isa, dtype) => {
    const [m, n, k, batch] = [19, 66, 70, 5];
    const a = filled(batch * (m * k + 3), 1);
    const b = filled(k * n, 2);
    const c0 = filled(batch * (m * n + 1), 3);
    const c = c0.slice();
    addon!.gemm({ m, n, k, a, b, c, batch, strideA: m * k + 3, strideB: 0, strideC: m * n + 1, beta: 0.5, isa, dtype });
    for (let e = 0; e < batch; e++) {
      const ref = reference(
        m,
        n,
        k,
        { data: a, offset: e * (m * k + 3), ld: k, trans: false },
        {
          ...{ data: b, offset: 0, ld: n, trans: false },
        },
      );
      const ratio = worstRatio(c, e * (m * n + 1), n, ref, m, n, { alpha: 1, beta: 0.5, c0, dtype, k });
      expect(ratio, `entry ${e}`).toBeLessThanOrEqual(1);
    }
  });

  it.each(PATHS)("%s %s: bit-identical on 1, 2 and 3 threads", (isa, dtype) => {
    // Rows split with a shared B (tall), columns split (m below a tile per thread), a batch.
    const shapes: Array<[number, number, number, boolean, boolean, number]> = [
      [300, 530, 700, false, true, 1],
      [5, 3000, 200, true, false, 1],
      [64, 96, 80, false, false, 6],
    ];
    for (const [m, n, k, ta, tb, batch] of shapes) {
      const a = filled(batch * m * k, 5);
      const b = filled(batch * k * n, 6);
      const results = [1, 2, 3].map((threads) => {
        addon!.setNumThreads(threads);
        const c = new Float32Array(batch * m * n);
        addon!.gemm({ m, n, k, a, b, c, transA: ta, transB: tb, batch, isa, dtype });
        return Buffer.from(c.buffer);
      });
      addon!.setNumThreads(threadsBefore);
      expect(results[1]!.equals(results[0]!), `2 threads, m=${m} n=${n} k=${k}`).toBe(true);
      expect(results[2]!.equals(results[0]!), `3 threads, m=${m} n=${n} k=${k}`).toBe(true);
    }
  });

  it.each(PATHS)("%s %s: a pre-packed B gives the same bits, at 2 bytes per bf16 element", (isa, dtype) => {
    for (const [m, n, k, tb] of [
      [70, 1100, 600, true],
      [33, 200, 1100, false],
    ] as Array<[number, number, number, boolean]>) {
      const { p } = cached(m, n, k, false, tb);
      const packed = addon!.gemmPack({ b: p.b.data, k, n, transB: tb, dtype, isa });
      const plain = run(p, { isa, dtype });
      const c = new Float32Array(m * n);
      addon!.gemm({ m, n, k, a: p.a.data, b: packed, c });
      expect(Buffer.from(c.buffer).equals(Buffer.from(plain.buffer)), `m=${m} n=${n} k=${k}`).toBe(true);
      const { bytes } = addon!.gemmPackedInfo(packed);
      const perElement = dtype === "bfloat16" ? 2 : 4;
      expect(bytes).toBeGreaterThanOrEqual(perElement * k * n);
      expect(bytes).toBeLessThan(perElement * (k + 2) * (n + 48));
    }
  });

  it.each(PATHS)(
    "%s %s: a pack used transposed (dx = dy·W from the pack of Wᵀ) and repacked in place",
    (isa, dtype) => {
      // W [out, in] packed once as op(B) = Wᵀ (k = in, n = out); the transposed product dx = dy·W derives its
      // panels per block from that pack. Odd sizes, several K blocks of the pack and of the product, a bf16 W.
      for (const [m, out, inF, bits] of [
        [33, 100, 97, false],
        [17, 1031, 65, true],
        [70, 65, 2100, true],
        [5, 2500, 301, false],
      ] as Array<[number, number, number, boolean]>) {
        const wValues = filled(out * inF, out + inF);
        const w = bits ? Uint16Array.from(wValues, toBf16) : wValues;
        const dy = filled(m * out, m);
        const packed = addon!.gemmPack({ b: w, transB: true, k: inF, n: out, dtype, isa });
        const plain = new Float32Array(m * inF);
        addon!.gemm({ m, n: inF, k: out, a: dy, b: w, c: plain, dtype, isa });
        const dx = new Float32Array(m * inF);
        addon!.gemm({ m, n: inF, k: out, a: dy, b: packed, transB: true, c: dx });
        expect(Buffer.from(dx.buffer).equals(Buffer.from(plain.buffer)), `m=${m} out=${out} in=${inF}`).toBe(true);
        const ref = reference(
          m,
          inF,
          out,
          { data: dy, offset: 0, ld: out, trans: false },
          { data: w, offset: 0, ld: inF, trans: false },
        );
        expect(worstRatio(dx, 0, inF, ref, m, inF, { alpha: 1, beta: 0, dtype, k: out })).toBeLessThanOrEqual(1);
        // A new W packed into the same memory: both products follow it.
        const w2Values = filled(out * inF, 7);
        const w2 = bits ? Uint16Array.from(w2Values, toBf16) : w2Values;
        addon!.gemmRepack(packed, { b: w2, transB: true, k: inF, n: out, dtype, isa });
        const x = filled(m * inF, 3);
        const [y, yPlain] = [new Float32Array(m * out), new Float32Array(m * out)];
        addon!.gemm({ m, n: out, k: inF, a: x, b: packed, c: y });
        addon!.gemm({ m, n: out, k: inF, a: x, b: w2, transB: true, c: yPlain, dtype, isa });
        expect(Buffer.from(y.buffer).equals(Buffer.from(yPlain.buffer))).toBe(true);
        addon!.gemm({ m, n: inF, k: out, a: dy, b: packed, transB: true, c: dx });
        addon!.gemm({ m, n: inF, k: out, a: dy, b: w2, c: plain, dtype, isa });
        expect(Buffer.from(dx.buffer).equals(Buffer.from(plain.buffer))).toBe(true);
      }
      // An fp32 pack for fp32 products holds 4 bytes per element: a bf16 source does not fit it (a pack for
      // bf16 products takes either); nor does another shape.
      const packed = addon!.gemmPack({ b: new Float32Array(12), k: 3, n: 4, dtype, isa });
      const repack = (b: Float32Array | Uint16Array, k: number) => () =>
        addon!.gemmRepack(packed, { b, k, n: 4, dtype, isa });
      if (dtype === "float32") expect(repack(new Uint16Array(12), 3)).toThrow(/does not fit the pack/);
      else expect(repack(new Uint16Array(12), 3)).not.toThrow();
      expect(repack(new Float32Array(16), 4)).toThrow(/does not fit the pack/);
    },
  );

  it.each(PATHS)("%s %s: bf16 operands (Uint16Array) on either side", (isa, dtype) => {
    const { p } = cached(63, 65, 200, true, false);
    const aBits = Uint16Array.from(p.a.data as Float32Array, toBf16);
    const bBits = Uint16Array.from(p.b.data as Float32Array, toBf16);
    for (const [a, b] of [
      [aBits, p.b.data],
      [p.a.data, bBits],
      [aBits, bBits],
    ] as Array<[Float32Array | Uint16Array, Float32Array | Uint16Array]>) {
      const c = new Float32Array(63 * 65);
      addon!.gemm({ m: 63, n: 65, k: 200, a, b, c, transA: true, isa, dtype });
      const ref = reference(63, 65, 200, { ...p.a, data: a }, { ...p.b, data: b });
      expect(worstRatio(c, 0, 65, ref, 63, 65, { alpha: 1, beta: 0, dtype, k: 200 })).toBeLessThanOrEqual(1);
    }
  });

  it("PREFKIT_ISA forces each path in a fresh process, with the same bits as the per-call choice", () => {
    const script = `const a = require(${JSON.stringify(status.path)}); a.setNumThreads(2);
      const c = new Float32Array(40 * 50); const f = (n, s) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s));
      a.gemm({ m: 40, n: 50, k: 300, a: f(40 * 300, 0.1), b: f(300 * 50, 0.2), c, transB: false });
      const b = new Float32Array(40 * 50); a.gemm({ m: 40, n: 50, k: 300, a: f(40 * 300, 0.1), b: f(300 * 50, 0.2), c: b, dtype: "bfloat16" });
      console.log(JSON.stringify({ isa: a.gemmInfo().isa, f32: Buffer.from(c.buffer).toString("base64"), bf16: Buffer.from(b.buffer).toString("base64") }));`;
    const child = (env: Record<string, string>) =>
      spawnSync(process.execPath, ["-e", script], {
        env: { ...process.env, PREFKIT_BLAS: "", ...env },
        encoding: "utf8",
      });
    const f = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s));
    addon!.setNumThreads(2);
    for (const isa of isas) {
      const r = child({ PREFKIT_ISA: isa });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { isa: string; f32: string; bf16: string };
      expect(out.isa).toBe(isa);
      for (const dtype of DTYPES) {
        const c = new Float32Array(40 * 50);
        addon!.gemm({ m: 40, n: 50, k: 300, a: f(40 * 300, 0.1), b: f(300 * 50, 0.2), c, dtype, isa });
        expect(Buffer.from(c.buffer).toString("base64"), `${isa} ${dtype}`).toBe(
          dtype === "float32" ? out.f32 : out.bf16,
        );
      }
    }
    addon!.setNumThreads(threadsBefore);
    const bogus = child({ PREFKIT_ISA: "avx9000" });
    expect(bogus.status).not.toBe(0);
    expect(bogus.stderr).toContain("PREFKIT_ISA=avx9000 is not one of avx512bf16, avx512, avx2, scalar");
    const blas = child({ PREFKIT_BLAS: "mkl" });
    expect(blas.stderr).toContain("PREFKIT_BLAS=mkl is not one of openblas, builtin");
  });

  const openblas = ["/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "/usr/lib/aarch64-linux-gnu/libopenblas.so.0"].some(
    existsSync,
  );
  it.skipIf(!openblas)("routes fp32 products to OpenBLAS on request (bf16 ones stay built in)", () => {
    const { p, ref } = cached(65, 1031, 17, true, true);
    const c = run(p, { blas: "openblas" });
    expect(worstRatio(c, 0, 1031, ref, 65, 1031, { alpha: 1, beta: 0, dtype: "float32", k: 17 })).toBeLessThanOrEqual(
      1,
    );
    const isa = addon!.gemmInfo().isa;
    const bf16 = run(p, { blas: "openblas", dtype: "bfloat16" });
    expect(Buffer.from(bf16.buffer).equals(Buffer.from(run(p, { isa, dtype: "bfloat16" }).buffer))).toBe(true);
  });

  it("checks its arguments", () => {
    const a = new Float32Array(12);
    const b = new Float32Array(12);
    const c = new Float32Array(9);
    const call = (o: Partial<NativeGemmOptions>) => () => addon!.gemm({ m: 3, n: 3, k: 4, a, b, c, ...o });
    expect(call({})).not.toThrow();
    expect(call({ k: 5 })).toThrow(/a is too short/);
    expect(call({ lda: 3 })).toThrow(/leading dimension of a/);
    expect(call({ c: new Float32Array(8) })).toThrow(/c is too short/);
    expect(call({ c: a.subarray(0, 9) })).toThrow(/c overlaps a or b/);
    expect(call({ batch: 2, strideC: 4, c: new Float32Array(20), strideA: 0, strideB: 0 })).toThrow(
      /C entries overlap/,
    );
    expect(call({ dtype: "float16" as never })).toThrow(/dtype must be/);
    expect(call({ isa: "neon" as never })).toThrow(/isa must be one of/);
    expect(call({ a: new Int32Array(12) as never })).toThrow(/a must be a Float32Array or a Uint16Array/);
  });
});

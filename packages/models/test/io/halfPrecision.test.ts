import { describe, expect, it } from "vitest";
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from "../../src/io/index.js";

function bitsToF32(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0]!;
}

describe("float16", () => {
  it("converts exactly representable values exactly", () => {
    const values = new Float32Array([0, -0, 1, -1, 0.5, 2, 65504, -65504, 2 ** -14, 2 ** -24, 512.5]);
    const back = f16ToFloat32(float32ToF16(values));
    expect(Array.from(back)).toEqual(Array.from(values));
    expect(Object.is(back[1], -0)).toBe(true);
  });

  it("matches known bit patterns", () => {
    expect(Array.from(float32ToF16(new Float32Array([1, -2, 65504, Infinity, -Infinity, 2 ** -24])))).toEqual([
      0x3c00, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x0001,
    ]);
  });

  it("rounds to nearest even, overflows to infinity, keeps NaN", () => {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1).
    // 1 + 3*2^-11 is halfway between 1+2^-10 and 1+2^-9: ties to even (1 + 2^-9).
    const x = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, 1e6, NaN, 2 ** -25, 2 ** -25 * 1.5]);
    const h = f16ToFloat32(float32ToF16(x));
    expect(h[0]).toBe(1);
    expect(h[1]).toBe(1 + 2 ** -9);
    expect(h[2]).toBe(65504);
    expect(h[3]).toBe(Infinity);
    expect(h[4]).toBe(Infinity);
    expect(Number.isNaN(h[5])).toBe(true);
    expect(h[6]).toBe(0); // exactly half the smallest subnormal: ties to even (0)
    expect(h[7]).toBe(2 ** -24);
  });

  it("round-trips normal-range values within 1e-3 relative error", () => {
    const x = new Float32Array(10_000);
    for (let i = 0; i < x.length; i++) x[i] = (i % 2 ? -1 : 1) * 6.2e-5 * 1.0011 ** i;
    const back = f16ToFloat32(float32ToF16(x));
    let worst = 0;
    for (let i = 0; i < x.length; i++)
      if (Math.abs(x[i]!) < 65504) worst = Math.max(worst, Math.abs(back[i]! - x[i]!) / Math.abs(x[i]!));
    expect(worst).toBeLessThanOrEqual(2 ** -11);
    expect(worst).toBeGreaterThan(0);
  });

  it("round-trips every half value exactly through float32", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = float32ToF16(f16ToFloat32(all));
    for (let i = 0; i < 65536; i++) {
      const nan = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (!nan && back[i] !== i) throw new Error(`half ${i.toString(16)} came back as ${back[i]!.toString(16)}`);
    }
  });
});

describe("bfloat16", () => {
  it("keeps the upper 16 bits with round to nearest even", () => {
    const x = new Float32Array([bitsToF32(0x3f808000), bitsToF32(0x3f818000), bitsToF32(0x3f808001), 1, -3.5]);
    expect(Array.from(float32ToBf16(x))).toEqual([0x3f80, 0x3f82, 0x3f81, 0x3f80, 0xc060]);
  });

  it("round-trips within 3.9e-3 relative error and keeps specials", () => {
    const x = new Float32Array(10_000);
    for (let i = 0; i < x.length; i++) x[i] = (i % 3 ? 1 : -1) * 1e-30 * 1.0137 ** i;
    const back = bf16ToFloat32(float32ToBf16(x));
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(back[i]! - x[i]!) / Math.abs(x[i]!));
    expect(worst).toBeLessThanOrEqual(3.9e-3);
    const special = bf16ToFloat32(float32ToBf16(new Float32Array([Infinity, -Infinity, NaN, -0, 3.4e38])));
    expect(special[0]).toBe(Infinity);
    expect(special[1]).toBe(-Infinity);
    expect(Number.isNaN(special[2])).toBe(true);
    expect(Object.is(special[3], -0)).toBe(true);
    expect(special[4]).toBe(Infinity); // rounds past the largest finite bf16
  });

  it("writes into a caller-provided buffer and rejects one that is too short", () => {
    const out = new Float32Array(3);
    expect(bf16ToFloat32(new Uint16Array([0x3f80, 0x4000]), out)).toBe(out);
    expect(Array.from(out)).toEqual([1, 2, 0]);
    expect(() => f16ToFloat32(new Uint16Array(4), new Float32Array(2))).toThrow(RangeError);
  });
});

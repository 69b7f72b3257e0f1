import { describe, expect, it } from "vitest";
import { Rng } from "../../src/rng/index.js";

describe("Rng", () => {
  it("gives the same stream for the same seed and different streams for different seeds", () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const c = new Rng(8);
    const sa = Array.from({ length: 16 }, () => a.nextUint32());
    const sb = Array.from({ length: 16 }, () => b.nextUint32());
    const sc = Array.from({ length: 16 }, () => c.nextUint32());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
  });

  it("continues exactly from a saved state (JSON round-trip)", () => {
    const r = new Rng(123);
    for (let i = 0; i < 10; i++) r.next();
    const saved = JSON.parse(JSON.stringify(r.getState()));
    const expected = Array.from({ length: 8 }, () => r.next());
    const resumed = Rng.fromState(saved);
    expect(Array.from({ length: 8 }, () => resumed.next())).toEqual(expected);
  });

  it("produces uniform floats in [0, 1) with a plausible mean and normals with unit variance", () => {
    const r = new Rng(1);
    const n = 20000;
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const u = r.next();
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      sum += u;
      const z = r.normal();
      sq += z * z;
    }
    expect(sum / n).toBeCloseTo(0.5, 1);
    expect(sq / n).toBeCloseTo(1, 1);
  });

  it("shuffles into a permutation without touching the input", () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const out = new Rng(3).shuffle(items);
    expect(items).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect([...out].sort((x, y) => x - y)).toEqual(items);
    expect(out).not.toEqual(items);
    expect(new Rng(3).permutation(50)).toEqual(out);
  });

  it("rejects a foreign state and a non-positive range", () => {
    expect(() => Rng.fromState({ algorithm: "mt19937" as never, s: [1, 2, 3, 4] })).toThrow(/unsupported RNG state/);
    expect(() => new Rng(1).int(0)).toThrow(/n > 0/);
  });
});

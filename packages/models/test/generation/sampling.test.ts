/** The JS sampler: warpers in HF's order, their support, seeded draws, log-probs. */
import { ConfigError, Rng } from "@prefkit/core";
import { argmax, sampleFromDistribution, sampleToken, samplingDistribution, tokenLogProb } from "@prefkit/models";
import { describe, expect, it } from "vitest";

const LOGITS = Float32Array.from([2.0, 0.5, 3.0, -1.0, 3.0, 1.0, 0.0, 2.5]);

function softmax(xs: ArrayLike<number>, t = 1): number[] {
  const scaled = Array.from(xs, (x) => x / t);
  const m = Math.max(...scaled);
  const e = scaled.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function support(p: Float64Array): number[] {
  return [...p.keys()].filter((i) => p[i]! > 0);
}

describe("sampling", () => {
  it("argmax takes the first maximum", () => {
    expect(argmax(LOGITS)).toBe(2);
    expect(argmax([1, 1, 1])).toBe(0);
  });

  it("plain temperature sampling uses softmax(logits / T) over the whole vocabulary", () => {
    const p = samplingDistribution(LOGITS, { temperature: 0.5 });
    const expected = softmax(LOGITS, 0.5);
    for (const [i, q] of expected.entries()) expect(p[i]).toBeCloseTo(q, 12);
  });

  it("top-k keeps the k largest logits, ties at the k-th included (HF TopKLogitsWarper)", () => {
    expect(support(samplingDistribution(LOGITS, { topK: 1 }))).toEqual([2, 4]); // tie at 3.0
    expect(support(samplingDistribution(LOGITS, { topK: 3 }))).toEqual([2, 4, 7]);
    expect(support(samplingDistribution(LOGITS, { topK: 4 }))).toEqual([0, 2, 4, 7]);
    const p = samplingDistribution(LOGITS, { topK: 4 });
    const kept = softmax([2.0, 3.0, 3.0, 2.5]);
    expect([p[0], p[2], p[4], p[7]].map((x) => Number(x!.toFixed(12)))).toEqual(kept.map((x) => Number(x.toFixed(12))));
    expect(support(samplingDistribution(LOGITS, { topK: 100 }))).toHaveLength(8);
  });

  it("top-p keeps the smallest most-likely set with mass ≥ p (HF TopPLogitsWarper), at least one token", () => {
    const probs = softmax(LOGITS);
    const order = [...probs.keys()].sort((a, b) => probs[b]! - probs[a]! || a - b);
    for (const topP of [0.01, 0.3, 0.5, 0.8, 0.95, 0.999]) {
      let mass = 0;
      const expected: number[] = [];
      for (const i of order) {
        if (expected.length > 0 && mass >= topP) break;
        expected.push(i);
        mass += probs[i]!;
      }
      const p = samplingDistribution(LOGITS, { topP });
      expect(support(p), `topP ${topP}`).toEqual(expected.sort((a, b) => a - b));
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    // temperature first, then top-k, then top-p on the renormalised top-k distribution
    expect(support(samplingDistribution(LOGITS, { topK: 4, topP: 0.5 }))).toEqual([2, 4]);
    expect(support(samplingDistribution(LOGITS, { temperature: 10, topP: 0.5 }))).toHaveLength(4);
  });

  it("draws follow the distribution and are reproducible per seed", () => {
    const draw = (seed: number, n: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: n }, () => sampleToken(LOGITS, { topK: 4 }, rng));
    };
    expect(draw(1, 50)).toEqual(draw(1, 50));
    expect(draw(1, 50)).not.toEqual(draw(2, 50));
    const n = 40_000;
    const counts = new Array(8).fill(0);
    for (const t of draw(3, n)) counts[t]++;
    const p = samplingDistribution(LOGITS, { topK: 4 });
    for (let i = 0; i < 8; i++) {
      const sd = Math.sqrt((p[i]! * (1 - p[i]!)) / n);
      expect(Math.abs(counts[i] / n - p[i]!), `token ${i}`).toBeLessThanOrEqual(5 * sd + 1e-12);
    }
  });

  it("plain temperature sampling (its allocation-free path) draws exactly what the distribution gives", () => {
    // A vocabulary with masked (-Infinity) and underflowing logits, and draws near the CDF's steps.
    const rng = new Rng(11);
    const logits = Float32Array.from({ length: 5000 }, (_, i) =>
      i % 97 === 0 ? Number.NEGATIVE_INFINITY : i % 89 === 0 ? -1e4 : 1.5 * rng.normal(),
    );
    for (const temperature of [1, 0.7, 1.9]) {
      const fast = new Rng(3);
      const reference = new Rng(3);
      const distribution = samplingDistribution(logits, { temperature });
      const drawn = Array.from({ length: 300 }, () => sampleToken(logits, { temperature }, fast));
      const expected = Array.from({ length: 300 }, () => sampleFromDistribution(distribution, reference));
      expect(drawn).toEqual(expected);
      expect(new Set(drawn).size).toBeGreaterThan(50);
      expect(drawn.every((t) => Number.isFinite(logits[t]!) && logits[t]! > -1e4)).toBe(true);
    }
  });

  it("tokenLogProb is log softmax(logits / T) at the token, over the full vocabulary", () => {
    for (const t of [1, 0.7]) {
      const expected = Math.log(softmax(LOGITS, t)[5]!);
      expect(tokenLogProb(LOGITS, 5, t)).toBeCloseTo(expected, 10);
    }
  });

  it("rejects bad warper values with a ConfigError naming the field", () => {
    expect(() => samplingDistribution(LOGITS, { temperature: 0 })).toThrow(ConfigError);
    expect(() => samplingDistribution(LOGITS, { temperature: -1 })).toThrow(/temperature/);
    expect(() => samplingDistribution(LOGITS, { topK: -1 })).toThrow(/topK/);
    expect(() => samplingDistribution(LOGITS, { topP: 1.5 })).toThrow(/topP/);
  });
});

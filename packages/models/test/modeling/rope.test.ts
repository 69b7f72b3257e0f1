/** RoPE frequencies against independent float64 formulas (Meta's Llama 3.1 `apply_scaling`). */
import { tf } from "@prefkit/core";
import { computeInverseFrequencies, RotaryEmbedding } from "@prefkit/models";
import { describe, expect, it } from "vitest";
import { useBackend } from "./golden.js";

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

describe("RoPE", () => {
  it("default frequencies are 1 / θ^(2i/d)", () => {
    const inv = computeInverseFrequencies(64, 10000, { type: "default" });
    expect(inv).toHaveLength(32);
    inv.forEach((f, i) => {
      expect(relErr(f, 1 / 10000 ** ((2 * i) / 64))).toBeLessThan(1e-6);
    });
  });

  it("llama3 scaling matches Meta's apply_scaling loop (Llama 3.1 8B parameters)", () => {
    const [dim, theta, factor, low, high, old] = [128, 500000, 8, 1, 4, 8192];
    const inv = computeInverseFrequencies(dim, theta, {
      type: "llama3",
      factor,
      lowFreqFactor: low,
      highFreqFactor: high,
      originalMaxPositionEmbeddings: old,
    });
    const bands = { kept: 0, smoothed: 0, divided: 0 };
    for (let i = 0; i < dim / 2; i++) {
      const freq = 1 / theta ** ((2 * i) / dim);
      const wavelen = (2 * Math.PI) / freq;
      let expected: number;
      if (wavelen < old / high) {
        expected = freq;
        bands.kept++;
      } else if (wavelen > old / low) {
        expected = freq / factor;
        bands.divided++;
      } else {
        const smooth = (old / wavelen - low) / (high - low);
        expected = ((1 - smooth) * freq) / factor + smooth * freq;
        bands.smoothed++;
      }
      expect(relErr(inv[i]!, expected), `frequency ${i}`).toBeLessThan(1e-5);
    }
    expect(bands.kept).toBeGreaterThan(0);
    expect(bands.smoothed).toBeGreaterThan(0);
    expect(bands.divided).toBeGreaterThan(0);
  });

  it("rotate_half as a matmul equals concat(−x2, x1)", async () => {
    await useBackend("cpu");
    const rope = new RotaryEmbedding(8, 10000, { type: "default" });
    const x = tf.randomNormal([2, 3, 4, 8], 0, 1, "float32", 4) as tf.Tensor4D;
    const positions = tf.tensor2d([[0, 1, 2]], [1, 3], "int32");
    const tables = rope.tables(positions);
    const got = rope.apply(x, tables);
    const expected = tf.tidy(() => {
      const [x1, x2] = tf.split(x, 2, -1);
      const rotated = tf.concat([tf.neg(x2!), x1!], -1);
      return tf.add(tf.mul(x, tables.cos), tf.mul(rotated, tables.sin));
    });
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(got, expected))).dataSync()[0]!)).toBeLessThan(1e-6);
    tf.dispose([x, positions, tables.cos, tables.sin, got, expected]);
    rope.dispose();
  });
});

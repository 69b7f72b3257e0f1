/**
 * `lmHeadLogProbs` (chunked LM head + selective log-probs) against the unfused path
 * (`tf.matMul` + `selectiveLogProbs`, and logSoftmax + gather): values, gradients with respect to
 * the hidden states and the head weight, per-row statistics, and tensor hygiene.
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/errors/index.js";
import { initEngine, tf } from "../../src/engine/index.js";
import { LM_HEAD_STATS, lmHeadLogProbs, selectiveLogProbs } from "../../src/ops/index.js";

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

// N = 37 rows, not a multiple of the chunk sizes tried.
const [N, H, V] = [37, 24, 211];

function inputs() {
  const hidden = tf.randomNormal([N, H], 0, 1, "float32", 5) as tf.Tensor2D;
  const weight = tf.tidy(() => tf.mul(tf.randomNormal([V, H], 0, 1, "float32", 6), 0.5) as tf.Tensor2D);
  const labels = tf.randomUniform([N], 0, V, "int32", 8) as tf.Tensor1D;
  const dy = tf.randomNormal([N], 0, 1, "float32", 9) as tf.Tensor1D;
  return { hidden, weight, labels, dy };
}

/** The unfused path: full logits, core's selectiveLogProbs. */
function unfused(h: tf.Tensor2D, w: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const logits = tf.reshape(tf.matMul(h, w, false, true), [1, N, V]) as tf.Tensor3D;
    return tf.reshape(selectiveLogProbs(logits, tf.reshape(labels, [1, N]) as tf.Tensor2D), [N]) as tf.Tensor1D;
  });
}

/** Plain logSoftmax + one-hot pick (independent of selectiveLogProbs' custom gradient). */
function plain(h: tf.Tensor2D, w: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const logits = tf.matMul(h, w, false, true);
    return tf.sum(tf.mul(tf.logSoftmax(logits), tf.cast(tf.oneHot(labels, V), "float32")), -1) as tf.Tensor1D;
  });
}

describe.each(["cpu", "wasm"] as const)("lmHeadLogProbs on %s", (backend) => {
  it.each([1, 8, 16, 64])("values and gradients match the unfused path to 1e-5 (chunkSize %i)", async (chunkSize) => {
    await initEngine({ backend, threads: 1 });
    const before = tf.memory().numTensors;
    const { hidden, weight, labels, dy } = inputs();
    const fusedLoss = (h: tf.Tensor, w: tf.Tensor) =>
      tf.sum(tf.mul(lmHeadLogProbs(h as tf.Tensor2D, w as tf.Tensor2D, labels, { chunkSize }).logProbs, dy));
    const refLoss = (f: typeof unfused) => (h: tf.Tensor, w: tf.Tensor) =>
      tf.sum(tf.mul(f(h as tf.Tensor2D, w as tf.Tensor2D, labels), dy));

    const value = tf.tidy(() => lmHeadLogProbs(hidden, weight, labels, { chunkSize }).logProbs);
    const refValue = unfused(hidden, weight, labels);
    const plainValue = plain(hidden, weight, labels);
    expect(value.shape).toEqual([N]);
    expect(maxAbsDiff(value, refValue)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(value, plainValue)).toBeLessThanOrEqual(1e-5);

    const [dh, dw] = tf.grads(fusedLoss)([hidden, weight]);
    const [rdh, rdw] = tf.grads(refLoss(unfused))([hidden, weight]);
    const [pdh, pdw] = tf.grads(refLoss(plain))([hidden, weight]);
    expect(dh!.shape).toEqual([N, H]);
    expect(dw!.shape).toEqual([V, H]);
    expect(maxAbsDiff(dh!, rdh!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(dw!, rdw!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(dh!, pdh!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(dw!, pdw!)).toBeLessThanOrEqual(1e-5);
    expect(tf.tidy(() => tf.max(tf.abs(dw!)).dataSync()[0]!)).toBeGreaterThan(1e-3);

    tf.dispose([hidden, weight, labels, dy, value, refValue, plainValue, dh!, dw!, rdh!, rdw!, pdh!, pdw!]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("stats equal the unfused mean logit, entropy and argmax hit; only the log-prob carries gradient", async () => {
    await initEngine({ backend, threads: 1 });
    const before = tf.memory().numTensors;
    const { hidden, weight, labels, dy } = inputs();
    // Make a few labels the argmax so the accuracy column has both values.
    const logits = tf.matMul(hidden, weight, false, true);
    const argmax = tf.argMax(logits, -1);
    const mixed = tf.tidy(() => tf.where(tf.less(tf.range(0, N, 1, "int32"), 10), argmax, labels) as tf.Tensor1D);
    const { logProbs, stats } = lmHeadLogProbs(hidden, weight, mixed, { chunkSize: 16, withStats: true });
    expect(stats!.shape).toEqual([N, 3]);
    const expected = tf.tidy(() => {
      const logp = tf.logSoftmax(logits);
      const entropy = tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), -1));
      const correct = tf.cast(tf.equal(argmax, mixed), "float32");
      return tf.stack([tf.mean(logits, -1), entropy, correct], 1);
    });
    expect(maxAbsDiff(stats!, expected)).toBeLessThanOrEqual(1e-5);
    const hits = tf.tidy(() => tf.sum(tf.slice(stats!, [0, LM_HEAD_STATS.correct], [N, 1])).dataSync()[0]!);
    expect(hits).toBeGreaterThanOrEqual(10);
    const refLogProbs = unfused(hidden, weight, mixed);
    expect(maxAbsDiff(logProbs, refLogProbs)).toBeLessThanOrEqual(1e-5);

    // Adding the stats to the loss changes nothing in the gradient: they are logging-only.
    const withStatsLoss = (h: tf.Tensor) => {
      const r = lmHeadLogProbs(h as tf.Tensor2D, weight, mixed, { chunkSize: 16, withStats: true });
      return tf.add(tf.sum(tf.mul(r.logProbs, dy)), tf.sum(r.stats!));
    };
    const plainLoss = (h: tf.Tensor) => tf.sum(tf.mul(plain(h as tf.Tensor2D, weight, mixed), dy));
    const g1 = tf.grad(withStatsLoss)(hidden);
    const g2 = tf.grad(plainLoss)(hidden);
    expect(maxAbsDiff(g1, g2)).toBeLessThanOrEqual(1e-5);

    tf.dispose([hidden, weight, labels, dy, logits, argmax, mixed, logProbs, refLogProbs, stats!, expected, g1, g2]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("skips the weight gradient for a frozen variable and trains through variableGrads", async () => {
    await initEngine({ backend, threads: 1 });
    const before = tf.memory().numTensors;
    const { hidden, weight, labels, dy } = inputs();
    const h = tf.variable(hidden, true);
    const frozen = tf.variable(weight, false);
    const trainable = tf.variable(weight, true);
    const loss = (w: tf.Variable) => () =>
      tf.sum(tf.mul(lmHeadLogProbs(h, w, labels, { chunkSize: 8 }).logProbs, dy)) as tf.Scalar;
    const a = tf.variableGrads(loss(frozen), [h]);
    const b = tf.variableGrads(loss(trainable), [h, trainable]);
    expect(Object.keys(a.grads)).toEqual([h.name]);
    expect(maxAbsDiff(a.grads[h.name]!, b.grads[h.name]!)).toBeLessThanOrEqual(1e-6);
    const ref = tf.grads((x: tf.Tensor, w: tf.Tensor) =>
      tf.sum(tf.mul(plain(x as tf.Tensor2D, w as tf.Tensor2D, labels), dy)),
    )([hidden, weight]);
    expect(maxAbsDiff(b.grads[trainable.name]!, ref[1]!)).toBeLessThanOrEqual(1e-5);
    tf.dispose([hidden, weight, labels, dy, h, frozen, trainable, a.value, b.value, ...ref]);
    tf.dispose(Object.values(a.grads));
    tf.dispose(Object.values(b.grads));
    expect(tf.memory().numTensors).toBe(before);
  });

  it("clamps out-of-range labels and rejects bad shapes and chunk sizes", async () => {
    await initEngine({ backend, threads: 1 });
    const before = tf.memory().numTensors;
    const { hidden, weight, labels, dy } = inputs();
    const ignore = Array.from({ length: N }, (_, i) => (i % 5 === 0 ? -100 : i));
    const clamped = ignore.map((x) => Math.max(0, x));
    const a = lmHeadLogProbs(hidden, weight, ignore).logProbs;
    const b = lmHeadLogProbs(hidden, weight, clamped).logProbs;
    expect(maxAbsDiff(a, b)).toBe(0);
    expect(() => lmHeadLogProbs(hidden, weight, labels, { chunkSize: 0 })).toThrow(ConfigError);
    expect(() => lmHeadLogProbs(hidden, weight, [1, 2, 3])).toThrow(/labels.*3 entries but hidden has 37 rows|37 rows/);
    const transposed = tf.transpose(weight) as tf.Tensor2D;
    expect(() => lmHeadLogProbs(hidden, transposed, labels)).toThrow(ConfigError);
    tf.dispose([hidden, weight, labels, dy, a, b, transposed]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

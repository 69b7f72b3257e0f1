/**
 * `selectiveLogProbs` against the unfused `logSoftmax` + gather (values and gradients), and
 * end-to-end differentiability of the model through `sequenceLogProbs`.
 */
import { initEngine, tf } from "@prefkit/core";
import { AutoModelForCausalLM, selectiveLogProbs, sequenceLogProbs } from "@prefkit/models";
import { describe, expect, it } from "vitest";
import { useBackend } from "./golden.js";

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Reference: full log-softmax, then pick the label with a one-hot reduction. */
function unfused(logits: tf.Tensor3D, labels: tf.Tensor2D): tf.Tensor2D {
  const v = logits.shape[2];
  return tf.sum(tf.mul(tf.logSoftmax(logits), tf.cast(tf.oneHot(labels, v), "float32")), -1) as tf.Tensor2D;
}

const IDS = [
  [3, 9, 12, 40, 7, 1],
  [0, 0, 5, 6, 33, 2],
];
const ATTENTION = [
  [1, 1, 1, 1, 1, 1],
  [0, 0, 1, 1, 1, 1],
];
const COMPLETION = [
  [0, 0, 0, 1, 1, 1],
  [0, 0, 0, 0, 1, 1],
];

const TINY = {
  model_type: "qwen3",
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  tie_word_embeddings: true,
};

describe.each(["cpu", "wasm"])("log-probs on %s", (backend) => {
  it("selectiveLogProbs matches logSoftmax + gather in value and gradient (1e-5)", async () => {
    await useBackend(backend);
    const [b, t, v] = [3, 5, 97];
    const logits = tf.mul(tf.randomNormal([b, t, v], 0, 1, "float32", 7), 4) as tf.Tensor3D;
    const labels = tf.randomUniform([b, t], 0, v, "int32", 3) as tf.Tensor2D;
    const weights = tf.randomNormal([b, t], 0, 1, "float32", 11);
    const loss = (f: typeof unfused) => (x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor3D, labels), weights));
    const fusedValue = selectiveLogProbs(logits, labels);
    const refValue = unfused(logits, labels);
    const fusedGrad = tf.grad(loss(selectiveLogProbs))(logits);
    const refGrad = tf.grad(loss(unfused))(logits);
    expect(maxAbsDiff(fusedValue, refValue)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(fusedGrad, refGrad)).toBeLessThanOrEqual(1e-5);
    tf.dispose([logits, labels, weights, fusedValue, refValue, fusedGrad, refGrad]);
  });

  it("sequenceLogProbs shifts and masks: only completion tokens from t ≥ 1 are scored", async () => {
    await useBackend(backend);
    const logits = tf.randomNormal([2, 4, 10], 0, 1, "float32", 5) as tf.Tensor3D;
    const ids = [
      [1, 2, 3, 4],
      [5, 6, 7, 0],
    ];
    const mask = [
      [1, 0, 1, 1],
      [0, 1, 1, 0],
    ];
    const out = sequenceLogProbs(logits, ids, mask);
    const logSoftmax = tf.tidy(() => tf.logSoftmax(logits).arraySync() as number[][][]);
    // Token at position p is scored by the logits at p − 1.
    const scored = (row: number, positions: number[]) =>
      positions.reduce((s, p) => s + logSoftmax[row]![p - 1]![ids[row]![p]!]!, 0);
    const sums = Array.from(await out.sums.data());
    expect(sums[0]).toBeCloseTo(scored(0, [2, 3]), 5);
    expect(sums[1]).toBeCloseTo(scored(1, [1, 2]), 5);
    expect(Array.from(await out.counts.data())).toEqual([2, 2]);
    expect((await out.perToken.array())[0]![0]).toBe(0);
    tf.dispose([logits, out.sums, out.counts, out.means, out.perToken]);
  });
});

describe("end-to-end differentiability on cpu", () => {
  // Stock tfjs-wasm has no gather gradient (UnsortedSegmentSum): wasm is covered below with prefkit's engine.
  it("the model is differentiable end to end inside tf.variableGrads (no data syncs)", async () => {
    await useBackend("cpu");
    const model = AutoModelForCausalLM.fromConfig(TINY, { seed: 1 });
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(
      () => tf.neg(tf.sum(sequenceLogProbs(model, IDS, COMPLETION, { attentionMask: ATTENTION }).sums)) as tf.Scalar,
      model.trainableVariables(),
    );
    const names = [...model.namedParameters().entries()];
    expect(Object.keys(grads)).toHaveLength(names.length);
    for (const [name, variable] of names) {
      const g = grads[variable.name];
      expect(g, name).toBeDefined();
      expect(g!.shape, name).toEqual(variable.shape);
      expect(Number.isFinite(tf.tidy(() => tf.sum(tf.abs(g!)).dataSync()[0]!)), name).toBe(true);
    }
    expect(Number.isFinite((await value.data())[0])).toBe(true);
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

/** Gradients of −Σ completion log-probs for every parameter, by HF name. */
function gradientsByName(seed: number): Map<string, Float32Array> {
  const model = AutoModelForCausalLM.fromConfig(TINY, { seed });
  const { value, grads } = tf.variableGrads(
    () => tf.neg(tf.sum(sequenceLogProbs(model, IDS, COMPLETION, { attentionMask: ATTENTION }).sums)) as tf.Scalar,
    model.trainableVariables(),
  );
  const out = new Map<string, Float32Array>();
  for (const [name, variable] of model.namedParameters())
    out.set(name, grads[variable.name]!.dataSync() as Float32Array);
  tf.dispose([value, ...Object.values(grads)]);
  model.dispose();
  return out;
}

describe("gradients on wasm with prefkit's engine kernels", () => {
  it("equal the cpu gradients for every parameter (1e-4)", async () => {
    await useBackend("cpu");
    const reference = gradientsByName(3);
    await initEngine({ backend: "wasm", threads: 1 });
    const got = gradientsByName(3);
    expect([...got.keys()]).toEqual([...reference.keys()]);
    for (const [name, ref] of reference) {
      const g = got.get(name)!;
      let worst = 0;
      for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(g[i]! - ref[i]!));
      expect(worst, name).toBeLessThanOrEqual(1e-4);
    }
  });
});

describe("selectiveLogProbs edge cases", () => {
  it("clamps out-of-range labels (TRL's −100) instead of failing", async () => {
    await useBackend("cpu");
    const logits = tf.randomNormal([1, 2, 5], 0, 1, "float32", 9) as tf.Tensor3D;
    const out = selectiveLogProbs(logits, [[-100, 7]]);
    const ref = selectiveLogProbs(logits, [[0, 4]]);
    expect(await out.data()).toEqual(await ref.data());
    tf.dispose([logits, out, ref]);
  });
});

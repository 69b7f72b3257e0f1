import { afterAll, describe, expect, it } from "vitest";
import { initEngine, shutdownEngine, tf } from "../../src/engine/index.js";
import { expectClose, uniform } from "./helpers.js";

afterAll(() => shutdownEngine());

const VOCAB = 13;
const EMBED = 8;
const HIDDEN = 16;
const CLASSES = 5;
const tokens = [1, 7, 7, 12, 0, 3];
const labels = [0, 4, 4, 2, 1, 3];

/** Embedding → dense → tanh → dense → softmax cross-entropy: a 2-layer MLP that also exercises gather's gradient. */
function buildModel() {
  const params = {
    emb: tf.variable(tf.tensor(uniform([VOCAB, EMBED], 1), [VOCAB, EMBED]), true, "emb"),
    w1: tf.variable(tf.tensor(uniform([EMBED, HIDDEN], 2), [EMBED, HIDDEN]), true, "w1"),
    b1: tf.variable(tf.zeros([HIDDEN]), true, "b1"),
    w2: tf.variable(tf.tensor(uniform([HIDDEN, CLASSES], 3), [HIDDEN, CLASSES]), true, "w2"),
    b2: tf.variable(tf.zeros([CLASSES]), true, "b2"),
  };
  const x = tf.tensor1d(tokens, "int32");
  const y = tf.oneHot(tf.tensor1d(labels, "int32"), CLASSES);
  const loss = () =>
    tf.tidy(() => {
      const h = tf.tanh(tf.add(tf.matMul(tf.gather(params.emb, x), params.w1), params.b1));
      const logits = tf.add(tf.matMul(h, params.w2), params.b2);
      return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
    });
  const dispose = () => tf.dispose([...Object.values(params), x, y]);
  return { params, loss, dispose };
}

interface Trace {
  losses: number[];
  weights: Float32Array;
}

/** Three SGD steps (variableGrads + assign inside tidy), then three Adam steps. */
async function train(backend: "wasm" | "cpu", threads = 1): Promise<Trace> {
  await initEngine({ backend, threads });
  expect(tf.getBackend()).toBe(backend);
  const model = buildModel();
  const losses: number[] = [];
  const baseline = tf.memory().numTensors;
  for (let step = 0; step < 3; step++) {
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(model.loss);
      losses.push(value.dataSync()[0]!);
      for (const [name, g] of Object.entries(grads)) {
        const v = model.params[name as keyof typeof model.params];
        v.assign(tf.sub(v, tf.mul(g, 0.5)));
      }
    });
    expect(tf.memory().numTensors).toBe(baseline);
  }
  const adam = tf.train.adam(0.05);
  const step = () =>
    tf.tidy(() => {
      const value = adam.minimize(model.loss, true) as tf.Scalar;
      losses.push(value.dataSync()[0]!);
    });
  step(); // creates Adam's moment slots
  const withSlots = tf.memory().numTensors;
  step();
  step();
  expect(tf.memory().numTensors).toBe(withSlots);
  const weights = Float32Array.from(model.params.w1.dataSync());
  adam.dispose();
  model.dispose();
  expect(tf.memory().numTensors).toBe(baseline - Object.keys(model.params).length - 2);
  return { losses, weights };
}

describe("2-layer MLP training step on every available backend", () => {
  it("gives the same losses and weights on wasm (1 and 2 threads) and cpu, without leaking tensors", async () => {
    const cpu = await train("cpu");
    const wasm = await train("wasm", 1);
    const wasmThreaded = await train("wasm", 2);
    expect(cpu.losses).toHaveLength(6);
    // Training actually moves: the loss falls.
    expect(cpu.losses.at(-1)!).toBeLessThan(cpu.losses[0]! - 0.1);
    expectClose(wasm.losses, cpu.losses, 1e-5);
    expectClose(wasmThreaded.losses, cpu.losses, 1e-5);
    expectClose(wasm.weights, cpu.weights, 1e-5);
    expectClose(wasmThreaded.weights, cpu.weights, 1e-5);
  });
});
